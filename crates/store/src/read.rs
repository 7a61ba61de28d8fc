//! Reads: pooled read-only connections, run off the async runtime.
//!
//! In WAL mode readers never block the writer nor each other, so reads do not queue behind the
//! group commit. Each query sees the last committed state.

use crate::rows::{self, db_err, SqlResult};
use marketmeter_domain::model::*;
use marketmeter_domain::store::{ContainerFilter, StoreError, StoreResult, UsageFilter};
use r2d2_sqlite::rusqlite::{params, Connection, OptionalExtension, Params, Row};
use r2d2_sqlite::SqliteConnectionManager;

pub(crate) type Pool = r2d2::Pool<SqliteConnectionManager>;

pub(crate) const DEFAULT_USAGE_LIMIT: u32 = 1000;
pub(crate) const MAX_USAGE_LIMIT: u32 = 100_000;

/// Runs `f` on a pooled read connection in the blocking thread pool.
pub(crate) async fn with_reader<T, F>(pool: &Pool, f: F) -> StoreResult<T>
where
    T: Send + 'static,
    F: FnOnce(&Connection) -> StoreResult<T> + Send + 'static,
{
    let pool = pool.clone();
    tokio::task::spawn_blocking(move || {
        let conn = pool
            .get()
            .map_err(|e| StoreError::Unavailable(format!("no read connection: {e}")))?;
        f(&conn)
    })
    .await
    .map_err(|_| StoreError::Unavailable("read task failed".into()))?
}

pub(crate) fn one<T, P: Params>(
    conn: &Connection,
    sql: &str,
    p: P,
    map: fn(&Row<'_>) -> SqlResult<T>,
) -> StoreResult<Option<T>> {
    conn.prepare_cached(sql)
        .and_then(|mut s| s.query_row(p, map).optional())
        .map_err(db_err)
}

pub(crate) fn all<T, P: Params>(
    conn: &Connection,
    sql: &str,
    p: P,
    map: fn(&Row<'_>) -> SqlResult<T>,
) -> StoreResult<Vec<T>> {
    conn.prepare_cached(sql)
        .and_then(|mut s| s.query_map(p, map)?.collect())
        .map_err(db_err)
}

pub(crate) fn usage_records(
    conn: &Connection,
    f: &UsageFilter,
) -> StoreResult<Vec<UsageRecordRow>> {
    let limit = f.limit.unwrap_or(DEFAULT_USAGE_LIMIT).min(MAX_USAGE_LIMIT);
    // One statement per filter shape (instead of `?1 IS NULL OR ...`) so each can use an index.
    let filter = match (&f.seller_account, &f.product_code) {
        (Some(_), Some(_)) => "WHERE seller_account = ?1 AND product_code = ?2",
        (Some(_), None) => "WHERE seller_account = ?1 AND ?2 IS NULL",
        (None, Some(_)) => "WHERE ?1 IS NULL AND product_code = ?2",
        (None, None) => "WHERE ?1 IS NULL AND ?2 IS NULL",
    };
    let sql = format!(
        "SELECT {} FROM usage_records {filter} ORDER BY hour, id LIMIT ?3",
        rows::USAGE_COLS
    );
    all(
        conn,
        &sql,
        params![f.seller_account, f.product_code, limit],
        rows::usage,
    )
}

pub(crate) fn usage_by_key(
    conn: &Connection,
    key: &MeteringKey,
) -> StoreResult<Option<UsageRecordRow>> {
    let (kind, a, b) = key.identity.parts();
    one(
        conn,
        &format!(
            "SELECT {} FROM usage_records WHERE seller_account = ?1 AND identity_kind = ?2 \
             AND identity_a = ?3 AND identity_b = ?4 AND dimension = ?5 AND hour = ?6",
            rows::USAGE_COLS
        ),
        params![key.seller_account, kind, a, b, key.dimension, key.hour],
        rows::usage,
    )
}

pub(crate) fn container_sessions(
    conn: &Connection,
    f: &ContainerFilter,
) -> StoreResult<Vec<ContainerSession>> {
    all(
        conn,
        &format!(
            "SELECT {} FROM container_sessions WHERE (?1 IS NULL OR seller_account = ?1) \
             AND (?2 IS NULL OR product_code = ?2) \
             AND (?3 IS NULL OR customer_account = ?3) \
             AND (?4 IS NULL OR resource_id = ?4) \
             AND (?5 IS NULL OR (stopped_us IS NULL) = ?5) \
             AND (?6 IS NULL OR first_registered_us < ?6) \
             AND (?7 IS NULL OR stopped_us IS NULL OR stopped_us >= ?7) \
             ORDER BY first_registered_us, product_code, resource_id, run LIMIT ?8",
            rows::CONTAINER_SESSION_COLS
        ),
        params![
            f.seller_account,
            f.product_code,
            f.customer_account,
            f.resource_id,
            f.running,
            f.started_before.map(rows::to_us),
            f.stopped_since.map(rows::to_us),
            // SQLite reads a negative limit as none.
            f.limit.map_or(-1, i64::from),
        ],
        rows::container_session,
    )
}
