//! `ChaosEngine`: every validation error, the production guard, expiry on paused time, a name
//! re-used after expiry, emergency stop seen by every thread at once, forced breakers restored,
//! resources really taken and released, scoped guards, the test helper under a panic, metrics,
//! and the control plane ending chaos at shutdown.
#![allow(clippy::unwrap_used, clippy::expect_used)] // tests may panic on bad setup

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use resilience_control::chaos::{ChaosConfig, ChaosEngine, ChaosEngineError};
use resilience_control::{ControlPlane, TokioClock};
use resilience_core::chaos::{ChaosError, ErrorCode, Fault, FaultTable, Resource};
use resilience_core::{BreakerRegistry, State};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

const SECOND: Duration = Duration::from_secs(1);

struct Rig {
    table: Arc<FaultTable<TokioClock>>,
    registry: Arc<BreakerRegistry>,
    engine: ChaosEngine,
}

fn rig(config: ChaosConfig) -> Rig {
    let table = Arc::new(
        FaultTable::builder()
            .clock(TokioClock::new())
            .build()
            .unwrap(),
    );
    let registry = Arc::new(BreakerRegistry::new());
    let engine = ChaosEngine::builder(table.clone())
        .breakers(registry.clone())
        .config(config)
        .build()
        .unwrap();
    Rig {
        table,
        registry,
        engine,
    }
}

fn enabled() -> ChaosConfig {
    ChaosConfig::default().enabled(true)
}

/// Spawns the engine's sweeper; cancel the token to stop it.
fn sweeper(engine: &ChaosEngine) -> CancellationToken {
    let stop = CancellationToken::new();
    let (engine, token) = (engine.clone(), stop.clone());
    tokio::spawn(async move { engine.run(token).await });
    stop
}

fn invalid_field(err: &ChaosEngineError) -> (&'static str, String) {
    match err {
        ChaosEngineError::Chaos(ChaosError::Invalid { field, value, .. }) => (field, value.clone()),
        other => panic!("expected a field error, got {other:?}"),
    }
}

#[tokio::test(start_paused = true)]
async fn chaos_is_refused_unless_enabled_in_configuration() {
    let r = rig(ChaosConfig::default());
    let err = r
        .engine
        .inject_latency("db", Duration::from_millis(10))
        .start()
        .unwrap_err();
    assert_eq!(err, ChaosEngineError::Disabled);
    assert!(err.to_string().contains("CHAOS_ENABLED"), "{err}");
    assert_eq!(r.engine.metrics().refused, 1);
    assert!(r.table.active().is_empty());

    let from_env =
        ChaosConfig::from_vars(&|name| (name == "CHAOS_ENABLED").then(|| "yes".to_owned()))
            .unwrap();
    assert!(from_env.enabled);
    let bad = ChaosConfig::from_vars(&|name| (name == "CHAOS_ENABLED").then(|| "maybe".to_owned()))
        .unwrap_err();
    assert_eq!(
        (bad.variable, bad.value.as_str()),
        ("CHAOS_ENABLED", "maybe")
    );
    let bad = ChaosConfig::from_vars(&|name| {
        (name == "CHAOS_MAX_DURATION_SECONDS").then(|| "5m".to_owned())
    })
    .unwrap_err();
    assert_eq!(
        (bad.variable, bad.value.as_str()),
        ("CHAOS_MAX_DURATION_SECONDS", "5m")
    );
    assert!(
        bad.to_string()
            .contains("CHAOS_MAX_DURATION_SECONDS=\"5m\""),
        "{bad}"
    );
}

