//! [`Retry`]: try a failed call again after a jittered exponential backoff, within a shared
//! [`RetryBudget`] so that retries cannot turn a dependency's trouble into an outage.
//!
//! ```
//! use std::time::Duration;
//! use resilience_core::retry::{Backoff, Retry};
//!
//! let retry = Retry::builder("inventory")
//!     .max_attempts(3)
//!     .backoff(Backoff::constant(Duration::from_millis(1)))
//!     .build()?;
//! let mut failures = 2;
//! let stock = retry.call(|attempt| {
//!     if failures > 0 {
//!         failures -= 1;
//!         return Err("flaky");
//!     }
//!     Ok(attempt.number() * 10) // succeeded on the third attempt
//! });
//! assert_eq!(stock, Ok(30));
//! # Ok::<(), resilience_core::ConfigError>(())
//! ```
//!
//! What is retried is the caller's choice ([`RetryOn`]; every error by default). A refusal by
//! another policy is never retried when the policies are composed in a
//! [`Pipeline`](crate::pipeline::Pipeline): retrying into an open breaker or a full bulkhead
//! only adds load where load is the problem. Each call returns the last attempt's error when
//! it gives up; why it gave up is counted in the [`snapshot`](Retry::snapshot).
//!
//! The sync [`call`](Retry::call) sleeps the thread between attempts; the async
//! [`call_async`](Retry::call_async) waits on the timer the caller passes (e.g.
//! `tokio::time::sleep`) and stops early when a [`Deadline`] would pass during a backoff.

mod backoff;
mod budget;
mod future;
#[cfg(all(test, resilience_loom))]
mod loom_tests;

use core::fmt;
use core::future::Future;
use core::time::Duration;
use std::sync::Arc;

pub use backoff::{Backoff, Jitter};
pub use budget::{RetryBudget, RetryBudgetBuilder, RetryBudgetSnapshot};
pub use future::RetryFuture;

use crate::chaos::rng;
use crate::clock::{Clock, CoarseClock};
use crate::error::ConfigError;
use crate::governance::GovernanceHash;
use crate::stats::Counters;
use crate::timeout::Deadline;

const RETRIED: usize = 0;
const GAVE_UP_ATTEMPTS: usize = 1;
const GAVE_UP_BUDGET: usize = 2;
const GAVE_UP_DEADLINE: usize = 3;

/// The most attempts (first call included) a retry policy takes.
pub const MAX_ATTEMPTS: u32 = 100;

/// Decides which errors are worth another attempt.
pub trait RetryOn<E> {
    /// `true` when `error` is transient and the call may be tried again.
    fn retry_on(&self, error: &E) -> bool;
}

impl<E, F: Fn(&E) -> bool> RetryOn<E> for F {
    #[inline]
    fn retry_on(&self, error: &E) -> bool {
        self(error)
    }
}

/// Retries every error (the default classifier).
#[derive(Clone, Copy, Debug, Default)]
pub struct AnyError;

impl<E> RetryOn<E> for AnyError {
    #[inline]
    fn retry_on(&self, _: &E) -> bool {
        true
    }
}

/// One attempt of a retried call: which one it is and the deadline it runs under.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Attempt {
    number: u32,
    deadline: Option<Deadline>,
}

impl Attempt {
    /// 1 for the first call, 2 for the first retry, and so on.
    pub fn number(&self) -> u32 {
        self.number
    }

    pub(crate) fn with_deadline(self, deadline: Deadline) -> Self {
        Attempt {
            deadline: Some(deadline),
            ..self
        }
    }

    /// Whether this is a retry (not the first call).
    pub fn is_retry(&self) -> bool {
        self.number > 1
    }

    /// The deadline of the whole call, if one was set: pass the time left to the callee.
    pub fn deadline(&self) -> Option<Deadline> {
        self.deadline
    }
}

/// Waits out a backoff (or injected latency) in sync code. The one blocking call of the data
/// plane, and only on paths the caller chose: a failed attempt that the policy retries, or a
/// latency fault an operator armed. Admission never reaches it.
#[allow(clippy::disallowed_methods)]
#[cold]
pub(crate) fn block_for(delay: Duration) {
    std::thread::sleep(delay);
}

/// Where a retried call is between attempts.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Schedule {
    attempt: Attempt,
    previous: Duration,
}

impl Schedule {
    pub(crate) fn new(deadline: Option<Deadline>) -> Self {
        Schedule {
            attempt: Attempt {
                number: 1,
                deadline,
            },
            previous: Duration::ZERO,
        }
    }

    pub(crate) fn attempt(&self) -> Attempt {
        self.attempt
    }
}

