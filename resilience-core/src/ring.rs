//! A bounded, preallocated multi-producer multi-consumer ring for `Copy` values.
//!
//! The algorithm is Dmitry Vyukov's bounded queue, in the shape of crossbeam's `ArrayQueue`: each
//! slot carries a stamp saying which lap may write or read it next, and producers and consumers
//! claim positions with a CAS on `tail` and `head`. Two changes for the data plane:
//!
//! * Neither side ever waits for the other. Where `ArrayQueue` spins and then yields (a syscall)
//!   while a peer finishes a slot, `push` reports the ring full and `pop` reports it empty. A
//!   producer therefore never blocks: at worst it retries a lost CAS, which means another
//!   producer made progress (lock-free).
//! * Values are `Copy`, so slots never need dropping and a value is never half-owned.
#![allow(unsafe_code)]
#![deny(unsafe_op_in_unsafe_fn, clippy::undocumented_unsafe_blocks)]

use core::mem::MaybeUninit;

use crossbeam_utils::CachePadded;

use crate::sync::{AtomicUsize, Ordering, UnsafeCell, fence};

struct Slot<T> {
    /// `lap | index` of the position that may use this slot next: equal to a producer's `tail`
    /// when the slot is free for it, equal to a consumer's `head + 1` when it holds a value.
    stamp: AtomicUsize,
    value: UnsafeCell<MaybeUninit<T>>,
}

pub(crate) struct Ring<T> {
    head: CachePadded<AtomicUsize>,
    tail: CachePadded<AtomicUsize>,
    slots: Box<[Slot<T>]>,
    /// `(capacity + 1).next_power_of_two()`: positions are `lap | index`, `index < capacity`.
    one_lap: usize,
}

// SAFETY: a slot's value is written only by the producer that won the CAS for its position and
// read only by the consumer that won the matching CAS; the stamp's Release/Acquire pair orders
// the two. `T: Send` because values move between threads.
unsafe impl<T: Copy + Send> Send for Ring<T> {}
// SAFETY: as above; every shared access goes through atomics or through a slot the caller has
// exclusively claimed.
unsafe impl<T: Copy + Send> Sync for Ring<T> {}

impl<T: Copy> Ring<T> {
    /// A ring holding up to `capacity` values, allocated here and never again.
    ///
    /// # Panics
    ///
    /// If `capacity` is zero or above `usize::MAX / 4` (callers validate first).
    pub(crate) fn new(capacity: usize) -> Self {
        assert!(
            capacity > 0 && capacity <= usize::MAX / 4,
            "ring capacity out of range"
        );
        let slots = (0..capacity)
            .map(|i| Slot {
                stamp: AtomicUsize::new(i),
                value: UnsafeCell::new(MaybeUninit::uninit()),
            })
            .collect();
        Ring {
            head: CachePadded::new(AtomicUsize::new(0)),
            tail: CachePadded::new(AtomicUsize::new(0)),
            slots,
            one_lap: (capacity + 1).next_power_of_two(),
        }
    }

    pub(crate) fn capacity(&self) -> usize {
        self.slots.len()
    }

    /// The position after `pos`: the next index, or index 0 of the next lap.
    #[inline]
    fn advance(&self, pos: usize) -> usize {
        let index = pos & (self.one_lap - 1);
        if index + 1 < self.slots.len() {
            pos + 1
        } else {
            (pos & !(self.one_lap - 1)).wrapping_add(self.one_lap)
        }
    }

    /// Appends `value`, or hands it back when the ring is full. Never waits.
    #[inline(always)]
    pub(crate) fn push(&self, value: T) -> Result<(), T> {
        self.push_with(value, |_| {})
    }

