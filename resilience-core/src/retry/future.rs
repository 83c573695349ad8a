//! [`RetryFuture`]: the async retry loop as one state machine (calling, or waiting out a
//! backoff), with no allocation per attempt.

use core::future::Future;
use core::pin::Pin;
use core::task::{Context, Poll};
use core::time::Duration;

use pin_project_lite::pin_project;

use super::{Attempt, Retry, RetryOn, Schedule};
use crate::clock::Clock;
use crate::timeout::Deadline;

pin_project! {
    #[project = StepProj]
    enum Step<Fut, S> {
        NotStarted,
        Calling { #[pin] call: Fut },
        Waiting { #[pin] backoff: S },
    }
}

pin_project! {
    /// The future of [`Retry::call_async`]: the first success, or the last error when the
    /// policy gives up. Dropping it cancels the attempt in progress (or the backoff).
    #[must_use = "futures do nothing unless polled"]
    pub struct RetryFuture<'a, C: Clock, K, F, Fut, SF, S> {
        retry: &'a Retry<C>,
        retry_on: K,
        op: F,
        sleep: SF,
        schedule: Schedule,
        #[pin]
        step: Step<Fut, S>,
    }
}

impl<'a, C: Clock, K, F, Fut, SF, S> RetryFuture<'a, C, K, F, Fut, SF, S> {
    pub(super) fn new(retry: &'a Retry<C>, retry_on: K, op: F, sleep: SF) -> Self {
        RetryFuture {
            retry,
            retry_on,
            op,
            sleep,
            schedule: Schedule::new(None),
            step: Step::NotStarted,
        }
    }

    /// Retries only the errors `retry_on` accepts.
    pub fn when<K2>(self, retry_on: K2) -> RetryFuture<'a, C, K2, F, Fut, SF, S> {
        RetryFuture {
            retry: self.retry,
            retry_on,
            op: self.op,
            sleep: self.sleep,
            schedule: self.schedule,
            step: Step::NotStarted,
        }
    }

    /// Gives up rather than start a backoff that would end past `deadline`, and hands the
    /// deadline to every attempt ([`Attempt::deadline`]). It does not cancel an attempt in
    /// progress: wrap the attempts in a [`TimeLimiter`](crate::timeout::TimeLimiter) for that.
    pub fn within(mut self, deadline: Deadline) -> Self {
        self.schedule = Schedule::new(Some(deadline));
        self
    }
}

impl<C, K, F, Fut, T, E, SF, S> Future for RetryFuture<'_, C, K, F, Fut, SF, S>
where
    C: Clock,
    K: RetryOn<E>,
    F: FnMut(Attempt) -> Fut,
    Fut: Future<Output = Result<T, E>>,
    SF: FnMut(Duration) -> S,
    S: Future<Output = ()>,
{
    type Output = Result<T, E>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let mut this = self.project();
        loop {
            match this.step.as_mut().project() {
                StepProj::NotStarted => {
                    this.retry.started();
                    let call = (this.op)(this.schedule.attempt());
                    this.step.set(Step::Calling { call });
                }
                StepProj::Calling { call } => match call.poll(cx) {
                    Poll::Pending => return Poll::Pending,
                    Poll::Ready(Ok(value)) => return Poll::Ready(Ok(value)),
                    Poll::Ready(Err(error)) => {
                        let retryable = this.retry_on.retry_on(&error);
                        match this.retry.next_delay(this.schedule, retryable) {
                            Some(delay) => {
                                let backoff = (this.sleep)(delay);
                                this.step.set(Step::Waiting { backoff });
                            }
                            None => return Poll::Ready(Err(error)),
                        }
                    }
                },
                StepProj::Waiting { backoff } => match backoff.poll(cx) {
                    Poll::Pending => return Poll::Pending,
                    Poll::Ready(()) => {
                        let call = (this.op)(this.schedule.attempt());
                        this.step.set(Step::Calling { call });
                    }
                },
            }
        }
    }
}
