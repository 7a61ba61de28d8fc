//! Which usage times are accepted (model docs of BatchMeterUsage, MeterUsage and
//! TimestampOutOfBoundsException). All bounds are configurable.

use marketmeter_wire::{ApiError, EpochTime, ErrorCode};
use time::{Duration, OffsetDateTime, Time};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Windows {
    /// BatchMeterUsage: records are refused this long (or more) after the event. Model: 24 h.
    pub batch_lookback: Duration,
    /// MeterUsage: same for MeterUsage. Model: 6 h.
    pub meter_lookback: Duration,
    /// BatchMeterUsage month-end rule: previous-month records only until this long after
    /// 00:00 UTC on the 1st. Model: 6 h.
    pub month_end_grace: Duration,
    /// How far in the future a timestamp may be (client clock skew).
    pub future_skew: Duration,
}

impl Default for Windows {
    fn default() -> Self {
        Self {
            batch_lookback: Duration::hours(24),
            meter_lookback: Duration::hours(6),
            month_end_grace: Duration::hours(6),
            future_skew: Duration::minutes(5),
        }
    }
}

fn to_datetime(t: EpochTime) -> Option<OffsetDateTime> {
    OffsetDateTime::from_unix_timestamp(t.secs)
        .ok()
        .map(|d| d + Duration::nanoseconds(i64::from(t.nanos)))
}

fn out_of_bounds(msg: String) -> ApiError {
    ApiError::new(ErrorCode::TimestampOutOfBounds, msg)
}

impl Windows {
    /// BatchMeterUsage: lookback, future skew and the month-end cutoff.
    pub fn check_batch(
        &self,
        t: EpochTime,
        now: OffsetDateTime,
    ) -> Result<OffsetDateTime, ApiError> {
        let at = self.check_common(t, now, self.batch_lookback)?;
        let month_start = now
            .replace_day(1)
            .expect("day 1 exists")
            .replace_time(Time::MIDNIGHT);
        if at < month_start && now >= month_start + self.month_end_grace {
            return Err(out_of_bounds(format!(
                "timestamp {} is in the previous billing month, which closed at {}; \
                 previous-month usage is accepted only until {} hours into the new month",
                rfc3339(at),
                rfc3339(month_start + self.month_end_grace),
                self.month_end_grace.whole_hours()
            )));
        }
        Ok(at)
    }

    /// MeterUsage: lookback and future skew.
    pub fn check_meter(
        &self,
        t: EpochTime,
        now: OffsetDateTime,
    ) -> Result<OffsetDateTime, ApiError> {
        self.check_common(t, now, self.meter_lookback)
    }

    fn check_common(
        &self,
        t: EpochTime,
        now: OffsetDateTime,
        lookback: Duration,
    ) -> Result<OffsetDateTime, ApiError> {
        let at = to_datetime(t)
            .ok_or_else(|| out_of_bounds(format!("timestamp {} is not a valid time", t.secs)))?;
        if now - at >= lookback {
            return Err(out_of_bounds(format!(
                "timestamp {} is {} or more in the past (now {}); usage must be reported sooner",
                rfc3339(at),
                human(lookback),
                rfc3339(now)
            )));
        }
        if at - now > self.future_skew {
            return Err(out_of_bounds(format!(
                "timestamp {} is in the future (now {}, allowed skew {})",
                rfc3339(at),
                rfc3339(now),
                human(self.future_skew)
            )));
        }
        Ok(at)
    }
}

pub fn rfc3339(t: OffsetDateTime) -> String {
    t.format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_else(|_| t.unix_timestamp().to_string())
}

