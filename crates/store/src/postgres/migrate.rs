//! Versioned PostgreSQL schema migrations, embedded from `migrations/postgres/*.sql`.
//!
//! All pending versions run at connect in ONE transaction that first takes a transaction-level
//! advisory lock: several server processes starting together queue on the lock, the first
//! applies the migrations, the others then find nothing to do. Each applied version is recorded
//! in `schema_migrations` (in the connection's `search_path` schema).

use super::{pg_err, Client};
use crate::rows::now_us;
use marketmeter_domain::store::{StoreError, StoreResult};

/// One schema version: its number and the SQL that brings the previous version to it.
pub(crate) struct Migration {
    pub version: i64,
    pub sql: &'static str,
}

/// PostgreSQL migrations, in order. Append only: never edit a released file.
pub(crate) const POSTGRES: &[Migration] = &[Migration {
    version: 1,
    sql: include_str!("../../migrations/postgres/0001_init.sql"),
}];

/// Advisory lock key taken while migrating ("mmmigrat" in ASCII).
const MIGRATION_LOCK: i64 = 0x6d6d_6d69_6772_6174;

/// Applies every migration newer than the database's version; returns how many ran.
pub(crate) async fn apply(client: &mut Client, migrations: &[Migration]) -> StoreResult<usize> {
    let tx = client.transaction().await.map_err(pg_err)?;
    tx.query("SELECT pg_advisory_xact_lock($1)", &[&MIGRATION_LOCK])
        .await
        .map_err(pg_err)?;
    tx.batch_execute(
        "CREATE TABLE IF NOT EXISTS schema_migrations (
            version    BIGINT PRIMARY KEY,
            applied_us BIGINT NOT NULL
        )",
    )
    .await
    .map_err(pg_err)?;
    let current: i64 = tx
        .query_one(
            "SELECT COALESCE(MAX(version), 0)::BIGINT FROM schema_migrations",
            &[],
        )
        .await
        .map_err(pg_err)?
        .try_get(0)
        .map_err(pg_err)?;
    let known = migrations.last().map_or(0, |m| m.version);
    if current > known {
        return Err(StoreError::Unavailable(format!(
            "database schema version {current} is newer than this build knows ({known})"
        )));
    }
    let mut ran = 0;
    for m in migrations.iter().filter(|m| m.version > current) {
        tx.batch_execute(m.sql).await.map_err(pg_err)?;
        tx.execute(
            "INSERT INTO schema_migrations (version, applied_us) VALUES ($1, $2)",
            &[&m.version, &now_us()],
        )
        .await
        .map_err(pg_err)?;
        tracing::info!(version = m.version, "applied postgres schema migration");
        ran += 1;
    }
    tx.commit().await.map_err(pg_err)?;
    Ok(ran)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_are_strictly_increasing() {
        assert!(POSTGRES.windows(2).all(|w| w[0].version < w[1].version));
        assert_eq!(POSTGRES[0].version, 1);
    }
}
