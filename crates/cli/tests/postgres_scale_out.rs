//! Several `marketmeter serve` processes on one PostgreSQL database, hit at once by real SDK
//! clients: exactly one record per key, every identical retry gets its id, every conflicting
//! submission is refused; registration tokens and RegisterUsage's first call are race-free; a
//! dropped database connection is a retryable error and the server reconnects by itself.
//!
//! Runs on the test PostgreSQL (see `marketmeter-testpg`); skipped loudly when there is none.

mod common;

use aws_sdk_marketplacemetering as mm;
use aws_sdk_marketplacemetering::error::ProvideErrorMetadata;
use aws_sdk_marketplacemetering::types::{UsageRecord, UsageRecordResultStatus};
use aws_smithy_types::DateTime;
use common::{Db, Server};
use std::collections::{BTreeMap, HashSet};
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};
use tokio::sync::Barrier;

const SELLER: (&str, &str, Option<&str>) = ("AKIAE2ESELLER0000001", "seller-secret", None);
const BUYER_EC2: (&str, &str, Option<&str>) = (
    "ASIAE2EBUYEREC200001",
    "buyer-ec2-secret",
    Some("buyer-ec2-session-token"),
);
const BUYER_ECS: (&str, &str, Option<&str>) = ("ASIAE2EBUYERECS00001", "buyer-ecs-secret", None);
const ECS_TASK: &str =
    "arn:aws:ecs:us-east-1:444455556666:task/e2e/00000000000000000000000000000001";
const LICENSE: &str = "arn:aws:license-manager::111122223333:license/l-e2e0saas0buyer";
const BUYER: &str = "444455556666";
const PROCESSES: usize = 3;

fn client(url: &str, creds: (&str, &str, Option<&str>)) -> mm::Client {
    // Retries are off there: every attempt counts, the SDK must not retry behind the test's back.
    common::sdk_client(url, creds, "us-east-1")
}

fn now_secs() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

/// `n` servers on one fresh schema, or None (skipped) without PostgreSQL.
fn cluster(n: usize, extra: &[&str]) -> Option<(Db, Vec<Server>)> {
    let db = Db::postgres()?;
    let servers = (0..n).map(|_| Server::start_on(&db, extra)).collect();
    Some((db, servers))
}

/// What one submission offered and what it was told.
#[derive(Debug)]
struct Answer {
    quantity: i32,
    status: UsageRecordResultStatus,
    id: Option<String>,
}

