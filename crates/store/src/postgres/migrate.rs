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
pub(crate) const POSTGRES: &[Migration] = &[
    Migration {
        version: 1,
        sql: include_str!("../../migrations/postgres/0001_init.sql"),
    },
    Migration {
        version: 2,
        sql: include_str!("../../migrations/postgres/0002_report_index.sql"),
    },
    Migration {
        version: 3,
        sql: include_str!("../../migrations/postgres/0003_audit.sql"),
    },
    Migration {
        version: 4,
        sql: include_str!("../../migrations/postgres/0004_container_runs.sql"),
    },
    Migration {
        version: 5,
        sql: include_str!("../../migrations/postgres/0005_usage_hourly.sql"),
    },
    Migration {
        version: 6,
        sql: include_str!("../../migrations/postgres/0006_report_index_by_id.sql"),
    },
];

/// Advisory lock key taken while migrating ("mmmigrat" in ASCII).
const MIGRATION_LOCK: i64 = 0x6d6d_6d69_6772_6174;

/// Applies every migration the database has not recorded, in order; returns how many ran (as
/// on SQLite: a version can land below the highest one applied).
pub(crate) async fn apply(client: &mut Client, migrations: &[Migration]) -> StoreResult<usize> {
    let tx = client.transaction().await.map_err(pg_err)?;
    tx.query("SELECT pg_advisory_xact_lock($1)", &[&MIGRATION_LOCK])
        .await
        .map_err(pg_err)?;
    ensure_schema(&tx).await?;
    tx.batch_execute(
        "CREATE TABLE IF NOT EXISTS schema_migrations (
            version    BIGINT PRIMARY KEY,
            applied_us BIGINT NOT NULL
        )",
    )
    .await
    .map_err(pg_err)?;
    let applied: std::collections::HashSet<i64> = tx
        .query("SELECT version FROM schema_migrations", &[])
        .await
        .map_err(pg_err)?
        .iter()
        .map(|r| r.try_get(0).map_err(pg_err))
        .collect::<StoreResult<_>>()?;
    let current = applied.iter().copied().max().unwrap_or(0);
    let known = migrations.last().map_or(0, |m| m.version);
    if current > known {
        return Err(StoreError::Unavailable(format!(
            "database schema version {current} is newer than this build knows ({known})"
        )));
    }
    let mut ran = 0;
    for m in migrations.iter().filter(|m| !applied.contains(&m.version)) {
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

/// A `search_path` naming a schema that does not exist yet (a new tenant, a test) gets that
/// schema created; runs under the migration lock, so processes starting together do not race.
async fn ensure_schema(tx: &tokio_postgres::Transaction<'_>) -> StoreResult<()> {
    let row = tx
        .query_one(
            "SELECT current_schema()::TEXT, current_setting('search_path')",
            &[],
        )
        .await
        .map_err(pg_err)?;
    let current: Option<String> = row.try_get(0).map_err(pg_err)?;
    if current.is_some() {
        return Ok(());
    }
    let search_path: String = row.try_get(1).map_err(pg_err)?;
    let schema = first_schema(&search_path).ok_or_else(|| {
        StoreError::Invalid(format!(
            "the search_path {search_path:?} names no schema to create the tables in; \
             set one with options=-c search_path=NAME in the URL"
        ))
    })?;
    tx.batch_execute(&format!(
        "CREATE SCHEMA IF NOT EXISTS {}",
        quote_ident(&schema)
    ))
    .await
    .map_err(pg_err)?;
    tracing::info!(schema = %schema, "created postgres schema");
    Ok(())
}

/// The first schema of a `search_path` setting as PostgreSQL resolves it: unquoted names fold
/// to lower case, quoted ones are taken as written; `$user` is skipped.
fn first_schema(search_path: &str) -> Option<String> {
    search_path
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty() && *s != "$user" && *s != "\"$user\"")
        .map(
            |s| match s.strip_prefix('"').and_then(|s| s.strip_suffix('"')) {
                Some(quoted) => quoted.replace("\"\"", "\""),
                None => s.to_lowercase(),
            },
        )
        .next()
}

fn quote_ident(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn first_schema_follows_postgres_rules() {
        assert_eq!(first_schema("mm_test_1"), Some("mm_test_1".into()));
        assert_eq!(
            first_schema("\"$user\", Tenant_A, public"),
            Some("tenant_a".into())
        );
        assert_eq!(
            first_schema("\"Mixed \"\"Case\"\"\""),
            Some("Mixed \"Case\"".into())
        );
        assert_eq!(first_schema("$user"), None);
        assert_eq!(first_schema(""), None);
        assert_eq!(quote_ident("a\"b"), "\"a\"\"b\"");
    }

    #[test]
    fn versions_are_strictly_increasing() {
        assert!(POSTGRES.windows(2).all(|w| w[0].version < w[1].version));
        assert_eq!(POSTGRES[0].version, 1);
    }
}
