//! Spawns the real `marketmeter` binary on a free port with the shared e2e seed.
#![allow(dead_code)]

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};

pub const ADMIN_TOKEN: &str = "e2e-admin-token";

pub struct Server {
    child: Child,
    pub url: String,
    _dir: Option<tempfile::TempDir>,
}

impl Server {
    /// A server on a fresh temporary database.
    pub fn start(extra: &[&str]) -> Server {
        let dir = tempfile::tempdir().unwrap();
        let mut server = Server::start_in(dir.path(), extra);
        server._dir = Some(dir);
        server
    }

    /// A server on the database in `dir` (kept across restarts by the caller).
    pub fn start_in(dir: &std::path::Path, extra: &[&str]) -> Server {
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
            .arg(dir.join("db.sqlite3"))
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
            _dir: None,
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
