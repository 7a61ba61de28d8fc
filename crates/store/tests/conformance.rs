//! The conformance suite on SQLite (a file, and the in-memory variant), plus SQLite-specific
//! checks (files, reopen, group commit, pragmas, corrupt data).

#[macro_use]
mod suite;

use marketmeter_domain::model::*;
use marketmeter_domain::store::*;
use marketmeter_store::{SqliteOptions, SqliteStore};
use r2d2_sqlite::rusqlite::Connection;
use std::path::PathBuf;
use std::sync::Arc;
use suite::*;

/// A fresh store in its own temporary directory.
struct OnDisk {
    // Kept alive for the test's duration: the directory is deleted on drop.
    dir: tempfile::TempDir,
    store: Arc<SqliteStore>,
}

impl OnDisk {
    async fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        // A nested path proves parent directories are created.
        let path = dir.path().join("nested/dir/meter.db");
        let store = Arc::new(SqliteStore::open(&path, Default::default()).await.unwrap());
        Self { dir, store }
    }

    fn path(&self) -> PathBuf {
        self.dir.path().join("nested/dir/meter.db")
    }
}

impl Fixture for OnDisk {
    fn store(&self) -> Arc<dyn Store> {
        self.store.clone()
    }

    /// Ends every case: the file must be intact, seen by the store and by a fresh connection.
    async fn check(self) {
        assert!(
            self.store.integrity_check().await.unwrap(),
            "PRAGMA integrity_check"
        );
        let raw = Connection::open(self.path()).unwrap();
        let ok: String = raw
            .query_row("PRAGMA integrity_check", [], |r| r.get(0))
            .unwrap();
        assert_eq!(ok, "ok");
    }
}

/// A fresh in-memory store.
struct Memory(Arc<SqliteStore>);

impl Memory {
    async fn new() -> Self {
        Self(Arc::new(
            SqliteStore::open_in_memory(Default::default()).unwrap(),
        ))
    }
}

impl Fixture for Memory {
    fn store(&self) -> Arc<dyn Store> {
        self.0.clone()
    }

    async fn check(self) {
        assert!(
            self.0.integrity_check().await.unwrap(),
            "PRAGMA integrity_check"
        );
    }
}

mod file {
    conformance_tests!(super::OnDisk::new);
}

mod memory {
    conformance_tests!(super::Memory::new);
}

