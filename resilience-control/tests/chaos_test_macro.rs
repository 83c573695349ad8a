//! `#[chaos_test]`: the scenario is active for the test body only, and ended when the body
//! returns or panics; each fault kind, the options, and a harness of one's own.
#![allow(clippy::unwrap_used, clippy::expect_used)] // tests may panic on bad setup

use std::cell::RefCell;
use std::sync::Arc;
use std::time::Duration;

use resilience_control::chaos::ChaosHarness;
use resilience_control::chaos_test;
use resilience_core::State;
use resilience_core::chaos::{ErrorCode, Fault, FaultTable};

#[chaos_test(latency = "100ms", target = "payments")]
async fn latency_is_injected_into_the_harness_table(chaos: ChaosHarness) {
    let payments = chaos.point("payments");
    assert_eq!(
        chaos.table().check(payments),
        Some(Fault::Latency(Duration::from_millis(100)))
    );
    let active = chaos.engine().active();
    assert_eq!(active.len(), 1);
    assert_eq!(
        active[0].scenario.name(),
        "chaos_test:latency_is_injected_into_the_harness_table"
    );
}

#[chaos_test(errors = 1.0, code = 418, target = "inventory", duration = "5s")]
async fn errors_with_a_code_and_a_duration(chaos: &ChaosHarness) {
    let inventory = chaos.point("inventory");
    assert_eq!(
        chaos.table().check(inventory),
        Some(Fault::Error(ErrorCode(418)))
    );
    assert!(chaos.engine().active()[0].remaining <= Duration::from_secs(5));
}

#[chaos_test(errors = 1, target = "inventory")]
fn a_sync_test_with_the_default_code(chaos: ChaosHarness) {
    let inventory = chaos.point("inventory");
    assert_eq!(
        chaos.table().check(inventory),
        Some(Fault::Error(ErrorCode(503)))
    );
}

#[chaos_test(timeout = "2s", target = "search", flavor = "multi_thread")]
async fn timeouts_on_a_multi_thread_runtime(chaos: ChaosHarness) {
    let search = chaos.point("search");
    assert_eq!(
        chaos.table().check(search),
        Some(Fault::Timeout(Duration::from_secs(2)))
    );
    assert_eq!(
        tokio::runtime::Handle::current().runtime_flavor(),
        tokio::runtime::RuntimeFlavor::MultiThread
    );
}

#[chaos_test(partition, target = "db", rate = 0.0)]
async fn a_rate_of_zero_hits_nothing(chaos: ChaosHarness) {
    let db = chaos.point("db");
    for _ in 0..1000 {
        assert_eq!(chaos.table().check(db), None);
    }
}

#[chaos_test(force_open, target = "ledger")]
async fn force_open_forces_the_breaker(chaos: ChaosHarness) {
    assert_eq!(chaos.breaker("ledger").state(), State::ForcedOpen);
}

#[chaos_test(partition, target = "db")]
async fn a_test_may_return_a_result(chaos: ChaosHarness) -> Result<(), String> {
    let db = chaos.point("db");
    match chaos.table().check(db) {
        Some(Fault::Partition) => Ok(()),
        other => Err(format!("expected a partition, got {other:?}")),
    }
}

thread_local! {
    /// The harness the last `recorded()` call made on this thread.
    static LAST: RefCell<Option<ChaosHarness>> = const { RefCell::new(None) };
}

/// A harness over a table of our own, remembered so the test below can look at it afterwards.
fn recorded() -> ChaosHarness {
    let table = Arc::new(FaultTable::builder().build().unwrap());
    let registry = Arc::new(resilience_core::BreakerRegistry::new());
    let harness = ChaosHarness::with(table, registry).unwrap();
    LAST.with(|last| *last.borrow_mut() = Some(harness.clone()));
    harness
}

#[chaos_test(force_open, target = "ledger", harness = recorded())]
#[should_panic(expected = "the code under test failed")]
fn panics_midway(chaos: ChaosHarness) {
    assert_eq!(chaos.breaker("ledger").state(), State::ForcedOpen);
    panic!("the code under test failed");
}

#[test]
fn a_panicking_chaos_test_still_ends_its_scenario_and_restores_the_breaker() {
    let unwound = std::panic::catch_unwind(panics_midway);
    assert!(unwound.is_err(), "the body panicked");
    let harness = LAST.with(|last| last.borrow_mut().take()).unwrap();
    assert!(harness.engine().active().is_empty(), "no scenario left");
    assert!(harness.table().active().is_empty(), "nothing armed");
    assert_eq!(
        harness.breaker("ledger").state(),
        State::Closed,
        "the forced breaker is given back"
    );
}

#[test]
fn after_a_chaos_test_returns_nothing_is_left() {
    latency_is_injected_into_the_harness_table();
    // Each test has its own harness by default; with one of our own we can look afterwards.
    let unwound = std::panic::catch_unwind(panics_midway);
    assert!(unwound.is_err());
    let harness = LAST.with(|last| last.borrow_mut().take()).unwrap();
    assert_eq!(harness.engine().metrics().started, 1);
    assert!(harness.engine().active().is_empty());
}
