//! The SQLite store's in-process cache of catalog reads (access keys, products, agreements):
//! the metering hot path reads them on every request, and they change rarely.
//!
//! Why it is never stale: this process owns the SQLite file and every write goes through its
//! one writer thread. The writer empties the cache after each group that ran any write other
//! than metering (usage, client tokens, registration tokens, sessions), right after COMMIT and
//! before answering its callers ([`crate::writer`]); a write is "catalog" unless it says
//! otherwise, so a new kind of write cannot forget to invalidate.
//!
//! A read racing such a write must not put the old value back: each load notes the generation
//! before it reads the database and stores its result only if no invalidation happened since.
//! A load that read before the COMMIT either stored its value before the invalidation (which
//! then removes it) or finds the generation moved (and stores nothing).
//!
//! It relies on one process per SQLite file (docs/scaling.md): another process's catalog writes
//! do not empty this cache. PostgreSQL stores do not use it: several processes write one
//! database there.

use std::collections::HashMap;
use std::future::Future;
use std::hash::Hash;
use std::sync::{Arc, Mutex, MutexGuard};

use marketmeter_domain::model::{AccessKey, Agreement, Product};
use marketmeter_domain::store::StoreResult;

/// Entries kept per map before it is emptied: bounds memory against lookups of random names
/// (unknown access keys are cached too, as `None`).
const MAX_ENTRIES: usize = 50_000;

#[derive(Default)]
pub(crate) struct Maps {
    generation: u64,
    pub access_keys: HashMap<String, Option<AccessKey>>,
    pub products: HashMap<String, Option<Arc<Product>>>,
    pub licenses: HashMap<String, Option<Agreement>>,
    /// (product code, customer account)
    pub by_customer: HashMap<(String, String), Vec<Agreement>>,
    /// (product code, customer identifier)
    pub by_identifier: HashMap<(String, String), Vec<Agreement>>,
    pub identifier_exists: HashMap<String, bool>,
}

/// Picks one map of [`Maps`].
pub(crate) type Pick<K, V> = fn(&mut Maps) -> &mut HashMap<K, V>;

#[derive(Default)]
pub(crate) struct CatalogCache {
    maps: Mutex<Maps>,
}

impl CatalogCache {
    fn lock(&self) -> MutexGuard<'_, Maps> {
        // The maps hold plain data: a panic elsewhere cannot leave them inconsistent.
        self.maps.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The cached value under `key`, else `load()`'s (cached unless the catalog changed
    /// meanwhile).
    pub async fn get<K, V, F, Fut>(&self, pick: Pick<K, V>, key: K, load: F) -> StoreResult<V>
    where
        K: Hash + Eq,
        V: Clone,
        F: FnOnce() -> Fut,
        Fut: Future<Output = StoreResult<V>>,
    {
        let generation = {
            let mut maps = self.lock();
            if let Some(v) = pick(&mut maps).get(&key) {
                return Ok(v.clone());
            }
            maps.generation
        };
        let value = load().await?;
        let mut maps = self.lock();
        if maps.generation == generation {
            let map = pick(&mut maps);
            if map.len() >= MAX_ENTRIES {
                map.clear();
            }
            map.insert(key, value.clone());
        }
        Ok(value)
    }

    /// Forgets everything; loads that started before do not store their results.
    pub fn invalidate(&self) {
        let mut maps = self.lock();
        let generation = maps.generation.wrapping_add(1);
        *maps = Maps {
            generation,
            ..Maps::default()
        };
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn caches_until_invalidated() {
        let cache = CatalogCache::default();
        let get = |v: u64| {
            let cache = &cache;
            async move {
                cache
                    .get(
                        |m| &mut m.identifier_exists,
                        "c".to_string(),
                        || async move { Ok(v == 1) },
                    )
                    .await
                    .unwrap()
            }
        };
        assert!(get(1).await);
        assert!(get(2).await, "second read is served from the cache");
        cache.invalidate();
        assert!(
            !get(2).await,
            "after invalidation the database is read again"
        );
    }

    #[tokio::test]
    async fn a_load_racing_an_invalidation_is_not_stored() {
        let cache = CatalogCache::default();
        let stale = cache
            .get(
                |m| &mut m.identifier_exists,
                "c".to_string(),
                || async {
                    // The catalog changes while this load reads the old value.
                    cache.invalidate();
                    Ok(true)
                },
            )
            .await
            .unwrap();
        assert!(stale, "the racing caller gets what it read");
        let fresh = cache
            .get(
                |m| &mut m.identifier_exists,
                "c".to_string(),
                || async { Ok(false) },
            )
            .await
            .unwrap();
        assert!(!fresh, "but the old value was not kept");
    }
}
