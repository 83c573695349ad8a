//! The composed pipeline: order of the policies, refusals never retried, time-outs counted by
//! the breaker and retried, deadlines propagated, permits freed on cancellation and panic, and
//! the seed's fallback semantics (refusals and the call that trips the breaker).
#![allow(clippy::unwrap_used, clippy::expect_used)] // tests may panic on bad setup

use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use resilience_core::bulkhead::Bulkhead;
use resilience_core::chaos::{ErrorCode, FaultSpec, Scenario};
use resilience_core::pipeline::{FallbackOn, Pipeline, PipelineError, Refusal};
use resilience_core::rate_limit::RateLimiter;
use resilience_core::retry::{Backoff, Retry};
use resilience_core::timeout::{Deadline, TimeLimiter};
use resilience_core::{CircuitBreaker, Clock, FaultTable, Nanos, State};
use tokio::time::Instant;

#[derive(Clone)]
struct TokioClock(Instant);

impl Clock for TokioClock {
    fn now(&self) -> Nanos {
        Nanos::from_nanos(self.0.elapsed().as_nanos() as u64)
    }
}

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

struct Parts {
    clock: TokioClock,
    breaker: Arc<CircuitBreaker<TokioClock>>,
    bulkhead: Arc<Bulkhead>,
}

fn parts(fail_max: u32) -> Parts {
    let clock = TokioClock(Instant::now());
    Parts {
        breaker: Arc::new(
            CircuitBreaker::builder("dep")
                .clock(clock.clone())
                .fail_max(fail_max)
                .reset_timeout(Duration::from_secs(30))
                .build()
                .unwrap(),
        ),
        bulkhead: Arc::new(Bulkhead::builder("dep").max_concurrent(1).build().unwrap()),
        clock,
    }
}

fn retry(clock: &TokioClock, attempts: u32) -> Retry<TokioClock> {
    Retry::builder("dep")
        .clock(clock.clone())
        .max_attempts(attempts)
        .backoff(Backoff::constant(ms(10)))
        .build()
        .unwrap()
}

#[tokio::test(start_paused = true)]
async fn failures_are_retried_and_counted_by_the_breaker_each_time() {
    let p = parts(10);
    let pipeline = Pipeline::builder_on(p.clock.clone())
        .retry(retry(&p.clock, 3))
        .breaker(p.breaker.clone())
        .build();
    let calls = AtomicU32::new(0);
    let result = pipeline
        .call_async(
            |attempt| {
                calls.fetch_add(1, Ordering::Relaxed);
                async move {
                    if attempt.number() < 3 {
                        Err("reset")
                    } else {
                        Ok(5)
                    }
                }
            },
            tokio::time::sleep,
        )
        .await;
    assert_eq!(result, Ok(5));
    assert_eq!(calls.load(Ordering::Relaxed), 3);
    let totals = p.breaker.snapshot().totals;
    assert_eq!((totals.failures, totals.successes), (2, 1));
}

#[tokio::test(start_paused = true)]
async fn a_refusal_is_never_retried_and_an_open_breaker_is_not_called() {
    let p = parts(2);
    let pipeline = Pipeline::builder_on(p.clock.clone())
        .retry(retry(&p.clock, 5))
        .breaker(p.breaker.clone())
        .build();
    let calls = AtomicU32::new(0);
    let result = pipeline
        .call_async(
            |_| {
                calls.fetch_add(1, Ordering::Relaxed);
                async { Err::<(), _>("down") }
            },
            tokio::time::sleep,
        )
        .await;
    // Two failures open the breaker; the second is reported as the one that tripped it, and
    // the retry stops there instead of knocking on the open breaker three more times.
    assert_eq!(result, Err(PipelineError::Tripped("down")));
    assert_eq!(calls.load(Ordering::Relaxed), 2);
    assert_eq!(p.breaker.state(), State::Open);
    let again = pipeline.call(|_| Ok::<_, ()>(1));
    assert!(matches!(
        again,
        Err(PipelineError::Refused(Refusal::Breaker(_)))
    ));
    assert_eq!(pipeline.retry().unwrap().snapshot().retries, 1);
}

