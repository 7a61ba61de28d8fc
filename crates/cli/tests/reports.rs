//! Usage reports end to end: records metered with the Rust SDK, reported through
//! `marketmeter report` (table, JSON, CSV) and the admin API.

mod common;

use aws_sdk_marketplacemetering::types::{Tag, UsageAllocation};
use aws_smithy_types::DateTime;
use common::{cli, license_record, sdk_client, Server, BUYER_EC2, SELLER};
use serde_json::Value;

fn report(server: &Server, args: &[&str]) -> std::process::Output {
    cli(server, "report", args)
}

fn stdout(out: std::process::Output) -> String {
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

fn allocation(quantity: i32, team: Option<&str>) -> UsageAllocation {
    let mut a = UsageAllocation::builder().allocated_usage_quantity(quantity);
    if let Some(t) = team {
        a = a.tags(Tag::builder().key("team").value(t).build().unwrap());
    }
    a.build().unwrap()
}

/// The servers' manual clock: mid-month, so that every period of a report (up to a month) holds
/// all of the usage whatever today's date is.
const NOW: &str = "2026-06-15T12:30:00Z";

/// A server whose metering clock stands at [`NOW`] (signatures still use the real time).
fn server_at_now() -> Server {
    let server = Server::start(&["--clock", "manual"]);
    let resp = ureq::put(&format!("{}/admin/v1/clock", server.url))
        .header("Authorization", &format!("Bearer {}", common::ADMIN_TOKEN))
        .send_json(serde_json::json!({ "now": NOW }))
        .unwrap();
    assert_eq!(resp.status(), 200);
    server
}

/// Meters: requests 12 (allocated 5 blue + 4 red + 3 untagged) and 30 an hour earlier,
/// storage_gb 7 (no price), and one MeterUsage host. Returns the range to report on.
async fn meter(server: &Server) -> (String, String) {
    let now = time::OffsetDateTime::parse(NOW, &time::format_description::well_known::Rfc3339)
        .unwrap()
        .unix_timestamp();
    let hour = now / 3600 * 3600;
    let record = license_record;
    let seller = sdk_client(&server.url, SELLER, "us-east-1");
    seller
        .batch_meter_usage()
        .product_code("e2e-saas")
        .usage_records(
            record(hour - 3600, "requests", 12)
                .usage_allocations(allocation(5, Some("blue")))
                .usage_allocations(allocation(4, Some("red")))
                .usage_allocations(allocation(3, None))
                .build()
                .unwrap(),
        )
        .usage_records(record(hour - 7200, "requests", 30).build().unwrap())
        .usage_records(record(hour - 3600, "storage_gb", 7).build().unwrap())
        .send()
        .await
        .unwrap();
    sdk_client(&server.url, BUYER_EC2, "us-east-1")
        .meter_usage()
        .product_code("e2e-ami")
        .timestamp(DateTime::from_secs(now - 60))
        .usage_dimension("hosts")
        .usage_quantity(1)
        .send()
        .await
        .unwrap();
    let iso = |t: i64| {
        time::OffsetDateTime::from_unix_timestamp(t)
            .unwrap()
            .format(&time::format_description::well_known::Rfc3339)
            .unwrap()
    };
    (iso(hour - 3 * 86400), iso(hour + 3600))
}

/// Sums a report's rows' `field` by the value of `by` (rows may split over periods).
fn sum(rows: &[Value], by: &str, field: &str) -> Vec<(String, String)> {
    let mut m: std::collections::BTreeMap<String, f64> = Default::default();
    for r in rows {
        let key = r[by].as_str().unwrap_or("-").to_string();
        *m.entry(key).or_default() += r[field].as_str().unwrap().parse::<f64>().unwrap();
    }
    m.into_iter().map(|(k, v)| (k, v.to_string())).collect()
}

#[tokio::test]
async fn reports_by_dimension_customer_and_tag_in_every_format() {
    let server = server_at_now();
    let (from, to) = meter(&server).await;

    // JSON by product and dimension: quantities, record counts and exact charges.
    let json: Value = serde_json::from_str(&stdout(report(
        &server,
        &[
            "--from",
            &from,
            "--to",
            &to,
            "--period",
            "month",
            "--group-by",
            "product,dimension",
            "--format",
            "json",
        ],
    )))
    .unwrap();
    let rows = json["rows"].as_array().unwrap();
    let requests: Vec<&Value> = rows
        .iter()
        .filter(|r| r["dimension"] == "requests")
        .collect();
    assert_eq!(requests.len(), 1, "{json}");
    assert_eq!(requests[0]["product_code"], "e2e-saas");
    assert_eq!(requests[0]["quantity"], "42");
    assert_eq!(requests[0]["records"], 2);
    // 42 × 0.0001, exactly.
    assert_eq!(requests[0]["estimated_charge"], "0.0042");
    let storage = rows
        .iter()
        .find(|r| r["dimension"] == "storage_gb")
        .unwrap();
    assert_eq!(storage["estimated_charge"], Value::Null, "no price");
    assert!(rows.iter().any(|r| r["product_code"] == "e2e-ami"));
    assert_eq!(json["totals"]["quantity"], "50");
    assert_eq!(json["totals"]["records"], 4);
    assert_eq!(json["totals"]["estimated_charge"], Value::Null);

    // One product, by customer: the license records and the EC2 workload are one buyer.
    let by_customer: Value = serde_json::from_str(&stdout(report(
        &server,
        &[
            "--from",
            &from,
            "--to",
            &to,
            "--period",
            "hour",
            "--group-by",
            "customer",
            "--format",
            "json",
        ],
    )))
    .unwrap();
    let rows = by_customer["rows"].as_array().unwrap();
    assert_eq!(
        sum(rows, "customer", "quantity"),
        vec![("444455556666".to_string(), "50".to_string())]
    );
    assert!(rows.iter().all(|r| r.get("product_code").is_none()));

    // By allocation tag: the tagged parts and the untagged rest.
    let by_team: Value = serde_json::from_str(&stdout(report(
        &server,
        &[
            "--from",
            &from,
            "--to",
            &to,
            "--group-by",
            "dimension",
            "--tag",
            "team",
            "--product-code",
            "e2e-saas",
            "--format",
            "json",
        ],
    )))
    .unwrap();
    let requests: Vec<Value> = by_team["rows"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["dimension"] == "requests")
        .cloned()
        .collect();
    assert_eq!(
        sum(&requests, "tag_value", "quantity"),
        vec![
            ("-".to_string(), "33".to_string()),
            ("blue".to_string(), "5".to_string()),
            ("red".to_string(), "4".to_string()),
        ]
    );

    // CSV: a header and one line per row.
    let csv = stdout(report(
        &server,
        &[
            "--from",
            &from,
            "--to",
            &to,
            "--period",
            "month",
            "--group-by",
            "dimension",
            "--product-code",
            "e2e-saas",
            "--format",
            "csv",
        ],
    ));
    let mut lines = csv.lines();
    assert_eq!(
        lines.next(),
        Some("period_start,dimension,quantity,records,estimated_charge")
    );
    let body: Vec<&str> = lines.collect();
    assert!(
        body.iter().any(|l| l.ends_with(",requests,42,2,0.0042")),
        "{csv}"
    );
    assert!(
        body.iter().any(|l| l.ends_with(",storage_gb,7,1,")),
        "{csv}"
    );

    // To a file.
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("usage.csv");
    stdout(report(
        &server,
        &[
            "--from",
            &from,
            "--to",
            &to,
            "--period",
            "month",
            "--group-by",
            "dimension",
            "--product-code",
            "e2e-saas",
            "--format",
            "csv",
            "--output",
            file.to_str().unwrap(),
        ],
    ));
    assert_eq!(std::fs::read_to_string(&file).unwrap(), csv);

    // The table: aligned columns and a totals line.
    let table = stdout(report(
        &server,
        &[
            "--from",
            &from,
            "--to",
            &to,
            "--period",
            "month",
            "--group-by",
            "dimension",
            "--product-code",
            "e2e-saas",
        ],
    ));
    let lines: Vec<&str> = table.lines().collect();
    assert!(lines[0].starts_with("period_start"), "{table}");
    assert!(lines[0].contains("estimated_charge"), "{table}");
    let total = lines.last().unwrap();
    assert!(total.starts_with("total"), "{table}");
    assert!(total.contains(" 49 ") && total.contains(" 3"), "{table}");
}

#[tokio::test]
async fn long_ranges_stream_month_by_month_and_bad_input_names_the_field() {
    let server = server_at_now();
    let (_, to) = meter(&server).await;
    // Three years, one month at a time: only the months with usage have rows.
    let json: Value = serde_json::from_str(&stdout(report(
        &server,
        &[
            "--from",
            "2024-01-01",
            "--to",
            &to,
            "--period",
            "month",
            "--group-by",
            "",
            "--format",
            "json",
        ],
    )))
    .unwrap();
    let rows = json["rows"].as_array().unwrap();
    assert_eq!(rows.len(), 1, "{json}");
    assert_eq!(json["totals"]["quantity"], "50");
    assert_eq!(
        json["columns"],
        serde_json::json!(["period_start", "quantity", "records", "estimated_charge"])
    );

    for (args, field) in [
        (
            vec![
                "--from",
                "2026-01-01",
                "--to",
                "2026-02-01",
                "--period",
                "week",
            ],
            "period",
        ),
        (vec!["--from", "2026-02-01", "--to", "2026-01-01"], "to"),
        (
            vec![
                "--from",
                "2026-01-01",
                "--to",
                "2026-02-01",
                "--group-by",
                "region",
            ],
            "group_by",
        ),
        (vec!["--from", "2000-01-01", "--to", "2026-02-01"], "to"),
    ] {
        let out = report(&server, &args);
        assert!(!out.status.success(), "{args:?}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(
            err.contains("400") && err.contains(field),
            "{args:?}: {err}"
        );
    }
    let out = report(&server, &["--from", "January", "--to", "2026-02-01"]);
    assert!(String::from_utf8_lossy(&out.stderr).contains("--from"));

    // The admin API directly, with the token required.
    let unauthorized = ureq::get(&format!(
        "{}/admin/v1/reports/usage?from=2026-01-01T00:00:00Z&to=2026-02-01T00:00:00Z",
        server.url
    ))
    .call()
    .unwrap_err();
    assert!(matches!(unauthorized, ureq::Error::StatusCode(401)));
    let mut typo = ureq::get(&format!(
        "{}/admin/v1/reports/usage?from=2026-01-01T00:00:00Z&to=2026-02-01T00:00:00Z&perod=day",
        server.url
    ))
    .header("Authorization", &format!("Bearer {}", common::ADMIN_TOKEN))
    .config()
    .http_status_as_error(false)
    .build()
    .call()
    .unwrap();
    assert_eq!(typo.status(), 400);
    let err: Value = typo.body_mut().read_json().unwrap();
    assert_eq!(err["error"]["code"], "BadRequest");
    assert!(
        err["error"]["message"].as_str().unwrap().contains("perod"),
        "{err}"
    );
}
