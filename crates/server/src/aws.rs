//! The AWS endpoint: `POST /` dispatched on `X-Amz-Target`.

use crate::audit_trail;
use crate::auth::authenticate;
use crate::faults;
use crate::response::{error_response, ok_response};
use crate::AppState;
use axum::body::Body;
use axum::extract::State;
use axum::response::Response;
use http::request::Parts;
use http::{HeaderMap, Method, Uri};
use http_body_util::BodyExt;
use marketmeter_domain::audit::{request_parameters, Audit, AuditOutcome};
use marketmeter_wire::operation::{CONTENT_TYPE, MAX_BODY_BYTES};
use marketmeter_wire::{decode_request, ApiError, ErrorCode, Operation, Request};
use std::sync::Arc;

pub async fn handle(State(state): State<Arc<AppState>>, req: axum::extract::Request) -> Response {
    let (parts, body) = req.into_parts();
    let mut audit = audit_trail::arrival(&state, &parts);
    // The body as read, for the audit of a call that fails before it is decoded.
    let mut raw = None;
    let result = serve_operation(&state, &parts, body, &mut audit, &mut raw).await;
    audit_trail::finish(&state, audit, raw, result.as_ref().err()).await;
    match result {
        Ok(resp) => resp,
        Err(e) => {
            if e.code.is_fault() {
                tracing::error!(code = %e.code, message = %e.message, "request failed");
            } else {
                tracing::debug!(code = %e.code, message = %e.message, "request rejected");
            }
            error_response(&e)
        }
    }
}

async fn serve_operation(
    state: &AppState,
    parts: &Parts,
    body: Body,
    audit: &mut Audit,
    raw: &mut Option<bytes::Bytes>,
) -> Result<Response, ApiError> {
    let headers = &parts.headers;
    let target = headers.get("x-amz-target").and_then(|v| v.to_str().ok());
    let op = Operation::from_target(target)?;
    audit.event_mut().operation = op.name().to_string();
    check_content_type(headers)?;
    let body = tokio::time::timeout(state.limits.body_timeout, read_body(headers, body))
        .await
        .map_err(|_| body_timeout(state.limits.body_timeout))??;
    *raw = Some(body.clone());
    let caller = authenticate(
        state,
        parts.method.as_str(),
        &parts.uri,
        headers,
        &body,
        audit.event_mut(),
    )
    .await?;
    let m = &state.metering;
    tracing::debug!(operation = op.name(), account = ?caller.account_id, "request");
    state.quotas.check(op, &caller)?;
    let fault = state.faults.draw(op);
    if let Some(delay) = fault.delay {
        tokio::time::sleep(delay).await;
    }
    if let Some(e) = fault.error() {
        return Err(e);
    }
    let request = decode_request(op, &body)?;
    audit.event_mut().request_parameters = request_parameters(&request);
    *raw = None;
    Ok(match request {
        Request::BatchMeterUsage(r) => {
            let result = if fault.unprocessed {
                faults::unprocessed(r)
            } else {
                m.batch_meter_usage(&caller, r, audit).await?
            };
            if !result.unprocessed_records.is_empty() {
                audit.event_mut().outcome = AuditOutcome::Partial;
            }
            state.metrics.batch_records(&result);
            ok_response(&result)
        }
        Request::MeterUsage(r) => {
            let result = m.meter_usage(&caller, r, audit).await?;
            state.metrics.meter_record();
            ok_response(&result)
        }
        Request::RegisterUsage(r) => ok_response(&m.register_usage(&caller, r, audit).await?),
        Request::ResolveCustomer(r) => ok_response(&m.resolve_customer(&caller, r, audit).await?),
    })
}

fn check_content_type(headers: &HeaderMap) -> Result<(), ApiError> {
    let ct = headers
        .get(http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let media = ct.split(';').next().unwrap_or("").trim();
    if media.eq_ignore_ascii_case(CONTENT_TYPE) {
        Ok(())
    } else {
        Err(ApiError::serialization(format!(
            "unsupported Content-Type {ct:?}; send {CONTENT_TYPE} (the awsJson 1.1 protocol)"
        )))
    }
}

fn too_large() -> ApiError {
    ApiError::new(ErrorCode::RequestEntityTooLarge, format!("request body is larger than {MAX_BODY_BYTES} bytes (the 1 MB limit); send fewer records per request"))
}

fn body_timeout(limit: std::time::Duration) -> ApiError {
    ApiError::new(
        ErrorCode::RequestTimeout,
        format!(
            "the request body did not arrive within {} s; send it without pauses",
            limit.as_secs_f64()
        ),
    )
}

/// How much of an oversize body is read and thrown away before answering 413, so that clients
/// which only read the answer after sending everything still see it. Past this the connection
/// is closed instead; memory stays bounded either way.
const DRAIN_LIMIT: usize = 8 * 1024 * 1024;

/// Buffers at most the 1 MB limit; larger bodies (declared or actual) are discarded, not kept.
async fn read_body(headers: &HeaderMap, mut body: Body) -> Result<bytes::Bytes, ApiError> {
    let declared = headers
        .get(http::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    let mut buf = bytes::BytesMut::new();
    let mut seen = 0usize;
    let mut oversize = declared.is_some_and(|n| n > MAX_BODY_BYTES as u64);
    if oversize && declared.is_some_and(|n| n > DRAIN_LIMIT as u64) {
        return Err(too_large());
    }
    while let Some(frame) = body.frame().await {
        let frame = frame.map_err(|e| {
            ApiError::serialization(format!("could not read the request body: {e}"))
        })?;
        let Ok(data) = frame.into_data() else {
            continue;
        };
        seen += data.len();
        if seen > MAX_BODY_BYTES {
            oversize = true;
            buf.clear();
        }
        if seen > DRAIN_LIMIT {
            break;
        }
        if !oversize {
            buf.extend_from_slice(&data);
        }
    }
    if oversize {
        Err(too_large())
    } else {
        Ok(buf.freeze())
    }
}

/// Anything that is not `POST /` or an admin/health path.
pub async fn fallback(method: Method, uri: Uri) -> Response {
    error_response(&ApiError::new(
        ErrorCode::UnknownOperation,
        format!("{method} {} is not an operation of this service; send POST / with X-Amz-Target: AWSMPMeteringService.<Operation>", uri.path()),
    ))
}
