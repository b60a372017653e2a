//! Bearer-token authentication for everything under `/v1`.
//!
//! Today there is one token, the bootstrap admin token from the
//! configuration. It is compared in constant time, so that response timing
//! does not reveal how much of a guess was right.

use std::sync::Arc;

use axum::{
    extract::{Request, State},
    http::{HeaderMap, header},
    middleware::Next,
    response::Response,
};
use subtle::ConstantTimeEq;

use crate::{
    config::AdminToken,
    error::{ApiError, INVALID_TOKEN, MISSING_TOKEN},
};

/// Middleware: lets the request through only with `Authorization: Bearer
/// TOKEN` carrying the admin token.
pub async fn require_token(
    State(admin_token): State<Arc<AdminToken>>,
    request: Request,
    next: Next,
) -> Result<Response, ApiError> {
    check_token(request.headers(), &admin_token)?;
    Ok(next.run(request).await)
}

/// Checks the `Authorization` header against the admin token.
pub fn check_token(headers: &HeaderMap, admin_token: &AdminToken) -> Result<(), ApiError> {
    let Some(value) = headers.get(header::AUTHORIZATION) else {
        return Err(ApiError::Unauthorized(MISSING_TOKEN));
    };
    let presented = value
        .to_str()
        .ok()
        .and_then(bearer_token)
        .ok_or(ApiError::Unauthorized(INVALID_TOKEN))?;
    // `ct_eq` on slices of different lengths is false at once; that reveals
    // only the token's length, which is not secret enough to matter.
    if bool::from(presented.as_bytes().ct_eq(admin_token.as_bytes())) {
        Ok(())
    } else {
        Err(ApiError::Unauthorized(INVALID_TOKEN))
    }
}

/// The token of a `Bearer TOKEN` header value; the scheme is
/// case-insensitive, as HTTP says.
fn bearer_token(value: &str) -> Option<&str> {
    let (scheme, token) = value.trim().split_once(' ')?;
    let token = token.trim();
    (scheme.eq_ignore_ascii_case("bearer") && !token.is_empty()).then_some(token)
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::{
        Router,
        body::{Body, to_bytes},
        http::{Request as HttpRequest, StatusCode},
        middleware,
        routing::get,
    };
    use tower::ServiceExt;

    const TOKEN: &str = "0123456789abcdef-secret";

    fn router() -> Router {
        let token = Arc::new(TOKEN.parse::<AdminToken>().expect("long enough"));
        Router::new()
            .route("/v1/ping", get(|| async { "pong" }))
            .route_layer(middleware::from_fn_with_state(token, require_token))
    }

    async fn call(authorization: Option<&str>) -> (StatusCode, String) {
        let mut request = HttpRequest::get("/v1/ping");
        if let Some(value) = authorization {
            request = request.header(header::AUTHORIZATION, value);
        }
        let response = router()
            .oneshot(request.body(Body::empty()).expect("request builds"))
            .await
            .expect("router answers");
        let status = response.status();
        let body = to_bytes(response.into_body(), 1 << 20)
            .await
            .expect("body reads");
        (status, String::from_utf8_lossy(&body).into_owned())
    }

    #[tokio::test]
    async fn the_right_token_passes() {
        let (status, body) = call(Some(&format!("Bearer {TOKEN}"))).await;
        assert_eq!((status, body.as_str()), (StatusCode::OK, "pong"));
        let (status, _) = call(Some(&format!("bearer  {TOKEN} "))).await;
        assert_eq!(status, StatusCode::OK);
    }

    #[tokio::test]
    async fn a_missing_token_says_how_to_pass_one() {
        let (status, body) = call(None).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED);
        assert_eq!(
            body,
            r#"{"error":{"code":"unauthorized","message":"missing API token: pass --token or set JOBS_TOKEN"}}"#
        );
    }

    #[tokio::test]
    async fn a_wrong_token_is_refused() {
        for value in [
            "Bearer wrong",
            &format!("Bearer {TOKEN}x"),
            &format!("Basic {TOKEN}"),
            "Bearer",
        ] {
            let (status, body) = call(Some(value)).await;
            assert_eq!(status, StatusCode::UNAUTHORIZED, "{value}");
            assert_eq!(
                body, r#"{"error":{"code":"unauthorized","message":"invalid API token"}}"#,
                "{value}"
            );
        }
    }
}
