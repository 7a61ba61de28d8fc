//! The backend-neutral conformance suite: every case takes a `Store` (fresh and empty) and
//! checks only what the trait promises, so the same cases can run on SQLite and PostgreSQL.
//! Cases that need concurrent tasks take an `Arc<dyn Store>` so they can spawn.

#![allow(dead_code)]

use marketmeter_domain::audit::{AuditEvent, AuditFilter, AuditOutcome, AuditRecord};
use marketmeter_domain::model::*;
use marketmeter_domain::store::*;
use marketmeter_wire::{EpochTime, Quantity};
use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use time::{Duration, OffsetDateTime};

// ------------------------------------------------------------------ harness

/// What a backend's test file provides for every case.
pub trait Fixture: Sized {
    /// The fresh, empty store the case runs on.
    fn store(&self) -> Arc<dyn Store>;
    /// Backend checks after the case (e.g. file integrity).
    fn check(self) -> impl std::future::Future<Output = ()> + Send;
}

/// One `#[tokio::test]` per backend-neutral case. `$fresh` is an async fn returning a
/// [`Fixture`] over a fresh store; a backend's test file needs only
/// `#[macro_use] mod suite;` and `conformance_tests!(my_fixture);`.
/// `conformance_tests!(optional my_fixture);` takes an async fn returning `Option<Fixture>`:
/// `None` (the backend is not reachable, already reported by the fixture) ends the case early.
/// Cases that spawn concurrent tasks take the `Arc`, the others `&dyn Store`.
macro_rules! conformance_tests {
    ($fresh:path) => {
        conformance_tests!(@list required $fresh);
    };
    (optional $fresh:path) => {
        conformance_tests!(@list optional $fresh);
    };
    (@list $mode:ident $fresh:path) => {
        conformance_tests!(@cases $mode $fresh;
            catalog_round_trips(store),
            catalog_listings_and_removals(store),
            catalog_writes_are_seen_at_once(store),
            upserts_are_idempotent(store),
            dedup_outcomes(store),
            usage_row_round_trip(store),
            usage_listing(store),
            default_listing_limit(store),
            meter_usage_tokens(store),
            single_use_token_race(arc),
            container_session_first_wins(arc),
            container_runs_stop_and_restart(store),
            concurrent_overlapping_batches(arc),
            concurrent_client_tokens(arc),
            reset_clears_metering_state(store),
            usage_groups_aggregate(store),
            rollup_reports_equal_the_records(store),
            audit_append_and_query(store),
            audit_commits_with_its_change(store),
            reset_keeps_the_audit_trail(store),
        );
    };
    (@cases $mode:ident $fresh:path; $($case:ident($kind:ident)),* $(,)?) => {$(
        #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
        async fn $case() {
            let f = conformance_tests!(@fresh $mode $fresh);
            let s = $crate::suite::Fixture::store(&f);
            conformance_tests!(@call s, $case, $kind);
            $crate::suite::Fixture::check(f).await;
        }
    )*};
    (@fresh required $fresh:path) => { $fresh().await };
    (@fresh optional $fresh:path) => {
        match $fresh().await {
            Some(f) => f,
            None => return,
        }
    };
    (@call $s:ident, $case:ident, store) => { $crate::suite::$case(&*$s).await };
    (@call $s:ident, $case:ident, arc) => { $crate::suite::$case($s.clone()).await };
}

// ------------------------------------------------------------------ fixtures

/// An audit event for writes whose audit is not what the case checks.
pub fn ev() -> AuditEvent {
    AuditEvent::arrived(at(1_700_000_000, 0), "req-test".into())
}

/// Instants with microsecond precision (what every backend keeps).
pub fn at(secs: i64, micros: i64) -> OffsetDateTime {
    OffsetDateTime::from_unix_timestamp(secs).unwrap() + Duration::microseconds(micros)
}

pub fn q(units: i64) -> Quantity {
    Quantity::from_integer(units).unwrap()
}

pub fn legacy(product: &str, customer: &str) -> Identity {
    Identity::Legacy {
        product_code: product.into(),
        customer_identifier: customer.into(),
    }
}

pub fn license(account: &str, arn: &str) -> Identity {
    Identity::License {
        customer_account: account.into(),
        license_arn: arn.into(),
    }
}

pub fn row(
    id: &str,
    seller: &str,
    identity: Identity,
    dim: &str,
    hour: i64,
    qty: Quantity,
) -> UsageRecordRow {
    let (customer_identifier, customer_aws_account_id, license_arn, resource_id, product_code) =
        match &identity {
            Identity::Legacy {
                product_code,
                customer_identifier,
            } => (
                Some(customer_identifier.clone()),
                None,
                None,
                None,
                product_code.clone(),
            ),
            Identity::License {
                customer_account,
                license_arn,
            } => (
                None,
                Some(customer_account.clone()),
                Some(license_arn.clone()),
                None,
                "prod-lic".to_string(),
            ),
            Identity::Workload {
                product_code,
                resource_id,
            } => (
                None,
                None,
                None,
                Some(resource_id.clone()),
                product_code.clone(),
            ),
        };
    UsageRecordRow {
        metering_record_id: id.into(),
        key: MeteringKey {
            seller_account: seller.into(),
            identity,
            dimension: dim.into(),
            hour,
        },
        product_code,
        customer_identifier,
        customer_aws_account_id,
        license_arn,
        resource_id,
        timestamp: EpochTime {
            secs: hour * 3600 + 17,
            nanos: 250_000_000,
        },
        quantity: qty,
        allocations: vec![],
        operation: MeteringOperation::BatchMeterUsage,
        received_at: at(hour * 3600 + 30, 42),
    }
}

pub fn stored(id: &str) -> UsageOutcome {
    UsageOutcome::Stored {
        metering_record_id: id.into(),
    }
}
pub fn retry(id: &str) -> UsageOutcome {
    UsageOutcome::Retry {
        metering_record_id: id.into(),
    }
}
pub fn duplicate(id: &str) -> UsageOutcome {
    UsageOutcome::Duplicate {
        metering_record_id: id.into(),
    }
}

pub fn outcome_id(o: &UsageOutcome) -> &str {
    match o {
        UsageOutcome::Stored { metering_record_id }
        | UsageOutcome::Retry { metering_record_id }
        | UsageOutcome::Duplicate { metering_record_id } => metering_record_id,
    }
}

pub fn product(code: &str, seller: &str) -> Product {
    Product {
        code: code.into(),
        seller_account: seller.into(),
        kind: ProductKind::Saas,
        fulfillment_url: Some(format!("https://example.com/{code}")),
        dimensions: vec![
            Dimension {
                name: "users".into(),
                unit: Some("Users".into()),
                price: Some("0.125".into()),
            },
            Dimension {
                name: "gb".into(),
                unit: None,
                price: None,
            },
        ],
    }
}

pub fn agreement(id: &str, product: &str, seller: &str, customer: &str, ci: &str) -> Agreement {
    Agreement {
        agreement_id: id.into(),
        product_code: product.into(),
        seller_account: seller.into(),
        customer_account: customer.into(),
        customer_identifier: ci.into(),
        license_arn: format!("arn:aws:license-manager::{seller}:license:l-{id}"),
        status: AgreementStatus::Active,
        starts: Some(at(1_700_000_000, 1)),
        ends: None,
    }
}

pub fn reg_token(token: &str, single_use: bool) -> RegistrationToken {
    RegistrationToken {
        token: token.into(),
        product_code: "prod-a".into(),
        seller_account: "111111111111".into(),
        customer_account: "222222222222".into(),
        agreement_id: "agmt-1".into(),
        created_at: at(1_700_000_000, 5),
        expires_at: at(1_700_003_600, 5),
        single_use,
        used_at: None,
    }
}

pub fn session(resource: &str, customer: &str, t: OffsetDateTime) -> ContainerSession {
    ContainerSession {
        product_code: "prod-c".into(),
        seller_account: "111111111111".into(),
        resource_id: resource.into(),
        customer_account: customer.into(),
        platform: Platform::Eks,
        region: "us-east-1".into(),
        run: 1,
        first_registered_at: t,
        stopped_at: None,
    }
}

const SELLER: &str = "111111111111";
const OTHER_SELLER: &str = "999999999999";

// ------------------------------------------------------------------ catalog

