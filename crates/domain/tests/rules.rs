//! The metering rules driven through `Metering` with a manual clock and an in-memory store.

mod support;

use marketmeter_domain::model::*;
use marketmeter_domain::seed::Seed;
use marketmeter_domain::*;
use marketmeter_wire::*;
use std::sync::Arc;
use support::MemoryStore;
use time::macros::datetime;
use time::{Duration, OffsetDateTime};

const SELLER: &str = "111122223333";
const BUYER: &str = "444455556666";
const LICENSE: &str = "arn:aws:license-manager::111122223333:license/l-saas";

struct World {
    m: Metering,
    store: Arc<MemoryStore>,
    clock: Arc<ManualClock>,
}

async fn world_with(config: MeteringConfig, start: OffsetDateTime) -> World {
    let seed: Seed = serde_json::from_value(serde_json::json!({
        "accounts": [{"id": SELLER}, {"id": "999988887777"}, {"id": BUYER}, {"id": "777766665555"}],
        "keys": [],
        "products": [
            {"code": "saas", "seller": SELLER, "kind": "saas", "dimensions": [{"name": "requests"}, {"name": "gb"}]},
            {"code": "saas2", "seller": SELLER, "kind": "saas", "dimensions": [{"name": "requests"}]},
            {"code": "ami", "seller": SELLER, "kind": "ami", "dimensions": [{"name": "hosts"}]},
            {"code": "box", "seller": SELLER, "kind": "container", "dimensions": [{"name": "vcpu"}]}
        ],
        "agreements": [
            {"product": "saas", "customer_account": BUYER, "customer_identifier": "cust-1", "license_arn": LICENSE,
             "agreement_id": "agmt-1", "ends": "2027-06-01T00:00:00Z"},
            {"product": "saas2", "customer_account": BUYER, "license_arn": "arn:aws:license-manager::111122223333:license/l-saas2"},
            {"product": "saas", "customer_account": "777766665555", "customer_identifier": "cust-gone",
             "license_arn": "arn:aws:license-manager::111122223333:license/l-gone", "status": "cancelled"},
            {"product": "ami", "customer_account": BUYER},
            {"product": "box", "customer_account": BUYER}
        ]
    }))
    .unwrap();
    let store = Arc::new(MemoryStore::default());
    seed.apply(&*store, start).await.unwrap();
    let clock = Arc::new(ManualClock::new(start));
    let m = Metering::new(store.clone(), clock.clone(), config);
    World { m, store, clock }
}

async fn world() -> World {
    world_with(MeteringConfig::default(), datetime!(2026-11-23 12:30 UTC)).await
}

/// A fresh audit event for a call (what the HTTP front hands the rules).
fn audit() -> audit::Audit {
    audit::Audit::new(audit::AuditEvent::arrived(
        OffsetDateTime::UNIX_EPOCH,
        "req".into(),
    ))
}

fn seller() -> Caller {
    Caller {
        account_id: Some(SELLER.into()),
        access_key_id: Some("AK".into()),
        workload: None,
        signing_region: "us-east-1".into(),
        open: false,
    }
}

fn workload(account: &str, id: &str, platform: Platform) -> Caller {
    Caller {
        account_id: Some(account.into()),
        access_key_id: Some(format!("AK-{id}")),
        workload: Some(Workload {
            resource_id: id.into(),
            platform,
            region: "us-east-1".into(),
        }),
        signing_region: "us-east-1".into(),
        open: false,
    }
}

fn ts(t: OffsetDateTime) -> EpochTime {
    EpochTime::from_secs(t.unix_timestamp())
}

fn record(at: OffsetDateTime, dimension: &str, quantity: i64) -> UsageRecord {
    UsageRecord {
        timestamp: ts(at),
        customer_identifier: None,
        dimension: dimension.into(),
        quantity: Some(quantity),
        quantity_as_decimal: None,
        usage_allocations: None,
        customer_aws_account_id: Some(BUYER.into()),
        license_arn: Some(LICENSE.into()),
    }
}

fn batch(records: Vec<UsageRecord>) -> BatchMeterUsageRequest {
    BatchMeterUsageRequest {
        usage_records: records,
        product_code: None,
    }
}

fn meter(at: OffsetDateTime, quantity: i64, token: Option<&str>) -> MeterUsageRequest {
    MeterUsageRequest {
        product_code: "ami".into(),
        timestamp: ts(at),
        usage_dimension: "hosts".into(),
        usage_quantity: Some(quantity),
        usage_quantity_as_decimal: None,
        dry_run: None,
        usage_allocations: None,
        client_token: token.map(str::to_string),
    }
}

