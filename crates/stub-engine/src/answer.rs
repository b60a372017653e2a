//! The stub's error answer, in the shape of Docker's: `{"message": …}`.

use axum::{
    http::StatusCode,
    response::{IntoResponse, Response},
};
use serde_json::json;

pub fn error(status: StatusCode, message: impl Into<String>) -> Response {
    (status, axum::Json(json!({ "message": message.into() }))).into_response()
}
