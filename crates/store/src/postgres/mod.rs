//! `marketmeter_domain::store::Store` on PostgreSQL: the same semantics as the SQLite store,
//! for running several stateless server processes against one database.
//!
//! * A deadpool pool of tokio-postgres connections. Connections found closed (the server
//!   restarted, a backend was terminated) are dropped when they come back to the pool and new
//!   ones are opened on demand, so the store reconnects by itself; the call that met the broken
//!   connection fails with the retryable [`StoreError::Unavailable`].
//! * Every statement is prepared once per connection (`prepare_cached`).
//! * Usage batches are written in a fixed number of statements, whatever their size (see
//!   [`write`]).
//! * Handles that must stay unique across sellers (product code, license ARN, MeterUsage client
//!   token) are claimed under a transaction-level advisory lock keyed on the handle, which
//!   takes the place of SQLite's single writer for those check-then-write steps.
//! * The schema is versioned SQL in `migrations/postgres/`, applied at connect ([`migrate`]).

mod audit;
mod migrate;
mod reports;
mod rollup;
mod rows;
mod write;

use crate::rows::{dimensions_json, now_us, opt_us, to_us, ACCESS_KEY_COLS, AGREEMENT_COLS};
use crate::rows::{
    CONTAINER_SESSION_COLS, PRODUCT_COLS, PRODUCT_KEY_COLS, REGISTRATION_TOKEN_COLS, USAGE_COLS,
};
use async_trait::async_trait;
use deadpool_postgres::{GenericClient, Manager, ManagerConfig, Pool, RecyclingMethod, Runtime};
use marketmeter_domain::audit::{AuditEvent, AuditFilter, AuditRecord};
use marketmeter_domain::model::*;
use marketmeter_domain::store::*;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;
use time::OffsetDateTime;
use tokio_postgres::types::ToSql;
use tokio_postgres::{NoTls, Row};

pub(crate) type Client = deadpool_postgres::Client;

/// Tuning knobs; the defaults suit a small server.
#[derive(Debug, Clone)]
pub struct PgOptions {
    /// Most connections the pool opens.
    pub max_connections: usize,
    /// How long opening one connection may take.
    pub connect_timeout: Duration,
    /// How long a call waits for a free pooled connection before failing `Unavailable`.
    pub wait_timeout: Duration,
    /// `application_name` of the connections, unless the URL sets one.
    pub application_name: String,
    /// Told about every usage transaction (metrics).
    pub commit_observer: Option<CommitObserverRef>,
}

impl Default for PgOptions {
    fn default() -> Self {
        Self {
            max_connections: 16,
            connect_timeout: Duration::from_secs(5),
            wait_timeout: Duration::from_secs(10),
            application_name: "marketmeter".into(),
            commit_observer: None,
        }
    }
}

/// Statement counters: how many statements (including BEGIN/COMMIT) the store has run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct PgStats {
    pub statements: u64,
}

/// The PostgreSQL store. Cheap to share behind an `Arc`.
pub struct PgStore {
    pool: Pool,
    statements: Arc<AtomicU64>,
    migrations_applied: usize,
    observer: Option<CommitObserverRef>,
    folder: rollup::Folder,
}

/// Maps a database error to the domain error. Integrity and data errors are the caller's input
/// (e.g. a reused id); everything else (connection lost, pool exhausted, serialization
/// failures, server shutting down) is the database failing and may be retried. Only the
/// server's primary message and SQLSTATE are kept: never the DETAIL, which quotes values.
pub(crate) fn pg_err(e: tokio_postgres::Error) -> StoreError {
    match e.as_db_error() {
        Some(db) => {
            let code = db.code().code();
            let what = match db.constraint() {
                Some(c) => format!("{} [{code}, {c}]", db.message()),
                None => format!("{} [{code}]", db.message()),
            };
            if code.starts_with("23") || code.starts_with("22") {
                StoreError::Invalid(format!("rejected by the store: {what}"))
            } else {
                StoreError::Unavailable(format!("postgres: {what}"))
            }
        }
        None => StoreError::Unavailable(format!("postgres: {e}")),
    }
}

fn pool_err(e: deadpool_postgres::PoolError) -> StoreError {
    match e {
        deadpool_postgres::PoolError::Backend(e) => pg_err(e),
        other => StoreError::Unavailable(format!("postgres pool: {other}")),
    }
}

