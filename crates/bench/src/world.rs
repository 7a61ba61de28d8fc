//! What the load generator meters, read from a seed: who signs, for which product, and the key
//! space of unique (identity, dimension, hour) keys, so that no request repeats a stored key.

use anyhow::{bail, Context, Result};
use marketmeter_domain::model::{AgreementStatus, ProductKind};
use marketmeter_domain::seed::{Seed, SeedKey};
use time::{Duration, OffsetDateTime, Time};

/// Records per BatchMeterUsage request (the model's maximum).
pub const BATCH_RECORDS: usize = 25;

#[derive(Debug, Clone)]
pub struct Credential {
    pub access_key_id: String,
    pub secret_access_key: String,
    pub session_token: Option<String>,
    pub region: String,
}

/// One customer identity of the SaaS product, as JSON members ready to paste into a record.
#[derive(Debug, Clone)]
struct Identity {
    members: String,
}

/// Which customer identity BatchMeterUsage records use.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum IdentityStyle {
    /// `CustomerAWSAccountId` + `LicenseArn` (concurrent agreements), then `CustomerIdentifier`.
    All,
    /// `CustomerAWSAccountId` + `LicenseArn` only.
    License,
    /// `CustomerIdentifier` only (the legacy style; the only one moto understands).
    Customer,
}

/// BatchMeterUsage load: one seller credential, one SaaS product.
#[derive(Debug, Clone)]
pub struct BatchPlan {
    pub credential: Credential,
    product_json: String,
    identities: Vec<Identity>,
    dimensions: Vec<String>,
    hours: Vec<i64>,
}

/// MeterUsage load: workload credentials (one per EC2 instance) on one AMI/container product.
#[derive(Debug, Clone)]
pub struct MeterPlan {
    pub workloads: Vec<Credential>,
    product_json: String,
    dimensions: Vec<String>,
    hours: Vec<i64>,
}

fn json(s: &str) -> String {
    serde_json::to_string(s).expect("a string always serialises")
}

/// Hour buckets that the server's default windows accept for the next hour at least: whole
/// hours back from `now` (oldest first left out so a run may cross an hour boundary), minus
/// previous-month hours once the month-end grace (6 h) is over.
fn usable_hours(now: OffsetDateTime, lookback_hours: i64) -> Vec<i64> {
    let current = now.unix_timestamp().div_euclid(3600);
    let month_start = now
        .replace_day(1)
        .expect("day 1 exists")
        .replace_time(Time::MIDNIGHT);
    let month_start_hour = month_start.unix_timestamp().div_euclid(3600);
    // Leaving out two hours keeps the oldest bucket inside the look-back until current + 2h.
    let previous_month_open = now + Duration::hours(1) < month_start + Duration::hours(6);
    (0..lookback_hours - 1)
        .map(|back| current - back)
        .filter(|h| previous_month_open || *h >= month_start_hour)
        .collect()
}

fn credential(key: &SeedKey, region: &str) -> Credential {
    Credential {
        access_key_id: key.access_key_id.clone(),
        secret_access_key: key.secret_access_key.clone(),
        session_token: key.session_token.clone(),
        region: region.to_string(),
    }
}

