//! Chaos on the data path: a [`FaultTable`] of armed scenarios, checked per call.
//!
//! Scenarios are armed (by the control plane's chaos engine, or directly in tests) with hard
//! safety bounds: a maximum duration, a maximum latency, a rate in [0, 1], and a blast radius
//! that must contain the target and outside of which nothing is touched. Every scenario's expiry
//! is checked on the data path itself, and an emergency stop is one atomic store.
//!
//! ```
//! use resilience_core::chaos::{ErrorCode, Fault, FaultSpec, FaultTable, Scenario};
//!
//! let table = FaultTable::builder().build()?;
//! let payments = table.point("payments")?;
//! table.arm(Scenario::new("flaky-payments", "payments", FaultSpec::Error(ErrorCode(503))))?;
//! if let Some(Fault::Error(ErrorCode(code))) = table.check(payments) {
//!     assert_eq!(code, 503); // the caller turns this into its own error
//! }
//! table.emergency_stop();
//! assert_eq!(table.check(payments), None);
//! # Ok::<(), resilience_core::chaos::ChaosError>(())
//! ```

mod fault;
pub(crate) mod rng;
mod scenario;
mod slot;
mod table;

pub use fault::{ErrorCode, Fault, FaultKind, FaultSpec, Resource};
pub use rng::seed_thread_rng;
pub use scenario::{ChaosError, ChaosLimits, Scenario, ScenarioId};
pub use table::{
    ActiveScenario, ChaosPoint, FaultTable, FaultTableBuilder, ForceableBreaker, StopReport,
};
