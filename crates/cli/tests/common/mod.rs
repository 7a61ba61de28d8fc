//! Spawns the real `marketmeter` binary on a free port with the shared e2e seed, on SQLite or,
//! with `MARKETMETER_TEST_DB=postgres`, on PostgreSQL (see `marketmeter-testpg` for which server).
#![allow(dead_code)]

use marketmeter_testpg::Schema;
use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};

pub const ADMIN_TOKEN: &str = "e2e-admin-token";

/// A fresh database for spawned servers; dropping it deletes it (the SQLite directory, or the
/// PostgreSQL schema with everything in it).
pub enum Db {
    Sqlite(tempfile::TempDir),
    Postgres(Schema),
}

impl Db {
    /// The backend chosen by `MARKETMETER_TEST_DB` (`sqlite`, the default, or `postgres`).
    pub fn fresh() -> Db {
        match std::env::var("MARKETMETER_TEST_DB").as_deref() {
            Ok("postgres") => Db::postgres().unwrap_or_else(|| {
                panic!("MARKETMETER_TEST_DB=postgres, but no PostgreSQL is reachable (see above)")
            }),
            Ok("sqlite") | Ok("") | Err(_) => Db::sqlite(),
            Ok(other) => panic!("MARKETMETER_TEST_DB={other:?}: use sqlite or postgres"),
        }
    }

    pub fn sqlite() -> Db {
        Db::Sqlite(tempfile::tempdir().unwrap())
    }

    /// A schema of its own on the test PostgreSQL; None (tests skip, loudly) when there is none.
    pub fn postgres() -> Option<Db> {
        Some(Db::Postgres(
            Schema::create(marketmeter_testpg::base_url()?),
        ))
    }

    /// The `--db` value.
    pub fn arg(&self) -> String {
        self.arg_as("marketmeter_e2e")
    }

    /// The `--db` value, with this PostgreSQL `application_name` (so that a test can find its
    /// own server's connections in `pg_stat_activity`).
    pub fn arg_as(&self, application_name: &str) -> String {
        match self {
            Db::Sqlite(dir) => dir.path().join("db.sqlite3").display().to_string(),
            Db::Postgres(schema) => schema.url(application_name),
        }
    }
}

pub struct Server {
    child: Child,
    pub url: String,
    _db: Option<Db>,
}

impl Server {
    /// A server on a fresh database of its own.
    pub fn start(extra: &[&str]) -> Server {
        let db = Db::fresh();
        let mut server = Server::start_on(&db, extra);
        server._db = Some(db);
        server
    }

    /// A server on `db`, which the caller keeps (across restarts, or shared by several servers).
    pub fn start_on(db: &Db, extra: &[&str]) -> Server {
        Server::start_on_arg(&db.arg(), extra)
    }

    /// A server on the database `db_arg` (a `--db` value).
    pub fn start_on_arg(db_arg: &str, extra: &[&str]) -> Server {
        let seed = concat!(env!("CARGO_MANIFEST_DIR"), "/../../tests/e2e/seed.toml");
        let mut child = Command::new(env!("CARGO_BIN_EXE_marketmeter"))
            .args([
                "serve",
                "--listen",
                "127.0.0.1:0",
                "--admin-token",
                ADMIN_TOKEN,
                "--seed",
                seed,
                "--db",
            ])
            .arg(db_arg)
            .args(extra)
            .env("MARKETMETER_LOG", "warn")
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("spawn marketmeter");
        let stdout = child.stdout.take().unwrap();
        let mut lines = BufReader::new(stdout).lines();
        let url = loop {
            let line = lines
                .next()
                .expect("server exited before listening")
                .unwrap();
            if let Some(url) = line.strip_prefix("marketmeter listening on ") {
                break url.trim().to_string();
            }
        };
        // Keep draining stdout so the server never blocks on a full pipe.
        std::thread::spawn(move || for _ in lines {});
        Server {
            child,
            url,
            _db: None,
        }
    }

    pub fn admin_get(&self, path: &str) -> serde_json::Value {
        let mut resp = ureq::get(&format!("{}{}", self.url, path))
            .header("Authorization", &format!("Bearer {ADMIN_TOKEN}"))
            .call()
            .unwrap();
        resp.body_mut().read_json().unwrap()
    }

    pub fn admin_post(&self, path: &str, body: serde_json::Value) -> serde_json::Value {
        let mut resp = ureq::post(&format!("{}{}", self.url, path))
            .header("Authorization", &format!("Bearer {ADMIN_TOKEN}"))
            .send_json(&body)
            .unwrap();
        resp.body_mut().read_json().unwrap()
    }

    pub fn usage_records(&self, product: &str) -> Vec<serde_json::Value> {
        self.admin_get(&format!("/admin/v1/usage-records?product_code={product}"))["records"]
            .as_array()
            .unwrap()
            .clone()
    }
}

impl Server {
    /// SIGKILL: no graceful shutdown, as in a crash.
    pub fn kill(mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
