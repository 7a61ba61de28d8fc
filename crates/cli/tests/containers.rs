//! Container metering end to end: workloads call RegisterUsage with the Rust SDK on a manual
//! clock, are stopped through the CLI and the admin API, and their hours show in reports with
//! exact charges.

mod common;

use common::{cli, sdk_client, Server, BUYER_EC2};
use serde_json::{json, Value};

const PRODUCT: &str = "e2e-container";
const BUYER: &str = "444455556666";
const ECS: (&str, &str, Option<&str>) = ("ASIAE2EBUYERECS00001", "buyer-ecs-secret", None);
const ECS_TASK: &str =
    "arn:aws:ecs:us-east-1:444455556666:task/e2e/00000000000000000000000000000001";
const EKS: (&str, &str, Option<&str>) = ("ASIAE2EBUYEREKS00001", "buyer-eks-secret", None);
const EKS_POD: &str = "e2e-pod-1";

fn ok(out: std::process::Output) -> String {
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

fn admin(server: &Server, args: &[&str]) -> Value {
    serde_json::from_str(&ok(cli(server, "admin", args))).unwrap()
}

fn set_clock(server: &Server, now: &str) {
    let (status, body) = server.admin_call("PUT", "/admin/v1/clock", Some(json!({ "now": now })));
    assert_eq!(status, 200, "{body}");
}

async fn register(server: &Server, creds: (&str, &str, Option<&str>), region: &str) {
    sdk_client(&server.url, creds, region)
        .register_usage()
        .product_code(PRODUCT)
        .public_key_version(1)
        .nonce("n")
        .send()
        .await
        .unwrap();
}

fn report(server: &Server, args: &[&str]) -> String {
    let mut all = vec!["--product-code", PRODUCT];
    all.extend_from_slice(args);
    ok(cli(server, "report", &all))
}

fn json_report(server: &Server, args: &[&str]) -> Value {
    let mut all = args.to_vec();
    all.extend_from_slice(&["--format", "json"]);
    serde_json::from_str(&report(server, &all)).unwrap()
}

/// (period_start, quantity, records, estimated_charge) of the ContainerHours rows.
fn hours_rows(report: &Value) -> Vec<(String, String, u64, Value)> {
    report["rows"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["dimension"] == "ContainerHours")
        .map(|r| {
            (
                r["period_start"].as_str().unwrap().to_string(),
                r["quantity"].as_str().unwrap().to_string(),
                r["records"].as_u64().unwrap(),
                r["estimated_charge"].clone(),
            )
        })
        .collect()
}

fn row(start: &str, q: &str, records: u64, charge: &str) -> (String, String, u64, Value) {
    (start.into(), q.into(), records, json!(charge))
}

const DAY: [&str; 4] = [
    "--from",
    "2026-06-15T00:00:00Z",
    "--to",
    "2026-06-16T00:00:00Z",
];

#[tokio::test]
async fn registered_workloads_are_metered_hourly_until_stopped() {
    let server = Server::start(&["--clock", "manual"]);
    // Price the container hours: 0.12 per hour.
    admin(
        &server,
        &[
            "put-product",
            PRODUCT,
            "--seller",
            "111122223333",
            "--kind",
            "container",
            "--dimension",
            "vcpu",
            "--dimension",
            "ContainerHours:Hrs:0.12",
        ],
    );

    // 10:00 the ECS task registers; 10:15 the EKS pod (us-west-2).
    set_clock(&server, "2026-06-15T10:00:00Z");
    register(&server, ECS, "us-east-1").await;
    set_clock(&server, "2026-06-15T10:15:00Z");
    register(&server, EKS, "us-west-2").await;

    // 11:30: the task is stopped through the CLI, at now.
    set_clock(&server, "2026-06-15T11:30:00Z");
    let stopped = admin(
        &server,
        &[
            "stop-container",
            "--product-code",
            PRODUCT,
            "--resource-id",
            ECS_TASK,
        ],
    );
    assert_eq!(stopped["state"], "stopped");
    assert_eq!(stopped["run"], 1);
    assert_eq!(stopped["started_at"], "2026-06-15T10:00:00Z");
    assert_eq!(stopped["stopped_at"], "2026-06-15T11:30:00Z");
    assert_eq!(stopped["billed_hours"], "1.5");
    assert_eq!(stopped["customer_aws_account_id"], BUYER);
    assert_eq!(stopped["platform"], "ecs");

    // The pod through the admin API, 30 s after its start: billed the one-minute minimum.
    let stop = |resource: &str, at: Option<&str>| {
        server.admin_call(
            "POST",
            "/admin/v1/container-sessions/stop",
            Some(json!({"product_code": PRODUCT, "resource_id": resource, "at": at})),
        )
    };
    let (status, body) = stop(EKS_POD, Some("2026-06-15T11:30:01Z"));
    assert_eq!(status, 400, "after now: {body}");
    assert!(body["error"]["message"]
        .as_str()
        .unwrap()
        .starts_with("at:"));
    let (status, body) = stop(EKS_POD, Some("2026-06-15T10:14:59Z"));
    assert_eq!(status, 400, "before the start: {body}");
    assert!(body["error"]["message"]
        .as_str()
        .unwrap()
        .contains("before the run's start"));
    let (status, body) = stop(EKS_POD, Some("yesterday"));
    assert_eq!(status, 400, "{body}");
    let (status, pod) = stop(EKS_POD, Some("2026-06-15T10:15:30Z"));
    assert_eq!(status, 200, "{pod}");
    assert_eq!(pod["billed_hours"], "0.016667");
    assert_eq!(pod["region"], "us-west-2");
    let (status, body) = stop(EKS_POD, None);
    assert_eq!(status, 404, "stopped already: {body}");
    assert_eq!(body["error"]["code"], "NotFound");
    let (status, _) = stop(ECS_TASK, None);
    assert_eq!(status, 404);
    let (status, body) = server.admin_call(
        "POST",
        "/admin/v1/container-sessions/stop",
        Some(json!({"product_code": "no-such", "resource_id": ECS_TASK})),
    );
    assert_eq!(status, 404);
    assert!(body["error"]["message"]
        .as_str()
        .unwrap()
        .contains("does not exist"));
    let (status, body) = server.admin_call(
        "POST",
        "/admin/v1/container-sessions/stop",
        Some(json!({"product_code": PRODUCT})),
    );
    assert_eq!(status, 400, "{body}");
    assert!(body["error"]["message"]
        .as_str()
        .unwrap()
        .contains("resource_id"));

    // 12:00 the same task registers again: a second run, billed from then on.
    set_clock(&server, "2026-06-15T12:00:00Z");
    register(&server, ECS, "us-east-1").await;
    set_clock(&server, "2026-06-15T12:45:00Z");

    // MeterUsage may not meter the hours the service meters.
    let err = sdk_client(&server.url, ECS, "us-east-1")
        .meter_usage()
        .product_code(PRODUCT)
        .timestamp(aws_smithy_types::DateTime::from_secs(1_781_527_500))
        .usage_dimension("ContainerHours")
        .usage_quantity(1)
        .send()
        .await
        .unwrap_err();
    assert!(err
        .into_service_error()
        .is_invalid_usage_dimension_exception());

    // Listings: by state (CLI), product and customer (API).
    let running = admin(&server, &["containers", "--state", "running"]);
    let running = running["sessions"].as_array().unwrap();
    assert_eq!(running.len(), 1, "{running:?}");
    assert_eq!(running[0]["resource_id"], ECS_TASK);
    assert_eq!(running[0]["run"], 2);
    assert_eq!(running[0]["stopped_at"], Value::Null);
    assert_eq!(running[0]["billed_hours"], "0.75");
    let (status, all) = server.admin_call(
        "GET",
        &format!(
            "/admin/v1/container-sessions?product_code={PRODUCT}&customer_aws_account_id={BUYER}"
        ),
        None,
    );
    assert_eq!(status, 200);
    let runs: Vec<(&str, i64, &str)> = all["sessions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| {
            (
                s["resource_id"].as_str().unwrap(),
                s["run"].as_i64().unwrap(),
                s["state"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        runs,
        vec![
            (ECS_TASK, 1, "stopped"),
            (EKS_POD, 1, "stopped"),
            (ECS_TASK, 2, "running")
        ]
    );
    let (status, none) = server.admin_call(
        "GET",
        "/admin/v1/container-sessions?customer_aws_account_id=777766665555",
        None,
    );
    assert_eq!((status, none), (200, json!({"sessions": []})));
    let (status, body) =
        server.admin_call("GET", "/admin/v1/container-sessions?state=paused", None);
    assert_eq!(status, 400);
    assert!(body["error"]["message"].as_str().unwrap().contains("state"));

    // Hourly report: 10:00 has the task's whole hour and the pod's minute; 11:00 the task's
    // half hour; 12:00 the second run up to now (12:45). Charges are quantity × 0.12 exactly.
    let hourly = json_report(&server, &[&DAY[..], &["--period", "hour"]].concat());
    assert_eq!(
        hours_rows(&hourly),
        vec![
            row("2026-06-15T10:00:00Z", "1.016667", 2, "0.12200004"),
            row("2026-06-15T11:00:00Z", "0.5", 1, "0.06"),
            row("2026-06-15T12:00:00Z", "0.75", 1, "0.09"),
        ]
    );
    // A report ending at 12:00 leaves the running hour out.
    let until_noon = json_report(
        &server,
        &[
            "--from",
            "2026-06-15T00:00:00Z",
            "--to",
            "2026-06-15T12:00:00Z",
            "--period",
            "hour",
        ],
    );
    assert_eq!(hours_rows(&until_noon).len(), 2);
    // Daily and monthly, by customer: one row each with the sum of the hours.
    for period in ["day", "month"] {
        let r = json_report(
            &server,
            &[
                &DAY[..],
                &["--period", period, "--group-by", "customer,dimension"],
            ]
            .concat(),
        );
        let rows: Vec<&Value> = r["rows"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|r| r["dimension"] == "ContainerHours")
            .collect();
        assert_eq!(rows.len(), 1, "{r}");
        assert_eq!(rows[0]["customer"], BUYER);
        assert_eq!(rows[0]["quantity"], "2.266667");
        assert_eq!(rows[0]["records"], 4);
        assert_eq!(rows[0]["estimated_charge"], "0.27200004");
    }

    // The running hour keeps counting as the clock moves; a stop at a given time (CLI) ends it.
    set_clock(&server, "2026-06-15T12:50:00Z");
    let stopped = admin(
        &server,
        &[
            "stop-container",
            "--product-code",
            PRODUCT,
            "--resource-id",
            ECS_TASK,
            "--at",
            "2026-06-15T12:40:00Z",
        ],
    );
    assert_eq!(stopped["run"], 2);
    assert_eq!(stopped["billed_hours"], "0.666667");
    set_clock(&server, "2026-06-15T18:00:00Z");
    let csv = report(
        &server,
        &[
            &DAY[..],
            &[
                "--period",
                "day",
                "--group-by",
                "dimension",
                "--format",
                "csv",
            ],
        ]
        .concat(),
    );
    // 1 + 0.016667 + 0.5 + 0.666667 hours; × 0.12.
    assert!(
        csv.lines()
            .any(|l| l == "2026-06-15T00:00:00Z,ContainerHours,2.183334,4,0.26200008"),
        "{csv}"
    );
    let table = report(&server, &[&DAY[..], &["--group-by", "dimension"]].concat());
    assert!(table.contains("ContainerHours"), "{table}");
}

#[tokio::test]
async fn a_new_run_checks_entitlement_again_and_reset_clears_runs() {
    let server = Server::start(&["--clock", "manual"]);
    set_clock(&server, "2026-06-15T10:00:00Z");
    register(&server, ECS, "us-east-1").await;
    // Cancelled while running: the running task keeps registering (entitlement is checked on
    // a run's first call only).
    admin(&server, &["cancel-agreement", "agmt-e2e-container-buyer"]);
    register(&server, ECS, "us-east-1").await;
    // Once stopped, the next registration is a new run and is refused.
    set_clock(&server, "2026-06-15T11:00:00Z");
    admin(
        &server,
        &[
            "stop-container",
            "--product-code",
            PRODUCT,
            "--resource-id",
            ECS_TASK,
        ],
    );
    let err = sdk_client(&server.url, ECS, "us-east-1")
        .register_usage()
        .product_code(PRODUCT)
        .public_key_version(1)
        .send()
        .await
        .unwrap_err();
    assert!(err
        .into_service_error()
        .is_customer_not_entitled_exception());
    let runs = admin(&server, &["containers", "--product-code", PRODUCT]);
    assert_eq!(runs["sessions"].as_array().unwrap().len(), 1, "{runs}");
    // Without a price the hours are reported unpriced.
    let r = json_report(&server, &[&DAY[..], &["--period", "day"]].concat());
    assert_eq!(
        hours_rows(&r),
        vec![(
            "2026-06-15T00:00:00Z".to_string(),
            "1".to_string(),
            1,
            Value::Null
        )]
    );

    // An EC2 instance cannot register at all; nothing is recorded for it.
    let err = sdk_client(&server.url, BUYER_EC2, "us-east-1")
        .register_usage()
        .product_code(PRODUCT)
        .public_key_version(1)
        .send()
        .await
        .unwrap_err();
    assert!(err
        .into_service_error()
        .is_platform_not_supported_exception());

    let reset = admin(&server, &["reset", "--yes"]);
    assert_eq!(reset["deleted"]["container_sessions"], 1, "{reset}");
    let runs = admin(&server, &["containers"]);
    assert_eq!(runs["sessions"], json!([]));
}
