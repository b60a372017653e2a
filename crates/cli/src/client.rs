//! The typed HTTP client of the API under `/v1`.
//!
//! One method per route of `jobs_core::wire`. Every request carries the
//! bearer token when there is one; without one the request still goes out
//! (the API may need none), and a 401 then says where a token comes from.

use std::path::Path;
use std::time::Duration;

use clap::error::ErrorKind;
use jobs_core::JobState;
use jobs_core::wire::{
    ApiError, App, AppCreate, AppList, AppUpdate, Group, GroupCreate, Job, JobCreate, JobList,
    LogPage, TokenCreate, TokenCreated, TokenList, Upload, WorkerInfo, WorkerList,
};
use reqwest::{Method, RequestBuilder, Response, StatusCode, Url};
use serde::de::DeserializeOwned;

use crate::args::usage_error;
use crate::error::{CliError, cause_chain};

/// How long to wait for a TCP (and TLS) connection to the API.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// How long an ordinary request may take in all. Log streams have no such
/// limit: they stay open for as long as the job runs.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(60);
/// How long `follow` and `wait` ask again when the API drops their first
/// request (see [`ApiClient::get_job_first`]).
pub const FIRST_ANSWER_PATIENCE: Duration = Duration::from_secs(60);
/// The message for a 401 when no token was sent at all.
const MISSING_TOKEN: &str = "missing API token: pass --token, set JOBS_TOKEN, \
     or start `jobs dev` on this machine, which writes one for the CLI";
/// Added to a failed connection whose cause is the API's certificate.
const CERTIFICATE_HINT: &str = "(if the API's certificate comes from a private CA, \
     pass --ca-cert PATH or set JOBS_CA_CERT)";
/// How much of a non-JSON error body to quote back to the user.
const QUOTED_BODY_MAX_CHARS: usize = 200;

#[derive(Debug, Clone)]
pub struct ApiClient {
    http: reqwest::Client,
    /// The API's base address, as the user gave it, for messages.
    api_url: String,
    base: Url,
    token: Option<String>,
}

impl ApiClient {
    /// Checks the API address and builds the client. A malformed address is
    /// a usage error that names `--api-url`.
    ///
    /// HTTPS certificates are always verified, against the system's roots
    /// plus those of `ca_cert` when given; there is deliberately no way to
    /// turn verification off, since the token travels on every request.
    pub fn new(
        api_url: &str,
        token: Option<String>,
        ca_cert: Option<&Path>,
    ) -> Result<Self, CliError> {
        let bad_url = |why: String| {
            CliError::Usage(usage_error(
                ErrorKind::ValueValidation,
                format!("invalid value '{api_url}' for '--api-url <API_URL>': {why}"),
            ))
        };
        let base = Url::parse(api_url).map_err(|err| bad_url(err.to_string()))?;
        if !matches!(base.scheme(), "http" | "https") || base.cannot_be_a_base() {
            return Err(bad_url("must be an http:// or https:// address".into()));
        }
        let mut builder = reqwest::Client::builder()
            .connect_timeout(CONNECT_TIMEOUT)
            .user_agent(concat!("jobs-cli/", env!("CARGO_PKG_VERSION")));
        if let Some(path) = ca_cert {
            // Merged with the platform's roots, not instead of them: a
            // private CA for this API should not stop a public one working.
            builder = builder.tls_certs_merge(read_ca_certificates(path)?);
        }
        let http = builder
            .build()
            .map_err(|err| CliError::UnexpectedAnswer(cause_chain(&err)))?;
        Ok(Self {
            http,
            api_url: api_url.to_owned(),
            base,
            token: token.filter(|token| !token.is_empty()),
        })
    }

    /// The API's address as the user gave it, for messages.
    pub fn api_url(&self) -> &str {
        &self.api_url
    }

    pub async fn create_app(&self, create: &AppCreate) -> Result<App, CliError> {
        let request = self.request(Method::POST, &["apps"]).json(create);
        self.send_for_json(request).await
    }

