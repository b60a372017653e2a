//! `/v1/workers`: the worker registry, and draining a worker. Admin tokens
//! of every app only: workers serve every app, so a token bound to one app
//! sees none of them.
//!
//! A drain is a flag in the registry that the store checks in every claim:
//! from its commit on, the worker claims no new job (queued or
//! interactive), while the jobs it holds go on to their end. The worker
//! reads the flag with its heartbeat and stops consuming meanwhile.

use axum::{Json, extract::State};
use jobs_core::{
    Role,
    wire::{WorkerInfo, WorkerList},
};
use jobs_dispatch::Signal;

use crate::{
    attach::WORKER_FRESH, error::ApiError, extract::PathParam, principal::Principal,
    state::AppState,
};

/// `GET /v1/workers`: every worker in the registry.
#[utoipa::path(
    get,
    path = "/v1/workers",
    tag = "workers",
    responses(
        (status = 200, description = "Every worker heard from, most recent first, with its version, whether it drains and the jobs it runs.", body = WorkerList),
    )
)]
pub async fn list_workers(
    State(state): State<AppState>,
    principal: Principal,
) -> Result<Json<WorkerList>, ApiError> {
    require_fleet_admin(&principal, "listing workers")?;
    let workers = state.store.list_workers(WORKER_FRESH).await?;
    Ok(Json(WorkerList { workers }))
}

/// `POST /v1/workers/{id}/drain`: the worker takes no new job; its running
/// jobs go on. Repeating it keeps the first `draining_since`.
#[utoipa::path(
    post,
    path = "/v1/workers/{id}/drain",
    tag = "workers",
    params(("id" = String, Path, description = "The worker's id, as `GET /v1/workers` lists it.")),
    responses(
        (status = 200, description = "The worker, draining.", body = WorkerInfo),
        (status = 404, description = "`not_found`: no such worker in the registry.", body = jobs_core::wire::ApiError),
    )
)]
pub async fn drain_worker(
    State(state): State<AppState>,
    principal: Principal,
    PathParam(id): PathParam<String>,
) -> Result<Json<WorkerInfo>, ApiError> {
    set_draining(&state, &principal, &id, true).await
}

/// `DELETE /v1/workers/{id}/drain`: the worker takes jobs again. Repeating
/// it changes nothing.
#[utoipa::path(
    delete,
    path = "/v1/workers/{id}/drain",
    tag = "workers",
    params(("id" = String, Path, description = "The worker's id, as `GET /v1/workers` lists it.")),
    responses(
        (status = 200, description = "The worker, taking jobs again.", body = WorkerInfo),
        (status = 404, description = "`not_found`: no such worker in the registry.", body = jobs_core::wire::ApiError),
    )
)]
pub async fn undrain_worker(
    State(state): State<AppState>,
    principal: Principal,
    PathParam(id): PathParam<String>,
) -> Result<Json<WorkerInfo>, ApiError> {
    set_draining(&state, &principal, &id, false).await
}

async fn set_draining(
    state: &AppState,
    principal: &Principal,
    id: &str,
    draining: bool,
) -> Result<Json<WorkerInfo>, ApiError> {
    let action = if draining {
        "draining workers"
    } else {
        "undoing a worker's drain"
    };
    require_fleet_admin(principal, action)?;
    let worker = state
        .store
        .set_worker_draining(id, draining, WORKER_FRESH)
        .await?
        .ok_or_else(|| ApiError::NotFound(format!("worker {id:?} not found")))?;
    // The worker is told at once; its registry heartbeat reads the drain too.
    state
        .publisher
        .signal(Signal::Drain {
            worker_id: id.to_owned(),
        })
        .await;
    tracing::info!(
        worker_id = id,
        draining,
        running = worker.running_jobs.len(),
        "worker drain changed"
    );
    Ok(Json(worker))
}

/// An admin token of every app, or a 403 that says which is missing.
fn require_fleet_admin(principal: &Principal, action: &str) -> Result<(), ApiError> {
    principal.require(Role::Admin, action)?;
    if let Some(app) = &principal.app {
        return Err(ApiError::Forbidden(format!(
            "this token is bound to app {app:?}: {action} needs a token of every app"
        )));
    }
    Ok(())
}