#[tokio::test(start_paused = true)]
async fn every_bound_is_a_typed_error_naming_the_field_and_value() {
    let r = rig(enabled());
    let e = &r.engine;
    r.registry.breaker("payments").unwrap();

    let err = e
        .inject_latency("db", Duration::from_millis(10))
        .duration(Duration::from_secs(301))
        .start()
        .unwrap_err();
    assert_eq!(invalid_field(&err), ("duration", "301s".to_owned()));

    let err = e
        .inject_latency("db", Duration::from_millis(5001))
        .start()
        .unwrap_err();
    assert_eq!(invalid_field(&err), ("latency", "5.001s".to_owned()));

    let err = e
        .inject_errors("db", 1.5, ErrorCode(503))
        .start()
        .unwrap_err();
    assert_eq!(invalid_field(&err), ("error_rate", "1.5".to_owned()));
    let err = e
        .inject_errors("db", f64::NAN, ErrorCode(503))
        .start()
        .unwrap_err();
    assert_eq!(invalid_field(&err).0, "error_rate");
    let err = e.partition("db").rate(-0.1).start().unwrap_err();
    assert_eq!(invalid_field(&err), ("rate", "-0.1".to_owned()));

    let err = e
        .simulate_resource_exhaustion(Resource::Memory, 0.0, "db")
        .start()
        .unwrap_err();
    assert_eq!(invalid_field(&err), ("level", "0".to_owned()));
    let err = e
        .simulate_resource_exhaustion(Resource::Memory, 1.5, "db")
        .start()
        .unwrap_err();
    assert_eq!(invalid_field(&err), ("level", "1.5".to_owned()));

    let err = e.inject_timeouts("db", Duration::ZERO).start().unwrap_err();
    assert_eq!(invalid_field(&err).0, "timeout");

    let err = e.partition("").start().unwrap_err();
    assert_eq!(invalid_field(&err), ("target", "\"\"".to_owned()));
    let err = e.partition("db").name("").start().unwrap_err();
    assert_eq!(invalid_field(&err).0, "name");

    let err = e
        .partition("db")
        .blast_radius(["cache", "queue"])
        .start()
        .unwrap_err();
    assert!(
        matches!(&err, ChaosEngineError::Chaos(ChaosError::TargetOutsideBlastRadius { target, .. }) if target == "db"),
        "{err:?}"
    );
    assert_eq!(err.field(), Some("blast_radius"));

    let err = e.force_circuit_open("nonexistent").start().unwrap_err();
    assert_eq!(
        err,
        ChaosEngineError::UnknownBreaker {
            name: "nonexistent".into()
        }
    );

    // Nothing refused touched anything; what was accepted stays.
    assert!(r.table.active().is_empty());
    let id = e.partition("db").name("cut").start().unwrap();
    let err = e
        .inject_latency("cache", SECOND)
        .name("cut")
        .start()
        .unwrap_err();
    assert!(
        matches!(&err, ChaosEngineError::Chaos(ChaosError::DuplicateName { name }) if name == "cut"),
        "{err:?}"
    );
    let active = r.table.active();
    assert_eq!(active.len(), 1);
    assert_eq!(active[0].id, id);
    assert_eq!(e.metrics().refused, 13);
    assert_eq!(e.metrics().started, 1);
}

#[tokio::test(start_paused = true)]
async fn the_maximum_duration_comes_from_configuration() {
    let r = rig(enabled().max_duration(Duration::from_secs(30)));
    let err = r
        .engine
        .partition("db")
        .duration(Duration::from_secs(31))
        .start()
        .unwrap_err();
    assert_eq!(invalid_field(&err), ("duration", "31s".to_owned()));
    assert!(err.to_string().contains("at most 30s"), "{err}");
    // Without a duration a scenario gets the default, capped at the maximum.
    r.engine.partition("db").start().unwrap();
    assert_eq!(r.engine.active()[0].remaining, Duration::from_secs(30));
}

#[tokio::test(start_paused = true)]
async fn scenarios_expire_on_time() {
    let r = rig(enabled());
    let stop = sweeper(&r.engine);
    let db = r.table.point("db").unwrap();
    r.engine
        .inject_latency("db", Duration::from_millis(250))
        .duration(Duration::from_secs(10))
        .start()
        .unwrap();
    tokio::time::sleep(Duration::from_millis(9_999)).await;
    assert_eq!(
        r.table.check(db),
        Some(Fault::Latency(Duration::from_millis(250)))
    );
    assert_eq!(r.engine.active()[0].remaining, Duration::from_millis(1));
    tokio::time::sleep(Duration::from_millis(2)).await;
    assert_eq!(r.table.check(db), None, "expired in the data plane");
    tokio::task::yield_now().await;
    assert!(r.engine.active().is_empty());
    let m = r.engine.metrics();
    assert_eq!((m.started, m.expired, m.active), (1, 1, 0));
    assert_eq!(r.table.armed_entries(), 0, "the sweeper freed the slot");
    stop.cancel();
}

