//! Recording metering calls in the audit trail (see `marketmeter_domain::audit`): the event
//! of a call is started when it arrives, filled in by authentication and decoding, and, when
//! no store write recorded it with the call's change, appended once the answer is known.

use crate::AppState;
use bytes::Bytes;
use http::request::Parts;
use marketmeter_domain::audit::{raw_parameters, Audit, AuditEvent};
use marketmeter_wire::ApiError;
use std::net::SocketAddr;

/// The request id answered in `x-amzn-RequestId`, set by the router's outermost layer.
#[derive(Debug, Clone)]
pub struct RequestId(pub String);

/// The TCP peer of the connection a request came on, set by the server loop.
#[derive(Debug, Clone, Copy)]
pub struct PeerAddr(pub SocketAddr);

/// The event of a call that just arrived.
pub fn arrival(state: &AppState, parts: &Parts) -> Audit {
    let request_id = parts
        .extensions
        .get::<RequestId>()
        .map_or_else(|| uuid::Uuid::new_v4().to_string(), |r| r.0.clone());
    let mut e = AuditEvent::arrived(state.metering.clock().now(), request_id);
    e.source_ip = parts
        .extensions
        .get::<PeerAddr>()
        .map(|p| p.0.ip().to_string());
    if let Some(ua) = parts
        .headers
        .get(http::header::USER_AGENT)
        .and_then(|v| v.to_str().ok())
    {
        e.set_user_agent(ua);
    }
    Audit::new(e)
}

/// Appends the event of a call that no store write recorded: rejections, reads, dry runs,
/// injected faults, and writes that failed (their event rolled back with them). `raw` is the
/// body when it was read but not decoded. A failing append is logged, never answered: the
/// caller already has its answer.
pub async fn finish(state: &AppState, audit: Audit, raw: Option<Bytes>, error: Option<&ApiError>) {
    if audit.is_recorded() {
        return;
    }
    let mut event = audit.into_event();
    if event.request_parameters.is_none() {
        event.request_parameters = raw.as_deref().and_then(raw_parameters);
    }
    if let Some(e) = error {
        event = event.failed(e.code);
    }
    if let Err(e) = state.metering.store().append_audit(event).await {
        state.metrics.audit_append_failed();
        tracing::error!(error = %e, "audit event could not be appended");
    }
}
