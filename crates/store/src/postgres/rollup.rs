//! Folding the hourly rollup's append-only delta into `usage_hourly` (migration 0005).
//!
//! Writers only append to `usage_hourly_delta`, so they never wait on each other's rollup rows;
//! every store folds the delta in the background as usage flows ([`Folder`]). Reports add both tables, so folding changes
//! no report: it only keeps the delta short. One process folds at a time (a transaction-level
//! advisory lock, tried, not waited for); rows move with `DELETE ... RETURNING` in the same
//! transaction as the upsert, so each delta row is counted exactly once.

use super::pg_err;
use deadpool_postgres::Pool;
use marketmeter_domain::store::{StoreError, StoreResult};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;

/// Usage transactions of this process between two folds: keeps the delta short while usage
/// flows, and an idle server does nothing.
pub(crate) const FOLD_EVERY: u64 = 64;

/// Advisory lock key held while folding ("mmrollup" in ASCII).
const FOLD_LOCK: i64 = 0x6d6d_726f_6c6c_7570;

const FOLD: &str = "\
WITH moved AS ( \
    DELETE FROM usage_hourly_delta \
    RETURNING product_code, hour, dimension, seller_account, quantity, records \
) \
INSERT INTO usage_hourly AS h (product_code, hour, dimension, seller_account, quantity, records) \
SELECT product_code, hour, dimension, seller_account, SUM(quantity), SUM(records) \
FROM moved GROUP BY product_code, hour, dimension, seller_account \
ON CONFLICT (product_code, hour, dimension, seller_account) DO UPDATE \
SET quantity = h.quantity + excluded.quantity, records = h.records + excluded.records";

/// Folds the whole visible delta; returns the rollup rows written (0 when another process
/// was folding).
pub(crate) async fn fold(pool: &Pool) -> StoreResult<u64> {
    let mut c = pool
        .get()
        .await
        .map_err(|e| StoreError::Unavailable(format!("postgres pool: {e}")))?;
    let tx = c.transaction().await.map_err(pg_err)?;
    let locked: bool = tx
        .query_one("SELECT pg_try_advisory_xact_lock($1)", &[&FOLD_LOCK])
        .await
        .map_err(pg_err)?
        .get(0);
    if !locked {
        return Ok(0);
    }
    let st = tx.prepare_cached(FOLD).await.map_err(pg_err)?;
    let n = tx.execute(&st, &[]).await.map_err(pg_err)?;
    tx.commit().await.map_err(pg_err)?;
    Ok(n)
}

/// Starts a fold in the background after every [`FOLD_EVERY`] usage transactions, unless
/// this process's previous fold is still running.
pub(crate) struct Folder {
    pool: Pool,
    commits: AtomicU64,
    running: Arc<AtomicBool>,
}

impl Folder {
    pub fn new(pool: Pool) -> Self {
        Self {
            pool,
            commits: AtomicU64::new(0),
            running: Arc::new(AtomicBool::new(false)),
        }
    }

    /// Called after each usage transaction.
    pub fn after_usage_commit(&self) {
        if self.commits.fetch_add(1, Ordering::Relaxed) % FOLD_EVERY != FOLD_EVERY - 1
            || self.running.swap(true, Ordering::AcqRel)
        {
            return;
        }
        let (pool, running) = (self.pool.clone(), self.running.clone());
        tokio::spawn(async move {
            if let Err(e) = fold(&pool).await {
                // Reports stay exact without folding; a later fold takes the rows.
                tracing::debug!(error = %e, "folding the usage rollup failed");
            }
            running.store(false, Ordering::Release);
        });
    }
}
