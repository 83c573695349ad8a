//! Breaker transition events and the bounded channel that carries them to the control plane.
//!
//! Events are `Copy` values pushed into a preallocated lock-free ring: emitting one never
//! allocates, never blocks and never runs user code. When the ring is full the event is dropped
//! and counted; the control plane drains the ring on its own schedule.

use core::fmt;

use crate::breaker::{BreakerId, State};
use crate::clock::Nanos;
use crate::governance::GovernanceHash;
use crate::ring::Ring;
use crate::sync::{AtomicU64, Ordering};

/// One state transition of one breaker.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct BreakerEvent {
    /// Which breaker ([`BreakerRegistry::name_of`](crate::BreakerRegistry::name_of) gives its
    /// name).
    pub breaker: BreakerId,
    /// State before the transition.
    pub from: State,
    /// State after the transition.
    pub to: State,
    /// Generation of the new state; outcomes of older generations are ignored.
    pub generation: u32,
    /// When it happened, on the breaker's clock.
    pub at: Nanos,
    /// Governance tag of the breaker's configuration.
    pub governance: GovernanceHash,
}

impl crate::Governed for BreakerEvent {
    fn governance(&self) -> GovernanceHash {
        self.governance
    }
}

impl fmt::Display for BreakerEvent {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "breaker {} {} -> {} (generation {}, hash {})",
            self.breaker.as_u32(),
            self.from,
            self.to,
            self.generation,
            self.governance
        )
    }
}

/// A bounded multi-producer channel of [`BreakerEvent`]s with drop counting.
///
/// # Examples
///
/// ```
/// use resilience_core::{CircuitBreaker, EventChannel, State};
/// use std::sync::Arc;
///
/// let events = Arc::new(EventChannel::with_capacity(64)?);
/// let breaker = CircuitBreaker::builder("db").fail_max(1).events(events.clone()).build()?;
/// breaker.try_acquire().unwrap().failure();
///
/// let mut drained = Vec::new();
/// events.drain_into(&mut drained, usize::MAX);
/// assert_eq!((drained[0].from, drained[0].to), (State::Closed, State::Open));
/// assert_eq!(events.dropped(), 0);
/// # Ok::<(), resilience_core::ConfigError>(())
/// ```
pub struct EventChannel {
    ring: Ring<BreakerEvent>,
    dropped: AtomicU64,
}

impl EventChannel {
    /// Default capacity: enough for every breaker in a large registry to flap a few times
    /// between two drains.
    pub const DEFAULT_CAPACITY: usize = 4096;

    /// A channel holding up to `capacity` undrained events.
    ///
    /// # Errors
    ///
    /// [`ConfigError`](crate::ConfigError) if `capacity` is zero or above 2^24.
    pub fn with_capacity(capacity: usize) -> Result<Self, crate::ConfigError> {
        if capacity == 0 || capacity > 1 << 24 {
            return Err(crate::ConfigError::invalid(
                "event_capacity",
                capacity,
                "between 1 and 16777216",
            ));
        }
        Ok(EventChannel {
            ring: Ring::new(capacity),
            dropped: AtomicU64::new(0),
        })
    }

    /// Offers an event; when full, drops it and counts the drop. Never blocks.
    pub fn emit(&self, event: BreakerEvent) {
        if self.ring.push(event).is_err() {
            self.dropped.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Takes the oldest event, if any.
    pub fn pop(&self) -> Option<BreakerEvent> {
        self.ring.pop()
    }

    /// Moves up to `max` events into `out`, oldest first; returns how many.
    pub fn drain_into(&self, out: &mut Vec<BreakerEvent>, max: usize) -> usize {
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

    /// Events waiting to be drained.
    pub fn pending(&self) -> usize {
        self.ring.len()
    }

    /// Capacity given at construction.
    pub fn capacity(&self) -> usize {
        self.ring.capacity()
    }

    /// Events dropped because the channel was full, since construction.
    pub fn dropped(&self) -> u64 {
        self.dropped.load(Ordering::Relaxed)
    }
}

impl Default for EventChannel {
    fn default() -> Self {
        EventChannel {
            ring: Ring::new(Self::DEFAULT_CAPACITY),
            dropped: AtomicU64::new(0),
        }
    }
}

impl fmt::Debug for EventChannel {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("EventChannel")
            .field("capacity", &self.capacity())
            .field("pending", &self.pending())
            .field("dropped", &self.dropped())
            .finish()
    }
}
