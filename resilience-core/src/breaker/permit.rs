//! Permits (a granted call), outcomes, and rejections.

use core::fmt;
use core::mem::ManuallyDrop;
use core::time::Duration;
use std::sync::Arc;

use crate::clock::{Clock, CoarseClock};
use crate::governance::GovernanceHash;

#[cfg(feature = "slow-call-timing")]
use crate::clock::Nanos;

use super::BreakerId;
use super::circuit::CircuitBreaker;
use super::state::{State, Ticket, Word};

/// How a call went, as the breaker should count it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Outcome {
    /// The call succeeded (or failed in a way that says nothing about the dependency).
    Success,
    /// The call failed and counts toward tripping.
    Failure,
    /// The call is not counted at all (e.g. a client-side validation error); a HALF_OPEN probe
    /// slot is released.
    Ignore,
}

/// Permission for one call, from [`CircuitBreaker::try_acquire`].
///
/// Report how the call went with [`success`](Self::success), [`failure`](Self::failure) or
/// [`ignore`](Self::ignore). Dropping the permit without reporting (a cancelled future, an early
/// return) releases it like `ignore`, so a lost HALF_OPEN probe never wedges the breaker; dropping
/// it while the thread panics counts as a failure.
///
/// The permit remembers the breaker's generation: if the breaker has moved on (tripped, reset,
/// forced open) by the time the outcome arrives, the outcome is ignored and counted as stale.
#[must_use = "report the call's outcome with success(), failure() or ignore()"]
pub struct Permit<'a, C: Clock = CoarseClock> {
    breaker: &'a CircuitBreaker<C>,
    ticket: Ticket,
    #[cfg(feature = "slow-call-timing")]
    started: Option<Nanos>,
}

impl<'a, C: Clock> Permit<'a, C> {
    #[inline(always)]
    pub(crate) fn new(breaker: &'a CircuitBreaker<C>, ticket: Ticket) -> Self {
        Permit {
            breaker,
            ticket,
            #[cfg(feature = "slow-call-timing")]
            started: breaker.start_timing(),
        }
    }

    /// The permit as plain data, without running its `Drop` (for [`OwnedPermit`]).
    #[inline(always)]
    pub(crate) fn into_raw(self) -> RawPermit {
        let this = ManuallyDrop::new(self);
        RawPermit {
            ticket: this.ticket,
            #[cfg(feature = "slow-call-timing")]
            started: this.started,
        }
    }

    #[inline(always)]
    pub(crate) fn from_raw(breaker: &'a CircuitBreaker<C>, raw: RawPermit) -> Self {
        Permit {
            breaker,
            ticket: raw.ticket,
            #[cfg(feature = "slow-call-timing")]
            started: raw.started,
        }
    }

    /// Consumes the permit without running its `Drop`.
    #[inline(always)]
    fn into_parts(self) -> (&'a CircuitBreaker<C>, Ticket, bool) {
        let this = ManuallyDrop::new(self);
        #[cfg(feature = "slow-call-timing")]
        let slow = this.breaker.is_slow(this.started);
        #[cfg(not(feature = "slow-call-timing"))]
        let slow = false;
        (this.breaker, this.ticket, slow)
    }

    /// The call succeeded.
    #[inline(always)]
    pub fn success(self) {
        let (breaker, ticket, slow) = self.into_parts();
        breaker.on_success(ticket, slow);
    }

    /// The call failed.
    #[inline]
    pub fn failure(self) {
        let (breaker, ticket, slow) = self.into_parts();
        breaker.on_failure(ticket, slow);
    }

    /// The call should not count either way.
    #[inline(always)]
    pub fn ignore(self) {
        let (breaker, ticket, _) = self.into_parts();
        breaker.on_release(ticket);
    }

    /// Reports `outcome`.
    #[inline]
    pub fn record(self, outcome: Outcome) {
        match outcome {
            Outcome::Success => self.success(),
            Outcome::Failure => self.failure(),
            Outcome::Ignore => self.ignore(),
        }
    }

    /// The state the call was admitted in: `Closed`, `HalfOpen` (a probe) or `Disabled`.
    pub fn state(&self) -> State {
        Word(u64::from(self.ticket)).state()
    }

