//! `/v1/apps...`: create, list, show, update and delete apps.
//!
//! Every answer holding an app goes through [`App::masked`]: secret config
//! values never leave the API, whatever the token's role.

use axum::{Json, extract::State, http::StatusCode};
use jobs_core::wire::{App, AppList};

use jobs_core::Role;

use crate::{
    error::ApiError,
    extract::{JsonBody, PathParam},
    objects,
    principal::Principal,
    requests::{AppCreateRequest, AppUpdateRequest},
    state::AppState,
};

/// `POST /v1/apps`: 201 with the new app, 409 when the name is taken.
/// Needs an admin token of every app: a token bound to one app can never
/// reach another, so it may not make one either.
#[utoipa::path(
    post,
    path = "/v1/apps",
    tag = "apps",
    request_body = jobs_core::wire::AppCreate,
    responses(
        (status = 201, description = "The new app, secret values masked.", body = jobs_core::wire::App),
        (status = 409, description = "`conflict`: an app of that name exists.", body = jobs_core::wire::ApiError),
    )
)]
pub async fn create_app(
    State(state): State<AppState>,
    principal: Principal,
    JsonBody(request): JsonBody<AppCreateRequest>,
) -> Result<(StatusCode, Json<App>), ApiError> {
    principal.require(Role::Admin, "creating apps")?;
    if let Some(bound) = &principal.app {
        return Err(ApiError::Forbidden(format!(
            "this token is bound to app {bound:?}: creating apps needs a token of every app"
        )));
    }
    let create = request.validate()?;
    let app = state.store.create_app(&create).await?;
    tracing::info!(app = %app.name, image = %app.image, "app created");
    Ok((StatusCode::CREATED, Json(app.masked())))
}

/// `GET /v1/apps`: every app the token may see, by name.
#[utoipa::path(
    get,
    path = "/v1/apps",
    tag = "apps",
    responses(
        (status = 200, description = "Every app the token may see, by name.", body = AppList),
    )
)]
pub async fn list_apps(
    State(state): State<AppState>,
    principal: Principal,
) -> Result<Json<AppList>, ApiError> {
    principal.require(Role::Read, "listing apps")?;
    let mut apps = state.store.list_apps().await?;
    apps.retain(|app| principal.sees_app(&app.name));
    let apps = apps.into_iter().map(App::masked).collect();
    Ok(Json(AppList { apps }))
}

/// `GET /v1/apps/{app}`.
#[utoipa::path(
    get,
    path = "/v1/apps/{app}",
    tag = "apps",
    params(
        ("app" = String, Path, description = "The app's name."),
    ),
    responses(
        (status = 200, description = "The app, secret values masked.", body = App),
        (status = 404, description = "`not_found`: no such app, or one outside the token's app.", body = jobs_core::wire::ApiError),
    )
)]
pub async fn get_app(
    State(state): State<AppState>,
    principal: Principal,
    PathParam(name): PathParam<String>,
) -> Result<Json<App>, ApiError> {
    principal.can_see_app(&name)?;
    principal.require(Role::Read, "reading apps")?;
    let mut app = state.store.get_app(&name).await?;
    app.storage_used_bytes = Some(state.store.storage_used(&name).await?);
    Ok(Json(app.masked()))
}

/// `PATCH /v1/apps/{app}`: absent fields stay as they are.
#[utoipa::path(
    patch,
    path = "/v1/apps/{app}",
    tag = "apps",
    params(
        ("app" = String, Path, description = "The app's name."),
    ),
    request_body = jobs_core::wire::AppUpdate,
    responses(
        (status = 200, description = "The updated app, secret values masked.", body = App),
        (status = 404, description = "`not_found`: no such app, or one outside the token's app.", body = jobs_core::wire::ApiError),
    )
)]
pub async fn update_app(
    State(state): State<AppState>,
    principal: Principal,
    PathParam(name): PathParam<String>,
    JsonBody(request): JsonBody<AppUpdateRequest>,
) -> Result<Json<App>, ApiError> {
    principal.can_see_app(&name)?;
    principal.require(Role::Admin, "updating apps")?;
    let update = request.validate()?;
    let app = state.store.update_app(&name, &update).await?;
    tracing::info!(app = %app.name, "app updated");
    Ok(Json(app.masked()))
}

/// `DELETE /v1/apps/{app}`: 204, or 409 while the app has active jobs.
#[utoipa::path(
    delete,
    path = "/v1/apps/{app}",
    tag = "apps",
    params(
        ("app" = String, Path, description = "The app's name."),
    ),
    responses(
        (status = 204, description = "The app is deleted."),
        (status = 404, description = "`not_found`: no such app, or one outside the token's app.", body = jobs_core::wire::ApiError),
        (status = 409, description = "`conflict`: the app has active jobs.", body = jobs_core::wire::ApiError),
    )
)]
pub async fn delete_app(
    State(state): State<AppState>,
    principal: Principal,
    PathParam(name): PathParam<String>,
) -> Result<StatusCode, ApiError> {
    principal.can_see_app(&name)?;
    principal.require(Role::Admin, "deleting apps")?;
    let deleted = state.store.delete_app(&name).await?;
    // The rows are gone; the objects of its jobs and uploads go with them.
    let objects =
        objects::delete_objects(&state.objects, &deleted.jobs, &deleted.free_uploads).await;
    tracing::info!(app = %name, jobs = deleted.jobs.len(), objects, "app deleted");
    Ok(StatusCode::NO_CONTENT)
}
