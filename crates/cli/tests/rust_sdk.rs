//! The real `aws-sdk-marketplacemetering` crate against a spawned server: all four operations,
//! happy paths and the main errors.

mod common;

use aws_sdk_marketplacemetering as mm;
use aws_sdk_marketplacemetering::error::ProvideErrorMetadata;
use aws_sdk_marketplacemetering::types::{
    Tag, UsageAllocation, UsageRecord, UsageRecordResultStatus,
};
use aws_smithy_types::DateTime;
use common::Server;
use std::time::{SystemTime, UNIX_EPOCH};

const SELLER: (&str, &str, Option<&str>) = ("AKIAE2ESELLER0000001", "seller-secret", None);
const OTHER_SELLER: (&str, &str, Option<&str>) =
    ("AKIAE2EOTHERSELLER01", "other-seller-secret", None);
const BUYER_EC2: (&str, &str, Option<&str>) = (
    "ASIAE2EBUYEREC200001",
    "buyer-ec2-secret",
    Some("buyer-ec2-session-token"),
);
const BUYER_ECS: (&str, &str, Option<&str>) = ("ASIAE2EBUYERECS00001", "buyer-ecs-secret", None);
const NOSUB_EC2: (&str, &str, Option<&str>) = ("ASIAE2ENOSUBEC200001", "nosub-ec2-secret", None);
const LICENSE: &str = "arn:aws:license-manager::111122223333:license/l-e2e0saas0buyer";
const BUYER: &str = "444455556666";

fn client(server: &Server, creds: (&str, &str, Option<&str>), region: &str) -> mm::Client {
    common::sdk_client(&server.url, creds, region)
}

/// Whole hours ago, so each test meters its own hour.
fn hours_ago(h: i64) -> DateTime {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    DateTime::from_secs(now - h * 3600)
}

fn license_record(dimension: &str, quantity: i32, at: DateTime) -> UsageRecord {
    UsageRecord::builder()
        .timestamp(at)
        .customer_aws_account_id(BUYER)
        .license_arn(LICENSE)
        .dimension(dimension)
        .quantity(quantity)
        .build()
        .unwrap()
}

fn code<E: ProvideErrorMetadata>(e: &E) -> String {
    e.code().unwrap_or("<none>").to_string()
}