/// A connection (or transaction) and the statement counter: every statement goes through here.
pub(crate) struct Db<'a, C: GenericClient> {
    c: &'a C,
    n: &'a AtomicU64,
}

type Params<'p> = [&'p (dyn ToSql + Sync)];

impl<C: GenericClient> Db<'_, C> {
    pub(crate) async fn query(&self, sql: &str, p: &Params<'_>) -> StoreResult<Vec<Row>> {
        let st = self.c.prepare_cached(sql).await.map_err(pg_err)?;
        self.n.fetch_add(1, Ordering::Relaxed);
        self.c.query(&st, p).await.map_err(pg_err)
    }

    pub(crate) async fn execute(&self, sql: &str, p: &Params<'_>) -> StoreResult<u64> {
        let st = self.c.prepare_cached(sql).await.map_err(pg_err)?;
        self.n.fetch_add(1, Ordering::Relaxed);
        self.c.execute(&st, p).await.map_err(pg_err)
    }

    async fn opt(&self, sql: &str, p: &Params<'_>) -> StoreResult<Option<Row>> {
        Ok(self.query(sql, p).await?.into_iter().next())
    }

    /// Serialises transactions that claim the same `handle` (until this transaction ends).
    async fn lock(&self, handle: &str) -> StoreResult<()> {
        self.query(
            "SELECT pg_advisory_xact_lock(hashtextextended($1, 0))",
            &[&handle],
        )
        .await
        .map(|_| ())
    }
}

/// An advisory-lock handle: length-prefixed parts, so distinct tuples never collide as text.
fn handle(kind: &str, parts: &[&str]) -> String {
    let mut h = String::from(kind);
    for p in parts {
        h.push_str(&format!(":{}:{p}", p.len()));
    }
    h
}

impl PgStore {
    /// Connects to `url` (a `postgres://` / `postgresql://` URL or a key=value string) and
    /// applies pending schema migrations. The schema lives in the connection's `search_path`
    /// (set it with `options=-c search_path=...` in the URL).
    pub async fn connect(url: &str, opts: PgOptions) -> Result<PgStore, StoreError> {
        let mut cfg: tokio_postgres::Config = url
            .parse()
            .map_err(|e| StoreError::Invalid(format!("invalid PostgreSQL URL: {e}")))?;
        if cfg.get_application_name().is_none() {
            cfg.application_name(&opts.application_name);
        }
        if cfg.get_connect_timeout().is_none() {
            cfg.connect_timeout(opts.connect_timeout);
        }
        let manager = Manager::from_config(
            cfg,
            NoTls,
            ManagerConfig {
                // A closed connection is dropped on its way back out of the pool.
                recycling_method: RecyclingMethod::Fast,
            },
        );
        let pool = Pool::builder(manager)
            .max_size(opts.max_connections.max(1))
            .runtime(Runtime::Tokio1)
            .wait_timeout(Some(opts.wait_timeout))
            .create_timeout(Some(opts.connect_timeout))
            .recycle_timeout(Some(opts.connect_timeout))
            .build()
            .map_err(|e| StoreError::Unavailable(format!("postgres pool: {e}")))?;
        let mut store = PgStore {
            pool: pool.clone(),
            statements: Arc::new(AtomicU64::new(0)),
            migrations_applied: 0,
            observer: opts.commit_observer.clone(),
            folder: rollup::Folder::new(pool),
        };
        store.migrations_applied = store.migrate().await?;
        Ok(store)
    }

    /// After each usage transaction: tells the commit observer (each request commits alone)
    /// and the rollup folder.
    fn observe(&self, started: std::time::Instant, ok: bool) {
        self.folder.after_usage_commit();
        if let Some(o) = &self.observer {
            o.0.committed(1, started.elapsed(), ok);
        }
    }

    /// Applies pending migrations (done by [`PgStore::connect`]); returns how many ran.
    pub async fn migrate(&self) -> StoreResult<usize> {
        let mut c = self.client().await?;
        migrate::apply(&mut c, migrate::POSTGRES).await
    }

    /// Schema migrations applied by [`PgStore::connect`].
    pub fn migrations_applied(&self) -> usize {
        self.migrations_applied
    }

    /// The schema version recorded in `schema_migrations`.
    pub async fn schema_version(&self) -> StoreResult<i64> {
        let c = self.client().await?;
        let r = self
            .db(&c)
            .query(
                "SELECT COALESCE(MAX(version), 0)::BIGINT FROM schema_migrations",
                &[],
            )
            .await?;
        r.first()
            .ok_or_else(|| StoreError::Unavailable("postgres: no schema version".into()))?
            .try_get(0)
            .map_err(pg_err)
    }

