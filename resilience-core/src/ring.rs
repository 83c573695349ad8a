//! A bounded, preallocated multi-producer multi-consumer ring for `Copy` values.
//!
//! The algorithm is Dmitry Vyukov's bounded queue, in the shape of crossbeam's `ArrayQueue`: each
//! slot carries a stamp saying which lap may write or read it next, and producers and consumers
//! claim positions with a CAS on `tail` and `head`. Changes for the data plane:
//!
//! * Neither side ever waits for the other. Where `ArrayQueue` spins and then yields (a syscall)
//!   while a peer finishes a slot, `push` reports the ring full and `pop` reports it empty. A
//!   producer therefore never blocks: at worst it retries a lost CAS, which means another
//!   producer made progress (lock-free).
//! * Values are `Copy`, so slots never need dropping and a value is never half-owned.
//! * **Close is linearizable.** [`close`](Ring::close) sets a bit in the `tail` word itself, so a
//!   producer's claiming CAS either happened before the close (the value is accepted and will be
//!   popped) or fails and sees the bit (refused). There is no window between "checked open" and
//!   "pushed" in which a close can slip.
//! * **Held pops.** [`pop_held`](Ring::pop_held) hands a value out without freeing its slot;
//!   [`release`](Ring::release) frees it later. Until then producers see the slot as occupied
//!   (the ring is full there), so a consumer can keep a value in the ring, and in a file-backed
//!   ring on disk, until it is safely elsewhere.
//! * Positions are `u64` whatever the platform, so a file-backed ring has one layout.
//! * The slots live in memory the ring owns: a heap allocation, or a shared file mapping (see
//!   `meter::file`), addressed the same way, so the backing costs nothing per call.
#![allow(unsafe_code)]
#![deny(unsafe_op_in_unsafe_fn, clippy::undocumented_unsafe_blocks)]

use core::mem::MaybeUninit;
use core::ptr::NonNull;

use crossbeam_utils::CachePadded;

use crate::sync::{AtomicU64, Ordering, UnsafeCell, fence};

/// Set in `tail` by [`Ring::close`]. Positions never reach it: at a billion values a second a
/// ring would need about 290 years.
const CLOSED: u64 = 1 << 63;

/// One slot. `repr(C)`, so a file-backed ring has a fixed layout: the stamp, then the value.
#[repr(C)]
pub(crate) struct Slot<T> {
    /// `lap | index` of the position that may use this slot next: equal to a producer's `tail`
    /// when the slot is free for it, equal to a consumer's `head + 1` when it holds a value.
    pub(crate) stamp: AtomicU64,
    pub(crate) value: UnsafeCell<MaybeUninit<T>>,
}

/// Why a push was refused; the value comes back either way.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum PushError<T> {
    Full(T),
    Closed(T),
}

