//! API token rows. Validity (expiry, revocation) is decided by the database
//! clock (`now()`), so that every API process agrees on it.

use chrono::{DateTime, Utc};
use jobs_core::wire::TokenInfo;

use super::PgStore;
use crate::{
    StoreError,
    model::{NewToken, new_token_id, role_from_column},
};

/// The columns of a [`TokenRow`], as a literal so that queries stay
/// `&'static str`.
macro_rules! token_columns {
    () => {
        "id, app, role, description, created_at, expires_at, revoked_at"
    };
}

#[derive(sqlx::FromRow)]
struct TokenRow {
    id: String,
    app: Option<String>,
    role: String,
    description: Option<String>,
    created_at: DateTime<Utc>,
    expires_at: Option<DateTime<Utc>>,
    revoked_at: Option<DateTime<Utc>>,
}

impl TryFrom<TokenRow> for TokenInfo {
    type Error = StoreError;

    fn try_from(row: TokenRow) -> Result<Self, StoreError> {
        Ok(TokenInfo {
            role: role_from_column(&row.role)?,
            id: row.id,
            app: row.app,
            description: row.description,
            created_at: row.created_at,
            expires_at: row.expires_at,
            revoked_at: row.revoked_at,
        })
    }
}

impl PgStore {
    pub async fn create_token(&self, token: &NewToken) -> Result<TokenInfo, StoreError> {
        let row: Result<TokenRow, sqlx::Error> = sqlx::query_as(concat!(
            "insert into api_tokens (id, app, role, secret_hash, description, expires_at) \
             values ($1, $2, $3, $4, $5, now() + make_interval(secs => $6)) \
             returning ",
            token_columns!()
        ))
        .bind(new_token_id())
        .bind(&token.app)
        .bind(token.role.as_str())
        .bind(&token.secret_hash)
        .bind(&token.description)
        // Null stays null: `now() + null` is null, a token that never expires.
        .bind(token.expires_in.map(|d| d.as_secs_f64()))
        .fetch_one(&self.pool)
        .await;
        match row {
            Ok(row) => row.try_into(),
            Err(sqlx::Error::Database(e))
                if e.kind() == sqlx::error::ErrorKind::ForeignKeyViolation =>
            {
                Err(StoreError::AppNotFound(
                    token.app.clone().unwrap_or_default(),
                ))
            }
            Err(e) => Err(e.into()),
        }
    }

    pub async fn find_token_by_hash(
        &self,
        secret_hash: &[u8],
    ) -> Result<Option<TokenInfo>, StoreError> {
        let row: Option<TokenRow> = sqlx::query_as(concat!(
            "select ",
            token_columns!(),
            " from api_tokens where secret_hash = $1 \
             and revoked_at is null and (expires_at is null or expires_at > now())"
        ))
        .bind(secret_hash)
        .fetch_optional(&self.pool)
        .await?;
        row.map(TokenInfo::try_from).transpose()
    }

    pub async fn get_token(&self, id: &str) -> Result<Option<TokenInfo>, StoreError> {
        let row: Option<TokenRow> = sqlx::query_as(concat!(
            "select ",
            token_columns!(),
            " from api_tokens where id = $1"
        ))
        .bind(id)
        .fetch_optional(&self.pool)
        .await?;
        row.map(TokenInfo::try_from).transpose()
    }

    pub async fn list_tokens(&self, app: Option<&str>) -> Result<Vec<TokenInfo>, StoreError> {
        let rows: Vec<TokenRow> = sqlx::query_as(concat!(
            "select ",
            token_columns!(),
            " from api_tokens where $1::text is null or app = $1 \
             order by created_at, id"
        ))
        .bind(app)
        .fetch_all(&self.pool)
        .await?;
        rows.into_iter().map(TokenInfo::try_from).collect()
    }

    pub async fn revoke_token(&self, id: &str) -> Result<bool, StoreError> {
        let done = sqlx::query(
            "update api_tokens set revoked_at = coalesce(revoked_at, now()) where id = $1",
        )
        .bind(id)
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected() > 0)
    }
}
