//! `marketmeter_domain::store::Store` on embedded SQLite, and on PostgreSQL ([`PgStore`], for
//! several stateless server processes). [`open_store`] picks one from a database name.
//!
//! SQLite:
//!
//! * One writer thread owns the only write connection and group-commits concurrent writes
//!   (see [`writer`]): many requests, one transaction, one fsync.
//! * Reads use a pool of read-only connections (WAL lets them run beside the writer).
//! * Catalog reads on the metering path are cached in process and the cache is emptied by the
//!   writer after every catalog write ([`catalog_cache`]).
//! * The schema is versioned SQL in `migrations/sqlite/`, applied at open ([`migrate`]).
//! * Durability: WAL with `synchronous=FULL`; nothing is acknowledged before COMMIT returns.
//! * [`SqliteStore::open_in_memory`] gives tests the same store without a file.

mod audit;
mod catalog_cache;
mod database;
mod migrate;
mod postgres;
mod read;
mod reports;
mod rollup;
mod rows;
mod write;
mod writer;

use async_trait::async_trait;
use catalog_cache::CatalogCache;
use marketmeter_domain::audit::{AuditEvent, AuditFilter, AuditRecord};
use marketmeter_domain::model::*;
use marketmeter_domain::store::*;
use r2d2_sqlite::rusqlite::{params, Connection};
use r2d2_sqlite::SqliteConnectionManager;
use read::{all, one, with_reader, Pool};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;
use time::OffsetDateTime;
use writer::{Counters, Writer};

pub use database::{open_store, Database, OpenOptions, Opened};
pub use postgres::{PgOptions, PgStats, PgStore};

/// Tuning knobs; the defaults suit a small server.
#[derive(Debug, Clone)]
pub struct SqliteOptions {
    /// Read connections in the pool.
    pub readers: u32,
    /// How long a connection waits for a lock held by another process before failing.
    pub busy_timeout: Duration,
    /// Most write commands committed in one transaction.
    pub max_batch: usize,
    /// Told about every group commit (metrics).
    pub commit_observer: Option<CommitObserverRef>,
}

impl Default for SqliteOptions {
    fn default() -> Self {
        Self {
            readers: 4,
            busy_timeout: Duration::from_secs(5),
            max_batch: 256,
            commit_observer: None,
        }
    }
}

/// Group-commit counters: `commands / commits` is the average group size.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct StoreStats {
    /// Transactions committed by the writer.
    pub commits: u64,
    /// Write commands processed (committed or failed).
    pub commands: u64,
}

/// The SQLite store. Cheap to share behind an `Arc`; dropping it stops the writer once its
/// queue is empty.
pub struct SqliteStore {
    writer: Writer,
    pool: Pool,
    cache: Arc<CatalogCache>,
    counters: Arc<Counters>,
    path: PathBuf,
    migrations_applied: usize,
}

/// Page cache of the writer connection, KiB.
const WRITER_CACHE_KIB: i64 = 32 * 1024;

/// WAL size (pages) at which the writer's COMMIT checkpoints.
const WAL_AUTOCHECKPOINT_PAGES: i64 = 250;

/// Statements cached per connection; covers every statement the store issues.
const STATEMENT_CACHE: usize = 64;

fn unavailable(what: &str, e: impl std::fmt::Display) -> StoreError {
    StoreError::Unavailable(format!("{what}: {e}"))
}

