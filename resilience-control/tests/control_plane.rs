//! `ControlPlane`: start-up checks, the loops working together, and shutdown.
#![allow(clippy::unwrap_used, clippy::expect_used)] // tests may panic on bad setup

use std::sync::Arc;
use std::time::Duration;

use resilience_control::health::{HealthConfig, HealthStatus};
use resilience_control::recovery::{
    RecoveryConfig, RecoveryPolicy, RecoveryState, RecoveryStrategy,
};
use resilience_control::{
    BreakerSource, BuildError, ControlError, ControlPlane, RecoverableBreaker,
};
use resilience_core::{
    BreakerConfig, BreakerId, BreakerRegistry, BreakerSnapshot, CoarseClock, EventChannel,
    GovernanceHash, ManualClock, State,
};

fn registry() -> Arc<BreakerRegistry<ManualClock>> {
    Arc::new(BreakerRegistry::with_clock(ManualClock::new()))
}

#[test]
fn a_governance_mismatch_refuses_to_start_naming_the_component_and_both_values() {
    let other = GovernanceHash::from_u64(0x0123_4567_89ab_cdef);
    // The registry carries the default tag; the deployment requires another.
    match ControlPlane::builder()
        .registry(registry())
        .governance(other)
        .without_clock_ticker()
        .build()
    {
        Err(BuildError::Governance(m)) => {
            assert_eq!(m.component, "breaker registry");
            assert_eq!((m.expected, m.found), (other, GovernanceHash::DEFAULT));
            let text = BuildError::Governance(m).to_string();
            assert!(
                text.contains("0123456789abcdef") && text.contains("cdd01ef066bc6cf2"),
                "{text}"
            );
        }
        other => panic!("expected a governance error, got {:?}", other.err()),
    }
    let health = HealthConfig::default().governance(other);
    match ControlPlane::builder()
        .registry(registry())
        .health(health)
        .without_clock_ticker()
        .build()
    {
        Err(BuildError::Governance(m)) => assert_eq!(m.component, "health aggregator"),
        other => panic!("expected a governance error, got {:?}", other.err()),
    }
    let recovery = RecoveryConfig::default().governance(other);
    match ControlPlane::builder()
        .registry(registry())
        .recovery(recovery)
        .without_clock_ticker()
        .build()
    {
        Err(BuildError::Governance(m)) => assert_eq!(m.component, "recovery orchestrator"),
        other => panic!("expected a governance error, got {:?}", other.err()),
    }
}

#[test]
fn bad_settings_are_typed_errors() {
    assert!(matches!(
        ControlPlane::builder().build(),
        Err(BuildError::MissingRegistry)
    ));
    let err = ControlPlane::builder()
        .registry(registry())
        .event_interval(Duration::ZERO)
        .without_clock_ticker()
        .build()
        .err()
        .unwrap();
    assert!(
        matches!(err, BuildError::Config(ref c) if c.field() == Some("event_interval")),
        "{err}"
    );
    let err = ControlPlane::builder()
        .registry(registry())
        .recovery_policy("db", RecoveryPolicy::default().multiplier(0.0))
        .without_clock_ticker()
        .build()
        .err()
        .unwrap();
    assert!(
        matches!(err, BuildError::Config(ref c) if c.field() == Some("multiplier")),
        "{err}"
    );
}

