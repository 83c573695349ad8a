//! Sliding windows for the rate policies: the last N calls, or the calls of the last T.
//!
//! Both are preallocated and lock-free. Recording costs one or two relaxed RMWs; the running
//! totals are read only when a failure (or slow call) asks whether to trip.

use crossbeam_utils::CachePadded;

use crate::clock::Nanos;
use crate::sync::{AtomicU8, AtomicU32, AtomicU64, Ordering};

use super::config::SlidingWindow;

/// Outcome code kept per call: bit 0 "present", bit 1 "failed", bit 2 "slow".
pub(crate) const fn code(failed: bool, slow: bool) -> u8 {
    1 | ((failed as u8) << 1) | ((slow as u8) << 2)
}

/// Calls, failures and slow calls currently in a window.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct WindowCounts {
    /// Calls recorded (successes and failures; ignored calls are not recorded).
    pub calls: u32,
    /// Calls that failed.
    pub failures: u32,
    /// Calls that were slow (feature `slow-call-timing`).
    pub slow: u32,
}

impl WindowCounts {
    /// Whether these counts reach a rate threshold given in parts per million.
    pub(crate) fn reaches(
        &self,
        min_calls: u32,
        failure_ppm: Option<u64>,
        slow_ppm: Option<u64>,
    ) -> bool {
        if self.calls < min_calls || self.calls == 0 {
            return false;
        }
        let calls = u64::from(self.calls);
        let over = |count: u32, ppm: Option<u64>| {
            ppm.is_some_and(|ppm| u64::from(count) * 1_000_000 >= ppm * calls)
        };
        over(self.failures, failure_ppm) || over(self.slow, slow_ppm)
    }
}

// The window lives inline in the breaker: boxing the larger variant would put a pointer chase on
// every recorded call, to save a few hundred bytes per breaker.
#[allow(clippy::large_enum_variant)]
pub(crate) enum Window {
    Count(CountWindow),
    Time(TimeWindow),
}

impl Window {
    pub(crate) fn new(spec: SlidingWindow) -> Self {
        match spec {
            SlidingWindow::Count(n) => Window::Count(CountWindow::new(n)),
            SlidingWindow::Time { duration, buckets } => Window::Time(TimeWindow::new(
                crate::clock::duration_nanos(duration / buckets),
                buckets,
            )),
        }
    }

    #[inline]
    pub(crate) fn record(&self, code: u8, now: impl FnOnce() -> Nanos) {
        match self {
            Window::Count(w) => w.record(code),
            Window::Time(w) => w.record(code, now()),
        }
    }

    pub(crate) fn counts(&self, now: impl FnOnce() -> Nanos) -> WindowCounts {
        match self {
            Window::Count(w) => w.counts(),
            Window::Time(w) => w.counts(now()),
        }
    }

