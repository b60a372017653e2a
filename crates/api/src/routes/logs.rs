//! `GET /v1/jobs/{id}/logs`: one page of stored logs.

use axum::{Json, extract::State};
use jobs_core::wire::LogPage;

use crate::{
    error::ApiError,
    extract::{PathParam, QueryParams},
    principal::Principal,
    requests::LogPageQuery,
    state::AppState,
};

/// The most log bytes one page carries, before base64. A page always holds
/// at least one chunk when there is one, and chunks are at most about 64 KiB.
pub const LOG_PAGE_MAX_BYTES: i64 = 4 * 1024 * 1024;

/// Chunks after `after`, at most `limit` of them and about 4 MiB.
#[utoipa::path(
    get,
    path = "/v1/jobs/{id}/logs",
    tag = "logs",
    params(
        ("id" = String, Path, description = "The job's id."),
        ("after" = Option<i64>, Query, description = "The sequence number to start after; 0 by default."),
        ("limit" = Option<i64>, Query, description = "How many chunks at most: 1 to 1000, 256 by default; a page also stops near 4 MiB."),
    ),
    responses(
        (status = 200, description = "One page of the job's stored output.", body = LogPage),
        (status = 404, description = "`not_found`: no such job, or one outside the token's app.", body = jobs_core::wire::ApiError),
        (status = 422, description = "`invalid_input`: an `after` or `limit` out of range; `field` names it.", body = jobs_core::wire::ApiError),
    )
)]
pub async fn log_page(
    State(state): State<AppState>,
    principal: Principal,
    PathParam(id): PathParam<String>,
    QueryParams(query): QueryParams<LogPageQuery>,
) -> Result<Json<LogPage>, ApiError> {
    let window = query.validate()?;
    // The job must exist, and be the token's to see: an unknown or foreign
    // id is a 404, not an empty page.
    super::jobs::visible_job(&state, &principal, &id).await?;
    let chunks = state
        .store
        .logs_after(&id, window.after, window.limit, LOG_PAGE_MAX_BYTES)
        .await?;
    let next_after = chunks.last().map_or(window.after, |chunk| chunk.seq);
    // Comparing with the highest stored seq is exact whichever limit (count
    // or bytes) ended the page; the lookup is one index probe.
    let more = state.store.last_log_seq(&id).await? > next_after;
    Ok(Json(LogPage {
        chunks,
        next_after,
        more,
    }))
}