impl SqliteStore {
    /// Opens (creating if needed) the database at `path`, creating parent directories and
    /// applying pending schema migrations.
    pub async fn open(path: &Path, opts: SqliteOptions) -> Result<SqliteStore, StoreError> {
        let path = path.to_path_buf();
        tokio::task::spawn_blocking(move || {
            if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
                std::fs::create_dir_all(dir)
                    .map_err(|e| unavailable(&format!("cannot create {}", dir.display()), e))?;
            }
            Self::open_blocking(path, opts, true)
        })
        .await
        .map_err(|e| unavailable("open task failed", e))?
    }

    /// Opens a private, empty in-memory database with the same schema, writer thread, group
    /// commit and pooled readers as a file. Nothing survives the drop and there is no WAL (so
    /// readers wait while a group commits): meant for tests and demos, never for real data.
    pub fn open_in_memory(opts: SqliteOptions) -> Result<SqliteStore, StoreError> {
        static NEXT: AtomicU64 = AtomicU64::new(0);
        // The memdb VFS shares a database whose name starts with '/' among this process's
        // connections (the writer and the readers); the counter gives every store its own.
        let uri = format!(
            "file:/marketmeter-{}-{}?vfs=memdb",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        );
        Self::open_blocking(PathBuf::from(uri), opts, false)
    }

    /// `durable`: a file in WAL mode with `synchronous=FULL`; otherwise an in-memory database.
    fn open_blocking(
        path: PathBuf,
        opts: SqliteOptions,
        durable: bool,
    ) -> Result<SqliteStore, StoreError> {
        let mut conn = Connection::open(&path)
            .map_err(|e| unavailable(&format!("cannot open {}", path.display()), e))?;
        configure_writer(&conn, &opts, durable).map_err(|e| unavailable("configure sqlite", e))?;
        let migrations_applied =
            migrate::apply(&mut conn, migrate::SQLITE).map_err(|e| unavailable("migrate", e))?;

        let busy = opts.busy_timeout;
        let manager = SqliteConnectionManager::file(&path).with_init(move |c| {
            c.busy_timeout(busy)?;
            c.set_prepared_statement_cache_capacity(STATEMENT_CACHE);
            // Readers must never write: the writer thread is the only writer by design.
            c.pragma_update(None, "query_only", true)
        });
        // Unchecked: readers open in the background (or on first use) instead of delaying
        // start-up; the writer connection above already proved the file opens.
        let pool = r2d2::Pool::builder()
            .max_size(opts.readers.max(1))
            .min_idle(Some(1))
            .build_unchecked(manager);

        let counters = Arc::new(Counters::default());
        let cache = Arc::new(CatalogCache::default());
        let writer = Writer::spawn(
            conn,
            opts.max_batch,
            counters.clone(),
            opts.commit_observer,
            cache.clone(),
        )
        .map_err(|e| unavailable("cannot start the writer thread", e))?;
        Ok(SqliteStore {
            writer,
            pool,
            cache,
            counters,
            path,
            migrations_applied,
        })
    }

    /// Group-commit counters since open.
    pub fn stats(&self) -> StoreStats {
        StoreStats {
            commits: self.counters.commits.load(Ordering::Relaxed),
            commands: self.counters.commands.load(Ordering::Relaxed),
        }
    }

    /// Schema migrations applied when this store was opened.
    pub fn migrations_applied(&self) -> usize {
        self.migrations_applied
    }

    /// The database file (a `file:` URI for an in-memory store).
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Runs `PRAGMA integrity_check`; `Ok(true)` when SQLite reports "ok".
    pub async fn integrity_check(&self) -> StoreResult<bool> {
        with_reader(&self.pool, |c| {
            let rows: Vec<String> = c
                .prepare("PRAGMA integrity_check")
                .and_then(|mut s| s.query_map([], |r| r.get(0))?.collect())
                .map_err(rows::db_err)?;
            Ok(rows == ["ok"])
        })
        .await
    }

    /// The schema version recorded in `schema_migrations`.
    pub async fn schema_version(&self) -> StoreResult<i64> {
        with_reader(&self.pool, |c| {
            c.query_row(
                "SELECT COALESCE(MAX(version), 0) FROM schema_migrations",
                [],
                |r| r.get(0),
            )
            .map_err(rows::db_err)
        })
        .await
    }
}

fn account_row(r: &r2d2_sqlite::rusqlite::Row<'_>) -> r2d2_sqlite::rusqlite::Result<Account> {
    Ok(Account {
        id: r.get(0)?,
        name: r.get(1)?,
    })
}