#[tokio::test]
async fn registration_tokens_expire_and_belong_to_the_seller() {
    let w = world().await;
    let t = w.m.mint_registration_token("saas", BUYER).await.unwrap();
    let req = || ResolveCustomerRequest {
        registration_token: t.token.clone(),
    };
    let r =
        w.m.resolve_customer(&seller(), req(), &mut audit())
            .await
            .unwrap();
    assert_eq!(r.customer_identifier.as_deref(), Some("cust-1"));
    assert_eq!(r.license_arn.as_deref(), Some(LICENSE));
    assert_eq!(r.metadata.unwrap().agreement_id.as_deref(), Some("agmt-1"));
    let other = Caller {
        account_id: Some("999988887777".into()),
        ..seller()
    };
    assert_eq!(
        w.m.resolve_customer(&other, req(), &mut audit())
            .await
            .unwrap_err()
            .code,
        ErrorCode::InvalidToken
    );
    w.clock.advance(Duration::hours(4) - Duration::seconds(1));
    assert!(
        w.m.resolve_customer(&seller(), req(), &mut audit())
            .await
            .is_ok(),
        "reusable until expiry"
    );
    w.clock.advance(Duration::seconds(1));
    assert_eq!(
        w.m.resolve_customer(&seller(), req(), &mut audit())
            .await
            .unwrap_err()
            .code,
        ErrorCode::ExpiredToken
    );
    let bogus = ResolveCustomerRequest {
        registration_token: "nope".into(),
    };
    assert_eq!(
        w.m.resolve_customer(&seller(), bogus, &mut audit())
            .await
            .unwrap_err()
            .code,
        ErrorCode::InvalidToken
    );
}

#[tokio::test]
async fn single_use_tokens_resolve_once() {
    let config = MeteringConfig {
        single_use_tokens: true,
        ..Default::default()
    };
    let w = world_with(config, datetime!(2026-11-23 12:30 UTC)).await;
    let t = w.m.mint_registration_token("saas", BUYER).await.unwrap();
    let req = || ResolveCustomerRequest {
        registration_token: t.token.clone(),
    };
    assert!(w
        .m
        .resolve_customer(&seller(), req(), &mut audit())
        .await
        .is_ok());
    assert_eq!(
        w.m.resolve_customer(&seller(), req(), &mut audit())
            .await
            .unwrap_err()
            .code,
        ErrorCode::InvalidToken
    );
}

#[tokio::test]
async fn month_end_cutoff_and_whole_batch_failure() {
    let w = world_with(MeteringConfig::default(), datetime!(2027-04-01 05:00 UTC)).await;
    let march = datetime!(2027-03-31 23:00 UTC);
    let ok =
        w.m.batch_meter_usage(
            &seller(),
            batch(vec![record(march, "requests", 1)]),
            &mut audit(),
        )
        .await
        .unwrap();
    assert_eq!(ok.results[0].status, UsageRecordResultStatus::Success);
    w.clock.set(datetime!(2027-04-01 06:00 UTC));
    let before = w.store.usage_count();
    let e =
        w.m.batch_meter_usage(
            &seller(),
            batch(vec![
                record(datetime!(2027-04-01 05:30 UTC), "gb", 1),
                record(march, "gb", 1),
            ]),
            &mut audit(),
        )
        .await
        .unwrap_err();
    assert_eq!(e.code, ErrorCode::TimestampOutOfBounds);
    assert!(e.message.contains("UsageRecords.2"), "{}", e.message);
    let e =
        w.m.batch_meter_usage(
            &seller(),
            batch(vec![
                record(datetime!(2027-04-01 05:30 UTC), "gb", 1),
                record(datetime!(2027-04-01 05:30 UTC), "nope", 1),
            ]),
            &mut audit(),
        )
        .await
        .unwrap_err();
    assert_eq!(e.code, ErrorCode::InvalidUsageDimension);
    assert_eq!(
        w.store.usage_count(),
        before,
        "a failed batch stores nothing"
    );
}

