//! The usage write path: a whole batch in a fixed number of statements, whatever its size.
//!
//! 1. One `INSERT ... SELECT FROM UNNEST(arrays) ... ON CONFLICT (dedup key) DO NOTHING
//!    RETURNING key`: every row of the batch is offered at once. The batch's audit event is
//!    inserted by the same statement (a data-modifying CTE), and the statement runs in
//!    autocommit: records and event are durable together when its one round trip returns
//!    ([`commit_batch`]).
//! 2. One `SELECT` over `UNNEST(keys)` joined with `usage_records` for the keys that were not
//!    inserted (skipped when every key was inserted). It runs after that commit, in its own
//!    statement: a key is "not inserted" only when a committed row holds it (see below), and
//!    a committed usage row is never changed.
//! 3. Outcomes are computed in batch order in memory.
//!
//! Why READ COMMITTED is enough: when another transaction has inserted the same key and not yet
//! committed, `ON CONFLICT` waits for it. If it commits, our row is skipped, and the following
//! SELECT, which in READ COMMITTED takes a fresh snapshot, sees the committed row. If it rolls
//! back, our row is inserted. A row, once committed, is never deleted, so "not inserted"
//! always means "a committed row with the key exists" by the time step 2 runs.
//!
//! Deadlocks: two batches inserting overlapping keys in different orders could wait on each
//! other. The INSERT therefore processes rows sorted by the dedup key (a total order shared by
//! every transaction), so waits always go from smaller to larger keys and cannot form a cycle.
//! Listing order ("insertion order") is kept anyway: the BIGSERIAL id is drawn in batch order
//! before the sort.

use super::audit::Bound;
use super::rows::quantity_from;
use super::Db;
use crate::audit::audit_cols;
use crate::rows::{allocations_json, quantity_sql, to_us};
use deadpool_postgres::GenericClient;
use marketmeter_domain::audit::AuditEvent;
use marketmeter_domain::dedup::is_retry;
use marketmeter_domain::model::*;
use marketmeter_domain::store::{StoreError, StoreResult, UsageOutcome};
use marketmeter_wire::Quantity;
use std::collections::{HashMap, HashSet};
use std::sync::LazyLock;
use tokio_postgres::types::ToSql;

/// (seller, kind, a, b, dimension, hour): the dedup key as stored.
type Key = (String, String, String, String, String, i64);

fn key_of(r: &UsageRecordRow) -> Key {
    let (kind, a, b) = r.key.identity.parts();
    (
        r.key.seller_account.clone(),
        kind.to_string(),
        a.to_string(),
        b.to_string(),
        r.key.dimension.clone(),
        r.key.hour,
    )
}

/// Offers the rows ($1..$18); see the module docs.
const INSERT_BATCH: &str = "\
INSERT INTO usage_records (id, metering_record_id, seller_account, identity_kind, identity_a, \
    identity_b, dimension, hour, product_code, customer_identifier, customer_aws_account_id, \
    license_arn, resource_id, ts_secs, ts_nanos, quantity, allocations, operation, received_us) \
SELECT id, rid, seller, kind, a, b, dim, hour, product, ci, caid, arn, res, secs, nanos, qty, \
    alloc, op, recv \
FROM ( \
    SELECT u.*, nextval('usage_records_id_seq') AS id \
    FROM UNNEST($1::text[], $2::text[], $3::text[], $4::text[], $5::text[], $6::text[], \
        $7::bigint[], $8::text[], $9::text[], $10::text[], $11::text[], $12::text[], \
        $13::bigint[], $14::bigint[], $15::bigint[], $16::text[], $17::text[], $18::bigint[]) \
        WITH ORDINALITY AS u(rid, seller, kind, a, b, dim, hour, product, ci, caid, arn, res, \
            secs, nanos, qty, alloc, op, recv, ord) \
    ORDER BY u.ord \
) s \
ORDER BY seller COLLATE \"C\", kind COLLATE \"C\", a COLLATE \"C\", b COLLATE \"C\", \
    dim COLLATE \"C\", hour, ord \
ON CONFLICT (seller_account, identity_kind, identity_a, identity_b, dimension, hour) DO NOTHING \
RETURNING seller_account, identity_kind, identity_a, identity_b, dimension, hour";

/// [`INSERT_BATCH`] with the audit event's INSERT ($19..$29) as a data-modifying CTE: one
/// statement, hence one transaction in autocommit.
static INSERT_BATCH_AUDITED: LazyLock<String> = LazyLock::new(|| {
    let values: Vec<String> = (19..=29).map(|i| format!("${i}")).collect();
    format!(
        "WITH audit AS (INSERT INTO audit_events ({}) VALUES ({})) {INSERT_BATCH}",
        audit_cols!(),
        values.join(", ")
    )
});

const SELECT_EXISTING: &str = "\
SELECT u.seller_account, u.identity_kind, u.identity_a, u.identity_b, u.dimension, u.hour, \
    u.metering_record_id, u.quantity \
FROM UNNEST($1::text[], $2::text[], $3::text[], $4::text[], $5::text[], $6::bigint[]) \
    AS k(seller, kind, a, b, dim, hour) \
JOIN usage_records u ON u.seller_account = k.seller AND u.identity_kind = k.kind \
    AND u.identity_a = k.a AND u.identity_b = k.b AND u.dimension = k.dim AND u.hour = k.hour";

fn key_from_row(r: &tokio_postgres::Row) -> StoreResult<Key> {
    let bad = |e: tokio_postgres::Error| StoreError::Unavailable(format!("postgres: {e}"));
    Ok((
        r.try_get(0).map_err(bad)?,
        r.try_get(1).map_err(bad)?,
        r.try_get(2).map_err(bad)?,
        r.try_get(3).map_err(bad)?,
        r.try_get(4).map_err(bad)?,
        r.try_get(5).map_err(bad)?,
    ))
}

