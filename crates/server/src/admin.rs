//! Seller control plane: registration tokens, usage records, public keys (the catalog is in
//! [`crate::admin_catalog`]).
//! JSON over HTTP, `Authorization: Bearer <admin token>`.

use crate::AppState;
use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use marketmeter_domain::model::UsageRecordRow;
use marketmeter_domain::store::UsageFilter;
use marketmeter_domain::windows::rfc3339;
use marketmeter_domain::{jws, AdminError};
use serde::Deserialize;
use serde_json::{json, Value};
use sha2::{Digest, Sha256};
use std::sync::Arc;
use subtle::ConstantTimeEq;
use time::OffsetDateTime;

pub struct AdminFailure(
    pub(crate) StatusCode,
    pub(crate) &'static str,
    pub(crate) String,
);

impl IntoResponse for AdminFailure {
    fn into_response(self) -> Response {
        (
            self.0,
            Json(json!({"error": {"code": self.1, "message": self.2}})),
        )
            .into_response()
    }
}

impl From<AdminError> for AdminFailure {
    fn from(e: AdminError) -> Self {
        match e {
            AdminError::NotFound(m) => Self(StatusCode::NOT_FOUND, "NotFound", m),
            AdminError::BadRequest(m) => Self(StatusCode::BAD_REQUEST, "BadRequest", m),
            AdminError::Store(e) => {
                tracing::error!(error = %e, "admin store error");
                Self(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "StoreUnavailable",
                    "the store is unavailable; retry".into(),
                )
            }
        }
    }
}

impl From<marketmeter_domain::StoreError> for AdminFailure {
    fn from(e: marketmeter_domain::StoreError) -> Self {
        AdminError::Store(e).into()
    }
}

pub(crate) type AdminResult = Result<Response, AdminFailure>;

pub(crate) fn bad_request(m: impl Into<String>) -> AdminFailure {
    AdminFailure(StatusCode::BAD_REQUEST, "BadRequest", m.into())
}

/// Constant-time bearer token check. Both sides are hashed first so that neither the
/// position of the first differing byte nor the token's length shows in the timing.
pub(crate) fn authorize(state: &AppState, headers: &HeaderMap) -> Result<(), AdminFailure> {
    let presented = headers
        .get(http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .unwrap_or("");
    let presented = Sha256::digest(presented.as_bytes());
    let expected = Sha256::digest(state.admin_token.as_bytes());
    if bool::from(presented.ct_eq(&expected)) {
        Ok(())
    } else {
        Err(AdminFailure(
            StatusCode::UNAUTHORIZED,
            "Unauthorized",
            "send Authorization: Bearer <admin token> (--admin-token / MARKETMETER_ADMIN_TOKEN)"
                .into(),
        ))
    }
}

/// Parses a JSON body; the error names the field at fault (`dimensions[0].price: ...`).
pub(crate) fn parse_json<T: for<'de> Deserialize<'de>>(body: &[u8]) -> Result<T, AdminFailure> {
    let de = &mut serde_json::Deserializer::from_slice(body);
    serde_path_to_error::deserialize(de).map_err(|e| {
        let path = e.path().to_string();
        let inner = e.into_inner();
        if path == "." {
            bad_request(format!("invalid JSON body: {inner}"))
        } else {
            bad_request(format!("invalid JSON body: {path}: {inner}"))
        }
    })
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct NewToken {
    product_code: String,
    customer_aws_account_id: String,
}

pub async fn create_registration_token(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    body: Bytes,
) -> AdminResult {
    authorize(&state, &headers)?;
    let req: NewToken = parse_json(&body)?;
    let token = state
        .metering
        .mint_registration_token(&req.product_code, &req.customer_aws_account_id)
        .await?;
    Ok((
        StatusCode::CREATED,
        Json(json!({"registration_token": token.token, "expires_at": rfc3339(token.expires_at)})),
    )
        .into_response())
}

#[derive(Deserialize)]
pub struct UsageQuery {
    product_code: Option<String>,
    limit: Option<u32>,
}

pub async fn list_usage_records(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    Query(q): Query<UsageQuery>,
) -> AdminResult {
    authorize(&state, &headers)?;
    let filter = UsageFilter {
        seller_account: None,
        product_code: q.product_code,
        limit: q.limit,
    };
    let rows = state.metering.store().usage_records(&filter).await?;
    let records: Vec<Value> = rows.iter().map(usage_json).collect();
    Ok(Json(json!({ "records": records })).into_response())
}

fn hour_rfc3339(hour: i64) -> Option<String> {
    OffsetDateTime::from_unix_timestamp(hour * 3600)
        .ok()
        .map(rfc3339)
}

fn usage_json(r: &UsageRecordRow) -> Value {
    let allocations: Vec<Value> = r
        .allocations
        .iter()
        .map(|a| {
            json!({
                "quantity": a.quantity.to_string(),
                "tags": a.tags.iter().map(|t| json!({"key": t.key, "value": t.value})).collect::<Vec<_>>(),
            })
        })
        .collect();
    json!({
        "metering_record_id": r.metering_record_id,
        "product_code": r.product_code,
        "license_arn": r.license_arn,
        "customer_identifier": r.customer_identifier,
        "customer_aws_account_id": r.customer_aws_account_id,
        "resource_id": r.resource_id,
        "dimension": r.key.dimension,
        "hour": hour_rfc3339(r.key.hour),
        "quantity": r.quantity.to_string(),
        "allocations": allocations,
        "operation": r.operation.as_str(),
        "received_at": rfc3339(r.received_at),
    })
}

fn key_json(k: &marketmeter_domain::model::ProductKey) -> Result<Value, AdminFailure> {
    let jwk = jws::public_jwk(k).map_err(|e| {
        tracing::error!(error = %e, "jwk export failed");
        AdminFailure(
            StatusCode::INTERNAL_SERVER_ERROR,
            "Internal",
            "could not export the key".into(),
        )
    })?;
    Ok(json!({
        "version": k.version,
        "pem": k.public_pem,
        "jwk": jwk,
        "retired_at": k.retired_at.map(rfc3339),
    }))
}

pub async fn add_public_key(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    Path(code): Path<String>,
) -> AdminResult {
    authorize(&state, &headers)?;
    let key = state.metering.add_key_version(&code).await?;
    Ok((StatusCode::CREATED, Json(key_json(&key)?)).into_response())
}

pub async fn retire_public_key(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    Path((code, version)): Path<(String, i64)>,
) -> AdminResult {
    authorize(&state, &headers)?;
    let key = state.metering.retire_key_version(&code, version).await?;
    Ok(Json(key_json(&key)?).into_response())
}

pub async fn public_keys(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    Path(code): Path<String>,
) -> AdminResult {
    authorize(&state, &headers)?;
    let store = state.metering.store();
    if store.product(&code).await?.is_none() {
        return Err(AdminError::NotFound(format!("product {code} does not exist")).into());
    }
    let mut keys = Vec::new();
    for k in store.product_keys(&code).await? {
        keys.push(key_json(&k)?);
    }
    Ok(Json(json!({ "keys": keys })).into_response())
}
