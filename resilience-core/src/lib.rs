//! Lock-free circuit breakers for the request path: no allocation, lock, syscall or OS clock
//! read per call.
//!
//! ```
//! use resilience_core::{CircuitBreaker, State};
//!
//! let breaker = CircuitBreaker::builder("payments").fail_max(5).build()?;
//! match breaker.try_acquire() {
//!     Ok(permit) => permit.success(), // or .failure(), or just drop it
//!     Err(rejected) => eprintln!("shed load: {rejected}"),
//! }
//! assert_eq!(breaker.state(), State::Closed);
//! # Ok::<(), resilience_core::ConfigError>(())
//! ```
//!
//! # What is inside
//!
//! * [`CircuitBreaker`]: CLOSED / OPEN / HALF_OPEN plus FORCED_OPEN and DISABLED, tripping on
//!   consecutive failures ([`fail_max`](CircuitBreakerBuilder::fail_max)) or a failure rate over
//!   a count- or time-based [`SlidingWindow`], with growing, jittered OPEN times.
//! * [`Permit`]: one admitted call; report [`success`](Permit::success),
//!   [`failure`](Permit::failure) or [`ignore`](Permit::ignore), or drop it.
//! * [`Rejected`]: a small `Copy` error with the [`RejectReason`] and when to retry.
//! * [`CircuitBreaker::call_async`]: async calls through a breaker ([`CallFuture`]); a dropped
//!   future releases its permit, a panic counts as a failure. [`OwnedPermit`] for `'static`
//!   futures.
//! * [`BreakerRegistry`]: named breakers, lock-free lookup, first configuration wins.
//! * [`EventChannel`]: bounded lock-free channel of [`BreakerEvent`]s for the control plane.
//! * [`Bulkhead`](bulkhead::Bulkhead) ([`bulkhead`]): a concurrency limit in one atomic word
//!   (limit and calls in flight together), refusing at once when full; the slot comes back when
//!   the permit drops, so panics and cancelled futures free theirs too.
//! * [`RateLimiter`](rate_limit::RateLimiter) ([`rate_limit`]): GCRA in one atomic word (the
//!   theoretical arrival time), a burst and a rate, refusals saying when to retry; and
//!   [`KeyedRateLimiter`](rate_limit::KeyedRateLimiter), a limit per key in a bounded table.
//! * [`Retry`](retry::Retry) ([`retry`]): jittered exponential backoff (none, full, equal,
//!   decorrelated), a classifier, deadlines, and a [`RetryBudget`](retry::RetryBudget) shared
//!   by callers so retries cannot multiply an outage's load.
//! * [`TimeLimiter`](timeout::TimeLimiter) and [`Deadline`](timeout::Deadline) ([`timeout`]):
//!   async calls cut off at a limit on the caller's timer, the deadline handed to the call.
//! * [`Pipeline`](pipeline::Pipeline) ([`pipeline`]): fallback → retry → time limit → breaker →
//!   bulkhead → rate limit → chaos in one documented order, sync and async; refusals are never
//!   retried, and the fallback answers them and the call that trips the breaker (the seed's
//!   `with_circuit_breaker`).
//! * [`FaultTable`] ([`chaos`]): armed chaos scenarios checked per call with
//!   [`check`](FaultTable::check), with hard safety bounds and an emergency stop.
//! * [`MeterRing`] ([`meter`]): fixed-size [`UsageEvent`]s handed to the control plane's flusher;
//!   `record` never blocks. In memory, or in a file ([`MeterRing::open`]) where accepted events
//!   survive `kill -9` and come back with their ids at the next open.
//! * [`CoarseClock`] and [`Ticker`]: time as one atomic load; [`ManualClock`] for tests.
//! * [`GovernanceHash`]: the 16-hex-digit tag every event, error and report carries.
//!
//! # Guarantees
//!
//! On every call path (`try_acquire`, the outcome methods, `call`, `Bulkhead::try_acquire`,
//! `RateLimiter::try_acquire`, `Retry::call`, `TimeLimiter::call_async`, `Pipeline::call`,
//! `FaultTable::check`, `MeterRing::record`): no heap allocation, no lock, no syscall, and no
//! OS clock read (time is one atomic load of the [`CoarseClock`]), unless the
//! `slow-call-timing` feature is used with a slow-call policy. Waiting is the caller's choice
//! and on the caller's timer: a retry's backoff, a bounded bulkhead wait, injected latency
//! (the sync paths sleep the thread only then), and a time limit's timer, made only if the
//! call has to wait. CLOSED admission is one atomic load; OPEN rejection
//! one atomic load plus one clock load; transitions one CAS; a chaos check with nothing armed one
//! atomic load; bulkhead admission one CAS and its release one `fetch_sub`; rate-limiter
//! admission one clock load and one CAS; a retry budget's deposit one load when full, its
//! withdrawal one CAS. Proofs: the
//! `no_alloc` test (counting allocator), loom models of every lock-free protocol (state word,
//! half-open permits, ring, seqlocked fault slots, the bulkhead's and the rate limiter's words,
//! the retry budget's balance),
//! and fuzz targets checking the breaker, the fault table, the meter ring, the bulkhead and the
//! rate limiter against reference models. Figures and limits are in [`docs`].
//!
//! # Features
//!
//! * `slow-call-timing`: per-call timing and a slow-call-rate trip policy (the one per-call
//!   clock read).
//! * `tower`: [`tower`] middleware: `CircuitBreakerLayer`, `ChaosLayer`, `MeteringLayer`,
//!   `BulkheadLayer`, `RateLimitLayer`, `KeyedRateLimitLayer`, `RetryLayer` and `TimeLimitLayer`
//!   (runtime-agnostic; injected latency waits on a timer you pass in).
//! * `test-util`: [`ManualClock`] and the `testing` reference-model drivers (used by the fuzz
//!   targets and the corpus-replay tests).
#![cfg_attr(docsrs, feature(doc_cfg))]
#![deny(unsafe_code)]
#![warn(missing_docs)]

