//! A `Copy` view of one breaker, for health scoring and metrics.

use crate::clock::Nanos;
use crate::governance::GovernanceHash;

use super::BreakerId;
use super::state::State;
use super::window::WindowCounts;

/// Everything observable about a breaker at one moment.
///
/// # Examples
///
/// ```
/// use resilience_core::{CircuitBreaker, State};
///
/// let breaker = CircuitBreaker::builder("db").build()?;
/// breaker.try_acquire().unwrap().failure();
/// let snap = breaker.snapshot();
/// assert_eq!(snap.state, State::Closed);
/// assert_eq!(snap.consecutive_failures, 1);
/// assert_eq!(snap.totals.failures, 1);
/// # Ok::<(), resilience_core::ConfigError>(())
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct BreakerSnapshot {
    /// Which breaker.
    pub id: BreakerId,
    /// Current state.
    pub state: State,
    /// Generation of the current state.
    pub generation: u32,
    /// Consecutive re-opens from HALF_OPEN (sets the OPEN time).
    pub backoff_level: u32,
    /// Run of consecutive failures (CLOSED only).
    pub consecutive_failures: u32,
    /// Probes in flight (HALF_OPEN only).
    pub half_open_in_flight: u32,
    /// Probe successes so far (HALF_OPEN only).
    pub half_open_successes: u32,
    /// Counts in the sliding window (zero without a rate policy).
    pub window: WindowCounts,
    /// Lifetime totals.
    pub totals: CallTotals,
    /// When the current state began, on the breaker's clock (millisecond resolution).
    pub since: Nanos,
    /// When an OPEN breaker will admit its first probe.
    pub open_until: Option<Nanos>,
    /// Governance tag.
    pub governance: GovernanceHash,
}

/// Lifetime call totals of one breaker (exact once callers are quiet).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct CallTotals {
    /// Outcomes reported as success.
    pub successes: u64,
    /// Outcomes reported as failure.
    pub failures: u64,
    /// Permits ignored or dropped without an outcome.
    pub ignored: u64,
    /// Calls refused.
    pub rejected: u64,
    /// Outcomes that arrived after the breaker had moved on, and were ignored.
    pub stale: u64,
    /// Successes and failures that were slow (feature `slow-call-timing`).
    pub slow: u64,
}
