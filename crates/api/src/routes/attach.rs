//! `GET /v1/jobs/{id}/attach` (a client) and `GET /v1/jobs/{id}/attach/worker`
//! (the run's worker dialing back): the WebSocket upgrades of interactive
//! runs. Every check answers with an ordinary JSON error before the upgrade.

use axum::{
    extract::{
        RawQuery, State,
        ws::{WebSocketUpgrade, rejection::WebSocketUpgradeRejection},
    },
    http::{HeaderMap, header},
    response::Response,
};
use jobs_core::{JobState, Role, wire::Job};
use serde::Deserialize;
use subtle::ConstantTimeEq;

use crate::{
    attach::{client, relay, worker},
    auth::{presented_token, secret_hash},
    error::{ApiError, INVALID_TOKEN},
    extract::{PathParam, QueryParams},
    principal::Principal,
    requests::parse_after,
    routes::jobs::visible_job,
    state::AppState,
};

/// The subprotocol a browser offers with its bearer token (see
/// [`crate::auth`]); the API selects it, so that the token is never echoed.
pub const ATTACH_SUBPROTOCOL: &str = "jobs.attach.v1";

#[derive(Debug, Default, Deserialize)]
pub struct AttachQuery {
    after: Option<String>,
    input: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
pub struct WorkerAttachQuery {
    input: Option<String>,
}

/// Whether the peer asked for input frames with offsets
/// (`jobs_core::attach::INPUT_OFFSETS_QUERY`); any other value is the raw
/// input of older peers.
fn wants_input_offsets(input: Option<&str>) -> bool {
    input == Some(jobs_core::attach::INPUT_OFFSETS_QUERY.1)
}

/// `GET /v1/jobs/{id}/attach?after=SEQ`: a client's socket of an interactive
/// run; output after `after` first (live output only without it).
#[utoipa::path(
    get,
    path = "/v1/jobs/{id}/attach",
    tag = "jobs",
    params(
        ("id" = String, Path, description = "The job's id."),
        ("after" = Option<i64>, Query, description = "Replay stored output after this sequence number first; without it, live output only."),
        ("input" = Option<String>, Query, description = "`offsets`: input frames carry their offset in the run's input stream and are acknowledged, so that stdin is exactly-once across reconnects; without it, binary frames are raw stdin bytes."),
    ),
    responses(
        (status = 101, description = "A WebSocket of the attach protocol (jobs_core::attach)."),
        (status = 400, description = "`invalid_input`: not a WebSocket upgrade request.", body = jobs_core::wire::ApiError),
        (status = 404, description = "`not_found`: no such job, or one outside the token's app.", body = jobs_core::wire::ApiError),
        (status = 409, description = "`conflict`: the job is not interactive, or has ended.", body = jobs_core::wire::ApiError),
        (status = 429, description = "`rate_limited`: this token already holds its limit of attach sockets open (`JOBS_MAX_ATTACH_SOCKETS_PER_TOKEN`, 16 by default).", body = jobs_core::wire::ApiError),
        (status = 503, description = "`unavailable`: another API holds the run (it created it), and this one, which relays clients to it, cannot reach it.", body = jobs_core::wire::ApiError),
    )
)]
pub async fn attach_client(
    State(state): State<AppState>,
    principal: Principal,
    PathParam(id): PathParam<String>,
    QueryParams(query): QueryParams<AttachQuery>,
    RawQuery(raw_query): RawQuery,
    headers: HeaderMap,
    upgrade: Result<WebSocketUpgrade, WebSocketUpgradeRejection>,
) -> Result<Response, ApiError> {
    let job = visible_job(&state, &principal, &id).await?;
    principal.require(Role::Run, "attaching to jobs")?;
    let after = parse_after("after", query.after.as_deref())?;
    check_attachable(&job)?;
    let upgrade = upgrade
        .map_err(|_| not_an_upgrade())?
        .protocols([ATTACH_SUBPROTOCOL]);
    // Held as long as the socket: one token cannot take every socket.
    // Authenticated already: the token is there, and keys the count as it
    // keys the request rate.
    let token = presented_token(&headers)?.ok_or(ApiError::Unauthorized(INVALID_TOKEN))?;
    let token_slot = state.attach_sockets_per_token.take(&secret_hash(&token))?;
    let holder = state
        .store
        .attach_endpoint(&id)
        .await?
        .map(|endpoint| endpoint.url)
        .filter(|url| !relay::is_this_api(url, state.attach.advertise_url()))
        .filter(|_| !headers.contains_key(relay::RELAYED_HEADER));
    if let Some(holder) = holder {
        let dialed = relay::dial_holder(
            state.attach.relay_client(),
            &holder,
            &id,
            raw_query.as_deref(),
            &token,
        )
        .await?;
        return Ok(match dialed {
            Ok(holder_socket) => upgrade.on_upgrade(move |socket| async move {
                relay::pump(socket, holder_socket, id).await;
                drop(token_slot);
            }),
            Err(refusal) => refusal,
        });
    }
    if job.state == JobState::Queued {
        // After an API restart the line is empty; a client puts its run back.
        state.attach.enqueue(&id);
    }
    let context = client::ClientContext {
        hub: state.attach.clone(),
        store: state.store.clone(),
        notifications: state.notifications.clone(),
        session: state.attach.session(&id),
        after,
        input_offsets: wants_input_offsets(query.input.as_deref()),
        shutdown: state.shutdown.clone(),
    };
    let clients = state.metrics.attach_clients.clone();
    Ok(upgrade.on_upgrade(move |socket| async move {
        clients.inc();
        client::serve(context, socket).await;
        clients.dec();
        drop(token_slot);
    }))
}

