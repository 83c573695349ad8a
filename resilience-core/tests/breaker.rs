//! Every transition and edge of `CircuitBreaker`, on a manual clock.
#![allow(clippy::unwrap_used, clippy::expect_used)] // tests may panic on bad setup

use std::sync::{Arc, Barrier};
use std::thread;
use std::time::Duration;

use resilience_core::{
    BreakerEvent, CallError, CircuitBreaker, CircuitBreakerBuilder, Clock, EventChannel,
    GovernanceHash, ManualClock, Outcome, RejectReason, SlidingWindow, State,
};

fn builder(clock: &ManualClock) -> CircuitBreakerBuilder<ManualClock> {
    CircuitBreaker::builder("dep").clock(clock.clone())
}

fn drain(events: &EventChannel) -> Vec<(State, State)> {
    let mut out = Vec::new();
    events.drain_into(&mut out, usize::MAX);
    out.into_iter()
        .map(|e: BreakerEvent| (e.from, e.to))
        .collect()
}

fn fail(b: &CircuitBreaker<ManualClock>, n: usize) {
    for _ in 0..n {
        b.try_acquire().expect("admitted").failure();
    }
}

#[test]
fn default_trips_after_five_consecutive_failures_exactly() {
    let clock = ManualClock::new();
    let b = builder(&clock).build().unwrap();
    fail(&b, 4);
    assert_eq!(b.state(), State::Closed);
    assert_eq!(b.snapshot().consecutive_failures, 4);
    fail(&b, 1);
    assert_eq!(b.state(), State::Open);
}

#[test]
fn a_success_breaks_the_run_of_failures() {
    let clock = ManualClock::new();
    let b = builder(&clock).fail_max(3).build().unwrap();
    fail(&b, 2);
    b.try_acquire().unwrap().success();
    assert_eq!(b.snapshot().consecutive_failures, 0);
    fail(&b, 2);
    assert_eq!(b.state(), State::Closed);
    fail(&b, 1);
    assert_eq!(b.state(), State::Open);
}

#[test]
fn open_rejects_with_a_shrinking_retry_after_then_admits_one_probe() {
    let clock = ManualClock::new();
    let b = builder(&clock)
        .fail_max(1)
        .reset_timeout(Duration::from_secs(30))
        .build()
        .unwrap();
    fail(&b, 1);
    let r = b.try_acquire().unwrap_err();
    assert_eq!(r.reason(), RejectReason::Open);
    assert_eq!(r.retry_after(), Some(Duration::from_secs(30)));
    assert_eq!(r.governance(), GovernanceHash::DEFAULT);

    clock.advance(Duration::from_millis(29_999));
    assert_eq!(
        b.try_acquire().unwrap_err().retry_after(),
        Some(Duration::from_millis(1))
    );
    clock.advance(Duration::from_millis(1));
    let probe = b
        .try_acquire()
        .expect("the first call after the timeout is the probe");
    assert_eq!(probe.state(), State::HalfOpen);
    assert_eq!(b.state(), State::HalfOpen);
    // No stampede: the single probe slot is taken.
    assert_eq!(
        b.try_acquire().unwrap_err().reason(),
        RejectReason::HalfOpenFull
    );
    probe.success();
    assert_eq!(b.state(), State::Closed);
    assert_eq!(b.snapshot().totals.rejected, 3);
}

#[test]
fn half_open_needs_the_configured_successes_with_bounded_probes() {
    let clock = ManualClock::new();
    let b = builder(&clock)
        .fail_max(1)
        .reset_timeout(Duration::from_secs(1))
        .half_open_probes(2)
        .half_open_successes(3)
        .build()
        .unwrap();
    fail(&b, 1);
    clock.advance(Duration::from_secs(1));
    let p1 = b.try_acquire().unwrap();
    let p2 = b.try_acquire().unwrap();
    assert_eq!(
        b.try_acquire().unwrap_err().reason(),
        RejectReason::HalfOpenFull
    );
    p1.success();
    p2.success();
    assert_eq!(b.state(), State::HalfOpen);
    assert_eq!(b.snapshot().half_open_successes, 2);
    b.try_acquire().unwrap().success();
    assert_eq!(b.state(), State::Closed);
}

