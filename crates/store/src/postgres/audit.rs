//! The audit trail's SQL on PostgreSQL, mirroring `crate::audit` (SQLite). Events are
//! written without extra round trips where the hot path runs: pipelined beside the usage
//! INSERT, or folded into the statement of the change as a data-modifying CTE.

use super::rows::{from_us, get};
use super::Db;
use crate::audit::{audit_cols, bounds, COLS};
use crate::rows::to_us;
use deadpool_postgres::GenericClient;
use marketmeter_domain::audit::{AuditEvent, AuditFilter, AuditOutcome, AuditRecord};
use marketmeter_domain::store::{StoreError, StoreResult};
use tokio_postgres::types::ToSql;
use tokio_postgres::Row;

const INSERT: &str = concat!(
    "INSERT INTO audit_events (",
    audit_cols!(),
    ") VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)"
);

/// An event's column values as statement parameters ($1..$11, in [`COLS`] order).
pub(crate) struct Bound<'a> {
    time_us: i64,
    outcome: &'static str,
    e: &'a AuditEvent,
}

impl<'a> Bound<'a> {
    pub(crate) fn new(e: &'a AuditEvent) -> Self {
        Self {
            time_us: to_us(e.time),
            outcome: e.outcome.as_str(),
            e,
        }
    }

    pub(crate) fn params(&self) -> Vec<&(dyn ToSql + Sync)> {
        let e = self.e;
        vec![
            &self.time_us,
            &e.operation,
            &e.account,
            &e.access_key_id,
            &e.source_ip,
            &e.user_agent,
            &e.region,
            &e.request_id,
            &e.request_parameters,
            &self.outcome,
            &e.error_code,
        ]
    }
}

pub(crate) async fn insert<C: GenericClient>(db: &Db<'_, C>, e: &AuditEvent) -> StoreResult<()> {
    let b = Bound::new(e);
    db.execute(INSERT, &b.params()).await.map(|_| ())
}

/// The single-use token compare-and-set and its event in ONE statement (autocommit): the
/// event's outcome is picked in SQL between the two settlements computed here, so the rule
/// stays in the domain.
pub(crate) async fn consume_token<C: GenericClient>(
    db: &Db<'_, C>,
    token: &str,
    at_us: i64,
    event: AuditEvent,
) -> StoreResult<bool> {
    let used = event.clone().settle_consume(true);
    let refused = event.settle_consume(false);
    let b = Bound::new(&used);
    let refused_outcome = refused.outcome.as_str();
    // $10 and $11 are the outcome and error code if the token is consumed; $14 and $15 if not.
    let mut p = b.params();
    p.extend([
        &at_us as &(dyn ToSql + Sync),
        &token,
        &refused_outcome,
        &refused.error_code,
    ]);
    let rows = db
        .query(
            &format!(
                "WITH used AS ( \
                     UPDATE registration_tokens SET used_us = $12 \
                     WHERE token = $13 AND used_us IS NULL RETURNING 1 \
                 ), event AS ( \
                     INSERT INTO audit_events ({COLS}) \
                     SELECT $1, $2, $3, $4, $5, $6, $7, $8, $9, \
                         CASE WHEN EXISTS (SELECT 1 FROM used) THEN $10::text ELSE $14::text END, \
                         CASE WHEN EXISTS (SELECT 1 FROM used) THEN $11::text ELSE $15::text END \
                 ) \
                 SELECT EXISTS (SELECT 1 FROM used)"
            ),
            &p,
        )
        .await?;
    let row = rows
        .first()
        .ok_or_else(|| StoreError::Unavailable("postgres: no row".into()))?;
    get(row, 0)
}

/// `sql`, one statement with parameters `$1..$n`, preceded by a data-modifying CTE that inserts
/// the event from parameters `$n+1..$n+11` ([`Bound::params`]): the change and its event in ONE
/// statement (autocommit), at no extra round trip.
pub(crate) fn with_event(sql: &str, n: usize) -> String {
    let values: Vec<String> = (n + 1..=n + 11).map(|i| format!("${i}")).collect();
    format!(
        "WITH audit_event AS (INSERT INTO audit_events ({COLS}) VALUES ({})) {sql}",
        values.join(", ")
    )
}

pub(crate) async fn query<C: GenericClient>(
    db: &Db<'_, C>,
    f: &AuditFilter,
) -> StoreResult<Vec<AuditRecord>> {
    let (after, from, to, limit) = bounds(f);
    db.query(
        &format!(
            "SELECT seq, {COLS} FROM audit_events \
             WHERE seq > $1 AND time_us >= $2 AND time_us < $3 \
             AND ($4::text IS NULL OR operation = $4) AND ($5::text IS NULL OR account = $5) \
             ORDER BY seq LIMIT $6"
        ),
        &[&after, &from, &to, &f.operation, &f.account, &limit],
    )
    .await?
    .iter()
    .map(record)
    .collect()
}

fn record(r: &Row) -> StoreResult<AuditRecord> {
    let outcome: String = get(r, 10)?;
    Ok(AuditRecord {
        seq: get(r, 0)?,
        event: AuditEvent {
            time: from_us(1, get(r, 1)?)?,
            operation: get(r, 2)?,
            account: get(r, 3)?,
            access_key_id: get(r, 4)?,
            source_ip: get(r, 5)?,
            user_agent: get(r, 6)?,
            region: get(r, 7)?,
            request_id: get(r, 8)?,
            request_parameters: get(r, 9)?,
            outcome: AuditOutcome::parse(&outcome).ok_or_else(|| {
                StoreError::Unavailable("postgres: bad value in column 10: unknown outcome".into())
            })?,
            error_code: get(r, 11)?,
        },
    })
}
