//! [`RateLimiter`]: GCRA in one atomic word.
//!
//! The limiter keeps one number, the theoretical arrival time of the next request, and admits a
//! request when that time is no more than a burst ahead of now (the generic cell rate
//! algorithm, as `governor` does). Admission is one clock read (an atomic load of the
//! [`CoarseClock`]) and one compare-and-swap; a refusal says when to retry.
//!
//! ```
//! use std::time::Duration;
//! use resilience_core::rate_limit::RateLimiter;
//!
//! // 100 calls a second, up to 10 at once.
//! let limiter = RateLimiter::builder("api").rate(100, Duration::from_secs(1)).burst(10).build()?;
//! for _ in 0..10 {
//!     limiter.try_acquire()?;
//! }
//! let limited = limiter.try_acquire().unwrap_err();
//! assert!(limited.retry_after().unwrap() <= Duration::from_millis(10));
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! Time is the coarse clock's: with its ticker at 1 ms (the control plane's), the limiter sees
//! time move in 1 ms steps, so within a millisecond it admits at most what the burst and the
//! credit of earlier steps allow; over longer spans the rate is exact.

mod error;
mod gcra;
mod keyed;
#[cfg(all(test, resilience_loom))]
mod loom_keyed;
#[cfg(all(test, resilience_loom))]
mod loom_tests;

use core::fmt;
use core::time::Duration;

use crossbeam_utils::CachePadded;

pub use error::RateLimited;
pub use keyed::{
    KeyedRateLimiter, KeyedRateLimiterBuilder, KeyedRateLimiterSnapshot, PROBE, key_hash,
};

use crate::clock::{Clock, CoarseClock};
use crate::error::ConfigError;
use crate::governance::GovernanceHash;
use crate::stats::Counters;
use crate::sync::{AtomicU64, Ordering};

const ADMITTED: usize = 0;
const REJECTED: usize = 1;

/// A rate limit: on average [`rate`](RateLimiterBuilder::rate) permits per period, at most
/// [`burst`](RateLimiterBuilder::burst) at once.
///
/// See the [module documentation](self) for an example.
pub struct RateLimiter<C: Clock = CoarseClock> {
    /// Theoretical arrival time of the next request, nanoseconds on `clock`.
    tat: CachePadded<AtomicU64>,
    /// Nanoseconds per permit.
    interval: u64,
    /// `interval * burst`: how far ahead of now the TAT may run.
    window: u64,
    burst: u32,
    totals: bool,
    clock: C,
    counters: Counters<2>,
    name: Box<str>,
    governance: GovernanceHash,
}

impl RateLimiter {
    /// A builder for a limiter called `name`, on the process-global [`CoarseClock`].
    pub fn builder(name: impl Into<String>) -> RateLimiterBuilder {
        RateLimiterBuilder {
            name: name.into(),
            permits: 0,
            period: Duration::ZERO,
            burst: None,
            totals: true,
            governance: None,
            clock: CoarseClock::global().clone(),
        }
    }
}

impl<C: Clock> RateLimiter<C> {
    /// Takes one permit if the rate allows it now.
    ///
    /// # Errors
    ///
    /// [`RateLimited`] with the time until one is free (counted as a rejection).
    #[inline]
    pub fn try_acquire(&self) -> Result<(), RateLimited> {
        self.acquire_cost(self.interval)
    }

    /// Takes `permits` at once (a weighted call), all or none.
    ///
    /// # Errors
    ///
    /// [`RateLimited`] with the time until they are free, or with no retry time when
    /// `permits` exceeds the burst.
    #[inline]
    pub fn try_acquire_n(&self, permits: u32) -> Result<(), RateLimited> {
        if permits > self.burst {
            return Err(self.refuse(u64::MAX));
        }
        self.acquire_cost(self.interval.saturating_mul(u64::from(permits)))
    }

    #[inline]
    fn acquire_cost(&self, cost: u64) -> Result<(), RateLimited> {
        let now = self.clock.now().as_nanos();
        let mut tat = self.tat.load(Ordering::Relaxed);
        loop {
            match gcra::admit(tat, now, cost, self.window) {
                Ok(next) => {
                    // Relaxed: the word orders nothing but itself; every thread's CAS sees
                    // the latest TAT in the word's modification order.
                    match self.tat.compare_exchange_weak(
                        tat,
                        next,
                        Ordering::Relaxed,
                        Ordering::Relaxed,
                    ) {
                        Ok(_) => {
                            if self.totals {
                                self.counters.bump(ADMITTED);
                            }
                            return Ok(());
                        }
                        Err(current) => tat = current,
                    }
                }
                Err(wait) => return Err(self.refuse(wait)),
            }
        }
    }

