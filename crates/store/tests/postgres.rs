//! The conformance suite on PostgreSQL, plus PostgreSQL-specific checks: several processes
//! (separate pools) racing on the same keys and tokens, a fixed statement count per batch,
//! reconnecting after the server drops connections, migrations, bad data.
//!
//! Which database, and the schema per test: see `marketmeter-testpg` (`DATABASE_URL`, the local
//! server, or a throwaway cluster; loudly skipped when there is none).

#[macro_use]
mod suite;

use marketmeter_domain::model::*;
use marketmeter_domain::store::*;
use marketmeter_store::{open_store, PgOptions, PgStore};
use marketmeter_testpg::{admin, base_url, unique, Schema};
use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;
use suite::*;

/// A fresh schema and a store on it.
struct Pg {
    store: Arc<PgStore>,
    /// `application_name` of this store's connections.
    app: String,
    // Last: dropped after the store (so its pool is closed first).
    schema: Schema,
}

impl Pg {
    async fn new() -> Option<Pg> {
        Self::with(PgOptions::default()).await
    }

    async fn with(opts: PgOptions) -> Option<Pg> {
        let schema = Schema::new(base_url()?).await;
        let app = unique("mm_app");
        let store = PgStore::connect(&schema.url(&app), opts).await.unwrap();
        Some(Pg {
            store: Arc::new(store),
            app,
            schema,
        })
    }

    /// Another store on the same schema with its own pool: another server process.
    async fn another_process(&self) -> PgStore {
        PgStore::connect(&self.schema.url(&unique("mm_app")), PgOptions::default())
            .await
            .unwrap()
    }

    async fn admin(&self) -> tokio_postgres::Client {
        admin(&self.schema.url("mm_admin")).await.unwrap()
    }
}

impl Fixture for Pg {
    fn store(&self) -> Arc<dyn Store> {
        self.store.clone()
    }

    /// Ends every case: the store still answers and its schema is the current version.
    async fn check(self) {
        self.store.ping().await.unwrap();
        assert_eq!(self.store.schema_version().await.unwrap(), 6);
    }
}

conformance_tests!(optional Pg::new);

// ------------------------------------------------------------------ PostgreSQL-specific

/// Skips (returns) when PostgreSQL is not available.
macro_rules! pg {
    () => {
        match Pg::new().await {
            Some(f) => f,
            None => return,
        }
    };
}

