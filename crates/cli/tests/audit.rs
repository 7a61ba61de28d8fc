//! The audit trail end to end with the real Rust SDK: every metering call (accepted, partial,
//! refused, forged, invalid, faulted) appears exactly once with the right outcome, error code,
//! account, key id and request id; the admin API filters and pages it, the export streams it
//! as JSON lines and CSV, `marketmeter audit` prints and exports it; a reset keeps it; and no
//! secret (secret key, session token, signature, registration token) appears anywhere in it.
//! The metering clock is manual (fixed times: no month boundary can split the test).

mod common;

use aws_sdk_marketplacemetering::error::ProvideErrorMetadata;
use aws_sdk_marketplacemetering::operation::RequestId;
use aws_sdk_marketplacemetering::types::{UsageRecord, UsageRecordResultStatus};
use aws_smithy_types::DateTime;
use common::{cli, license_record, sdk_client, Server, ADMIN_TOKEN, BUYER_EC2, SELLER};
use serde_json::{json, Value};
use std::collections::HashMap;

/// The metering clock's time; every event of the first part is at it.
const NOW: &str = "2026-06-15T12:30:00Z";
/// After `advance 1h`.
const LATER: &str = "2026-06-15T13:30:00Z";
const NOW_SECS: i64 = 1_781_526_600;

fn get_text(server: &Server, path: &str) -> String {
    ureq::get(&format!("{}{path}", server.url))
        .header("Authorization", &format!("Bearer {ADMIN_TOKEN}"))
        .call()
        .unwrap()
        .body_mut()
        .read_to_string()
        .unwrap()
}

/// What a call's event must say: (operation, outcome, error code, account, access key id).
type Expected = (
    &'static str,
    &'static str,
    Option<&'static str>,
    Option<&'static str>,
    &'static str,
);

fn record(at: i64, dimension: &str, quantity: i32) -> UsageRecord {
    license_record(at, dimension, quantity).build().unwrap()
}

/// Every event, oldest first (all pages).
fn events(server: &Server, query: &str) -> Vec<Value> {
    let mut all = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let mut path = format!("/admin/v1/audit?limit=3{query}");
        if let Some(c) = &cursor {
            path.push_str(&format!("&cursor={c}"));
        }
        let (status, page) = server.admin_call("GET", &path, None);
        assert_eq!(status, 200, "{page}");
        all.extend(page["events"].as_array().unwrap().iter().cloned());
        match page["next_cursor"].as_str() {
            Some(c) => cursor = Some(c.to_string()),
            None => return all,
        }
    }
}

/// The secrets of every credential the test used, and the token it resolved.
fn assert_no_secret(what: &str, text: &str, token: &str) {
    for secret in [
        "seller-secret",
        "buyer-ec2-secret",
        "buyer-ec2-session-token",
        "not-the-secret",
        token,
        "AWS4-HMAC-SHA256",
        "Signature=",
        "Credential=",
    ] {
        assert!(!text.contains(secret), "{what} contains {secret:?}");
    }
    // A SigV4 signature is 64 hex digits: the only such runs allowed are token digests.
    let bytes = text.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        let run = bytes[i..]
            .iter()
            .take_while(|b| b.is_ascii_hexdigit())
            .count();
        if run >= 64 {
            assert!(
                text[..i].ends_with("sha256:"),
                "{what}: a 64-hex value that is not a token digest at {i}: {}",
                &text[i.saturating_sub(80)..(i + 70).min(text.len())]
            );
        }
        i += run.max(1);
    }
}

