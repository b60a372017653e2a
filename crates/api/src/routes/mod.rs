//! The route table of the API, exactly as `jobs_core::wire` documents it.
//!
//! - [`health`]: `/healthz` and `/readyz`, for probes, without a token;
//! - [`apps`]: creating, listing, showing, updating and deleting apps;
//! - [`jobs`]: creating, reading, listing and canceling jobs;
//! - [`logs`]: pages of stored logs;
//! - [`tokens`]: creating, listing and revoking API tokens;
//! - [`workers`]: the worker registry, and draining a worker;
//! - [`attach`]: the WebSocket upgrades of interactive runs;
//! - [`uploads`]: files streamed into the object store for a job to come;
//! - [`artifacts`]: a job's collected artifacts, streamed back.
//!
//! The log stream lives in [`crate::follow`] and `/metrics` in
//! [`crate::metrics`], the OpenAPI document in [`crate::openapi`], the web
//! console's pages in [`crate::console`].
//! Everything under `/v1` but the OpenAPI document needs the bearer token.

pub mod apps;
pub mod artifacts;
pub mod attach;
pub mod groups;
pub mod health;
pub mod jobs;
pub mod logs;
pub mod tokens;
pub mod uploads;
pub mod workers;

use axum::{
    Extension, Router,
    extract::{DefaultBodyLimit, OriginalUri},
    http::Method,
    middleware,
    routing::{delete, get, post},
};

use std::sync::Arc;

use crate::{
    auth, auth_failures::AuthFailures, body_rate, console, error::ApiError,
    extract::MAX_BODY_BYTES, follow, metrics, openapi, quotas::Quotas, rate_limit::RequestLimiter,
    state::AppState,
};

/// Builds the whole router with the default quotas; the server itself uses
/// [`router_with`] and the quotas it read at start.
pub fn router(state: AppState) -> Router {
    router_with(state, Quotas::default())
}

/// [`router`] with given quotas.
pub fn router_with(state: AppState, quotas: Quotas) -> Router {
    let v1 = Router::new()
        .route("/apps", post(apps::create_app).get(apps::list_apps))
        .route(
            "/apps/{app}",
            get(apps::get_app)
                .patch(apps::update_app)
                .delete(apps::delete_app),
        )
        .route(
            "/apps/{app}/jobs",
            post(jobs::create_job).get(jobs::list_jobs),
        )
        // Uploads stream into the object store: the JSON body limit does
        // not apply; the upload limits do (crate::objects).
        .route(
            "/apps/{app}/uploads",
            post(uploads::create_upload).layer(DefaultBodyLimit::disable()),
        )
        .route("/apps/{app}/groups", post(groups::create_group))
        .route("/groups/{id}", get(groups::get_group))
        .route("/groups/{id}/cancel", post(groups::cancel_group))
        .route("/jobs/{id}", get(jobs::get_job))
        .route("/jobs/{id}/artifacts/{index}", get(artifacts::get_artifact))
        .route("/jobs/{id}/cancel", post(jobs::cancel_job))
        .route("/jobs/{id}/logs", get(logs::log_page))
        .route("/jobs/{id}/logs/stream", get(follow::follow_logs))
        .route("/jobs/{id}/attach", get(attach::attach_client))
        .route(
            "/tokens",
            post(tokens::create_token).get(tokens::list_tokens),
        )
        .route("/tokens/{id}", delete(tokens::revoke_token))
        .route("/whoami", get(tokens::whoami))
        .route("/workers", get(workers::list_workers))
        .route(
            "/workers/{id}/drain",
            post(workers::drain_worker).delete(workers::undrain_worker),
        )
        // A route layer runs only for matched routes, so that an unknown
        // path is a 404 whatever the token.
        // It also puts the caller's `Principal` in the request, which every
        // handler checks (crate::principal).
        .route_layer(middleware::from_fn_with_state(
            auth::Authenticator {
                admin_token: state.admin_token.clone(),
                store: state.store.clone(),
                limiter: Arc::new(RequestLimiter::new(quotas.rate)),
                failures: Arc::new(AuthFailures::new(quotas.auth_failures_per_minute)),
                throttled: state.metrics.auth_failures_refused.clone(),
            },
            auth::require_token,
        ))
        // Added after the token layer, so outside it: the worker shows the
        // job's attach secret instead of an API token.
        .route("/jobs/{id}/attach/worker", get(attach::attach_worker))
        .method_not_allowed_fallback(method_not_allowed);
    Router::new()
        .route("/healthz", get(health::healthz))
        .route("/readyz", get(health::readyz))
        .route("/metrics", get(metrics::serve_metrics))
        // Outside the token check, like the probes: the document describes
        // the API, the same for every caller, and reveals no data.
        .route(openapi::OPENAPI_PATH, get(openapi::serve_openapi))
        .nest("/v1", v1)
        // The web console: pages and their embedded assets, without a
        // token (the pages hold no data; their requests carry the token).
        .merge(console::routes())
        .fallback(no_such_route)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
        .layer(Extension(quotas))
        .layer(middleware::from_fn_with_state(
            body_rate::BodyRateCheck {
                rate: quotas.body_rate,
                cut: state
                    .metrics
                    .connections
                    .closed
                    .with_label_values(&[crate::connections::CloseReason::BodyTooSlow.as_str()]),
            },
            body_rate::enforce_min_body_rate,
        ))
        .layer(middleware::from_fn_with_state(
            state.clone(),
            metrics::track_requests,
        ))
        .with_state(state)
}

async fn no_such_route(OriginalUri(uri): OriginalUri, method: Method) -> ApiError {
    ApiError::NotFound(format!("no route for {method} {}", uri.path()))
}

/// Inside `/v1` the request's URI has the prefix stripped; `OriginalUri`
/// keeps the path the client sent.
async fn method_not_allowed(OriginalUri(uri): OriginalUri, method: Method) -> ApiError {
    ApiError::MethodNotAllowed(format!("method {method} is not allowed on {}", uri.path()))
}