    pub async fn list_apps(&self) -> Result<AppList, CliError> {
        self.send_for_json(self.request(Method::GET, &["apps"]))
            .await
    }

    pub async fn get_app(&self, name: &str) -> Result<App, CliError> {
        self.send_for_json(self.request(Method::GET, &["apps", name]))
            .await
    }

    pub async fn update_app(&self, name: &str, update: &AppUpdate) -> Result<App, CliError> {
        let request = self.request(Method::PATCH, &["apps", name]).json(update);
        self.send_for_json(request).await
    }

    pub async fn delete_app(&self, name: &str) -> Result<(), CliError> {
        self.send(self.request(Method::DELETE, &["apps", name]))
            .await
            .map(drop)
    }

    pub async fn create_token(&self, create: &TokenCreate) -> Result<TokenCreated, CliError> {
        let request = self.request(Method::POST, &["tokens"]).json(create);
        self.send_for_json(request).await
    }

    pub async fn list_tokens(&self) -> Result<TokenList, CliError> {
        self.send_for_json(self.request(Method::GET, &["tokens"]))
            .await
    }

    pub async fn revoke_token(&self, id: &str) -> Result<(), CliError> {
        self.send(self.request(Method::DELETE, &["tokens", id]))
            .await
            .map(drop)
    }

    pub async fn list_workers(&self) -> Result<WorkerList, CliError> {
        self.send_for_json(self.request(Method::GET, &["workers"]))
            .await
    }

    /// Drains a worker, or with `draining` false undoes its drain.
    pub async fn set_worker_draining(
        &self,
        id: &str,
        draining: bool,
    ) -> Result<WorkerInfo, CliError> {
        let method = if draining {
            Method::POST
        } else {
            Method::DELETE
        };
        self.send_for_json(self.request(method, &["workers", id, "drain"]))
            .await
    }

    pub async fn create_job(&self, app: &str, create: &JobCreate) -> Result<Job, CliError> {
        let request = self
            .request(Method::POST, &["apps", app, "jobs"])
            .json(create);
        self.send_for_json(request).await
    }

    pub async fn list_jobs(
        &self,
        app: &str,
        state: Option<JobState>,
        limit: Option<u32>,
    ) -> Result<JobList, CliError> {
        let mut url = self.url(&["apps", app, "jobs"]);
        if let Some(state) = state {
            url.query_pairs_mut().append_pair("state", state.as_str());
        }
        if let Some(limit) = limit {
            url.query_pairs_mut()
                .append_pair("limit", &limit.to_string());
        }
        self.send_for_json(self.request_to(Method::GET, url)).await
    }

    pub async fn get_job(&self, id: &str) -> Result<Job, CliError> {
        self.send_for_json(self.request(Method::GET, &["jobs", id]))
            .await
    }

    /// The first look at a job by `follow` and `wait`. A wrong id, a
    /// refused token or a refused connection fail at once, so that a
    /// mistake is not retried for ever; an API that took the request and
    /// dropped it (it is restarting) is asked again for up to
    /// [`FIRST_ANSWER_PATIENCE`].
    pub async fn get_job_first(&self, id: &str) -> Result<Job, CliError> {
        let deadline = tokio::time::Instant::now() + FIRST_ANSWER_PATIENCE;
        let mut backoff =
            crate::backoff::Backoff::new(Duration::from_millis(200), Duration::from_secs(2));
        loop {
            match self.get_job(id).await {
                Err(CliError::Dropped { .. }) if tokio::time::Instant::now() < deadline => {
                    tokio::time::sleep(backoff.next_delay()).await;
                }
                other => return other,
            }
        }
    }

    /// Creates a group of `create.tasks` tasks (`jobs run --tasks N`).
    pub async fn create_group(&self, app: &str, create: &GroupCreate) -> Result<Group, CliError> {
        let request = self
            .request(Method::POST, &["apps", app, "groups"])
            .json(create);
        self.send_for_json(request).await
    }

