//! loom models of the breaker's state-word protocols. Run with
//! `RUSTFLAGS="--cfg resilience_loom" cargo test -p resilience-core --lib --release -- loom_`.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use loom::sync::Arc;
use loom::thread;

use crate::{CircuitBreaker, EventChannel, ManualClock, RejectReason, State};

fn breaker(
    fail_max: u32,
    probes: u32,
) -> (
    Arc<CircuitBreaker<ManualClock>>,
    std::sync::Arc<EventChannel>,
    ManualClock,
) {
    let clock = ManualClock::new();
    let events = std::sync::Arc::new(EventChannel::with_capacity(8).unwrap());
    let b = CircuitBreaker::builder("loom")
        .clock(clock.clone())
        .fail_max(fail_max)
        .reset_timeout(Duration::from_millis(1))
        .half_open_probes(probes)
        .events(events.clone())
        .build()
        .unwrap();
    (Arc::new(b), events, clock)
}

fn transitions(events: &EventChannel) -> Vec<(State, State)> {
    let mut out = Vec::new();
    events.drain_into(&mut out, usize::MAX);
    out.into_iter().map(|e| (e.from, e.to)).collect()
}

/// A failure that trips the breaker races a success that would end the failure run: either
/// the trip wins (the success is stale) or the success wins (one failure remains). Nothing else.
#[test]
fn loom_trip_races_success() {
    // Which side won, across every explored interleaving (std atomics: outside the model).
    static OPENED: AtomicUsize = AtomicUsize::new(0);
    static STAYED_CLOSED: AtomicUsize = AtomicUsize::new(0);
    let runs = crate::loom_support::explore(|| {
        let (b, events, _clock) = breaker(2, 1);
        b.try_acquire().unwrap().failure();
        // A permit admitted before the race, whose success is reported during it.
        let early = b.try_acquire().unwrap();
        let early_ticket = ticket(&b, early.generation());
        std::mem::forget(early);
        let (b1, b2) = (b.clone(), b.clone());
        let t1 = thread::spawn(move || b1.try_acquire().unwrap().failure());
        let t2 = thread::spawn(move || b2.on_success(early_ticket, false));
        t1.join().unwrap();
        t2.join().unwrap();
        let snap = b.snapshot();
        match snap.state {
            State::Open => {
                assert_eq!(snap.totals.stale, 1, "the success arrived after the trip");
                assert_eq!(transitions(&events), [(State::Closed, State::Open)]);
                OPENED.fetch_add(1, Ordering::Relaxed);
            }
            State::Closed => {
                assert_eq!(
                    snap.consecutive_failures, 1,
                    "the success ended the run first"
                );
                assert!(transitions(&events).is_empty());
                STAYED_CLOSED.fetch_add(1, Ordering::Relaxed);
            }
            other => panic!("impossible state {other:?}"),
        }
    });
    crate::loom_support::assert_explored(runs, 30);
    assert!(OPENED.load(Ordering::Relaxed) > 0 && STAYED_CLOSED.load(Ordering::Relaxed) > 0);
}

/// Two threads fail concurrently at the threshold: exactly one trip, one event.
#[test]
fn loom_concurrent_failures_trip_once() {
    let runs = crate::loom_support::explore(|| {
        let (b, events, _clock) = breaker(2, 1);
        // Two permits taken and dropped unreported: counted as ignored.
        drop((b.try_acquire().unwrap(), b.try_acquire().unwrap()));
        let handles: Vec<_> = (0..2)
            .map(|_| {
                let b = b.clone();
                thread::spawn(move || b.try_acquire().map(|p| p.failure()).is_ok())
            })
            .collect();
        let admitted = handles
            .into_iter()
            .map(|h| h.join().unwrap())
            .filter(|a| *a)
            .count();
        // Two threads cannot both be refused: the trip needs both failures.
        assert_eq!(admitted, 2);
        assert_eq!(b.state(), State::Open);
        assert_eq!(transitions(&events), [(State::Closed, State::Open)]);
        let t = b.snapshot().totals;
        assert_eq!((t.failures, t.ignored, t.stale), (2, 2, 0));
    });
    crate::loom_support::assert_explored(runs, 50);
}

