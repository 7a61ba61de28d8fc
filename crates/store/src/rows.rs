//! Conversions between domain values and SQL columns, and row mappers.
//!
//! Bad data in the file (an unknown enum string, malformed JSON, an out-of-range number) becomes
//! a conversion error, which the store reports as `Unavailable`: never a panic.

use marketmeter_domain::model::*;
use marketmeter_domain::store::StoreError;
use marketmeter_wire::{EpochTime, Quantity};
use r2d2_sqlite::rusqlite::{self, types::Type, Row};
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

pub(crate) type SqlResult<T> = rusqlite::Result<T>;

/// Maps a database error to the domain error. Constraint violations are the caller's input
/// (e.g. a reused id); everything else is the database failing. SQLite messages name tables and
/// columns, never bound values, so no secret can leak through them.
pub(crate) fn db_err(e: rusqlite::Error) -> StoreError {
    if e.sqlite_error_code() == Some(rusqlite::ErrorCode::ConstraintViolation) {
        StoreError::Invalid(format!("rejected by the store: {e}"))
    } else {
        StoreError::Unavailable(format!("sqlite: {e}"))
    }
}

fn bad(col: usize, what: impl Into<String>) -> rusqlite::Error {
    rusqlite::Error::FromSqlConversionFailure(col, Type::Text, what.into().into())
}

// ------------------------------------------------------------------ time

/// Instants are stored as epoch microseconds (sub-microsecond precision is dropped; floor, so
/// instants before 1970 stay ordered).
pub(crate) fn to_us(t: OffsetDateTime) -> i64 {
    // ±9999 years in microseconds fits i64 with room to spare.
    t.unix_timestamp_nanos().div_euclid(1000) as i64
}

pub(crate) fn opt_us(t: Option<OffsetDateTime>) -> Option<i64> {
    t.map(to_us)
}

pub(crate) fn now_us() -> i64 {
    to_us(OffsetDateTime::now_utc())
}

pub(crate) fn from_us(col: usize, us: i64) -> SqlResult<OffsetDateTime> {
    OffsetDateTime::from_unix_timestamp_nanos(i128::from(us) * 1000)
        .map_err(|_| bad(col, "instant out of range"))
}

fn time_at(r: &Row<'_>, col: usize) -> SqlResult<OffsetDateTime> {
    from_us(col, r.get(col)?)
}

fn opt_time_at(r: &Row<'_>, col: usize) -> SqlResult<Option<OffsetDateTime>> {
    r.get::<_, Option<i64>>(col)?
        .map(|us| from_us(col, us))
        .transpose()
}

// ------------------------------------------------------------------ quantities

/// Micro-units as a SQL integer; quantities beyond i64 cannot come from the wire.
pub(crate) fn quantity_sql(q: Quantity) -> Result<i64, StoreError> {
    i64::try_from(q.micros()).map_err(|_| StoreError::Invalid("quantity too large".into()))
}

fn quantity_at(r: &Row<'_>, col: usize) -> SqlResult<Quantity> {
    let v: i64 = r.get(col)?;
    u64::try_from(v)
        .map(Quantity::from_micros)
        .map_err(|_| bad(col, "negative quantity"))
}

/// Parses the canonical decimal form written by `Quantity`'s `Display`, without the wire's
/// length limits (the store must read back whatever it wrote).
pub(crate) fn parse_decimal_micros(s: &str) -> Option<Quantity> {
    let (int, frac) = match s.split_once('.') {
        Some((_, "")) => return None,
        Some((i, f)) => (i, f),
        None => (s, ""),
    };
    if int.is_empty()
        || frac.len() > 6
        || !int.bytes().chain(frac.bytes()).all(|b| b.is_ascii_digit())
    {
        return None;
    }
    let mut micros = int.parse::<u64>().ok()?.checked_mul(1_000_000)?;
    if !frac.is_empty() {
        let digits: u64 = frac.parse().ok()?;
        micros = micros.checked_add(digits * 10u64.pow(6 - frac.len() as u32))?;
    }
    Some(Quantity::from_micros(micros))
}

// ------------------------------------------------------------------ JSON columns

#[derive(Serialize, Deserialize)]
pub(crate) struct AllocationJson {
    pub(crate) quantity: String,
    #[serde(default)]
    pub(crate) tags: Vec<AllocationTag>,
}

pub(crate) fn allocations_json(a: &[StoredAllocation]) -> Result<String, StoreError> {
    let v: Vec<AllocationJson> = a
        .iter()
        .map(|a| AllocationJson {
            quantity: a.quantity.to_string(),
            tags: a.tags.clone(),
        })
        .collect();
    serde_json::to_string(&v).map_err(|e| StoreError::Invalid(format!("allocations: {e}")))
}