#[test]
fn failed_probes_grow_the_open_time_up_to_the_cap_and_closing_resets_it() {
    let clock = ManualClock::new();
    let b = builder(&clock)
        .fail_max(1)
        .reset_timeout(Duration::from_secs(1))
        .backoff_multiplier(2.0)
        .max_reset_timeout(Duration::from_secs(5))
        .build()
        .unwrap();
    fail(&b, 1);
    let mut open_times = Vec::new();
    for _ in 0..5 {
        let retry = b.try_acquire().unwrap_err().retry_after().unwrap();
        open_times.push(retry.as_secs());
        clock.advance(retry);
        b.try_acquire().expect("probe").failure();
    }
    assert_eq!(open_times, [1, 2, 4, 5, 5]);
    assert_eq!(b.snapshot().backoff_level, 5);
    let retry = b.try_acquire().unwrap_err().retry_after().unwrap();
    clock.advance(retry);
    b.try_acquire().unwrap().success();
    assert_eq!(b.state(), State::Closed);
    fail(&b, 1);
    assert_eq!(
        b.try_acquire().unwrap_err().retry_after(),
        Some(Duration::from_secs(1))
    );
}

#[test]
fn a_dropped_probe_releases_its_slot_so_half_open_never_wedges() {
    let clock = ManualClock::new();
    let b = builder(&clock)
        .fail_max(1)
        .reset_timeout(Duration::from_secs(1))
        .build()
        .unwrap();
    fail(&b, 1);
    clock.advance(Duration::from_secs(1));
    for _ in 0..3 {
        let probe = b.try_acquire().expect("slot is free again");
        drop(probe); // a cancelled future, an early return
        assert_eq!(b.snapshot().half_open_in_flight, 0);
    }
    assert_eq!(b.state(), State::HalfOpen);
    assert_eq!(b.snapshot().totals.ignored, 3);
}

#[test]
fn a_hung_probe_is_presumed_lost_after_the_probe_timeout() {
    let clock = ManualClock::new();
    let b = builder(&clock)
        .fail_max(1)
        .reset_timeout(Duration::from_secs(1))
        .probe_timeout(Duration::from_secs(10))
        .build()
        .unwrap();
    fail(&b, 1);
    clock.advance(Duration::from_secs(1));
    let hung = b.try_acquire().unwrap();
    clock.advance(Duration::from_millis(9_999));
    assert_eq!(
        b.try_acquire().unwrap_err().reason(),
        RejectReason::HalfOpenFull
    );
    clock.advance(Duration::from_millis(1));
    let fresh = b.try_acquire().expect("a fresh probe after the timeout");
    assert_ne!(fresh.generation(), hung.generation());
    hung.failure(); // its late verdict must not reopen the breaker
    assert_eq!(b.state(), State::HalfOpen);
    assert_eq!(b.snapshot().totals.stale, 1);
    fresh.success();
    assert_eq!(b.state(), State::Closed);
}

#[test]
fn late_outcomes_from_an_earlier_generation_are_ignored() {
    let clock = ManualClock::new();
    let b = builder(&clock)
        .fail_max(2)
        .reset_timeout(Duration::from_secs(1))
        .build()
        .unwrap();
    let slow_success = b.try_acquire().unwrap();
    let slow_failure = b.try_acquire().unwrap();
    fail(&b, 2);
    assert_eq!(b.state(), State::Open);
    clock.advance(Duration::from_secs(1));
    let probe = b.try_acquire().unwrap();
    // Results of calls admitted while CLOSED arrive now: neither may decide the probe.
    slow_success.success();
    slow_failure.failure();
    assert_eq!(b.state(), State::HalfOpen);
    assert_eq!(b.snapshot().totals.stale, 2);
    probe.success();
    assert_eq!(b.state(), State::Closed);
    // And after a reset, a permit from before is stale too.
    let before_reset = b.try_acquire().unwrap();
    b.reset();
    before_reset.failure();
    assert_eq!(b.snapshot().consecutive_failures, 0);
}

