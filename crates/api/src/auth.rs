//! Bearer-token authentication for everything under `/v1`.
//!
//! Two kinds of token are accepted:
//! - the bootstrap admin token from the configuration, compared in constant
//!   time, so that response timing does not reveal how much of a guess was
//!   right; it is admin of every app;
//! - API tokens made with `POST /v1/tokens`: `jobs_` and 256 random bits in
//!   URL-safe base64. Only their SHA-256 is stored, and a request's token is
//!   looked up by that hash. Looking up a hash, not the secret, means the
//!   lookup's timing says nothing useful about the secret either.
//!
//! Browsers cannot set a header on a WebSocket, so a WebSocket upgrade may
//! carry the token as a subprotocol instead, as Kubernetes does:
//! `Sec-WebSocket-Protocol: jobs.attach.v1, base64url.bearer.jobs.B64` with
//! the token in unpadded URL-safe base64 ([`BEARER_SUBPROTOCOL_PREFIX`]).
//! Only an upgrade request is read that way, and never a URL, which ends
//! up in logs and histories. The server answers with the protocol's own
//! name ([`crate::routes::attach::ATTACH_SUBPROTOCOL`]), never the token.
//!
//! The answer is a [`Principal`] in the request's extensions. A missing
//! token and a refused one are 401s; a forged, an expired and a revoked
//! token all get the same message, so that a caller cannot tell which.
//!
//! Forgeries cost little: a token that is not the admin token and has not
//! the shape of an API token (the prefix and 43 characters of URL-safe
//! base64) is refused before any lookup, and an address that failed too
//! often gets 429 before anything is looked at ([`crate::auth_failures`]).

use std::sync::Arc;

use std::net::SocketAddr;

use axum::{
    extract::{ConnectInfo, Request, State},
    http::{HeaderMap, header},
    middleware::Next,
    response::Response,
};
use base64::Engine;
use jobs_store::Store;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use crate::{
    auth_failures::AuthFailures,
    config::AdminToken,
    error::{ApiError, INVALID_TOKEN, MISSING_TOKEN},
    principal::{Principal, TokenKey},
    rate_limit::RequestLimiter,
};

/// What every API token starts with, so that people and secret scanners
/// can recognise one.
pub const TOKEN_PREFIX: &str = "jobs_";
/// The subprotocol of a WebSocket upgrade that carries the bearer token,
/// followed by the token in unpadded URL-safe base64.
pub const BEARER_SUBPROTOCOL_PREFIX: &str = "base64url.bearer.jobs.";
/// The random bytes of a token: 256 bits.
const TOKEN_RANDOM_BYTES: usize = 32;
/// Their length in unpadded base64: 43 characters.
const TOKEN_RANDOM_CHARS: usize = TOKEN_RANDOM_BYTES.div_ceil(3) * 4 - 1;

/// What the middleware needs: the admin token, the store of API tokens,
/// and the request rate limit per token.
#[derive(Clone)]
pub struct Authenticator {
    pub admin_token: Arc<AdminToken>,
    pub store: Store,
    pub limiter: Arc<RequestLimiter>,
    /// Failed authentications per client address.
    pub failures: Arc<AuthFailures>,
    /// Counts the requests refused for their address's failures.
    pub throttled: prometheus::IntCounter,
}

/// Middleware: refuses an address that failed too often with a 429;
/// resolves `Authorization: Bearer TOKEN` to a [`Principal`], or refuses
/// the request with a 401 (counted against the address); then takes the
/// request from the token's rate limit, or refuses it with a 429.
pub async fn require_token(
    State(auth): State<Authenticator>,
    mut request: Request,
    next: Next,
) -> Result<Response, ApiError> {
    let address = request
        .extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map(|ConnectInfo(address)| address.ip());
    if let Some(address) = address {
        auth.failures
            .check(address)
            .inspect_err(|_| auth.throttled.inc())?;
    }
    let principal = match authenticate(request.headers(), &auth).await {
        Ok(principal) => principal,
        Err(ApiError::Unauthorized(message)) => {
            // A missing token is a mistake, not a guess, and costs nothing.
            if let Some(address) = address.filter(|_| message != MISSING_TOKEN) {
                auth.failures.failed(address);
            }
            return Err(ApiError::Unauthorized(message));
        }
        Err(error) => return Err(error),
    };
    // Authenticated, so the request holds a bearer token; its hash keys the
    // bucket without keeping the secret in memory.
    if let Ok(Some(token)) = presented_token(request.headers()) {
        let key = secret_hash(&token);
        auth.limiter.check(&key)?;
        request.extensions_mut().insert(TokenKey(key));
    }
    request.extensions_mut().insert(principal);
    Ok(next.run(request).await)
}

