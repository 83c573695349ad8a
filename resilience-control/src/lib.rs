//! Control plane for [`resilience_core`]: the async loops that read the data plane's snapshots
//! and events. This crate grows with the control-plane issues; today it re-exports the core.
#![forbid(unsafe_code)]

pub use resilience_core as core;
