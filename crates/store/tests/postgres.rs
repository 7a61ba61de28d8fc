//! The conformance suite on PostgreSQL, plus PostgreSQL-specific checks: several processes
//! (separate pools) racing on the same keys and tokens, a fixed statement count per batch,
//! reconnecting after the server drops connections, migrations, bad data.
//!
//! Which database: `DATABASE_URL` when set; otherwise `postgres://postgres@127.0.0.1:5432/test`;
//! if that is unreachable and `initdb`/`pg_ctl` are on PATH, a throwaway cluster in a temporary
//! directory on a free port (as the `postgres` user when running as root), stopped and deleted
//! when this test process exits. If none works the tests are SKIPPED with a loud message, or
//! FAIL when `MARKETMETER_REQUIRE_POSTGRES=1`.
//!
//! Isolation: every test gets its own schema (`mm_test_...`, via `options=-c search_path=...`
//! in the URL), dropped when the test ends (also when it panics).

#[macro_use]
mod suite;

use marketmeter_domain::model::*;
use marketmeter_domain::store::*;
use marketmeter_store::{open_store, PgOptions, PgStore};
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::Duration;
use suite::*;

const DEFAULT_URL: &str = "postgres://postgres@127.0.0.1:5432/test";

// ------------------------------------------------------------------ finding a database

fn required() -> bool {
    std::env::var("MARKETMETER_REQUIRE_POSTGRES").is_ok_and(|v| v == "1")
}

/// Runs `f` on a private runtime in its own thread (usable from inside a test's runtime).
fn on_own_runtime<T: Send + 'static>(
    f: impl std::future::Future<Output = T> + Send + 'static,
) -> T {
    std::thread::spawn(move || {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap()
            .block_on(f)
    })
    .join()
    .unwrap()
}

async fn admin(url: &str) -> Result<tokio_postgres::Client, String> {
    let mut cfg: tokio_postgres::Config = url.parse().map_err(|e| format!("{e}"))?;
    cfg.connect_timeout(Duration::from_secs(3));
    let (client, conn) = cfg
        .connect(tokio_postgres::NoTls)
        .await
        .map_err(|e| format!("{e}"))?;
    tokio::spawn(async move {
        let _ = conn.await;
    });
    Ok(client)
}

fn probe(url: &str) -> Result<(), String> {
    let url = url.to_string();
    on_own_runtime(async move {
        let c = admin(&url).await?;
        c.simple_query("SELECT 1")
            .await
            .map_err(|e| format!("{e}"))?;
        Ok(())
    })
}

fn on_path(bin: &str) -> Option<PathBuf> {
    std::env::var_os("PATH").and_then(|p| {
        std::env::split_paths(&p)
            .map(|d| d.join(bin))
            .find(|f| f.is_file())
    })
}

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
}

/// Runs a shell command, as `postgres` when this process is root (initdb refuses root).
fn sh(cmd: &str, root: bool) -> Command {
    let mut c;
    if root {
        c = Command::new("su");
        c.args(["postgres", "-s", "/bin/sh", "-c", cmd]);
    } else {
        c = Command::new("sh");
        c.args(["-c", cmd]);
    }
    c
}

/// A throwaway cluster for this test process; a watchdog stops and deletes it when we exit.
fn throwaway_cluster() -> Result<String, String> {
    let initdb = on_path("initdb").ok_or("initdb is not on PATH")?;
    let pg_ctl = on_path("pg_ctl").ok_or("pg_ctl is not on PATH")?;
    let root = is_root();
    let dir = std::env::temp_dir().join(format!("mm-pg-{}", std::process::id()));
    std::fs::create_dir_all(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    if root {
        let ok = Command::new("chown")
            .args(["postgres:", &dir.display().to_string()])
            .status()
            .is_ok_and(|s| s.success());
        if !ok {
            return Err("running as root and cannot hand the cluster to user postgres".into());
        }
    }
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map_err(|e| format!("no free port: {e}"))?
        .port();
    let (d, data) = (dir.display(), dir.join("data"));
    let data = data.display();
    let init = format!(
        "'{}' -D '{data}' -U postgres -A trust --no-sync >'{d}/initdb.log' 2>&1",
        initdb.display()
    );
    if !sh(&init, root).status().is_ok_and(|s| s.success()) {
        return Err(format!("initdb failed (see {d}/initdb.log)"));
    }
    let start = format!(
        "'{}' -D '{data}' -w -l '{d}/server.log' -o \"-p {port} -k '{d}' \
         -c listen_addresses=127.0.0.1 -c fsync=off -c max_connections=200\" start",
        pg_ctl.display()
    );
    if !sh(&start, root).status().is_ok_and(|s| s.success()) {
        return Err(format!("pg_ctl start failed (see {d}/server.log)"));
    }
    let watchdog = format!(
        "while [ -d /proc/{pid} ]; do sleep 1; done; \
         '{}' -D '{data}' -m immediate stop >/dev/null 2>&1; rm -rf '{d}'",
        pg_ctl.display(),
        pid = std::process::id()
    );
    sh(
        &format!("nohup sh -c \"{watchdog}\" >/dev/null 2>&1 &"),
        root,
    )
    .status()
    .map_err(|e| format!("watchdog: {e}"))?;
    Ok(format!("postgres://postgres@127.0.0.1:{port}/postgres"))
}

fn find_database() -> Result<String, String> {
    if let Ok(url) = std::env::var("DATABASE_URL") {
        return probe(&url)
            .map(|_| url)
            .map_err(|e| format!("DATABASE_URL is set but unreachable: {e}"));
    }
    let default = std::env::var("MARKETMETER_PG_DEFAULT_URL").unwrap_or(DEFAULT_URL.into());
    let first = match probe(&default) {
        Ok(()) => return Ok(default),
        Err(e) => e,
    };
    let url = throwaway_cluster()
        .map_err(|e| format!("{default} is unreachable ({first}); no throwaway cluster: {e}"))?;
    probe(&url).map(|_| url)
}

/// The base URL of the database every test uses, or None when the tests are skipped.
fn base_url() -> Option<&'static str> {
    static URL: OnceLock<Result<String, String>> = OnceLock::new();
    match URL.get_or_init(find_database) {
        Ok(url) => Some(url),
        Err(why) if required() => {
            panic!("PostgreSQL is required (MARKETMETER_REQUIRE_POSTGRES=1) but: {why}")
        }
        Err(why) => {
            // Straight to the process's stderr (the test harness captures eprintln!), once.
            static ONCE: std::sync::Once = std::sync::Once::new();
            ONCE.call_once(|| {
                use std::io::Write;
                let _ = writeln!(
                    std::io::stderr(),
                    "\n!!!!!!!!!! PostgreSQL tests SKIPPED: {why}\n\
                     !!!!!!!!!! set DATABASE_URL, or MARKETMETER_REQUIRE_POSTGRES=1 to fail \
                     instead\n"
                );
            });
            None
        }
    }
}

