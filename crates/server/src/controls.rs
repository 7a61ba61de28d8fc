//! Test controls of the admin API: the manual clock, fault injection, AWS quotas and a reset of
//! the metering state.

use crate::admin::{authorize, bad_request, parse_json, AdminFailure, AdminResult};
use crate::faults::NewRule;
use crate::quotas::LIMITS;
use crate::AppState;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::IntoResponse;
use axum::routing::{delete, get, post};
use axum::{Json, Router};
use marketmeter_domain::windows::rfc3339;
use serde::Deserialize;
use serde_json::{json, Map, Value};
use std::sync::Arc;
use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;

pub fn routes() -> Router<Arc<AppState>> {
    Router::new()
        .route("/admin/v1/clock", get(clock).put(set_clock))
        .route("/admin/v1/clock/advance", post(advance_clock))
        .route(
            "/admin/v1/faults",
            get(list_faults).post(add_fault).delete(clear_faults),
        )
        .route("/admin/v1/faults/{id}", delete(remove_fault))
        .route("/admin/v1/quotas", get(quotas).put(set_quotas))
        .route("/admin/v1/reset", post(reset))
}

// ------------------------------------------------------------------ clock

fn clock_json(state: &AppState) -> Value {
    let mode = if state.manual_clock.is_some() {
        "manual"
    } else {
        "system"
    };
    json!({"mode": mode, "now": rfc3339(state.metering.clock().now())})
}

fn manual(state: &AppState) -> Result<&marketmeter_domain::ManualClock, AdminFailure> {
    state.manual_clock.as_deref().ok_or_else(|| {
        AdminFailure(
            StatusCode::CONFLICT,
            "ClockNotManual",
            "the server runs on the system clock; start it with --clock manual to set or advance time"
                .into(),
        )
    })
}

async fn clock(State(state): State<Arc<AppState>>, headers: HeaderMap) -> AdminResult {
    authorize(&state, &headers)?;
    Ok(Json(clock_json(&state)).into_response())
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SetClock {
    now: String,
}

async fn set_clock(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    body: Bytes,
) -> AdminResult {
    authorize(&state, &headers)?;
    let req: SetClock = parse_json(&body)?;
    let t = OffsetDateTime::parse(&req.now, &Rfc3339).map_err(|e| {
        bad_request(format!(
            "now: {:?} is not an RFC 3339 time like 2026-01-31T23:00:00Z ({e})",
            req.now
        ))
    })?;
    let clock = manual(&state)?;
    clock.set(t);
    tracing::info!(now = %rfc3339(t), "manual clock set");
    Ok(Json(clock_json(&state)).into_response())
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Advance {
    seconds: i64,
}

/// Longest single advance: ten years (keeps every instant the domain computes representable).
const MAX_ADVANCE_SECONDS: i64 = 10 * 366 * 24 * 3600;

async fn advance_clock(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    body: Bytes,
) -> AdminResult {
    authorize(&state, &headers)?;
    let req: Advance = parse_json(&body)?;
    if !(0..=MAX_ADVANCE_SECONDS).contains(&req.seconds) {
        return Err(bad_request(format!(
            "seconds must be between 0 and {MAX_ADVANCE_SECONDS}; to go back in time, PUT /admin/v1/clock"
        )));
    }
    let clock = manual(&state)?;
    clock.advance(time::Duration::seconds(req.seconds));
    Ok(Json(clock_json(&state)).into_response())
}

// ------------------------------------------------------------------ faults

async fn list_faults(State(state): State<Arc<AppState>>, headers: HeaderMap) -> AdminResult {
    authorize(&state, &headers)?;
    Ok(Json(json!({"faults": state.faults.list()})).into_response())
}

async fn add_fault(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    body: Bytes,
) -> AdminResult {
    authorize(&state, &headers)?;
    let rule: NewRule = parse_json(&body)?;
    let rule = state
        .faults
        .add(rule)
        .map_err(|e| bad_request(format!("{}: {}", e.field, e.message)))?;
    tracing::info!(id = rule.id, kind = ?rule.kind, "fault rule added");
    Ok((StatusCode::CREATED, Json(rule)).into_response())
}

async fn clear_faults(State(state): State<Arc<AppState>>, headers: HeaderMap) -> AdminResult {
    authorize(&state, &headers)?;
    Ok(Json(json!({"removed": state.faults.clear()})).into_response())
}

async fn remove_fault(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> AdminResult {
    authorize(&state, &headers)?;
    let id: u64 = id
        .parse()
        .map_err(|_| bad_request(format!("id: {id:?} is not a fault rule id (a number)")))?;
    if state.faults.remove(id) {
        Ok(StatusCode::NO_CONTENT.into_response())
    } else {
        Err(AdminFailure(
            StatusCode::NOT_FOUND,
            "NotFound",
            format!("fault rule {id} does not exist"),
        ))
    }
}

// ------------------------------------------------------------------ quotas

fn quotas_json(state: &AppState) -> Value {
    let limits: Map<String, Value> = LIMITS
        .iter()
        .map(|(op, rps)| (op.name().to_string(), json!(rps)))
        .collect();
    json!({"enabled": state.quotas.enabled(), "requests_per_second": limits})
}

async fn quotas(State(state): State<Arc<AppState>>, headers: HeaderMap) -> AdminResult {
    authorize(&state, &headers)?;
    Ok(Json(quotas_json(&state)).into_response())
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SetQuotas {
    enabled: bool,
}

async fn set_quotas(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    body: Bytes,
) -> AdminResult {
    authorize(&state, &headers)?;
    let req: SetQuotas = parse_json(&body)?;
    state.quotas.set_enabled(req.enabled);
    Ok(Json(quotas_json(&state)).into_response())
}

// ------------------------------------------------------------------ reset

async fn reset(State(state): State<Arc<AppState>>, headers: HeaderMap) -> AdminResult {
    authorize(&state, &headers)?;
    let deleted = state.metering.store().reset_metering().await?;
    state.quotas.reset();
    tracing::warn!(?deleted, "metering state reset");
    Ok(Json(json!({"deleted": deleted})).into_response())
}
