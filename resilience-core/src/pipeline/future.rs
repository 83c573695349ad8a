//! [`PipelineFuture`]: an async call through a [`Pipeline`] as one flat state machine.
//!
//! One future instead of nested `async fn`s: nothing is moved between layers on each call,
//! the timer of the time limit is made only if the call has to wait, and the type can be named
//! (a tower service can return it).

use core::future::Future;
use core::pin::Pin;
use core::task::{Context, Poll};
use core::time::Duration;

use pin_project_lite::pin_project;

use super::call::settle;
use super::{FallbackOn, Pipeline, PipelineError};
use crate::breaker::Permit;
use crate::bulkhead::BulkheadPermit;
use crate::chaos::Fault;
use crate::clock::{Clock, Nanos};
use crate::retry::{AnyError, Attempt, RetryOn, Schedule};
use crate::timeout::{Deadline, TimedOut, limit_reached};

/// What answers a failed call: nothing ([`NoFallback`]) or a closure given the error.
pub trait Fallback<T, E> {
    /// The answer to `error`, when `on` covers it; otherwise the error.
    ///
    /// # Errors
    ///
    /// `error` itself when there is no fallback or `on` does not cover it.
    fn answer(self, on: FallbackOn, error: PipelineError<E>) -> Result<T, PipelineError<E>>;
}

/// No fallback: errors are returned as they are.
#[derive(Clone, Copy, Debug, Default)]
pub struct NoFallback;

impl<T, E> Fallback<T, E> for NoFallback {
    #[inline]
    fn answer(self, _: FallbackOn, error: PipelineError<E>) -> Result<T, PipelineError<E>> {
        Err(error)
    }
}

impl<T, E, G: FnOnce(PipelineError<E>) -> T> Fallback<T, E> for G {
    #[inline]
    fn answer(self, on: FallbackOn, error: PipelineError<E>) -> Result<T, PipelineError<E>> {
        if on.applies(&error) {
            Ok(self(error))
        } else {
            Err(error)
        }
    }
}

pin_project! {
    #[project = StepProj]
    enum Step<Fut> {
        // Admission, chaos, then the call.
        Start,
        // Injected latency (then the call) or an injected time-out (then the error), on the
        // timer.
        Injected { fault: Fault },
        // The call; with a time limit, the timer (made on the first `Pending`) ends it.
        Calling { #[pin] call: Fut },
        // A backoff on the timer, then the next attempt.
        Backoff,
    }
}

pin_project! {
    /// The future of [`Pipeline::call_async`]: the first success, the fallback's answer, or
    /// the last attempt's [`PipelineError`]. Dropping it cancels the attempt in progress and
    /// gives back its breaker permit (uncounted) and bulkhead slot.
    #[must_use = "futures do nothing unless polled"]
    pub struct PipelineFuture<'a, C: Clock, K, G, F, Fut, SF, S> {
        pipeline: &'a Pipeline<C>,
        retry_on: K,
        fallback: Option<G>,
        op: F,
        sleep: SF,
        schedule: Schedule,
        started: bool,
        permit: Option<Permit<'a, C>>,
        slot: Option<BulkheadPermit<'a>>,
        // When the attempt's time limit ends (with a time limiter), on its clock, and the
        // error then.
        limit: Option<(Nanos, TimedOut)>,
        // One timer serves the injected delay, the time limit and the backoff, which never
        // overlap; it is made only when one of them has to wait, so a call that completes at
        // once writes nothing here.
        #[pin]
        timer: Option<S>,
        #[pin]
        step: Step<Fut>,
    }
}

impl<'a, C: Clock, F, Fut, SF, S> PipelineFuture<'a, C, AnyError, NoFallback, F, Fut, SF, S> {
    #[inline]
    pub(super) fn new(pipeline: &'a Pipeline<C>, op: F, sleep: SF) -> Self {
        PipelineFuture {
            pipeline,
            retry_on: AnyError,
            fallback: Some(NoFallback),
            op,
            sleep,
            schedule: Schedule::new(None),
            started: false,
            permit: None,
            slot: None,
            limit: None,
            timer: None,
            step: Step::Start,
        }
    }
}

impl<'a, C: Clock, K, G, F, Fut, SF, S> PipelineFuture<'a, C, K, G, F, Fut, SF, S> {
    /// Retries only the call errors `retry_on` accepts (refusals are never retried).
    pub fn when<K2>(self, retry_on: K2) -> PipelineFuture<'a, C, K2, G, F, Fut, SF, S> {
        self.reassemble(|_, fallback| (retry_on, fallback))
    }

    /// Answers with `fallback` when the pipeline's [`FallbackOn`] covers the error.
    pub fn or_else<G2>(self, fallback: G2) -> PipelineFuture<'a, C, K, G2, F, Fut, SF, S> {
        self.reassemble(|retry_on, _| (retry_on, Some(fallback)))
    }

    // The settings methods run before the first poll, so nothing but the settings carries over.
    fn reassemble<K2, G2>(
        self,
        settings: impl FnOnce(K, Option<G>) -> (K2, Option<G2>),
    ) -> PipelineFuture<'a, C, K2, G2, F, Fut, SF, S> {
        let (retry_on, fallback) = settings(self.retry_on, self.fallback);
        PipelineFuture {
            pipeline: self.pipeline,
            retry_on,
            fallback,
            op: self.op,
            sleep: self.sleep,
            schedule: self.schedule,
            started: false,
            permit: None,
            slot: None,
            limit: None,
            timer: None,
            step: Step::Start,
        }
    }

    /// A deadline for the whole call: retries stop rather than back off past it, each
    /// attempt's time limit ends by it, and each attempt is told it ([`Attempt::deadline`]).
    pub fn within(mut self, deadline: Deadline) -> Self {
        self.schedule = Schedule::new(Some(deadline));
        self
    }
}

