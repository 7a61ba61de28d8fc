//! Test support shared by the store and end-to-end suites: find a real PostgreSQL and give each
//! test a schema of its own.
//!
//! Which database: `DATABASE_URL` when set; otherwise `postgres://postgres@127.0.0.1:5432/test`
//! (override with `MARKETMETER_PG_DEFAULT_URL`); if that is unreachable and `initdb`/`pg_ctl` are
//! on PATH (or under /usr/lib/postgresql), a throwaway cluster in a temporary directory on a free port (as the `postgres` user
//! when running as root), stopped and deleted when this test process exits. If none works the
//! tests are SKIPPED with a loud message, or FAIL when `MARKETMETER_REQUIRE_POSTGRES=1`.
//!
//! A test that stops or crashes its database gets a [`Cluster`] of its own instead.
//!
//! Isolation: a [`Schema`] is `mm_test_...`, reached through `options=-c search_path=...` in the
//! URL, and dropped with everything in it when the value is dropped (also when a test panics).

use std::path::PathBuf;
use std::process::Command;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::OnceLock;
use std::time::Duration;

pub const DEFAULT_URL: &str = "postgres://postgres@127.0.0.1:5432/test";

// ------------------------------------------------------------------ finding a database

pub fn required() -> bool {
    std::env::var("MARKETMETER_REQUIRE_POSTGRES").is_ok_and(|v| v == "1")
}

/// Runs `f` on a private runtime in its own thread (usable from inside a test's runtime).
pub fn on_own_runtime<T: Send + 'static>(
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

pub async fn admin(url: &str) -> Result<tokio_postgres::Client, String> {
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

pub fn probe(url: &str) -> Result<(), String> {
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

/// A PostgreSQL server program: on PATH, else Debian's /usr/lib/postgresql/<newest>/bin.
pub fn pg_bin(bin: &str) -> Option<PathBuf> {
    on_path(bin).or_else(|| {
        let mut versions: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
            .ok()?
            .filter_map(|e| {
                let e = e.ok()?;
                let v = e.file_name().to_str()?.parse().ok()?;
                Some((v, e.path().join("bin").join(bin)))
            })
            .filter(|(_, f)| f.is_file())
            .collect();
        versions.sort();
        versions.pop().map(|(_, f)| f)
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

/// A PostgreSQL cluster of this process's own (initdb, then pg_ctl) in a temporary directory on
/// a free port, which a test may stop, crash and restart (the shared server must never be).
/// Dropping it stops it and deletes it; a watchdog does the same if this process dies first.
pub struct Cluster {
    dir: PathBuf,
    pg_ctl: PathBuf,
    root: bool,
    port: u16,
}

impl Cluster {
    pub fn start() -> Result<Cluster, String> {
        let initdb =
            pg_bin("initdb").ok_or("initdb is neither on PATH nor under /usr/lib/postgresql")?;
        let pg_ctl =
            pg_bin("pg_ctl").ok_or("pg_ctl is neither on PATH nor under /usr/lib/postgresql")?;
        let root = is_root();
        static NEXT: AtomicU64 = AtomicU64::new(0);
        let dir = std::env::temp_dir().join(format!(
            "mm-pg-{}-{}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        ));
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
        let cluster = Cluster {
            dir,
            pg_ctl,
            root,
            port,
        };
        let d = cluster.dir.display();
        let init = format!(
            "'{}' -D '{d}/data' -U postgres -A trust --no-sync >'{d}/initdb.log' 2>&1",
            initdb.display()
        );
        if !sh(&init, root).status().is_ok_and(|s| s.success()) {
            return Err(format!("initdb failed (see {d}/initdb.log)"));
        }
        // No double quotes in here: it is run inside `sh -c "..."`.
        let watchdog = format!(
            "while [ -d /proc/{pid} ]; do sleep 1; done; \
             '{}' -D '{d}/data' -m immediate stop >/dev/null 2>&1; rm -rf '{d}'",
            cluster.pg_ctl.display(),
            pid = std::process::id(),
        );
        sh(
            &format!("nohup sh -c \"{watchdog}\" >/dev/null 2>&1 &"),
            root,
        )
        .status()
        .map_err(|e| format!("watchdog: {e}"))?;
        cluster.ctl("start")?;
        Ok(cluster)
    }

    /// The `postgres` database as the superuser.
    pub fn url(&self) -> String {
        format!("postgres://postgres@127.0.0.1:{}/postgres", self.port)
    }

    fn pg_ctl_cmd(&self, action: &str) -> String {
        let d = self.dir.display();
        format!(
            "'{}' -D '{d}/data' -w -t 60 -l '{d}/server.log' -o \"-p {} -k '{d}' \
             -c listen_addresses=127.0.0.1 -c fsync=off -c max_connections=200\" {action} >/dev/null 2>&1",
            self.pg_ctl.display(),
            self.port
        )
    }

    /// `pg_ctl ACTION`, waiting for it to finish: `start`, `stop -m fast`, `restart -m
    /// immediate` (`immediate` is a crash: no checkpoint, recovery at the next start).
    pub fn ctl(&self, action: &str) -> Result<(), String> {
        if sh(&self.pg_ctl_cmd(action), self.root)
            .status()
            .is_ok_and(|s| s.success())
        {
            Ok(())
        } else {
            Err(format!(
                "pg_ctl {action} failed (see {}/server.log)",
                self.dir.display()
            ))
        }
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        let _ = self.ctl("stop -m immediate");
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// The shared fallback cluster: kept until this process exits (its watchdog then removes it).
fn throwaway_cluster() -> Result<String, String> {
    let cluster = Cluster::start()?;
    let url = cluster.url();
    std::mem::forget(cluster);
    Ok(url)
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
pub fn base_url() -> Option<&'static str> {
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

pub fn unique(prefix: &str) -> String {
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

pub fn with_params(base: &str, params: &str) -> String {
    let sep = if base.contains('?') { '&' } else { '?' };
    format!("{base}{sep}{params}")
}

/// A schema of its own, dropped (with everything in it) when this is dropped.
pub struct Schema {
    pub base: String,
    pub name: String,
}

impl Schema {
    pub async fn new(base: &str) -> Schema {
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
    pub fn url(&self, app: &str) -> String {
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

impl Schema {
    /// A fresh schema name that does not exist yet (the code under test is to create it); it is
    /// dropped like any other when this is dropped.
    pub fn reserve(base: &str) -> Schema {
        Schema {
            base: base.to_string(),
            name: unique("mm_test"),
        }
    }

    /// [`Schema::new`] from synchronous code (or from inside another runtime).
    pub fn create(base: &str) -> Schema {
        let base = base.to_string();
        on_own_runtime(async move { Schema::new(&base).await })
    }
}

// ------------------------------------------------------------------ migrations on disk

/// How many migration files the repository holds for `backend` ("sqlite" or "postgres"),
/// counted on disk: tests compare it with what a store applied, so a file the build forgot
/// to embed shows up as a missing version (versions need not be contiguous).
pub fn migration_files(backend: &str) -> usize {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../store/migrations")
        .join(backend);
    std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .filter(|e| {
            e.as_ref()
                .unwrap()
                .path()
                .extension()
                .is_some_and(|x| x == "sql")
        })
        .count()
}
