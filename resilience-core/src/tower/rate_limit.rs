//! [`RateLimitLayer`]: a tower middleware that refuses requests beyond a rate.

use core::future::Future;
use core::pin::Pin;
use core::task::{Context, Poll};
use std::sync::Arc;

use pin_project_lite::pin_project;
use tower_layer::Layer;
use tower_service::Service;

use crate::clock::{Clock, CoarseClock};
use crate::rate_limit::{RateLimited, RateLimiter};

/// Wraps services in a [`RateLimitService`]: requests beyond the limiter's rate fail at once
/// with [`RateLimited`] (carrying the retry time, for a `Retry-After` header) converted into the
/// service's error type (`E: From<RateLimited>`; a `tower::BoxError` takes it as is). Unlike
/// tower's `RateLimit`, it never makes callers wait and all clones share one limit.
///
/// # Examples
///
/// ```
/// use std::sync::Arc;
/// use std::time::Duration;
/// use resilience_core::rate_limit::RateLimiter;
/// use resilience_core::tower::RateLimitLayer;
/// use tower::{BoxError, ServiceBuilder, ServiceExt, service_fn};
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), BoxError> {
/// let limiter = Arc::new(RateLimiter::builder("api").rate(100, Duration::from_secs(1)).build()?);
/// let service = ServiceBuilder::new()
///     .layer(RateLimitLayer::new(limiter))
///     .service(service_fn(|n: u32| async move { Ok::<_, BoxError>(n * 2) }));
/// assert_eq!(service.oneshot(21).await?, 42);
/// # Ok(()) }
/// ```
#[derive(Debug)]
pub struct RateLimitLayer<C: Clock = CoarseClock> {
    limiter: Arc<RateLimiter<C>>,
}

impl<C: Clock> Clone for RateLimitLayer<C> {
    fn clone(&self) -> Self {
        RateLimitLayer {
            limiter: Arc::clone(&self.limiter),
        }
    }
}

impl<C: Clock> RateLimitLayer<C> {
    /// A layer sharing `limiter` between every service it builds.
    pub fn new(limiter: Arc<RateLimiter<C>>) -> Self {
        RateLimitLayer { limiter }
    }

    /// The shared limiter.
    pub fn limiter(&self) -> &Arc<RateLimiter<C>> {
        &self.limiter
    }
}

impl<S, C: Clock> Layer<S> for RateLimitLayer<C> {
    type Service = RateLimitService<S, C>;

    fn layer(&self, inner: S) -> Self::Service {
        RateLimitService {
            inner,
            limiter: Arc::clone(&self.limiter),
        }
    }
}

/// A service behind a rate limit; built by [`RateLimitLayer`].
#[derive(Debug)]
pub struct RateLimitService<S, C: Clock = CoarseClock> {
    inner: S,
    limiter: Arc<RateLimiter<C>>,
}

impl<S: Clone, C: Clock> Clone for RateLimitService<S, C> {
    fn clone(&self) -> Self {
        RateLimitService {
            inner: self.inner.clone(),
            limiter: Arc::clone(&self.limiter),
        }
    }
}

impl<S, C: Clock> RateLimitService<S, C> {
    /// The shared limiter.
    pub fn limiter(&self) -> &Arc<RateLimiter<C>> {
        &self.limiter
    }

    /// The wrapped service.
    pub fn get_ref(&self) -> &S {
        &self.inner
    }
}

impl<S, Req, C: Clock> Service<Req> for RateLimitService<S, C>
where
    S: Service<Req>,
    S::Error: From<RateLimited>,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = RateLimitResponse<S::Future>;

    #[inline]
    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    #[inline]
    fn call(&mut self, request: Req) -> Self::Future {
        match self.limiter.try_acquire() {
            Ok(()) => RateLimitResponse::admitted(self.inner.call(request)),
            Err(limited) => RateLimitResponse::refused(limited),
        }
    }
}

pin_project! {
    /// The response future of [`RateLimitService`] and
    /// [`KeyedRateLimitService`](super::KeyedRateLimitService).
    #[must_use = "futures do nothing unless polled"]
    pub struct RateLimitResponse<F> {
        refused: Option<RateLimited>,
        #[pin]
        call: Option<F>,
    }
}

impl<F> RateLimitResponse<F> {
    #[inline]
    pub(super) fn admitted(call: F) -> Self {
        RateLimitResponse {
            refused: None,
            call: Some(call),
        }
    }

    #[inline]
    pub(super) fn refused(limited: RateLimited) -> Self {
        RateLimitResponse {
            refused: Some(limited),
            call: None,
        }
    }
}

impl<F, T, E> Future for RateLimitResponse<F>
where
    F: Future<Output = Result<T, E>>,
    E: From<RateLimited>,
{
    type Output = Result<T, E>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        if let Some(limited) = this.refused.take() {
            return Poll::Ready(Err(E::from(limited)));
        }
        match this.call.as_pin_mut() {
            Some(call) => call.poll(cx),
            None => panic!("RateLimitResponse polled after completion"),
        }
    }
}
