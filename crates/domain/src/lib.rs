//! The metering rules: identities, catalog, hour buckets, windows, dedup, entitlement,
//! registration tokens, RegisterUsage signatures. Knows nothing of HTTP or SQL: storage is the
//! [`Store`] trait, time is the [`Clock`] trait.

pub mod audit;
pub mod caller;
pub mod catalog;
pub mod clock;
pub mod containers;
pub mod dedup;
pub mod jws;
pub mod metering;
pub mod model;
pub mod reports;
pub mod seed;
pub mod store;
pub mod subscriptions;
pub mod tokens;
pub mod windows;

pub use caller::Caller;
pub use clock::{Clock, ManualClock, SystemClock};
pub use metering::{Metering, MeteringConfig};
pub use store::{Store, StoreError, StoreResult};
pub use windows::Windows;

/// Errors of the seller-side (admin) operations.
#[derive(Debug, thiserror::Error)]
pub enum AdminError {
    #[error("{0}")]
    NotFound(String),
    #[error("{0}")]
    BadRequest(String),
    #[error(transparent)]
    Store(#[from] StoreError),
}
