//! [`Bulkhead`]: a concurrency limit in one atomic word.
//!
//! A bulkhead caps how many calls into a dependency run at once, so a slow dependency holds at
//! most that many of the caller's threads or tasks and the rest are refused at once, cheaply,
//! instead of queueing behind it. Admission is one compare-and-swap on a word holding both the
//! limit and the calls in flight; the permit gives its slot back when dropped, so a call that
//! panics, returns early or is cancelled (its future dropped) frees its slot too.
//!
//! ```
//! use resilience_core::bulkhead::Bulkhead;
//!
//! let bulkhead = Bulkhead::builder("search").max_concurrent(2).build()?;
//! let first = bulkhead.try_acquire()?;
//! let _second = bulkhead.try_acquire()?;
//! let full = bulkhead.try_acquire().unwrap_err();
//! assert_eq!(full.limit(), 2);
//! drop(first); // the slot is free again
//! assert!(bulkhead.try_acquire().is_ok());
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

mod error;
mod future;
#[cfg(all(test, resilience_loom))]
mod loom_tests;
mod permit;
mod wait;
mod word;

use core::fmt;
use core::future::Future;

pub use error::BulkheadFull;
pub use future::BulkheadFuture;
pub use permit::{BulkheadPermit, OwnedBulkheadPermit};
pub use wait::{AcquireWithin, MAX_WAITING};

use crate::error::ConfigError;
use crate::governance::GovernanceHash;
use crate::stats::Counters;
use std::sync::Arc;
use wait::Waiters;
use word::Word;

const ADMITTED: usize = 0;
const REJECTED: usize = 1;

/// The largest limit a bulkhead takes (2^31 - 1: the word keeps a flag beside the count).
pub const MAX_CONCURRENT: u32 = (1 << 31) - 1;

/// A concurrency limit: at most [`limit`](Self::limit) calls hold a permit at once.
///
/// See the [module documentation](self) for an example.
pub struct Bulkhead {
    word: Word,
    waiters: Waiters,
    totals: bool,
    counters: Counters<2>,
    name: Box<str>,
    governance: GovernanceHash,
}

impl Bulkhead {
    /// A builder for a bulkhead called `name` (for metrics and errors); the default limit is 25
    /// calls, as Resilience4j's.
    pub fn builder(name: impl Into<String>) -> BulkheadBuilder {
        BulkheadBuilder {
            name: name.into(),
            max_concurrent: 25,
            max_waiting: 16,
            totals: true,
            governance: None,
        }
    }

