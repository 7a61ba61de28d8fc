//! PostgreSQL itself restarted under load. The database is a throwaway cluster of this test's
//! own (initdb + pg_ctl; the machine's shared server is never touched), stopped with `-m fast`
//! and with `-m immediate` (a crash: no checkpoint, recovery at start) and held down for a
//! while, then restarted at once with `pg_ctl restart` in both modes, while Rust SDK clients
//! send BatchMeterUsage and MeterUsage. Proven:
//!
//! - clients only ever get retryable answers (InternalServiceErrorException or
//!   UnprocessedRecords), never another error, an unparsable (HTML) 500 or a hang past the
//!   SDK's operation timeout;
//! - /health/ready answers 503 while the database is down and 200 again after;
//! - retrying what was not acknowledged gets every record stored exactly once, under the
//!   MeteringRecordId it was acknowledged with, and replaying every request gets the same ids.
//!
//! Without initdb/pg_ctl the test is SKIPPED with a loud message; under `CI=true` (or
//! `MARKETMETER_REQUIRE_POSTGRES=1`) it fails instead.

mod common;

use aws_sdk_marketplacemetering::error::SdkError;
use aws_sdk_marketplacemetering::operation::batch_meter_usage::{
    BatchMeterUsageError, BatchMeterUsageOutput,
};
use aws_sdk_marketplacemetering::types::UsageRecord;
use aws_sdk_marketplacemetering::Client;
use aws_smithy_types::DateTime;
use common::{sdk_client_with_timeout, Server, ADMIN_TOKEN, BUYER_EC2, SELLER};
use marketmeter_testpg::Cluster;
use serde_json::Value;
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// The metering clock (manual, mid-month, so no month boundary falls inside the metered hours).
const NOW: &str = "2026-06-15T12:30:00Z";
const PRODUCT: &str = "restart-saas";
const CUSTOMERS: usize = 250;
const DIMENSIONS: usize = 20;
/// Batch records go 1..=HOURS hours back (within the 24 h window).
const HOURS: usize = 22;
const BATCH: usize = 25;
const CLIENTS: usize = 3;
/// MeterUsage: the EC2 buyer's e2e-ami dimensions, 1..=METER_HOURS hours back.
const METER_DIMENSIONS: [&str; 2] = ["hosts", "cores"];
const METER_HOURS: i64 = 20;
/// Longest an SDK call may take; more counts as a hang.
const CALL_TIMEOUT: Duration = Duration::from_secs(20);

fn required() -> bool {
    std::env::var("CI").is_ok_and(|v| v == "true") || marketmeter_testpg::required()
}

fn now_hour() -> i64 {
    time::OffsetDateTime::parse(NOW, &time::format_description::well_known::Rfc3339)
        .unwrap()
        .unix_timestamp()
        / 3600
}

fn account(customer: usize) -> String {
    format!("7{customer:011}")
}

fn license(customer: usize) -> String {
    format!("arn:aws:license-manager::111122223333:license/l-restart{customer:05}")
}

/// A SaaS product of the e2e seller with CUSTOMERS subscribed buyers.
fn write_seed(dir: &std::path::Path) -> String {
    let dims: Vec<String> = (0..DIMENSIONS).map(|d| format!("d{d:02}")).collect();
    common::write_saas_seed(
        dir,
        "restart-seed.toml",
        PRODUCT,
        &dims,
        (0..CUSTOMERS).map(|c| (account(c), license(c))),
    )
}

/// A batch record's (customer, dimension, hour).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
struct Key {
    customer: usize,
    dimension: usize,
    hour: i64,
}

const KEY_SPACE: usize = CUSTOMERS * DIMENSIONS * HOURS;

fn key(k: usize) -> Key {
    Key {
        customer: k % CUSTOMERS,
        dimension: (k / CUSTOMERS) % DIMENSIONS,
        hour: now_hour() - 1 - (k / (CUSTOMERS * DIMENSIONS)) as i64,
    }
}

