//! The fault table and the meter ring against their reference models on random operation
//! sequences (the drivers the fuzz targets use), failures persisted to `proptest-regressions/`.
#![allow(clippy::unwrap_used, clippy::expect_used)] // tests may panic on bad setup

use std::cell::RefCell;

use proptest::prelude::*;
use proptest::test_runner::{Config, FileFailurePersistence, RngAlgorithm, TestRng, TestRunner};
use resilience_core::testing::{fault_table_model, meter_model};

/// A runner with a fixed seed: the coverage checks below must not depend on the luck of the
/// draw (the rarest refusal, a point's fault slots all taken, needs several arms to line up).
/// The fuzz targets explore beyond these cases.
fn runner(cases: u32) -> TestRunner {
    let config = Config {
        cases,
        failure_persistence: Some(Box::new(FileFailurePersistence::WithSource("regressions"))),
        ..Config::default()
    };
    let seed: [u8; 32] = *b"resilience proptest seed 0000001";
    TestRunner::new_with_rng(config, TestRng::from_seed(RngAlgorithm::ChaCha, &seed))
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
    // The rarest refusal (all of a point's fault slots taken) needs five live arms lined up on
    // one point; spell one such sequence out rather than hope the draw finds it.
    let crowded: Vec<u8> = (0..5u8).flat_map(|i| [0, i, 0, 0, i, 1, 30, 0]).collect();
    let crowded = fault_table_model::run(&crowded);
    assert!(crowded.refused[4] > 0, "{crowded:?}");
    total.borrow_mut().merge(&crowded);
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
            && total.drained > 0
            && total.held > 0
            && total.releases > 0,
        "{total:?}"
    );
}