    /// Takes a slot if one is free; the slot comes back when the permit is dropped.
    ///
    /// # Errors
    ///
    /// [`BulkheadFull`] when every slot is taken (counted as a rejection).
    #[inline]
    pub fn try_acquire(&self) -> Result<BulkheadPermit<'_>, BulkheadFull> {
        match self.word.try_acquire() {
            Ok(()) => {
                self.count(ADMITTED);
                Ok(BulkheadPermit::new(self))
            }
            Err(limit) => Err(self.full(limit)),
        }
    }

    /// [`try_acquire`](Self::try_acquire) for a permit that owns a reference to the bulkhead
    /// (for `'static` futures and tower services).
    ///
    /// # Errors
    ///
    /// As [`try_acquire`](Self::try_acquire).
    #[inline]
    pub fn try_acquire_owned(self: &Arc<Self>) -> Result<OwnedBulkheadPermit, BulkheadFull> {
        match self.word.try_acquire() {
            Ok(()) => {
                self.count(ADMITTED);
                Ok(OwnedBulkheadPermit::new(Arc::clone(self)))
            }
            Err(limit) => Err(self.full(limit)),
        }
    }

    /// Runs `f` holding a slot (given back when `f` returns or panics).
    ///
    /// # Errors
    ///
    /// [`BulkheadFull`] without running `f` when every slot is taken.
    ///
    /// # Examples
    ///
    /// ```
    /// use resilience_core::bulkhead::Bulkhead;
    ///
    /// let bulkhead = Bulkhead::builder("reports").max_concurrent(1).build()?;
    /// let rows = bulkhead.call(|| 42)?;
    /// assert_eq!(rows, 42);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    #[inline]
    pub fn call<T>(&self, f: impl FnOnce() -> T) -> Result<T, BulkheadFull> {
        let _permit = self.try_acquire()?;
        Ok(f())
    }

    /// Runs the future `f` makes holding a slot, given back when it completes, panics or is
    /// dropped (cancelled). Refused at once when full: `f` is then not called.
    ///
    /// # Examples
    ///
    /// ```
    /// use resilience_core::bulkhead::Bulkhead;
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let bulkhead = Bulkhead::builder("search").max_concurrent(8).build()?;
    /// let hits = bulkhead.call_async(|| async { 3 }).await?;
    /// assert_eq!(hits, 3);
    /// assert_eq!(bulkhead.in_flight(), 0);
    /// # Ok(()) }
    /// ```
    #[inline]
    pub fn call_async<F, Fut>(&self, f: F) -> BulkheadFuture<BulkheadPermit<'_>, Fut>
    where
        F: FnOnce() -> Fut,
        Fut: Future,
    {
        BulkheadFuture::start(self.try_acquire(), f)
    }

    /// Waits at most `max_wait` for a slot, on the timer `sleep` makes (`tokio::time::sleep`
    /// under tokio; the data plane has no runtime of its own). Admitted at once when a slot is
    /// free; otherwise it takes one of the [`max_waiting`](BulkheadBuilder::max_waiting) waiter
    /// slots and is woken by each release until it wins a slot or the timer fires. Callers
    /// that wait are not served in order: every release wakes them all and they race.
    ///
    /// # Errors
    ///
    /// [`BulkheadFull`] when `max_wait` passes first, or at once when every waiter slot is
    /// taken (counted as a rejection either way).
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// use resilience_core::bulkhead::Bulkhead;
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let bulkhead = Bulkhead::builder("db").max_concurrent(1).build()?;
    /// let held = bulkhead.try_acquire()?;
    /// let waiting = bulkhead.acquire_within(Duration::from_millis(50), tokio::time::sleep);
    /// drop(held); // frees the slot the waiter gets
    /// let _permit = waiting.await?;
    /// # Ok(()) }
    /// ```
    pub fn acquire_within<S: Future<Output = ()>>(
        &self,
        max_wait: core::time::Duration,
        sleep: impl FnOnce(core::time::Duration) -> S,
    ) -> AcquireWithin<'_, S> {
        AcquireWithin::new(self, sleep(max_wait))
    }

    /// Callers waiting in [`acquire_within`](Self::acquire_within) now.
    pub fn waiting(&self) -> u32 {
        self.waiters.waiting()
    }

    /// Changes the limit at once. Calls in flight beyond a lowered limit finish normally; new
    /// calls are admitted once fewer than the new limit are in flight.
    ///
    /// # Errors
    ///
    /// [`ConfigError::Invalid`] naming `max_concurrent` outside 1 to [`MAX_CONCURRENT`].
    pub fn set_limit(&self, max_concurrent: u32) -> Result<(), ConfigError> {
        validate(max_concurrent)?;
        self.word.set_limit(max_concurrent);
        Ok(())
    }

    /// The current limit.
    pub fn limit(&self) -> u32 {
        self.word.load().0
    }

    /// Calls holding a permit now.
    pub fn in_flight(&self) -> u32 {
        self.word.load().1
    }

    /// The bulkhead's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The governance tag its refusals carry.
    pub fn governance(&self) -> GovernanceHash {
        self.governance
    }

    /// Counters and current occupancy, for metrics.
    pub fn snapshot(&self) -> BulkheadSnapshot {
        let (limit, in_flight) = self.word.load();
        BulkheadSnapshot {
            limit,
            in_flight,
            admitted: self.counters.total(ADMITTED),
            rejected: self.counters.total(REJECTED),
        }
    }

    // Inlined: a refusal is the path a saturated service takes on every call.
    #[inline]
    fn full(&self, limit: u32) -> BulkheadFull {
        self.count(REJECTED);
        BulkheadFull::new(limit, self.governance)
    }

    #[inline(always)]
    fn count(&self, field: usize) {
        if self.totals {
            self.counters.bump(field);
        }
    }

    #[inline]
    pub(crate) fn release(&self) {
        if self.word.release() {
            self.wake_waiters();
        }
    }

    #[cold]
    #[inline(never)]
    fn wake_waiters(&self) {
        self.word.clear_waiting();
        self.waiters.wake_all();
    }
}