/// Who owns the slots' memory. Only looked at on drop.
enum Backing {
    /// `Box<[Slot<T>]>` turned into a raw pointer (so moving the ring never retags it).
    Heap,
    /// A shared file mapping (the slots start inside it).
    #[cfg(not(all(test, resilience_loom)))]
    Mapped(#[allow(dead_code)] memmap2::MmapMut),
}

pub(crate) struct Ring<T> {
    head: CachePadded<AtomicU64>,
    tail: CachePadded<AtomicU64>,
    slots: NonNull<Slot<T>>,
    capacity: usize,
    /// `(capacity + 1).next_power_of_two()`: positions are `lap | index`, `index < capacity`.
    one_lap: u64,
    backing: Backing,
}

// SAFETY: a slot's value is written only by the producer that won the CAS for its position and
// read only by the consumer that won the matching CAS; the stamp's Release/Acquire pair orders
// the two. `T: Send` because values move between threads. The backing is owned memory.
unsafe impl<T: Copy + Send> Send for Ring<T> {}
// SAFETY: as above; every shared access goes through atomics or through a slot the caller has
// exclusively claimed.
unsafe impl<T: Copy + Send> Sync for Ring<T> {}

/// `(capacity + 1).next_power_of_two()`, the size of one lap of positions.
pub(crate) const fn one_lap(capacity: usize) -> u64 {
    (capacity as u64 + 1).next_power_of_two()
}

/// A position (`lap | index`) as a count of positions before it: laps times capacity, plus the
/// index within the lap.
pub(crate) const fn count(pos: u64, capacity: usize) -> u64 {
    let lap_size = one_lap(capacity);
    (pos / lap_size) * capacity as u64 + pos % lap_size
}

/// The inverse of [`count`].
pub(crate) const fn position(count: u64, capacity: usize) -> u64 {
    (count / capacity as u64) * one_lap(capacity) + count % capacity as u64
}

impl<T: Copy> Ring<T> {
    /// A ring holding up to `capacity` values, allocated here and never again.
    ///
    /// # Panics
    ///
    /// If `capacity` is zero or above `u32::MAX` (callers validate first).
    pub(crate) fn new(capacity: usize) -> Self {
        assert!(
            capacity > 0 && capacity <= u32::MAX as usize,
            "ring capacity out of range"
        );
        let slots: Box<[Slot<T>]> = (0..capacity as u64)
            .map(|i| Slot {
                stamp: AtomicU64::new(i),
                value: UnsafeCell::new(MaybeUninit::uninit()),
            })
            .collect();
        let slots = Box::into_raw(slots).cast::<Slot<T>>();
        Ring {
            head: CachePadded::new(AtomicU64::new(0)),
            tail: CachePadded::new(AtomicU64::new(0)),
            // SAFETY: `Box::into_raw` never returns null.
            slots: unsafe { NonNull::new_unchecked(slots) },
            capacity,
            one_lap: one_lap(capacity),
            backing: Backing::Heap,
        }
    }

    /// A ring over `capacity` slots at `offset` in `map`, whose stamps the caller has laid out
    /// for head position `head` and tail position `tail` (see `meter::file`).
    ///
    /// # Safety
    ///
    /// `map` must hold `capacity` slots from `offset` on, `offset` must keep them aligned, and
    /// nothing else may touch the mapping while the ring lives (the caller holds the file's
    /// lock). Any bytes are a valid slot: an `AtomicU64` and a `MaybeUninit<T>`.
    #[cfg(not(all(test, resilience_loom)))]
    pub(crate) unsafe fn mapped(
        mut map: memmap2::MmapMut,
        offset: usize,
        capacity: usize,
        head: u64,
        tail: u64,
    ) -> Self {
        debug_assert!(offset + capacity * size_of::<Slot<T>>() <= map.len());
        debug_assert_eq!(offset % align_of::<Slot<T>>(), 0);
        // SAFETY: the caller guarantees the range is inside the mapping; a mapping's address
        // is never null.
        let slots = unsafe { NonNull::new_unchecked(map.as_mut_ptr().add(offset).cast()) };
        Ring {
            head: CachePadded::new(AtomicU64::new(head)),
            tail: CachePadded::new(AtomicU64::new(tail)),
            slots,
            capacity,
            one_lap: one_lap(capacity),
            backing: Backing::Mapped(map),
        }
    }

    /// Under loom slots hold model atomics, which no file can: file-backed rings are not
    /// model-checked (their protocol is the heap ring's, which is).
    #[cfg(all(test, resilience_loom))]
    pub(crate) unsafe fn mapped(
        _map: memmap2::MmapMut,
        _offset: usize,
        _capacity: usize,
        _head: u64,
        _tail: u64,
    ) -> Self {
        unreachable!("file-backed rings are not built under loom")
    }

    #[inline(always)]
    fn slots(&self) -> &[Slot<T>] {
        // SAFETY: `slots` points at `capacity` initialised slots that live as long as `self`
        // (a leaked box or a mapping held in `backing`), and are only shared through atomics
        // and claimed cells.
        unsafe { core::slice::from_raw_parts(self.slots.as_ptr(), self.capacity) }
    }

    #[inline(always)]
    fn slot(&self, pos: u64) -> &Slot<T> {
        &self.slots()[(pos & (self.one_lap - 1)) as usize]
    }

    pub(crate) fn capacity(&self) -> usize {
        self.capacity
    }

