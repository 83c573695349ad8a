//! Running a call through a [`Pipeline`]: one attempt through the admission policies, and the
//! retry and fallback around the attempts, sync and async.

use core::future::Future;
use core::time::Duration;

use super::future::{NoFallback, PipelineFuture};
use super::{Pipeline, PipelineError, Refusal};
use crate::breaker::{Permit, State};
use crate::chaos::Fault;
use crate::clock::Clock;
use crate::retry::{AnyError, Attempt, RetryOn, Schedule, block_for};

impl<C: Clock> Pipeline<C> {
    /// Runs `op` through the policies; failed attempts are retried (if the pipeline has a
    /// retry policy) after sleeping the thread. The time limiter does not apply: sync code
    /// cannot be preempted.
    ///
    /// # Errors
    ///
    /// The last attempt's [`PipelineError`].
    #[inline]
    pub fn call<T, E>(
        &self,
        op: impl FnMut(Attempt) -> Result<T, E>,
    ) -> Result<T, PipelineError<E>> {
        self.call_when(AnyError, op)
    }

    /// [`call`](Self::call), retrying only the call errors `retry_on` accepts.
    ///
    /// # Errors
    ///
    /// As [`call`](Self::call).
    #[inline]
    pub fn call_when<T, E>(
        &self,
        retry_on: impl RetryOn<E>,
        mut op: impl FnMut(Attempt) -> Result<T, E>,
    ) -> Result<T, PipelineError<E>> {
        let mut schedule = Schedule::new(None);
        let Some(retry) = &self.retry else {
            return self.attempt(schedule.attempt(), &mut op);
        };
        retry.started();
        loop {
            let error = match self.attempt(schedule.attempt(), &mut op) {
                Ok(value) => return Ok(value),
                Err(error) => error,
            };
            let transient = error.is_transient(|e| retry_on.retry_on(e));
            match retry.next_delay(&mut schedule, transient) {
                Some(delay) => block_for(delay),
                None => return Err(error),
            }
        }
    }

    /// [`call`](Self::call), answering with `fallback` when the pipeline's [`FallbackOn`](super::FallbackOn)
    /// [`FallbackOn`](super::FallbackOn) covers the error (by default: refusals, and the failure that opened the breaker).
    ///
    /// # Errors
    ///
    /// The errors the fallback does not cover.
    #[inline]
    pub fn call_or<T, E>(
        &self,
        op: impl FnMut(Attempt) -> Result<T, E>,
        fallback: impl FnOnce(PipelineError<E>) -> T,
    ) -> Result<T, PipelineError<E>> {
        self.fall_back(self.call(op), fallback)
    }

    /// Runs the futures `op` makes through the policies, waiting on the timer `sleep` makes
    /// (`tokio::time::sleep` under tokio) for backoffs, injected latency and the time limit.
    /// Set a deadline with [`within`](PipelineFuture::within), a classifier with
    /// [`when`](PipelineFuture::when), a fallback with [`or_else`](PipelineFuture::or_else).
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// use resilience_core::{pipeline::{Pipeline, PipelineError}, retry::Retry, timeout::TimeLimiter};
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// tokio::time::pause();
    /// let pipeline = Pipeline::builder()
    ///     .retry(Retry::builder("api").max_attempts(2).build()?)
    ///     .time_limiter(TimeLimiter::builder("api").timeout(Duration::from_millis(100)).build()?)
    ///     .build();
    /// let hung = pipeline
    ///     .call_async(|_| async { std::future::pending::<Result<(), ()>>().await }, tokio::time::sleep)
    ///     .await;
    /// assert!(matches!(hung, Err(PipelineError::TimedOut(_))));
    /// assert_eq!(pipeline.retry().unwrap().snapshot().retries, 1);
    /// # Ok(()) }
    /// ```
    #[inline]
    pub fn call_async<T, E, F, Fut, S, SF>(
        &self,
        op: F,
        sleep: SF,
    ) -> PipelineFuture<'_, C, AnyError, NoFallback, F, Fut, SF, S>
    where
        F: FnMut(Attempt) -> Fut,
        Fut: Future<Output = Result<T, E>>,
        SF: FnMut(Duration) -> S,
        S: Future<Output = ()>,
    {
        PipelineFuture::new(self, op, sleep)
    }

