//! `/v1/apps...`: create, list, show, update and delete apps.

use axum::{Json, extract::State, http::StatusCode};
use jobs_core::wire::{App, AppList};

use crate::{
    error::ApiError,
    extract::{JsonBody, PathParam},
    requests::{AppCreateRequest, AppUpdateRequest},
    state::AppState,
};

/// `POST /v1/apps`: 201 with the new app, 409 when the name is taken.
pub async fn create_app(
    State(state): State<AppState>,
    JsonBody(request): JsonBody<AppCreateRequest>,
) -> Result<(StatusCode, Json<App>), ApiError> {
    let create = request.validate()?;
    let app = state.store.create_app(&create).await?;
    tracing::info!(app = %app.name, image = %app.image, "app created");
    Ok((StatusCode::CREATED, Json(app)))
}

/// `GET /v1/apps`: every app, by name.
pub async fn list_apps(State(state): State<AppState>) -> Result<Json<AppList>, ApiError> {
    let apps = state.store.list_apps().await?;
    Ok(Json(AppList { apps }))
}

/// `GET /v1/apps/{app}`.
pub async fn get_app(
    State(state): State<AppState>,
    PathParam(name): PathParam<String>,
) -> Result<Json<App>, ApiError> {
    Ok(Json(state.store.get_app(&name).await?))
}

/// `PATCH /v1/apps/{app}`: absent fields stay as they are.
pub async fn update_app(
    State(state): State<AppState>,
    PathParam(name): PathParam<String>,
    JsonBody(request): JsonBody<AppUpdateRequest>,
) -> Result<Json<App>, ApiError> {
    let update = request.validate()?;
    let app = state.store.update_app(&name, &update).await?;
    tracing::info!(app = %app.name, "app updated");
    Ok(Json(app))
}

/// `DELETE /v1/apps/{app}`: 204, or 409 while the app has active jobs.
pub async fn delete_app(
    State(state): State<AppState>,
    PathParam(name): PathParam<String>,
) -> Result<StatusCode, ApiError> {
    state.store.delete_app(&name).await?;
    tracing::info!(app = %name, "app deleted");
    Ok(StatusCode::NO_CONTENT)
}
