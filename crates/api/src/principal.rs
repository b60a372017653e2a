//! Who is calling, and what they may do.
//!
//! The auth middleware ([`crate::auth`]) resolves the bearer token to a
//! [`Principal`] and puts it in the request's extensions; every handler
//! takes it as an extractor and checks it with two rules:
//! - [`Principal::require`]: the role must be high enough, else `403`;
//! - [`Principal::can_see_app`] / [`Principal::can_see_job`]: a token bound
//!   to one app gets `404` for anything of another app, with the very words
//!   of a missing one, so that it cannot even learn what exists.
//!
//! Handlers check visibility before the role, so that a foreign resource is
//! a 404 whatever the role: a 403 would confirm that it exists.

use axum::{extract::FromRequestParts, http::request::Parts};
use jobs_core::{
    Role,
    wire::{Group, Job},
};
use jobs_store::StoreError;

use crate::error::ApiError;

/// The caller: a role, and the one app it is bound to, if any.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Principal {
    pub role: Role,
    /// `None`: every app.
    pub app: Option<String>,
    /// Who it is, as a job it creates records it (`Job::created_by`).
    pub name: String,
}

impl Principal {
    /// The bootstrap admin token: every right on every app.
    pub fn bootstrap_admin() -> Self {
        Principal {
            role: Role::Admin,
            app: None,
            name: "the admin token".to_owned(),
        }
    }

    /// A token of the store: `token ID (DESCRIPTION)`.
    pub fn of_token(token: jobs_core::wire::TokenInfo) -> Self {
        let name = match &token.description {
            Some(description) => format!("token {} ({description})", token.id),
            None => format!("token {}", token.id),
        };
        Principal {
            role: token.role,
            app: token.app,
            name,
        }
    }

    /// `403` unless the role is at least `needed`. `action` completes "…
    /// needs run", as in `creating jobs`.
    pub fn require(&self, needed: Role, action: &str) -> Result<(), ApiError> {
        if self.role >= needed {
            return Ok(());
        }
        Err(ApiError::Forbidden(format!(
            "this token's role is {}: {action} needs {needed}",
            self.role
        )))
    }

    /// Whether this token may see `app` at all.
    pub fn sees_app(&self, app: &str) -> bool {
        self.app.as_deref().is_none_or(|bound| bound == app)
    }

    /// `404 app "NAME" not found` for an app outside the token's app.
    pub fn can_see_app(&self, app: &str) -> Result<(), ApiError> {
        if self.sees_app(app) {
            Ok(())
        } else {
            Err(StoreError::AppNotFound(app.to_owned()).into())
        }
    }

    /// `404 job "ID" not found` for a job of another app than the token's.
    pub fn can_see_job(&self, job: &Job) -> Result<(), ApiError> {
        if self.sees_app(&job.app) {
            Ok(())
        } else {
            Err(StoreError::JobNotFound(job.id.clone()).into())
        }
    }

    pub fn can_see_group(&self, group: &Group) -> Result<(), ApiError> {
        if self.sees_app(&group.app) {
            Ok(())
        } else {
            Err(StoreError::GroupNotFound(group.id.clone()).into())
        }
    }
}

/// Which token a request presented, as the SHA-256 of its secret: the key
/// of the per-token limits ([`crate::rate_limit`], [`crate::token_slots`]).
/// The auth middleware puts it beside the [`Principal`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenKey(pub Vec<u8>);

impl<S: Send + Sync> FromRequestParts<S> for TokenKey {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        parts.extensions.get::<TokenKey>().cloned().ok_or_else(|| {
            ApiError::Internal(anyhow::anyhow!(
                "no token key on a request: the route is not behind the auth middleware"
            ))
        })
    }
}

/// Handlers take the principal as an argument. Every `/v1` route is behind
/// the auth middleware, so a missing one is a bug of the router, never the
/// client's doing: it is refused as a 500, never let through.
impl<S: Send + Sync> FromRequestParts<S> for Principal {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        parts.extensions.get::<Principal>().cloned().ok_or_else(|| {
            ApiError::Internal(anyhow::anyhow!(
                "no principal on a request: the route is not behind the auth middleware"
            ))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bound(role: Role, app: &str) -> Principal {
        Principal {
            role,
            app: Some(app.to_owned()),
            name: "token tok_test".to_owned(),
        }
    }

    #[test]
    fn roles_are_ordered_and_refusals_name_both_roles() {
        let read = bound(Role::Read, "web");
        assert!(read.require(Role::Read, "reading").is_ok());
        let err = read.require(Role::Run, "creating jobs").unwrap_err();
        assert_eq!(err.status(), 403);
        assert_eq!(
            err.to_string(),
            "this token's role is read: creating jobs needs run"
        );
        assert!(bound(Role::Admin, "web").require(Role::Run, "x").is_ok());
    }

    #[test]
    fn a_bound_token_sees_only_its_app_and_hears_not_found() {
        let token = bound(Role::Admin, "web");
        assert!(token.can_see_app("web").is_ok());
        let err = token.can_see_app("other").unwrap_err();
        assert_eq!(err.status(), 404);
        assert_eq!(err.to_string(), r#"app "other" not found"#);
        assert!(Principal::bootstrap_admin().can_see_app("other").is_ok());
    }
}
