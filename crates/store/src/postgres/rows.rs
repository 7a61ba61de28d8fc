//! Row mappers for PostgreSQL: the same columns (and SELECT lists) as the SQLite mappers in
//! [`crate::rows`]. Every column is read with `try_get`, so bad data (an unknown enum string,
//! malformed JSON, a NULL where a value belongs) is an `Unavailable` error, never a panic.

use crate::rows::{identity, parse_decimal_micros, AllocationJson};
use marketmeter_domain::model::*;
use marketmeter_domain::store::{StoreError, StoreResult};
use marketmeter_wire::{EpochTime, Quantity};
use time::OffsetDateTime;
use tokio_postgres::types::FromSql;
use tokio_postgres::Row;

fn bad(col: usize, what: impl std::fmt::Display) -> StoreError {
    StoreError::Unavailable(format!("postgres: bad value in column {col}: {what}"))
}

pub(crate) fn get<'a, T: FromSql<'a>>(r: &'a Row, col: usize) -> StoreResult<T> {
    r.try_get(col).map_err(|e| bad(col, e))
}

pub(crate) fn from_us(col: usize, us: i64) -> StoreResult<OffsetDateTime> {
    OffsetDateTime::from_unix_timestamp_nanos(i128::from(us) * 1000)
        .map_err(|_| bad(col, "instant out of range"))
}

fn time_at(r: &Row, col: usize) -> StoreResult<OffsetDateTime> {
    from_us(col, get(r, col)?)
}

fn opt_time_at(r: &Row, col: usize) -> StoreResult<Option<OffsetDateTime>> {
    get::<Option<i64>>(r, col)?
        .map(|us| from_us(col, us))
        .transpose()
}

pub(crate) fn quantity_from(col: usize, v: i64) -> StoreResult<Quantity> {
    u64::try_from(v)
        .map(Quantity::from_micros)
        .map_err(|_| bad(col, "negative quantity"))
}

fn parse_at<T>(r: &Row, col: usize, parse: fn(&str) -> Option<T>) -> StoreResult<T> {
    let s: String = get(r, col)?;
    parse(&s).ok_or_else(|| bad(col, format!("unknown value {s:?}")))
}

fn allocations_at(r: &Row, col: usize) -> StoreResult<Vec<StoredAllocation>> {
    let s: String = get(r, col)?;
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

pub(crate) fn account(r: &Row) -> StoreResult<Account> {
    Ok(Account {
        id: get(r, 0)?,
        name: get(r, 1)?,
    })
}

pub(crate) fn access_key(r: &Row) -> StoreResult<AccessKey> {
    let resource: Option<String> = get(r, 4)?;
    let platform: Option<String> = get(r, 5)?;
    let region: Option<String> = get(r, 6)?;
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
        access_key_id: get(r, 0)?,
        account_id: get(r, 1)?,
        secret_access_key: get(r, 2)?,
        session_token: get(r, 3)?,
        workload,
    })
}

pub(crate) fn product(r: &Row) -> StoreResult<Product> {
    let dims: String = get(r, 4)?;
    Ok(Product {
        code: get(r, 0)?,
        seller_account: get(r, 1)?,
        kind: parse_at(r, 2, ProductKind::parse)?,
        fulfillment_url: get(r, 3)?,
        dimensions: serde_json::from_str(&dims).map_err(|e| bad(4, format!("dimensions: {e}")))?,
    })
}

pub(crate) fn agreement(r: &Row) -> StoreResult<Agreement> {
    Ok(Agreement {
        agreement_id: get(r, 0)?,
        product_code: get(r, 1)?,
        seller_account: get(r, 2)?,
        customer_account: get(r, 3)?,
        customer_identifier: get(r, 4)?,
        license_arn: get(r, 5)?,
        status: parse_at(r, 6, AgreementStatus::parse)?,
        starts: opt_time_at(r, 7)?,
        ends: opt_time_at(r, 8)?,
    })
}

pub(crate) fn registration_token(r: &Row) -> StoreResult<RegistrationToken> {
    Ok(RegistrationToken {
        token: get(r, 0)?,
        product_code: get(r, 1)?,
        seller_account: get(r, 2)?,
        customer_account: get(r, 3)?,
        agreement_id: get(r, 4)?,
        created_at: time_at(r, 5)?,
        expires_at: time_at(r, 6)?,
        single_use: get(r, 7)?,
        used_at: opt_time_at(r, 8)?,
    })
}

pub(crate) fn product_key(r: &Row) -> StoreResult<ProductKey> {
    Ok(ProductKey {
        product_code: get(r, 0)?,
        seller_account: get(r, 1)?,
        version: get(r, 2)?,
        private_pem: get(r, 3)?,
        public_pem: get(r, 4)?,
        created_at: time_at(r, 5)?,
        retired_at: opt_time_at(r, 6)?,
    })
}

pub(crate) fn container_session(r: &Row) -> StoreResult<ContainerSession> {
    Ok(ContainerSession {
        product_code: get(r, 0)?,
        seller_account: get(r, 1)?,
        resource_id: get(r, 2)?,
        customer_account: get(r, 3)?,
        platform: parse_at(r, 4, Platform::parse)?,
        region: get(r, 5)?,
        first_registered_at: time_at(r, 6)?,
        run: get(r, 7)?,
        stopped_at: opt_time_at(r, 8)?,
    })
}

pub(crate) fn usage(r: &Row) -> StoreResult<UsageRecordRow> {
    let kind: String = get(r, 2)?;
    let identity = identity(&kind, get(r, 3)?, get(r, 4)?)
        .ok_or_else(|| bad(2, format!("unknown identity kind {kind:?}")))?;
    let nanos: i64 = get(r, 13)?;
    let nanos = u32::try_from(nanos)
        .ok()
        .filter(|n| *n < 1_000_000_000)
        .ok_or_else(|| bad(13, "nanoseconds out of range"))?;
    Ok(UsageRecordRow {
        metering_record_id: get(r, 0)?,
        key: MeteringKey {
            seller_account: get(r, 1)?,
            identity,
            dimension: get(r, 5)?,
            hour: get(r, 6)?,
        },
        product_code: get(r, 7)?,
        customer_identifier: get(r, 8)?,
        customer_aws_account_id: get(r, 9)?,
        license_arn: get(r, 10)?,
        resource_id: get(r, 11)?,
        timestamp: EpochTime {
            secs: get(r, 12)?,
            nanos,
        },
        quantity: quantity_from(14, get(r, 14)?)?,
        allocations: allocations_at(r, 15)?,
        operation: parse_at(r, 16, MeteringOperation::parse)?,
        received_at: time_at(r, 17)?,
    })
}
