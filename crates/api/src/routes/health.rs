//! Probes. Neither needs a token, so that a load balancer can call them.

use axum::extract::State;

use crate::{error::ApiError, state::AppState};

/// `GET /healthz`: the process is up and serving HTTP.
#[utoipa::path(
    get,
    path = "/healthz",
    tag = "health",
    responses(
        (status = 200, description = "The process is up.", content_type = "text/plain", body = String, example = "ok"),
    )
)]
pub async fn healthz() -> &'static str {
    "ok"
}

/// `GET /readyz`: the process can do its work, which needs the database.
#[utoipa::path(
    get,
    path = "/readyz",
    tag = "health",
    responses(
        (status = 200, description = "The database answers.", content_type = "text/plain", body = String, example = "ok"),
        (status = 503, description = "`unavailable`: the database does not answer.", body = jobs_core::wire::ApiError),
    )
)]
pub async fn readyz(State(state): State<AppState>) -> Result<&'static str, ApiError> {
    match state.store.ping().await {
        Ok(()) => Ok("ok"),
        Err(error) => {
            tracing::warn!(%error, "not ready: the database does not answer");
            Err(ApiError::Unavailable(
                "the database does not answer".to_owned(),
            ))
        }
    }
}