fn configure_writer(
    c: &Connection,
    opts: &SqliteOptions,
    durable: bool,
) -> r2d2_sqlite::rusqlite::Result<()> {
    c.busy_timeout(opts.busy_timeout)?;
    c.set_prepared_statement_cache_capacity(STATEMENT_CACHE);
    if !durable {
        return Ok(());
    }
    // WAL: readers run beside the writer. FULL: the WAL is fsynced at every COMMIT, so an
    // acknowledged write survives power loss, not only a process crash.
    let mode: String = c.pragma_update_and_check(None, "journal_mode", "WAL", |r| r.get(0))?;
    if !mode.eq_ignore_ascii_case("wal") {
        tracing::warn!(mode = %mode, "sqlite did not switch to WAL");
    }
    c.pragma_update(None, "synchronous", "FULL")?;
    // Each command runs in a SAVEPOINT, whose undo pages SQLite keeps in a sub-journal: a temp
    // FILE by default, written through the kernel for every page a command touches (the
    // profile in docs/BENCHMARKS.md). In memory instead: the sub-journal only serves ROLLBACK TO
    // inside the open transaction and plays no part in crash recovery (the WAL does).
    c.pragma_update(None, "temp_store", "MEMORY")?;
    // The writer inserts into six B-trees per record (table, unique keys, listing and report
    // indexes, rollup); SQLite's default 2 MB cache re-reads their pages through the kernel once
    // a store holds millions of records. Negative: KiB. Memory is taken only as pages are used.
    c.pragma_update(None, "cache_size", -WRITER_CACHE_KIB)?;
    // SQLite checkpoints inside the COMMIT that takes the WAL past this many pages, before that
    // group's callers hear back, so the checkpoint's size is their extra latency. 250 pages
    // (1 MiB) instead of the default 1000 cut the p99 of BatchMeterUsage from ~10 to ~8 ms and
    // of MeterUsage from ~5.9 to ~3.2 ms at the same throughput; 4000 doubled it
    // (docs/BENCHMARKS.md). Only the writer writes, so only its setting matters.
    c.pragma_update(None, "wal_autocheckpoint", WAL_AUTOCHECKPOINT_PAGES)?;
    Ok(())
}

#[async_trait]
impl Store for SqliteStore {
    async fn access_key(&self, access_key_id: &str) -> StoreResult<Option<AccessKey>> {
        let id = access_key_id.to_string();
        self.cache
            .get(
                |m| &mut m.access_keys,
                id.clone(),
                || async move {
                    with_reader(&self.pool, move |c| {
                        one(
                            c,
                            &format!(
                                "SELECT {} FROM access_keys WHERE access_key_id = ?1",
                                rows::ACCESS_KEY_COLS
                            ),
                            params![id],
                            rows::access_key,
                        )
                    })
                    .await
                },
            )
            .await
    }

    async fn product(&self, code: &str) -> StoreResult<Option<Product>> {
        Ok(self.product_shared(code).await?.map(|p| (*p).clone()))
    }

    async fn product_shared(&self, code: &str) -> StoreResult<Option<Arc<Product>>> {
        let code = code.to_string();
        self.cache
            .get(
                |m| &mut m.products,
                code.clone(),
                || async move {
                    with_reader(&self.pool, move |c| {
                        one(
                            c,
                            &format!(
                                "SELECT {} FROM products WHERE code = ?1 ORDER BY rowid LIMIT 1",
                                rows::PRODUCT_COLS
                            ),
                            params![code],
                            |r| rows::product(r).map(Arc::new),
                        )
                    })
                    .await
                },
            )
            .await
    }

    async fn agreement_by_license(&self, license_arn: &str) -> StoreResult<Option<Agreement>> {
        let arn = license_arn.to_string();
        self.cache
            .get(
                |m| &mut m.licenses,
                arn.clone(),
                || async move {
                    with_reader(&self.pool, move |c| {
                        one(
                            c,
                            &format!(
                        "SELECT {} FROM agreements WHERE license_arn = ?1 ORDER BY rowid LIMIT 1",
                        rows::AGREEMENT_COLS
                    ),
                            params![arn],
                            rows::agreement,
                        )
                    })
                    .await
                },
            )
            .await
    }

