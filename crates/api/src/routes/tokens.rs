//! `/v1/tokens`: create, list and revoke API tokens. Admin tokens only.
//!
//! Scope rules (docs/security.md):
//! - a token of every app may make tokens for any app, or for every app;
//! - an admin token bound to app A manages only A's tokens: what it creates
//!   is bound to A (when no app is given, A is meant), and tokens of other
//!   apps, or of every app, are 404 to it, as if they did not exist;
//! - a token can never make one wider than itself: only admins make tokens,
//!   and a bound admin only for its own app.

use axum::{Json, extract::State, http::StatusCode};
use jobs_core::{
    InvalidInput, Role, names,
    role::{MAX_TOKEN_DESCRIPTION_LEN, validate_token_lifetime_seconds},
    wire::{Caller, TokenCreated, TokenInfo, TokenList},
};
use jobs_store::NewToken;
use serde::Deserialize;
use std::time::Duration;

use crate::{
    auth,
    error::ApiError,
    extract::{JsonBody, PathParam},
    principal::Principal,
    state::AppState,
};

/// The body of `POST /v1/tokens`. The role arrives as a plain string so
/// that an unknown one gets the core's message, which names the roles.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TokenCreateRequest {
    #[serde(default)]
    app: Option<String>,
    role: String,
    #[serde(default)]
    expires_in_seconds: Option<i64>,
    #[serde(default)]
    description: Option<String>,
}

/// A checked request, still without its secret.
#[derive(Debug, PartialEq, Eq)]
struct TokenRequest {
    app: Option<String>,
    role: Role,
    expires_in: Option<Duration>,
    description: Option<String>,
}

impl TokenCreateRequest {
    fn validate(self) -> Result<TokenRequest, InvalidInput> {
        if let Some(app) = &self.app {
            names::validate_app_name(app)?;
        }
        let role: Role = self.role.parse()?;
        if let Some(seconds) = self.expires_in_seconds {
            validate_token_lifetime_seconds(seconds)?;
        }
        let description = self.description.filter(|text| !text.is_empty());
        if let Some(text) = &description {
            jobs_core::text::validate_line("description", "the description", text)?;
            let length = text.chars().count();
            if length > MAX_TOKEN_DESCRIPTION_LEN {
                return Err(InvalidInput::new(
                    "description",
                    format!(
                        "the description is {length} characters long: the limit is \
                         {MAX_TOKEN_DESCRIPTION_LEN}"
                    ),
                ));
            }
        }
        Ok(TokenRequest {
            app: self.app,
            role,
            // Checked positive and in range just above.
            expires_in: self
                .expires_in_seconds
                .map(|seconds| Duration::from_secs(seconds.unsigned_abs())),
            description,
        })
    }
}

/// `POST /v1/tokens`: 201 with the token and its secret, the only time the
/// secret is ever shown; 404 for an unknown app.
#[utoipa::path(
    post,
    path = "/v1/tokens",
    tag = "tokens",
    request_body = jobs_core::wire::TokenCreate,
    responses(
        (status = 201, description = "The token and its secret, the only time the secret is shown.", body = TokenCreated),
        (status = 404, description = "`not_found`: no such app, or one outside the token's app.", body = jobs_core::wire::ApiError),
    )
)]
pub async fn create_token(
    State(state): State<AppState>,
    principal: Principal,
    JsonBody(request): JsonBody<TokenCreateRequest>,
) -> Result<(StatusCode, Json<TokenCreated>), ApiError> {
    let mut request = request.validate()?;
    if let Some(app) = &request.app {
        principal.can_see_app(app)?;
    }
    principal.require(Role::Admin, "creating tokens")?;
    if request.app.is_none() {
        // A bound admin's tokens are bound to its app: never wider than itself.
        request.app = principal.app.clone();
    }
    let secret = auth::new_secret()?;
    let token = state
        .store
        .create_token(&NewToken {
            app: request.app,
            role: request.role,
            secret_hash: auth::secret_hash(&secret),
            description: request.description,
            expires_in: request.expires_in,
        })
        .await?;
    tracing::info!(token_id = %token.id, app = ?token.app, role = %token.role, "token created");
    Ok((StatusCode::CREATED, Json(TokenCreated { token, secret })))
}

/// `GET /v1/whoami`: the calling token's own role and app, for any role.
#[utoipa::path(
    get,
    path = "/v1/whoami",
    tag = "tokens",
    responses(
        (status = 200, description = "The role of the token and the app it is bound to, if any.", body = Caller),
    )
)]
pub async fn whoami(principal: Principal) -> Json<Caller> {
    Json(Caller {
        role: principal.role,
        app: principal.app,
    })
}

