//! `/metrics` families of the policies: bulkheads, rate limiters, retries, time limits, and
//! the pressure they put on health.

use std::fmt;

use prometheus_client::encoding::DescriptorEncoder;
use prometheus_client::metrics::MetricType;
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::gauge::ConstGauge;

use super::metrics::family;
use crate::ControlPlane;

/// The policies' families.
pub(super) fn encode(e: &mut DescriptorEncoder<'_>, c: &ControlPlane) -> fmt::Result {
    let bulkheads: Vec<_> = c
        .limits()
        .bulkheads()
        .iter()
        .map(|b| (b.name().to_owned(), b.snapshot()))
        .collect();
    family(
        e,
        "bulkhead_in_flight",
        "Calls holding a slot of each bulkhead",
        MetricType::Gauge,
        bulkheads.iter().map(|(name, s)| {
            (
                vec![("bulkhead", name.clone())],
                ConstGauge::new(i64::from(s.in_flight)),
            )
        }),
    )?;
    family(
        e,
        "bulkhead_limit",
        "Calls each bulkhead admits at once",
        MetricType::Gauge,
        bulkheads.iter().map(|(name, s)| {
            (
                vec![("bulkhead", name.clone())],
                ConstGauge::new(i64::from(s.limit)),
            )
        }),
    )?;
    family(
        e,
        "bulkhead_calls",
        "Calls through each bulkhead by result",
        MetricType::Counter,
        bulkheads.iter().flat_map(|(name, s)| {
            [("admitted", s.admitted), ("rejected", s.rejected)].map(|(result, n)| {
                (
                    vec![("bulkhead", name.clone()), ("result", result.to_owned())],
                    ConstCounter::new(n),
                )
            })
        }),
    )?;
    let limiters: Vec<_> = c
        .limits()
        .rate_limiters()
        .iter()
        .map(|l| (l.name().to_owned(), l.snapshot()))
        .collect();
    family(
        e,
        "rate_limiter_available",
        "Permits each rate limiter could give at once now",
        MetricType::Gauge,
        limiters.iter().map(|(name, s)| {
            (
                vec![("limiter", name.clone())],
                ConstGauge::new(i64::from(s.available)),
            )
        }),
    )?;
    family(
        e,
        "rate_limiter_calls",
        "Calls through each rate limiter by result",
        MetricType::Counter,
        limiters.iter().flat_map(|(name, s)| {
            [("admitted", s.admitted), ("rejected", s.rejected)].map(|(result, n)| {
                (
                    vec![("limiter", name.clone()), ("result", result.to_owned())],
                    ConstCounter::new(n),
                )
            })
        }),
    )?;
    let keyed: Vec<_> = c
        .limits()
        .keyed_rate_limiters()
        .iter()
        .map(|l| (l.name().to_owned(), l.snapshot()))
        .collect();
    family(
        e,
        "keyed_rate_limiter_calls",
        "Calls through each per-key rate limiter by result",
        MetricType::Counter,
        keyed.iter().flat_map(|(name, s)| {
            [
                ("admitted", s.admitted),
                ("rejected", s.rejected),
                ("table_full", s.table_full),
            ]
            .map(|(result, n)| {
                (
                    vec![("limiter", name.clone()), ("result", result.to_owned())],
                    ConstCounter::new(n),
                )
            })
        }),
    )?;
    family(
        e,
        "keyed_rate_limiter_keys_limited",
        "Keys of each per-key rate limiter that have spent part of their burst",
        MetricType::Gauge,
        keyed.iter().map(|(name, s)| {
            (
                vec![("limiter", name.clone())],
                ConstGauge::new(i64::try_from(s.keys_limited).unwrap_or(i64::MAX)),
            )
        }),
    )?;
    let retries: Vec<_> = c
        .limits()
        .retries()
        .iter()
        .map(|r| (r.name().to_owned(), r.snapshot()))
        .collect();
    family(
        e,
        "retry_outcomes",
        "Retries made and calls given up by each retry policy, by reason",
        MetricType::Counter,
        retries.iter().flat_map(|(name, s)| {
            [
                ("retried", s.retries),
                ("gave_up_attempts", s.gave_up_attempts),
                ("gave_up_budget", s.gave_up_budget),
                ("gave_up_deadline", s.gave_up_deadline),
            ]
            .map(|(outcome, n)| {
                (
                    vec![("retry", name.clone()), ("outcome", outcome.to_owned())],
                    ConstCounter::new(n),
                )
            })
        }),
    )?;
    family(
        e,
        "retry_budget_available",
        "Retries banked in the budget each retry policy draws on",
        MetricType::Gauge,
        retries.iter().filter_map(|(name, s)| {
            s.budget.map(|b| {
                (
                    vec![("retry", name.clone())],
                    ConstGauge::new(i64::from(b.available)),
                )
            })
        }),
    )?;
    let limiters: Vec<_> = c
        .limits()
        .time_limiters()
        .iter()
        .map(|t| (t.name().to_owned(), t.snapshot()))
        .collect();
    family(
        e,
        "time_limiter_calls",
        "Calls through each time limit by result",
        MetricType::Counter,
        limiters.iter().flat_map(|(name, s)| {
            [("completed", s.completed), ("timed_out", s.timed_out)].map(|(result, n)| {
                (
                    vec![("limiter", name.clone()), ("result", result.to_owned())],
                    ConstCounter::new(n),
                )
            })
        }),
    )?;
    let pressure = &c.health().report().pressure;
    family(
        e,
        "health_pressure",
        "Policies that turned calls away since the previous health sample, by kind",
        MetricType::Gauge,
        [
            ("rejecting_bulkhead", pressure.rejecting_bulkheads.len()),
            (
                "exhausted_retry_budget",
                pressure.exhausted_retry_budgets.len(),
            ),
        ]
        .map(|(kind, n)| {
            (
                vec![("kind", kind.to_owned())],
                ConstGauge::new(i64::try_from(n).unwrap_or(i64::MAX)),
            )
        }),
    )
}
