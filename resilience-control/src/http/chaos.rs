//! The chaos endpoints: list, inject (one instance), end, emergency stop and resume.

use std::time::Duration;

use axum::Json;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use resilience_core::chaos::ChaosError;
use serde::{Deserialize, Serialize};
use serde_json::json;

use super::routes::{Shared, error};
use crate::chaos::ChaosEngineError;
use crate::fleet::FleetFault;

fn no_engine() -> Response {
    error(StatusCode::NOT_FOUND, "no chaos engine is configured here")
}

/// `POST /chaos`: one scenario on this instance, as `resilience chaos inject` sends it.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct InjectRequest {
    /// Unique scenario name.
    name: String,
    /// Chaos point or breaker.
    target: String,
    /// What to inject (`{"kind": "latency", "ms": 200}`, `errors` with `rate` and `code`,
    /// `timeouts` with `after_ms`, `partition`, `force_open`).
    fault: FleetFault,
    /// How long it lasts, within the engine's maximum.
    duration_ms: u64,
}

pub(super) async fn inject(State(state): Shared, body: Bytes) -> Response {
    let Some(engine) = state.control.chaos() else {
        return no_engine();
    };
    let request: InjectRequest = match serde_json::from_slice(&body) {
        Ok(request) => request,
        Err(err) => {
            return error(
                StatusCode::BAD_REQUEST,
                format!(
                    "invalid scenario: {err} (expected {{\"name\", \"target\", \"fault\": {{\"kind\": ...}}, \"duration_ms\"}})"
                ),
            );
        }
    };
    let duration = Duration::from_millis(request.duration_ms);
    match request
        .fault
        .start_on(engine, &request.name, &request.target, duration)
    {
        Ok(id) => Json(json!({
            "started": request.name,
            "id": id.as_u32(),
            "target": request.target,
            "duration_ms": request.duration_ms,
            "governance": engine.governance(),
        }))
        .into_response(),
        Err(err) => error(status_of(&err), err.to_string()),
    }
}

/// Bad values are the caller's to fix (400); a missing breaker is 404; everything else is the
/// engine's state refusing (409).
fn status_of(err: &ChaosEngineError) -> StatusCode {
    match err {
        ChaosEngineError::Chaos(
            ChaosError::Invalid { .. } | ChaosError::TargetOutsideBlastRadius { .. },
        ) => StatusCode::BAD_REQUEST,
        ChaosEngineError::UnknownBreaker { .. } => StatusCode::NOT_FOUND,
        _ => StatusCode::CONFLICT,
    }
}

#[derive(Serialize)]
struct ScenarioView {
    id: u32,
    name: String,
    target: String,
    kind: &'static str,
    remaining_ms: u64,
    rate: f64,
    blast_radius: Vec<String>,
    injections: u64,
}

pub(super) async fn list(State(state): Shared) -> Response {
    let Some(engine) = state.control.chaos() else {
        return no_engine();
    };
    let active: Vec<ScenarioView> = engine
        .active()
        .into_iter()
        .map(|a| ScenarioView {
            id: a.id.as_u32(),
            name: a.scenario.name().to_owned(),
            target: a.scenario.target().to_owned(),
            kind: a.scenario.spec().kind().as_str(),
            remaining_ms: a.remaining.as_millis() as u64,
            rate: a.scenario.injection_rate(),
            blast_radius: a.scenario.radius().to_vec(),
            injections: a.injections,
        })
        .collect();
    Json(json!({
        "active": active,
        "metrics": engine.metrics(),
        "governance": engine.governance(),
    }))
    .into_response()
}

pub(super) async fn stop(State(state): Shared) -> Response {
    match state.control.chaos() {
        Some(engine) => Json(json!({ "stopped": engine.emergency_stop() })).into_response(),
        None => no_engine(),
    }
}

pub(super) async fn resume(State(state): Shared) -> Response {
    match state.control.chaos() {
        Some(engine) => match engine.resume() {
            Ok(()) => Json(json!({ "resumed": true })).into_response(),
            // The fleet's stop wins over one instance's resume.
            Err(err) => error(StatusCode::CONFLICT, err.to_string()),
        },
        None => no_engine(),
    }
}

pub(super) async fn end(State(state): Shared, Path(name): Path<String>) -> Response {
    let Some(engine) = state.control.chaos() else {
        return no_engine();
    };
    match engine.deactivate(&name) {
        Ok(id) => Json(json!({ "ended": name, "id": id.as_u32() })).into_response(),
        Err(err) => error(StatusCode::NOT_FOUND, err.to_string()),
    }
}