// ------------------------------------------------------------------ SQLite-specific

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn persists_across_reopen() {
    let f = OnDisk::new().await;
    let r = row(
        "keep-1",
        "111111111111",
        legacy("prod-a", "c1"),
        "users",
        5,
        q(3),
    );
    f.store
        .upsert_product(&product("prod-a", "111111111111"))
        .await
        .unwrap();
    f.store.commit_usage(vec![r.clone()], ev()).await.unwrap();
    let path = f.path();
    drop(f.store);

    let again = SqliteStore::open(&path, SqliteOptions::default())
        .await
        .unwrap();
    assert_eq!(
        again.schema_version().await.unwrap(),
        6,
        "migrations are not re-applied"
    );
    assert_eq!(again.usage_by_key(&r.key).await.unwrap(), Some(r.clone()));
    assert_eq!(
        again.product("prod-a").await.unwrap(),
        Some(product("prod-a", "111111111111"))
    );
    // Dedup survives the restart.
    let mut retried = r.clone();
    retried.metering_record_id = "keep-2".into();
    assert_eq!(
        again.commit_usage(vec![retried], ev()).await.unwrap(),
        vec![UsageOutcome::Retry {
            metering_record_id: "keep-1".into()
        }]
    );
    let raw = Connection::open(&path).unwrap();
    let versions: i64 = raw
        .query_row("SELECT COUNT(*) FROM schema_migrations", [], |r| r.get(0))
        .unwrap();
    let files = marketmeter_testpg::migration_files("sqlite") as i64;
    assert_eq!(versions, files, "one row per schema version");
    assert!(again.integrity_check().await.unwrap());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn durable_pragmas() {
    let f = OnDisk::new().await;
    let raw = Connection::open(f.path()).unwrap();
    // journal_mode is persistent in the file; a fresh connection sees WAL.
    let mode: String = raw
        .query_row("PRAGMA journal_mode", [], |r| r.get(0))
        .unwrap();
    assert_eq!(mode.to_lowercase(), "wal");
    f.check().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn group_commit_batches_concurrent_writes() {
    let f = OnDisk::new().await;
    let before = f.store.stats();
    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..200 {
        let s = f.store.clone();
        tasks.spawn(async move {
            let r = row(
                &format!("g{i}"),
                "111111111111",
                legacy("prod-a", &format!("c{i}")),
                "users",
                1,
                q(1),
            );
            s.commit_usage(vec![r], ev()).await.unwrap()
        });
    }
    let outcomes = tasks.join_all().await;
    assert!(outcomes
        .iter()
        .all(|o| matches!(o[0], UsageOutcome::Stored { .. })));
    let after = f.store.stats();
    let commands = after.commands - before.commands;
    let commits = after.commits - before.commits;
    assert_eq!(commands, 200);
    eprintln!("group commit: {commands} commands in {commits} commits");
    assert!(
        commits < commands,
        "expected batching: {commits} commits for {commands} commands"
    );
    f.check().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_failing_command_rolls_back_only_itself() {
    let f = OnDisk::new().await;
    let a = row(
        "same-id",
        "111111111111",
        legacy("prod-a", "c1"),
        "users",
        1,
        q(1),
    );
    f.store.commit_usage(vec![a], ev()).await.unwrap();
    // Reusing a metering record id under another key is refused, and the whole command (its
    // first row included) is undone, while a concurrent command in the same group commits.
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
    let good = vec![row(
        "ok",
        "111111111111",
        legacy("prod-a", "c4"),
        "users",
        1,
        q(1),
    )];
    let (s1, s2) = (f.store.clone(), f.store.clone());
    let (r1, r2) = tokio::join!(
        s1.commit_usage(bad.clone(), ev()),
        s2.commit_usage(good.clone(), ev())
    );
    assert!(matches!(r1, Err(StoreError::Invalid(_))), "{r1:?}");
    assert_eq!(
        r2.unwrap(),
        vec![UsageOutcome::Stored {
            metering_record_id: "ok".into()
        }]
    );
    assert_eq!(f.store.usage_by_key(&bad[0].key).await.unwrap(), None);
    assert!(f.store.usage_by_key(&good[0].key).await.unwrap().is_some());
    // Duplicate registration tokens are refused the same way.
    f.store
        .insert_registration_token(&reg_token("t", true))
        .await
        .unwrap();
    assert!(matches!(
        f.store
            .insert_registration_token(&reg_token("t", true))
            .await,
        Err(StoreError::Invalid(_))
    ));
    f.check().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn corrupt_rows_are_errors_not_panics() {
    let f = OnDisk::new().await;
    f.store
        .upsert_product(&product("prod-a", "111111111111"))
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
    f.store.commit_usage(vec![r.clone()], ev()).await.unwrap();
    f.store
        .upsert_access_key(&AccessKey {
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
    let raw = Connection::open(f.path()).unwrap();
    raw.execute_batch(
        "UPDATE products SET kind = 'spaceship', dimensions = '{not json';
         UPDATE usage_records SET allocations = '[{\"quantity\":\"1e9\"}]', quantity = -5;
         UPDATE access_keys SET workload_platform = 'mainframe';",
    )
    .unwrap();
    for res in [
        f.store.product("prod-a").await.map(|_| ()),
        f.store.usage_by_key(&r.key).await.map(|_| ()),
        f.store
            .usage_records(&UsageFilter::default())
            .await
            .map(|_| ()),
        f.store.access_key("AKIA").await.map(|_| ()),
    ] {
        match res {
            Err(StoreError::Unavailable(m)) => assert!(!m.contains("do-not-leak"), "{m}"),
            other => panic!("expected Unavailable, got {other:?}"),
        }
    }
    f.check().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn open_fails_cleanly_on_an_unusable_path() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("plain-file");
    std::fs::write(&file, "this is not a database\n".repeat(200)).unwrap();
    // A parent that is a file cannot be created as a directory.
    let res = SqliteStore::open(&file.join("db.sqlite"), SqliteOptions::default()).await;
    assert!(matches!(res, Err(StoreError::Unavailable(_))));
    // A file that is not a database.
    let res = SqliteStore::open(&file, SqliteOptions::default()).await;
    assert!(matches!(res, Err(StoreError::Unavailable(_))));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn groups_are_bounded_by_max_batch() {
    let dir = tempfile::tempdir().unwrap();
    let opts = SqliteOptions {
        max_batch: 8,
        ..SqliteOptions::default()
    };
    let store = Arc::new(
        SqliteStore::open(&dir.path().join("m.db"), opts)
            .await
            .unwrap(),
    );
    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..80 {
        let s = store.clone();
        tasks.spawn(async move {
            s.consume_registration_token(&format!("none-{i}"), at(0, 0), ev())
                .await
                .unwrap()
        });
    }
    assert!(tasks.join_all().await.iter().all(|used| !used));
    let st = store.stats();
    assert_eq!(st.commands, 80);
    assert!(st.commits >= 10, "{st:?}");
    assert!(store.integrity_check().await.unwrap());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn in_memory_stores_are_private() {
    let a = SqliteStore::open_in_memory(SqliteOptions::default()).unwrap();
    let b = SqliteStore::open_in_memory(SqliteOptions::default()).unwrap();
    let r = row(
        "mem-1",
        "111111111111",
        legacy("prod-a", "c1"),
        "users",
        1,
        q(1),
    );
    a.commit_usage(vec![r.clone()], ev()).await.unwrap();
    assert_eq!(a.usage_by_key(&r.key).await.unwrap(), Some(r.clone()));
    assert_eq!(b.usage_by_key(&r.key).await.unwrap(), None);
    assert_eq!(a.schema_version().await.unwrap(), 6);
    assert_eq!(a.stats().commits, 1);
    a.ping().await.unwrap();
}

/// The database itself refuses to change or remove audit events, and an event that cannot be
/// inserted undoes the change it describes (they share the command's savepoint).
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn audit_trail_is_append_only_and_shares_its_change_transaction() {
    let f = OnDisk::new().await;
    let t = 1_700_000_000;
    f.store
        .append_audit(event("MeterUsage", None, t, "first"))
        .await
        .unwrap();
    let raw = Connection::open(f.path()).unwrap();
    raw.busy_timeout(std::time::Duration::from_secs(5)).unwrap();
    for sql in [
        "UPDATE audit_events SET outcome = 'error'",
        "UPDATE audit_events SET request_id = 'forged' WHERE request_id = 'first'",
        "DELETE FROM audit_events",
    ] {
        let e = raw.execute(sql, []).unwrap_err();
        assert!(e.to_string().contains("append-only"), "{sql}: {e}");
    }

    raw.execute_batch(
        "CREATE TRIGGER test_refuse BEFORE INSERT ON audit_events \
         WHEN NEW.request_id = 'refused' BEGIN SELECT RAISE(ABORT, 'refused by the test'); END;",
    )
    .unwrap();
    let r = row(
        "x-1",
        "111111111111",
        legacy("prod-a", "c1"),
        "users",
        1,
        q(1),
    );
    let out = f
        .store
        .commit_usage(
            vec![r.clone()],
            event("BatchMeterUsage", None, t, "refused"),
        )
        .await;
    assert!(out.is_err(), "{out:?}");
    assert_eq!(f.store.usage_by_key(&r.key).await.unwrap(), None);
    f.store
        .commit_usage(vec![r.clone()], event("BatchMeterUsage", None, t, "second"))
        .await
        .unwrap();
    assert!(f.store.usage_by_key(&r.key).await.unwrap().is_some());
    let all = f
        .store
        .audit_events(&marketmeter_domain::audit::AuditFilter::default())
        .await
        .unwrap();
    let ids: Vec<&str> = all.iter().map(|e| e.event.request_id.as_str()).collect();
    assert_eq!(ids, ["first", "second"]);
    raw.execute_batch("DROP TRIGGER test_refuse").unwrap();
    f.check().await;
}
