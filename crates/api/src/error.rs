//! The one error type of the HTTP layer.
//!
//! Every handler returns `Result<_, ApiError>`. Each variant says which
//! status it becomes; the body is always a [`jobs_core::wire::ApiError`].
//! Internal errors are logged with their whole cause chain and hidden from
//! clients, who only see `internal error`.

use axum::{
    Json,
    http::{HeaderValue, StatusCode, header},
    response::{IntoResponse, Response},
};
use jobs_core::{
    InvalidInput,
    wire::{ApiError as WireError, ApiErrorBody},
};
use jobs_store::StoreError;

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// 422: a field's value breaks a rule; the message names the limit.
    #[error("{0}")]
    InvalidInput(InvalidInput),
    /// 400: the body is not JSON at all, or a query string is malformed.
    #[error("{message}")]
    MalformedRequest {
        field: &'static str,
        message: String,
    },
    /// 413: the body is larger than the server accepts.
    #[error(
        "request body is too large: the limit is {limit_bytes} bytes ({} MiB)",
        limit_bytes / (1024 * 1024)
    )]
    BodyTooLarge { limit_bytes: usize },
    /// 413: an upload is larger than a limit; the message names it.
    #[error("{0}")]
    UploadTooLarge(InvalidInput),
    /// 404: the app, job or route does not exist.
    #[error("{0}")]
    NotFound(String),
    /// 405: the route exists but not with this method.
    #[error("{0}")]
    MethodNotAllowed(String),
    /// 409: the request clashes with the current state (app exists, app busy).
    #[error("{0}")]
    Conflict(String),
    /// 401: the token is missing or wrong.
    #[error("{0}")]
    Unauthorized(&'static str),
    /// 403: the token is valid but its role is too low for the route.
    #[error("{0}")]
    Forbidden(String),
    /// 408: the request body came slower than the minimum rate
    /// ([`crate::body_rate`]); the message names the settings.
    #[error("{0}")]
    RequestTimeout(String),
    /// 503: a dependency (the database) does not answer, or the server is at
    /// a limit; clients may retry.
    #[error("{0}")]
    Unavailable(String),
    /// 429: a quota is reached (`too_many_jobs`, `rate_limited`); the
    /// message names the limit. `retry_after` seconds, when known, also go
    /// in a `Retry-After` header.
    #[error("{message}")]
    TooManyRequests {
        code: &'static str,
        message: String,
        retry_after: Option<u64>,
    },
    /// 500: a bug or an unexpected failure; logged, never shown.
    #[error("internal error")]
    Internal(#[source] anyhow::Error),
}

/// The message clients get when they send no token at all.
pub const MISSING_TOKEN: &str = "missing API token: pass --token or set JOBS_TOKEN";
/// The message clients get when their token is not accepted.
pub const INVALID_TOKEN: &str = "invalid API token";

impl ApiError {
    pub fn status(&self) -> StatusCode {
        match self {
            ApiError::InvalidInput(_) => StatusCode::UNPROCESSABLE_ENTITY,
            ApiError::MalformedRequest { .. } => StatusCode::BAD_REQUEST,
            ApiError::BodyTooLarge { .. } | ApiError::UploadTooLarge(_) => {
                StatusCode::PAYLOAD_TOO_LARGE
            }
            ApiError::NotFound(_) => StatusCode::NOT_FOUND,
            ApiError::MethodNotAllowed(_) => StatusCode::METHOD_NOT_ALLOWED,
            ApiError::Conflict(_) => StatusCode::CONFLICT,
            ApiError::Unauthorized(_) => StatusCode::UNAUTHORIZED,
            ApiError::Forbidden(_) => StatusCode::FORBIDDEN,
            ApiError::RequestTimeout(_) => StatusCode::REQUEST_TIMEOUT,
            ApiError::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
            ApiError::TooManyRequests { .. } => StatusCode::TOO_MANY_REQUESTS,
            ApiError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    /// The stable machine code of the body. Every kind of bad input shares
    /// `invalid_input`; the status tells them apart.
    pub fn code(&self) -> &'static str {
        match self {
            ApiError::InvalidInput(_)
            | ApiError::MalformedRequest { .. }
            | ApiError::BodyTooLarge { .. }
            | ApiError::UploadTooLarge(_) => "invalid_input",
            ApiError::NotFound(_) => "not_found",
            ApiError::MethodNotAllowed(_) => "method_not_allowed",
            ApiError::Conflict(_) => "conflict",
            ApiError::Unauthorized(_) => "unauthorized",
            ApiError::Forbidden(_) => "forbidden",
            ApiError::RequestTimeout(_) => "request_timeout",
            ApiError::Unavailable(_) => "unavailable",
            ApiError::TooManyRequests { code, .. } => code,
            ApiError::Internal(_) => "internal",
        }
    }

    fn field(&self) -> Option<String> {
        match self {
            ApiError::InvalidInput(invalid) | ApiError::UploadTooLarge(invalid) => {
                Some(invalid.field.clone())
            }
            ApiError::MalformedRequest { field, .. } => Some((*field).to_owned()),
            ApiError::BodyTooLarge { .. } => Some("body".to_owned()),
            _ => None,
        }
    }

    fn message(&self) -> String {
        match self {
            // InvalidInput's own Display prefixes the field; the body carries
            // the field separately, so the message stays a plain sentence.
            ApiError::InvalidInput(invalid) | ApiError::UploadTooLarge(invalid) => {
                invalid.message.clone()
            }
            other => other.to_string(),
        }
    }

    pub fn body(&self) -> WireError {
        WireError {
            error: ApiErrorBody {
                code: self.code().to_owned(),
                message: self.message(),
                field: self.field(),
            },
        }
    }
}

impl From<InvalidInput> for ApiError {
    fn from(invalid: InvalidInput) -> Self {
        ApiError::InvalidInput(invalid)
    }
}

/// What a client is told when the database cannot write for lack of disk:
/// the one outage an operator must fix by hand, so it is named.
const DISK_FULL: &str = "the database is out of disk space: nothing was written; \
                         try again once an operator has freed space";

impl From<StoreError> for ApiError {
    fn from(error: StoreError) -> Self {
        match error {
            StoreError::AppNotFound(_)
            | StoreError::JobNotFound(_)
            | StoreError::GroupNotFound(_) => ApiError::NotFound(error.to_string()),
            StoreError::AppExists(_) | StoreError::AppBusy { .. } => {
                ApiError::Conflict(error.to_string())
            }
            StoreError::UploadNotFound(_) => {
                ApiError::InvalidInput(InvalidInput::new("uploads", error.to_string()))
            }
            // No Retry-After: when a job ends is unknown.
            StoreError::TooManyJobs { .. } | StoreError::TooManyTasks { .. } => {
                ApiError::TooManyRequests {
                    code: "too_many_jobs",
                    message: error.to_string(),
                    retry_after: None,
                }
            }
            StoreError::Database(_) if error.is_disk_full() => {
                ApiError::Unavailable(DISK_FULL.to_owned())
            }
            // A database that does not answer is also a 500 here: clients
            // retry every 5xx alike, and `/readyz` reports the outage itself.
            StoreError::Database(_) => {
                ApiError::Internal(anyhow::Error::new(error).context("querying the database"))
            }
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        if let ApiError::Internal(cause) = &self {
            // `{:#}` prints the whole context chain on one line.
            tracing::error!(error = format!("{cause:#}"), "internal error");
        }
        let status = self.status();
        let unauthorized = matches!(self, ApiError::Unauthorized(_));
        let retry_after = match &self {
            ApiError::TooManyRequests { retry_after, .. } => *retry_after,
            _ => None,
        };
        let mut response = (status, Json(self.body())).into_response();
        if let Some(seconds) = retry_after {
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(seconds));
        }
        if unauthorized {
            response
                .headers_mut()
                .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        }
        response
    }
}
