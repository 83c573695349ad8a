//! [`Timeout`]: a future raced against a timer that is only started if the future has to wait.
//!
//! A call that completes on its first poll (a cache hit, a ready channel) costs one clock
//! load and no timer; otherwise the timer is made on the first `Pending` for the time left
//! until the deadline fixed when the call started.

use core::future::Future;
use core::pin::Pin;
use core::task::{Context, Poll};
use core::time::Duration;

use pin_project_lite::pin_project;

use super::{OnFinish, TimedOut};
use crate::clock::{Clock, Nanos};

pin_project! {
    /// The future of [`timeout`](super::timeout) and
    /// [`TimeLimiter::call_async`](super::TimeLimiter::call_async): the call's output, or
    /// [`TimedOut`] when the deadline passes first (the call is then dropped). The call is
    /// polled before the timer, so a call that is ready when the timer fires is in time.
    #[must_use = "futures do nothing unless polled"]
    pub struct Timeout<'c, Fut, SF, S, C, N = ()> {
        #[pin]
        call: Fut,
        #[pin]
        timer: Option<S>,
        make_timer: Option<SF>,
        clock: &'c C,
        deadline: Nanos,
        error: TimedOut,
        on_finish: N,
    }
}

impl<'c, Fut, SF, S, C: Clock> Timeout<'c, Fut, SF, S, C> {
    pub(crate) fn new(
        call: Fut,
        make_timer: SF,
        clock: &'c C,
        deadline: Nanos,
        error: TimedOut,
    ) -> Self {
        Timeout {
            call,
            timer: None,
            make_timer: Some(make_timer),
            clock,
            deadline,
            error,
            on_finish: (),
        }
    }

    pub(super) fn counted<N>(self, on_finish: N) -> Timeout<'c, Fut, SF, S, C, N> {
        Timeout {
            call: self.call,
            timer: self.timer,
            make_timer: self.make_timer,
            clock: self.clock,
            deadline: self.deadline,
            error: self.error,
            on_finish,
        }
    }
}

impl<Fut, SF, S, C, N> Future for Timeout<'_, Fut, SF, S, C, N>
where
    Fut: Future,
    SF: FnOnce(Duration) -> S,
    S: Future<Output = ()>,
    C: Clock,
    N: OnFinish,
{
    type Output = Result<Fut::Output, TimedOut>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        if let Poll::Ready(output) = this.call.poll(cx) {
            this.on_finish.finished(true);
            return Poll::Ready(Ok(output));
        }
        if limit_reached(
            this.timer,
            this.make_timer.take(),
            *this.deadline,
            *this.clock,
            cx,
        ) {
            this.on_finish.finished(false);
            return Poll::Ready(Err(*this.error));
        }
        Poll::Pending
    }
}

/// Whether a call's time limit has passed. The first time (`timer` empty) it makes the timer
/// with `make` for the time left until `deadline` on `clock`, or none at all when the deadline
/// has already passed; then it polls the timer. Shared by [`Timeout`], the tower time limit and
/// the pipeline, so that all three make the timer lazily in the same way.
#[inline]
pub(crate) fn limit_reached<S: Future<Output = ()>, C: Clock>(
    mut timer: Pin<&mut Option<S>>,
    make: Option<impl FnOnce(Duration) -> S>,
    deadline: Nanos,
    clock: &C,
    cx: &mut Context<'_>,
) -> bool {
    if timer.is_none() {
        let Some(make) = make else {
            return true;
        };
        let left = deadline.saturating_since(clock.now());
        if left.is_zero() {
            return true;
        }
        timer.set(Some(make(left)));
    }
    timer
        .as_pin_mut()
        .is_some_and(|timer| timer.poll(cx).is_ready())
}