/// After the OPEN timeout, three threads race for two probe slots: exactly two are admitted,
/// the OPEN → HALF_OPEN move happens once, and the third sees HALF_OPEN full.
#[test]
fn loom_half_open_admits_exactly_n() {
    let runs = crate::loom_support::explore(|| {
        let (b, events, clock) = breaker(1, 2);
        b.try_acquire().unwrap().failure();
        clock.advance(Duration::from_millis(1));
        transitions(&events);
        let handles: Vec<_> = (0..3)
            .map(|_| {
                let b = b.clone();
                thread::spawn(move || match b.try_acquire() {
                    Ok(p) => {
                        std::mem::forget(p); // hold the slot for the whole model
                        None
                    }
                    Err(r) => Some(r.reason()),
                })
            })
            .collect();
        let results: Vec<_> = handles.into_iter().map(|h| h.join().unwrap()).collect();
        assert_eq!(results.iter().filter(|r| r.is_none()).count(), 2);
        assert_eq!(
            results.iter().flatten().collect::<Vec<_>>(),
            [&RejectReason::HalfOpenFull]
        );
        assert_eq!(transitions(&events), [(State::Open, State::HalfOpen)]);
        assert_eq!(b.snapshot().half_open_in_flight, 2);
    });
    crate::loom_support::assert_explored(runs, 1000);
}

/// A probe's success races another probe's failure: exactly one decides, the other is stale.
#[test]
fn loom_probe_success_races_probe_failure() {
    static CLOSED: AtomicUsize = AtomicUsize::new(0);
    static REOPENED: AtomicUsize = AtomicUsize::new(0);
    let runs = crate::loom_support::explore(|| {
        let (b, events, clock) = breaker(1, 2);
        b.try_acquire().unwrap().failure();
        clock.advance(Duration::from_millis(1));
        let (probe1, probe2) = (b.try_acquire().unwrap(), b.try_acquire().unwrap());
        let (p1, p2) = (probe1.generation(), probe2.generation());
        // Their outcomes are reported below, from the threads.
        std::mem::forget((probe1, probe2));
        assert_eq!(p1, p2);
        transitions(&events);
        // Permits borrow the breaker, so the threads report through the tickets the two
        // probes carry (exactly what `Permit::success` / `failure` do).
        let (t1_ticket, t2_ticket) = (ticket(&b, p1), ticket(&b, p2));
        let (b1, b2) = (b.clone(), b.clone());
        let t1 = thread::spawn(move || b1.on_success(t1_ticket, false));
        let t2 = thread::spawn(move || b2.on_failure(t2_ticket, false));
        t1.join().unwrap();
        t2.join().unwrap();
        let moved = transitions(&events);
        assert_eq!(moved.len(), 1, "exactly one probe decided: {moved:?}");
        assert_eq!(b.snapshot().totals.stale, 1);
        match moved[0] {
            (State::HalfOpen, State::Closed) => CLOSED.fetch_add(1, Ordering::Relaxed),
            (State::HalfOpen, State::Open) => REOPENED.fetch_add(1, Ordering::Relaxed),
            other => panic!("impossible transition {other:?}"),
        };
    });
    crate::loom_support::assert_explored(runs, 20);
    assert!(CLOSED.load(Ordering::Relaxed) > 0 && REOPENED.load(Ordering::Relaxed) > 0);
}

/// A probe slot released by a dropped permit races a new acquire: the slot count never leaks.
#[test]
fn loom_dropped_probe_races_acquire() {
    let runs = crate::loom_support::explore(|| {
        let (b, _events, clock) = breaker(1, 1);
        b.try_acquire().unwrap().failure();
        clock.advance(Duration::from_millis(1));
        let generation = b.try_acquire().map(|p| {
            let g = p.generation();
            std::mem::forget(p);
            g
        });
        let generation = generation.unwrap();
        let b1 = b.clone();
        let t1 = thread::spawn(move || b1.on_release(ticket(&b1, generation)));
        let b2 = b.clone();
        let t2 = thread::spawn(move || b2.try_acquire().map(|p| p.ignore()).is_ok());
        t1.join().unwrap();
        let second_admitted = t2.join().unwrap();
        let snap = b.snapshot();
        assert_eq!(snap.state, State::HalfOpen);
        assert_eq!(snap.half_open_in_flight, 0, "every slot came back");
        assert_eq!(snap.totals.ignored, 1 + u64::from(second_admitted));
    });
    crate::loom_support::assert_explored(runs, 15);
}

/// The ticket of the current HALF_OPEN generation (what a permit from it would carry).
fn ticket(b: &CircuitBreaker<ManualClock>, generation: u32) -> super::state::Ticket {
    let word = super::state::Word(b.word_for_tests());
    assert_eq!(
        word.generation(),
        generation,
        "still the probes' generation"
    );
    word.ticket()
}
