//! awsJson 1.1 responses: status, `x-amzn-ErrorType` equal to body `__type`, lower-case `message`.

use axum::body::Body;
use axum::response::Response;
use http::{HeaderValue, StatusCode};
use marketmeter_wire::{ApiError, ErrorCode};
use serde::Serialize;

pub const AMZ_JSON: &str = "application/x-amz-json-1.1";

pub fn error_response(e: &ApiError) -> Response {
    let mut resp = Response::new(Body::from(e.to_body()));
    *resp.status_mut() =
        StatusCode::from_u16(e.code.http_status()).unwrap_or(StatusCode::BAD_REQUEST);
    let h = resp.headers_mut();
    h.insert(
        http::header::CONTENT_TYPE,
        HeaderValue::from_static(AMZ_JSON),
    );
    h.insert(
        "x-amzn-ErrorType",
        HeaderValue::from_static(e.code.type_name()),
    );
    resp
}

pub fn ok_response<T: Serialize>(value: &T) -> Response {
    match serde_json::to_vec(value) {
        Ok(body) => {
            let mut resp = Response::new(Body::from(body));
            resp.headers_mut().insert(
                http::header::CONTENT_TYPE,
                HeaderValue::from_static(AMZ_JSON),
            );
            resp
        }
        Err(e) => {
            tracing::error!(error = %e, "response serialization failed");
            error_response(&ApiError::new(
                ErrorCode::InternalServiceError,
                "internal error; retry the request",
            ))
        }
    }
}
