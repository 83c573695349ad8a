//! The GCRA rate limiter on a manual clock: bursts, the sustained rate, retry times, weighted
//! calls, typed configuration errors, and exact admission under contention.
#![allow(clippy::unwrap_used, clippy::expect_used)] // tests may panic on bad setup

use std::sync::Arc;
use std::time::Duration;

use resilience_core::rate_limit::RateLimiter;
use resilience_core::{GovernanceHash, Governed, ManualClock};

fn limiter(per_second: u32, burst: u32) -> (RateLimiter<ManualClock>, ManualClock) {
    let clock = ManualClock::new();
    let limiter = RateLimiter::builder("api")
        .rate(per_second, Duration::from_secs(1))
        .burst(burst)
        .clock(clock.clone())
        .build()
        .unwrap();
    (limiter, clock)
}

#[test]
fn a_full_burst_then_one_per_interval_with_the_exact_retry_time() {
    let (l, clock) = limiter(100, 5);
    assert_eq!(l.interval(), Duration::from_millis(10));
    assert_eq!(l.snapshot().available, 5);
    for _ in 0..5 {
        l.try_acquire().unwrap();
    }
    let refused = l.try_acquire().unwrap_err();
    assert_eq!(refused.retry_after(), Some(Duration::from_millis(10)));
    assert_eq!(refused.reason(), "rate_limited");
    clock.advance(Duration::from_millis(4));
    assert_eq!(
        l.try_acquire().unwrap_err().retry_after(),
        Some(Duration::from_millis(6))
    );
    clock.advance(Duration::from_millis(6));
    l.try_acquire().unwrap();
    assert!(l.try_acquire().is_err());
    let snap = l.snapshot();
    assert_eq!((snap.admitted, snap.rejected, snap.available), (6, 3, 0));
}

#[test]
fn over_a_long_run_it_admits_the_burst_plus_the_rate_exactly() {
    let (l, clock) = limiter(250, 10);
    let mut admitted = 0u64;
    // Ten seconds in 1 ms steps (the coarse clock's tick), callers far faster than the rate.
    for _ in 0..10_000 {
        for _ in 0..5 {
            if l.try_acquire().is_ok() {
                admitted += 1;
            }
        }
        clock.advance(Duration::from_millis(1));
    }
    // At exactly ten seconds.
    admitted += (0..5).filter(|_| l.try_acquire().is_ok()).count() as u64;
    // 4 ms per permit: 2 500 in ten seconds, plus the burst it started with.
    assert_eq!(admitted, 2_500 + 10);
}

#[test]
fn a_quiet_spell_earns_no_more_than_the_burst() {
    let (l, clock) = limiter(10, 3);
    clock.advance(Duration::from_secs(3600));
    let admitted = (0..10).filter(|_| l.try_acquire().is_ok()).count();
    assert_eq!(admitted, 3);
}

#[test]
fn weighted_calls_take_all_or_nothing() {
    let (l, clock) = limiter(10, 4);
    l.try_acquire_n(3).unwrap();
    let refused = l.try_acquire_n(2).unwrap_err();
    assert_eq!(refused.retry_after(), Some(Duration::from_millis(100)));
    l.try_acquire_n(1).unwrap();
    let never = l.try_acquire_n(5).unwrap_err();
    assert_eq!(never.retry_after(), None, "more than the burst never fits");
    assert!(
        never
            .to_string()
            .contains("more permits asked than the burst holds")
    );
    l.try_acquire_n(0).unwrap();
    clock.advance(Duration::from_millis(400));
    l.try_acquire_n(4).unwrap();
}

#[test]
fn bad_settings_are_typed_errors_naming_the_field() {
    let field = |b: resilience_core::rate_limit::RateLimiterBuilder| b.build().unwrap_err();
    let err = field(RateLimiter::builder("x").rate(0, Duration::from_secs(1)));
    assert_eq!(err.field(), Some("rate"));
    assert_eq!(
        err.to_string(),
        "invalid `rate` = 0: expected at least 1 permit"
    );
    let err = field(RateLimiter::builder("x").rate(5, Duration::ZERO));
    assert_eq!(err.field(), Some("period"));
    let err = field(RateLimiter::builder("x").rate(10, Duration::from_nanos(5)));
    assert_eq!(
        err.to_string(),
        "invalid `rate` = 10 per 5ns: expected at most one permit per nanosecond"
    );
    let err = field(
        RateLimiter::builder("x")
            .rate(5, Duration::from_secs(1))
            .burst(0),
    );
    assert_eq!(err.field(), Some("burst"));
    let err = field(RateLimiter::builder("x"));
    assert_eq!(err.field(), Some("rate"), "a rate is required");
}

#[test]
fn a_refusal_carries_the_tag() {
    let tag = GovernanceHash::parse("0123456789abcdef").unwrap();
    let l = RateLimiter::builder("x")
        .rate(1, Duration::from_secs(60))
        .burst(1)
        .governance(tag)
        .clock(ManualClock::new())
        .build()
        .unwrap();
    l.try_acquire().unwrap();
    let refused = l.try_acquire().unwrap_err();
    assert_eq!(refused.governance(), tag);
    assert_eq!(
        refused.to_string(),
        "rate limited; retry after 60s (governance 0123456789abcdef)"
    );
}

/// Four threads hammer one limiter at a frozen instant: exactly the burst is admitted.
#[test]
fn contention_admits_exactly_the_burst() {
    let (l, _clock) = limiter(1, 1_000);
    let l = Arc::new(l);
    let threads: Vec<_> = (0..4)
        .map(|_| {
            let l = l.clone();
            std::thread::spawn(move || (0..10_000).filter(|_| l.try_acquire().is_ok()).count())
        })
        .collect();
    let admitted: usize = threads.into_iter().map(|t| t.join().unwrap()).sum();
    assert_eq!(admitted, 1_000);
    let snap = l.snapshot();
    assert_eq!((snap.admitted, snap.rejected), (1_000, 39_000));
}

#[test]
fn without_call_totals_the_rate_holds_and_nothing_is_counted() {
    let l = RateLimiter::builder("x")
        .rate(1, Duration::from_secs(1))
        .burst(1)
        .call_totals(false)
        .clock(ManualClock::new())
        .build()
        .unwrap();
    l.try_acquire().unwrap();
    assert!(l.try_acquire().is_err());
    let snap = l.snapshot();
    assert_eq!((snap.admitted, snap.rejected, snap.available), (0, 0, 0));
}
