//! The dedup rule: first write wins; a later record under the same key is an identical retry
//! when its quantity is equal by value (17 == "17.000"), else a duplicate that is not honoured.

use marketmeter_wire::Quantity;

pub fn is_retry(stored: Quantity, offered: Quantity) -> bool {
    stored == offered
}

/// Hour bucket of an instant in epoch seconds (floor, also for instants before 1970).
pub fn hour_bucket(epoch_secs: i64) -> i64 {
    epoch_secs.div_euclid(3600)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn hours() {
        assert_eq!(hour_bucket(0), 0);
        assert_eq!(hour_bucket(3599), 0);
        assert_eq!(hour_bucket(3600), 1);
        assert_eq!(hour_bucket(-1), -1);
    }

    proptest! {
        #[test]
        fn same_hour_iff_same_bucket(h in -100_000i64..1_000_000, a in 0i64..3600, b in 0i64..3600) {
            prop_assert_eq!(hour_bucket(h * 3600 + a), hour_bucket(h * 3600 + b));
            prop_assert_ne!(hour_bucket(h * 3600 + a), hour_bucket((h + 1) * 3600 + b));
        }
    }
}