/// Who the `Authorization` header says the caller is.
pub async fn authenticate(
    headers: &HeaderMap,
    auth: &Authenticator,
) -> Result<Principal, ApiError> {
    let presented = presented_token(headers)?.ok_or(ApiError::Unauthorized(MISSING_TOKEN))?;
    let presented = presented.as_str();
    // `ct_eq` on slices of different lengths is false at once; that reveals
    // only the token's length, which is not secret enough to matter.
    if bool::from(presented.as_bytes().ct_eq(auth.admin_token.as_bytes())) {
        return Ok(Principal::bootstrap_admin());
    }
    // No token of another shape was ever made: no lookup for one.
    if !has_token_shape(presented) {
        return Err(ApiError::Unauthorized(INVALID_TOKEN));
    }
    // The database decides expiry by its own clock and sees revocations at
    // once: nothing is cached here, so both take effect on the next request.
    let token = auth
        .store
        .find_token_by_hash(&secret_hash(presented))
        .await?
        .ok_or(ApiError::Unauthorized(INVALID_TOKEN))?;
    Ok(Principal::of_token(token))
}

/// The token the request presents: the `Authorization` header's, or on a
/// WebSocket upgrade without that header, the bearer subprotocol's. `None`
/// when there is neither; a 401 when one is there but malformed.
pub(crate) fn presented_token(headers: &HeaderMap) -> Result<Option<String>, ApiError> {
    if let Some(value) = headers.get(header::AUTHORIZATION) {
        return value
            .to_str()
            .ok()
            .and_then(bearer_token)
            .map(|token| Some(token.to_owned()))
            .ok_or(ApiError::Unauthorized(INVALID_TOKEN));
    }
    let upgrade = headers
        .get(header::UPGRADE)
        .and_then(|value| value.to_str().ok())
        .is_some_and(|value| value.eq_ignore_ascii_case("websocket"));
    if !upgrade {
        return Ok(None);
    }
    let offered = headers
        .get_all(header::SEC_WEBSOCKET_PROTOCOL)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(','))
        .map(str::trim);
    for protocol in offered {
        let Some(encoded) = protocol.strip_prefix(BEARER_SUBPROTOCOL_PREFIX) else {
            continue;
        };
        let token = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(encoded)
            .ok()
            .and_then(|bytes| String::from_utf8(bytes).ok())
            .filter(|token| !token.is_empty())
            .ok_or(ApiError::Unauthorized(INVALID_TOKEN))?;
        return Ok(Some(token));
    }
    Ok(None)
}

/// A new token secret: the prefix and 256 bits from the operating system.
pub fn new_secret() -> Result<String, ApiError> {
    let mut random = [0u8; TOKEN_RANDOM_BYTES];
    getrandom::fill(&mut random).map_err(|error| {
        ApiError::Internal(anyhow::anyhow!("reading random bytes for a token: {error}"))
    })?;
    Ok(format!(
        "{TOKEN_PREFIX}{}",
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(random)
    ))
}

/// Whether `token` could be an API token: [`TOKEN_PREFIX`] and 43
/// characters of unpadded URL-safe base64, as [`new_secret`] makes them.
pub fn has_token_shape(token: &str) -> bool {
    token.strip_prefix(TOKEN_PREFIX).is_some_and(|random| {
        random.len() == TOKEN_RANDOM_CHARS
            && random
                .bytes()
                .all(|byte| byte.is_ascii_alphanumeric() || byte == b'-' || byte == b'_')
    })
}

