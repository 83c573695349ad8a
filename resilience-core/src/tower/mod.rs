//! Tower middleware over the data plane (feature `tower`): [`CircuitBreakerLayer`],
//! [`ChaosLayer`], [`MeteringLayer`], [`BulkheadLayer`], [`RateLimitLayer`],
//! [`KeyedRateLimitLayer`], [`RetryLayer`] and [`TimeLimitLayer`].
//!
//! ```
//! use std::sync::Arc;
//! use resilience_core::tower::{ChaosLayer, CircuitBreakerLayer, MeteringLayer};
//! use resilience_core::{CircuitBreaker, FaultTable, MeterRing};
//! use tower::{ServiceBuilder, ServiceExt, service_fn};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let breaker = Arc::new(CircuitBreaker::builder("llm").fail_max(5).build()?);
//! let table = Arc::new(FaultTable::builder().build()?);
//! let ring = Arc::new(MeterRing::with_capacity(4096)?);
//! let point = table.point("llm")?;
//! // Requests are (tenant, prompt); the agent is this service.
//! type Ask = (&'static str, &'static str);
//! let service = ServiceBuilder::new()
//!     .layer(MeteringLayer::new(ring.clone(), |r: &Ask| Some(r.0), |_: &Ask| Some("summariser")))
//!     .layer(CircuitBreakerLayer::new(breaker))
//!     .layer(ChaosLayer::new(table, point, tokio::time::sleep))
//!     .service(service_fn(|(_, prompt): Ask| async move {
//!         Ok::<_, std::io::Error>(prompt.len())
//!     }));
//! assert_eq!(service.oneshot(("tenant-1", "summarise this")).await?, 14);
//! assert_eq!(ring.pending(), 1);
//! # Ok(())
//! # }
//! ```
//!
//! Order matters as it does for any tower stack. The usual one, outermost first, is the
//! [`Pipeline`](crate::pipeline::Pipeline)'s: metering (so shed and failed calls are billed
//! too, or put it inside the breaker to bill only admitted ones), retry (with a classifier that
//! does not retry refusals), time limit, breaker, bulkhead, rate limit, then chaos (so injected
//! faults count against the breaker, as real ones would). A fallback is axum's
//! `HandleErrorLayer` or tower's `map_result`.
//!
//! Each layer keeps the data plane's costs: admission is one atomic load when nothing is wrong,
//! and nothing is allocated per call. Cancellation is safe everywhere: a dropped response future
//! releases its breaker permit (freeing a HALF_OPEN slot at once) and still meters the request.
//! Errors stay typed: the breaker wraps the inner error in [`CallError`](crate::CallError),
//! chaos in [`ChaosError`]; metering passes errors through; the bulkhead and the rate limiter
//! convert their refusal into the service's own error (`E: From<BulkheadFull>`,
//! `E: From<RateLimited>`, which `tower::BoxError` satisfies), so they stack without nesting;
//! so does the time limit (`E: From<TimedOut>`). The retry passes the last error through.

mod breaker;
mod bulkhead;
mod chaos;
mod keyed_rate_limit;
mod metering;
mod rate_limit;
mod retry;
mod time_limit;

pub use breaker::{BreakerHandle, CircuitBreakerLayer, CircuitBreakerService, ResponseFuture};
pub use bulkhead::{BulkheadLayer, BulkheadResponse, BulkheadService};
pub use chaos::{ChaosError, ChaosFuture, ChaosLayer, ChaosService, Sleep};
pub use keyed_rate_limit::{KeyedRateLimitLayer, KeyedRateLimitService};
pub use metering::{
    CountTokens, LatencyClock, MeteringFuture, MeteringLayer, MeteringService, NoTokens,
};
pub use rate_limit::{RateLimitLayer, RateLimitResponse, RateLimitService};
pub use retry::{RetryLayer, RetryResponse, RetryService};
pub use time_limit::{TimeLimitLayer, TimeLimitResponse, TimeLimitService};
