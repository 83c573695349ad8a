//! The one import point for atomics, `Arc` and interior mutability.
//!
//! Every other module takes these from here, so that `RUSTFLAGS="--cfg resilience_loom"`
//! swaps the whole crate onto loom's model-checked versions at once. The cfg is
//! crate-named (never bare `loom`) so it does not flip tokio or other dependencies.
//!
//! Not routed through here, on purpose: the coarse clock's own atomics and the
//! per-thread stripe registry (`stats.rs`). They live in `static`s, which loom's
//! atomics cannot, and no protocol under test depends on their ordering.

#[cfg(not(all(test, resilience_loom)))]
#[allow(unused_imports)]
pub(crate) use std_impl::*;

#[cfg(all(test, resilience_loom))]
#[allow(unused_imports)]
pub(crate) use loom_impl::*;

#[cfg(not(all(test, resilience_loom)))]
mod std_impl {
    #[allow(unused_imports)]
    pub(crate) use core::hint::spin_loop;
    #[allow(unused_imports)]
    pub(crate) use core::sync::atomic::{
        AtomicBool, AtomicI64, AtomicU8, AtomicU32, AtomicU64, AtomicUsize, Ordering, fence,
    };
    #[allow(unused_imports)]
    pub(crate) use std::sync::Arc;

    /// A waker slot (atomic-waker's), with loom's method names so the wait code is written once.
    #[derive(Debug, Default)]
    pub(crate) struct AtomicWaker(atomic_waker::AtomicWaker);

    impl AtomicWaker {
        pub(crate) fn new() -> Self {
            Self(atomic_waker::AtomicWaker::new())
        }

        pub(crate) fn register_by_ref(&self, waker: &core::task::Waker) {
            self.0.register(waker);
        }

        pub(crate) fn wake(&self) {
            self.0.wake();
        }
    }

    /// `UnsafeCell` with loom's closure-based access API, so ring code is written once.
    #[derive(Debug)]
    #[repr(transparent)] // slots of a file-backed ring have a fixed layout
    pub(crate) struct UnsafeCell<T>(core::cell::UnsafeCell<T>);

    impl<T> UnsafeCell<T> {
        pub(crate) const fn new(value: T) -> Self {
            Self(core::cell::UnsafeCell::new(value))
        }

        #[inline(always)]
        pub(crate) fn with<R>(&self, f: impl FnOnce(*const T) -> R) -> R {
            f(self.0.get())
        }

        #[inline(always)]
        pub(crate) fn with_mut<R>(&self, f: impl FnOnce(*mut T) -> R) -> R {
            f(self.0.get())
        }
    }
}

#[cfg(all(test, resilience_loom))]
mod loom_impl {
    #[allow(unused_imports)]
    pub(crate) use loom::cell::UnsafeCell;
    #[allow(unused_imports)]
    pub(crate) use loom::future::AtomicWaker;
    #[allow(unused_imports)]
    pub(crate) use loom::hint::spin_loop;
    #[allow(unused_imports)]
    pub(crate) use loom::sync::Arc;
    #[allow(unused_imports)]
    pub(crate) use loom::sync::atomic::{
        AtomicBool, AtomicI64, AtomicU8, AtomicU32, AtomicU64, AtomicUsize, Ordering, fence,
    };
}
