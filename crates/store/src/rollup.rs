//! The hourly usage rollup on SQLite (`usage_hourly`, migration 0005): every stored usage
//! record adds its quantity here in the same transaction, so reports without customers or tags
//! can read one row per product, hour and dimension (src/reports.rs) and still equal the
//! records. Usage records are only ever inserted (here) or deleted all at once (reset).

use crate::rows::{db_err, quantity_sql};
use marketmeter_domain::model::UsageRecordRow;
use marketmeter_domain::store::StoreResult;
use r2d2_sqlite::rusqlite::{params, Connection};

/// Adds a just-stored record to its hour (call it right after the record's INSERT).
pub(crate) fn add(conn: &Connection, row: &UsageRecordRow) -> StoreResult<()> {
    let quantity = quantity_sql(row.quantity)?;
    conn.prepare_cached(
        "INSERT INTO usage_hourly (product_code, hour, dimension, seller_account, quantity, \
         records) VALUES (?1, ?2, ?3, ?4, ?5, 1) \
         ON CONFLICT (product_code, hour, dimension, seller_account) DO UPDATE \
         SET quantity = quantity + excluded.quantity, records = records + 1",
    )
    .and_then(|mut s| {
        s.execute(params![
            row.product_code,
            row.key.hour,
            row.key.dimension,
            row.key.seller_account,
            quantity,
        ])
    })
    .map(|_| ())
    .map_err(db_err)
}

/// Empties the rollup (with the records, in the same transaction).
pub(crate) fn clear(conn: &Connection) -> StoreResult<()> {
    conn.prepare_cached("DELETE FROM usage_hourly")
        .and_then(|mut s| s.execute([]))
        .map(|_| ())
        .map_err(db_err)
}
