//! The [`KeyedRateLimiter`] against a plain model: a table of `(tag, level, last)` slots, each
//! a leaky bucket in `u128` microseconds, with the placement rules written out (a key's slot
//! in its window, else the first empty or drained slot, else "table full").

use std::time::Duration;

use crate::rate_limit::{KeyedRateLimiter, PROBE};
use crate::{Clock, ManualClock};

/// What one run exercised.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Coverage {
    /// Calls admitted.
    pub admitted: u64,
    /// Calls refused by their key's limit.
    pub refused: u64,
    /// Calls of new keys refused for want of a slot.
    pub table_full: u64,
    /// Slots taken over from a drained key.
    pub reused: u64,
}

impl Coverage {
    /// Adds another run's coverage to this one.
    pub fn merge(&mut self, other: &Coverage) {
        self.admitted += other.admitted;
        self.refused += other.refused;
        self.table_full += other.table_full;
        self.reused += other.reused;
    }
}

#[derive(Clone, Copy)]
struct Slot {
    tag: u16,
    /// Work (µs) still to drain at `last`.
    level: u128,
    last: u128,
}

/// Decodes `data` into settings, keys (hashes chosen so that keys share home windows and
/// distinct tags) and calls at times on a manual clock; applies them to the limiter and the
/// model, and panics on the first difference.
///
/// # Panics
///
/// When the limiter and the model disagree.
pub fn run(data: &[u8]) -> Coverage {
    let mut coverage = Coverage::default();
    let mut bytes = data.iter().copied();
    let mut next = move || bytes.next();
    let permits = u32::from(next().unwrap_or(10) % 50) + 1;
    let period_ms = u64::from(next().unwrap_or(100)) + 1;
    let burst = u32::from(next().unwrap_or(3) % 8) + 1;
    let capacity = 8usize << (next().unwrap_or(0) % 3);
    let clock = ManualClock::new();
    clock.advance(Duration::from_secs(1));
    let limiter = KeyedRateLimiter::builder("model")
        .rate(permits, Duration::from_millis(period_ms))
        .burst(burst)
        .capacity(capacity)
        .clock(clock.clone())
        .build()
        .unwrap_or_else(|e| panic!("settings {permits}/{period_ms}ms burst {burst}: {e}"));
    let interval = u128::from(period_ms * 1_000 / u64::from(permits));
    let window = interval * u128::from(burst);
    let mut table: Vec<Option<Slot>> = vec![None; capacity];
    while let Some(op) = next() {
        let arg = next().unwrap_or(0);
        if op % 3 == 0 {
            clock.advance(Duration::from_micros(u64::from(arg) * 131));
            continue;
        }
        // Up to 32 keys over 4 home slots: windows overlap and fill.
        let key = u64::from(arg % 32);
        let tag = key as u16 + 1;
        let home = (key % 4) as usize * 3;
        let hash = u64::from(tag) << 48 | home as u64;
        let now = u128::from(clock.now().as_nanos() / 1_000);
        let got = limiter.try_acquire_hashed(hash);
        let window_slots: Vec<usize> = (0..PROBE).map(|i| (home + i) % capacity).collect();
        let drained = |s: &Slot| s.level.saturating_sub(now - s.last);
        let own = window_slots
            .iter()
            .copied()
            .find(|&i| table[i].is_some_and(|s| s.tag == tag));
        match own {
            Some(i) => {
                let Some(slot) = table[i].as_mut() else {
                    unreachable!()
                };
                let level = drained(slot);
                if level + interval <= window {
                    got.unwrap_or_else(|e| panic!("key {key} refused at level {level}: {e}"));
                    *slot = Slot {
                        tag,
                        level: level + interval,
                        last: now,
                    };
                    coverage.admitted += 1;
                } else {
                    let err = got.expect_err("admitted beyond the key's window");
                    assert!(!err.is_table_full());
                    let wait = (level + interval - window) as u64;
                    assert_eq!(err.retry_after(), Some(Duration::from_micros(wait)));
                    coverage.refused += 1;
                }
            }
            None => {
                let free = window_slots
                    .iter()
                    .copied()
                    .find(|&i| table[i].is_none_or(|s| drained(&s) == 0));
                match free {
                    Some(i) => {
                        got.unwrap_or_else(|e| panic!("new key {key} refused: {e}"));
                        if table[i].is_some() {
                            coverage.reused += 1;
                        }
                        table[i] = Some(Slot {
                            tag,
                            level: interval,
                            last: now,
                        });
                        coverage.admitted += 1;
                    }
                    None => {
                        let err = got.expect_err("a new key admitted into a full window");
                        assert!(err.is_table_full());
                        let soonest = window_slots
                            .iter()
                            .filter_map(|&i| table[i].map(|s| drained(&s)))
                            .min()
                            .unwrap_or(0) as u64;
                        assert_eq!(err.retry_after(), Some(Duration::from_micros(soonest)));
                        coverage.table_full += 1;
                    }
                }
            }
        }
    }
    let snap = limiter.snapshot();
    assert_eq!(snap.admitted, coverage.admitted);
    assert_eq!(snap.rejected, coverage.refused);
    assert_eq!(snap.table_full, coverage.table_full);
    coverage
}
