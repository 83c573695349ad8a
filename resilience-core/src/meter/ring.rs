//! [`MeterRing`]: the preallocated, lock-free hand-off from the request path to the flusher.

use std::path::{Path, PathBuf};

use crate::clock::{Clock, CoarseClock, Nanos};
use crate::governance::GovernanceHash;
use crate::ring::{PushError, Ring, count, position};
use crate::stats::Counters;
use crate::sync::{AtomicU64, Ordering};

use super::MeterError;
use super::drained::{Drained, EventId};
use super::event::UsageEvent;
use super::file::{self, Run};
use super::lock::LockFile;

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

/// The refused event's tag.
impl crate::Governed for Refused {
    fn governance(&self) -> crate::GovernanceHash {
        self.event.governance
    }
}

/// The ring's ledger. In every snapshot, even under concurrent recording:
///
/// * `offered = accepted + refused_full + refused_closed`
/// * `accepted + recovered = drained + pending`
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
    /// Found in the ring file at open: accepted by an earlier process and never released.
    pub recovered: u64,
    /// Handed to the consumer by `drain_into` or `drain_held`.
    pub drained: u64,
    /// Accepted (or recovered) and not yet drained.
    pub pending: u64,
}

/// Where this ring's sequence numbers start, and what it inherited from its file.
struct Origin {
    epoch: u64,
    /// Oldest recovered sequence (`== first_seq` when nothing was recovered).
    head_seq: u64,
    /// First sequence this process claims; everything before it was recovered.
    first_seq: u64,
    /// Recovered sequences that hold no event (skipped when drained), ascending.
    voids: Box<[u64]>,
    /// Clock bases of earlier runs, for the times of recovered events.
    runs: Box<[Run]>,
    file: Option<(PathBuf, LockFile)>,
}

/// A bounded multi-producer ring of [`UsageEvent`]s: `record` never blocks and never allocates.
///
/// In memory ([`with_capacity`](Self::with_capacity)) or backed by a file
/// ([`open`](Self::open)): the same code and cost per call either way, but a file-backed ring
/// keeps every accepted event through `kill -9` of the process, and the next
/// [`open`](Self::open) hands back whatever was not yet released.
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
    /// Refusals by reason. Accepted and drained events need no counter: the ring's tail and
    /// head positions count them.
    refusals: Counters<2>,
    clock: C,
    governance: GovernanceHash,
    origin: Origin,
    /// Next sequence `release_through` frees (consumer side only).
    released: AtomicU64,
}

impl MeterRing<CoarseClock> {
    /// Default capacity, as the original's queue (10 000 events).
    pub const DEFAULT_CAPACITY: usize = 10_000;

    /// A ring of `capacity` events in memory, on the global clock.
    ///
    /// # Errors
    ///
    /// [`MeterError::Invalid`] if `capacity` is zero or above 2^24.
    pub fn with_capacity(capacity: usize) -> Result<Self, MeterError> {
        Self::with_clock(capacity, CoarseClock::default(), GovernanceHash::DEFAULT)
    }

    /// A ring of `capacity` events backed by the file at `path` (created if missing), on the
    /// global clock. See [`open_with_clock`](Self::open_with_clock).
    ///
    /// # Errors
    ///
    /// As [`open_with_clock`](Self::open_with_clock).
    pub fn open(path: impl AsRef<Path>, capacity: usize) -> Result<Self, MeterError> {
        Self::open_with_clock(
            path,
            capacity,
            CoarseClock::default(),
            GovernanceHash::DEFAULT,
        )
    }
}

fn check_capacity(capacity: usize) -> Result<(), MeterError> {
    if capacity == 0 || capacity > 1 << 24 {
        return Err(MeterError::invalid(
            "capacity",
            capacity,
            "1 to 16777216 events",
        ));
    }
    Ok(())
}