#[tokio::test]
async fn every_call_is_audited_once_and_secrets_never_are() {
    let server = Server::start(&["--clock", "manual"]);
    let (status, _) = server.admin_call("PUT", "/admin/v1/clock", Some(json!({ "now": NOW })));
    assert_eq!(status, 200);
    let seller = sdk_client(&server.url, SELLER, "us-east-1");
    let hour = NOW_SECS / 3600 * 3600;
    let mut expected: HashMap<String, Expected> = HashMap::new();

    // 1. A successful BatchMeterUsage.
    let out = seller
        .batch_meter_usage()
        .product_code("e2e-saas")
        .usage_records(record(hour - 3600, "requests", 5))
        .send()
        .await
        .unwrap();
    assert_eq!(
        out.results()[0].status(),
        Some(&UsageRecordResultStatus::Success)
    );
    let seller_key = SELLER.0;
    expected.insert(
        out.request_id().unwrap().to_string(),
        (
            "BatchMeterUsage",
            "success",
            None,
            Some("111122223333"),
            seller_key,
        ),
    );

    // 2. A partial one: an injected fault sends every record back unprocessed.
    let (status, _) = server.admin_call(
        "POST",
        "/admin/v1/faults",
        Some(json!({"operation": "BatchMeterUsage", "kind": "unprocessed", "count": 1})),
    );
    assert_eq!(status, 201);
    let out = seller
        .batch_meter_usage()
        .product_code("e2e-saas")
        .usage_records(record(hour - 3600, "users", 2))
        .send()
        .await
        .unwrap();
    assert_eq!(out.unprocessed_records().len(), 1);
    expected.insert(
        out.request_id().unwrap().to_string(),
        (
            "BatchMeterUsage",
            "partial",
            None,
            Some("111122223333"),
            seller_key,
        ),
    );

    // 3. A validation error (a dimension longer than the model allows).
    let err = seller
        .batch_meter_usage()
        .product_code("e2e-saas")
        .usage_records(record(hour - 3600, &"x".repeat(300), 1))
        .send()
        .await
        .unwrap_err();
    let id = err.request_id().unwrap().to_string();
    assert_eq!(err.into_service_error().code(), Some("ValidationException"));
    expected.insert(
        id,
        (
            "BatchMeterUsage",
            "error",
            Some("ValidationException"),
            Some("111122223333"),
            seller_key,
        ),
    );

    // 4. A forged signature: the seller's key signed with the wrong secret.
    let forged = sdk_client(&server.url, (SELLER.0, "not-the-secret", None), "us-east-1");
    let err = forged
        .batch_meter_usage()
        .product_code("e2e-saas")
        .usage_records(record(hour - 3600, "requests", 9))
        .send()
        .await
        .unwrap_err();
    let id = err.request_id().unwrap().to_string();
    assert_eq!(
        err.into_service_error().code(),
        Some("InvalidSignatureException")
    );
    expected.insert(
        id,
        (
            "BatchMeterUsage",
            "error",
            Some("InvalidSignatureException"),
            Some("111122223333"),
            seller_key,
        ),
    );

    // 5. An unknown access key: no account.
    let stranger = sdk_client(
        &server.url,
        ("AKIAUNKNOWN000000001", "x", None),
        "eu-west-1",
    );
    let err = stranger
        .resolve_customer()
        .registration_token("whatever")
        .send()
        .await
        .unwrap_err();
    let id = err.request_id().unwrap().to_string();
    assert_eq!(
        err.into_service_error().code(),
        Some("UnrecognizedClientException")
    );
    expected.insert(
        id,
        (
            "ResolveCustomer",
            "error",
            Some("UnrecognizedClientException"),
            None,
            "AKIAUNKNOWN000000001",
        ),
    );

    // The clock moves on: the calls below are an hour later.
    let (status, _) = server.admin_call(
        "POST",
        "/admin/v1/clock/advance",
        Some(json!({"seconds": 3600})),
    );
    assert_eq!(status, 200);

    // 6. MeterUsage stored, then a duplicate (same hour, other quantity).
    let ec2 = sdk_client(&server.url, BUYER_EC2, "us-east-1");
    let meter = |q: i32| {
        ec2.meter_usage()
            .product_code("e2e-ami")
            .timestamp(DateTime::from_secs(hour))
            .usage_dimension("hosts")
            .usage_quantity(q)
    };
    let out = meter(2).send().await.unwrap();
    expected.insert(
        out.request_id().unwrap().to_string(),
        (
            "MeterUsage",
            "success",
            None,
            Some("444455556666"),
            BUYER_EC2.0,
        ),
    );
    let err = meter(3).send().await.unwrap_err();
    let id = err.request_id().unwrap().to_string();
    assert_eq!(
        err.into_service_error().code(),
        Some("DuplicateRequestException")
    );
    expected.insert(
        id,
        (
            "MeterUsage",
            "error",
            Some("DuplicateRequestException"),
            Some("444455556666"),
            BUYER_EC2.0,
        ),
    );

    // 7. An injected throttle.
    let (status, _) = server.admin_call(
        "POST",
        "/admin/v1/faults",
        Some(json!({"operation": "MeterUsage", "kind": "throttling", "count": 1})),
    );
    assert_eq!(status, 201);
    let err = meter(2).send().await.unwrap_err();
    let id = err.request_id().unwrap().to_string();
    assert_eq!(err.into_service_error().code(), Some("ThrottlingException"));
    expected.insert(
        id,
        (
            "MeterUsage",
            "error",
            Some("ThrottlingException"),
            Some("444455556666"),
            BUYER_EC2.0,
        ),
    );

    // 8. ResolveCustomer of a fresh registration token.
    let (status, minted) = server.admin_call(
        "POST",
        "/admin/v1/registration-tokens",
        Some(json!({"product_code": "e2e-saas", "customer_aws_account_id": "444455556666"})),
    );
    assert_eq!(status, 201);
    let token = minted["registration_token"].as_str().unwrap().to_string();
    let out = seller
        .resolve_customer()
        .registration_token(&token)
        .send()
        .await
        .unwrap();
    expected.insert(
        out.request_id().unwrap().to_string(),
        (
            "ResolveCustomer",
            "success",
            None,
            Some("111122223333"),
            seller_key,
        ),
    );

    // Each call exactly once, as answered.
    let all = events(&server, "");
    assert_eq!(all.len(), expected.len(), "{all:#?}");
    for e in &all {
        let id = e["request_id"].as_str().unwrap();
        let (op, outcome, code, account, key) = expected
            .get(id)
            .unwrap_or_else(|| panic!("unexpected event {e}"));
        assert_eq!(e["operation"], *op, "{e}");
        assert_eq!(e["outcome"], *outcome, "{e}");
        assert_eq!(e["error_code"].as_str(), *code, "{e}");
        assert_eq!(e["account"].as_str(), *account, "{e}");
        assert_eq!(e["access_key_id"], *key, "{e}");
        assert_eq!(e["source_ip"], "127.0.0.1", "{e}");
        assert!(
            e["user_agent"].as_str().unwrap().contains("aws-sdk-rust"),
            "{e}"
        );
    }
    let by_id = |id: &str| all.iter().find(|e| e["request_id"] == id).unwrap().clone();
    let stranger_event = all
        .iter()
        .find(|e| e["access_key_id"] == "AKIAUNKNOWN000000001")
        .unwrap();
    assert_eq!(stranger_event["region"], "eu-west-1");
    assert_eq!(all[0]["time"], NOW);
    assert_eq!(all.last().unwrap()["time"], LATER);
    // Parameters are the request as decoded; the registration token only as its digest.
    assert_eq!(all[0]["request_parameters"]["ProductCode"], "e2e-saas");
    assert_eq!(
        all[0]["request_parameters"]["UsageRecords"][0]["Dimension"],
        "requests"
    );
    let resolved = by_id(out.request_id().unwrap());
    let digest = resolved["request_parameters"]["RegistrationToken"]
        .as_str()
        .unwrap();
    assert!(
        digest.starts_with("sha256:") && digest.len() == 7 + 64,
        "{digest}"
    );

    // Filters: operation, account, time range, and all three.
    let ops = |q: &str| -> Vec<String> {
        events(&server, q)
            .iter()
            .map(|e| e["operation"].as_str().unwrap().to_string())
            .collect()
    };
    assert_eq!(ops("&operation=MeterUsage"), ["MeterUsage"; 3]);
    assert_eq!(
        ops("&account=444455556666"),
        ["MeterUsage"; 3],
        "the buyer made the MeterUsage calls"
    );
    assert_eq!(ops(&format!("&to={NOW_SECS_PLUS_1}")).len(), 5);
    assert_eq!(
        ops("&from=2026-06-15T13:00:00Z&operation=ResolveCustomer&account=111122223333"),
        ["ResolveCustomer"]
    );
    for (query, field) in [
        ("?operation=Nope", "operation"),
        ("?from=yesterday", "from"),
        ("?limit=0", "limit"),
        ("?cursor=abc", "cursor"),
        ("?colour=red", "colour"),
    ] {
        let (status, body) = server.admin_call("GET", &format!("/admin/v1/audit{query}"), None);
        assert_eq!(status, 400, "{query}");
        assert!(
            body["error"]["message"].as_str().unwrap().contains(field),
            "{query}: {body}"
        );
    }

    // The export: JSON lines and CSV, the same events in the same order.
    let jsonl = get_text(&server, "/admin/v1/audit/export");
    let lines: Vec<Value> = jsonl
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines, all);
    let csv_text = get_text(
        &server,
        "/admin/v1/audit/export?format=csv&operation=MeterUsage",
    );
    let mut rd = csv::Reader::from_reader(csv_text.as_bytes());
    let header: Vec<String> = rd.headers().unwrap().iter().map(str::to_string).collect();
    assert_eq!(header[..3], ["seq", "time", "operation"]);
    let rows: Vec<csv::StringRecord> = rd.records().map(Result::unwrap).collect();
    assert_eq!(rows.len(), 3);
    let col = |name: &str| header.iter().position(|h| h == name).unwrap();
    assert!(rows.iter().all(|r| &r[col("operation")] == "MeterUsage"));
    assert_eq!(&rows[1][col("error_code")], "DuplicateRequestException");
    let params: Value = serde_json::from_str(&rows[0][col("request_parameters")]).unwrap();
    assert_eq!(params["UsageDimension"], "hosts");

    // The CLI: a table, and an export to a file.
    let out = cli(&server, "audit", &["list", "--operation", "MeterUsage"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let table = String::from_utf8(out.stdout).unwrap();
    let table_lines: Vec<&str> = table.lines().collect();
    assert!(table_lines[0].starts_with("seq") && table_lines[0].contains("outcome"));
    assert_eq!(table_lines.len(), 4, "{table}");
    assert!(
        table_lines[2].contains("DuplicateRequestException"),
        "{table}"
    );
    let out = cli(&server, "audit", &["list", "--limit", "2"]);
    assert!(String::from_utf8_lossy(&out.stderr).contains("--cursor"));
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("audit.csv");
    let out = cli(
        &server,
        "audit",
        &[
            "export",
            "--format",
            "csv",
            "--from",
            "2026-06-15",
            "--output",
            file.to_str().unwrap(),
        ],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let exported = std::fs::read_to_string(&file).unwrap();
    assert_eq!(exported.lines().count(), 1 + all.len());
    let out = cli(&server, "audit", &["export", "--account", "444455556666"]);
    assert!(out.status.success());
    assert_eq!(String::from_utf8(out.stdout).unwrap().lines().count(), 3);

    // No secret anywhere: the page, both exports, the CLI table.
    for (what, text) in [
        ("list", serde_json::to_string(&all).unwrap()),
        ("jsonl export", jsonl),
        (
            "csv export",
            get_text(&server, "/admin/v1/audit/export?format=csv"),
        ),
        ("csv file", exported),
        ("table", table),
    ] {
        assert_no_secret(what, &text, &token);
    }

    // A reset clears metering state and keeps the trail.
    let (status, _) = server.admin_call("POST", "/admin/v1/reset", None);
    assert_eq!(status, 200);
    assert!(server.usage_records("e2e-saas").is_empty());
    assert_eq!(events(&server, "").len(), expected.len());
}

/// `to` just after the first part's calls (all at [`NOW`]), before the clock moved on.
const NOW_SECS_PLUS_1: &str = "2026-06-15T12:30:01Z";

/// RegisterUsage records its first call with the session it stores and later calls on their
/// own; a MeterUsage dry run and a request naming no operation are recorded as answered.
#[tokio::test]
async fn registrations_dry_runs_and_unknown_operations_are_audited() {
    let server = Server::start(&["--clock", "manual"]);
    let (status, _) = server.admin_call("PUT", "/admin/v1/clock", Some(json!({ "now": NOW })));
    assert_eq!(status, 200);
    let ecs = sdk_client(
        &server.url,
        ("ASIAE2EBUYERECS00001", "buyer-ecs-secret", None),
        "us-east-1",
    );
    let register = || {
        ecs.register_usage()
            .product_code("e2e-container")
            .public_key_version(1)
            .nonce("n-1")
    };
    let first = register().send().await.unwrap();
    let second = register().send().await.unwrap();
    let err = ecs
        .register_usage()
        .product_code("e2e-container")
        .public_key_version(7)
        .send()
        .await
        .unwrap_err();
    let refused = err.request_id().unwrap().to_string();
    assert_eq!(
        err.into_service_error().code(),
        Some("InvalidPublicKeyVersionException")
    );

    let ec2 = sdk_client(&server.url, BUYER_EC2, "us-east-1");
    let err = ec2
        .meter_usage()
        .product_code("e2e-ami")
        .timestamp(DateTime::from_secs(NOW_SECS - 60))
        .usage_dimension("hosts")
        .usage_quantity(1)
        .dry_run(true)
        .send()
        .await
        .unwrap_err();
    let dry = err.request_id().unwrap().to_string();
    assert_eq!(err.into_service_error().code(), Some("DryRunOperation"));

    let resp = ureq::Agent::from(
        ureq::Agent::config_builder()
            .http_status_as_error(false)
            .build(),
    )
    .post(&server.url)
    .header("X-Amz-Target", "AWSMPMeteringService.StealEverything")
    .header("Content-Type", "application/x-amz-json-1.1")
    .send("{}")
    .unwrap();
    let unknown = resp
        .headers()
        .get("x-amzn-RequestId")
        .unwrap()
        .to_str()
        .unwrap()
        .to_string();

    let all = events(&server, "");
    let got: Vec<(String, &str, &str, Option<&str>)> = all
        .iter()
        .map(|e| {
            (
                e["request_id"].as_str().unwrap().to_string(),
                e["operation"].as_str().unwrap(),
                e["outcome"].as_str().unwrap(),
                e["error_code"].as_str(),
            )
        })
        .collect();
    assert_eq!(
        got,
        [
            (
                first.request_id().unwrap().to_string(),
                "RegisterUsage",
                "success",
                None
            ),
            (
                second.request_id().unwrap().to_string(),
                "RegisterUsage",
                "success",
                None
            ),
            (
                refused,
                "RegisterUsage",
                "error",
                Some("InvalidPublicKeyVersionException")
            ),
            (dry, "MeterUsage", "error", Some("DryRunOperation")),
            (
                unknown,
                "Unknown",
                "error",
                Some("UnknownOperationException")
            ),
        ]
    );
    assert_eq!(all[0]["request_parameters"]["Nonce"], "n-1");
    assert_eq!(all[0]["account"], "444455556666");
    assert_eq!(all[3]["request_parameters"]["DryRun"], true);
    assert_eq!(all[4]["access_key_id"], Value::Null);
    // Only the dry run's check happened: nothing was stored for it.
    assert!(server.usage_records("e2e-ami").is_empty());
}