#[tokio::test(start_paused = true)]
async fn a_name_reused_after_expiry_is_never_ended_by_the_old_timer() {
    let r = rig(enabled());
    let stop = sweeper(&r.engine);
    let db = r.table.point("db").unwrap();
    let first = r
        .engine
        .partition("db")
        .name("cut")
        .duration(Duration::from_secs(5))
        .start()
        .unwrap();
    tokio::time::sleep(Duration::from_secs(6)).await;
    assert!(r.engine.active().is_empty());
    // Re-use the name before and after the old expiry would have been swept.
    let second = r
        .engine
        .partition("db")
        .name("cut")
        .duration(Duration::from_secs(20))
        .start()
        .unwrap();
    assert_ne!(first, second);
    tokio::time::sleep(Duration::from_secs(10)).await;
    assert_eq!(r.table.check(db), Some(Fault::Partition));
    assert_eq!(r.engine.active()[0].id, second);
    tokio::time::sleep(Duration::from_secs(11)).await;
    assert_eq!(r.table.check(db), None);
    assert_eq!(r.engine.metrics().expired, 2);
    stop.cancel();
}

#[tokio::test(start_paused = true)]
async fn deactivate_ends_one_scenario_by_name() {
    let r = rig(enabled());
    let (db, cache) = (
        r.table.point("db").unwrap(),
        r.table.point("cache").unwrap(),
    );
    r.engine.partition("db").start().unwrap();
    r.engine.partition("cache").start().unwrap();
    r.engine.deactivate("network_partition:db").unwrap();
    assert_eq!(r.table.check(db), None);
    assert_eq!(r.table.check(cache), Some(Fault::Partition));
    let err = r.engine.deactivate("network_partition:db").unwrap_err();
    assert!(
        matches!(err, ChaosEngineError::Chaos(ChaosError::Unknown { .. })),
        "{err:?}"
    );
    assert_eq!(r.engine.metrics().deactivated, 1);
}

#[tokio::test(start_paused = true)]
async fn forced_breakers_open_and_are_restored_when_the_scenario_ends() {
    let r = rig(enabled());
    let stop = sweeper(&r.engine);
    let payments = r.registry.breaker("payments").unwrap();
    let ledger = r.registry.breaker("ledger").unwrap();
    let untouched = r.registry.breaker("search").unwrap();
    r.engine
        .force_circuit_open("payments")
        .blast_radius(["payments", "ledger", "not-a-breaker"])
        .duration(Duration::from_secs(30))
        .start()
        .unwrap();
    assert_eq!(payments.state(), State::ForcedOpen);
    assert_eq!(ledger.state(), State::ForcedOpen);
    assert_eq!(untouched.state(), State::Closed);
    assert!(payments.try_acquire().is_err());
    tokio::time::sleep(Duration::from_secs(31)).await;
    assert_eq!(payments.state(), State::Closed, "restored at expiry");
    assert_eq!(ledger.state(), State::Closed);
    stop.cancel();
}