impl<C: Clock> MeterRing<C> {
    /// A ring of `capacity` events in memory, stamping times from `clock` and tags of
    /// `governance`.
    ///
    /// # Errors
    ///
    /// [`MeterError::Invalid`] if `capacity` is zero or above 2^24.
    pub fn with_clock(
        capacity: usize,
        clock: C,
        governance: GovernanceHash,
    ) -> Result<Self, MeterError> {
        check_capacity(capacity)?;
        let origin = Origin {
            epoch: file::memory_epoch(),
            head_seq: 0,
            first_seq: 0,
            voids: Box::new([]),
            runs: Box::new([]),
            file: None,
        };
        Ok(Self::assemble(
            Ring::new(capacity),
            clock,
            governance,
            origin,
        ))
    }

    /// A ring of `capacity` events whose slots live in the file at `path`, shared-mapped, so
    /// every accepted event survives `kill -9` of this process (it stays in the page cache and
    /// reaches the disk on writeback; a power cut of the host can still lose what was not
    /// written back).
    ///
    /// Events a previous process accepted and never [released](Self::release_through) are
    /// recovered: they come out of the next drains first, with their original [`EventId`]s and
    /// times, and are counted as [`RingLedger::recovered`]. One ring at a time may use a file:
    /// the lock beside it (`<path>.lock`) names the holder.
    ///
    /// Per call this is the in-memory ring's code on other memory: no allocation, lock,
    /// syscall or clock read. (The first write to a page after the kernel wrote it back costs a
    /// minor page fault, about a microsecond, once per page per writeback.)
    ///
    /// # Errors
    ///
    /// [`MeterError::Invalid`] for a bad capacity, [`MeterError::Locked`] when another process
    /// holds the file, [`MeterError::File`] when it cannot be read or written, was written by
    /// an incompatible build, or holds more undelivered events than `capacity`.
    pub fn open_with_clock(
        path: impl AsRef<Path>,
        capacity: usize,
        clock: C,
        governance: GovernanceHash,
    ) -> Result<Self, MeterError> {
        check_capacity(capacity)?;
        let path = path.as_ref();
        let opened = file::open(path, capacity, clock.unix_nanos(Nanos::ZERO))?;
        let origin = Origin {
            epoch: opened.epoch,
            head_seq: opened.head_seq,
            first_seq: opened.tail_seq,
            voids: opened.voids,
            runs: opened.runs,
            file: Some((path.to_owned(), opened.lock)),
        };
        Ok(Self::assemble(opened.ring, clock, governance, origin))
    }

    fn assemble(
        ring: Ring<UsageEvent>,
        clock: C,
        governance: GovernanceHash,
        origin: Origin,
    ) -> Self {
        MeterRing {
            ring,
            refusals: Counters::new(),
            clock,
            governance,
            released: AtomicU64::new(origin.head_seq),
            origin,
        }
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
        let (at, governance) = (self.clock.now(), self.governance);
        let stamp = |slot: &mut UsageEvent| {
            slot.at = at;
            slot.governance = governance;
        };
        self.ring.push_with(event, stamp).map_err(|refused| {
            let (event, reason, counter) = match refused {
                PushError::Full(event) => (event, RefuseReason::Full, REFUSED_FULL),
                PushError::Closed(event) => (event, RefuseReason::Closed, REFUSED_CLOSED),
            };
            self.refusals.bump(counter);
            Refused { event, reason }
        })
    }

    /// Whether `seq` is a recovered position that holds no event.
    fn is_void(&self, seq: u64) -> bool {
        seq < self.origin.first_seq && self.origin.voids.binary_search(&seq).is_ok()
    }

    /// Moves up to `max` events into `out`, oldest first, freeing their slots at once; returns
    /// how many. (For delivery that must survive a crash, use
    /// [`drain_held`](Self::drain_held).)
    pub fn drain_into(&self, out: &mut Vec<UsageEvent>, max: usize) -> usize {
        let mut moved = 0;
        while moved < max {
            let Some((pos, event)) = self.ring.pop_held() else {
                break;
            };
            self.ring.release(pos);
            if !self.is_void(count(pos, self.ring.capacity())) {
                out.push(event);
                moved += 1;
            }
        }
        moved
    }

