//! Operation dispatch on `X-Amz-Target` and request decoding (JSON -> typed shape -> constraints).

use crate::error::{ApiError, ErrorCode};
use crate::shapes::*;
use crate::validate::Validate;
use serde::de::DeserializeOwned;

pub const TARGET_PREFIX: &str = "AWSMPMeteringService";
pub const CONTENT_TYPE: &str = "application/x-amz-json-1.1";
/// The model's request ceiling for BatchMeterUsage ("less than 1 MB"), applied to every body.
pub const MAX_BODY_BYTES: usize = 1024 * 1024;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Operation {
    BatchMeterUsage,
    MeterUsage,
    RegisterUsage,
    ResolveCustomer,
}

impl Operation {
    pub const ALL: [Operation; 4] = [
        Self::BatchMeterUsage,
        Self::MeterUsage,
        Self::RegisterUsage,
        Self::ResolveCustomer,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Self::BatchMeterUsage => "BatchMeterUsage",
            Self::MeterUsage => "MeterUsage",
            Self::RegisterUsage => "RegisterUsage",
            Self::ResolveCustomer => "ResolveCustomer",
        }
    }

    /// Parses `AWSMPMeteringService.<Operation>`; anything else is UnknownOperationException.
    pub fn from_target(target: Option<&str>) -> Result<Self, ApiError> {
        let Some(target) = target else {
            return Err(ApiError::new(
                ErrorCode::UnknownOperation,
                "missing X-Amz-Target header; expected AWSMPMeteringService.<Operation>",
            ));
        };
        let op = target
            .strip_prefix(TARGET_PREFIX)
            .and_then(|rest| rest.strip_prefix('.'))
            .and_then(|name| Self::ALL.into_iter().find(|op| op.name() == name));
        op.ok_or_else(|| {
            ApiError::new(
                ErrorCode::UnknownOperation,
                format!(
                    "unknown operation {target:?}; expected one of AWSMPMeteringService.BatchMeterUsage, \
                     .MeterUsage, .RegisterUsage, .ResolveCustomer"
                ),
            )
        })
    }
}

/// A decoded and constraint-checked request.
#[derive(Debug, Clone, PartialEq)]
pub enum Request {
    BatchMeterUsage(BatchMeterUsageRequest),
    MeterUsage(MeterUsageRequest),
    RegisterUsage(RegisterUsageRequest),
    ResolveCustomer(ResolveCustomerRequest),
}

/// Decodes the body of `op` and enforces every constraint of the model on it.
pub fn decode_request(op: Operation, body: &[u8]) -> Result<Request, ApiError> {
    Ok(match op {
        Operation::BatchMeterUsage => Request::BatchMeterUsage(decode_validated(body)?),
        Operation::MeterUsage => Request::MeterUsage(decode_validated(body)?),
        Operation::RegisterUsage => Request::RegisterUsage(decode_validated(body)?),
        Operation::ResolveCustomer => Request::ResolveCustomer(decode_validated(body)?),
    })
}

fn decode_validated<T: DeserializeOwned + Validate>(body: &[u8]) -> Result<T, ApiError> {
    let value: T = decode_json(body)?;
    value.validate()?;
    Ok(value)
}

/// JSON -> shape. An empty body is `{}` (awsJson). Errors name the member path.
pub fn decode_json<T: DeserializeOwned>(body: &[u8]) -> Result<T, ApiError> {
    let body: &[u8] = if body.iter().all(u8::is_ascii_whitespace) {
        b"{}"
    } else {
        body
    };
    let de = &mut serde_json::Deserializer::from_slice(body);
    let value = serde_path_to_error::deserialize(de).map_err(|e| {
        // A missing/null required member is a constraint violation, not a syntax problem.
        if let Some(missing) = crate::validate::missing_member_error(e.path(), e.inner()) {
            return missing;
        }
        let path = e.path().to_string();
        let inner = e.into_inner();
        if inner.is_data() && path != "." {
            ApiError::serialization(format!("invalid value at {path}: {inner}"))
        } else if inner.is_data() {
            ApiError::serialization(format!("invalid request body: {inner}"))
        } else {
            ApiError::serialization(format!("request body is not valid JSON: {inner}"))
        }
    })?;
    Ok(value)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn targets() {
        assert_eq!(
            Operation::from_target(Some("AWSMPMeteringService.MeterUsage")).unwrap(),
            Operation::MeterUsage
        );
        for bad in [
            None,
            Some(""),
            Some("AWSMPMeteringService"),
            Some("AWSMPMeteringService.Nope"),
            Some("Other.MeterUsage"),
            Some("AWSMPMeteringServiceMeterUsage"),
        ] {
            assert_eq!(
                Operation::from_target(bad).unwrap_err().code,
                ErrorCode::UnknownOperation
            );
        }
    }

    #[test]
    fn wrong_types_are_serialization_errors_naming_the_member() {
        let e = decode_json::<MeterUsageRequest>(
            br#"{"ProductCode":"p","Timestamp":"soon","UsageDimension":"d"}"#,
        )
        .unwrap_err();
        assert_eq!(e.code, ErrorCode::Serialization);
        assert!(e.message.contains("Timestamp"), "{}", e.message);
        let e = decode_json::<MeterUsageRequest>(b"{not json").unwrap_err();
        assert_eq!(e.code, ErrorCode::Serialization);
        let e = decode_json::<MeterUsageRequest>(b"[]").unwrap_err();
        assert_eq!(e.code, ErrorCode::Serialization);
    }
}