/// Two processes (separate pools) offer batches over the same keys concurrently, with the
/// key's own quantity and with a conflicting one. Exactly one row per key is stored; every
/// offer names it; offers equal to the stored quantity are retries, the others duplicates.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_processes_race_on_the_same_keys() {
    let f = pg!();
    let stores: [Arc<dyn Store>; 2] = [f.store.clone(), Arc::new(f.another_process().await)];
    const TASKS: usize = 40;
    const KEYS: usize = 30;
    let barrier = Arc::new(tokio::sync::Barrier::new(TASKS));
    let mut tasks = tokio::task::JoinSet::new();
    for t in 0..TASKS {
        let s = stores[t % 2].clone();
        let barrier = barrier.clone();
        tasks.spawn(async move {
            // Every third task offers conflicting quantities; order of keys varies by task.
            let conflicting = t % 3 == 0;
            let rows: Vec<_> = (0..KEYS)
                .map(|i| {
                    let k = (t * 7 + i) % KEYS;
                    let qty = if conflicting { k + 1000 } else { k + 1 };
                    row(
                        &format!("p{t}-r{i}"),
                        "111111111111",
                        legacy("prod-a", &format!("c{k}")),
                        "users",
                        1,
                        q(qty as i64),
                    )
                })
                .collect();
            barrier.wait().await;
            let out = s.commit_usage(rows.clone(), ev()).await.unwrap();
            rows.into_iter().zip(out).collect::<Vec<_>>()
        });
    }
    let results: Vec<_> = tasks.join_all().await.into_iter().flatten().collect();
    let listed = f
        .store
        .usage_records(&UsageFilter {
            limit: Some(100_000),
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(listed.len(), KEYS, "exactly one row per key");
    let stored: HashMap<_, _> = listed.iter().map(|r| (r.key.clone(), r)).collect();
    let mut stored_outcomes = 0;
    for (offered, outcome) in &results {
        let winner = stored[&offered.key];
        assert_eq!(outcome_id(outcome), winner.metering_record_id);
        match outcome {
            UsageOutcome::Stored { .. } => {
                stored_outcomes += 1;
                assert_eq!(offered, winner);
            }
            UsageOutcome::Retry { .. } => assert_eq!(offered.quantity, winner.quantity),
            UsageOutcome::Duplicate { .. } => assert_ne!(offered.quantity, winner.quantity),
        }
    }
    assert_eq!(stored_outcomes, KEYS);
}

/// Two processes race MeterUsage calls with one client token: one winner, the rest replay its
/// id (same parameters) or conflict; exactly one token row.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_processes_race_on_one_client_token() {
    let f = pg!();
    let stores: [Arc<dyn Store>; 2] = [f.store.clone(), Arc::new(f.another_process().await)];
    const TASKS: usize = 32;
    let barrier = Arc::new(tokio::sync::Barrier::new(TASKS));
    let mut tasks = tokio::task::JoinSet::new();
    for t in 0..TASKS {
        let s = stores[t % 2].clone();
        let barrier = barrier.clone();
        tasks.spawn(async move {
            // Same parameters (and row) for t % 4 != 3; other parameters and key otherwise.
            let (fp, hour) = if t % 4 == 3 {
                ("fp-b", 31)
            } else {
                ("fp-a", 30)
            };
            barrier.wait().await;
            let out = s
                .commit_meter_usage(
                    Some(claim("tok-2p", fp)),
                    workload_row(&format!("tp-{t}"), hour, q(5)),
                    ev(),
                )
                .await
                .unwrap();
            (fp, hour, out)
        });
    }
    let results = tasks.join_all().await;
    let winners: Vec<_> = results
        .iter()
        .filter_map(|(fp, hour, o)| match o {
            MeterOutcome::Usage(UsageOutcome::Stored { metering_record_id }) => {
                Some((*fp, *hour, metering_record_id.clone()))
            }
            _ => None,
        })
        .collect();
    assert_eq!(winners.len(), 1, "{results:?}");
    let (win_fp, win_hour, win_id) = winners[0].clone();
    for (fp, _, o) in &results {
        match o {
            MeterOutcome::Usage(UsageOutcome::Stored { .. }) => {}
            MeterOutcome::TokenReplay { metering_record_id } => {
                assert_eq!(*fp, win_fp);
                assert_eq!(*metering_record_id, win_id);
            }
            MeterOutcome::TokenConflict => assert_ne!(*fp, win_fp),
            other => panic!("unexpected {other:?}"),
        }
    }
    let n: i64 = f
        .admin()
        .await
        .query_one("SELECT COUNT(*) FROM client_tokens", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(n, 1);
    let loser_hour = if win_hour == 30 { 31 } else { 30 };
    assert!(f
        .store
        .usage_by_key(&workload_row("x", win_hour, q(5)).key)
        .await
        .unwrap()
        .is_some());
    assert_eq!(
        f.store
            .usage_by_key(&workload_row("x", loser_hour, q(5)).key)
            .await
            .unwrap(),
        None
    );
}

/// A batch costs the same few statements whatever its size: one INSERT (autocommitted, carrying
/// the audit event's INSERT as a CTE), plus one SELECT only when some key already had a row.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_batch_costs_a_fixed_number_of_statements() {
    let f = pg!();
    let batch = |prefix: &str, n: usize, offset: usize| -> Vec<UsageRecordRow> {
        (0..n)
            .map(|i| {
                row(
                    &format!("{prefix}-{i}"),
                    "111111111111",
                    legacy("prod-a", &format!("c{}", i + offset)),
                    "users",
                    1,
                    q(1),
                )
            })
            .collect()
    };
    let cost = |rows: Vec<UsageRecordRow>| {
        let s = f.store.clone();
        async move {
            let before = s.stats().statements;
            let out = s.commit_usage(rows, ev()).await.unwrap();
            (s.stats().statements - before, out)
        }
    };
    // The audit event rides in the usage INSERT: no BEGIN, no COMMIT, no second INSERT.
    let (one, _) = cost(batch("a", 1, 0)).await;
    let (many, out) = cost(batch("b", 25, 1)).await;
    assert!(out.iter().all(|o| matches!(o, UsageOutcome::Stored { .. })));
    assert_eq!(one, 1, "one INSERT carrying the audit event");
    assert_eq!(many, 1, "a 25-row batch is not 25 inserts");
    // Half the keys known: one more statement (the SELECT of existing rows), not 25.
    let (mixed, out) = cost(batch("c", 25, 13)).await;
    assert_eq!(mixed, 2);
    assert_eq!(
        out.iter()
            .filter(|o| matches!(o, UsageOutcome::Retry { .. }))
            .count(),
        13
    );
    let (big, out) = cost(batch("d", 500, 0)).await;
    assert_eq!(big, 2);
    assert_eq!(out.len(), 500);
}