/// What the store keeps of a secret. SHA-256 without salt or stretching is
/// enough for 256 random bits: there is no dictionary to try, and a slow KDF
/// would cost every request for no gain.
pub fn secret_hash(secret: &str) -> Vec<u8> {
    Sha256::digest(secret.as_bytes()).to_vec()
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
        Extension, Router,
        body::{Body, to_bytes},
        http::{Request as HttpRequest, StatusCode},
        middleware,
        routing::get,
    };
    use jobs_core::Role;
    use jobs_store::{NewToken, SqliteStore};
    use tower::ServiceExt;

    use crate::rate_limit::RateLimit;

    const TOKEN: &str = "0123456789abcdef-secret";

    async fn authenticator() -> Authenticator {
        authenticator_with(RateLimit::default()).await
    }

    async fn authenticator_with(rate: RateLimit) -> Authenticator {
        let store = SqliteStore::connect("sqlite::memory:")
            .await
            .expect("in-memory store");
        Authenticator {
            admin_token: Arc::new(TOKEN.parse::<AdminToken>().expect("long enough")),
            store: Store::Sqlite(store),
            limiter: Arc::new(RequestLimiter::new(rate)),
            failures: Arc::new(AuthFailures::new(std::num::NonZeroU32::new(3).unwrap())),
            throttled: prometheus::IntCounter::new("throttled", "throttled").unwrap(),
        }
    }

    fn router(auth: Authenticator) -> Router {
        Router::new()
            .route(
                "/v1/ping",
                get(|Extension(principal): Extension<Principal>| async move {
                    format!("{} {:?}", principal.role, principal.app)
                }),
            )
            .route_layer(middleware::from_fn_with_state(auth, require_token))
    }

    async fn call(auth: &Authenticator, authorization: Option<&str>) -> (StatusCode, String) {
        let mut request = HttpRequest::get("/v1/ping");
        if let Some(value) = authorization {
            request = request.header(header::AUTHORIZATION, value);
        }
        let response = router(auth.clone())
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
    async fn the_admin_token_is_admin_of_everything() {
        let auth = authenticator().await;
        let (status, body) = call(&auth, Some(&format!("Bearer {TOKEN}"))).await;
        assert_eq!((status, body.as_str()), (StatusCode::OK, "admin None"));
        let (status, _) = call(&auth, Some(&format!("bearer  {TOKEN} "))).await;
        assert_eq!(status, StatusCode::OK);
    }

    #[tokio::test]
    async fn a_token_over_its_rate_gets_429_with_retry_after_then_recovers() {
        let auth = authenticator_with(RateLimit {
            per_second: std::num::NonZeroU32::new(10).unwrap(),
            burst: std::num::NonZeroU32::new(2).unwrap(),
        })
        .await;
        let header = format!("Bearer {TOKEN}");
        for _ in 0..2 {
            assert_eq!(call(&auth, Some(&header)).await.0, StatusCode::OK);
        }
        let response = router(auth.clone())
            .oneshot(
                HttpRequest::get("/v1/ping")
                    .header(header::AUTHORIZATION, &header)
                    .body(Body::empty())
                    .expect("request builds"),
            )
            .await
            .expect("router answers");
        assert_eq!(response.status(), StatusCode::TOO_MANY_REQUESTS);
        assert_eq!(response.headers()[header::RETRY_AFTER], "1");
        let body = to_bytes(response.into_body(), 1 << 20).await.unwrap();
        let body = String::from_utf8_lossy(&body);
        assert!(body.contains(r#""code":"rate_limited""#), "{body}");
        // A refused token is not counted: it gets its 401 whatever the rate.
        assert_eq!(
            call(&auth, Some("Bearer wrong")).await.0,
            StatusCode::UNAUTHORIZED
        );
        // Recovers once the bucket refills: poll with a deadline.
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        while call(&auth, Some(&header)).await.0 != StatusCode::OK {
            assert!(std::time::Instant::now() < deadline, "never recovered");
            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
        }
    }

    #[tokio::test]
    async fn a_missing_token_says_how_to_pass_one() {
        let (status, body) = call(&authenticator().await, None).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED);
        assert_eq!(
            body,
            r#"{"error":{"code":"unauthorized","message":"missing API token: pass --token or set JOBS_TOKEN"}}"#
        );
    }

    #[tokio::test]
    async fn a_wrong_token_is_refused() {
        let auth = authenticator().await;
        for value in [
            "Bearer wrong",
            &format!("Bearer {TOKEN}x"),
            &format!("Basic {TOKEN}"),
            "Bearer",
            &format!("Bearer {}", new_secret().unwrap()),
        ] {
            let (status, body) = call(&auth, Some(value)).await;
            assert_eq!(status, StatusCode::UNAUTHORIZED, "{value}");
            assert_eq!(
                body, r#"{"error":{"code":"unauthorized","message":"invalid API token"}}"#,
                "{value}"
            );
        }
    }

    #[tokio::test]
    async fn a_stored_token_resolves_to_its_role_and_app_until_revoked() {
        let auth = authenticator().await;
        let secret = new_secret().unwrap();
        let token = auth
            .store
            .create_token(&NewToken {
                app: None,
                role: Role::Read,
                secret_hash: secret_hash(&secret),
                description: None,
                expires_in: None,
            })
            .await
            .unwrap();
        let header = format!("Bearer {secret}");
        assert_eq!(
            call(&auth, Some(&header)).await,
            (StatusCode::OK, "read None".to_owned())
        );
        auth.store.revoke_token(&token.id).await.unwrap();
        let (status, body) = call(&auth, Some(&header)).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED);
        assert!(body.contains("invalid API token"), "{body}");
    }

    async fn call_with(auth: &Authenticator, headers: &[(&str, &str)]) -> (StatusCode, String) {
        let mut request = HttpRequest::get("/v1/ping");
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        let response = router(auth.clone())
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
    async fn a_websocket_upgrade_may_carry_the_token_as_a_subprotocol_and_nothing_else_may() {
        let auth = authenticator().await;
        let encoded = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(TOKEN);
        let offered = format!("jobs.attach.v1, {BEARER_SUBPROTOCOL_PREFIX}{encoded}");
        let upgrade = [
            ("upgrade", "websocket"),
            ("sec-websocket-protocol", &offered),
        ];
        assert_eq!(
            call_with(&auth, &upgrade).await,
            (StatusCode::OK, "admin None".to_owned())
        );
        // A plain request does not read the subprotocol header.
        let (status, body) = call_with(&auth, &upgrade[1..]).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED);
        assert!(body.contains("missing API token"), "{body}");
        // A wrong token in the subprotocol is refused like a wrong header.
        let wrong = format!(
            "{BEARER_SUBPROTOCOL_PREFIX}{}",
            base64::engine::general_purpose::URL_SAFE_NO_PAD.encode("nope")
        );
        let (status, body) = call_with(
            &auth,
            &[("upgrade", "websocket"), ("sec-websocket-protocol", &wrong)],
        )
        .await;
        assert_eq!(status, StatusCode::UNAUTHORIZED);
        assert!(body.contains("invalid API token"), "{body}");
        let garbled = format!("{BEARER_SUBPROTOCOL_PREFIX}***");
        let (status, _) = call_with(
            &auth,
            &[
                ("upgrade", "websocket"),
                ("sec-websocket-protocol", &garbled),
            ],
        )
        .await;
        assert_eq!(status, StatusCode::UNAUTHORIZED);
    }

    #[test]
    fn only_tokens_of_the_shape_of_new_secrets_are_looked_up() {
        for _ in 0..100 {
            assert!(has_token_shape(&new_secret().unwrap()));
        }
        let good = new_secret().unwrap();
        for forged in [
            "",
            "jobs_",
            "wrong",
            &good[..good.len() - 1],
            &format!("{good}A"),
            &good.replacen("jobs_", "jobz_", 1),
            &format!("{}+", &good[..good.len() - 1]),
            &format!("{}=", &good[..good.len() - 1]),
            &format!("{}é", &good[..good.len() - 2]),
        ] {
            assert!(!has_token_shape(forged), "{forged}");
        }
    }

    /// A router whose requests come from `address`, as the server's accept
    /// loop marks them.
    fn router_from(auth: Authenticator, address: &str) -> Router {
        let address: SocketAddr = address.parse().unwrap();
        router(auth).layer(Extension(ConnectInfo(address)))
    }

    async fn status_from(auth: &Authenticator, address: &str, token: &str) -> StatusCode {
        router_from(auth.clone(), address)
            .oneshot(
                HttpRequest::get("/v1/ping")
                    .header(header::AUTHORIZATION, format!("Bearer {token}"))
                    .body(Body::empty())
                    .unwrap(),
            )
            .await
            .unwrap()
            .status()
    }

    #[tokio::test]
    async fn an_address_that_failed_too_often_gets_429_for_any_token_and_others_do_not() {
        let auth = authenticator().await;
        let forged = new_secret().unwrap();
        for _ in 0..3 {
            assert_eq!(
                status_from(&auth, "192.0.2.1:1000", &forged).await,
                StatusCode::UNAUTHORIZED
            );
        }
        for token in [forged.as_str(), TOKEN] {
            assert_eq!(
                status_from(&auth, "192.0.2.1:1001", token).await,
                StatusCode::TOO_MANY_REQUESTS
            );
        }
        assert_eq!(auth.throttled.get(), 2);
        assert_eq!(
            status_from(&auth, "192.0.2.2:1000", TOKEN).await,
            StatusCode::OK
        );
        assert_eq!(
            status_from(&auth, "192.0.2.2:1000", "nope").await,
            StatusCode::UNAUTHORIZED
        );
    }

    #[tokio::test]
    async fn a_token_of_the_wrong_shape_is_refused_without_a_lookup() {
        let auth = authenticator().await;
        // With the database closed, a lookup would fail with 500.
        if let Store::Sqlite(store) = &auth.store {
            store.pool().close().await;
        }
        let (status, _) = call(&auth, Some("Bearer jobs_not-a-token")).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED);
        let (status, _) = call(&auth, Some(&format!("Bearer {}", new_secret().unwrap()))).await;
        assert_ne!(
            status,
            StatusCode::UNAUTHORIZED,
            "a well-shaped one is looked up"
        );
    }

    #[test]
    fn secrets_are_256_random_bits_and_hash_to_32_bytes() {
        let a = new_secret().unwrap();
        let b = new_secret().unwrap();
        assert_ne!(a, b);
        assert!(a.starts_with(TOKEN_PREFIX));
        // 32 bytes are 43 characters of unpadded base64.
        assert_eq!(a.len(), TOKEN_PREFIX.len() + 43, "{a}");
        assert_eq!(secret_hash(&a).len(), 32);
        assert_ne!(secret_hash(&a), secret_hash(&b));
    }
}
