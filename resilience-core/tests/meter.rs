//! `MeterRing` and `UsageEvent`: FIFO hand-off, refusals handed back and counted, closing, and
//! the ledger identities under concurrent producers, a consumer and a reader.
#![allow(clippy::unwrap_used, clippy::expect_used)] // tests may panic on bad setup

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Barrier};
use std::thread;
use std::time::Duration;

use resilience_core::meter::{MeterError, MeterRing, Operation, RefuseReason, Tier, UsageEvent};
use resilience_core::{GovernanceHash, ManualClock};

fn event(tokens: u32) -> UsageEvent {
    UsageEvent::new(
        "tenant-1",
        "agent-1",
        Operation::AgentMessage,
        Tier::Standard,
    )
    .unwrap()
    .tokens(tokens)
}

#[test]
fn events_come_out_in_order_stamped_with_time_and_governance() {
    let clock = ManualClock::new();
    let hash = GovernanceHash::from_u64(0xabc);
    let ring = MeterRing::with_clock(8, clock.clone(), hash).unwrap();
    for i in 0..5 {
        clock.advance(Duration::from_millis(1));
        ring.record(event(i)).unwrap();
    }
    let mut out = Vec::new();
    assert_eq!(ring.drain_into(&mut out, 3), 3);
    assert_eq!(ring.drain_into(&mut out, 100), 2);
    let tokens: Vec<u32> = out.iter().map(|e| e.tokens).collect();
    assert_eq!(tokens, [0, 1, 2, 3, 4]);
    assert!(out.iter().all(|e| e.governance == hash));
    let millis: Vec<u64> = out.iter().map(|e| e.at.as_millis()).collect();
    assert_eq!(millis, [1, 2, 3, 4, 5]);
}

#[test]
fn a_full_ring_hands_the_event_back_and_counts_it() {
    let ring = MeterRing::with_capacity(2).unwrap();
    ring.record(event(1)).unwrap();
    ring.record(event(2)).unwrap();
    let refused = ring.record(event(3)).unwrap_err();
    assert_eq!(
        (refused.event.tokens, refused.reason),
        (3, RefuseReason::Full)
    );
    let l = ring.ledger();
    assert_eq!(
        (l.offered, l.accepted, l.refused_full, l.pending),
        (3, 2, 1, 2)
    );
    let mut out = Vec::new();
    ring.drain_into(&mut out, 1);
    ring.record(event(4)).unwrap();
    assert_eq!(ring.pending(), 2);
}

#[test]
fn a_closed_ring_refuses_new_events_but_keeps_accepted_ones() {
    let ring = MeterRing::with_capacity(4).unwrap();
    ring.record(event(1)).unwrap();
    ring.close();
    assert!(ring.is_closed());
    assert_eq!(
        ring.record(event(2)).unwrap_err().reason,
        RefuseReason::Closed
    );
    let mut out = Vec::new();
    assert_eq!(ring.drain_into(&mut out, 10), 1);
    let l = ring.ledger();
    assert_eq!(
        (
            l.offered,
            l.accepted,
            l.refused_closed,
            l.drained,
            l.pending
        ),
        (2, 1, 1, 1, 0)
    );
}

#[test]
fn bad_values_are_typed_errors_naming_the_field() {
    let long = "x".repeat(44);
    let field = |e: MeterError| match e {
        MeterError::Invalid { field, value, .. } => (field, value),
        other => panic!("{other:?}"),
    };
    let (f, v) =
        field(UsageEvent::new(&long, "a", Operation::AgentMessage, Tier::Free).unwrap_err());
    assert_eq!(f, "tenant");
    assert!(v.contains(&long));
    let (f, _) =
        field(UsageEvent::new("t", &long, Operation::AgentMessage, Tier::Free).unwrap_err());
    assert_eq!(f, "agent");
    let (f, v) = field(event(0).compliance_score(1.5).unwrap_err());
    assert_eq!((f, v.as_str()), ("compliance_score", "1.5"));
    assert!(event(0).compliance_score(f32::NAN).is_err());
    let (f, _) = field(MeterRing::with_capacity(0).unwrap_err());
    assert_eq!(f, "capacity");
    // 43 bytes is the inline limit.
    assert!(UsageEvent::new(&"y".repeat(43), "a", Operation::Other(7), Tier::Enterprise).is_ok());
    assert_eq!(std::mem::size_of::<UsageEvent>(), 192, "three cache lines");
}

#[test]
fn the_ledger_holds_at_every_moment_under_concurrency() {
    const PRODUCERS: usize = 2;
    const EACH: u64 = 200_000;
    let ring = Arc::new(MeterRing::with_capacity(256).unwrap());
    let done = Arc::new(AtomicBool::new(false));
    let start = Arc::new(Barrier::new(PRODUCERS + 2));
    let producers: Vec<_> = (0..PRODUCERS)
        .map(|p| {
            let (ring, start) = (ring.clone(), start.clone());
            thread::spawn(move || {
                start.wait();
                let mut accepted = 0u64;
                for i in 0..EACH {
                    if ring.record(event(p as u32 * 1_000_000 + i as u32)).is_ok() {
                        accepted += 1;
                    }
                }
                accepted
            })
        })
        .collect();
    let consumer = {
        let (ring, done, start) = (ring.clone(), done.clone(), start.clone());
        thread::spawn(move || {
            start.wait();
            let mut got = Vec::new();
            let mut last = [None::<u32>; PRODUCERS];
            let mut batch = Vec::with_capacity(64);
            while !done.load(Ordering::Acquire) || ring.pending() > 0 {
                batch.clear();
                ring.drain_into(&mut batch, 64);
                for e in &batch {
                    let (p, i) = ((e.tokens / 1_000_000) as usize, e.tokens % 1_000_000);
                    assert!(
                        last[p].is_none_or(|prev| prev < i),
                        "per-producer order kept"
                    );
                    last[p] = Some(i);
                }
                got.extend_from_slice(&batch);
            }
            got.len() as u64
        })
    };
    // A reader checking the identities while everything moves.
    start.wait();
    let mut checks = 0u64;
    let mut previous = ring.ledger();
    while !producers.iter().all(|p| p.is_finished()) {
        let l = ring.ledger();
        assert_eq!(
            l.offered,
            l.accepted + l.refused_full + l.refused_closed,
            "{l:?}"
        );
        assert_eq!(l.accepted, l.drained + l.pending, "{l:?}");
        assert!(
            l.drained >= previous.drained && l.offered >= previous.offered,
            "{previous:?} -> {l:?}"
        );
        previous = l;
        checks += 1;
    }
    let accepted: u64 = producers.into_iter().map(|p| p.join().unwrap()).sum();
    done.store(true, Ordering::Release);
    let drained = consumer.join().unwrap();
    let l = ring.ledger();
    assert_eq!(l.offered, PRODUCERS as u64 * EACH);
    assert_eq!(
        l.accepted, accepted,
        "the ring counted exactly what producers saw accepted"
    );
    assert_eq!((l.drained, l.pending), (accepted, 0));
    assert_eq!(drained, accepted, "every accepted event arrived once");
    assert!(
        l.refused_full > 0,
        "a small ring under two producers must refuse some"
    );
    assert!(
        checks > 100,
        "the reader really ran concurrently ({checks} checks)"
    );
}