fn record(k: &Key) -> UsageRecord {
    UsageRecord::builder()
        .timestamp(DateTime::from_secs(k.hour * 3600 + 60))
        .customer_aws_account_id(account(k.customer))
        .license_arn(license(k.customer))
        .dimension(format!("d{:02}", k.dimension))
        .quantity(((k.customer + k.dimension) % 7 + 1) as i32)
        .build()
        .unwrap()
}

fn key_of(r: &UsageRecord) -> Key {
    let acct = r.customer_aws_account_id().unwrap();
    Key {
        customer: acct[1..].parse().unwrap(),
        dimension: r.dimension()[1..].parse().unwrap(),
        hour: r.timestamp().secs() / 3600,
    }
}

/// A MeterUsage call's (dimension, hour).
type MeterKey = (usize, i64);

fn meter_keys() -> Vec<MeterKey> {
    (0..METER_DIMENSIONS.len())
        .flat_map(|d| (1..=METER_HOURS).map(move |h| (d, now_hour() - h)))
        .collect()
}

async fn meter(client: &Client, (d, hour): MeterKey) -> Result<String, String> {
    let out = client
        .meter_usage()
        .product_code("e2e-ami")
        .timestamp(DateTime::from_secs(hour * 3600 + 120))
        .usage_dimension(METER_DIMENSIONS[d])
        .usage_quantity(d as i32 + 2)
        .send()
        .await;
    match out {
        Ok(o) => Ok(o.metering_record_id().unwrap().to_string()),
        Err(e) => Err(match e.as_service_error() {
            Some(s) if s.is_internal_service_error_exception() => "retryable".to_string(),
            _ => format!("MeterUsage: {e:?}"),
        }),
    }
}

/// What the clients saw.
#[derive(Default)]
struct Seen {
    acked: HashMap<Key, String>,
    /// Requests answered Success for every record, with their ids, for the replay.
    acked_requests: Vec<(Vec<Key>, Vec<String>)>,
    meter_acked: HashMap<MeterKey, String>,
    retryable: usize,
    unexpected: Vec<String>,
}

/// Sends fresh batches while `load` is on, and retries of whatever was not acknowledged until
/// `pending` is empty after the load.
async fn batch_client(
    client: Client,
    next_key: Arc<AtomicUsize>,
    pending: Arc<Mutex<Vec<Key>>>,
    load: Arc<AtomicBool>,
    seen: Arc<Mutex<Seen>>,
    deadline: Instant,
) {
    while Instant::now() < deadline {
        let retry: Vec<Key> = {
            let mut p = pending.lock().unwrap();
            let at = p.len().saturating_sub(BATCH);
            p.split_off(at)
        };
        let keys = if !retry.is_empty() {
            retry
        } else if load.load(Ordering::Relaxed) {
            let first = next_key.fetch_add(BATCH, Ordering::Relaxed);
            if first + BATCH > KEY_SPACE {
                return;
            }
            (first..first + BATCH).map(key).collect()
        } else {
            return;
        };
        let out = client
            .batch_meter_usage()
            .product_code(PRODUCT)
            .set_usage_records(Some(keys.iter().map(record).collect()))
            .send()
            .await;
        // After an error a short pause, as an SDK's retry would; otherwise a shorter one, so
        // that the key space outlasts the restarts on a fast machine too.
        let pause = if record_batch(out, keys, &seen, &pending) {
            50
        } else {
            10
        };
        tokio::time::sleep(Duration::from_millis(pause)).await;
    }
}