// ------------------------------------------------------------------ per-test schema

fn unique(prefix: &str) -> String {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .subsec_nanos();
    format!(
        "{prefix}_{}_{}_{nanos}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    )
}

fn with_params(base: &str, params: &str) -> String {
    let sep = if base.contains('?') { '&' } else { '?' };
    format!("{base}{sep}{params}")
}

/// A schema of its own, dropped (with everything in it) when this is dropped.
struct Schema {
    base: String,
    name: String,
}

impl Schema {
    async fn new(base: &str) -> Schema {
        let name = unique("mm_test");
        admin(base)
            .await
            .unwrap()
            .batch_execute(&format!("CREATE SCHEMA {name}"))
            .await
            .unwrap();
        Schema {
            base: base.to_string(),
            name,
        }
    }

    /// A URL whose connections use this schema and the given application name.
    fn url(&self, app: &str) -> String {
        with_params(
            &self.base,
            &format!(
                "options=-c%20search_path%3D{}&application_name={app}",
                self.name
            ),
        )
    }
}

impl Drop for Schema {
    fn drop(&mut self) {
        let (base, name) = (self.base.clone(), self.name.clone());
        let res = on_own_runtime(async move {
            let c = admin(&base).await?;
            c.batch_execute(&format!("DROP SCHEMA IF EXISTS {name} CASCADE"))
                .await
                .map_err(|e| format!("{e}"))
        });
        if let Err(e) = res {
            eprintln!("could not drop test schema {}: {e}", self.name);
        }
    }
}

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
        assert_eq!(self.store.schema_version().await.unwrap(), 1);
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
            let out = s.commit_usage(rows.clone()).await.unwrap();
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

/// A batch costs the same few statements whatever its size: BEGIN, one INSERT, at most one
/// SELECT (only when some key already had a row), COMMIT.
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
            let out = s.commit_usage(rows).await.unwrap();
            (s.stats().statements - before, out)
        }
    };
    let (one, _) = cost(batch("a", 1, 0)).await;
    let (many, out) = cost(batch("b", 25, 1)).await;
    assert!(out.iter().all(|o| matches!(o, UsageOutcome::Stored { .. })));
    assert_eq!(one, 3, "BEGIN, INSERT, COMMIT");
    assert_eq!(many, 3, "a 25-row batch is not 25 inserts");
    // Half the keys known: one more statement (the SELECT of existing rows), not 25.
    let (mixed, out) = cost(batch("c", 25, 13)).await;
    assert_eq!(mixed, 4);
    assert_eq!(
        out.iter()
            .filter(|o| matches!(o, UsageOutcome::Retry { .. }))
            .count(),
        13
    );
    let (big, out) = cost(batch("d", 500, 0)).await;
    assert_eq!(big, 4);
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
        match f.store.commit_usage(vec![recovery_row(round * 2)]).await {
            Ok(out) => assert!(matches!(out[0], UsageOutcome::Stored { .. })),
            Err(StoreError::Unavailable(m)) => eprintln!("round {round}: first call: {m}"),
            Err(e) => panic!("expected success or Unavailable, got {e:?}"),
        }
        let out = f
            .store
            .commit_usage(vec![recovery_row(round * 2 + 1)])
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
    let out = f.store.commit_usage(vec![recovery_row(99)]).await.unwrap();
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
    s.commit_usage(vec![a]).await.unwrap();
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
    let r = s.commit_usage(bad.clone()).await;
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
    assert_eq!(s.commit_usage(vec![ok]).await.unwrap(), vec![stored("ok")]);
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
        assert_eq!(s.schema_version().await.unwrap(), 1);
        assert_eq!(s.migrate().await.unwrap(), 0);
    }
    let c = admin(&schema.url("mm_admin")).await.unwrap();
    let n: i64 = c
        .query_one("SELECT COUNT(*) FROM schema_migrations", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(n, 1);
    c.batch_execute("INSERT INTO schema_migrations (version, applied_us) VALUES (999, 0)")
        .await
        .unwrap();
    assert!(matches!(
        PgStore::connect(&schema.url("mm_migrate"), PgOptions::default()).await,
        Err(StoreError::Unavailable(m)) if m.contains("newer")
    ));
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
    s.commit_usage(vec![r.clone()]).await.unwrap();
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
        s.commit_usage(vec![again]).await,
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
        assert_eq!(s.commit_usage(vec![r]).await.unwrap(), vec![stored("o")]);
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
