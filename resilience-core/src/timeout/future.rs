//! [`Timeout`]: a future raced against a timer.

use core::future::Future;
use core::pin::Pin;
use core::task::{Context, Poll};

use pin_project_lite::pin_project;

use super::{OnFinish, TimedOut};

pin_project! {
    /// The future of [`timeout`](super::timeout) and
    /// [`TimeLimiter::call_async`](super::TimeLimiter::call_async): the call's output, or
    /// [`TimedOut`] when the timer finishes first. The call is polled first, so a call that
    /// is ready when the timer fires still counts as in time.
    #[must_use = "futures do nothing unless polled"]
    pub struct Timeout<Fut, S, N = ()> {
        #[pin]
        call: Fut,
        #[pin]
        timer: S,
        error: TimedOut,
        on_finish: N,
    }
}

impl<Fut, S> Timeout<Fut, S> {
    pub(crate) fn new(call: Fut, timer: S, error: TimedOut) -> Self {
        Timeout {
            call,
            timer,
            error,
            on_finish: (),
        }
    }

    pub(super) fn counted<N>(self, on_finish: N) -> Timeout<Fut, S, N> {
        Timeout {
            call: self.call,
            timer: self.timer,
            error: self.error,
            on_finish,
        }
    }
}

impl<Fut: Future, S: Future<Output = ()>, N: OnFinish> Future for Timeout<Fut, S, N> {
    type Output = Result<Fut::Output, TimedOut>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        if let Poll::Ready(output) = this.call.poll(cx) {
            this.on_finish.finished(true);
            return Poll::Ready(Ok(output));
        }
        match this.timer.poll(cx) {
            Poll::Ready(()) => {
                this.on_finish.finished(false);
                Poll::Ready(Err(*this.error))
            }
            Poll::Pending => Poll::Pending,
        }
    }
}
