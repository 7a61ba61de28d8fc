//! The constraint table against the botocore model (the ground truth, PROTOCOL.md §0 [BC]):
//! the table must mirror every constrained shape of the model, and every constrained member
//! reachable from the four request shapes must be enforced by `decode_request` with the
//! table's error code. Everything here is derived from the model file, so a new or changed
//! model constraint fails this test until the table and validation follow.

use marketmeter_wire::constraints::{self, CONSTRAINTS};
use marketmeter_wire::{decode_request, ErrorCode, Operation};
use regex::Regex;
use serde_json::{json, Value};
use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;

const MODEL_FILE: &str = "botocore-meteringmarketplace-service-2.json";

fn model() -> Value {
    let path = match std::env::var_os("MARKETMETER_SPEC_DIR") {
        Some(dir) => PathBuf::from(dir).join(MODEL_FILE),
        None => PathBuf::from(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../../../shared/spec/botocore-meteringmarketplace-service-2.json"
        )),
    };
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| {
        panic!(
            "cannot read the botocore model at {} ({e}); set MARKETMETER_SPEC_DIR to the folder \
             that holds {MODEL_FILE}",
            path.display()
        )
    });
    serde_json::from_str(&text).expect("the botocore model is JSON")
}

fn shapes(model: &Value) -> &serde_json::Map<String, Value> {
    model["shapes"].as_object().expect("model has shapes")
}

fn is_constrained(shape: &Value) -> bool {
    ["min", "max", "pattern", "enum"]
        .iter()
        .any(|k| shape.get(k).is_some())
}

#[test]
fn table_mirrors_every_constrained_shape_of_the_model() {
    let model = model();
    let constrained: BTreeMap<&str, &Value> = shapes(&model)
        .iter()
        .filter(|(_, s)| is_constrained(s))
        .map(|(n, s)| (n.as_str(), s))
        .collect();
    assert!(!constrained.is_empty());
    for (name, shape) in &constrained {
        let c = constraints::lookup(name)
            .unwrap_or_else(|| panic!("model shape {name} is missing from the table"));
        assert_eq!(
            shape["type"].as_str(),
            Some(c.shape_type.model_name()),
            "{name}: type"
        );
        assert_eq!(
            shape.get("min").and_then(Value::as_i64),
            c.min,
            "{name}: min"
        );
        assert_eq!(
            shape.get("max").and_then(Value::as_i64),
            c.max,
            "{name}: max"
        );
        assert_eq!(
            shape.get("pattern").and_then(Value::as_str),
            c.pattern,
            "{name}: pattern"
        );
        let model_enum: Option<Vec<&str>> = shape.get("enum").map(|v| {
            v.as_array()
                .unwrap()
                .iter()
                .map(|s| s.as_str().unwrap())
                .collect()
        });
        assert_eq!(model_enum.as_deref(), c.enum_values, "{name}: enum");
    }
    for c in CONSTRAINTS {
        assert!(
            constrained.contains_key(c.shape),
            "table entry {} has no constrained model shape",
            c.shape
        );
    }

    // Output-only constrained shapes (e.g. AgreementId, the status enum) are in the table too.
    let inputs: BTreeSet<String> = constrained_inputs(&model)
        .into_iter()
        .map(|m| m.shape)
        .collect();
    let output_only: Vec<&&str> = constrained
        .keys()
        .filter(|n| !inputs.contains(**n))
        .collect();
    assert!(
        output_only.contains(&&"AgreementId") && output_only.contains(&&"UsageRecordResultStatus")
    );
    for name in output_only {
        assert!(constraints::lookup(name).is_some(), "{name}");
    }
}

/// One step of a member path; list steps always address the first item.
#[derive(Debug, Clone, PartialEq)]
enum Seg {
    Member(String),
    First,
}

/// An input member (or list) reachable from an operation's request shape.
#[derive(Debug, Clone)]
struct InputMember {
    op: Operation,
    path: Vec<Seg>,
    /// Target shape name.
    shape: String,
    /// Whether the enclosing structure lists it as required.
    required: bool,
}

impl InputMember {
    fn pointer(&self) -> String {
        self.path
            .iter()
            .map(|s| match s {
                Seg::Member(m) => format!("/{m}"),
                Seg::First => "/0".to_string(),
            })
            .collect()
    }
    /// AWS style, 1-based (what error messages print).
    fn aws_path(&self) -> String {
        let segs: Vec<String> = self
            .path
            .iter()
            .map(|s| match s {
                Seg::Member(m) => m.clone(),
                Seg::First => "1".to_string(),
            })
            .collect();
        segs.join(".")
    }
}

