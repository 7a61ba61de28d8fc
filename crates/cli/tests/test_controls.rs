//! Test controls end to end, through the `marketmeter admin` CLI and the real Rust SDK: manual
//! clock, fault injection, AWS quotas, reset; and graceful shutdown finishing a slow request.

mod common;

use aws_sdk_marketplacemetering::error::ProvideErrorMetadata;
use aws_sdk_marketplacemetering::types::{UsageRecord, UsageRecordResultStatus};
use aws_sdk_marketplacemetering::Client;
use aws_smithy_types::DateTime;
use common::{cli, license_record, now_secs, sdk_client, Server, ADMIN_TOKEN, BUYER_EC2, SELLER};
use std::time::{Duration, Instant};

fn admin(server: &Server, args: &[&str]) -> std::process::Output {
    cli(server, "admin", args)
}

fn ok(server: &Server, args: &[&str]) -> serde_json::Value {
    let out = admin(server, args);
    assert!(
        out.status.success(),
        "{args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

/// The CLI fails; returns its error output.
fn fails(server: &Server, args: &[&str]) -> String {
    let out = admin(server, args);
    assert!(!out.status.success(), "{args:?} succeeded");
    String::from_utf8_lossy(&out.stderr).into_owned()
}

fn record(at: i64, dimension: &str, quantity: i32) -> UsageRecord {
    license_record(at, dimension, quantity).build().unwrap()
}

async fn batch(
    seller: &Client,
    records: Vec<UsageRecord>,
) -> Result<aws_sdk_marketplacemetering::operation::batch_meter_usage::BatchMeterUsageOutput, String>
{
    seller
        .batch_meter_usage()
        .product_code("e2e-saas")
        .set_usage_records(Some(records))
        .send()
        .await
        .map_err(|e| {
            e.into_service_error()
                .code()
                .unwrap_or("<none>")
                .to_string()
        })
}

#[tokio::test]
async fn manual_clock_moves_the_windows() {
    let server = Server::start(&["--clock", "manual"]);
    assert_eq!(ok(&server, &["clock"])["mode"], "manual");
    let set = ok(&server, &["clock", "set", "2026-06-15T12:00:00Z"]);
    assert_eq!(set["now"], "2026-06-15T12:00:00Z");

    // Signatures use the real time; the rules use the manual clock.
    let seller = sdk_client(&server.url, SELLER, "us-east-1");
    let event = 1_781_517_600; // 2026-06-15T10:00:00Z: two hours before the manual now
    let out = batch(&seller, vec![record(event, "requests", 1)])
        .await
        .unwrap();
    assert_eq!(
        out.results()[0].status(),
        Some(&UsageRecordResultStatus::Success)
    );
    // A record at the real time is in the future for the manual clock.
    assert_eq!(
        batch(&seller, vec![record(now_secs(), "users", 1)])
            .await
            .unwrap_err(),
        "TimestampOutOfBoundsException"
    );

    // 22 more hours: the event is now 24 h old, past the BatchMeterUsage window.
    let advanced = ok(&server, &["clock", "advance", "22h 1s"]);
    assert_eq!(advanced["now"], "2026-06-16T10:00:01Z");
    assert_eq!(
        batch(&seller, vec![record(event, "storage_gb", 1)])
            .await
            .unwrap_err(),
        "TimestampOutOfBoundsException"
    );

    // Registration tokens expire by the manual clock too (4 h by default).
    let token = ok(
        &server,
        &[
            "create-registration-token",
            "--product-code",
            "e2e-saas",
            "--customer-aws-account-id",
            "444455556666",
        ],
    );
    assert_eq!(token["expires_at"], "2026-06-16T14:00:01Z");
    let token = token["registration_token"].as_str().unwrap();
    let resolved = seller
        .resolve_customer()
        .registration_token(token)
        .send()
        .await
        .unwrap();
    assert_eq!(resolved.product_code(), Some("e2e-saas"));
    ok(&server, &["clock", "advance", "4h"]);
    let expired = seller
        .resolve_customer()
        .registration_token(token)
        .send()
        .await
        .unwrap_err();
    assert_eq!(
        expired.into_service_error().code(),
        Some("ExpiredTokenException")
    );

    // Bad input names the field; time never goes backwards through advance.
    assert!(fails(&server, &["clock", "set", "yesterday"]).contains("now:"));
    let back = ureq::post(&format!("{}/admin/v1/clock/advance", server.url))
        .header("Authorization", &format!("Bearer {ADMIN_TOKEN}"))
        .send_json(serde_json::json!({"seconds": -5}))
        .unwrap_err();
    assert!(matches!(back, ureq::Error::StatusCode(400)), "{back}");
}

#[test]
fn the_system_clock_cannot_be_moved() {
    let server = Server::start(&[]);
    assert_eq!(ok(&server, &["clock"])["mode"], "system");
    let err = fails(&server, &["clock", "advance", "1h"]);
    assert!(
        err.contains("409") && err.contains("--clock manual"),
        "{err}"
    );
}

#[tokio::test]
async fn faults_throttle_fail_and_defer_records() {
    let server = Server::start(&[]);
    let seller = sdk_client(&server.url, SELLER, "us-east-1");
    let at = now_secs() - 120;

    // The next two BatchMeterUsage calls are throttled; the third goes through.
    let rule = ok(
        &server,
        &[
            "faults",
            "add",
            "--operation",
            "BatchMeterUsage",
            "--kind",
            "throttling",
            "--count",
            "2",
        ],
    );
    assert_eq!(rule["remaining"], 2);
    for _ in 0..2 {
        assert_eq!(
            batch(&seller, vec![record(at, "requests", 1)])
                .await
                .unwrap_err(),
            "ThrottlingException"
        );
    }
    assert!(batch(&seller, vec![record(at, "requests", 1)])
        .await
        .is_ok());
    assert_eq!(ok(&server, &["faults"])["faults"], serde_json::json!([]));

    // Unprocessed: every record comes back to be resubmitted, and nothing is stored.
    let rule = ok(
        &server,
        &[
            "faults",
            "add",
            "--operation",
            "BatchMeterUsage",
            "--kind",
            "unprocessed",
        ],
    );
    let out = batch(
        &seller,
        vec![record(at, "users", 2), record(at, "storage_gb", 3)],
    )
    .await
    .unwrap();
    assert!(out.results().is_empty());
    assert_eq!(out.unprocessed_records().len(), 2);
    assert_eq!(server.usage_records("e2e-saas").len(), 1);
    ok(&server, &["faults", "remove", &rule["id"].to_string()]);
    assert!(fails(&server, &["faults", "remove", &rule["id"].to_string()]).contains("404"));
    let bad_id = ureq::delete(&format!("{}/admin/v1/faults/abc", server.url))
        .header("Authorization", &format!("Bearer {ADMIN_TOKEN}"))
        .call()
        .unwrap_err();
    assert!(matches!(bad_id, ureq::Error::StatusCode(400)), "{bad_id}");

    // Internal errors on every call of every operation, until cleared.
    ok(
        &server,
        &[
            "faults",
            "add",
            "--kind",
            "internal_error",
            "--probability",
            "1",
        ],
    );
    let resolve = seller
        .resolve_customer()
        .registration_token("anything")
        .send()
        .await
        .unwrap_err();
    assert_eq!(
        resolve.into_service_error().code(),
        Some("InternalServiceErrorException")
    );
    assert_eq!(ok(&server, &["faults", "clear"])["removed"], 1);
    let out = batch(&seller, vec![record(at, "users", 2)]).await.unwrap();
    assert_eq!(
        out.results()[0].status(),
        Some(&UsageRecordResultStatus::Success)
    );

    // Latency: the call waits, then succeeds.
    ok(
        &server,
        &[
            "faults",
            "add",
            "--operation",
            "BatchMeterUsage",
            "--kind",
            "latency",
            "--latency-ms",
            "400",
            "--count",
            "1",
        ],
    );
    let started = Instant::now();
    batch(&seller, vec![record(at, "users", 2)]).await.unwrap();
    assert!(started.elapsed() >= Duration::from_millis(400));

    // Invalid rules are refused with the field named.
    let err = fails(
        &server,
        &[
            "faults",
            "add",
            "--operation",
            "MeterUsage",
            "--kind",
            "unprocessed",
        ],
    );
    assert!(err.contains("400") && err.contains("operation"), "{err}");
    let err = fails(
        &server,
        &[
            "faults",
            "add",
            "--kind",
            "throttling",
            "--probability",
            "2",
        ],
    );
    assert!(err.contains("probability"), "{err}");
    let err = fails(&server, &["faults", "add", "--kind", "explode"]);
    assert!(err.contains("400") && err.contains("kind"), "{err}");
}

#[tokio::test]
async fn aws_quotas_throttle_bursts_when_enabled() {
    let server = Server::start(&["--aws-quotas", "true"]);
    assert_eq!(ok(&server, &["quotas"])["enabled"], true);
    let buyer = sdk_client(&server.url, BUYER_EC2, "us-east-1");
    let burst = || async {
        let calls = (0..30).map(|_| {
            buyer
                .meter_usage()
                .product_code("e2e-ami")
                .timestamp(DateTime::from_secs(now_secs()))
                .usage_dimension("hosts")
                .usage_quantity(1)
                .dry_run(true)
                .send()
        });
        futures::future::join_all(calls)
            .await
            .into_iter()
            .map(|r| {
                r.unwrap_err()
                    .into_service_error()
                    .code()
                    .unwrap_or("<none>")
                    .to_string()
            })
            .collect::<Vec<_>>()
    };
    let codes = burst().await;
    let throttled = codes.iter().filter(|c| *c == "ThrottlingException").count();
    let passed = codes.iter().filter(|c| *c == "DryRunOperation").count();
    assert_eq!(throttled + passed, 30, "{codes:?}");
    assert!(
        passed >= 10,
        "the first second's quota of 10 passes: {codes:?}"
    );
    assert!(throttled >= 1, "{codes:?}");

    ok(&server, &["quotas", "off"]);
    let codes = burst().await;
    assert!(codes.iter().all(|c| c == "DryRunOperation"), "{codes:?}");
}

#[tokio::test]
async fn reset_clears_metering_state_for_a_fresh_test() {
    let server = Server::start(&[]);
    let seller = sdk_client(&server.url, SELLER, "us-east-1");
    let at = now_secs() - 60;
    batch(
        &seller,
        vec![record(at, "requests", 5), record(at, "users", 1)],
    )
    .await
    .unwrap();
    ok(
        &server,
        &[
            "create-registration-token",
            "--product-code",
            "e2e-saas",
            "--customer-aws-account-id",
            "444455556666",
        ],
    );
    assert!(fails(&server, &["reset"]).contains("--yes"));
    let deleted = ok(&server, &["reset", "--yes"])["deleted"].clone();
    assert_eq!(deleted["usage_records"], 2);
    assert_eq!(deleted["registration_tokens"], 1);
    assert!(server.usage_records("e2e-saas").is_empty());
    // The same records are new again (a different quantity is not a duplicate any more).
    let out = batch(&seller, vec![record(at, "requests", 7)])
        .await
        .unwrap();
    assert_eq!(
        out.results()[0].status(),
        Some(&UsageRecordResultStatus::Success)
    );
}

#[tokio::test]
async fn graceful_shutdown_finishes_requests_in_flight() {
    let server = Server::start(&[]);
    ok(
        &server,
        &[
            "faults",
            "add",
            "--operation",
            "BatchMeterUsage",
            "--kind",
            "latency",
            "--latency-ms",
            "1500",
        ],
    );
    let seller = sdk_client(&server.url, SELLER, "us-east-1");
    let in_flight =
        tokio::spawn(
            async move { batch(&seller, vec![record(now_secs() - 60, "requests", 1)]).await },
        );
    tokio::time::sleep(Duration::from_millis(500)).await;
    let status = tokio::task::spawn_blocking(move || server.terminate())
        .await
        .unwrap();
    assert!(status.success(), "{status}");
    let out = in_flight.await.unwrap().unwrap();
    assert_eq!(
        out.results()[0].status(),
        Some(&UsageRecordResultStatus::Success)
    );
}