/// Every process receives, at the same moment, batches over the same keys: some carry a key's
/// own quantity (identical retries of each other), some a conflicting one, in shuffled orders.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn batches_race_across_processes_and_one_record_per_key_wins() {
    let Some((_db, servers)) = cluster(PROCESSES, &[]) else {
        return;
    };
    let hour = now_secs() - 2 * 3600;
    let keys: Vec<(&str, i64)> = ["requests", "storage_gb", "users"]
        .into_iter()
        .flat_map(|d| (0..3).map(move |h| (d, hour - h * 3600)))
        .collect();
    const SUBMITTERS: usize = 12;
    let barrier = Arc::new(Barrier::new(SUBMITTERS));
    let mut tasks = Vec::new();
    for s in 0..SUBMITTERS {
        let c = client(&servers[s % PROCESSES].url, SELLER);
        let (keys, barrier) = (keys.clone(), barrier.clone());
        tasks.push(tokio::spawn(async move {
            // Submitters 0..8 offer quantity 10 (identical); the others conflict with 20 + s.
            let quantity = if s < 8 { 10 } else { 20 + s as i32 };
            let mut order: Vec<usize> = (0..keys.len()).collect();
            order.rotate_left(s % keys.len());
            if s % 2 == 1 {
                order.reverse();
            }
            let mut req = c.batch_meter_usage();
            for &k in &order {
                let (dim, ts) = keys[k];
                req = req.usage_records(
                    UsageRecord::builder()
                        .timestamp(DateTime::from_secs(ts))
                        .customer_aws_account_id(BUYER)
                        .license_arn(LICENSE)
                        .dimension(dim)
                        .quantity(quantity)
                        .build()
                        .unwrap(),
                );
            }
            barrier.wait().await;
            let out = req.send().await.expect("BatchMeterUsage answered");
            assert!(out.unprocessed_records().is_empty(), "{out:?}");
            out.results()
                .iter()
                .map(|r| {
                    let u = r.usage_record().unwrap();
                    let key = (u.dimension().to_string(), u.timestamp().secs());
                    let answer = Answer {
                        quantity,
                        status: r.status().unwrap().clone(),
                        id: r.metering_record_id().map(str::to_string),
                    };
                    (key, answer)
                })
                .collect::<Vec<_>>()
        }));
    }
    let mut by_key: BTreeMap<(String, i64), Vec<Answer>> = BTreeMap::new();
    for t in tasks {
        for (key, answer) in t.await.unwrap() {
            by_key.entry(key).or_default().push(answer);
        }
    }
    assert_eq!(by_key.len(), keys.len());

    let stored = servers[0].usage_records("e2e-saas");
    assert_eq!(stored.len(), keys.len(), "exactly one record per key");
    for ((dim, ts), answers) in &by_key {
        let hour_start = ts - ts.rem_euclid(3600);
        let row = stored
            .iter()
            .find(|r| r["dimension"] == dim.as_str() && hour_of(r) == hour_start)
            .unwrap_or_else(|| panic!("no stored record for {dim}@{ts}"));
        let won: i32 = row["quantity"].as_str().unwrap().parse().unwrap();
        let id = row["metering_record_id"].as_str().unwrap();
        for a in answers {
            if a.quantity == won {
                assert_eq!(a.status, UsageRecordResultStatus::Success, "{dim}: {a:?}");
                assert_eq!(a.id.as_deref(), Some(id), "an identical retry gets the id");
            } else {
                assert_eq!(a.status, UsageRecordResultStatus::DuplicateRecord, "{a:?}");
            }
        }
    }
}

fn hour_of(record: &serde_json::Value) -> i64 {
    let hour = record["hour"].as_str().expect("hour is RFC 3339");
    let t =
        time::OffsetDateTime::parse(hour, &time::format_description::well_known::Rfc3339).unwrap();
    t.unix_timestamp()
}

/// MeterUsage from one workload through every process at once: one record; the same
/// ClientToken with the same parameters always names it; with other parameters it conflicts.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn meter_usage_and_client_tokens_race_across_processes() {
    let Some((_db, servers)) = cluster(PROCESSES, &[]) else {
        return;
    };
    let ts = DateTime::from_secs(now_secs() - 3600);
    const CALLERS: usize = 12;
    let barrier = Arc::new(Barrier::new(CALLERS));
    let mut tasks = Vec::new();
    for s in 0..CALLERS {
        let c = client(&servers[s % PROCESSES].url, BUYER_EC2);
        let barrier = barrier.clone();
        tasks.push(tokio::spawn(async move {
            // Even callers: no token, quantity 1 or 2. Odd: token "race-token", quantity 3 or 4.
            let (token, quantity) = match s % 4 {
                0 => (None, 1),
                2 => (None, 2),
                1 => (Some("race-token"), 3),
                _ => (Some("race-token"), 4),
            };
            let req = c
                .meter_usage()
                .product_code("e2e-ami")
                .timestamp(ts)
                .usage_dimension(if token.is_some() { "cores" } else { "hosts" })
                .usage_quantity(quantity)
                .set_client_token(token.map(str::to_string));
            barrier.wait().await;
            let out = req.send().await;
            let answer = out
                .map(|o| o.metering_record_id().unwrap().to_string())
                .map_err(|e| e.code().unwrap_or("<none>").to_string());
            (token.is_some(), quantity, answer)
        }));
    }
    let mut answers = Vec::new();
    for t in tasks {
        answers.push(t.await.unwrap());
    }
    let stored = servers[1].usage_records("e2e-ami");
    assert_eq!(stored.len(), 2, "one record per dimension: {stored:?}");
    for (with_token, dim) in [(false, "hosts"), (true, "cores")] {
        let row = stored.iter().find(|r| r["dimension"] == dim).unwrap();
        let won: i32 = row["quantity"].as_str().unwrap().parse().unwrap();
        let id = row["metering_record_id"].as_str().unwrap();
        for (_, quantity, answer) in answers.iter().filter(|a| a.0 == with_token) {
            if *quantity == won {
                assert_eq!(answer.as_deref(), Ok(id), "{dim} q={quantity}");
            } else if with_token {
                assert_eq!(
                    answer.as_ref().map_err(String::as_str),
                    Err("IdempotencyConflictException"),
                    "token reused with other parameters"
                );
            } else {
                assert_eq!(
                    answer.as_ref().map_err(String::as_str),
                    Err("DuplicateRequestException")
                );
            }
        }
    }
}