/// Every member reachable from the four request shapes, following structures and lists.
fn input_members(model: &Value) -> Vec<InputMember> {
    fn walk(
        shapes: &serde_json::Map<String, Value>,
        op: Operation,
        name: &str,
        path: Vec<Seg>,
        out: &mut Vec<InputMember>,
    ) {
        assert!(
            path.len() < 16,
            "unexpectedly deep (recursive?) input shape at {path:?}"
        );
        let shape = &shapes[name];
        match shape["type"].as_str() {
            Some("structure") => {
                let required: Vec<&str> = shape.get("required").map_or(vec![], |r| {
                    r.as_array()
                        .unwrap()
                        .iter()
                        .filter_map(Value::as_str)
                        .collect()
                });
                for (member, def) in shape["members"].as_object().unwrap() {
                    let target = def["shape"].as_str().unwrap();
                    let mut p = path.clone();
                    p.push(Seg::Member(member.clone()));
                    let required = required.contains(&member.as_str());
                    out.push(InputMember {
                        op,
                        path: p.clone(),
                        shape: target.to_string(),
                        required,
                    });
                    walk(shapes, op, target, p, out);
                }
            }
            Some("list") => {
                let target = shape["member"]["shape"].as_str().unwrap();
                let mut p = path;
                p.push(Seg::First);
                walk(shapes, op, target, p, out);
            }
            _ => {}
        }
    }
    let shapes = shapes(model);
    let mut out = Vec::new();
    for op in Operation::ALL {
        let input = model["operations"][op.name()]["input"]["shape"]
            .as_str()
            .expect("operation input");
        walk(shapes, op, input, vec![], &mut out);
    }
    out
}

fn constrained_inputs(model: &Value) -> Vec<InputMember> {
    let shapes = shapes(model);
    input_members(model)
        .into_iter()
        .filter(|m| is_constrained(&shapes[&m.shape]))
        .collect()
}

/// Small valid requests that between them contain every input member (legacy/integer and
/// concurrent-agreements/decimal variants exclude each other).
fn valid_requests(op: Operation) -> Vec<Value> {
    let t = 1_795_402_800;
    let tags = json!([{"Key": "team", "Value": "blue"}]);
    match op {
        Operation::BatchMeterUsage => vec![
            json!({"ProductCode": "prod-1", "UsageRecords": [{
                "Timestamp": t, "CustomerIdentifier": "cust-1", "Dimension": "users", "Quantity": 3,
                "UsageAllocations": [{"AllocatedUsageQuantity": 3, "Tags": tags}]}]}),
            json!({"UsageRecords": [{
                "Timestamp": t, "Dimension": "users", "QuantityAsDecimal": "1.5",
                "UsageAllocations": [{"AllocatedUsageQuantityAsDecimal": "1.5", "Tags": tags}],
                "CustomerAWSAccountId": "123456789012",
                "LicenseArn": "arn:aws:license-manager::123456789012:license/l-0123456789abcdef"}]}),
        ],
        Operation::MeterUsage => vec![
            json!({"ProductCode": "prod-1", "Timestamp": t, "UsageDimension": "hosts", "UsageQuantity": 2,
                "UsageAllocations": [{"AllocatedUsageQuantity": 2, "Tags": tags}]}),
            json!({"ProductCode": "prod-1", "Timestamp": t, "UsageDimension": "hosts", "UsageQuantityAsDecimal": "0.25",
                "UsageAllocations": [{"AllocatedUsageQuantityAsDecimal": "0.25", "Tags": tags}], "ClientToken": "tok-1"}),
        ],
        Operation::RegisterUsage => {
            vec![json!({"ProductCode": "prod-1", "PublicKeyVersion": 1, "Nonce": "n-1"})]
        }
        Operation::ResolveCustomer => vec![json!({"RegistrationToken": "opaque-token"})],
    }
}

fn decode(op: Operation, body: &Value) -> Result<(), marketmeter_wire::ApiError> {
    decode_request(op, body.to_string().as_bytes()).map(|_| ())
}

/// The first valid request that holds `m` (panics so a new model member can't be skipped).
fn base_for(m: &InputMember) -> Value {
    valid_requests(m.op)
        .into_iter()
        .find(|b| b.pointer(&m.pointer()).is_some())
        .unwrap_or_else(|| {
            panic!(
                "no valid {} request contains {}; extend valid_requests()",
                m.op.name(),
                m.pointer()
            )
        })
}

