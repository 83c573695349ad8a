//! [`CircuitBreakerLayer`]: a tower middleware that sheds calls while the breaker is open.

use core::task::{Context, Poll};
use std::sync::Arc;

use tower_layer::Layer;
use tower_service::Service;

use crate::breaker::{
    CallError, CallFuture, CircuitBreaker, Classify, ErrorsAreFailures, HeldPermit, OwnedPermit,
    Permit, Rejected,
};
use crate::clock::{Clock, CoarseClock};

/// How a service reaches its breaker: `Arc<CircuitBreaker>` (from a registry, the usual case)
/// or `&'static CircuitBreaker` (a `static` or leaked breaker).
///
/// The response future must be `'static`, so it holds what this hands out: with an `Arc`, an
/// [`OwnedPermit`] (one reference-count increment and decrement per call, a write to a line
/// every thread shares); with a `&'static`, a plain [`Permit`], as cheap as the bare breaker.
///
/// A registry breaker lives behind an `Arc`; for a service that keeps it for the life of the
/// process, leak one clone to get the `&'static`:
///
/// ```
/// use resilience_core::BreakerRegistry;
/// use resilience_core::tower::CircuitBreakerLayer;
///
/// let registry = BreakerRegistry::new();
/// let payments: &'static _ = Box::leak(Box::new(registry.breaker("payments")?));
/// let layer = CircuitBreakerLayer::new(&**payments);
/// assert_eq!(layer.breaker().name(), "payments");
/// # Ok::<(), resilience_core::RegistryError>(())
/// ```
pub trait BreakerHandle: Clone {
    /// The permit a call holds.
    type Permit: HeldPermit;
    /// Asks the breaker for a permit.
    ///
    /// # Errors
    ///
    /// [`Rejected`] when the breaker refuses the call.
    fn acquire(&self) -> Result<Self::Permit, Rejected>;
}

impl<C: Clock> BreakerHandle for Arc<CircuitBreaker<C>> {
    type Permit = OwnedPermit<C>;

    #[inline(always)]
    fn acquire(&self) -> Result<OwnedPermit<C>, Rejected> {
        self.try_acquire_owned()
    }
}

impl<C: Clock> BreakerHandle for &'static CircuitBreaker<C> {
    type Permit = Permit<'static, C>;

    #[inline(always)]
    fn acquire(&self) -> Result<Permit<'static, C>, Rejected> {
        self.try_acquire()
    }
}

/// The future of a [`CircuitBreakerService`]: the inner response, or
/// [`CallError::Rejected`] at once when the breaker refused the call.
pub type ResponseFuture<F, K = ErrorsAreFailures, B = Arc<CircuitBreaker<CoarseClock>>> =
    CallFuture<F, <B as BreakerHandle>::Permit, K>;

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
#[derive(Clone, Debug)]
pub struct CircuitBreakerLayer<B = Arc<CircuitBreaker<CoarseClock>>, K = ErrorsAreFailures> {
    breaker: B,
    classify: K,
}

impl<B: BreakerHandle> CircuitBreakerLayer<B, ErrorsAreFailures> {
    /// A layer guarded by `breaker` (an `Arc<CircuitBreaker>` or a `&'static CircuitBreaker`),
    /// counting `Ok` as success and `Err` as failure.
    pub fn new(breaker: B) -> Self {
        CircuitBreakerLayer {
            breaker,
            classify: ErrorsAreFailures,
        }
    }
}

impl<B, K> CircuitBreakerLayer<B, K> {
    /// Counts results as `classify` says: which responses and errors are failures, which are
    /// ignored (a closure `Fn(&Result<Response, Error>) -> Outcome`, or any [`Classify`]).
    pub fn classify<K2>(self, classify: K2) -> CircuitBreakerLayer<B, K2> {
        CircuitBreakerLayer {
            breaker: self.breaker,
            classify,
        }
    }

    /// The guarding breaker.
    pub fn breaker(&self) -> &B {
        &self.breaker
    }
}

impl<S, B: Clone, K: Clone> Layer<S> for CircuitBreakerLayer<B, K> {
    type Service = CircuitBreakerService<S, B, K>;

    fn layer(&self, inner: S) -> Self::Service {
        CircuitBreakerService {
            inner,
            breaker: self.breaker.clone(),
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
#[derive(Clone, Debug)]
pub struct CircuitBreakerService<S, B = Arc<CircuitBreaker<CoarseClock>>, K = ErrorsAreFailures> {
    inner: S,
    breaker: B,
    classify: K,
}

impl<S, B, K> CircuitBreakerService<S, B, K> {
    /// The guarding breaker.
    pub fn breaker(&self) -> &B {
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

impl<S, Req, B, K> Service<Req> for CircuitBreakerService<S, B, K>
where
    S: Service<Req>,
    B: BreakerHandle,
    K: Classify<S::Response, S::Error> + Clone,
{
    type Response = S::Response;
    type Error = CallError<S::Error>;
    type Future = ResponseFuture<S::Future, K, B>;

    #[inline]
    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx).map_err(CallError::Inner)
    }

    #[inline]
    fn call(&mut self, request: Req) -> Self::Future {
        CallFuture::start(self.breaker.acquire(), self.classify.clone(), || {
            self.inner.call(request)
        })
    }
}