#[test]
fn forced_open_disabled_and_reset() {
    let clock = ManualClock::new();
    let events = Arc::new(EventChannel::with_capacity(16).unwrap());
    let b = builder(&clock)
        .fail_max(1)
        .events(events.clone())
        .build()
        .unwrap();
    assert_eq!(b.force_open().previous, State::Closed);
    let r = b.try_acquire().unwrap_err();
    assert_eq!(
        (r.reason(), r.retry_after()),
        (RejectReason::ForcedOpen, None)
    );
    clock.advance(Duration::from_secs(3600));
    assert!(b.try_acquire().is_err(), "forced open does not time out");
    assert_eq!(b.disable(), State::ForcedOpen);
    fail(&b, 10);
    assert_eq!(b.state(), State::Disabled, "disabled records nothing");
    assert_eq!(
        b.snapshot().totals.failures,
        10,
        "but still counts for metrics"
    );
    assert_eq!(b.reset(), State::Disabled);
    assert_eq!(b.state(), State::Closed);
    assert_eq!(
        drain(&events),
        [
            (State::Closed, State::ForcedOpen),
            (State::ForcedOpen, State::Disabled),
            (State::Disabled, State::Closed)
        ]
    );
}

#[test]
fn recovery_and_fleet_controls() {
    let clock = ManualClock::new();
    let b = builder(&clock)
        .fail_max(1)
        .reset_timeout(Duration::from_secs(5))
        .build()
        .unwrap();
    fail(&b, 1);
    assert_eq!(b.transition_to_half_open(), State::Open);
    assert_eq!(b.snapshot().half_open_in_flight, 0);
    b.try_acquire().unwrap().success();
    assert_eq!(b.state(), State::Closed);
    assert_eq!(b.trip_open(), State::Closed);
    assert_eq!(
        b.try_acquire().unwrap_err().retry_after(),
        Some(Duration::from_secs(5))
    );
}

#[test]
fn restore_after_a_forced_open_respects_later_changes() {
    let clock = ManualClock::new();
    let b = builder(&clock).fail_max(1).build().unwrap();
    let forced = b.force_open();
    assert!(b.restore_if_unchanged(forced));
    assert_eq!(b.state(), State::Closed);

    // A breaker that was OPEN goes to HALF_OPEN so a probe decides.
    fail(&b, 1);
    let forced = b.force_open();
    assert_eq!(forced.previous, State::Open);
    assert!(b.restore_if_unchanged(forced));
    assert_eq!(b.state(), State::HalfOpen);

    // An operator acted after the force: leave their decision alone.
    let forced = b.force_open();
    b.disable();
    assert!(!b.restore_if_unchanged(forced));
    assert_eq!(b.state(), State::Disabled);
}

#[test]
fn a_timed_force_restores_itself_on_the_call_path() {
    let clock = ManualClock::new();
    let b = builder(&clock)
        .fail_max(1)
        .reset_timeout(Duration::from_secs(1))
        .build()
        .unwrap();
    let forced = b.force_open_for(Duration::from_secs(5)).unwrap();
    assert_eq!(forced.previous, State::Closed);
    let r = b.try_acquire().unwrap_err();
    assert_eq!(
        (r.reason(), r.retry_after()),
        (RejectReason::ForcedOpen, Some(Duration::from_secs(5)))
    );
    assert_eq!(b.snapshot().open_until.unwrap().as_millis(), 5_000);
    assert_eq!(b.snapshot().backoff_level, 0);
    clock.advance(Duration::from_millis(4_999));
    assert!(b.try_acquire().is_err());
    clock.advance(Duration::from_millis(1));
    b.try_acquire()
        .expect("restored to CLOSED at the deadline")
        .success();
    assert_eq!(b.state(), State::Closed);
    assert!(!b.restore_if_unchanged(forced), "already restored");

    // OPEN before the force: HALF_OPEN after it, and the call that restores is the probe.
    fail(&b, 1);
    b.force_open_for(Duration::from_secs(2)).unwrap();
    clock.advance(Duration::from_secs(2));
    let probe = b.try_acquire().unwrap();
    assert_eq!(probe.state(), State::HalfOpen);
    probe.success();
    assert_eq!(b.state(), State::Closed);
}

