//! Operating a running server: Prometheus metrics, JSON logs carrying the request id.

mod common;

use aws_sdk_marketplacemetering::types::UsageRecord;
use common::{license_record, metric, now_secs, sdk_client, Server, SELLER};
use std::io::Read;

fn record(dimension: &str, quantity: i32) -> UsageRecord {
    license_record(now_secs() - 60, dimension, quantity)
        .build()
        .unwrap()
}

fn scrape(server: &Server) -> String {
    let mut resp = ureq::get(&format!("{}/metrics", server.url))
        .call()
        .unwrap();
    let ct = resp.headers()["content-type"].to_str().unwrap().to_string();
    assert!(ct.starts_with("text/plain"), "{ct}");
    resp.body_mut().read_to_string().unwrap()
}

/// A raw awsJson request; returns (status, x-amzn-RequestId, x-amzn-ErrorType).
fn raw(server: &Server, target: &str) -> (u16, String, String) {
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .build()
        .into();
    let resp = agent
        .post(&server.url)
        .header("X-Amz-Target", target)
        .header("Content-Type", "application/x-amz-json-1.1")
        .send("{}")
        .unwrap();
    let h = |n: &str| {
        resp.headers()
            .get(n)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_string()
    };
    (
        resp.status().as_u16(),
        h("x-amzn-RequestId"),
        h("x-amzn-ErrorType"),
    )
}

#[tokio::test]
async fn metrics_count_requests_errors_records_and_commits() {
    let server = Server::start(&[]);
    let seller = sdk_client(&server.url, SELLER, "us-east-1");
    // Two new records, then the same two again plus a duplicate with another quantity.
    let first = seller
        .batch_meter_usage()
        .product_code("e2e-saas")
        .usage_records(record("requests", 3))
        .usage_records(record("storage_gb", 4))
        .send()
        .await
        .unwrap();
    assert_eq!(first.results().len(), 2);
    seller
        .batch_meter_usage()
        .product_code("e2e-saas")
        .usage_records(record("requests", 3))
        .usage_records(record("storage_gb", 5))
        .send()
        .await
        .unwrap();
    assert_eq!(
        raw(&server, "AWSMPMeteringService.NoSuchThing").2,
        "UnknownOperationException"
    );
    assert_eq!(
        raw(&server, "AWSMPMeteringService.ResolveCustomer").2,
        "MissingAuthenticationTokenException"
    );

    let text = scrape(&server);
    let get = |name: &str, labels: &[(&str, &str)]| {
        metric(&text, name, labels).unwrap_or_else(|| panic!("no {name} {labels:?} in\n{text}"))
    };
    let bmu = ("operation", "BatchMeterUsage");
    assert_eq!(get("marketmeter_requests_total", &[bmu]), 2.0);
    assert_eq!(
        get("marketmeter_requests_total", &[("operation", "unknown")]),
        1.0
    );
    assert_eq!(
        get(
            "marketmeter_errors_total",
            &[
                ("operation", "unknown"),
                ("code", "UnknownOperationException")
            ]
        ),
        1.0
    );
    assert_eq!(
        get(
            "marketmeter_errors_total",
            &[
                ("operation", "ResolveCustomer"),
                ("code", "MissingAuthenticationTokenException")
            ]
        ),
        1.0
    );
    assert_eq!(
        get("marketmeter_records_total", &[bmu, ("status", "Success")]),
        3.0
    );
    assert_eq!(
        get(
            "marketmeter_records_total",
            &[bmu, ("status", "DuplicateRecord")]
        ),
        1.0
    );
    assert_eq!(
        get("marketmeter_request_duration_seconds_count", &[bmu]),
        2.0
    );
    // Seeding and both batches went through the store's write transactions.
    assert!(get("marketmeter_store_commit_batch_size_count", &[]) >= 2.0);
    assert!(get("marketmeter_store_commit_duration_seconds_count", &[]) >= 2.0);
    assert_eq!(get("marketmeter_store_commit_failures_total", &[]), 0.0);
}

#[test]
fn json_logs_carry_the_request_id() {
    let mut server = Server::start_logged(&["--log-format", "json"], "debug");
    let (status, request_id, error) = raw(&server, "AWSMPMeteringService.BatchMeterUsage");
    assert_eq!(
        (status, error.as_str()),
        (403, "MissingAuthenticationTokenException")
    );
    assert_eq!(request_id.len(), 36, "{request_id}");
    let mut stderr = server.stderr.take().unwrap();
    assert!(server.terminate().success());
    let mut logs = String::new();
    stderr.read_to_string(&mut logs).unwrap();
    let lines: Vec<serde_json::Value> = logs
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}")))
        .collect();
    let line = lines
        .iter()
        .find(|l| l["span"]["request_id"] == request_id.as_str())
        .unwrap_or_else(|| panic!("no log line with request id {request_id}:\n{logs}"));
    assert_eq!(
        line["fields"]["code"],
        "MissingAuthenticationTokenException"
    );
    assert!(
        !logs.contains("e2e-admin-token"),
        "the admin token is logged"
    );
}
