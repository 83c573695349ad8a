//! [`BulkheadLayer`]: a tower middleware that refuses requests beyond a concurrency limit.

use core::future::Future;
use core::pin::Pin;
use core::task::{Context, Poll};
use std::sync::Arc;

use pin_project_lite::pin_project;
use tower_layer::Layer;
use tower_service::Service;

use crate::bulkhead::{Bulkhead, BulkheadFull, BulkheadFuture, OwnedBulkheadPermit};

/// Wraps services in a [`BulkheadService`]: at most the bulkhead's limit of requests run at
/// once, the rest fail at once with [`BulkheadFull`] converted into the service's error type
/// (`E: From<BulkheadFull>`; a `tower::BoxError` takes it as is), so layers stack without
/// nesting error types.
///
/// # Examples
///
/// ```
/// use std::sync::Arc;
/// use resilience_core::bulkhead::Bulkhead;
/// use resilience_core::tower::BulkheadLayer;
/// use tower::{BoxError, ServiceBuilder, ServiceExt, service_fn};
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), BoxError> {
/// let bulkhead = Arc::new(Bulkhead::builder("search").max_concurrent(16).build()?);
/// let service = ServiceBuilder::new()
///     .layer(BulkheadLayer::new(bulkhead))
///     .service(service_fn(|q: &'static str| async move { Ok::<_, BoxError>(q.len()) }));
/// assert_eq!(service.oneshot("rust").await?, 4);
/// # Ok(()) }
/// ```
#[derive(Clone, Debug)]
pub struct BulkheadLayer {
    bulkhead: Arc<Bulkhead>,
}

impl BulkheadLayer {
    /// A layer sharing `bulkhead` between every service it builds.
    pub fn new(bulkhead: Arc<Bulkhead>) -> Self {
        BulkheadLayer { bulkhead }
    }

    /// The shared bulkhead.
    pub fn bulkhead(&self) -> &Arc<Bulkhead> {
        &self.bulkhead
    }
}

impl<S> Layer<S> for BulkheadLayer {
    type Service = BulkheadService<S>;

    fn layer(&self, inner: S) -> Self::Service {
        BulkheadService {
            inner,
            bulkhead: Arc::clone(&self.bulkhead),
        }
    }
}

/// A service behind a bulkhead; built by [`BulkheadLayer`]. The slot is taken in `call` and
/// given back when the response future completes or is dropped.
#[derive(Clone, Debug)]
pub struct BulkheadService<S> {
    inner: S,
    bulkhead: Arc<Bulkhead>,
}

impl<S> BulkheadService<S> {
    /// The shared bulkhead.
    pub fn bulkhead(&self) -> &Arc<Bulkhead> {
        &self.bulkhead
    }

    /// The wrapped service.
    pub fn get_ref(&self) -> &S {
        &self.inner
    }
}

impl<S, Req> Service<Req> for BulkheadService<S>
where
    S: Service<Req>,
    S::Error: From<BulkheadFull>,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = BulkheadResponse<S::Future>;

    #[inline]
    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    #[inline]
    fn call(&mut self, request: Req) -> Self::Future {
        BulkheadResponse {
            call: BulkheadFuture::start(self.bulkhead.try_acquire_owned(), || {
                self.inner.call(request)
            }),
        }
    }
}

pin_project! {
    /// The response future of [`BulkheadService`]: holds the slot while the inner call runs
    /// (the same [`BulkheadFuture`] as `call_async`, with a refusal turned into `E`).
    #[must_use = "futures do nothing unless polled"]
    pub struct BulkheadResponse<F> {
        #[pin]
        call: BulkheadFuture<OwnedBulkheadPermit, F>,
    }
}

impl<F, T, E> Future for BulkheadResponse<F>
where
    F: Future<Output = Result<T, E>>,
    E: From<BulkheadFull>,
{
    type Output = Result<T, E>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        self.project()
            .call
            .poll(cx)
            .map(|admitted| admitted.unwrap_or_else(|full| Err(E::from(full))))
    }
}
