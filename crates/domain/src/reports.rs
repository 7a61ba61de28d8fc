//! Usage reports: quantities and estimated charges by period, product, customer, dimension and
//! allocation tag over a time range.
//!
//! The store aggregates in SQL to (hour or day, product, customer, dimension[, tag value])
//! groups ([`UsageGroup`]); this module folds those into the requested grouping and period and
//! prices them. Container hours ([`crate::containers`]) join the store groups as one more
//! dimension before the fold. Charges are exact: quantity micro-units × price micro-units,
//! summed in `i128` pico-units, never floats.

use crate::containers;
use crate::model::Product;
use crate::store::{Store, StoreResult};
use marketmeter_wire::Quantity;
use std::collections::{BTreeMap, HashMap};
use std::fmt;
use time::{Date, Month, OffsetDateTime, Time};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Period {
    Hour,
    Day,
    Month,
}

impl Period {
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "hour" => Some(Self::Hour),
            "day" => Some(Self::Day),
            "month" => Some(Self::Month),
            _ => None,
        }
    }

    /// The grain the store aggregates at. Raw hours group in the report index's own order, so
    /// SQL aggregates while it reads (no sort); days (one `hour - hour % 24` away) need a sort,
    /// worth it only with customers, where they cut the groups 24-fold. Days and months are
    /// then folded here (calendar months differ in length).
    pub fn grain(self, by_customer: bool) -> Grain {
        match self {
            Self::Day | Self::Month if by_customer => Grain::Day,
            _ => Grain::Hour,
        }
    }

    /// Start of the period containing `t` (UTC).
    pub fn start(self, t: OffsetDateTime) -> OffsetDateTime {
        let t = t.replace_nanosecond(0).unwrap_or(t);
        match self {
            Self::Hour => t.replace_time(Time::from_hms(t.hour(), 0, 0).unwrap_or(Time::MIDNIGHT)),
            Self::Day => t.replace_time(Time::MIDNIGHT),
            Self::Month => t
                .replace_date(month_start(t.date()))
                .replace_time(Time::MIDNIGHT),
        }
    }
}

fn month_start(d: Date) -> Date {
    Date::from_calendar_date(d.year(), d.month(), 1).unwrap_or(d)
}

/// The first instant of the month after `t`'s.
pub fn next_month(t: OffsetDateTime) -> OffsetDateTime {
    let d = t.date();
    let (y, m) = match d.month() {
        Month::December => (d.year() + 1, Month::January),
        m => (d.year(), m.next()),
    };
    let first = Date::from_calendar_date(y, m, 1).unwrap_or(d);
    t.replace_date(first).replace_time(Time::MIDNIGHT)
}

/// Bucket width of a store aggregation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Grain {
    Hour,
    Day,
}

impl Grain {
    pub fn hours(self) -> i64 {
        match self {
            Self::Hour => 1,
            Self::Day => 24,
        }
    }
}

/// What the store aggregates: usage whose hour bucket is in `[from_hour, to_hour)`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupQuery {
    pub seller_account: Option<String>,
    pub product_code: Option<String>,
    pub from_hour: i64,
    pub to_hour: i64,
    pub grain: Grain,
    /// Group by customer too; otherwise every group's `customer` is empty (far fewer groups
    /// for reports that do not show customers).
    pub by_customer: bool,
    /// Sum the allocations carrying this tag key, by tag value, instead of whole records.
    pub tag_key: Option<String>,
}

/// One SQL group (groups come in no particular order). `customer` is the buyer's AWS account id, or the legacy CustomerIdentifier
/// for records metered with one.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct UsageGroup {
    /// Bucket start as an hour number (floor(epoch seconds / 3600)), a multiple of the grain.
    pub bucket_hour: i64,
    pub product_code: String,
    pub customer: String,
    pub dimension: String,
    /// With `tag_key`: the tag's value.
    pub tag_value: Option<String>,
    pub quantity: Quantity,
    /// Usage records that contributed.
    pub records: u64,
}

