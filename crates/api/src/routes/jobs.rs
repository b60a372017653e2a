//! Jobs: create (then publish the wake-up), read, list and cancel.

use axum::{
    Extension, Json,
    extract::State,
    http::{StatusCode, header},
    response::{IntoResponse, Response},
};
use jobs_core::{
    InvalidInput, JobState, Role,
    wire::{Job, JobCreate, JobList, QueuePlace},
};
use jobs_dispatch::Signal;
use jobs_store::{AttachEndpoint, CancelOutcome};

use crate::{
    attach::WORKER_FRESH,
    auth,
    error::ApiError,
    extract::{JsonBody, PathParam, QueryParams},
    idempotency,
    principal::Principal,
    quotas::Quotas,
    relay,
    requests::{JobCreateRequest, JobListQuery},
    state::AppState,
};

/// `POST /v1/apps/{app}/jobs`: 201 with the new job, or 200 with the earlier
/// job when the idempotency key was seen before.
///
/// The row is committed first and the wake-up published after, with a
/// confirm. If the broker does not confirm, the job is still accepted: the
/// relay publishes it again, so a broker outage delays jobs and loses none.
///
/// 429 `too_many_jobs`, creating nothing, when the app already has its
/// limit of queued jobs ([`Quotas::max_queued_jobs_per_app`]).
#[utoipa::path(
    post,
    path = "/v1/apps/{app}/jobs",
    tag = "jobs",
    params(
        ("app" = String, Path, description = "The app's name."),
    ),
    request_body = jobs_core::wire::JobCreate,
    responses(
        (status = 201, description = "The new job, queued.", body = Job,
            headers(("Location" = String, description = "`/v1/jobs/{id}`, the new job."))),
        (status = 200, description = "The earlier job of a repeated `idempotency_key`.", body = Job),
        (status = 404, description = "`not_found`: no such app, or one outside the token's app.", body = jobs_core::wire::ApiError),
        (status = 409, description = "`conflict`: the `idempotency_key` was used for another request; the message names the key.", body = jobs_core::wire::ApiError),
        (status = 429, description = "`too_many_jobs`: the app has its limit of active jobs; or `rate_limited`: the token sent too many requests.", body = jobs_core::wire::ApiError),
    )
)]
pub async fn create_job(
    State(state): State<AppState>,
    Extension(quotas): Extension<Quotas>,
    principal: Principal,
    PathParam(app): PathParam<String>,
    JsonBody(request): JsonBody<JobCreateRequest>,
) -> Result<Response, ApiError> {
    principal.can_see_app(&app)?;
    principal.require(Role::Run, "creating jobs")?;
    let create = request.validate()?;
    check_uploads(&state, &app, &create).await?;
    crate::quotas::check_storage_quota(&state.store, &app, 0).await?;
    // An interactive run's worker dials back here with this secret.
    let attach = match create.interactive {
        Some(_) => Some(AttachEndpoint {
            url: state.attach.advertise_url().to_owned(),
            secret: auth::new_secret()?,
        }),
        None => None,
    };
    if let Some(key) = &create.idempotency_key
        && state
            .store
            .release_expired_idempotency_key(&app, key, state.idempotency_ttl)
            .await?
    {
        tracing::info!(app = %app, "an expired idempotency key was freed");
    }
    let (job, created) = state
        .store
        .create_job_within(
            &app,
            &create,
            Some(quotas.max_queued_jobs_per_app),
            attach.as_ref(),
            Some(&principal.name),
        )
        .await?;
    crate::metrics::record_job_id(&job.id);
    if !created {
        let key = create.idempotency_key.as_deref().unwrap_or_default();
        if !idempotency::same_request(&job, &create) {
            return Err(ApiError::Conflict(idempotency::conflict_message(key, &job)));
        }
        tracing::info!(job_id = %job.id, app = %app, "idempotent repeat; returning the earlier job");
        return Ok((StatusCode::OK, Json(job)).into_response());
    }
    state.metrics.jobs_created.inc();
    if job.interactive.is_some() {
        // Never published: a worker gets it directly.
        tracing::info!(job_id = %job.id, app = %app, size = %job.size, "interactive job waiting for a worker");
        state.attach.enqueue(&job.id);
    } else if let Err(error) = relay::publish_confirmed(&state.publisher, &job.id).await {
        state.metrics.publish_failures.inc();
        tracing::warn!(
            job_id = %job.id,
            error = format!("{error:#}"),
            "the wake-up was not confirmed; the relay will publish it again"
        );
    } else {
        state.published.record(&job.id);
        tracing::info!(job_id = %job.id, app = %app, size = %job.size, "job queued");
    }
    let location = format!("/v1/jobs/{}", job.id);
    Ok((
        StatusCode::CREATED,
        [(header::LOCATION, location)],
        Json(job),
    )
        .into_response())
}