/// Terminates the store's server connections and waits until they are gone (termination is
/// asynchronous: `pg_terminate_backend` only signals the backend).
async fn terminate(f: &Pg) -> i64 {
    let admin = f.admin().await;
    let n = admin
        .query(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = $1",
            &[&f.app],
        )
        .await
        .unwrap()
        .len() as i64;
    for _ in 0..100 {
        let left: i64 = admin
            .query_one(
                "SELECT COUNT(*) FROM pg_stat_activity WHERE application_name = $1",
                &[&f.app],
            )
            .await
            .unwrap()
            .get(0);
        if left == 0 {
            return n;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("terminated backends did not exit");
}

fn recovery_row(i: usize) -> UsageRecordRow {
    row(
        &format!("rec-{i}"),
        "111111111111",
        legacy("prod-a", &format!("rc{i}")),
        "users",
        1,
        q(1),
    )
}

/// The server drops the store's connections: the next call succeeds or fails retryably, and
/// the call after it succeeds on a new connection.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn reconnects_after_connections_are_terminated() {
    // One connection: the very next call meets the terminated one (or its replacement).
    let Some(f) = Pg::with(PgOptions {
        max_connections: 1,
        ..PgOptions::default()
    })
    .await
    else {
        return;
    };
    f.store.ping().await.unwrap();
    for round in 0..3 {
        assert!(terminate(&f).await >= 1, "the store's connection is listed");
        match f
            .store
            .commit_usage(vec![recovery_row(round * 2)], ev())
            .await
        {
            Ok(out) => assert!(matches!(out[0], UsageOutcome::Stored { .. })),
            Err(StoreError::Unavailable(m)) => eprintln!("round {round}: first call: {m}"),
            Err(e) => panic!("expected success or Unavailable, got {e:?}"),
        }
        let out = f
            .store
            .commit_usage(vec![recovery_row(round * 2 + 1)], ev())
            .await
            .unwrap();
        assert!(matches!(out[0], UsageOutcome::Stored { .. }));
    }

    // Several pooled connections, all terminated while idle.
    let Some(f) = Pg::new().await else { return };
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..8 {
        let s = f.store.clone();
        tasks.spawn(async move { s.ping().await.unwrap() });
    }
    tasks.join_all().await;
    assert!(terminate(&f).await >= 1);
    // Give the connection tasks a moment to read the server's goodbye.
    tokio::time::sleep(Duration::from_millis(300)).await;
    match f.store.ping().await {
        Ok(()) | Err(StoreError::Unavailable(_)) => {}
        Err(e) => panic!("{e:?}"),
    }
    f.store.ping().await.unwrap();
    let out = f
        .store
        .commit_usage(vec![recovery_row(99)], ev())
        .await
        .unwrap();
    assert!(matches!(out[0], UsageOutcome::Stored { .. }));
}

/// Reusing a metering record id under another key is refused (Invalid) and the whole batch is
/// undone; a duplicate registration token is refused the same way.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_failing_batch_rolls_back_entirely() {
    let f = pg!();
    let s = f.store.clone();
    let a = row(
        "same-id",
        "111111111111",
        legacy("prod-a", "c1"),
        "users",
        1,
        q(1),
    );
    s.commit_usage(vec![a], ev()).await.unwrap();
    let bad = vec![
        row(
            "fresh",
            "111111111111",
            legacy("prod-a", "c2"),
            "users",
            1,
            q(1),
        ),
        row(
            "same-id",
            "111111111111",
            legacy("prod-a", "c3"),
            "users",
            1,
            q(1),
        ),
    ];
    let r = s.commit_usage(bad.clone(), ev()).await;
    assert!(matches!(r, Err(StoreError::Invalid(_))), "{r:?}");
    assert_eq!(s.usage_by_key(&bad[0].key).await.unwrap(), None);
    s.insert_registration_token(&reg_token("t", true))
        .await
        .unwrap();
    assert!(matches!(
        s.insert_registration_token(&reg_token("t", true)).await,
        Err(StoreError::Invalid(_))
    ));
    // The store is still fine afterwards.
    let ok = row(
        "ok",
        "111111111111",
        legacy("prod-a", "c4"),
        "users",
        1,
        q(1),
    );
    assert_eq!(
        s.commit_usage(vec![ok], ev()).await.unwrap(),
        vec![stored("ok")]
    );
    f.check().await;
}

