//! Row pieces both stores read the same way: the hardening columns of an
//! app and the column list of a job. Their types decode alike in
//! PostgreSQL and SQLite; timestamps, which do not, stay in each backend's
//! `rows.rs`.

use jobs_core::hardening::Hardening;
use sqlx::types::Json;

/// The hardening columns of an app, in an app row and in a claim.
#[derive(sqlx::FromRow)]
pub(crate) struct HardeningRow {
    pub cap_add: Json<Vec<String>>,
    pub run_as_user: Option<String>,
    pub read_only_root: bool,
    pub network_none: bool,
}

impl From<HardeningRow> for Hardening {
    fn from(row: HardeningRow) -> Self {
        Hardening {
            cap_add: row.cap_add.0,
            user: row.run_as_user,
            read_only_root: row.read_only_root,
            network_none: row.network_none,
        }
    }
}

/// The columns of a job row, as a literal so that queries stay `&'static str`.
macro_rules! job_columns {
    () => {
        "id, app, command, env, size, timeout_seconds, state, attempt, exit_code, reason, \
         cancel_requested_at, lease_owner, created_at, started_at, finished_at, interactive_tty"
    };
}
pub(crate) use job_columns;