/// Every catalog read the metering path makes, read once (so a cache would hold it), then
/// changed: the next read sees the change (SQLite serves these reads from a cache).
pub async fn catalog_writes_are_seen_at_once(s: &dyn Store) {
    s.upsert_account(&Account {
        id: SELLER.into(),
        name: None,
    })
    .await
    .unwrap();
    let mut key = AccessKey {
        access_key_id: "AKIACACHED".into(),
        account_id: SELLER.into(),
        secret_access_key: "old".into(),
        session_token: None,
        workload: None,
    };
    let mut p = product("prod-a", SELLER);
    let mut a = agreement("agmt-1", "prod-a", SELLER, "222222222222", "cust-2");
    // Misses are read (and would be cached) too.
    assert_eq!(s.access_key("AKIACACHED").await.unwrap(), None);
    assert_eq!(s.product("prod-a").await.unwrap(), None);
    assert_eq!(s.agreement_by_license(&a.license_arn).await.unwrap(), None);
    assert!(!s.customer_identifier_exists("cust-2").await.unwrap());
    assert!(s
        .agreements_for_customer("prod-a", "222222222222")
        .await
        .unwrap()
        .is_empty());
    assert!(s
        .agreements_for_identifier("prod-a", "cust-2")
        .await
        .unwrap()
        .is_empty());

    s.upsert_access_key(&key).await.unwrap();
    s.upsert_product(&p).await.unwrap();
    s.upsert_agreement(&a).await.unwrap();
    assert_eq!(s.access_key("AKIACACHED").await.unwrap(), Some(key.clone()));
    assert_eq!(s.product("prod-a").await.unwrap(), Some(p.clone()));
    assert_eq!(
        s.agreement_by_license(&a.license_arn).await.unwrap(),
        Some(a.clone())
    );
    assert!(s.customer_identifier_exists("cust-2").await.unwrap());

    key.secret_access_key = "new".into();
    s.upsert_access_key(&key).await.unwrap();
    assert_eq!(s.access_key("AKIACACHED").await.unwrap(), Some(key));
    p.dimensions.truncate(1);
    s.upsert_product(&p).await.unwrap();
    assert_eq!(s.product("prod-a").await.unwrap(), Some(p));
    a.status = AgreementStatus::Cancelled;
    s.upsert_agreement(&a).await.unwrap();
    assert_eq!(
        s.agreement_by_license(&a.license_arn).await.unwrap(),
        Some(a.clone())
    );
    assert_eq!(
        s.agreements_for_customer("prod-a", "222222222222")
            .await
            .unwrap(),
        vec![a.clone()]
    );
    assert_eq!(
        s.agreements_for_identifier("prod-a", "cust-2")
            .await
            .unwrap(),
        vec![a]
    );
    assert!(s.delete_access_key("AKIACACHED").await.unwrap());
    assert_eq!(s.access_key("AKIACACHED").await.unwrap(), None);
}

pub async fn catalog_round_trips(s: &dyn Store) {
    s.upsert_account(&Account {
        id: SELLER.into(),
        name: Some("Seller".into()),
    })
    .await
    .unwrap();
    s.upsert_account(&Account {
        id: "222222222222".into(),
        name: None,
    })
    .await
    .unwrap();

    let plain = AccessKey {
        access_key_id: "AKIAPLAIN".into(),
        account_id: SELLER.into(),
        secret_access_key: "secret/plain".into(),
        session_token: None,
        workload: None,
    };
    let workload = AccessKey {
        access_key_id: "ASIAWORK".into(),
        account_id: "222222222222".into(),
        secret_access_key: "secret/work".into(),
        session_token: Some("session-token".into()),
        workload: Some(Workload {
            resource_id: "arn:aws:ecs:us-east-1:222222222222:task/c/abc".into(),
            platform: Platform::Ecs,
            region: "us-east-1".into(),
        }),
    };
    s.upsert_access_key(&plain).await.unwrap();
    s.upsert_access_key(&workload).await.unwrap();
    assert_eq!(s.access_key("AKIAPLAIN").await.unwrap(), Some(plain));
    assert_eq!(s.access_key("ASIAWORK").await.unwrap(), Some(workload));
    assert_eq!(s.access_key("AKIANONE").await.unwrap(), None);

    let mut p = product("prod-a", SELLER);
    s.upsert_product(&p).await.unwrap();
    assert_eq!(s.product("prod-a").await.unwrap(), Some(p.clone()));
    p.code = "prod-b".into();
    p.kind = ProductKind::Container;
    p.fulfillment_url = None;
    p.dimensions.clear();
    s.upsert_product(&p).await.unwrap();
    assert_eq!(s.product("prod-b").await.unwrap(), Some(p));
    assert_eq!(s.product("prod-none").await.unwrap(), None);

    let a1 = agreement("agmt-1", "prod-a", SELLER, "222222222222", "cust-2");
    let mut a2 = agreement("agmt-2", "prod-a", SELLER, "333333333333", "cust-3");
    a2.status = AgreementStatus::Expired;
    a2.starts = None;
    a2.ends = Some(at(1_800_000_000, 999_999));
    let a3 = agreement("agmt-3", "prod-b", SELLER, "222222222222", "cust-2");
    for a in [&a1, &a2, &a3] {
        s.upsert_agreement(a).await.unwrap();
    }
    assert_eq!(
        s.agreement_by_license(&a2.license_arn).await.unwrap(),
        Some(a2.clone())
    );
    assert_eq!(s.agreement_by_license("arn:none").await.unwrap(), None);
    assert_eq!(
        s.agreements_for_customer("prod-a", "222222222222")
            .await
            .unwrap(),
        vec![a1.clone()]
    );
    assert_eq!(
        s.agreements_for_identifier("prod-b", "cust-2")
            .await
            .unwrap(),
        vec![a3.clone()]
    );
    assert!(s
        .agreements_for_identifier("prod-b", "cust-3")
        .await
        .unwrap()
        .is_empty());
    assert!(s.customer_identifier_exists("cust-3").await.unwrap());
    assert!(!s.customer_identifier_exists("cust-9").await.unwrap());
    assert_eq!(
        s.customer_identifier_of("222222222222")
            .await
            .unwrap()
            .as_deref(),
        Some("cust-2")
    );
    assert_eq!(
        s.customer_identifier_of("444444444444").await.unwrap(),
        None
    );

    let k1 = ProductKey {
        product_code: "prod-b".into(),
        seller_account: SELLER.into(),
        version: 1,
        private_pem: "-----BEGIN PRIVATE KEY-----\nAAA\n-----END PRIVATE KEY-----\n".into(),
        public_pem: "-----BEGIN PUBLIC KEY-----\nBBB\n-----END PUBLIC KEY-----\n".into(),
        created_at: at(1_700_000_000, 7),
        retired_at: Some(at(1_700_100_000, 0)),
    };
    let k2 = ProductKey {
        version: 2,
        retired_at: None,
        ..k1.clone()
    };
    assert!(s.insert_product_key(&k2).await.unwrap());
    assert!(s.insert_product_key(&k1).await.unwrap());
    assert_eq!(s.product_keys("prod-b").await.unwrap(), vec![k1, k2]);
    assert!(s.product_keys("prod-a").await.unwrap().is_empty());

    let t = reg_token("tok-1", true);
    s.insert_registration_token(&t).await.unwrap();
    let mut t2 = reg_token("tok-2", false);
    t2.used_at = Some(at(1_700_000_100, 3));
    s.insert_registration_token(&t2).await.unwrap();
    assert_eq!(s.registration_token("tok-1").await.unwrap(), Some(t));
    assert_eq!(s.registration_token("tok-2").await.unwrap(), Some(t2));
    assert_eq!(s.registration_token("tok-none").await.unwrap(), None);

    let cs = session("pod-1", "222222222222", at(1_700_000_000, 11));
    assert_eq!(s.register_container_session(&cs, ev()).await.unwrap(), cs);
    assert_eq!(
        s.container_session("prod-c", "pod-1").await.unwrap(),
        Some(cs)
    );
    assert_eq!(s.container_session("prod-c", "pod-2").await.unwrap(), None);
    s.ping().await.unwrap();
}