fn allocations_at(r: &Row<'_>, col: usize) -> SqlResult<Vec<StoredAllocation>> {
    let s: String = r.get(col)?;
    let v: Vec<AllocationJson> =
        serde_json::from_str(&s).map_err(|e| bad(col, format!("allocations: {e}")))?;
    v.into_iter()
        .map(|a| {
            Ok(StoredAllocation {
                quantity: parse_decimal_micros(&a.quantity)
                    .ok_or_else(|| bad(col, "allocation quantity"))?,
                tags: a.tags,
            })
        })
        .collect()
}

pub(crate) fn dimensions_json(d: &[Dimension]) -> Result<String, StoreError> {
    serde_json::to_string(d).map_err(|e| StoreError::Invalid(format!("dimensions: {e}")))
}

// ------------------------------------------------------------------ enums

fn parse_at<T>(r: &Row<'_>, col: usize, parse: fn(&str) -> Option<T>) -> SqlResult<T> {
    let s: String = r.get(col)?;
    parse(&s).ok_or_else(|| bad(col, format!("unknown value {s:?}")))
}

// ------------------------------------------------------------------ row mappers
// Each mapper's column order is the SELECT list next to it.

pub(crate) const ACCESS_KEY_COLS: &str = "access_key_id, account_id, secret_access_key, \
    session_token, workload_resource_id, workload_platform, workload_region";

pub(crate) fn access_key(r: &Row<'_>) -> SqlResult<AccessKey> {
    let resource: Option<String> = r.get(4)?;
    let platform: Option<String> = r.get(5)?;
    let region: Option<String> = r.get(6)?;
    let workload = match (resource, platform, region) {
        (Some(resource_id), Some(p), Some(region)) => Some(Workload {
            resource_id,
            platform: Platform::parse(&p)
                .ok_or_else(|| bad(5, format!("unknown platform {p:?}")))?,
            region,
        }),
        (None, None, None) => None,
        _ => return Err(bad(4, "partial workload")),
    };
    Ok(AccessKey {
        access_key_id: r.get(0)?,
        account_id: r.get(1)?,
        secret_access_key: r.get(2)?,
        session_token: r.get(3)?,
        workload,
    })
}

pub(crate) const PRODUCT_COLS: &str = "code, seller_account, kind, fulfillment_url, dimensions";

pub(crate) fn product(r: &Row<'_>) -> SqlResult<Product> {
    let dims: String = r.get(4)?;
    Ok(Product {
        code: r.get(0)?,
        seller_account: r.get(1)?,
        kind: parse_at(r, 2, ProductKind::parse)?,
        fulfillment_url: r.get(3)?,
        dimensions: serde_json::from_str(&dims).map_err(|e| bad(4, format!("dimensions: {e}")))?,
    })
}

pub(crate) const AGREEMENT_COLS: &str = "agreement_id, product_code, seller_account, \
    customer_account, customer_identifier, license_arn, status, starts_us, ends_us";

pub(crate) fn agreement(r: &Row<'_>) -> SqlResult<Agreement> {
    Ok(Agreement {
        agreement_id: r.get(0)?,
        product_code: r.get(1)?,
        seller_account: r.get(2)?,
        customer_account: r.get(3)?,
        customer_identifier: r.get(4)?,
        license_arn: r.get(5)?,
        status: parse_at(r, 6, AgreementStatus::parse)?,
        starts: opt_time_at(r, 7)?,
        ends: opt_time_at(r, 8)?,
    })
}

pub(crate) const REGISTRATION_TOKEN_COLS: &str = "token, product_code, seller_account, \
    customer_account, agreement_id, created_us, expires_us, single_use, used_us";

pub(crate) fn registration_token(r: &Row<'_>) -> SqlResult<RegistrationToken> {
    Ok(RegistrationToken {
        token: r.get(0)?,
        product_code: r.get(1)?,
        seller_account: r.get(2)?,
        customer_account: r.get(3)?,
        agreement_id: r.get(4)?,
        created_at: time_at(r, 5)?,
        expires_at: time_at(r, 6)?,
        single_use: r.get::<_, i64>(7)? != 0,
        used_at: opt_time_at(r, 8)?,
    })
}

pub(crate) const PRODUCT_KEY_COLS: &str =
    "product_code, seller_account, version, private_pem, public_pem, created_us, retired_us";

pub(crate) fn product_key(r: &Row<'_>) -> SqlResult<ProductKey> {
    Ok(ProductKey {
        product_code: r.get(0)?,
        seller_account: r.get(1)?,
        version: r.get(2)?,
        private_pem: r.get(3)?,
        public_pem: r.get(4)?,
        created_at: time_at(r, 5)?,
        retired_at: opt_time_at(r, 6)?,
    })
}

pub(crate) const CONTAINER_SESSION_COLS: &str = "product_code, seller_account, resource_id, \
    customer_account, platform, region, first_registered_us, run, stopped_us";

pub(crate) fn container_session(r: &Row<'_>) -> SqlResult<ContainerSession> {
    Ok(ContainerSession {
        product_code: r.get(0)?,
        seller_account: r.get(1)?,
        resource_id: r.get(2)?,
        customer_account: r.get(3)?,
        platform: parse_at(r, 4, Platform::parse)?,
        region: r.get(5)?,
        first_registered_at: time_at(r, 6)?,
        run: r.get(7)?,
        stopped_at: opt_time_at(r, 8)?,
    })
}

