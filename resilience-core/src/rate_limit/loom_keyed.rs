//! loom model of the keyed limiter's slots. Run with
//! `RUSTFLAGS="--cfg resilience_loom" cargo test -p resilience-core --lib --release -- loom_`.

use std::time::Duration;

use loom::sync::Arc;
use loom::thread;

use super::KeyedRateLimiter;
use crate::ManualClock;
use crate::loom_support::{assert_explored, explore};

/// Two callers of a new key race for its burst of one while a third places another key whose
/// hash has the same home slot: exactly one of the first two is admitted, the other key is
/// admitted too, and the two keys end in different slots.
#[test]
fn loom_keyed_limiter_places_keys_once_and_admits_exactly_the_burst() {
    let runs = explore(|| {
        let clock = ManualClock::new();
        clock.advance(Duration::from_secs(1));
        let limiter = Arc::new(
            KeyedRateLimiter::builder("loom")
                .rate(1, Duration::from_secs(10))
                .burst(1)
                .capacity(8)
                .clock(clock)
                .build()
                .unwrap(),
        );
        let (a, b) = (1u64 << 48, 2u64 << 48);
        let racers: Vec<_> = [a, a, b]
            .into_iter()
            .map(|hash| {
                let limiter = limiter.clone();
                thread::spawn(move || limiter.try_acquire_hashed(hash).is_ok())
            })
            .collect();
        let got: Vec<bool> = racers.into_iter().map(|t| t.join().unwrap()).collect();
        assert_eq!(u8::from(got[0]) + u8::from(got[1]), 1, "{got:?}");
        assert!(got[2], "the other key has its own limit");
        assert!(limiter.try_acquire_hashed(a).is_err());
        assert!(limiter.try_acquire_hashed(b).is_err());
        assert_eq!(limiter.snapshot().keys_limited, 2);
    });
    assert_explored(runs, 10);
}
