//! [`BulkheadFuture`]: an async call holding a bulkhead slot until it completes or is dropped.
//!
//! Shared by [`Bulkhead::call_async`](super::Bulkhead::call_async) (a borrowed
//! [`BulkheadPermit`](super::BulkheadPermit)) and the tower service (an owned one), so both give
//! the slot back the same way.

use core::future::Future;
use core::pin::Pin;
use core::task::{Context, Poll};

use pin_project_lite::pin_project;

use super::BulkheadFull;

pin_project! {
    /// The future of [`Bulkhead::call_async`](super::Bulkhead::call_async): the call's output,
    /// or [`BulkheadFull`] at once when it was refused. The slot is given back when the call
    /// completes, and also when this future is dropped before that (cancellation) or the call
    /// panics (the permit `P` is dropped while unwinding).
    #[must_use = "futures do nothing unless polled"]
    pub struct BulkheadFuture<P, Fut> {
        permit: Option<P>,
        refused: Option<BulkheadFull>,
        #[pin]
        call: Option<Fut>,
    }
}

impl<P, Fut: Future> BulkheadFuture<P, Fut> {
    #[inline]
    pub(crate) fn start(admitted: Result<P, BulkheadFull>, f: impl FnOnce() -> Fut) -> Self {
        match admitted {
            Ok(permit) => BulkheadFuture {
                permit: Some(permit),
                refused: None,
                call: Some(f()),
            },
            Err(full) => BulkheadFuture {
                permit: None,
                refused: Some(full),
                call: None,
            },
        }
    }
}

impl<P, Fut: Future> Future for BulkheadFuture<P, Fut> {
    type Output = Result<Fut::Output, BulkheadFull>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let mut this = self.project();
        if let Some(full) = this.refused.take() {
            return Poll::Ready(Err(full));
        }
        let Some(call) = this.call.as_mut().as_pin_mut() else {
            panic!("BulkheadFuture polled after completion");
        };
        match call.poll(cx) {
            Poll::Ready(output) => {
                this.call.set(None);
                // The slot goes back as soon as the call is done, not when this is dropped.
                this.permit.take();
                Poll::Ready(Ok(output))
            }
            Poll::Pending => Poll::Pending,
        }
    }
}