fn human(d: Duration) -> String {
    if d.whole_seconds() % 3600 == 0 {
        format!("{} h", d.whole_hours())
    } else if d.whole_seconds() % 60 == 0 {
        format!("{} min", d.whole_minutes())
    } else {
        format!("{} s", d.whole_seconds())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use time::macros::datetime;

    fn ts(t: OffsetDateTime) -> EpochTime {
        EpochTime::from_secs(t.unix_timestamp())
    }

    #[test]
    fn batch_lookback_is_strictly_less_than_24h() {
        let w = Windows::default();
        let now = datetime!(2026-11-23 12:00 UTC);
        assert!(w
            .check_batch(ts(now - Duration::hours(24) + Duration::seconds(1)), now)
            .is_ok());
        let e = w
            .check_batch(ts(now - Duration::hours(24)), now)
            .unwrap_err();
        assert_eq!(e.code, ErrorCode::TimestampOutOfBounds);
    }

    #[test]
    fn meter_lookback_is_6h() {
        let w = Windows::default();
        let now = datetime!(2026-11-23 12:00 UTC);
        assert!(w.check_meter(ts(now - Duration::minutes(359)), now).is_ok());
        assert!(w.check_meter(ts(now - Duration::hours(6)), now).is_err());
    }

    #[test]
    fn future_skew() {
        let w = Windows::default();
        let now = datetime!(2026-11-23 12:00 UTC);
        assert!(w.check_batch(ts(now + Duration::minutes(5)), now).is_ok());
        assert!(w
            .check_batch(ts(now + Duration::minutes(5) + Duration::seconds(1)), now)
            .is_err());
        assert!(w.check_meter(ts(now + Duration::hours(1)), now).is_err());
    }

    #[test]
    fn month_end_rule_from_the_model_example() {
        // "on April 1 at 05:00 UTC a March 31 record is still accepted; after 06:00 UTC it is rejected"
        let w = Windows::default();
        let record = ts(datetime!(2026-03-31 20:00 UTC));
        assert!(w
            .check_batch(record, datetime!(2026-04-01 05:00 UTC))
            .is_ok());
        assert!(w
            .check_batch(record, datetime!(2026-04-01 05:59:59 UTC))
            .is_ok());
        assert!(w
            .check_batch(record, datetime!(2026-04-01 06:00 UTC))
            .is_err());
        // Same-month records are unaffected by the cutoff.
        let april = ts(datetime!(2026-04-01 00:30 UTC));
        assert!(w
            .check_batch(april, datetime!(2026-04-01 07:00 UTC))
            .is_ok());
        // Year boundary.
        let dec = ts(datetime!(2026-12-31 23:00 UTC));
        assert!(w.check_batch(dec, datetime!(2027-01-01 05:00 UTC)).is_ok());
        assert!(w.check_batch(dec, datetime!(2027-01-01 06:00 UTC)).is_err());
    }

    #[test]
    fn configurable() {
        let w = Windows {
            batch_lookback: Duration::hours(1),
            ..Windows::default()
        };
        let now = datetime!(2026-11-23 12:00 UTC);
        assert!(w.check_batch(ts(now - Duration::minutes(61)), now).is_err());
    }

    proptest! {
        #[test]
        fn accepted_batch_times_are_within_bounds(now_s in 1_600_000_000i64..2_000_000_000, back in -600i64..100_000) {
            let w = Windows::default();
            let now = OffsetDateTime::from_unix_timestamp(now_s).unwrap();
            let t = EpochTime::from_secs(now_s - back);
            if let Ok(at) = w.check_batch(t, now) {
                prop_assert!(now - at < w.batch_lookback);
                prop_assert!(at - now <= w.future_skew);
                let month_start = now.replace_day(1).unwrap().replace_time(Time::MIDNIGHT);
                prop_assert!(at >= month_start || now < month_start + w.month_end_grace);
            } else {
                let at = OffsetDateTime::from_unix_timestamp(now_s - back).unwrap();
                let month_start = now.replace_day(1).unwrap().replace_time(Time::MIDNIGHT);
                prop_assert!(now - at >= w.batch_lookback || at - now > w.future_skew
                    || (at < month_start && now >= month_start + w.month_end_grace));
            }
        }
    }
}
