//! [`TimeLimiter`] and [`Deadline`]: bound how long an async call may take, and tell the calls
//! inside how much time is left.
//!
//! The data plane has no runtime, so the timer is the caller's: pass `tokio::time::sleep` (or
//! any function from a `Duration` to a future). A call that runs past its limit is dropped
//! (cancelled), which gives back whatever it held: a breaker permit, a bulkhead slot.
//!
//! ```
//! use std::time::Duration;
//! use resilience_core::timeout::TimeLimiter;
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! tokio::time::pause();
//! let limiter = TimeLimiter::builder("search").timeout(Duration::from_millis(50)).build()?;
//! let fast = limiter.call_async(|_| async { 7 }, tokio::time::sleep).await?;
//! assert_eq!(fast, 7);
//! let slow = limiter
//!     .call_async(|_| tokio::time::sleep(Duration::from_secs(1)), tokio::time::sleep)
//!     .await;
//! assert_eq!(slow.unwrap_err().after(), Duration::from_millis(50));
//! # Ok(()) }
//! ```

mod deadline;
mod future;

use core::fmt;
use core::future::Future;
use core::time::Duration;

pub use deadline::Deadline;
pub use future::Timeout;
pub(crate) use future::limit_reached;

use crate::clock::{Clock, CoarseClock, duration_nanos};
use crate::error::ConfigError;
use crate::governance::GovernanceHash;
use crate::stats::Counters;

const COMPLETED: usize = 0;
const TIMED_OUT: usize = 1;

/// A call that ran past its time limit and was cancelled: a small `Copy` value with the limit
/// and the governance tag.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct TimedOut {
    after_nanos: u64,
    governance: GovernanceHash,
}

impl TimedOut {
    pub(crate) fn new(after: Duration, governance: GovernanceHash) -> Self {
        TimedOut {
            after_nanos: duration_nanos(after),
            governance,
        }
    }

    /// The limit that was reached.
    pub fn after(&self) -> Duration {
        Duration::from_nanos(self.after_nanos)
    }

    /// A short snake_case label for metrics.
    pub const fn reason(&self) -> &'static str {
        "timed_out"
    }
}

impl fmt::Display for TimedOut {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "timed out after {:?} (governance {})",
            self.after(),
            self.governance
        )
    }
}

impl std::error::Error for TimedOut {}

impl crate::Governed for TimedOut {
    fn governance(&self) -> GovernanceHash {
        self.governance
    }
}

/// Races a future against a timer: the future's output, or [`TimedOut`] when `after` passes
/// first (the future is then dropped). The timer (`sleep(time left)`) is made only if the
/// future is not ready at its first poll. The deadline is read on the global [`CoarseClock`].
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// use resilience_core::timeout::timeout;
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// tokio::time::pause();
/// let late = timeout(Duration::from_millis(5), tokio::time::sleep, std::future::pending::<()>());
/// assert!(late.await.is_err());
/// # }
/// ```
pub fn timeout<Fut, SF, S>(
    after: Duration,
    sleep: SF,
    call: Fut,
) -> Timeout<'static, Fut, SF, S, CoarseClock>
where
    Fut: Future,
    SF: FnOnce(Duration) -> S,
    S: Future<Output = ()>,
{
    let clock = CoarseClock::global();
    Timeout::new(
        call,
        sleep,
        clock,
        clock.now() + after,
        TimedOut::new(after, GovernanceHash::for_process()),
    )
}

/// A named time limit for async calls, counting completions and timeouts.
///
/// See the [module documentation](self) for an example.
pub struct TimeLimiter<C: Clock = CoarseClock> {
    after: Duration,
    clock: C,
    counters: Counters<2>,
    name: Box<str>,
    governance: GovernanceHash,
}

impl TimeLimiter {
    /// A builder for a limiter called `name`; the default limit is 1 s, as Resilience4j's.
    pub fn builder(name: impl Into<String>) -> TimeLimiterBuilder {
        TimeLimiterBuilder {
            name: name.into(),
            after: Duration::from_secs(1),
            governance: None,
            clock: CoarseClock::global().clone(),
        }
    }
}

impl<C: Clock> TimeLimiter<C> {
    /// Runs the future `f` makes, cancelling it when the limit (or the caller's tighter
    /// `deadline`, see [`call_async_within`](Self::call_async_within)) passes first. `f` gets
    /// the [`Deadline`] so it can pass the time left to what it calls. The timer is made
    /// (`sleep(time left)`) only if the call is not ready at its first poll.
    pub fn call_async<F, Fut, S, SF>(
        &self,
        f: F,
        sleep: SF,
    ) -> Timeout<'_, Fut, SF, S, C, Counted<'_>>
    where
        F: FnOnce(Deadline) -> Fut,
        Fut: Future,
        SF: FnOnce(Duration) -> S,
        S: Future<Output = ()>,
    {
        self.call_async_within(None, f, sleep)
    }

