//! [`MeterRing`]: the preallocated, lock-free hand-off from the request path to the flusher.

use crate::clock::{Clock, CoarseClock};
use crate::governance::GovernanceHash;
use crate::ring::Ring;
use crate::stats::Counters;
use crate::sync::{AtomicBool, Ordering};

use super::MeterError;
use super::event::UsageEvent;

const REFUSED_FULL: usize = 0;
const REFUSED_CLOSED: usize = 1;

/// Why [`MeterRing::record`] refused an event.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum RefuseReason {
    /// The ring was full (the flusher is behind).
    Full,
    /// The ring was closed for shutdown.
    Closed,
}

impl RefuseReason {
    /// snake_case label for metrics.
    pub const fn as_str(self) -> &'static str {
        match self {
            RefuseReason::Full => "full",
            RefuseReason::Closed => "closed",
        }
    }
}

/// A refused event, handed back to the caller with the reason (nothing accepted is lost, and
/// nothing refused is silent).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Refused {
    /// The event, as offered.
    pub event: UsageEvent,
    /// Why it was refused.
    pub reason: RefuseReason,
}

impl core::fmt::Display for Refused {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(f, "usage event refused: ring {}", self.reason.as_str())
    }
}

impl std::error::Error for Refused {}

/// The ring's ledger. `offered = accepted + refused_full + refused_closed` and
/// `accepted = drained + pending` hold in every snapshot, even under concurrent recording.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct RingLedger {
    /// Calls to `record` that have been decided (accepted or refused).
    pub offered: u64,
    /// Accepted: a ring position was claimed (being written, in the ring, or drained).
    pub accepted: u64,
    /// Refused because the ring was full.
    pub refused_full: u64,
    /// Refused because the ring was closed.
    pub refused_closed: u64,
    /// Handed to the consumer by `drain_into`.
    pub drained: u64,
    /// Accepted and not yet drained.
    pub pending: u64,
}

/// A bounded multi-producer ring of [`UsageEvent`]s: `record` never blocks and never allocates.
///
/// # Examples
///
/// ```
/// use resilience_core::meter::{MeterRing, Operation, Tier, UsageEvent};
///
/// let ring = MeterRing::with_capacity(2)?;
/// let event = UsageEvent::new("t1", "a1", Operation::PolicyEvaluation, Tier::Free)?;
/// ring.record(event)?;
/// ring.record(event)?;
/// let refused = ring.record(event).unwrap_err(); // full: handed back, and counted
/// assert_eq!(refused.event.tenant, event.tenant);
///
/// let mut batch = Vec::new();
/// assert_eq!(ring.drain_into(&mut batch, 100), 2);
/// let ledger = ring.ledger();
/// assert_eq!((ledger.offered, ledger.accepted, ledger.refused_full), (3, 2, 1));
/// assert_eq!((ledger.drained, ledger.pending), (2, 0));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub struct MeterRing<C: Clock = CoarseClock> {
    ring: Ring<UsageEvent>,
    closed: AtomicBool,
    /// Refusals by reason. Accepted and drained events need no counter: the ring's tail and
    /// head positions count them.
    refusals: Counters<2>,
    clock: C,
    governance: GovernanceHash,
}

impl MeterRing<CoarseClock> {
    /// Default capacity, as the original's queue (10 000 events).
    pub const DEFAULT_CAPACITY: usize = 10_000;

    /// A ring of `capacity` events on the global clock.
    ///
    /// # Errors
    ///
    /// [`MeterError::Invalid`] if `capacity` is zero or above 2^24.
    pub fn with_capacity(capacity: usize) -> Result<Self, MeterError> {
        Self::with_clock(capacity, CoarseClock::default(), GovernanceHash::DEFAULT)
    }
}

impl<C: Clock> MeterRing<C> {
    /// A ring of `capacity` events, stamping times from `clock` and tags of `governance`.
    ///
    /// # Errors
    ///
    /// [`MeterError::Invalid`] if `capacity` is zero or above 2^24.
    pub fn with_clock(
        capacity: usize,
        clock: C,
        governance: GovernanceHash,
    ) -> Result<Self, MeterError> {
        if capacity == 0 || capacity > 1 << 24 {
            return Err(MeterError::invalid(
                "capacity",
                capacity,
                "1 to 16777216 events",
            ));
        }
        Ok(MeterRing {
            ring: Ring::new(capacity),
            closed: AtomicBool::new(false),
            refusals: Counters::new(),
            clock,
            governance,
        })
    }

    /// Offers `event`, stamped with the time and the governance tag. Never blocks, never
    /// allocates.
    ///
    /// # Errors
    ///
    /// [`Refused`], carrying the event back, when the ring is full or closed.
    #[inline(always)]
    // The refused event comes back by value: boxing it would allocate on the refusal path.
    #[allow(clippy::result_large_err)]
    pub fn record(&self, event: UsageEvent) -> Result<(), Refused> {
        if self.closed.load(Ordering::Relaxed) {
            self.refusals.bump(REFUSED_CLOSED);
            return Err(Refused {
                event,
                reason: RefuseReason::Closed,
            });
        }
        let (at, governance) = (self.clock.now(), self.governance);
        let stamp = |slot: &mut UsageEvent| {
            slot.at = at;
            slot.governance = governance;
        };
        self.ring.push_with(event, stamp).map_err(|event| {
            self.refusals.bump(REFUSED_FULL);
            Refused {
                event,
                reason: RefuseReason::Full,
            }
        })
    }

    /// Moves up to `max` events into `out`, oldest first; returns how many.
    pub fn drain_into(&self, out: &mut Vec<UsageEvent>, max: usize) -> usize {
        let mut moved = 0;
        while moved < max {
            match self.ring.pop() {
                Some(event) => {
                    out.push(event);
                    moved += 1;
                }
                None => break,
            }
        }
        moved
    }

    /// Accepted events not yet drained.
    pub fn pending(&self) -> u64 {
        self.ledger().pending
    }

    /// A consistent snapshot of the counters (see [`RingLedger`]).
    pub fn ledger(&self) -> RingLedger {
        // Head before tail: the tail never trails the head, so pending cannot go negative.
        let drained = self.ring.popped();
        let refused_full = self.refusals.total(REFUSED_FULL);
        let refused_closed = self.refusals.total(REFUSED_CLOSED);
        let accepted = self.ring.pushed();
        RingLedger {
            offered: accepted + refused_full + refused_closed,
            accepted,
            refused_full,
            refused_closed,
            drained,
            pending: accepted.saturating_sub(drained),
        }
    }

    /// Refuses every later event (reason [`RefuseReason::Closed`]); events already accepted
    /// stay to be drained. Used at shutdown so the last drain is really the last.
    pub fn close(&self) {
        self.closed.store(true, Ordering::Release);
    }

    /// Whether [`close`](Self::close) was called.
    pub fn is_closed(&self) -> bool {
        self.closed.load(Ordering::Acquire)
    }

    /// Capacity given at construction.
    pub fn capacity(&self) -> usize {
        self.ring.capacity()
    }

    /// The clock events are stamped from.
    pub fn clock(&self) -> &C {
        &self.clock
    }

    /// Governance tag stamped on every event.
    pub fn governance(&self) -> GovernanceHash {
        self.governance
    }
}

impl<C: Clock> core::fmt::Debug for MeterRing<C> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("MeterRing")
            .field("capacity", &self.capacity())
            .field("ledger", &self.ledger())
            .finish()
    }
}
