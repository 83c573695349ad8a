//! `RecoveryOrchestrator` on paused tokio time: exact delays per strategy, exhaustion, success,
//! cancellation mid-check, priority order, manual approval, failing and panicking checks, the
//! bounded history, and the cool-down after giving up (with its alerts); on real time, checks
//! that block their thread.
#![allow(clippy::unwrap_used, clippy::expect_used)] // tests may panic on bad setup

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use resilience_control::recovery::{
    CheckIsolation, RecoveryConfig, RecoveryError, RecoveryOrchestrator, RecoveryPolicy,
    RecoveryState, RecoveryStrategy,
};
use resilience_core::{BreakerConfig, BreakerRegistry, ManualClock, State};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

struct Rig {
    registry: Arc<BreakerRegistry<ManualClock>>,
    recovery: RecoveryOrchestrator,
    stop: CancellationToken,
}

impl Rig {
    /// Checks as tasks on the test's runtime, so they share its paused clock.
    fn new(config: RecoveryConfig, services: &[&str]) -> Rig {
        Rig::isolated(config.check_isolation(CheckIsolation::Inline), services)
    }

    /// With `config`'s isolation as given (the default: checks on a runtime of their own).
    fn isolated(config: RecoveryConfig, services: &[&str]) -> Rig {
        let registry = Arc::new(BreakerRegistry::with_clock(ManualClock::new()));
        for s in services {
            let b = registry.get_or_create(s, BreakerConfig::default()).unwrap();
            b.force_open();
        }
        let recovery = RecoveryOrchestrator::new(registry.clone(), config).unwrap();
        let stop = CancellationToken::new();
        let (r, token) = (recovery.clone(), stop.clone());
        tokio::spawn(async move { r.run(token).await });
        Rig {
            registry,
            recovery,
            stop,
        }
    }

