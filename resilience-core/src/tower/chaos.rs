//! [`ChaosLayer`]: a tower middleware that applies the chaos scenarios armed at one point.

use core::fmt;
use core::future::Future;
use core::pin::Pin;
use core::task::{Context, Poll, ready};
use core::time::Duration;
use std::sync::Arc;

use pin_project_lite::pin_project;
use tower_layer::Layer;
use tower_service::Service;

use crate::chaos::{ChaosPoint, Fault, FaultTable};
use crate::clock::{Clock, CoarseClock};

/// A timer for injected latency and timeouts, so the data plane stays runtime-agnostic.
///
/// Every `Fn(Duration) -> impl Future<Output = ()>` is one: pass `tokio::time::sleep`.
pub trait Sleep {
    /// The timer's future.
    type Future: Future<Output = ()>;
    /// A future that completes after `duration`.
    fn sleep(&self, duration: Duration) -> Self::Future;
}

impl<F, Fut> Sleep for F
where
    F: Fn(Duration) -> Fut,
    Fut: Future<Output = ()>,
{
    type Future = Fut;

    fn sleep(&self, duration: Duration) -> Fut {
        self(duration)
    }
}

/// The error of a [`ChaosService`]: a fault chaos injected, or the inner service's own error.
#[derive(Clone, Debug, PartialEq)]
pub enum ChaosError<E> {
    /// Chaos failed this call: [`Fault::Error`] (map the code to your own error),
    /// [`Fault::Timeout`] (after its delay), [`Fault::BreakerOpen`], [`Fault::Partition`] or
    /// [`Fault::ResourceExhausted`]. The inner service was not called.
    Injected(Fault),
    /// The inner service ran and failed.
    Inner(E),
}

impl<E> crate::Governed for ChaosError<E> {
    fn governance(&self) -> crate::GovernanceHash {
        crate::GovernanceHash::for_process()
    }
}

impl<E> ChaosError<E> {
    /// The inner service's error, if it ran.
    pub fn into_inner(self) -> Option<E> {
        match self {
            ChaosError::Inner(e) => Some(e),
            ChaosError::Injected(_) => None,
        }
    }

    /// The injected fault, if chaos failed the call.
    pub fn injected(&self) -> Option<Fault> {
        match self {
            ChaosError::Injected(fault) => Some(*fault),
            ChaosError::Inner(_) => None,
        }
    }
}

impl<E: fmt::Display> fmt::Display for ChaosError<E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ChaosError::Injected(Fault::Error(code)) => {
                write!(f, "chaos injected error code {}", code.0)
            }
            ChaosError::Injected(Fault::Timeout(after)) => {
                write!(f, "chaos injected a timeout after {after:?}")
            }
            ChaosError::Injected(Fault::ResourceExhausted(resource)) => {
                write!(f, "chaos exhausted {resource}")
            }
            ChaosError::Injected(fault) => write!(f, "chaos injected {}", fault.kind()),
            ChaosError::Inner(e) => e.fmt(f),
        }
    }
}

impl<E: std::error::Error + 'static> std::error::Error for ChaosError<E> {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            ChaosError::Injected(_) => None,
            ChaosError::Inner(e) => Some(e),
        }
    }
}

/// Wraps services in a [`ChaosService`] that checks `point` in `table` before every call.
///
/// With nothing armed the check is one atomic load and the call goes straight through.
/// Latency delays the call (then makes it); a timeout fails it after its delay; every other
/// fault fails it at once with [`ChaosError::Injected`]. Resolve the point once, when building
/// the stack, with [`FaultTable::point`].
#[derive(Debug)]
pub struct ChaosLayer<T, C: Clock = CoarseClock> {
    table: Arc<FaultTable<C>>,
    point: ChaosPoint,
    sleep: T,
}

impl<T, C: Clock> ChaosLayer<T, C> {
    /// A layer checking `point` in `table`, waiting with `sleep` (e.g. `tokio::time::sleep`).
    pub fn new(table: Arc<FaultTable<C>>, point: ChaosPoint, sleep: T) -> Self {
        ChaosLayer {
            table,
            point,
            sleep,
        }
    }
}