    pub async fn get_group(&self, id: &str) -> Result<Group, CliError> {
        self.send_for_json(self.request(Method::GET, &["groups", id]))
            .await
    }

    /// The first look at a group, as [`Self::get_job_first`] for a job.
    pub async fn get_group_first(&self, id: &str) -> Result<Group, CliError> {
        let deadline = tokio::time::Instant::now() + FIRST_ANSWER_PATIENCE;
        let mut backoff =
            crate::backoff::Backoff::new(Duration::from_millis(200), Duration::from_secs(2));
        loop {
            match self.get_group(id).await {
                Err(CliError::Dropped { .. }) if tokio::time::Instant::now() < deadline => {
                    tokio::time::sleep(backoff.next_delay()).await;
                }
                other => return other,
            }
        }
    }

    pub async fn cancel_group(&self, id: &str) -> Result<Group, CliError> {
        self.send_for_json(self.request(Method::POST, &["groups", id, "cancel"]))
            .await
    }

    /// Cancels a job, or every task of a group for a group id.
    pub async fn cancel_job_or_group(&self, id: &str) -> Result<(), CliError> {
        if jobs_core::groups::is_group_id(id) {
            self.cancel_group(id).await.map(drop)
        } else {
            self.cancel_job(id).await.map(drop)
        }
    }

    pub async fn cancel_job(&self, id: &str) -> Result<Job, CliError> {
        self.send_for_json(self.request(Method::POST, &["jobs", id, "cancel"]))
            .await
    }

    /// One page of stored chunks with `seq > after`.
    pub async fn log_page(&self, id: &str, after: i64) -> Result<LogPage, CliError> {
        let mut url = self.url(&["jobs", id, "logs"]);
        url.query_pairs_mut()
            .append_pair("after", &after.to_string());
        self.send_for_json(self.request_to(Method::GET, url)).await
    }

    /// Opens the Server-Sent Events stream of a job's logs after `after`.
    ///
    /// The resume point goes both in `after` and in `Last-Event-ID`, the
    /// header SSE defines for resuming, so that either reading of it by the
    /// API resumes at the same place.
    pub async fn open_log_stream(&self, id: &str, after: i64) -> Result<Response, CliError> {
        let mut url = self.url(&["jobs", id, "logs", "stream"]);
        url.query_pairs_mut()
            .append_pair("after", &after.to_string());
        let mut request = self
            .authorized(self.http.get(url))
            .header(reqwest::header::ACCEPT, "text/event-stream");
        if after > 0 {
            request = request.header("Last-Event-ID", after.to_string());
        }
        let response = request.send().await.map_err(|err| self.unreachable(&err))?;
        self.check_status(response).await
    }

    /// Opens the attach WebSocket of an interactive job. With `after`, the
    /// API first replays every output frame after that sequence number;
    /// without it, only output from now on comes.
    ///
    /// A refusal before the upgrade (404, 409, 401...) is the API's own
    /// error, as for any other request. No overall timeout applies: the
    /// socket stays open for as long as the session lasts; only the upgrade
    /// itself is bounded, by [`REQUEST_TIMEOUT`].
    pub async fn open_attach(
        &self,
        id: &str,
        after: Option<i64>,
    ) -> Result<reqwest_websocket::WebSocket, CliError> {
        use reqwest_websocket::Upgrade;
        let mut url = self.url(&["jobs", id, "attach"]);
        if let Some(after) = after {
            url.query_pairs_mut()
                .append_pair("after", &after.to_string());
        }
        // Stdin with offsets and acks: exactly-once across reconnects.
        let (name, value) = jobs_core::attach::INPUT_OFFSETS_QUERY;
        url.query_pairs_mut().append_pair(name, value);
        let upgrade = async {
            let response = self
                .authorized(self.http.get(url))
                .upgrade()
                .send()
                .await
                .map_err(|err| self.websocket_failed(err))?;
            if response.status() != StatusCode::SWITCHING_PROTOCOLS {
                // The API's error body says why; an unexpected success
                // status is a server that does not speak WebSocket here.
                let response = self.check_status(response.into_inner()).await?;
                return Err(CliError::UnexpectedAnswer(format!(
                    "the API at {} answered {} instead of opening the attach WebSocket",
                    self.api_url,
                    response.status()
                )));
            }
            response
                .into_websocket()
                .await
                .map_err(|err| self.websocket_failed(err))
        };
        match tokio::time::timeout(REQUEST_TIMEOUT, upgrade).await {
            Ok(result) => result,
            Err(_elapsed) => Err(CliError::Unreachable {
                api_url: self.api_url.clone(),
                cause: "no answer to the attach request".into(),
            }),
        }
    }

