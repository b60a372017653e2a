//! Uploads: a file's bytes streamed into the object store before the job
//! that takes it is created.

use axum::{
    Json,
    body::Body,
    extract::State,
    http::{HeaderMap, StatusCode, header},
    response::{IntoResponse, Response},
};
use jobs_blobs::{PutChecks, PutError, upload_key};
use jobs_core::{InvalidInput, Role, spec::describe_bytes, wire::Upload};

use crate::{
    error::ApiError,
    extract::{PathParam, QueryParams},
    principal::Principal,
    requests::{UploadQuery, UploadRequest},
    state::AppState,
};

/// `POST /v1/apps/{app}/uploads?name=N&size=BYTES&total=BYTES&sha256=HEX`:
/// streams the body into the object store and answers `201` with the
/// stored [`Upload`]; with `dry_run=true`, checks and answers `204`.
///
/// The declared `size` (or `Content-Length`) and `total` are checked
/// against the limits before a byte is stored; the bytes are counted as
/// they stream whatever was declared, and the upload is aborted, storing
/// nothing, at the first byte over the limit.
#[utoipa::path(
    post,
    path = "/v1/apps/{app}/uploads",
    tag = "uploads",
    params(
        ("app" = String, Path, description = "The app's name."),
        ("name" = String, Query, description = "The file name in /tmp/uploads: no separator, not `.` or `..`."),
        ("size" = Option<u64>, Query, description = "The file's length in bytes, checked before anything is stored."),
        ("total" = Option<u64>, Query, description = "The length of all the uploads of the job to come, checked against the per-job limit."),
        ("sha256" = Option<String>, Query, description = "The file's SHA-256 (hex); the upload is refused, storing nothing, if the bytes differ."),
        ("dry_run" = Option<bool>, Query, description = "`true`: check the name, the sizes, the app and the token, store nothing, answer 204."),
    ),
    request_body(content = Vec<u8>, content_type = "application/octet-stream", description = "The file's bytes."),
    responses(
        (status = 201, description = "The stored upload.", body = Upload),
        (status = 204, description = "`dry_run`: the upload would be accepted."),
        (status = 404, description = "`not_found`: no such app, or one outside the token's app.", body = jobs_core::wire::ApiError),
        (status = 413, description = "`invalid_input`: the file (`size`) or the job's uploads (`total`) are over a limit.", body = jobs_core::wire::ApiError),
        (status = 422, description = "`invalid_input`: a bad name, size or sha256, or a SHA-256 mismatch.", body = jobs_core::wire::ApiError),
    )
)]
pub async fn create_upload(
    State(state): State<AppState>,
    principal: Principal,
    PathParam(app): PathParam<String>,
    QueryParams(query): QueryParams<UploadQuery>,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    principal.can_see_app(&app)?;
    principal.require(Role::Run, "uploading files")?;
    let request = query.validate()?;
    let settings = &state.objects;
    let declared = request.size.or_else(|| content_length(&headers));
    check_limits(&request, declared, settings)?;
    crate::quotas::check_storage_quota(&state.store, &app, declared.unwrap_or(0)).await?;
    if request.dry_run {
        return Ok(StatusCode::NO_CONTENT.into_response());
    }

    let id = jobs_store::new_upload_id();
    let key = upload_key(&id);
    let checks = PutChecks {
        max_bytes: Some(settings.max_upload_bytes),
        expected_sha256: request.sha256.clone(),
    };
    let stored = settings
        .blobs
        .put_stream(&key, body.into_data_stream(), &checks)
        .await
        .map_err(|error| put_error(&request.name, error))?;
    let upload = Upload {
        id,
        name: request.name.clone(),
        size: i64::try_from(stored.size).unwrap_or(i64::MAX),
        sha256: stored.sha256,
    };
    let recorded = match declared {
        Some(declared) if declared != stored.size => {
            Err(ApiError::InvalidInput(InvalidInput::new(
                "size",
                format!(
                    "upload {} declared {declared} bytes but {} came",
                    request.name, stored.size
                ),
            )))
        }
        _ => state
            .store
            .create_upload(&app, &upload)
            .await
            .map_err(ApiError::from),
    };
    if let Err(error) = recorded {
        // Nothing names the object: delete it now rather than leave it.
        if let Err(delete) = settings.blobs.delete(&key).await {
            tracing::warn!(key, error = %delete, "deleting an unrecorded upload failed");
        }
        return Err(error);
    }
    state.metrics.upload_bytes.inc_by(stored.size);
    tracing::info!(upload_id = %upload.id, app = %app, size = upload.size, "upload stored");
    let location = format!("/v1/apps/{app}/uploads/{}", upload.id);
    Ok((
        StatusCode::CREATED,
        [(header::LOCATION, location)],
        Json(upload),
    )
        .into_response())
}

fn content_length(headers: &HeaderMap) -> Option<u64> {
    headers
        .get(header::CONTENT_LENGTH)?
        .to_str()
        .ok()?
        .parse()
        .ok()
}

fn check_limits(
    request: &UploadRequest,
    declared: Option<u64>,
    settings: &crate::objects::ObjectSettings,
) -> Result<(), ApiError> {
    if let Some(size) = declared.filter(|size| *size > settings.max_upload_bytes) {
        return Err(ApiError::UploadTooLarge(InvalidInput::new(
            "size",
            format!(
                "upload {} is {size} bytes: the limit is {} per file",
                request.name,
                describe_bytes(settings.max_upload_bytes)
            ),
        )));
    }
    if let Some(total) = request
        .total
        .filter(|total| *total > settings.max_upload_total_bytes)
    {
        return Err(ApiError::UploadTooLarge(InvalidInput::new(
            "total",
            format!(
                "uploads total {total} bytes: the limit is {} per job",
                describe_bytes(settings.max_upload_total_bytes)
            ),
        )));
    }
    Ok(())
}

fn put_error(name: &str, error: PutError) -> ApiError {
    match error {
        PutError::TooLarge { limit } => ApiError::UploadTooLarge(InvalidInput::new(
            "size",
            format!(
                "upload {name} is more than {limit} bytes: the limit is {} per file",
                describe_bytes(limit)
            ),
        )),
        PutError::Sha256Mismatch { expected, actual } => ApiError::InvalidInput(InvalidInput::new(
            "sha256",
            format!(
                "upload {name}: sha256 mismatch: expected {expected}, the bytes hash to {actual}"
            ),
        )),
        PutError::Source(why) => ApiError::MalformedRequest {
            field: "body",
            message: format!("upload {name}: reading the request body failed: {why}"),
        },
        PutError::Store(error) => {
            ApiError::Internal(anyhow::Error::new(error).context("storing an upload"))
        }
    }
}
