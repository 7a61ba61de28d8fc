//! Container metering: every workload that called RegisterUsage is metered per hour,
//! prorated to the second with a one-minute minimum, from its first registration until it is
//! reported stopped (AWS meters ECS tasks and EKS pods this way; the software only registers).
//!
//! The rule, in one place:
//! * A run lasts from its first registration to its stop, or to the service clock's now while
//!   it runs. Both instants count in whole seconds (sub-second parts are dropped).
//! * A run shorter than [`MINIMUM_RUN_SECONDS`] is billed as if it ran that long from its start
//!   (the minimum is per run, not per hour bucket); a run stopped at its start instant is
//!   billed one minute.
//! * The billed seconds are split into UTC hour buckets; each bucket's quantity is its seconds
//!   in hours, rounded to the nearest micro-hour ([`hours`]). Reports sum these bucket
//!   quantities like usage records of the dimension [`HOURLY_DIMENSION`], priced by the
//!   product's dimension of that name when it has one.
//! * A registration after a stop starts a new run (AWS never restarts a stopped task; a
//!   reused resource id is a new task): entitlement is checked again, the time in between is
//!   not billed, and the new run has its own minimum.

use crate::model::ContainerSession;
use crate::reports::{GroupQuery, UsageGroup};
use crate::store::ContainerFilter;
use crate::{AdminError, Metering};
use marketmeter_wire::Quantity;
use std::collections::BTreeMap;
use time::OffsetDateTime;

/// The dimension container hours are reported under. A container product prices them by
/// declaring a dimension of this name (unit and price as for any dimension); MeterUsage may
/// not meter it, the service does.
pub const HOURLY_DIMENSION: &str = "ContainerHours";

/// Shortest billed run.
pub const MINIMUM_RUN_SECONDS: i64 = 60;

/// The billed span of a run from `start` to `end`, in epoch seconds `[from, to)`: whole
/// seconds, at least [`MINIMUM_RUN_SECONDS`] long.
fn billed_span(start: OffsetDateTime, end: OffsetDateTime) -> (i64, i64) {
    let start = start.unix_timestamp();
    (start, end.unix_timestamp().max(start + MINIMUM_RUN_SECONDS))
}

/// Seconds of `[from, to)` per hour bucket (floor(epoch s / 3600)), in hour order.
fn per_hour(from: i64, to: i64) -> Vec<(i64, u64)> {
    let mut out = Vec::new();
    let mut t = from;
    while t < to {
        let hour = t.div_euclid(3600);
        let next = ((hour + 1) * 3600).min(to);
        out.push((hour, (next - t) as u64));
        t = next;
    }
    out
}

/// Billed seconds of a run from `start` to `end`, per hour bucket (floor(epoch s / 3600)), in
/// hour order; buckets with no seconds are left out.
pub fn billed_seconds(start: OffsetDateTime, end: OffsetDateTime) -> Vec<(i64, u64)> {
    let (from, to) = billed_span(start, end);
    per_hour(from, to)
}

/// `seconds` in hours, to the nearest micro-hour. One second is 2500/9 micro-hours, so the
/// fraction is never exactly one half and rounding needs no tie rule.
pub fn hours(seconds: u64) -> Quantity {
    Quantity::from_micros((seconds * 5000 + 9) / 18)
}

/// Where a run ends for metering: its stop, or `now` while it runs (never before its start).
pub fn run_end(s: &ContainerSession, now: OffsetDateTime) -> OffsetDateTime {
    s.stopped_at.unwrap_or(now).max(s.first_registered_at)
}

/// Hours billed for a run up to `now`: the sum of its hour buckets' quantities, as reports
/// add them up.
pub fn billed_hours(s: &ContainerSession, now: OffsetDateTime) -> Quantity {
    let micros = billed_seconds(s.first_registered_at, run_end(s, now))
        .into_iter()
        .map(|(_, secs)| hours(secs).micros())
        .sum();
    Quantity::from_micros(micros)
}

/// The runs a report over `q`'s hours may bill: started before its end, and running or
/// stopped late enough to reach into it (the minimum can carry a run past its stop).
pub fn report_filter(q: &GroupQuery) -> ContainerFilter {
    let at = |hour: i64| OffsetDateTime::from_unix_timestamp(hour.saturating_mul(3600)).ok();
    ContainerFilter {
        seller_account: q.seller_account.clone(),
        product_code: q.product_code.clone(),
        started_before: at(q.to_hour),
        stopped_since: at(q.from_hour).map(|t| t - time::Duration::seconds(MINIMUM_RUN_SECONDS)),
        ..ContainerFilter::default()
    }
}

