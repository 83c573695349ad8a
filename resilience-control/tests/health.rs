//! `HealthAggregator`: scores and statuses, sampling on paused time, bounded history, change
//! notifications that never hold the sampler up, and PagerDuty alerts against a real local
//! HTTP server.
#![allow(clippy::unwrap_used, clippy::expect_used)] // tests may panic on bad setup

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::extract::State as AxumState;
use axum::http::StatusCode;
use axum::routing::post;
use resilience_control::ControlPlane;
use resilience_control::health::{
    AlertClass, AlertSink, HealthAggregator, HealthConfig, HealthStatus, HealthThresholds,
    HealthWeights, PagerDutySink, StateCounts,
};
use resilience_core::{BreakerConfig, BreakerRegistry, CircuitBreaker, ManualClock, State};
use serde_json::json;

type Registry = Arc<BreakerRegistry<ManualClock>>;

fn registry(n: usize) -> (Registry, Vec<Arc<CircuitBreaker<ManualClock>>>) {
    let registry = Arc::new(BreakerRegistry::with_clock(ManualClock::new()));
    let breakers = (0..n)
        .map(|i| {
            registry
                .get_or_create(&format!("dep-{i}"), BreakerConfig::default())
                .unwrap()
        })
        .collect();
    (registry, breakers)
}

fn aggregator(registry: &Registry, config: HealthConfig) -> HealthAggregator {
    HealthAggregator::new(registry.clone(), config, None).unwrap()
}

#[test]
fn score_weights_states_and_maps_to_status() {
    let (registry, b) = registry(4);
    let health = aggregator(&registry, HealthConfig::default());
    let sample = |expect: (f64, HealthStatus)| {
        let r = health.sample();
        assert_eq!((r.score, r.status), expect, "{:?}", r.counts);
    };
    sample((1.0, HealthStatus::Healthy));
    b[0].transition_to_half_open();
    sample(((3.0 + 0.5) / 4.0, HealthStatus::Healthy));
    b[1].trip_open();
    sample(((2.0 + 0.5) / 4.0, HealthStatus::Degraded));
    b[2].force_open();
    sample(((1.0 + 0.5) / 4.0, HealthStatus::Critical));
    // DISABLED breakers are left out of the score.
    b[2].disable();
    b[1].disable();
    sample(((1.0 + 0.5) / 2.0, HealthStatus::Healthy));
}

#[test]
fn no_breakers_is_healthy_and_weights_and_thresholds_are_validated() {
    let (registry, _) = registry(0);
    assert_eq!(
        aggregator(&registry, HealthConfig::default())
            .sample()
            .score,
        1.0
    );
    assert_eq!(
        StateCounts {
            disabled: 3,
            ..StateCounts::default()
        }
        .score(&HealthWeights::default()),
        1.0
    );
    let bad = [
        (
            HealthConfig::default().interval(Duration::from_millis(1)),
            "interval",
        ),
        (HealthConfig::default().history(0), "history"),
        (
            HealthConfig::default().weights(HealthWeights {
                half_open: 1.5,
                ..HealthWeights::default()
            }),
            "weights.half_open",
        ),
        (
            HealthConfig::default().thresholds(HealthThresholds {
                healthy: 0.4,
                degraded: 0.6,
            }),
            "thresholds.degraded",
        ),
    ];
    for (config, field) in bad {
        let err = HealthAggregator::new(registry.clone(), config, None).unwrap_err();
        assert_eq!(err.field(), Some(field), "{err}");
    }
    // Custom weights: half-open counted as fully healthy.
    let (registry, b) = self::registry(2);
    b[0].transition_to_half_open();
    let weights = HealthWeights {
        half_open: 1.0,
        ..HealthWeights::default()
    };
    assert_eq!(
        aggregator(&registry, HealthConfig::default().weights(weights))
            .sample()
            .score,
        1.0
    );
}

#[tokio::test(start_paused = true)]
async fn unknown_until_the_first_sample_then_one_sample_per_interval() {
    let (registry, b) = registry(2);
    let health = aggregator(&registry, HealthConfig::default());
    assert_eq!(health.report().status, HealthStatus::Unknown);
    let stop = tokio_util::sync::CancellationToken::new();
    let (h, token) = (health.clone(), stop.clone());
    let running = tokio::spawn(async move { h.run(token).await });
    tokio::task::yield_now().await;
    assert_eq!(
        health.report().status,
        HealthStatus::Healthy,
        "the first tick samples at once"
    );
    b[0].force_open();
    b[1].force_open();
    tokio::time::sleep(Duration::from_millis(4_500)).await;
    assert_eq!(health.stats().samples, 5, "t = 0, 1, 2, 3, 4 s");
    assert_eq!(health.report().status, HealthStatus::Critical);
    stop.cancel();
    running.await.unwrap();
}