pub(crate) const USAGE_COLS: &str = "metering_record_id, seller_account, identity_kind, \
    identity_a, identity_b, dimension, hour, product_code, customer_identifier, \
    customer_aws_account_id, license_arn, resource_id, ts_secs, ts_nanos, quantity, \
    allocations, operation, received_us";

pub(crate) fn identity(kind: &str, a: String, b: String) -> Option<Identity> {
    Some(match kind {
        "legacy" => Identity::Legacy {
            product_code: a,
            customer_identifier: b,
        },
        "license" => Identity::License {
            customer_account: a,
            license_arn: b,
        },
        "workload" => Identity::Workload {
            product_code: a,
            resource_id: b,
        },
        _ => return None,
    })
}

pub(crate) fn usage(r: &Row<'_>) -> SqlResult<UsageRecordRow> {
    let kind: String = r.get(2)?;
    let identity = identity(&kind, r.get(3)?, r.get(4)?)
        .ok_or_else(|| bad(2, format!("unknown identity kind {kind:?}")))?;
    let nanos: i64 = r.get(13)?;
    let nanos = u32::try_from(nanos)
        .ok()
        .filter(|n| *n < 1_000_000_000)
        .ok_or_else(|| bad(13, "nanoseconds out of range"))?;
    Ok(UsageRecordRow {
        metering_record_id: r.get(0)?,
        key: MeteringKey {
            seller_account: r.get(1)?,
            identity,
            dimension: r.get(5)?,
            hour: r.get(6)?,
        },
        product_code: r.get(7)?,
        customer_identifier: r.get(8)?,
        customer_aws_account_id: r.get(9)?,
        license_arn: r.get(10)?,
        resource_id: r.get(11)?,
        timestamp: EpochTime {
            secs: r.get(12)?,
            nanos,
        },
        quantity: quantity_at(r, 14)?,
        allocations: allocations_at(r, 15)?,
        operation: parse_at(r, 16, MeteringOperation::parse)?,
        received_at: time_at(r, 17)?,
    })
}

// ------------------------------------------------------------------ catalog (admin API)
// Shared by both backends: `$1` is positional on PostgreSQL and SQLite alike, and
// `col = COALESCE($1, col)` is the optional filter both accept (PostgreSQL cannot type a bare
// `$1 IS NULL`).

/// Accounts by id; access keys by account, then id (neither table has an insertion order).
pub(crate) const LIST_ACCOUNTS_SQL: &str =
    "SELECT id, name FROM accounts WHERE id = COALESCE($1, id) ORDER BY id";

pub(crate) fn list_access_keys_sql() -> String {
    format!(
        "SELECT {ACCESS_KEY_COLS} FROM access_keys WHERE account_id = COALESCE($1, account_id) \
         ORDER BY account_id, access_key_id"
    )
}

/// What still refers to a product, counted in one statement: agreements, usage records,
/// registration tokens, container sessions. A product is deleted only when all are zero.
pub(crate) const PRODUCT_REFERENCES_SQL: &str = "SELECT \
    (SELECT COUNT(*) FROM agreements WHERE product_code = $1), \
    (SELECT COUNT(*) FROM usage_records WHERE product_code = $1), \
    (SELECT COUNT(*) FROM registration_tokens WHERE product_code = $1), \
    (SELECT COUNT(*) FROM container_sessions WHERE product_code = $1)";

/// Says what keeps a product from being deleted, or None when nothing does.
pub(crate) fn product_in_use(counts: [i64; 4]) -> Option<String> {
    let names = [
        "agreements",
        "usage records",
        "registration tokens",
        "container sessions",
    ];
    let held: Vec<String> = counts
        .iter()
        .zip(names)
        .filter(|(n, _)| **n > 0)
        .map(|(n, what)| format!("{n} {what}"))
        .collect();
    (!held.is_empty()).then(|| held.join(", "))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decimal_round_trip_beyond_wire_limits() {
        for m in [0u64, 1, 1_500_000, 17_000_000, u64::MAX / 2] {
            let q = Quantity::from_micros(m);
            assert_eq!(parse_decimal_micros(&q.to_string()), Some(q));
        }
        for s in ["", ".5", "1.", "1.0000001", "-1", "1e3", "x"] {
            assert_eq!(parse_decimal_micros(s), None, "{s:?}");
        }
    }

    #[test]
    fn instants_floor_to_micros() {
        let t = OffsetDateTime::from_unix_timestamp_nanos(-1).unwrap();
        assert_eq!(to_us(t), -1);
        let t = OffsetDateTime::from_unix_timestamp_nanos(1_234_567_891).unwrap();
        assert_eq!(to_us(t), 1_234_567);
        assert_eq!(
            from_us(0, 1_234_567).unwrap().unix_timestamp_nanos(),
            1_234_567_000
        );
    }
}