    /// [`call_async`](Self::call_async) inside an outer deadline: the call gets the earlier of
    /// the outer deadline and this limiter's own.
    pub fn call_async_within<F, Fut, S, SF>(
        &self,
        outer: Option<Deadline>,
        f: F,
        sleep: SF,
    ) -> Timeout<'_, Fut, SF, S, C, Counted<'_>>
    where
        F: FnOnce(Deadline) -> Fut,
        Fut: Future,
        SF: FnOnce(Duration) -> S,
        S: Future<Output = ()>,
    {
        let (deadline, error) = self.start(outer);
        Timeout::new(f(deadline), sleep, &self.clock, deadline.instant(), error)
            .counted(Counted(&self.counters))
    }

    /// A call starts now: its deadline (the earlier of `outer` and this limiter's own) and the
    /// error it ends in if late. One clock read.
    #[inline]
    pub(crate) fn start(&self, outer: Option<Deadline>) -> (Deadline, TimedOut) {
        let now = self.clock.now();
        let own = Deadline::at(now + self.after);
        let (deadline, left) = match outer {
            Some(outer) if outer < own => (outer, outer.instant().saturating_since(now)),
            _ => (own, self.after),
        };
        (deadline, TimedOut::new(left, self.governance))
    }

    /// Counts a call that finished in time or was cut off.
    #[inline]
    pub(crate) fn finished(&self, in_time: bool) {
        Counted(&self.counters).finished(in_time);
    }

    /// The limit.
    pub fn timeout(&self) -> Duration {
        self.after
    }

    /// The limiter's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The governance tag its errors carry.
    pub fn governance(&self) -> GovernanceHash {
        self.governance
    }

    /// The clock deadlines are measured on.
    pub fn clock(&self) -> &C {
        &self.clock
    }

    /// Totals, for metrics.
    pub fn snapshot(&self) -> TimeLimiterSnapshot {
        TimeLimiterSnapshot {
            completed: self.counters.total(COMPLETED),
            timed_out: self.counters.total(TIMED_OUT),
        }
    }
}

impl<C: Clock> fmt::Debug for TimeLimiter<C> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TimeLimiter")
            .field("name", &self.name)
            .field("timeout", &self.after)
            .finish_non_exhaustive()
    }
}

/// Counts a [`TimeLimiter`]'s outcomes as its futures finish.
#[derive(Clone, Copy)]
pub struct Counted<'a>(&'a Counters<2>);

impl fmt::Debug for Counted<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Counted")
    }
}

/// What a [`Timeout`] does when it finishes: nothing for [`timeout`], count for a
/// [`TimeLimiter`].
pub trait OnFinish {
    /// The call finished (`true`) or the timer fired first (`false`).
    fn finished(&self, in_time: bool);
}

impl OnFinish for () {
    #[inline]
    fn finished(&self, _: bool) {}
}

impl OnFinish for Counted<'_> {
    #[inline]
    fn finished(&self, in_time: bool) {
        self.0.bump(if in_time { COMPLETED } else { TIMED_OUT });
    }
}

/// A time limiter's totals at one moment.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct TimeLimiterSnapshot {
    /// Calls that finished in time.
    pub completed: u64,
    /// Calls cancelled at their limit.
    pub timed_out: u64,
}

/// Configures a [`TimeLimiter`]; [`build`](Self::build) validates.
#[derive(Debug)]
#[must_use = "a builder does nothing until build() is called"]
pub struct TimeLimiterBuilder<C: Clock = CoarseClock> {
    name: String,
    after: Duration,
    governance: Option<GovernanceHash>,
    clock: C,
}

impl<C: Clock> TimeLimiterBuilder<C> {
    /// The limit per call (more than zero; default 1 s).
    pub fn timeout(mut self, after: Duration) -> Self {
        self.after = after;
        self
    }

    /// The governance tag its errors carry (default: the process's).
    pub fn governance(mut self, hash: GovernanceHash) -> Self {
        self.governance = Some(hash);
        self
    }

    /// The clock deadlines are measured on (default the global [`CoarseClock`]).
    pub fn clock<C2: Clock>(self, clock: C2) -> TimeLimiterBuilder<C2> {
        TimeLimiterBuilder {
            name: self.name,
            after: self.after,
            governance: self.governance,
            clock,
        }
    }

    /// Validates and builds.
    ///
    /// # Errors
    ///
    /// [`ConfigError::Invalid`] naming `timeout` when it is zero.
    pub fn build(self) -> Result<TimeLimiter<C>, ConfigError> {
        if self.after.is_zero() {
            return Err(ConfigError::invalid("timeout", "0s", "more than zero"));
        }
        Ok(TimeLimiter {
            after: self.after,
            clock: self.clock,
            counters: Counters::new(),
            name: self.name.into_boxed_str(),
            governance: self.governance.unwrap_or_else(GovernanceHash::for_process),
        })
    }
}
