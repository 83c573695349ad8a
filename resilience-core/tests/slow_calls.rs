//! The slow-call rate policy (feature `slow-call-timing`), timed on a manual clock.
#![cfg(feature = "slow-call-timing")]
#![allow(clippy::unwrap_used, clippy::expect_used)] // tests may panic on bad setup

use std::time::Duration;

use resilience_core::{CircuitBreaker, ManualClock, SlidingWindow, State};

fn breaker(clock: &ManualClock) -> CircuitBreaker<ManualClock> {
    CircuitBreaker::builder("slow")
        .clock(clock.clone())
        .without_fail_max()
        .slow_call(Duration::from_millis(100), 0.5)
        .sliding_window(SlidingWindow::Count(4))
        .min_calls(4)
        .reset_timeout(Duration::from_secs(1))
        .build()
        .unwrap()
}

fn call(b: &CircuitBreaker<ManualClock>, clock: &ManualClock, takes: Duration, ok: bool) {
    let permit = b.try_acquire().unwrap();
    clock.advance(takes);
    if ok {
        permit.success()
    } else {
        permit.failure()
    }
}

#[test]
fn slow_successes_trip_once_their_share_reaches_the_rate() {
    let clock = ManualClock::new();
    let b = breaker(&clock);
    call(&b, &clock, Duration::from_millis(10), true);
    call(&b, &clock, Duration::from_millis(100), true); // exactly the threshold: slow
    call(&b, &clock, Duration::from_millis(99), true);
    assert_eq!(b.state(), State::Closed, "3 calls < min_calls");
    call(&b, &clock, Duration::from_millis(500), true);
    assert_eq!(b.state(), State::Open, "2 slow of 4");
    let t = b.snapshot().totals;
    assert_eq!((t.successes, t.slow), (4, 2));
}

#[test]
fn a_slow_probe_reopens_the_breaker() {
    let clock = ManualClock::new();
    let b = breaker(&clock);
    for _ in 0..4 {
        call(&b, &clock, Duration::from_millis(200), true);
    }
    assert_eq!(b.state(), State::Open);
    clock.advance(Duration::from_secs(2));
    call(&b, &clock, Duration::from_millis(150), true);
    assert_eq!(
        b.state(),
        State::Open,
        "a slow probe counts against the dependency"
    );
    clock.advance(Duration::from_secs(3));
    call(&b, &clock, Duration::from_millis(5), true);
    assert_eq!(b.state(), State::Closed);
}

#[test]
fn fast_calls_never_trip_the_slow_policy() {
    let clock = ManualClock::new();
    let b = breaker(&clock);
    for _ in 0..100 {
        call(&b, &clock, Duration::from_millis(99), true);
    }
    assert_eq!(b.state(), State::Closed);
    assert_eq!(b.snapshot().totals.slow, 0);
}