/// Columns a report may group by, besides the period.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct GroupBy {
    pub product: bool,
    pub customer: bool,
    pub dimension: bool,
}

impl GroupBy {
    /// Parses `product,customer,dimension` (any subset, any order; empty: totals per period).
    pub fn parse(s: &str) -> Result<Self, String> {
        let mut g = GroupBy::default();
        for part in s.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            match part {
                "product" => g.product = true,
                "customer" => g.customer = true,
                "dimension" => g.dimension = true,
                other => {
                    return Err(format!(
                        "group_by: {other:?} is not product, customer or dimension"
                    ))
                }
            }
        }
        Ok(g)
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReportQuery {
    pub seller_account: Option<String>,
    pub product_code: Option<String>,
    pub from: OffsetDateTime,
    pub to: OffsetDateTime,
    pub period: Period,
    pub group_by: GroupBy,
    pub tag_key: Option<String>,
}

/// An exact amount of money in pico-units (10⁻¹² of the price's currency unit).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Default)]
pub struct Charge(pub i128);

impl Charge {
    /// `quantity` × `price`: micro-units × micro-units = pico-units, exactly.
    pub fn of(quantity: Quantity, price: Quantity) -> Self {
        Self(i128::from(quantity.micros()) * i128::from(price.micros()))
    }
}

impl fmt::Display for Charge {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        const SCALE: i128 = 1_000_000_000_000;
        let (int, frac) = (self.0 / SCALE, self.0 % SCALE);
        if frac == 0 {
            write!(f, "{int}")
        } else {
            let digits = format!("{frac:012}");
            write!(f, "{int}.{}", digits.trim_end_matches('0'))
        }
    }
}

/// One line of a report. Grouping columns not asked for are `None`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReportRow {
    pub period_start: OffsetDateTime,
    pub product_code: Option<String>,
    pub customer: Option<String>,
    pub dimension: Option<String>,
    /// With a tag key: the tag's value; `None` for usage not tagged with it.
    pub tag_value: Option<String>,
    pub quantity: Quantity,
    pub records: u64,
    /// `None` when some of the usage has no (valid) price.
    pub charge: Option<Charge>,
}

type RowKey = (
    OffsetDateTime,
    Option<String>,
    Option<String>,
    Option<String>,
    Option<String>,
);

/// Prices per (product, dimension), looked up once per product.
#[derive(Default)]
pub struct Prices(HashMap<String, HashMap<String, Option<Quantity>>>);

impl Prices {
    pub async fn load(&mut self, store: &dyn Store, product_code: &str) -> StoreResult<()> {
        if !self.0.contains_key(product_code) {
            let product = store.product(product_code).await?;
            self.0.insert(
                product_code.to_string(),
                product.map(prices).unwrap_or_default(),
            );
        }
        Ok(())
    }

    fn get(&self, product: &str, dimension: &str) -> Option<Quantity> {
        self.0.get(product)?.get(dimension).copied().flatten()
    }
}

fn prices(p: Product) -> HashMap<String, Option<Quantity>> {
    p.dimensions
        .into_iter()
        .map(|d| {
            let price = d.price.as_deref().and_then(Quantity::parse_decimal);
            (d.name, price)
        })
        .collect()
}

