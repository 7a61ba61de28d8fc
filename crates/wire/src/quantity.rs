//! Exact fixed-point usage quantities. Both model members (integer `Quantity` and the decimal
//! string `QuantityAsDecimal`) become micro-units, so equality is by value: 17 == "17.000000".

use std::fmt;

/// Fraction digits kept: the model's decimal pattern allows at most six.
pub const SCALE_DIGITS: u32 = 6;
const SCALE: u64 = 1_000_000;

/// A non-negative quantity in millionths of a unit.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Quantity(u64);

/// Which model member carried a quantity: allocations must use the same kind as their record.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum QuantityKind {
    Integer,
    Decimal,
}

impl Quantity {
    pub const ZERO: Quantity = Quantity(0);

    pub fn from_micros(micros: u64) -> Self {
        Self(micros)
    }

    pub fn micros(self) -> u64 {
        self.0
    }

    /// From the integer member; `None` when negative (the constraint table rejects those first).
    pub fn from_integer(v: i64) -> Option<Self> {
        u64::try_from(v).ok()?.checked_mul(SCALE).map(Self)
    }

    /// Parses a decimal string of the model's shape `(0|[1-9][0-9]{0,9})(\.[0-9]{1,6})?`.
    /// Returns `None` for anything else (sign, exponent, leading zeros, >6 fraction digits).
    pub fn parse_decimal(s: &str) -> Option<Self> {
        let (int, frac) = match s.split_once('.') {
            Some((i, f)) => (i, Some(f)),
            None => (s, None),
        };
        let int_ok = int == "0"
            || (!int.is_empty()
                && int.len() <= 10
                && !int.starts_with('0')
                && int.bytes().all(|b| b.is_ascii_digit()));
        if !int_ok {
            return None;
        }
        let mut micros: u64 = int.parse::<u64>().ok()?.checked_mul(SCALE)?;
        if let Some(f) = frac {
            if f.is_empty()
                || f.len() > SCALE_DIGITS as usize
                || !f.bytes().all(|b| b.is_ascii_digit())
            {
                return None;
            }
            let digits: u64 = f.parse().ok()?;
            micros += digits * 10u64.pow(SCALE_DIGITS - f.len() as u32);
        }
        Some(Self(micros))
    }

    pub fn checked_add(self, other: Self) -> Option<Self> {
        self.0.checked_add(other.0).map(Self)
    }
}

/// Canonical decimal form: no trailing zeros, no point for whole numbers ("17", "1.5").
impl fmt::Display for Quantity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (int, frac) = (self.0 / SCALE, self.0 % SCALE);
        if frac == 0 {
            write!(f, "{int}")
        } else {
            let digits = format!("{frac:06}");
            write!(f, "{int}.{}", digits.trim_end_matches('0'))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn equal_by_value_across_kinds() {
        let a = Quantity::from_integer(17).unwrap();
        for s in ["17", "17.0", "17.000", "17.000000"] {
            assert_eq!(Quantity::parse_decimal(s), Some(a), "{s}");
        }
        assert_eq!(Quantity::parse_decimal("1.5").unwrap().micros(), 1_500_000);
        assert_eq!(Quantity::parse_decimal("0.000001").unwrap().micros(), 1);
        assert_eq!(
            Quantity::parse_decimal("9999999999.999999")
                .unwrap()
                .micros(),
            9_999_999_999_999_999
        );
    }

    #[test]
    fn rejects_what_the_pattern_rejects() {
        for s in [
            "",
            "-1",
            "+1",
            "01",
            "1.",
            ".5",
            "1e3",
            "1.0000001",
            "12345678901",
            "1,5",
            " 1",
            "0x1",
            "NaN",
            "00",
        ] {
            assert_eq!(Quantity::parse_decimal(s), None, "{s:?}");
        }
        assert_eq!(Quantity::from_integer(-1), None);
    }

    #[test]
    fn display_is_canonical() {
        assert_eq!(Quantity::parse_decimal("17.000").unwrap().to_string(), "17");
        assert_eq!(Quantity::parse_decimal("0.50").unwrap().to_string(), "0.5");
        assert_eq!(Quantity::ZERO.to_string(), "0");
    }

    proptest! {
        #[test]
        fn display_round_trips(micros in 0u64..=9_999_999_999_999_999) {
            let q = Quantity::from_micros(micros);
            prop_assert_eq!(Quantity::parse_decimal(&q.to_string()), Some(q));
        }

        #[test]
        fn integer_and_decimal_forms_agree(n in 0i64..=2_147_483_647, zeros in 0usize..=6) {
            let s = if zeros == 0 { n.to_string() } else { format!("{n}.{}", "0".repeat(zeros)) };
            prop_assert_eq!(Quantity::parse_decimal(&s), Quantity::from_integer(n));
        }
    }
}
