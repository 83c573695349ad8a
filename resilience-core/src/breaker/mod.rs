//! The circuit breaker: state machine, configuration, permits, windows and the registry.

mod call_future;
mod circuit;
pub mod config;
#[cfg(all(test, resilience_loom))]
mod loom_tests;
mod permit;
mod registry;
mod snapshot;
mod state;
mod window;

use core::fmt;
// Breaker ids come from a process-global counter in a `static` (not a modelled protocol).
use core::sync::atomic::{AtomicU32, Ordering};

pub use call_future::{CallFuture, Classify, ErrorsAreFailures, HeldPermit};
pub use circuit::{CircuitBreaker, CircuitBreakerBuilder, ForcedOpen};
#[cfg(feature = "slow-call-timing")]
pub use config::SlowCallPolicy;
pub use config::{BreakerConfig, BreakerConfigBuilder, SlidingWindow};
pub use permit::{CallError, Outcome, OwnedPermit, Permit, RejectReason, Rejected};
pub use registry::{BreakerRegistry, RegistryError};
pub use snapshot::{BreakerSnapshot, CallTotals};
pub use state::State;
pub use window::WindowCounts;

pub(crate) use circuit::validate_name;

/// A process-unique breaker id, carried by events and rejections instead of the name.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct BreakerId(u32);

impl BreakerId {
    pub(crate) fn next() -> Self {
        static NEXT: AtomicU32 = AtomicU32::new(1);
        BreakerId(NEXT.fetch_add(1, Ordering::Relaxed))
    }

    /// The raw id.
    pub const fn as_u32(self) -> u32 {
        self.0
    }
}

impl fmt::Display for BreakerId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "#{}", self.0)
    }
}