/// Folds store groups into report rows: subtracts tagged quantities from the totals (the rest
/// is the untagged bucket), groups by `period` and the asked-for columns, and prices them.
/// `totals` are whole-record groups; `tagged` the per-tag-value groups (empty without a tag).
pub fn fold(
    q: &ReportQuery,
    totals: Vec<UsageGroup>,
    tagged: Vec<UsageGroup>,
    prices: &Prices,
) -> Vec<ReportRow> {
    let mut groups = totals;
    if q.tag_key.is_some() {
        groups = split_untagged(groups, tagged);
    }
    let mut rows: BTreeMap<RowKey, (u128, u64, Option<Charge>)> = BTreeMap::new();
    for g in groups {
        let start = OffsetDateTime::from_unix_timestamp(g.bucket_hour * 3600)
            .map(|t| q.period.start(t))
            .unwrap_or(q.from);
        let charge = prices
            .get(&g.product_code, &g.dimension)
            .map(|p| Charge::of(g.quantity, p));
        let key = (
            start,
            q.group_by.product.then(|| g.product_code.clone()),
            q.group_by.customer.then(|| g.customer.clone()),
            q.group_by.dimension.then(|| g.dimension.clone()),
            g.tag_value.clone(),
        );
        let e = rows.entry(key).or_insert((0, 0, Some(Charge(0))));
        e.0 += u128::from(g.quantity.micros());
        e.1 += g.records;
        e.2 = match (e.2, charge) {
            (Some(a), Some(b)) => Some(Charge(a.0 + b.0)),
            _ => None,
        };
    }
    rows.into_iter()
        .map(
            |((start, product, customer, dimension, tag), (q, n, charge))| ReportRow {
                period_start: start,
                product_code: product,
                customer,
                dimension,
                tag_value: tag,
                quantity: Quantity::from_micros(u64::try_from(q).unwrap_or(u64::MAX)),
                records: n,
                charge,
            },
        )
        .collect()
}

/// Per SQL group: the tagged values, then what remains of the total as the untagged bucket
/// (allocations sum to their record's quantity, so the remainder is exact).
fn split_untagged(totals: Vec<UsageGroup>, tagged: Vec<UsageGroup>) -> Vec<UsageGroup> {
    type Key = (i64, String, String, String);
    let key = |g: &UsageGroup| {
        (
            g.bucket_hour,
            g.product_code.clone(),
            g.customer.clone(),
            g.dimension.clone(),
        )
    };
    let mut tagged_sum: HashMap<Key, u64> = HashMap::new();
    for g in &tagged {
        *tagged_sum.entry(key(g)).or_default() += g.quantity.micros();
    }
    let mut out = tagged;
    for mut g in totals {
        let t = tagged_sum.get(&key(&g)).copied().unwrap_or(0);
        let rest = g.quantity.micros().saturating_sub(t);
        if rest > 0 || t == 0 {
            g.quantity = Quantity::from_micros(rest);
            g.tag_value = None;
            out.push(g);
        }
    }
    out
}

/// A report over `[q.from, q.to)`, computed one calendar month at a time: each
/// [`Report::next_month`] returns that month's rows, so memory stays bounded by one month's
/// groups whatever the range, and a caller can stream them out as they come.
pub struct Report<'a> {
    store: &'a dyn Store,
    query: ReportQuery,
    /// The service clock's now: running container workloads count up to it.
    now: OffsetDateTime,
    prices: Prices,
    next_start: OffsetDateTime,
    totals: ReportTotals,
}

impl<'a> Report<'a> {
    pub fn new(store: &'a dyn Store, query: ReportQuery, now: OffsetDateTime) -> Self {
        Self {
            store,
            now,
            next_start: query.from,
            query,
            prices: Prices::default(),
            totals: ReportTotals {
                charge: Some(Charge(0)),
                ..ReportTotals::default()
            },
        }
    }

