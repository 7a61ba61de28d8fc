//! Server-side enforcement of the model's constraints on the four request inputs (SDKs check
//! at most `required` and `min`, PROTOCOL.md §1.7).
//!
//! Two passes, like an AWS front end followed by the operation: first every member is checked
//! against the constraint table entry of its model shape (`constraints.rs`), then the rules that
//! span several members, each citing the model documentation it comes from. The first
//! violation found is answered. Member paths are written AWS style with 1-based list indexes:
//! `UsageRecords.3.Dimension` is the third record's dimension.

use crate::constraints::{self, Value};
use crate::error::{ApiError, ErrorCode};
use crate::quantity::{Quantity, QuantityKind};
use crate::shapes::*;
use std::collections::HashSet;
use std::fmt;

pub trait Validate {
    fn validate(&self) -> Result<(), ApiError>;
}

/// A member path, built on the stack while walking (no allocation unless an error is reported).
#[derive(Clone, Copy)]
enum Path<'a> {
    Root,
    Member(&'a Path<'a>, &'static str),
    Index(&'a Path<'a>, usize),
}

impl Path<'_> {
    fn member(&self, name: &'static str) -> Path<'_> {
        Path::Member(self, name)
    }
    fn index(&self, i: usize) -> Path<'_> {
        Path::Index(self, i)
    }
}

impl fmt::Display for Path<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (parent, seg): (_, &dyn fmt::Display) = match self {
            Path::Root => return Ok(()),
            Path::Member(p, name) => (p, name),
            Path::Index(p, i) => (p, &(i + 1)),
        };
        if matches!(parent, Path::Root) {
            write!(f, "{seg}")
        } else {
            write!(f, "{parent}.{seg}")
        }
    }
}

/// The AWS message shape: "1 validation error detected: Value 'x' at 'A.1.B' failed to
/// satisfy constraint: Member must ...". `value` is echoed truncated: requests can be 1 MB.
fn violation(
    code: ErrorCode,
    path: &dyn fmt::Display,
    value: Option<Value<'_>>,
    what: impl fmt::Display,
) -> ApiError {
    const ECHO_CHARS: usize = 64;
    let value = match value {
        Some(Value::Str(s)) if s.chars().count() > ECHO_CHARS => {
            format!(" '{}...'", s.chars().take(ECHO_CHARS).collect::<String>())
        }
        Some(Value::Str(s)) => format!(" '{s}'"),
        Some(Value::Int(n)) => format!(" '{n}'"),
        Some(Value::List(_)) | None => String::new(),
    };
    ApiError::new(
        code,
        format!("1 validation error detected: Value{value} at '{path}' failed to satisfy constraint: {what}"),
    )
}

// ---- pass 1: every member against its shape's table entry -------------------------------

/// The generic check: looks the model shape up in the table and raises the table's code.
fn check(shape: &'static str, value: Value<'_>, path: &Path<'_>) -> Result<(), ApiError> {
    let c = constraints::lookup(shape)
        .unwrap_or_else(|| panic!("{shape} is not in the constraint table"));
    c.check(value)
        .map_err(|v| violation(c.code, path, Some(value), v))
}

fn opt_str(shape: &'static str, v: &Option<String>, path: &Path<'_>) -> Result<(), ApiError> {
    v.as_deref()
        .map_or(Ok(()), |s| check(shape, Value::Str(s), path))
}

fn opt_int(shape: &'static str, v: Option<i64>, path: &Path<'_>) -> Result<(), ApiError> {
    v.map_or(Ok(()), |n| check(shape, Value::Int(n), path))
}

