//! The bulkhead's one word: the limit in the high half, calls in flight in the low half.
//!
//! Keeping both in one atomic makes admission one compare-and-swap that can never overshoot,
//! even while the limit changes (an adaptive limiter moves it on every recomputation).

use crate::sync::{AtomicU64, Ordering};

/// `limit << 32 | in_flight`. `in_flight < limit <= u32::MAX` at admission, so the low half
/// never carries into the high half.
#[derive(Debug)]
pub(crate) struct Word(AtomicU64);

const LOW: u64 = u32::MAX as u64;

#[inline(always)]
const fn pack(limit: u32, in_flight: u32) -> u64 {
    (limit as u64) << 32 | in_flight as u64
}

#[inline(always)]
const fn limit_of(word: u64) -> u32 {
    (word >> 32) as u32
}

#[inline(always)]
const fn in_flight_of(word: u64) -> u32 {
    (word & LOW) as u32
}

impl Word {
    pub(crate) fn new(limit: u32) -> Self {
        Word(AtomicU64::new(pack(limit, 0)))
    }

    /// Takes one slot if one is free; on refusal, the limit that was full.
    #[inline]
    pub(crate) fn try_acquire(&self) -> Result<(), u32> {
        let mut word = self.0.load(Ordering::Relaxed);
        loop {
            let limit = limit_of(word);
            if in_flight_of(word) >= limit {
                return Err(limit);
            }
            // Acquire pairs with the Release of a slot's return, so a caller admitted into a
            // freed slot sees everything its previous holder did before letting go.
            match self
                .0
                .compare_exchange_weak(word, word + 1, Ordering::Acquire, Ordering::Relaxed)
            {
                Ok(_) => return Ok(()),
                Err(now) => word = now,
            }
        }
    }

    /// Gives one slot back (taken by a successful [`try_acquire`](Self::try_acquire)).
    #[inline]
    pub(crate) fn release(&self) {
        self.0.fetch_sub(1, Ordering::Release);
    }

    /// Replaces the limit; calls already in flight above it finish normally.
    pub(crate) fn set_limit(&self, limit: u32) {
        let mut word = self.0.load(Ordering::Relaxed);
        loop {
            match self.0.compare_exchange_weak(
                word,
                pack(limit, in_flight_of(word)),
                Ordering::Relaxed,
                Ordering::Relaxed,
            ) {
                Ok(_) => return,
                Err(now) => word = now,
            }
        }
    }

    /// (limit, in flight), read together.
    pub(crate) fn load(&self) -> (u32, u32) {
        let word = self.0.load(Ordering::Relaxed);
        (limit_of(word), in_flight_of(word))
    }
}
