//! The control plane for [`resilience_core`]: the async loops that watch the data plane and act
//! on it, off the request path.
//!
//! ```
//! use std::sync::Arc;
//! use resilience_control::ControlPlane;
//! use resilience_core::BreakerRegistry;
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let registry = Arc::new(BreakerRegistry::new());
//! let control = ControlPlane::builder().registry(registry.clone()).spawn()?;
//! println!("health: {}", control.health().report().status);
//! control.shutdown().await?;
//! # Ok(()) }
//! ```
//!
//! # What is inside
//!
//! * [`ControlPlane`]: one builder wiring every loop, checking each component's governance tag
//!   at start-up, ticking the coarse clock, and one `shutdown()` that stops, drains and waits.
//! * [`health`]: [`HealthAggregator`](health::HealthAggregator) samples the breakers into a
//!   score and a status (HEALTHY / DEGRADED / CRITICAL), keeps a bounded history, notifies
//!   subscribers without ever waiting for them, and alerts (PagerDuty Events v2) on CRITICAL.
//! * [`recovery`]: [`RecoveryOrchestrator`](recovery::RecoveryOrchestrator) recovers open
//!   breakers with exponential, linear, immediate or manual strategies and a health check.
//! * [`chaos`]: [`ChaosEngine`](chaos::ChaosEngine) injects latency, errors, timeouts,
//!   partitions, forced-open breakers and real resource exhaustion into the data plane's fault
//!   table, within hard bounds (off unless enabled; durations, latencies, rates, levels, blast
//!   radius), with expiry, an emergency stop, scoped guards and a test helper.
//! * [`metering`]: [`MeteringFlusher`](metering::MeteringFlusher) drains the core's meter ring
//!   into Redis Streams (or JSONL), exactly once and in order, through a bounded disk spool
//!   when Redis is down, with a ledger that accounts for every event.
//! * [`fleet`]: many instances acting as one through Redis: fleet health with TTLs and silent
//!   instances, OPEN adopted on a quorum, one recovery probe per dependency at a time (fenced
//!   leases), fleet chaos and a fleet-wide emergency stop that late joiners obey
//!   ([`ControlPlaneBuilder::fleet`]).
//!
//! * [`ResilienceConfig`]: one TOML file plus the environment (which wins), turned into each
//!   component's validated settings; every bad value names the key or variable and the value.
//! * [`http`]: `/metrics` (OpenMetrics), `/health/{live,ready,startup}`, JSON views and chaos
//!   controls, on axum.
//! * The `resilience` binary (feature `cli`, on by default): `demo`, `serve`, `bench`,
//!   `chaos list|stop|resume` (one instance over HTTP, or `--fleet` through Redis).
//!
//! [`TokioClock`] puts the data plane on tokio's clock, so tests drive expiries, reset timeouts
//! and recovery delays together with `tokio::time::pause()`.
//!
//! Everything here runs on tokio; nothing here is on the request path. The data plane never
//! calls into this crate: it reads snapshots and drains the event channel.
#![forbid(unsafe_code)]

pub mod chaos;
mod clock;
mod config;
mod connect;
mod control_plane;
mod env;
mod error;
pub mod fleet;
pub mod health;
pub mod http;
pub mod limits;
pub mod metering;
pub mod presets;
pub mod recovery;
mod redact;
mod setters;
mod source;
mod task;

pub use clock::TokioClock;
pub use config::{
    BreakerSettings, ChaosSettings, ConfigLoadError, Environment, FleetSettings, HealthSettings,
    HttpSettings, MeteringSettings, RecoverySettings, ResilienceConfig, StrategyName,
};
pub use connect::redis_client;
pub use control_plane::{ControlDriver, ControlPlane, ControlPlaneBuilder, TransitionCount};
pub use env::EnvError;
pub use error::{BuildError, ControlError};
pub use redact::{redact_text, redact_url};
pub use resilience_core as core;
pub use resilience_core::{GovernanceHash, Governed};
pub use source::{BreakerSource, RecoverableBreaker};

/// A test that runs with one chaos scenario active, ended when the test ends, also when it
/// panics: the counterpart of the original's `@chaos_test` decorator.
///
/// `target` names the chaos point or breaker; one fault is required: `latency = "100ms"`,
/// `errors = 0.5` (with `code = 503`, the default), `timeout = "2s"`, `partition` or
/// `force_open`. Optional: `duration = "30s"` (default: the engine's maximum), `rate = 0.5`
/// (share of calls hit), `harness = expr` (a [`ChaosHarness`](chaos::ChaosHarness) over your
/// own fault table and breakers; default a fresh one), and `flavor = "multi_thread"` for async
/// tests. The function takes no argument, or the harness (by value or by reference); `async`
/// functions run on tokio (no tokio dependency of your own needed). A misspelt key, a bad
/// duration or a share outside [0, 1] is a compile error naming it.
///
/// # Examples
///
/// In a test file (`tests/checkout.rs`; `tests/chaos_test_macro.rs` in this crate has more):
///
/// ```
/// use std::time::Duration;
/// use resilience_control::chaos::ChaosHarness;
/// use resilience_control::chaos_test;
/// use resilience_core::chaos::Fault;
///
/// #[chaos_test(latency = "100ms", target = "payments")]
/// async fn checkout_survives_slow_payments(chaos: ChaosHarness) {
///     let payments = chaos.point("payments");
///     assert_eq!(chaos.table().check(payments), Some(Fault::Latency(Duration::from_millis(100))));
/// }
/// # fn main() {}
/// ```
pub use resilience_macros::chaos_test;

// What `#[chaos_test]` expands to refers to: not part of the API.
#[doc(hidden)]
pub mod __private {
    pub use tokio;
}