/// Offers `rows` in order and appends `event`, in ONE autocommitted statement (so `db` must not
/// be inside a transaction): when it returns, records and event are committed together, or
/// neither is. Then reads the rows of the keys that were already taken, if any.
pub(crate) async fn commit_batch<C: GenericClient>(
    db: &Db<'_, C>,
    rows: &[UsageRecordRow],
    event: &AuditEvent,
) -> StoreResult<Vec<UsageOutcome>> {
    offer(db, rows, Some(event)).await
}

/// Offers `rows` in order (see the module docs), without an event. Runs inside the caller's
/// transaction.
pub(crate) async fn offer_usage<C: GenericClient>(
    db: &Db<'_, C>,
    rows: &[UsageRecordRow],
) -> StoreResult<Vec<UsageOutcome>> {
    offer(db, rows, None).await
}

async fn offer<C: GenericClient>(
    db: &Db<'_, C>,
    rows: &[UsageRecordRow],
    event: Option<&AuditEvent>,
) -> StoreResult<Vec<UsageOutcome>> {
    if rows.is_empty() {
        return Ok(Vec::new());
    }
    let n = rows.len();
    let keys: Vec<Key> = rows.iter().map(key_of).collect();
    let mut rid = Vec::with_capacity(n);
    let mut product = Vec::with_capacity(n);
    let mut ci = Vec::with_capacity(n);
    let mut caid = Vec::with_capacity(n);
    let mut arn = Vec::with_capacity(n);
    let mut res = Vec::with_capacity(n);
    let mut secs = Vec::with_capacity(n);
    let mut nanos = Vec::with_capacity(n);
    let mut qty = Vec::with_capacity(n);
    let mut alloc = Vec::with_capacity(n);
    let mut op = Vec::with_capacity(n);
    let mut recv = Vec::with_capacity(n);
    for r in rows {
        rid.push(r.metering_record_id.as_str());
        product.push(r.product_code.as_str());
        ci.push(r.customer_identifier.as_deref());
        caid.push(r.customer_aws_account_id.as_deref());
        arn.push(r.license_arn.as_deref());
        res.push(r.resource_id.as_deref());
        secs.push(r.timestamp.secs);
        nanos.push(i64::from(r.timestamp.nanos));
        qty.push(quantity_sql(r.quantity)?);
        alloc.push(allocations_json(&r.allocations)?);
        op.push(r.operation.as_str());
        recv.push(to_us(r.received_at));
    }
    let (seller, kind, a, b, dim, hour) = columns(keys.iter());
    let bound = event.map(Bound::new);
    let mut params: Vec<&(dyn ToSql + Sync)> = vec![
        &rid, &seller, &kind, &a, &b, &dim, &hour, &product, &ci, &caid, &arn, &res, &secs, &nanos,
        &qty, &alloc, &op, &recv,
    ];
    let sql = match &bound {
        Some(bound) => {
            params.extend(bound.params());
            INSERT_BATCH_AUDITED.as_str()
        }
        None => INSERT_BATCH,
    };
    let inserted: HashSet<Key> = db
        .query(sql, &params)
        .await?
        .iter()
        .map(key_from_row)
        .collect::<StoreResult<_>>()?;

    // Keys that already had a row: one SELECT for all of them.
    let mut wanted: Vec<&Key> = keys.iter().filter(|k| !inserted.contains(*k)).collect();
    wanted.sort_unstable();
    wanted.dedup();
    let mut existing: HashMap<Key, (String, Quantity)> = HashMap::new();
    if !wanted.is_empty() {
        let (seller, kind, a, b, dim, hour) = columns(wanted.into_iter());
        for r in db
            .query(SELECT_EXISTING, &[&seller, &kind, &a, &b, &dim, &hour])
            .await?
        {
            let id: String = r
                .try_get(6)
                .map_err(|e| StoreError::Unavailable(format!("postgres: {e}")))?;
            let q: i64 = r
                .try_get(7)
                .map_err(|e| StoreError::Unavailable(format!("postgres: {e}")))?;
            existing.insert(key_from_row(&r)?, (id, quantity_from(7, q)?));
        }
    }

    // In batch order: the first row of an inserted key is the stored one; every other row of
    // a key meets the stored row (from this batch or from before).
    let mut out = Vec::with_capacity(n);
    for (row, key) in rows.iter().zip(keys) {
        if inserted.contains(&key) && !existing.contains_key(&key) {
            out.push(UsageOutcome::Stored {
                metering_record_id: row.metering_record_id.clone(),
            });
            existing.insert(key, (row.metering_record_id.clone(), row.quantity));
            continue;
        }
        let (id, stored) = existing.get(&key).ok_or_else(|| {
            StoreError::Unavailable("postgres: a conflicting usage row was not found".into())
        })?;
        let metering_record_id = id.clone();
        out.push(if is_retry(*stored, row.quantity) {
            UsageOutcome::Retry { metering_record_id }
        } else {
            UsageOutcome::Duplicate { metering_record_id }
        });
    }
    Ok(out)
}

type Columns<'a> = (
    Vec<&'a str>,
    Vec<&'a str>,
    Vec<&'a str>,
    Vec<&'a str>,
    Vec<&'a str>,
    Vec<i64>,
);

fn columns<'a>(keys: impl Iterator<Item = &'a Key>) -> Columns<'a> {
    let mut c: Columns<'a> = Default::default();
    for k in keys {
        c.0.push(&k.0);
        c.1.push(&k.1);
        c.2.push(&k.2);
        c.3.push(&k.3);
        c.4.push(&k.4);
        c.5.push(k.5);
    }
    c
}
