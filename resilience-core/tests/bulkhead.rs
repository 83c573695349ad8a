//! The bulkhead: its limit holds under contention, and every way a call can end gives its slot
//! back (return, error, panic, a dropped future).
#![allow(clippy::unwrap_used, clippy::expect_used)] // tests may panic on bad setup

use std::sync::Arc;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::time::Duration;

use resilience_core::bulkhead::Bulkhead;
use resilience_core::{ConfigError, GovernanceHash, Governed};

fn bulkhead(limit: u32) -> Bulkhead {
    Bulkhead::builder("db")
        .max_concurrent(limit)
        .build()
        .unwrap()
}

#[test]
fn admits_up_to_its_limit_and_refuses_the_rest() {
    let b = bulkhead(3);
    let held: Vec<_> = (0..3).map(|_| b.try_acquire().unwrap()).collect();
    let full = b.try_acquire().unwrap_err();
    assert_eq!(full.limit(), 3);
    assert_eq!(full.reason(), "bulkhead_full");
    assert_eq!(b.in_flight(), 3);
    assert!(b.snapshot().saturated());
    drop(held);
    assert_eq!(b.in_flight(), 0);
    let snap = b.snapshot();
    assert_eq!((snap.admitted, snap.rejected), (3, 1));
}

#[test]
fn a_refusal_says_what_was_full_and_carries_the_tag() {
    let tag = GovernanceHash::parse("0123456789abcdef").unwrap();
    let b = Bulkhead::builder("db")
        .max_concurrent(1)
        .governance(tag)
        .build()
        .unwrap();
    let _one = b.try_acquire().unwrap();
    let full = b.try_acquire().unwrap_err();
    assert_eq!(full.governance(), tag);
    assert_eq!(
        full.to_string(),
        "bulkhead full at 1 concurrent calls (governance 0123456789abcdef)"
    );
}

#[test]
fn a_zero_limit_is_a_typed_error_naming_the_field() {
    let err = Bulkhead::builder("db")
        .max_concurrent(0)
        .build()
        .unwrap_err();
    assert_eq!(err.field(), Some("max_concurrent"));
    assert_eq!(
        err.to_string(),
        "invalid `max_concurrent` = 0: expected between 1 and 2147483647"
    );
    let b = bulkhead(2);
    assert!(matches!(
        b.set_limit(0),
        Err(ConfigError::Invalid {
            field: "max_concurrent",
            ..
        })
    ));
    assert_eq!(b.limit(), 2, "a refused change changes nothing");
}

#[test]
fn a_panicking_call_gives_its_slot_back() {
    let b = bulkhead(1);
    let panicked = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        b.call(|| panic!("inside the bulkhead"))
    }));
    assert!(panicked.is_err());
    assert_eq!(b.in_flight(), 0);
    assert_eq!(b.call(|| "next").unwrap(), "next");
}

#[test]
fn lowering_the_limit_lets_calls_in_flight_finish_and_admits_anew_below_it() {
    let b = bulkhead(4);
    let held: Vec<_> = (0..4).map(|_| b.try_acquire().unwrap()).collect();
    b.set_limit(2).unwrap();
    assert_eq!((b.limit(), b.in_flight()), (2, 4));
    let mut held = held.into_iter();
    drop(held.next());
    drop(held.next());
    assert!(b.try_acquire().is_err(), "two still in flight, limit two");
    drop(held.next());
    let again = b.try_acquire().unwrap();
    assert!(b.try_acquire().is_err());
    drop((again, held));
    b.set_limit(3).unwrap();
    let three: Vec<_> = (0..3).map(|_| b.try_acquire().unwrap()).collect();
    assert_eq!(three.len(), 3);
}

#[tokio::test(start_paused = true)]
async fn a_cancelled_async_call_gives_its_slot_back() {
    let b = Arc::new(bulkhead(1));
    let slow = {
        let b = b.clone();
        tokio::spawn(async move {
            b.call_async(|| tokio::time::sleep(Duration::from_secs(3600)))
                .await
                .unwrap();
        })
    };
    tokio::time::sleep(Duration::from_millis(1)).await;
    assert_eq!(b.in_flight(), 1);
    assert!(
        b.call_async(|| async {}).await.is_err(),
        "full while it runs"
    );
    slow.abort();
    assert!(slow.await.unwrap_err().is_cancelled());
    assert_eq!(b.in_flight(), 0, "the dropped future gave its slot back");
    assert_eq!(b.call_async(|| async { 5 }).await.unwrap(), 5);
}