    /// Folds the hourly rollup's delta now (the store also does it as usage flows); returns
    /// the rollup rows written. Reports are exact either way.
    pub async fn fold_rollup(&self) -> StoreResult<u64> {
        rollup::fold(&self.pool).await
    }

    /// Statement counters since connect.
    pub fn stats(&self) -> PgStats {
        PgStats {
            statements: self.statements.load(Ordering::Relaxed),
        }
    }

    async fn client(&self) -> StoreResult<Client> {
        self.pool.get().await.map_err(pool_err)
    }

    fn db<'a, C: GenericClient>(&'a self, c: &'a C) -> Db<'a, C> {
        Db {
            c,
            n: &self.statements,
        }
    }

    fn count(&self, n: u64) {
        self.statements.fetch_add(n, Ordering::Relaxed);
    }

    async fn one<T>(
        &self,
        sql: &str,
        p: &Params<'_>,
        map: fn(&Row) -> StoreResult<T>,
    ) -> StoreResult<Option<T>> {
        let c = self.client().await?;
        self.db(&c).opt(sql, p).await?.as_ref().map(map).transpose()
    }

    async fn all<T>(
        &self,
        sql: &str,
        p: &Params<'_>,
        map: fn(&Row) -> StoreResult<T>,
    ) -> StoreResult<Vec<T>> {
        let c = self.client().await?;
        self.db(&c).query(sql, p).await?.iter().map(map).collect()
    }

    async fn exec(&self, sql: &str, p: &Params<'_>) -> StoreResult<u64> {
        let c = self.client().await?;
        self.db(&c).execute(sql, p).await
    }

    /// Upsert of a row whose `handle` must not belong to another seller: check and write under
    /// the handle's advisory lock, in one transaction.
    async fn upsert_owned(
        &self,
        lock: String,
        check: &str,
        check_params: &Params<'_>,
        refused: String,
        upsert: &str,
        p: &Params<'_>,
    ) -> StoreResult<()> {
        let mut c = self.client().await?;
        self.count(1);
        let tx = c.transaction().await.map_err(pg_err)?;
        let db = self.db(&tx);
        db.lock(&lock).await?;
        if db.opt(check, check_params).await?.is_some() {
            return Err(StoreError::Invalid(refused));
        }
        db.execute(upsert, p).await?;
        self.count(1);
        tx.commit().await.map_err(pg_err)
    }
}

fn select(cols: &str, rest: &str) -> String {
    format!("SELECT {cols} {rest}")
}

#[async_trait]
impl Store for PgStore {
    async fn access_key(&self, access_key_id: &str) -> StoreResult<Option<AccessKey>> {
        self.one(
            &select(ACCESS_KEY_COLS, "FROM access_keys WHERE access_key_id = $1"),
            &[&access_key_id],
            rows::access_key,
        )
        .await
    }

    async fn product(&self, code: &str) -> StoreResult<Option<Product>> {
        self.one(
            &select(
                PRODUCT_COLS,
                "FROM products WHERE code = $1 ORDER BY seq LIMIT 1",
            ),
            &[&code],
            rows::product,
        )
        .await
    }

    async fn agreement_by_license(&self, license_arn: &str) -> StoreResult<Option<Agreement>> {
        self.one(
            &select(
                AGREEMENT_COLS,
                "FROM agreements WHERE license_arn = $1 ORDER BY seq LIMIT 1",
            ),
            &[&license_arn],
            rows::agreement,
        )
        .await
    }

    async fn agreements_for_customer(
        &self,
        product_code: &str,
        customer_account: &str,
    ) -> StoreResult<Vec<Agreement>> {
        self.all(
            &select(
                AGREEMENT_COLS,
                "FROM agreements WHERE product_code = $1 AND customer_account = $2 ORDER BY seq",
            ),
            &[&product_code, &customer_account],
            rows::agreement,
        )
        .await
    }

    async fn agreements_for_identifier(
        &self,
        product_code: &str,
        customer_identifier: &str,
    ) -> StoreResult<Vec<Agreement>> {
        self.all(
            &select(
                AGREEMENT_COLS,
                "FROM agreements WHERE product_code = $1 AND customer_identifier = $2 \
                 ORDER BY seq",
            ),
            &[&product_code, &customer_identifier],
            rows::agreement,
        )
        .await
    }