    /// The next month's rows (possibly none); `None` once the range is done.
    pub async fn next_month(&mut self) -> StoreResult<Option<Vec<ReportRow>>> {
        let q = &self.query;
        let start = self.next_start;
        if start >= q.to {
            return Ok(None);
        }
        let end = next_month(start).min(q.to);
        let base = GroupQuery {
            seller_account: q.seller_account.clone(),
            product_code: q.product_code.clone(),
            from_hour: hour_ceil(start),
            to_hour: hour_ceil(end),
            grain: q.period.grain(q.group_by.customer),
            by_customer: q.group_by.customer,
            tag_key: None,
        };
        let mut whole = self.store.usage_groups(&base).await?;
        let runs = self
            .store
            .list_container_sessions(&containers::report_filter(&base))
            .await?;
        whole.extend(containers::usage_groups(&runs, self.now, &base));
        let tagged = match &q.tag_key {
            Some(k) => {
                self.store
                    .usage_groups(&GroupQuery {
                        tag_key: Some(k.clone()),
                        ..base
                    })
                    .await?
            }
            None => Vec::new(),
        };
        for g in &whole {
            self.prices.load(self.store, &g.product_code).await?;
        }
        let rows = fold(q, whole, tagged, &self.prices);
        for r in &rows {
            self.totals.quantity += u128::from(r.quantity.micros());
            self.totals.records += r.records;
            self.totals.charge = match (self.totals.charge, r.charge) {
                (Some(a), Some(b)) => Some(Charge(a.0 + b.0)),
                _ => None,
            };
        }
        self.next_start = end;
        Ok(Some(rows))
    }

    /// Totals of the months returned so far.
    pub fn totals(&self) -> ReportTotals {
        self.totals
    }
}