/// A single-use registration token resolved through every process at once resolves once.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_single_use_token_resolves_once_across_processes() {
    let Some((_db, servers)) = cluster(PROCESSES, &["--single-use-tokens", "true"]) else {
        return;
    };
    let token = servers[0].admin_post(
        "/admin/v1/registration-tokens",
        serde_json::json!({"product_code": "e2e-saas", "customer_aws_account_id": BUYER}),
    )["registration_token"]
        .as_str()
        .unwrap()
        .to_string();
    const CALLERS: usize = 12;
    let barrier = Arc::new(Barrier::new(CALLERS));
    let mut tasks = Vec::new();
    for s in 0..CALLERS {
        let c = client(&servers[s % PROCESSES].url, SELLER);
        let (token, barrier) = (token.clone(), barrier.clone());
        tasks.push(tokio::spawn(async move {
            barrier.wait().await;
            c.resolve_customer()
                .registration_token(token)
                .send()
                .await
                .map(|o| o.customer_aws_account_id().unwrap().to_string())
                .map_err(|e| e.code().unwrap_or("<none>").to_string())
        }));
    }
    let mut ok = 0;
    for t in tasks {
        match t.await.unwrap() {
            Ok(account) => {
                assert_eq!(account, BUYER);
                ok += 1;
            }
            Err(code) => assert_eq!(code, "InvalidTokenException"),
        }
    }
    assert_eq!(ok, 1, "a single-use token resolves exactly once");
}

/// The first RegisterUsage of a workload, through every process at once: all succeed and
/// exactly one container session is recorded.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn register_usage_first_call_is_race_free_across_processes() {
    let Some((db, servers)) = cluster(PROCESSES, &[]) else {
        return;
    };
    const CALLERS: usize = 9;
    let barrier = Arc::new(Barrier::new(CALLERS));
    let mut tasks = Vec::new();
    for s in 0..CALLERS {
        let c = client(&servers[s % PROCESSES].url, BUYER_ECS);
        let barrier = barrier.clone();
        tasks.push(tokio::spawn(async move {
            barrier.wait().await;
            c.register_usage()
                .product_code("e2e-container")
                .public_key_version(1)
                .nonce(format!("nonce-{s}"))
                .send()
                .await
                .map(|o| o.signature().unwrap().to_string())
                .map_err(|e| e.code().unwrap_or("<none>").to_string())
        }));
    }
    let mut signatures = HashSet::new();
    for t in tasks {
        signatures.insert(t.await.unwrap().expect("every first call succeeds"));
    }
    assert_eq!(
        signatures.len(),
        CALLERS,
        "each answer is signed for its own nonce"
    );

    let common::Db::Postgres(schema) = &db else {
        unreachable!()
    };
    let sessions: i64 = marketmeter_testpg::on_own_runtime({
        let url = schema.url("mm_check");
        async move {
            let c = marketmeter_testpg::admin(&url).await.unwrap();
            c.query_one("SELECT COUNT(*) FROM container_sessions", &[])
                .await
                .unwrap()
                .get(0)
        }
    });
    assert_eq!(sessions, 1, "one session for the workload");

    // Stopped, then registered again through every process at once: exactly one new run.
    let stopped = servers[0].admin_post(
        "/admin/v1/container-sessions/stop",
        serde_json::json!({"product_code": "e2e-container", "resource_id": ECS_TASK}),
    );
    assert_eq!(stopped["run"], 1, "{stopped}");
    let barrier = Arc::new(Barrier::new(CALLERS));
    let mut tasks = Vec::new();
    for s in 0..CALLERS {
        let c = client(&servers[s % PROCESSES].url, BUYER_ECS);
        let barrier = barrier.clone();
        tasks.push(tokio::spawn(async move {
            barrier.wait().await;
            c.register_usage()
                .product_code("e2e-container")
                .public_key_version(1)
                .send()
                .await
                .is_ok()
        }));
    }
    for t in tasks {
        assert!(t.await.unwrap(), "every call of the new run succeeds");
    }
    let runs = servers[1].admin_get("/admin/v1/container-sessions?product_code=e2e-container");
    let runs: Vec<(i64, &str)> = runs["sessions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| (r["run"].as_i64().unwrap(), r["state"].as_str().unwrap()))
        .collect();
    assert_eq!(runs, vec![(1, "stopped"), (2, "running")]);
}