/// Many processes starting together migrate once; a database newer than the build is refused.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn migrations_apply_once_under_concurrent_starts() {
    let Some(base) = base_url() else { return };
    let schema = Schema::new(base).await;
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..6 {
        let url = schema.url("mm_migrate");
        tasks.spawn(async move {
            PgStore::connect(
                &url,
                PgOptions {
                    max_connections: 1,
                    ..PgOptions::default()
                },
            )
            .await
            .unwrap()
        });
    }
    let stores = tasks.join_all().await;
    for s in &stores {
        assert_eq!(s.schema_version().await.unwrap(), 6);
        assert_eq!(s.migrate().await.unwrap(), 0);
    }
    let c = admin(&schema.url("mm_admin")).await.unwrap();
    let n: i64 = c
        .query_one("SELECT COUNT(*) FROM schema_migrations", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(
        n as usize,
        marketmeter_testpg::migration_files("postgres"),
        "one row per schema version, applied once"
    );
    c.batch_execute("INSERT INTO schema_migrations (version, applied_us) VALUES (999, 0)")
        .await
        .unwrap();
    assert!(matches!(
        PgStore::connect(&schema.url("mm_migrate"), PgOptions::default()).await,
        Err(StoreError::Unavailable(m)) if m.contains("newer")
    ));
    drop(stores);
}

/// A search_path naming a schema that does not exist: the first of several processes starting
/// together creates it and applies the migrations, the others find both done.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_missing_schema_is_created_once_under_concurrent_starts() {
    let Some(base) = base_url() else { return };
    let schema = Schema::reserve(base);
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..4 {
        let url = schema.url("mm_create");
        tasks.spawn(async move { PgStore::connect(&url, PgOptions::default()).await });
    }
    let stores: Vec<PgStore> = tasks
        .join_all()
        .await
        .into_iter()
        .map(|s| s.expect("every start succeeds"))
        .collect();
    let applied: Vec<usize> = stores
        .iter()
        .map(PgStore::migrations_applied)
        .filter(|n| *n > 0)
        .collect();
    let version = stores[0].schema_version().await.unwrap();
    assert_eq!(version, 6);
    assert_eq!(
        applied,
        [marketmeter_testpg::migration_files("postgres")],
        "one start applied every migration, once"
    );
    let c = admin(base).await.unwrap();
    let tables: i64 = c
        .query_one(
            "SELECT COUNT(*) FROM information_schema.tables WHERE table_schema = $1",
            &[&schema.name],
        )
        .await
        .unwrap()
        .get(0);
    assert!(tables >= 10, "the tables live in the new schema ({tables})");
    drop(stores);
}