/// Books a BatchMeterUsage answer; true when it was an error (to be retried after a pause).
fn record_batch(
    out: Result<BatchMeterUsageOutput, SdkError<BatchMeterUsageError>>,
    keys: Vec<Key>,
    seen: &Mutex<Seen>,
    pending: &Mutex<Vec<Key>>,
) -> bool {
    let mut s = seen.lock().unwrap();
    match out {
        Ok(o) => {
            let mut ids = Vec::new();
            for r in o.results() {
                let k = key_of(r.usage_record().unwrap());
                match (r.status().map(|s| s.as_str()), r.metering_record_id()) {
                    (Some("Success"), Some(id)) => {
                        if let Some(before) = s.acked.insert(k, id.to_string()) {
                            if before != id {
                                s.unexpected
                                    .push(format!("{k:?} acked as {before}, then {id}"));
                            }
                        }
                        ids.push(id.to_string());
                    }
                    _ => s.unexpected.push(format!("record result {r:?}")),
                }
            }
            let back: Vec<Key> = o.unprocessed_records().iter().map(key_of).collect();
            if back.is_empty() {
                s.acked_requests.push((keys, ids));
            } else {
                s.retryable += 1;
                pending.lock().unwrap().extend(back);
            }
            false
        }
        Err(e) => {
            match e.as_service_error() {
                Some(se) if se.is_internal_service_error_exception() => s.retryable += 1,
                _ => s.unexpected.push(format!("BatchMeterUsage: {e:?}")),
            }
            pending.lock().unwrap().extend(keys);
            true
        }
    }
}

/// One MeterUsage call after another, every (dimension, hour) until acknowledged.
async fn meter_client(client: Client, seen: Arc<Mutex<Seen>>, deadline: Instant) {
    let mut todo = meter_keys();
    while let Some(k) = todo.pop() {
        if Instant::now() > deadline {
            return;
        }
        let answer = meter(&client, k).await;
        {
            let mut s = seen.lock().unwrap();
            match answer {
                Ok(id) => {
                    s.meter_acked.insert(k, id);
                }
                Err(e) => {
                    if e == "retryable" {
                        s.retryable += 1;
                    } else {
                        s.unexpected.push(e);
                    }
                    todo.insert(0, k);
                }
            }
        }
        tokio::time::sleep(Duration::from_millis(150)).await;
    }
}

fn agent() -> ureq::Agent {
    ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_global(Some(Duration::from_secs(10)))
        .build()
        .into()
}

/// /health/ready's status (the call itself must not time out).
async fn ready(url: &str) -> u16 {
    let url = format!("{url}/health/ready");
    tokio::task::spawn_blocking(move || {
        agent()
            .get(&url)
            .call()
            .expect("/health/ready answers")
            .status()
            .as_u16()
    })
    .await
    .unwrap()
}

