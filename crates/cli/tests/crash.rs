//! Crash consistency under load. Client threads send BatchMeterUsage (25 fresh records each, some
//! batches poisoned with an unknown dimension so they must be refused as a whole) while the
//! server is SIGKILLed at a random moment, then restarted on the same database, 50 times. Then:
//! every record answered `Success` is stored exactly once under the id it was answered with;
//! nothing refused with an error is stored; nothing is stored twice or unasked; retrying every
//! acknowledged request returns the same MeteringRecordIds; the database passes its integrity
//! check. On SQLite and on PostgreSQL; on PostgreSQL also with the server's connections cut
//! (`pg_terminate_backend`) again and again under load: clients only ever see retryable answers
//! and, after retrying, everything is stored exactly once.
//!
//! `MARKETMETER_CRASH_CYCLES` overrides the number of kill cycles (default 50).

mod common;

use common::{Db, Server, ADMIN_TOKEN};
use serde_json::{json, Value};
use std::collections::{HashMap, HashSet};
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

// Few buyers (the seed is re-applied at every start) and many dimensions give the key space.
const CUSTOMERS: usize = 120;
const DIMENSIONS: [&str; 20] = [
    "d00", "d01", "d02", "d03", "d04", "d05", "d06", "d07", "d08", "d09", "d10", "d11", "d12",
    "d13", "d14", "d15", "d16", "d17", "d18", "d19",
];
/// Records go 1..=HOURS hours back (within the 24 h window).
const HOURS: usize = 22;
const KEY_SPACE: usize = CUSTOMERS * DIMENSIONS.len() * HOURS;
const BATCH: usize = 25;
const CLIENTS: usize = 4;
/// Every POISON-th batch carries one record with an unknown dimension: the whole batch is refused.
const POISON: usize = 7;

