//! The request id: one per API call, in every log line of that call and in
//! the `x-request-id` response header, so that a user's report ("my call
//! failed, request id …") leads straight to the server's log.
//!
//! A caller (a proxy, a load balancer) may send its own `x-request-id`; it
//! is kept when it is a short token, so one id follows a request through
//! every hop, and replaced otherwise, so that nothing a client sends can
//! forge log structure or grow without bound.

use axum::http::{HeaderMap, HeaderName, HeaderValue};

/// The header that carries the id, both ways.
pub const REQUEST_ID_HEADER: HeaderName = HeaderName::from_static("x-request-id");

/// The longest id taken from a caller.
const MAX_CALLER_ID_BYTES: usize = 64;

/// The caller's id when it is acceptable, else a fresh one (a UUIDv7, so
/// ids sort by time).
pub fn request_id(headers: &HeaderMap) -> String {
    headers
        .get(&REQUEST_ID_HEADER)
        .and_then(|value| value.to_str().ok())
        .filter(|id| is_acceptable(id))
        .map_or_else(|| uuid::Uuid::now_v7().to_string(), str::to_owned)
}

/// The header value of an id that [`request_id`] made or accepted.
pub fn header_value(id: &str) -> HeaderValue {
    HeaderValue::from_str(id).expect("request ids are visible ASCII")
}

fn is_acceptable(id: &str) -> bool {
    !id.is_empty()
        && id.len() <= MAX_CALLER_ID_BYTES
        && id
            .bytes()
            .all(|byte| byte.is_ascii_alphanumeric() || matches!(byte, b'-' | b'_' | b'.'))
}

/// The job id in a request path of the form `/v1/jobs/{id}[/...]`, so that
/// every call about one job carries its id in the log.
pub fn job_id_in_path(path: &str) -> Option<&str> {
    let rest = path.strip_prefix("/v1/jobs/")?;
    let id = rest.split('/').next()?;
    (!id.is_empty() && id.len() <= 64).then_some(id)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(value: &str) -> HeaderMap {
        let mut headers = HeaderMap::new();
        headers.insert(&REQUEST_ID_HEADER, HeaderValue::from_str(value).unwrap());
        headers
    }

    #[test]
    fn a_callers_short_token_is_kept() {
        assert_eq!(request_id(&headers("lb-7f3a.42_x")), "lb-7f3a.42_x");
    }

    #[test]
    fn anything_else_gets_a_fresh_id() {
        for bad in ["", "has space", "quote\"", &"a".repeat(65), "{\"x\":1}"] {
            let id = request_id(&headers(bad));
            assert_ne!(id, bad);
            assert!(uuid::Uuid::parse_str(&id).is_ok(), "{id}");
        }
        assert!(uuid::Uuid::parse_str(&request_id(&HeaderMap::new())).is_ok());
    }

    #[test]
    fn job_ids_are_read_from_job_paths_only() {
        assert_eq!(job_id_in_path("/v1/jobs/0196abc"), Some("0196abc"));
        assert_eq!(
            job_id_in_path("/v1/jobs/0196abc/logs/stream"),
            Some("0196abc")
        );
        assert_eq!(job_id_in_path("/v1/jobs/"), None);
        assert_eq!(job_id_in_path("/v1/apps/demo/jobs"), None);
        assert_eq!(job_id_in_path("/healthz"), None);
    }
}