/// Killing a server's database connections mid-service: calls that met a dead connection get a
/// retryable InternalServiceErrorException (never a wrong answer); the server reconnects by
/// itself and the retry stores the record once.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn dropped_connections_are_retryable_and_the_server_reconnects() {
    let Some((db, servers)) = cluster(1, &[]) else {
        return;
    };
    let c = client(&servers[0].url, SELLER);
    let ts = now_secs() - 3600;
    let send = |dim: &'static str| {
        c.batch_meter_usage().usage_records(
            UsageRecord::builder()
                .timestamp(DateTime::from_secs(ts))
                .customer_aws_account_id(BUYER)
                .license_arn(LICENSE)
                .dimension(dim)
                .quantity(7)
                .build()
                .unwrap(),
        )
    };
    // Warm the pool, so there are live connections to kill.
    let first = send("requests").send().await.unwrap();
    assert_eq!(
        first.results()[0].status(),
        Some(&UsageRecordResultStatus::Success)
    );

    let common::Db::Postgres(schema) = &db else {
        unreachable!()
    };
    let url = schema.url("mm_killer");
    let app = common::Db::application_name(schema);
    let killed: i64 = marketmeter_testpg::on_own_runtime(async move {
        let c = marketmeter_testpg::admin(&url).await.unwrap();
        c.query_one(
            "SELECT COUNT(pg_terminate_backend(pid)) FROM pg_stat_activity \
             WHERE application_name = $1 AND pid <> pg_backend_pid()",
            &[&app],
        )
        .await
        .unwrap()
        .get(0)
    });
    assert!(killed >= 1, "the server held connections");

    // Until it reconnects, a call is either a success or a retryable error: nothing else.
    let mut stored_id = None;
    for attempt in 0..20 {
        match send("storage_gb").send().await {
            Ok(out) if out.unprocessed_records().is_empty() => {
                let r = &out.results()[0];
                assert_eq!(r.status(), Some(&UsageRecordResultStatus::Success));
                stored_id = r.metering_record_id().map(str::to_string);
                break;
            }
            Ok(out) => assert_eq!(out.unprocessed_records().len(), 1, "{out:?}"),
            Err(e) => {
                assert_eq!(
                    e.code(),
                    Some("InternalServiceErrorException"),
                    "attempt {attempt}: {e:?}"
                );
                let raw = e.raw_response().expect("an HTTP answer");
                assert_eq!(raw.status().as_u16(), 500);
            }
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    let id = stored_id.expect("the server reconnected and stored the record");
    let again = send("storage_gb").send().await.unwrap();
    assert_eq!(again.results()[0].metering_record_id(), Some(id.as_str()));
    let stored = servers[0].usage_records("e2e-saas");
    assert_eq!(stored.len(), 2, "each record once: {stored:?}");
}
