//! The chaos engine: validated fault injection into the data plane's
//! [`FaultTable`](resilience_core::chaos::FaultTable), with hard safety bounds, a production
//! guard, automatic expiry, an emergency stop, real resource exhaustion, scoped scenarios and a
//! test helper.
//!
//! ```
//! use std::sync::Arc;
//! use std::time::Duration;
//! use resilience_control::chaos::{ChaosConfig, ChaosEngine};
//! use resilience_core::chaos::{ErrorCode, FaultTable};
//!
//! let table = Arc::new(FaultTable::builder().build()?); // the data path checks this
//! let engine = ChaosEngine::builder(table.clone())
//!     .config(ChaosConfig::from_env()?) // CHAOS_ENABLED, CHAOS_MAX_DURATION_SECONDS
//!     .build()?;
//! match engine.inject_errors("payments", 0.1, ErrorCode(503)).duration(Duration::from_secs(60)).start() {
//!     Ok(id) => println!("started {id}"),
//!     Err(refused) => println!("refused: {refused}"), // e.g. chaos not enabled here
//! }
//! engine.emergency_stop(); // everything off, at once
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! # Safety bounds
//!
//! * Refused unless enabled in configuration ([`ChaosConfig::enabled`], `CHAOS_ENABLED`).
//! * Duration at most `max_duration` (300 s, `CHAOS_MAX_DURATION_SECONDS`); latency 0 to
//!   5000 ms; rates in [0, 1]; resource levels in (0, 1], and shares of one resource never add
//!   past 1; a blast radius that contains the target; unique names among live scenarios.
//! * Expiry is enforced by the data plane itself (a stalled control plane cannot leave a fault
//!   running) and by [`ChaosEngine::run`], which also releases resources.
//! * [`ChaosEngine::emergency_stop`] is one atomic store seen by every later check on every
//!   thread, then disarms everything, restores forced breakers and releases resources.

mod config;
mod engine;
mod harness;
mod resources;
mod scoped;
mod table;

pub use config::ChaosConfig;
pub use engine::{
    ChaosEngine, ChaosEngineBuilder, ChaosEngineError, ChaosMetrics, EmergencyStop, Injection,
};
pub use harness::{ChaosHarness, TestFault};
pub use resources::{ConnectionGate, ConnectionPermit, ResourceUsage, Resources, Throttle};
pub use scoped::ScopedChaos;
pub use table::ChaosTable;
