//! [`KeyedRateLimitLayer`]: a tower middleware that gives each key of a request (tenant, API
//! key, client address) its own rate limit.

use core::task::{Context, Poll};
use std::sync::Arc;

use tower_layer::Layer;
use tower_service::Service;

use super::RateLimitResponse;
use crate::clock::{Clock, CoarseClock};
use crate::rate_limit::{KeyedRateLimiter, RateLimited};

/// Wraps services in a [`KeyedRateLimitService`]: `key` reads a request's key as a
/// [`key_hash`](crate::rate_limit::key_hash) (`None`: the request is not limited), and requests
/// beyond their key's rate fail at once with [`RateLimited`] converted into the service's error
/// type (`E: From<RateLimited>`; a `tower::BoxError` takes it as is).
///
/// # Examples
///
/// ```
/// use std::{sync::Arc, time::Duration};
/// use resilience_core::rate_limit::{KeyedRateLimiter, RateLimited, key_hash};
/// use resilience_core::tower::KeyedRateLimitLayer;
/// use tower::{BoxError, Service, ServiceBuilder, ServiceExt, service_fn};
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), BoxError> {
/// // Requests are (tenant, payload); each tenant gets one call a minute.
/// let per_tenant = Arc::new(
///     KeyedRateLimiter::builder("tenants").rate(1, Duration::from_secs(60)).build()?,
/// );
/// let mut service = ServiceBuilder::new()
///     .layer(KeyedRateLimitLayer::new(per_tenant, |r: &(&str, u32)| Some(key_hash(r.0))))
///     .service(service_fn(|(_, n): (&str, u32)| async move { Ok::<_, BoxError>(n) }));
/// assert_eq!(service.ready().await?.call(("acme", 1)).await?, 1);
/// assert_eq!(service.ready().await?.call(("globex", 2)).await?, 2);
/// let again = service.ready().await?.call(("acme", 3)).await.unwrap_err();
/// assert!(again.downcast_ref::<RateLimited>().is_some());
/// # Ok(()) }
/// ```
#[derive(Debug)]
pub struct KeyedRateLimitLayer<F, C: Clock = CoarseClock> {
    limiter: Arc<KeyedRateLimiter<C>>,
    key: F,
}

impl<F: Clone, C: Clock> Clone for KeyedRateLimitLayer<F, C> {
    fn clone(&self) -> Self {
        KeyedRateLimitLayer {
            limiter: Arc::clone(&self.limiter),
            key: self.key.clone(),
        }
    }
}

impl<F, C: Clock> KeyedRateLimitLayer<F, C> {
    /// A layer sharing `limiter` between every service it builds, keying requests with `key`.
    pub fn new(limiter: Arc<KeyedRateLimiter<C>>, key: F) -> Self {
        KeyedRateLimitLayer { limiter, key }
    }

    /// The shared limiter.
    pub fn limiter(&self) -> &Arc<KeyedRateLimiter<C>> {
        &self.limiter
    }
}

impl<S, F: Clone, C: Clock> Layer<S> for KeyedRateLimitLayer<F, C> {
    type Service = KeyedRateLimitService<S, F, C>;

    fn layer(&self, inner: S) -> Self::Service {
        KeyedRateLimitService {
            inner,
            limiter: Arc::clone(&self.limiter),
            key: self.key.clone(),
        }
    }
}

/// A service behind a rate limit per key; built by [`KeyedRateLimitLayer`].
#[derive(Debug)]
pub struct KeyedRateLimitService<S, F, C: Clock = CoarseClock> {
    inner: S,
    limiter: Arc<KeyedRateLimiter<C>>,
    key: F,
}

impl<S: Clone, F: Clone, C: Clock> Clone for KeyedRateLimitService<S, F, C> {
    fn clone(&self) -> Self {
        KeyedRateLimitService {
            inner: self.inner.clone(),
            limiter: Arc::clone(&self.limiter),
            key: self.key.clone(),
        }
    }
}

impl<S, F, C: Clock> KeyedRateLimitService<S, F, C> {
    /// The shared limiter.
    pub fn limiter(&self) -> &Arc<KeyedRateLimiter<C>> {
        &self.limiter
    }

    /// The wrapped service.
    pub fn get_ref(&self) -> &S {
        &self.inner
    }
}

impl<S, F, Req, C: Clock> Service<Req> for KeyedRateLimitService<S, F, C>
where
    S: Service<Req>,
    S::Error: From<RateLimited>,
    F: Fn(&Req) -> Option<u64>,
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
        let admitted = match (self.key)(&request) {
            Some(hash) => self.limiter.try_acquire_hashed(hash),
            None => Ok(()),
        };
        match admitted {
            Ok(()) => RateLimitResponse::admitted(self.inner.call(request)),
            Err(limited) => RateLimitResponse::refused(limited),
        }
    }
}