#[tokio::test(start_paused = true)]
async fn an_opening_breaker_is_recovered_automatically() {
    let registry = registry();
    let db = registry
        .get_or_create("db", BreakerConfig::builder().fail_max(2).build().unwrap())
        .unwrap();
    let control = ControlPlane::builder()
        .registry(registry.clone())
        .health_check("db", |_s: String| async { Ok(()) })
        .recovery_policy(
            "db",
            RecoveryPolicy::with_strategy(RecoveryStrategy::Immediate),
        )
        .without_clock_ticker()
        .spawn()
        .unwrap();
    let mut events = control.events();
    db.try_acquire().unwrap().failure();
    db.try_acquire().unwrap().failure();
    assert_eq!(db.state(), State::Open);
    let opened = events.recv().await.unwrap();
    assert_eq!((opened.from, opened.to), (State::Closed, State::Open));
    while control.recovery().state("db") != RecoveryState::Succeeded {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    assert_eq!(
        db.state(),
        State::Closed,
        "recovered without waiting out the 30 s reset timeout"
    );
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(control.health().report().status, HealthStatus::Healthy);
    control.shutdown().await.unwrap();
}

#[tokio::test(start_paused = true)]
async fn breakers_without_a_health_check_are_left_to_their_own_probes() {
    let registry = registry();
    let db = registry.breaker("db").unwrap();
    let control = ControlPlane::builder()
        .registry(registry.clone())
        .without_clock_ticker()
        .spawn()
        .unwrap();
    db.trip_open();
    tokio::time::sleep(Duration::from_secs(5)).await;
    assert_eq!(control.recovery().state("db"), RecoveryState::Idle);
    assert_eq!(db.state(), State::Open);
    control.shutdown().await.unwrap();
}

#[tokio::test(start_paused = true)]
async fn shutdown_drains_events_emitted_before_it_and_stops_the_loops() {
    let registry = registry();
    let db = registry.breaker("db").unwrap();
    let control = ControlPlane::builder()
        .registry(registry.clone())
        .event_interval(Duration::from_secs(10))
        .without_clock_ticker()
        .spawn()
        .unwrap();
    let mut events = control.events();
    tokio::task::yield_now().await;
    db.force_open();
    db.reset();
    // The pump polls every 10 s; shutdown must not leave these two behind.
    control.shutdown().await.unwrap();
    assert!(!control.is_running());
    let got: Vec<State> = [events.recv().await.unwrap(), events.recv().await.unwrap()]
        .iter()
        .map(|e| e.to)
        .collect();
    assert_eq!(got, [State::ForcedOpen, State::Closed]);
    control.shutdown().await.unwrap();
}

#[tokio::test(start_paused = true)]
async fn dropping_the_last_handle_stops_the_driver() {
    let (control, driver) = ControlPlane::builder()
        .registry(registry())
        .without_clock_ticker()
        .build()
        .unwrap();
    let running = tokio::spawn(driver);
    let clone = control.clone();
    drop(control);
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert!(!running.is_finished(), "a clone still holds it");
    drop(clone);
    tokio::time::timeout(Duration::from_secs(10), running)
        .await
        .unwrap()
        .unwrap()
        .unwrap();
}

#[tokio::test]
async fn the_control_plane_ticks_the_coarse_clock_while_it_runs() {
    let clock = CoarseClock::new();
    let control = ControlPlane::builder()
        .registry(registry())
        .clock_ticker(clock.clone(), Duration::from_millis(1))
        .spawn()
        .unwrap();
    assert!(clock.is_ticking());
    control.shutdown().await.unwrap();
    assert!(
        !clock.is_ticking(),
        "the ticker stops with the control plane"
    );
}

#[tokio::test]
async fn shutdown_without_a_driver_says_so() {
    let (control, driver) = ControlPlane::builder()
        .registry(registry())
        .without_clock_ticker()
        .build()
        .unwrap();
    drop(driver);
    assert!(matches!(
        control.shutdown().await,
        Err(ControlError::DriverNotRunning)
    ));
}

/// A source whose snapshot panics: the health loop dies, and the control plane must stop and
/// say so rather than limp on.
struct Broken(Arc<BreakerRegistry<ManualClock>>);

impl BreakerSource for Broken {
    fn snapshots(&self) -> Vec<(Arc<str>, BreakerSnapshot)> {
        panic!("snapshot bug")
    }
    fn breaker(&self, name: &str) -> Option<Arc<dyn RecoverableBreaker>> {
        BreakerSource::breaker(&*self.0, name)
    }
    fn name_of(&self, id: BreakerId) -> Option<Arc<str>> {
        BreakerSource::name_of(&*self.0, id)
    }
    fn events(&self) -> Arc<EventChannel> {
        BreakerSource::events(&*self.0)
    }
    fn governance(&self) -> GovernanceHash {
        GovernanceHash::DEFAULT
    }
}

#[tokio::test(start_paused = true)]
async fn a_panicking_loop_stops_the_control_plane_and_is_reported() {
    let (control, driver) = ControlPlane::builder()
        .registry(Arc::new(Broken(registry())))
        .without_clock_ticker()
        .build()
        .unwrap();
    let result = tokio::spawn(driver).await.unwrap();
    match result {
        Err(ControlError::LoopPanicked { name, message }) => {
            assert_eq!(name, "health");
            assert!(message.contains("snapshot bug"));
        }
        other => panic!("expected a loop panic, got {other:?}"),
    }
    assert!(!control.is_running());
    assert!(matches!(
        control.shutdown().await,
        Err(ControlError::LoopPanicked { .. })
    ));
}