/// Listings (admin API) filter and order the same on every backend; revoking a key and deleting
/// a product take effect at once; a product something refers to is kept and says why.
pub async fn catalog_listings_and_removals(s: &dyn Store) {
    for (id, name) in [
        ("333333333333", None),
        (SELLER, Some("Seller")),
        (OTHER_SELLER, None),
    ] {
        s.upsert_account(&Account {
            id: id.into(),
            name: name.map(str::to_string),
        })
        .await
        .unwrap();
    }
    let ids: Vec<String> = s
        .list_accounts()
        .await
        .unwrap()
        .into_iter()
        .map(|a| a.id)
        .collect();
    assert_eq!(
        ids,
        ["111111111111", "333333333333", "999999999999"],
        "by id"
    );
    assert_eq!(
        s.account(SELLER).await.unwrap().unwrap().name.as_deref(),
        Some("Seller")
    );
    assert_eq!(s.account("444444444444").await.unwrap(), None);

    let key = |id: &str, account: &str| AccessKey {
        access_key_id: id.into(),
        account_id: account.into(),
        secret_access_key: format!("secret-{id}"),
        session_token: None,
        workload: None,
    };
    for (id, account) in [
        ("AKIAB", SELLER),
        ("AKIAZ", "333333333333"),
        ("AKIAA", SELLER),
    ] {
        s.upsert_access_key(&key(id, account)).await.unwrap();
    }
    let listed = |keys: Vec<AccessKey>| -> Vec<String> {
        keys.into_iter().map(|k| k.access_key_id).collect()
    };
    assert_eq!(
        listed(s.list_access_keys(None).await.unwrap()),
        ["AKIAA", "AKIAB", "AKIAZ"]
    );
    assert_eq!(
        listed(s.list_access_keys(Some(SELLER)).await.unwrap()),
        ["AKIAA", "AKIAB"]
    );
    assert!(s.delete_access_key("AKIAA").await.unwrap());
    assert!(
        !s.delete_access_key("AKIAA").await.unwrap(),
        "already revoked"
    );
    assert_eq!(
        s.access_key("AKIAA").await.unwrap(),
        None,
        "revoked at once"
    );
    assert_eq!(
        listed(s.list_access_keys(Some(SELLER)).await.unwrap()),
        ["AKIAB"]
    );

    for (code, seller) in [
        ("prod-z", SELLER),
        ("prod-o", OTHER_SELLER),
        ("prod-a", SELLER),
    ] {
        s.upsert_product(&product(code, seller)).await.unwrap();
    }
    let codes = |ps: Vec<Product>| -> Vec<String> { ps.into_iter().map(|p| p.code).collect() };
    assert_eq!(
        codes(s.list_products(None).await.unwrap()),
        ["prod-z", "prod-o", "prod-a"],
        "insertion order"
    );
    assert_eq!(
        codes(s.list_products(Some(SELLER)).await.unwrap()),
        ["prod-z", "prod-a"]
    );

    let a1 = agreement("agmt-1", "prod-a", SELLER, "222222222222", "cust-2");
    let a2 = agreement("agmt-2", "prod-z", SELLER, "222222222222", "cust-2");
    let a3 = agreement("agmt-3", "prod-a", SELLER, "333333333333", "cust-3");
    for a in [&a1, &a2, &a3] {
        s.upsert_agreement(a).await.unwrap();
    }
    let filter = |p: Option<&str>, c: Option<&str>, id: Option<&str>| AgreementFilter {
        product_code: p.map(str::to_string),
        customer_account: c.map(str::to_string),
        agreement_id: id.map(str::to_string),
    };
    let agreement_ids =
        |v: Vec<Agreement>| -> Vec<String> { v.into_iter().map(|a| a.agreement_id).collect() };
    let all = s
        .list_agreements(&AgreementFilter::default())
        .await
        .unwrap();
    assert_eq!(all, vec![a1.clone(), a2.clone(), a3.clone()]);
    assert_eq!(
        agreement_ids(
            s.list_agreements(&filter(Some("prod-a"), None, None))
                .await
                .unwrap()
        ),
        ["agmt-1", "agmt-3"]
    );
    assert_eq!(
        agreement_ids(
            s.list_agreements(&filter(None, Some("222222222222"), None))
                .await
                .unwrap()
        ),
        ["agmt-1", "agmt-2"]
    );
    assert_eq!(
        agreement_ids(
            s.list_agreements(&filter(
                Some("prod-a"),
                Some("222222222222"),
                Some("agmt-1")
            ))
            .await
            .unwrap()
        ),
        ["agmt-1"]
    );
    assert!(s
        .list_agreements(&filter(Some("prod-o"), None, None))
        .await
        .unwrap()
        .is_empty());

    // prod-a has agreements: kept. prod-o has none: deleted, with its key versions.
    match s.delete_product("prod-a").await.unwrap() {
        ProductDeletion::InUse(why) => assert!(why.contains("2 agreements"), "{why}"),
        other => panic!("prod-a is in use: {other:?}"),
    }
    assert!(s.product("prod-a").await.unwrap().is_some());
    s.insert_product_key(&ProductKey {
        product_code: "prod-o".into(),
        seller_account: OTHER_SELLER.into(),
        version: 1,
        private_pem: "private".into(),
        public_pem: "public".into(),
        created_at: at(1_700_000_000, 0),
        retired_at: None,
    })
    .await
    .unwrap();
    assert_eq!(
        s.delete_product("prod-o").await.unwrap(),
        ProductDeletion::Deleted
    );
    assert_eq!(s.product("prod-o").await.unwrap(), None);
    assert!(s.product_keys("prod-o").await.unwrap().is_empty());
    assert_eq!(
        s.delete_product("prod-o").await.unwrap(),
        ProductDeletion::NotFound
    );
    // Usage keeps a product too.
    let r = row(
        "rid-z",
        SELLER,
        legacy("prod-z", "cust-2"),
        "users",
        1,
        q(1),
    );
    s.commit_usage(vec![r], ev()).await.unwrap();
    s.upsert_agreement(&Agreement {
        product_code: "prod-a".into(),
        ..a2.clone()
    })
    .await
    .unwrap();
    match s.delete_product("prod-z").await.unwrap() {
        ProductDeletion::InUse(why) => assert_eq!(why, "1 usage records"),
        other => panic!("prod-z has usage: {other:?}"),
    }
}

pub async fn upserts_are_idempotent(s: &dyn Store) {
    let mut key = AccessKey {
        access_key_id: "AKIA1".into(),
        account_id: SELLER.into(),
        secret_access_key: "s1".into(),
        session_token: Some("t".into()),
        workload: Some(Workload {
            resource_id: "i-1".into(),
            platform: Platform::Ec2,
            region: "eu-west-1".into(),
        }),
    };
    s.upsert_access_key(&key).await.unwrap();
    s.upsert_access_key(&key).await.unwrap();
    assert_eq!(s.access_key("AKIA1").await.unwrap(), Some(key.clone()));
    key.secret_access_key = "s2".into();
    key.session_token = None;
    key.workload = None;
    s.upsert_access_key(&key).await.unwrap();
    assert_eq!(s.access_key("AKIA1").await.unwrap(), Some(key));

    let acct = Account {
        id: SELLER.into(),
        name: Some("a".into()),
    };
    s.upsert_account(&acct).await.unwrap();
    s.upsert_account(&acct).await.unwrap();
    s.upsert_account(&Account { name: None, ..acct })
        .await
        .unwrap();

    let mut p = product("prod-a", SELLER);
    s.upsert_product(&p).await.unwrap();
    s.upsert_product(&p).await.unwrap();
    p.dimensions.pop();
    p.kind = ProductKind::Ami;
    s.upsert_product(&p).await.unwrap();
    assert_eq!(s.product("prod-a").await.unwrap(), Some(p));
    // A product code names one product: another seller cannot take it over.
    assert!(matches!(
        s.upsert_product(&product("prod-a", OTHER_SELLER)).await,
        Err(StoreError::Invalid(_))
    ));

    let mut a = agreement("agmt-1", "prod-a", SELLER, "222222222222", "cust-2");
    s.upsert_agreement(&a).await.unwrap();
    s.upsert_agreement(&a).await.unwrap();
    a.status = AgreementStatus::Cancelled;
    a.ends = Some(at(1_750_000_000, 0));
    s.upsert_agreement(&a).await.unwrap();
    assert_eq!(
        s.agreements_for_customer("prod-a", "222222222222")
            .await
            .unwrap(),
        vec![a.clone()]
    );
    assert_eq!(
        s.agreement_by_license(&a.license_arn).await.unwrap(),
        Some(a)
    );

    let k = ProductKey {
        product_code: "prod-a".into(),
        seller_account: SELLER.into(),
        version: 1,
        private_pem: "first".into(),
        public_pem: "first-pub".into(),
        created_at: at(1_700_000_000, 0),
        retired_at: None,
    };
    assert!(s.insert_product_key(&k).await.unwrap());
    let again = ProductKey {
        private_pem: "second".into(),
        ..k.clone()
    };
    assert!(!s.insert_product_key(&again).await.unwrap());
    assert_eq!(s.product_keys("prod-a").await.unwrap(), vec![k.clone()]);

    // Retiring keeps the first retirement time and reports unknown versions.
    let first = at(1_700_000_100, 0);
    assert!(s.retire_product_key("prod-a", 1, first).await.unwrap());
    assert!(s
        .retire_product_key("prod-a", 1, at(1_700_000_200, 0))
        .await
        .unwrap());
    assert!(!s.retire_product_key("prod-a", 9, first).await.unwrap());
    let keys = s.product_keys("prod-a").await.unwrap();
    assert_eq!(keys[0].retired_at, Some(first));
}

