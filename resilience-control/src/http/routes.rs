//! The router and its handlers.

use std::sync::Arc;

use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, post};
use axum::{Json, Router};
use prometheus_client::registry::Registry;
use serde::Serialize;
use serde_json::json;
use tokio_util::sync::CancellationToken;

use super::config::HttpConfig;
use super::{auth, chaos, metrics};
use crate::ControlPlane;
use crate::health::HealthStatus;

pub(super) struct AppState {
    pub(super) control: ControlPlane,
    metrics: Registry,
}

pub(super) type Shared = State<Arc<AppState>>;

/// The router for `control`'s endpoints (see the [module docs](super)), with the default
/// [`HttpConfig`]: state-changing endpoints refused until a token is configured.
pub fn router(control: ControlPlane) -> Router {
    router_with(control, &HttpConfig::default())
}

/// The router for `control`'s endpoints with `config`'s token, request timeout and body limit.
/// (Connection limits and the header-read timeout are the server's: [`serve_with`].)
///
/// [`serve_with`]: super::serve_with
pub fn router_with(control: ControlPlane, config: &HttpConfig) -> Router {
    let state = Arc::new(AppState {
        metrics: metrics::registry(control.clone()),
        control,
    });
    let mutations = Router::new()
        .route("/chaos", post(chaos::inject))
        .route("/chaos/stop", post(chaos::stop))
        .route("/chaos/resume", post(chaos::resume))
        .route("/chaos/{name}", delete(chaos::end))
        .route_layer(axum::middleware::from_fn_with_state(
            Arc::new(config.admin_token.clone()),
            auth::require_admin,
        ));
    Router::new()
        .route("/metrics", get(metrics_text))
        .route("/health/live", get(live))
        .route("/health/startup", get(startup))
        .route("/health/ready", get(ready))
        .route("/health", get(health))
        .route("/breakers", get(breakers))
        .route("/breakers/health", get(breakers_health))
        .route("/recovery", get(recovery))
        .route("/chaos", get(chaos::list))
        .route("/metering", get(metering))
        .route("/limits", get(limits))
        .merge(mutations)
        .with_state(state)
        .layer(tower_http::limit::RequestBodyLimitLayer::new(
            config.max_body_bytes,
        ))
        .layer(tower_http::timeout::TimeoutLayer::with_status_code(
            StatusCode::REQUEST_TIMEOUT,
            config.request_timeout,
        ))
}

/// Serves [`router`] on `listener` with the default [`HttpConfig`] until `shutdown` is
/// cancelled (in-flight requests finish). See [`serve_with`](super::serve_with).
///
/// # Errors
///
/// As [`serve_with`](super::serve_with).
pub async fn serve(
    listener: tokio::net::TcpListener,
    control: ControlPlane,
    shutdown: CancellationToken,
) -> std::io::Result<()> {
    super::serve_with(listener, control, HttpConfig::default(), shutdown).await
}

pub(super) fn error(status: StatusCode, message: impl Into<String>) -> Response {
    let body = json!({
        "error": message.into(),
        "governance": resilience_core::GovernanceHash::for_process(),
    });
    (status, Json(body)).into_response()
}

async fn metrics_text(State(state): Shared) -> Response {
    match metrics::render(&state.metrics) {
        Ok(text) => (
            [(
                header::CONTENT_TYPE,
                "application/openmetrics-text; version=1.0.0; charset=utf-8",
            )],
            text,
        )
            .into_response(),
        Err(_) => error(
            StatusCode::INTERNAL_SERVER_ERROR,
            "could not encode metrics",
        ),
    }
}

fn probe(ok: bool, body: serde_json::Value) -> Response {
    let status = if ok {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (status, Json(body)).into_response()
}

/// Start-up is complete once the control loops run and health has been sampled once (unless
/// health aggregation is disabled).
fn started(control: &ControlPlane) -> bool {
    let health = control.health();
    control.is_running() && (!health.config().enabled || health.report().sequence > 0)
}

async fn live(State(state): Shared) -> Response {
    let running = state.control.is_running();
    probe(
        running,
        json!({ "live": running, "governance": state.control.governance() }),
    )
}

async fn startup(State(state): Shared) -> Response {
    let done = started(&state.control);
    probe(
        done,
        json!({ "started": done, "governance": state.control.governance() }),
    )
}

async fn ready(State(state): Shared) -> Response {
    let report = state.control.health().report();
    let started = started(&state.control);
    let ready = started && report.status != HealthStatus::Critical;
    probe(
        ready,
        json!({
            "ready": ready,
            "started": started,
            "status": report.status,
            "score": report.score,
            "governance": report.governance,
        }),
    )
}

async fn health(State(state): Shared) -> Response {
    Json(&*state.control.health().report()).into_response()
}

#[derive(Serialize)]
struct BreakerView {
    name: String,
    state: resilience_core::State,
    generation: u32,
    consecutive_failures: u32,
    window_calls: u32,
    window_failures: u32,
    half_open_in_flight: u32,
    successes: u64,
    failures: u64,
    ignored: u64,
    rejected: u64,
    stale: u64,
}

async fn breakers(State(state): Shared) -> Response {
    let views: Vec<BreakerView> = state
        .control
        .source()
        .snapshots()
        .into_iter()
        .map(|(name, s)| BreakerView {
            name: name.to_string(),
            state: s.state,
            generation: s.generation,
            consecutive_failures: s.consecutive_failures,
            window_calls: s.window.calls,
            window_failures: s.window.failures,
            half_open_in_flight: s.half_open_in_flight,
            successes: s.totals.successes,
            failures: s.totals.failures,
            ignored: s.totals.ignored,
            rejected: s.totals.rejected,
            stale: s.totals.stale,
        })
        .collect();
    Json(json!({ "breakers": views, "governance": state.control.governance() })).into_response()
}

async fn recovery(State(state): Shared) -> Response {
    Json(state.control.recovery().status()).into_response()
}

async fn breakers_health(State(state): Shared) -> Response {
    Json(state.control.breaker_health_check()).into_response()
}

async fn limits(State(state): Shared) -> Response {
    let control = &state.control;
    Json(control.limits().report(control.governance())).into_response()
}

async fn metering(State(state): Shared) -> Response {
    match state.control.metering() {
        Some(flusher) => Json(json!({
            "sink": flusher.sink_name(),
            "ledger": flusher.ledger(),
            "corrupt_spool_files": flusher.corrupt_spool_files().len(),
        }))
        .into_response(),
        None => error(StatusCode::NOT_FOUND, "no metering is configured here"),
    }
}
