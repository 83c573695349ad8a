//! Compile-time thread-safety guarantees of the public types.
#![allow(clippy::unwrap_used, clippy::expect_used)] // tests may panic on bad setup

use resilience_core::{
    BreakerRegistry, BreakerSnapshot, CircuitBreaker, CoarseClock, EventChannel, ManualClock,
    Permit, Rejected, Ticker,
};

fn send<T: Send>() {}
fn sync<T: Sync>() {}
fn send_sync<T: Send + Sync>() {}
fn copy<T: Copy>() {}

const _: fn() = || {
    send_sync::<CircuitBreaker>();
    send_sync::<CircuitBreaker<ManualClock>>();
    send_sync::<BreakerRegistry>();
    send_sync::<EventChannel>();
    send_sync::<CoarseClock>();
    send::<Ticker>();
    send::<Permit<'static>>();
    sync::<Permit<'static>>();
    send_sync::<Rejected>();
    copy::<Rejected>();
    copy::<BreakerSnapshot>();
};

#[test]
fn types_are_thread_safe() {
    // The assertions above are checked at compile time; this test makes the file run.
}
