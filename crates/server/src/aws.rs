//! The AWS endpoint: `POST /` dispatched on `X-Amz-Target`.

use crate::auth::authenticate;
use crate::response::{error_response, ok_response};
use crate::AppState;
use axum::body::Body;
use axum::extract::State;
use axum::response::Response;
use http::{HeaderMap, Method, Uri};
use http_body_util::BodyExt;
use marketmeter_wire::operation::{CONTENT_TYPE, MAX_BODY_BYTES};
use marketmeter_wire::{decode_request, ApiError, ErrorCode, Operation, Request};
use std::sync::Arc;

pub async fn handle(
    State(state): State<Arc<AppState>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Body,
) -> Response {
    match serve_operation(&state, &method, &uri, &headers, body).await {
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
    method: &Method,
    uri: &Uri,
    headers: &HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    let target = headers.get("x-amz-target").and_then(|v| v.to_str().ok());
    let op = Operation::from_target(target)?;
    check_content_type(headers)?;
    let body = read_body(headers, body).await?;
    let caller = authenticate(state, method.as_str(), uri, headers, &body).await?;
    let m = &state.metering;
    tracing::debug!(operation = op.name(), account = ?caller.account_id, "request");
    Ok(match decode_request(op, &body)? {
        Request::BatchMeterUsage(r) => ok_response(&m.batch_meter_usage(&caller, r).await?),
        Request::MeterUsage(r) => ok_response(&m.meter_usage(&caller, r).await?),
        Request::RegisterUsage(r) => ok_response(&m.register_usage(&caller, r).await?),
        Request::ResolveCustomer(r) => ok_response(&m.resolve_customer(&caller, r).await?),
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

/// Reads at most the 1 MB limit; a declared or actual larger body is refused without buffering it.
async fn read_body(headers: &HeaderMap, body: Body) -> Result<bytes::Bytes, ApiError> {
    let declared = headers
        .get(http::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > MAX_BODY_BYTES as u64) {
        return Err(too_large());
    }
    let limited = http_body_util::Limited::new(body, MAX_BODY_BYTES);
    match limited.collect().await {
        Ok(c) => Ok(c.to_bytes()),
        Err(e)
            if e.downcast_ref::<http_body_util::LengthLimitError>()
                .is_some() =>
        {
            Err(too_large())
        }
        Err(e) => Err(ApiError::serialization(format!(
            "could not read the request body: {e}"
        ))),
    }
}

/// Anything that is not `POST /` or an admin/health path.
pub async fn fallback(method: Method, uri: Uri) -> Response {
    error_response(&ApiError::new(
        ErrorCode::UnknownOperation,
        format!("{method} {} is not an operation of this service; send POST / with X-Amz-Target: AWSMPMeteringService.<Operation>", uri.path()),
    ))
}