/// Polls /health/ready until it answers `status`; how long that took.
async fn ready_becomes(url: &str, status: u16, within: Duration) -> Duration {
    let start = Instant::now();
    loop {
        if ready(url).await == status {
            return start.elapsed();
        }
        assert!(
            start.elapsed() < within,
            "/health/ready did not answer {status} within {within:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn pg_ctl(cluster: &Arc<Cluster>, action: &str) {
    let (cluster, action) = (cluster.clone(), action.to_string());
    tokio::task::spawn_blocking(move || cluster.ctl(&action))
        .await
        .unwrap()
        .unwrap();
}

fn admin_json(url: &str, path: &str) -> Value {
    let mut resp = agent()
        .get(format!("{url}{path}"))
        .header("Authorization", format!("Bearer {ADMIN_TOKEN}"))
        .call()
        .unwrap();
    assert_eq!(resp.status(), 200);
    let text = resp
        .body_mut()
        .with_config()
        .limit(1 << 30)
        .read_to_string()
        .unwrap();
    serde_json::from_str(&text).unwrap()
}

fn hour_of(r: &Value) -> i64 {
    time::OffsetDateTime::parse(
        r["hour"].as_str().unwrap(),
        &time::format_description::well_known::Rfc3339,
    )
    .unwrap()
    .unix_timestamp()
        / 3600
}

/// Stored batch records (panics on a key stored twice) and MeterUsage records.
fn stored(url: &str) -> (HashMap<Key, String>, HashMap<MeterKey, String>) {
    let mut batch = HashMap::new();
    let doc = admin_json(
        url,
        &format!("/admin/v1/usage-records?product_code={PRODUCT}&limit=100000"),
    );
    for r in doc["records"].as_array().unwrap() {
        let acct = r["customer_aws_account_id"].as_str().unwrap();
        let k = Key {
            customer: acct[1..].parse().unwrap(),
            dimension: r["dimension"].as_str().unwrap()[1..].parse().unwrap(),
            hour: hour_of(r),
        };
        let id = r["metering_record_id"].as_str().unwrap().to_string();
        assert!(batch.insert(k, id).is_none(), "{k:?} is stored twice");
    }
    let mut meter = HashMap::new();
    let doc = admin_json(
        url,
        "/admin/v1/usage-records?product_code=e2e-ami&limit=100000",
    );
    for r in doc["records"].as_array().unwrap() {
        let d = METER_DIMENSIONS
            .iter()
            .position(|d| r["dimension"] == *d)
            .unwrap();
        let id = r["metering_record_id"].as_str().unwrap().to_string();
        assert!(
            meter.insert((d, hour_of(r)), id).is_none(),
            "a MeterUsage record is stored twice: {r}"
        );
    }
    (batch, meter)
}

/// Rows, distinct unique keys and distinct ids of the usage table, straight from PostgreSQL.
async fn table_counts(base: &str) -> (i64, i64, i64) {
    let c = marketmeter_testpg::admin(base).await.unwrap();
    let row = c
        .query_one(
            "SELECT count(*), \
               count(DISTINCT (seller_account, identity_kind, identity_a, identity_b, dimension, hour)), \
               count(DISTINCT metering_record_id) FROM usage_records",
            &[],
        )
        .await
        .unwrap();
    (row.get(0), row.get(1), row.get(2))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn postgres_restart_under_load_loses_nothing() {
    let cluster = match tokio::task::spawn_blocking(Cluster::start).await.unwrap() {
        Ok(c) => Arc::new(c),
        Err(why) if required() => panic!("a PostgreSQL cluster of its own is required: {why}"),
        Err(why) => {
            eprintln!("\n!!!!!!!!!! PostgreSQL restart test SKIPPED: {why}\n");
            return;
        }
    };
    let dir = tempfile::tempdir().unwrap();
    let seed = write_seed(dir.path());
    let db = marketmeter_testpg::with_params(&cluster.url(), "application_name=mm_restart");
    let server = Server::start_on_arg(
        &db,
        &[
            "--clock",
            "manual",
            "--seed",
            &seed,
            "--meter-window",
            "24h",
        ],
    );
    let url = server.url.clone();
    let set = ureq::put(&format!("{url}/admin/v1/clock"))
        .header("Authorization", &format!("Bearer {ADMIN_TOKEN}"))
        .send_json(serde_json::json!({ "now": NOW }))
        .unwrap();
    assert_eq!(set.status(), 200);
    assert_eq!(ready(&url).await, 200);

    let seen: Arc<Mutex<Seen>> = Arc::default();
    let load = Arc::new(AtomicBool::new(true));
    let pending: Arc<Mutex<Vec<Key>>> = Arc::default();
    let next_key = Arc::new(AtomicUsize::new(0));
    let deadline = Instant::now() + Duration::from_secs(240);
    let mut clients = Vec::new();
    for _ in 0..CLIENTS {
        let c = sdk_client_with_timeout(&url, SELLER, "us-east-1", Some(CALL_TIMEOUT));
        clients.push(tokio::spawn(batch_client(
            c,
            next_key.clone(),
            pending.clone(),
            load.clone(),
            seen.clone(),
            deadline,
        )));
    }
    let c = sdk_client_with_timeout(&url, BUYER_EC2, "us-east-1", Some(CALL_TIMEOUT));
    clients.push(tokio::spawn(meter_client(c, seen.clone(), deadline)));

    // Down for a while (readiness must say so), then back; then instant restarts.
    for mode in ["fast", "immediate"] {
        tokio::time::sleep(Duration::from_millis(1500)).await;
        pg_ctl(&cluster, &format!("stop -m {mode}")).await;
        ready_becomes(&url, 503, Duration::from_secs(10)).await;
        tokio::time::sleep(Duration::from_secs(2)).await;
        assert_eq!(ready(&url).await, 503, "ready while the database is down");
        pg_ctl(&cluster, "start").await;
        let back = ready_becomes(&url, 200, Duration::from_secs(30)).await;
        eprintln!("pg_restart: stop -m {mode}: ready again {back:?} after start");
    }
    for mode in ["fast", "immediate"] {
        tokio::time::sleep(Duration::from_millis(1500)).await;
        pg_ctl(&cluster, &format!("restart -m {mode}")).await;
        let back = ready_becomes(&url, 200, Duration::from_secs(30)).await;
        eprintln!("pg_restart: restart -m {mode}: ready {back:?} after pg_ctl returned");
    }
    tokio::time::sleep(Duration::from_millis(1500)).await;
    load.store(false, Ordering::Relaxed);
    for c in clients {
        c.await.unwrap();
    }

    let seen = Arc::try_unwrap(seen).ok().unwrap().into_inner().unwrap();
    eprintln!(
        "pg_restart: {} records and {} MeterUsage calls acknowledged, {} retryable answers",
        seen.acked.len(),
        seen.meter_acked.len(),
        seen.retryable
    );
    assert!(
        seen.unexpected.is_empty(),
        "answers that are not retryable: {:#?}",
        &seen.unexpected[..seen.unexpected.len().min(5)]
    );
    assert!(seen.retryable > 0, "no request ever met the database down");
    assert!(
        pending.lock().unwrap().is_empty(),
        "records still unacknowledged at the deadline"
    );
    let sent = next_key.load(Ordering::Relaxed);
    assert!(
        sent < KEY_SPACE,
        "the load ran out of keys before the last restart"
    );
    assert_eq!(seen.acked.len(), sent, "records not acknowledged");
    assert_eq!(seen.meter_acked.len(), meter_keys().len());

    // Exactly once, under the acknowledged ids.
    let (batch, meter_stored) = stored(&url);
    assert_eq!(
        batch, seen.acked,
        "stored records differ from the acknowledged ones"
    );
    assert_eq!(meter_stored, seen.meter_acked, "MeterUsage records differ");
    let (rows, keys, ids) = table_counts(&cluster.url()).await;
    assert_eq!(rows, keys, "a unique key is stored twice");
    assert_eq!(rows, ids, "two rows share a MeteringRecordId");
    assert_eq!(rows as usize, batch.len() + meter_stored.len());

    // Every request again: the same ids.
    let seller = sdk_client_with_timeout(&url, SELLER, "us-east-1", Some(CALL_TIMEOUT));
    for (keys, ids) in &seen.acked_requests {
        let o = seller
            .batch_meter_usage()
            .product_code(PRODUCT)
            .set_usage_records(Some(keys.iter().map(record).collect()))
            .send()
            .await
            .unwrap();
        let again: Vec<&str> = o
            .results()
            .iter()
            .map(|r| r.metering_record_id().unwrap())
            .collect();
        assert_eq!(again, *ids, "a retry got other ids");
    }
    let buyer = sdk_client_with_timeout(&url, BUYER_EC2, "us-east-1", Some(CALL_TIMEOUT));
    for (k, id) in &seen.meter_acked {
        assert_eq!(
            meter(&buyer, *k).await.as_ref(),
            Ok(id),
            "MeterUsage retry {k:?}"
        );
    }
}