    /// Generation of the breaker state this permit belongs to.
    pub fn generation(&self) -> u32 {
        Word(u64::from(self.ticket)).generation()
    }

    /// The breaker that issued this permit.
    pub fn breaker(&self) -> &'a CircuitBreaker<C> {
        self.breaker
    }
}

/// A permit's data without its breaker reference.
#[derive(Clone, Copy)]
pub(crate) struct RawPermit {
    ticket: Ticket,
    #[cfg(feature = "slow-call-timing")]
    started: Option<Nanos>,
}

impl<C: Clock> Drop for Permit<'_, C> {
    fn drop(&mut self) {
        if std::thread::panicking() {
            self.breaker.on_failure(self.ticket, false);
        } else {
            self.breaker.on_release(self.ticket);
        }
    }
}

impl<C: Clock> fmt::Debug for Permit<'_, C> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Permit")
            .field("breaker", &self.breaker.id())
            .field("state", &self.state())
            .field("generation", &self.generation())
            .finish()
    }
}

/// A [`Permit`] that holds its breaker through an [`Arc`], for futures that must be `'static`
/// (tower services, spawned tasks); from [`CircuitBreaker::try_acquire_owned`].
///
/// It reports and drops exactly as a [`Permit`] does: dropped without an outcome it releases
/// its HALF_OPEN slot, dropped while the thread panics it counts as a failure, and an outcome
/// from an earlier generation is ignored. The extra cost is the `Arc` clone taken on admission.
#[must_use = "report the call's outcome with success(), failure() or ignore()"]
pub struct OwnedPermit<C: Clock = CoarseClock> {
    breaker: Arc<CircuitBreaker<C>>,
    /// `None` once reported.
    raw: Option<RawPermit>,
}

impl<C: Clock> OwnedPermit<C> {
    #[inline(always)]
    pub(crate) fn new(breaker: Arc<CircuitBreaker<C>>, permit: Permit<'_, C>) -> Self {
        OwnedPermit {
            raw: Some(permit.into_raw()),
            breaker,
        }
    }

    /// The call succeeded.
    #[inline(always)]
    pub fn success(self) {
        self.record(Outcome::Success);
    }

    /// The call failed.
    #[inline]
    pub fn failure(self) {
        self.record(Outcome::Failure);
    }

    /// The call should not count either way.
    #[inline(always)]
    pub fn ignore(self) {
        self.record(Outcome::Ignore);
    }

    /// Reports `outcome`.
    #[inline]
    pub fn record(mut self, outcome: Outcome) {
        if let Some(raw) = self.raw.take() {
            Permit::from_raw(&self.breaker, raw).record(outcome);
        }
    }

    /// The state the call was admitted in: `Closed`, `HalfOpen` (a probe) or `Disabled`.
    pub fn state(&self) -> State {
        self.raw
            .map_or(State::Closed, |raw| Word(u64::from(raw.ticket)).state())
    }

    /// Generation of the breaker state this permit belongs to.
    pub fn generation(&self) -> u32 {
        self.raw
            .map_or(0, |raw| Word(u64::from(raw.ticket)).generation())
    }

    /// The breaker that issued this permit.
    pub fn breaker(&self) -> &Arc<CircuitBreaker<C>> {
        &self.breaker
    }
}

impl<C: Clock> Drop for OwnedPermit<C> {
    fn drop(&mut self) {
        // The borrowed permit's drop decides between release and (while panicking) failure.
        if let Some(raw) = self.raw.take() {
            drop(Permit::from_raw(&self.breaker, raw));
        }
    }
}

impl<C: Clock> fmt::Debug for OwnedPermit<C> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("OwnedPermit")
            .field("breaker", &self.breaker.id())
            .field("state", &self.state())
            .field("generation", &self.generation())
            .finish()
    }
}

/// Why a call was refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum RejectReason {
    /// The breaker is OPEN.
    Open,
    /// The breaker was forced open by an operator or a chaos scenario.
    ForcedOpen,
    /// HALF_OPEN, and every probe slot is taken.
    HalfOpenFull,
}

