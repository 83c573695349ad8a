//! Retry, retry budget and time limiter behaviour under paused tokio time: exact backoff
//! sequences, jitter ranges, budget exhaustion shared by callers, deadlines.
#![allow(clippy::unwrap_used, clippy::expect_used)] // tests may panic on bad setup

use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use resilience_core::retry::{Backoff, Jitter, Retry, RetryBudget};
use resilience_core::timeout::{Deadline, TimeLimiter};
use resilience_core::{Clock, Nanos};
use tokio::time::Instant;

/// Tokio's (pausable) time as a policy clock, so deadlines follow `tokio::time::advance`.
#[derive(Clone)]
struct TokioClock(Instant);

impl TokioClock {
    fn new() -> Self {
        TokioClock(Instant::now())
    }
}

impl Clock for TokioClock {
    fn now(&self) -> Nanos {
        Nanos::from_nanos(self.0.elapsed().as_nanos() as u64)
    }
}

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

/// Runs a call that always fails and returns the times (since start) of its attempts.
async fn attempt_times(retry: &Retry<TokioClock>, deadline: Option<Deadline>) -> Vec<u64> {
    let start = Instant::now();
    let times = std::cell::RefCell::new(Vec::new());
    let call = retry.call_async(
        |_| {
            times.borrow_mut().push(start.elapsed().as_millis() as u64);
            async { Err::<(), _>("down") }
        },
        tokio::time::sleep,
    );
    let result = match deadline {
        Some(d) => call.within(d).await,
        None => call.await,
    };
    assert_eq!(result, Err("down"));
    times.into_inner()
}

#[tokio::test(start_paused = true)]
async fn exponential_backoff_without_jitter_is_exact() {
    let retry = Retry::builder("exact")
        .clock(TokioClock::new())
        .max_attempts(6)
        .backoff(
            Backoff::exponential(ms(10), ms(50))
                .multiplier(2.0)
                .jitter(Jitter::None),
        )
        .build()
        .unwrap();
    // Delays 10, 20, 40, 50 (capped), 50.
    assert_eq!(attempt_times(&retry, None).await, [0, 10, 30, 70, 120, 170]);
    let snap = retry.snapshot();
    assert_eq!((snap.retries, snap.gave_up_attempts), (5, 1));
}

#[tokio::test(start_paused = true)]
async fn jittered_delays_stay_in_range_and_replay_with_a_seed() {
    let retry = |jitter| {
        Retry::builder("jitter")
            .clock(TokioClock::new())
            .max_attempts(5)
            .backoff(Backoff::exponential(ms(100), ms(10_000)).jitter(jitter))
            .build()
            .unwrap()
    };
    for jitter in [Jitter::Full, Jitter::Equal, Jitter::Decorrelated] {
        let policy = retry(jitter);
        resilience_core::chaos::seed_thread_rng(7);
        let first = attempt_times(&policy, None).await;
        resilience_core::chaos::seed_thread_rng(7);
        let again = attempt_times(&policy, None).await;
        assert_eq!(
            first, again,
            "{jitter:?}: a seeded thread replays its delays"
        );
        let mut previous = 0;
        for (n, pair) in first.windows(2).enumerate() {
            let delay = pair[1] - pair[0];
            let base = 100 << n;
            let ok = match jitter {
                Jitter::Full => delay <= base,
                Jitter::Equal => delay >= base / 2 && delay <= base,
                _ => delay >= 100 && delay <= (3 * previous).max(300),
            };
            assert!(ok, "{jitter:?}: retry {} waited {delay} ms", n + 1);
            previous = delay;
        }
    }
}

#[tokio::test(start_paused = true)]
async fn a_classifier_stops_at_errors_that_are_not_transient() {
    let retry = Retry::builder("classify").build().unwrap();
    let calls = AtomicU32::new(0);
    let result = retry
        .call_async(
            |_| {
                calls.fetch_add(1, Ordering::Relaxed);
                async { Err::<(), _>(404) }
            },
            tokio::time::sleep,
        )
        .when(|status: &i32| *status >= 500)
        .await;
    assert_eq!((result, calls.load(Ordering::Relaxed)), (Err(404), 1));
    assert_eq!(retry.snapshot().retries, 0);
}

