//! HTTP endpoints (axum): `/metrics` for Prometheus, `/health/{live,ready,startup}` for
//! orchestrators, JSON views of health, breakers, recovery, chaos and metering, and the chaos
//! controls the `resilience chaos` command uses.
//!
//! ```no_run
//! use std::sync::Arc;
//! use resilience_control::{ControlPlane, http};
//! use resilience_core::BreakerRegistry;
//! use tokio_util::sync::CancellationToken;
//!
//! # #[tokio::main]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let control = ControlPlane::builder().registry(Arc::new(BreakerRegistry::new())).spawn()?;
//! let listener = tokio::net::TcpListener::bind("127.0.0.1:9090").await?;
//! http::serve(listener, control, CancellationToken::new()).await?; // until cancelled
//! # Ok(()) }
//! ```
//!
//! | endpoint | answers |
//! |---|---|
//! | `GET /metrics` | OpenMetrics text: breakers, transitions, health, recovery, chaos, metering |
//! | `GET /health/live` | 200 while the control loops run, else 503 |
//! | `GET /health/startup` | 200 once start-up is complete (first health sample), else 503 |
//! | `GET /health/ready` | 200 when started and not CRITICAL, else 503 |
//! | `GET /health` | the latest health report |
//! | `GET /breakers` | every breaker's state and counts |
//! | `GET /breakers/health` | every breaker's verdict (healthy / degraded / critical) with the governance tag |
//! | `GET /recovery` | recovery status per service |
//! | `GET /chaos` | live scenarios with time left, and chaos metrics |
//! | `POST /chaos` | start one scenario here: `{"name", "target", "fault": {"kind": "latency", "ms": 200}, "duration_ms"}` (admin token; 400 bad value, 409 refused) |
//! | `POST /chaos/stop` | emergency stop (admin token) |
//! | `POST /chaos/resume` | allow chaos again after a stop (admin token; 409 during a fleet stop) |
//! | `DELETE /chaos/{name}` | end one scenario (admin token) |
//! | `GET /metering` | the metering ledger |
//!
//! Reads are open. State-changing endpoints need `Authorization: Bearer <token>` and
//! `Content-Type: application/json`, and are refused (403) until a token is configured; every
//! connection and request is bounded in time, size and number ([`HttpConfig`],
//! [`serve_with`]). See SECURITY.md for the threat model.

mod auth;
mod chaos;
mod config;
mod metrics;
mod policy_metrics;
mod routes;
mod server;

pub use config::{AdminToken, HttpConfig};
pub use routes::{router, router_with, serve};
pub use server::serve_with;

/// The OpenMetrics exposition of `control`, as `GET /metrics` answers it: for serving metrics
/// from a server of your own.
///
/// # Errors
///
/// A formatting error from the encoder (it writes to a `String`, so in practice none).
pub fn render_metrics(control: &crate::ControlPlane) -> Result<String, std::fmt::Error> {
    metrics::render(&metrics::registry(control.clone()))
}
