//! `call_async` and owned permits: outcomes, cancellation, panics and stale results.
#![allow(clippy::unwrap_used, clippy::expect_used)] // tests may panic on bad setup

use std::future::{Future, pending};
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::pin::pin;
use std::sync::Arc;
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use resilience_core::{CallError, CircuitBreaker, ManualClock, Outcome, RejectReason, State};

fn breaker(clock: &ManualClock) -> CircuitBreaker<ManualClock> {
    CircuitBreaker::builder("dep")
        .clock(clock.clone())
        .fail_max(1)
        .reset_timeout(Duration::from_secs(1))
        .half_open_probes(1)
        .half_open_successes(1)
        .build()
        .unwrap()
}

fn poll_once<F: Future>(future: std::pin::Pin<&mut F>) -> Poll<F::Output> {
    future.poll(&mut Context::from_waker(Waker::noop()))
}

/// Trips `b` and lets its OPEN time pass, so the next call is the HALF_OPEN probe.
fn ready_for_probe(b: &CircuitBreaker<ManualClock>, clock: &ManualClock) {
    b.try_acquire().unwrap().failure();
    assert_eq!(b.state(), State::Open);
    clock.advance(Duration::from_secs(1));
}

#[tokio::test]
async fn results_count_as_the_classifier_says() {
    let clock = ManualClock::new();
    let b = breaker(&clock);
    assert_eq!(b.call_async(|| async { Ok::<_, ()>(5) }).await, Ok(5));
    let ignored = b
        .call_async_with(
            |_: &Result<(), &str>| Outcome::Ignore,
            || async { Err("bad request") },
        )
        .await;
    assert_eq!(ignored, Err(CallError::Inner("bad request")));
    assert_eq!(b.state(), State::Closed, "an ignored error does not trip");
    let failed = b.call_async(|| async { Err::<(), _>("reset") }).await;
    assert_eq!(failed, Err(CallError::Inner("reset")));
    assert_eq!(b.state(), State::Open);
    let totals = b.snapshot().totals;
    assert_eq!(
        (totals.successes, totals.ignored, totals.failures),
        (1, 1, 1)
    );

    let mut ran = false;
    let shed = b
        .call_async(|| {
            ran = true;
            async { Ok::<_, ()>(()) }
        })
        .await;
    let Err(CallError::Rejected(rejected)) = shed else {
        panic!("expected a rejection, got {shed:?}")
    };
    assert_eq!(rejected.reason(), RejectReason::Open);
    assert!(!ran, "a rejected call never starts");
}

#[test]
fn a_cancelled_probe_frees_its_half_open_slot() {
    let clock = ManualClock::new();
    let b = breaker(&clock);
    ready_for_probe(&b, &clock);
    {
        let mut probe = pin!(b.call_async(pending::<Result<(), ()>>));
        assert!(poll_once(probe.as_mut()).is_pending());
        assert_eq!(b.state(), State::HalfOpen);
        let busy = b.try_acquire().unwrap_err();
        assert_eq!(busy.reason(), RejectReason::HalfOpenFull);
        // The probe is dropped here, mid-flight (a timeout, a client that went away).
    }
    let next = b
        .try_acquire()
        .expect("the cancelled probe's slot is free again");
    next.success();
    assert_eq!(b.state(), State::Closed);
    assert_eq!(
        b.snapshot().totals.failures,
        1,
        "cancellation is not a failure"
    );
}

#[test]
fn a_panicking_call_counts_as_a_failure() {
    let clock = ManualClock::new();
    let b = breaker(&clock);
    let mut call = Box::pin(b.call_async(|| async {
        panic!("handler bug");
        #[allow(unreachable_code)]
        Ok::<(), ()>(())
    }));
    let unwound = catch_unwind(AssertUnwindSafe(|| poll_once(call.as_mut())));
    assert!(unwound.is_err());
    // Dropped after the unwind, as an executor would: the failure is already counted.
    drop(call);
    assert_eq!(b.state(), State::Open);
    assert_eq!(b.snapshot().totals.failures, 1);
}

#[test]
fn a_result_from_before_a_reset_is_stale() {
    let clock = ManualClock::new();
    let b = breaker(&clock);
    let (tx, rx) = std::sync::mpsc::channel::<()>();
    let mut call = pin!(
        b.call_async(|| std::future::poll_fn(move |_| match rx.try_recv() {
            Ok(()) => Poll::Ready(Err::<(), _>("late failure")),
            Err(_) => Poll::Pending,
        }))
    );
    assert!(poll_once(call.as_mut()).is_pending());
    b.force_open();
    b.reset();
    tx.send(()).unwrap();
    assert!(poll_once(call.as_mut()).is_ready());
    assert_eq!(
        b.state(),
        State::Closed,
        "a failure of an earlier generation cannot trip"
    );
    assert_eq!(b.snapshot().totals.stale, 1);
}

#[test]
fn owned_permits_travel_to_other_threads() {
    let clock = ManualClock::new();
    let b = Arc::new(breaker(&clock));
    ready_for_probe(&b, &clock);
    let probe = b.try_acquire_owned().unwrap();
    assert_eq!(probe.state(), State::HalfOpen);
    assert_eq!(
        b.try_acquire().unwrap_err().reason(),
        RejectReason::HalfOpenFull
    );
    std::thread::spawn(move || drop(probe)).join().unwrap();
    let probe = b
        .try_acquire_owned()
        .expect("slot released by the dropped owned permit");
    std::thread::spawn(move || probe.success()).join().unwrap();
    assert_eq!(b.state(), State::Closed);
}
