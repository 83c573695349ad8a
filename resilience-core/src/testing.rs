//! Reference-model drivers shared by the fuzz targets, property tests and corpus-replay tests.
//!
//! Each driver decodes arbitrary bytes into operations, applies them to the real type (on a
//! [`ManualClock`](crate::ManualClock)) and to a deliberately simple model, and panics on the
//! first observable difference. Keeping the drivers here lets a normal `#[test]` replay the
//! committed fuzz corpus on stable.

pub mod breaker_model;
pub mod bulkhead_model;
pub mod fault_table_model;
pub mod keyed_rate_limit_model;
pub mod meter_model;
pub mod rate_limit_model;