#[test]
fn emergency_stop_is_seen_by_every_thread_at_once() {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let _entered = runtime.enter();
    let table = Arc::new(FaultTable::builder().build().unwrap());
    let registry = Arc::new(BreakerRegistry::new());
    let breaker = registry.breaker("db").unwrap();
    let engine = ChaosEngine::builder(table.clone())
        .breakers(registry.clone())
        .config(enabled().connections(4))
        .build()
        .unwrap();
    let point = table.point("db").unwrap();
    engine
        .inject_errors("db", 1.0, ErrorCode(503))
        .start()
        .unwrap();
    engine
        .force_circuit_open("db")
        .name("forced")
        .start()
        .unwrap();
    engine
        .simulate_resource_exhaustion(Resource::Connections, 1.0, "db")
        .start()
        .unwrap();
    assert_eq!(engine.resources().connections().available(), 0);

    let threads = 2;
    let stop_at = AtomicU64::new(0);
    let ready = std::sync::Barrier::new(threads + 1);
    let base = std::time::Instant::now();
    let nanos = || base.elapsed().as_nanos() as u64;
    let seen: Vec<u64> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..threads)
            .map(|_| {
                s.spawn(|| {
                    let mut injected = 0u64;
                    ready.wait();
                    loop {
                        if table.check(point).is_none() {
                            let now = nanos();
                            assert!(injected > 0, "chaos was live before the stop");
                            return now.saturating_sub(stop_at.load(Ordering::Acquire));
                        }
                        injected += 1;
                    }
                })
            })
            .collect();
        ready.wait();
        std::thread::sleep(Duration::from_millis(20));
        stop_at.store(nanos(), Ordering::Release);
        let report = engine.emergency_stop();
        assert_eq!(report.scenarios, 3);
        assert_eq!(report.breakers_restored, 1);
        assert_eq!(report.resources_released, 1);
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    for lag in &seen {
        assert!(*lag < 50_000_000, "a thread saw the stop {lag} ns late");
    }
    eprintln!("emergency stop seen after {seen:?} ns");
    assert_eq!(breaker.state(), State::Closed);
    assert_eq!(engine.resources().connections().available(), 4);
    assert!(engine.active().is_empty());
    // Stopped means stopped until resumed.
    let err = engine.partition("db").start().unwrap_err();
    assert_eq!(err, ChaosEngineError::Chaos(ChaosError::EmergencyStopped));
    engine.resume().unwrap();
    engine.partition("db").start().unwrap();
    assert_eq!(engine.metrics().emergency_stops, 1);
}

#[tokio::test(start_paused = true)]
async fn connections_and_bandwidth_are_taken_and_given_back() {
    let r = rig(enabled()
        .connections(10)
        .disk_io_bytes_per_sec(1_000_000)
        .network_bytes_per_sec(1_000_000));
    let stop = sweeper(&r.engine);
    let res = r.engine.resources().clone();

    // Outside chaos nothing waits.
    assert_eq!(res.disk_io().consume(10_000_000).await, Duration::ZERO);
    let before: Vec<_> = (0..10)
        .map(|_| res.connections().try_acquire().unwrap())
        .collect();
    assert!(res.connections().try_acquire().is_none());
    drop(before);

    r.engine
        .simulate_resource_exhaustion(Resource::Connections, 0.5, "db")
        .duration(Duration::from_secs(10))
        .start()
        .unwrap();
    assert_eq!(res.connections().available(), 5);
    let held: Vec<_> = (0..5)
        .map(|_| res.connections().try_acquire().unwrap())
        .collect();
    assert!(
        res.connections().try_acquire().is_none(),
        "half the slots are held by chaos"
    );

    r.engine
        .simulate_resource_exhaustion(Resource::DiskIo, 0.5, "db")
        .duration(Duration::from_secs(10))
        .start()
        .unwrap();
    // 500 kB/s left: 1 MB takes 2 s, and a second caller queues behind the first.
    let started = Instant::now();
    let (a, b) = tokio::join!(
        res.disk_io().consume(1_000_000),
        res.disk_io().consume(500_000)
    );
    assert_eq!(a, Duration::from_secs(2));
    assert_eq!(b, Duration::from_secs(3));
    assert_eq!(started.elapsed(), Duration::from_secs(3));

    r.engine
        .simulate_resource_exhaustion(Resource::NetworkBandwidth, 1.0, "db")
        .name("no-network")
        .duration(Duration::from_secs(5))
        .start()
        .unwrap();
    // Level 1.0: nothing moves until the scenario ends (deactivated after 1 s here).
    let engine = r.engine.clone();
    tokio::spawn(async move {
        tokio::time::sleep(SECOND).await;
        engine.deactivate("no-network").unwrap();
    });
    assert_eq!(res.network().consume(1).await, SECOND);
    assert_eq!(res.usage().network_level, 0.0);

    // A second share of the same resource may not push the total past 1.
    let err = r
        .engine
        .simulate_resource_exhaustion(Resource::DiskIo, 0.6, "cache")
        .start()
        .unwrap_err();
    assert_eq!(invalid_field(&err), ("level", "0.6".to_owned()));

    tokio::time::sleep(Duration::from_secs(8)).await;
    let usage = res.usage();
    assert_eq!(
        (usage.connections_held, usage.disk_io_level),
        (0, 0.0),
        "{usage:?}"
    );
    assert_eq!(usage.connections_in_use, 5);
    drop(held);
    assert_eq!(res.connections().available(), 10);
    assert_eq!(res.disk_io().consume(10_000_000).await, Duration::ZERO);
    stop.cancel();
}