#[tokio::test(start_paused = true)]
async fn callers_sharing_a_budget_cannot_retry_more_than_it_allows() {
    // 10% of calls may be retried and nothing else: 100 failing calls through two policies
    // sharing the budget earn at most 10 retries between them (the first calls find it empty).
    let budget = Arc::new(
        RetryBudget::builder()
            .ratio(0.1)
            .min_per_sec(0)
            .max_balance(1_000)
            .build()
            .unwrap(),
    );
    let policy = || {
        Retry::builder("budgeted")
            .max_attempts(5)
            .backoff(Backoff::constant(ms(1)))
            .budget(budget.clone())
            .build()
            .unwrap()
    };
    let (a, b) = (policy(), policy());
    let attempts = AtomicU32::new(0);
    for i in 0..100 {
        let retry = if i % 2 == 0 { &a } else { &b };
        let _ = retry
            .call_async(
                |_| {
                    attempts.fetch_add(1, Ordering::Relaxed);
                    async { Err::<(), _>(()) }
                },
                tokio::time::sleep,
            )
            .await;
    }
    let retries = attempts.load(Ordering::Relaxed) - 100;
    assert!(retries <= 10, "{retries} retries for 100 calls");
    assert!(retries >= 9, "the deposits are spent: {retries}");
    let (sa, sb) = (a.snapshot(), b.snapshot());
    assert_eq!(u32::try_from(sa.retries + sb.retries).unwrap(), retries);
    assert!(sa.gave_up_budget + sb.gave_up_budget >= 90);
    assert_eq!(sa.budget.unwrap().withdrawn, u64::from(retries));
}

#[tokio::test(start_paused = true)]
async fn a_deadline_stops_retries_whose_backoff_would_end_past_it() {
    let clock = TokioClock::new();
    let retry = Retry::builder("deadline")
        .clock(clock.clone())
        .max_attempts(10)
        .backoff(Backoff::constant(ms(10)))
        .build()
        .unwrap();
    let deadline = Deadline::after(&clock, ms(25));
    // Attempts at 0, 10 and 20; the next would start at 30, past the deadline.
    assert_eq!(attempt_times(&retry, Some(deadline)).await, [0, 10, 20]);
    assert_eq!(retry.snapshot().gave_up_deadline, 1);
}

#[tokio::test(start_paused = true)]
async fn the_time_limiter_cancels_late_calls_and_passes_its_deadline_in() {
    let clock = TokioClock::new();
    let limiter = TimeLimiter::builder("tl")
        .clock(clock.clone())
        .timeout(ms(100))
        .build()
        .unwrap();
    let dropped = Arc::new(AtomicU32::new(0));
    struct CountDrop(Arc<AtomicU32>);
    impl Drop for CountDrop {
        fn drop(&mut self) {
            self.0.fetch_add(1, Ordering::Relaxed);
        }
    }
    let guard = CountDrop(dropped.clone());
    let start = Instant::now();
    let late = limiter
        .call_async(
            |deadline| async move {
                let _guard = guard;
                assert_eq!(deadline.remaining(&TokioClock(start)), ms(100));
                tokio::time::sleep(ms(1_000)).await;
            },
            tokio::time::sleep,
        )
        .await;
    assert_eq!(late.unwrap_err().after(), ms(100));
    assert_eq!(start.elapsed(), ms(100));
    assert_eq!(
        dropped.load(Ordering::Relaxed),
        1,
        "the late call was dropped"
    );
    // An outer deadline tighter than the limit wins.
    let outer = Deadline::after(&clock, ms(30));
    let tight = limiter
        .call_async_within(
            Some(outer),
            |deadline| async move {
                assert_eq!(deadline, outer);
                std::future::pending::<()>().await
            },
            tokio::time::sleep,
        )
        .await;
    assert_eq!(tight.unwrap_err().after(), ms(30));
    let snap = limiter.snapshot();
    assert_eq!((snap.completed, snap.timed_out), (0, 2));
}

#[test]
fn the_sync_call_retries_and_reports_the_last_error() {
    let retry = Retry::builder("sync")
        .max_attempts(3)
        .backoff(Backoff::constant(Duration::ZERO))
        .build()
        .unwrap();
    let mut seen = Vec::new();
    let result = retry.call(|attempt| {
        seen.push((attempt.number(), attempt.is_retry()));
        Err::<(), _>(attempt.number())
    });
    assert_eq!(result, Err(3));
    assert_eq!(seen, [(1, false), (2, true), (3, true)]);
}

#[test]
fn bad_retry_settings_name_the_field_and_value() {
    let err = Retry::builder("x").max_attempts(0).build().unwrap_err();
    assert_eq!(err.field(), Some("max_attempts"));
    assert!(err.to_string().contains("= 0"), "{err}");
    let err = Retry::builder("x")
        .backoff(Backoff::default().multiplier(0.5))
        .build()
        .unwrap_err();
    assert_eq!(err.field(), Some("multiplier"));
    let err = Retry::builder("x")
        .backoff(Backoff::exponential(ms(10), ms(5)))
        .build()
        .unwrap_err();
    assert_eq!(err.field(), Some("max_backoff"));
    let err = TimeLimiter::builder("x")
        .timeout(Duration::ZERO)
        .build()
        .unwrap_err();
    assert_eq!(err.field(), Some("timeout"));
}