// ------------------------------------------------------------------ dedup

pub async fn dedup_outcomes(s: &dyn Store) {
    let who = legacy("prod-a", "cust-1");
    let first = row("id-1", SELLER, who.clone(), "users", 100, q(17));
    assert_eq!(
        s.commit_usage(vec![first.clone()], ev()).await.unwrap(),
        vec![stored("id-1")]
    );

    // Equal by value: 17 == "17.000000".
    let same = row(
        "id-2",
        SELLER,
        who.clone(),
        "users",
        100,
        Quantity::parse_decimal("17.000000").unwrap(),
    );
    let diff = row("id-3", SELLER, who.clone(), "users", 100, q(18));
    assert_eq!(
        s.commit_usage(vec![same, diff], ev()).await.unwrap(),
        vec![retry("id-1"), duplicate("id-1")]
    );

    // The same key twice in one batch: the second meets the first.
    let b1 = row("id-4", SELLER, who.clone(), "users", 101, q(5));
    let b2 = row("id-5", SELLER, who.clone(), "users", 101, q(5));
    let b3 = row("id-6", SELLER, who.clone(), "users", 101, q(6));
    assert_eq!(
        s.commit_usage(vec![b1, b2, b3], ev()).await.unwrap(),
        vec![stored("id-4"), retry("id-4"), duplicate("id-4")]
    );

    // Independent keys: other dimension, other hour, license identity for the same customer,
    // other seller, workload identity.
    let independent = vec![
        row("id-7", SELLER, who.clone(), "gb", 100, q(1)),
        row("id-8", SELLER, who.clone(), "users", 102, q(1)),
        row(
            "id-9",
            SELLER,
            license("cust-1", "arn:l-1"),
            "users",
            100,
            q(1),
        ),
        row("id-10", OTHER_SELLER, who.clone(), "users", 100, q(1)),
        row(
            "id-11",
            SELLER,
            Identity::Workload {
                product_code: "prod-a".into(),
                resource_id: "cust-1".into(),
            },
            "users",
            100,
            q(1),
        ),
    ];
    let ids: Vec<String> = independent
        .iter()
        .map(|r| r.metering_record_id.clone())
        .collect();
    let got = s.commit_usage(independent, ev()).await.unwrap();
    assert_eq!(got, ids.iter().map(|i| stored(i)).collect::<Vec<_>>());

    // The first row is what is stored, exactly.
    assert_eq!(
        s.usage_by_key(&first.key).await.unwrap(),
        Some(first.clone())
    );
    let mut other_seller_key = first.key.clone();
    other_seller_key.seller_account = "000000000000".into();
    assert_eq!(s.usage_by_key(&other_seller_key).await.unwrap(), None);
    assert!(s.commit_usage(vec![], ev()).await.unwrap().is_empty());
}

pub async fn usage_row_round_trip(s: &dyn Store) {
    let mut r = row(
        "id-rt",
        SELLER,
        license("222222222222", "arn:l-9"),
        "users",
        474_000,
        Quantity::from_micros(1_500_001),
    );
    r.timestamp = EpochTime {
        secs: 474_000 * 3600 + 59,
        nanos: 123_456_000,
    };
    r.operation = MeteringOperation::MeterUsage;
    r.allocations = vec![
        StoredAllocation {
            quantity: Quantity::from_micros(1_000_001),
            tags: vec![
                AllocationTag {
                    key: "env".into(),
                    value: "prod".into(),
                },
                AllocationTag {
                    key: "team".into(),
                    value: "a \"quoted\" ü".into(),
                },
            ],
        },
        StoredAllocation {
            quantity: Quantity::from_micros(500_000),
            tags: vec![],
        },
    ];
    assert_eq!(
        s.commit_usage(vec![r.clone()], ev()).await.unwrap(),
        vec![stored("id-rt")]
    );
    assert_eq!(s.usage_by_key(&r.key).await.unwrap(), Some(r.clone()));
    let listed = s.usage_records(&UsageFilter::default()).await.unwrap();
    assert_eq!(listed, vec![r]);
}