impl fmt::Debug for Bulkhead {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (limit, in_flight) = self.word.load();
        f.debug_struct("Bulkhead")
            .field("name", &self.name)
            .field("limit", &limit)
            .field("in_flight", &in_flight)
            .finish_non_exhaustive()
    }
}

/// A bulkhead's occupancy and counters at one moment.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct BulkheadSnapshot {
    /// The limit.
    pub limit: u32,
    /// Calls holding a permit.
    pub in_flight: u32,
    /// Calls admitted since the bulkhead was built.
    pub admitted: u64,
    /// Calls refused because it was full.
    pub rejected: u64,
}

impl BulkheadSnapshot {
    /// Whether every slot is taken.
    pub fn saturated(&self) -> bool {
        self.in_flight >= self.limit
    }
}

/// Configures a [`Bulkhead`]; [`build`](Self::build) validates.
#[derive(Clone, Debug)]
#[must_use = "a builder does nothing until build()"]
pub struct BulkheadBuilder {
    name: String,
    max_concurrent: u32,
    max_waiting: u32,
    totals: bool,
    governance: Option<GovernanceHash>,
}

impl BulkheadBuilder {
    /// Calls admitted at once (1 to [`MAX_CONCURRENT`]; default 25).
    pub fn max_concurrent(mut self, max_concurrent: u32) -> Self {
        self.max_concurrent = max_concurrent;
        self
    }

    /// Callers that may wait at once in [`Bulkhead::acquire_within`] (0 to
    /// [`MAX_WAITING`]; default 16). More are refused at once.
    pub fn max_waiting(mut self, max_waiting: u32) -> Self {
        self.max_waiting = max_waiting;
        self
    }

    /// Keep exact totals of admitted and refused calls (default on). Off saves the counter
    /// increment per call (a store whose latency a back-to-back loop exposes: about 4 ns per
    /// refusal on the 2-vCPU VM of the README) and leaves the snapshot's totals at zero.
    pub fn call_totals(mut self, on: bool) -> Self {
        self.totals = on;
        self
    }

    /// The governance tag refusals carry (default: the process's).
    pub fn governance(mut self, hash: GovernanceHash) -> Self {
        self.governance = Some(hash);
        self
    }

    /// The bulkhead.
    ///
    /// # Errors
    ///
    /// [`ConfigError::Invalid`] naming `max_concurrent` outside 1 to [`MAX_CONCURRENT`], or
    /// `max_waiting` above
    /// [`MAX_WAITING`].
    pub fn build(self) -> Result<Bulkhead, ConfigError> {
        validate(self.max_concurrent)?;
        if self.max_waiting > MAX_WAITING {
            return Err(ConfigError::invalid(
                "max_waiting",
                self.max_waiting,
                "at most 64",
            ));
        }
        Ok(Bulkhead {
            word: Word::new(self.max_concurrent),
            waiters: Waiters::new(self.max_waiting),
            totals: self.totals,
            counters: Counters::new(),
            name: self.name.into_boxed_str(),
            governance: self.governance.unwrap_or_else(GovernanceHash::for_process),
        })
    }
}

fn validate(max_concurrent: u32) -> Result<(), ConfigError> {
    if max_concurrent == 0 || max_concurrent > MAX_CONCURRENT {
        return Err(ConfigError::invalid(
            "max_concurrent",
            max_concurrent,
            "between 1 and 2147483647",
        ));
    }
    Ok(())
}