    /// A WebSocket that could not be opened: the connection failed (worth
    /// retrying) or the handshake was wrong.
    fn websocket_failed(&self, err: reqwest_websocket::Error) -> CliError {
        match err {
            reqwest_websocket::Error::Reqwest(err) => self.unreachable(&err),
            reqwest_websocket::Error::Handshake(err) => CliError::UnexpectedAnswer(format!(
                "the API at {} did not open the attach WebSocket: {err}",
                self.api_url
            )),
            other => CliError::Unreachable {
                api_url: self.api_url.clone(),
                cause: cause_chain(&other),
            },
        }
    }

    /// Asks whether an upload of `name`, `size` bytes (when known) for a
    /// job whose uploads total `total` bytes would be accepted. Nothing is
    /// stored.
    pub async fn check_upload(
        &self,
        app: &str,
        name: &str,
        size: Option<u64>,
        total: u64,
    ) -> Result<(), CliError> {
        let mut url = self.upload_url(app, name, size, total);
        url.query_pairs_mut().append_pair("dry_run", "true");
        self.send(self.request_to(Method::POST, url))
            .await
            .map(drop)
    }

    /// Streams `body` as the upload `name`. No overall timeout: a large
    /// file takes as long as it takes.
    pub async fn upload(
        &self,
        app: &str,
        name: &str,
        size: Option<u64>,
        total: u64,
        body: reqwest::Body,
    ) -> Result<Upload, CliError> {
        let url = self.upload_url(app, name, size, total);
        let request = self
            .authorized(self.http.post(url))
            .header(reqwest::header::CONTENT_TYPE, "application/octet-stream")
            .body(body);
        self.send_for_json(request).await
    }

    fn upload_url(&self, app: &str, name: &str, size: Option<u64>, total: u64) -> Url {
        let mut url = self.url(&["apps", app, "uploads"]);
        url.query_pairs_mut()
            .append_pair("name", name)
            .append_pair("total", &total.to_string());
        if let Some(size) = size {
            url.query_pairs_mut().append_pair("size", &size.to_string());
        }
        url
    }

    /// Opens the `index`-th artifact of a job: a tar archive, streamed.
    pub async fn open_artifact(&self, id: &str, index: usize) -> Result<Response, CliError> {
        let url = self.url(&["jobs", id, "artifacts", &index.to_string()]);
        self.send(self.authorized(self.http.get(url))).await
    }

    /// The address of `/v1/<segments...>`, each segment percent-encoded so
    /// that an id typed by a user can never change the route.
    fn url(&self, segments: &[&str]) -> Url {
        let mut url = self.base.clone();
        url.path_segments_mut()
            .expect("checked in ApiClient::new that the base URL can be a base")
            .pop_if_empty()
            .push("v1")
            .extend(segments);
        url
    }

    fn request(&self, method: Method, segments: &[&str]) -> RequestBuilder {
        self.request_to(method, self.url(segments))
    }

    fn request_to(&self, method: Method, url: Url) -> RequestBuilder {
        let request = self.http.request(method, url).timeout(REQUEST_TIMEOUT);
        self.authorized(request)
    }