impl<T: Clone, C: Clock> Clone for ChaosLayer<T, C> {
    fn clone(&self) -> Self {
        ChaosLayer {
            table: Arc::clone(&self.table),
            point: self.point,
            sleep: self.sleep.clone(),
        }
    }
}

impl<S, T: Clone, C: Clock> Layer<S> for ChaosLayer<T, C> {
    type Service = ChaosService<S, T, C>;

    fn layer(&self, inner: S) -> Self::Service {
        ChaosService {
            inner,
            table: Arc::clone(&self.table),
            point: self.point,
            sleep: self.sleep.clone(),
        }
    }
}

/// A service that chaos can slow down or fail; built by [`ChaosLayer`].
///
/// `Clone` is required of the inner service so that a delayed call can be made later with a
/// service that was ready (the usual tower pattern: the ready one moves into the future, a clone
/// stays behind).
#[derive(Debug)]
pub struct ChaosService<S, T, C: Clock = CoarseClock> {
    inner: S,
    table: Arc<FaultTable<C>>,
    point: ChaosPoint,
    sleep: T,
}

impl<S: Clone, T: Clone, C: Clock> Clone for ChaosService<S, T, C> {
    fn clone(&self) -> Self {
        ChaosService {
            inner: self.inner.clone(),
            table: Arc::clone(&self.table),
            point: self.point,
            sleep: self.sleep.clone(),
        }
    }
}

impl<S, Req, T, C> Service<Req> for ChaosService<S, T, C>
where
    S: Service<Req> + Clone,
    T: Sleep,
    C: Clock,
{
    type Response = S::Response;
    type Error = ChaosError<S::Error>;
    type Future = ChaosFuture<S, Req, T::Future>;

    #[inline]
    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx).map_err(ChaosError::Inner)
    }

    #[inline]
    fn call(&mut self, request: Req) -> Self::Future {
        let kind = match self.table.check(self.point) {
            None => Kind::Call {
                call: self.inner.call(request),
            },
            Some(Fault::Latency(delay)) => {
                let fresh = self.inner.clone();
                let ready = core::mem::replace(&mut self.inner, fresh);
                Kind::Delay {
                    sleep: self.sleep.sleep(delay),
                    then: Some((ready, request)),
                }
            }
            Some(fault @ Fault::Timeout(after)) => Kind::FailAfter {
                sleep: self.sleep.sleep(after),
                fault,
            },
            Some(fault) => Kind::Fail { fault: Some(fault) },
        };
        ChaosFuture { kind }
    }
}

pin_project! {
    /// The future of a [`ChaosService`].
    #[must_use = "futures do nothing unless polled"]
    pub struct ChaosFuture<S: Service<Req>, Req, W> {
        #[pin]
        kind: Kind<S, Req, W>,
    }
}

pin_project! {
    #[project = KindProj]
    enum Kind<S: Service<Req>, Req, W> {
        Call { #[pin] call: S::Future },
        Delay { #[pin] sleep: W, then: Option<(S, Req)> },
        FailAfter { #[pin] sleep: W, fault: Fault },
        Fail { fault: Option<Fault> },
    }
}

impl<S, Req, W> Future for ChaosFuture<S, Req, W>
where
    S: Service<Req>,
    W: Future<Output = ()>,
{
    type Output = Result<S::Response, ChaosError<S::Error>>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let mut kind = self.project().kind;
        loop {
            match kind.as_mut().project() {
                KindProj::Call { call } => return call.poll(cx).map_err(ChaosError::Inner),
                KindProj::Delay { sleep, then } => {
                    ready!(sleep.poll(cx));
                    let Some((mut service, request)) = then.take() else {
                        panic!("ChaosFuture polled after completion");
                    };
                    let call = service.call(request);
                    kind.set(Kind::Call { call });
                }
                KindProj::FailAfter { sleep, fault } => {
                    ready!(sleep.poll(cx));
                    return Poll::Ready(Err(ChaosError::Injected(*fault)));
                }
                KindProj::Fail { fault } => {
                    let Some(fault) = fault.take() else {
                        panic!("ChaosFuture polled after completion");
                    };
                    return Poll::Ready(Err(ChaosError::Injected(fault)));
                }
            }
        }
    }
}

impl<S: Service<Req>, Req, W> fmt::Debug for ChaosFuture<S, Req, W> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ChaosFuture").finish_non_exhaustive()
    }
}