fn cycles() -> usize {
    std::env::var("MARKETMETER_CRASH_CYCLES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(50)
}

fn account(customer: usize) -> String {
    format!("5{customer:011}")
}

fn license(customer: usize) -> String {
    format!("arn:aws:license-manager::111122223333:license/l-crash{customer:05}")
}

const PRODUCT: &str = "crash-saas";

/// A SaaS product of its own, with CUSTOMERS subscribed buyers.
fn write_seed(dir: &Path) -> String {
    common::write_saas_seed(
        dir,
        "crash-seed.toml",
        PRODUCT,
        &DIMENSIONS.map(String::from),
        (0..CUSTOMERS).map(|c| (account(c), license(c))),
    )
}

/// The (customer, dimension, hour) a key number stands for; hours are absolute (epoch hours).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
struct Key {
    customer: usize,
    dimension: usize,
    hour: i64,
}

fn key(k: usize, now_hour: i64) -> Key {
    Key {
        customer: k % CUSTOMERS,
        dimension: (k / CUSTOMERS) % DIMENSIONS.len(),
        hour: now_hour - 1 - (k / (CUSTOMERS * DIMENSIONS.len())) as i64,
    }
}

fn record(k: &Key) -> Value {
    json!({
        "Timestamp": k.hour * 3600 + 60,
        "CustomerAWSAccountId": account(k.customer),
        "LicenseArn": license(k.customer),
        "Dimension": DIMENSIONS[k.dimension],
        "Quantity": (k.customer + k.dimension) % 7 + 1,
    })
}

/// What the clients saw.
#[derive(Default)]
struct Outcomes {
    /// Answered Success: key -> MeteringRecordId.
    acked: HashMap<Key, String>,
    /// Whole requests answered with only Success results, for the replay.
    acked_requests: Vec<(String, Vec<String>)>,
    /// Answered with an error: must not be stored.
    refused: HashSet<Key>,
    /// No answer (the server died) or UnprocessedRecords: stored at most once.
    unknown: HashSet<Key>,
    /// Errors that are neither the poison refusals nor retryable (must stay empty).
    unexpected: Vec<String>,
}

fn agent() -> ureq::Agent {
    ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_global(Some(Duration::from_secs(20)))
        .build()
        .into()
}

/// POST one BatchMeterUsage (open-auth mode: storage is under test here, not signing).
fn post(agent: &ureq::Agent, url: &str, body: &str) -> Result<(u16, Value), ureq::Error> {
    let mut resp = agent
        .post(url)
        .header("X-Amz-Target", "AWSMPMeteringService.BatchMeterUsage")
        .header("Content-Type", "application/x-amz-json-1.1")
        .send(body.as_bytes())?;
    let status = resp.status().as_u16();
    let text = resp.body_mut().read_to_string()?;
    Ok((status, serde_json::from_str(&text).unwrap_or(Value::Null)))
}

/// Sends fresh batches until `stop` or the first connection failure (the server was killed).
fn client(
    url: String,
    next_key: Arc<AtomicUsize>,
    stop: Arc<AtomicBool>,
    out: Arc<Mutex<Outcomes>>,
    now_hour: i64,
) {
    let agent = agent();
    while !stop.load(Ordering::Relaxed) {
        let first = next_key.fetch_add(BATCH, Ordering::Relaxed);
        if first + BATCH > KEY_SPACE {
            return;
        }
        let keys: Vec<Key> = (first..first + BATCH).map(|k| key(k, now_hour)).collect();
        let mut records: Vec<Value> = keys.iter().map(record).collect();
        let poisoned = (first / BATCH) % POISON == POISON - 1;
        if poisoned {
            records[BATCH - 1]["Dimension"] = json!("no-such-dimension");
        }
        let body = json!({ "UsageRecords": records }).to_string();
        let answer = post(&agent, &url, &body);
        let mut o = out.lock().unwrap();
        match answer {
            Err(_) => {
                o.unknown.extend(keys);
                return;
            }
            Ok((200, doc)) if !poisoned => {
                let results = doc["Results"].as_array().cloned().unwrap_or_default();
                let unprocessed = doc["UnprocessedRecords"].as_array().map_or(0, Vec::len);
                if results.len() + unprocessed != BATCH {
                    o.unexpected
                        .push(format!("answer does not cover the batch: {doc}"));
                }
                let mut ids = Vec::new();
                for r in &results {
                    let k = find_key(&keys, &r["UsageRecord"]);
                    match (r["Status"].as_str(), r["MeteringRecordId"].as_str()) {
                        (Some("Success"), Some(id)) => {
                            o.acked.insert(k, id.to_string());
                            ids.push(id.to_string());
                        }
                        _ => o.unexpected.push(format!("record result {r}")),
                    }
                }
                for r in doc["UnprocessedRecords"].as_array().into_iter().flatten() {
                    let k = find_key(&keys, r);
                    o.unknown.insert(k);
                }
                if unprocessed == 0 {
                    o.acked_requests.push((body, ids));
                }
            }
            Ok((400, doc)) if poisoned && doc["__type"] == "InvalidUsageDimensionException" => {
                o.refused.extend(keys);
            }
            Ok((status, doc)) => {
                o.unexpected.push(format!("{status} {doc}"));
                o.unknown.extend(keys);
            }
        }
    }
}

fn find_key(keys: &[Key], rec: &Value) -> Key {
    *keys
        .iter()
        .find(|k| {
            rec["CustomerAWSAccountId"] == account(k.customer)
                && rec["Dimension"] == DIMENSIONS[k.dimension]
                && rec["Timestamp"].as_i64() == Some(k.hour * 3600 + 60)
        })
        .unwrap_or_else(|| panic!("answer names a record that was not sent: {rec}"))
}

fn now_hour() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
        / 3600
}

/// A small deterministic generator, seeded from the clock and printed for reproduction.
struct Rng(u64);
impl Rng {
    fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0 % n
    }
}

/// Server arguments: open auth, the crash seed, and a month-end grace as long as the window
/// (the window rules are not under test; this keeps every hour of the key space acceptable on
/// the 1st of a month too).
fn args(seed: &str) -> Vec<&str> {
    vec!["--auth", "open", "--seed", seed, "--month-end-grace", "24h"]
}

