//! Shared set-up for the benches and the tail-latency runner: the same breakers, configured the
//! same way, for us and for each peer.
#![allow(missing_docs)]

use std::sync::Barrier;

use criterion::measurement::WallTime;
use criterion::{BenchmarkGroup, Criterion, Throughput};
use std::time::{Duration, Instant};

use resilience_core::{CircuitBreaker, CoarseClock, Ticker};

/// The OPEN time every breaker gets: long enough that a benchmark never sees it expire.
pub const OPEN_FOR: Duration = Duration::from_secs(3600);

/// Keeps the global coarse clock ticking for the duration of a benchmark (as the control plane
/// does in a service).
pub fn ticker() -> Ticker {
    CoarseClock::global()
        .start_ticker(Duration::from_millis(1))
        .unwrap_or_else(|e| panic!("cannot start the clock ticker: {e}"))
}

/// Our breaker with the defaults (exact lifetime totals on), failing after 5.
pub fn ours() -> CircuitBreaker {
    ours_with_totals(true)
}

/// Our breaker with or without lifetime call totals.
pub fn ours_with_totals(totals: bool) -> CircuitBreaker {
    CircuitBreaker::builder("bench")
        .fail_max(5)
        .reset_timeout(OPEN_FOR)
        .max_reset_timeout(OPEN_FOR)
        .call_totals(totals)
        .build()
        .unwrap_or_else(|e| panic!("bench config: {e}"))
}

pub fn ours_open() -> CircuitBreaker {
    let b = ours();
    b.trip_open();
    b
}

pub type Failsafe = failsafe::StateMachine<
    failsafe::failure_policy::ConsecutiveFailures<failsafe::backoff::Constant>,
    (),
>;

pub fn failsafe() -> Failsafe {
    use failsafe::{Config, backoff, failure_policy};
    Config::new()
        .failure_policy(failure_policy::consecutive_failures(
            5,
            backoff::constant(OPEN_FOR),
        ))
        .build()
}

pub fn failsafe_open() -> Failsafe {
    use failsafe::CircuitBreaker as _;
    let b = failsafe();
    for _ in 0..5 {
        let _ = b.call(|| Err::<(), ()>(()));
    }
    assert!(!b.is_call_permitted(), "failsafe should be open");
    b
}

pub fn recloser() -> recloser::Recloser {
    recloser::Recloser::custom()
        .closed_len(100)
        .open_wait(OPEN_FOR)
        .build()
}

pub fn recloser_open() -> recloser::Recloser {
    let r = recloser::Recloser::custom()
        .closed_len(1)
        .open_wait(OPEN_FOR)
        .build();
    for _ in 0..3 {
        let _ = r.call(|| Err::<(), ()>(()));
    }
    assert!(matches!(
        r.call(|| Ok::<(), ()>(())),
        Err(recloser::Error::Rejected)
    ));
    r
}

/// Wall time for two threads to make `iters` calls each on shared state.
pub fn two_threads(iters: u64, call: &(dyn Fn() + Sync)) -> Duration {
    let start = Barrier::new(2);
    std::thread::scope(|s| {
        let other = s.spawn(|| {
            start.wait();
            for _ in 0..iters {
                call();
            }
        });
        start.wait();
        let began = Instant::now();
        for _ in 0..iters {
            call();
        }
        other
            .join()
            .unwrap_or_else(|_| panic!("bench thread panicked"));
        began.elapsed()
    })
}

/// Wall time for two threads to make `iters` calls each, each thread on its own value from
/// `make` (e.g. a clone of a tower service sharing one breaker).
pub fn two_threads_each<T: Send>(
    iters: u64,
    mut make: impl FnMut() -> T,
    call: &(dyn Fn(&mut T) + Sync),
) -> Duration {
    let start = Barrier::new(2);
    let (mut mine, mut theirs) = (make(), make());
    std::thread::scope(|s| {
        let other = s.spawn(|| {
            start.wait();
            for _ in 0..iters {
                call(&mut theirs);
            }
        });
        start.wait();
        let began = Instant::now();
        for _ in 0..iters {
            call(&mut mine);
        }
        other
            .join()
            .unwrap_or_else(|_| panic!("bench thread panicked"));
        began.elapsed()
    })
}

/// One request through a tower `service`: ready, call, response; `true` when it succeeded.
///
/// Futures are polled with a no-op waker. A pending poll (tower-resilience's lock, contended) is
/// retried at once, as a spinning executor would: nothing else could wake it.
#[inline(always)]
pub fn request<S: tower::Service<u32>>(service: &mut S) -> bool {
    use std::task::{Context, Poll, Waker};
    let mut cx = Context::from_waker(Waker::noop());
    loop {
        match service.poll_ready(&mut cx) {
            Poll::Ready(Ok(())) => break,
            Poll::Ready(Err(_)) => return false,
            Poll::Pending => std::hint::spin_loop(),
        }
    }
    let mut future = std::pin::pin!(service.call(std::hint::black_box(7)));
    loop {
        match future.as_mut().poll(&mut cx) {
            Poll::Ready(result) => return result.is_ok(),
            Poll::Pending => std::hint::spin_loop(),
        }
    }
}

/// A criterion group whose figures read as time per call (one element per iteration).
pub fn group<'a>(c: &'a mut Criterion, name: &str) -> BenchmarkGroup<'a, WallTime> {
    let mut g = c.benchmark_group(name);
    g.throughput(Throughput::Elements(1));
    g
}

/// A current-thread runtime to poll inside: tower's and tower-resilience's timers and
/// semaphores need a tokio context.
pub fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap_or_else(|e| panic!("tokio runtime: {e}"))
}
