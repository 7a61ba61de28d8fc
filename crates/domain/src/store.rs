//! What the rules need from storage. Implemented by the `store` crate (SQLite, PostgreSQL).
//!
//! Writes of usage take whole batches so an implementation can commit many concurrent
//! requests in one transaction (group commit). For every usage row the dedup claim and the
//! record are the same row, written in one transaction: no path leaves a key claimed with no
//! record, and nothing is acknowledged before it is durable.

use crate::audit::{AuditEvent, AuditFilter, AuditRecord};
use crate::model::*;
use async_trait::async_trait;
use time::OffsetDateTime;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The database could not be reached or failed; the caller may retry.
    #[error("storage unavailable: {0}")]
    Unavailable(String),
    /// Input the store refuses (e.g. a reference to a missing row).
    #[error("{0}")]
    Invalid(String),
}

pub type StoreResult<T> = Result<T, StoreError>;

/// Result of offering one usage row under its dedup key (first write wins).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum UsageOutcome {
    /// No row had the key: this one is stored.
    Stored { metering_record_id: String },
    /// A row with the key and the same quantity exists: an identical retry.
    Retry { metering_record_id: String },
    /// A row with the key and a different quantity exists; nothing is stored.
    Duplicate { metering_record_id: String },
}

/// A MeterUsage `ClientToken` claim: scoped to the calling account.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenClaim {
    pub seller_account: String,
    pub caller_account: String,
    pub client_token: String,
    /// Digest of the request parameters, to tell a replay from a conflicting reuse.
    pub fingerprint: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MeterOutcome {
    Usage(UsageOutcome),
    /// The token was used before with the same parameters: that call's record id.
    TokenReplay {
        metering_record_id: String,
    },
    /// The token was used before with different parameters.
    TokenConflict,
}

/// Filter for usage listings (admin API, reports).
#[derive(Debug, Clone, Default)]
pub struct UsageFilter {
    pub seller_account: Option<String>,
    pub product_code: Option<String>,
    pub limit: Option<u32>,
}

/// Filter for container run listings (admin API, reports); every field narrows.
#[derive(Debug, Clone, Default)]
pub struct ContainerFilter {
    pub seller_account: Option<String>,
    pub product_code: Option<String>,
    pub customer_account: Option<String>,
    pub resource_id: Option<String>,
    /// `Some(true)`: running runs only; `Some(false)`: stopped ones only.
    pub running: Option<bool>,
    /// Runs that started before this instant.
    pub started_before: Option<OffsetDateTime>,
    /// Runs still running or stopped at or after this instant.
    pub stopped_since: Option<OffsetDateTime>,
    pub limit: Option<u32>,
}

/// Filter for agreement listings (admin API); every field narrows.
#[derive(Debug, Clone, Default)]
pub struct AgreementFilter {
    pub product_code: Option<String>,
    pub customer_account: Option<String>,
    pub agreement_id: Option<String>,
}

/// Result of deleting a product.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ProductDeletion {
    Deleted,
    NotFound,
    /// Something still refers to it (agreements, usage, tokens, sessions): kept. Says what.
    InUse(String),
}