/// `GET /v1/jobs/{id}/attach/worker?attempt=N`: the worker's socket. It
/// authenticates with the job's attach secret, not an API token.
#[utoipa::path(
    get,
    path = "/v1/jobs/{id}/attach/worker",
    tag = "jobs",
    params(
        ("id" = String, Path, description = "The job's id."),
        ("input" = Option<String>, Query, description = "`offsets`: the worker acknowledges stdin by offset (see the client's route)."),
    ),
    responses(
        (status = 101, description = "The worker's WebSocket of the attach protocol."),
        (status = 401, description = "`unauthorized`: not the job's attach secret.", body = jobs_core::wire::ApiError),
        (status = 409, description = "`conflict`: the job has ended.", body = jobs_core::wire::ApiError),
    )
)]
pub async fn attach_worker(
    State(state): State<AppState>,
    PathParam(id): PathParam<String>,
    QueryParams(query): QueryParams<WorkerAttachQuery>,
    headers: HeaderMap,
    upgrade: Result<WebSocketUpgrade, WebSocketUpgradeRejection>,
) -> Result<Response, ApiError> {
    let presented = headers
        .get(header::AUTHORIZATION)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.strip_prefix("Bearer "))
        .ok_or(ApiError::Unauthorized(INVALID_TOKEN))?;
    // A missing job and a wrong secret get the same answer.
    let secret = match state.store.attach_endpoint(&id).await {
        Ok(endpoint) => endpoint.map(|endpoint| endpoint.secret),
        Err(jobs_store::StoreError::JobNotFound(_)) => None,
        Err(error) => return Err(error.into()),
    };
    let matches =
        secret.is_some_and(|secret| bool::from(secret.as_bytes().ct_eq(presented.as_bytes())));
    if !matches {
        return Err(ApiError::Unauthorized(INVALID_TOKEN));
    }
    let job = state.store.get_job(&id).await?;
    if job.state.is_terminal() {
        return Err(ended(&job));
    }
    let upgrade = upgrade.map_err(|_| not_an_upgrade())?;
    let hub = state.attach.clone();
    let session = hub.session(&id);
    let shutdown = state.shutdown.clone();
    let offsets = wants_input_offsets(query.input.as_deref());
    Ok(upgrade.on_upgrade(move |socket| worker::serve(hub, session, socket, shutdown, offsets)))
}

fn check_attachable(job: &Job) -> Result<(), ApiError> {
    if job.interactive.is_none() {
        return Err(ApiError::Conflict(format!(
            "job {} is not interactive: follow its output with `jobs follow {}`",
            job.id, job.id
        )));
    }
    if job.state.is_terminal() {
        return Err(ended(job));
    }
    Ok(())
}

fn ended(job: &Job) -> ApiError {
    let code = job
        .exit_code
        .map_or(String::new(), |code| format!(", exit code {code}"));
    ApiError::Conflict(format!(
        "job {} has already ended ({}{code}): see its output with `jobs logs {}`",
        job.id, job.state, job.id
    ))
}

fn not_an_upgrade() -> ApiError {
    ApiError::MalformedRequest {
        field: "upgrade",
        message: "this route is a WebSocket: send a WebSocket upgrade request".into(),
    }
}