/// The runs' hour buckets inside `q`'s hours, as store groups of [`HOURLY_DIMENSION`] at
/// `q`'s grain (one record per run and hour bucket).
pub fn usage_groups(
    sessions: &[ContainerSession],
    now: OffsetDateTime,
    q: &GroupQuery,
) -> Vec<UsageGroup> {
    let grain = q.grain.hours();
    let mut groups: BTreeMap<(i64, &str, &str), (u64, u64)> = BTreeMap::new();
    for s in sessions {
        let customer = if q.by_customer {
            s.customer_account.as_str()
        } else {
            ""
        };
        // Clipping to the query's whole hours leaves each bucket's seconds as they are, and
        // keeps a long-running run from being walked hour by hour in every month of a report.
        let (from, to) = billed_span(s.first_registered_at, run_end(s, now));
        let from = from.max(q.from_hour.saturating_mul(3600));
        let to = to.min(q.to_hour.saturating_mul(3600));
        for (hour, secs) in per_hour(from, to) {
            let bucket = hour - hour.rem_euclid(grain);
            let e = groups
                .entry((bucket, s.product_code.as_str(), customer))
                .or_default();
            e.0 += hours(secs).micros();
            e.1 += 1;
        }
    }
    groups
        .into_iter()
        .map(
            |((bucket, product, customer), (micros, records))| UsageGroup {
                bucket_hour: bucket,
                product_code: product.to_string(),
                customer: customer.to_string(),
                dimension: HOURLY_DIMENSION.to_string(),
                tag_value: None,
                quantity: Quantity::from_micros(micros),
                records,
            },
        )
        .collect()
}

impl Metering {
    /// Runs matching `filter`, in start order.
    pub async fn container_sessions(
        &self,
        filter: &ContainerFilter,
    ) -> Result<Vec<ContainerSession>, AdminError> {
        Ok(self.store().list_container_sessions(filter).await?)
    }