    /// The position after `pos`: the next index, or index 0 of the next lap.
    #[inline]
    fn advance(&self, pos: u64) -> u64 {
        let index = pos & (self.one_lap - 1);
        if index + 1 < self.capacity as u64 {
            pos + 1
        } else {
            (pos & !(self.one_lap - 1)).wrapping_add(self.one_lap)
        }
    }

    /// Appends `value`, or hands it back when the ring is full or closed. Never waits.
    #[inline(always)]
    pub(crate) fn push(&self, value: T) -> Result<(), PushError<T>> {
        self.push_with(value, |_| {})
    }

    /// As `push`, then lets `finish` adjust the value in its slot before it is published, so a
    /// caller stamping fields does not first build a modified copy.
    #[inline(always)]
    pub(crate) fn push_with(
        &self,
        value: T,
        finish: impl FnOnce(&mut T),
    ) -> Result<(), PushError<T>> {
        let mut tail = self.tail.load(Ordering::Relaxed);
        loop {
            if tail & CLOSED != 0 {
                return Err(PushError::Closed(value));
            }
            let slot = self.slot(tail);
            // Acquire pairs with the consumer's Release that freed this slot.
            let stamp = slot.stamp.load(Ordering::Acquire);
            if stamp == tail {
                // SeqCst on success: the full/empty checks below read the other end after a
                // SeqCst fence, which needs this CAS in the same total order. The CAS fails if
                // `close` set its bit since the load, so a close always wins or loses whole.
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
                    return Err(PushError::Full(value));
                }
                let current = self.tail.load(Ordering::Relaxed);
                if current != tail {
                    tail = current;
                    continue;
                }
                if slot.stamp.load(Ordering::Acquire) != tail {
                    // A consumer holds this slot (mid-read, or held until released): the ring
                    // is full at this instant.
                    return Err(PushError::Full(value));
                }
            } else {
                // Another producer moved past us; catch up.
                crate::sync::spin_loop();
                tail = self.tail.load(Ordering::Relaxed);
            }
        }
    }

    /// Removes the oldest value and frees its slot, or `None` when nothing is ready. Never
    /// waits.
    #[inline]
    pub(crate) fn pop(&self) -> Option<T> {
        let (pos, value) = self.pop_held()?;
        self.release(pos);
        Some(value)
    }

    /// Takes the oldest value and its position, leaving the slot occupied until
    /// [`release`](Self::release): producers see the ring full there meanwhile. `None` when
    /// nothing is ready. Never waits.
    #[inline]
    pub(crate) fn pop_held(&self) -> Option<(u64, T)> {
        let mut head = self.head.load(Ordering::Relaxed);
        loop {
            let slot = self.slot(head);
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
                        // `head`, and winning the CAS makes this the only reader of it; the
                        // slot stays unwritten until it is released.
                        let value = slot.value.with(|p| unsafe { (*p).assume_init() });
                        return Some((head, value));
                    }
                    Err(current) => head = current,
                }
            } else if stamp == head {
                // Slot not yet written this lap: empty, unless a producer is mid-write.
                fence(Ordering::SeqCst);
                let tail = self.tail.load(Ordering::Relaxed) & !CLOSED;
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
            } else if stamp.wrapping_add(self.one_lap) == head + 1 {
                // Last lap's value, still held by a consumer that has not released it: no
                // producer can have written here since, so nothing is ready.
                return None;
            } else {
                crate::sync::spin_loop();
                head = self.head.load(Ordering::Relaxed);
            }
        }
    }

    /// Frees the slot of a value taken at `pos` by [`pop_held`](Self::pop_held). Returns false
    /// (and changes nothing) when that slot is not held for `pos`, so releasing twice is
    /// harmless.
    #[inline]
    pub(crate) fn release(&self, pos: u64) -> bool {
        // Release pairs with the next producer's Acquire load of the stamp: it sees the read
        // finished before it overwrites the value.
        self.slot(pos)
            .stamp
            .compare_exchange(
                pos + 1,
                pos.wrapping_add(self.one_lap),
                Ordering::Release,
                Ordering::Relaxed,
            )
            .is_ok()
    }

    /// Refuses every later push. Pushes that claimed a position before this returns are
    /// accepted and will be popped; none can be accepted after.
    pub(crate) fn close(&self) {
        self.tail.fetch_or(CLOSED, Ordering::SeqCst);
    }

    /// Whether [`close`](Self::close) was called.
    pub(crate) fn is_closed(&self) -> bool {
        self.tail.load(Ordering::Acquire) & CLOSED != 0
    }

    /// The tail position: every position before it was claimed by a producer (so a push in
    /// progress already counts).
    pub(crate) fn tail_position(&self) -> u64 {
        self.tail.load(Ordering::SeqCst) & !CLOSED
    }

    /// The head position: every position before it was taken by a consumer.
    pub(crate) fn head_position(&self) -> u64 {
        self.head.load(Ordering::SeqCst)
    }

    /// Values pushed since construction, counted from position 0 (positions claimed by
    /// producers, so a push in progress already counts).
    pub(crate) fn pushed(&self) -> u64 {
        count(self.tail_position(), self.capacity)
    }

    /// Values popped since construction, counted from position 0.
    pub(crate) fn popped(&self) -> u64 {
        count(self.head_position(), self.capacity)
    }

    /// Values currently held (a snapshot; exact when no one is pushing or popping).
    pub(crate) fn len(&self) -> usize {
        loop {
            let tail = self.tail_position();
            let head = self.head_position();
            if self.tail_position() == tail {
                return (count(tail, self.capacity) - count(head, self.capacity)) as usize;
            }
        }
    }
}

