//! The audit trail's SQL on SQLite (the PostgreSQL twin is `postgres/audit.rs`): one prepared
//! INSERT per call, run inside the write command of the change it describes or on its own.

use crate::rows::{db_err, from_us, to_us, SqlResult};
use marketmeter_domain::audit::{AuditEvent, AuditFilter, AuditOutcome, AuditRecord};
use marketmeter_domain::store::StoreResult;
use r2d2_sqlite::rusqlite::types::Type;
use r2d2_sqlite::rusqlite::{params, Connection, Error, Row};

/// The columns of an event, in the order of the INSERT's parameters and of [`record`] (a
/// macro so that the hot INSERTs are string literals, not formatted per call).
macro_rules! audit_cols {
    () => {
        "time_us, operation, account, access_key_id, source_ip, user_agent, region, \
         request_id, request_parameters, outcome, error_code"
    };
}
pub(crate) use audit_cols;

pub(crate) const COLS: &str = audit_cols!();

const INSERT: &str = concat!(
    "INSERT INTO audit_events (",
    audit_cols!(),
    ") VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)"
);

pub(crate) fn insert(conn: &Connection, e: &AuditEvent) -> StoreResult<()> {
    conn.prepare_cached(INSERT)
        .and_then(|mut s| {
            s.execute(params![
                to_us(e.time),
                e.operation,
                e.account,
                e.access_key_id,
                e.source_ip,
                e.user_agent,
                e.region,
                e.request_id,
                e.request_parameters,
                e.outcome.as_str(),
                e.error_code,
            ])
        })
        .map(|_| ())
        .map_err(db_err)
}

/// Bounds of a filter as SQL parameters: (after, from, to, limit); absent bounds are open.
pub(crate) fn bounds(f: &AuditFilter) -> (i64, i64, i64, i64) {
    (
        f.after.unwrap_or(i64::MIN),
        f.from.map_or(i64::MIN, to_us),
        f.to.map_or(i64::MAX, to_us),
        i64::from(f.page_size()),
    )
}

pub(crate) fn query(conn: &Connection, f: &AuditFilter) -> StoreResult<Vec<AuditRecord>> {
    let (after, from, to, limit) = bounds(f);
    conn.prepare_cached(&format!(
        "SELECT seq, {COLS} FROM audit_events \
         WHERE seq > ?1 AND time_us >= ?2 AND time_us < ?3 \
         AND (?4 IS NULL OR operation = ?4) AND (?5 IS NULL OR account = ?5) \
         ORDER BY seq LIMIT ?6"
    ))
    .and_then(|mut s| {
        s.query_map(
            params![after, from, to, f.operation, f.account, limit],
            record,
        )?
        .collect()
    })
    .map_err(db_err)
}

fn record(r: &Row<'_>) -> SqlResult<AuditRecord> {
    let outcome: String = r.get(10)?;
    Ok(AuditRecord {
        seq: r.get(0)?,
        event: AuditEvent {
            time: from_us(1, r.get(1)?)?,
            operation: r.get(2)?,
            account: r.get(3)?,
            access_key_id: r.get(4)?,
            source_ip: r.get(5)?,
            user_agent: r.get(6)?,
            region: r.get(7)?,
            request_id: r.get(8)?,
            request_parameters: r.get(9)?,
            outcome: AuditOutcome::parse(&outcome).ok_or_else(|| {
                Error::FromSqlConversionFailure(10, Type::Text, "unknown audit outcome".into())
            })?,
            error_code: r.get(11)?,
        },
    })
}