#[tokio::test(start_paused = true)]
async fn a_scoped_scenario_ends_with_its_guard() {
    let r = rig(enabled());
    let db = r.table.point("db").unwrap();
    {
        let guard = r.engine.inject_timeouts("db", SECOND).scoped().unwrap();
        assert_eq!(r.table.check(db), Some(Fault::Timeout(SECOND)));
        assert_eq!(r.engine.active()[0].id, guard.id());
    }
    assert_eq!(r.table.check(db), None);
    assert!(r.engine.active().is_empty());
    assert_eq!(r.engine.metrics().deactivated, 1);
}

#[tokio::test(start_paused = true)]
async fn the_test_helper_cleans_up_after_a_panicking_body() {
    let r = rig(enabled());
    let db = r.table.point("db").unwrap();
    let (engine, table) = (r.engine.clone(), r.table.clone());
    let outcome = tokio::spawn(async move {
        engine
            .partition("db")
            .run(async {
                assert_eq!(table.check(db), Some(Fault::Partition));
                panic!("the code under test failed");
            })
            .await
    })
    .await;
    let panic = outcome.unwrap_err();
    assert!(panic.is_panic(), "the body's panic continues");
    assert_eq!(r.table.check(db), None, "cleaned up anyway");
    assert!(r.engine.active().is_empty());

    // And a body that completes hands back its value.
    let got = r
        .engine
        .inject_latency("db", Duration::from_millis(5))
        .run(async { r.table.check(db) })
        .await
        .unwrap();
    assert_eq!(got, Some(Fault::Latency(Duration::from_millis(5))));
    assert_eq!(r.table.check(db), None);
}

#[tokio::test(start_paused = true)]
async fn metrics_count_injections_per_kind() {
    let r = rig(enabled());
    let (db, cache) = (
        r.table.point("db").unwrap(),
        r.table.point("cache").unwrap(),
    );
    r.engine
        .inject_errors("db", 1.0, ErrorCode(500))
        .start()
        .unwrap();
    r.engine
        .inject_latency("cache", Duration::from_millis(1))
        .start()
        .unwrap();
    for _ in 0..7 {
        assert!(r.table.check(db).is_some());
    }
    for _ in 0..3 {
        assert!(r.table.check(cache).is_some());
    }
    r.engine.deactivate("error:db").unwrap();
    let m = r.engine.metrics();
    assert_eq!(m.injections["ERROR"], 7, "kept after the scenario ended");
    assert_eq!(m.injections["LATENCY"], 3);
    assert_eq!(m.injections["TIMEOUT"], 0);
    assert_eq!((m.started, m.active, m.deactivated), (2, 1, 1));
    assert_eq!(r.engine.active()[0].injections, 3);
    let json = serde_json::to_value(&m).unwrap();
    assert_eq!(json["injections"]["ERROR"], 7);
}

#[tokio::test(start_paused = true)]
async fn the_control_plane_runs_the_sweeper_and_ends_chaos_at_shutdown() {
    let r = rig(enabled());
    let db = r.table.point("db").unwrap();
    let control = ControlPlane::builder()
        .registry(r.registry.clone())
        .chaos(r.engine.clone())
        .without_clock_ticker()
        .spawn()
        .unwrap();
    r.engine
        .partition("db")
        .duration(Duration::from_secs(2))
        .start()
        .unwrap();
    r.engine.partition("cache").start().unwrap();
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(r.engine.metrics().expired, 1, "swept by the control plane");
    assert_eq!(control.chaos().unwrap().active().len(), 1);
    control.shutdown().await.unwrap();
    assert!(r.engine.active().is_empty(), "shutdown ends chaos");
    assert_eq!(r.table.check(db), None);
}

