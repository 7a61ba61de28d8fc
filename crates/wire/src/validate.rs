//! Placeholder: constraint enforcement (filled in by the validation work).
use crate::error::ApiError;
pub trait Validate {
    fn validate(&self) -> Result<(), ApiError>;
}
impl Validate for crate::shapes::BatchMeterUsageRequest { fn validate(&self) -> Result<(), ApiError> { Ok(()) } }
impl Validate for crate::shapes::MeterUsageRequest { fn validate(&self) -> Result<(), ApiError> { Ok(()) } }
impl Validate for crate::shapes::RegisterUsageRequest { fn validate(&self) -> Result<(), ApiError> { Ok(()) } }
impl Validate for crate::shapes::ResolveCustomerRequest { fn validate(&self) -> Result<(), ApiError> { Ok(()) } }
