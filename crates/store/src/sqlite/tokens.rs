//! API token rows. Validity (expiry, revocation) is decided by SQLite's
//! clock, as every other time of this store.

use jobs_core::wire::TokenInfo;

use super::{
    SqliteStore, duration_micros,
    rows::{now, time},
};
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
    created_at: i64,
    expires_at: Option<i64>,
    revoked_at: Option<i64>,
}

impl TryFrom<TokenRow> for TokenInfo {
    type Error = StoreError;

    fn try_from(row: TokenRow) -> Result<Self, StoreError> {
        Ok(TokenInfo {
            role: role_from_column(&row.role)?,
            id: row.id,
            app: row.app,
            description: row.description,
            created_at: time(row.created_at),
            expires_at: row.expires_at.map(time),
            revoked_at: row.revoked_at.map(time),
        })
    }
}

impl SqliteStore {
    pub async fn create_token(&self, token: &NewToken) -> Result<TokenInfo, StoreError> {
        let row: Result<TokenRow, sqlx::Error> = sqlx::query_as(concat!(
            "insert into api_tokens (id, app, role, secret_hash, description, created_at, \
               expires_at) values ($1, $2, $3, $4, $5, ",
            now!(),
            // Null stays null: `now + null` is null, a token that never expires.
            ", ",
            now!(),
            " + $6) returning ",
            token_columns!()
        ))
        .bind(new_token_id())
        .bind(&token.app)
        .bind(token.role.as_str())
        .bind(&token.secret_hash)
        .bind(&token.description)
        .bind(token.expires_in.map(duration_micros))
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
            " from api_tokens where secret_hash = $1 and revoked_at is null \
             and (expires_at is null or expires_at > ",
            now!(),
            ")"
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
            " from api_tokens where $1 is null or app = $1 order by created_at, id"
        ))
        .bind(app)
        .fetch_all(&self.pool)
        .await?;
        rows.into_iter().map(TokenInfo::try_from).collect()
    }

    pub async fn revoke_token(&self, id: &str) -> Result<bool, StoreError> {
        let done = sqlx::query(concat!(
            "update api_tokens set revoked_at = coalesce(revoked_at, ",
            now!(),
            ") where id = $1"
        ))
        .bind(id)
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected() > 0)
    }
}