#[tokio::test(start_paused = true)]
async fn a_table_with_another_governance_tag_is_refused() {
    let other: resilience_core::GovernanceHash = "0000000000000001".parse().unwrap();
    let table = Arc::new(FaultTable::builder().governance(other).build().unwrap());
    let err = ChaosEngine::builder(table)
        .config(enabled())
        .build()
        .unwrap_err();
    let text = err.to_string();
    assert!(
        text.contains("fault table") && text.contains("0000000000000001"),
        "{text}"
    );
}

/// An engine over a registry with `db`, no control plane, no `run`.
fn standalone() -> (
    ChaosEngine,
    Arc<resilience_core::CircuitBreaker>,
    Arc<FaultTable>,
) {
    let registry = Arc::new(BreakerRegistry::new());
    let db = registry.breaker("db").unwrap();
    let table = Arc::new(FaultTable::builder().build().unwrap());
    let engine = ChaosEngine::builder(table.clone())
        .breakers(registry)
        .config(
            ChaosConfig::default()
                .enabled(true)
                .memory_max_bytes(8 << 20),
        )
        .build()
        .unwrap();
    (engine, db, table)
}

fn start_both(engine: &ChaosEngine, duration: Duration) {
    engine
        .simulate_resource_exhaustion(resilience_core::chaos::Resource::Memory, 0.5, "db")
        .duration(duration)
        .start()
        .unwrap();
    engine
        .force_circuit_open("db")
        .duration(duration)
        .start()
        .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_a_control_plane_scenarios_still_expire_and_release_everything() {
    let (engine, db, table) = standalone();
    let resources = engine.resources().clone();
    start_both(&engine, Duration::from_millis(300));
    assert_eq!(resources.usage().memory_bytes, 4 << 20);
    assert_eq!(db.state(), State::ForcedOpen);
    // Nobody runs the engine's loop and nobody calls `db`.
    tokio::time::sleep(Duration::from_millis(700)).await;
    assert_eq!(resources.usage().memory_bytes, 0, "the ballast is freed");
    assert_eq!(db.state(), State::Closed, "the breaker is given back");
    assert!(table.active().is_empty() && engine.active().is_empty());
    assert_eq!(engine.metrics().expired, 2);
}

#[test]
fn without_any_runtime_scenarios_still_expire() {
    let (engine, db, _table) = standalone();
    let resources = engine.resources().clone();
    start_both(&engine, Duration::from_millis(200));
    std::thread::sleep(Duration::from_millis(600));
    assert_eq!(resources.usage().memory_bytes, 0);
    assert_eq!(db.state(), State::Closed);
}

#[test]
fn dropping_the_engine_ends_its_scenarios() {
    let (engine, db, table) = standalone();
    let resources = engine.resources().clone();
    start_both(&engine, Duration::from_secs(60));
    engine
        .inject_latency("db", Duration::from_millis(5))
        .duration(Duration::from_secs(60))
        .start()
        .unwrap();
    assert_eq!(table.active().len(), 3);
    drop(engine);
    assert_eq!(resources.usage().memory_bytes, 0);
    assert_eq!(db.state(), State::Closed);
    assert!(table.active().is_empty(), "nothing left armed");
}

#[test]
fn production_refuses_chaos_unless_it_is_allowed_there_too() {
    let engine_with = |config: ChaosConfig| {
        ChaosEngine::builder(Arc::new(FaultTable::builder().build().unwrap()))
            .config(config)
            .build()
            .unwrap()
    };
    let production = engine_with(ChaosConfig::default().enabled(true).production(true));
    assert!(!production.is_enabled());
    let err = production
        .inject_latency("db", Duration::from_millis(5))
        .start()
        .unwrap_err();
    assert_eq!(err, ChaosEngineError::Production);
    assert!(
        err.to_string().contains("chaos.allow_in_production"),
        "{err}"
    );
    assert!(!production.metrics().enabled);

    let allowed = engine_with(
        ChaosConfig::default()
            .enabled(true)
            .production(true)
            .allow_in_production(true),
    );
    allowed
        .inject_latency("db", Duration::from_millis(5))
        .start()
        .unwrap();
    // Allowing production alone is not enabling chaos.
    let not_enabled = engine_with(
        ChaosConfig::default()
            .production(true)
            .allow_in_production(true),
    );
    assert_eq!(
        not_enabled.partition("db").start().unwrap_err(),
        ChaosEngineError::Disabled
    );
}