#[test]
fn the_report_lists_degraded_and_critical_services_by_name() {
    let (registry, b) = registry(5);
    let health = aggregator(&registry, HealthConfig::default());
    b[3].transition_to_half_open();
    b[1].trip_open();
    b[4].force_open();
    b[0].transition_to_half_open();
    let report = health.sample();
    assert_eq!(report.degraded, ["dep-0", "dep-3"], "HALF_OPEN");
    assert_eq!(report.critical, ["dep-1", "dep-4"], "OPEN or forced open");
    let json = serde_json::to_value(&*report).unwrap();
    assert_eq!(json["degraded"], serde_json::json!(["dep-0", "dep-3"]));
    assert_eq!(json["critical"], serde_json::json!(["dep-1", "dep-4"]));
    assert_eq!(json["governance"], "cdd01ef066bc6cf2");
}

#[tokio::test(start_paused = true)]
async fn a_disabled_aggregator_never_samples_and_stops_when_asked() {
    let (registry, b) = registry(1);
    b[0].force_open();
    let health = aggregator(&registry, HealthConfig::default().enabled(false));
    let stop = tokio_util::sync::CancellationToken::new();
    let (h, token) = (health.clone(), stop.clone());
    let running = tokio::spawn(async move { h.run(token).await });
    tokio::time::sleep(Duration::from_secs(60)).await;
    assert_eq!(health.stats().samples, 0);
    assert_eq!(health.report().status, HealthStatus::Unknown);
    stop.cancel();
    tokio::time::timeout(Duration::from_secs(1), running)
        .await
        .unwrap()
        .unwrap();
}