    async fn customer_identifier_exists(&self, customer_identifier: &str) -> StoreResult<bool> {
        Ok(self
            .one(
                "SELECT 1 FROM agreements WHERE customer_identifier = $1 LIMIT 1",
                &[&customer_identifier],
                |_| Ok(()),
            )
            .await?
            .is_some())
    }

    async fn customer_identifier_of(&self, customer_account: &str) -> StoreResult<Option<String>> {
        self.one(
            "SELECT customer_identifier FROM agreements WHERE customer_account = $1 \
             ORDER BY seq LIMIT 1",
            &[&customer_account],
            |r| r.try_get(0).map_err(pg_err),
        )
        .await
    }

    async fn product_keys(&self, product_code: &str) -> StoreResult<Vec<ProductKey>> {
        self.all(
            &select(
                PRODUCT_KEY_COLS,
                "FROM product_keys WHERE product_code = $1 ORDER BY version",
            ),
            &[&product_code],
            rows::product_key,
        )
        .await
    }

    async fn registration_token(&self, token: &str) -> StoreResult<Option<RegistrationToken>> {
        self.one(
            &select(
                REGISTRATION_TOKEN_COLS,
                "FROM registration_tokens WHERE token = $1 LIMIT 1",
            ),
            &[&token],
            rows::registration_token,
        )
        .await
    }

    async fn container_session(
        &self,
        product_code: &str,
        resource_id: &str,
    ) -> StoreResult<Option<ContainerSession>> {
        self.one(
            &select(
                CONTAINER_SESSION_COLS,
                "FROM container_sessions WHERE product_code = $1 AND resource_id = $2 \
                 AND stopped_us IS NULL LIMIT 1",
            ),
            &[&product_code, &resource_id],
            rows::container_session,
        )
        .await
    }

    async fn list_container_sessions(
        &self,
        f: &ContainerFilter,
    ) -> StoreResult<Vec<ContainerSession>> {
        let limit = f.limit.map(i64::from);
        self.all(
            &select(
                CONTAINER_SESSION_COLS,
                "FROM container_sessions WHERE ($1::text IS NULL OR seller_account = $1) \
                 AND ($2::text IS NULL OR product_code = $2) \
                 AND ($3::text IS NULL OR customer_account = $3) \
                 AND ($4::text IS NULL OR resource_id = $4) \
                 AND ($5::boolean IS NULL OR (stopped_us IS NULL) = $5) \
                 AND ($6::bigint IS NULL OR first_registered_us < $6) \
                 AND ($7::bigint IS NULL OR stopped_us IS NULL OR stopped_us >= $7) \
                 ORDER BY first_registered_us, product_code, resource_id, run \
                 LIMIT $8",
            ),
            &[
                &f.seller_account,
                &f.product_code,
                &f.customer_account,
                &f.resource_id,
                &f.running,
                &f.started_before.map(to_us),
                &f.stopped_since.map(to_us),
                &limit,
            ],
            rows::container_session,
        )
        .await
    }

    async fn usage_records(&self, filter: &UsageFilter) -> StoreResult<Vec<UsageRecordRow>> {
        let limit = i64::from(
            filter
                .limit
                .unwrap_or(crate::read::DEFAULT_USAGE_LIMIT)
                .min(crate::read::MAX_USAGE_LIMIT),
        );
        // One statement per filter shape so each can use an index.
        let filter_sql = match (&filter.seller_account, &filter.product_code) {
            (Some(_), Some(_)) => "WHERE seller_account = $1 AND product_code = $2",
            (Some(_), None) => "WHERE seller_account = $1 AND $2::text IS NULL",
            (None, Some(_)) => "WHERE $1::text IS NULL AND product_code = $2",
            (None, None) => "WHERE $1::text IS NULL AND $2::text IS NULL",
        };
        self.all(
            &select(
                USAGE_COLS,
                &format!("FROM usage_records {filter_sql} ORDER BY hour, id LIMIT $3"),
            ),
            &[&filter.seller_account, &filter.product_code, &limit],
            rows::usage,
        )
        .await
    }