    /// Reports a workload's running run stopped at `at` (default: the service clock's now),
    /// which may be neither before the run's start nor after now.
    pub async fn stop_container(
        &self,
        product_code: &str,
        resource_id: &str,
        at: Option<OffsetDateTime>,
    ) -> Result<ContainerSession, AdminError> {
        let now = self.clock().now();
        let at = at.unwrap_or(now);
        if at > now {
            return Err(AdminError::BadRequest(format!(
                "at: {} is after the service clock's now ({})",
                crate::windows::rfc3339(at),
                crate::windows::rfc3339(now)
            )));
        }
        let store = self.store();
        let not_running = || {
            AdminError::NotFound(format!(
                "workload {resource_id} of product {product_code} is not running"
            ))
        };
        let Some(run) = store.container_session(product_code, resource_id).await? else {
            if store.product(product_code).await?.is_none() {
                return Err(AdminError::NotFound(format!(
                    "product {product_code} does not exist"
                )));
            }
            return Err(not_running());
        };
        if at < run.first_registered_at {
            return Err(AdminError::BadRequest(format!(
                "at: {} is before the run's start ({})",
                crate::windows::rfc3339(at),
                crate::windows::rfc3339(run.first_registered_at)
            )));
        }
        // None: another stop won the race.
        store
            .stop_container_session(product_code, resource_id, at)
            .await?
            .ok_or_else(not_running)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::Platform;
    use crate::reports::Grain;
    use time::macros::datetime;

    fn secs(start: OffsetDateTime, end: OffsetDateTime) -> Vec<(i64, u64)> {
        billed_seconds(start, end)
    }

    fn hour_of(t: OffsetDateTime) -> i64 {
        t.unix_timestamp() / 3600
    }

    #[test]
    fn whole_hours_and_hour_boundaries() {
        let h = hour_of(datetime!(2026-05-10 10:00 UTC));
        assert_eq!(
            secs(
                datetime!(2026-05-10 10:00 UTC),
                datetime!(2026-05-10 11:00 UTC)
            ),
            vec![(h, 3600)]
        );
        assert_eq!(
            secs(
                datetime!(2026-05-10 10:45 UTC),
                datetime!(2026-05-10 12:15:30 UTC)
            ),
            vec![(h, 900), (h + 1, 3600), (h + 2, 930)]
        );
        assert_eq!(hours(3600).to_string(), "1");
        assert_eq!(hours(900).to_string(), "0.25");
        // 930 s = 0.258333… h.
        assert_eq!(hours(930).to_string(), "0.258333");
    }

    #[test]
    fn the_minimum_is_one_minute_per_run() {
        let start = datetime!(2026-05-10 10:00 UTC);
        let h = hour_of(start);
        // Shorter than a minute, and stopped at the start instant: one minute.
        assert_eq!(
            secs(start, start + time::Duration::seconds(5)),
            vec![(h, 60)]
        );
        assert_eq!(secs(start, start), vec![(h, 60)]);
        // Exactly a minute, and a second more: as run.
        assert_eq!(
            secs(start, start + time::Duration::seconds(60)),
            vec![(h, 60)]
        );
        assert_eq!(
            secs(start, start + time::Duration::seconds(61)),
            vec![(h, 61)]
        );
        // The minute runs on from the start, across an hour boundary if it must.
        let late = datetime!(2026-05-10 10:59:50 UTC);
        assert_eq!(
            secs(late, late + time::Duration::seconds(20)),
            vec![(h, 10), (h + 1, 50)]
        );
        assert_eq!(hours(60).to_string(), "0.016667");
        // A stop before the start (never stored) counts as the start.
        assert_eq!(secs(start, start - time::Duration::hours(1)), vec![(h, 60)]);
    }

    #[test]
    fn seconds_round_to_the_nearest_micro_hour() {
        assert_eq!(hours(0).micros(), 0);
        assert_eq!(hours(1).micros(), 278); // 277.78
        assert_eq!(hours(2).micros(), 556); // 555.56
        assert_eq!(hours(4).micros(), 1111); // 1111.11
        assert_eq!(hours(9).micros(), 2500); // exact
        assert_eq!(hours(1799).micros(), 499_722); // 499722.22
        assert_eq!(hours(1800).micros(), 500_000);
    }

    #[test]
    fn runs_spanning_days_and_months() {
        let start = datetime!(2026-01-31 23:30 UTC);
        let end = datetime!(2026-02-01 01:10:00.9 UTC);
        let b = secs(start, end);
        let h = hour_of(start);
        // Sub-second parts are dropped.
        assert_eq!(b, vec![(h, 1800), (h + 1, 3600), (h + 2, 600)]);
        let s = session(start, Some(end));
        assert_eq!(billed_hours(&s, end).to_string(), "1.666667");
        let q = GroupQuery {
            seller_account: None,
            product_code: None,
            from_hour: hour_of(datetime!(2026-02-01 0:00 UTC)),
            to_hour: hour_of(datetime!(2026-03-01 0:00 UTC)),
            grain: Grain::Day,
            by_customer: true,
            tag_key: None,
        };
        let g = usage_groups(&[s], end, &q);
        assert_eq!(g.len(), 1, "January's half hour is outside the range");
        assert_eq!(g[0].bucket_hour, q.from_hour);
        assert_eq!(g[0].quantity.to_string(), "1.166667");
        assert_eq!(g[0].records, 2);
        assert_eq!(g[0].customer, "222222222222");
        assert_eq!(g[0].dimension, HOURLY_DIMENSION);
    }

    #[test]
    fn report_ranges_take_whole_buckets_of_long_runs() {
        // Running since 2020: a June report sees June's hours only, each a whole hour.
        let s = session(datetime!(2020-01-01 0:00:30 UTC), None);
        let now = datetime!(2026-06-15 12:30 UTC);
        let q = GroupQuery {
            seller_account: None,
            product_code: None,
            from_hour: hour_of(datetime!(2026-06-01 0:00 UTC)),
            to_hour: hour_of(datetime!(2026-07-01 0:00 UTC)),
            grain: Grain::Hour,
            by_customer: false,
            tag_key: None,
        };
        let g = usage_groups(std::slice::from_ref(&s), now, &q);
        assert_eq!(g.len(), 14 * 24 + 13);
        assert_eq!(g[0].bucket_hour, q.from_hour);
        assert!(g[..g.len() - 1]
            .iter()
            .all(|g| g.quantity.to_string() == "1" && g.customer.is_empty()));
        assert_eq!(g.last().unwrap().quantity.to_string(), "0.5");
        // The first hour of the run is partial.
        let q = GroupQuery {
            from_hour: hour_of(datetime!(2020-01-01 0:00 UTC)),
            to_hour: hour_of(datetime!(2020-01-01 1:00 UTC)),
            ..q
        };
        let g = usage_groups(&[s], now, &q);
        assert_eq!(g.len(), 1);
        assert_eq!(g[0].quantity.to_string(), "0.991667");
    }

    #[test]
    fn a_running_workload_counts_until_now() {
        let start = datetime!(2026-05-10 10:00 UTC);
        let s = session(start, None);
        assert_eq!(
            billed_hours(&s, datetime!(2026-05-10 12:30 UTC)).to_string(),
            "2.5"
        );
        // Ten seconds in, the minute is already owed.
        assert_eq!(
            billed_hours(&s, start + time::Duration::seconds(10)).to_string(),
            "0.016667"
        );
        // A clock set back before the start bills the minimum, never a negative span.
        assert_eq!(
            billed_hours(&s, start - time::Duration::hours(2)).to_string(),
            "0.016667"
        );
    }

    fn session(start: OffsetDateTime, stopped: Option<OffsetDateTime>) -> ContainerSession {
        ContainerSession {
            product_code: "prod-c".into(),
            seller_account: "111111111111".into(),
            resource_id: "task-1".into(),
            customer_account: "222222222222".into(),
            platform: Platform::Ecs,
            region: "us-east-1".into(),
            run: 1,
            first_registered_at: start,
            stopped_at: stopped,
        }
    }
}
