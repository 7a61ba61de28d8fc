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

    /// The `--db` value (on PostgreSQL with [`Db::application_name`]).
    pub fn arg(&self) -> String {
        match self {
            Db::Postgres(schema) => self.arg_as(&Db::application_name(schema)),
            Db::Sqlite(_) => self.arg_as("marketmeter_e2e"),
        }
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
        let mut server = Server::spawn(&db.arg(), extra, Some(log));
        server._db = Some(db);
        server
    }

    /// A server on `db`, which the caller keeps (across restarts, or shared by several servers).
    pub fn start_on(db: &Db, extra: &[&str]) -> Server {
        Server::spawn(&db.arg(), extra, None)
    }

    /// A server on the database `db_arg` (a `--db` value).
    pub fn start_on_arg(db_arg: &str, extra: &[&str]) -> Server {
        Server::spawn(db_arg, extra, None)
    }

    fn spawn(db_arg: &str, extra: &[&str], log: Option<&str>) -> Server {
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

    /// A raw admin call: (status, JSON body or null), error statuses included. `body` is sent
    /// as JSON with PUT and POST (an empty object when `None`).
    pub fn admin_call(
        &self,
        method: &str,
        path: &str,
        body: Option<serde_json::Value>,
    ) -> (u16, serde_json::Value) {
        let agent: ureq::Agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .build()
            .into();
        let url = format!("{}{path}", self.url);
        let auth = format!("Bearer {ADMIN_TOKEN}");
        let body = body.unwrap_or_else(|| serde_json::json!({}));
        let mut resp = match method {
            "GET" => agent.get(&url).header("Authorization", &auth).call(),
            "DELETE" => agent.delete(&url).header("Authorization", &auth).call(),
            "PUT" => agent
                .put(&url)
                .header("Authorization", &auth)
                .send_json(&body),
            "POST" => agent
                .post(&url)
                .header("Authorization", &auth)
                .send_json(&body),
            other => panic!("admin_call: unsupported method {other}"),
        }
        .unwrap();
        let status = resp.status().as_u16();
        (
            status,
            resp.body_mut()
                .read_json()
                .unwrap_or(serde_json::Value::Null),
        )
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

/// A local HTTP endpoint that records every request (a seller's fulfillment page, a webhook).
/// `answer(path, nth)` gives the status and Location for the nth request (from 0) to a path.
pub struct Receiver {
    pub url: String,
    requests: std::sync::Arc<std::sync::Mutex<Vec<Received>>>,
}

#[derive(Debug, Clone)]
pub struct Received {
    pub method: String,
    pub path: String,
    pub headers: Vec<(String, String)>,
    pub body: String,
}

impl Received {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

impl Receiver {
    pub fn start(answer: fn(&str, usize) -> (u16, Option<&'static str>)) -> Receiver {
        use std::io::{Read, Write};
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let requests = std::sync::Arc::new(std::sync::Mutex::new(Vec::<Received>::new()));
        let log = requests.clone();
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(mut stream) = stream else { continue };
                let mut reader = BufReader::new(stream.try_clone().unwrap());
                let mut line = String::new();
                if reader.read_line(&mut line).unwrap_or(0) == 0 {
                    continue;
                }
                let mut parts = line.split_whitespace();
                let method = parts.next().unwrap_or_default().to_string();
                let path = parts.next().unwrap_or_default().to_string();
                let mut headers = Vec::new();
                loop {
                    let mut h = String::new();
                    if reader.read_line(&mut h).unwrap_or(0) == 0 || h.trim().is_empty() {
                        break;
                    }
                    if let Some((k, v)) = h.trim_end().split_once(':') {
                        headers.push((k.trim().to_string(), v.trim().to_string()));
                    }
                }
                let len: usize = headers
                    .iter()
                    .find(|(k, _)| k.eq_ignore_ascii_case("content-length"))
                    .and_then(|(_, v)| v.parse().ok())
                    .unwrap_or(0);
                let mut body = vec![0u8; len];
                let _ = reader.read_exact(&mut body);
                let nth = {
                    let mut log = log.lock().unwrap();
                    let nth = log.iter().filter(|r| r.path == path).count();
                    log.push(Received {
                        method,
                        path: path.clone(),
                        headers,
                        body: String::from_utf8_lossy(&body).into_owned(),
                    });
                    nth
                };
                let (status, location) = answer(&path, nth);
                let location = location
                    .map(|l| format!("Location: {l}\r\n"))
                    .unwrap_or_default();
                let page = "<html>welcome</html>";
                let _ = write!(
                    stream,
                    "HTTP/1.1 {status} X\r\n{location}Content-Length: {}\r\nConnection: close\r\n\r\n{page}",
                    page.len()
                );
            }
        });
        Receiver { url, requests }
    }

    pub fn requests(&self, path: &str) -> Vec<Received> {
        let log = self.requests.lock().unwrap();
        log.iter().filter(|r| r.path == path).cloned().collect()
    }
}

/// The Rust SDK client of `creds` (access key, secret, session token) against `url`. Retries
/// are off: every attempt the test makes reaches the server exactly once.
pub fn sdk_client(
    url: &str,
    creds: (&str, &str, Option<&str>),
    region: &str,
) -> aws_sdk_marketplacemetering::Client {
    sdk_client_with_timeout(url, creds, region, None)
}

/// [`sdk_client`] whose every call gives up (a `TimeoutError`) after `operation_timeout`.
pub fn sdk_client_with_timeout(
    url: &str,
    creds: (&str, &str, Option<&str>),
    region: &str,
    operation_timeout: Option<std::time::Duration>,
) -> aws_sdk_marketplacemetering::Client {
    use aws_sdk_marketplacemetering::config;
    let credentials = aws_credential_types::Credentials::new(
        creds.0,
        creds.1,
        creds.2.map(str::to_string),
        None,
        "e2e",
    );
    let mut conf = config::Config::builder()
        .behavior_version(config::BehaviorVersion::latest())
        .region(config::Region::new(region.to_string()))
        .endpoint_url(url)
        .credentials_provider(credentials)
        .http_client(aws_smithy_http_client::Builder::new().build_http())
        .retry_config(config::retry::RetryConfig::disabled());
    // Only when asked: otherwise the SDK's default timeouts, as before.
    if let Some(t) = operation_timeout {
        let timeouts = aws_smithy_types::timeout::TimeoutConfig::builder().operation_timeout(t);
        conf = conf.timeout_config(timeouts.build());
    }
    aws_sdk_marketplacemetering::Client::from_conf(conf.build())
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

/// Writes `dir/file`: a seed with one SaaS product `product` of the e2e seller (account
/// 111122223333) with `dimensions`, and for each `(account, license ARN)` of `buyers` that
/// account subscribed to it under that license. Returns the file's path, for `--seed`.
pub fn write_saas_seed(
    dir: &std::path::Path,
    file: &str,
    product: &str,
    dimensions: &[String],
    buyers: impl IntoIterator<Item = (String, String)>,
) -> String {
    let dims: Vec<String> = dimensions
        .iter()
        .map(|d| format!("{{ name = \"{d}\" }}"))
        .collect();
    let mut s = format!(
        "[[accounts]]\nid = \"111122223333\"\n\n[[products]]\ncode = \"{product}\"\nseller = \"111122223333\"\nkind = \"saas\"\ndimensions = [{}]\n\n",
        dims.join(", ")
    );
    for (account, license) in buyers {
        s += &format!(
            "[[accounts]]\nid = \"{account}\"\n\n[[agreements]]\nproduct = \"{product}\"\ncustomer_account = \"{account}\"\nlicense_arn = \"{license}\"\n\n"
        );
    }
    let path = dir.join(file);
    std::fs::write(&path, s).unwrap();
    path.display().to_string()
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