#[tokio::test(start_paused = true)]
async fn recent_history_covers_the_configured_window() {
    let (registry, _) = registry(1);
    assert_eq!(
        HealthConfig::default().history_window,
        Duration::from_secs(300),
        "five minutes, as the original"
    );
    let health = aggregator(
        &registry,
        HealthConfig::default()
            .history(1000)
            .history_window(Duration::from_secs(120)),
    );
    for _ in 0..500 {
        health.sample();
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
    let recent = health.recent_history();
    assert_eq!(recent.len(), 120);
    assert_eq!(recent.last().unwrap().sequence, 500);
    assert!(
        HealthConfig::default()
            .history_window(Duration::ZERO)
            .validate()
            .is_err()
    );
}

#[tokio::test(start_paused = true)]
async fn history_is_bounded_and_windowed() {
    let (registry, _) = registry(1);
    let health = aggregator(&registry, HealthConfig::default().history(300));
    for _ in 0..400 {
        health.sample();
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
    assert_eq!(
        health.history(Duration::from_secs(3600)).len(),
        300,
        "bounded at 300"
    );
    let last_minute = health.history(Duration::from_secs(60));
    assert_eq!(last_minute.len(), 60);
    assert_eq!(last_minute.last().unwrap().sequence, 400);
    assert!(
        last_minute
            .windows(2)
            .all(|w| w[0].sequence + 1 == w[1].sequence)
    );
}

#[tokio::test(start_paused = true)]
async fn changes_reach_subscribers_and_slow_or_panicking_ones_never_delay_sampling() {
    let (registry, b) = registry(1);
    let health = aggregator(&registry, HealthConfig::default());
    let mut changes = health.subscribe();
    let seen = Arc::new(Mutex::new(Vec::new()));
    let log = seen.clone();
    health.on_change(move |change| {
        log.lock().unwrap().push((change.from, change.to));
        async {}
    });
    health.on_change(|_| async { std::future::pending::<()>().await }); // never finishes
    health.on_change(|_| async { panic!("subscriber bug") });

    health.sample();
    b[0].force_open();
    health.sample();
    b[0].reset();
    health.sample();
    tokio::task::yield_now().await;

    let first = changes.recv().await.unwrap();
    assert_eq!(
        (first.from, first.to),
        (HealthStatus::Unknown, HealthStatus::Healthy)
    );
    assert_eq!(changes.recv().await.unwrap().to, HealthStatus::Critical);
    assert_eq!(changes.recv().await.unwrap().to, HealthStatus::Healthy);
    assert_eq!(
        *seen.lock().unwrap(),
        [
            (HealthStatus::Unknown, HealthStatus::Healthy),
            (HealthStatus::Healthy, HealthStatus::Critical),
            (HealthStatus::Critical, HealthStatus::Healthy)
        ]
    );
    let stats = health.stats();
    assert_eq!(
        (
            stats.samples,
            stats.changes,
            stats.callbacks_fired,
            stats.callback_panics
        ),
        (3, 3, 9, 3),
        "three changes, three callbacks each, one of which panics"
    );
    // Shutdown does not wait forever for the subscriber that never finishes.
    tokio::time::timeout(
        Duration::from_secs(10),
        health.finish(Duration::from_secs(1)),
    )
    .await
    .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_blocking_subscriber_does_not_stop_sampling() {
    // Real time, on purpose: the subscriber blocks an OS thread (from the blocking pool).
    let (registry, b) = registry(1);
    let health = aggregator(
        &registry,
        HealthConfig::default().interval(Duration::from_millis(20)),
    );
    let calls = Arc::new(AtomicUsize::new(0));
    let count = calls.clone();
    health.on_change_blocking(move |_| {
        count.fetch_add(1, Ordering::SeqCst);
        std::thread::sleep(Duration::from_millis(800));
    });
    health.on_change_blocking(|_| panic!("blocking subscriber bug"));
    let stop = tokio_util::sync::CancellationToken::new();
    let (h, token) = (health.clone(), stop.clone());
    let running = tokio::spawn(async move { h.run(token).await });
    tokio::time::sleep(Duration::from_millis(60)).await;
    b[0].force_open();
    let before = health.stats().samples;
    tokio::time::sleep(Duration::from_millis(400)).await;
    assert!(
        calls.load(Ordering::SeqCst) >= 1,
        "the blocking subscriber ran"
    );
    let sampled = health.stats().samples - before;
    assert!(
        sampled >= 8,
        "only {sampled} samples in 400 ms at a 20 ms interval"
    );
    assert!(
        health.stats().callback_panics >= 1,
        "the panicking one was counted"
    );
    stop.cancel();
    running.await.unwrap();
    health.finish(Duration::from_secs(2)).await;
}

/// A local stand-in for PagerDuty's Events API: records every body, answers `status`.
async fn pagerduty(status: StatusCode) -> (String, Arc<Mutex<Vec<serde_json::Value>>>) {
    let bodies: Arc<Mutex<Vec<serde_json::Value>>> = Arc::default();
    let app = Router::new()
        .route(
            "/v2/enqueue",
            post(
                |AxumState((bodies, status)): AxumState<(
                    Arc<Mutex<Vec<serde_json::Value>>>,
                    StatusCode,
                )>,
                 body: axum::Json<serde_json::Value>| async move {
                    bodies.lock().unwrap().push(body.0);
                    (
                        status,
                        r#"{"status":"success","message":"Event processed"}"#,
                    )
                },
            ),
        )
        .with_state((bodies.clone(), status));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/v2/enqueue", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await });
    (url, bodies)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn critical_triggers_a_pagerduty_incident_and_recovery_resolves_it() {
    let (url, bodies) = pagerduty(StatusCode::ACCEPTED).await;
    let sink: Arc<dyn AlertSink> = Arc::new(PagerDutySink::new("R0UT1NG", "checkout").url(url));
    let (registry, b) = registry(2);
    let config = HealthConfig::default().alert_dedup_key("checkout-health");
    let health = HealthAggregator::new(registry.clone(), config, Some(sink)).unwrap();
    health.sample();
    b[0].force_open();
    b[1].force_open();
    health.sample(); // CRITICAL: trigger
    b[0].reset();
    health.sample(); // 0.5: DEGRADED, resolve
    b[1].reset();
    health.sample(); // HEALTHY: no alert (it was not CRITICAL)
    health.finish(Duration::from_secs(5)).await;

    let bodies = bodies.lock().unwrap().clone();
    assert_eq!(bodies.len(), 2, "{bodies:#?}");
    let trigger = &bodies[0];
    assert_eq!(trigger["routing_key"], "R0UT1NG");
    assert_eq!(trigger["event_action"], "trigger");
    assert_eq!(trigger["dedup_key"], "checkout-health");
    assert_eq!(trigger["payload"]["severity"], "critical");
    assert_eq!(trigger["payload"]["source"], "checkout");
    assert_eq!(trigger["payload"]["custom_details"]["status"], "CRITICAL");
    assert_eq!(
        trigger["payload"]["custom_details"]["open_breakers"],
        serde_json::json!(["dep-0", "dep-1"])
    );
    assert_eq!(
        trigger["payload"]["custom_details"]["constitutional_hash"],
        "cdd01ef066bc6cf2"
    );
    assert!(
        trigger["payload"]["summary"]
            .as_str()
            .unwrap()
            .contains("CRITICAL")
    );
    assert!(
        trigger["payload"]["timestamp"]
            .as_str()
            .unwrap()
            .ends_with('Z')
    );
    assert_eq!(bodies[1]["event_action"], "resolve");
    assert_eq!(bodies[1]["dedup_key"], "checkout-health");
    assert_eq!(health.stats().alerts_sent, 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rejected_alert_is_counted_not_fatal() {
    let (url, bodies) = pagerduty(StatusCode::BAD_REQUEST).await;
    let sink: Arc<dyn AlertSink> = Arc::new(PagerDutySink::new("bad", "checkout").url(url));
    let (registry, b) = registry(1);
    let health =
        HealthAggregator::new(registry.clone(), HealthConfig::default(), Some(sink)).unwrap();
    health.sample();
    b[0].force_open();
    assert_eq!(health.sample().status, HealthStatus::Critical);
    health.finish(Duration::from_secs(5)).await;
    assert_eq!(bodies.lock().unwrap().len(), 1);
    let stats = health.stats();
    assert_eq!((stats.alerts_sent, stats.alerts_failed), (0, 1));
    // Breakers and sampling carry on.
    assert_eq!(registry.get("dep-0").unwrap().state(), State::ForcedOpen);
}

#[test]
fn an_idle_open_breaker_reports_half_open_once_its_open_time_is_up() {
    let clock = ManualClock::new();
    let registry = Arc::new(BreakerRegistry::with_clock(clock.clone()));
    let config = BreakerConfig::builder()
        .reset_timeout(Duration::from_secs(10))
        .build()
        .unwrap();
    let db = registry.get_or_create("db", config).unwrap();
    db.trip_open();
    let on = aggregator(&registry, HealthConfig::default());
    assert_eq!(on.sample().status, HealthStatus::Critical);
    // Nobody calls `db` (readiness failing would have cut its traffic): time alone moves it.
    clock.advance(Duration::from_secs(10));
    let report = on.sample();
    assert_eq!(db.state(), State::HalfOpen, "ready to probe");
    assert_eq!(report.breakers[0].state, State::HalfOpen);
    assert_eq!(report.status, HealthStatus::Degraded);
    assert!(db.try_acquire().is_ok(), "the next call is the probe");

    // Off, an idle breaker stays OPEN, and health CRITICAL, until a call comes.
    db.trip_open();
    let off = aggregator(
        &registry,
        HealthConfig::default().automatic_half_open(false),
    );
    clock.advance(Duration::from_secs(60));
    assert_eq!(off.sample().status, HealthStatus::Critical);
    assert_eq!(db.state(), State::Open);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn breakers_opening_page_once_per_outage_when_asked_and_never_by_default() {
    let (url, bodies) = pagerduty(StatusCode::ACCEPTED).await;
    let plane = |alert_on: Vec<AlertClass>| {
        let (registry, b) = registry(2);
        let sink = PagerDutySink::new("R0UT1NG", "checkout").url(url.clone());
        let control = ControlPlane::builder()
            .registry(registry)
            .health(HealthConfig::default().enabled(false))
            .alerts(Arc::new(sink))
            .alert_on(alert_on)
            .without_clock_ticker()
            .spawn()
            .unwrap();
        (control, b)
    };
    let (control, b) = plane(vec![AlertClass::BreakerOpened]);
    b[0].trip_open();
    b[0].transition_to_half_open();
    b[0].trip_open(); // the probe failed: the same outage
    b[1].force_open(); // an operator's doing: not an incident
    b[0].transition_to_half_open();
    b[0].reset();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while bodies.lock().unwrap().len() < 2 && tokio::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    control.shutdown().await.unwrap();
    let seen = std::mem::take(&mut *bodies.lock().unwrap());
    let actions: Vec<_> = seen
        .iter()
        .map(|b| (b["event_action"].clone(), b["dedup_key"].clone()))
        .collect();
    assert_eq!(
        actions,
        [
            (json!("trigger"), json!("resilience-breaker-dep-0")),
            (json!("resolve"), json!("resilience-breaker-dep-0")),
        ],
        "{seen:#?}"
    );
    let payload = &seen[0]["payload"];
    assert_eq!(payload["class"], "breaker_opened");
    assert_eq!(payload["severity"], "warning");
    assert_eq!(payload["custom_details"]["open_breakers"], json!(["dep-0"]));
    assert_eq!(
        payload["custom_details"]["constitutional_hash"],
        "cdd01ef066bc6cf2"
    );
    let metrics = resilience_control::http::render_metrics(&control).unwrap();
    assert!(
        metrics.contains("resilience_breaker_alerts_total{result=\"sent\"} 2"),
        "{metrics}"
    );

    // The default classes leave breakers out.
    let (control, b) = plane(AlertClass::DEFAULT.to_vec());
    b[0].trip_open();
    b[1].trip_open();
    tokio::time::sleep(Duration::from_millis(300)).await;
    control.shutdown().await.unwrap();
    assert!(
        bodies.lock().unwrap().is_empty(),
        "{:?}",
        bodies.lock().unwrap()
    );
}

#[test]
fn the_pagerduty_routing_key_is_never_in_debug_output() {
    let sink = PagerDutySink::new("R0UT1NGKEYSECRET", "checkout");
    let text = format!("{sink:?}");
    assert!(!text.contains("R0UT1NGKEYSECRET"), "{text}");
    assert!(text.contains("checkout"), "{text}");
}
