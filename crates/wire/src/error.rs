//! Every error the service can answer, each knowing its `__type`, HTTP status and fault.

use std::fmt;

/// The awsJson error codes: the model's exceptions plus the customary front-end errors
/// that AWS JSON services answer before an operation runs (PROTOCOL.md §2.3, §2.4).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ErrorCode {
    // Modeled exceptions (botocore model).
    CustomerNotEntitled,
    DisabledApi,
    DuplicateRequest,
    ExpiredToken,
    IdempotencyConflict,
    InternalServiceError,
    InvalidCustomerIdentifier,
    InvalidEndpointRegion,
    InvalidLicense,
    InvalidProductCode,
    InvalidPublicKeyVersion,
    InvalidRegion,
    InvalidTag,
    InvalidToken,
    InvalidUsageAllocations,
    InvalidUsageDimension,
    PlatformNotSupported,
    Throttling,
    TimestampOutOfBounds,
    // Front-end errors every awsJson service answers (not in the model).
    Serialization,
    UnknownOperation,
    Validation,
    AccessDenied,
    UnrecognizedClient,
    InvalidSignature,
    IncompleteSignature,
    MissingAuthenticationToken,
    /// MeterUsage with `DryRun: true` that would have succeeded (model docs of DryRun).
    DryRunOperation,
    /// A body over the 1 MB request limit (the customary AWS name, status 413).
    RequestEntityTooLarge,
    /// The client did not send its body within the server's deadline (status 408).
    RequestTimeout,
}

impl ErrorCode {
    pub const ALL: [ErrorCode; 30] = [
        Self::CustomerNotEntitled,
        Self::DisabledApi,
        Self::DuplicateRequest,
        Self::ExpiredToken,
        Self::IdempotencyConflict,
        Self::InternalServiceError,
        Self::InvalidCustomerIdentifier,
        Self::InvalidEndpointRegion,
        Self::InvalidLicense,
        Self::InvalidProductCode,
        Self::InvalidPublicKeyVersion,
        Self::InvalidRegion,
        Self::InvalidTag,
        Self::InvalidToken,
        Self::InvalidUsageAllocations,
        Self::InvalidUsageDimension,
        Self::PlatformNotSupported,
        Self::Throttling,
        Self::TimestampOutOfBounds,
        Self::Serialization,
        Self::UnknownOperation,
        Self::Validation,
        Self::AccessDenied,
        Self::UnrecognizedClient,
        Self::InvalidSignature,
        Self::IncompleteSignature,
        Self::MissingAuthenticationToken,
        Self::DryRunOperation,
        Self::RequestEntityTooLarge,
        Self::RequestTimeout,
    ];

    /// The bare shape name sent as body `__type` and header `x-amzn-ErrorType`.
    pub fn type_name(self) -> &'static str {
        match self {
            Self::CustomerNotEntitled => "CustomerNotEntitledException",
            Self::DisabledApi => "DisabledApiException",
            Self::DuplicateRequest => "DuplicateRequestException",
            Self::ExpiredToken => "ExpiredTokenException",
            Self::IdempotencyConflict => "IdempotencyConflictException",
            Self::InternalServiceError => "InternalServiceErrorException",
            Self::InvalidCustomerIdentifier => "InvalidCustomerIdentifierException",
            Self::InvalidEndpointRegion => "InvalidEndpointRegionException",
            Self::InvalidLicense => "InvalidLicenseException",
            Self::InvalidProductCode => "InvalidProductCodeException",
            Self::InvalidPublicKeyVersion => "InvalidPublicKeyVersionException",
            Self::InvalidRegion => "InvalidRegionException",
            Self::InvalidTag => "InvalidTagException",
            Self::InvalidToken => "InvalidTokenException",
            Self::InvalidUsageAllocations => "InvalidUsageAllocationsException",
            Self::InvalidUsageDimension => "InvalidUsageDimensionException",
            Self::PlatformNotSupported => "PlatformNotSupportedException",
            Self::Throttling => "ThrottlingException",
            Self::TimestampOutOfBounds => "TimestampOutOfBoundsException",
            Self::Serialization => "SerializationException",
            Self::UnknownOperation => "UnknownOperationException",
            Self::Validation => "ValidationException",
            Self::AccessDenied => "AccessDeniedException",
            Self::UnrecognizedClient => "UnrecognizedClientException",
            Self::InvalidSignature => "InvalidSignatureException",
            Self::IncompleteSignature => "IncompleteSignatureException",
            Self::MissingAuthenticationToken => "MissingAuthenticationTokenException",
            Self::DryRunOperation => "DryRunOperation",
            Self::RequestEntityTooLarge => "RequestEntityTooLargeException",
            Self::RequestTimeout => "RequestTimeoutException",
        }
    }

    /// HTTP status: Smithy defaults (client 400, server 500) with the model's one
    /// `@httpError(409)`; authentication failures use the customary 403.
    pub fn http_status(self) -> u16 {
        match self {
            Self::InternalServiceError => 500,
            Self::IdempotencyConflict => 409,
            Self::RequestEntityTooLarge => 413,
            Self::RequestTimeout => 408,
            Self::UnrecognizedClient
            | Self::InvalidSignature
            | Self::IncompleteSignature
            | Self::MissingAuthenticationToken
            | Self::AccessDenied => 403,
            _ => 400,
        }
    }

    /// True for server faults (retryable by SDKs).
    pub fn is_fault(self) -> bool {
        matches!(self, Self::InternalServiceError)
    }
}

impl fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.type_name())
    }
}

/// An error answer: code plus a human message that says what to do.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{code}: {message}")]
pub struct ApiError {
    pub code: ErrorCode,
    pub message: String,
}

impl ApiError {
    pub fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        Self {
            code,
            message: message.into(),
        }
    }

    /// The awsJson 1.1 error body: `{"__type": ..., "message": ...}`.
    pub fn to_body(&self) -> Vec<u8> {
        serde_json::to_vec(&serde_json::json!({
            "__type": self.code.type_name(),
            "message": self.message,
        }))
        .expect("error body serializes")
    }
}

/// Shorthand constructors used across the crates.
macro_rules! ctor {
    ($($fn:ident => $code:ident),* $(,)?) => {
        impl ApiError {
            $(pub fn $fn(message: impl Into<String>) -> Self { Self::new(ErrorCode::$code, message) })*
        }
    };
}
ctor! {
    validation => Validation,
    serialization => Serialization,
    internal => InternalServiceError,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_unique_and_statuses_follow_the_model() {
        let mut names: Vec<_> = ErrorCode::ALL.iter().map(|c| c.type_name()).collect();
        names.sort();
        names.dedup();
        assert_eq!(names.len(), ErrorCode::ALL.len());
        assert_eq!(ErrorCode::IdempotencyConflict.http_status(), 409);
        assert_eq!(ErrorCode::InternalServiceError.http_status(), 500);
        assert_eq!(ErrorCode::Throttling.http_status(), 400);
    }

    #[test]
    fn body_has_type_and_lowercase_message() {
        let body = ApiError::new(ErrorCode::InvalidToken, "bad").to_body();
        let v: serde_json::Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(v["__type"], "InvalidTokenException");
        assert_eq!(v["message"], "bad");
    }
}
