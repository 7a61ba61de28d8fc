//! The constraint table: every shape of the botocore model that carries `min`, `max`,
//! `pattern` or `enum`, copied verbatim and keyed by the model's shape name, plus the error
//! code the server raises when a request member violates it. `validate.rs` walks the request
//! shapes and asks this table; `tests/model_constraints.rs` proves the table equals the model.
//!
//! Semantics (PROTOCOL.md §4 "Pattern notes"):
//! * Patterns are ECMA-262 style and are **not anchored** unless they say `^…$`, so they are
//!   applied with an unanchored search (`Regex::is_match`): `[\s\S]+` only means non-empty.
//! * The tag pattern `^[a-zA-Z0-9+ -=._:\/@]+$` is applied literally as a regex, i.e. ` -=`
//!   inside the class is the range U+0020..=U+003D (which also admits `!"#$%&'()*,;<`). The
//!   Seller Guide reads it as a list of characters, but which one the service applies is
//!   unverified; taking the model literally never rejects what a real endpoint might accept.
//! * String lengths count Unicode code points (Smithy `length`), list lengths count items,
//!   integer bounds are inclusive values.

use crate::error::ErrorCode;
use regex::Regex;
use std::collections::HashMap;
use std::fmt;
use std::sync::LazyLock;

/// The model's `type` of a constrained shape; decides what `min`/`max` measure.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ShapeType {
    String,
    Integer,
    List,
}

impl ShapeType {
    /// The botocore spelling (`"string"`, `"integer"`, `"list"`).
    pub fn model_name(self) -> &'static str {
        match self {
            Self::String => "string",
            Self::Integer => "integer",
            Self::List => "list",
        }
    }
}

/// One row of the table: the model's constraints of one shape and the error to raise.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Constraint {
    pub shape: &'static str,
    pub shape_type: ShapeType,
    pub min: Option<i64>,
    pub max: Option<i64>,
    /// Verbatim from the model.
    pub pattern: Option<&'static str>,
    pub enum_values: Option<&'static [&'static str]>,
    pub code: ErrorCode,
}

/// A request member's value as the table sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Value<'a> {
    Str(&'a str),
    Int(i64),
    /// A list, by its number of items.
    List(usize),
}

/// Which constraint a value broke; `Display` is the AWS wording ("Member must ...").
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Violation {
    MinLength(i64),
    MaxLength(i64),
    MinValue(i64),
    MaxValue(i64),
    Pattern(&'static str),
    Enum(&'static [&'static str]),
}

impl fmt::Display for Violation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::MinLength(n) => write!(f, "Member must have length greater than or equal to {n}"),
            Self::MaxLength(n) => write!(f, "Member must have length less than or equal to {n}"),
            Self::MinValue(n) => write!(f, "Member must have value greater than or equal to {n}"),
            Self::MaxValue(n) => write!(f, "Member must have value less than or equal to {n}"),
            Self::Pattern(p) => write!(f, "Member must satisfy regular expression pattern: {p}"),
            Self::Enum(v) => write!(f, "Member must satisfy enum value set: [{}]", v.join(", ")),
        }
    }
}

use ErrorCode::{InvalidTag, InvalidUsageAllocations, Validation};
use ShapeType::{Integer, List, String as Str};

const INT_MAX: i64 = 2_147_483_647;
const DECIMAL: &str = r"^(0|[1-9][0-9]{0,9})(\.[0-9]{1,6})?$";
const TAG: &str = r"^[a-zA-Z0-9+ -=._:\/@]+$";

/// Shorthand for a table row (keeps the table one line per shape).
const fn row(
    shape: &'static str,
    shape_type: ShapeType,
    min: Option<i64>,
    max: Option<i64>,
    pattern: Option<&'static str>,
    code: ErrorCode,
) -> Constraint {
    Constraint {
        shape,
        shape_type,
        min,
        max,
        pattern,
        enum_values: None,
        code,
    }
}