    async fn until(&self, service: &str, state: RecoveryState) {
        let deadline = Instant::now() + Duration::from_secs(3600);
        while self.recovery.state(service) != state {
            assert!(
                Instant::now() < deadline,
                "{service} never reached {state:?}: {:?}",
                self.recovery.state(service)
            );
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
    }
}

impl Drop for Rig {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}

/// A health check that fails, recording when it ran (offsets from `start`, in ms).
fn failing_check(
    log: Arc<Mutex<Vec<u64>>>,
    start: Instant,
) -> impl Fn(String) -> std::future::Ready<Result<(), String>> {
    move |_service| {
        log.lock().unwrap().push(start.elapsed().as_millis() as u64);
        std::future::ready(Err("still down".to_owned()))
    }
}

async fn attempt_times(policy: RecoveryPolicy) -> Vec<u64> {
    let rig = Rig::new(RecoveryConfig::default(), &["db"]);
    let log = Arc::new(Mutex::new(Vec::new()));
    rig.recovery
        .register_health_check("db", failing_check(log.clone(), Instant::now()));
    rig.recovery.schedule_with("db", 5, Some(policy)).unwrap();
    rig.until("db", RecoveryState::Failed).await;
    log.lock().unwrap().clone()
}

#[tokio::test(start_paused = true)]
async fn exponential_backoff_waits_initial_times_multiplier_to_the_n_minus_one() {
    let times = attempt_times(RecoveryPolicy::default()).await;
    // Delays 1, 2, 4, 8, 16 s before attempts 1..5.
    assert_eq!(times, [1_000, 3_000, 7_000, 15_000, 31_000]);
}

#[tokio::test(start_paused = true)]
async fn exponential_backoff_is_capped_at_max_delay() {
    let policy = RecoveryPolicy::default()
        .initial_delay(Duration::from_secs(10))
        .max_delay(Duration::from_secs(25));
    let times = attempt_times(policy).await;
    // Delays 10, 20, 25, 25, 25 s.
    assert_eq!(times, [10_000, 30_000, 55_000, 80_000, 105_000]);
}

#[tokio::test(start_paused = true)]
async fn linear_backoff_waits_initial_times_n() {
    let policy = RecoveryPolicy::with_strategy(RecoveryStrategy::LinearBackoff).max_retries(4);
    let times = attempt_times(policy).await;
    assert_eq!(times, [1_000, 3_000, 6_000, 10_000]);
}

#[tokio::test(start_paused = true)]
async fn immediate_does_not_wait() {
    let policy = RecoveryPolicy::with_strategy(RecoveryStrategy::Immediate).max_retries(3);
    assert_eq!(attempt_times(policy).await, [0, 0, 0]);
}

#[tokio::test(start_paused = true)]
async fn exhausting_the_retries_fails_the_recovery_and_leaves_the_breaker_open() {
    let rig = Rig::new(RecoveryConfig::default(), &["db"]);
    let log = Arc::new(Mutex::new(Vec::new()));
    rig.recovery
        .register_health_check("db", failing_check(log.clone(), Instant::now()));
    rig.recovery.schedule("db").unwrap();
    rig.until("db", RecoveryState::Failed).await;
    assert_eq!(log.lock().unwrap().len(), 5, "the default five attempts");
    let stats = rig.recovery.stats();
    assert_eq!((stats.attempts, stats.failed, stats.exhausted), (5, 5, 1));
    let history = rig.recovery.history();
    assert_eq!(history.len(), 5);
    assert_eq!(history.last().unwrap().state, RecoveryState::Failed);
    assert_eq!(history.last().unwrap().error.as_deref(), Some("still down"));
    assert_eq!(
        rig.registry.get("db").unwrap().state(),
        State::Open,
        "each failure reopens"
    );
    let status = rig.recovery.status();
    assert_eq!(status.services[0].attempts, 5);
    assert_eq!(status.services[0].last_error.as_deref(), Some("still down"));
}

#[tokio::test(start_paused = true)]
async fn a_passing_check_closes_the_breaker() {
    let rig = Rig::new(RecoveryConfig::default(), &["db"]);
    let seen_half_open = Arc::new(AtomicBool::new(false));
    let (registry, seen) = (rig.registry.clone(), seen_half_open.clone());
    rig.recovery
        .register_health_check("db", move |service: String| {
            // During the check the breaker is HALF_OPEN.
            seen.store(
                registry.get(&service).unwrap().state() == State::HalfOpen,
                Ordering::SeqCst,
            );
            async { Ok(()) }
        });
    assert_eq!(
        rig.recovery.schedule("db").unwrap(),
        RecoveryState::Scheduled
    );
    rig.until("db", RecoveryState::Succeeded).await;
    assert!(seen_half_open.load(Ordering::SeqCst));
    assert_eq!(rig.registry.get("db").unwrap().state(), State::Closed);
    assert!(rig.recovery.history()[0].success);
}

#[tokio::test(start_paused = true)]
async fn scheduling_twice_does_not_duplicate_and_unknown_services_are_refused() {
    let rig = Rig::new(RecoveryConfig::default(), &["db"]);
    rig.recovery
        .register_health_check("db", |_s: String| async { Ok(()) });
    rig.recovery.schedule("db").unwrap();
    assert_eq!(
        rig.recovery.schedule("db").unwrap(),
        RecoveryState::Scheduled
    );
    rig.until("db", RecoveryState::Succeeded).await;
    assert_eq!(rig.recovery.stats().attempts, 1);
    assert!(matches!(
        rig.recovery.schedule("nope"),
        Err(RecoveryError::UnknownService { .. })
    ));
    let bad = RecoveryPolicy::default().max_retries(0);
    assert!(
        matches!(rig.recovery.set_policy("db", bad), Err(RecoveryError::Config(e)) if e.field() == Some("max_retries"))
    );
}

#[tokio::test(start_paused = true)]
async fn cancel_during_in_progress_stops_the_check_and_frees_the_slot() {
    let rig = Rig::new(
        RecoveryConfig::default().max_concurrent(1),
        &["slow", "next"],
    );
    let dropped = Arc::new(AtomicBool::new(false));
    let flag = dropped.clone();
    rig.recovery
        .register_health_check("slow", move |_s: String| {
            struct OnDrop(Arc<AtomicBool>);
            impl Drop for OnDrop {
                fn drop(&mut self) {
                    self.0.store(true, Ordering::SeqCst);
                }
            }
            let guard = OnDrop(flag.clone());
            async move {
                let _guard = guard;
                tokio::time::sleep(Duration::from_secs(3600)).await;
                Ok(())
            }
        });
    rig.recovery
        .register_health_check("next", |_s: String| async { Ok(()) });
    let policy = RecoveryPolicy::default().health_check_timeout(Duration::from_secs(600));
    rig.recovery.schedule_with("slow", 1, Some(policy)).unwrap();
    rig.until("slow", RecoveryState::InProgress).await;
    rig.recovery.schedule("next").unwrap();
    tokio::time::sleep(Duration::from_secs(5)).await;
    assert_eq!(
        rig.recovery.state("next"),
        RecoveryState::Scheduled,
        "waiting for the only slot"
    );
    assert!(rig.recovery.cancel("slow"));
    rig.until("slow", RecoveryState::Cancelled).await;
    assert!(
        dropped.load(Ordering::SeqCst),
        "the running check was stopped"
    );
    rig.until("next", RecoveryState::Succeeded).await;
    assert_eq!(rig.recovery.stats().cancelled, 1);
    assert!(!rig.recovery.cancel("slow"), "nothing left to cancel");
}

#[tokio::test(start_paused = true)]
async fn due_attempts_run_in_priority_order() {
    let rig = Rig::new(
        RecoveryConfig::default().max_concurrent(1),
        &["low", "high", "mid"],
    );
    let order = Arc::new(Mutex::new(Vec::new()));
    for service in ["low", "high", "mid"] {
        let order = order.clone();
        rig.recovery
            .register_health_check(service, move |s: String| {
                order.lock().unwrap().push(s);
                async { Ok(()) }
            });
    }
    let now = RecoveryPolicy::with_strategy(RecoveryStrategy::Immediate);
    // Scheduled without yielding, so all three are due together.
    rig.recovery.schedule_with("low", 9, Some(now)).unwrap();
    rig.recovery.schedule_with("high", 1, Some(now)).unwrap();
    rig.recovery.schedule_with("mid", 5, Some(now)).unwrap();
    for s in ["low", "high", "mid"] {
        rig.until(s, RecoveryState::Succeeded).await;
    }
    assert_eq!(*order.lock().unwrap(), ["high", "mid", "low"]);
}

#[tokio::test(start_paused = true)]
async fn manual_recovery_waits_for_approval_and_can_be_cancelled() {
    let rig = Rig::new(RecoveryConfig::default(), &["ledger", "audit"]);
    for s in ["ledger", "audit"] {
        rig.recovery
            .register_health_check(s, |_s: String| async { Ok(()) });
    }
    let manual = RecoveryPolicy::with_strategy(RecoveryStrategy::Manual);
    rig.recovery.set_policy("ledger", manual).unwrap();
    rig.recovery.set_policy("audit", manual).unwrap();
    assert_eq!(
        rig.recovery.schedule("ledger").unwrap(),
        RecoveryState::AwaitingManual
    );
    rig.recovery.schedule("audit").unwrap();
    tokio::time::sleep(Duration::from_secs(3600)).await;
    assert_eq!(
        rig.recovery.state("ledger"),
        RecoveryState::AwaitingManual,
        "nothing runs unapproved"
    );
    assert_eq!(rig.recovery.stats().attempts, 0);
    rig.recovery.approve("ledger").unwrap();
    rig.until("ledger", RecoveryState::Succeeded).await;
    assert!(matches!(
        rig.recovery.approve("ledger"),
        Err(RecoveryError::NotAwaitingApproval {
            state: RecoveryState::Succeeded,
            ..
        })
    ));
    assert!(rig.recovery.cancel("audit"));
    assert_eq!(rig.recovery.state("audit"), RecoveryState::Cancelled);
    assert!(rig.recovery.approve("audit").is_err());
}

#[tokio::test(start_paused = true)]
async fn a_panicking_or_hanging_check_fails_alone() {
    let rig = Rig::new(RecoveryConfig::default(), &["panics", "hangs", "fine"]);
    rig.recovery
        .register_health_check("panics", |_s: String| async { panic!("health check bug") });
    rig.recovery
        .register_health_check("hangs", |_s: String| async {
            std::future::pending::<()>().await;
            Ok(())
        });
    rig.recovery
        .register_health_check("fine", |_s: String| async { Ok(()) });
    let once = RecoveryPolicy::default()
        .max_retries(1)
        .health_check_timeout(Duration::from_secs(2));
    for s in ["panics", "hangs", "fine"] {
        rig.recovery.schedule_with(s, 5, Some(once)).unwrap();
    }
    for (s, state) in [
        ("panics", RecoveryState::Failed),
        ("hangs", RecoveryState::Failed),
        ("fine", RecoveryState::Succeeded),
    ] {
        rig.until(s, state).await;
    }
    let history = rig.recovery.history();
    let error = |s: &str| {
        history
            .iter()
            .find(|r| r.service == s)
            .unwrap()
            .error
            .clone()
            .unwrap()
    };
    assert!(
        error("panics").contains("panicked: health check bug"),
        "{}",
        error("panics")
    );
    assert!(
        error("hangs").contains("timed out after 2s"),
        "{}",
        error("hangs")
    );
}

#[tokio::test(start_paused = true)]
async fn the_result_history_is_bounded() {
    let rig = Rig::new(RecoveryConfig::default().history(3), &["db"]);
    let log = Arc::new(Mutex::new(Vec::new()));
    rig.recovery
        .register_health_check("db", failing_check(log, Instant::now()));
    rig.recovery
        .schedule_with(
            "db",
            5,
            Some(RecoveryPolicy::with_strategy(RecoveryStrategy::Immediate)),
        )
        .unwrap();
    rig.until("db", RecoveryState::Failed).await;
    let attempts: Vec<u32> = rig.recovery.history().iter().map(|r| r.attempt).collect();
    assert_eq!(attempts, [3, 4, 5], "the newest three of five");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_check_that_blocks_its_thread_times_out_without_stalling_the_others() {
    // Real time: a check that blocks an OS thread cannot be interrupted, only outlived. The
    // default isolation runs it on the checks' own runtime.
    let rig = Rig::isolated(RecoveryConfig::default(), &["blocks", "fine"]);
    rig.recovery
        .register_health_check("blocks", |_s: String| async {
            std::thread::sleep(Duration::from_millis(1500));
            Ok(())
        });
    rig.recovery
        .register_health_check("fine", |_s: String| async { Ok(()) });
    let quick = RecoveryPolicy::with_strategy(RecoveryStrategy::Immediate)
        .max_retries(1)
        .health_check_timeout(Duration::from_millis(200));
    let started = Instant::now();
    rig.recovery
        .schedule_with("blocks", 1, Some(quick))
        .unwrap();
    rig.recovery.schedule_with("fine", 2, Some(quick)).unwrap();
    rig.until("fine", RecoveryState::Succeeded).await;
    rig.until("blocks", RecoveryState::Failed).await;
    assert!(
        started.elapsed() < Duration::from_millis(1400),
        "the timeout fired while the check still blocked"
    );
}

#[tokio::test(start_paused = true)]
async fn jitter_spreads_delays_within_its_band() {
    let policy = RecoveryPolicy::with_strategy(RecoveryStrategy::LinearBackoff)
        .initial_delay(Duration::from_secs(10))
        .max_delay(Duration::from_secs(600))
        .jitter(0.5)
        .max_retries(6);
    let times = attempt_times(policy).await;
    let gaps: Vec<u64> = std::iter::once(times[0])
        .chain(times.windows(2).map(|w| w[1] - w[0]))
        .collect();
    for (n, gap) in gaps.iter().enumerate() {
        let nominal = 10_000 * (n as u64 + 1);
        assert!(
            *gap >= nominal / 2 && *gap <= nominal * 3 / 2,
            "attempt {}: {gap} ms vs {nominal} ms",
            n + 1
        );
    }
    let ratios: std::collections::BTreeSet<u64> = gaps
        .iter()
        .enumerate()
        .map(|(n, g)| g * 100 / (10_000 * (n as u64 + 1)))
        .collect();
    assert!(ratios.len() > 2, "jitter must vary the delays: {gaps:?}");
}

#[tokio::test(start_paused = true)]
async fn a_check_that_panics_before_returning_its_future_fails_its_attempt() {
    let rig = Rig::new(RecoveryConfig::default(), &["db"]);
    rig.recovery.register_health_check(
        "db",
        |_s: String| -> std::future::Ready<Result<(), String>> { panic!("bug at creation") },
    );
    let once = RecoveryPolicy::default().max_retries(1);
    rig.recovery.schedule_with("db", 5, Some(once)).unwrap();
    rig.until("db", RecoveryState::Failed).await;
    let error = rig.recovery.history()[0].error.clone().unwrap();
    assert!(error.contains("panicked: bug at creation"), "{error}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn checks_that_block_or_panic_at_creation_leave_the_runtime_free() {
    let rig = Rig::isolated(RecoveryConfig::default(), &["blocks", "panics"]);
    rig.recovery.register_health_check(
        "blocks",
        |_s: String| -> std::future::Ready<Result<(), String>> {
            // Blocks while making the future, the worst place.
            std::thread::sleep(Duration::from_millis(1500));
            std::future::ready(Ok(()))
        },
    );
    rig.recovery.register_health_check(
        "panics",
        |_s: String| -> std::future::Ready<Result<(), String>> { panic!("bug at creation") },
    );
    let quick = RecoveryPolicy::with_strategy(RecoveryStrategy::Immediate)
        .max_retries(1)
        .health_check_timeout(Duration::from_millis(200));
    rig.recovery
        .schedule_with("blocks", 1, Some(quick))
        .unwrap();
    rig.recovery
        .schedule_with("panics", 1, Some(quick))
        .unwrap();
    // The test's own runtime stays responsive throughout: 1 ms sleeps keep their time.
    let started = Instant::now();
    let mut late = Duration::ZERO;
    while started.elapsed() < Duration::from_millis(600) {
        let t = Instant::now();
        tokio::time::sleep(Duration::from_millis(1)).await;
        late = late.max(t.elapsed());
    }
    assert!(
        late < Duration::from_millis(100),
        "the runtime stalled for {late:?}"
    );
    rig.until("panics", RecoveryState::Failed).await;
    rig.until("blocks", RecoveryState::Failed).await;
    assert!(
        started.elapsed() < Duration::from_millis(1400),
        "timed out on time"
    );
}

/// Alerts, as received.
#[derive(Default)]
struct Recorded(Mutex<Vec<resilience_control::health::Alert>>);

impl resilience_control::health::AlertSink for Recorded {
    fn send<'a>(
        &'a self,
        alert: &'a resilience_control::health::Alert,
    ) -> resilience_control::health::BoxFuture<'a, Result<(), resilience_control::health::AlertError>>
    {
        self.0.lock().unwrap().push(alert.clone());
        Box::pin(async { Ok(()) })
    }
}

/// A control plane recovering `db` (its breaker on a manual clock, so only recovery moves it)
/// with `policy`, checks inline on the paused clock, alerts recorded, and a health check that
/// counts its calls and passes once `healthy` is set.
struct Recovering {
    db: Arc<resilience_core::CircuitBreaker<ManualClock>>,
    control: resilience_control::ControlPlane,
    checks: Arc<std::sync::atomic::AtomicU64>,
    healthy: Arc<AtomicBool>,
    alerts: Arc<Recorded>,
}

impl Recovering {
    fn start(policy: RecoveryPolicy) -> Recovering {
        let registry = Arc::new(BreakerRegistry::with_clock(ManualClock::new()));
        let db = registry
            .get_or_create("db", BreakerConfig::default())
            .unwrap();
        let checks = Arc::new(std::sync::atomic::AtomicU64::new(0));
        let healthy = Arc::new(AtomicBool::new(false));
        let alerts = Arc::new(Recorded::default());
        let control = resilience_control::ControlPlane::builder()
            .registry(registry)
            .without_clock_ticker()
            .event_interval(Duration::from_millis(100))
            .recovery(
                RecoveryConfig::default()
                    .default_policy(policy)
                    .check_isolation(CheckIsolation::Inline),
            )
            .alerts(alerts.clone())
            .health_check("db", {
                let (checks, healthy) = (checks.clone(), healthy.clone());
                move |_s: String| {
                    checks.fetch_add(1, Ordering::SeqCst);
                    let ok = healthy.load(Ordering::SeqCst);
                    async move {
                        if ok {
                            Ok(())
                        } else {
                            Err("still down".to_owned())
                        }
                    }
                }
            })
            .spawn()
            .unwrap();
        Recovering {
            db,
            control,
            checks,
            healthy,
            alerts,
        }
    }

    fn checks(&self) -> u64 {
        self.checks.load(Ordering::SeqCst)
    }

    fn recovery_alerts(&self) -> Vec<(resilience_control::health::AlertAction, String)> {
        self.alerts
            .0
            .lock()
            .unwrap()
            .iter()
            .filter(|a| a.class == resilience_control::health::AlertClass::RecoveryExhausted)
            .map(|a| (a.action, a.dedup_key.clone()))
            .collect()
    }
}

#[tokio::test(start_paused = true)]
async fn a_recovery_that_gives_up_cools_down_however_often_the_breaker_reopens() {
    use resilience_control::health::AlertAction;
    let r = Recovering::start(
        RecoveryPolicy::with_strategy(RecoveryStrategy::Immediate)
            .max_retries(3)
            .max_delay(Duration::from_secs(10)),
    );
    let recovery = r.control.recovery().clone();
    r.db.trip_open();
    let at = |secs: u64| async move { tokio::time::sleep(Duration::from_secs(secs)).await };
    let triggers = |r: &Recovering| {
        r.recovery_alerts()
            .iter()
            .filter(|(action, _)| *action == AlertAction::Trigger)
            .count()
    };

    // Three immediate attempts, then it gives up; every failure reopens the breaker, and
    // each OPEN used to schedule a fresh recovery at once (thousands of checks a second).
    at(9).await;
    assert_eq!(r.checks(), 3);
    assert_eq!(recovery.state("db"), RecoveryState::Failed);
    assert_eq!(r.db.state(), State::Open, "the breaker's own cycle goes on");
    assert_eq!(triggers(&r), 1, "it alerted");
    let status = recovery.status();
    assert_eq!(status.services[0].exhaustions, 1);
    assert!(
        status.services[0]
            .next_attempt_in
            .is_some_and(|d| d <= Duration::from_secs(1))
    );

    // The cool-down (max_delay, 10 s) ends: a new round, then a doubled cool-down (20 s).
    at(2).await;
    assert_eq!(r.checks(), 6);
    at(18).await;
    assert_eq!(r.checks(), 6, "cooling down 20 s");
    at(3).await;
    assert_eq!(r.checks(), 9);
    assert_eq!(recovery.stats().exhausted, 3);
    assert_eq!(recovery.status().services[0].exhaustions, 3);

    // An operator's reset starts a round at once; this time the dependency is back.
    r.healthy.store(true, Ordering::SeqCst);
    recovery.reset("db").unwrap();
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert_eq!(recovery.state("db"), RecoveryState::Succeeded);
    assert_eq!(r.db.state(), State::Closed);
    assert_eq!(r.checks(), 10);
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert_eq!(triggers(&r), 3);
    assert_eq!(
        r.recovery_alerts().len(),
        3,
        "a reset forgets the exhaustions: no resolve"
    );
    r.control.shutdown().await.unwrap();
}

#[tokio::test(start_paused = true)]
async fn after_giving_up_a_later_success_resolves_the_alert() {
    use resilience_control::health::AlertAction;
    let r = Recovering::start(
        RecoveryPolicy::with_strategy(RecoveryStrategy::Immediate)
            .max_retries(2)
            .max_delay(Duration::from_secs(5)),
    );
    r.db.trip_open();
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(r.control.recovery().state("db"), RecoveryState::Failed);
    r.healthy.store(true, Ordering::SeqCst);
    tokio::time::sleep(Duration::from_secs(5)).await;
    assert_eq!(r.control.recovery().state("db"), RecoveryState::Succeeded);
    assert_eq!(r.db.state(), State::Closed);
    assert_eq!(
        r.recovery_alerts(),
        [
            (AlertAction::Trigger, "resilience-recovery-db".to_owned()),
            (AlertAction::Resolve, "resilience-recovery-db".to_owned())
        ]
    );
    r.control.shutdown().await.unwrap();
}

/// Probes in the first simulated hour against a dependency that never comes back, through a
/// control plane (so the breaker's own reopenings reach the orchestrator).
async fn probes_in_an_hour(policy: RecoveryPolicy) -> u64 {
    let r = Recovering::start(policy);
    r.db.trip_open();
    tokio::time::sleep(Duration::from_secs(3600)).await;
    r.control.shutdown().await.unwrap();
    r.checks()
}

#[tokio::test(start_paused = true)]
async fn giving_up_bounds_the_probes_an_unreachable_dependency_gets() {
    // Default policy: 5 attempts over 31 s, then cool-downs of 60, 120, 240, 480, 960 s.
    let default = probes_in_an_hour(RecoveryPolicy::default()).await;
    // IMMEDIATE: 5 back to back per round (it used to loop at thousands a second).
    let immediate =
        probes_in_an_hour(RecoveryPolicy::with_strategy(RecoveryStrategy::Immediate)).await;
    eprintln!("probes in the first hour: default policy {default}, immediate {immediate}");
    assert_eq!(default, 30, "six rounds of five");
    assert!(immediate <= 35, "{immediate}");
}

#[tokio::test(start_paused = true)]
async fn execute_runs_one_validated_attempt_now_and_status_has_the_seeds_shape() {
    let rig = Rig::new(RecoveryConfig::default(), &["db", "cache", "slow"]);
    let log = Arc::new(Mutex::new(Vec::new()));
    rig.recovery
        .register_health_check("db", failing_check(log.clone(), Instant::now()));
    rig.recovery
        .register_health_check("cache", |_s: String| async { Ok(()) });
    rig.recovery
        .register_health_check("slow", |_s: String| async {
            tokio::time::sleep(Duration::from_secs(30)).await;
            Ok(())
        });

    // Passing: the breaker closes, at once, without waiting for any schedule.
    let passed = rig.recovery.execute("cache").await.unwrap();
    assert!(passed.success);
    assert_eq!(
        (passed.attempt, passed.state),
        (1, RecoveryState::Succeeded)
    );
    assert_eq!(rig.registry.get("cache").unwrap().state(), State::Closed);

    // Failing: the breaker reopens and the next attempt is scheduled by the policy.
    let failed = rig.recovery.execute("db").await.unwrap();
    assert!(!failed.success);
    assert_eq!(failed.error.as_deref(), Some("still down"));
    assert_eq!(failed.state, RecoveryState::Scheduled);
    assert_eq!(rig.registry.get("db").unwrap().state(), State::Open);
    assert_eq!(rig.recovery.policy("db"), RecoveryPolicy::default());

    // A running attempt is not doubled.
    rig.recovery
        .schedule_with(
            "slow",
            1,
            Some(
                RecoveryPolicy::with_strategy(RecoveryStrategy::Immediate)
                    .health_check_timeout(Duration::from_secs(60)),
            ),
        )
        .unwrap();
    rig.until("slow", RecoveryState::InProgress).await;
    assert!(matches!(
        rig.recovery.execute("slow").await,
        Err(RecoveryError::InProgress { .. })
    ));
    assert!(matches!(
        rig.recovery.execute("nothing").await,
        Err(RecoveryError::UnknownService { .. })
    ));

    let status = rig.recovery.status();
    assert_eq!(
        (status.active, status.queued),
        (1, 1),
        "slow runs, db waits"
    );
    assert_eq!(status.recent.len(), 2);
    let db = status.services.iter().find(|s| s.service == "db").unwrap();
    assert_eq!(db.strategy, RecoveryStrategy::ExponentialBackoff);
    assert_eq!((db.attempts, db.max_attempts), (1, 5));
    assert!(db.scheduled_at.is_some() && db.last_attempt_at.is_some());
    assert!(db.next_attempt_at.is_some() && db.next_attempt_in.is_some());
    let json = serde_json::to_value(&status).unwrap();
    for key in [
        "services",
        "active",
        "queued",
        "recent",
        "stats",
        "governance",
    ] {
        assert!(json.get(key).is_some(), "{key} in {json}");
    }
    assert_eq!(json["services"][1]["service"], "db");
    assert!(json["services"][1]["next_attempt_at"].is_string());
}
