//! The governance tag in every error, report and snapshot (the original's "all exceptions
//! include the constitutional hash field for audit trails").
//!
//! One test, because the process's tag is process-wide and this test changes it.
#![allow(clippy::unwrap_used, clippy::expect_used)] // tests may panic on bad setup

use std::sync::Arc;
use std::time::Duration;

use resilience_control::chaos::{ChaosConfig, ChaosEngine, ChaosEngineError};
use resilience_control::fleet::FleetError;
use resilience_control::health::{AlertError, HealthAggregator, HealthConfig};
use resilience_control::metering::{
    HookError, MeteringError, SinkError, SpoolError, SpoolReadError,
};
use resilience_control::recovery::{RecoveryConfig, RecoveryError, RecoveryOrchestrator};
use resilience_control::{
    BuildError, ConfigLoadError, ControlError, ControlPlane, EnvError, ResilienceConfig,
};
use resilience_core::chaos::{ChaosError, FaultTable};
use resilience_core::meter::{EventIdParseError, LockError, MeterError, Refused};
use resilience_core::{
    BreakerConfig, BreakerEvent, BreakerRegistry, CallError, CircuitBreaker, ClockError,
    ConfigError, GovernanceHash, GovernanceMismatch, Governed, HashParseError, ManualClock,
    RegistryError, UsageEvent,
};

/// Every error type of both crates is [`Governed`]: adding one without it fails to compile here.
#[allow(dead_code)]
fn every_error_type_is_governed() {
    fn governed<T: Governed + std::error::Error>() {}
    governed::<ConfigError>();
    governed::<RegistryError>();
    governed::<ChaosError>();
    governed::<ClockError>();
    governed::<CallError<std::io::Error>>();
    governed::<GovernanceMismatch>();
    governed::<HashParseError>();
    governed::<LockError>();
    governed::<MeterError>();
    governed::<EventIdParseError>();
    governed::<Refused>();
    governed::<ChaosEngineError>();
    governed::<RecoveryError>();
    governed::<BuildError>();
    governed::<ControlError>();
    governed::<ConfigLoadError>();
    governed::<EnvError>();
    governed::<FleetError>();
    governed::<AlertError>();
    governed::<MeteringError>();
    governed::<HookError>();
    governed::<SinkError>();
    governed::<SpoolError>();
    governed::<SpoolReadError>();
    fn carries<T: Governed>() {}
    carries::<BreakerEvent>();
    carries::<UsageEvent>();
}

#[tokio::test]
async fn every_error_report_and_snapshot_carries_the_tag() {
    let default = GovernanceHash::DEFAULT;
    assert_eq!(GovernanceHash::for_process(), default);

    // Errors raised with no component tag of their own report the process's.
    let config = CircuitBreaker::builder("db")
        .fail_max(0)
        .build()
        .unwrap_err();
    assert_eq!(config.governance(), default);
    let registry = Arc::new(BreakerRegistry::with_clock(ManualClock::new()));
    assert_eq!(
        registry.reset("nope").unwrap_err().governance(),
        default,
        "RegistryError::Unknown"
    );
    let engine = ChaosEngine::builder(Arc::new(FaultTable::builder().build().unwrap()))
        .config(ChaosConfig::default())
        .build()
        .unwrap();
    let disabled = engine
        .inject_latency("x", Duration::from_millis(5))
        .start()
        .unwrap_err();
    assert!(matches!(disabled, ChaosEngineError::Disabled));
    assert_eq!(disabled.governance(), default);
    let bad_config = ResilienceConfig::from_toml_str("health = 3", &|_| None).unwrap_err();
    assert_eq!(bad_config.governance(), default);

    // Errors from a component that holds a tag report that tag.
    let tagged = GovernanceHash::from_u64(0x0123_4567_89ab_cdef);
    let breaker = CircuitBreaker::builder("tagged")
        .fail_max(1)
        .governance(tagged)
        .build()
        .unwrap();
    let _ = breaker.call(|| Err::<(), _>(std::io::Error::other("down")));
    let rejected = breaker.call(|| Ok::<(), std::io::Error>(())).unwrap_err();
    assert!(matches!(rejected, CallError::Rejected(_)));
    assert_eq!(rejected.governance(), tagged);
    let conflict = {
        let tagged_registry = BreakerRegistry::with_clock(ManualClock::new());
        let first = BreakerConfig::builder().fail_max(3).build().unwrap();
        let second = BreakerConfig::builder().fail_max(4).build().unwrap();
        tagged_registry.get_or_create("db", first).unwrap();
        tagged_registry.get_or_create("db", second).unwrap_err()
    };
    assert_eq!(conflict.governance(), default);
    let mismatch = ControlPlane::builder()
        .registry(registry.clone())
        .governance(tagged)
        .without_clock_ticker()
        .build()
        .err()
        .unwrap();
    assert!(matches!(mismatch, BuildError::Governance(_)));
    assert_eq!(
        mismatch.governance(),
        tagged,
        "the tag the deployment requires"
    );

    // Health snapshots carry their aggregator's tag, also when serialised.
    let health = HealthAggregator::new(registry.clone(), HealthConfig::default(), None).unwrap();
    health.sample();
    let history = health.history(Duration::from_secs(300));
    assert!(!history.is_empty());
    for snapshot in &history {
        assert_eq!(snapshot.governance, default);
        let json = serde_json::to_value(snapshot).unwrap();
        assert_eq!(json["governance"], "cdd01ef066bc6cf2", "{json}");
    }

    // A control plane built under another tag makes it the process's: errors raised afterwards
    // report it.
    let tagged_registry = Arc::new(
        BreakerRegistry::with_clock(ManualClock::new())
            .with_defaults(BreakerConfig::builder().governance(tagged).build().unwrap()),
    );
    let (control, driver) = ControlPlane::builder()
        .registry(tagged_registry.clone())
        .governance(tagged)
        .health(HealthConfig::default().governance(tagged))
        .recovery(RecoveryConfig::default().governance(tagged))
        .without_clock_ticker()
        .build()
        .unwrap();
    drop(driver);
    assert_eq!(GovernanceHash::for_process(), tagged);
    let recovery = RecoveryOrchestrator::new(
        tagged_registry,
        RecoveryConfig::default().governance(tagged),
    )
    .unwrap();
    let unknown = recovery.execute("nope").await.unwrap_err();
    assert!(matches!(unknown, RecoveryError::UnknownService { .. }));
    assert_eq!(unknown.governance(), tagged);
    assert_eq!(registry.reset("nope").unwrap_err().governance(), tagged);
    drop(control);
    default.declare_for_process();
}
