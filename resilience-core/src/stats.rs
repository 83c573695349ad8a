//! Exact call counters that cost a plain load and store on the hot path.
//!
//! A shared `fetch_add` per call would put a locked instruction on every call and bounce one cache
//! line between every thread that uses a breaker. Instead each thread owns a stripe: the first
//! [`STRIPES`] live threads each get an index of their own (released when the thread exits) and
//! bump their stripe with an unshared load and store. Threads beyond that share one overflow stripe
//! and pay a `fetch_add`. Readers sum the stripes, so totals are exact once writers are quiet.

use core::cell::Cell;
// The stripe registry is process-global (a `static`), which loom's atomics cannot be.
use core::sync::atomic::{AtomicU64 as StdAtomicU64, Ordering as StdOrdering};

use crossbeam_utils::CachePadded;

use crate::sync::{AtomicU64, Ordering};

/// Threads that get a private stripe at once. More threads still count exactly, through the
/// shared overflow stripe.
pub(crate) const STRIPES: usize = 16;
const OVERFLOW: u8 = STRIPES as u8;
const UNASSIGNED: u8 = u8::MAX;

/// Bit `i` set: stripe index `i` is owned by a live thread.
static OWNED: StdAtomicU64 = StdAtomicU64::new(0);

thread_local! {
    static INDEX: Cell<u8> = const { Cell::new(UNASSIGNED) };
    static RELEASE: ReleaseOnExit = const { ReleaseOnExit(Cell::new(UNASSIGNED)) };
}

/// Gives the thread's stripe index back when the thread exits.
struct ReleaseOnExit(Cell<u8>);

impl Drop for ReleaseOnExit {
    fn drop(&mut self) {
        let index = self.0.get();
        if usize::from(index) < STRIPES {
            // Anything this thread counts from now on (other TLS destructors) goes to the
            // shared stripe, because the index may be handed to a new thread below.
            INDEX.with(|i| i.set(OVERFLOW));
            // Release: the new owner's Acquire claim sees this thread's last plain stores.
            OWNED.fetch_and(!(1u64 << index), StdOrdering::Release);
        }
    }
}

/// Under loom every model thread shares one OS thread, so "private" stripes would not be
/// private: use the shared stripe with `fetch_add` instead.
const LOOM: bool = cfg!(all(test, resilience_loom));

/// The calling thread's stripe index; `>= STRIPES` means "no private stripe" (either the shared
/// overflow stripe, or not yet assigned).
#[inline(always)]
fn thread_index() -> u8 {
    INDEX.with(Cell::get)
}

#[cold]
#[inline(never)]
fn claim_index() -> u8 {
    let mut owned = OWNED.load(StdOrdering::Relaxed);
    let index = loop {
        let free = !owned & ((1u64 << STRIPES) - 1);
        if free == 0 {
            break OVERFLOW;
        }
        let bit = free.trailing_zeros() as u8;
        // Acquire: see the previous owner's final counts before adding to them.
        match OWNED.compare_exchange_weak(
            owned,
            owned | (1u64 << bit),
            StdOrdering::Acquire,
            StdOrdering::Relaxed,
        ) {
            Ok(_) => break bit,
            Err(current) => owned = current,
        }
    };
    INDEX.with(|i| i.set(index));
    if index != OVERFLOW {
        // Registering the exit hook may allocate once per thread (the TLS destructor list).
        // If the thread is already tearing down, keep the index: it dies with the thread.
        let _ = RELEASE.try_with(|r| r.0.set(index));
    }
    index
}

/// What a breaker counts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(usize)]
pub(crate) enum Count {
    Successes = 0,
    Failures = 1,
    Ignored = 2,
    Rejected = 3,
    Stale = 4,
    Slow = 5,
}

/// Fields of a breaker's counters.
pub(crate) const BREAKER_FIELDS: usize = 6;

struct Stripe<const F: usize>([AtomicU64; F]);

/// Private stripes held inline (no pointer to chase). Under loom there are none: every model
/// thread uses the shared stripe with `fetch_add`.
const PRIVATE: usize = if LOOM { 0 } else { STRIPES };

/// `F` striped counters.
pub(crate) struct Counters<const F: usize> {
    private: [CachePadded<Stripe<F>>; PRIVATE],
    shared: CachePadded<Stripe<F>>,
}

impl<const F: usize> Counters<F> {
    pub(crate) fn new() -> Self {
        Counters {
            private: core::array::from_fn(|_| {
                CachePadded::new(Stripe(core::array::from_fn(|_| AtomicU64::new(0))))
            }),
            shared: CachePadded::new(Stripe(core::array::from_fn(|_| AtomicU64::new(0)))),
        }
    }

    #[inline(always)]
    pub(crate) fn bump(&self, field: usize) {
        let index = usize::from(thread_index());
        if index < PRIVATE {
            // Only this thread writes this stripe, so load + store is an exact increment
            // without a locked instruction. Release: a reader that sees this count with
            // Acquire also sees whatever this thread counted before it.
            let cell = &self.private[index].0[field];
            cell.store(
                cell.load(Ordering::Relaxed).wrapping_add(1),
                Ordering::Release,
            );
        } else {
            self.bump_shared(field);
        }
    }

    #[cold]
    #[inline(never)]
    fn bump_shared(&self, field: usize) {
        if !LOOM && thread_index() == UNASSIGNED && usize::from(claim_index()) < PRIVATE {
            return self.bump(field);
        }
        self.shared.0[field].fetch_add(1, Ordering::Release);
    }

    /// The sum over every stripe (exact once writers are quiet).
    pub(crate) fn total(&self, field: usize) -> u64 {
        self.private
            .iter()
            .chain(core::iter::once(&self.shared))
            .map(|s| s.0[field].load(Ordering::Acquire))
            .fold(0u64, u64::wrapping_add)
    }
}

#[cfg(all(test, not(resilience_loom)))]
mod tests {
    use super::*;
    use std::sync::Arc;

    #[test]
    fn totals_are_exact_across_many_short_lived_threads() {
        // More threads over time than stripes: indices must be recycled, and threads running
        // at once beyond the stripe count must use the overflow stripe, all without loss.
        let counters = Arc::new(Counters::<BREAKER_FIELDS>::new());
        for _round in 0..4 {
            let handles: Vec<_> = (0..(STRIPES + 4))
                .map(|_| {
                    let c = counters.clone();
                    std::thread::spawn(move || {
                        for _ in 0..1_000 {
                            c.bump(Count::Successes as usize);
                        }
                        c.bump(Count::Rejected as usize);
                    })
                })
                .collect();
            for h in handles {
                h.join().unwrap();
            }
        }
        let threads = 4 * (STRIPES as u64 + 4);
        assert_eq!(counters.total(Count::Successes as usize), threads * 1_000);
        assert_eq!(counters.total(Count::Rejected as usize), threads);
        assert_eq!(counters.total(Count::Failures as usize), 0);
    }
}