/// Bad data in the database is an error, not a panic, and never echoes a secret.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn corrupt_rows_are_errors_not_panics() {
    let f = pg!();
    let s = f.store.clone();
    s.upsert_product(&product("prod-a", "111111111111"))
        .await
        .unwrap();
    let r = row(
        "x",
        "111111111111",
        legacy("prod-a", "c1"),
        "users",
        1,
        q(1),
    );
    s.commit_usage(vec![r.clone()], ev()).await.unwrap();
    s.upsert_access_key(&AccessKey {
        access_key_id: "AKIA".into(),
        account_id: "1".into(),
        secret_access_key: "do-not-leak".into(),
        session_token: None,
        workload: Some(Workload {
            resource_id: "i-1".into(),
            platform: Platform::Ec2,
            region: "r".into(),
        }),
    })
    .await
    .unwrap();
    f.admin()
        .await
        .batch_execute(
            "UPDATE products SET kind = 'spaceship', dimensions = '{not json';
             UPDATE usage_records SET allocations = '[{\"quantity\":\"1e9\"}]', quantity = -5;
             UPDATE access_keys SET workload_platform = 'mainframe';",
        )
        .await
        .unwrap();
    for res in [
        s.product("prod-a").await.map(|_| ()),
        s.usage_by_key(&r.key).await.map(|_| ()),
        s.usage_records(&UsageFilter::default()).await.map(|_| ()),
        s.access_key("AKIA").await.map(|_| ()),
    ] {
        match res {
            Err(StoreError::Unavailable(m)) => assert!(!m.contains("do-not-leak"), "{m}"),
            other => panic!("expected Unavailable, got {other:?}"),
        }
    }
    // A retry against the corrupt stored quantity fails cleanly too.
    let mut again = r.clone();
    again.metering_record_id = "y".into();
    assert!(matches!(
        s.commit_usage(vec![again], ev()).await,
        Err(StoreError::Unavailable(_))
    ));
}

/// `open_store` picks the backend from the name.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn open_store_picks_the_backend() {
    let dir = tempfile::tempdir().unwrap();
    for name in [
        dir.path().join("plain.db").display().to_string(),
        format!("sqlite://{}", dir.path().join("prefixed.db").display()),
    ] {
        let s = open_store(&name).await.unwrap();
        s.ping().await.unwrap();
        let r = row(
            "o",
            "111111111111",
            legacy("prod-a", "c1"),
            "users",
            1,
            q(1),
        );
        assert_eq!(
            s.commit_usage(vec![r], ev()).await.unwrap(),
            vec![stored("o")]
        );
    }
    assert!(Path::new(&dir.path().join("prefixed.db")).exists());

    let Some(base) = base_url() else { return };
    let schema = Schema::new(base).await;
    for url in [
        schema.url("mm_open"),
        schema
            .url("mm_open")
            .replacen("postgres://", "postgresql://", 1),
    ] {
        let s = open_store(&url).await.unwrap();
        s.ping().await.unwrap();
    }
}

/// An unreachable server is a retryable error at connect; a malformed URL is not.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn connect_errors() {
    let opts = PgOptions {
        connect_timeout: Duration::from_secs(2),
        ..PgOptions::default()
    };
    let r = PgStore::connect("postgres://postgres:hunter2@127.0.0.1:1/none", opts.clone()).await;
    match r {
        Err(StoreError::Unavailable(m)) => assert!(!m.contains("hunter2"), "{m}"),
        other => panic!("expected Unavailable, got {:?}", other.err()),
    }
    assert!(matches!(
        PgStore::connect("postgres://127.0.0.1:notaport/x", opts).await,
        Err(StoreError::Invalid(_))
    ));
}