/// A retry policy: how many attempts, how long between them, and the budget they draw on.
///
/// See the [module documentation](self) for an example.
pub struct Retry<C: Clock = CoarseClock> {
    max_attempts: u32,
    backoff: Backoff,
    budget: Option<Arc<RetryBudget<C>>>,
    clock: C,
    counters: Counters<4>,
    name: Box<str>,
    governance: GovernanceHash,
}

impl Retry {
    /// A builder for a policy called `name`: 3 attempts, [`Backoff::default`], no budget.
    pub fn builder(name: impl Into<String>) -> RetryBuilder {
        RetryBuilder {
            name: name.into(),
            max_attempts: 3,
            backoff: Backoff::default(),
            budget: None,
            governance: None,
            clock: CoarseClock::global().clone(),
        }
    }
}

impl<C: Clock> Retry<C> {
    /// Runs `op` until it succeeds or the policy gives up, sleeping the thread between
    /// attempts; every error is retried.
    ///
    /// # Errors
    ///
    /// The last attempt's error.
    pub fn call<T, E>(&self, op: impl FnMut(Attempt) -> Result<T, E>) -> Result<T, E> {
        self.call_when(AnyError, op)
    }

    /// [`call`](Self::call), retrying only the errors `retry_on` accepts.
    ///
    /// # Errors
    ///
    /// The first error not retried, or the last attempt's.
    pub fn call_when<T, E>(
        &self,
        retry_on: impl RetryOn<E>,
        mut op: impl FnMut(Attempt) -> Result<T, E>,
    ) -> Result<T, E> {
        let mut schedule = Schedule::new(None);
        self.started();
        loop {
            match op(schedule.attempt) {
                Ok(value) => return Ok(value),
                Err(error) => match self.next_delay(&mut schedule, retry_on.retry_on(&error)) {
                    Some(delay) => block_for(delay),
                    None => return Err(error),
                },
            }
        }
    }

    /// Runs the futures `op` makes until one succeeds or the policy gives up, waiting on the
    /// timer `sleep` makes between attempts; every error is retried. Set a deadline with
    /// [`RetryFuture::within`] and a classifier with [`RetryFuture::when`].
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// use resilience_core::retry::{Backoff, Jitter, Retry};
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// tokio::time::pause();
    /// let retry = Retry::builder("quotes")
    ///     .backoff(Backoff::exponential(Duration::from_millis(10), Duration::from_secs(1)))
    ///     .build()?;
    /// let price = retry
    ///     .call_async(
    ///         |attempt| async move {
    ///             if attempt.number() < 2 { Err("busy") } else { Ok(99) }
    ///         },
    ///         tokio::time::sleep,
    ///     )
    ///     .await;
    /// assert_eq!(price, Ok(99));
    /// # Ok(()) }
    /// ```
    pub fn call_async<F, Fut, T, E, S, SF>(
        &self,
        op: F,
        sleep: SF,
    ) -> RetryFuture<'_, C, AnyError, F, Fut, SF, S>
    where
        F: FnMut(Attempt) -> Fut,
        Fut: Future<Output = Result<T, E>>,
        SF: FnMut(Duration) -> S,
        S: Future<Output = ()>,
    {
        RetryFuture::new(self, AnyError, op, sleep)
    }

    /// Counts a call's first attempt into the budget.
    #[inline]
    pub(crate) fn started(&self) {
        if let Some(budget) = &self.budget {
            budget.deposit();
        }
    }

    /// After a failed attempt: the delay before the next one, or `None` to give up (not
    /// retryable, attempts used up, the deadline would pass, or the budget is empty). The
    /// budget is asked last, so a call that stops for another reason takes nothing from it.
    pub(crate) fn next_delay(&self, schedule: &mut Schedule, retryable: bool) -> Option<Duration> {
        if !retryable {
            return None;
        }
        if schedule.attempt.number >= self.max_attempts {
            self.counters.bump(GAVE_UP_ATTEMPTS);
            return None;
        }
        let delay = self
            .backoff
            .delay(schedule.attempt.number, schedule.previous, rng::next_u64());
        if let Some(deadline) = schedule.attempt.deadline
            && deadline.remaining(&self.clock) <= delay
        {
            self.counters.bump(GAVE_UP_DEADLINE);
            return None;
        }
        if let Some(budget) = &self.budget
            && !budget.try_withdraw()
        {
            self.counters.bump(GAVE_UP_BUDGET);
            return None;
        }
        self.counters.bump(RETRIED);
        schedule.previous = delay;
        schedule.attempt.number += 1;
        Some(delay)
    }

    /// Attempts per call, the first included.
    pub fn max_attempts(&self) -> u32 {
        self.max_attempts
    }