#[tokio::test(start_paused = true)]
async fn an_async_call_that_panics_gives_its_slot_back() {
    let b = Arc::new(bulkhead(1));
    let task = {
        let b = b.clone();
        tokio::spawn(async move {
            b.call_async(|| async {
                tokio::time::sleep(Duration::from_millis(5)).await;
                panic!("async work failed")
            })
            .await
        })
    };
    assert!(task.await.unwrap_err().is_panic());
    assert_eq!(b.in_flight(), 0);
}

#[tokio::test(start_paused = true)]
async fn the_slot_is_given_back_when_the_call_completes() {
    let b = bulkhead(1);
    let call = b.call_async(|| async { 1 });
    assert_eq!(b.in_flight(), 1, "taken when the call starts");
    assert_eq!(call.await.unwrap(), 1);
    assert_eq!(b.in_flight(), 0);
    // A refused call's closure never runs.
    let _held = b.try_acquire().unwrap();
    let ran = std::cell::Cell::new(false);
    let refused = b
        .call_async(|| {
            ran.set(true);
            async {}
        })
        .await;
    assert!(refused.is_err() && !ran.get());
}

/// Four threads hammer a bulkhead of three: never more than three inside at once, and every
/// attempt counted once, admitted or refused.
#[test]
fn the_limit_holds_under_contention() {
    let b = Arc::new(bulkhead(3));
    let inside = Arc::new(AtomicU32::new(0));
    let worst = Arc::new(AtomicU32::new(0));
    let admitted = Arc::new(AtomicU64::new(0));
    const PER_THREAD: u64 = 50_000;
    let threads: Vec<_> = (0..4)
        .map(|_| {
            let (b, inside, worst, admitted) =
                (b.clone(), inside.clone(), worst.clone(), admitted.clone());
            std::thread::spawn(move || {
                for _ in 0..PER_THREAD {
                    if let Ok(_permit) = b.try_acquire() {
                        let now = inside.fetch_add(1, Ordering::SeqCst) + 1;
                        worst.fetch_max(now, Ordering::Relaxed);
                        std::hint::spin_loop();
                        inside.fetch_sub(1, Ordering::SeqCst);
                        admitted.fetch_add(1, Ordering::Relaxed);
                    }
                }
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
    let snap = b.snapshot();
    assert!(
        worst.load(Ordering::Relaxed) <= 3,
        "{worst:?} inside at once"
    );
    assert_eq!(snap.in_flight, 0);
    assert_eq!(snap.admitted, admitted.load(Ordering::Relaxed));
    assert_eq!(snap.admitted + snap.rejected, 4 * PER_THREAD);
    assert!(snap.admitted > 0);
}

#[cfg(feature = "tower")]
#[tokio::test(start_paused = true)]
async fn the_tower_layer_gives_the_slot_back_when_the_response_is_dropped() {
    use resilience_core::tower::BulkheadLayer;
    use tower::{BoxError, Layer, Service, ServiceExt, service_fn};

    let b = Arc::new(bulkhead(1));
    let mut service = BulkheadLayer::new(b.clone()).layer(service_fn(|ms: u64| async move {
        tokio::time::sleep(Duration::from_millis(ms)).await;
        Ok::<_, BoxError>(ms)
    }));
    let slow = service.ready().await.unwrap().call(3_600_000);
    assert_eq!(b.in_flight(), 1);
    let refused = service.ready().await.unwrap().call(1).await.unwrap_err();
    assert!(
        refused
            .downcast_ref::<resilience_core::bulkhead::BulkheadFull>()
            .is_some()
    );
    drop(slow);
    assert_eq!(b.in_flight(), 0, "the dropped response gave its slot back");
    assert_eq!(service.ready().await.unwrap().call(1).await.unwrap(), 1);
    assert_eq!(b.in_flight(), 0);
}

mod waiting {
    use super::*;

    fn sleep(d: Duration) -> tokio::time::Sleep {
        tokio::time::sleep(d)
    }

    #[tokio::test(start_paused = true)]
    async fn a_waiter_gets_the_slot_a_release_frees() {
        let b = Arc::new(bulkhead(1));
        let held = b.try_acquire_owned().unwrap();
        let waiter = {
            let b = b.clone();
            tokio::spawn(async move {
                let started = tokio::time::Instant::now();
                let permit = b.acquire_within(Duration::from_secs(1), sleep).await;
                (permit.map(drop).is_ok(), started.elapsed())
            })
        };
        tokio::time::sleep(Duration::from_millis(10)).await;
        assert_eq!(b.waiting(), 1);
        drop(held);
        let (admitted, waited) = waiter.await.unwrap();
        assert!(admitted);
        assert_eq!(
            waited,
            Duration::from_millis(10),
            "woken by the release, not the timer"
        );
        assert_eq!((b.waiting(), b.in_flight()), (0, 0));
        assert_eq!(b.snapshot().admitted, 2);
    }

    #[tokio::test(start_paused = true)]
    async fn the_wait_ends_on_time_refused_and_counted() {
        let b = bulkhead(1);
        let _held = b.try_acquire().unwrap();
        let started = tokio::time::Instant::now();
        let full = b
            .acquire_within(Duration::from_millis(50), sleep)
            .await
            .unwrap_err();
        assert_eq!(started.elapsed(), Duration::from_millis(50));
        assert_eq!(full.limit(), 1);
        assert_eq!((b.waiting(), b.snapshot().rejected), (0, 1));
    }

    #[tokio::test(start_paused = true)]
    async fn beyond_max_waiting_callers_are_refused_at_once() {
        let b = Arc::new(
            Bulkhead::builder("db")
                .max_concurrent(1)
                .max_waiting(1)
                .build()
                .unwrap(),
        );
        let _held = b.try_acquire_owned().unwrap();
        let first = {
            let b = b.clone();
            tokio::spawn(async move {
                b.acquire_within(Duration::from_secs(5), sleep)
                    .await
                    .is_ok()
            })
        };
        tokio::time::sleep(Duration::from_millis(1)).await;
        assert_eq!(b.waiting(), 1);
        let started = tokio::time::Instant::now();
        assert!(
            b.acquire_within(Duration::from_secs(5), sleep)
                .await
                .is_err()
        );
        assert_eq!(
            started.elapsed(),
            Duration::ZERO,
            "no waiter slot: refused at once"
        );
        first.abort();
        let _ = first.await;
        assert_eq!(
            b.waiting(),
            0,
            "a cancelled waiter gives its waiter slot back"
        );
    }

    /// Three waiters, one slot handed on three times: every waiter is served, none waits for
    /// its timer.
    #[tokio::test(start_paused = true)]
    async fn each_release_serves_one_more_waiter() {
        let b = Arc::new(bulkhead(1));
        let held = b.try_acquire_owned().unwrap();
        let waiters: Vec<_> = (0..3)
            .map(|_| {
                let b = b.clone();
                tokio::spawn(async move {
                    let permit = b
                        .acquire_within(Duration::from_secs(60), sleep)
                        .await
                        .unwrap();
                    tokio::time::sleep(Duration::from_millis(5)).await;
                    drop(permit);
                    tokio::time::Instant::now()
                })
            })
            .collect();
        let started = tokio::time::Instant::now();
        tokio::time::sleep(Duration::from_millis(1)).await;
        assert_eq!(b.waiting(), 3);
        drop(held);
        let mut done = Vec::new();
        for w in waiters {
            done.push(w.await.unwrap() - started);
        }
        done.sort();
        assert_eq!(
            done,
            [6, 11, 16].map(Duration::from_millis),
            "served one after another"
        );
        assert_eq!((b.in_flight(), b.waiting()), (0, 0));
    }

    #[test]
    fn more_than_64_waiters_is_a_typed_error() {
        let err = Bulkhead::builder("db").max_waiting(65).build().unwrap_err();
        assert_eq!(
            err.to_string(),
            "invalid `max_waiting` = 65: expected at most 64"
        );
    }
}

#[test]
fn without_call_totals_the_limit_holds_and_nothing_is_counted() {
    let b = Bulkhead::builder("db")
        .max_concurrent(1)
        .call_totals(false)
        .build()
        .unwrap();
    let held = b.try_acquire().unwrap();
    assert!(b.try_acquire().is_err());
    drop(held);
    let snap = b.snapshot();
    assert_eq!((snap.admitted, snap.rejected, snap.in_flight), (0, 0, 0));
}
