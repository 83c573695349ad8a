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
    send_sync::<resilience_core::bulkhead::Bulkhead>();
    send_sync::<resilience_core::bulkhead::BulkheadPermit<'static>>();
    send_sync::<resilience_core::bulkhead::OwnedBulkheadPermit>();
    send_sync::<resilience_core::bulkhead::BulkheadFull>();
    copy::<resilience_core::bulkhead::BulkheadFull>();
    copy::<resilience_core::bulkhead::BulkheadSnapshot>();
    send::<
        resilience_core::bulkhead::BulkheadFuture<
            resilience_core::bulkhead::BulkheadPermit<'static>,
            std::future::Ready<u8>,
        >,
    >();
    send_sync::<resilience_core::rate_limit::RateLimiter>();
    send_sync::<resilience_core::rate_limit::RateLimiter<ManualClock>>();
    send_sync::<resilience_core::rate_limit::RateLimited>();
    copy::<resilience_core::rate_limit::RateLimited>();
    copy::<resilience_core::rate_limit::RateLimiterSnapshot>();
};

#[test]
fn types_are_thread_safe() {
    // The assertions above are checked at compile time; this test makes the file run.
}
