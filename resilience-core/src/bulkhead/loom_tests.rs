//! loom models of the bulkhead's word. Run with
//! `RUSTFLAGS="--cfg resilience_loom" cargo test -p resilience-core --lib --release -- loom_`.

use std::sync::atomic::{AtomicUsize, Ordering};

use loom::sync::Arc;
use loom::thread;

use super::Bulkhead;
use crate::loom_support::{assert_explored, explore};

fn bulkhead(limit: u32) -> Arc<Bulkhead> {
    Arc::new(
        Bulkhead::builder("loom")
            .max_concurrent(limit)
            .build()
            .unwrap(),
    )
}

/// Three callers race for two slots: exactly two are admitted while they hold them, and
/// every slot comes back.
#[test]
fn loom_bulkhead_never_admits_beyond_its_limit() {
    let runs = explore(|| {
        let b = bulkhead(2);
        let admitted = Arc::new(loom::sync::atomic::AtomicUsize::new(0));
        let holders: Vec<_> = (0..3)
            .map(|_| {
                let (b, admitted) = (b.clone(), admitted.clone());
                thread::spawn(move || {
                    let permit = b.try_acquire().ok();
                    if permit.is_some() {
                        admitted.fetch_add(1, loom::sync::atomic::Ordering::Relaxed);
                    }
                    // Held until the end of the race: nobody can take a freed slot.
                    permit.map(std::mem::forget).is_some()
                })
            })
            .collect();
        let held = holders
            .into_iter()
            .map(|t| t.join().unwrap())
            .filter(|&h| h)
            .count();
        assert_eq!(held, 2, "two slots, three callers holding on");
        assert_eq!(b.in_flight(), 2);
        assert_eq!(b.snapshot().rejected, 1);
        for _ in 0..2 {
            b.release();
        }
        assert_eq!(b.in_flight(), 0);
    });
    assert_explored(runs, 10);
}

/// A slot given back races a caller: the caller is admitted or refused, and the count always
/// matches the permits alive.
#[test]
fn loom_bulkhead_release_races_acquire() {
    static ADMITTED: AtomicUsize = AtomicUsize::new(0);
    static REFUSED: AtomicUsize = AtomicUsize::new(0);
    let runs = explore(|| {
        let b = bulkhead(1);
        let first = b.try_acquire().map(std::mem::forget);
        assert!(first.is_ok());
        let b1 = b.clone();
        let releaser = thread::spawn(move || b1.release());
        let b2 = b.clone();
        let caller = thread::spawn(move || match b2.try_acquire() {
            Ok(permit) => {
                drop(permit);
                ADMITTED.fetch_add(1, Ordering::Relaxed);
            }
            Err(full) => {
                assert_eq!(full.limit(), 1);
                REFUSED.fetch_add(1, Ordering::Relaxed);
            }
        });
        releaser.join().unwrap();
        caller.join().unwrap();
        assert_eq!(b.in_flight(), 0, "every slot back");
    });
    assert_explored(runs, 3);
    assert!(ADMITTED.load(Ordering::Relaxed) > 0, "some schedule admits");
    assert!(REFUSED.load(Ordering::Relaxed) > 0, "some schedule refuses");
}

/// The limit is lowered while callers race: nobody is admitted beyond the limit they saw, the
/// count stays exact, and after the change at most the new limit are admitted anew.
#[test]
fn loom_bulkhead_limit_change_races_acquire() {
    let runs = explore(|| {
        let b = bulkhead(2);
        let b1 = b.clone();
        let setter = thread::spawn(move || b1.set_limit(1).unwrap());
        let callers: Vec<_> = (0..2)
            .map(|_| {
                let b = b.clone();
                thread::spawn(move || b.try_acquire().map(std::mem::forget).is_ok())
            })
            .collect();
        setter.join().unwrap();
        let admitted = callers
            .into_iter()
            .map(|t| t.join().unwrap())
            .filter(|&ok| ok)
            .count();
        assert!(admitted >= 1, "the first caller always fits");
        assert_eq!(b.in_flight() as usize, admitted);
        assert_eq!(b.limit(), 1);
        for _ in 0..admitted {
            b.release();
        }
        // After the change, one at a time.
        let one = b.try_acquire().unwrap();
        assert!(b.try_acquire().is_err());
        drop(one);
    });
    assert_explored(runs, 10);
}

/// A release races a caller starting to wait: the waiter is always admitted, by its own
/// re-read of the word or by the release's wake-up (a lost wake-up would leave `block_on`
/// parked for ever, which loom reports as a deadlock).
#[test]
fn loom_bulkhead_waiter_is_never_left_behind_by_a_release() {
    let runs = explore(|| {
        let b = Arc::new(
            Bulkhead::builder("loom")
                .max_concurrent(1)
                .max_waiting(2)
                .build()
                .unwrap(),
        );
        b.try_acquire().map(std::mem::forget).unwrap();
        let b1 = b.clone();
        let releaser = thread::spawn(move || b1.release());
        let permit =
            loom::future::block_on(b.acquire_within(std::time::Duration::from_secs(1), |_| {
                std::future::pending::<()>()
            }));
        assert!(permit.is_ok());
        drop(permit);
        releaser.join().unwrap();
        assert_eq!((b.in_flight(), b.waiting()), (0, 0));
    });
    assert_explored(runs, 5);
}

/// Two callers wait for one slot while it is released: both are served in turn (the second
/// woken by the first's release), whatever the interleaving.
#[test]
fn loom_bulkhead_two_waiters_are_both_served() {
    let runs = explore(|| {
        let b = Arc::new(
            Bulkhead::builder("loom")
                .max_concurrent(1)
                .max_waiting(2)
                .build()
                .unwrap(),
        );
        b.try_acquire().map(std::mem::forget).unwrap();
        let wait = |b: &Bulkhead| {
            let permit =
                loom::future::block_on(b.acquire_within(std::time::Duration::from_secs(1), |_| {
                    std::future::pending::<()>()
                }));
            assert!(permit.is_ok());
        };
        let b1 = b.clone();
        let other = thread::spawn(move || wait(&b1));
        let b2 = b.clone();
        let releaser = thread::spawn(move || b2.release());
        wait(&b);
        other.join().unwrap();
        releaser.join().unwrap();
        assert_eq!((b.in_flight(), b.waiting()), (0, 0));
    });
    assert_explored(runs, 20);
}