impl<C, K, G, F, Fut, T, E, SF, S> Future for PipelineFuture<'_, C, K, G, F, Fut, SF, S>
where
    C: Clock,
    K: RetryOn<E>,
    G: Fallback<T, E>,
    F: FnMut(Attempt) -> Fut,
    Fut: Future<Output = Result<T, E>>,
    SF: FnMut(Duration) -> S,
    S: Future<Output = ()>,
{
    type Output = Result<T, PipelineError<E>>;

    #[inline]
    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let mut this = self.project();
        let pipeline: &Pipeline<C> = this.pipeline;
        loop {
            let error = match this.step.as_mut().project() {
                StepProj::Start => {
                    if !*this.started {
                        *this.started = true;
                        if let Some(retry) = &pipeline.retry {
                            retry.started();
                        }
                    }
                    match pipeline.admit() {
                        Err(refused) => refused,
                        Ok((permit, slot)) => {
                            *this.permit = permit;
                            *this.slot = slot;
                            match pipeline.chaos_fault() {
                                Some(fault @ (Fault::Latency(delay) | Fault::Timeout(delay))) => {
                                    this.timer.set(Some((this.sleep)(delay)));
                                    this.step.set(Step::Injected { fault });
                                    continue;
                                }
                                Some(fault) => end_injected(this.permit, this.slot, fault),
                                None => {
                                    let call =
                                        start_call(pipeline, this.schedule, this.op, this.limit);
                                    this.step.set(Step::Calling { call });
                                    continue;
                                }
                            }
                        }
                    }
                }
                StepProj::Injected { fault } => {
                    if !timer_fired(this.timer.as_mut(), cx) {
                        return Poll::Pending;
                    }
                    this.timer.set(None);
                    if let Fault::Latency(_) = fault {
                        let call = start_call(pipeline, this.schedule, this.op, this.limit);
                        this.step.set(Step::Calling { call });
                        continue;
                    }
                    let fault = *fault;
                    end_injected(this.permit, this.slot, fault)
                }
                StepProj::Calling { call } => match call.poll(cx) {
                    Poll::Ready(outcome) => {
                        if this.limit.is_some()
                            && let Some(limiter) = &pipeline.time_limiter
                        {
                            limiter.finished(true);
                        }
                        this.slot.take();
                        match settle(pipeline, this.permit.take(), outcome) {
                            Ok(value) => return Poll::Ready(Ok(value)),
                            Err(error) => error,
                        }
                    }
                    Poll::Pending => {
                        let (Some((deadline, timed_out)), Some(limiter)) =
                            (*this.limit, &pipeline.time_limiter)
                        else {
                            return Poll::Pending;
                        };
                        if !limit_reached(
                            this.timer.as_mut(),
                            Some(&mut *this.sleep),
                            deadline,
                            limiter.clock(),
                            cx,
                        ) {
                            return Poll::Pending;
                        }
                        this.timer.set(None);
                        limiter.finished(false);
                        this.slot.take();
                        if let Some(permit) = this.permit.take() {
                            permit.failure();
                        }
                        PipelineError::TimedOut(timed_out)
                    }
                },
                StepProj::Backoff => {
                    if !timer_fired(this.timer.as_mut(), cx) {
                        return Poll::Pending;
                    }
                    this.timer.set(None);
                    this.step.set(Step::Start);
                    continue;
                }
            };
            // The attempt failed: retry after a backoff, or end (through the fallback).
            let delay = pipeline.retry.as_ref().and_then(|retry| {
                let transient = error.is_transient(|e| this.retry_on.retry_on(e));
                retry.next_delay(this.schedule, transient)
            });
            match delay {
                Some(delay) => {
                    this.timer.set(Some((this.sleep)(delay)));
                    this.step.set(Step::Backoff);
                }
                None => {
                    let on = pipeline.fallback_on;
                    return Poll::Ready(match this.fallback.take() {
                        Some(fallback) => fallback.answer(on, error),
                        None => Err(error),
                    });
                }
            }
        }
    }
}

/// Whether the timer (if one is set) has fired.
#[inline]
fn timer_fired<S: Future<Output = ()>>(timer: Pin<&mut Option<S>>, cx: &mut Context<'_>) -> bool {
    match timer.as_pin_mut() {
        Some(timer) => timer.poll(cx).is_ready(),
        None => true,
    }
}

/// The call of the current attempt; with a time limiter, its deadline goes to `limit`.
#[inline(always)]
fn start_call<C: Clock, Fut>(
    pipeline: &Pipeline<C>,
    schedule: &Schedule,
    op: &mut impl FnMut(Attempt) -> Fut,
    limit: &mut Option<(Nanos, TimedOut)>,
) -> Fut {
    let attempt = schedule.attempt();
    match &pipeline.time_limiter {
        None => op(attempt),
        Some(limiter) => {
            let (deadline, timed_out) = limiter.start(attempt.deadline());
            *limit = Some((deadline.instant(), timed_out));
            op(attempt.with_deadline(deadline))
        }
    }
}

#[cold]
fn end_injected<C: Clock, E>(
    permit: &mut Option<Permit<'_, C>>,
    slot: &mut Option<BulkheadPermit<'_>>,
    fault: Fault,
) -> PipelineError<E> {
    slot.take();
    super::call::injected(permit.take(), fault)
}
