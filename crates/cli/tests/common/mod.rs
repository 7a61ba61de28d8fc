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

    /// The `--db` value. On PostgreSQL the servers' `application_name` is the schema's name, so
    /// a test can find (and kill) its own servers' connections and no one else's.
    pub fn arg(&self) -> String {
        match self {
            Db::Sqlite(dir) => dir.path().join("db.sqlite3").display().to_string(),
            Db::Postgres(schema) => schema.url(&schema.name),
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