    async fn agreements_for_customer(
        &self,
        product_code: &str,
        customer_account: &str,
    ) -> StoreResult<Vec<Agreement>> {
        let (p, a) = (product_code.to_string(), customer_account.to_string());
        self.cache
            .get(|m| &mut m.by_customer, (p.clone(), a.clone()), || async move {
            with_reader(&self.pool, move |c| {
                all(
                    c,
                    &format!(
                        "SELECT {} FROM agreements WHERE product_code = ?1 AND customer_account = ?2 \
                         ORDER BY rowid",
                        rows::AGREEMENT_COLS
                    ),
                    params![p, a],
                    rows::agreement,
                )
            })
                .await
            })
            .await
    }

    async fn agreements_for_identifier(
        &self,
        product_code: &str,
        customer_identifier: &str,
    ) -> StoreResult<Vec<Agreement>> {
        let (p, ci) = (product_code.to_string(), customer_identifier.to_string());
        self.cache
            .get(
                |m| &mut m.by_identifier,
                (p.clone(), ci.clone()),
                || async move {
                    with_reader(&self.pool, move |c| {
                        all(
                            c,
                            &format!(
                                "SELECT {} FROM agreements \
                         WHERE product_code = ?1 AND customer_identifier = ?2 ORDER BY rowid",
                                rows::AGREEMENT_COLS
                            ),
                            params![p, ci],
                            rows::agreement,
                        )
                    })
                    .await
                },
            )
            .await
    }

    async fn customer_identifier_exists(&self, customer_identifier: &str) -> StoreResult<bool> {
        let ci = customer_identifier.to_string();
        self.cache
            .get(
                |m| &mut m.identifier_exists,
                ci.clone(),
                || async move {
                    with_reader(&self.pool, move |c| {
                        c.prepare_cached("SELECT 1 FROM agreements WHERE customer_identifier = ?1")
                            .and_then(|mut s| s.exists(params![ci]))
                            .map_err(rows::db_err)
                    })
                    .await
                },
            )
            .await
    }

    async fn customer_identifier_of(&self, customer_account: &str) -> StoreResult<Option<String>> {
        let a = customer_account.to_string();
        with_reader(&self.pool, move |c| {
            one(
                c,
                "SELECT customer_identifier FROM agreements WHERE customer_account = ?1 \
                 ORDER BY rowid LIMIT 1",
                params![a],
                |r| r.get(0),
            )
        })
        .await
    }

    async fn product_keys(&self, product_code: &str) -> StoreResult<Vec<ProductKey>> {
        let p = product_code.to_string();
        with_reader(&self.pool, move |c| {
            all(
                c,
                &format!(
                    "SELECT {} FROM product_keys WHERE product_code = ?1 ORDER BY version",
                    rows::PRODUCT_KEY_COLS
                ),
                params![p],
                rows::product_key,
            )
        })
        .await
    }

    async fn registration_token(&self, token: &str) -> StoreResult<Option<RegistrationToken>> {
        let t = token.to_string();
        with_reader(&self.pool, move |c| {
            one(
                c,
                &format!(
                    "SELECT {} FROM registration_tokens WHERE token = ?1 LIMIT 1",
                    rows::REGISTRATION_TOKEN_COLS
                ),
                params![t],
                rows::registration_token,
            )
        })
        .await
    }

    async fn container_session(
        &self,
        product_code: &str,
        resource_id: &str,
    ) -> StoreResult<Option<ContainerSession>> {
        let (p, r) = (product_code.to_string(), resource_id.to_string());
        with_reader(&self.pool, move |c| {
            one(
                c,
                &format!(
                    "SELECT {} FROM container_sessions WHERE product_code = ?1 \
                     AND resource_id = ?2 AND stopped_us IS NULL LIMIT 1",
                    rows::CONTAINER_SESSION_COLS
                ),
                params![p, r],
                rows::container_session,
            )
        })
        .await
    }

    async fn list_container_sessions(
        &self,
        filter: &ContainerFilter,
    ) -> StoreResult<Vec<ContainerSession>> {
        let f = filter.clone();
        with_reader(&self.pool, move |c| read::container_sessions(c, &f)).await
    }

    async fn usage_records(&self, filter: &UsageFilter) -> StoreResult<Vec<UsageRecordRow>> {
        let f = filter.clone();
        with_reader(&self.pool, move |c| read::usage_records(c, &f)).await
    }