pub async fn usage_listing(s: &dyn Store) {
    // Inserted out of hour order; listing is by hour, then insertion.
    let rows = vec![
        row("h3", SELLER, legacy("prod-a", "c1"), "users", 3, q(1)),
        row("h1-a", SELLER, legacy("prod-a", "c1"), "users", 1, q(1)),
        row("h1-b", SELLER, legacy("prod-a", "c2"), "users", 1, q(1)),
        row("h2-x", SELLER, legacy("prod-x", "c1"), "users", 2, q(1)),
        row(
            "h2-o",
            OTHER_SELLER,
            legacy("prod-o", "c1"),
            "users",
            2,
            q(1),
        ),
    ];
    s.commit_usage(rows, ev()).await.unwrap();
    s.commit_usage(
        vec![row(
            "h1-c",
            SELLER,
            legacy("prod-a", "c3"),
            "users",
            1,
            q(1),
        )],
        ev(),
    )
    .await
    .unwrap();
    let ids = |v: Vec<UsageRecordRow>| {
        v.into_iter()
            .map(|r| r.metering_record_id)
            .collect::<Vec<_>>()
    };
    let all = s.usage_records(&UsageFilter::default()).await.unwrap();
    assert_eq!(ids(all), ["h1-a", "h1-b", "h1-c", "h2-x", "h2-o", "h3"]);
    let seller = s
        .usage_records(&UsageFilter {
            seller_account: Some(SELLER.into()),
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(ids(seller), ["h1-a", "h1-b", "h1-c", "h2-x", "h3"]);
    let prod = s
        .usage_records(&UsageFilter {
            product_code: Some("prod-a".into()),
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(ids(prod), ["h1-a", "h1-b", "h1-c", "h3"]);
    let both = s
        .usage_records(&UsageFilter {
            seller_account: Some(OTHER_SELLER.into()),
            product_code: Some("prod-a".into()),
            limit: None,
        })
        .await
        .unwrap();
    assert!(both.is_empty());
    let limited = s
        .usage_records(&UsageFilter {
            limit: Some(2),
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(ids(limited), ["h1-a", "h1-b"]);
    let huge = s
        .usage_records(&UsageFilter {
            limit: Some(u32::MAX),
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(huge.len(), 6);
}

pub async fn default_listing_limit(s: &dyn Store) {
    let rows: Vec<_> = (0..1001)
        .map(|i| {
            row(
                &format!("r{i}"),
                SELLER,
                legacy("prod-a", &format!("c{i}")),
                "users",
                1,
                q(1),
            )
        })
        .collect();
    s.commit_usage(rows, ev()).await.unwrap();
    assert_eq!(
        s.usage_records(&UsageFilter::default())
            .await
            .unwrap()
            .len(),
        1000
    );
}

// ------------------------------------------------------------------ MeterUsage tokens

pub fn claim(token: &str, fingerprint: &str) -> TokenClaim {
    TokenClaim {
        seller_account: SELLER.into(),
        caller_account: "222222222222".into(),
        client_token: token.into(),
        fingerprint: fingerprint.into(),
    }
}

pub fn workload_row(id: &str, hour: i64, qty: Quantity) -> UsageRecordRow {
    let mut r = row(
        id,
        SELLER,
        Identity::Workload {
            product_code: "prod-c".into(),
            resource_id: "i-0abc".into(),
        },
        "vcpu",
        hour,
        qty,
    );
    r.operation = MeteringOperation::MeterUsage;
    r
}

pub async fn meter_usage_tokens(s: &dyn Store) {
    // No token: plain dedup.
    assert_eq!(
        s.commit_meter_usage(None, workload_row("m-0", 10, q(1)), ev())
            .await
            .unwrap(),
        MeterOutcome::Usage(stored("m-0"))
    );
    assert_eq!(
        s.commit_meter_usage(None, workload_row("m-0b", 10, q(1)), ev())
            .await
            .unwrap(),
        MeterOutcome::Usage(retry("m-0"))
    );

    // First use of a token stores the row and the token.
    assert_eq!(
        s.commit_meter_usage(
            Some(claim("tok-a", "fp-1")),
            workload_row("m-1", 11, q(2)),
            ev()
        )
        .await
        .unwrap(),
        MeterOutcome::Usage(stored("m-1"))
    );
    assert_eq!(
        s.client_token("222222222222", "tok-a").await.unwrap(),
        Some(("fp-1".to_string(), "m-1".to_string()))
    );
    // Same token, same parameters: the earlier record, even if the new row would differ.
    assert_eq!(
        s.commit_meter_usage(
            Some(claim("tok-a", "fp-1")),
            workload_row("m-2", 12, q(3)),
            ev()
        )
        .await
        .unwrap(),
        MeterOutcome::TokenReplay {
            metering_record_id: "m-1".into()
        }
    );
    assert_eq!(
        s.usage_by_key(&workload_row("m-2", 12, q(3)).key)
            .await
            .unwrap(),
        None
    );
    // Same token, other parameters.
    assert_eq!(
        s.commit_meter_usage(
            Some(claim("tok-a", "fp-2")),
            workload_row("m-3", 13, q(3)),
            ev()
        )
        .await
        .unwrap(),
        MeterOutcome::TokenConflict
    );
    // Tokens are scoped to the caller.
    let mut other_caller = claim("tok-a", "fp-9");
    other_caller.caller_account = "333333333333".into();
    assert_eq!(
        s.commit_meter_usage(Some(other_caller), workload_row("m-4", 14, q(1)), ev())
            .await
            .unwrap(),
        MeterOutcome::Usage(stored("m-4"))
    );

    // A duplicate is refused and its token stays unrecorded.
    assert_eq!(
        s.commit_meter_usage(
            Some(claim("tok-b", "fp-1")),
            workload_row("m-5", 11, q(99)),
            ev()
        )
        .await
        .unwrap(),
        MeterOutcome::Usage(duplicate("m-1"))
    );
    assert_eq!(s.client_token("222222222222", "tok-b").await.unwrap(), None);
    // An identical retry under a fresh token records the token with the existing id.
    assert_eq!(
        s.commit_meter_usage(
            Some(claim("tok-c", "fp-1")),
            workload_row("m-6", 11, q(2)),
            ev()
        )
        .await
        .unwrap(),
        MeterOutcome::Usage(retry("m-1"))
    );
    assert_eq!(
        s.client_token("222222222222", "tok-c").await.unwrap(),
        Some(("fp-1".to_string(), "m-1".to_string()))
    );
}

// ------------------------------------------------------------------ single winners

pub async fn single_use_token_race(s: Arc<dyn Store>) {
    s.insert_registration_token(&reg_token("race", true))
        .await
        .unwrap();
    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..32 {
        let s = s.clone();
        tasks.spawn(async move {
            s.consume_registration_token("race", at(1_700_000_000 + i, 0), ev())
                .await
                .unwrap()
        });
    }
    let wins = tasks.join_all().await.into_iter().filter(|w| *w).count();
    assert_eq!(wins, 1);
    assert!(s
        .registration_token("race")
        .await
        .unwrap()
        .unwrap()
        .used_at
        .is_some());
    assert!(!s
        .consume_registration_token("race", at(1_800_000_000, 0), ev())
        .await
        .unwrap());
    assert!(!s
        .consume_registration_token("missing", at(1_800_000_000, 0), ev())
        .await
        .unwrap());
}

pub async fn container_session_first_wins(s: Arc<dyn Store>) {
    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..24 {
        let s = s.clone();
        tasks.spawn(async move {
            let mine = session("pod-race", &format!("cust-{i}"), at(1_700_000_000 + i, 0));
            s.register_container_session(&mine, ev()).await.unwrap()
        });
    }
    let results = tasks.join_all().await;
    let winner = s
        .container_session("prod-c", "pod-race")
        .await
        .unwrap()
        .unwrap();
    assert!(
        results.iter().all(|r| *r == winner),
        "every caller sees the one stored session"
    );
    // A later registration with other details does not replace it.
    let late = session("pod-race", "late", at(1_900_000_000, 0));
    assert_eq!(
        s.register_container_session(&late, ev()).await.unwrap(),
        winner
    );

    // Once stopped, racing registrations start exactly one next run.
    let stop = at(1_900_000_000, 0);
    assert!(s
        .stop_container_session("prod-c", "pod-race", stop)
        .await
        .unwrap()
        .is_some());
    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..24 {
        let s = s.clone();
        tasks.spawn(async move {
            let mine = session("pod-race", &format!("again-{i}"), at(1_900_000_100 + i, 0));
            s.register_container_session(&mine, ev()).await.unwrap()
        });
    }
    let results = tasks.join_all().await;
    let second = s
        .container_session("prod-c", "pod-race")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(second.run, 2);
    assert!(results.iter().all(|r| *r == second));
    let all = s
        .list_container_sessions(&ContainerFilter {
            resource_id: Some("pod-race".into()),
            ..ContainerFilter::default()
        })
        .await
        .unwrap();
    assert_eq!(all.len(), 2, "{all:?}");
}

/// Runs are stopped once, not before their start; a registration after a stop starts the
/// next run; listings filter by product, customer, resource, state and time, in start order.
pub async fn container_runs_stop_and_restart(s: &dyn Store) {
    let t0 = at(1_700_000_000, 7);
    let first = s
        .register_container_session(&session("task-1", "222222222222", t0), ev())
        .await
        .unwrap();
    assert_eq!((first.run, first.stopped_at), (1, None));
    // Not before the start; at the start is fine; only once.
    let before = t0 - Duration::microseconds(1);
    assert_eq!(
        s.stop_container_session("prod-c", "task-1", before)
            .await
            .unwrap(),
        None
    );
    let stopped = s
        .stop_container_session("prod-c", "task-1", t0)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(stopped.stopped_at, Some(t0));
    assert_eq!(stopped.run, 1);
    assert_eq!(
        s.stop_container_session("prod-c", "task-1", at(1_700_000_100, 0))
            .await
            .unwrap(),
        None
    );
    assert_eq!(s.container_session("prod-c", "task-1").await.unwrap(), None);
    assert_eq!(
        s.stop_container_session("prod-c", "task-none", t0)
            .await
            .unwrap(),
        None
    );

    // The next registration is run 2, with its own details.
    let t1 = at(1_700_003_600, 0);
    let second = s
        .register_container_session(&session("task-1", "333333333333", t1), ev())
        .await
        .unwrap();
    assert_eq!(second.run, 2);
    assert_eq!(second.first_registered_at, t1);
    assert_eq!(second.customer_account, "333333333333");
    assert_eq!(
        s.container_session("prod-c", "task-1").await.unwrap(),
        Some(second.clone())
    );
    let mut other = session("task-2", "222222222222", at(1_700_001_800, 0));
    other.product_code = "prod-d".into();
    let other = s.register_container_session(&other, ev()).await.unwrap();

    let list = |f: ContainerFilter| async move { s.list_container_sessions(&f).await.unwrap() };
    let all = list(ContainerFilter::default()).await;
    assert_eq!(all, vec![stopped.clone(), other.clone(), second.clone()]);
    let f = ContainerFilter {
        product_code: Some("prod-c".into()),
        ..ContainerFilter::default()
    };
    assert_eq!(list(f).await, vec![stopped.clone(), second.clone()]);
    let f = ContainerFilter {
        customer_account: Some("222222222222".into()),
        ..ContainerFilter::default()
    };
    assert_eq!(list(f).await, vec![stopped.clone(), other.clone()]);
    let f = ContainerFilter {
        running: Some(false),
        ..ContainerFilter::default()
    };
    assert_eq!(list(f).await, vec![stopped.clone()]);
    let f = ContainerFilter {
        running: Some(true),
        seller_account: Some(SELLER.into()),
        ..ContainerFilter::default()
    };
    assert_eq!(list(f).await, vec![other.clone(), second.clone()]);
    let f = ContainerFilter {
        seller_account: Some(OTHER_SELLER.into()),
        ..ContainerFilter::default()
    };
    assert!(list(f).await.is_empty());
    let f = ContainerFilter {
        resource_id: Some("task-1".into()),
        limit: Some(1),
        ..ContainerFilter::default()
    };
    assert_eq!(list(f).await, vec![stopped.clone()]);
    // Time windows (reports): started before t1, and running or stopped at or after t0 + 1 µs.
    let f = ContainerFilter {
        started_before: Some(t1),
        stopped_since: Some(t0 + Duration::microseconds(1)),
        ..ContainerFilter::default()
    };
    assert_eq!(list(f).await, vec![other.clone()]);
    let f = ContainerFilter {
        started_before: Some(t1 + Duration::microseconds(1)),
        stopped_since: Some(t0),
        ..ContainerFilter::default()
    };
    assert_eq!(list(f).await, vec![stopped, other, second]);
}

/// 50 tasks × 25 rows over 100 overlapping keys (each key's quantity fixed): exactly one row
/// per key is stored, and every outcome for a key names that row.
pub async fn concurrent_overlapping_batches(s: Arc<dyn Store>) {
    const TASKS: usize = 50;
    const ROWS: usize = 25;
    const KEYS: usize = 100;
    let mut tasks = tokio::task::JoinSet::new();
    for t in 0..TASKS {
        let s = s.clone();
        tasks.spawn(async move {
            let rows: Vec<_> = (0..ROWS)
                .map(|i| {
                    let k = (t * 7 + i * 3) % KEYS;
                    row(
                        &format!("t{t}-r{i}"),
                        SELLER,
                        legacy("prod-a", &format!("c{k}")),
                        "users",
                        1,
                        q(k as i64 + 1),
                    )
                })
                .collect();
            let keys: Vec<usize> = (0..ROWS).map(|i| (t * 7 + i * 3) % KEYS).collect();
            let out = s.commit_usage(rows, ev()).await.unwrap();
            keys.into_iter().zip(out).collect::<Vec<_>>()
        });
    }
    let mut ids: HashMap<usize, HashSet<String>> = HashMap::new();
    let mut stored_per_key: HashMap<usize, usize> = HashMap::new();
    for batch in tasks.join_all().await {
        for (k, o) in batch {
            assert!(
                !matches!(o, UsageOutcome::Duplicate { .. }),
                "same quantity is never a duplicate"
            );
            if matches!(o, UsageOutcome::Stored { .. }) {
                *stored_per_key.entry(k).or_default() += 1;
            }
            ids.entry(k).or_default().insert(outcome_id(&o).to_string());
        }
    }
    assert!(
        stored_per_key.values().all(|n| *n == 1),
        "{stored_per_key:?}"
    );
    assert_eq!(stored_per_key.len(), ids.len());
    assert!(ids.values().all(|set| set.len() == 1), "one id per key");
    let listed = s
        .usage_records(&UsageFilter {
            limit: Some(100_000),
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(listed.len(), ids.len());
    for r in listed {
        let Identity::Legacy {
            customer_identifier,
            ..
        } = &r.key.identity
        else {
            panic!("unexpected identity");
        };
        let k: usize = customer_identifier[1..].parse().unwrap();
        assert!(ids[&k].contains(&r.metering_record_id));
        assert_eq!(r.quantity, q(k as i64 + 1));
    }
}

/// 32 concurrent MeterUsage calls with one client token: half with one set of parameters,
/// half with another (another usage key). Exactly one call stores its row; the calls with the
/// winner's parameters replay its id, the others conflict; the loser's row is never stored.
pub async fn concurrent_client_tokens(s: Arc<dyn Store>) {
    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..32 {
        let s = s.clone();
        tasks.spawn(async move {
            let fp = if i % 2 == 0 { "fp-even" } else { "fp-odd" };
            let hour = if i % 2 == 0 { 20 } else { 21 };
            let out = s
                .commit_meter_usage(
                    Some(claim("tok-race", fp)),
                    workload_row(&format!("race-{i}"), hour, q(1)),
                    ev(),
                )
                .await
                .unwrap();
            (fp, out)
        });
    }
    let results = tasks.join_all().await;
    let winners: Vec<_> = results
        .iter()
        .filter_map(|(fp, o)| match o {
            MeterOutcome::Usage(UsageOutcome::Stored { metering_record_id }) => {
                Some((*fp, metering_record_id.clone()))
            }
            _ => None,
        })
        .collect();
    assert_eq!(winners.len(), 1, "{results:?}");
    let (win_fp, win_id) = winners[0].clone();
    for (fp, o) in &results {
        match o {
            MeterOutcome::Usage(UsageOutcome::Stored { .. }) => {}
            MeterOutcome::TokenReplay { metering_record_id } => {
                assert_eq!(*fp, win_fp);
                assert_eq!(*metering_record_id, win_id);
            }
            MeterOutcome::TokenConflict => assert_ne!(*fp, win_fp),
            other => panic!("unexpected {other:?}"),
        }
    }
    assert_eq!(
        s.client_token("222222222222", "tok-race").await.unwrap(),
        Some((win_fp.to_string(), win_id.clone()))
    );
    let loser_hour = if win_fp == "fp-even" { 21 } else { 20 };
    assert_eq!(
        s.usage_by_key(&workload_row("x", loser_hour, q(1)).key)
            .await
            .unwrap(),
        None
    );
}

// ------------------------------------------------------------------ test controls

pub async fn reset_clears_metering_state(s: &dyn Store) {
    s.upsert_product(&product("prod-a", SELLER)).await.unwrap();
    let a = agreement("agmt-1", "prod-a", SELLER, "222222222222", "ci-1");
    s.upsert_agreement(&a).await.unwrap();
    let legacy_row = row("r-1", SELLER, legacy("prod-a", "ci-1"), "users", 7, q(2));
    let other_seller = row("r-2", OTHER_SELLER, legacy("prod-z", "ci-9"), "gb", 7, q(1));
    s.commit_usage(vec![legacy_row.clone(), other_seller.clone()], ev())
        .await
        .unwrap();
    s.commit_meter_usage(
        Some(claim("tok-a", "fp")),
        workload_row("m-1", 8, q(1)),
        ev(),
    )
    .await
    .unwrap();
    s.insert_registration_token(&reg_token("reg-1", false))
        .await
        .unwrap();
    let t = at(1_700_000_000, 0);
    s.register_container_session(&session("pod-1", "222222222222", t), ev())
        .await
        .unwrap();

    let counts = s.reset_metering().await.unwrap();
    assert_eq!(
        counts,
        ResetCounts {
            usage_records: 3,
            client_tokens: 1,
            registration_tokens: 1,
            container_sessions: 1,
        }
    );
    assert!(s
        .usage_records(&UsageFilter::default())
        .await
        .unwrap()
        .is_empty());
    assert_eq!(s.usage_by_key(&legacy_row.key).await.unwrap(), None);
    assert_eq!(s.client_token("222222222222", "tok-a").await.unwrap(), None);
    assert_eq!(s.registration_token("reg-1").await.unwrap(), None);
    assert_eq!(s.container_session("prod-c", "pod-1").await.unwrap(), None);
    // The catalog stays.
    assert_eq!(
        s.product("prod-a").await.unwrap(),
        Some(product("prod-a", SELLER))
    );
    assert_eq!(
        s.agreement_by_license(&a.license_arn).await.unwrap(),
        Some(a)
    );

    // The freed keys take new records, and a second reset finds nothing.
    let mut again = legacy_row.clone();
    again.metering_record_id = "r-3".into();
    again.quantity = q(5);
    assert_eq!(
        s.commit_usage(vec![again], ev()).await.unwrap(),
        vec![stored("r-3")]
    );
    assert_eq!(s.reset_metering().await.unwrap().usage_records, 1);
    assert_eq!(s.reset_metering().await.unwrap(), ResetCounts::default());
}

// ------------------------------------------------------------------ reports

fn tagged(quantity: &str, tags: &[(&str, &str)]) -> StoredAllocation {
    StoredAllocation {
        quantity: Quantity::parse_decimal(quantity).unwrap(),
        tags: tags
            .iter()
            .map(|(k, v)| AllocationTag {
                key: k.to_string(),
                value: v.to_string(),
            })
            .collect(),
    }
}

fn group(
    bucket_hour: i64,
    product: &str,
    customer: &str,
    dimension: &str,
    tag: Option<&str>,
    quantity: &str,
    records: u64,
) -> marketmeter_domain::reports::UsageGroup {
    marketmeter_domain::reports::UsageGroup {
        bucket_hour,
        product_code: product.into(),
        customer: customer.into(),
        dimension: dimension.into(),
        tag_value: tag.map(str::to_string),
        quantity: Quantity::parse_decimal(quantity).unwrap(),
        records,
    }
}

/// Groups come in no particular order.
fn sorted(
    mut v: Vec<marketmeter_domain::reports::UsageGroup>,
) -> Vec<marketmeter_domain::reports::UsageGroup> {
    v.sort();
    v
}

pub async fn usage_groups_aggregate(s: &dyn Store) {
    use marketmeter_domain::reports::{Grain, GroupQuery};
    let day = 20_000 * 24; // an hour number on a day boundary
    let mut split = row(
        "g-1",
        SELLER,
        legacy("prod-a", "ci-1"),
        "users",
        day + 1,
        q(10),
    );
    split.allocations = vec![
        tagged("6.5", &[("team", "blue"), ("env", "prod")]),
        tagged("2.25", &[("team", "red")]),
        tagged("1.25", &[("env", "dev")]),
    ];
    let rows = vec![
        split,
        row(
            "g-2",
            SELLER,
            legacy("prod-a", "ci-1"),
            "users",
            day + 2,
            q(5),
        ),
        row(
            "g-3",
            SELLER,
            legacy("prod-a", "ci-2"),
            "users",
            day + 2,
            q(1),
        ),
        row("g-4", SELLER, legacy("prod-a", "ci-1"), "gb", day + 3, q(7)),
        row(
            "g-5",
            SELLER,
            license("222222222222", "arn:l"),
            "users",
            day + 25,
            q(4),
        ),
        row(
            "g-6",
            SELLER,
            legacy("prod-a", "ci-1"),
            "users",
            day + 48,
            q(100),
        ),
        row(
            "g-7",
            OTHER_SELLER,
            legacy("prod-a", "ci-1"),
            "users",
            day + 1,
            q(1000),
        ),
    ];
    s.commit_usage(rows, ev()).await.unwrap();
    let base = GroupQuery {
        seller_account: Some(SELLER.into()),
        product_code: Some("prod-a".into()),
        from_hour: day,
        to_hour: day + 48,
        grain: Grain::Day,
        by_customer: true,
        tag_key: None,
    };

    // Days: g-6 is outside [from, to); g-5 is another product; g-7 another seller.
    assert_eq!(
        sorted(s.usage_groups(&base).await.unwrap()),
        vec![
            group(day, "prod-a", "ci-1", "gb", None, "7", 1),
            group(day, "prod-a", "ci-1", "users", None, "15", 2),
            group(day, "prod-a", "ci-2", "users", None, "1", 1),
        ]
    );
    // Hours, every product of the seller; license records report the buyer's account.
    let hours = sorted(
        s.usage_groups(&GroupQuery {
            product_code: None,
            grain: Grain::Hour,
            ..base.clone()
        })
        .await
        .unwrap(),
    );
    assert_eq!(
        hours,
        vec![
            group(day + 1, "prod-a", "ci-1", "users", None, "10", 1),
            group(day + 2, "prod-a", "ci-1", "users", None, "5", 1),
            group(day + 2, "prod-a", "ci-2", "users", None, "1", 1),
            group(day + 3, "prod-a", "ci-1", "gb", None, "7", 1),
            group(day + 25, "prod-lic", "222222222222", "users", None, "4", 1),
        ]
    );
    // Every seller.
    let all = sorted(
        s.usage_groups(&GroupQuery {
            seller_account: None,
            to_hour: day + 2,
            ..base.clone()
        })
        .await
        .unwrap(),
    );
    assert_eq!(
        all,
        vec![group(day, "prod-a", "ci-1", "users", None, "1010", 2)]
    );

    // Tags: exact decimal sums of the allocations carrying the key, by value.
    let teams = sorted(
        s.usage_groups(&GroupQuery {
            tag_key: Some("team".into()),
            ..base.clone()
        })
        .await
        .unwrap(),
    );
    assert_eq!(
        teams,
        vec![
            group(day, "prod-a", "ci-1", "users", Some("blue"), "6.5", 1),
            group(day, "prod-a", "ci-1", "users", Some("red"), "2.25", 1),
        ]
    );
    let envs = sorted(
        s.usage_groups(&GroupQuery {
            tag_key: Some("env".into()),
            grain: Grain::Hour,
            ..base.clone()
        })
        .await
        .unwrap(),
    );
    assert_eq!(
        envs,
        vec![
            group(day + 1, "prod-a", "ci-1", "users", Some("dev"), "1.25", 1),
            group(day + 1, "prod-a", "ci-1", "users", Some("prod"), "6.5", 1),
        ]
    );
    // Without customers: one group per (bucket, product, dimension).
    assert_eq!(
        sorted(
            s.usage_groups(&GroupQuery {
                by_customer: false,
                ..base.clone()
            })
            .await
            .unwrap()
        ),
        vec![
            group(day, "prod-a", "", "gb", None, "7", 1),
            group(day, "prod-a", "", "users", None, "16", 3),
        ]
    );
    assert!(s
        .usage_groups(&GroupQuery {
            tag_key: Some("nobody".into()),
            ..base
        })
        .await
        .unwrap()
        .is_empty());
}

/// Groups without customers, computed here from the stored records themselves.
async fn groups_from_records(
    s: &dyn Store,
    q: &marketmeter_domain::reports::GroupQuery,
) -> Vec<marketmeter_domain::reports::UsageGroup> {
    let rows = s
        .usage_records(&UsageFilter {
            limit: Some(100_000),
            ..UsageFilter::default()
        })
        .await
        .unwrap();
    let mut sums: HashMap<(i64, String, String), (u64, u64)> = HashMap::new();
    for r in rows.iter().filter(|r| {
        r.key.hour >= q.from_hour
            && r.key.hour < q.to_hour
            && q.product_code.as_ref().is_none_or(|p| *p == r.product_code)
            && q.seller_account
                .as_ref()
                .is_none_or(|p| *p == r.key.seller_account)
    }) {
        let bucket = r.key.hour - r.key.hour.rem_euclid(q.grain.hours());
        let e = sums
            .entry((bucket, r.product_code.clone(), r.key.dimension.clone()))
            .or_default();
        e.0 += r.quantity.micros();
        e.1 += 1;
    }
    sorted(
        sums.into_iter()
            .map(|((bucket_hour, product_code, dimension), (q, n))| {
                marketmeter_domain::reports::UsageGroup {
                    bucket_hour,
                    product_code,
                    customer: String::new(),
                    dimension,
                    tag_value: None,
                    quantity: Quantity::from_micros(q),
                    records: n,
                }
            })
            .collect(),
    )
}

/// Reports without customers or tags (answered from the hourly rollup) equal the sums of the
/// stored records, across duplicates, retries, several sellers and products, and a reset.
pub async fn rollup_reports_equal_the_records(s: &dyn Store) {
    use marketmeter_domain::reports::{Grain, GroupQuery};
    let day = 20_000 * 24;
    let mut rows = Vec::new();
    for i in 0..120i64 {
        let customer = format!("ci-{}", i % 7);
        let (seller, identity) = match i % 5 {
            0 => (OTHER_SELLER, legacy("prod-a", &customer)),
            1 => (SELLER, license(&format!("22222222222{}", i % 3), "arn:l")),
            2 => (SELLER, legacy("prod-b", &customer)),
            _ => (SELLER, legacy("prod-a", &customer)),
        };
        let dim = ["users", "gb", "calls"][(i % 3) as usize];
        // Hours repeat, so several records share each (product, hour, dimension).
        let mut r = row(
            &format!("r-{i}"),
            seller,
            identity,
            dim,
            day + (i * 7) % 53,
            Quantity::from_micros(1_000_000 * (i as u64 % 11) + 250_000),
        );
        r.allocations.clear();
        rows.push(r);
    }
    // A retry and a duplicate of stored keys: neither adds a record.
    let mut retry = rows[3].clone();
    retry.metering_record_id = "r-retry".into();
    let mut duplicate = rows[4].clone();
    duplicate.metering_record_id = "r-dup".into();
    duplicate.quantity = q(999);
    let outcomes = s.commit_usage(rows.clone(), ev()).await.unwrap();
    let stored = outcomes
        .iter()
        .filter(|o| matches!(o, UsageOutcome::Stored { .. }))
        .count();
    assert!(stored > 50, "the case stores many records ({stored})");
    s.commit_usage(vec![retry, duplicate], ev()).await.unwrap();

    let queries = |from: i64, to: i64| {
        let base = GroupQuery {
            seller_account: None,
            product_code: None,
            from_hour: from,
            to_hour: to,
            grain: Grain::Hour,
            by_customer: false,
            tag_key: None,
        };
        vec![
            base.clone(),
            GroupQuery {
                grain: Grain::Day,
                ..base.clone()
            },
            GroupQuery {
                product_code: Some("prod-a".into()),
                seller_account: Some(SELLER.into()),
                ..base.clone()
            },
            GroupQuery {
                product_code: Some("prod-a".into()),
                grain: Grain::Day,
                ..base
            },
        ]
    };
    let mut nonempty = 0;
    for q in queries(day + 3, day + 50)
        .into_iter()
        .chain(queries(0, day * 2))
    {
        let want = groups_from_records(s, &q).await;
        nonempty += usize::from(!want.is_empty());
        assert_eq!(sorted(s.usage_groups(&q).await.unwrap()), want, "{q:?}");
    }
    assert_eq!(nonempty, 8, "every query covers stored records");

    s.reset_metering().await.unwrap();
    for q in queries(0, day * 2) {
        assert!(s.usage_groups(&q).await.unwrap().is_empty(), "{q:?}");
    }
    s.commit_usage(rows[..10].to_vec(), ev()).await.unwrap();
    for q in queries(0, day * 2) {
        let want = groups_from_records(s, &q).await;
        assert!(!want.is_empty());
        assert_eq!(sorted(s.usage_groups(&q).await.unwrap()), want, "{q:?}");
    }
}

// ------------------------------------------------------------------ audit trail

/// A complete event (every optional field set) at `secs`.
pub fn event(op: &str, account: Option<&str>, secs: i64, request_id: &str) -> AuditEvent {
    AuditEvent {
        time: at(secs, 123_456),
        operation: op.into(),
        account: account.map(str::to_string),
        access_key_id: Some("AKIATEST".into()),
        source_ip: Some("127.0.0.1".into()),
        user_agent: Some("aws-sdk-rust/1 \"quoted\", comma".into()),
        region: Some("us-east-1".into()),
        request_id: request_id.into(),
        request_parameters: Some(r#"{"ProductCode":"prod-a"}"#.into()),
        outcome: AuditOutcome::Success,
        error_code: None,
    }
}

fn ids(records: &[AuditRecord]) -> Vec<&str> {
    records
        .iter()
        .map(|r| r.event.request_id.as_str())
        .collect()
}

async fn audit_all(s: &dyn Store) -> Vec<AuditRecord> {
    s.audit_events(&AuditFilter {
        limit: Some(1000),
        ..Default::default()
    })
    .await
    .unwrap()
}

/// Appended events come back whole, in order, narrowed by every filter, and page by cursor.
pub async fn audit_append_and_query(s: &dyn Store) {
    assert!(audit_all(s).await.is_empty());
    let t = 1_700_000_000;
    let mut bare = AuditEvent::arrived(at(t + 30, 0), "r5".into());
    bare = bare.failed(marketmeter_wire::ErrorCode::UnrecognizedClient);
    let events = [
        event("BatchMeterUsage", Some("111111111111"), t, "r1"),
        event("MeterUsage", Some("222222222222"), t + 10, "r2"),
        AuditEvent {
            outcome: AuditOutcome::Partial,
            ..event("BatchMeterUsage", Some("222222222222"), t + 20, "r3")
        },
        event("ResolveCustomer", None, t + 25, "r4"),
        bare.clone(),
    ];
    for e in &events {
        s.append_audit(e.clone()).await.unwrap();
    }
    let all = audit_all(s).await;
    assert_eq!(ids(&all), ["r1", "r2", "r3", "r4", "r5"]);
    assert!(all.windows(2).all(|w| w[0].seq < w[1].seq), "seq increases");
    for (got, want) in all.iter().zip(&events) {
        assert_eq!(&got.event, want, "round trip");
    }
    assert_eq!(
        all[4].event.error_code.as_deref(),
        Some("UnrecognizedClientException")
    );

    let q = |f: AuditFilter| async move {
        ids(&s.audit_events(&f).await.unwrap())
            .iter()
            .map(|s| s.to_string())
            .collect::<Vec<_>>()
    };
    assert_eq!(
        q(AuditFilter {
            operation: Some("BatchMeterUsage".into()),
            ..Default::default()
        })
        .await,
        ["r1", "r3"]
    );
    assert_eq!(
        q(AuditFilter {
            account: Some("222222222222".into()),
            ..Default::default()
        })
        .await,
        ["r2", "r3"]
    );
    assert_eq!(
        q(AuditFilter {
            operation: Some("MeterUsage".into()),
            account: Some("222222222222".into()),
            ..Default::default()
        })
        .await,
        ["r2"]
    );
    // from inclusive, to exclusive (at microsecond precision).
    assert_eq!(
        q(AuditFilter {
            from: Some(at(t + 10, 123_456)),
            to: Some(at(t + 25, 123_456)),
            ..Default::default()
        })
        .await,
        ["r2", "r3"]
    );
    // Paging: the cursor is the last seq of the previous page.
    let page = |after: Option<i64>| async move {
        s.audit_events(&AuditFilter {
            limit: Some(2),
            after,
            ..Default::default()
        })
        .await
        .unwrap()
    };
    let first = page(None).await;
    assert_eq!(ids(&first), ["r1", "r2"]);
    let next = page(Some(first[1].seq)).await;
    assert_eq!(ids(&next), ["r3", "r4"]);
    let last = page(Some(next[1].seq)).await;
    assert_eq!(ids(&last), ["r5"]);
    assert_eq!(
        q(AuditFilter {
            operation: Some("RegisterUsage".into()),
            ..Default::default()
        })
        .await,
        Vec::<String>::new()
    );
}

/// Each metering write records its event in its own transaction, settled by its result; a
/// write that fails records nothing (its change and its event are undone together).
pub async fn audit_commits_with_its_change(s: &dyn Store) {
    let t = 1_700_000_000;
    let ok = row("a-1", SELLER, legacy("prod-a", "c1"), "users", 1, q(1));
    s.commit_usage(
        vec![ok.clone()],
        event("BatchMeterUsage", Some(SELLER), t, "batch"),
    )
    .await
    .unwrap();

    // A metering record id reused under another key: the write fails, nothing of it stays.
    let clash = vec![
        row("a-2", SELLER, legacy("prod-a", "c2"), "users", 1, q(1)),
        row("a-1", SELLER, legacy("prod-a", "c3"), "users", 1, q(1)),
    ];
    let failed = s
        .commit_usage(
            clash.clone(),
            event("BatchMeterUsage", Some(SELLER), t, "failed"),
        )
        .await;
    assert!(failed.is_err(), "{failed:?}");
    assert_eq!(s.usage_by_key(&clash[0].key).await.unwrap(), None);

    // MeterUsage: stored, then a duplicate, then a conflicting client token.
    let m = |id: &str, qty| workload_row(id, 20, q(qty));
    let ev_m = |rid: &str| event("MeterUsage", Some("222222222222"), t, rid);
    s.commit_meter_usage(Some(claim("tok-1", "fp-1")), m("m-1", 1), ev_m("m-stored"))
        .await
        .unwrap();
    s.commit_meter_usage(None, m("m-2", 2), ev_m("m-dup"))
        .await
        .unwrap();
    s.commit_meter_usage(
        Some(claim("tok-1", "fp-2")),
        m("m-3", 1),
        ev_m("m-conflict"),
    )
    .await
    .unwrap();
    s.commit_meter_usage(Some(claim("tok-1", "fp-1")), m("m-4", 1), ev_m("m-replay"))
        .await
        .unwrap();

    // A single-use token: consumed once, refused after.
    s.insert_registration_token(&reg_token("once", true))
        .await
        .unwrap();
    let ev_r = |rid: &str| event("ResolveCustomer", Some(SELLER), t, rid);
    assert!(s
        .consume_registration_token("once", at(t, 0), ev_r("resolved"))
        .await
        .unwrap());
    assert!(!s
        .consume_registration_token("once", at(t, 1), ev_r("used"))
        .await
        .unwrap());

    s.register_container_session(
        &session("pod-a", "222222222222", at(t, 0)),
        event("RegisterUsage", Some("222222222222"), t, "registered"),
    )
    .await
    .unwrap();

    let all = audit_all(s).await;
    let got: Vec<(&str, AuditOutcome, Option<&str>)> = all
        .iter()
        .map(|r| {
            (
                r.event.request_id.as_str(),
                r.event.outcome,
                r.event.error_code.as_deref(),
            )
        })
        .collect();
    use AuditOutcome::*;
    assert_eq!(
        got,
        [
            ("batch", Success, None),
            ("m-stored", Success, None),
            ("m-dup", Error, Some("DuplicateRequestException")),
            ("m-conflict", Error, Some("IdempotencyConflictException")),
            ("m-replay", Success, None),
            ("resolved", Success, None),
            ("used", Error, Some("InvalidTokenException")),
            ("registered", Success, None),
        ]
    );
}

/// The test-control reset empties the metering tables and keeps the audit trail.
pub async fn reset_keeps_the_audit_trail(s: &dyn Store) {
    let r = row("k-1", SELLER, legacy("prod-a", "c1"), "users", 1, q(1));
    s.commit_usage(
        vec![r.clone()],
        event("BatchMeterUsage", Some(SELLER), 1_700_000_000, "kept"),
    )
    .await
    .unwrap();
    s.append_audit(event("MeterUsage", None, 1_700_000_001, "kept-too"))
        .await
        .unwrap();
    let counts = s.reset_metering().await.unwrap();
    assert_eq!(counts.usage_records, 1);
    assert_eq!(s.usage_by_key(&r.key).await.unwrap(), None);
    assert_eq!(ids(&audit_all(s).await), ["kept", "kept-too"]);
}
