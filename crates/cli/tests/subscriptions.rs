//! The SaaS subscribe flow end to end: the form POST to the seller's fulfillment URL, the token
//! it carries resolving through the real Rust SDK, SNS-style notifications to webhooks with
//! retries and a delivery log, unsubscribe, entitlement changes, failures.

mod common;

use aws_sdk_marketplacemetering as mm;
use aws_sdk_marketplacemetering::types::UsageRecord;
use aws_smithy_types::DateTime;
use common::{Receiver, Server, ADMIN_TOKEN};
use serde_json::{json, Value};
use std::time::{Duration, Instant};

const BUYER: &str = "444455556666";
const OTHER_BUYER: &str = "888877776666";

fn answer(path: &str, nth: usize) -> (u16, Option<&'static str>) {
    match path {
        "/register" => (302, Some("/welcome")),
        "/flaky" if nth == 0 => (500, None),
        "/dead" => (503, None),
        _ => (200, None),
    }
}

/// An admin API call: POST with a body, GET without.
fn call(server: &Server, path: &str, body: Option<Value>) -> (u16, Value) {
    let url = format!("{}{path}", server.url);
    let auth = format!("Bearer {ADMIN_TOKEN}");
    let resp = match body {
        Some(b) => ureq::post(&url)
            .header("Authorization", &auth)
            .config()
            .http_status_as_error(false)
            .build()
            .send_json(&b),
        None => ureq::get(&url)
            .header("Authorization", &auth)
            .config()
            .http_status_as_error(false)
            .build()
            .call(),
    }
    .unwrap();
    let status = resp.status().as_u16();
    (status, resp.into_body().read_json().unwrap_or(Value::Null))
}

fn seller(url: &str) -> mm::Client {
    let credentials = aws_credential_types::Credentials::new(
        "AKIAE2ESELLER0000001",
        "seller-secret",
        None,
        None,
        "subscriptions",
    );
    mm::Client::from_conf(
        mm::Config::builder()
            .behavior_version(mm::config::BehaviorVersion::latest())
            .region(mm::config::Region::new("us-east-1"))
            .endpoint_url(url)
            .credentials_provider(credentials)
            .http_client(aws_smithy_http_client::Builder::new().build_http())
            .build(),
    )
}

