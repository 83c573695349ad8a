//! [`Pipeline`]: the policies composed in one documented order, for sync and async calls.
//!
//! From the outside in: **fallback → retry → time limit → circuit breaker → bulkhead → rate
//! limit → chaos → your call**. Every policy is optional. The order is the one Resilience4j
//! and Polly recommend: the retry sees each attempt's outcome after the breaker and the
//! limits have had their say, so a refusal (open breaker, full bulkhead, rate limited) is
//! never retried; the time limit bounds one attempt and counts as the breaker's failure; chaos
//! sits innermost so the breaker sees injected faults as the dependency's.
//!
//! ```
//! use std::{sync::Arc, time::Duration};
//! use resilience_core::{CircuitBreaker, bulkhead::Bulkhead, pipeline::Pipeline, retry::{Backoff, Retry}};
//!
//! let pipeline = Pipeline::builder()
//!     .retry(Retry::builder("db").backoff(Backoff::constant(Duration::from_millis(1))).build()?)
//!     .breaker(CircuitBreaker::builder("db").fail_max(5).build()?)
//!     .bulkhead(Bulkhead::builder("db").max_concurrent(32).build()?)
//!     .build();
//! let mut calls = 0;
//! let rows = pipeline.call(|_attempt| {
//!     calls += 1;
//!     if calls == 1 { Err("connection reset") } else { Ok(12) }
//! });
//! assert_eq!(rows, Ok(12));
//! // The seed's `with_circuit_breaker(service, fallback)`: the fallback answers refusals
//! // (and the call that opens the breaker).
//! let cached = pipeline.call_or(|_| Err::<u32, _>("down"), |_refused| 0);
//! # let _ = cached;
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

mod call;
mod error;
mod future;

use core::fmt;
use std::sync::Arc;

pub use error::{FallbackOn, PipelineError, Refusal};
pub use future::{Fallback, NoFallback, PipelineFuture};

use crate::breaker::CircuitBreaker;
use crate::bulkhead::Bulkhead;
use crate::chaos::{ChaosPoint, FaultTable};
use crate::clock::{Clock, CoarseClock};
use crate::rate_limit::RateLimiter;
use crate::retry::Retry;
use crate::timeout::TimeLimiter;

/// Policies applied to a call in a fixed order; see the [module documentation](self).
///
/// Cloning is cheap: the policies are shared (`Arc`), so clones count into the same breaker,
/// bulkhead, limiter and budget.
pub struct Pipeline<C: Clock = CoarseClock> {
    fallback_on: FallbackOn,
    retry: Option<Arc<Retry<C>>>,
    time_limiter: Option<Arc<TimeLimiter<C>>>,
    breaker: Option<Arc<CircuitBreaker<C>>>,
    bulkhead: Option<Arc<Bulkhead>>,
    rate_limiter: Option<Arc<RateLimiter<C>>>,
    chaos: Option<(Arc<FaultTable<C>>, ChaosPoint)>,
}

impl Pipeline {
    /// An empty pipeline on the global [`CoarseClock`]; add the policies you need.
    pub fn builder() -> PipelineBuilder {
        PipelineBuilder::on_clock()
    }

    /// An empty pipeline whose policies run on clocks of type `C` (e.g. a
    /// [`ManualClock`](crate::ManualClock) in tests); `clock` only names the type.
    pub fn builder_on<C: Clock>(clock: C) -> PipelineBuilder<C> {
        drop(clock);
        PipelineBuilder::on_clock()
    }
}

impl<C: Clock> Clone for Pipeline<C> {
    fn clone(&self) -> Self {
        Pipeline {
            fallback_on: self.fallback_on,
            retry: self.retry.clone(),
            time_limiter: self.time_limiter.clone(),
            breaker: self.breaker.clone(),
            bulkhead: self.bulkhead.clone(),
            rate_limiter: self.rate_limiter.clone(),
            chaos: self.chaos.clone(),
        }
    }
}

impl<C: Clock> Pipeline<C> {
    /// The retry policy, if any.
    pub fn retry(&self) -> Option<&Arc<Retry<C>>> {
        self.retry.as_ref()
    }