impl BatchPlan {
    /// The SaaS product `product` (default: the first SaaS product of the seed) and every active
    /// agreement on it that names its license and/or customer identifier.
    pub fn from_seed(
        seed: &Seed,
        product: Option<&str>,
        style: IdentityStyle,
        region: &str,
        now: OffsetDateTime,
    ) -> Result<Self> {
        let p = seed
            .products
            .iter()
            .find(|p| {
                p.kind == ProductKind::Saas && product.is_none_or(|code| code == p.code.as_str())
            })
            .context("the seed has no such SaaS product for BatchMeterUsage")?;
        let key = seed
            .keys
            .iter()
            .find(|k| k.account == p.seller && k.resource.is_none())
            .with_context(|| format!("the seed has no key of seller {}", p.seller))?;
        let active = seed
            .agreements
            .iter()
            .filter(|a| a.product == p.code && a.status == AgreementStatus::Active);
        // License identities first, then legacy ones: with a dimension count that is a multiple
        // of 25 a request never mixes the two styles (the model says not to).
        let licenses = style != IdentityStyle::Customer;
        let customers = style != IdentityStyle::License;
        let mut identities: Vec<Identity> = active
            .clone()
            .filter(|_| licenses)
            .filter_map(|a| {
                let arn = a.license_arn.as_deref()?;
                Some(Identity {
                    members: format!(
                        "\"CustomerAWSAccountId\":{},\"LicenseArn\":{}",
                        json(&a.customer_account),
                        json(arn)
                    ),
                })
            })
            .collect();
        let mut legacy: Vec<&str> = active
            .filter(|_| customers)
            .filter_map(|a| a.customer_identifier.as_deref())
            .collect();
        legacy.sort_unstable();
        legacy.dedup();
        identities.extend(legacy.into_iter().map(|ci| Identity {
            members: format!("\"CustomerIdentifier\":{}", json(ci)),
        }));
        if identities.is_empty() {
            bail!(
                "product {} has no active agreement with a {} in the seed",
                p.code,
                match style {
                    IdentityStyle::All => "license_arn or customer_identifier",
                    IdentityStyle::License => "license_arn",
                    IdentityStyle::Customer => "customer_identifier",
                }
            );
        }
        Ok(Self {
            credential: credential(key, region),
            product_json: json(&p.code),
            identities,
            dimensions: p.dimensions.iter().map(|d| json(&d.name)).collect(),
            hours: usable_hours(now, 24),
        })
    }

    /// How many unique records there are to send.
    pub fn capacity(&self) -> u64 {
        (self.identities.len() * self.hours.len() * self.dimensions.len()) as u64
    }

    /// Request number `n`: records `25n .. 25n+25` of the key space (dimension varies fastest,
    /// then hour, then identity). None when the key space is used up.
    pub fn body(&self, n: u64) -> Option<String> {
        let first = n.checked_mul(BATCH_RECORDS as u64)?;
        if first + BATCH_RECORDS as u64 > self.capacity() {
            return None;
        }
        let mut out = String::with_capacity(160 * BATCH_RECORDS);
        out.push_str("{\"ProductCode\":");
        out.push_str(&self.product_json);
        out.push_str(",\"UsageRecords\":[");
        let (dims, hours) = (self.dimensions.len() as u64, self.hours.len() as u64);
        for r in first..first + BATCH_RECORDS as u64 {
            let dim = &self.dimensions[(r % dims) as usize];
            let hour = self.hours[((r / dims) % hours) as usize];
            let identity = &self.identities[(r / dims / hours) as usize];
            if r != first {
                out.push(',');
            }
            out.push_str(&format!(
                "{{\"Timestamp\":{},{},\"Dimension\":{dim},\"Quantity\":1}}",
                hour * 3600,
                identity.members
            ));
        }
        out.push_str("]}");
        Some(out)
    }
}

impl MeterPlan {
    /// The AMI/container product `product` (default: the first one of the seed with workload
    /// credentials) and every workload key whose account has an active agreement on it.
    pub fn from_seed(seed: &Seed, product: Option<&str>, now: OffsetDateTime) -> Result<Self> {
        for p in seed.products.iter().filter(|p| {
            matches!(p.kind, ProductKind::Ami | ProductKind::Container)
                && product.is_none_or(|code| code == p.code.as_str())
        }) {
            let entitled = |account: &str| {
                seed.agreements.iter().any(|a| {
                    a.product == p.code
                        && a.customer_account == account
                        && a.status == AgreementStatus::Active
                })
            };
            let workloads: Vec<Credential> = seed
                .keys
                .iter()
                .filter(|k| k.resource.is_some() && entitled(&k.account))
                .filter_map(|k| Some(credential(k, k.resource_region.as_deref()?)))
                .collect();
            if !workloads.is_empty() {
                return Ok(Self {
                    workloads,
                    product_json: json(&p.code),
                    dimensions: p.dimensions.iter().map(|d| json(&d.name)).collect(),
                    hours: usable_hours(now, 6),
                });
            }
        }
        bail!("the seed has no such AMI/container product with entitled workload credentials for MeterUsage")
    }

    /// How many unique calls there are to make.
    pub fn capacity(&self) -> u64 {
        (self.workloads.len() * self.hours.len() * self.dimensions.len()) as u64
    }

