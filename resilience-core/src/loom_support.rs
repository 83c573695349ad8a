//! Shared helper for the loom models: runs a model and reports how many interleavings loom
//! explored, so each model can assert it is not vacuous. (loom issue #392: a thread whose first
//! access to an object is a load can hide a race, and loom then explores one schedule only.)

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

/// Runs `f` under `loom::model` and returns the number of executions.
pub(crate) fn explore(f: impl Fn() + Sync + Send + 'static) -> usize {
    let runs = Arc::new(AtomicUsize::new(0));
    let counter = Arc::clone(&runs);
    loom::model(move || {
        counter.fetch_add(1, Ordering::Relaxed);
        f();
    });
    runs.load(Ordering::Relaxed)
}

/// Fails a model that explored fewer than `min` interleavings (set to about half of what the
/// patched loom explores today, so a regression in exploration cannot pass silently).
pub(crate) fn assert_explored(runs: usize, min: usize) {
    assert!(
        runs >= min,
        "loom explored only {runs} interleavings (expected at least {min})"
    );
}
