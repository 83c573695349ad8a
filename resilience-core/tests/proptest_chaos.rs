//! The fault table and the meter ring against their reference models on random operation
//! sequences (the drivers the fuzz targets use), failures persisted to `proptest-regressions/`.
#![allow(clippy::unwrap_used, clippy::expect_used)] // tests may panic on bad setup

use std::cell::RefCell;

use proptest::prelude::*;
use proptest::test_runner::{Config, FileFailurePersistence, TestRunner};
use resilience_core::testing::{fault_table_model, meter_model};

fn runner(cases: u32) -> TestRunner {
    TestRunner::new(Config {
        cases,
        failure_persistence: Some(Box::new(FileFailurePersistence::WithSource("regressions"))),
        ..Config::default()
    })
}

#[test]
fn fault_table_matches_reference_model() {
    let total = RefCell::new(fault_table_model::Coverage::default());
    runner(1_000)
        .run(&proptest::collection::vec(any::<u8>(), 0..800), |data| {
            total.borrow_mut().merge(&fault_table_model::run(&data));
            Ok(())
        })
        .unwrap();
    let total = total.into_inner();
    // Not vacuous: every fault kind injected, every refusal reason met, expiry and stops seen.
    assert!(total.injected.iter().all(|&n| n > 0), "{total:?}");
    assert!(total.refused.iter().all(|&n| n > 0), "{total:?}");
    assert!(
        total.armed > 100 && total.expired_checks > 0 && total.stops > 0,
        "{total:?}"
    );
}

#[test]
fn meter_ring_matches_reference_model() {
    let total = RefCell::new(meter_model::Coverage::default());
    runner(1_000)
        .run(&proptest::collection::vec(any::<u8>(), 0..400), |data| {
            total.borrow_mut().merge(&meter_model::run(&data));
            Ok(())
        })
        .unwrap();
    let total = total.into_inner();
    assert!(
        total.accepted > 0
            && total.refused_full > 0
            && total.refused_closed > 0
            && total.drained > 0,
        "{total:?}"
    );
}
