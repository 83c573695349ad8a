//! The bulkhead's one word: the limit in the high half; in the low half, the calls in flight
//! (31 bits) and a flag saying that callers are waiting for a slot.
//!
//! Keeping all three in one atomic makes admission one compare-and-swap that can never
//! overshoot, even while the limit changes (an adaptive limiter moves it on every
//! recomputation), and lets a release learn whether anyone waits from the value its own
//! decrement returns: no second load on the release path, and no ordering between two
//! locations to get right (every step of the wait protocol is an RMW on this word).

use crate::sync::{AtomicU64, Ordering};

/// `limit << 32 | waiting << 31 | in_flight`. `in_flight < limit <= 2^31 - 1` at admission,
/// so the count never carries into the flag.
#[derive(Debug)]
pub(crate) struct Word(AtomicU64);

/// Set while a caller waits in `acquire_within` (cleared by the release that wakes them).
const WAITING: u64 = 1 << 31;
const COUNT: u64 = WAITING - 1;
const LOW: u64 = u32::MAX as u64;

#[inline(always)]
const fn limit_of(word: u64) -> u32 {
    (word >> 32) as u32
}

#[inline(always)]
const fn in_flight_of(word: u64) -> u32 {
    (word & COUNT) as u32
}

impl Word {
    pub(crate) fn new(limit: u32) -> Self {
        Word(AtomicU64::new(u64::from(limit) << 32))
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

    /// For a waiting caller whose waker is registered: takes a slot if one is free, or else
    /// marks the word as waited on. Either way it is one RMW, so the next release's decrement
    /// comes after it in the word's order: that release sees the flag and wakes the caller
    /// (and, Release here and Acquire there, sees its waker), or this RMW came after the
    /// release and saw its free slot.
    pub(crate) fn acquire_or_wait(&self) -> Result<(), u32> {
        let mut word = self.0.load(Ordering::Acquire);
        loop {
            let limit = limit_of(word);
            let (next, admitted) = if in_flight_of(word) < limit {
                (word + 1, true)
            } else {
                (word | WAITING, false)
            };
            match self
                .0
                .compare_exchange_weak(word, next, Ordering::AcqRel, Ordering::Acquire)
            {
                Ok(_) if admitted => return Ok(()),
                Ok(_) => return Err(limit),
                Err(now) => word = now,
            }
        }
    }

    /// Gives one slot back (taken by a successful acquisition); `true` when callers wait and
    /// must be woken.
    #[inline]
    pub(crate) fn release(&self) -> bool {
        self.0.fetch_sub(1, Ordering::AcqRel) & WAITING != 0
    }

    /// Clears the waiting flag before waking every waiter; one still short of a slot sets it
    /// again when it polls.
    pub(crate) fn clear_waiting(&self) {
        self.0.fetch_and(!WAITING, Ordering::AcqRel);
    }

    /// Replaces the limit; calls already in flight above it finish normally.
    pub(crate) fn set_limit(&self, limit: u32) {
        let mut word = self.0.load(Ordering::Relaxed);
        loop {
            match self.0.compare_exchange_weak(
                word,
                u64::from(limit) << 32 | (word & LOW),
                Ordering::AcqRel,
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
