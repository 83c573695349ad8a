//! The keyed rate limiter on a manual clock: a limit per key, exact under contention, idle
//! slots reused, a full table refused with the time until a slot frees, typed errors.
#![allow(clippy::unwrap_used, clippy::expect_used)] // tests may panic on bad setup

use std::sync::Arc;
use std::time::Duration;

use resilience_core::rate_limit::{KeyedRateLimiter, PROBE};
use resilience_core::{GovernanceHash, Governed, ManualClock};

fn limiter(
    per_second: u32,
    burst: u32,
    capacity: usize,
) -> (KeyedRateLimiter<ManualClock>, ManualClock) {
    let clock = ManualClock::new();
    clock.advance(Duration::from_secs(1));
    let limiter = KeyedRateLimiter::builder("tenants")
        .rate(per_second, Duration::from_secs(1))
        .burst(burst)
        .capacity(capacity)
        .clock(clock.clone())
        .build()
        .unwrap();
    (limiter, clock)
}

#[test]
fn each_key_has_its_own_burst_and_rate_with_the_exact_retry_time() {
    let (l, clock) = limiter(100, 3, 1024);
    for tenant in ["acme", "globex", "initech"] {
        for _ in 0..3 {
            l.try_acquire(tenant).unwrap();
        }
        let refused = l.try_acquire(tenant).unwrap_err();
        assert_eq!(refused.retry_after(), Some(Duration::from_millis(10)));
        assert!(!refused.is_table_full());
    }
    clock.advance(Duration::from_millis(10));
    for tenant in ["acme", "globex", "initech"] {
        l.try_acquire(tenant).unwrap();
        assert!(l.try_acquire(tenant).is_err());
    }
    let snap = l.snapshot();
    assert_eq!((snap.admitted, snap.rejected, snap.table_full), (12, 6, 0));
    assert_eq!(snap.keys_limited, 3);
}

#[test]
fn over_a_long_run_each_key_admits_its_burst_plus_the_rate_exactly() {
    let (l, clock) = limiter(1_000, 10, 64);
    let mut admitted = [0u32; 4];
    for _ in 0..2_000 {
        clock.advance(Duration::from_micros(250));
        for (k, count) in admitted.iter_mut().enumerate() {
            while l.try_acquire(&k).is_ok() {
                *count += 1;
            }
        }
    }
    // From the first call to the last, 1 999 steps of 250 µs (499.75 ms) at 1 000 a second,
    // plus the burst of 10, for every key.
    assert_eq!(admitted, [509; 4]);
}

#[test]
fn idle_slots_are_reused_and_a_full_window_is_refused_until_one_frees() {
    // 8 slots (one window): 8 keys in debt fill it.
    let (l, clock) = limiter(1, 1, 8);
    assert_eq!(l.capacity(), 8);
    for k in 0..PROBE as u64 {
        l.try_acquire(&k).unwrap();
    }
    let full = l.try_acquire(&999u64).unwrap_err();
    assert!(full.is_table_full());
    assert_eq!(full.reason(), "rate_limit_table_full");
    assert_eq!(full.retry_after(), Some(Duration::from_secs(1)));
    assert_eq!(l.snapshot().table_full, 1);
    // A second later every key's debt is paid: a new key takes a slot over...
    clock.advance(Duration::from_secs(1));
    l.try_acquire(&999u64).unwrap();
    assert!(
        l.try_acquire(&999u64).is_err(),
        "...and has its own limit there"
    );
    // ...and an old key comes back with its full burst (it had no debt).
    l.try_acquire(&0u64).unwrap();
}

#[test]
fn contending_threads_admit_exactly_each_keys_burst() {
    let (l, _clock) = limiter(1, 50, 1024);
    let l = Arc::new(l);
    let threads: Vec<_> = (0..4)
        .map(|_| {
            let l = l.clone();
            std::thread::spawn(move || {
                let mut mine = [0u32; 3];
                for _ in 0..200 {
                    for (k, n) in mine.iter_mut().enumerate() {
                        if l.try_acquire(&k).is_ok() {
                            *n += 1;
                        }
                    }
                }
                mine
            })
        })
        .collect();
    let mut total = [0u32; 3];
    for t in threads {
        for (sum, n) in total.iter_mut().zip(t.join().unwrap()) {
            *sum += n;
        }
    }
    assert_eq!(total, [50; 3]);
}

#[test]
fn bad_settings_name_the_field_and_refusals_carry_the_tag() {
    let err = KeyedRateLimiter::builder("x").build().unwrap_err();
    assert_eq!(err.field(), Some("rate"));
    let err = KeyedRateLimiter::builder("x")
        .rate(2_000_000, Duration::from_secs(1))
        .build()
        .unwrap_err();
    assert_eq!(err.field(), Some("rate"));
    let err = KeyedRateLimiter::builder("x")
        .rate(1, Duration::from_secs(1))
        .burst(0)
        .build()
        .unwrap_err();
    assert_eq!(err.field(), Some("burst"));
    let err = KeyedRateLimiter::builder("x")
        .rate(1, Duration::from_secs(1))
        .capacity(4)
        .build()
        .unwrap_err();
    assert_eq!(err.field(), Some("capacity"));
    assert!(err.to_string().contains("= 4"), "{err}");

    let tag = GovernanceHash::parse("0123456789abcdef").unwrap();
    let l = KeyedRateLimiter::builder("x")
        .rate(1, Duration::from_secs(60))
        .burst(1)
        .governance(tag)
        .build()
        .unwrap();
    l.try_acquire("k").unwrap();
    assert_eq!(l.try_acquire("k").unwrap_err().governance(), tag);
}