    /// Call number `n`: the index of the workload that signs it and its body (dimension varies
    /// fastest, then hour, then workload). None when the key space is used up.
    pub fn call(&self, n: u64) -> Option<(usize, String)> {
        if n >= self.capacity() {
            return None;
        }
        let (dims, hours) = (self.dimensions.len() as u64, self.hours.len() as u64);
        let dim = &self.dimensions[(n % dims) as usize];
        let hour = self.hours[((n / dims) % hours) as usize];
        let workload = (n / dims / hours) as usize;
        let body = format!(
            "{{\"ProductCode\":{},\"Timestamp\":{},\"UsageDimension\":{dim},\"UsageQuantity\":1}}",
            self.product_json,
            hour * 3600
        );
        Some((workload, body))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::seedgen::{render, WorldSize};
    use marketmeter_wire::{BatchMeterUsageRequest, MeterUsageRequest};
    use std::collections::HashSet;
    use time::macros::datetime;

    fn seed() -> Seed {
        toml::from_str(&render(WorldSize {
            agreements: 2,
            workloads: 2,
            dimensions: 25,
        }))
        .unwrap()
    }

    #[test]
    fn every_batch_record_key_is_unique_and_requests_never_mix_styles() {
        let now = datetime!(2026-11-15 12:30 UTC);
        let plan =
            BatchPlan::from_seed(&seed(), None, IdentityStyle::All, "us-east-1", now).unwrap();
        // 2 licenses + 2 customer identifiers, 23 hours, 25 dimensions.
        assert_eq!(plan.capacity(), 4 * 23 * 25);
        let mut keys = HashSet::new();
        let mut n = 0;
        while let Some(body) = plan.body(n) {
            let req: BatchMeterUsageRequest = serde_json::from_str(&body).unwrap();
            assert_eq!(req.usage_records.len(), BATCH_RECORDS);
            let licensed = req.usage_records[0].license_arn.is_some();
            for r in &req.usage_records {
                assert_eq!(r.license_arn.is_some(), licensed, "styles mixed in {body}");
                let identity = r.license_arn.clone().or(r.customer_identifier.clone());
                assert!(keys.insert((identity, r.dimension.clone(), r.timestamp.secs / 3600)));
                assert!(r.timestamp.secs > now.unix_timestamp() - 23 * 3600);
                assert!(r.timestamp.secs <= now.unix_timestamp());
            }
            n += 1;
        }
        assert_eq!(keys.len() as u64, plan.capacity());
    }

    #[test]
    fn identity_styles_select_their_records() {
        let now = datetime!(2026-11-15 12:30 UTC);
        for (style, needle, count) in [
            (IdentityStyle::License, "LicenseArn", 2),
            (IdentityStyle::Customer, "CustomerIdentifier", 2),
            (IdentityStyle::All, "", 4),
        ] {
            let plan = BatchPlan::from_seed(&seed(), None, style, "us-east-1", now).unwrap();
            assert_eq!(plan.capacity(), count * 23 * 25);
            assert!(plan.body(0).unwrap().contains(needle));
        }
    }

    #[test]
    fn every_meter_call_key_is_unique() {
        let now = datetime!(2026-11-15 12:30 UTC);
        let plan = MeterPlan::from_seed(&seed(), None, now).unwrap();
        assert_eq!(plan.capacity(), 2 * 5 * 25);
        let mut keys = HashSet::new();
        for n in 0..plan.capacity() {
            let (who, body) = plan.call(n).unwrap();
            let req: MeterUsageRequest = serde_json::from_str(&body).unwrap();
            assert!(keys.insert((
                plan.workloads[who].access_key_id.clone(),
                req.usage_dimension,
                req.timestamp.secs / 3600
            )));
        }
        assert!(plan.call(plan.capacity()).is_none());
    }

    #[test]
    fn previous_month_hours_only_during_the_grace_period() {
        let early = usable_hours(datetime!(2026-12-01 02:10 UTC), 24);
        assert_eq!(early.len(), 23, "inside the grace every hour is usable");
        let late = usable_hours(datetime!(2026-12-01 08:10 UTC), 24);
        assert_eq!(late.len(), 9, "hours 00..08 of December only");
        let month_start = datetime!(2026-12-01 00:00 UTC).unix_timestamp() / 3600;
        assert!(late.iter().all(|h| *h >= month_start));
    }
}
