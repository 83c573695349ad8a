//! The breaker against the reference model on random operation sequences (the same driver the
//! fuzz target uses), with failures persisted to `proptest-regressions/`.
#![allow(clippy::unwrap_used, clippy::expect_used)] // tests may panic on bad setup

use std::cell::RefCell;

use proptest::prelude::*;
use proptest::test_runner::{Config, FileFailurePersistence, TestRunner};
use resilience_core::State;
use resilience_core::testing::breaker_model::{Coverage, run};

#[test]
fn breaker_matches_reference_model() {
    let mut runner = TestRunner::new(Config {
        cases: 2_000,
        failure_persistence: Some(Box::new(FileFailurePersistence::WithSource("regressions"))),
        ..Config::default()
    });
    let total = RefCell::new(Coverage::default());
    runner
        .run(&proptest::collection::vec(any::<u8>(), 0..600), |data| {
            let coverage = run(&data);
            total.borrow_mut().merge(&coverage);
            Ok(())
        })
        .unwrap();

    // Not vacuous: random inputs must reach every organic transition and rejection.
    let total = total.into_inner();
    for pair in [
        (State::Closed, State::Open),
        (State::Open, State::HalfOpen),
        (State::HalfOpen, State::Closed),
        (State::HalfOpen, State::Open),
        (State::HalfOpen, State::HalfOpen),
        (State::ForcedOpen, State::Closed),
        (State::Disabled, State::Open),
    ] {
        let seen = total.transitions.get(&pair).copied().unwrap_or(0);
        assert!(seen > 0, "{pair:?} never happened: {total:?}");
    }
    for reason in ["open", "forced_open", "half_open_full"] {
        assert!(
            total.rejections.get(reason).copied().unwrap_or(0) > 0,
            "no {reason} rejection"
        );
    }
    assert!(total.stale > 0, "no stale outcome was exercised");
    assert!(
        total.rate_trips > 0,
        "the failure-rate policy never tripped"
    );
    assert!(
        total.consecutive_trips > 0,
        "the consecutive-failure policy never tripped"
    );
    assert!(total.probe_timeouts > 0, "no probe was ever presumed lost");
    assert!(
        total.forced_expiries > 0,
        "no timed force ever expired on the call path"
    );
    println!(
        "ops {} rate trips {} consecutive trips {} probe timeouts {} stale {} rejections {:?}",
        total.ops,
        total.rate_trips,
        total.consecutive_trips,
        total.probe_timeouts,
        total.stale,
        total.rejections
    );
}