/// Hour buckets are whole hours: a range edge inside an hour includes that hour only when the
/// edge is its start (ranges are `[from, to)` on hour starts).
fn hour_ceil(t: OffsetDateTime) -> i64 {
    let s = t.unix_timestamp();
    s.div_euclid(3600) + i64::from(s.rem_euclid(3600) != 0 || t.nanosecond() != 0)
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ReportTotals {
    /// Micro-units.
    pub quantity: u128,
    pub records: u64,
    pub charge: Option<Charge>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::datetime;

    fn g(
        hour: i64,
        product: &str,
        customer: &str,
        dim: &str,
        tag: Option<&str>,
        q: u64,
    ) -> UsageGroup {
        UsageGroup {
            bucket_hour: hour,
            product_code: product.into(),
            customer: customer.into(),
            dimension: dim.into(),
            tag_value: tag.map(str::to_string),
            quantity: Quantity::from_micros(q),
            records: 1,
        }
    }

    fn query(period: Period, group_by: GroupBy, tag: Option<&str>) -> ReportQuery {
        ReportQuery {
            seller_account: None,
            product_code: None,
            from: datetime!(2026-01-01 0:00 UTC),
            to: datetime!(2026-03-01 0:00 UTC),
            period,
            group_by,
            tag_key: tag.map(str::to_string),
        }
    }

    fn priced() -> Prices {
        let mut p = Prices::default();
        p.0.insert(
            "p".into(),
            HashMap::from([
                ("req".to_string(), Quantity::parse_decimal("0.0001")),
                ("gb".to_string(), Quantity::parse_decimal("0.125")),
                ("free".to_string(), None),
            ]),
        );
        p
    }

    #[test]
    fn charges_are_exact() {
        let c = Charge::of(
            Quantity::parse_decimal("0.000001").unwrap(),
            Quantity::parse_decimal("0.0001").unwrap(),
        );
        assert_eq!(c.to_string(), "0.0000000001");
        let c = Charge::of(
            Quantity::parse_decimal("3").unwrap(),
            Quantity::parse_decimal("0.1").unwrap(),
        );
        // 3 × 0.1 is exactly 0.3 (a float sum would print 0.30000000000000004).
        assert_eq!(c.to_string(), "0.3");
        let big = Charge::of(
            Quantity::parse_decimal("9999999999.999999").unwrap(),
            Quantity::parse_decimal("9999999999.999999").unwrap(),
        );
        assert_eq!(big.to_string(), "99999999999999980000.000000000001");
    }

    #[test]
    fn months_fold_days_and_price_per_dimension() {
        let jan_1 = datetime!(2026-01-01 0:00 UTC).unix_timestamp() / 3600;
        let jan_31 = datetime!(2026-01-31 0:00 UTC).unix_timestamp() / 3600;
        let feb_1 = datetime!(2026-02-01 0:00 UTC).unix_timestamp() / 3600;
        let totals = vec![
            g(jan_1, "p", "c1", "req", None, 10_000_000),
            g(jan_31, "p", "c2", "req", None, 5_000_000),
            g(jan_31, "p", "c2", "gb", None, 2_000_000),
            g(feb_1, "p", "c1", "req", None, 1_000_000),
        ];
        let rows = fold(
            &query(Period::Month, GroupBy::default(), None),
            totals,
            vec![],
            &priced(),
        );
        assert_eq!(rows.len(), 2);
        assert_eq!(rows[0].period_start, datetime!(2026-01-01 0:00 UTC));
        assert_eq!(rows[0].quantity, Quantity::parse_decimal("17").unwrap());
        assert_eq!(rows[0].records, 3);
        // 15 req × 0.0001 + 2 gb × 0.125
        assert_eq!(rows[0].charge.unwrap().to_string(), "0.2515");
        assert_eq!(rows[1].period_start, datetime!(2026-02-01 0:00 UTC));
        assert_eq!(rows[1].charge.unwrap().to_string(), "0.0001");
    }

    #[test]
    fn grouping_columns_and_unpriced_usage() {
        let rows = fold(
            &query(
                Period::Day,
                GroupBy {
                    customer: true,
                    ..GroupBy::default()
                },
                None,
            ),
            vec![
                g(0, "p", "c1", "req", None, 1_000_000),
                g(0, "p", "c2", "free", None, 1_000_000),
                g(0, "p", "c1", "gb", None, 1_000_000),
            ],
            vec![],
            &priced(),
        );
        assert_eq!(rows.len(), 2);
        assert_eq!(rows[0].customer.as_deref(), Some("c1"));
        assert_eq!(rows[0].product_code, None);
        assert_eq!(rows[0].charge.unwrap().to_string(), "0.1251");
        assert_eq!(rows[1].charge, None, "no price for dimension free");
    }

    #[test]
    fn tags_split_totals_and_leave_the_rest_untagged() {
        let totals = vec![
            g(0, "p", "c1", "req", None, 10_000_000),
            g(0, "p", "c2", "req", None, 4_000_000),
        ];
        let tagged = vec![
            g(0, "p", "c1", "req", Some("blue"), 6_000_000),
            g(0, "p", "c1", "req", Some("red"), 1_500_000),
        ];
        let rows = fold(
            &query(Period::Hour, GroupBy::default(), Some("team")),
            totals,
            tagged,
            &priced(),
        );
        let by_tag: Vec<(Option<&str>, String)> = rows
            .iter()
            .map(|r| (r.tag_value.as_deref(), r.quantity.to_string()))
            .collect();
        assert_eq!(
            by_tag,
            vec![
                (None, "6.5".to_string()),
                (Some("blue"), "6".to_string()),
                (Some("red"), "1.5".to_string()),
            ]
        );
    }

    #[test]
    fn periods_start_on_utc_boundaries() {
        let t = datetime!(2026-12-31 23:59:59.5 UTC);
        assert_eq!(Period::Hour.start(t), datetime!(2026-12-31 23:00 UTC));
        assert_eq!(Period::Day.start(t), datetime!(2026-12-31 0:00 UTC));
        assert_eq!(Period::Month.start(t), datetime!(2026-12-01 0:00 UTC));
        assert_eq!(next_month(t), datetime!(2027-01-01 0:00 UTC));
        assert_eq!(
            hour_ceil(datetime!(2026-01-01 0:00 UTC)) * 3600,
            1_767_225_600
        );
        assert_eq!(
            hour_ceil(datetime!(2026-01-01 0:00:01 UTC)) * 3600,
            1_767_229_200
        );
    }
}
