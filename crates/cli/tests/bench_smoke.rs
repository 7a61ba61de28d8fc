//! `marketmeter bench` against a spawned server: a short signed run of both operations ends with
//! zero errors, and the server stored exactly the records the generator counted as accepted.

mod common;

use common::Server;
use std::process::Command;

const BENCH_SEED: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../tests/bench/seed.toml");

fn bench(server: &Server, extra: &[&str]) -> (bool, serde_json::Value) {
    let out = Command::new(env!("CARGO_BIN_EXE_marketmeter"))
        .args([
            "bench",
            "--endpoint",
            &server.url,
            "--seed",
            BENCH_SEED,
            "--json",
        ])
        .args(extra)
        .output()
        .expect("run marketmeter bench");
    let summary = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "bench printed no JSON ({e}); stderr: {}",
            String::from_utf8_lossy(&out.stderr)
        )
    });
    (out.status.success(), summary)
}

fn operation<'a>(summary: &'a serde_json::Value, name: &str) -> &'a serde_json::Value {
    summary["operations"]
        .as_array()
        .unwrap()
        .iter()
        .find(|o| o["operation"] == name)
        .unwrap_or_else(|| panic!("no {name} in {summary}"))
}

#[test]
fn a_short_run_has_no_errors_and_every_accepted_record_is_stored() {
    let server = Server::start(&["--seed", BENCH_SEED]);
    let (ok, summary) = bench(
        &server,
        &[
            "--op",
            "both",
            "--concurrency",
            "4",
            "--duration",
            "30s",
            "--max-requests",
            "120",
        ],
    );
    assert!(ok, "bench reported errors: {summary:#}");
    assert_eq!(summary["error_count"], 0);
    assert_eq!(summary["stopped_by"], "max-requests");
    let batch = operation(&summary, "BatchMeterUsage");
    let meter = operation(&summary, "MeterUsage");
    let (batches, calls) = (
        batch["requests"].as_u64().unwrap(),
        meter["requests"].as_u64().unwrap(),
    );
    assert_eq!(batches + calls, 120);
    assert!(batches > 0 && calls > 0);
    assert_eq!(batch["records"].as_u64().unwrap(), batches * 25);
    assert_eq!(meter["records"].as_u64().unwrap(), calls);
    let stored = |product: &str| {
        let page = server.admin_get(&format!(
            "/admin/v1/usage-records?product_code={product}&limit=100000"
        ));
        page["records"].as_array().unwrap().len() as u64
    };
    assert_eq!(stored("bench-saas"), batches * 25);
    assert_eq!(stored("bench-ami"), calls);
}

#[test]
fn rejected_records_are_counted_as_errors_and_fail_the_run() {
    // A one-hour look-back refuses most of the generator's 23 hours: the run must say so.
    let server = Server::start(&["--seed", BENCH_SEED, "--batch-window", "1h"]);
    let (ok, summary) = bench(&server, &["--max-requests", "40", "--concurrency", "2"]);
    assert!(!ok);
    let batch = operation(&summary, "BatchMeterUsage");
    let errors = batch["errors"].as_object().unwrap();
    assert!(
        errors
            .keys()
            .any(|k| k == "HTTP 400 TimestampOutOfBoundsException"),
        "{summary:#}"
    );
    assert!(batch["error_count"].as_u64().unwrap() > 0);
}