/// `GET /v1/tokens`: the tokens the caller may manage, without secrets.
#[utoipa::path(
    get,
    path = "/v1/tokens",
    tag = "tokens",
    responses(
        (status = 200, description = "The tokens the caller may manage, oldest first, without secrets.", body = TokenList),
    )
)]
pub async fn list_tokens(
    State(state): State<AppState>,
    principal: Principal,
) -> Result<Json<TokenList>, ApiError> {
    principal.require(Role::Admin, "listing tokens")?;
    let tokens = state.store.list_tokens(principal.app.as_deref()).await?;
    Ok(Json(TokenList { tokens }))
}

/// `DELETE /v1/tokens/{id}`: 204; the token is refused from the next
/// request on. 404 for an unknown token or one the caller may not manage.
#[utoipa::path(
    delete,
    path = "/v1/tokens/{id}",
    tag = "tokens",
    params(
        ("id" = String, Path, description = "The token's id (not its secret)."),
    ),
    responses(
        (status = 204, description = "The token is revoked."),
        (status = 404, description = "`not_found`: no such token, or one the caller may not manage.", body = jobs_core::wire::ApiError),
    )
)]
pub async fn revoke_token(
    State(state): State<AppState>,
    principal: Principal,
    PathParam(id): PathParam<String>,
) -> Result<StatusCode, ApiError> {
    let not_found = || ApiError::NotFound(format!("token {id:?} not found"));
    let token: TokenInfo = state.store.get_token(&id).await?.ok_or_else(not_found)?;
    if !manages(&principal, &token) {
        return Err(not_found());
    }
    principal.require(Role::Admin, "revoking tokens")?;
    if !state.store.revoke_token(&id).await? {
        return Err(not_found());
    }
    tracing::info!(token_id = %id, "token revoked");
    Ok(StatusCode::NO_CONTENT)
}

/// Whether `token` is within the caller's reach: a bound caller reaches only
/// tokens bound to its own app, not those of every app.
fn manages(principal: &Principal, token: &TokenInfo) -> bool {
    match &principal.app {
        None => true,
        Some(bound) => token.app.as_deref() == Some(bound),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(json: &str) -> Result<TokenRequest, InvalidInput> {
        serde_json::from_str::<TokenCreateRequest>(json)
            .expect("parses")
            .validate()
    }

    #[test]
    fn a_good_request_is_checked_into_its_parts() {
        assert_eq!(
            request(r#"{"app":"web","role":"run","expires_in_seconds":60,"description":"ci"}"#),
            Ok(TokenRequest {
                app: Some("web".into()),
                role: Role::Run,
                expires_in: Some(Duration::from_secs(60)),
                description: Some("ci".into()),
            })
        );
        assert_eq!(request(r#"{"role":"admin"}"#).unwrap().app, None);
    }

    #[test]
    fn bad_fields_are_named() {
        let cases = [
            (r#"{"role":"owner"}"#, "role", "read, run, admin"),
            (
                r#"{"role":"read","expires_in_seconds":0}"#,
                "expires_in_seconds",
                "10 years",
            ),
            (
                r#"{"role":"read","expires_in_seconds":400000000}"#,
                "expires_in_seconds",
                "10 years",
            ),
            (r#"{"role":"read","app":"Bad_App"}"#, "app", "is invalid"),
        ];
        for (json, field, needle) in cases {
            let err = request(json).unwrap_err();
            assert_eq!(err.field, field, "{json}");
            assert!(err.message.contains(needle), "{json}: {err}");
        }
        let long = format!(r#"{{"role":"read","description":"{}"}}"#, "x".repeat(201));
        assert_eq!(request(&long).unwrap_err().field, "description");
        assert!(
            serde_json::from_str::<TokenCreateRequest>(r#"{"role":"read","scope":"x"}"#).is_err()
        );
    }

    #[test]
    fn a_bound_admin_manages_only_its_apps_tokens() {
        let token = |app: Option<&str>| TokenInfo {
            id: "tok_1".into(),
            app: app.map(str::to_owned),
            role: Role::Read,
            description: None,
            created_at: chrono::Utc::now(),
            expires_at: None,
            revoked_at: None,
        };
        let bound = Principal {
            role: Role::Admin,
            app: Some("web".into()),
            name: "token tok_web".into(),
        };
        assert!(manages(&bound, &token(Some("web"))));
        assert!(!manages(&bound, &token(Some("other"))));
        assert!(!manages(&bound, &token(None)));
        assert!(manages(&Principal::bootstrap_admin(), &token(None)));
    }
}
