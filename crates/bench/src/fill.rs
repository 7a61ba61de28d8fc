//! `marketmeter bench fill`: bulk-loads synthetic usage records straight into a database, to
//! measure ingest and reports over a large history (docs/BENCHMARKS.md, "Growth").
//!
//! Rows go through the store's own `commit_usage` (the server's write path: dedup, rollup
//! triggers, durable commits), in large transactions and without HTTP, so millions load in
//! minutes. Keys are the seed's SaaS product, its customer identifiers and dimensions, and hours
//! from the start of the month `--months` months ago, `--per-hour` records per hour, in hour
//! order (so indexes grow mostly at their ends, as with live traffic). Hours of the last two
//! days are never used: `marketmeter bench` meters those, so a filled database can then take a
//! load run.

use anyhow::{bail, Context, Result};
use marketmeter_domain::audit::AuditEvent;
use marketmeter_domain::model::{
    AgreementStatus, Identity, MeteringKey, MeteringOperation, ProductKind, UsageRecordRow,
};
use marketmeter_domain::seed::Seed;
use marketmeter_domain::store::UsageOutcome;
use marketmeter_store::{Database, OpenOptions};
use marketmeter_wire::{EpochTime, Quantity};
use std::time::Instant;
use time::{OffsetDateTime, Time};

#[derive(Debug, clap::Args)]
pub struct FillArgs {
    /// Database to fill (a SQLite path or a postgres:// URL), as `serve --db`.
    #[arg(long)]
    pub db: String,
    /// Seed whose SaaS product, customers and dimensions the records use (as the server's).
    #[arg(long, default_value = "tests/bench/seed.toml")]
    pub seed: std::path::PathBuf,
    /// Records to add.
    #[arg(long)]
    pub records: u64,
    /// Number of the first record: a second fill continues the first with `--start` at its end.
    #[arg(long, default_value_t = 0)]
    pub start: u64,
    /// The first record's hour is the start of the month this many months ago.
    #[arg(long, default_value_t = 12)]
    pub months: u32,
    /// Records per hour (spread over customers and dimensions).
    #[arg(long, default_value_t = 1_200)]
    pub per_hour: u64,
    /// Records per transaction.
    #[arg(long, default_value_t = 10_000)]
    pub chunk: usize,
}

/// The key space: record `i` is in hour `i / per_hour`; within an hour the dimension varies
/// fastest, then the customer.
struct Space {
    product: String,
    seller: String,
    customers: Vec<String>,
    dimensions: Vec<String>,
    first_hour: i64,
    hours: i64,
    per_hour: u64,
}

impl Space {
    fn new(seed: &Seed, months: u32, per_hour: u64, now: OffsetDateTime) -> Result<Self> {
        let p = seed
            .products
            .iter()
            .find(|p| p.kind == ProductKind::Saas)
            .context("the seed has no SaaS product")?;
        let mut customers: Vec<String> = seed
            .agreements
            .iter()
            .filter(|a| a.product == p.code && a.status == AgreementStatus::Active)
            .filter_map(|a| a.customer_identifier.clone())
            .collect();
        customers.sort_unstable();
        customers.dedup();
        if customers.is_empty() || p.dimensions.is_empty() || months == 0 {
            bail!("the seed's SaaS product needs customers with identifiers and dimensions");
        }
        if per_hour == 0 || per_hour > (customers.len() * p.dimensions.len()) as u64 {
            bail!(
                "--per-hour must be 1..={} (customers x dimensions of the seed)",
                customers.len() * p.dimensions.len()
            );
        }
        let month_start = now
            .replace_day(1)
            .context("day 1")?
            .replace_time(Time::MIDNIGHT);
        let mut first = month_start;
        for _ in 0..months {
            first = (first - time::Duration::days(1))
                .replace_day(1)
                .context("day 1")?;
        }
        let first_hour = first.unix_timestamp() / 3600;
        // Two days clear of what the load generator meters.
        let end_hour = now.unix_timestamp() / 3600 - 48;
        Ok(Self {
            product: p.code.clone(),
            seller: p.seller.clone(),
            customers,
            dimensions: p.dimensions.iter().map(|d| d.name.clone()).collect(),
            first_hour,
            hours: (end_hour - first_hour).max(0),
            per_hour,
        })
    }

    fn capacity(&self) -> u64 {
        self.hours as u64 * self.per_hour
    }