/// Reports without customers read the hourly rollup plus its unfolded delta: equal to the
/// records before a fold, after it, and with both holding rows; a fold empties the delta.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn rollup_reports_are_exact_across_folds() {
    use marketmeter_domain::reports::{Grain, GroupQuery, UsageGroup};
    let Some(f) = Pg::new().await else { return };
    let s = f.store.clone();
    let rows: Vec<UsageRecordRow> = (0..90i64)
        .map(|i| {
            row(
                &format!("f-{i}"),
                "111111111111",
                legacy("prod-a", &format!("c{i}")),
                ["users", "gb"][(i % 2) as usize],
                100 + i % 4,
                q(i + 1),
            )
        })
        .collect();
    let query = GroupQuery {
        seller_account: None,
        product_code: Some("prod-a".into()),
        from_hour: 0,
        to_hour: 1000,
        grain: Grain::Hour,
        by_customer: false,
        tag_key: None,
    };
    // What the records say, for the rows stored so far.
    let want = |n: usize| {
        let mut sums: HashMap<(i64, String), (u64, u64)> = HashMap::new();
        for r in &rows[..n] {
            let e = sums
                .entry((r.key.hour, r.key.dimension.clone()))
                .or_default();
            e.0 += r.quantity.micros();
            e.1 += 1;
        }
        let mut v: Vec<UsageGroup> = sums
            .into_iter()
            .map(|((h, d), (qty, n))| UsageGroup {
                bucket_hour: h,
                product_code: "prod-a".into(),
                customer: String::new(),
                dimension: d,
                tag_value: None,
                quantity: marketmeter_wire::Quantity::from_micros(qty),
                records: n,
            })
            .collect();
        v.sort();
        v
    };
    let got = || async {
        let mut v = s.usage_groups(&query).await.unwrap();
        v.sort();
        v
    };
    let delta_rows = || async {
        f.admin()
            .await
            .query_one("SELECT COUNT(*) FROM usage_hourly_delta", &[])
            .await
            .unwrap()
            .get::<_, i64>(0)
    };

    s.commit_usage(rows[..40].to_vec(), ev()).await.unwrap();
    s.fold_rollup().await.unwrap();
    assert_eq!(delta_rows().await, 0, "a fold empties the delta");
    assert_eq!(got().await, want(40), "all folded");
    for chunk in rows[40..].chunks(10) {
        s.commit_usage(chunk.to_vec(), ev()).await.unwrap();
    }
    assert!(delta_rows().await > 0, "the new rows wait in the delta");
    assert_eq!(got().await, want(90), "rollup plus delta");
    s.fold_rollup().await.unwrap();
    assert_eq!(got().await, want(90), "all folded again");
    // A delete (reset) is folded as negative sums: nothing is left to report.
    s.reset_metering().await.unwrap();
    assert!(got().await.is_empty());
    s.fold_rollup().await.unwrap();
    assert!(got().await.is_empty());
    f.check().await;
}