    async fn usage_by_key(&self, key: &MeteringKey) -> StoreResult<Option<UsageRecordRow>> {
        let k = key.clone();
        with_reader(&self.pool, move |c| read::usage_by_key(c, &k)).await
    }

    async fn client_token(
        &self,
        caller_account: &str,
        client_token: &str,
    ) -> StoreResult<Option<(String, String)>> {
        let (a, t) = (caller_account.to_string(), client_token.to_string());
        with_reader(&self.pool, move |c| write::client_token(c, &a, &t)).await
    }

    // Each metering write inserts its audit event inside its own command, so the event shares
    // the command's savepoint (undone with it) and the group's COMMIT (no extra fsync).
    async fn commit_usage(
        &self,
        rows: Vec<UsageRecordRow>,
        event: AuditEvent,
    ) -> StoreResult<Vec<UsageOutcome>> {
        self.writer
            .call_metering(move |c| {
                let out = write::commit_usage(c, &rows)?;
                audit::insert(c, &event)?;
                Ok(out)
            })
            .await
    }

    async fn commit_meter_usage(
        &self,
        claim: Option<TokenClaim>,
        row: UsageRecordRow,
        event: AuditEvent,
    ) -> StoreResult<MeterOutcome> {
        self.writer
            .call_metering(move |c| {
                let out = write::commit_meter_usage(c, claim.as_ref(), &row)?;
                audit::insert(c, &event.settle_meter(&out))?;
                Ok(out)
            })
            .await
    }

    async fn insert_registration_token(&self, token: &RegistrationToken) -> StoreResult<()> {
        let t = token.clone();
        self.writer
            .call_metering(move |c| write::insert_registration_token(c, &t))
            .await
    }

    async fn consume_registration_token(
        &self,
        token: &str,
        at: OffsetDateTime,
        event: AuditEvent,
    ) -> StoreResult<bool> {
        let (t, at) = (token.to_string(), rows::to_us(at));
        self.writer
            .call_metering(move |c| {
                let consumed = write::consume_registration_token(c, &t, at)?;
                audit::insert(c, &event.settle_consume(consumed))?;
                Ok(consumed)
            })
            .await
    }

    async fn register_container_session(
        &self,
        session: &ContainerSession,
        event: AuditEvent,
    ) -> StoreResult<ContainerSession> {
        let s = session.clone();
        self.writer
            .call_metering(move |c| {
                let stored = write::register_container_session(c, &s)?;
                audit::insert(c, &event)?;
                Ok(stored)
            })
            .await
    }

    async fn append_audit(&self, event: AuditEvent) -> StoreResult<()> {
        // Through the writer like any write: it joins the next group commit.
        self.writer
            .call_metering(move |c| audit::insert(c, &event))
            .await
    }

    async fn audit_events(&self, filter: &AuditFilter) -> StoreResult<Vec<AuditRecord>> {
        let f = filter.clone();
        with_reader(&self.pool, move |c| audit::query(c, &f)).await
    }

    async fn stop_container_session(
        &self,
        product_code: &str,
        resource_id: &str,
        at: OffsetDateTime,
    ) -> StoreResult<Option<ContainerSession>> {
        let (p, r, at) = (
            product_code.to_string(),
            resource_id.to_string(),
            rows::to_us(at),
        );
        self.writer
            .call_metering(move |c| write::stop_container_session(c, &p, &r, at))
            .await
    }

    async fn upsert_account(&self, account: &Account) -> StoreResult<()> {
        let a = account.clone();
        self.writer
            .call(move |c| write::upsert_account(c, &a))
            .await
    }

    async fn upsert_access_key(&self, key: &AccessKey) -> StoreResult<()> {
        let k = key.clone();
        self.writer
            .call(move |c| write::upsert_access_key(c, &k))
            .await
    }

    async fn upsert_product(&self, product: &Product) -> StoreResult<()> {
        let p = product.clone();
        self.writer
            .call(move |c| write::upsert_product(c, &p))
            .await
    }