#[tokio::test]
async fn licenses_are_checked_per_record() {
    let w = world().await;
    let now = w.clock.now();
    let mut other_customer = record(now, "requests", 1);
    other_customer.customer_aws_account_id = Some("777766665555".into());
    let mut unknown = record(now, "requests", 1);
    unknown.license_arn = Some("arn:aws:license-manager::1:license/l-none".into());
    let mut other_product = record(now, "requests", 1);
    other_product.license_arn =
        Some("arn:aws:license-manager::111122223333:license/l-saas2".into());
    for bad in [other_customer, unknown, other_product] {
        let e =
            w.m.batch_meter_usage(
                &seller(),
                batch(vec![record(now, "requests", 1), bad]),
                &mut audit(),
            )
            .await
            .unwrap_err();
        assert_eq!(e.code, ErrorCode::InvalidLicense, "{}", e.message);
    }
    // Outside the license period (agreement ends 2027-06-01).
    let w = world_with(MeteringConfig::default(), datetime!(2027-06-01 01:00 UTC)).await;
    let e =
        w.m.batch_meter_usage(
            &seller(),
            batch(vec![record(datetime!(2027-06-01 00:30 UTC), "requests", 1)]),
            &mut audit(),
        )
        .await
        .unwrap_err();
    assert_eq!(e.code, ErrorCode::InvalidLicense);
    let ok =
        w.m.batch_meter_usage(
            &seller(),
            batch(vec![record(datetime!(2027-05-31 23:30 UTC), "requests", 1)]),
            &mut audit(),
        )
        .await
        .unwrap();
    assert_eq!(ok.results[0].status, UsageRecordResultStatus::Success);
}

#[tokio::test]
async fn subscription_statuses_and_dedup_by_value() {
    let w = world().await;
    let now = w.clock.now();
    let mut cancelled = record(now, "requests", 1);
    cancelled.customer_aws_account_id = Some("777766665555".into());
    cancelled.license_arn = Some("arn:aws:license-manager::111122223333:license/l-gone".into());
    let out =
        w.m.batch_meter_usage(
            &seller(),
            batch(vec![cancelled, record(now, "requests", 17)]),
            &mut audit(),
        )
        .await
        .unwrap();
    assert_eq!(
        out.results[0].status,
        UsageRecordResultStatus::CustomerNotSubscribed
    );
    assert_eq!(out.results[0].metering_record_id, None);
    assert_eq!(w.store.usage_count(), 1);
    let id = out.results[1].metering_record_id.clone().unwrap();

    let mut decimal = record(now, "requests", 0);
    decimal.quantity = None;
    decimal.quantity_as_decimal = Some("17.000".into());
    let out =
        w.m.batch_meter_usage(
            &seller(),
            batch(vec![decimal, record(now, "requests", 18)]),
            &mut audit(),
        )
        .await
        .unwrap();
    assert_eq!(
        out.results[0].metering_record_id.as_deref(),
        Some(id.as_str()),
        "17 == 17.000"
    );
    assert_eq!(
        out.results[1].status,
        UsageRecordResultStatus::DuplicateRecord
    );

    // Legacy identity: unknown identifiers fail the batch; known ones meter independently.
    let mut legacy = record(now, "requests", 17);
    legacy.customer_aws_account_id = None;
    legacy.license_arn = None;
    legacy.customer_identifier = Some("cust-404".into());
    let req = BatchMeterUsageRequest {
        usage_records: vec![legacy.clone()],
        product_code: Some("saas".into()),
    };
    assert_eq!(
        w.m.batch_meter_usage(&seller(), req, &mut audit())
            .await
            .unwrap_err()
            .code,
        ErrorCode::InvalidCustomerIdentifier
    );
    legacy.customer_identifier = Some("cust-1".into());
    let req = BatchMeterUsageRequest {
        usage_records: vec![legacy],
        product_code: Some("saas".into()),
    };
    let out =
        w.m.batch_meter_usage(&seller(), req, &mut audit())
            .await
            .unwrap();
    assert_eq!(out.results[0].status, UsageRecordResultStatus::Success);
    assert_ne!(
        out.results[0].metering_record_id.as_deref(),
        Some(id.as_str())
    );

    // Only the owner meters its product.
    let other = Caller {
        account_id: Some("999988887777".into()),
        ..seller()
    };
    let e =
        w.m.batch_meter_usage(
            &other,
            batch(vec![record(now, "requests", 1)]),
            &mut audit(),
        )
        .await
        .unwrap_err();
    assert_eq!(e.code, ErrorCode::InvalidProductCode);
}