    /// [`call_async`](Self::call_async) with the fallback of [`call_or`](Self::call_or).
    #[inline]
    pub fn call_async_or<T, E, F, Fut, S, SF, G>(
        &self,
        op: F,
        sleep: SF,
        fallback: G,
    ) -> PipelineFuture<'_, C, AnyError, G, F, Fut, SF, S>
    where
        F: FnMut(Attempt) -> Fut,
        Fut: Future<Output = Result<T, E>>,
        SF: FnMut(Duration) -> S,
        S: Future<Output = ()>,
        G: FnOnce(PipelineError<E>) -> T,
    {
        PipelineFuture::new(self, op, sleep).or_else(fallback)
    }

    #[inline]
    fn fall_back<T, E>(
        &self,
        result: Result<T, PipelineError<E>>,
        fallback: impl FnOnce(PipelineError<E>) -> T,
    ) -> Result<T, PipelineError<E>> {
        match result {
            Err(error) if self.fallback_on.applies(&error) => Ok(fallback(error)),
            other => other,
        }
    }

    /// One attempt, sync: the admission policies in order, chaos, the call, the outcome.
    #[inline(always)]
    fn attempt<T, E>(
        &self,
        attempt: Attempt,
        op: &mut impl FnMut(Attempt) -> Result<T, E>,
    ) -> Result<T, PipelineError<E>> {
        let (permit, _slot) = self.admit()?;
        if let Some(fault) = self.chaos_fault() {
            match fault {
                Fault::Latency(delay) => block_for(delay),
                Fault::Timeout(after) => {
                    block_for(after);
                    return Err(injected(permit, fault));
                }
                _ => return Err(injected(permit, fault)),
            }
        }
        settle(self, permit, op(attempt))
    }

    /// Breaker, bulkhead and rate limiter, in that order; a later refusal gives back what an
    /// earlier policy granted without counting it (the dependency was not called).
    #[inline(always)]
    #[allow(clippy::type_complexity)]
    pub(super) fn admit<E>(
        &self,
    ) -> Result<
        (
            Option<Permit<'_, C>>,
            Option<crate::bulkhead::BulkheadPermit<'_>>,
        ),
        PipelineError<E>,
    > {
        let permit = match &self.breaker {
            Some(breaker) => Some(breaker.try_acquire().map_err(Refusal::Breaker)?),
            None => None,
        };
        let slot = match &self.bulkhead {
            Some(bulkhead) => Some(bulkhead.try_acquire().map_err(Refusal::Bulkhead)?),
            None => None,
        };
        if let Some(limiter) = &self.rate_limiter {
            limiter.try_acquire().map_err(Refusal::RateLimited)?;
        }
        Ok((permit, slot))
    }

    #[inline(always)]
    pub(super) fn chaos_fault(&self) -> Option<Fault> {
        self.chaos
            .as_ref()
            .and_then(|(table, point)| table.check(*point))
    }
}

impl<E> From<Refusal> for PipelineError<E> {
    #[inline]
    fn from(refusal: Refusal) -> Self {
        PipelineError::Refused(refusal)
    }
}

/// An injected fault counts as the dependency's failure, except a simulated open breaker.
#[cold]
pub(super) fn injected<E, C: Clock>(
    permit: Option<Permit<'_, C>>,
    fault: Fault,
) -> PipelineError<E> {
    if let Some(permit) = permit {
        match fault {
            Fault::BreakerOpen => permit.ignore(),
            _ => permit.failure(),
        }
    }
    PipelineError::Injected(fault)
}

#[inline(always)]
pub(super) fn settle<T, E, C: Clock>(
    pipeline: &Pipeline<C>,
    permit: Option<Permit<'_, C>>,
    outcome: Result<T, E>,
) -> Result<T, PipelineError<E>> {
    match (outcome, permit) {
        (Ok(value), Some(permit)) => {
            permit.success();
            Ok(value)
        }
        (Ok(value), None) => Ok(value),
        (Err(error), None) => Err(PipelineError::Failed(error)),
        (Err(error), Some(permit)) => {
            permit.failure();
            let opened = pipeline
                .breaker
                .as_ref()
                .is_some_and(|b| matches!(b.state(), State::Open | State::ForcedOpen));
            Err(if opened {
                PipelineError::Tripped(error)
            } else {
                PipelineError::Failed(error)
            })
        }
    }
}