    async fn usage_by_key(&self, key: &MeteringKey) -> StoreResult<Option<UsageRecordRow>> {
        let (kind, a, b) = key.identity.parts();
        self.one(
            &select(
                USAGE_COLS,
                "FROM usage_records WHERE seller_account = $1 AND identity_kind = $2 \
                 AND identity_a = $3 AND identity_b = $4 AND dimension = $5 AND hour = $6",
            ),
            &[
                &key.seller_account,
                &kind,
                &a,
                &b,
                &key.dimension,
                &key.hour,
            ],
            rows::usage,
        )
        .await
    }

    async fn client_token(
        &self,
        caller_account: &str,
        client_token: &str,
    ) -> StoreResult<Option<(String, String)>> {
        self.one(
            CLIENT_TOKEN_SQL,
            &[&caller_account, &client_token],
            token_row,
        )
        .await
    }

    async fn commit_usage(
        &self,
        rows: Vec<UsageRecordRow>,
        event: AuditEvent,
    ) -> StoreResult<Vec<UsageOutcome>> {
        let started = std::time::Instant::now();
        if rows.is_empty() {
            // Nothing to offer: the event alone (there is no usage statement to carry it).
            let c = self.client().await?;
            audit::insert(&self.db(&c), &event).await?;
            return Ok(Vec::new());
        }
        let c = self.client().await?;
        // Records and event in one autocommitted statement: one round trip, no BEGIN/COMMIT.
        let out = write::commit_batch(&self.db(&c), &rows, &event).await;
        self.observe(started, out.is_ok());
        out
    }