mod breaker;
pub mod bulkhead;
pub mod chaos;
mod clock;
pub mod docs;
mod error;
mod event;
mod governance;
#[cfg(all(test, resilience_loom))]
mod loom_support;
pub mod meter;
pub mod pipeline;
pub mod rate_limit;
pub mod retry;
mod ring;
mod stats;
mod sync;
#[cfg(feature = "test-util")]
#[cfg_attr(docsrs, doc(cfg(feature = "test-util")))]
pub mod testing;
pub mod timeout;
#[cfg(feature = "tower")]
#[cfg_attr(docsrs, doc(cfg(feature = "tower")))]
pub mod tower;

#[cfg(feature = "slow-call-timing")]
pub use breaker::SlowCallPolicy;
pub use breaker::config;
pub use breaker::{
    BreakerConfig, BreakerConfigBuilder, BreakerId, BreakerRegistry, BreakerSnapshot, CallError,
    CallFuture, CallTotals, CircuitBreaker, CircuitBreakerBuilder, Classify, ErrorsAreFailures,
    ForcedOpen, HeldPermit, Outcome, OwnedPermit, Permit, RegistryError, RejectReason, Rejected,
    SlidingWindow, State, WindowCounts,
};
pub use chaos::{ChaosPoint, Fault, FaultTable};
#[cfg(any(test, feature = "test-util"))]
pub use clock::ManualClock;
pub use clock::{Clock, ClockError, CoarseClock, Nanos, Ticker};
pub use error::ConfigError;
pub use event::{BreakerEvent, EventChannel};
pub use governance::{GovernanceHash, GovernanceMismatch, Governed, HashParseError};
pub use meter::{MeterRing, UsageEvent};

/// The workspace README's examples, compiled and run as doc-tests.
#[cfg(doctest)]
#[doc = include_str!("../../README.md")]
pub struct ReadmeDoctests;
