//! Artifacts: what a job's container left at its artifact paths, as tar
//! archives, streamed out of the object store.

use axum::{
    body::Body,
    extract::State,
    http::header,
    response::{IntoResponse, Response},
};
use jobs_blobs::artifact_key;
use jobs_core::Role;

use crate::{
    error::ApiError, extract::PathParam, principal::Principal, routes::jobs::visible_job,
    state::AppState,
};

/// `GET /v1/jobs/{id}/artifacts/{index}`: the `index`-th artifact of
/// `artifacts` in the job, as the tar archive Docker made of its path.
#[utoipa::path(
    get,
    path = "/v1/jobs/{id}/artifacts/{index}",
    tag = "jobs",
    params(
        ("id" = String, Path, description = "The job's id."),
        ("index" = usize, Path, description = "The artifact's position in the job's `artifacts`."),
    ),
    responses(
        (status = 200, description = "The artifact: a tar archive of its path.", content_type = "application/x-tar", body = Vec<u8>),
        (status = 404, description = "`not_found`: no such job (or one outside the token's app), or no such collected artifact.", body = jobs_core::wire::ApiError),
    )
)]
pub async fn get_artifact(
    State(state): State<AppState>,
    principal: Principal,
    PathParam((id, index)): PathParam<(String, String)>,
) -> Result<Response, ApiError> {
    let job = visible_job(&state, &principal, &id).await?;
    principal.require(Role::Read, "downloading artifacts")?;
    let not_found = || ApiError::NotFound(format!("job {id:?} has no artifact {index:?}"));
    let index: usize = index.parse().map_err(|_| not_found())?;
    let artifact = job.artifacts.get(index).ok_or_else(not_found)?;
    if let Some(error) = &artifact.error {
        return Err(ApiError::NotFound(format!(
            "artifact {} of job {id:?} was not collected: {error}",
            artifact.path
        )));
    }
    let blob = state
        .objects
        .blobs
        .get(&artifact_key(&id, index))
        .await
        .map_err(|error| match error {
            jobs_blobs::ObjectError::NotFound { .. } => not_found(),
            other => ApiError::Internal(anyhow::Error::new(other).context("reading an artifact")),
        })?;
    Ok((
        [
            (header::CONTENT_TYPE, "application/x-tar".to_owned()),
            (header::CONTENT_LENGTH, blob.size.to_string()),
        ],
        Body::from_stream(blob.chunks),
    )
        .into_response())
}
