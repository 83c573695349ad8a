//! [`TimeLimitLayer`]: a tower middleware that cancels requests running past a
//! [`TimeLimiter`]'s limit.

use core::future::Future;
use core::pin::Pin;
use core::task::{Context, Poll};
use std::sync::Arc;

use pin_project_lite::pin_project;
use tower_layer::Layer;
use tower_service::Service;

use super::Sleep;
use crate::clock::Nanos;
use crate::timeout::limit_reached;
use crate::timeout::{TimeLimiter, TimedOut};

/// Wraps services in a [`TimeLimitService`]: a response not ready by the limiter's limit is
/// dropped (the request cancelled) and the call fails with [`TimedOut`] converted into the
/// service's error type (`E: From<TimedOut>`; a `tower::BoxError` takes it as is). The timer
/// is yours (`sleep`) and is made only if the response is not ready at its first poll.
///
/// # Examples
///
/// ```
/// use std::{sync::Arc, time::Duration};
/// use resilience_core::timeout::{TimeLimiter, TimedOut};
/// use resilience_core::tower::TimeLimitLayer;
/// use tower::{BoxError, ServiceBuilder, ServiceExt, service_fn};
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// tokio::time::pause();
/// let limit = Arc::new(TimeLimiter::builder("search").timeout(Duration::from_millis(50)).build().unwrap());
/// let service = ServiceBuilder::new()
///     .layer(TimeLimitLayer::new(limit, tokio::time::sleep))
///     .service(service_fn(|_: ()| async {
///         tokio::time::sleep(Duration::from_secs(5)).await;
///         Ok::<_, BoxError>("late")
///     }));
/// let err = service.oneshot(()).await.unwrap_err();
/// assert!(err.downcast_ref::<TimedOut>().is_some());
/// # }
/// ```
#[derive(Clone, Debug)]
pub struct TimeLimitLayer<T> {
    limiter: Arc<TimeLimiter>,
    sleep: T,
}

impl<T: Sleep + Clone> TimeLimitLayer<T> {
    /// A layer sharing `limiter` (and its counters) between every service it builds.
    pub fn new(limiter: Arc<TimeLimiter>, sleep: T) -> Self {
        TimeLimitLayer { limiter, sleep }
    }
}

impl<S, T: Clone> Layer<S> for TimeLimitLayer<T> {
    type Service = TimeLimitService<S, T>;

    fn layer(&self, inner: S) -> Self::Service {
        TimeLimitService {
            inner,
            limiter: Arc::clone(&self.limiter),
            sleep: self.sleep.clone(),
        }
    }
}

/// A service whose requests are cut off at a time limit; built by [`TimeLimitLayer`].
#[derive(Clone, Debug)]
pub struct TimeLimitService<S, T> {
    inner: S,
    limiter: Arc<TimeLimiter>,
    sleep: T,
}

impl<S, T> TimeLimitService<S, T> {
    /// The shared limiter.
    pub fn limiter(&self) -> &Arc<TimeLimiter> {
        &self.limiter
    }

    /// The wrapped service.
    pub fn get_ref(&self) -> &S {
        &self.inner
    }
}

impl<S, Req, T> Service<Req> for TimeLimitService<S, T>
where
    S: Service<Req>,
    S::Error: From<TimedOut>,
    T: Sleep + Clone,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = TimeLimitResponse<S::Future, T>;

    #[inline]
    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    #[inline]
    fn call(&mut self, request: Req) -> Self::Future {
        let (deadline, error) = self.limiter.start(None);
        TimeLimitResponse {
            call: self.inner.call(request),
            timer: None,
            sleep: Some(self.sleep.clone()),
            limiter: Arc::clone(&self.limiter),
            deadline: deadline.instant(),
            error,
        }
    }
}

pin_project! {
    /// The response future of [`TimeLimitService`].
    #[must_use = "futures do nothing unless polled"]
    pub struct TimeLimitResponse<F, T: Sleep> {
        #[pin]
        call: F,
        #[pin]
        timer: Option<T::Future>,
        sleep: Option<T>,
        limiter: Arc<TimeLimiter>,
        deadline: Nanos,
        error: TimedOut,
    }
}

impl<F, R, E, T> Future for TimeLimitResponse<F, T>
where
    F: Future<Output = Result<R, E>>,
    E: From<TimedOut>,
    T: Sleep,
{
    type Output = Result<R, E>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        if let Poll::Ready(output) = this.call.poll(cx) {
            this.limiter.finished(true);
            return Poll::Ready(output);
        }
        let make = this.sleep.take().map(|sleep| move |left| sleep.sleep(left));
        let fired = limit_reached(this.timer, make, *this.deadline, this.limiter.clock(), cx);
        if fired {
            this.limiter.finished(false);
            Poll::Ready(Err(E::from(*this.error)))
        } else {
            Poll::Pending
        }
    }
}