    /// Forgets every call. Only called while the breaker is not CLOSED, so no current call is
    /// being recorded concurrently.
    pub(crate) fn clear(&self) {
        match self {
            Window::Count(w) => w.clear(),
            Window::Time(w) => w.clear(),
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Count window

/// Three signed 21-bit counters in one word, updated with a single `fetch_add` of a packed delta.
/// Signed, because a removal can land before the matching addition when two threads race on a
/// slot; the fields then dip below zero for a moment and the decode still reads them right.
mod packed {
    const BITS: u32 = 21;

    pub(super) fn delta(old: u8, new: u8) -> u64 {
        let field = |bit: u8| i64::from((new >> bit) & 1) - i64::from((old >> bit) & 1);
        (field(0) + (field(1) << BITS) + (field(2) << (2 * BITS))) as u64
    }

    fn sign_extend(v: i64) -> i64 {
        (v << (64 - BITS)) >> (64 - BITS)
    }

    pub(super) fn decode(word: u64) -> [i64; 3] {
        let v = word as i64;
        let calls = sign_extend(v);
        let rest = (v - calls) >> BITS;
        let failures = sign_extend(rest);
        let slow = sign_extend((rest - failures) >> BITS);
        [calls, failures, slow]
    }
}

/// The last `size` outcomes in a ring of bytes, with running totals.
pub(crate) struct CountWindow {
    size: u32,
    /// Lemire's fastmod constant for `size`: `seq % size` without a divide instruction.
    fastmod: u64,
    next: CachePadded<AtomicU32>,
    totals: CachePadded<AtomicU64>,
    slots: Box<[AtomicU8]>,
}

impl CountWindow {
    pub(crate) fn new(size: u32) -> Self {
        CountWindow {
            size,
            // Wraps to 0 for size 1, which still yields slot 0.
            fastmod: (u64::MAX / u64::from(size)).wrapping_add(1),
            next: CachePadded::new(AtomicU32::new(0)),
            totals: CachePadded::new(AtomicU64::new(0)),
            slots: (0..size).map(|_| AtomicU8::new(0)).collect(),
        }
    }

    #[inline]
    fn slot_of(&self, seq: u32) -> usize {
        let low = self.fastmod.wrapping_mul(u64::from(seq));
        ((u128::from(low) * u128::from(self.size)) >> 64) as usize
    }

    #[inline]
    fn record(&self, code: u8) {
        // The u32 sequence wraps every 2^32 calls; when `size` does not divide 2^32 the wrap
        // skips a few slots for one lap, leaving them one lap stale. Harmless for a rate.
        let seq = self.next.fetch_add(1, Ordering::Relaxed);
        let slot = &self.slots[self.slot_of(seq)];
        // A steady stream of equal outcomes changes nothing: skip the write and the totals.
        if slot.load(Ordering::Relaxed) == code {
            return;
        }
        let old = slot.swap(code, Ordering::Relaxed);
        if old != code {
            self.totals
                .fetch_add(packed::delta(old, code), Ordering::Relaxed);
        }
    }

    fn counts(&self) -> WindowCounts {
        let [calls, failures, slow] = packed::decode(self.totals.load(Ordering::Relaxed));
        let clamp = |v: i64| v.clamp(0, i64::from(self.size)) as u32;
        WindowCounts {
            calls: clamp(calls),
            failures: clamp(failures),
            slow: clamp(slow),
        }
    }

    fn clear(&self) {
        // Swap each slot empty and subtract what was there, rather than zeroing the totals:
        // the totals then stay equal to the slots' sum even if a straggler records meanwhile.
        for slot in self.slots.iter() {
            let old = slot.swap(0, Ordering::Relaxed);
            if old != 0 {
                self.totals
                    .fetch_add(packed::delta(old, 0), Ordering::Relaxed);
            }
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Time window

/// A bucket word: `stamp:16 | slow:16 | failures:16 | calls:16`. The stamp is the bucket number
/// modulo 2^16; counts are halved together (keeping the rates) before they can overflow.
mod bucket {
    pub(super) const CALL: u64 = 1;
    pub(super) const FAILURE: u64 = 1 << 16;
    pub(super) const SLOW: u64 = 1 << 32;
    pub(super) const HALVE_AT: u64 = 1 << 15;

    pub(super) fn stamp(word: u64) -> u16 {
        (word >> 48) as u16
    }

    pub(super) fn field(word: u64, shift: u32) -> u64 {
        (word >> shift) & 0xffff
    }

    pub(super) fn pack(stamp: u16, calls: u64, failures: u64, slow: u64) -> u64 {
        (u64::from(stamp) << 48) | (slow << 32) | (failures << 16) | calls
    }

    pub(super) fn increment(code: u8) -> u64 {
        CALL + if code & 2 != 0 { FAILURE } else { 0 } + if code & 4 != 0 { SLOW } else { 0 }
    }
}

/// Calls in the last `buckets × width`, one word per bucket.
pub(crate) struct TimeWindow {
    width: u64,
    buckets: u64,
    /// Power-of-two number of slots ≥ `buckets`, indexed by bucket number.
    slots: Box<[AtomicU64]>,
    /// Highest bucket number that was rolled over; a long silence clears everything.
    last_roll: AtomicU64,
}

/// Stamps compare modulo 2^16; a gap this long since the last roll means every stamp may alias.
const ALIAS_GAP: u64 = 1 << 15;

impl TimeWindow {
    pub(crate) fn new(width_nanos: u64, buckets: u32) -> Self {
        let slots = u64::from(buckets).next_power_of_two();
        TimeWindow {
            width: width_nanos.max(1),
            buckets: u64::from(buckets),
            slots: (0..slots).map(|_| AtomicU64::new(0)).collect(),
            last_roll: AtomicU64::new(0),
        }
    }

    #[inline]
    fn age(current: u16, stamp: u16) -> u16 {
        current.wrapping_sub(stamp)
    }

    #[inline]
    fn record(&self, code: u8, now: Nanos) {
        let number = now.as_nanos() / self.width;
        let stamp = number as u16;
        let slot = &self.slots[(number as usize) & (self.slots.len() - 1)];
        let increment = bucket::increment(code);
        let mut word = slot.load(Ordering::Relaxed);
        loop {
            let age = Self::age(stamp, bucket::stamp(word));
            // After a long silence every stamp may alias: go through `roll` to clear them.
            let fresh = number.saturating_sub(self.last_roll.load(Ordering::Relaxed)) < ALIAS_GAP;
            // An empty slot (0) is not "stamp 0": it must be rolled to the current stamp. A live
            // bucket is never 0, since it holds at least the call that created it.
            if word != 0 && fresh && (age == 0 || age >= 1 << 15) {
                // Current bucket, or one from a lap ahead (our clock reading lags a few
                // nanoseconds behind another thread's): count the call there.
                let previous = slot.fetch_add(increment, Ordering::Relaxed);
                if bucket::field(previous, 0) >= bucket::HALVE_AT {
                    self.halve(slot);
                }
                return;
            }
            self.roll(number);
            match slot.compare_exchange_weak(
                word,
                bucket::pack(stamp, 0, 0, 0) + increment,
                Ordering::Relaxed,
                Ordering::Relaxed,
            ) {
                Ok(_) => return,
                Err(current) => word = current,
            }
        }
    }

    #[cold]
    fn halve(&self, slot: &AtomicU64) {
        let mut word = slot.load(Ordering::Relaxed);
        while bucket::field(word, 0) >= bucket::HALVE_AT {
            let halved = bucket::pack(
                bucket::stamp(word),
                bucket::field(word, 0) / 2,
                bucket::field(word, 16) / 2,
                bucket::field(word, 32) / 2,
            );
            match slot.compare_exchange_weak(word, halved, Ordering::Relaxed, Ordering::Relaxed) {
                Ok(_) => return,
                Err(current) => word = current,
            }
        }
    }

    /// A bucket is starting: zero every slot that has left the window, so no stale stamp
    /// survives long enough to alias a current one.
    #[cold]
    fn roll(&self, number: u64) {
        let previous = self.last_roll.fetch_max(number, Ordering::Relaxed);
        let silent_too_long = number.saturating_sub(previous) >= ALIAS_GAP;
        let current = number as u16;
        for slot in self.slots.iter() {
            let word = slot.load(Ordering::Relaxed);
            let age = Self::age(current, bucket::stamp(word));
            let stale = silent_too_long || (u64::from(age) >= self.buckets && age < 1 << 15);
            if word != 0 && stale {
                // A failed CAS means someone just wrote a current value: leave it.
                let _ = slot.compare_exchange(word, 0, Ordering::Relaxed, Ordering::Relaxed);
            }
        }
    }

    fn counts(&self, now: Nanos) -> WindowCounts {
        let number = now.as_nanos() / self.width;
        if number.saturating_sub(self.last_roll.load(Ordering::Relaxed)) >= ALIAS_GAP {
            return WindowCounts::default();
        }
        let current = number as u16;
        let mut sum = [0u64; 3];
        for slot in self.slots.iter() {
            let word = slot.load(Ordering::Relaxed);
            if word != 0 && u64::from(Self::age(current, bucket::stamp(word))) < self.buckets {
                for (i, total) in sum.iter_mut().enumerate() {
                    *total += bucket::field(word, 16 * i as u32);
                }
            }
        }
        let narrow = |v: u64| u32::try_from(v).unwrap_or(u32::MAX);
        WindowCounts {
            calls: narrow(sum[0]),
            failures: narrow(sum[1]),
            slow: narrow(sum[2]),
        }
    }

    fn clear(&self) {
        for slot in self.slots.iter() {
            slot.store(0, Ordering::Relaxed);
        }
    }
}

#[cfg(all(test, not(resilience_loom)))]
mod tests {
    use super::*;

    const OK: u8 = code(false, false);
    const FAIL: u8 = code(true, false);

    #[test]
    fn packed_counters_survive_transient_negatives() {
        // A removal landing before its addition.
        let mut word = 0u64;
        word = word.wrapping_add(packed::delta(FAIL, OK)); // calls 0, failures -1
        assert_eq!(packed::decode(word), [0, -1, 0]);
        word = word.wrapping_add(packed::delta(0, FAIL));
        assert_eq!(packed::decode(word), [1, 0, 0]);
    }

    #[test]
    fn count_window_keeps_exactly_the_last_n() {
        let window = CountWindow::new(3);
        for c in [FAIL, FAIL, OK, OK] {
            window.record(c);
        }
        assert_eq!(
            window.counts(),
            WindowCounts {
                calls: 3,
                failures: 1,
                slow: 0
            }
        );
        window.record(OK);
        assert_eq!(window.counts().failures, 0);
        window.clear();
        assert_eq!(window.counts(), WindowCounts::default());
    }

    #[test]
    fn fastmod_matches_remainder() {
        for size in [1u32, 3, 7, 100, 999_983, 1_000_000] {
            let w = CountWindow::new(size);
            for seq in [0u32, 1, size - 1, size, 12_345_678, u32::MAX - 1, u32::MAX] {
                assert_eq!(
                    w.slot_of(seq),
                    (seq % size) as usize,
                    "size {size} seq {seq}"
                );
            }
        }
    }

    #[test]
    fn time_window_slides_bucket_by_bucket() {
        let ms = |m: u64| Nanos::from_nanos(m * 1_000_000);
        // 4 buckets of 10 ms.
        let window = TimeWindow::new(10_000_000, 4);
        window.record(FAIL, ms(5));
        window.record(OK, ms(15));
        window.record(OK, ms(39));
        assert_eq!(
            window.counts(ms(39)),
            WindowCounts {
                calls: 3,
                failures: 1,
                slow: 0
            }
        );
        // At 40 ms the first bucket (0..10 ms) has left the window.
        assert_eq!(
            window.counts(ms(40)),
            WindowCounts {
                calls: 2,
                failures: 0,
                slow: 0
            }
        );
        assert_eq!(
            window.counts(ms(70)),
            WindowCounts {
                calls: 0,
                failures: 0,
                slow: 0
            }
        );
    }

    #[test]
    fn time_window_forgets_after_a_long_silence_without_aliasing() {
        let window = TimeWindow::new(1_000_000, 4);
        window.record(FAIL, Nanos::from_nanos(0));
        // Exactly 2^16 buckets later the stamp would alias; the silence must hide it.
        let later = Nanos::from_nanos((1u64 << 16) * 1_000_000);
        assert_eq!(window.counts(later).calls, 0);
        window.record(OK, later);
        assert_eq!(
            window.counts(later),
            WindowCounts {
                calls: 1,
                failures: 0,
                slow: 0
            }
        );
    }

    #[test]
    fn time_window_counts_calls_into_empty_slots_late_in_the_stamp_cycle() {
        // Found by fuzzing: past bucket 2^15 an empty slot looked like a bucket one lap ahead.
        let window = TimeWindow::new(1_000_000, 4);
        let late = 40_000u64;
        window.record(FAIL, Nanos::from_nanos(late * 1_000_000));
        window.record(OK, Nanos::from_nanos((late + 1) * 1_000_000));
        let counts = window.counts(Nanos::from_nanos((late + 1) * 1_000_000));
        assert_eq!(
            counts,
            WindowCounts {
                calls: 2,
                failures: 1,
                slow: 0
            }
        );
    }

    #[test]
    fn time_window_halves_instead_of_overflowing() {
        let window = TimeWindow::new(1_000_000_000, 1);
        for i in 0..100_000u32 {
            window.record(if i % 4 == 0 { FAIL } else { OK }, Nanos::from_nanos(1));
        }
        let counts = window.counts(Nanos::from_nanos(1));
        assert!(counts.calls < 1 << 16);
        let rate = f64::from(counts.failures) / f64::from(counts.calls);
        assert!((rate - 0.25).abs() < 0.01, "rate kept: {rate}");
    }
}
