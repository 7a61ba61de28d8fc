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

    /// The PostgreSQL `application_name` of servers on `schema`: its own per schema, so that a
    /// test can find (and terminate) its servers' connections without touching other tests'.
    pub fn application_name(schema: &Schema) -> String {
        format!("mm_e2e_{}", schema.name)
    }

    /// The `--db` value.
    pub fn arg(&self) -> String {
        match self {
            Db::Sqlite(dir) => dir.path().join("db.sqlite3").display().to_string(),
            Db::Postgres(schema) => schema.url(&Db::application_name(schema)),
        }
    }
}

pub struct Server {
    child: Child,
    pub url: String,
    _db: Option<Db>,
    /// The server's log output, when started with [`Server::start_logged`].
    pub stderr: Option<std::process::ChildStderr>,
}

impl Server {
    /// A server on a fresh database of its own.
    pub fn start(extra: &[&str]) -> Server {
        let db = Db::fresh();
        let mut server = Server::start_on(&db, extra);
        server._db = Some(db);
        server
    }

    /// A server on a fresh database whose log lines (filter `log`) are kept in `stderr`.
    pub fn start_logged(extra: &[&str], log: &str) -> Server {
        let db = Db::fresh();
        let mut server = Server::spawn(&db, extra, Some(log));
        server._db = Some(db);
        server
    }

    /// A server on `db`, which the caller keeps (across restarts, or shared by several servers).
    pub fn start_on(db: &Db, extra: &[&str]) -> Server {
        Server::spawn(db, extra, None)
    }

    fn spawn(db: &Db, extra: &[&str], log: Option<&str>) -> Server {
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
            .arg(db.arg())
            .args(extra)
            .env("MARKETMETER_LOG", log.unwrap_or("warn"))
            .stdout(Stdio::piped())
            .stderr(if log.is_some() {
                Stdio::piped()
            } else {
                Stdio::inherit()
            })
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
        let stderr = child.stderr.take();
        Server {
            child,
            url,
            _db: None,
            stderr,
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
    /// SIGTERM, then waits for the process: the exit status of a graceful shutdown.
    pub fn terminate(mut self) -> std::process::ExitStatus {
        let pid = self.child.id().to_string();
        let sent = Command::new("kill").args(["-TERM", &pid]).status().unwrap();
        assert!(sent.success(), "kill -TERM {pid}");
        self.child.wait().unwrap()
    }

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

/// The Rust SDK client of `creds` (access key, secret, session token) against `url`. Retries
/// are off: every attempt the test makes reaches the server exactly once.
pub fn sdk_client(
    url: &str,
    creds: (&str, &str, Option<&str>),
    region: &str,
) -> aws_sdk_marketplacemetering::Client {
    use aws_sdk_marketplacemetering::config;
    let credentials = aws_credential_types::Credentials::new(
        creds.0,
        creds.1,
        creds.2.map(str::to_string),
        None,
        "e2e",
    );
    let conf = config::Config::builder()
        .behavior_version(config::BehaviorVersion::latest())
        .region(config::Region::new(region.to_string()))
        .endpoint_url(url)
        .credentials_provider(credentials)
        .http_client(aws_smithy_http_client::Builder::new().build_http())
        .retry_config(config::retry::RetryConfig::disabled())
        .build();
    aws_sdk_marketplacemetering::Client::from_conf(conf)
}

/// The value of the sample of `metric` whose labels include every `labels` pair
/// (Prometheus text format); None when there is no such sample.
pub fn metric(text: &str, metric: &str, labels: &[(&str, &str)]) -> Option<f64> {
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .filter_map(|l| l.rsplit_once(' '))
        .find(|(series, _)| {
            let (name, rest) = series.split_once('{').unwrap_or((series, ""));
            name == metric
                && labels
                    .iter()
                    .all(|(k, v)| rest.contains(&format!("{k}=\"{v}\"")))
        })
        .and_then(|(_, value)| value.parse().ok())
}

/// Credentials of the shared e2e seed (tests/e2e/seed.toml): (access key, secret, session token).
pub type Creds = (&'static str, &'static str, Option<&'static str>);
pub const SELLER: Creds = ("AKIAE2ESELLER0000001", "seller-secret", None);
pub const BUYER_EC2: Creds = (
    "ASIAE2EBUYEREC200001",
    "buyer-ec2-secret",
    Some("buyer-ec2-session-token"),
);
/// The subscribed buyer's e2e-saas license.
pub const LICENSE: &str = "arn:aws:license-manager::111122223333:license/l-e2e0saas0buyer";

pub fn now_secs() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

/// A BatchMeterUsage record of the subscribed buyer's e2e-saas license.
pub fn license_record(
    at: i64,
    dimension: &str,
    quantity: i32,
) -> aws_sdk_marketplacemetering::types::builders::UsageRecordBuilder {
    aws_sdk_marketplacemetering::types::UsageRecord::builder()
        .timestamp(aws_smithy_types::DateTime::from_secs(at))
        .customer_aws_account_id("444455556666")
        .license_arn(LICENSE)
        .dimension(dimension)
        .quantity(quantity)
}

/// Runs `marketmeter <subcommand> --endpoint <server> --admin-token <token> <args>`.
pub fn cli(server: &Server, subcommand: &str, args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_marketmeter"))
        .args([
            subcommand,
            "--endpoint",
            &server.url,
            "--admin-token",
            ADMIN_TOKEN,
        ])
        .args(args)
        .output()
        .unwrap()
}