#[tokio::test]
async fn meter_usage_dry_run_tokens_and_hours() {
    let w = world().await;
    let ec2 = workload(BUYER, "i-1", Platform::Ec2);
    let now = w.clock.now();
    let mut dry = meter(now, 3, None);
    dry.dry_run = Some(true);
    assert_eq!(
        w.m.meter_usage(&ec2, dry.clone(), &mut audit())
            .await
            .unwrap_err()
            .code,
        ErrorCode::DryRunOperation
    );
    assert_eq!(w.store.usage_count(), 0, "dry runs store nothing");

    let id =
        w.m.meter_usage(&ec2, meter(now, 3, Some("t1")), &mut audit())
            .await
            .unwrap()
            .metering_record_id;
    // Same hour, same quantity, other second: same record.
    let again =
        w.m.meter_usage(
            &ec2,
            meter(now - Duration::minutes(20), 3, None),
            &mut audit(),
        )
        .await
        .unwrap();
    assert_eq!(again.metering_record_id, id);
    assert_eq!(
        w.m.meter_usage(&ec2, meter(now, 4, None), &mut audit())
            .await
            .unwrap_err()
            .code,
        ErrorCode::DuplicateRequest
    );
    dry.usage_quantity = Some(4);
    assert_eq!(
        w.m.meter_usage(&ec2, dry, &mut audit())
            .await
            .unwrap_err()
            .code,
        ErrorCode::DuplicateRequest,
        "dry runs check duplicates"
    );
    // Token replay and conflict.
    assert_eq!(
        w.m.meter_usage(&ec2, meter(now, 3, Some("t1")), &mut audit())
            .await
            .unwrap()
            .metering_record_id,
        id
    );
    let e =
        w.m.meter_usage(
            &ec2,
            meter(now - Duration::hours(1), 3, Some("t1")),
            &mut audit(),
        )
        .await
        .unwrap_err();
    assert_eq!(e.code, ErrorCode::IdempotencyConflict);
    assert_eq!(e.code.http_status(), 409);
    // Another workload meters its own hour.
    let other =
        w.m.meter_usage(
            &workload(BUYER, "i-2", Platform::Ec2),
            meter(now, 9, None),
            &mut audit(),
        )
        .await
        .unwrap();
    assert_ne!(other.metering_record_id, id);
    // Window, entitlement, region, caller kind.
    assert_eq!(
        w.m.meter_usage(&ec2, meter(now - Duration::hours(6), 1, None), &mut audit())
            .await
            .unwrap_err()
            .code,
        ErrorCode::TimestampOutOfBounds
    );
    let nosub = workload("777766665555", "i-3", Platform::Ec2);
    assert_eq!(
        w.m.meter_usage(&nosub, meter(now, 1, None), &mut audit())
            .await
            .unwrap_err()
            .code,
        ErrorCode::CustomerNotEntitled
    );
    let west = Caller {
        signing_region: "us-west-2".into(),
        ..ec2.clone()
    };
    assert_eq!(
        w.m.meter_usage(&west, meter(now, 1, None), &mut audit())
            .await
            .unwrap_err()
            .code,
        ErrorCode::InvalidEndpointRegion
    );
    assert_eq!(
        w.m.meter_usage(&seller(), meter(now, 1, None), &mut audit())
            .await
            .unwrap_err()
            .code,
        ErrorCode::AccessDenied
    );
}

#[tokio::test]
async fn register_usage_checks_entitlement_on_the_first_call_only() {
    let w = world().await;
    let ecs = workload(BUYER, "task-1", Platform::Ecs);
    let req = |v| RegisterUsageRequest {
        product_code: "box".into(),
        public_key_version: v,
        nonce: Some("n".into()),
    };
    let first =
        w.m.register_usage(&ecs, req(1), &mut audit())
            .await
            .unwrap();
    assert!(first.signature.starts_with("eyJ"));
    assert!(first.public_key_rotation_timestamp.is_none());

    // The buyer cancels: the running task keeps registering, a new task is refused.
    let mut a = w
        .store
        .agreements_for_customer("box", BUYER)
        .await
        .unwrap()
        .remove(0);
    a.status = AgreementStatus::Cancelled;
    w.store.upsert_agreement(&a).await.unwrap();
    assert!(w.m.register_usage(&ecs, req(1), &mut audit()).await.is_ok());
    let e =
        w.m.register_usage(
            &workload(BUYER, "task-2", Platform::Fargate),
            req(1),
            &mut audit(),
        )
        .await
        .unwrap_err();
    assert_eq!(e.code, ErrorCode::CustomerNotEntitled);

    assert_eq!(
        w.m.register_usage(&ecs, req(2), &mut audit())
            .await
            .unwrap_err()
            .code,
        ErrorCode::InvalidPublicKeyVersion
    );
    let e =
        w.m.register_usage(&workload(BUYER, "i-9", Platform::Ec2), req(1), &mut audit())
            .await
            .unwrap_err();
    assert_eq!(e.code, ErrorCode::PlatformNotSupported);
    let west = Caller {
        signing_region: "eu-west-1".into(),
        ..ecs.clone()
    };
    assert_eq!(
        w.m.register_usage(&west, req(1), &mut audit())
            .await
            .unwrap_err()
            .code,
        ErrorCode::InvalidRegion
    );

    // A retired key still signs and reports when it was rotated.
    let retired = datetime!(2026-11-01 00:00 UTC);
    assert!(w.store.retire_product_key("box", 1, retired).await.unwrap());
    let out =
        w.m.register_usage(&ecs, req(1), &mut audit())
            .await
            .unwrap();
    assert_eq!(out.public_key_rotation_timestamp, Some(ts(retired)));
}