    /// The time limiter, if any.
    pub fn time_limiter(&self) -> Option<&Arc<TimeLimiter<C>>> {
        self.time_limiter.as_ref()
    }

    /// The circuit breaker, if any.
    pub fn breaker(&self) -> Option<&Arc<CircuitBreaker<C>>> {
        self.breaker.as_ref()
    }

    /// The bulkhead, if any.
    pub fn bulkhead(&self) -> Option<&Arc<Bulkhead>> {
        self.bulkhead.as_ref()
    }

    /// The rate limiter, if any.
    pub fn rate_limiter(&self) -> Option<&Arc<RateLimiter<C>>> {
        self.rate_limiter.as_ref()
    }

    /// When [`call_or`](Self::call_or) uses its fallback.
    pub fn fallback_on(&self) -> FallbackOn {
        self.fallback_on
    }
}

impl<C: Clock> fmt::Debug for Pipeline<C> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Pipeline")
            .field("fallback_on", &self.fallback_on)
            .field("retry", &self.retry.as_ref().map(|r| r.name()))
            .field(
                "time_limiter",
                &self.time_limiter.as_ref().map(|t| t.name()),
            )
            .field("breaker", &self.breaker.as_ref().map(|b| b.name()))
            .field("bulkhead", &self.bulkhead.as_ref().map(|b| b.name()))
            .field(
                "rate_limiter",
                &self.rate_limiter.as_ref().map(|r| r.name()),
            )
            .field("chaos", &self.chaos.as_ref().map(|(_, p)| *p))
            .finish()
    }
}

/// Assembles a [`Pipeline`]. Each method takes the policy itself or an `Arc` of it (to share
/// it with other pipelines or with the control plane's registry).
#[must_use = "a builder does nothing until build() is called"]
pub struct PipelineBuilder<C: Clock = CoarseClock> {
    inner: Pipeline<C>,
}

impl<C: Clock> fmt::Debug for PipelineBuilder<C> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.inner.fmt(f)
    }
}

impl<C: Clock> PipelineBuilder<C> {
    fn on_clock() -> Self {
        PipelineBuilder {
            inner: Pipeline {
                fallback_on: FallbackOn::Rejection,
                retry: None,
                time_limiter: None,
                breaker: None,
                bulkhead: None,
                rate_limiter: None,
                chaos: None,
            },
        }
    }

    /// When the fallback of [`Pipeline::call_or`] answers (default
    /// [`FallbackOn::Rejection`], the seed's `with_circuit_breaker`).
    pub fn fallback_on(mut self, on: FallbackOn) -> Self {
        self.inner.fallback_on = on;
        self
    }

    /// Retries failed attempts (never refusals).
    pub fn retry(mut self, retry: impl Into<Arc<Retry<C>>>) -> Self {
        self.inner.retry = Some(retry.into());
        self
    }

    /// Bounds each async attempt (the sync [`Pipeline::call`] cannot preempt and ignores it).
    pub fn time_limiter(mut self, limiter: impl Into<Arc<TimeLimiter<C>>>) -> Self {
        self.inner.time_limiter = Some(limiter.into());
        self
    }

    /// A circuit breaker around each attempt.
    pub fn breaker(mut self, breaker: impl Into<Arc<CircuitBreaker<C>>>) -> Self {
        self.inner.breaker = Some(breaker.into());
        self
    }

    /// A concurrency limit on attempts.
    pub fn bulkhead(mut self, bulkhead: impl Into<Arc<Bulkhead>>) -> Self {
        self.inner.bulkhead = Some(bulkhead.into());
        self
    }

    /// A rate limit on attempts.
    pub fn rate_limiter(mut self, limiter: impl Into<Arc<RateLimiter<C>>>) -> Self {
        self.inner.rate_limiter = Some(limiter.into());
        self
    }

    /// Chaos checked at `point` of `table` before each attempt.
    pub fn chaos(mut self, table: Arc<FaultTable<C>>, point: ChaosPoint) -> Self {
        self.inner.chaos = Some((table, point));
        self
    }

    /// The pipeline.
    pub fn build(self) -> Pipeline<C> {
        self.inner
    }
}
