//! Request extractors whose failures are [`ApiError`]s.
//!
//! axum's own `Json` and `Query` answer with plain-text bodies. These
//! wrappers (and [`PathParam`]) answer with the API's JSON error body instead, name the field at
//! fault, and keep axum's statuses: 400 for text that is not JSON, 422 for
//! JSON of the wrong shape, 413 for a body over the limit.

use axum::{
    body::Bytes,
    extract::{FromRequest, FromRequestParts, Request, rejection::BytesRejection},
    http::{StatusCode, request::Parts},
};
use jobs_core::text;
use serde::de::DeserializeOwned;

use crate::error::ApiError;

/// The largest request body the API reads. Job requests are small: the
/// command is at most 64 KiB and the env at most 256 KiB.
pub const MAX_BODY_BYTES: usize = 1024 * 1024;

/// A JSON request body. Unlike axum's `Json`, it does not insist on a
/// `Content-Type` header, so that a bare `curl -d` works.
pub struct JsonBody<T>(pub T);

impl<T, S> FromRequest<S> for JsonBody<T>
where
    T: DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request(request: Request, state: &S) -> Result<Self, Self::Rejection> {
        let bytes = Bytes::from_request(request, state)
            .await
            .map_err(body_rejection)?;
        parse_json(&bytes).map(JsonBody)
    }
}

fn body_rejection(rejection: BytesRejection) -> ApiError {
    if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE {
        return ApiError::BodyTooLarge {
            limit_bytes: MAX_BODY_BYTES,
        };
    }
    ApiError::MalformedRequest {
        field: "body",
        message: format!("request body could not be read: {}", rejection.body_text()),
    }
}

/// Parses a JSON body, naming the JSON path of a value of the wrong shape.
pub fn parse_json<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Err(ApiError::MalformedRequest {
            field: "body",
            message: "request body is empty: expected a JSON object".to_owned(),
        });
    }
    let mut deserializer = serde_json::Deserializer::from_slice(bytes);
    let value: T = serde_path_to_error::deserialize(&mut deserializer).map_err(|error| {
        let path = error.path().to_string();
        let inner = error.into_inner();
        json_error(&path, &inner)
    })?;
    // Trailing garbage after the value is a syntax error, as in axum.
    deserializer
        .end()
        .map_err(|error| json_error(".", &error))?;
    Ok(value)
}

fn json_error(path: &str, error: &serde_json::Error) -> ApiError {
    use serde_json::error::Category;
    match error.classify() {
        Category::Data => {
            let field = data_error_field(path, &error.to_string());
            ApiError::InvalidInput(jobs_core::InvalidInput::new(
                field.clone(),
                format!("request field {field:?} is invalid: {error}"),
            ))
        }
        Category::Syntax | Category::Eof | Category::Io => ApiError::MalformedRequest {
            field: "body",
            message: format!("request body is not valid JSON: {error}"),
        },
    }
}

/// The field a data error is about. serde_path_to_error writes "." for the
/// top level, where the only such error is a missing field, which serde names
/// in its message.
fn data_error_field(path: &str, message: &str) -> String {
    if path != "." && !path.is_empty() {
        return path.to_owned();
    }
    message
        .strip_prefix("missing field `")
        .and_then(|rest| rest.split_once('`'))
        .map_or_else(|| "body".to_owned(), |(field, _)| field.to_owned())
}

/// A query string, decoded into `T`. Query structs use `Option<String>`
/// fields and check them by hand, so that a bad value gets a message that
/// names the limit; this extractor only fails on a malformed query string.
pub struct QueryParams<T>(pub T);

impl<T, S> FromRequestParts<S> for QueryParams<T>
where
    T: DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        axum::extract::Query::<T>::from_request_parts(parts, state)
            .await
            .map(|axum::extract::Query(value)| QueryParams(value))
            .map_err(|rejection| ApiError::MalformedRequest {
                field: "query",
                message: format!("query string is malformed: {}", rejection.body_text()),
            })
    }
}

/// A path parameter, such as `{id}` or `{app}`. It fails when the
/// percent-decoded segment is not UTF-8, or holds a control or
/// bidirectional formatting character, which no name or id has (and which
/// PostgreSQL's `text` refuses, as a NUL).
pub struct PathParam<T>(pub T);

impl<T, S> FromRequestParts<S> for PathParam<T>
where
    T: DeserializeOwned + Send,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        let malformed = |message: String| ApiError::MalformedRequest {
            field: "path",
            message,
        };
        let raw = axum::extract::RawPathParams::from_request_parts(parts, state)
            .await
            .map_err(|rejection| {
                malformed(format!("path is malformed: {}", rejection.body_text()))
            })?;
        for (name, value) in &raw {
            if let Some(c) = value.chars().find(|c| text::is_forbidden_in_line(*c)) {
                return Err(malformed(format!(
                    "path is malformed: {{{name}}} contains {}",
                    text::describe_forbidden(c)
                )));
            }
        }
        axum::extract::Path::<T>::from_request_parts(parts, state)
            .await
            .map(|axum::extract::Path(value)| PathParam(value))
            .map_err(|rejection| malformed(format!("path is malformed: {}", rejection.body_text())))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::StatusCode;

    #[derive(Debug, serde::Deserialize)]
    #[allow(dead_code)]
    struct Body {
        command: Vec<String>,
    }

    #[test]
    fn not_json_is_a_400() {
        let error = parse_json::<Body>(b"{nope").unwrap_err();
        assert_eq!(error.status(), StatusCode::BAD_REQUEST);
        assert!(error.to_string().contains("not valid JSON"), "{error}");
    }

    #[test]
    fn a_wrong_shape_is_a_422_naming_the_field() {
        let error = parse_json::<Body>(br#"{"command": "ls"}"#).unwrap_err();
        assert_eq!(error.status(), StatusCode::UNPROCESSABLE_ENTITY);
        let body = error.body().error;
        assert_eq!(body.field.as_deref(), Some("command"));
        assert!(
            body.message.contains("expected a sequence"),
            "{}",
            body.message
        );

        let error = parse_json::<Body>(b"{}").unwrap_err();
        assert_eq!(error.body().error.field.as_deref(), Some("command"));
        assert!(
            error.to_string().contains("missing field `command`"),
            "{error}"
        );

        let error = parse_json::<Body>(b"5").unwrap_err();
        assert_eq!(error.body().error.field.as_deref(), Some("body"), "{error}");
    }

    #[test]
    fn an_empty_body_says_so() {
        let error = parse_json::<Body>(b" \n").unwrap_err();
        assert_eq!(error.status(), StatusCode::BAD_REQUEST);
        assert_eq!(
            error.to_string(),
            "request body is empty: expected a JSON object"
        );
    }

    #[test]
    fn trailing_bytes_are_rejected() {
        let error = parse_json::<Body>(br#"{"command": []} x"#).unwrap_err();
        assert_eq!(error.status(), StatusCode::BAD_REQUEST);
    }
}
