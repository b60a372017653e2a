//! Groups (`jobs run --tasks N`): create every task at once, read the
//! group with where each task stands, and cancel them all.

use axum::{
    Extension, Json,
    extract::State,
    http::{StatusCode, header},
    response::{IntoResponse, Response},
};
use jobs_core::{
    Role,
    groups::task_env,
    wire::{Group, GroupCreate},
};
use jobs_dispatch::Signal;

use crate::{
    error::ApiError,
    extract::{JsonBody, PathParam},
    idempotency,
    principal::Principal,
    quotas::Quotas,
    relay,
    requests::JobCreateRequest,
    routes::jobs::check_uploads,
    state::AppState,
};

/// How many wake-ups a new group publishes at most: enough for the slots it
/// may take at once. The workers' own polls for free slots take the rest.
const GROUP_WAKE_UPS: usize = 64;

/// `POST /v1/apps/{app}/groups`: 201 with the new group and its queued
/// tasks, or 200 with the earlier group of a repeated idempotency key.
#[utoipa::path(
    post,
    path = "/v1/apps/{app}/groups",
    tag = "jobs",
    params(
        ("app" = String, Path, description = "The app's name."),
    ),
    request_body(content = jobs_core::wire::GroupCreate,
        description = "A job request with `tasks` (1 to `JOBS_MAX_TASKS_PER_GROUP`, 1,000 by default) and an optional `parallelism`. Each task sees `JOBS_TASK_INDEX` and `JOBS_TASK_COUNT`."),
    responses(
        (status = 201, description = "The new group; every task is queued.", body = Group,
            headers(("Location" = String, description = "`/v1/groups/{id}`, the new group."))),
        (status = 200, description = "The earlier group of a repeated `idempotency_key`.", body = Group),
        (status = 404, description = "`not_found`: no such app, or one outside the token's app.", body = jobs_core::wire::ApiError),
        (status = 409, description = "`conflict`: the `idempotency_key` was used for another request.", body = jobs_core::wire::ApiError),
        (status = 422, description = "`invalid_input`: `tasks` out of range, names the limit; or any field a job refuses.", body = jobs_core::wire::ApiError),
        (status = 429, description = "`too_many_jobs`: the tasks would take the app past its limit of queued jobs; nothing is created.", body = jobs_core::wire::ApiError),
    )
)]
pub async fn create_group(
    State(state): State<AppState>,
    Extension(quotas): Extension<Quotas>,
    principal: Principal,
    PathParam(app): PathParam<String>,
    JsonBody(request): JsonBody<JobCreateRequest>,
) -> Result<Response, ApiError> {
    principal.can_see_app(&app)?;
    principal.require(Role::Run, "creating jobs")?;
    let create = request.validate_group(quotas.max_tasks_per_group)?;
    check_uploads(&state, &app, &create.job).await?;
    crate::quotas::check_storage_quota(&state.store, &app, 0).await?;
    let (group, created) = state
        .store
        .create_group(
            &app,
            &create,
            Some(quotas.max_queued_jobs_per_app),
            Some(&principal.name),
        )
        .await?;
    if !created {
        let key = create.job.idempotency_key.as_deref().unwrap_or_default();
        if !same_group(&state, &group, &create).await? {
            return Err(ApiError::Conflict(format!(
                "idempotency key {key:?} was already used for another request (group {}): \
                 repeat it only with the same command, env, size, timeout, files, \
                 artifacts, tasks and parallelism, or use a new key",
                group.id
            )));
        }
        tracing::info!(group_id = %group.id, app = %app, "idempotent repeat; returning the earlier group");
        return Ok((StatusCode::OK, Json(group)).into_response());
    }
    state.metrics.jobs_created.inc_by(group.tasks.len() as u64);
    tracing::info!(group_id = %group.id, app = %app, tasks = group.tasks.len(), parallelism = ?group.parallelism, "group queued");
    wake_workers(&state, &group).await;
    let location = format!("/v1/groups/{}", group.id);
    Ok((
        StatusCode::CREATED,
        [(header::LOCATION, location)],
        Json(group),
    )
        .into_response())
}