#[async_trait]
pub trait Store: Send + Sync + 'static {
    // --- catalog reads
    async fn access_key(&self, access_key_id: &str) -> StoreResult<Option<AccessKey>>;
    async fn product(&self, code: &str) -> StoreResult<Option<Product>>;
    /// [`Store::product`], shared: a store that caches products hands out its copy instead of
    /// cloning it (the metering path reads the product, with every dimension, on each request).
    async fn product_shared(&self, code: &str) -> StoreResult<Option<std::sync::Arc<Product>>> {
        Ok(self.product(code).await?.map(std::sync::Arc::new))
    }
    async fn agreement_by_license(&self, license_arn: &str) -> StoreResult<Option<Agreement>>;
    async fn agreements_for_customer(
        &self,
        product_code: &str,
        customer_account: &str,
    ) -> StoreResult<Vec<Agreement>>;
    async fn agreements_for_identifier(
        &self,
        product_code: &str,
        customer_identifier: &str,
    ) -> StoreResult<Vec<Agreement>>;
    /// Whether any agreement (any product) carries this legacy customer identifier.
    async fn customer_identifier_exists(&self, customer_identifier: &str) -> StoreResult<bool>;
    /// The identifier already given to this customer account, if any (same across products).
    async fn customer_identifier_of(&self, customer_account: &str) -> StoreResult<Option<String>>;
    async fn product_keys(&self, product_code: &str) -> StoreResult<Vec<ProductKey>>;
    async fn registration_token(&self, token: &str) -> StoreResult<Option<RegistrationToken>>;
    /// The workload's running run, if any.
    async fn container_session(
        &self,
        product_code: &str,
        resource_id: &str,
    ) -> StoreResult<Option<ContainerSession>>;
    /// Runs matching `filter`, by start time (then product, resource, run).
    async fn list_container_sessions(
        &self,
        filter: &ContainerFilter,
    ) -> StoreResult<Vec<ContainerSession>>;
    async fn usage_records(&self, filter: &UsageFilter) -> StoreResult<Vec<UsageRecordRow>>;
    /// The stored row under `key`, if any (used by dry runs, which store nothing).
    async fn usage_by_key(&self, key: &MeteringKey) -> StoreResult<Option<UsageRecordRow>>;
    /// A previous use of a MeterUsage client token: (fingerprint, metering record id).
    async fn client_token(
        &self,
        caller_account: &str,
        client_token: &str,
    ) -> StoreResult<Option<(String, String)>>;

    // --- metering writes (group-committed)
    //
    // Each takes the audit event of the call it serves and inserts it in the transaction of
    // the change (settled by the write's result where that decides the answer): the event is
    // committed exactly when the change is.

    /// Offers rows in order, all in one transaction; a later row with the key of an earlier
    /// one in the same batch is compared with it. Quantities are compared with
    /// [`crate::dedup::is_retry`]. `audit` is recorded as given.
    async fn commit_usage(
        &self,
        rows: Vec<UsageRecordRow>,
        audit: AuditEvent,
    ) -> StoreResult<Vec<UsageOutcome>>;
    /// MeterUsage in one transaction: token check, then the row, then the token is recorded
    /// (only when the row is stored or is a retry); `audit` is recorded settled by the outcome
    /// ([`AuditEvent::settle_meter`]).
    async fn commit_meter_usage(
        &self,
        claim: Option<TokenClaim>,
        row: UsageRecordRow,
        audit: AuditEvent,
    ) -> StoreResult<MeterOutcome>;

    // --- other writes
    async fn insert_registration_token(&self, token: &RegistrationToken) -> StoreResult<()>;
    /// Marks a single-use token used; false when it was already used (race-free). `audit` is
    /// recorded settled by the result ([`AuditEvent::settle_consume`]).
    async fn consume_registration_token(
        &self,
        token: &str,
        at: OffsetDateTime,
        audit: AuditEvent,
    ) -> StoreResult<bool>;
    /// Starts a run of the workload (numbered after its last one; `session.run` and
    /// `stopped_at` are ignored) unless one is running; returns the running run (the existing
    /// one if another call won the race). `audit` is recorded as given.
    async fn register_container_session(
        &self,
        session: &ContainerSession,
        audit: AuditEvent,
    ) -> StoreResult<ContainerSession>;
    /// Stops the workload's running run at `at` unless it started after `at`; returns the
    /// stopped run, or `None` when nothing was running (or it started after `at`).
    async fn stop_container_session(
        &self,
        product_code: &str,
        resource_id: &str,
        at: OffsetDateTime,
    ) -> StoreResult<Option<ContainerSession>>;

    // --- audit trail (append-only: the database refuses UPDATE and DELETE)
    /// Appends the event of a call that changed nothing (group-committed on SQLite).
    async fn append_audit(&self, event: AuditEvent) -> StoreResult<()>;
    /// A page of events in `seq` order.
    async fn audit_events(&self, filter: &AuditFilter) -> StoreResult<Vec<AuditRecord>>;

    // --- catalog writes (idempotent upserts, used by seeding and the admin API)
    async fn upsert_account(&self, account: &Account) -> StoreResult<()>;
    async fn upsert_access_key(&self, key: &AccessKey) -> StoreResult<()>;
    async fn upsert_product(&self, product: &Product) -> StoreResult<()>;
    async fn upsert_agreement(&self, agreement: &Agreement) -> StoreResult<()>;
    /// Adds a key version unless that version exists; returns whether it was added.
    async fn insert_product_key(&self, key: &ProductKey) -> StoreResult<bool>;
    /// Marks a key version retired at `at` (it still signs; RegisterUsage then reports the
    /// rotation time). Returns false when the version does not exist; retiring twice keeps
    /// the first time.
    async fn retire_product_key(
        &self,
        product_code: &str,
        version: i64,
        at: OffsetDateTime,
    ) -> StoreResult<bool>;

    // --- catalog listings and removals (admin API), in insertion order
    async fn account(&self, id: &str) -> StoreResult<Option<Account>>;
    async fn list_accounts(&self) -> StoreResult<Vec<Account>>;
    async fn list_access_keys(&self, account_id: Option<&str>) -> StoreResult<Vec<AccessKey>>;
    /// Revokes a key at once; false when it did not exist.
    async fn delete_access_key(&self, access_key_id: &str) -> StoreResult<bool>;
    async fn list_products(&self, seller_account: Option<&str>) -> StoreResult<Vec<Product>>;
    /// Deletes a product and its key versions, only when nothing refers to it (checked and
    /// deleted in one transaction).
    async fn delete_product(&self, product_code: &str) -> StoreResult<ProductDeletion>;
    async fn list_agreements(&self, filter: &AgreementFilter) -> StoreResult<Vec<Agreement>>;
    // --- reports
    /// Usage aggregated to (bucket, product, customer, dimension) groups, or with
    /// `tag_key` the allocations carrying that tag to (..., tag value) groups, in no particular
    /// order. See [`crate::reports`].
    async fn usage_groups(
        &self,
        query: &crate::reports::GroupQuery,
    ) -> StoreResult<Vec<crate::reports::UsageGroup>>;

    // --- test controls
    /// Deletes all metering state of every seller (usage records, MeterUsage client tokens,
    /// registration tokens, container sessions) in one transaction; the catalog stays, and so
    /// does the audit trail (append-only, it records the calls the reset undid).
    async fn reset_metering(&self) -> StoreResult<ResetCounts>;

    /// Liveness of the underlying database.
    async fn ping(&self) -> StoreResult<()>;
}