    /// As [`push`](Self::push), then lets `finish` adjust the value in its slot before it is
    /// published, so a caller stamping fields does not first build a modified copy.
    #[inline(always)]
    pub(crate) fn push_with(&self, value: T, finish: impl FnOnce(&mut T)) -> Result<(), T> {
        let mut tail = self.tail.load(Ordering::Relaxed);
        loop {
            let slot = &self.slots[tail & (self.one_lap - 1)];
            // Acquire pairs with the consumer's Release that freed this slot.
            let stamp = slot.stamp.load(Ordering::Acquire);
            if stamp == tail {
                // SeqCst on success: the full/empty checks below read the other end after a
                // SeqCst fence, which needs this CAS in the same total order.
                match self.tail.compare_exchange_weak(
                    tail,
                    self.advance(tail),
                    Ordering::SeqCst,
                    Ordering::Relaxed,
                ) {
                    Ok(_) => {
                        // SAFETY: winning the CAS for `tail` while the stamp equals `tail`
                        // gives this thread the slot alone until it publishes the stamp, and
                        // the value is initialised before `finish` borrows it.
                        slot.value.with_mut(|p| unsafe {
                            p.write(MaybeUninit::new(value));
                            finish((*p).assume_init_mut());
                        });
                        slot.stamp.store(tail + 1, Ordering::Release);
                        return Ok(());
                    }
                    Err(current) => tail = current,
                }
            } else if stamp.wrapping_add(self.one_lap) == tail + 1 {
                // The slot still holds last lap's value: full, unless a consumer has just
                // claimed it and not yet released it. Either way, do not wait.
                fence(Ordering::SeqCst);
                let head = self.head.load(Ordering::Relaxed);
                if head.wrapping_add(self.one_lap) == tail {
                    return Err(value);
                }
                let current = self.tail.load(Ordering::Relaxed);
                if current != tail {
                    tail = current;
                    continue;
                }
                if slot.stamp.load(Ordering::Acquire) != tail {
                    // A consumer owns this slot mid-read: the ring is full at this instant.
                    return Err(value);
                }
            } else {
                // Another producer moved past us; catch up.
                crate::sync::spin_loop();
                tail = self.tail.load(Ordering::Relaxed);
            }
        }
    }

    /// Removes the oldest value, or `None` when nothing is ready. Never waits.
    #[inline]
    pub(crate) fn pop(&self) -> Option<T> {
        let mut head = self.head.load(Ordering::Relaxed);
        loop {
            let slot = &self.slots[head & (self.one_lap - 1)];
            // Acquire pairs with the producer's Release that published the value.
            let stamp = slot.stamp.load(Ordering::Acquire);
            if head + 1 == stamp {
                match self.head.compare_exchange_weak(
                    head,
                    self.advance(head),
                    Ordering::SeqCst,
                    Ordering::Relaxed,
                ) {
                    Ok(_) => {
                        // SAFETY: the stamp says a producer published this slot for position
                        // `head`, and winning the CAS makes this the only reader of it.
                        let value = slot.value.with(|p| unsafe { (*p).assume_init() });
                        slot.stamp
                            .store(head.wrapping_add(self.one_lap), Ordering::Release);
                        return Some(value);
                    }
                    Err(current) => head = current,
                }
            } else if stamp == head {
                // Slot not yet written this lap: empty, unless a producer is mid-write.
                fence(Ordering::SeqCst);
                let tail = self.tail.load(Ordering::Relaxed);
                if tail == head {
                    return None;
                }
                let current = self.head.load(Ordering::Relaxed);
                if current != head {
                    head = current;
                    continue;
                }
                if slot.stamp.load(Ordering::Acquire) != head + 1 {
                    // A producer owns this slot mid-write; nothing is ready in order yet.
                    return None;
                }
            } else {
                crate::sync::spin_loop();
                head = self.head.load(Ordering::Relaxed);
            }
        }
    }

    /// Values pushed since construction (positions claimed by producers, so a push in progress
    /// already counts). Derived from the tail position: no counter on the push path.
    pub(crate) fn pushed(&self) -> u64 {
        self.count(self.tail.load(Ordering::SeqCst))
    }

    /// Values popped since construction (positions claimed by consumers).
    pub(crate) fn popped(&self) -> u64 {
        self.count(self.head.load(Ordering::SeqCst))
    }

    /// A position as a count: laps times capacity, plus the index within the lap.
    fn count(&self, pos: usize) -> u64 {
        let lap = (pos / self.one_lap) as u64;
        lap.wrapping_mul(self.slots.len() as u64)
            .wrapping_add((pos % self.one_lap) as u64)
    }

    /// Values currently held (a snapshot; exact when no one is pushing or popping).
    pub(crate) fn len(&self) -> usize {
        loop {
            let tail = self.tail.load(Ordering::SeqCst);
            let head = self.head.load(Ordering::SeqCst);
            if self.tail.load(Ordering::SeqCst) == tail {
                let cap = self.slots.len();
                let (hix, tix) = (head & (self.one_lap - 1), tail & (self.one_lap - 1));
                return if hix < tix {
                    tix - hix
                } else if hix > tix {
                    cap - hix + tix
                } else if tail == head {
                    0
                } else {
                    cap
                };
            }
        }
    }
}