/// Checks the uploads a job names before it is created: each is a free
/// upload of the app, its SHA-256 is the one the client computed while
/// sending, no two land on the same name, and together they fit the
/// per-job limit. The store re-checks that each is still free when it
/// takes them.
pub(crate) async fn check_uploads(
    state: &AppState,
    app: &str,
    create: &JobCreate,
) -> Result<(), ApiError> {
    if create.uploads.is_empty() {
        return Ok(());
    }
    let ids: Vec<String> = create.uploads.iter().map(|u| u.id.clone()).collect();
    let found = state.store.free_uploads(app, &ids).await?;
    let mut names = std::collections::BTreeSet::new();
    let mut total: u64 = 0;
    for wanted in &create.uploads {
        let upload = found
            .iter()
            .find(|upload| upload.id == wanted.id)
            .ok_or_else(|| jobs_store::StoreError::UploadNotFound(wanted.id.clone()))?;
        if !upload.sha256.eq_ignore_ascii_case(&wanted.sha256) {
            return Err(InvalidInput::new(
                "uploads",
                format!(
                    "upload {}: sha256 mismatch: the client sent {}, the API stored {}",
                    upload.name, wanted.sha256, upload.sha256
                ),
            )
            .into());
        }
        if !names.insert(upload.name.as_str()) {
            return Err(InvalidInput::new(
                "uploads",
                format!(
                    "two uploads are named {:?}: each lands in /tmp/uploads/<name>, so names must differ",
                    upload.name
                ),
            )
            .into());
        }
        total += u64::try_from(upload.size).unwrap_or(0);
    }
    let limit = state.objects.max_upload_total_bytes;
    if total > limit {
        return Err(ApiError::UploadTooLarge(InvalidInput::new(
            "total",
            format!(
                "uploads total {total} bytes: the limit is {} per job",
                jobs_core::spec::describe_bytes(limit)
            ),
        )));
    }
    Ok(())
}

/// `GET /v1/apps/{app}/jobs?state=S&limit=N`: newest first; 404 for an
/// unknown app rather than an empty list, so that a typo is noticed.
#[utoipa::path(
    get,
    path = "/v1/apps/{app}/jobs",
    tag = "jobs",
    params(
        ("app" = String, Path, description = "The app's name."),
        ("state" = Option<jobs_core::JobState>, Query, description = "Only jobs in this state."),
        ("limit" = Option<i64>, Query, description = "How many jobs at most: 1 to 1000, 50 by default."),
    ),
    responses(
        (status = 200, description = "The app's jobs, newest first.", body = JobList),
        (status = 404, description = "`not_found`: no such app, or one outside the token's app.", body = jobs_core::wire::ApiError),
        (status = 422, description = "`invalid_input`: an unknown `state` or a `limit` out of range; `field` names it.", body = jobs_core::wire::ApiError),
    )
)]
pub async fn list_jobs(
    State(state): State<AppState>,
    principal: Principal,
    PathParam(app): PathParam<String>,
    QueryParams(query): QueryParams<JobListQuery>,
) -> Result<Json<JobList>, ApiError> {
    principal.can_see_app(&app)?;
    principal.require(Role::Read, "listing jobs")?;
    let filter = query.validate()?;
    state.store.get_app(&app).await?;
    let mut jobs = state
        .store
        .list_jobs(&app, filter.state, filter.limit)
        .await?;
    // Each queued job's place, as `GET /v1/jobs/{id}` gives it, in one query.
    let queued: Vec<String> = jobs
        .iter()
        .filter(|job| job.state == JobState::Queued)
        .map(|job| job.id.clone())
        .collect();
    let mut places = state.store.queue_places(&queued, WORKER_FRESH).await?;
    for job in &mut jobs {
        job.queue = places
            .remove(&job.id)
            .map(|(position, capacity)| QueuePlace::new(position, capacity));
    }
    Ok(Json(JobList { jobs }))
}

/// `GET /v1/jobs/{id}`.
#[utoipa::path(
    get,
    path = "/v1/jobs/{id}",
    tag = "jobs",
    params(
        ("id" = String, Path, description = "The job's id."),
    ),
    responses(
        (status = 200, description = "The job.", body = Job),
        (status = 404, description = "`not_found`: no such job, or one outside the token's app.", body = jobs_core::wire::ApiError),
    )
)]
pub async fn get_job(
    State(state): State<AppState>,
    principal: Principal,
    PathParam(id): PathParam<String>,
) -> Result<Json<Job>, ApiError> {
    let mut job = visible_job(&state, &principal, &id).await?;
    if job.state == JobState::Queued {
        // It may have started since it was read: then there is no place.
        job.queue = state
            .store
            .queue_place(&job.id, WORKER_FRESH)
            .await?
            .map(|(position, capacity)| QueuePlace::new(position, capacity));
    }
    Ok(Json(job))
}

/// The job, if the token may see it; `job "ID" not found` otherwise, the
/// same answer as for an id that names no job.
pub async fn visible_job(
    state: &AppState,
    principal: &Principal,
    id: &str,
) -> Result<Job, ApiError> {
    let job = state.store.get_job(id).await?;
    principal.can_see_job(&job)?;
    Ok(job)
}

/// `POST /v1/jobs/{id}/cancel`: a queued job ends at once; a running one is
/// stopped by its worker; an ended one is returned unchanged.
#[utoipa::path(
    post,
    path = "/v1/jobs/{id}/cancel",
    tag = "jobs",
    params(
        ("id" = String, Path, description = "The job's id."),
    ),
    responses(
        (status = 200, description = "The job: ended at once if it was queued, stopping if it ran, unchanged if it had ended.", body = Job),
        (status = 404, description = "`not_found`: no such job, or one outside the token's app.", body = jobs_core::wire::ApiError),
    )
)]
pub async fn cancel_job(
    State(state): State<AppState>,
    principal: Principal,
    PathParam(id): PathParam<String>,
) -> Result<Json<Job>, ApiError> {
    // A job's app never changes, so checking it before the cancel is exact.
    visible_job(&state, &principal, &id).await?;
    principal.require(Role::Run, "canceling jobs")?;
    let job = match state.store.cancel_job(&id).await? {
        CancelOutcome::CanceledWhileQueued(job) => {
            tracing::info!(job_id = %id, "job canceled while queued");
            job
        }
        CancelOutcome::StopRequested(job) => {
            tracing::info!(job_id = %id, state = %job.state, "job stop requested");
            state
                .publisher
                .signal(Signal::Cancel { job_id: id.clone() })
                .await;
            job
        }
        CancelOutcome::AlreadyEnded(job) => job,
    };
    Ok(Json(job))
}
