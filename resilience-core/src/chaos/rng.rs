//! A per-thread xorshift64* generator: a few instructions, no shared state, seedable for
//! reproducible tests with [`seed_thread_rng`].

use core::cell::Cell;
// A process-wide seed sequence in a `static`; not part of any modelled protocol.
use core::sync::atomic::{AtomicU64, Ordering};

thread_local! {
    static STATE: Cell<u64> = const { Cell::new(0) };
}

/// Reseeds the calling thread's chaos generator, so a single-threaded test sees the same
/// sequence of injections every run.
///
/// # Examples
///
/// ```
/// resilience_core::chaos::seed_thread_rng(42);
/// ```
pub fn seed_thread_rng(seed: u64) {
    STATE.with(|s| s.set(seeded(seed)));
}

/// The next value of the calling thread's generator.
#[inline]
pub(crate) fn next_u64() -> u64 {
    STATE.with(|s| {
        let mut x = s.get();
        if x == 0 {
            x = fresh_seed();
        }
        let (next, out) = step(x);
        s.set(next);
        out
    })
}

/// One xorshift64* step: the next state and the value it yields. Pure, so a reference model
/// can replay the exact sequence a seeded thread sees.
#[inline]
pub(crate) const fn step(mut x: u64) -> (u64, u64) {
    x ^= x >> 12;
    x ^= x << 25;
    x ^= x >> 27;
    (x, x.wrapping_mul(0x2545_f491_4f6c_dd1d))
}

/// The state [`seed_thread_rng`] sets for `seed`.
pub(crate) const fn seeded(seed: u64) -> u64 {
    splitmix(seed)
}

/// A never-zero seed (xorshift's one forbidden state), different for every thread.
#[cold]
fn fresh_seed() -> u64 {
    static SEQUENCE: AtomicU64 = AtomicU64::new(0x853c_49e6_748f_ea9b);
    let local = 0u8;
    splitmix(
        SEQUENCE.fetch_add(0x9e37_79b9_7f4a_7c15, Ordering::Relaxed) ^ (&raw const local as u64),
    )
}

const fn splitmix(seed: u64) -> u64 {
    let mut z = seed.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^= z >> 31;
    if z == 0 { 1 } else { z }
}

/// The threshold a draw must fall under to inject at `rate`: `u64::MAX` always injects (no draw
/// needed), 0 never does.
pub(crate) fn threshold(rate: f64) -> u64 {
    if rate >= 1.0 {
        u64::MAX
    } else if rate <= 0.0 {
        0
    } else {
        (rate * 18_446_744_073_709_551_616.0) as u64
    }
}

#[cfg(all(test, not(resilience_loom)))]
mod tests {
    use super::*;

    #[test]
    fn seeded_sequences_repeat_and_rates_hold() {
        seed_thread_rng(7);
        let first: Vec<u64> = (0..5).map(|_| next_u64()).collect();
        seed_thread_rng(7);
        let again: Vec<u64> = (0..5).map(|_| next_u64()).collect();
        assert_eq!(first, again);
        let t = threshold(0.3);
        let hits = (0..100_000).filter(|_| next_u64() < t).count();
        assert!((29_000..31_000).contains(&hits), "{hits}");
        assert_eq!((threshold(1.0), threshold(0.0)), (u64::MAX, 0));
    }
}
