//! Zero heap allocations on every breaker call path, counted by a global allocator.
//!
//! Its own test binary (a global allocator is per binary). Each path is warmed up once per
//! thread first (the stripe registry's thread-exit hook allocates once per thread), then must
//! allocate nothing over many calls.
#![allow(clippy::unwrap_used, clippy::expect_used)] // tests may panic on bad setup

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::sync::Arc;
use std::time::Duration;

use resilience_core::{CircuitBreaker, EventChannel, ManualClock, SlidingWindow};

struct Counting;

thread_local! {
    static ALLOCS: Cell<u64> = const { Cell::new(0) };
}

// SAFETY: delegates to the system allocator; the counter is a thread-local Cell with no
// destructor, so touching it never allocates or recurses.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let _ = ALLOCS.try_with(|a| a.set(a.get() + 1));
        // SAFETY: same contract as our caller's.
        unsafe { System.alloc(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: same contract as our caller's.
        unsafe { System.dealloc(ptr, layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        let _ = ALLOCS.try_with(|a| a.set(a.get() + 1));
        // SAFETY: same contract as our caller's.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

/// Allocations made by this thread while running `f`.
fn allocations(f: impl FnOnce()) -> u64 {
    let before = ALLOCS.with(Cell::get);
    f();
    ALLOCS.with(Cell::get) - before
}

const CALLS: usize = 100_000;

fn assert_no_alloc(path: &str, mut f: impl FnMut()) {
    f(); // warm-up
    let n = allocations(|| {
        for _ in 0..CALLS {
            f();
        }
    });
    assert_eq!(n, 0, "{path} allocated {n} times in {CALLS} calls");
}

fn breaker(clock: &ManualClock, window: Option<SlidingWindow>) -> CircuitBreaker<ManualClock> {
    let b = CircuitBreaker::builder("dep")
        .clock(clock.clone())
        .fail_max(3)
        .reset_timeout(Duration::from_millis(10))
        .events(Arc::new(EventChannel::with_capacity(8).unwrap()));
    match window {
        Some(w) => b.failure_rate(1.0).sliding_window(w).build().unwrap(),
        None => b.build().unwrap(),
    }
}

#[test]
fn the_counter_sees_allocations() {
    let n = allocations(|| drop(std::hint::black_box(Vec::<u8>::with_capacity(16))));
    assert_eq!(
        n, 1,
        "the counting allocator must observe a plain allocation"
    );
}

#[test]
fn every_breaker_path_is_allocation_free() {
    let windows = [
        None,
        Some(SlidingWindow::Count(100)),
        Some(SlidingWindow::Time {
            duration: Duration::from_secs(1),
            buckets: 10,
        }),
    ];
    for window in windows {
        let clock = ManualClock::new();
        let b = breaker(&clock, window);
        let name = |path: &str| format!("{path} (window {window:?})");

        assert_no_alloc(&name("closed success"), || {
            b.try_acquire().unwrap().success()
        });
        assert_no_alloc(&name("closed failure"), || {
            b.try_acquire().unwrap().failure();
            b.try_acquire().unwrap().success();
        });
        assert_no_alloc(&name("call()"), || {
            let _ = b.call(|| Ok::<_, ()>(()));
        });
        assert_no_alloc(&name("trip, reject, probe, close"), || {
            for _ in 0..3 {
                if let Ok(p) = b.try_acquire() {
                    p.failure();
                }
            }
            assert!(b.try_acquire().is_err(), "open rejection");
            clock.advance(Duration::from_millis(10));
            let probe = b.try_acquire().unwrap();
            assert!(b.try_acquire().is_err(), "half-open rejection");
            probe.success();
        });
        b.trip_open();
        assert_no_alloc(&name("open rejection"), || {
            assert!(b.try_acquire().is_err())
        });
        b.transition_to_half_open();
        assert_no_alloc(&name("half-open admit and release"), || {
            drop(b.try_acquire().unwrap())
        });
        b.force_open();
        assert_no_alloc(&name("forced-open rejection"), || {
            assert!(b.try_acquire().is_err())
        });
        b.disable();
        assert_no_alloc(&name("disabled"), || b.try_acquire().unwrap().failure());
    }
}

#[test]
fn paths_are_allocation_free_on_a_second_thread_too() {
    let clock = ManualClock::new();
    let b = Arc::new(breaker(&clock, Some(SlidingWindow::Count(10))));
    let b2 = b.clone();
    std::thread::spawn(move || {
        assert_no_alloc("closed success (thread 2)", || {
            b2.try_acquire().unwrap().success()
        });
    })
    .join()
    .unwrap();
}

#[test]
fn chaos_checks_are_allocation_free() {
    use resilience_core::chaos::{ErrorCode, FaultSpec, FaultTable, Scenario};
    let clock = ManualClock::new();
    let table = FaultTable::builder().clock(clock.clone()).build().unwrap();
    let hot = table.point("hot").unwrap();
    let cold = table.point("cold").unwrap();
    assert_no_alloc("chaos check, nothing armed", || {
        assert!(table.check(hot).is_none())
    });
    table
        .arm(Scenario::new("errors", "hot", FaultSpec::Error(ErrorCode(503))).rate(0.5))
        .unwrap();
    table
        .arm(Scenario::new(
            "slow",
            "hot",
            FaultSpec::Latency(Duration::from_millis(5)),
        ))
        .unwrap();
    assert_no_alloc("chaos check, armed elsewhere", || {
        assert!(table.check(cold).is_none())
    });
    assert_no_alloc("chaos check, armed hit (random rate)", || {
        assert!(table.check(hot).is_some())
    });
    clock.advance(Duration::from_secs(120));
    assert_no_alloc("chaos check, armed but expired", || {
        assert!(table.check(hot).is_none())
    });
}

#[test]
fn metering_is_allocation_free() {
    use resilience_core::meter::{MeterRing, Operation, Tier, UsageEvent};
    let ring = MeterRing::with_clock(1 << 20, ManualClock::new(), Default::default()).unwrap();
    let event = UsageEvent::new("tenant", "agent", Operation::AgentMessage, Tier::Free).unwrap();
    assert_no_alloc("meter record, accepted", || ring.record(event).unwrap());
    let full = MeterRing::with_clock(1, ManualClock::new(), Default::default()).unwrap();
    full.record(event).unwrap();
    assert_no_alloc("meter record, refused", || {
        assert!(full.record(event).is_err())
    });
    full.close();
    assert_no_alloc("meter record, closed", || {
        assert!(full.record(event).is_err())
    });

    // The file-backed ring: the same record path on mapped memory.
    let path = std::env::temp_dir().join(format!("no-alloc-{}.ring", std::process::id()));
    let file =
        MeterRing::open_with_clock(&path, 1 << 18, ManualClock::new(), Default::default()).unwrap();
    assert_no_alloc("meter record, file-backed", || file.record(event).unwrap());
    let mut drained = Vec::with_capacity(1 << 18);
    file.drain_held(&mut drained, usize::MAX);
    let last = drained.last().unwrap().id.seq;
    assert_eq!(
        allocations(|| file.release_through(last)),
        0,
        "releasing allocates nothing"
    );
    assert_no_alloc("meter record, file-backed, after release", || {
        let _ = file.record(event);
    });
    drop(file);
    let _ = std::fs::remove_file(&path);
    let _ = std::fs::remove_file(path.with_extension("ring.lock"));
}

/// Polls `future` once with a no-op waker; the futures here are ready at once.
fn poll_ready<F: std::future::Future>(future: F) -> F::Output {
    let mut cx = std::task::Context::from_waker(std::task::Waker::noop());
    let mut future = std::pin::pin!(future);
    match future.as_mut().poll(&mut cx) {
        std::task::Poll::Ready(output) => output,
        std::task::Poll::Pending => panic!("future not ready"),
    }
}

#[test]
fn async_calls_are_allocation_free() {
    let clock = ManualClock::new();
    let b = breaker(&clock, None);
    assert_no_alloc("call_async, closed success", || {
        poll_ready(b.call_async(|| async { Ok::<_, ()>(1) })).unwrap();
    });
    let shared = Arc::new(breaker(&clock, None));
    assert_no_alloc("owned permit, closed success", || {
        shared.try_acquire_owned().unwrap().success()
    });
    shared.force_open();
    assert_no_alloc("call_async, rejected", || {
        assert!(poll_ready(shared.call_async(|| async { Ok::<_, ()>(1) })).is_err());
    });
}

#[test]
fn bulkhead_paths_are_allocation_free() {
    let bulkhead = Arc::new(
        resilience_core::bulkhead::Bulkhead::builder("pool")
            .max_concurrent(2)
            .build()
            .unwrap(),
    );
    assert_no_alloc("bulkhead admit and release", || {
        drop(bulkhead.try_acquire().unwrap())
    });
    assert_no_alloc("bulkhead owned permit", || {
        drop(bulkhead.try_acquire_owned().unwrap())
    });
    assert_no_alloc("bulkhead call", || {
        assert_eq!(bulkhead.call(|| 7).unwrap(), 7)
    });
    assert_no_alloc("bulkhead call_async", || {
        assert_eq!(poll_ready(bulkhead.call_async(|| async { 7 })).unwrap(), 7)
    });
    assert_no_alloc("bulkhead acquire_within, a slot free", || {
        let wait = bulkhead.acquire_within(Duration::from_secs(1), |_| std::future::ready(()));
        drop(poll_ready(wait).unwrap())
    });
    let _held = (
        bulkhead.try_acquire().unwrap(),
        bulkhead.try_acquire().unwrap(),
    );
    assert_no_alloc("bulkhead acquire_within, the wait over at once", || {
        let wait = bulkhead.acquire_within(Duration::ZERO, |_| std::future::ready(()));
        assert!(poll_ready(wait).is_err())
    });
    assert_no_alloc("bulkhead full: rejection", || {
        assert!(bulkhead.try_acquire().is_err())
    });
    assert_no_alloc("bulkhead full: call_async rejected", || {
        assert!(poll_ready(bulkhead.call_async(|| async { 7 })).is_err())
    });
}

#[test]
fn rate_limiter_paths_are_allocation_free() {
    let clock = ManualClock::new();
    let limiter = resilience_core::rate_limit::RateLimiter::builder("api")
        .rate(1_000, Duration::from_secs(1))
        .burst(10)
        .clock(clock.clone())
        .build()
        .unwrap();
    assert_no_alloc("rate limiter admit", || {
        clock.advance(Duration::from_millis(1));
        limiter.try_acquire().unwrap()
    });
    for _ in 0..10 {
        let _ = limiter.try_acquire();
    }
    assert_no_alloc("rate limiter refusal", || {
        assert!(limiter.try_acquire().is_err())
    });
    let keyed = resilience_core::rate_limit::KeyedRateLimiter::builder("tenants")
        .rate(1_000, Duration::from_secs(1))
        .burst(10)
        .capacity(64)
        .clock(clock.clone())
        .build()
        .unwrap();
    let mut tenant = 0u32;
    assert_no_alloc("keyed rate limiter admit (str key)", || {
        clock.advance(Duration::from_millis(1));
        tenant = (tenant + 1) % 8;
        let _ = keyed.try_acquire(["a", "b", "c", "d", "e", "f", "g", "h"][tenant as usize]);
    });
    for _ in 0..20 {
        let _ = keyed.try_acquire("a");
    }
    assert_no_alloc("keyed rate limiter refusal", || {
        assert!(keyed.try_acquire("a").is_err())
    });
}

#[cfg(feature = "tower")]
#[test]
fn tower_layers_are_allocation_free() {
    use resilience_core::FaultTable;
    use resilience_core::meter::MeterRing;
    use resilience_core::tower::{ChaosLayer, CircuitBreakerLayer, MeteringLayer};
    use tower::{Layer, Service, service_fn};

    let clock = ManualClock::new();
    let echo = service_fn(|n: u32| std::future::ready(Ok::<_, ()>(n)));
    let b = Arc::new(breaker(&clock, None));
    let mut guarded = CircuitBreakerLayer::new(b.clone()).layer(echo);
    assert_no_alloc("breaker layer, closed", || {
        assert_eq!(poll_ready(guarded.call(7)), Ok(7));
    });

    let table = Arc::new(FaultTable::builder().clock(clock.clone()).build().unwrap());
    let point = table.point("echo").unwrap();
    let mut chaotic = ChaosLayer::new(table, point, |_| std::future::ready(())).layer(echo);
    assert_no_alloc("chaos layer, nothing armed", || {
        assert_eq!(poll_ready(chaotic.call(7)), Ok(7));
    });

    let ring = Arc::new(MeterRing::with_clock(1 << 20, clock.clone(), Default::default()).unwrap());
    let mut metered = MeteringLayer::new(
        ring.clone(),
        |_: &u32| Some("tenant"),
        |_: &u32| Some("agent"),
    )
    .layer(echo);
    assert_no_alloc("metering layer", || {
        assert_eq!(poll_ready(metered.call(7)), Ok(7));
    });
    assert!(ring.pending() > CALLS as u64);

    b.force_open();
    assert_no_alloc("breaker layer, rejected", || {
        assert!(poll_ready(guarded.call(7)).is_err());
    });

    #[derive(Debug, PartialEq)]
    enum Refused {
        Full,
        Limited,
    }
    impl From<resilience_core::bulkhead::BulkheadFull> for Refused {
        fn from(_: resilience_core::bulkhead::BulkheadFull) -> Self {
            Refused::Full
        }
    }
    impl From<resilience_core::rate_limit::RateLimited> for Refused {
        fn from(_: resilience_core::rate_limit::RateLimited) -> Self {
            Refused::Limited
        }
    }
    let echo = service_fn(|n: u32| std::future::ready(Ok::<_, Refused>(n)));
    let bulkhead = Arc::new(
        resilience_core::bulkhead::Bulkhead::builder("echo")
            .max_concurrent(1)
            .build()
            .unwrap(),
    );
    let mut bounded = resilience_core::tower::BulkheadLayer::new(bulkhead.clone()).layer(echo);
    assert_no_alloc("bulkhead layer", || {
        assert_eq!(poll_ready(bounded.call(7)), Ok(7));
    });
    let _held = bulkhead.try_acquire().unwrap();
    assert_no_alloc("bulkhead layer, full", || {
        assert_eq!(poll_ready(bounded.call(7)), Err(Refused::Full));
    });
    let limiter = Arc::new(
        resilience_core::rate_limit::RateLimiter::builder("echo")
            .rate(1_000, Duration::from_secs(1))
            .burst(1)
            .clock(clock.clone())
            .build()
            .unwrap(),
    );
    let mut limited = resilience_core::tower::RateLimitLayer::new(limiter).layer(echo);
    assert_no_alloc("rate limit layer", || {
        clock.advance(Duration::from_millis(1));
        assert_eq!(poll_ready(limited.call(7)), Ok(7));
    });
    assert_no_alloc("rate limit layer, refused", || {
        assert_eq!(poll_ready(limited.call(7)), Err(Refused::Limited));
    });
    impl From<resilience_core::timeout::TimedOut> for Refused {
        fn from(_: resilience_core::timeout::TimedOut) -> Self {
            Refused::Full
        }
    }
    let retry = Arc::new(
        resilience_core::retry::Retry::builder("echo")
            .build()
            .unwrap(),
    );
    let mut retried =
        resilience_core::tower::RetryLayer::new(retry, |_| std::future::ready(())).layer(echo);
    assert_no_alloc("retry layer, first attempt succeeds", || {
        assert_eq!(poll_ready(retried.call(7)), Ok(7));
    });
    let limit = Arc::new(
        resilience_core::timeout::TimeLimiter::builder("echo")
            .build()
            .unwrap(),
    );
    let mut timed =
        resilience_core::tower::TimeLimitLayer::new(limit, |_| std::future::pending::<()>())
            .layer(echo);
    assert_no_alloc("time limit layer, ready at once", || {
        assert_eq!(poll_ready(timed.call(7)), Ok(7));
    });
}

#[test]
fn retry_timeout_and_pipeline_paths_are_allocation_free() {
    use resilience_core::bulkhead::Bulkhead;
    use resilience_core::pipeline::Pipeline;
    use resilience_core::rate_limit::RateLimiter;
    use resilience_core::retry::{Backoff, Retry, RetryBudget};
    use resilience_core::timeout::TimeLimiter;

    let clock = ManualClock::new();
    let budget = Arc::new(RetryBudget::builder().clock(clock.clone()).build().unwrap());
    let retry = Retry::builder("r")
        .clock(clock.clone())
        .backoff(Backoff::constant(Duration::ZERO))
        .budget(budget)
        .build()
        .unwrap();
    assert_no_alloc("retry, first attempt succeeds", || {
        assert_eq!(retry.call(|_| Ok::<_, ()>(1)), Ok(1))
    });
    let mut fail_once = false;
    assert_no_alloc("retry, one retry (zero backoff)", || {
        fail_once = !fail_once;
        let mut first = fail_once;
        let _ = retry.call(|_| {
            if std::mem::take(&mut first) {
                Err(())
            } else {
                Ok(1)
            }
        });
    });
    assert_no_alloc("retry call_async, first attempt succeeds", || {
        let call = retry.call_async(|_| async { Ok::<_, ()>(1) }, |_| std::future::ready(()));
        assert_eq!(poll_ready(call), Ok(1));
    });
    let limiter = TimeLimiter::builder("t")
        .clock(clock.clone())
        .build()
        .unwrap();
    assert_no_alloc("time limiter, in time", || {
        let call = limiter.call_async(|_| async { 1 }, |_| std::future::pending());
        assert_eq!(poll_ready(call), Ok(1));
    });

    let pipeline = Pipeline::builder_on(clock.clone())
        .retry(Retry::builder("p").clock(clock.clone()).build().unwrap())
        .time_limiter(limiter)
        .breaker(breaker(&clock, None))
        .bulkhead(Bulkhead::builder("p").build().unwrap())
        .rate_limiter(
            RateLimiter::builder("p")
                .rate(1_000_000, Duration::from_secs(1))
                .burst(1_000_000)
                .clock(clock.clone())
                .build()
                .unwrap(),
        )
        .build();
    assert_no_alloc("pipeline call, all policies, success", || {
        assert_eq!(pipeline.call(|_| Ok::<_, ()>(1)), Ok(1))
    });
    assert_no_alloc("pipeline call_or, success", || {
        assert_eq!(pipeline.call_or(|_| Ok::<_, ()>(1), |_| 0), Ok(1))
    });
    assert_no_alloc("pipeline call_async, all policies, success", || {
        let call = pipeline.call_async(|_| async { Ok::<_, ()>(1) }, |_| std::future::pending());
        assert_eq!(poll_ready(call), Ok(1));
    });
    pipeline.breaker().unwrap().force_open();
    assert_no_alloc("pipeline call, breaker open: refused, fallback", || {
        assert_eq!(pipeline.call_or(|_| Ok::<_, ()>(1), |_| 0), Ok(0))
    });
}
