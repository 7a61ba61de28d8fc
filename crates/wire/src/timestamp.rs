//! awsJson timestamps: epoch seconds as a JSON number, integer or fractional (exponent tolerated).

use serde::de::{self, Visitor};
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use std::fmt;

/// Latest instant accepted on the wire (year 9999): anything later cannot be a usage time.
const MAX_SECS: f64 = 253_402_300_799.0;

/// An instant as sent on the wire; kept exactly (seconds + nanoseconds) so it can be echoed back.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct EpochTime {
    pub secs: i64,
    pub nanos: u32,
}

impl EpochTime {
    pub fn from_secs(secs: i64) -> Self {
        Self { secs, nanos: 0 }
    }

    fn from_f64(v: f64) -> Option<Self> {
        if !v.is_finite() || v.abs() > MAX_SECS {
            return None;
        }
        let secs = v.floor();
        // Round to microseconds: clients send at most micro (botocore) or milli precision, and
        // f64 cannot hold more for current epochs anyway.
        let micros = ((v - secs) * 1_000_000.0).round() as u32;
        let (secs, micros) = if micros >= 1_000_000 {
            (secs as i64 + 1, 0)
        } else {
            (secs as i64, micros)
        };
        Some(Self {
            secs,
            nanos: micros * 1000,
        })
    }
}

impl Serialize for EpochTime {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        if self.nanos == 0 {
            s.serialize_i64(self.secs)
        } else {
            s.serialize_f64(self.secs as f64 + f64::from(self.nanos) / 1e9)
        }
    }
}

impl<'de> Deserialize<'de> for EpochTime {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = EpochTime;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a timestamp in epoch seconds (JSON number)")
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<EpochTime, E> {
                if (v as f64).abs() > MAX_SECS {
                    return Err(E::custom("timestamp out of range"));
                }
                Ok(EpochTime::from_secs(v))
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<EpochTime, E> {
                i64::try_from(v)
                    .map_err(|_| E::custom("timestamp out of range"))
                    .and_then(|v| self.visit_i64(v))
            }
            fn visit_f64<E: de::Error>(self, v: f64) -> Result<EpochTime, E> {
                EpochTime::from_f64(v).ok_or_else(|| E::custom("timestamp out of range"))
            }
        }
        d.deserialize_any(V)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(s: &str) -> Result<EpochTime, serde_json::Error> {
        serde_json::from_str(s)
    }

    #[test]
    fn integer_fraction_and_exponent() {
        assert_eq!(
            parse("1795402800").unwrap(),
            EpochTime::from_secs(1795402800)
        );
        let t = parse("1795402800.123456").unwrap();
        assert_eq!((t.secs, t.nanos), (1795402800, 123_456_000));
        assert_eq!(
            parse("1.7954028e9").unwrap(),
            EpochTime::from_secs(1795402800)
        );
        let t = parse("-0.5").unwrap();
        assert_eq!((t.secs, t.nanos), (-1, 500_000_000));
    }

    #[test]
    fn rejects_strings_and_huge_values() {
        assert!(parse("\"1795402800\"").is_err());
        assert!(parse("1e300").is_err());
        assert!(parse("99999999999999999999").is_err());
        assert!(parse("null").is_err());
    }

    #[test]
    fn echoes_integers_as_integers_and_fractions_as_numbers() {
        assert_eq!(
            serde_json::to_string(&EpochTime::from_secs(5)).unwrap(),
            "5"
        );
        let t = parse("1795402800.25").unwrap();
        assert_eq!(serde_json::to_string(&t).unwrap(), "1795402800.25");
    }
}