    fn authorized(&self, request: RequestBuilder) -> RequestBuilder {
        match &self.token {
            Some(token) => request.bearer_auth(token),
            None => request,
        }
    }

    async fn send(&self, request: RequestBuilder) -> Result<Response, CliError> {
        let response = request.send().await.map_err(|err| self.unreachable(&err))?;
        self.check_status(response).await
    }

    async fn send_for_json<T: DeserializeOwned>(
        &self,
        request: RequestBuilder,
    ) -> Result<T, CliError> {
        let response = self.send(request).await?;
        let body = response
            .bytes()
            .await
            .map_err(|err| self.unreachable(&err))?;
        serde_json::from_slice(&body).map_err(|err| {
            CliError::UnexpectedAnswer(format!(
                "the API at {} answered with a body this CLI does not understand: {err}",
                self.api_url
            ))
        })
    }

    /// Turns an error status into the API's own message.
    async fn check_status(&self, response: Response) -> Result<Response, CliError> {
        let status = response.status();
        if status.is_success() {
            return Ok(response);
        }
        let body = response.bytes().await.unwrap_or_default();
        let message = if status == StatusCode::UNAUTHORIZED && self.token.is_none() {
            // The API only knows that no token came; the CLI knows every
            // place it looked, including the `jobs dev` token file.
            MISSING_TOKEN.to_owned()
        } else {
            api_error_message(status, &body)
        };
        Err(CliError::Api {
            status: status.as_u16(),
            message,
        })
    }

    fn unreachable(&self, err: &reqwest::Error) -> CliError {
        // A request that was sent on an established connection and got no
        // answer: the API is there, and went away mid-request.
        let dropped = !err.is_connect() && !err.is_timeout() && (err.is_request() || err.is_body());
        // For a failed connection reqwest's own line only repeats the URL
        // ("error sending request for url (...)"); its causes say what
        // happened ("Connection refused").
        let cause = match std::error::Error::source(err) {
            Some(source) if err.is_connect() || err.is_timeout() => cause_chain(source),
            _ => cause_chain(err),
        };
        let cause = if cause.contains("certificate") {
            format!("{cause} {CERTIFICATE_HINT}")
        } else {
            cause
        };
        if dropped {
            return CliError::Dropped {
                api_url: self.api_url.clone(),
                cause,
            };
        }
        CliError::Unreachable {
            api_url: self.api_url.clone(),
            cause,
        }
    }
}

/// Reads the CA certificates of `--ca-cert`. A file that cannot be read or
/// holds no certificate is a usage error naming the option and the file.
fn read_ca_certificates(path: &Path) -> Result<Vec<reqwest::Certificate>, CliError> {
    let bad_file = |why: String| {
        CliError::Usage(usage_error(
            ErrorKind::ValueValidation,
            format!(
                "invalid value '{}' for '--ca-cert <PATH>': {why}",
                path.display()
            ),
        ))
    };
    let pem = std::fs::read(path).map_err(|err| bad_file(format!("cannot read it: {err}")))?;
    let certificates = reqwest::Certificate::from_pem_bundle(&pem)
        .map_err(|err| bad_file(format!("not a PEM certificate file: {}", cause_chain(&err))))?;
    if certificates.is_empty() {
        return Err(bad_file("no PEM certificate in it".into()));
    }
    Ok(certificates)
}

/// The sentence to show for an error answer: the API's `error.message` when
/// the body is an API error, else the status and the start of the body (a
/// proxy's HTML page, say).
fn api_error_message(status: StatusCode, body: &[u8]) -> String {
    if let Ok(api_error) = serde_json::from_slice::<ApiError>(body) {
        return api_error.error.message;
    }
    let text = String::from_utf8_lossy(body);
    let quoted: String = text.trim().chars().take(QUOTED_BODY_MAX_CHARS).collect();
    if quoted.is_empty() {
        format!("the API answered {status}")
    } else {
        format!("the API answered {status}: {quoted}")
    }
}

