//! The Prometheus/OpenMetrics exposition: every figure read from the control plane at scrape
//! time, so nothing is double-counted and nothing needs updating on the request path.

use std::fmt;

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric};
use prometheus_client::metrics::MetricType;
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::registry::Registry;
use resilience_core::State;

use crate::ControlPlane;
use crate::health::HealthStatus;

const STATES: [State; 5] = [
    State::Closed,
    State::Open,
    State::HalfOpen,
    State::ForcedOpen,
    State::Disabled,
];

/// A Prometheus registry exposing `control` under the `resilience_` prefix.
pub(crate) fn registry(control: ControlPlane) -> Registry {
    let mut registry = Registry::with_prefix("resilience");
    registry.register_collector(Box::new(ControlCollector { control }));
    registry
}

/// The exposition text of `registry` (OpenMetrics, ending in `# EOF`).
pub(crate) fn render(registry: &Registry) -> Result<String, fmt::Error> {
    let mut text = String::with_capacity(8 * 1024);
    prometheus_client::encoding::text::encode(&mut text, registry)?;
    Ok(text)
}

struct ControlCollector {
    control: ControlPlane,
}

impl fmt::Debug for ControlCollector {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("ControlCollector")
    }
}

/// Writes one metric family: `samples` are (labels, value) pairs.
pub(super) fn family<M: EncodeMetric>(
    encoder: &mut DescriptorEncoder<'_>,
    name: &str,
    help: &str,
    kind: MetricType,
    samples: impl IntoIterator<Item = (Vec<(&'static str, String)>, M)>,
) -> fmt::Result {
    let mut metric = encoder.encode_descriptor(name, help, None, kind)?;
    for (labels, value) in samples {
        value.encode(metric.encode_family(&labels)?)?;
    }
    Ok(())
}

fn one<M: EncodeMetric>(
    encoder: &mut DescriptorEncoder<'_>,
    name: &str,
    help: &str,
    kind: MetricType,
    value: M,
) -> fmt::Result {
    value.encode(encoder.encode_descriptor(name, help, None, kind)?)
}

impl Collector for ControlCollector {
    fn encode(&self, mut e: DescriptorEncoder<'_>) -> fmt::Result {
        let c = &self.control;
        family(
            &mut e,
            "governance",
            "Governance tag every component was checked against (value 1)",
            MetricType::Gauge,
            [(
                vec![("constitutional_hash", c.governance().to_string())],
                ConstGauge::new(1i64),
            )],
        )?;

        let snapshots = c.source().snapshots();
        family(
            &mut e,
            "breaker_state",
            "1 for each breaker's current state, 0 for the others",
            MetricType::Gauge,
            snapshots.iter().flat_map(|(name, s)| {
                STATES.iter().map(move |state| {
                    (
                        vec![("breaker", name.to_string()), ("state", state_name(*state))],
                        ConstGauge::new(i64::from(s.state == *state)),
                    )
                })
            }),
        )?;
        family(
            &mut e,
            "breaker_calls",
            "Calls through each breaker by outcome",
            MetricType::Counter,
            snapshots.iter().flat_map(|(name, s)| {
                let t = s.totals;
                [
                    ("success", t.successes),
                    ("failure", t.failures),
                    ("ignored", t.ignored),
                    ("stale", t.stale),
                    ("slow", t.slow),
                ]
                .into_iter()
                .map(move |(outcome, n)| {
                    (
                        vec![
                            ("breaker", name.to_string()),
                            ("outcome", outcome.to_owned()),
                        ],
                        ConstCounter::new(n),
                    )
                })
            }),
        )?;
        family(
            &mut e,
            "breaker_rejections",
            "Calls each breaker refused",
            MetricType::Counter,
            snapshots.iter().map(|(name, s)| {
                (
                    vec![("breaker", name.to_string())],
                    ConstCounter::new(s.totals.rejected),
                )
            }),
        )?;
        family(
            &mut e,
            "breaker_consecutive_failures",
            "Current run of consecutive failures (CLOSED only)",
            MetricType::Gauge,
            snapshots.iter().map(|(name, s)| {
                (
                    vec![("breaker", name.to_string())],
                    ConstGauge::new(i64::from(s.consecutive_failures)),
                )
            }),
        )?;
        family(
            &mut e,
            "breaker_transitions",
            "State transitions per breaker and edge",
            MetricType::Counter,
            c.transitions().into_iter().map(|t| {
                (
                    vec![
                        ("breaker", t.breaker.to_string()),
                        ("from", state_name(t.from)),
                        ("to", state_name(t.to)),
                    ],
                    ConstCounter::new(t.count),
                )
            }),
        )?;
        one(
            &mut e,
            "breaker_events_dropped",
            "Transition events lost to a full event channel",
            MetricType::Counter,
            ConstCounter::new(c.events_dropped()),
        )?;

        super::policy_metrics::encode(&mut e, c)?;

        let report = c.health().report();
        one(
            &mut e,
            "health_score",
            "Weighted health score in [0, 1]",
            MetricType::Gauge,
            ConstGauge::new(report.score),
        )?;
        family(
            &mut e,
            "health_status",
            "1 for the current health status, 0 for the others",
            MetricType::Gauge,
            [
                HealthStatus::Healthy,
                HealthStatus::Degraded,
                HealthStatus::Critical,
                HealthStatus::Unknown,
            ]
            .into_iter()
            .map(|status| {
                (
                    vec![("status", status.as_str().to_owned())],
                    ConstGauge::new(i64::from(report.status == status)),
                )
            }),
        )?;
        let health = c.health().stats();
        one(
            &mut e,
            "health_samples",
            "Health samples taken",
            MetricType::Counter,
            ConstCounter::new(health.samples),
        )?;
        one(
            &mut e,
            "health_status_changes",
            "Health status changes",
            MetricType::Counter,
            ConstCounter::new(health.changes),
        )?;
        family(
            &mut e,
            "health_callbacks",
            "Health-change callbacks by outcome (fired counts every start, panicked those that panicked)",
            MetricType::Counter,
            [
                ("fired", health.callbacks_fired),
                ("panicked", health.callback_panics),
            ]
            .into_iter()
            .map(|(outcome, n)| (vec![("outcome", outcome.to_owned())], ConstCounter::new(n))),
        )?;
        family(
            &mut e,
            "health_alerts",
            "CRITICAL alerts by delivery result",
            MetricType::Counter,
            [
                ("sent", health.alerts_sent),
                ("failed", health.alerts_failed),
            ]
            .into_iter()
            .map(|(result, n)| (vec![("result", result.to_owned())], ConstCounter::new(n))),
        )?;
        family(
            &mut e,
            "breaker_alerts",
            "Breaker-opened alerts by delivery result (dropped: the alert queue was full)",
            MetricType::Counter,
            c.breaker_alert_counts()
                .into_iter()
                .map(|(result, n)| (vec![("result", result.to_owned())], ConstCounter::new(n))),
        )?;

        let recovery = c.recovery().stats();
        one(
            &mut e,
            "recovery_attempts",
            "Recovery attempts started",
            MetricType::Counter,
            ConstCounter::new(recovery.attempts),
        )?;
        family(
            &mut e,
            "recovery_outcomes",
            "Recovery attempts and recoveries by outcome",
            MetricType::Counter,
            [
                ("succeeded", recovery.succeeded),
                ("failed", recovery.failed),
                ("exhausted", recovery.exhausted),
                ("cancelled", recovery.cancelled),
            ]
            .into_iter()
            .map(|(outcome, n)| (vec![("outcome", outcome.to_owned())], ConstCounter::new(n))),
        )?;

        if let Some(chaos) = c.chaos() {
            let m = chaos.metrics();
            family(
                &mut e,
                "chaos_injections",
                "Faults injected into calls, by kind",
                MetricType::Counter,
                m.injections
                    .iter()
                    .map(|(kind, n)| (vec![("kind", (*kind).to_owned())], ConstCounter::new(*n))),
            )?;
            one(
                &mut e,
                "chaos_active_scenarios",
                "Chaos scenarios live now",
                MetricType::Gauge,
                ConstGauge::new(m.active as i64),
            )?;
            family(
                &mut e,
                "chaos_scenarios",
                "Chaos scenarios by what happened to them",
                MetricType::Counter,
                [
                    ("started", m.started),
                    ("refused", m.refused),
                    ("deactivated", m.deactivated),
                    ("expired", m.expired),
                ]
                .into_iter()
                .map(|(event, n)| (vec![("event", event.to_owned())], ConstCounter::new(n))),
            )?;
            one(
                &mut e,
                "chaos_emergency_stops",
                "Chaos emergency stops",
                MetricType::Counter,
                ConstCounter::new(m.emergency_stops),
            )?;
            one(
                &mut e,
                "chaos_stopped",
                "1 while a chaos emergency stop is in force",
                MetricType::Gauge,
                ConstGauge::new(i64::from(m.stopped)),
            )?;
        }

        if let Some(flusher) = c.metering() {
            let l = flusher.ledger();
            family(
                &mut e,
                "metering_events",
                "Usage events by ledger stage (offered = accepted + refused)",
                MetricType::Counter,
                [
                    ("offered", l.offered),
                    ("accepted", l.accepted),
                    ("refused_full", l.refused_full),
                    ("refused_closed", l.refused_closed),
                    ("flushed", l.flushed),
                    ("quarantined", l.quarantined),
                    ("inherited", l.inherited),
                ]
                .into_iter()
                .map(|(stage, n)| (vec![("stage", stage.to_owned())], ConstCounter::new(n))),
            )?;
            family(
                &mut e,
                "metering_backlog",
                "Usage events not yet written: pending in memory, spooled on disk",
                MetricType::Gauge,
                [("pending", l.pending), ("spooled", l.spooled)]
                    .into_iter()
                    .map(|(stage, n)| {
                        (
                            vec![("stage", stage.to_owned())],
                            ConstGauge::new(i64::try_from(n).unwrap_or(i64::MAX)),
                        )
                    }),
            )?;
            one(
                &mut e,
                "metering_batches",
                "Batches written to the sink",
                MetricType::Counter,
                ConstCounter::new(l.batches),
            )?;
            one(
                &mut e,
                "metering_sink_failures",
                "Failed sink writes",
                MetricType::Counter,
                ConstCounter::new(l.sink_failures),
            )?;
        }
        Ok(())
    }
}

fn state_name(state: State) -> String {
    state.as_str().to_owned()
}