    async fn commit_meter_usage(
        &self,
        claim: Option<TokenClaim>,
        row: UsageRecordRow,
        event: AuditEvent,
    ) -> StoreResult<MeterOutcome> {
        let started = std::time::Instant::now();
        let mut c = self.client().await?;
        self.count(1);
        let tx = c.transaction().await.map_err(pg_err)?;
        let db = self.db(&tx);
        let outcome = 'decided: {
            if let Some(claim) = &claim {
                // Every process claiming this (caller, token) queues here until the holder
                // commits or rolls back; the SELECT after the lock (a fresh READ COMMITTED
                // snapshot) then sees a committed claim. The lock is what keeps a token unique
                // per caller across sellers.
                db.lock(&handle(
                    "client_token",
                    &[&claim.caller_account, &claim.client_token],
                ))
                .await?;
                if let Some(r) = db
                    .opt(
                        CLIENT_TOKEN_SQL,
                        &[&claim.caller_account, &claim.client_token],
                    )
                    .await?
                {
                    let (fingerprint, id) = token_row(&r)?;
                    break 'decided if fingerprint == claim.fingerprint {
                        MeterOutcome::TokenReplay {
                            metering_record_id: id,
                        }
                    } else {
                        MeterOutcome::TokenConflict
                    };
                }
            }
            MeterOutcome::Usage(
                write::offer_usage(&db, std::slice::from_ref(&row))
                    .await?
                    .pop()
                    .ok_or_else(|| StoreError::Unavailable("postgres: no outcome".into()))?,
            )
        };
        let event = event.settle_meter(&outcome);
        match (&claim, &outcome) {
            (
                Some(claim),
                MeterOutcome::Usage(
                    UsageOutcome::Stored { metering_record_id }
                    | UsageOutcome::Retry { metering_record_id },
                ),
            ) => {
                // The claim and the event, pipelined. A duplicate is refused, so its token
                // stays free (not recorded).
                let created = now_us();
                let params: [&(dyn ToSql + Sync); 6] = [
                    &claim.seller_account,
                    &claim.caller_account,
                    &claim.client_token,
                    &claim.fingerprint,
                    metering_record_id,
                    &created,
                ];
                tokio::try_join!(
                    db.execute(
                        "INSERT INTO client_tokens (seller_account, caller_account, \
                         client_token, fingerprint, metering_record_id, created_us) \
                         VALUES ($1, $2, $3, $4, $5, $6)",
                        &params,
                    ),
                    audit::insert(&db, &event)
                )?;
            }
            // Replays, conflicts, duplicates and calls without a token write only the event.
            _ => audit::insert(&db, &event).await?,
        }
        self.count(1);
        let committed = tx.commit().await.map_err(pg_err);
        self.observe(started, committed.is_ok());
        committed?;
        Ok(outcome)
    }

    async fn insert_registration_token(&self, t: &RegistrationToken) -> StoreResult<()> {
        self.exec(
            "INSERT INTO registration_tokens (token, product_code, seller_account, \
             customer_account, agreement_id, created_us, expires_us, single_use, used_us) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
            &[
                &t.token,
                &t.product_code,
                &t.seller_account,
                &t.customer_account,
                &t.agreement_id,
                &to_us(t.created_at),
                &to_us(t.expires_at),
                &t.single_use,
                &opt_us(t.used_at),
            ],
        )
        .await
        .map(|_| ())
    }

    async fn consume_registration_token(
        &self,
        token: &str,
        at: OffsetDateTime,
        event: AuditEvent,
    ) -> StoreResult<bool> {
        // Compare-and-set: of any number of racing consumers exactly one changes the row (the
        // others re-check `used_us IS NULL` after the winner commits and find it set).
        let c = self.client().await?;
        audit::consume_token(&self.db(&c), token, to_us(at), event).await
    }

    async fn register_container_session(
        &self,
        s: &ContainerSession,
        event: AuditEvent,
    ) -> StoreResult<ContainerSession> {
        let c = self.client().await?;
        let db = self.db(&c);
        // Racing registrations pick the same next run number (or hit the running index):
        // ON CONFLICT waits for the uncommitted winner, and the SELECT (a new snapshot) then
        // sees it. Nothing is inserted while a run is running. The event rides in the same
        // statement.
        let first_us = to_us(s.first_registered_at);
        let platform = s.platform.as_str();
        let event = audit::Bound::new(&event);
        let mut p: Vec<&(dyn ToSql + Sync)> = vec![
            &s.product_code,
            &s.seller_account,
            &s.resource_id,
            &s.customer_account,
            &platform,
            &s.region,
            &first_us,
        ];
        p.extend(event.params());
        db.execute(
            &audit::with_event(
                "INSERT INTO container_sessions (product_code, seller_account, resource_id, \
                 customer_account, platform, region, first_registered_us, run) \
                 SELECT $1::text, $2::text, $3::text, $4::text, $5::text, $6::text, $7::bigint, \
                 COALESCE(MAX(run), 0) + 1 \
                 FROM container_sessions \
                 WHERE seller_account = $2 AND product_code = $1 AND resource_id = $3 \
                 HAVING COUNT(*) FILTER (WHERE stopped_us IS NULL) = 0 \
                 ON CONFLICT DO NOTHING",
                7,
            ),
            &p,
        )
        .await?;
        let r = db
            .opt(
                &select(
                    CONTAINER_SESSION_COLS,
                    "FROM container_sessions \
                     WHERE seller_account = $1 AND product_code = $2 AND resource_id = $3 \
                     AND stopped_us IS NULL",
                ),
                &[&s.seller_account, &s.product_code, &s.resource_id],
            )
            .await?
            .ok_or_else(|| StoreError::Unavailable("postgres: session row not found".into()))?;
        rows::container_session(&r)
    }

    async fn append_audit(&self, event: AuditEvent) -> StoreResult<()> {
        let c = self.client().await?;
        audit::insert(&self.db(&c), &event).await
    }

    async fn audit_events(&self, filter: &AuditFilter) -> StoreResult<Vec<AuditRecord>> {
        let c = self.client().await?;
        audit::query(&self.db(&c), filter).await
    }

    async fn stop_container_session(
        &self,
        product_code: &str,
        resource_id: &str,
        at: OffsetDateTime,
    ) -> StoreResult<Option<ContainerSession>> {
        let at = to_us(at);
        self.one(
            &format!(
                "UPDATE container_sessions SET stopped_us = $3 \
                 WHERE product_code = $1 AND resource_id = $2 AND stopped_us IS NULL \
                 AND first_registered_us <= $3 RETURNING {CONTAINER_SESSION_COLS}"
            ),
            &[&product_code, &resource_id, &at],
            rows::container_session,
        )
        .await
    }

    async fn upsert_account(&self, a: &Account) -> StoreResult<()> {
        self.exec(
            "INSERT INTO accounts (id, name) VALUES ($1, $2) \
             ON CONFLICT (id) DO UPDATE SET name = excluded.name",
            &[&a.id, &a.name],
        )
        .await
        .map(|_| ())
    }

    async fn upsert_access_key(&self, k: &AccessKey) -> StoreResult<()> {
        let w = k.workload.as_ref();
        self.exec(
            "INSERT INTO access_keys (access_key_id, account_id, secret_access_key, \
             session_token, workload_resource_id, workload_platform, workload_region) \
             VALUES ($1, $2, $3, $4, $5, $6, $7) \
             ON CONFLICT (access_key_id) DO UPDATE SET account_id = excluded.account_id, \
             secret_access_key = excluded.secret_access_key, \
             session_token = excluded.session_token, \
             workload_resource_id = excluded.workload_resource_id, \
             workload_platform = excluded.workload_platform, \
             workload_region = excluded.workload_region",
            &[
                &k.access_key_id,
                &k.account_id,
                &k.secret_access_key,
                &k.session_token,
                &w.map(|w| w.resource_id.as_str()),
                &w.map(|w| w.platform.as_str()),
                &w.map(|w| w.region.as_str()),
            ],
        )
        .await
        .map(|_| ())
    }

    async fn upsert_product(&self, p: &Product) -> StoreResult<()> {
        let dimensions = dimensions_json(&p.dimensions)?;
        self.upsert_owned(
            handle("product", &[&p.code]),
            "SELECT 1 FROM products WHERE code = $1 AND seller_account <> $2 LIMIT 1",
            &[&p.code, &p.seller_account],
            format!("product code {} belongs to another seller", p.code),
            "INSERT INTO products (code, seller_account, kind, fulfillment_url, dimensions) \
             VALUES ($1, $2, $3, $4, $5) \
             ON CONFLICT (seller_account, code) DO UPDATE SET kind = excluded.kind, \
             fulfillment_url = excluded.fulfillment_url, dimensions = excluded.dimensions",
            &[
                &p.code,
                &p.seller_account,
                &p.kind.as_str(),
                &p.fulfillment_url,
                &dimensions,
            ],
        )
        .await
    }

    async fn upsert_agreement(&self, a: &Agreement) -> StoreResult<()> {
        self.upsert_owned(
            handle("license", &[&a.license_arn]),
            "SELECT 1 FROM agreements WHERE license_arn = $1 AND seller_account <> $2 LIMIT 1",
            &[&a.license_arn, &a.seller_account],
            format!("license {} belongs to another seller", a.license_arn),
            "INSERT INTO agreements (agreement_id, product_code, seller_account, \
             customer_account, customer_identifier, license_arn, status, starts_us, ends_us) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) \
             ON CONFLICT (seller_account, agreement_id) DO UPDATE SET \
             product_code = excluded.product_code, customer_account = excluded.customer_account, \
             customer_identifier = excluded.customer_identifier, \
             license_arn = excluded.license_arn, status = excluded.status, \
             starts_us = excluded.starts_us, ends_us = excluded.ends_us",
            &[
                &a.agreement_id,
                &a.product_code,
                &a.seller_account,
                &a.customer_account,
                &a.customer_identifier,
                &a.license_arn,
                &a.status.as_str(),
                &opt_us(a.starts),
                &opt_us(a.ends),
            ],
        )
        .await
    }

    async fn insert_product_key(&self, k: &ProductKey) -> StoreResult<bool> {
        self.exec(
            "INSERT INTO product_keys (product_code, seller_account, version, private_pem, \
             public_pem, created_us, retired_us) VALUES ($1, $2, $3, $4, $5, $6, $7) \
             ON CONFLICT (seller_account, product_code, version) DO NOTHING",
            &[
                &k.product_code,
                &k.seller_account,
                &k.version,
                &k.private_pem,
                &k.public_pem,
                &to_us(k.created_at),
                &opt_us(k.retired_at),
            ],
        )
        .await
        .map(|n| n == 1)
    }

    async fn retire_product_key(
        &self,
        product_code: &str,
        version: i64,
        at: OffsetDateTime,
    ) -> StoreResult<bool> {
        self.exec(
            "UPDATE product_keys SET retired_us = COALESCE(retired_us, $3) \
             WHERE product_code = $1 AND version = $2",
            &[&product_code, &version, &to_us(at)],
        )
        .await
        .map(|n| n > 0)
    }

    async fn usage_groups(
        &self,
        query: &marketmeter_domain::reports::GroupQuery,
    ) -> StoreResult<Vec<marketmeter_domain::reports::UsageGroup>> {
        let (sql, params) = reports::statement(query);
        let refs: Vec<&(dyn ToSql + Sync)> = params
            .iter()
            .map(|p| p.as_ref() as &(dyn ToSql + Sync))
            .collect();
        let mut c = self.client().await?;
        self.count(2);
        let tx = c.transaction().await.map_err(pg_err)?;
        tx.batch_execute(reports::WORK_MEM).await.map_err(pg_err)?;
        let rows = self.db(&tx).query(&sql, &refs).await?;
        self.count(1);
        tx.commit().await.map_err(pg_err)?;
        rows.iter().map(reports::group).collect()
    }

    async fn reset_metering(&self) -> StoreResult<ResetCounts> {
        let mut c = self.client().await?;
        self.count(1);
        let tx = c.transaction().await.map_err(pg_err)?;
        let db = self.db(&tx);
        let mut n = [0u64; 4];
        for (count, table) in n.iter_mut().zip(METERING_TABLES) {
            *count = db.execute(&format!("DELETE FROM {table}"), &[]).await?;
        }
        self.count(1);
        tx.commit().await.map_err(pg_err)?;
        Ok(ResetCounts::from_counts(n))
    }

    async fn account(&self, id: &str) -> StoreResult<Option<Account>> {
        self.one(crate::rows::LIST_ACCOUNTS_SQL, &[&id], rows::account)
            .await
    }

    async fn list_accounts(&self) -> StoreResult<Vec<Account>> {
        self.all(
            crate::rows::LIST_ACCOUNTS_SQL,
            &[&None::<String>],
            rows::account,
        )
        .await
    }

    async fn list_access_keys(&self, account_id: Option<&str>) -> StoreResult<Vec<AccessKey>> {
        self.all(
            &crate::rows::list_access_keys_sql(),
            &[&account_id],
            rows::access_key,
        )
        .await
    }

    async fn delete_access_key(&self, access_key_id: &str) -> StoreResult<bool> {
        self.exec(
            "DELETE FROM access_keys WHERE access_key_id = $1",
            &[&access_key_id],
        )
        .await
        .map(|n| n > 0)
    }

    async fn list_products(&self, seller_account: Option<&str>) -> StoreResult<Vec<Product>> {
        self.all(
            &select(
                PRODUCT_COLS,
                "FROM products WHERE $1::text IS NULL OR seller_account = $1 ORDER BY seq",
            ),
            &[&seller_account],
            rows::product,
        )
        .await
    }

    async fn delete_product(&self, product_code: &str) -> StoreResult<ProductDeletion> {
        let mut c = self.client().await?;
        self.count(1);
        let tx = c.transaction().await.map_err(pg_err)?;
        let db = self.db(&tx);
        // The product's own lock: no agreement or product write for this code runs meanwhile.
        db.lock(&handle("product", &[product_code])).await?;
        let r = db
            .query(crate::rows::PRODUCT_REFERENCES_SQL, &[&product_code])
            .await?;
        let row = r
            .first()
            .ok_or_else(|| StoreError::Unavailable("postgres: no row".into()))?;
        let mut counts = [0i64; 4];
        for (i, n) in counts.iter_mut().enumerate() {
            *n = row.try_get(i).map_err(pg_err)?;
        }
        if let Some(held) = crate::rows::product_in_use(counts) {
            return Ok(ProductDeletion::InUse(held));
        }
        db.execute(
            "DELETE FROM product_keys WHERE product_code = $1",
            &[&product_code],
        )
        .await?;
        let n = db
            .execute("DELETE FROM products WHERE code = $1", &[&product_code])
            .await?;
        self.count(1);
        tx.commit().await.map_err(pg_err)?;
        Ok(if n > 0 {
            ProductDeletion::Deleted
        } else {
            ProductDeletion::NotFound
        })
    }

    async fn list_agreements(&self, filter: &AgreementFilter) -> StoreResult<Vec<Agreement>> {
        self.all(
            &select(
                AGREEMENT_COLS,
                "FROM agreements WHERE ($1::text IS NULL OR product_code = $1) \
                 AND ($2::text IS NULL OR customer_account = $2) \
                 AND ($3::text IS NULL OR agreement_id = $3) ORDER BY seq",
            ),
            &[
                &filter.product_code,
                &filter.customer_account,
                &filter.agreement_id,
            ],
            rows::agreement,
        )
        .await
    }

    async fn ping(&self) -> StoreResult<()> {
        self.one("SELECT 1", &[], |_| Ok(())).await.map(|_| ())
    }
}

const CLIENT_TOKEN_SQL: &str = "SELECT fingerprint, metering_record_id FROM client_tokens \
     WHERE caller_account = $1 AND client_token = $2 LIMIT 1";

fn token_row(r: &Row) -> StoreResult<(String, String)> {
    Ok((r.try_get(0).map_err(pg_err)?, r.try_get(1).map_err(pg_err)?))
}
