//! The SQL of every write. Each function runs on the writer's connection inside the calling
//! command's savepoint; an error rolls back that savepoint only.

use crate::rows::{
    self, allocations_json, db_err, dimensions_json, now_us, opt_us, quantity_sql, to_us,
};
use marketmeter_domain::dedup::is_retry;
use marketmeter_domain::model::*;
use marketmeter_domain::store::{
    MeterOutcome, ProductDeletion, ResetCounts, StoreError, StoreResult, TokenClaim, UsageOutcome,
    METERING_TABLES,
};
use marketmeter_wire::Quantity;
use r2d2_sqlite::rusqlite::{params, Connection, OptionalExtension};
use time::OffsetDateTime;

/// Offers one usage row under its dedup key: first write wins.
pub(crate) fn offer_usage(conn: &Connection, row: &UsageRecordRow) -> StoreResult<UsageOutcome> {
    let (kind, a, b) = row.key.identity.parts();
    let quantity = quantity_sql(row.quantity)?;
    let allocations = allocations_json(&row.allocations)?;
    // The conflict target is the dedup key only: a clash on metering_record_id is not a retry
    // but a bug upstream, and must surface as a constraint error.
    let inserted = conn
        .prepare_cached(
            "INSERT INTO usage_records (metering_record_id, seller_account, identity_kind, \
             identity_a, identity_b, dimension, hour, product_code, customer_identifier, \
             customer_aws_account_id, license_arn, resource_id, ts_secs, ts_nanos, quantity, \
             allocations, operation, received_us) \
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17, ?18) \
             ON CONFLICT (seller_account, identity_kind, identity_a, identity_b, dimension, hour) \
             DO NOTHING",
        )
        .and_then(|mut s| {
            s.execute(params![
                row.metering_record_id,
                row.key.seller_account,
                kind,
                a,
                b,
                row.key.dimension,
                row.key.hour,
                row.product_code,
                row.customer_identifier,
                row.customer_aws_account_id,
                row.license_arn,
                row.resource_id,
                row.timestamp.secs,
                i64::from(row.timestamp.nanos),
                quantity,
                allocations,
                row.operation.as_str(),
                to_us(row.received_at),
            ])
        })
        .map_err(db_err)?;
    if inserted == 1 {
        crate::rollup::add(conn, row)?;
        return Ok(UsageOutcome::Stored {
            metering_record_id: row.metering_record_id.clone(),
        });
    }
    let (id, existing): (String, i64) = conn
        .prepare_cached(
            "SELECT metering_record_id, quantity FROM usage_records \
             WHERE seller_account = ?1 AND identity_kind = ?2 AND identity_a = ?3 \
             AND identity_b = ?4 AND dimension = ?5 AND hour = ?6",
        )
        .and_then(|mut s| {
            s.query_row(
                params![
                    row.key.seller_account,
                    kind,
                    a,
                    b,
                    row.key.dimension,
                    row.key.hour
                ],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
        })
        .map_err(db_err)?;
    let existing = u64::try_from(existing)
        .map(Quantity::from_micros)
        .map_err(|_| StoreError::Unavailable("stored quantity is negative".into()))?;
    Ok(if is_retry(existing, row.quantity) {
        UsageOutcome::Retry {
            metering_record_id: id,
        }
    } else {
        UsageOutcome::Duplicate {
            metering_record_id: id,
        }
    })
}

pub(crate) fn commit_usage(
    conn: &Connection,
    rows: &[UsageRecordRow],
) -> StoreResult<Vec<UsageOutcome>> {
    // In order, so a later row with the key of an earlier one in the same batch meets it.
    rows.iter().map(|r| offer_usage(conn, r)).collect()
}

pub(crate) fn client_token(
    conn: &Connection,
    caller_account: &str,
    client_token: &str,
) -> StoreResult<Option<(String, String)>> {
    conn.prepare_cached(
        "SELECT fingerprint, metering_record_id FROM client_tokens \
         WHERE caller_account = ?1 AND client_token = ?2",
    )
    .and_then(|mut s| {
        s.query_row(params![caller_account, client_token], |r| {
            Ok((r.get(0)?, r.get(1)?))
        })
        .optional()
    })
    .map_err(db_err)
}

pub(crate) fn commit_meter_usage(
    conn: &Connection,
    claim: Option<&TokenClaim>,
    row: &UsageRecordRow,
) -> StoreResult<MeterOutcome> {
    if let Some(c) = claim {
        if let Some((fingerprint, id)) = client_token(conn, &c.caller_account, &c.client_token)? {
            return Ok(if fingerprint == c.fingerprint {
                MeterOutcome::TokenReplay {
                    metering_record_id: id,
                }
            } else {
                MeterOutcome::TokenConflict
            });
        }
    }
    let outcome = offer_usage(conn, row)?;
    if let (
        Some(c),
        UsageOutcome::Stored { metering_record_id } | UsageOutcome::Retry { metering_record_id },
    ) = (claim, &outcome)
    {
        // A duplicate is refused, so its token stays free: recording it would turn the next
        // honest use of that token into a replay of a record this call never made.
        conn.prepare_cached(
            "INSERT INTO client_tokens (caller_account, client_token, seller_account, \
             fingerprint, metering_record_id, created_us) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
        )
        .and_then(|mut s| {
            s.execute(params![
                c.caller_account,
                c.client_token,
                c.seller_account,
                c.fingerprint,
                metering_record_id,
                now_us(),
            ])
        })
        .map_err(db_err)?;
    }
    Ok(MeterOutcome::Usage(outcome))
}

pub(crate) fn insert_registration_token(
    conn: &Connection,
    t: &RegistrationToken,
) -> StoreResult<()> {
    conn.prepare_cached(
        "INSERT INTO registration_tokens (token, product_code, seller_account, customer_account, \
         agreement_id, created_us, expires_us, single_use, used_us) \
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
    )
    .and_then(|mut s| {
        s.execute(params![
            t.token,
            t.product_code,
            t.seller_account,
            t.customer_account,
            t.agreement_id,
            to_us(t.created_at),
            to_us(t.expires_at),
            t.single_use,
            opt_us(t.used_at),
        ])
    })
    .map(|_| ())
    .map_err(db_err)
}

pub(crate) fn consume_registration_token(
    conn: &Connection,
    token: &str,
    at_us: i64,
) -> StoreResult<bool> {
    // The `used_us IS NULL` guard makes this a compare-and-set: of any number of racing
    // consumers exactly one changes the row.
    conn.prepare_cached(
        "UPDATE registration_tokens SET used_us = ?1 WHERE token = ?2 AND used_us IS NULL",
    )
    .and_then(|mut s| s.execute(params![at_us, token]))
    .map(|n| n == 1)
    .map_err(db_err)
}

pub(crate) fn register_container_session(
    conn: &Connection,
    s: &ContainerSession,
) -> StoreResult<ContainerSession> {
    // The writer serialises writes, so the check and the insert do not race; should another
    // process share the file, the running-run index turns its insert into a no-op.
    if let Some(running) = running_session(conn, &s.product_code, &s.resource_id)? {
        return Ok(running);
    }
    conn.prepare_cached(
        "INSERT INTO container_sessions (product_code, seller_account, resource_id, \
         customer_account, platform, region, first_registered_us, run) \
         SELECT ?1, ?2, ?3, ?4, ?5, ?6, ?7, COALESCE(MAX(run), 0) + 1 FROM container_sessions \
         WHERE seller_account = ?2 AND product_code = ?1 AND resource_id = ?3 \
         ON CONFLICT DO NOTHING",
    )
    .and_then(|mut st| {
        st.execute(params![
            s.product_code,
            s.seller_account,
            s.resource_id,
            s.customer_account,
            s.platform.as_str(),
            s.region,
            to_us(s.first_registered_at),
        ])
    })
    .map_err(db_err)?;
    running_session(conn, &s.product_code, &s.resource_id)?
        .ok_or_else(|| StoreError::Unavailable("sqlite: session row not found".into()))
}

fn running_session(
    conn: &Connection,
    product_code: &str,
    resource_id: &str,
) -> StoreResult<Option<ContainerSession>> {
    conn.prepare_cached(&format!(
        "SELECT {} FROM container_sessions \
         WHERE product_code = ?1 AND resource_id = ?2 AND stopped_us IS NULL",
        rows::CONTAINER_SESSION_COLS
    ))
    .and_then(|mut st| {
        st.query_row(params![product_code, resource_id], rows::container_session)
            .optional()
    })
    .map_err(db_err)
}

pub(crate) fn stop_container_session(
    conn: &Connection,
    product_code: &str,
    resource_id: &str,
    at_us: i64,
) -> StoreResult<Option<ContainerSession>> {
    conn.prepare_cached(&format!(
        "UPDATE container_sessions SET stopped_us = ?3 \
         WHERE product_code = ?1 AND resource_id = ?2 AND stopped_us IS NULL \
         AND first_registered_us <= ?3 RETURNING {}",
        rows::CONTAINER_SESSION_COLS
    ))
    .and_then(|mut st| {
        st.query_row(
            params![product_code, resource_id, at_us],
            rows::container_session,
        )
        .optional()
    })
    .map_err(db_err)
}

pub(crate) fn upsert_account(conn: &Connection, a: &Account) -> StoreResult<()> {
    conn.prepare_cached(
        "INSERT INTO accounts (id, name) VALUES (?1, ?2) \
         ON CONFLICT (id) DO UPDATE SET name = excluded.name",
    )
    .and_then(|mut s| s.execute(params![a.id, a.name]))
    .map(|_| ())
    .map_err(db_err)
}

pub(crate) fn upsert_access_key(conn: &Connection, k: &AccessKey) -> StoreResult<()> {
    let w = k.workload.as_ref();
    conn.prepare_cached(
        "INSERT INTO access_keys (access_key_id, account_id, secret_access_key, session_token, \
         workload_resource_id, workload_platform, workload_region) \
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7) \
         ON CONFLICT (access_key_id) DO UPDATE SET account_id = excluded.account_id, \
         secret_access_key = excluded.secret_access_key, session_token = excluded.session_token, \
         workload_resource_id = excluded.workload_resource_id, \
         workload_platform = excluded.workload_platform, workload_region = excluded.workload_region",
    )
    .and_then(|mut s| {
        s.execute(params![
            k.access_key_id,
            k.account_id,
            k.secret_access_key,
            k.session_token,
            w.map(|w| &w.resource_id),
            w.map(|w| w.platform.as_str()),
            w.map(|w| &w.region),
        ])
    })
    .map(|_| ())
    .map_err(db_err)
}

/// Product codes and license ARNs are looked up without a seller, so they must stay unique
/// across sellers even though the table keys include the seller (for distribution). The single
/// writer makes this check-then-write race-free.
fn owned_by_other_seller(
    conn: &Connection,
    sql: &str,
    handle: &str,
    seller: &str,
) -> StoreResult<bool> {
    conn.prepare_cached(sql)
        .and_then(|mut s| s.exists(params![handle, seller]))
        .map_err(db_err)
}

pub(crate) fn upsert_product(conn: &Connection, p: &Product) -> StoreResult<()> {
    if owned_by_other_seller(
        conn,
        "SELECT 1 FROM products WHERE code = ?1 AND seller_account <> ?2",
        &p.code,
        &p.seller_account,
    )? {
        return Err(StoreError::Invalid(format!(
            "product code {} belongs to another seller",
            p.code
        )));
    }
    let dimensions = dimensions_json(&p.dimensions)?;
    conn.prepare_cached(
        "INSERT INTO products (code, seller_account, kind, fulfillment_url, dimensions) \
         VALUES (?1, ?2, ?3, ?4, ?5) \
         ON CONFLICT (seller_account, code) DO UPDATE SET kind = excluded.kind, \
         fulfillment_url = excluded.fulfillment_url, dimensions = excluded.dimensions",
    )
    .and_then(|mut s| {
        s.execute(params![
            p.code,
            p.seller_account,
            p.kind.as_str(),
            p.fulfillment_url,
            dimensions,
        ])
    })
    .map(|_| ())
    .map_err(db_err)
}

pub(crate) fn upsert_agreement(conn: &Connection, a: &Agreement) -> StoreResult<()> {
    if owned_by_other_seller(
        conn,
        "SELECT 1 FROM agreements WHERE license_arn = ?1 AND seller_account <> ?2",
        &a.license_arn,
        &a.seller_account,
    )? {
        return Err(StoreError::Invalid(format!(
            "license {} belongs to another seller",
            a.license_arn
        )));
    }
    conn.prepare_cached(
        "INSERT INTO agreements (agreement_id, product_code, seller_account, customer_account, \
         customer_identifier, license_arn, status, starts_us, ends_us) \
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9) \
         ON CONFLICT (seller_account, agreement_id) DO UPDATE SET \
         product_code = excluded.product_code, customer_account = excluded.customer_account, \
         customer_identifier = excluded.customer_identifier, license_arn = excluded.license_arn, \
         status = excluded.status, starts_us = excluded.starts_us, ends_us = excluded.ends_us",
    )
    .and_then(|mut s| {
        s.execute(params![
            a.agreement_id,
            a.product_code,
            a.seller_account,
            a.customer_account,
            a.customer_identifier,
            a.license_arn,
            a.status.as_str(),
            opt_us(a.starts),
            opt_us(a.ends),
        ])
    })
    .map(|_| ())
    .map_err(db_err)
}

pub(crate) fn insert_product_key(conn: &Connection, k: &ProductKey) -> StoreResult<bool> {
    conn.prepare_cached(
        "INSERT INTO product_keys (product_code, seller_account, version, private_pem, \
         public_pem, created_us, retired_us) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7) \
         ON CONFLICT (seller_account, product_code, version) DO NOTHING",
    )
    .and_then(|mut s| {
        s.execute(params![
            k.product_code,
            k.seller_account,
            k.version,
            k.private_pem,
            k.public_pem,
            to_us(k.created_at),
            opt_us(k.retired_at),
        ])
    })
    .map(|n| n == 1)
    .map_err(db_err)
}

pub(crate) fn retire_product_key(
    conn: &Connection,
    product_code: &str,
    version: i64,
    at: OffsetDateTime,
) -> StoreResult<bool> {
    let changed = conn
        .prepare_cached(
            "UPDATE product_keys SET retired_us = COALESCE(retired_us, ?3) \
             WHERE product_code = ?1 AND version = ?2",
        )
        .and_then(|mut s| s.execute(params![product_code, version, to_us(at)]))
        .map_err(db_err)?;
    Ok(changed > 0)
}

/// Empties the metering tables (the caller's savepoint makes it all or nothing).
pub(crate) fn reset_metering(c: &Connection) -> StoreResult<ResetCounts> {
    let mut n = [0u64; 4];
    for (count, table) in n.iter_mut().zip(METERING_TABLES) {
        *count = c
            .prepare_cached(&format!("DELETE FROM {table}"))
            .and_then(|mut s| s.execute([]))
            .map_err(db_err)? as u64;
    }
    crate::rollup::clear(c)?;
    Ok(ResetCounts::from_counts(n))
}

pub(crate) fn delete_product(conn: &Connection, code: &str) -> StoreResult<ProductDeletion> {
    let counts: [i64; 4] = conn
        .query_row(rows::PRODUCT_REFERENCES_SQL, [code], |r| {
            Ok([r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?])
        })
        .map_err(db_err)?;
    if let Some(held) = rows::product_in_use(counts) {
        return Ok(ProductDeletion::InUse(held));
    }
    conn.execute("DELETE FROM product_keys WHERE product_code = ?1", [code])
        .map_err(db_err)?;
    let n = conn
        .execute("DELETE FROM products WHERE code = ?1", [code])
        .map_err(db_err)?;
    Ok(if n > 0 {
        ProductDeletion::Deleted
    } else {
        ProductDeletion::NotFound
    })
}