#[test]
fn chaos_never_overrides_an_operator_and_keeps_the_later_deadline() {
    let clock = ManualClock::new();
    let b = builder(&clock).build().unwrap();
    b.force_open();
    let chaos = b.force_open_for(Duration::from_secs(1)).unwrap();
    assert_eq!(chaos.previous, State::ForcedOpen);
    clock.advance(Duration::from_secs(2));
    assert_eq!(
        b.try_acquire().unwrap_err().retry_after(),
        None,
        "still the operator's force"
    );
    b.reset();

    let first = b.force_open_for(Duration::from_secs(10)).unwrap();
    let second = b.force_open_for(Duration::from_secs(3)).unwrap();
    assert_eq!(second.previous, State::ForcedOpen);
    clock.advance(Duration::from_secs(3));
    assert!(
        b.try_acquire().is_err(),
        "the first scenario's later deadline holds"
    );
    assert!(
        !b.restore_if_unchanged(first),
        "the second force moved the generation"
    );
    assert!(b.restore_if_unchanged(second));
    assert_eq!(
        b.state(),
        State::Closed,
        "restored to what the first force found"
    );
    for bad in [Duration::ZERO, Duration::from_secs(31 * 24 * 3600)] {
        assert_eq!(
            b.force_open_for(bad).unwrap_err().field(),
            Some("force_open_for.duration")
        );
    }
}

#[test]
fn count_window_rate_trips_only_after_min_calls() {
    let clock = ManualClock::new();
    let b = builder(&clock)
        .without_fail_max()
        .failure_rate(0.5)
        .sliding_window(SlidingWindow::Count(10))
        .min_calls(4)
        .build()
        .unwrap();
    fail(&b, 3);
    assert_eq!(b.state(), State::Closed, "3 calls < min_calls 4");
    b.try_acquire().unwrap().success();
    b.try_acquire().unwrap().success();
    assert_eq!(b.state(), State::Closed, "failures only trip on a failure");
    fail(&b, 1);
    // 4 failures of 6 calls.
    assert_eq!(b.state(), State::Open);
}

#[test]
fn count_window_forgets_old_calls_and_is_cleared_on_close() {
    let clock = ManualClock::new();
    let b = builder(&clock)
        .without_fail_max()
        .failure_rate(0.6)
        .sliding_window(SlidingWindow::Count(5))
        .reset_timeout(Duration::from_secs(1))
        .build()
        .unwrap();
    fail(&b, 2);
    for _ in 0..5 {
        b.try_acquire().unwrap().success();
    }
    let w = b.window_counts().unwrap();
    assert_eq!((w.calls, w.failures), (5, 0), "the two failures slid out");
    fail(&b, 3);
    assert_eq!(b.state(), State::Open, "3 of the last 5 failed");
    clock.advance(Duration::from_secs(1));
    b.try_acquire().unwrap().success();
    assert_eq!(b.state(), State::Closed);
    assert_eq!(
        b.window_counts().unwrap().calls,
        0,
        "closing starts a fresh window"
    );
}

#[test]
fn time_window_rate_counts_only_recent_calls() {
    let clock = ManualClock::new();
    let b = builder(&clock)
        .without_fail_max()
        .failure_rate(0.5)
        .sliding_window(SlidingWindow::Time {
            duration: Duration::from_secs(10),
            buckets: 10,
        })
        .min_calls(4)
        .build()
        .unwrap();
    fail(&b, 3);
    clock.advance(Duration::from_secs(11));
    for _ in 0..3 {
        b.try_acquire().unwrap().success();
    }
    fail(&b, 1);
    assert_eq!(
        b.state(),
        State::Closed,
        "the old failures left the window: 1 of 4"
    );
    fail(&b, 2);
    assert_eq!(b.state(), State::Open, "3 of 6 within 10 s");
}

