//! `GET /v1/openapi.json`: the OpenAPI 3.1 document of the API.
//!
//! The document is built by `utoipa` from the `#[utoipa::path]` attribute of
//! each handler and the `ToSchema` of the wire types (`jobs_core`'s
//! `openapi` feature). [`ApiDoc`] lists the handlers; [`CommonResponses`]
//! then adds what every route under `/v1` shares, so that each handler's
//! attribute names only its own answers:
//! - the bearer security requirement;
//! - 401, 403, 429 and 500, each an [`WireError`] body;
//! - 400 on a route with parameters or a body, and 413 and 422 on a route
//!   with a body.
//!
//! The route needs no token, like `/healthz`: it describes the API, the
//! same for every caller, and reveals no data.

use std::sync::LazyLock;

use axum::{
    http::header,
    response::{IntoResponse, Response},
};
use jobs_core::{
    JobState, Role, Size,
    hardening::Hardening,
    scheduling::Priority,
    wire::{
        ApiError as WireError, ApiErrorBody, App, AppCreate, AppList, AppUpdate, Artifact, Caller,
        Group, GroupCreate, GroupTask, Job, JobCreate, JobList, LogChunk, LogPage, LogStream,
        QueuePlace, TokenCreate, TokenCreated, TokenInfo, TokenList, Upload, UploadRef, WorkerInfo,
        WorkerList,
    },
};
use utoipa::{
    Modify, OpenApi,
    openapi::{
        ContentBuilder, Ref, RefOr, Response as OpenApiResponse, ResponseBuilder,
        path::Operation,
        security::{HttpAuthScheme, HttpBuilder, SecurityRequirement, SecurityScheme},
    },
};

use crate::{follow, metrics, routes};

/// The name of the bearer security scheme in the document.
pub const BEARER_SCHEME: &str = "bearer";

#[derive(OpenApi)]
#[openapi(
    info(
        title = "jobs",
        description = "The HTTP API of jobs, a self-hosted `heroku run`: apps, one-off jobs \
            in containers, their logs and API tokens. Every route under `/v1` but this \
            document needs `Authorization: Bearer TOKEN`. Every error is an `ApiError` \
            body whose `code` is stable; a method a route does not have is a 405 \
            `method_not_allowed`, an unknown path a 404 `not_found`."
    ),
    paths(
        routes::health::healthz,
        routes::health::readyz,
        metrics::serve_metrics,
        serve_openapi,
        routes::apps::create_app,
        routes::apps::list_apps,
        routes::apps::get_app,
        routes::apps::update_app,
        routes::apps::delete_app,
        routes::jobs::create_job,
        routes::jobs::list_jobs,
        routes::jobs::get_job,
        routes::jobs::cancel_job,
        routes::groups::create_group,
        routes::groups::get_group,
        routes::groups::cancel_group,
        routes::uploads::create_upload,
        routes::artifacts::get_artifact,
        routes::logs::log_page,
        follow::follow_logs,
        routes::attach::attach_client,
        routes::attach::attach_worker,
        routes::tokens::create_token,
        routes::tokens::list_tokens,
        routes::tokens::revoke_token,
        routes::tokens::whoami,
        routes::workers::list_workers,
        routes::workers::drain_worker,
        routes::workers::undrain_worker,
    ),
    components(schemas(
        App, AppCreate, AppUpdate, AppList, Hardening, Size, Priority, Job, JobCreate, JobList,
        Group, GroupCreate, GroupTask,
        JobState,
        LogChunk, LogStream, LogPage, Role, TokenCreate, TokenCreated, TokenInfo, TokenList,
        WireError, ApiErrorBody, Upload, UploadRef, Artifact, QueuePlace, Caller, WorkerInfo,
        WorkerList,
    )),
    modifiers(&CommonResponses),
    tags(
        (name = "health", description = "Probes and metrics, without a token."),
        (name = "apps", description = "Apps: an image, config vars, a size and a timeout."),
        (name = "jobs", description = "One-off jobs of an app."),
        (name = "uploads", description = "Files streamed into the object store for a job to come."),
        (name = "logs", description = "A job's output: stored pages and a live stream."),
        (name = "tokens", description = "API tokens, their roles and their apps."),
        (name = "workers", description = "The workers heard from, and draining one."),
        (name = "meta", description = "This document."),
    )
)]
pub struct ApiDoc;

/// Adds the security scheme, and the answers every `/v1` route shares.
struct CommonResponses;

impl Modify for CommonResponses {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            BEARER_SCHEME,
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .description(Some(
                        "`Authorization: Bearer TOKEN`: the admin token of the server, or \
                         a token made with `POST /v1/tokens`.",
                    ))
                    .build(),
            ),
        );
        for (path, item) in openapi.paths.paths.iter_mut() {
            if !path.starts_with("/v1/") || path == OPENAPI_PATH {
                continue;
            }
            let operations = [
                &mut item.get,
                &mut item.post,
                &mut item.put,
                &mut item.patch,
                &mut item.delete,
            ];
            for operation in operations.into_iter().flatten() {
                add_common(operation);
            }
        }
    }
}

fn add_common(operation: &mut Operation) {
    operation.security = Some(vec![SecurityRequirement::new(
        BEARER_SCHEME,
        Vec::<String>::new(),
    )]);
    let has_body = operation.request_body.is_some();
    let has_params = operation
        .parameters
        .as_ref()
        .is_some_and(|parameters| !parameters.is_empty());
    let mut common = vec![
        (
            "401",
            "`unauthorized`: the token is missing, wrong, expired or revoked.",
        ),
        (
            "403",
            "`forbidden`: the token's role is too low for this route.",
        ),
        (
            "429",
            "`rate_limited`: the token sent too many requests; `Retry-After` says when to try again.",
        ),
        (
            "500",
            "`internal`: an unexpected failure, logged by the server.",
        ),
    ];
    if has_body || has_params {
        common.push((
            "400",
            "`invalid_input`: a malformed request: a body that is not JSON, or a bad query string or path.",
        ));
    }
    if has_body {
        common.push((
            "413",
            "`invalid_input`: the body is larger than the server accepts.",
        ));
        common.push((
            "422",
            "`invalid_input`: a field's value breaks a rule; `field` names it.",
        ));
    }
    for (status, description) in common {
        operation
            .responses
            .responses
            .entry(status.to_owned())
            .or_insert_with(|| error_response(description));
    }
}

/// A response whose body is an [`WireError`].
fn error_response(description: &str) -> RefOr<OpenApiResponse> {
    RefOr::T(
        ResponseBuilder::new()
            .description(description)
            .content(
                "application/json",
                ContentBuilder::new()
                    .schema(Some(Ref::from_schema_name("ApiError")))
                    .build(),
            )
            .build(),
    )
}

/// The path of the document itself.
pub const OPENAPI_PATH: &str = "/v1/openapi.json";

/// The document as JSON, built once.
static DOCUMENT: LazyLock<String> = LazyLock::new(|| {
    ApiDoc::openapi()
        .to_json()
        .expect("the OpenAPI document serializes to JSON")
});

/// The OpenAPI document as JSON text.
pub fn document() -> &'static str {
    &DOCUMENT
}

/// `GET /v1/openapi.json`, without a token: the document describes the
/// API, the same for every caller, and reveals no data.
#[utoipa::path(
    get,
    path = "/v1/openapi.json",
    tag = "meta",
    responses(
        (status = 200, description = "This OpenAPI 3.1 document.", content_type = "application/json", body = Object),
    )
)]
pub async fn serve_openapi() -> Response {
    ([(header::CONTENT_TYPE, "application/json")], document()).into_response()
}
