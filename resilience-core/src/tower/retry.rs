//! [`RetryLayer`]: a tower middleware that retries failed requests with the [`Retry`] policy's
//! backoff and budget.

use core::future::Future;
use core::pin::Pin;
use core::task::{Context, Poll};
use std::sync::Arc;

use pin_project_lite::pin_project;
use tower_layer::Layer;
use tower_service::Service;

use super::Sleep;
use crate::retry::{AnyError, Retry, RetryOn, Schedule};

/// Wraps services in a [`RetryService`]: a request whose response is an error the classifier
/// accepts is sent again (a clone of it, to a clone of the service made ready first) after the
/// policy's backoff, while attempts and the budget last. The timer is yours (`sleep`, e.g.
/// `tokio::time::sleep`). Put it outside the breaker and the limits, so their refusals (which
/// tell the caller to back off, not to retry) are not retried: give it a classifier that
/// accepts only transient errors.
///
/// # Examples
///
/// ```
/// use std::sync::{Arc, atomic::{AtomicU32, Ordering}};
/// use std::time::Duration;
/// use resilience_core::retry::{Backoff, Retry};
/// use resilience_core::tower::RetryLayer;
/// use tower::{BoxError, ServiceBuilder, ServiceExt, service_fn};
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), BoxError> {
/// tokio::time::pause();
/// let retry = Arc::new(Retry::builder("search").backoff(Backoff::constant(Duration::from_millis(5))).build()?);
/// let calls = Arc::new(AtomicU32::new(0));
/// let counted = calls.clone();
/// let service = ServiceBuilder::new()
///     .layer(RetryLayer::new(retry, tokio::time::sleep))
///     .service(service_fn(move |q: &'static str| {
///         let n = counted.fetch_add(1, Ordering::Relaxed);
///         async move { if n == 0 { Err::<usize, BoxError>("reset".into()) } else { Ok(q.len()) } }
///     }));
/// assert_eq!(service.oneshot("rust").await?, 4);
/// assert_eq!(calls.load(Ordering::Relaxed), 2);
/// # Ok(()) }
/// ```
#[derive(Clone, Debug)]
pub struct RetryLayer<T, K = AnyError> {
    retry: Arc<Retry>,
    sleep: T,
    retry_on: K,
}

impl<T: Sleep + Clone> RetryLayer<T> {
    /// A layer sharing `retry` (and its budget) between every service it builds, retrying
    /// every error.
    pub fn new(retry: Arc<Retry>, sleep: T) -> Self {
        RetryLayer {
            retry,
            sleep,
            retry_on: AnyError,
        }
    }
}

impl<T, K> RetryLayer<T, K> {
    /// Retries only the errors `retry_on` accepts.
    pub fn retry_on<K2>(self, retry_on: K2) -> RetryLayer<T, K2> {
        RetryLayer {
            retry: self.retry,
            sleep: self.sleep,
            retry_on,
        }
    }
}

impl<S, T: Clone, K: Clone> Layer<S> for RetryLayer<T, K> {
    type Service = RetryService<S, T, K>;

    fn layer(&self, inner: S) -> Self::Service {
        RetryService {
            inner,
            retry: Arc::clone(&self.retry),
            sleep: self.sleep.clone(),
            retry_on: self.retry_on.clone(),
        }
    }
}

/// A service whose failed requests are retried; built by [`RetryLayer`].
#[derive(Clone, Debug)]
pub struct RetryService<S, T, K = AnyError> {
    inner: S,
    retry: Arc<Retry>,
    sleep: T,
    retry_on: K,
}

impl<S, T, K> RetryService<S, T, K> {
    /// The shared policy.
    pub fn retry(&self) -> &Arc<Retry> {
        &self.retry
    }

    /// The wrapped service.
    pub fn get_ref(&self) -> &S {
        &self.inner
    }
}

impl<S, Req, T, K> Service<Req> for RetryService<S, T, K>
where
    S: Service<Req> + Clone,
    Req: Clone,
    T: Sleep + Clone,
    K: RetryOn<S::Error> + Clone,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = RetryResponse<S, Req, T, K>;

    #[inline]
    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    #[inline]
    fn call(&mut self, request: Req) -> Self::Future {
        self.retry.started();
        // The ready service answers this request; a fresh clone waits for the next one (the
        // usual tower idiom for services that are called from a future).
        let fresh = self.inner.clone();
        let mut ready = core::mem::replace(&mut self.inner, fresh);
        let call = ready.call(request.clone());
        RetryResponse {
            service: ready,
            request,
            retry: Arc::clone(&self.retry),
            sleep: self.sleep.clone(),
            retry_on: self.retry_on.clone(),
            schedule: Schedule::new(None),
            step: Step::Calling { call },
        }
    }
}

pin_project! {
    #[project = StepProj]
    enum Step<F, W> {
        Calling { #[pin] call: F },
        Waiting { #[pin] backoff: W },
        Readying,
    }
}

pin_project! {
    /// The response future of [`RetryService`]: the first success, or the last error when the
    /// policy gives up.
    #[must_use = "futures do nothing unless polled"]
    pub struct RetryResponse<S: Service<Req>, Req, T: Sleep, K> {
        service: S,
        request: Req,
        retry: Arc<Retry>,
        sleep: T,
        retry_on: K,
        schedule: Schedule,
        #[pin]
        step: Step<S::Future, T::Future>,
    }
}

impl<S, Req, T, K> Future for RetryResponse<S, Req, T, K>
where
    S: Service<Req>,
    Req: Clone,
    T: Sleep,
    K: RetryOn<S::Error>,
{
    type Output = Result<S::Response, S::Error>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let mut this = self.project();
        loop {
            match this.step.as_mut().project() {
                StepProj::Calling { call } => match call.poll(cx) {
                    Poll::Pending => return Poll::Pending,
                    Poll::Ready(Ok(response)) => return Poll::Ready(Ok(response)),
                    Poll::Ready(Err(error)) => {
                        let retryable = this.retry_on.retry_on(&error);
                        match this.retry.next_delay(this.schedule, retryable) {
                            Some(delay) => {
                                let backoff = this.sleep.sleep(delay);
                                this.step.set(Step::Waiting { backoff });
                            }
                            None => return Poll::Ready(Err(error)),
                        }
                    }
                },
                StepProj::Waiting { backoff } => {
                    if backoff.poll(cx).is_pending() {
                        return Poll::Pending;
                    }
                    this.step.set(Step::Readying);
                }
                StepProj::Readying => match this.service.poll_ready(cx) {
                    Poll::Pending => return Poll::Pending,
                    Poll::Ready(Err(error)) => return Poll::Ready(Err(error)),
                    Poll::Ready(Ok(())) => {
                        let call = this.service.call(this.request.clone());
                        this.step.set(Step::Calling { call });
                    }
                },
            }
        }
    }
}
