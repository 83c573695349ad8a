//! [`CircuitBreakerLayer`]: a tower middleware that sheds calls while the breaker is open.

use core::task::{Context, Poll};
use std::sync::Arc;

use tower_layer::Layer;
use tower_service::Service;

use crate::breaker::{
    CallError, CallFuture, CircuitBreaker, Classify, ErrorsAreFailures, OwnedPermit,
};
use crate::clock::{Clock, CoarseClock};

/// The future of a [`CircuitBreakerService`]: the inner response, or
/// [`CallError::Rejected`] at once when the breaker refused the call.
pub type ResponseFuture<F, K = ErrorsAreFailures, C = CoarseClock> =
    CallFuture<F, OwnedPermit<C>, K>;

/// Wraps services in a [`CircuitBreakerService`] that asks `breaker` before every call.
///
/// # Examples
///
/// ```
/// use std::sync::Arc;
/// use resilience_core::tower::CircuitBreakerLayer;
/// use resilience_core::{CallError, CircuitBreaker, Outcome, State};
/// use tower::{Layer, ServiceExt, service_fn};
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let breaker = Arc::new(CircuitBreaker::builder("inventory").fail_max(1).build()?);
/// // The inner service answers with a status code. Count server errors only: a 404 says
/// // nothing about the dependency's health.
/// let layer = CircuitBreakerLayer::new(breaker.clone()).classify(
///     |r: &Result<u16, std::io::Error>| match r {
///         Ok(status) if *status >= 500 => Outcome::Failure,
///         Ok(_) => Outcome::Success,
///         Err(_) => Outcome::Failure,
///     },
/// );
/// let inventory = layer.layer(service_fn(|sku: u32| async move {
///     Ok::<u16, std::io::Error>(if sku == 0 { 404 } else { 503 })
/// }));
/// assert_eq!(inventory.clone().oneshot(0).await?, 404);
/// assert_eq!(breaker.state(), State::Closed);
/// assert_eq!(inventory.clone().oneshot(7).await?, 503);
/// assert_eq!(breaker.state(), State::Open);
/// let shed = inventory.oneshot(0).await;
/// assert!(matches!(shed, Err(CallError::Rejected(_))));
/// # Ok(())
/// # }
/// ```
#[derive(Debug)]
pub struct CircuitBreakerLayer<K = ErrorsAreFailures, C: Clock = CoarseClock> {
    breaker: Arc<CircuitBreaker<C>>,
    classify: K,
}

impl<C: Clock> CircuitBreakerLayer<ErrorsAreFailures, C> {
    /// A layer guarded by `breaker`, counting `Ok` as success and `Err` as failure.
    pub fn new(breaker: Arc<CircuitBreaker<C>>) -> Self {
        CircuitBreakerLayer {
            breaker,
            classify: ErrorsAreFailures,
        }
    }
}

impl<K, C: Clock> CircuitBreakerLayer<K, C> {
    /// Counts results as `classify` says: which responses and errors are failures, which are
    /// ignored (a closure `Fn(&Result<Response, Error>) -> Outcome`, or any [`Classify`]).
    pub fn classify<K2>(self, classify: K2) -> CircuitBreakerLayer<K2, C> {
        CircuitBreakerLayer {
            breaker: self.breaker,
            classify,
        }
    }

    /// The guarding breaker.
    pub fn breaker(&self) -> &Arc<CircuitBreaker<C>> {
        &self.breaker
    }
}

impl<K: Clone, C: Clock> Clone for CircuitBreakerLayer<K, C> {
    fn clone(&self) -> Self {
        CircuitBreakerLayer {
            breaker: Arc::clone(&self.breaker),
            classify: self.classify.clone(),
        }
    }
}

impl<S, K: Clone, C: Clock> Layer<S> for CircuitBreakerLayer<K, C> {
    type Service = CircuitBreakerService<S, K, C>;

    fn layer(&self, inner: S) -> Self::Service {
        CircuitBreakerService {
            inner,
            breaker: Arc::clone(&self.breaker),
            classify: self.classify.clone(),
        }
    }
}

/// A service guarded by a circuit breaker; built by [`CircuitBreakerLayer`].
///
/// Each call takes a permit first. Refused calls never reach the inner service and resolve to
/// [`CallError::Rejected`] (with the reason and when to retry); admitted ones report their
/// outcome through the layer's classifier when the response future completes. Dropping the
/// response future (client gone, timeout) releases the permit, so a cancelled HALF_OPEN probe
/// frees its slot at once; a panic in the inner future counts as a failure.
///
/// Readiness is the inner service's: the breaker is consulted in `call`, where it costs one
/// atomic load when CLOSED.
#[derive(Debug)]
pub struct CircuitBreakerService<S, K = ErrorsAreFailures, C: Clock = CoarseClock> {
    inner: S,
    breaker: Arc<CircuitBreaker<C>>,
    classify: K,
}

impl<S: Clone, K: Clone, C: Clock> Clone for CircuitBreakerService<S, K, C> {
    fn clone(&self) -> Self {
        CircuitBreakerService {
            inner: self.inner.clone(),
            breaker: Arc::clone(&self.breaker),
            classify: self.classify.clone(),
        }
    }
}

impl<S, K, C: Clock> CircuitBreakerService<S, K, C> {
    /// The guarding breaker.
    pub fn breaker(&self) -> &Arc<CircuitBreaker<C>> {
        &self.breaker
    }

    /// The wrapped service.
    pub fn get_ref(&self) -> &S {
        &self.inner
    }

    /// The wrapped service, consuming the guard.
    pub fn into_inner(self) -> S {
        self.inner
    }
}

impl<S, Req, K, C> Service<Req> for CircuitBreakerService<S, K, C>
where
    S: Service<Req>,
    K: Classify<S::Response, S::Error> + Clone,
    C: Clock,
{
    type Response = S::Response;
    type Error = CallError<S::Error>;
    type Future = ResponseFuture<S::Future, K, C>;

    #[inline]
    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx).map_err(CallError::Inner)
    }

    #[inline]
    fn call(&mut self, request: Req) -> Self::Future {
        match self.breaker.try_acquire_owned() {
            Ok(permit) => {
                CallFuture::admitted(self.inner.call(request), permit, self.classify.clone())
            }
            Err(rejected) => CallFuture::rejected(rejected, self.classify.clone()),
        }
    }
}