#[test]
fn call_and_call_with_classify_and_a_panic_counts_as_failure() {
    let clock = ManualClock::new();
    let b = builder(&clock).fail_max(2).build().unwrap();
    assert_eq!(b.call(|| Ok::<_, ()>(7)), Ok(7));
    let classify = |r: &Result<(), &str>| match r {
        Err("bad request") => Outcome::Ignore,
        Err(_) => Outcome::Failure,
        Ok(()) => Outcome::Success,
    };
    assert_eq!(
        b.call_with(classify, || Err("bad request")),
        Err(CallError::Inner("bad request"))
    );
    assert_eq!(b.snapshot().consecutive_failures, 0);
    let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        let _ = b.call(|| -> Result<(), ()> { panic!("dependency client bug") });
    }));
    assert!(result.is_err());
    assert_eq!(
        b.snapshot().consecutive_failures,
        1,
        "the panic counted as a failure"
    );
    let _ = b.call(|| Err::<(), _>("boom"));
    assert!(matches!(
        b.call(|| Ok::<_, ()>(1)),
        Err(CallError::Rejected(_))
    ));
}

#[test]
fn events_report_transitions_in_order_and_count_drops() {
    let clock = ManualClock::new();
    let events = Arc::new(EventChannel::with_capacity(2).unwrap());
    let b = builder(&clock)
        .fail_max(1)
        .reset_timeout(Duration::from_secs(1))
        .governance(GovernanceHash::from_u64(42))
        .events(events.clone())
        .build()
        .unwrap();
    fail(&b, 1);
    clock.advance(Duration::from_secs(1));
    b.try_acquire().unwrap().success();
    assert_eq!(
        events.dropped(),
        1,
        "three transitions into a channel of two"
    );
    let first = events.pop().unwrap();
    assert_eq!(
        (first.from, first.to, first.breaker),
        (State::Closed, State::Open, b.id())
    );
    assert_eq!(first.governance, GovernanceHash::from_u64(42));
    assert_eq!(
        clock.now().saturating_since(first.at),
        Duration::from_secs(1)
    );
    assert_eq!(drain(&events), [(State::Open, State::HalfOpen)]);
}

#[test]
fn snapshot_reports_since_and_open_until() {
    let clock = ManualClock::new();
    clock.advance(Duration::from_secs(100));
    let b = builder(&clock)
        .fail_max(1)
        .reset_timeout(Duration::from_secs(30))
        .build()
        .unwrap();
    clock.advance(Duration::from_secs(5));
    fail(&b, 1);
    let snap = b.snapshot();
    assert_eq!(snap.state, State::Open);
    assert_eq!(snap.since.as_millis(), 105_000);
    assert_eq!(snap.open_until.unwrap().as_millis(), 135_000);
    assert_eq!(snap.totals.failures, 1);
}

#[test]
fn jittered_open_times_stay_in_band_and_differ() {
    let clock = ManualClock::new();
    let mut seen = std::collections::BTreeSet::new();
    for _ in 0..20 {
        let b = builder(&clock)
            .fail_max(1)
            .reset_timeout(Duration::from_secs(10))
            .jitter(0.5)
            .build()
            .unwrap();
        fail(&b, 1);
        let retry = b.try_acquire().unwrap_err().retry_after().unwrap();
        assert!(
            retry >= Duration::from_secs(5) && retry <= Duration::from_secs(15),
            "{retry:?}"
        );
        seen.insert(retry);
    }
    assert!(seen.len() > 10, "jitter spreads open times: {seen:?}");
}

#[test]
fn names_are_validated() {
    for bad in ["", "a\nb", &"x".repeat(201)] {
        let err = CircuitBreaker::builder(bad).build().unwrap_err();
        assert_eq!(err.field(), Some("name"), "{bad:?}");
    }
}

#[test]
fn rejected_is_small_and_copy() {
    fn is_copy<T: Copy>() {}
    is_copy::<resilience_core::Rejected>();
    assert!(std::mem::size_of::<resilience_core::Rejected>() <= 24);
}

// ---------------------------------------------------------------------------------------------
// Concurrency, with real threads.