/// Stored records of the crash product, keyed; panics on a key stored twice.
fn stored(server: &Server) -> HashMap<Key, String> {
    let mut resp = agent()
        .get(format!(
            "{}/admin/v1/usage-records?product_code={PRODUCT}&limit=100000",
            server.url
        ))
        .header("Authorization", format!("Bearer {ADMIN_TOKEN}"))
        .call()
        .unwrap();
    // Tens of thousands of records: past ureq's default 10 MiB body limit.
    let text = resp
        .body_mut()
        .with_config()
        .limit(1 << 30)
        .read_to_string()
        .unwrap();
    let doc: Value = serde_json::from_str(&text).unwrap();
    let mut out = HashMap::new();
    for r in doc["records"].as_array().unwrap() {
        let Some(acct) = r["customer_aws_account_id"].as_str() else {
            continue;
        };
        let Some(customer) = acct
            .strip_prefix('5')
            .and_then(|c| c.parse::<usize>().ok())
            .filter(|c| acct.len() == 12 && *c < CUSTOMERS)
        else {
            panic!("a record this harness never sent: {r}");
        };
        let hour = time::OffsetDateTime::parse(
            r["hour"].as_str().unwrap(),
            &time::format_description::well_known::Rfc3339,
        )
        .unwrap()
        .unix_timestamp()
            / 3600;
        let dimension = DIMENSIONS
            .iter()
            .position(|d| r["dimension"] == *d)
            .unwrap();
        let k = Key {
            customer,
            dimension,
            hour,
        };
        let id = r["metering_record_id"].as_str().unwrap().to_string();
        assert!(
            out.insert(k, id).is_none(),
            "stored twice: {k:?} (nothing may be counted twice)"
        );
    }
    out
}

/// The exactly-once and never-refused checks, and the replay of every acknowledged request.
fn verify(server: &Server, o: &Outcomes) {
    assert!(
        o.unexpected.is_empty(),
        "unexpected answers: {:?}",
        &o.unexpected[..o.unexpected.len().min(5)]
    );
    let stored = stored(server);
    for (k, id) in &o.acked {
        assert_eq!(
            stored.get(k),
            Some(id),
            "acknowledged record {k:?} lost or changed"
        );
    }
    for k in &o.refused {
        assert!(!stored.contains_key(k), "refused record {k:?} was stored");
    }
    for k in stored.keys() {
        assert!(
            o.acked.contains_key(k) || o.unknown.contains(k),
            "{k:?} is stored but no answered request put it there"
        );
    }
    let agent = agent();
    for (body, ids) in &o.acked_requests {
        let (status, doc) = post(&agent, &server.url, body).unwrap();
        assert_eq!(status, 200, "{doc}");
        let again: Vec<&str> = doc["Results"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| {
                assert_eq!(r["Status"], "Success", "{r}");
                r["MeteringRecordId"].as_str().unwrap()
            })
            .collect();
        assert_eq!(again, *ids, "a retry after the restarts got other ids");
    }
    eprintln!(
        "crash: {} acknowledged, {} refused, {} unanswered ({} of them stored), {} requests replayed",
        o.acked.len(),
        o.refused.len(),
        o.unknown.len(),
        o.unknown.iter().filter(|k| stored.contains_key(k)).count(),
        o.acked_requests.len()
    );
}

/// Load with SIGKILLs at random moments; returns what the clients saw.
fn kill_cycles(db: &Db, seed: &str, label: &str) -> Outcomes {
    let cycles = cycles();
    let seed_value = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos() as u64
        | 1;
    eprintln!("crash[{label}]: {cycles} cycles, rng seed {seed_value}");
    let mut rng = Rng(seed_value);
    let out = Arc::new(Mutex::new(Outcomes::default()));
    let next_key = Arc::new(AtomicUsize::new(0));
    let hour = now_hour();
    let started = Instant::now();
    for _ in 0..cycles {
        let server = Server::start_on(db, &args(seed));
        let stop = Arc::new(AtomicBool::new(false));
        let clients: Vec<_> = (0..CLIENTS)
            .map(|_| {
                let (url, next_key, stop, out) = (
                    server.url.clone(),
                    next_key.clone(),
                    stop.clone(),
                    out.clone(),
                );
                std::thread::spawn(move || client(url, next_key, stop, out, hour))
            })
            .collect();
        std::thread::sleep(Duration::from_millis(20 + rng.below(400)));
        server.kill();
        stop.store(true, Ordering::Relaxed);
        for c in clients {
            c.join().unwrap();
        }
    }
    eprintln!(
        "crash[{label}]: {cycles} kill cycles in {:.1} s",
        started.elapsed().as_secs_f64()
    );
    Arc::try_unwrap(out).ok().unwrap().into_inner().unwrap()
}