#[tokio::test]
async fn seeds_load_idempotently() {
    let w = world().await;
    let before = w
        .store
        .agreements_for_customer("saas2", BUYER)
        .await
        .unwrap();
    assert!(before[0].agreement_id.starts_with("agmt-"));
    assert_eq!(
        before[0].customer_identifier, "cust-1",
        "a buyer keeps one identifier across products"
    );
    let keys = w.store.product_keys("box").await.unwrap();
    assert_eq!(keys.len(), 1);
}

/// A write records the call's event with its change, settled as the call is answered; calls
/// that write nothing leave their event to the caller (not recorded here).
#[tokio::test]
async fn writes_record_the_audit_event_settled() {
    let config = MeteringConfig {
        single_use_tokens: true,
        ..Default::default()
    };
    let w = world_with(config, datetime!(2026-11-23 12:30 UTC)).await;
    let now = w.clock.now();
    let ec2 = workload(BUYER, "i-1", Platform::Ec2);

    let mut a = audit();
    w.m.meter_usage(&ec2, meter(now, 3, None), &mut a)
        .await
        .unwrap();
    assert!(a.is_recorded());
    let mut a = audit();
    let e =
        w.m.meter_usage(&ec2, meter(now, 4, None), &mut a)
            .await
            .unwrap_err();
    assert_eq!(e.code, ErrorCode::DuplicateRequest);
    assert!(a.is_recorded(), "the refused write recorded its event");
    // A dry run writes nothing: its event is left to the caller.
    let mut dry = meter(now, 3, None);
    dry.dry_run = Some(true);
    let mut a = audit();
    w.m.meter_usage(&ec2, dry, &mut a).await.unwrap_err();
    assert!(!a.is_recorded());

    let t = w.m.mint_registration_token("saas", BUYER).await.unwrap();
    let req = || ResolveCustomerRequest {
        registration_token: t.token.clone(),
    };
    w.m.resolve_customer(&seller(), req(), &mut audit())
        .await
        .unwrap();
    let mut a = audit();
    assert_eq!(
        w.m.resolve_customer(&seller(), req(), &mut a)
            .await
            .unwrap_err()
            .code,
        ErrorCode::InvalidToken
    );
    assert!(a.is_recorded());

    let got: Vec<(audit::AuditOutcome, Option<String>)> = w
        .store
        .audit()
        .into_iter()
        .map(|e| (e.outcome, e.error_code))
        .collect();
    use audit::AuditOutcome::*;
    assert_eq!(
        got,
        [
            (Success, None),
            (Error, Some("DuplicateRequestException".into())),
            (Success, None),
            (Error, Some("InvalidTokenException".into())),
        ]
    );
}

/// A batch whose write fails is answered with its records unprocessed, and its event is not
/// recorded (it rolled back with the write): the caller records the call as answered.
#[tokio::test]
async fn a_failed_batch_write_leaves_its_event_to_the_caller() {
    let w = world().await;
    let now = w.clock.now();
    w.store.fail_usage_writes();
    let mut a = audit();
    let out =
        w.m.batch_meter_usage(&seller(), batch(vec![record(now, "requests", 1)]), &mut a)
            .await
            .unwrap();
    assert_eq!(out.unprocessed_records.len(), 1);
    assert!(!a.is_recorded());
    assert!(w.store.audit().is_empty());
}