    /// Moves up to `max` events into `out`, oldest first, with their [`EventId`]s and times,
    /// **keeping their slots**: in a file-backed ring they stay on disk, and are recovered by
    /// the next [`open`](Self::open) if this process dies, until
    /// [`release_through`](Self::release_through) frees them. Returns how many.
    ///
    /// Held slots count against the capacity, so release them as soon as the events are safe
    /// elsewhere. One consumer at a time.
    pub fn drain_held(&self, out: &mut Vec<Drained>, max: usize) -> usize {
        let capacity = self.ring.capacity();
        let mut moved = 0;
        while moved < max {
            let Some((pos, event)) = self.ring.pop_held() else {
                break;
            };
            let seq = count(pos, capacity);
            if self.is_void(seq) {
                self.ring.release(pos);
                continue;
            }
            out.push(Drained {
                id: EventId {
                    epoch: self.origin.epoch,
                    seq,
                },
                unix_nanos: self.unix_nanos(seq, event.at),
                event,
            });
            moved += 1;
        }
        moved
    }

    /// Frees the slots of every held event up to and including sequence `seq` (those of
    /// [`drain_held`](Self::drain_held); others are left alone). Later sequences stay held.
    pub fn release_through(&self, seq: u64) {
        let capacity = self.ring.capacity();
        let end = (seq + 1).min(self.ring.popped());
        let start = self.released.load(Ordering::Relaxed);
        for s in start..end {
            self.ring.release(position(s, capacity));
        }
        self.released.fetch_max(end, Ordering::Relaxed);
    }

    fn unix_nanos(&self, seq: u64, at: Nanos) -> u64 {
        if seq >= self.origin.first_seq {
            return self.clock.unix_nanos(at);
        }
        let base = self
            .origin
            .runs
            .iter()
            .rev()
            .find(|run| run.first_seq <= seq)
            .or(self.origin.runs.first())
            .map_or(0, |run| run.unix_base);
        base.saturating_add(at.as_nanos())
    }

    /// Accepted events not yet drained.
    pub fn pending(&self) -> u64 {
        self.ledger().pending
    }

    /// A consistent snapshot of the counters (see [`RingLedger`]).
    pub fn ledger(&self) -> RingLedger {
        // Head before tail: the tail never trails the head, so pending cannot go negative.
        let taken = self.ring.popped();
        let refused_full = self.refusals.total(REFUSED_FULL);
        let refused_closed = self.refusals.total(REFUSED_CLOSED);
        let claimed = self.ring.pushed();
        let origin = &self.origin;
        let voids_taken = origin.voids.partition_point(|&v| v < taken) as u64;
        let drained = taken - origin.head_seq - voids_taken;
        let recovered = origin.first_seq - origin.head_seq - origin.voids.len() as u64;
        let accepted = claimed - origin.first_seq;
        RingLedger {
            offered: accepted + refused_full + refused_closed,
            accepted,
            refused_full,
            refused_closed,
            recovered,
            drained,
            pending: (accepted + recovered).saturating_sub(drained),
        }
    }

    /// Refuses every later event (reason [`RefuseReason::Closed`]); events already accepted
    /// stay to be drained. Linearizable: an event is either accepted before `close` returns
    /// (and will be drained) or refused, so a final drain after it is really the last.
    pub fn close(&self) {
        self.ring.close();
    }

    /// Whether [`close`](Self::close) was called.
    pub fn is_closed(&self) -> bool {
        self.ring.is_closed()
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

    /// This ring's epoch, the first half of every [`EventId`] it hands out.
    pub fn epoch(&self) -> u64 {
        self.origin.epoch
    }

    /// The backing file, for a ring made by [`open`](Self::open).
    pub fn path(&self) -> Option<&Path> {
        self.origin.file.as_ref().map(|(path, _)| path.as_path())
    }
}

impl<C: Clock> core::fmt::Debug for MeterRing<C> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("MeterRing")
            .field("capacity", &self.capacity())
            .field("epoch", &format_args!("{:016x}", self.origin.epoch))
            .field("path", &self.path())
            .field("ledger", &self.ledger())
            .finish()
    }
}
