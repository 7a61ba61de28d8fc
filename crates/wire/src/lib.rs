//! The wire contract of `meteringmarketplace` (awsJson 1.1): shapes, the constraint table,
//! error codes, timestamp and decimal codecs. Pure: no I/O, no storage, no HTTP.

pub mod constraints;
pub mod error;
pub mod operation;
pub mod quantity;
pub mod shapes;
pub mod timestamp;
pub mod validate;

pub use error::{ApiError, ErrorCode};
pub use operation::{decode_json, decode_request, Operation, Request};
pub use quantity::{Quantity, QuantityKind};
pub use shapes::*;
pub use timestamp::EpochTime;