/// The database itself refuses to change, remove or truncate audit events, and an event that
/// cannot be inserted undoes the change it describes (same transaction or statement).
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn audit_trail_is_append_only_and_shares_its_change_transaction() {
    let f = pg!();
    let s = f.store.clone();
    let t = 1_700_000_000;
    s.append_audit(event("MeterUsage", None, t, "first"))
        .await
        .unwrap();
    let admin = f.admin().await;
    for sql in [
        "UPDATE audit_events SET outcome = 'error'",
        "UPDATE audit_events SET request_id = 'forged' WHERE request_id = 'first'",
        "DELETE FROM audit_events",
        "TRUNCATE audit_events",
    ] {
        let e = admin.batch_execute(sql).await.unwrap_err();
        let msg = e
            .as_db_error()
            .map(|d| d.message().to_string())
            .unwrap_or_default();
        assert!(msg.contains("append-only"), "{sql}: {e}");
    }

    admin
        .batch_execute(
            "CREATE FUNCTION test_refuse() RETURNS trigger LANGUAGE plpgsql AS $$ \
             BEGIN IF NEW.request_id LIKE 'refused%' THEN RAISE EXCEPTION 'refused by the test'; \
             END IF; RETURN NEW; END $$; \
             CREATE TRIGGER test_refuse BEFORE INSERT ON audit_events \
             FOR EACH ROW EXECUTE FUNCTION test_refuse();",
        )
        .await
        .unwrap();
    // Every write path: the batch, MeterUsage, the token compare-and-set, a session.
    let r = row(
        "x-1",
        "111111111111",
        legacy("prod-a", "c1"),
        "users",
        1,
        q(1),
    );
    let out = s
        .commit_usage(
            vec![r.clone()],
            event("BatchMeterUsage", None, t, "refused-1"),
        )
        .await;
    assert!(out.is_err(), "{out:?}");
    assert_eq!(s.usage_by_key(&r.key).await.unwrap(), None);
    let m = workload_row("m-1", 3, q(1));
    let out = s
        .commit_meter_usage(
            Some(claim("tok", "fp")),
            m.clone(),
            event("MeterUsage", None, t, "refused-2"),
        )
        .await;
    assert!(out.is_err(), "{out:?}");
    assert_eq!(s.usage_by_key(&m.key).await.unwrap(), None);
    assert_eq!(s.client_token("222222222222", "tok").await.unwrap(), None);
    s.insert_registration_token(&reg_token("once", true))
        .await
        .unwrap();
    let out = s
        .consume_registration_token(
            "once",
            at(t, 0),
            event("ResolveCustomer", None, t, "refused-3"),
        )
        .await;
    assert!(out.is_err(), "{out:?}");
    assert_eq!(
        s.registration_token("once").await.unwrap().unwrap().used_at,
        None
    );
    let cs = session("pod-1", "222222222222", at(t, 0));
    let out = s
        .register_container_session(&cs, event("RegisterUsage", None, t, "refused-4"))
        .await;
    assert!(out.is_err(), "{out:?}");
    assert_eq!(s.container_session("prod-c", "pod-1").await.unwrap(), None);

    s.commit_usage(vec![r.clone()], event("BatchMeterUsage", None, t, "second"))
        .await
        .unwrap();
    assert!(s.usage_by_key(&r.key).await.unwrap().is_some());
    let all = s
        .audit_events(&marketmeter_domain::audit::AuditFilter::default())
        .await
        .unwrap();
    let ids: Vec<&str> = all.iter().map(|e| e.event.request_id.as_str()).collect();
    assert_eq!(ids, ["first", "second"]);
    f.check().await;
}

/// A database migrated before version 3 existed ({1, 2, 4}: the container branch landed first)
/// gets version 3 at the next start, and the audit trail works there.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_version_below_the_highest_is_applied_later() {
    let f = pg!();
    let admin = f.admin().await;
    admin
        .batch_execute(
            "DROP TABLE audit_events; DROP FUNCTION audit_events_append_only(); \
             DELETE FROM schema_migrations WHERE version = 3;",
        )
        .await
        .unwrap();
    let again = f.another_process().await;
    assert_eq!(again.migrations_applied(), 1);
    assert_eq!(again.schema_version().await.unwrap(), 6);
    again
        .append_audit(event("MeterUsage", None, 1_700_000_000, "after"))
        .await
        .unwrap();
    let all = again
        .audit_events(&marketmeter_domain::audit::AuditFilter::default())
        .await
        .unwrap();
    assert_eq!(all.len(), 1);
    f.check().await;
}
