//! Optional AWS request quotas: BatchMeterUsage and MeterUsage 10, RegisterUsage 5 requests
//! per second per account and region (the published Marketplace Metering quotas), answered
//! with `ThrottlingException` when exceeded. ResolveCustomer has no published quota.
//!
//! Off by default (`--aws-quotas`, or `PUT /admin/v1/quotas`). When off, [`Quotas::check`] is a
//! single relaxed atomic load. Buckets are per process: N instances behind a load balancer
//! allow N times the rate, as N AWS front ends would not.

use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};
use marketmeter_domain::Caller;
use marketmeter_wire::{ApiError, ErrorCode, Operation};
use std::num::NonZeroU32;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::RwLock;

/// (account, region): AWS counts quotas per account and region.
type Key = (String, String);

pub struct Quotas {
    enabled: AtomicBool,
    /// Indexed like [`LIMITS`]; replaced whole to refill every bucket.
    limiters: RwLock<Vec<DefaultKeyedRateLimiter<Key>>>,
}

fn fresh_limiters() -> Vec<DefaultKeyedRateLimiter<Key>> {
    LIMITS
        .iter()
        .map(|(_, rps)| {
            RateLimiter::keyed(Quota::per_second(
                NonZeroU32::new(*rps).expect("quotas are positive"),
            ))
        })
        .collect()
}

/// Requests per second, with a burst of the same size (a full second's worth).
pub const LIMITS: [(Operation, u32); 3] = [
    (Operation::BatchMeterUsage, 10),
    (Operation::MeterUsage, 10),
    (Operation::RegisterUsage, 5),
];

impl Quotas {
    pub fn new(enabled: bool) -> Self {
        Self {
            enabled: AtomicBool::new(enabled),
            limiters: RwLock::new(fresh_limiters()),
        }
    }

    pub fn enabled(&self) -> bool {
        self.enabled.load(Ordering::Relaxed)
    }

    /// Turns quotas on or off; either way every bucket starts full again.
    pub fn set_enabled(&self, on: bool) {
        self.reset();
        self.enabled.store(on, Ordering::Relaxed);
    }

    /// Refills every bucket (a fresh test starts with full quotas).
    pub fn reset(&self) {
        *self.limiters.write().unwrap_or_else(|e| e.into_inner()) = fresh_limiters();
    }

    /// `ThrottlingException` when `caller` is over `op`'s quota.
    pub fn check(&self, op: Operation, caller: &Caller) -> Result<(), ApiError> {
        if !self.enabled() {
            return Ok(());
        }
        let Some(i) = LIMITS.iter().position(|(o, _)| *o == op) else {
            return Ok(());
        };
        let account = caller
            .account_id
            .clone()
            .or_else(|| caller.access_key_id.clone())
            .unwrap_or_default();
        let key = (account, caller.signing_region.clone());
        let limiters = self.limiters.read().unwrap_or_else(|e| e.into_inner());
        limiters[i].check_key(&key).map_err(|_| {
            ApiError::new(
                ErrorCode::Throttling,
                format!(
                    "rate exceeded: {} allows {} requests per second per account and region; retry with backoff",
                    op.name(),
                    LIMITS[i].1
                ),
            )
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn caller(account: &str, region: &str) -> Caller {
        Caller {
            account_id: Some(account.into()),
            access_key_id: None,
            workload: None,
            signing_region: region.into(),
            open: false,
        }
    }

    /// Calls allowed in a quick burst (well inside one second).
    fn burst(q: &Quotas, op: Operation, c: &Caller) -> usize {
        (0..50).take_while(|_| q.check(op, c).is_ok()).count()
    }

    #[test]
    fn bursts_stop_at_the_aws_quota_per_account_and_region() {
        let q = Quotas::new(true);
        let a = caller("111122223333", "us-east-1");
        assert_eq!(burst(&q, Operation::BatchMeterUsage, &a), 10);
        let e = q.check(Operation::BatchMeterUsage, &a).unwrap_err();
        assert_eq!(e.code, ErrorCode::Throttling);
        // Other operations, regions and accounts have buckets of their own.
        assert_eq!(burst(&q, Operation::MeterUsage, &a), 10);
        assert_eq!(burst(&q, Operation::RegisterUsage, &a), 5);
        assert_eq!(
            burst(
                &q,
                Operation::BatchMeterUsage,
                &caller("111122223333", "eu-west-1")
            ),
            10
        );
        assert_eq!(
            burst(
                &q,
                Operation::BatchMeterUsage,
                &caller("999988887777", "us-east-1")
            ),
            10
        );
        assert_eq!(burst(&q, Operation::ResolveCustomer, &a), 50, "no quota");
        q.reset();
        assert_eq!(burst(&q, Operation::BatchMeterUsage, &a), 10, "refilled");
    }

    #[test]
    fn disabled_quotas_never_throttle() {
        let q = Quotas::new(false);
        let a = caller("111122223333", "us-east-1");
        assert_eq!(burst(&q, Operation::RegisterUsage, &a), 50);
        q.set_enabled(true);
        assert_eq!(burst(&q, Operation::RegisterUsage, &a), 5);
        q.set_enabled(false);
        assert_eq!(burst(&q, Operation::RegisterUsage, &a), 50);
    }
}