    fn row(&self, i: u64, now: OffsetDateTime) -> UsageRecordRow {
        let dims = self.dimensions.len() as u64;
        let hour = self.first_hour + (i / self.per_hour) as i64;
        let j = i % self.per_hour;
        let dimension = self.dimensions[(j % dims) as usize].clone();
        let customer = self.customers[(j / dims) as usize].clone();
        UsageRecordRow {
            metering_record_id: format!("fill-{i:012}"),
            key: MeteringKey {
                seller_account: self.seller.clone(),
                identity: Identity::Legacy {
                    product_code: self.product.clone(),
                    customer_identifier: customer.clone(),
                },
                dimension,
                hour,
            },
            product_code: self.product.clone(),
            customer_identifier: Some(customer),
            customer_aws_account_id: None,
            license_arn: None,
            resource_id: None,
            timestamp: EpochTime {
                secs: hour * 3600 + (i % 3600) as i64,
                nanos: 0,
            },
            quantity: Quantity::from_micros((i % 100 + 1) * 1_000_000),
            allocations: Vec::new(),
            operation: MeteringOperation::BatchMeterUsage,
            received_at: now,
        }
    }
}

pub async fn run(args: FillArgs, seed: Seed) -> Result<()> {
    let now = OffsetDateTime::now_utc();
    let space = Space::new(&seed, args.months, args.per_hour, now)?;
    let end = args.start + args.records;
    if end > space.capacity() {
        bail!(
            "the hours up to two days ago hold {} records; use more months or --per-hour",
            space.capacity()
        );
    }
    let db = Database::parse(&args.db);
    let store = db
        .open(&OpenOptions::default())
        .await
        .with_context(|| format!("opening {}", db.redacted()))?
        .store;
    let started = Instant::now();
    let mut i = args.start;
    while i < end {
        let n = (end - i).min(args.chunk.max(1) as u64);
        let rows: Vec<UsageRecordRow> = (i..i + n).map(|k| space.row(k, now)).collect();
        // The audit trail records who wrote: a bulk fill, not a metering API call.
        let mut event = AuditEvent::arrived(OffsetDateTime::now_utc(), format!("bench-fill-{i}"));
        event.operation = "BenchFill".into();
        let out = store.commit_usage(rows, event).await?;
        if let Some(o) = out
            .iter()
            .find(|o| !matches!(o, UsageOutcome::Stored { .. }))
        {
            bail!("record {i}.. was not new ({o:?}); fill a fresh database or pass --start");
        }
        i += n;
        let done = i - args.start;
        if done % 1_000_000 < n {
            eprintln!(
                "{done} records, {:.0} records/s",
                done as f64 / started.elapsed().as_secs_f64()
            );
        }
    }
    let secs = started.elapsed().as_secs_f64();
    println!(
        "filled {} records (numbers {}..{end}) of product {}, {} per hour, in {secs:.1} s ({:.0} records/s)",
        args.records,
        args.start,
        space.product,
        args.per_hour,
        args.records as f64 / secs
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::seedgen::{render, WorldSize};
    use std::collections::HashSet;
    use time::macros::datetime;

    #[test]
    fn fill_keys_are_unique_in_hour_order_and_clear_of_the_load() {
        let seed: Seed = toml::from_str(&render(WorldSize {
            agreements: 3,
            workloads: 1,
            dimensions: 25,
        }))
        .unwrap();
        // Just after a month boundary, when the load generator may meter the previous month.
        let now = datetime!(2026-12-01 02:30 UTC);
        let space = Space::new(&seed, 2, 60, now).unwrap();
        assert_eq!(
            space.first_hour,
            datetime!(2026-10-01 0:00 UTC).unix_timestamp() / 3600
        );
        let last_allowed = now.unix_timestamp() / 3600 - 48;
        assert_eq!(
            space.capacity(),
            (last_allowed - space.first_hour) as u64 * 60
        );
        let mut keys = HashSet::new();
        let mut previous_hour = i64::MIN;
        for i in 0..space.capacity() {
            let r = space.row(i, now);
            assert!(r.key.hour >= previous_hour, "hour order");
            assert!(r.key.hour < last_allowed, "two days clear of live load");
            assert_eq!(r.timestamp.secs / 3600, r.key.hour);
            previous_hour = r.key.hour;
            assert!(keys.insert((
                r.customer_identifier.clone(),
                r.key.dimension.clone(),
                r.key.hour
            )));
        }
        assert!(
            Space::new(&seed, 2, 3 * 25 + 1, now).is_err(),
            "more per hour than keys"
        );
    }
}