/// Every constrained shape of the model, input and output alike, so the table mirrors the
/// model one to one. Codes: tag shapes -> InvalidTag and allocation shapes ->
/// InvalidUsageAllocations (their exception docs cover those failures), the rest Validation.
#[rustfmt::skip]
pub static CONSTRAINTS: &[Constraint] = &[
    row("AgreementId", Str, Some(1), Some(64), Some(r"[A-Za-z0-9_/-]+"), Validation),
    row("AllocatedUsageQuantity", Integer, Some(0), Some(INT_MAX), None, InvalidUsageAllocations),
    row("AllocatedUsageQuantityAsDecimalString", Str, Some(1), Some(17), Some(DECIMAL), InvalidUsageAllocations),
    row("ClientToken", Str, Some(1), Some(64), None, Validation),
    row("CustomerAWSAccountId", Str, Some(1), Some(255), Some(r"^[0-9]+$"), Validation),
    row("CustomerIdentifier", Str, Some(0), Some(255), Some(r"[\s\S]*"), Validation),
    row("LicenseArn", Str, None, None, Some(r"^arn:aws[a-zA-Z-]*:[A-Za-z0-9][A-Za-z0-9_/.-]{0,62}:[A-Za-z0-9_/.-]{0,63}:[A-Za-z0-9_/.-]{0,63}:[A-Za-z0-9][A-Za-z0-9:_/+=,@.-]{0,1023}$"), Validation),
    row("NonEmptyString", Str, None, None, Some(r"[\s\S]+"), Validation),
    row("Nonce", Str, None, Some(255), Some(r"[\s\S]*"), Validation),
    row("ProductCode", Str, Some(0), Some(255), Some(r"^[-a-zA-Z0-9/=:_.@]*$"), Validation),
    row("TagKey", Str, Some(1), Some(100), Some(TAG), InvalidTag),
    row("TagList", List, Some(1), Some(5), None, InvalidTag),
    row("TagValue", Str, Some(1), Some(256), Some(TAG), InvalidTag),
    row("UsageAllocations", List, Some(1), Some(2500), None, InvalidUsageAllocations),
    row("UsageDimension", Str, Some(1), Some(255), Some(r"[\s\S]+"), Validation),
    row("UsageQuantity", Integer, Some(0), Some(INT_MAX), None, Validation),
    row("UsageQuantityAsDecimalString", Str, Some(1), Some(17), Some(DECIMAL), Validation),
    row("UsageRecordList", List, Some(0), Some(25), None, Validation),
    Constraint {
        enum_values: Some(&["Success", "CustomerNotSubscribed", "DuplicateRecord"]),
        ..row("UsageRecordResultStatus", Str, None, None, None, Validation)
    },
    row("VersionInteger", Integer, Some(1), None, None, Validation),
];

/// Patterns compiled once, keyed by shape name.
static PATTERNS: LazyLock<HashMap<&'static str, Regex>> = LazyLock::new(|| {
    CONSTRAINTS
        .iter()
        .filter_map(|c| {
            let p = c.pattern?;
            Some((
                c.shape,
                Regex::new(p).unwrap_or_else(|e| panic!("pattern of {}: {e}", c.shape)),
            ))
        })
        .collect()
});

/// Rows by shape name (validation looks a shape up for every member it checks).
static INDEX: LazyLock<HashMap<&'static str, &'static Constraint>> =
    LazyLock::new(|| CONSTRAINTS.iter().map(|c| (c.shape, c)).collect());

/// The table row of a model shape, if that shape is constrained.
pub fn lookup(shape: &str) -> Option<&'static Constraint> {
    INDEX.get(shape).copied()
}