/// The kill cycles on `db`, then every check against a restarted server (killed again on
/// return); returns how many records are stored, for the backend's own integrity check.
fn kill_and_verify(db: &Db, label: &str) -> usize {
    let dir = tempfile::tempdir().unwrap();
    let seed = write_seed(dir.path());
    let o = kill_cycles(db, &seed, label);
    assert!(
        !o.acked.is_empty() && !o.refused.is_empty(),
        "the load never got going"
    );
    let server = Server::start_on(db, &args(&seed));
    verify(&server, &o);
    stored(&server).len()
}

#[test]
fn sqlite_survives_sigkill_under_load() {
    let db = Db::sqlite();
    kill_and_verify(&db, "sqlite");
    let Db::Sqlite(tmp) = &db else { unreachable!() };
    let path = tmp.path().join("db.sqlite3");
    let ok = common_runtime().block_on(async {
        let store = marketmeter_store::SqliteStore::open(&path, Default::default())
            .await
            .unwrap();
        store.integrity_check().await.unwrap()
    });
    assert!(ok, "PRAGMA integrity_check failed after the kills");
}

fn common_runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

/// Duplicates under the unique key and rows versus listing, straight from PostgreSQL.
fn postgres_integrity(db: &Db, listed: usize) {
    let Db::Postgres(schema) = db else {
        unreachable!()
    };
    let (base, name) = (schema.base.clone(), schema.name.clone());
    let (rows, duplicates, ids) = marketmeter_testpg::on_own_runtime(async move {
        let c = marketmeter_testpg::admin(&base).await.unwrap();
        let q = |sql: String| {
            let c = &c;
            async move { c.query_one(&sql, &[]).await.unwrap().get::<_, i64>(0) }
        };
        let t = format!("{name}.usage_records");
        (
            q(format!("SELECT count(*) FROM {t} WHERE product_code = '{PRODUCT}'")).await,
            q(format!("SELECT count(*) FROM (SELECT 1 FROM {t} GROUP BY seller_account, identity_kind, identity_a, identity_b, dimension, hour HAVING count(*) > 1) d")).await,
            q(format!("SELECT count(DISTINCT metering_record_id) FROM {t} WHERE product_code = '{PRODUCT}'")).await,
        )
    });
    assert_eq!(duplicates, 0, "a unique key is stored twice");
    assert_eq!(rows, ids, "two rows share a MeteringRecordId");
    assert_eq!(rows as usize, listed, "rows and listing disagree");
}

#[test]
fn postgres_survives_sigkill_under_load() {
    let Some(db) = Db::postgres() else {
        return;
    };
    let listed = kill_and_verify(&db, "postgres");
    postgres_integrity(&db, listed);
}