/// Waits (bounded) until the delivery log has `n` entries in a final state.
fn settled_deliveries(server: &Server, n: usize) -> Vec<Value> {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let (_, log) = call(server, "/admin/v1/notifications", None);
        let all = log["deliveries"].as_array().unwrap().clone();
        if all.len() >= n && all.iter().all(|d| d["status"] != "pending") {
            return all;
        }
        assert!(
            Instant::now() < deadline,
            "deliveries did not settle: {all:?}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn message(d: &common::Received) -> Value {
    let envelope: Value = serde_json::from_str(&d.body).unwrap();
    serde_json::from_str(envelope["Message"].as_str().unwrap()).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn subscribe_meter_unsubscribe_with_notifications() {
    let site = Receiver::start(answer);
    let (hook, flaky, dead) = (
        format!("{}/hook", site.url),
        format!("{}/flaky", site.url),
        format!("{}/dead", site.url),
    );
    let server = Server::start(&[
        "--webhook",
        &hook,
        "--webhook",
        &flaky,
        "--webhook",
        &dead,
        "--webhook-attempts",
        "2",
    ]);
    let product = json!({"seller": "111122223333", "kind": "saas",
        "fulfillment_url": format!("{}/register", site.url), "dimensions": [{"name": "requests"}]});
    let resp = ureq::put(&format!("{}/admin/v1/products/sub-saas", server.url))
        .header("Authorization", &format!("Bearer {ADMIN_TOKEN}"))
        .send_json(&product)
        .unwrap();
    assert_eq!(resp.status(), 200);

    // Subscribe with a free trial: agreement, token, the form POST, the seller's answer.
    let (status, sub) = call(
        &server,
        "/admin/v1/subscriptions",
        Some(
            json!({"product_code": "sub-saas", "customer_aws_account_id": BUYER,
            "offer_type": "free-trial"}),
        ),
    );
    assert_eq!(status, 201, "{sub}");
    assert_eq!(sub["subscribed"], true);
    assert_eq!(sub["agreement"]["status"], "active");
    assert_eq!(sub["fulfillment"]["status"], 302);
    assert_eq!(sub["fulfillment"]["location"], "/welcome");
    assert_eq!(sub["fulfillment"]["body"], "<html>welcome</html>");
    let token = sub["registration_token"].as_str().unwrap();
    let posted = site.requests("/register");
    assert_eq!(posted.len(), 1);
    assert_eq!(posted[0].method, "POST");
    assert_eq!(
        posted[0].header("content-type"),
        Some("application/x-www-form-urlencoded")
    );
    let form: Vec<(String, String)> = posted[0]
        .body
        .split('&')
        .map(|kv| {
            let (k, v) = kv.split_once('=').unwrap();
            (k.to_string(), v.to_string())
        })
        .collect();
    assert_eq!(
        form,
        [
            ("x-amzn-marketplace-token".to_string(), token.to_string()),
            ("x-amzn-marketplace-offer-type".into(), "free-trial".into())
        ]
    );

    // The posted token resolves to the buyer, through the real SDK.
    let endpoint_client = seller(&server.url);
    let resolved = endpoint_client
        .resolve_customer()
        .registration_token(token)
        .send()
        .await
        .unwrap();
    assert_eq!(resolved.product_code(), Some("sub-saas"));
    assert_eq!(resolved.customer_aws_account_id(), Some(BUYER));
    let identifier = resolved.customer_identifier().unwrap().to_string();

    // Metering for the new agreement works.
    let license = sub["agreement"]["license_arn"]
        .as_str()
        .unwrap()
        .to_string();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    let meter = |dim: &'static str| {
        endpoint_client.batch_meter_usage().usage_records(
            UsageRecord::builder()
                // The agreement starts when the buyer subscribes: meter from then on.
                .timestamp(DateTime::from_secs(now + 1))
                .customer_aws_account_id(BUYER)
                .license_arn(&license)
                .dimension(dim)
                .quantity(1)
                .build()
                .unwrap(),
        )
    };
    let out = meter("requests").send().await.unwrap();
    assert_eq!(out.results()[0].status().unwrap().as_str(), "Success");

    // subscribe-success reached every webhook: at once, after one retry, or failed after two.
    let log = settled_deliveries(&server, 3);
    let by_url = |url: &str| log.iter().find(|d| d["url"] == url).unwrap().clone();
    assert_eq!(by_url(&hook)["status"], "delivered");
    assert_eq!(by_url(&hook)["attempts"], 1);
    assert_eq!(by_url(&flaky)["status"], "delivered");
    assert_eq!(by_url(&flaky)["attempts"], 2);
    assert_eq!(by_url(&dead)["status"], "failed");
    assert_eq!(by_url(&dead)["attempts"], 2);
    assert_eq!(by_url(&dead)["last_status_code"], 503);
    let got = &site.requests("/hook")[0];
    assert_eq!(got.header("x-amz-sns-message-type"), Some("Notification"));
    assert_eq!(
        got.header("x-amz-sns-message-id"),
        by_url(&hook)["message_id"].as_str()
    );
    let m = message(got);
    assert_eq!(m["action"], "subscribe-success");
    assert_eq!(m["customer-identifier"], identifier.as_str());
    assert_eq!(m["product-code"], "sub-saas");
    assert_eq!(m["isFreeTrialTermPresent"], "true");
    assert_eq!(site.requests("/flaky").len(), 2, "retried once");

    // Entitlement changes are announced on the entitlement topic.
    let agreement_id = sub["agreement"]["agreement_id"].as_str().unwrap();
    call(
        &server,
        &format!("/admin/v1/agreements/{agreement_id}/expire"),
        Some(json!({})),
    );
    call(
        &server,
        &format!("/admin/v1/agreements/{agreement_id}/activate"),
        Some(json!({})),
    );
    settled_deliveries(&server, 9);
    let hooks = site.requests("/hook");
    let entitlement: Vec<Value> = hooks.iter().skip(1).map(message).collect();
    assert_eq!(entitlement.len(), 2);
    assert!(entitlement
        .iter()
        .all(|m| m["action"] == "entitlement-updated"));
    let envelope: Value = serde_json::from_str(&hooks[1].body).unwrap();
    assert!(envelope["TopicArn"]
        .as_str()
        .unwrap()
        .ends_with(":aws-mp-entitlement-notification-sub-saas"));

    // Unsubscribe: pending then success, and metering for it stops.
    let (status, unsub) = call(
        &server,
        "/admin/v1/subscriptions/cancel",
        Some(json!({"product_code": "sub-saas", "customer_aws_account_id": BUYER})),
    );
    assert_eq!(status, 200, "{unsub}");
    assert_eq!(unsub["agreement"]["status"], "cancelled");
    assert_eq!(unsub["notifications"].as_array().unwrap().len(), 2);
    settled_deliveries(&server, 15);
    let actions: Vec<String> = site
        .requests("/hook")
        .iter()
        .skip(3)
        .map(|r| message(r)["action"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(actions, ["unsubscribe-pending", "unsubscribe-success"]);
    let out = meter("requests").send().await.unwrap();
    assert_eq!(
        out.results()[0].status().unwrap().as_str(),
        "CustomerNotSubscribed"
    );

    // Subscribing again re-activates the same agreement.
    let (status, again) = call(
        &server,
        "/admin/v1/subscriptions",
        Some(json!({"product_code": "sub-saas", "customer_aws_account_id": BUYER})),
    );
    assert_eq!(status, 201);
    assert_eq!(again["agreement"]["agreement_id"], agreement_id);
    assert_eq!(again["agreement"]["status"], "active");
    let last_form = &site.requests("/register")[1].body;
    assert!(!last_form.contains("free-trial"), "{last_form}");
}

#[test]
fn failed_and_unreachable_subscriptions() {
    let site = Receiver::start(answer);
    let hook = format!("{}/hook", site.url);
    let server = Server::start(&["--webhook", &hook]);

    // A failed subscription activates nothing and announces subscribe-fail.
    let (status, sub) = call(
        &server,
        "/admin/v1/subscriptions",
        Some(
            json!({"product_code": "e2e-saas", "customer_aws_account_id": OTHER_BUYER,
            "fail": true}),
        ),
    );
    assert_eq!(status, 200, "{sub}");
    assert_eq!(sub["subscribed"], false);
    assert_eq!(sub["registration_token"], Value::Null);
    let (_, agreements) = call(
        &server,
        &format!("/admin/v1/agreements?customer_aws_account_id={OTHER_BUYER}"),
        None,
    );
    assert!(agreements["agreements"].as_array().unwrap().is_empty());
    settled_deliveries(&server, 1);
    assert_eq!(
        message(&site.requests("/hook")[0])["action"],
        "subscribe-fail"
    );

    // The seed's fulfillment URL (port 9) is unreachable: the subscription still happens and
    // the answer says why the seller's site was not reached.
    let (status, sub) = call(
        &server,
        "/admin/v1/subscriptions",
        Some(json!({"product_code": "e2e-saas", "customer_aws_account_id": OTHER_BUYER})),
    );
    assert_eq!(status, 201, "{sub}");
    assert_eq!(sub["fulfillment"]["status"], Value::Null);
    assert!(sub["fulfillment"]["error"].is_string(), "{sub}");

    // Bad requests name what is wrong.
    for (body, expect) in [
        (
            json!({"product_code": "e2e-ami", "customer_aws_account_id": BUYER}),
            "for SaaS products",
        ),
        (
            json!({"product_code": "e2e-saas", "customer_aws_account_id": BUYER, "offer_type": "gold"}),
            "offer_type",
        ),
        (
            json!({"product_code": "nope", "customer_aws_account_id": BUYER}),
            "does not exist",
        ),
        (
            json!({"product_code": "e2e-saas"}),
            "customer_aws_account_id",
        ),
    ] {
        let (status, err) = call(&server, "/admin/v1/subscriptions", Some(body));
        assert!(status == 400 || status == 404, "{status} {err}");
        assert!(
            err["error"]["message"].as_str().unwrap().contains(expect),
            "{err}"
        );
    }
    let (status, _) = call(
        &server,
        "/admin/v1/subscriptions/cancel",
        Some(json!({"product_code": "e2e-saas", "customer_aws_account_id": "121212121212"})),
    );
    assert_eq!(status, 404);
}
