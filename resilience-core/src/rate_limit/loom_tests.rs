//! loom model of the limiter's word. Run with
//! `RUSTFLAGS="--cfg resilience_loom" cargo test -p resilience-core --lib --release -- loom_`.

use std::time::Duration;

use loom::sync::Arc;
use loom::thread;

use super::RateLimiter;
use crate::ManualClock;
use crate::loom_support::{assert_explored, explore};

/// Three callers race for a burst of two at one instant: exactly two are admitted, the third
/// is told to wait one interval, and the word ends two intervals ahead.
#[test]
fn loom_rate_limiter_admits_exactly_the_burst() {
    let runs = explore(|| {
        let clock = ManualClock::new();
        let limiter = Arc::new(
            RateLimiter::builder("loom")
                .rate(1, Duration::from_millis(10))
                .burst(2)
                .clock(clock)
                .build()
                .unwrap(),
        );
        let callers: Vec<_> = (0..3)
            .map(|_| {
                let limiter = limiter.clone();
                thread::spawn(move || limiter.try_acquire())
            })
            .collect();
        let results: Vec<_> = callers.into_iter().map(|t| t.join().unwrap()).collect();
        let admitted = results.iter().filter(|r| r.is_ok()).count();
        assert_eq!(admitted, 2, "{results:?}");
        let refused = results.iter().find_map(|r| r.err()).unwrap();
        assert_eq!(refused.retry_after(), Some(Duration::from_millis(10)));
        let snap = limiter.snapshot();
        assert_eq!((snap.available, snap.admitted, snap.rejected), (0, 2, 1));
    });
    assert_explored(runs, 10);
}