#[cfg(test)]
mod tests {

    /// An API that accepts a connection, reads the request and closes the
    /// connection without answering, as one killed mid-request does.
    fn dropping_api() -> String {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let address = listener.local_addr().unwrap();
        std::thread::spawn(move || {
            for stream in listener.incoming().flatten() {
                use std::io::Read;
                let mut stream = stream;
                let _ = stream.read(&mut [0; 4096]);
                drop(stream);
            }
        });
        format!("http://{address}")
    }

    #[tokio::test]
    async fn a_request_dropped_mid_way_is_told_apart_from_a_refused_connection() {
        let dropping = ApiClient::new(&dropping_api(), Some("t".into()), None).unwrap();
        let error = dropping.get_job("j").await.unwrap_err();
        assert!(matches!(error, CliError::Dropped { .. }), "{error:?}");
        assert!(error.is_retryable());
        assert!(
            error.to_string().starts_with("cannot reach the API at "),
            "{error}"
        );

        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let refused =
            ApiClient::new(&format!("http://127.0.0.1:{port}"), Some("t".into()), None).unwrap();
        let error = refused.get_job("j").await.unwrap_err();
        assert!(matches!(error, CliError::Unreachable { .. }), "{error:?}");
        // The first look fails at once on a refused connection.
        let started = std::time::Instant::now();
        assert!(refused.get_job_first("j").await.is_err());
        assert!(started.elapsed() < Duration::from_secs(5));
    }
    use super::*;

    #[test]
    fn routes_sit_under_v1_with_encoded_segments() {
        let client = ApiClient::new("http://127.0.0.1:8420", None, None).unwrap();
        assert_eq!(
            client.url(&["jobs", "j1", "logs"]).as_str(),
            "http://127.0.0.1:8420/v1/jobs/j1/logs"
        );
        assert_eq!(
            client.url(&["jobs", "../apps?x"]).as_str(),
            "http://127.0.0.1:8420/v1/jobs/..%2Fapps%3Fx"
        );
        let prefixed = ApiClient::new("https://example.test/jobs/", None, None).unwrap();
        assert_eq!(
            prefixed.url(&["apps"]).as_str(),
            "https://example.test/jobs/v1/apps"
        );
    }

    #[test]
    fn a_bad_api_url_is_a_usage_error() {
        for bad in ["not a url", "ftp://host", "mailto:x@y"] {
            let err = ApiClient::new(bad, None, None).unwrap_err();
            assert_eq!(err.exit_code(), 2, "{bad}");
            assert!(err.to_string().contains("--api-url"), "{bad}: {err}");
        }
    }

    #[test]
    fn a_ca_file_that_is_missing_or_holds_no_certificate_is_a_usage_error() {
        let dir = std::env::temp_dir().join(format!("jobs-cli-ca-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let empty = dir.join("empty.pem");
        std::fs::write(&empty, "not a certificate\n").unwrap();
        for path in [dir.join("missing.pem"), empty] {
            let err = ApiClient::new("https://127.0.0.1:1", None, Some(&path)).unwrap_err();
            assert_eq!(err.exit_code(), 2, "{err}");
            let message = err.to_string();
            assert!(message.contains("--ca-cert"), "{message}");
            assert!(message.contains(&*path.to_string_lossy()), "{message}");
        }
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn error_messages_come_from_the_api_body() {
        let body = br#"{"error":{"code":"not_found","message":"job \"x\" not found"}}"#;
        assert_eq!(
            api_error_message(StatusCode::NOT_FOUND, body),
            "job \"x\" not found"
        );
        assert_eq!(
            api_error_message(StatusCode::BAD_GATEWAY, b"<html>bad gateway</html>"),
            "the API answered 502 Bad Gateway: <html>bad gateway</html>"
        );
        assert_eq!(
            api_error_message(StatusCode::UNAUTHORIZED, b""),
            "the API answered 401 Unauthorized"
        );
    }
}
