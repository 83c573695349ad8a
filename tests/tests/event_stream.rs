//! End to end: many threads drive registry breakers through real transitions while a consumer
//! (as the control plane will) drains the shared event channel concurrently. Every breaker's
//! events must form an unbroken chain, in generation order, ending in its final state.
#![allow(clippy::unwrap_used, clippy::expect_used)] // tests may panic on bad setup

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread;
use std::time::Duration;

use resilience_control::core::{
    BreakerConfig, BreakerEvent, BreakerRegistry, EventChannel, ManualClock, State,
};

#[test]
fn concurrent_transitions_arrive_as_unbroken_chains() {
    const WORKERS: usize = 4;
    const BREAKERS: usize = 8;
    let clock = ManualClock::new();
    let events = Arc::new(EventChannel::with_capacity(1 << 16).unwrap());
    let registry = Arc::new(BreakerRegistry::with_clock(clock.clone()).with_events(events.clone()));
    let config = BreakerConfig::builder()
        .fail_max(3)
        .reset_timeout(Duration::from_millis(5))
        .half_open_probes(2)
        .build()
        .unwrap();
    let breakers: Vec<_> = (0..BREAKERS)
        .map(|i| {
            registry
                .get_or_create(&format!("dep-{i}"), config.clone())
                .unwrap()
        })
        .collect();

    let done = Arc::new(AtomicBool::new(false));
    let consumer = {
        let (events, done) = (events.clone(), done.clone());
        thread::spawn(move || {
            let mut got = Vec::new();
            while !done.load(Ordering::Acquire) {
                events.drain_into(&mut got, 1024);
            }
            events.drain_into(&mut got, usize::MAX);
            got
        })
    };
    let workers: Vec<_> = (0..WORKERS)
        .map(|w| {
            let (breakers, clock) = (breakers.clone(), clock.clone());
            thread::spawn(move || {
                let mut seed = 0x9e37_79b9_u64 ^ (w as u64);
                for step in 0..20_000u64 {
                    seed ^= seed << 13;
                    seed ^= seed >> 7;
                    seed ^= seed << 17;
                    let b = &breakers[(seed % BREAKERS as u64) as usize];
                    if let Ok(permit) = b.try_acquire() {
                        // Mostly failing dependencies, so breakers trip, probe and recover.
                        if seed % 10 < 6 {
                            permit.failure()
                        } else {
                            permit.success()
                        }
                    }
                    if w == 0 && step % 50 == 0 {
                        clock.advance(Duration::from_millis(1));
                    }
                }
            })
        })
        .collect();
    for w in workers {
        w.join().unwrap();
    }
    done.store(true, Ordering::Release);
    let drained: Vec<BreakerEvent> = consumer.join().unwrap();

    assert_eq!(
        events.dropped(),
        0,
        "capacity was ample: nothing may be dropped"
    );
    let mut per_breaker: HashMap<_, Vec<BreakerEvent>> = HashMap::new();
    for e in drained {
        per_breaker.entry(e.breaker).or_default().push(e);
    }
    let mut total = 0;
    for b in &breakers {
        let mut chain = per_breaker.remove(&b.id()).unwrap_or_default();
        // Events from one breaker can interleave in the channel; generations order them.
        chain.sort_by_key(|e| e.generation);
        let mut state = State::Closed;
        for (i, e) in chain.iter().enumerate() {
            assert_eq!(
                e.from,
                state,
                "{}: event {i} does not continue the chain",
                b.name()
            );
            assert_eq!(
                e.generation as usize,
                i + 1,
                "{}: a transition is missing",
                b.name()
            );
            state = e.to;
        }
        assert_eq!(
            state,
            b.state(),
            "{}: the chain ends in the breaker's state",
            b.name()
        );
        assert_eq!(&*registry.name_of(b.id()).unwrap(), b.name());
        total += chain.len();
    }
    assert!(
        total > 100,
        "the workload must really flap the breakers ({total} transitions)"
    );
}