impl<T> Drop for Ring<T> {
    fn drop(&mut self) {
        if matches!(self.backing, Backing::Heap) {
            let slice = core::ptr::slice_from_raw_parts_mut(self.slots.as_ptr(), self.capacity);
            // SAFETY: the pointer came from `Box::into_raw` of a boxed slice of `capacity`
            // slots in `new`, and is dropped only here. Slots hold `MaybeUninit` values, so no
            // value is dropped.
            drop(unsafe { Box::from_raw(slice) });
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
                        assert_eq!(
                            pushed,
                            Err(PushError::Full(next)),
                            "full ring hands the value back"
                        );
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
    fn counts_and_positions_are_inverse() {
        for cap in [1usize, 3, 8, 1000] {
            for c in 0..5_000u64 {
                assert_eq!(count(position(c, cap), cap), c);
            }
        }
    }

    #[test]
    fn held_slots_stay_occupied_until_released() {
        let ring = Ring::new(2);
        ring.push(1u32).unwrap();
        ring.push(2).unwrap();
        let (p1, v1) = ring.pop_held().unwrap();
        let (p2, v2) = ring.pop_held().unwrap();
        assert_eq!((v1, v2), (1, 2));
        assert_eq!(ring.pop_held(), None);
        assert_eq!(
            ring.push(3),
            Err(PushError::Full(3)),
            "held slots are not free"
        );
        assert!(ring.release(p1));
        assert!(!ring.release(p1), "a second release changes nothing");
        ring.push(3).unwrap();
        assert_eq!(ring.push(4), Err(PushError::Full(4)));
        assert!(ring.release(p2));
        ring.push(4).unwrap();
        assert_eq!(ring.pop(), Some(3));
        assert_eq!(ring.pop(), Some(4));
        assert_eq!(ring.pushed(), 4);
        assert_eq!(ring.popped(), 4);
    }

    #[test]
    fn close_refuses_later_pushes_and_keeps_earlier_ones() {
        let ring = Ring::new(4);
        ring.push(1u8).unwrap();
        ring.close();
        assert!(ring.is_closed());
        assert_eq!(ring.push(2), Err(PushError::Closed(2)));
        assert_eq!(ring.pushed(), 1);
        assert_eq!(ring.pop(), Some(1));
        assert_eq!(ring.pop(), None);
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
                        while let Err(PushError::Full(back)) = ring.push(v) {
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

    /// Producers racing `close`: everything accepted is popped after the close, nothing is
    /// accepted once `close` has returned (the loom model checks the same on every
    /// interleaving of a small case).
    #[test]
    fn close_is_linearizable_under_racing_producers() {
        for _ in 0..200 {
            let ring = std::sync::Arc::new(Ring::new(4096));
            let closed = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
            let producers: Vec<_> = (0..3u64)
                .map(|t| {
                    let (ring, closed) = (ring.clone(), closed.clone());
                    std::thread::spawn(move || {
                        let (mut accepted, mut after_close) = (0u64, 0u64);
                        for i in 0..2_000u64 {
                            let seen_closed = closed.load(std::sync::atomic::Ordering::SeqCst);
                            match ring.push((t << 32) | i) {
                                Ok(()) => {
                                    accepted += 1;
                                    after_close += u64::from(seen_closed);
                                }
                                Err(PushError::Closed(_)) => break,
                                Err(PushError::Full(_)) => {}
                            }
                        }
                        (accepted, after_close)
                    })
                })
                .collect();
            std::thread::yield_now();
            ring.close();
            closed.store(true, std::sync::atomic::Ordering::SeqCst);
            let mut popped = 0u64;
            while ring.popped() < ring.pushed() || popped < ring.pushed() {
                if ring.pop().is_some() {
                    popped += 1;
                }
            }
            let mut accepted = 0;
            for p in producers {
                let (a, after) = p.join().unwrap();
                assert_eq!(after, 0, "a push succeeded after close returned");
                accepted += a;
            }
            assert_eq!(ring.pop(), None);
            assert_eq!(popped, accepted, "every accepted value popped");
            assert_eq!(ring.pushed(), accepted);
        }
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

    /// Two producers race a close and the final drain: once `close` has returned, no push is
    /// accepted, and draining after it pops exactly what was accepted (no value accepted and
    /// then stranded, which a separate "closed" flag allowed).
    #[test]
    fn loom_close_races_producers() {
        let runs = crate::loom_support::explore(|| {
            let ring = Arc::new(Ring::<u8>::new(2));
            let closed = Arc::new(loom::sync::atomic::AtomicBool::new(false));
            let producers: Vec<_> = [1u8, 2]
                .into_iter()
                .map(|value| {
                    let (ring, closed) = (ring.clone(), closed.clone());
                    thread::spawn(move || {
                        let was_closed = closed.load(Ordering::SeqCst);
                        let pushed = ring.push(value);
                        if was_closed {
                            assert!(pushed.is_err(), "accepted after close returned");
                        }
                        pushed.is_ok()
                    })
                })
                .collect();
            ring.close();
            closed.store(true, Ordering::SeqCst);
            let accepted_at_close = ring.pushed();
            let accepted: u64 = producers
                .into_iter()
                .map(|p| u64::from(p.join().unwrap()))
                .sum();
            assert_eq!(accepted, accepted_at_close, "nothing accepted after close");
            let mut popped = 0;
            while ring.pop().is_some() {
                popped += 1;
            }
            assert_eq!(popped, accepted, "every accepted value drained");
        });
        crate::loom_support::assert_explored(runs, 50);
    }

    /// A held value keeps its slot while a producer wraps onto it: the producer is refused
    /// (full) until the release, then succeeds, and the held value is never overwritten.
    #[test]
    fn loom_held_slot_is_not_overwritten() {
        let runs = crate::loom_support::explore(|| {
            let ring = Arc::new(Ring::<u8>::new(1));
            ring.push(7).unwrap();
            let (pos, value) = ring.pop_held().unwrap();
            let producer = {
                let ring = ring.clone();
                thread::spawn(move || {
                    let first = ring.push(8).is_ok();
                    let second = ring.push(9).is_ok();
                    (first, second)
                })
            };
            assert_eq!(value, 7);
            assert!(ring.release(pos));
            let (first, second) = producer.join().unwrap();
            assert!(!(first && second), "one slot holds one value");
            let mut popped = Vec::new();
            while let Some(v) = ring.pop() {
                popped.push(v);
            }
            let expected: Vec<u8> = [(first, 8), (second, 9)]
                .into_iter()
                .filter_map(|(ok, v)| ok.then_some(v))
                .collect();
            assert_eq!(popped, expected);
        });
        crate::loom_support::assert_explored(runs, 10);
    }
}