/// A list member: its size, then each item (paths `List.1`, `List.2`, ...).
fn list<T>(
    shape: &'static str,
    items: Option<&[T]>,
    path: &Path<'_>,
    each: impl Fn(&T, &Path<'_>) -> Result<(), ApiError>,
) -> Result<(), ApiError> {
    let Some(items) = items else { return Ok(()) };
    check(shape, Value::List(items.len()), path)?;
    items
        .iter()
        .enumerate()
        .try_for_each(|(i, item)| each(item, &path.index(i)))
}

fn allocations_members(a: &Option<Vec<UsageAllocation>>, path: &Path<'_>) -> Result<(), ApiError> {
    list("UsageAllocations", a.as_deref(), path, |a, p| {
        opt_int(
            "AllocatedUsageQuantity",
            a.allocated_usage_quantity,
            &p.member("AllocatedUsageQuantity"),
        )?;
        opt_str(
            "AllocatedUsageQuantityAsDecimalString",
            &a.allocated_usage_quantity_as_decimal,
            &p.member("AllocatedUsageQuantityAsDecimal"),
        )?;
        list("TagList", a.tags.as_deref(), &p.member("Tags"), |t, p| {
            check("TagKey", Value::Str(&t.key), &p.member("Key"))?;
            check("TagValue", Value::Str(&t.value), &p.member("Value"))
        })
    })
}

fn record_members(r: &UsageRecord, p: &Path<'_>) -> Result<(), ApiError> {
    opt_str(
        "CustomerIdentifier",
        &r.customer_identifier,
        &p.member("CustomerIdentifier"),
    )?;
    check(
        "UsageDimension",
        Value::Str(&r.dimension),
        &p.member("Dimension"),
    )?;
    opt_int("UsageQuantity", r.quantity, &p.member("Quantity"))?;
    opt_str(
        "UsageQuantityAsDecimalString",
        &r.quantity_as_decimal,
        &p.member("QuantityAsDecimal"),
    )?;
    allocations_members(&r.usage_allocations, &p.member("UsageAllocations"))?;
    opt_str(
        "CustomerAWSAccountId",
        &r.customer_aws_account_id,
        &p.member("CustomerAWSAccountId"),
    )?;
    opt_str("LicenseArn", &r.license_arn, &p.member("LicenseArn"))
}

// ---- quantities: the one place a quantity value is computed ------------------------------

/// An (integer, decimal) member pair as one exact value; `None` kind when neither is sent
/// (the model: "Defaults to 0 if neither ... is specified"). `None` overall when both are
/// set or a value is outside its shape, which validation rejects before anyone asks.
fn quantity_of(int: Option<i64>, dec: Option<&str>) -> Option<(Quantity, Option<QuantityKind>)> {
    Some(match (int, dec) {
        (None, None) => (Quantity::ZERO, None),
        (Some(n), None) => (Quantity::from_integer(n)?, Some(QuantityKind::Integer)),
        (None, Some(s)) => (Quantity::parse_decimal(s)?, Some(QuantityKind::Decimal)),
        (Some(_), Some(_)) => return None,
    })
}

/// The exact quantity of a validated record and the member kind that carried it (`None`:
/// neither member, quantity 0). An unvalidated invalid record yields zero.
pub fn record_quantity(r: &UsageRecord) -> (Quantity, Option<QuantityKind>) {
    quantity_of(r.quantity, r.quantity_as_decimal.as_deref()).unwrap_or((Quantity::ZERO, None))
}

/// The exact usage quantity of a validated MeterUsage request (see [`record_quantity`]).
pub fn meter_usage_quantity(r: &MeterUsageRequest) -> (Quantity, Option<QuantityKind>) {
    quantity_of(r.usage_quantity, r.usage_quantity_as_decimal.as_deref())
        .unwrap_or((Quantity::ZERO, None))
}

/// The exact quantity of a validated allocation; neither member counts as 0.
/// An allocation's tags as a sorted (key, value) list: the identity of its tag set (order-insensitive).
pub fn tag_set(a: &UsageAllocation) -> Vec<(&str, &str)> {
    let mut tags: Vec<(&str, &str)> = a
        .tags
        .iter()
        .flatten()
        .map(|t| (t.key.as_str(), t.value.as_str()))
        .collect();
    tags.sort_unstable();
    tags
}

pub fn allocation_quantity(a: &UsageAllocation) -> Quantity {
    quantity_of(
        a.allocated_usage_quantity,
        a.allocated_usage_quantity_as_decimal.as_deref(),
    )
    .map_or(Quantity::ZERO, |(q, _)| q)
}

// ---- pass 2: rules spanning several members ---------------------------------------------

/// `CustomerIdentifier: ""` (always sent by the Rust SDK) and `ProductCode: ""` mean absent.
fn present(s: &Option<String>) -> bool {
    s.as_deref().is_some_and(|s| !s.is_empty())
}

fn kind_member(kind: QuantityKind, names: [&'static str; 2]) -> &'static str {
    match kind {
        QuantityKind::Integer => names[0],
        QuantityKind::Decimal => names[1],
    }
}

/// UsageRecord.Quantity / MeterUsageRequest.UsageQuantity docs: "You can't specify both";
/// then the allocations against the resulting value. `names` = (integer, decimal) members.
fn quantity_rules(
    int: Option<i64>,
    dec: Option<&str>,
    names: [&'static str; 2],
    allocations: Option<&[UsageAllocation]>,
    path: &Path<'_>,
) -> Result<(), ApiError> {
    let both = || {
        let what = format!(
            "{} and {} are mutually exclusive; send only {}",
            names[0], names[1], names[1]
        );
        // Reported at the decimal member (the one to keep); `path` may be the request root.
        violation(ErrorCode::Validation, &path.member(names[1]), None, what)
    };
    let (total, kind) = quantity_of(int, dec).ok_or_else(both)?;
    match allocations {
        Some(a) => check_allocations(total, kind, names, a, &path.member("UsageAllocations")),
        None => Ok(()),
    }
}

/// The UsageAllocations rules, identical for a UsageRecord and for MeterUsage (model docs of
/// UsageRecord.UsageAllocations, MeterUsageRequest.UsageAllocations, UsageAllocation and
/// InvalidUsageAllocationsException): exactly one quantity member per allocation (an
/// allocation with neither counts as 0), the record's quantity kind, a sum equal to the
/// record's quantity, and a unique tag set per allocation (absent Tags = the empty set).
fn check_allocations(
    total: Quantity,
    kind: Option<QuantityKind>,
    names: [&'static str; 2],
    allocations: &[UsageAllocation],
    path: &Path<'_>,
) -> Result<(), ApiError> {
    use ErrorCode::{InvalidTag, InvalidUsageAllocations};
    let mut sum = Quantity::ZERO;
    let mut tag_sets: HashSet<Vec<(&str, &str)>> = HashSet::with_capacity(allocations.len());
    for (i, a) in allocations.iter().enumerate() {
        let p = path.index(i);
        let (int, dec) = (
            a.allocated_usage_quantity,
            a.allocated_usage_quantity_as_decimal.as_deref(),
        );
        let Some((q, a_kind)) = quantity_of(int, dec) else {
            let what =
                "AllocatedUsageQuantity and AllocatedUsageQuantityAsDecimal are mutually exclusive";
            return Err(violation(InvalidUsageAllocations, &p, None, what));
        };
        if let (Some(want), Some(got)) = (kind, a_kind) {
            if want != got {
                let what = format!(
                    "allocations must use {} because the usage quantity is sent in {}",
                    kind_member(
                        want,
                        ["AllocatedUsageQuantity", "AllocatedUsageQuantityAsDecimal"]
                    ),
                    kind_member(want, names)
                );
                return Err(violation(InvalidUsageAllocations, &p, None, what));
            }
        }
        sum = sum.checked_add(q).ok_or_else(|| {
            violation(
                InvalidUsageAllocations,
                path,
                None,
                format!("allocated quantities must add up to {total}"),
            )
        })?;
        let tags = tag_set(a);
        if let Some(w) = tags.windows(2).find(|w| w[0].0 == w[1].0) {
            let what = format!(
                "tag keys must be unique within an allocation; '{}' repeats",
                truncate(w[0].0)
            );
            return Err(violation(InvalidTag, &p.member("Tags"), None, what));
        }
        if !tag_sets.insert(tags) {
            let what = "each allocation must have a unique set of tags (at most one without tags)";
            return Err(violation(InvalidUsageAllocations, &p, None, what));
        }
    }
    if sum != total {
        let what = format!(
            "allocated quantities add up to {sum} but must equal the usage quantity {total}"
        );
        return Err(violation(InvalidUsageAllocations, path, None, what));
    }
    Ok(())
}

fn truncate(s: &str) -> String {
    s.chars().take(64).collect()
}

/// A record names its customer exactly one way (BatchMeterUsageRequest.ProductCode and
/// UsageRecord.CustomerIdentifier docs): legacy `CustomerIdentifier` with the request
/// `ProductCode`, or (Concurrent Agreements) `CustomerAWSAccountId` with `LicenseArn`.
fn record_identity(r: &UsageRecord, has_product_code: bool, p: &Path<'_>) -> Result<(), ApiError> {
    let invalid = |what: &str| Err(violation(ErrorCode::Validation, p, None, what));
    let (ci, account, arn) = (
        present(&r.customer_identifier),
        r.customer_aws_account_id.is_some(),
        r.license_arn.is_some(),
    );
    match (ci, account, arn) {
        (true, false, false) if has_product_code => Ok(()),
        (true, false, false) => {
            let what = format!("ProductCode is required when records use CustomerIdentifier (as {p} does)");
            Err(violation(ErrorCode::Validation, &"ProductCode", None, what))
        }
        (true, _, _) => invalid(
            "CustomerIdentifier cannot be combined with CustomerAWSAccountId/LicenseArn; send either \
             CustomerAWSAccountId and LicenseArn, or (legacy) CustomerIdentifier with the request ProductCode",
        ),
        (false, true, true) => Ok(()),
        (false, true, false) => invalid("CustomerAWSAccountId must be sent together with LicenseArn"),
        (false, false, true) => invalid("LicenseArn must be sent together with CustomerAWSAccountId"),
        (false, false, false) => invalid(
            "the record names no customer; send CustomerAWSAccountId and LicenseArn \
             (or, for legacy integrations, CustomerIdentifier with the request ProductCode)",
        ),
    }
}

// ---- the four inputs ----------------------------------------------------------------------

const RECORD_QUANTITY: [&str; 2] = ["Quantity", "QuantityAsDecimal"];
const METER_QUANTITY: [&str; 2] = ["UsageQuantity", "UsageQuantityAsDecimal"];

impl Validate for BatchMeterUsageRequest {
    fn validate(&self) -> Result<(), ApiError> {
        let records = Path::Root.member("UsageRecords");
        list(
            "UsageRecordList",
            Some(&self.usage_records),
            &records,
            record_members,
        )?;
        opt_str(
            "ProductCode",
            &self.product_code,
            &Path::Root.member("ProductCode"),
        )?;

        let has_product_code = present(&self.product_code);
        self.usage_records
            .iter()
            .enumerate()
            .try_for_each(|(i, r)| {
                let p = records.index(i);
                record_identity(r, has_product_code, &p)?;
                let dec = r.quantity_as_decimal.as_deref();
                quantity_rules(
                    r.quantity,
                    dec,
                    RECORD_QUANTITY,
                    r.usage_allocations.as_deref(),
                    &p,
                )
            })
    }
}

impl Validate for MeterUsageRequest {
    fn validate(&self) -> Result<(), ApiError> {
        let root = Path::Root;
        check(
            "ProductCode",
            Value::Str(&self.product_code),
            &root.member("ProductCode"),
        )?;
        check(
            "UsageDimension",
            Value::Str(&self.usage_dimension),
            &root.member("UsageDimension"),
        )?;
        opt_int(
            "UsageQuantity",
            self.usage_quantity,
            &root.member("UsageQuantity"),
        )?;
        let dec = &self.usage_quantity_as_decimal;
        opt_str(
            "UsageQuantityAsDecimalString",
            dec,
            &root.member("UsageQuantityAsDecimal"),
        )?;
        allocations_members(&self.usage_allocations, &root.member("UsageAllocations"))?;
        opt_str(
            "ClientToken",
            &self.client_token,
            &root.member("ClientToken"),
        )?;

        let allocations = self.usage_allocations.as_deref();
        quantity_rules(
            self.usage_quantity,
            dec.as_deref(),
            METER_QUANTITY,
            allocations,
            &root,
        )
    }
}

impl Validate for RegisterUsageRequest {
    fn validate(&self) -> Result<(), ApiError> {
        let root = Path::Root;
        check(
            "ProductCode",
            Value::Str(&self.product_code),
            &root.member("ProductCode"),
        )?;
        check(
            "VersionInteger",
            Value::Int(self.public_key_version),
            &root.member("PublicKeyVersion"),
        )?;
        opt_str("Nonce", &self.nonce, &root.member("Nonce"))
    }
}

impl Validate for ResolveCustomerRequest {
    fn validate(&self) -> Result<(), ApiError> {
        let token = Value::Str(&self.registration_token);
        check(
            "NonEmptyString",
            token,
            &Path::Root.member("RegistrationToken"),
        )
    }
}

// ---- decoding: a missing required member is a validation error ---------------------------

/// For `decode_json`: a required member that is missing (or JSON `null`, which awsJson treats
/// as absent) is a ValidationException "Member must not be null" naming the member, like an
/// AWS front end; every other decoding failure stays a SerializationException.
pub(crate) fn missing_member_error(
    path: &serde_path_to_error::Path,
    err: &serde_json::Error,
) -> Option<ApiError> {
    use serde_path_to_error::Segment;
    if !err.is_data() {
        return None;
    }
    let mut at: Vec<String> = path
        .iter()
        .map(|s| match s {
            Segment::Seq { index } => (index + 1).to_string(),
            Segment::Map { key } => key.clone(),
            Segment::Enum { variant } => variant.clone(),
            Segment::Unknown => "?".to_string(),
        })
        .collect();
    let msg = err.to_string();
    if let Some(rest) = msg.strip_prefix("missing field `") {
        // Reported at the enclosing structure; the member name is in the message.
        at.push(rest.split('`').next()?.to_string());
    } else if !msg.starts_with("invalid type: null") {
        return None;
    }
    Some(ApiError::new(
        ErrorCode::Validation,
        format!("1 validation error detected: Value null at '{}' failed to satisfy constraint: Member must not be null", at.join(".")),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::operation::{decode_request, Operation};
    use proptest::prelude::*;
    use serde_json::{json, Value as Json};

    const T: i64 = 1_795_402_800;
    const ARN: &str = "arn:aws:license-manager::123456789012:license/l-0123456789abcdef";

    fn rep(c: char, n: usize) -> String {
        std::iter::repeat_n(c, n).collect()
    }

    /// A value the table can check, owned so cases can be built in a table.
    #[derive(Debug)]
    enum V {
        S(String),
        I(i64),
        L(usize),
    }
    impl V {
        fn as_value(&self) -> Value<'_> {
            match self {
                V::S(s) => Value::Str(s),
                V::I(n) => Value::Int(*n),
                V::L(n) => Value::List(*n),
            }
        }
    }
    fn s(v: &str) -> V {
        V::S(v.to_string())
    }

    /// Per shape: values at the bounds that pass and values one past (or off-pattern) that fail.
    #[rustfmt::skip]
    fn boundary_cases() -> Vec<(&'static str, Vec<V>, Vec<V>)> {
        use V::{I, L, S};
        let max = 2_147_483_647;
        let decimal_ok = || vec![s("0"), s("1234567890.123456"), s("0.000001"), s("17.0")];
        let decimal_bad = || {
            ["", "01", "1.", ".5", "-1", "+1", "1e3", "12345678901", "1.1234567", "12345678901.123456", " 1"]
                .map(s).into()
        };
        let arn_max = format!("arn:aws:s:::{}", rep('a', 1024));
        let arn_over = format!("arn:aws:s:::{}", rep('a', 1025));
        vec![
            ("AgreementId", vec![s("a"), S(rep('a', 64)), s("agmt-1/x_y")], vec![s(""), S(rep('a', 65)), s("!")]),
            ("AllocatedUsageQuantity", vec![I(0), I(max)], vec![I(-1), I(max + 1)]),
            ("AllocatedUsageQuantityAsDecimalString", decimal_ok(), decimal_bad()),
            ("ClientToken", vec![s("t"), S(rep('t', 64)), s("ü")], vec![s(""), S(rep('t', 65))]),
            ("CustomerAWSAccountId", vec![s("1"), S(rep('1', 255))], vec![s(""), S(rep('1', 256)), s("12a"), s(" 1")]),
            ("CustomerIdentifier", vec![s(""), S(rep('c', 255)), s("\n")], vec![S(rep('c', 256))]),
            ("LicenseArn", vec![s(ARN), s("arn:aws-us-gov:s:::r"), S(arn_max)],
                vec![s(""), s("arn:aws:s"), s("arn:aws::::r"), s("arn:aws:s:::-r"), s("x arn:aws:s:::r"), S(arn_over)]),
            ("NonEmptyString", vec![s("x"), S(rep('x', 10_000))], vec![s("")]),
            ("Nonce", vec![s(""), S(rep('n', 255))], vec![S(rep('n', 256))]),
            ("ProductCode", vec![s(""), S(rep('p', 255)), s("-aZ09/=:_.@")], vec![S(rep('p', 256)), s("a b"), s("é")]),
            ("TagKey", vec![s("k"), S(rep('k', 100)), s("a b=c")], vec![s(""), S(rep('k', 101)), s("k?"), s("é")]),
            ("TagList", vec![L(1), L(5)], vec![L(0), L(6)]),
            ("TagValue", vec![s("v"), S(rep('v', 256))], vec![s(""), S(rep('v', 257)), s("v>")]),
            ("UsageAllocations", vec![L(1), L(2500)], vec![L(0), L(2501)]),
            ("UsageDimension", vec![s("d"), S(rep('d', 255)), S(rep('é', 255))], vec![s(""), S(rep('d', 256))]),
            ("UsageQuantity", vec![I(0), I(max)], vec![I(-1), I(max + 1), I(i64::MIN)]),
            ("UsageQuantityAsDecimalString", decimal_ok(), decimal_bad()),
            ("UsageRecordList", vec![L(0), L(25)], vec![L(26)]),
            ("UsageRecordResultStatus", ["Success", "CustomerNotSubscribed", "DuplicateRecord"].map(s).into(),
                vec![s("success"), s("")]),
            ("VersionInteger", vec![I(1), I(i64::MAX)], vec![I(0), I(-1)]),
        ]
    }

    #[test]
    fn every_table_entry_at_and_past_its_bounds() {
        let cases = boundary_cases();
        for c in constraints::CONSTRAINTS {
            assert!(
                cases.iter().any(|(shape, ..)| *shape == c.shape),
                "no boundary case for {}",
                c.shape
            );
        }
        for (shape, ok, bad) in &cases {
            for v in ok {
                assert_eq!(
                    check(shape, v.as_value(), &Path::Root.member("M")),
                    Ok(()),
                    "{shape} {v:?}"
                );
            }
            for v in bad {
                let e = check(shape, v.as_value(), &Path::Root.member("M")).unwrap_err();
                assert_eq!(
                    e.code,
                    constraints::lookup(shape).unwrap().code,
                    "{shape} {v:?}"
                );
                assert!(
                    e.message.starts_with("1 validation error detected: Value"),
                    "{}",
                    e.message
                );
                assert!(e.message.len() < 400, "value echoed in full: {}", e.message);
            }
        }
    }

    #[test]
    fn error_codes_follow_the_shape_family() {
        for c in constraints::CONSTRAINTS {
            let want = match c.shape {
                "TagKey" | "TagValue" | "TagList" => ErrorCode::InvalidTag,
                "UsageAllocations"
                | "AllocatedUsageQuantity"
                | "AllocatedUsageQuantityAsDecimalString" => ErrorCode::InvalidUsageAllocations,
                _ => ErrorCode::Validation,
            };
            assert_eq!(c.code, want, "{}", c.shape);
        }
    }

    fn decode(op: Operation, body: &Json) -> Result<(), ApiError> {
        decode_request(op, body.to_string().as_bytes()).map(|_| ())
    }

    fn record(extra: Json) -> Json {
        let mut r = json!({"Timestamp": T, "Dimension": "d", "CustomerAWSAccountId": "123456789012", "LicenseArn": ARN});
        r.as_object_mut()
            .unwrap()
            .extend(extra.as_object().unwrap().clone());
        r.as_object_mut().unwrap().retain(|_, v| !v.is_null()); // null in `extra` removes a member
        r
    }

    fn batch(records: Json) -> Json {
        json!({ "UsageRecords": records })
    }

    fn meter(extra: Json) -> Json {
        let mut m = json!({"ProductCode": "prod", "Timestamp": T, "UsageDimension": "d"});
        m.as_object_mut()
            .unwrap()
            .extend(extra.as_object().unwrap().clone());
        m
    }

    fn alloc(q: Json, tags: &[(&str, &str)]) -> Json {
        let mut a = match q {
            Json::Number(_) => json!({ "AllocatedUsageQuantity": q }),
            Json::String(_) => json!({ "AllocatedUsageQuantityAsDecimal": q }),
            _ => json!({}),
        };
        if !tags.is_empty() {
            a["Tags"] = tags
                .iter()
                .map(|(k, v)| json!({"Key": k, "Value": v}))
                .collect();
        }
        a
    }

    type Case = (&'static str, Operation, Json, Result<(), ErrorCode>);

    #[rustfmt::skip]
    fn cross_member_cases() -> Vec<Case> {
        use ErrorCode::{InvalidTag as Tag, InvalidUsageAllocations as Alloc, Validation as Val};
        use Operation::{BatchMeterUsage as B, MeterUsage as M, RegisterUsage as R, ResolveCustomer};
        let legacy = json!({"Timestamp": T, "Dimension": "d", "CustomerIdentifier": "cust"});
        let one = |extra: Json| batch(json!([record(extra)]));
        let with_allocs = |q: Json, allocs: Vec<Json>| {
            one(match q {
                Json::String(_) => json!({"QuantityAsDecimal": q, "UsageAllocations": allocs}),
                Json::Null => json!({"UsageAllocations": allocs}),
                _ => json!({"Quantity": q, "UsageAllocations": allocs}),
            })
        };
        let six_tags = [("a", "1"), ("b", "1"), ("c", "1"), ("d", "1"), ("e", "1"), ("f", "1")];
        vec![
            // Identity.
            ("concurrent agreements", B, one(json!({})), Ok(())),
            ("empty batch", B, batch(json!([])), Ok(())),
            ("legacy with product code", B, json!({"ProductCode": "p", "UsageRecords": [legacy]}), Ok(())),
            ("legacy without product code", B, batch(json!([legacy])), Err(Val)),
            ("legacy with empty product code", B, json!({"ProductCode": "", "UsageRecords": [legacy]}), Err(Val)),
            ("empty CustomerIdentifier is absent", B, one(json!({"CustomerIdentifier": ""})), Ok(())),
            ("both identities", B, one(json!({"CustomerIdentifier": "c"})), Err(Val)),
            ("account without arn", B, one(json!({"LicenseArn": null})), Err(Val)),
            ("arn without account", B, one(json!({"CustomerAWSAccountId": null})), Err(Val)),
            ("no identity", B, one(json!({"LicenseArn": null, "CustomerAWSAccountId": null, "CustomerIdentifier": ""})), Err(Val)),
            // Quantities.
            ("integer quantity", B, one(json!({"Quantity": 2_147_483_647})), Ok(())),
            ("decimal quantity", B, one(json!({"QuantityAsDecimal": "0.5"})), Ok(())),
            ("both quantities", B, one(json!({"Quantity": 1, "QuantityAsDecimal": "1"})), Err(Val)),
            ("quantity past i32", B, one(json!({"Quantity": 2_147_483_648_i64})), Err(Val)),
            ("negative quantity", B, one(json!({"Quantity": -1})), Err(Val)),
            ("meter both quantities", M, meter(json!({"UsageQuantity": 1, "UsageQuantityAsDecimal": "1"})), Err(Val)),
            ("meter bad decimal", M, meter(json!({"UsageQuantityAsDecimal": "1.0000001"})), Err(Val)),
            // Allocations.
            ("sum matches", B, with_allocs(json!(5), vec![alloc(json!(2), &[("a", "1")]), alloc(json!(3), &[])]), Ok(())),
            ("sum short", B, with_allocs(json!(5), vec![alloc(json!(2), &[("a", "1")]), alloc(json!(2), &[])]), Err(Alloc)),
            ("decimal sum exact", B, with_allocs(json!("0.3"), vec![alloc(json!("0.1"), &[("a", "1")]), alloc(json!("0.2"), &[])]), Ok(())),
            ("decimal sum off by a micro", B, with_allocs(json!("0.3"), vec![alloc(json!("0.299999"), &[])]), Err(Alloc)),
            ("integer record, decimal allocation", B, with_allocs(json!(1), vec![alloc(json!("1"), &[])]), Err(Alloc)),
            ("decimal record, integer allocation", B, with_allocs(json!("1"), vec![alloc(json!(1), &[])]), Err(Alloc)),
            ("allocation with both members", B,
                with_allocs(json!(1), vec![json!({"AllocatedUsageQuantity": 1, "AllocatedUsageQuantityAsDecimal": "0"})]), Err(Alloc)),
            ("no record quantity takes integer zero", B, with_allocs(Json::Null, vec![alloc(json!(0), &[])]), Ok(())),
            ("no record quantity takes decimal zero", B, with_allocs(Json::Null, vec![alloc(json!("0"), &[])]), Ok(())),
            ("no record quantity is zero", B, with_allocs(Json::Null, vec![alloc(json!(1), &[])]), Err(Alloc)),
            ("empty allocation counts 0", B, with_allocs(json!(2), vec![alloc(json!(2), &[("a", "1")]), alloc(Json::Null, &[])]), Ok(())),
            ("same tag set in another order", B,
                with_allocs(json!(2), vec![alloc(json!(1), &[("a", "1"), ("b", "2")]), alloc(json!(1), &[("b", "2"), ("a", "1")])]), Err(Alloc)),
            ("two untagged allocations", B, with_allocs(json!(2), vec![alloc(json!(1), &[]), alloc(json!(1), &[])]), Err(Alloc)),
            ("tag sets differing in a value", B,
                with_allocs(json!(2), vec![alloc(json!(1), &[("a", "1")]), alloc(json!(1), &[("a", "2")])]), Ok(())),
            ("duplicate tag key", B, with_allocs(json!(2), vec![alloc(json!(2), &[("a", "1"), ("a", "2")])]), Err(Tag)),
            ("six tags", B, with_allocs(json!(1), vec![alloc(json!(1), &six_tags)]), Err(Tag)),
            ("empty allocations list", B, with_allocs(json!(1), vec![]), Err(Alloc)),
            ("meter allocations sum", M, meter(json!({"UsageQuantity": 3, "UsageAllocations": [alloc(json!(3), &[("k", "v")])]})), Ok(())),
            ("meter allocations short", M, meter(json!({"UsageQuantity": 3, "UsageAllocations": [alloc(json!(2), &[("k", "v")])]})), Err(Alloc)),
            ("meter kind mismatch", M, meter(json!({"UsageQuantityAsDecimal": "3", "UsageAllocations": [alloc(json!(3), &[])]})), Err(Alloc)),
            ("meter duplicate tag set", M, meter(json!({"UsageQuantityAsDecimal": "3",
                "UsageAllocations": [alloc(json!("1"), &[("k", "v")]), alloc(json!("2"), &[("k", "v")])]})), Err(Alloc)),
            ("meter duplicate tag key", M, meter(json!({"UsageAllocations": [alloc(json!(0), &[("k", "v"), ("k", "w")])]})), Err(Tag)),
            // Required members (decode_json) and types.
            ("meter without timestamp", M, json!({"ProductCode": "p", "UsageDimension": "d"}), Err(Val)),
            ("record without dimension", B, one(json!({"Dimension": null})), Err(Val)),
            ("null required member", M, meter(json!({"UsageDimension": null})), Err(Val)),
            ("tag without value", M, meter(json!({"UsageAllocations": [{"Tags": [{"Key": "k"}]}]})), Err(Val)),
            ("empty body", ResolveCustomer, json!({}), Err(Val)),
            ("wrong type", M, meter(json!({"UsageQuantity": "3"})), Err(ErrorCode::Serialization)),
            ("float for integer", M, meter(json!({"UsageQuantity": 1.5})), Err(ErrorCode::Serialization)),
            ("register", R, json!({"ProductCode": "p", "PublicKeyVersion": 1, "Nonce": ""}), Ok(())),
            ("register version 0", R, json!({"ProductCode": "p", "PublicKeyVersion": 0}), Err(Val)),
        ]
    }

    #[test]
    fn cross_member_rules() {
        for (name, op, body, want) in cross_member_cases() {
            let got = decode(op, &body).map_err(|e| e.code);
            assert_eq!(got, want, "{name}: {body}");
        }
    }

    #[test]
    fn messages_name_the_member_and_constraint() {
        let bad = rep('x', 300);
        let records = json!([
            record(json!({})),
            record(json!({})),
            record(json!({"Dimension": bad}))
        ]);
        let e = decode(Operation::BatchMeterUsage, &batch(records)).unwrap_err();
        assert_eq!(
            e.message,
            format!(
                "1 validation error detected: Value '{}...' at 'UsageRecords.3.Dimension' failed to satisfy \
                 constraint: Member must have length less than or equal to 255",
                rep('x', 64)
            )
        );
        let legacy = json!({"Timestamp": T, "Dimension": "d", "CustomerIdentifier": "cust"});
        let e = decode(Operation::BatchMeterUsage, &batch(json!([legacy]))).unwrap_err();
        assert!(
            e.message
                .contains("ProductCode is required when records use CustomerIdentifier"),
            "{}",
            e.message
        );
        let e = decode(
            Operation::BatchMeterUsage,
            &batch(json!([record(json!({"LicenseArn": null}))])),
        )
        .unwrap_err();
        assert!(
            e.message.contains("'UsageRecords.1'") && e.message.contains("LicenseArn"),
            "{}",
            e.message
        );
        let body = meter(json!({"UsageAllocations": [{"Tags": [{"Key": "k"}]}]}));
        let e = decode(Operation::MeterUsage, &body).unwrap_err();
        assert_eq!(
            e.message,
            "1 validation error detected: Value null at 'UsageAllocations.1.Tags.1.Value' failed to satisfy \
             constraint: Member must not be null"
        );
        let body = meter(json!({"UsageQuantity": 1, "UsageQuantityAsDecimal": "1"}));
        let e = decode(Operation::MeterUsage, &body).unwrap_err().message;
        assert!(
            e.contains("at 'UsageQuantityAsDecimal'") && e.contains("exclusive"),
            "{e}"
        );
        let e = decode(
            Operation::MeterUsage,
            &json!({"ProductCode": "p", "UsageDimension": "d"}),
        )
        .unwrap_err();
        assert!(e.message.contains("at 'Timestamp'"), "{}", e.message);
        let body = meter(json!({"UsageQuantity": 4, "UsageAllocations": [alloc(json!(1), &[])]}));
        let e = decode(Operation::MeterUsage, &body).unwrap_err();
        assert!(
            e.message
                .contains("add up to 1 but must equal the usage quantity 4"),
            "{}",
            e.message
        );
        assert!(e.message.contains("at 'UsageAllocations'"), "{}", e.message);
    }

    #[test]
    fn quantities_are_exact_and_computed_once() {
        let r: UsageRecord =
            serde_json::from_value(record(json!({"QuantityAsDecimal": "17.50"}))).unwrap();
        assert_eq!(
            record_quantity(&r),
            (
                Quantity::parse_decimal("17.5").unwrap(),
                Some(QuantityKind::Decimal)
            )
        );
        let r: UsageRecord = serde_json::from_value(record(json!({"Quantity": 17}))).unwrap();
        assert_eq!(
            record_quantity(&r),
            (
                Quantity::from_integer(17).unwrap(),
                Some(QuantityKind::Integer)
            )
        );
        let r: UsageRecord = serde_json::from_value(record(json!({}))).unwrap();
        assert_eq!(record_quantity(&r), (Quantity::ZERO, None));
        let m: MeterUsageRequest =
            serde_json::from_value(meter(json!({"UsageQuantityAsDecimal": "0.000001"}))).unwrap();
        assert_eq!(
            meter_usage_quantity(&m),
            (Quantity::from_micros(1), Some(QuantityKind::Decimal))
        );
        assert_eq!(
            allocation_quantity(&UsageAllocation::default()),
            Quantity::ZERO
        );
        let a: UsageAllocation = serde_json::from_value(alloc(json!("2.25"), &[])).unwrap();
        assert_eq!(allocation_quantity(&a), Quantity::from_micros(2_250_000));
    }

    #[test]
    fn allocation_sum_overflow_is_rejected_not_wrapped() {
        let big = "9999999999.999999";
        let allocs: Vec<Json> = (0..2000)
            .map(|i| alloc(json!(big), &[("n", &i.to_string())]))
            .collect();
        let body = meter(json!({"UsageQuantityAsDecimal": big, "UsageAllocations": allocs}));
        assert_eq!(
            decode(Operation::MeterUsage, &body).unwrap_err().code,
            ErrorCode::InvalidUsageAllocations
        );
    }

    proptest! {
        #[test]
        fn decimal_strings_of_the_model_pattern_are_accepted_exactly(
            s in r"(0|[1-9][0-9]{0,9})(\.[0-9]{1,6})?"
        ) {
            let body = batch(json!([record(json!({"QuantityAsDecimal": s}))]));
            prop_assert_eq!(decode(Operation::BatchMeterUsage, &body), Ok(()));
            let r: UsageRecord = serde_json::from_value(body["UsageRecords"][0].clone()).unwrap();
            prop_assert_eq!(record_quantity(&r).0, Quantity::parse_decimal(&s).unwrap());
        }

        #[test]
        fn dimension_length_is_counted_in_code_points(
            chars in proptest::collection::vec(any::<char>(), 0..=300)
        ) {
            let (n, s) = (chars.len(), String::from_iter(chars));
            let got = decode(Operation::MeterUsage, &meter(json!({"UsageDimension": s})));
            prop_assert_eq!(got.is_ok(), (1..=255).contains(&n));
        }

        /// Any exact split of a quantity over distinct tag sets is accepted; one micro more is not.
        #[test]
        fn exact_splits_pass_and_any_drift_fails(
            parts in proptest::collection::vec(0u64..=1_000_000_000_000, 1..12),
            bump in any::<prop::sample::Index>(),
        ) {
            let total: u64 = parts.iter().sum();
            let allocs = |parts: &[u64]| -> Vec<Json> {
                parts.iter().enumerate().map(|(i, p)| {
                    alloc(json!(Quantity::from_micros(*p).to_string()), &[("bucket", &i.to_string())])
                }).collect()
            };
            let total_s = Quantity::from_micros(total).to_string();
            let body = meter(json!({"UsageQuantityAsDecimal": total_s, "UsageAllocations": allocs(&parts)}));
            prop_assert_eq!(decode(Operation::MeterUsage, &body), Ok(()));
            let mut drifted = parts.clone();
            drifted[bump.index(parts.len())] += 1;
            let body = meter(json!({"UsageQuantityAsDecimal": total_s, "UsageAllocations": allocs(&drifted)}));
            prop_assert_eq!(decode(Operation::MeterUsage, &body).map_err(|e| e.code), Err(ErrorCode::InvalidUsageAllocations));
        }

        /// Tag order never matters: a reordered copy of a tag set is the same bucket.
        #[test]
        fn tag_sets_compare_order_insensitively(n in 1usize..=5, rot in 0usize..5) {
            let tags: Vec<(String, String)> = (0..n).map(|i| (format!("k{i}"), format!("v{i}"))).collect();
            let mut rotated = tags.clone();
            rotated.rotate_left(rot % n);
            fn as_refs(t: &[(String, String)]) -> Vec<(&str, &str)> {
                t.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect()
            }
            let body = meter(json!({"UsageQuantity": 2, "UsageAllocations": [
                alloc(json!(1), &as_refs(&tags)), alloc(json!(1), &as_refs(&rotated))]}));
            prop_assert_eq!(decode(Operation::MeterUsage, &body).map_err(|e| e.code), Err(ErrorCode::InvalidUsageAllocations));
        }
    }
}