    // Inlined: a refusal is the path an over-rate caller takes on every call.
    #[inline]
    fn refuse(&self, wait_nanos: u64) -> RateLimited {
        if self.totals {
            self.counters.bump(REJECTED);
        }
        RateLimited::new(wait_nanos, self.governance)
    }

    /// The permits a full burst holds.
    pub fn burst(&self) -> u32 {
        self.burst
    }

    /// Time per permit.
    pub fn interval(&self) -> Duration {
        Duration::from_nanos(self.interval)
    }

    /// The limiter's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The clock it reads.
    pub fn clock(&self) -> &C {
        &self.clock
    }

    /// The governance tag its refusals carry.
    pub fn governance(&self) -> GovernanceHash {
        self.governance
    }

    /// Counters and the permits free now, for metrics.
    pub fn snapshot(&self) -> RateLimiterSnapshot {
        let now = self.clock.now().as_nanos();
        let tat = self.tat.load(Ordering::Relaxed);
        let used = tat.saturating_sub(now).div_ceil(self.interval);
        RateLimiterSnapshot {
            available: u64::from(self.burst).saturating_sub(used) as u32,
            burst: self.burst,
            admitted: self.counters.total(ADMITTED),
            rejected: self.counters.total(REJECTED),
        }
    }
}

impl<C: Clock> fmt::Debug for RateLimiter<C> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RateLimiter")
            .field("name", &self.name)
            .field("interval", &self.interval())
            .field("burst", &self.burst)
            .finish_non_exhaustive()
    }
}

/// A limiter's counters and free permits at one moment.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct RateLimiterSnapshot {
    /// Permits that could be taken at once now.
    pub available: u32,
    /// The burst.
    pub burst: u32,
    /// Calls admitted since the limiter was built.
    pub admitted: u64,
    /// Calls refused.
    pub rejected: u64,
}

/// Configures a [`RateLimiter`]; [`build`](Self::build) validates.
#[derive(Clone, Debug)]
#[must_use = "a builder does nothing until build()"]
pub struct RateLimiterBuilder<C: Clock = CoarseClock> {
    name: String,
    permits: u32,
    period: Duration,
    burst: Option<u32>,
    totals: bool,
    governance: Option<GovernanceHash>,
    clock: C,
}

impl<C: Clock> RateLimiterBuilder<C> {
    /// `permits` per `period` on average (required).
    pub fn rate(mut self, permits: u32, period: Duration) -> Self {
        self.permits = permits;
        self.period = period;
        self
    }

    /// Permits that may be taken at once after a quiet spell (default: the rate's `permits`,
    /// so a full period's worth).
    pub fn burst(mut self, burst: u32) -> Self {
        self.burst = Some(burst);
        self
    }

    /// Keep exact totals of admitted and refused calls (default on). Off saves the counter
    /// increment per call and leaves the snapshot's totals at zero.
    pub fn call_totals(mut self, on: bool) -> Self {
        self.totals = on;
        self
    }

    /// The governance tag refusals carry (default: the process's).
    pub fn governance(mut self, hash: GovernanceHash) -> Self {
        self.governance = Some(hash);
        self
    }

    /// Another clock (a [`ManualClock`](crate::ManualClock) in tests).
    pub fn clock<C2: Clock>(self, clock: C2) -> RateLimiterBuilder<C2> {
        RateLimiterBuilder {
            name: self.name,
            permits: self.permits,
            period: self.period,
            burst: self.burst,
            totals: self.totals,
            governance: self.governance,
            clock,
        }
    }

    /// The limiter, with a full burst available.
    ///
    /// # Errors
    ///
    /// [`ConfigError::Invalid`] naming `rate` (0 permits, or more than one per nanosecond),
    /// `period` (zero) or `burst` (0).
    pub fn build(self) -> Result<RateLimiter<C>, ConfigError> {
        let gcra::Quota {
            interval,
            burst,
            window,
        } = gcra::Quota::new(
            self.permits,
            self.period,
            self.burst,
            1,
            "at most one permit per nanosecond",
        )?;
        // Start with a full burst: the TAT at "now" means nothing is borrowed yet.
        let now = self.clock.now().as_nanos();
        Ok(RateLimiter {
            tat: CachePadded::new(AtomicU64::new(now)),
            interval,
            window,
            burst,
            totals: self.totals,
            clock: self.clock,
            counters: Counters::new(),
            name: self.name.into_boxed_str(),
            governance: self.governance.unwrap_or_else(GovernanceHash::for_process),
        })
    }
}
