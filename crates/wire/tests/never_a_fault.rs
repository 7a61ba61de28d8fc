//! No request body can make decoding panic or produce a server fault: every outcome is a
//! decoded request or a client error.

use marketmeter_wire::{decode_request, Operation};
use proptest::prelude::*;
use serde_json::{json, Value};

fn any_json() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(|n| json!(n)),
        any::<f64>()
            .prop_filter("finite", |f| f.is_finite())
            .prop_map(|f| json!(f)),
        "\\PC{0,40}".prop_map(Value::String),
        prop::sample::select(vec![
            "",
            "0",
            "17.000",
            "-1",
            "1e3",
            "9999999999.9999999",
            "arn:aws:x:y:z:w"
        ])
        .prop_map(|s| Value::String(s.to_string())),
    ];
    leaf.prop_recursive(4, 64, 8, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..8).prop_map(Value::Array),
            prop::collection::vec((member_name(), inner), 0..8)
                .prop_map(|kv| Value::Object(kv.into_iter().collect())),
        ]
    })
}

/// Mostly real member names, so generated bodies get deep into validation.
fn member_name() -> impl Strategy<Value = String> {
    prop_oneof![
        prop::sample::select(vec![
            "UsageRecords",
            "ProductCode",
            "Timestamp",
            "CustomerIdentifier",
            "Dimension",
            "Quantity",
            "QuantityAsDecimal",
            "UsageAllocations",
            "AllocatedUsageQuantity",
            "AllocatedUsageQuantityAsDecimal",
            "Tags",
            "Key",
            "Value",
            "CustomerAWSAccountId",
            "LicenseArn",
            "UsageDimension",
            "UsageQuantity",
            "UsageQuantityAsDecimal",
            "DryRun",
            "ClientToken",
            "PublicKeyVersion",
            "Nonce",
            "RegistrationToken",
        ])
        .prop_map(str::to_string),
        "[A-Za-z]{1,12}",
    ]
}

fn check(op: Operation, body: &[u8]) {
    if let Err(e) = decode_request(op, body) {
        assert!(!e.code.is_fault(), "{op:?}: {e}");
        assert!(!e.message.is_empty());
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn arbitrary_bytes(body in prop::collection::vec(any::<u8>(), 0..512), op in prop::sample::select(Operation::ALL.to_vec())) {
        check(op, &body);
    }

    #[test]
    fn arbitrary_json(value in any_json(), op in prop::sample::select(Operation::ALL.to_vec())) {
        check(op, value.to_string().as_bytes());
    }
}

#[test]
fn deep_nesting_and_huge_numbers() {
    for op in Operation::ALL {
        check(
            op,
            format!("{}{}", "[".repeat(10_000), "]".repeat(10_000)).as_bytes(),
        );
        check(
            op,
            br#"{"UsageRecords":[{"Timestamp":1e308,"Dimension":"d","Quantity":1e30}]}"#,
        );
        check(op, br#"{"ProductCode":"p","Timestamp":-1e20,"UsageDimension":"d","UsageQuantity":-9223372036854775809}"#);
        check(
            op,
            br#"{"ProductCode":"p","ProductCode":"q","Timestamp":1,"UsageDimension":"d"}"#,
        );
    }
}