impl RejectReason {
    /// A short snake_case label for metrics.
    pub const fn as_str(self) -> &'static str {
        match self {
            RejectReason::Open => "open",
            RejectReason::ForcedOpen => "forced_open",
            RejectReason::HalfOpenFull => "half_open_full",
        }
    }
}

/// A call refused by a breaker: a small `Copy` value with the reason and when to retry.
///
/// # Examples
///
/// ```
/// use resilience_core::{CircuitBreaker, RejectReason};
/// use std::time::Duration;
///
/// let breaker = CircuitBreaker::builder("db").reset_timeout(Duration::from_secs(30)).build()?;
/// breaker.force_open();
/// let rejected = breaker.try_acquire().unwrap_err();
/// assert_eq!(rejected.reason(), RejectReason::ForcedOpen);
/// assert_eq!(rejected.retry_after(), None);
/// assert!(rejected.to_string().contains("forced open"));
/// # Ok::<(), resilience_core::ConfigError>(())
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Rejected {
    governance: GovernanceHash,
    breaker: BreakerId,
    /// Milliseconds until the breaker admits a probe; `u32::MAX` when unknown.
    retry_after_ms: u32,
    reason: RejectReason,
}

impl Rejected {
    #[inline]
    pub(crate) fn new(
        reason: RejectReason,
        breaker: BreakerId,
        retry_after_ms: Option<u64>,
        governance: GovernanceHash,
    ) -> Self {
        let retry_after_ms = match retry_after_ms {
            Some(ms) => u32::try_from(ms).unwrap_or(u32::MAX - 1),
            None => u32::MAX,
        };
        Rejected {
            governance,
            breaker,
            retry_after_ms,
            reason,
        }
    }

    /// Why the call was refused.
    pub fn reason(&self) -> RejectReason {
        self.reason
    }

    /// How long until the breaker admits a probe, when known (OPEN only).
    pub fn retry_after(&self) -> Option<Duration> {
        (self.retry_after_ms != u32::MAX)
            .then(|| Duration::from_millis(u64::from(self.retry_after_ms)))
    }

    /// The refusing breaker.
    pub fn breaker(&self) -> BreakerId {
        self.breaker
    }

    /// Governance tag of the refusing breaker.
    pub fn governance(&self) -> GovernanceHash {
        self.governance
    }
}

impl fmt::Display for Rejected {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let what = match self.reason {
            RejectReason::Open => "open",
            RejectReason::ForcedOpen => "forced open",
            RejectReason::HalfOpenFull => "half-open with every probe slot taken",
        };
        write!(f, "circuit breaker {} is {what}", self.breaker)?;
        if let Some(after) = self.retry_after() {
            write!(f, "; retry after {after:?}")?;
        }
        write!(f, " (governance {})", self.governance)
    }
}

impl std::error::Error for Rejected {}

/// The error of [`CircuitBreaker::call`]: refused, or the call's own error.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CallError<E> {
    /// The breaker refused the call; `f` did not run.
    Rejected(Rejected),
    /// The call ran and returned this error.
    Inner(E),
}

impl crate::Governed for Rejected {
    fn governance(&self) -> GovernanceHash {
        self.governance
    }
}

/// A rejection reports its breaker's tag; the service's own error, the process's.
impl<E> crate::Governed for CallError<E> {
    fn governance(&self) -> GovernanceHash {
        match self {
            CallError::Rejected(rejected) => rejected.governance,
            CallError::Inner(_) => GovernanceHash::for_process(),
        }
    }
}

impl<E> CallError<E> {
    /// The call's own error, if it ran.
    pub fn into_inner(self) -> Option<E> {
        match self {
            CallError::Inner(e) => Some(e),
            CallError::Rejected(_) => None,
        }
    }
}

impl<E: fmt::Display> fmt::Display for CallError<E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CallError::Rejected(r) => r.fmt(f),
            CallError::Inner(e) => e.fmt(f),
        }
    }
}

impl<E: std::error::Error + 'static> std::error::Error for CallError<E> {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            CallError::Rejected(r) => Some(r),
            CallError::Inner(e) => Some(e),
        }
    }
}

impl<E> From<Rejected> for CallError<E> {
    fn from(r: Rejected) -> Self {
        CallError::Rejected(r)
    }
}