/// Publishes a wake-up for as many tasks as may start at once, and records
/// every task published once they are all confirmed: a worker's claim
/// takes whichever job is next, whatever the wake-up names. When the broker
/// does not confirm, nothing is recorded and the relay publishes them all.
async fn wake_workers(state: &AppState, group: &Group) {
    let at_once = group
        .parallelism
        .map_or(group.tasks.len(), |parallelism| parallelism as usize)
        .min(group.tasks.len())
        .min(GROUP_WAKE_UPS);
    let publishes = group.tasks[..at_once]
        .iter()
        .map(|task| relay::publish_confirmed(&state.publisher, &task.job_id));
    let results = futures::future::join_all(publishes).await;
    if let Some(error) = results.into_iter().find_map(Result::err) {
        state.metrics.publish_failures.inc();
        tracing::warn!(
            group_id = %group.id,
            error = format!("{error:#}"),
            "a wake-up was not confirmed; the relay will publish the group's tasks again"
        );
        return;
    }
    for task in &group.tasks {
        state.published.record(&task.job_id);
    }
}

/// Whether an idempotent repeat asks for the group it names: its first
/// task is the same job request, and the counts match.
async fn same_group(
    state: &AppState,
    group: &Group,
    create: &GroupCreate,
) -> Result<bool, ApiError> {
    if group.tasks.len() != create.tasks as usize || group.parallelism != create.parallelism {
        return Ok(false);
    }
    let Some(first) = group.tasks.first() else {
        return Ok(false);
    };
    let job = state.store.get_job(&first.job_id).await?;
    let mut first_request = create.job.clone();
    first_request.env.extend(task_env(0, create.tasks));
    Ok(idempotency::same_request(&job, &first_request))
}

/// `GET /v1/groups/{id}`.
#[utoipa::path(
    get,
    path = "/v1/groups/{id}",
    tag = "jobs",
    params(
        ("id" = String, Path, description = "The group's id, `grp_…`."),
    ),
    responses(
        (status = 200, description = "The group, with every task by index.", body = Group),
        (status = 404, description = "`not_found`: no such group, or one outside the token's app.", body = jobs_core::wire::ApiError),
    )
)]
pub async fn get_group(
    State(state): State<AppState>,
    principal: Principal,
    PathParam(id): PathParam<String>,
) -> Result<Json<Group>, ApiError> {
    principal.require(Role::Read, "reading groups")?;
    Ok(Json(visible_group(&state, &principal, &id).await?))
}

/// The group, if the token may see its app; `group "ID" not found`
/// otherwise, the same answer as for an id that names no group.
async fn visible_group(
    state: &AppState,
    principal: &Principal,
    id: &str,
) -> Result<Group, ApiError> {
    let group = state.store.get_group(id).await?;
    principal.can_see_group(&group)?;
    Ok(group)
}

/// `POST /v1/groups/{id}/cancel`: queued tasks end at once, running ones
/// are stopped by their workers, ended ones stay as they are.
#[utoipa::path(
    post,
    path = "/v1/groups/{id}/cancel",
    tag = "jobs",
    params(
        ("id" = String, Path, description = "The group's id, `grp_…`."),
    ),
    responses(
        (status = 200, description = "The group after the cancel: queued tasks canceled, running ones stopping.", body = Group),
        (status = 404, description = "`not_found`: no such group, or one outside the token's app.", body = jobs_core::wire::ApiError),
    )
)]
pub async fn cancel_group(
    State(state): State<AppState>,
    principal: Principal,
    PathParam(id): PathParam<String>,
) -> Result<Json<Group>, ApiError> {
    // A group's app never changes, so checking it first is exact.
    visible_group(&state, &principal, &id).await?;
    principal.require(Role::Run, "canceling jobs")?;
    let (group, stopping) = state.store.cancel_group(&id).await?;
    tracing::info!(group_id = %id, stopping = stopping.len(), "group canceled");
    for job_id in stopping {
        state.publisher.signal(Signal::Cancel { job_id }).await;
    }
    Ok(Json(group))
}
