//! Replays the committed fuzz corpus (`fuzz/corpus/<target>/`) through the same reference-model
//! drivers the fuzz targets use, so every input the fuzzer ever kept stays green on stable.
#![allow(clippy::unwrap_used, clippy::expect_used)] // tests may panic on bad setup

use std::path::PathBuf;

use resilience_core::State;
use resilience_core::testing::breaker_model::{Coverage, run};
use resilience_core::testing::{
    bulkhead_model, fault_table_model, keyed_rate_limit_model, meter_model, rate_limit_model,
};

fn corpus(target: &str) -> Vec<(PathBuf, Vec<u8>)> {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../fuzz/corpus")
        .join(target);
    let mut inputs: Vec<_> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("corpus {} unreadable: {e}", dir.display()))
        .map(|entry| {
            let path = entry.unwrap().path();
            let bytes = std::fs::read(&path).unwrap();
            (path, bytes)
        })
        .collect();
    inputs.sort();
    inputs
}

/// Replays every input of `target`'s corpus (at least `min` of them) through `run`, failing on
/// the first that diverges from its model, and merges what they exercised.
fn replay<C: Default + std::panic::RefUnwindSafe>(
    target: &str,
    min: usize,
    run: impl Fn(&[u8]) -> C + std::panic::RefUnwindSafe,
    merge: impl Fn(&mut C, &C),
) -> C {
    let inputs = corpus(target);
    assert!(
        inputs.len() >= min,
        "the committed corpus is missing or tiny: {}",
        inputs.len()
    );
    let mut total = C::default();
    for (path, bytes) in &inputs {
        let coverage = std::panic::catch_unwind(|| run(bytes))
            .unwrap_or_else(|_| panic!("corpus input {} diverged from the model", path.display()));
        merge(&mut total, &coverage);
    }
    total
}

#[test]
fn breaker_corpus_replays_clean() {
    let total = replay("breaker_vs_model", 50, run, Coverage::merge);
    // The corpus must keep exercising the interesting paths, not just replay empty inputs.
    for pair in [
        (State::Closed, State::Open),
        (State::Open, State::HalfOpen),
        (State::HalfOpen, State::Closed),
        (State::HalfOpen, State::Open),
    ] {
        assert!(
            total.transitions.contains_key(&pair),
            "corpus never does {pair:?}"
        );
    }
    assert!(total.rate_trips > 0 && total.consecutive_trips > 0 && total.probe_timeouts > 0);
}

#[test]
fn fault_table_corpus_replays_clean() {
    let total = replay(
        "fault_table",
        50,
        fault_table_model::run,
        fault_table_model::Coverage::merge,
    );
    assert!(total.injected.iter().all(|&n| n > 0), "{total:?}");
    assert!(total.refused.iter().all(|&n| n > 0), "{total:?}");
}

#[test]
fn meter_ring_corpus_replays_clean() {
    let total = replay(
        "meter_ring",
        20,
        meter_model::run,
        meter_model::Coverage::merge,
    );
    assert!(
        total.refused_full > 0 && total.refused_closed > 0 && total.drained > 0,
        "{total:?}"
    );
}

#[test]
fn bulkhead_corpus_replays_clean() {
    let total = replay(
        "bulkhead",
        20,
        bulkhead_model::run,
        bulkhead_model::Coverage::merge,
    );
    assert!(
        total.admitted > 0
            && total.refused > 0
            && total.limit_changes.iter().all(|&n| n > 0)
            && total.refused_over_limit > 0,
        "{total:?}"
    );
}

#[test]
fn rate_limit_corpus_replays_clean() {
    let total = replay(
        "rate_limit",
        20,
        rate_limit_model::run,
        rate_limit_model::Coverage::merge,
    );
    assert!(
        total.admitted > 0 && total.refused > 0 && total.never > 0 && total.retried_on_time > 0,
        "{total:?}"
    );
}

#[test]
fn keyed_rate_limit_corpus_replays_clean() {
    let total = replay(
        "keyed_rate_limit",
        20,
        keyed_rate_limit_model::run,
        keyed_rate_limit_model::Coverage::merge,
    );
    assert!(
        total.admitted > 0 && total.refused > 0 && total.table_full > 0 && total.reused > 0,
        "{total:?}"
    );
}
