//! The seller catalog through `marketmeter admin ...` and the admin API, proven with the real
//! Rust SDK: what the catalog changes takes effect at once on the metering API.

mod common;

use aws_sdk_marketplacemetering as mm;
use aws_sdk_marketplacemetering::error::ProvideErrorMetadata;
use aws_sdk_marketplacemetering::types::{UsageRecord, UsageRecordResultStatus};
use aws_smithy_types::DateTime;
use common::{Server, ADMIN_TOKEN};
use serde_json::Value;
use std::process::Output;

const SELLER: &str = "123456789012";
const BUYER: &str = "444455556666";

fn admin(server: &Server, args: &[&str]) -> Output {
    common::cli(server, "admin", args)
}

fn ok(out: Output) -> Value {
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

fn refused(out: Output) -> String {
    assert!(
        !out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    String::from_utf8_lossy(&out.stderr).into_owned()
}

fn client(server: &Server, key: &Value) -> mm::Client {
    let credentials = aws_credential_types::Credentials::new(
        key["access_key_id"].as_str().unwrap(),
        key["secret_access_key"].as_str().unwrap(),
        key["session_token"].as_str().map(str::to_string),
        None,
        "catalog",
    );
    let conf = mm::Config::builder()
        .behavior_version(mm::config::BehaviorVersion::latest())
        .region(mm::config::Region::new("us-east-1"))
        .endpoint_url(&server.url)
        .credentials_provider(credentials)
        .http_client(aws_smithy_http_client::Builder::new().build_http())
        .build();
    mm::Client::from_conf(conf)
}

async fn meter(c: &mm::Client, license: &str, dimension: &str) -> Result<String, String> {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    let record = UsageRecord::builder()
        .timestamp(DateTime::from_secs(now - 60))
        .customer_aws_account_id(BUYER)
        .license_arn(license)
        .dimension(dimension)
        .quantity(3)
        .build()
        .unwrap();
    match c.batch_meter_usage().usage_records(record).send().await {
        Ok(out) => Ok(out.results()[0].status().unwrap().as_str().to_string()),
        Err(e) => Err(e.code().unwrap_or("<none>").to_string()),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_seller_from_nothing_to_metering_and_back() {
    let server = Server::start(&[]);

    // A seller, its product and a key, all from the command line.
    let account = ok(admin(
        &server,
        &["put-account", SELLER, "--name", "Initech"],
    ));
    assert_eq!(account["name"], "Initech");
    let product = ok(admin(
        &server,
        &[
            "put-product",
            "initech-saas",
            "--seller",
            SELLER,
            "--kind",
            "saas",
            "--dimension",
            "requests:count:0.0001",
            "--dimension",
            "users",
            "--fulfillment-url",
            "https://initech.example/register",
        ],
    ));
    assert_eq!(product["dimensions"][0]["price"], "0.0001");
    assert_eq!(product["new_signing_keys"], 0);
    let key = ok(admin(&server, &["create-access-key", "--account", SELLER]));
    let key_id = key["access_key_id"].as_str().unwrap().to_string();
    assert!(key_id.starts_with("AKIA"), "{key}");
    assert_eq!(key["secret_access_key"].as_str().unwrap().len(), 40);

    // The buyer subscribes: an agreement with a generated license.
    let agreement = ok(admin(
        &server,
        &[
            "put-agreement",
            "--product-code",
            "initech-saas",
            "--customer-aws-account-id",
            BUYER,
        ],
    ));
    let license = agreement["license_arn"].as_str().unwrap().to_string();
    let agreement_id = agreement["agreement_id"].as_str().unwrap().to_string();
    assert_eq!(agreement["status"], "active");
    assert_eq!(
        agreement["customer_identifier"], "cust-e2e-buyer",
        "a buyer keeps the identifier it already has"
    );

    // Metering works at once with the new key.
    let seller = client(&server, &key);
    assert_eq!(
        meter(&seller, &license, "requests").await.unwrap(),
        "Success"
    );

    // Cancelling the agreement takes effect at once; re-activating restores it.
    let cancelled = ok(admin(&server, &["cancel-agreement", &agreement_id]));
    assert_eq!(cancelled["status"], "cancelled");
    assert_eq!(
        meter(&seller, &license, "users").await.unwrap(),
        UsageRecordResultStatus::CustomerNotSubscribed.as_str()
    );
    ok(admin(&server, &["activate-agreement", &agreement_id]));
    assert_eq!(meter(&seller, &license, "users").await.unwrap(), "Success");

    // Listings never show secrets.
    let keys = ok(admin(&server, &["access-keys", "--account", SELLER]));
    assert_eq!(keys["access_keys"].as_array().unwrap().len(), 1);
    assert!(keys["access_keys"][0].get("secret_access_key").is_none());
    assert!(!keys
        .to_string()
        .contains(key["secret_access_key"].as_str().unwrap()));
    let customers = ok(admin(
        &server,
        &["customers", "--product-code", "initech-saas"],
    ));
    assert_eq!(customers["customers"][0]["customer_aws_account_id"], BUYER);
    assert_eq!(
        customers["customers"][0]["agreements"][0]["agreement_id"],
        agreement_id.as_str()
    );

    // Rotation: the new key works, the old one is refused at once; revocation likewise.
    let rotated = ok(admin(&server, &["rotate-access-key", &key_id]));
    assert_eq!(rotated["revoked"], key_id.as_str());
    let new_key = &rotated["access_key"];
    assert_eq!(
        meter(&seller, &license, "requests").await.unwrap_err(),
        "UnrecognizedClientException"
    );
    let seller = client(&server, new_key);
    assert_eq!(
        meter(&seller, &license, "requests").await.unwrap(),
        "Success"
    );
    ok(admin(
        &server,
        &[
            "revoke-access-key",
            new_key["access_key_id"].as_str().unwrap(),
        ],
    ));
    assert_eq!(
        meter(&seller, &license, "requests").await.unwrap_err(),
        "UnrecognizedClientException"
    );

    // A product with agreements and usage is kept; an unused one is deleted.
    let held = refused(admin(&server, &["delete-product", "initech-saas"]));
    assert!(
        held.contains("in use") && held.contains("1 agreements"),
        "{held}"
    );
    ok(admin(
        &server,
        &[
            "put-product",
            "initech-spare",
            "--seller",
            SELLER,
            "--kind",
            "container",
            "--dimension",
            "vcpu",
        ],
    ));
    let keys = ok(admin(&server, &["public-keys", "initech-spare"]));
    assert_eq!(
        keys["keys"][0]["version"], 1,
        "container products get a signing key"
    );
    ok(admin(&server, &["delete-product", "initech-spare"]));
    let products = ok(admin(&server, &["products", "--seller", SELLER]));
    let codes: Vec<&str> = products["products"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["code"].as_str().unwrap())
        .collect();
    assert_eq!(codes, ["initech-saas"]);
}

#[test]
fn invalid_input_is_refused_naming_the_field() {
    let server = Server::start(&[]);
    let cases: Vec<(Vec<&str>, &str)> = vec![
        (vec!["put-account", "12ab"], "must be digits"),
        (
            vec![
                "put-product",
                "x",
                "--seller",
                "999000999000",
                "--kind",
                "saas",
                "--dimension",
                "a",
            ],
            "999000999000 does not exist",
        ),
        (
            vec![
                "put-product",
                "x",
                "--seller",
                "111122223333",
                "--kind",
                "saas",
                "--dimension",
                "a::1e3",
            ],
            "dimensions[0].price",
        ),
        (
            vec![
                "put-product",
                "bad code",
                "--seller",
                "111122223333",
                "--kind",
                "saas",
                "--dimension",
                "a",
            ],
            "code",
        ),
        (
            vec![
                "put-product",
                "x",
                "--seller",
                "111122223333",
                "--kind",
                "mainframe",
                "--dimension",
                "a",
            ],
            "kind",
        ),
        (
            // The code belongs to another seller.
            vec![
                "put-product",
                "other-saas",
                "--seller",
                "111122223333",
                "--kind",
                "saas",
                "--dimension",
                "a",
            ],
            "another seller",
        ),
        (
            vec![
                "put-agreement",
                "--product-code",
                "nope",
                "--customer-aws-account-id",
                BUYER,
            ],
            "product nope does not exist",
        ),
        (
            vec![
                "put-agreement",
                "--product-code",
                "e2e-saas",
                "--customer-aws-account-id",
                BUYER,
                "--starts",
                "2026-02-01T00:00:00Z",
                "--ends",
                "2026-01-01T00:00:00Z",
            ],
            "ends must be after starts",
        ),
        (
            vec!["create-access-key", "--account", "999000999000"],
            "does not exist",
        ),
        (
            vec!["revoke-access-key", "AKIANOSUCHKEY0000000"],
            "does not exist",
        ),
        (vec!["cancel-agreement", "agmt-nope"], "does not exist"),
        (vec!["delete-product", "nope"], "does not exist"),
    ];
    for (args, expect) in cases {
        let err = refused(admin(&server, &args));
        assert!(err.contains(expect), "{args:?}: {err}");
        assert!(
            err.contains("400") || err.contains("404"),
            "{args:?}: {err}"
        );
    }

    // Unknown JSON fields and missing ones are named; no token, no catalog.
    let resp = ureq::put(&format!("{}/admin/v1/products/x", server.url))
        .header("Authorization", &format!("Bearer {ADMIN_TOKEN}"))
        .config()
        .http_status_as_error(false)
        .build()
        .send_json(serde_json::json!({"seller": "111122223333", "kind": "saas", "dimensions": [], "colour": "red"}))
        .unwrap();
    assert_eq!(resp.status(), 400);
    let body: Value = resp.into_body().read_json().unwrap();
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("colour"),
        "{body}"
    );
    for path in [
        "/admin/v1/accounts",
        "/admin/v1/products/e2e-saas",
        "/admin/v1/access-keys",
    ] {
        let resp = ureq::get(&format!("{}{path}", server.url))
            .config()
            .http_status_as_error(false)
            .build()
            .call()
            .unwrap();
        assert_eq!(resp.status(), 401, "{path}");
    }
}

#[test]
fn a_seed_file_applies_to_a_running_server() {
    let server = Server::start(&[]);
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("more.toml");
    std::fs::write(
        &file,
        r#"
[[accounts]]
id = "555500005555"
[[keys]]
account = "555500005555"
access_key_id = "AKIAAPPLIEDSEED00001"
secret_access_key = "applied-secret"
[[products]]
code = "applied-ami"
seller = "555500005555"
kind = "ami"
dimensions = [{ name = "hosts" }]
[[agreements]]
product = "applied-ami"
customer_account = "444455556666"
starts = 2026-01-01T00:00:00Z
"#,
    )
    .unwrap();
    let report = ok(admin(&server, &["apply-catalog", file.to_str().unwrap()]));
    assert_eq!(report["accounts"], 1);
    assert_eq!(report["agreements"], 1);
    let again = ok(admin(&server, &["apply-catalog", file.to_str().unwrap()]));
    assert_eq!(again, report, "applying twice changes nothing new");
    let agreements = ok(admin(
        &server,
        &["agreements", "--product-code", "applied-ami"],
    ));
    assert_eq!(agreements["agreements"].as_array().unwrap().len(), 1);
    assert_eq!(
        agreements["agreements"][0]["starts"],
        "2026-01-01T00:00:00Z"
    );

    std::fs::write(
        &file,
        "[[products]]\ncode = \"x\"\nseller = \"1\"\nkind = \"saas\"\n",
    )
    .unwrap();
    let err = refused(admin(&server, &["apply-catalog", file.to_str().unwrap()]));
    assert!(err.contains("not a valid seed"), "{err}");
}