    async fn upsert_agreement(&self, agreement: &Agreement) -> StoreResult<()> {
        let a = agreement.clone();
        self.writer
            .call(move |c| write::upsert_agreement(c, &a))
            .await
    }

    async fn insert_product_key(&self, key: &ProductKey) -> StoreResult<bool> {
        let k = key.clone();
        self.writer
            .call(move |c| write::insert_product_key(c, &k))
            .await
    }

    async fn retire_product_key(
        &self,
        product_code: &str,
        version: i64,
        at: OffsetDateTime,
    ) -> StoreResult<bool> {
        let product_code = product_code.to_string();
        self.writer
            .call(move |c| write::retire_product_key(c, &product_code, version, at))
            .await
    }

    async fn usage_groups(
        &self,
        query: &marketmeter_domain::reports::GroupQuery,
    ) -> StoreResult<Vec<marketmeter_domain::reports::UsageGroup>> {
        let q = query.clone();
        with_reader(&self.pool, move |c| reports::usage_groups(c, &q)).await
    }

    async fn reset_metering(&self) -> StoreResult<ResetCounts> {
        self.writer.call_metering(write::reset_metering).await
    }

    async fn account(&self, id: &str) -> StoreResult<Option<Account>> {
        let id = id.to_string();
        with_reader(&self.pool, move |c| {
            one(c, rows::LIST_ACCOUNTS_SQL, params![id], account_row)
        })
        .await
    }

    async fn list_accounts(&self) -> StoreResult<Vec<Account>> {
        with_reader(&self.pool, |c| {
            all(
                c,
                rows::LIST_ACCOUNTS_SQL,
                params![None::<String>],
                account_row,
            )
        })
        .await
    }

    async fn list_access_keys(&self, account_id: Option<&str>) -> StoreResult<Vec<AccessKey>> {
        let account = account_id.map(str::to_string);
        with_reader(&self.pool, move |c| {
            all(
                c,
                &rows::list_access_keys_sql(),
                params![account],
                rows::access_key,
            )
        })
        .await
    }

    async fn delete_access_key(&self, access_key_id: &str) -> StoreResult<bool> {
        let id = access_key_id.to_string();
        self.writer
            .call(move |c| {
                c.execute("DELETE FROM access_keys WHERE access_key_id = ?1", [id])
                    .map(|n| n > 0)
                    .map_err(rows::db_err)
            })
            .await
    }

    async fn list_products(&self, seller_account: Option<&str>) -> StoreResult<Vec<Product>> {
        let seller = seller_account.map(str::to_string);
        with_reader(&self.pool, move |c| {
            all(
                c,
                &format!(
                    "SELECT {} FROM products WHERE ?1 IS NULL OR seller_account = ?1 ORDER BY rowid",
                    rows::PRODUCT_COLS
                ),
                params![seller],
                rows::product,
            )
        })
        .await
    }

    async fn delete_product(&self, product_code: &str) -> StoreResult<ProductDeletion> {
        let code = product_code.to_string();
        self.writer
            .call(move |c| write::delete_product(c, &code))
            .await
    }

    async fn list_agreements(&self, filter: &AgreementFilter) -> StoreResult<Vec<Agreement>> {
        let f = filter.clone();
        with_reader(&self.pool, move |c| {
            all(
                c,
                &format!(
                    "SELECT {} FROM agreements WHERE (?1 IS NULL OR product_code = ?1) \
                     AND (?2 IS NULL OR customer_account = ?2) \
                     AND (?3 IS NULL OR agreement_id = ?3) ORDER BY rowid",
                    rows::AGREEMENT_COLS
                ),
                params![f.product_code, f.customer_account, f.agreement_id],
                rows::agreement,
            )
        })
        .await
    }

    async fn ping(&self) -> StoreResult<()> {
        if !self.writer.is_alive() {
            return Err(StoreError::Unavailable(
                "the store writer has stopped".into(),
            ));
        }
        with_reader(&self.pool, |c| {
            c.query_row("SELECT 1", [], |r| r.get::<_, i64>(0))
                .map(|_| ())
                .map_err(rows::db_err)
        })
        .await
    }
}