/// Connections cut under load: clients see only retryable answers (500 or UnprocessedRecords)
/// and, retrying those, get everything stored exactly once.
#[test]
fn postgres_connection_cuts_lose_nothing() {
    let Some(db) = Db::postgres() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let seed = write_seed(dir.path());
    let server = Server::start_on(&db, &args(&seed));
    let Db::Postgres(schema) = &db else {
        unreachable!()
    };
    // The harness names the server's connections after the schema: only ours are cut.
    let app = Db::application_name(schema);

    // The killer: terminate this server's backends every 100-300 ms.
    let stop = Arc::new(AtomicBool::new(false));
    let cuts = Arc::new(AtomicUsize::new(0));
    let killer = {
        let (stop, cuts, base, app) =
            (stop.clone(), cuts.clone(), schema.base.clone(), app.clone());
        std::thread::spawn(move || {
            marketmeter_testpg::on_own_runtime(async move {
                let c = marketmeter_testpg::admin(&base).await.unwrap();
                let mut rng = Rng(0x9e3779b97f4a7c15);
                while !stop.load(Ordering::Relaxed) {
                    let n = c
                        .query(
                            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = $1",
                            &[&app],
                        )
                        .await
                        .unwrap()
                        .len();
                    cuts.fetch_add(n, Ordering::Relaxed);
                    tokio::time::sleep(Duration::from_millis(100 + rng.below(200))).await;
                }
            })
        })
    };

    // Load: every key once; retryable answers go back in the queue; anything else fails.
    let hour = now_hour();
    let total = 200 * BATCH;
    let pending: Arc<Mutex<Vec<usize>>> = Arc::new(Mutex::new((0..total).rev().collect()));
    let acked: Arc<Mutex<HashMap<Key, String>>> = Arc::default();
    let retryable = Arc::new(AtomicUsize::new(0));
    let deadline = Instant::now() + Duration::from_secs(60);
    let clients: Vec<_> = (0..CLIENTS)
        .map(|_| {
            let (url, pending, acked, retryable) = (
                server.url.clone(),
                pending.clone(),
                acked.clone(),
                retryable.clone(),
            );
            std::thread::spawn(move || {
                let agent = agent();
                loop {
                    let batch: Vec<usize> = {
                        let mut p = pending.lock().unwrap();
                        let n = p.len().min(BATCH);
                        let at = p.len() - n;
                        p.split_off(at)
                    };
                    if batch.is_empty() {
                        // Others may still put records back; stop when all are acknowledged.
                        if acked.lock().unwrap().len() == total || Instant::now() > deadline {
                            return;
                        }
                        std::thread::sleep(Duration::from_millis(20));
                        continue;
                    }
                    let keys: Vec<Key> = batch.iter().map(|k| key(*k, hour)).collect();
                    let body = json!({"UsageRecords": keys.iter().map(record).collect::<Vec<_>>()});
                    let (status, doc) = post(&agent, &url, &body.to_string())
                        .expect("the server stays up while its connections are cut");
                    match status {
                        200 => {
                            let mut a = acked.lock().unwrap();
                            for r in doc["Results"].as_array().unwrap() {
                                assert_eq!(r["Status"], "Success", "{r}");
                                let k = find_key(&keys, &r["UsageRecord"]);
                                a.insert(k, r["MeteringRecordId"].as_str().unwrap().to_string());
                            }
                            let mut back = Vec::new();
                            for r in doc["UnprocessedRecords"].as_array().into_iter().flatten() {
                                let k = find_key(&keys, r);
                                back.push(batch[keys.iter().position(|x| *x == k).unwrap()]);
                            }
                            if !back.is_empty() {
                                retryable.fetch_add(1, Ordering::Relaxed);
                                pending.lock().unwrap().extend(back);
                            }
                        }
                        500 if doc["__type"] == "InternalServiceErrorException" => {
                            retryable.fetch_add(1, Ordering::Relaxed);
                            pending.lock().unwrap().extend(batch);
                        }
                        _ => panic!("not a retryable answer: {status} {doc}"),
                    }
                }
            })
        })
        .collect();
    for c in clients {
        c.join().unwrap();
    }
    stop.store(true, Ordering::Relaxed);
    killer.join().unwrap();

    let acked = Arc::try_unwrap(acked).unwrap().into_inner().unwrap();
    let cuts = cuts.load(Ordering::Relaxed);
    eprintln!(
        "connection cuts: {cuts} backends terminated, {} retryable answers, {} records acknowledged",
        retryable.load(Ordering::Relaxed),
        acked.len()
    );
    assert!(cuts > 0, "no connection was ever cut");
    assert_eq!(
        acked.len(),
        total,
        "not every record got through within a minute"
    );
    let stored = stored(&server);
    for (k, id) in &acked {
        assert_eq!(
            stored.get(k),
            Some(id),
            "{k:?} lost or stored under another id"
        );
    }
    assert_eq!(stored.len(), total);
    let listed = stored.len();
    drop(server);
    postgres_integrity(&db, listed);
}
