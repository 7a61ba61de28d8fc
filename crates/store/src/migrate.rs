//! Versioned schema migrations, embedded from `migrations/sqlite/*.sql`.
//!
//! Each file is one schema version. They run in order at open, inside one IMMEDIATE
//! transaction (so two processes opening the same file at once cannot both apply a version),
//! and each applied version is recorded in `schema_migrations`. Opening an up-to-date database
//! applies nothing, so opening is idempotent.

use crate::rows::now_us;
use r2d2_sqlite::rusqlite::{params, Connection};

/// One schema version: its number and the SQL that brings the previous version to it.
pub(crate) struct Migration {
    pub version: i64,
    pub sql: &'static str,
}

/// SQLite migrations, in order. Append only: never edit a released file.
pub(crate) const SQLITE: &[Migration] = &[
    Migration {
        version: 1,
        sql: include_str!("../migrations/sqlite/0001_init.sql"),
    },
    Migration {
        version: 2,
        sql: include_str!("../migrations/sqlite/0002_report_index.sql"),
    },
    Migration {
        version: 3,
        sql: include_str!("../migrations/sqlite/0003_audit.sql"),
    },
    Migration {
        version: 4,
        sql: include_str!("../migrations/sqlite/0004_container_runs.sql"),
    },
    Migration {
        version: 5,
        sql: include_str!("../migrations/sqlite/0005_usage_hourly.sql"),
    },
    Migration {
        version: 6,
        sql: include_str!("../migrations/sqlite/0006_report_index_by_customer.sql"),
    },
];

#[derive(Debug, thiserror::Error)]
pub(crate) enum MigrateError {
    #[error("sqlite: {0}")]
    Sql(#[from] r2d2_sqlite::rusqlite::Error),
    #[error("database schema version {found} is newer than this build knows ({known})")]
    TooNew { found: i64, known: i64 },
}

/// Applies every migration the database has not recorded, in order; returns how many ran.
/// Not only those above its highest version: branches developed side by side can land a
/// version after a higher one was applied (0004 reached databases before 0003 existed).
pub(crate) fn apply(
    conn: &mut Connection,
    migrations: &[Migration],
) -> Result<usize, MigrateError> {
    let tx =
        conn.transaction_with_behavior(r2d2_sqlite::rusqlite::TransactionBehavior::Immediate)?;
    tx.execute_batch(
        "CREATE TABLE IF NOT EXISTS schema_migrations (
            version    INTEGER PRIMARY KEY NOT NULL,
            applied_at INTEGER NOT NULL
        )",
    )?;
    let applied: std::collections::HashSet<i64> = tx
        .prepare("SELECT version FROM schema_migrations")?
        .query_map([], |r| r.get(0))?
        .collect::<Result<_, _>>()?;
    let current = applied.iter().copied().max().unwrap_or(0);
    let known = migrations.last().map_or(0, |m| m.version);
    if current > known {
        return Err(MigrateError::TooNew {
            found: current,
            known,
        });
    }
    let mut ran = 0;
    for m in migrations.iter().filter(|m| !applied.contains(&m.version)) {
        tx.execute_batch(m.sql)?;
        tx.execute(
            "INSERT INTO schema_migrations (version, applied_at) VALUES (?1, ?2)",
            params![m.version, now_us()],
        )?;
        tracing::info!(version = m.version, "applied schema migration");
        ran += 1;
    }
    tx.commit()?;
    Ok(ran)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_are_strictly_increasing() {
        assert!(SQLITE.windows(2).all(|w| w[0].version < w[1].version));
        assert_eq!(SQLITE[0].version, 1);
    }

    #[test]
    fn applies_once() {
        let mut c = Connection::open_in_memory().unwrap();
        assert_eq!(apply(&mut c, SQLITE).unwrap(), SQLITE.len());
        assert_eq!(apply(&mut c, SQLITE).unwrap(), 0);
        let n: i64 = c
            .query_row("SELECT COUNT(*) FROM schema_migrations", [], |r| r.get(0))
            .unwrap();
        assert_eq!(n, SQLITE.len() as i64);
    }

    #[test]
    fn applies_a_version_that_landed_below_the_highest() {
        let mut c = Connection::open_in_memory().unwrap();
        let without_3: Vec<Migration> = SQLITE
            .iter()
            .filter(|m| m.version != 3)
            .map(|m| Migration {
                version: m.version,
                sql: m.sql,
            })
            .collect();
        apply(&mut c, &without_3).unwrap();
        assert_eq!(apply(&mut c, SQLITE).unwrap(), 1);
        let n: i64 = c
            .query_row("SELECT COUNT(*) FROM audit_events", [], |r| r.get(0))
            .unwrap();
        assert_eq!(n, 0, "the table of version 3 exists");
    }

    #[test]
    fn refuses_a_newer_database() {
        let mut c = Connection::open_in_memory().unwrap();
        apply(&mut c, SQLITE).unwrap();
        c.execute(
            "INSERT INTO schema_migrations (version, applied_at) VALUES (999, 0)",
            [],
        )
        .unwrap();
        assert!(matches!(
            apply(&mut c, SQLITE),
            Err(MigrateError::TooNew { found: 999, .. })
        ));
    }

    #[test]
    fn container_sessions_become_first_runs() {
        let mut c = Connection::open_in_memory().unwrap();
        apply(&mut c, &SQLITE[..2]).unwrap();
        c.execute(
            "INSERT INTO container_sessions (seller_account, product_code, resource_id, \
             customer_account, platform, region, first_registered_us) \
             VALUES ('111111111111', 'prod-c', 'task-1', '222222222222', 'ecs', 'us-east-1', 5)",
            [],
        )
        .unwrap();
        apply(&mut c, SQLITE).unwrap();
        let (run, stopped): (i64, Option<i64>) = c
            .query_row(
                "SELECT run, stopped_us FROM container_sessions WHERE resource_id = 'task-1'",
                [],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .unwrap();
        assert_eq!((run, stopped), (1, None));
        // One running run per workload.
        let second_running = c.execute(
            "INSERT INTO container_sessions (seller_account, product_code, resource_id, run, \
             customer_account, platform, region, first_registered_us) \
             VALUES ('111111111111', 'prod-c', 'task-1', 2, '2', 'ecs', 'us-east-1', 9)",
            [],
        );
        assert!(second_running.is_err());
    }
}