#[cfg(all(test, not(resilience_loom)))]
mod tests {
    use super::*;
    use std::collections::VecDeque;

    #[test]
    fn fifo_across_many_laps_matches_vecdeque() {
        for cap in [1, 2, 3, 7, 8] {
            let ring = Ring::new(cap);
            let mut model = VecDeque::new();
            let mut next = 0u32;
            for step in 0..2_000u32 {
                // A cheap deterministic mix of pushes and pops.
                if step.wrapping_mul(2_654_435_761) % 3 != 0 {
                    let pushed = ring.push(next);
                    if model.len() < cap {
                        assert_eq!(pushed, Ok(()));
                        model.push_back(next);
                    } else {
                        assert_eq!(pushed, Err(next), "full ring hands the value back");
                    }
                    next += 1;
                } else {
                    assert_eq!(ring.pop(), model.pop_front());
                }
                assert_eq!(ring.len(), model.len());
            }
        }
    }

    #[test]
    fn concurrent_producers_lose_nothing() {
        const PER_THREAD: u64 = 50_000;
        let ring = std::sync::Arc::new(Ring::new(64));
        let producers: Vec<_> = (0..2u64)
            .map(|t| {
                let ring = ring.clone();
                std::thread::spawn(move || {
                    let mut refused = 0u64;
                    for i in 0..PER_THREAD {
                        let mut v = (t << 32) | i;
                        // Retry until accepted so the consumer can check every value arrives.
                        while let Err(back) = ring.push(v) {
                            refused += 1;
                            v = back;
                            std::hint::spin_loop();
                        }
                    }
                    refused
                })
            })
            .collect();
        let mut last = [None::<u64>; 2];
        let mut seen = 0;
        while seen < 2 * PER_THREAD {
            if let Some(v) = ring.pop() {
                let (t, i) = ((v >> 32) as usize, v & 0xffff_ffff);
                assert!(
                    last[t].is_none_or(|prev| prev + 1 == i),
                    "per-producer order kept"
                );
                last[t] = Some(i);
                seen += 1;
            }
        }
        for p in producers {
            p.join().unwrap();
        }
        assert_eq!(ring.pop(), None);
    }
}

#[cfg(all(test, resilience_loom))]
mod loom_tests {
    use super::*;
    use loom::sync::Arc;
    use loom::thread;

    /// Two producers and one consumer on a 2-slot ring that wraps: every accepted value is
    /// popped exactly once, refused values are handed back, and per-producer order holds.
    #[test]
    fn loom_ring_two_producers_one_consumer_wraps() {
        let runs = crate::loom_support::explore(|| {
            let ring = Arc::new(Ring::<u8>::new(2));
            // Pre-fill and drain once so the model starts mid-lap and must wrap.
            ring.push(100).unwrap();
            assert_eq!(ring.pop(), Some(100));
            let producers: Vec<_> = [[1u8, 2], [11, 12]]
                .into_iter()
                .map(|values| {
                    let ring = ring.clone();
                    thread::spawn(move || {
                        values
                            .into_iter()
                            .filter(|v| ring.push(*v).is_ok())
                            .collect::<Vec<_>>()
                    })
                })
                .collect();
            let mut popped = Vec::new();
            for _ in 0..2 {
                if let Some(v) = ring.pop() {
                    popped.push(v);
                }
            }
            let accepted: Vec<Vec<u8>> = producers.into_iter().map(|p| p.join().unwrap()).collect();
            while let Some(v) = ring.pop() {
                popped.push(v);
            }
            let mut all: Vec<u8> = accepted.iter().flatten().copied().collect();
            all.sort_unstable();
            let mut got = popped.clone();
            got.sort_unstable();
            assert_eq!(got, all, "accepted == popped, exactly once");
            for producer in &accepted {
                let order: Vec<u8> = popped
                    .iter()
                    .copied()
                    .filter(|v| producer.contains(v))
                    .collect();
                assert_eq!(&order, producer, "per-producer FIFO");
            }
            // Capacity 2 and at most 2 pops in flight: at least 2 values got in.
            assert!(all.len() >= 2);
        });
        crate::loom_support::assert_explored(runs, 10000);
    }
}