#[tokio::test]
async fn all_four_operations_with_the_rust_sdk() {
    let server = Server::start(&[]);
    let seller = client(&server, SELLER, "us-east-1");

    // BatchMeterUsage: stored, retried (same id), duplicate (different quantity).
    let at = hours_ago(1);
    let out = seller
        .batch_meter_usage()
        .usage_records(license_record("requests", 10, at))
        .send()
        .await
        .unwrap();
    let first = &out.results()[0];
    assert_eq!(first.status(), Some(&UsageRecordResultStatus::Success));
    let id = first.metering_record_id().unwrap().to_string();
    assert_eq!(first.usage_record().unwrap().license_arn(), Some(LICENSE));
    assert!(out.unprocessed_records().is_empty());

    let retry = seller
        .batch_meter_usage()
        .usage_records(license_record("requests", 10, at))
        .send()
        .await
        .unwrap();
    assert_eq!(retry.results()[0].metering_record_id(), Some(id.as_str()));
    assert_eq!(
        retry.results()[0].status(),
        Some(&UsageRecordResultStatus::Success)
    );

    let dup = seller
        .batch_meter_usage()
        .usage_records(license_record("requests", 11, at))
        .send()
        .await
        .unwrap();
    assert_eq!(
        dup.results()[0].status(),
        Some(&UsageRecordResultStatus::DuplicateRecord)
    );

    let stored: Vec<_> = server
        .usage_records("e2e-saas")
        .into_iter()
        .filter(|r| r["metering_record_id"] == id.as_str())
        .collect();
    assert_eq!(stored.len(), 1);
    assert_eq!(stored[0]["quantity"], "10");

    // Allocations with tags are stored.
    let alloc = UsageRecord::builder()
        .timestamp(hours_ago(2))
        .customer_aws_account_id(BUYER)
        .license_arn(LICENSE)
        .dimension("storage_gb")
        .quantity(5)
        .usage_allocations(
            UsageAllocation::builder()
                .allocated_usage_quantity(3)
                .tags(Tag::builder().key("team").value("red").build().unwrap())
                .build()
                .unwrap(),
        )
        .usage_allocations(
            UsageAllocation::builder()
                .allocated_usage_quantity(2)
                .build()
                .unwrap(),
        )
        .build()
        .unwrap();
    let out = seller
        .batch_meter_usage()
        .usage_records(alloc)
        .send()
        .await
        .unwrap();
    let aid = out.results()[0].metering_record_id().unwrap().to_string();
    let rec = server
        .usage_records("e2e-saas")
        .into_iter()
        .find(|r| r["metering_record_id"] == aid.as_str())
        .unwrap();
    assert_eq!(rec["allocations"][0]["tags"][0]["key"], "team");
    assert_eq!(rec["allocations"][1]["quantity"], "2");

    // Legacy identity: ProductCode + CustomerIdentifier.
    let legacy = UsageRecord::builder()
        .timestamp(hours_ago(1))
        .customer_identifier("cust-e2e-buyer")
        .dimension("requests")
        .quantity(10)
        .build()
        .unwrap();
    let out = seller
        .batch_meter_usage()
        .product_code("e2e-saas")
        .usage_records(legacy)
        .send()
        .await
        .unwrap();
    assert_eq!(
        out.results()[0].status(),
        Some(&UsageRecordResultStatus::Success)
    );
    assert_ne!(
        out.results()[0].metering_record_id(),
        Some(id.as_str()),
        "legacy and license identities are independent"
    );

    // Whole-batch failures.
    let err = seller
        .batch_meter_usage()
        .usage_records(license_record("nope", 1, hours_ago(3)))
        .send()
        .await
        .unwrap_err();
    assert_eq!(code(&err), "InvalidUsageDimensionException");
    let err = seller
        .batch_meter_usage()
        .usage_records(license_record("requests", 1, hours_ago(25)))
        .send()
        .await
        .unwrap_err();
    assert_eq!(code(&err), "TimestampOutOfBoundsException");
    let other = client(&server, OTHER_SELLER, "us-east-1");
    let err = other
        .batch_meter_usage()
        .usage_records(license_record("requests", 1, hours_ago(3)))
        .send()
        .await
        .unwrap_err();
    assert_eq!(
        code(&err),
        "InvalidProductCodeException",
        "another seller cannot meter this product"
    );

    // MeterUsage from the buyer's EC2 instance (session-token credentials).
    let ec2 = client(&server, BUYER_EC2, "us-east-1");
    let at = hours_ago(1);
    let m1 = ec2
        .meter_usage()
        .product_code("e2e-ami")
        .timestamp(at)
        .usage_dimension("hosts")
        .usage_quantity(2)
        .send()
        .await
        .unwrap();
    let mid = m1.metering_record_id().unwrap().to_string();
    let m2 = ec2
        .meter_usage()
        .product_code("e2e-ami")
        .timestamp(at)
        .usage_dimension("hosts")
        .usage_quantity(2)
        .send()
        .await
        .unwrap();
    assert_eq!(m2.metering_record_id(), Some(mid.as_str()));
    let err = ec2
        .meter_usage()
        .product_code("e2e-ami")
        .timestamp(at)
        .usage_dimension("hosts")
        .usage_quantity(3)
        .send()
        .await
        .unwrap_err();
    assert_eq!(code(&err), "DuplicateRequestException");
    assert!(err.into_service_error().is_duplicate_request_exception());

    let err = ec2
        .meter_usage()
        .product_code("e2e-ami")
        .timestamp(hours_ago(2))
        .usage_dimension("cores")
        .usage_quantity(1)
        .client_token("tok-1")
        .send()
        .await;
    assert!(err.is_ok());
    let err = ec2
        .meter_usage()
        .product_code("e2e-ami")
        .timestamp(hours_ago(2))
        .usage_dimension("cores")
        .usage_quantity(9)
        .client_token("tok-1")
        .send()
        .await
        .unwrap_err();
    assert!(err.into_service_error().is_idempotency_conflict_exception());

    let nosub = client(&server, NOSUB_EC2, "us-east-1");
    let err = nosub
        .meter_usage()
        .product_code("e2e-ami")
        .timestamp(at)
        .usage_dimension("hosts")
        .usage_quantity(1)
        .send()
        .await
        .unwrap_err();
    assert!(err
        .into_service_error()
        .is_customer_not_entitled_exception());
    let west = client(&server, BUYER_EC2, "us-west-2");
    let err = west
        .meter_usage()
        .product_code("e2e-ami")
        .timestamp(at)
        .usage_dimension("hosts")
        .usage_quantity(1)
        .send()
        .await
        .unwrap_err();
    assert!(err
        .into_service_error()
        .is_invalid_endpoint_region_exception());

    // RegisterUsage from the buyer's ECS task; the signature verifies with the published key.
    let ecs = client(&server, BUYER_ECS, "us-east-1");
    let reg = ecs
        .register_usage()
        .product_code("e2e-container")
        .public_key_version(1)
        .nonce("n-42")
        .send()
        .await
        .unwrap();
    let jws = reg.signature().unwrap();
    let keys = server.admin_get("/admin/v1/products/e2e-container/public-keys");
    let pem = keys["keys"][0]["pem"].as_str().unwrap();
    let mut validation = jsonwebtoken::Validation::new(jsonwebtoken::Algorithm::PS256);
    validation.required_spec_claims.clear();
    validation.validate_exp = false;
    let claims = jsonwebtoken::decode::<serde_json::Value>(
        jws,
        &jsonwebtoken::DecodingKey::from_rsa_pem(pem.as_bytes()).unwrap(),
        &validation,
    )
    .unwrap()
    .claims;
    assert_eq!(claims["productCode"], "e2e-container");
    assert_eq!(claims["nonce"], "n-42");
    assert_eq!(claims["publicKeyVersion"], 1);
    assert!(reg.public_key_rotation_timestamp().is_none());

    // Rotation: add version 2, retire version 1; v1 still signs and reports the rotation time.
    let v2 = server.admin_post(
        "/admin/v1/products/e2e-container/public-keys",
        serde_json::json!({}),
    );
    assert_eq!(v2["version"], 2);
    let retired = server.admin_post(
        "/admin/v1/products/e2e-container/public-keys/1/retire",
        serde_json::json!({}),
    );
    assert!(retired["retired_at"].is_string());
    let old = ecs
        .register_usage()
        .product_code("e2e-container")
        .public_key_version(1)
        .nonce("n-43")
        .send()
        .await
        .unwrap();
    assert!(old.public_key_rotation_timestamp().is_some());
    let new = ecs
        .register_usage()
        .product_code("e2e-container")
        .public_key_version(2)
        .send()
        .await
        .unwrap();
    assert!(new.public_key_rotation_timestamp().is_none());
    let err = ecs
        .register_usage()
        .product_code("e2e-container")
        .public_key_version(7)
        .send()
        .await
        .unwrap_err();
    assert!(err
        .into_service_error()
        .is_invalid_public_key_version_exception());
    let err = ec2
        .register_usage()
        .product_code("e2e-container")
        .public_key_version(1)
        .send()
        .await
        .unwrap_err();
    assert!(err
        .into_service_error()
        .is_platform_not_supported_exception());

    // ResolveCustomer with a token minted through the admin API.
    let token = server.admin_post(
        "/admin/v1/registration-tokens",
        serde_json::json!({"product_code": "e2e-saas", "customer_aws_account_id": BUYER}),
    );
    let token = token["registration_token"].as_str().unwrap();
    let r = seller
        .resolve_customer()
        .registration_token(token)
        .send()
        .await
        .unwrap();
    assert_eq!(r.customer_identifier(), Some("cust-e2e-buyer"));
    assert_eq!(r.customer_aws_account_id(), Some(BUYER));
    assert_eq!(r.product_code(), Some("e2e-saas"));
    assert_eq!(r.license_arn(), Some(LICENSE));
    assert_eq!(
        r.metadata().and_then(|m| m.agreement_id()),
        Some("agmt-e2e-saas-buyer")
    );
    assert!(
        seller
            .resolve_customer()
            .registration_token(token)
            .send()
            .await
            .is_ok(),
        "reusable until expiry"
    );
    let err = other
        .resolve_customer()
        .registration_token(token)
        .send()
        .await
        .unwrap_err();
    assert!(err.into_service_error().is_invalid_token_exception());

    // Authentication failures.
    let wrong = client(
        &server,
        ("AKIAE2ESELLER0000001", "not-the-secret", None),
        "us-east-1",
    );
    let err = wrong
        .resolve_customer()
        .registration_token(token)
        .send()
        .await
        .unwrap_err();
    assert_eq!(code(&err), "InvalidSignatureException");
    let unknown = client(&server, ("AKIAUNKNOWN000000000", "x", None), "us-east-1");
    let err = unknown
        .resolve_customer()
        .registration_token(token)
        .send()
        .await
        .unwrap_err();
    assert_eq!(code(&err), "UnrecognizedClientException");
    let no_session = client(
        &server,
        ("ASIAE2EBUYEREC200001", "buyer-ec2-secret", None),
        "us-east-1",
    );
    let err = no_session
        .meter_usage()
        .product_code("e2e-ami")
        .timestamp(at)
        .usage_dimension("hosts")
        .usage_quantity(2)
        .send()
        .await
        .unwrap_err();
    assert_eq!(code(&err), "UnrecognizedClientException");
}
