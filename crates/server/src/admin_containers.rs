//! Admin API for container metering: list the runs of workloads that called RegisterUsage,
//! and report a workload stopped (see [`marketmeter_domain::containers`]).

use crate::admin::{bad_request, parse_json, AdminFailure};
use crate::admin_catalog::require_token;
use crate::AppState;
use axum::body::Bytes;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, State};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use marketmeter_domain::containers::{billed_hours, HOURLY_DIMENSION};
use marketmeter_domain::model::ContainerSession;
use marketmeter_domain::store::ContainerFilter;
use marketmeter_domain::windows::rfc3339;
use serde::Deserialize;
use serde_json::{json, Value};
use std::sync::Arc;
use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;

type AdminResult = Result<Response, AdminFailure>;

pub fn routes(state: Arc<AppState>) -> Router<Arc<AppState>> {
    Router::new()
        .route("/admin/v1/container-sessions", get(list_sessions))
        .route("/admin/v1/container-sessions/stop", post(stop_session))
        .route_layer(axum::middleware::from_fn_with_state(state, require_token))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SessionQuery {
    product_code: Option<String>,
    customer_aws_account_id: Option<String>,
    resource_id: Option<String>,
    seller_account: Option<String>,
    state: Option<String>,
    limit: Option<u32>,
}

async fn list_sessions(
    State(state): State<Arc<AppState>>,
    q: Result<Query<SessionQuery>, QueryRejection>,
) -> AdminResult {
    // An unknown or malformed parameter is a JSON 400 like every other admin error.
    let Query(q) = q.map_err(|e| bad_request(e.body_text()))?;
    let running = match q.state.as_deref() {
        None => None,
        Some("running") => Some(true),
        Some("stopped") => Some(false),
        Some(s) => {
            return Err(bad_request(format!(
                "state: {s:?} is not running or stopped"
            )))
        }
    };
    let filter = ContainerFilter {
        seller_account: q.seller_account,
        product_code: q.product_code,
        customer_account: q.customer_aws_account_id,
        resource_id: q.resource_id,
        running,
        limit: q.limit,
        ..ContainerFilter::default()
    };
    let sessions = state.metering.container_sessions(&filter).await?;
    let now = state.metering.clock().now();
    let sessions: Vec<Value> = sessions.iter().map(|s| session_json(s, now)).collect();
    Ok(Json(json!({ "sessions": sessions })).into_response())
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct StopRequest {
    product_code: String,
    resource_id: String,
    /// RFC 3339; default: the service clock's now.
    at: Option<String>,
}

async fn stop_session(State(state): State<Arc<AppState>>, body: Bytes) -> AdminResult {
    let req: StopRequest = parse_json(&body)?;
    let at = req
        .at
        .as_deref()
        .map(|v| {
            OffsetDateTime::parse(v, &Rfc3339)
                .map_err(|e| bad_request(format!("at: {v:?} is not an RFC 3339 time ({e})")))
        })
        .transpose()?;
    let s = state
        .metering
        .stop_container(&req.product_code, &req.resource_id, at)
        .await?;
    let now = state.metering.clock().now();
    Ok(Json(session_json(&s, now)).into_response())
}

fn session_json(s: &ContainerSession, now: OffsetDateTime) -> Value {
    json!({
        "product_code": s.product_code,
        "seller_account": s.seller_account,
        "resource_id": s.resource_id,
        "run": s.run,
        "customer_aws_account_id": s.customer_account,
        "platform": s.platform.as_str(),
        "region": s.region,
        "started_at": rfc3339(s.first_registered_at),
        "stopped_at": s.stopped_at.map(rfc3339),
        "state": if s.stopped_at.is_some() { "stopped" } else { "running" },
        "dimension": HOURLY_DIMENSION,
        "billed_hours": billed_hours(s, now).to_string(),
    })
}