impl Constraint {
    /// The compiled pattern (unanchored search semantics, see the module docs).
    pub fn regex(&self) -> Option<&'static Regex> {
        PATTERNS.get(self.shape)
    }

    /// The one generic check: bounds (length or value per the value's kind), then pattern,
    /// then enum. Returns the first constraint broken.
    pub fn check(&self, value: Value<'_>) -> Result<(), Violation> {
        // What min/max bound: the value of an integer, the length of a string or list.
        let (n, measures_length) = match value {
            Value::Int(v) => (v, false),
            Value::List(len) => (len_i64(len), true),
            Value::Str(s) => (len_i64(s.chars().count()), true),
        };
        let too_small = |m| {
            if measures_length {
                Violation::MinLength(m)
            } else {
                Violation::MinValue(m)
            }
        };
        let too_big = |m| {
            if measures_length {
                Violation::MaxLength(m)
            } else {
                Violation::MaxValue(m)
            }
        };
        if let Some(min) = self.min.filter(|&min| n < min) {
            return Err(too_small(min));
        }
        if let Some(max) = self.max.filter(|&max| n > max) {
            return Err(too_big(max));
        }
        if let Value::Str(s) = value {
            if let (Some(p), Some(re)) = (self.pattern, self.regex()) {
                if !re.is_match(s) {
                    return Err(Violation::Pattern(p));
                }
            }
            if let Some(values) = self.enum_values.filter(|v| !v.contains(&s)) {
                return Err(Violation::Enum(values));
            }
        }
        Ok(())
    }
}

fn len_i64(n: usize) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_pattern_compiles_and_names_are_unique() {
        assert_eq!(
            PATTERNS.len(),
            CONSTRAINTS.iter().filter(|c| c.pattern.is_some()).count()
        );
        assert_eq!(INDEX.len(), CONSTRAINTS.len());
    }

    #[test]
    fn patterns_are_unanchored_unless_they_say_so() {
        let dim = lookup("UsageDimension").unwrap();
        assert!(
            dim.regex().unwrap().is_match("\n"),
            "[\\s\\S]+ means non-empty, any char"
        );
        let agreement = lookup("AgreementId").unwrap();
        // Not anchored: a valid run anywhere is enough (length still bounds it).
        assert_eq!(agreement.check(Value::Str("!!a!!")), Ok(()));
        assert!(agreement.check(Value::Str("!!")).is_err());
        let account = lookup("CustomerAWSAccountId").unwrap();
        assert!(account.check(Value::Str("12a")).is_err());
    }

    #[test]
    fn tag_pattern_space_to_equals_is_a_range() {
        let key = lookup("TagKey").unwrap();
        for ok in ["a", "k=v", "a b", "!\"#$%&'()*,;<", "0-9", "@/:._+"] {
            assert_eq!(key.check(Value::Str(ok)), Ok(()), "{ok:?}");
        }
        for bad in [">", "?", "a\tb", "é", "[x]", "a\n"] {
            assert_eq!(
                key.check(Value::Str(bad)),
                Err(Violation::Pattern(TAG)),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn lengths_count_code_points() {
        let dim = lookup("UsageDimension").unwrap();
        assert_eq!(dim.check(Value::Str(&"é".repeat(255))), Ok(())); // 510 bytes
        assert_eq!(
            dim.check(Value::Str(&"😀".repeat(256))),
            Err(Violation::MaxLength(255))
        );
    }

    #[test]
    fn enum_and_messages() {
        let status = lookup("UsageRecordResultStatus").unwrap();
        assert_eq!(status.check(Value::Str("Success")), Ok(()));
        let e = status.check(Value::Str("success")).unwrap_err();
        assert_eq!(
            e.to_string(),
            "Member must satisfy enum value set: [Success, CustomerNotSubscribed, DuplicateRecord]"
        );
        let q = lookup("UsageQuantity").unwrap();
        assert_eq!(
            q.check(Value::Int(-1)).unwrap_err().to_string(),
            "Member must have value greater than or equal to 0"
        );
        let l = lookup("UsageRecordList").unwrap();
        assert_eq!(
            l.check(Value::List(26)).unwrap_err().to_string(),
            "Member must have length less than or equal to 25"
        );
    }
}
