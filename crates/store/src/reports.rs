//! Report aggregation on SQLite: GROUP BY in SQL over the covering index
//! `usage_records_report` (migration 0002), so a product's range is read from the index alone.
//! Groups without customers or tags come from the hourly rollup `usage_hourly` (migration
//! 0005, kept equal to the records by [`crate::rollup`]): one row per product, hour and
//! dimension instead of one per record.

use crate::rows::{db_err, SqlResult};
use marketmeter_domain::reports::{Grain, GroupQuery, UsageGroup};
use marketmeter_domain::store::StoreResult;
use marketmeter_wire::Quantity;
use r2d2_sqlite::rusqlite::{params_from_iter, types::Value, Connection, Row};

/// The buyer a report shows: the AWS account id, or the legacy CustomerIdentifier.
const CUSTOMER: &str = "COALESCE(u.customer_aws_account_id, u.customer_identifier, '')";

/// `WHERE` for the range and the optional filters, with their parameters in order. One
/// statement text per filter shape, so the planner sees plain equalities it can index.
fn filters(q: &GroupQuery) -> (String, Vec<Value>) {
    let mut sql = String::from("u.hour >= ?1 AND u.hour < ?2");
    let mut p = vec![Value::Integer(q.from_hour), Value::Integer(q.to_hour)];
    if let Some(s) = &q.seller_account {
        p.push(Value::Text(s.clone()));
        // With a product, unary + keeps the planner on the covering report index instead of
        // the (seller, product, hour) listing index, which would need a table lookup per row.
        let plus = if q.product_code.is_some() { "+" } else { "" };
        sql.push_str(&format!(" AND {plus}u.seller_account = ?{}", p.len()));
    }
    if let Some(c) = &q.product_code {
        p.push(Value::Text(c.clone()));
        sql.push_str(&format!(" AND u.product_code = ?{}", p.len()));
    }
    (sql, p)
}

/// Exact micro-units of a canonical decimal string `q` ("12", "0.5"): integer arithmetic on
/// its two parts (SQLite has no decimal type, and REAL would round).
fn micros(q: &str) -> String {
    format!(
        "CASE WHEN instr({q}, '.') = 0 THEN CAST({q} AS INTEGER) * 1000000 \
         ELSE CAST(substr({q}, 1, instr({q}, '.') - 1) AS INTEGER) * 1000000 \
            + CAST(substr(substr({q}, instr({q}, '.') + 1) || '000000', 1, 6) AS INTEGER) END"
    )
}

/// Whether `q` can be answered from the hourly rollup (it has no customer or tag column).
pub(crate) fn from_rollup(q: &GroupQuery) -> bool {
    !q.by_customer && q.tag_key.is_none()
}

pub(crate) fn usage_groups(c: &Connection, q: &GroupQuery) -> StoreResult<Vec<UsageGroup>> {
    let (filter, mut p) = filters(q);
    if from_rollup(q) {
        let bucket = match q.grain {
            Grain::Hour => "u.hour",
            Grain::Day => "u.hour - (u.hour % 24)",
        };
        let sql = format!(
            "SELECT {bucket}, u.product_code, '', u.dimension, NULL, SUM(u.quantity), \
                    SUM(u.records) \
             FROM usage_hourly u WHERE {filter} \
             GROUP BY u.product_code, {bucket}, u.dimension"
        );
        return c
            .prepare_cached(&sql)
            .and_then(|mut s| s.query_map(params_from_iter(p), group)?.collect())
            .map_err(db_err);
    }
    // Hour grain groups on the raw column, in the index's order (product_code, hour,
    // customer columns, dimension; migration 0006): SQLite then aggregates while it reads,
    // with no sort.
    let bucket = match q.grain {
        Grain::Hour => "u.hour",
        Grain::Day => "u.hour - (u.hour % 24)",
    };
    let (customer, customer_cols) = if q.by_customer {
        (
            CUSTOMER,
            " u.customer_aws_account_id, u.customer_identifier,",
        )
    } else {
        ("''", "")
    };
    let sql = match &q.tag_key {
        None => format!(
            "SELECT {bucket}, u.product_code, {customer}, u.dimension, NULL, \
                    SUM(u.quantity), COUNT(*) \
             FROM usage_records u WHERE {filter} \
             GROUP BY u.product_code, {bucket},{customer_cols} u.dimension"
        ),
        Some(key) => {
            p.push(Value::Text(key.clone()));
            format!(
                "WITH alloc AS ( \
                   SELECT {bucket} AS bucket, u.product_code, {customer} AS customer, \
                          u.dimension, u.id, \
                          t.value ->> 'value' AS tag_value, a.value ->> 'quantity' AS q \
                   FROM usage_records u, json_each(u.allocations) a, \
                        json_each(a.value, '$.tags') t \
                   WHERE {filter} AND u.allocations <> '[]' AND t.value ->> 'key' = ?{n}) \
                 SELECT bucket, product_code, customer, dimension, tag_value, SUM({m}), \
                        COUNT(DISTINCT id) \
                 FROM alloc GROUP BY bucket, product_code, customer, dimension, tag_value",
                n = p.len(),
                m = micros("q"),
            )
        }
    };
    c.prepare_cached(&sql)
        .and_then(|mut s| s.query_map(params_from_iter(p), group)?.collect())
        .map_err(db_err)
}

fn group(r: &Row<'_>) -> SqlResult<UsageGroup> {
    Ok(UsageGroup {
        bucket_hour: r.get(0)?,
        product_code: r.get(1)?,
        customer: r.get(2)?,
        dimension: r.get(3)?,
        tag_value: r.get(4)?,
        quantity: Quantity::from_micros(r.get::<_, i64>(5)?.max(0) as u64),
        records: r.get::<_, i64>(6)?.max(0) as u64,
    })
}