#[tokio::test(start_paused = true)]
async fn a_later_refusal_gives_back_the_breaker_permit_uncounted() {
    let p = parts(5);
    let pipeline = Pipeline::builder_on(p.clock.clone())
        .breaker(p.breaker.clone())
        .bulkhead(p.bulkhead.clone())
        .build();
    let held = p.bulkhead.try_acquire().unwrap();
    let refused = pipeline.call(|_| Ok::<_, ()>(1));
    assert!(matches!(
        refused,
        Err(PipelineError::Refused(Refusal::Bulkhead(_)))
    ));
    drop(held);
    let totals = p.breaker.snapshot().totals;
    assert_eq!((totals.failures, totals.successes), (0, 0), "not counted");
    assert_eq!(pipeline.call(|_| Ok::<_, ()>(1)), Ok(1));
}

#[tokio::test(start_paused = true)]
async fn a_rate_limited_call_is_refused_with_its_retry_after() {
    let clock = TokioClock(Instant::now());
    let pipeline = Pipeline::builder_on(clock.clone())
        .retry(retry(&clock, 3))
        .rate_limiter(
            RateLimiter::builder("dep")
                .rate(10, Duration::from_secs(1))
                .burst(1)
                .clock(clock.clone())
                .build()
                .unwrap(),
        )
        .build();
    assert_eq!(pipeline.call(|_| Ok::<_, ()>(1)), Ok(1));
    match pipeline.call(|_| Ok::<_, ()>(1)) {
        Err(PipelineError::Refused(Refusal::RateLimited(limited))) => {
            assert_eq!(limited.retry_after(), Some(ms(100)));
        }
        other => panic!("{other:?}"),
    }
}

#[tokio::test(start_paused = true)]
async fn a_time_out_counts_as_a_failure_is_retried_and_the_deadline_reaches_the_call() {
    let p = parts(10);
    let pipeline = Pipeline::builder_on(p.clock.clone())
        .retry(retry(&p.clock, 3))
        .time_limiter(
            TimeLimiter::builder("dep")
                .clock(p.clock.clone())
                .timeout(ms(50))
                .build()
                .unwrap(),
        )
        .breaker(p.breaker.clone())
        .bulkhead(p.bulkhead.clone())
        .build();
    let start = Instant::now();
    let outer = Deadline::after(&p.clock, ms(130));
    let seen = std::cell::RefCell::new(Vec::new());
    let result = pipeline
        .call_async(
            |attempt| {
                let left = attempt.deadline().unwrap().remaining(&p.clock);
                seen.borrow_mut().push((attempt.number(), left.as_millis()));
                async { std::future::pending::<Result<(), ()>>().await }
            },
            tokio::time::sleep,
        )
        .within(outer)
        .when(|_: &()| true)
        .await;
    assert!(matches!(result, Err(PipelineError::TimedOut(_))));
    // Attempt 1 at 0 ms (50 left), 2 at 60 (50 left), 3 at 120: only 10 ms of the outer
    // deadline remain, and its time limit shrinks to them.
    assert_eq!(*seen.borrow(), [(1, 50), (2, 50), (3, 10)]);
    assert_eq!(start.elapsed(), ms(130));
    assert_eq!(p.breaker.snapshot().totals.failures, 3);
    assert_eq!(p.bulkhead.in_flight(), 0);
}

#[tokio::test(start_paused = true)]
async fn a_cancelled_call_frees_its_slot_and_its_probe() {
    let p = parts(5);
    let pipeline = Pipeline::builder_on(p.clock.clone())
        .breaker(p.breaker.clone())
        .bulkhead(p.bulkhead.clone())
        .build();
    let call = pipeline.call_async(
        |_| async { std::future::pending::<Result<(), ()>>().await },
        tokio::time::sleep,
    );
    let cut = tokio::time::timeout(ms(5), call).await;
    assert!(cut.is_err());
    assert_eq!(p.bulkhead.in_flight(), 0);
    let totals = p.breaker.snapshot().totals;
    assert_eq!((totals.failures, totals.successes), (0, 0));
    assert_eq!(pipeline.call(|_| Ok::<_, ()>(1)), Ok(1));
}