/// Rows a [`Store::reset_metering`] deleted, per kind.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize)]
pub struct ResetCounts {
    pub usage_records: u64,
    pub client_tokens: u64,
    pub registration_tokens: u64,
    pub container_sessions: u64,
}

/// The tables [`Store::reset_metering`] empties, in the order of [`ResetCounts`]' fields.
pub const METERING_TABLES: [&str; 4] = [
    "usage_records",
    "client_tokens",
    "registration_tokens",
    "container_sessions",
];

impl ResetCounts {
    /// From per-table counts in [`METERING_TABLES`] order.
    pub fn from_counts(n: [u64; 4]) -> Self {
        Self {
            usage_records: n[0],
            client_tokens: n[1],
            registration_tokens: n[2],
            container_sessions: n[3],
        }
    }
}

/// Told about every write transaction a store commits, for metrics. Called on the store's
/// write path, so implementations must be cheap (atomic counters, histograms).
pub trait CommitObserver: Send + Sync + 'static {
    /// `writes`: write requests that shared the transaction (the SQLite group-commit size;
    /// always 1 on PostgreSQL, where each request commits on its own). `elapsed`: from BEGIN
    /// to the end of COMMIT. `ok`: whether it committed.
    fn committed(&self, writes: usize, elapsed: std::time::Duration, ok: bool);
}

/// A shareable [`CommitObserver`] that store options can carry (and print).
#[derive(Clone)]
pub struct CommitObserverRef(pub std::sync::Arc<dyn CommitObserver>);

impl std::fmt::Debug for CommitObserverRef {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("CommitObserver")
    }
}
