//! Every handle is `Send + Sync` and every future the control plane returns is `Send`, so they
//! work on a multi-threaded runtime and across `tokio::spawn`.
#![allow(clippy::unwrap_used)] // tests may panic on bad setup

use std::time::Duration;

use resilience_control::chaos::{ChaosConfig, ChaosEngine, Resources, ScopedChaos};
use resilience_control::health::{HealthAggregator, PagerDutySink};
use resilience_control::metering::{MeteringFlusher, RedisStreamSink};
use resilience_control::recovery::RecoveryOrchestrator;
use resilience_control::{ControlDriver, ControlPlane};
use tokio_util::sync::CancellationToken;

fn send_sync<T: Send + Sync>() {}
fn send<T: Send>(_: &T) {}

#[test]
fn handles_are_send_and_sync_and_futures_are_send() {
    send_sync::<ControlPlane>();
    send_sync::<HealthAggregator>();
    send_sync::<RecoveryOrchestrator>();
    send_sync::<PagerDutySink>();
    send_sync::<ChaosEngine>();
    send_sync::<ScopedChaos>();
    send_sync::<Resources>();
    send_sync::<MeteringFlusher>();
    send_sync::<RedisStreamSink>();
    fn is_send<T: Send>() {}
    is_send::<ControlDriver>();
    let registry = std::sync::Arc::new(resilience_core::BreakerRegistry::new());
    let (control, driver) = ControlPlane::builder()
        .registry(registry)
        .without_clock_ticker()
        .build()
        .unwrap();
    send(&driver);
    send(&control.shutdown());
    send(&control.health().run(CancellationToken::new()));
    send(&control.health().finish(Duration::ZERO));
    send(&control.recovery().run(CancellationToken::new()));
    send(&control.recovery().finish_attempts(Duration::ZERO));
    let table = std::sync::Arc::new(
        resilience_core::chaos::FaultTable::builder()
            .build()
            .unwrap(),
    );
    let engine = ChaosEngine::builder(table)
        .config(ChaosConfig::default().enabled(true))
        .build()
        .unwrap();
    send(&engine.run(CancellationToken::new()));
    send(&engine.resources().disk_io().consume(1));
    send(&engine.partition("db").run(async {}));
}