    /// The backoff between attempts.
    pub fn backoff(&self) -> &Backoff {
        &self.backoff
    }

    /// The shared budget, if any.
    pub fn budget(&self) -> Option<&Arc<RetryBudget<C>>> {
        self.budget.as_ref()
    }

    /// The policy's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The clock deadlines are read on.
    pub fn clock(&self) -> &C {
        &self.clock
    }

    /// The governance tag of the policy.
    pub fn governance(&self) -> GovernanceHash {
        self.governance
    }

    /// Totals, for metrics and health.
    pub fn snapshot(&self) -> RetrySnapshot {
        RetrySnapshot {
            retries: self.counters.total(RETRIED),
            gave_up_attempts: self.counters.total(GAVE_UP_ATTEMPTS),
            gave_up_budget: self.counters.total(GAVE_UP_BUDGET),
            gave_up_deadline: self.counters.total(GAVE_UP_DEADLINE),
            budget: self.budget.as_ref().map(|b| b.snapshot()),
        }
    }
}

impl<C: Clock> fmt::Debug for Retry<C> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Retry")
            .field("name", &self.name)
            .field("max_attempts", &self.max_attempts)
            .field("backoff", &self.backoff)
            .field("budget", &self.budget)
            .finish_non_exhaustive()
    }
}

/// A retry policy's totals at one moment.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct RetrySnapshot {
    /// Retries made.
    pub retries: u64,
    /// Calls that failed on their last allowed attempt.
    pub gave_up_attempts: u64,
    /// Calls not retried because the budget was empty.
    pub gave_up_budget: u64,
    /// Calls not retried because the backoff would end past their deadline.
    pub gave_up_deadline: u64,
    /// The budget's balance and totals, if the policy has one.
    pub budget: Option<RetryBudgetSnapshot>,
}

/// Configures a [`Retry`]; [`build`](Self::build) validates.
#[derive(Debug)]
#[must_use = "a builder does nothing until build() is called"]
pub struct RetryBuilder<C: Clock = CoarseClock> {
    name: String,
    max_attempts: u32,
    backoff: Backoff,
    budget: Option<Arc<RetryBudget<C>>>,
    governance: Option<GovernanceHash>,
    clock: C,
}

impl<C: Clock> RetryBuilder<C> {
    /// Attempts per call, the first included (1 to [`MAX_ATTEMPTS`]; default 3).
    pub fn max_attempts(mut self, attempts: u32) -> Self {
        self.max_attempts = attempts;
        self
    }

    /// The backoff between attempts.
    pub fn backoff(mut self, backoff: Backoff) -> Self {
        self.backoff = backoff;
        self
    }

    /// A budget shared with other policies (or other instances of this one).
    pub fn budget(mut self, budget: Arc<RetryBudget<C>>) -> Self {
        self.budget = Some(budget);
        self
    }

    /// The governance tag (default: the process's).
    pub fn governance(mut self, hash: GovernanceHash) -> Self {
        self.governance = Some(hash);
        self
    }

    /// The clock deadlines are read on. Call it before [`budget`](Self::budget): a budget on
    /// the old clock type is dropped.
    pub fn clock<C2: Clock>(self, clock: C2) -> RetryBuilder<C2> {
        RetryBuilder {
            name: self.name,
            max_attempts: self.max_attempts,
            backoff: self.backoff,
            budget: None,
            governance: self.governance,
            clock,
        }
    }

    /// Validates and builds.
    ///
    /// # Errors
    ///
    /// [`ConfigError::Invalid`] naming `max_attempts`, `multiplier` (below 1 or not finite)
    /// or `max_backoff` (below the initial backoff).
    pub fn build(self) -> Result<Retry<C>, ConfigError> {
        if self.max_attempts == 0 || self.max_attempts > MAX_ATTEMPTS {
            return Err(ConfigError::invalid(
                "max_attempts",
                self.max_attempts,
                "between 1 and 100",
            ));
        }
        let b = &self.backoff;
        if !b.growth().is_finite() || b.growth() < 1.0 {
            return Err(ConfigError::invalid(
                "multiplier",
                b.growth(),
                "a finite number of at least 1",
            ));
        }
        if b.max() < b.initial() {
            return Err(ConfigError::invalid(
                "max_backoff",
                format_args!("{:?}", b.max()),
                "at least the initial backoff",
            ));
        }
        Ok(Retry {
            max_attempts: self.max_attempts,
            backoff: self.backoff,
            budget: self.budget,
            clock: self.clock,
            counters: Counters::new(),
            name: self.name.into_boxed_str(),
            governance: self.governance.unwrap_or_else(GovernanceHash::for_process),
        })
    }
}