/// Values breaking each of the model's constraints of `shape`, derived from the model alone.
fn violations(shape: &Value, current: &Value) -> Vec<(&'static str, Value)> {
    let (min, max) = (
        shape.get("min").and_then(Value::as_i64),
        shape.get("max").and_then(Value::as_i64),
    );
    let mut out = Vec::new();
    match shape["type"].as_str().unwrap() {
        "string" => {
            let re = shape
                .get("pattern")
                .map(|p| Regex::new(p.as_str().unwrap()).unwrap());
            // A string of length n that still matches the pattern if one exists, so the length
            // is what breaks (otherwise both break; the expected code is the same row's).
            let filler = |n: usize| -> String {
                ['a', '1', '0', 'x']
                    .iter()
                    .map(|c| c.to_string().repeat(n))
                    .find(|s| re.as_ref().is_none_or(|re| re.is_match(s)))
                    .unwrap_or_else(|| "a".repeat(n))
            };
            if let Some(max) = max {
                out.push(("one past max length", json!(filler(max as usize + 1))));
            }
            if let Some(min) = min.filter(|&m| m > 0) {
                out.push(("below min length", json!(filler(min as usize - 1))));
            }
            if let Some(re) = &re {
                let fits = |s: &str| {
                    let n = s.chars().count() as i64;
                    min.is_none_or(|m| n >= m) && max.is_none_or(|m| n <= m)
                };
                let candidates = [
                    "!", "é", "a b", "01", "-1", "1.", "a\n", "arn:aws:", "😀", "",
                ];
                if let Some(bad) = candidates.into_iter().find(|s| fits(s) && !re.is_match(s)) {
                    out.push(("pattern violation", json!(bad)));
                }
            }
            if shape.get("enum").is_some() {
                out.push(("not an enum value", json!("NotAnEnumValue")));
            }
        }
        "integer" | "long" => {
            if let Some(max) = max {
                out.push(("one past max", json!(max + 1)));
            }
            if let Some(min) = min {
                out.push(("one below min", json!(min - 1)));
            }
        }
        "list" => {
            let item = current[0].clone();
            if let Some(max) = max {
                out.push((
                    "list one too long",
                    Value::Array(vec![item.clone(); max as usize + 1]),
                ));
            }
            if let Some(min) = min.filter(|&m| m > 0) {
                out.push((
                    "list one too short",
                    Value::Array(vec![item; min as usize - 1]),
                ));
            }
        }
        other => panic!("constraint on a {other} shape: teach violations() about it"),
    }
    out
}

#[test]
fn the_valid_requests_are_valid() {
    for op in Operation::ALL {
        for body in valid_requests(op) {
            assert_eq!(decode(op, &body), Ok(()), "{body}");
        }
    }
}

#[test]
fn every_constrained_input_member_is_enforced_with_the_table_code() {
    let model = model();
    let shapes = shapes(&model);
    let members = constrained_inputs(&model);
    assert!(
        !members.is_empty(),
        "no constrained input members found in the model"
    );

    let mut exercised = BTreeSet::new();
    let mut cases = 0;
    for m in &members {
        let base = base_for(m);
        let want = constraints::lookup(&m.shape)
            .unwrap_or_else(|| panic!("{} not in the table", m.shape))
            .code;
        let bad_values = violations(&shapes[&m.shape], base.pointer(&m.pointer()).unwrap());
        assert!(
            !bad_values.is_empty(),
            "{} {} ({}): no violating value derived",
            m.op.name(),
            m.aws_path(),
            m.shape
        );
        for (what, bad) in bad_values {
            let mut body = base.clone();
            *body.pointer_mut(&m.pointer()).unwrap() = bad;
            let err = decode(m.op, &body).expect_err(&format!(
                "{} {} {what} was accepted",
                m.op.name(),
                m.aws_path()
            ));
            assert_eq!(
                err.code,
                want,
                "{} {} {what}: {}",
                m.op.name(),
                m.aws_path(),
                err.message
            );
            assert!(
                err.message.contains(&format!("at '{}'", m.aws_path())),
                "{what}: {}",
                err.message
            );
            cases += 1;
        }
        exercised.insert(m.shape.clone());
    }
    let reachable: BTreeSet<String> = members.iter().map(|m| m.shape.clone()).collect();
    assert_eq!(exercised, reachable);
    // Sanity: the model's input side has a healthy number of constrained members.
    assert!(
        members.len() >= 20 && cases >= 40,
        "{} members, {cases} cases",
        members.len()
    );
}

#[test]
fn every_missing_required_member_is_a_validation_error_naming_it() {
    let model = model();
    let required: Vec<InputMember> = input_members(&model)
        .into_iter()
        .filter(|m| m.required)
        .collect();
    assert!(!required.is_empty());
    for m in &required {
        for value in [None, Some(Value::Null)] {
            let mut body = base_for(m);
            let (parent, name) = m
                .pointer()
                .rsplit_once('/')
                .map(|(p, n)| (p.to_string(), n.to_string()))
                .unwrap();
            let obj = body.pointer_mut(&parent).unwrap().as_object_mut().unwrap();
            match &value {
                None => drop(obj.remove(&name)),
                Some(v) => drop(obj.insert(name, v.clone())),
            }
            let err = decode(m.op, &body).expect_err(&m.aws_path());
            assert_eq!(
                err.code,
                ErrorCode::Validation,
                "{} {}: {}",
                m.op.name(),
                m.aws_path(),
                err.message
            );
            assert!(
                err.message
                    .contains(&format!("Value null at '{}'", m.aws_path())),
                "{}",
                err.message
            );
            assert!(
                err.message.contains("Member must not be null"),
                "{}",
                err.message
            );
        }
    }
}
