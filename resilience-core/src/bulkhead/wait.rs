//! The bounded wait: callers that agree to wait for a slot take a waiter slot (at most
//! [`MAX_WAITING`]) and register a waker; a release that finds the word's waiting flag set
//! clears it and wakes them all, and they race for the freed slot.
//!
//! Nothing here runs unless a caller waits: a release tests a bit of the value its decrement
//! returns, and admission is untouched. The lost-wakeup argument rests on the word alone (see
//! `Word::acquire_or_wait`): a waiter registers its waker, then in one RMW either takes a free
//! slot or sets the flag; every release after that RMW sees the flag.

use core::future::Future;
use core::pin::Pin;
use core::task::{Context, Poll};

use pin_project_lite::pin_project;

use super::{ADMITTED, Bulkhead, BulkheadFull, BulkheadPermit};
use crate::sync::{AtomicU64, AtomicWaker, Ordering};

/// The most callers that can wait on one bulkhead at once.
pub const MAX_WAITING: u32 = 64;

pub(super) struct Waiters {
    /// Bit `i` set: slot `i` belongs to a waiting caller.
    mask: AtomicU64,
    slots: Box<[AtomicWaker]>,
}

impl Waiters {
    pub(super) fn new(capacity: u32) -> Self {
        Waiters {
            mask: AtomicU64::new(0),
            slots: (0..capacity).map(|_| AtomicWaker::new()).collect(),
        }
    }

    /// A free slot, marked taken; `None` when every slot is.
    fn claim(&self) -> Option<usize> {
        let all = if self.slots.len() >= 64 {
            u64::MAX
        } else {
            (1u64 << self.slots.len()) - 1
        };
        let mut mask = self.mask.load(Ordering::SeqCst);
        loop {
            let free = !mask & all;
            if free == 0 {
                return None;
            }
            let slot = free.trailing_zeros() as usize;
            match self.mask.compare_exchange_weak(
                mask,
                mask | 1 << slot,
                Ordering::SeqCst,
                Ordering::SeqCst,
            ) {
                Ok(_) => return Some(slot),
                Err(now) => mask = now,
            }
        }
    }

    fn free(&self, slot: usize) {
        self.mask.fetch_and(!(1u64 << slot), Ordering::SeqCst);
    }

    /// Wakes every waiting caller.
    #[cold]
    #[inline(never)]
    pub(super) fn wake_all(&self) {
        let mut mask = self.mask.load(Ordering::SeqCst);
        while mask != 0 {
            let slot = mask.trailing_zeros() as usize;
            mask &= mask - 1;
            if let Some(waker) = self.slots.get(slot) {
                waker.wake();
            }
        }
    }

    pub(super) fn waiting(&self) -> u32 {
        self.mask.load(Ordering::Relaxed).count_ones()
    }
}

pin_project! {
    /// The future of [`Bulkhead::acquire_within`](super::Bulkhead::acquire_within): a slot as
    /// soon as one is free, or [`BulkheadFull`] when the wait ends first or no waiter slot was
    /// left. Dropping it stops waiting.
    #[must_use = "futures do nothing unless polled"]
    pub struct AcquireWithin<'a, S> {
        bulkhead: &'a Bulkhead,
        slot: Option<usize>,
        #[pin]
        timer: S,
    }

    impl<S> PinnedDrop for AcquireWithin<'_, S> {
        fn drop(this: Pin<&mut Self>) {
            let this = this.project();
            if let Some(slot) = this.slot.take() {
                this.bulkhead.waiters.free(slot);
            }
        }
    }
}

impl<'a, S: Future<Output = ()>> AcquireWithin<'a, S> {
    pub(super) fn new(bulkhead: &'a Bulkhead, timer: S) -> Self {
        AcquireWithin {
            bulkhead,
            slot: None,
            timer,
        }
    }
}

impl<'a, S: Future<Output = ()>> Future for AcquireWithin<'a, S> {
    type Output = Result<BulkheadPermit<'a>, BulkheadFull>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        let bulkhead: &'a Bulkhead = this.bulkhead;
        let slot = match *this.slot {
            Some(slot) => slot,
            None => {
                if bulkhead.word.try_acquire().is_ok() {
                    bulkhead.count(ADMITTED);
                    return Poll::Ready(Ok(BulkheadPermit::new(bulkhead)));
                }
                match bulkhead.waiters.claim() {
                    Some(slot) => {
                        *this.slot = Some(slot);
                        slot
                    }
                    None => return Poll::Ready(Err(bulkhead.full(bulkhead.limit()))),
                }
            }
        };
        if let Some(waker) = bulkhead.waiters.slots.get(slot) {
            waker.register_by_ref(cx.waker());
        }
        match bulkhead.word.acquire_or_wait() {
            Ok(()) => {
                bulkhead.waiters.free(slot);
                *this.slot = None;
                bulkhead.count(ADMITTED);
                Poll::Ready(Ok(BulkheadPermit::new(bulkhead)))
            }
            Err(limit) => match this.timer.poll(cx) {
                Poll::Ready(()) => {
                    bulkhead.waiters.free(slot);
                    *this.slot = None;
                    Poll::Ready(Err(bulkhead.full(limit)))
                }
                Poll::Pending => Poll::Pending,
            },
        }
    }
}