#[test]
fn no_stampede_in_half_open_under_contention() {
    const THREADS: usize = 8;
    for probes in [1u32, 3] {
        let clock = ManualClock::new();
        let b = Arc::new(
            builder(&clock)
                .fail_max(1)
                .reset_timeout(Duration::from_secs(1))
                .half_open_probes(probes)
                .build()
                .unwrap(),
        );
        fail(&b, 1);
        clock.advance(Duration::from_secs(1));
        let barrier = Arc::new(Barrier::new(THREADS));
        let admitted: usize = (0..THREADS)
            .map(|_| {
                let (b, barrier) = (b.clone(), barrier.clone());
                thread::spawn(move || {
                    barrier.wait();
                    let mut held = Vec::new();
                    for _ in 0..100 {
                        if let Ok(p) = b.try_acquire() {
                            held.push(p.generation());
                            // Keep the permit: a stampede would admit more than `probes`.
                            std::mem::forget(p);
                        }
                    }
                    held.len()
                })
            })
            .collect::<Vec<_>>()
            .into_iter()
            .map(|h| h.join().unwrap())
            .sum();
        assert_eq!(admitted, probes as usize);
    }
}

#[test]
fn a_trip_racing_successes_opens_exactly_once() {
    const FAILERS: usize = 3;
    for _round in 0..50 {
        let clock = ManualClock::new();
        let events = Arc::new(EventChannel::with_capacity(64).unwrap());
        let b = Arc::new(
            builder(&clock)
                .fail_max(20)
                .events(events.clone())
                .build()
                .unwrap(),
        );
        let barrier = Arc::new(Barrier::new(FAILERS + 1));
        let succeeder = {
            let (b, barrier) = (b.clone(), barrier.clone());
            thread::spawn(move || {
                barrier.wait();
                for _ in 0..2_000 {
                    if let Ok(p) = b.try_acquire() {
                        p.success();
                    }
                }
                2_000u64
            })
        };
        let failers: Vec<_> = (0..FAILERS)
            .map(|_| {
                let (b, barrier) = (b.clone(), barrier.clone());
                thread::spawn(move || {
                    barrier.wait();
                    // Fail until the breaker opens; once the succeeder is done nothing can
                    // interrupt a run of 20, so this ends.
                    let mut calls = 0u64;
                    while b.state() == State::Closed && calls < 10_000_000 {
                        if let Ok(p) = b.try_acquire() {
                            p.failure();
                        }
                        calls += 1;
                    }
                    calls
                })
            })
            .collect();
        let mut calls = succeeder.join().unwrap();
        for f in failers {
            calls += f.join().unwrap();
        }
        assert_eq!(b.state(), State::Open);
        assert_eq!(
            drain(&events),
            [(State::Closed, State::Open)],
            "exactly one trip"
        );
        let t = b.snapshot().totals;
        assert!(t.failures >= 20);
        // Every attempt ends as exactly one of these.
        assert_eq!(t.successes + t.failures + t.stale + t.rejected, calls);
    }
}

#[test]
fn totals_are_exact_across_threads() {
    const THREADS: u64 = 4;
    const CALLS: u64 = 50_000;
    let clock = ManualClock::new();
    let b = Arc::new(builder(&clock).fail_max(1_000_000).build().unwrap());
    let handles: Vec<_> = (0..THREADS)
        .map(|t| {
            let b = b.clone();
            thread::spawn(move || {
                for i in 0..CALLS {
                    let p = b.try_acquire().unwrap();
                    if (i + t) % 3 == 0 {
                        p.failure()
                    } else {
                        p.success()
                    }
                }
            })
        })
        .collect();
    for h in handles {
        h.join().unwrap();
    }
    let t = b.snapshot().totals;
    assert_eq!(t.successes + t.failures, THREADS * CALLS);
    assert_eq!(
        t.failures,
        (0..THREADS)
            .map(|t| (0..CALLS).filter(|i| (i + t) % 3 == 0).count() as u64)
            .sum()
    );
}

#[test]
fn call_totals_can_be_turned_off_without_changing_behaviour() {
    let clock = ManualClock::new();
    let b = builder(&clock)
        .fail_max(2)
        .call_totals(false)
        .build()
        .unwrap();
    b.try_acquire().unwrap().success();
    fail(&b, 2);
    assert_eq!(b.state(), State::Open, "policies still work");
    assert!(b.try_acquire().is_err());
    assert_eq!(b.snapshot().totals, resilience_core::CallTotals::default());
    assert!(!b.config().call_totals());
}