#[test]
fn a_panicking_call_frees_its_slot_and_counts_as_a_failure() {
    let clock = resilience_core::ManualClock::new();
    let breaker = Arc::new(
        CircuitBreaker::builder("dep")
            .clock(clock.clone())
            .build()
            .unwrap(),
    );
    let bulkhead = Arc::new(Bulkhead::builder("dep").max_concurrent(1).build().unwrap());
    let pipeline = Pipeline::builder_on(clock)
        .breaker(breaker.clone())
        .bulkhead(bulkhead.clone())
        .build();
    let panicked = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        let _ = pipeline.call(|_| -> Result<(), ()> { panic!("bug") });
    }));
    assert!(panicked.is_err());
    assert_eq!(bulkhead.in_flight(), 0);
    assert_eq!(breaker.snapshot().totals.failures, 1);
}

#[tokio::test(start_paused = true)]
async fn the_fallback_answers_refusals_and_the_call_that_trips_as_the_seed_does() {
    let p = parts(2);
    let pipeline = Pipeline::builder_on(p.clock.clone())
        .breaker(p.breaker.clone())
        .build();
    // First failure: an error, not covered by FallbackOn::Rejection.
    let first = pipeline.call_or(|_| Err::<&str, _>("down"), |_| "cached");
    assert_eq!(first, Err(PipelineError::Failed("down")));
    // The failure that opens the breaker: answered by the fallback.
    let tripping = pipeline.call_or(|_| Err::<&str, _>("down"), |_| "cached");
    assert_eq!(tripping, Ok("cached"));
    // Refused while open: answered by the fallback, the call not made.
    let refused = pipeline
        .call_async_or(
            |_| async { panic!("not called while open") },
            tokio::time::sleep,
            |e: PipelineError<&str>| {
                assert!(e.is_refused());
                "cached"
            },
        )
        .await;
    assert_eq!(refused, Ok("cached"));

    let on_error = Pipeline::builder_on(p.clock.clone())
        .fallback_on(FallbackOn::Error)
        .build();
    assert_eq!(on_error.call_or(|_| Err::<u8, _>("x"), |_| 9), Ok(9));
    assert!(FallbackOn::Any.applies(&PipelineError::<()>::Failed(())));
    assert!(
        !FallbackOn::Error.applies(&PipelineError::<()>::Refused(pipeline_refusal(&p.breaker)))
    );
}

fn pipeline_refusal(breaker: &CircuitBreaker<TokioClock>) -> Refusal {
    breaker.force_open();
    Refusal::Breaker(breaker.try_acquire().unwrap_err())
}

#[tokio::test(start_paused = true)]
async fn injected_chaos_is_the_breakers_failure_and_is_retried() {
    let p = parts(10);
    let table = Arc::new(
        FaultTable::builder()
            .clock(p.clock.clone())
            .build()
            .unwrap(),
    );
    let point = table.point("dep").unwrap();
    table
        .arm(Scenario::new("errors", "dep", FaultSpec::Error(ErrorCode(503))).duration(ms(10_000)))
        .unwrap();
    let pipeline = Pipeline::builder_on(p.clock.clone())
        .retry(retry(&p.clock, 3))
        .breaker(p.breaker.clone())
        .chaos(table.clone(), point)
        .build();
    let calls = AtomicU32::new(0);
    let result = pipeline
        .call_async(
            |_| {
                calls.fetch_add(1, Ordering::Relaxed);
                async { Ok::<_, ()>(1) }
            },
            tokio::time::sleep,
        )
        .await;
    assert!(matches!(result, Err(PipelineError::Injected(_))));
    assert_eq!(
        calls.load(Ordering::Relaxed),
        0,
        "the call itself never ran"
    );
    assert_eq!(p.breaker.snapshot().totals.failures, 3);
    table.emergency_stop();
    assert_eq!(pipeline.call(|_| Ok::<_, ()>(2)), Ok(2));
}
