//! [`CallFuture`]: one admitted async call, reporting its outcome when it completes.
//!
//! Shared by [`CircuitBreaker::call_async`](super::CircuitBreaker::call_async) (borrowing
//! [`Permit`]) and the tower service (owning [`OwnedPermit`]), so cancellation and panics behave
//! the same everywhere: a dropped future releases its permit like `ignore`, a panic while polling
//! counts as a failure.

use core::fmt;
use core::future::Future;
use core::pin::Pin;
use core::task::{Context, Poll, ready};

use pin_project_lite::pin_project;

use super::permit::{CallError, Outcome, Rejected};
use super::permit::{OwnedPermit, Permit};
use crate::clock::Clock;

/// Decides how a call's result counts: [`Outcome::Success`], [`Outcome::Failure`] or
/// [`Outcome::Ignore`].
///
/// Implemented by every `Fn(&Result<T, E>) -> Outcome`, and by [`ErrorsAreFailures`] (the
/// default).
///
/// # Examples
///
/// ```
/// use resilience_core::{Classify, Outcome};
///
/// // Client errors say nothing about the dependency; server errors do.
/// let by_status = |r: &Result<u16, ()>| match r {
///     Ok(status) if *status >= 500 => Outcome::Failure,
///     Ok(status) if *status >= 400 => Outcome::Ignore,
///     Ok(_) => Outcome::Success,
///     Err(()) => Outcome::Failure,
/// };
/// assert_eq!(by_status.classify(&Ok(503)), Outcome::Failure);
/// assert_eq!(by_status.classify(&Ok(404)), Outcome::Ignore);
/// ```
pub trait Classify<T, E> {
    /// How `result` counts.
    fn classify(&self, result: &Result<T, E>) -> Outcome;
}

impl<T, E, F> Classify<T, E> for F
where
    F: Fn(&Result<T, E>) -> Outcome,
{
    #[inline(always)]
    fn classify(&self, result: &Result<T, E>) -> Outcome {
        self(result)
    }
}

/// The default [`Classify`]: `Ok` is a success, `Err` a failure.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ErrorsAreFailures;

impl<T, E> Classify<T, E> for ErrorsAreFailures {
    #[inline(always)]
    fn classify(&self, result: &Result<T, E>) -> Outcome {
        if result.is_ok() {
            Outcome::Success
        } else {
            Outcome::Failure
        }
    }
}

mod sealed {
    pub trait Sealed {}
}

/// A permit a [`CallFuture`] can hold: [`Permit`] or [`OwnedPermit`]. Sealed.
pub trait HeldPermit: sealed::Sealed {
    #[doc(hidden)]
    fn report(self, outcome: Outcome);
}

impl<C: Clock> sealed::Sealed for Permit<'_, C> {}
impl<C: Clock> HeldPermit for Permit<'_, C> {
    #[inline(always)]
    fn report(self, outcome: Outcome) {
        self.record(outcome);
    }
}

impl<C: Clock> sealed::Sealed for OwnedPermit<C> {}
impl<C: Clock> HeldPermit for OwnedPermit<C> {
    #[inline(always)]
    fn report(self, outcome: Outcome) {
        self.record(outcome);
    }
}

pin_project! {
    /// One async call through a breaker: resolves to the call's result, or at once to
    /// [`CallError::Rejected`] when the breaker refused it.
    ///
    /// Dropping it before it completes (a timeout, a client that went away) releases the permit
    /// like [`Outcome::Ignore`], so a cancelled HALF_OPEN probe frees its slot at once. A panic
    /// inside the call counts as a failure.
    #[must_use = "futures do nothing unless polled"]
    pub struct CallFuture<F, P, K> {
        #[pin]
        call: Option<F>,
        permit: Option<P>,
        rejected: Option<Rejected>,
        classify: K,
    }
}

impl<F, P, K> CallFuture<F, P, K> {
    /// The future of one call: `call` is started only if `admission` granted a permit.
    #[inline(always)]
    pub(crate) fn start(
        admission: Result<P, Rejected>,
        classify: K,
        call: impl FnOnce() -> F,
    ) -> Self {
        match admission {
            Ok(permit) => CallFuture {
                call: Some(call()),
                permit: Some(permit),
                rejected: None,
                classify,
            },
            Err(rejected) => CallFuture {
                call: None,
                permit: None,
                rejected: Some(rejected),
                classify,
            },
        }
    }
}

impl<F, P, K, T, E> Future for CallFuture<F, P, K>
where
    F: Future<Output = Result<T, E>>,
    P: HeldPermit,
    K: Classify<T, E>,
{
    type Output = Result<T, CallError<E>>;

    #[inline]
    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        let Some(call) = this.call.as_pin_mut() else {
            return match this.rejected.take() {
                Some(rejected) => Poll::Ready(Err(CallError::Rejected(rejected))),
                None => panic!("CallFuture polled after completion"),
            };
        };
        let result = {
            // Executors catch a task's panic and drop the future later, outside the unwind, where
            // the permit could no longer tell a panic from a cancellation: report it here.
            let _unwind = FailOnUnwind(this.permit);
            ready!(call.poll(cx))
        };
        if let Some(permit) = this.permit.take() {
            permit.report(this.classify.classify(&result));
        }
        Poll::Ready(result.map_err(CallError::Inner))
    }
}

impl<F, P, K> fmt::Debug for CallFuture<F, P, K> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CallFuture")
            .field("admitted", &self.call.is_some())
            .field("pending", &self.permit.is_some())
            .field("rejected", &self.rejected)
            .finish_non_exhaustive()
    }
}

/// Counts the held permit as a failure if the call panics while being polled.
struct FailOnUnwind<'a, P: HeldPermit>(&'a mut Option<P>);

impl<P: HeldPermit> Drop for FailOnUnwind<'_, P> {
    fn drop(&mut self) {
        if std::thread::panicking()
            && let Some(permit) = self.0.take()
        {
            permit.report(Outcome::Failure);
        }
    }
}
