//! Retry, time limit and the composed pipeline beside their peers, same inner call, same run:
//! tower's `Retry` with its `TpsBudget`, tower's `Timeout`, `tokio::time::timeout`,
//! tower-resilience's retry, time limiter, bulkhead and rate limiter, and a whole stack of each.
//!
//! Every call succeeds at once (the admission and bookkeeping cost is what is measured);
//! futures are polled with a no-op waker inside a tokio runtime context, since tower's and
//! tower-resilience's timers need one. Run: `cargo bench -p resilience-benches --bench policies`
#![allow(clippy::unwrap_used)] // bench set-up may panic

use std::hint::black_box;
use std::sync::Arc;
use std::time::Duration;

use criterion::{Criterion, criterion_group, criterion_main};
use resilience_benches::{self as setup, request};
use resilience_core::bulkhead::Bulkhead;
use resilience_core::pipeline::Pipeline;
use resilience_core::rate_limit::RateLimiter;
use resilience_core::retry::{Backoff, Retry, RetryBudget};
use resilience_core::timeout::{TimeLimiter, timeout};
use tower::retry::budget::{Budget, TpsBudget};
use tower::{Layer, ServiceBuilder, service_fn};

type Answer = fn(u32) -> std::future::Ready<Result<u32, Failed>>;
type Echo = tower::util::ServiceFn<Answer>;

#[derive(Debug, Clone)]
struct Failed;

impl std::fmt::Display for Failed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("failed")
    }
}

impl std::error::Error for Failed {}

fn echo() -> Echo {
    let answer: Answer = |n| std::future::ready(Ok(n));
    service_fn(answer)
}

/// Polls a future that is ready at once.
fn ready<F: std::future::Future>(future: F) -> F::Output {
    let mut cx = std::task::Context::from_waker(std::task::Waker::noop());
    let mut future = std::pin::pin!(future);
    loop {
        if let std::task::Poll::Ready(out) = future.as_mut().poll(&mut cx) {
            return out;
        }
    }
}

const LIMIT: u32 = 64;
const PLENTY: u32 = 1_000_000_000;

fn budget() -> Arc<RetryBudget> {
    Arc::new(RetryBudget::builder().build().unwrap())
}

fn retry() -> Retry {
    Retry::builder("bench")
        .backoff(Backoff::constant(Duration::from_millis(1)))
        .budget(budget())
        .build()
        .unwrap()
}

fn tps_budget() -> Arc<TpsBudget> {
    Arc::new(TpsBudget::new(Duration::from_secs(10), 10, 0.2))
}

/// tower's retry policy over a `TpsBudget`, as tower's docs write one.
#[derive(Clone)]
struct BudgetPolicy(Arc<TpsBudget>);

impl<E> tower::retry::Policy<u32, u32, E> for BudgetPolicy {
    type Future = std::future::Ready<()>;

    fn retry(&mut self, _: &mut u32, result: &mut Result<u32, E>) -> Option<Self::Future> {
        match result {
            Ok(_) => {
                self.0.deposit();
                None
            }
            Err(_) => self.0.withdraw().then(|| std::future::ready(())),
        }
    }

    fn clone_request(&mut self, req: &u32) -> Option<u32> {
        Some(*req)
    }
}

fn peer_retry_layer<E: Send + Sync + 'static>() -> tower_resilience_retry::RetryLayer<u32, u32, E> {
    let budget = tower_resilience_retry::RetryBudgetBuilder::new()
        .token_bucket()
        .build()
        .unwrap();
    tower_resilience_retry::RetryLayer::<u32, u32, E>::builder()
        .max_attempts(3)
        .fixed_backoff(Duration::from_millis(1))
        .budget(budget)
        .build()
}

fn peer_time_limiter() -> tower_resilience_timelimiter::TimeLimiterLayer {
    tower_resilience_timelimiter::TimeLimiterLayer::builder()
        .timeout_duration(Duration::from_secs(1))
        .build()
}

fn peer_bulkhead() -> tower_resilience_bulkhead::BulkheadLayer {
    tower_resilience_bulkhead::BulkheadLayer::builder()
        .max_concurrent_calls(LIMIT as usize)
        .build()
        .unwrap()
}

fn peer_rate_limiter() -> tower_resilience_ratelimiter::RateLimiterLayer {
    tower_resilience_ratelimiter::RateLimiterLayer::builder()
        .limit_for_period(PLENTY as usize)
        .refresh_period(Duration::from_secs(1))
        .build()
        .unwrap()
}

fn peer_breaker() -> tower_resilience_circuitbreaker::CircuitBreakerLayer {
    tower_resilience_circuitbreaker::CircuitBreakerLayer::builder()
        .consecutive_failures(5)
        .wait_duration_in_open(setup::OPEN_FOR)
        .build()
        .unwrap()
}

fn time_limiter() -> TimeLimiter {
    TimeLimiter::builder("bench")
        .timeout(Duration::from_secs(1))
        .build()
        .unwrap()
}

/// Every policy: fallback (at the call) → retry → time limit → breaker → bulkhead → rate limit.
fn pipeline(with_time_limit: bool) -> Pipeline {
    let mut b = Pipeline::builder()
        .retry(retry())
        .breaker(setup::ours())
        .bulkhead(
            Bulkhead::builder("bench")
                .max_concurrent(LIMIT)
                .build()
                .unwrap(),
        )
        .rate_limiter(
            RateLimiter::builder("bench")
                .rate(PLENTY, Duration::from_secs(1))
                .burst(PLENTY)
                .build()
                .unwrap(),
        );
    if with_time_limit {
        b = b.time_limiter(time_limiter());
    }
    b.build()
}

fn retry_group(c: &mut Criterion) {
    let _ticker = setup::ticker();
    let runtime = setup::runtime();
    let _context = runtime.enter();
    let mut g = setup::group(c, "retry, call succeeds at once, one thread");
    let ours = retry();
    g.bench_function("resilience Retry::call (budget)", |b| {
        b.iter(|| {
            black_box(&ours)
                .call(|_| Ok::<_, Failed>(black_box(7)))
                .is_ok()
        })
    });
    g.bench_function("resilience Retry::call_async (budget)", |b| {
        b.iter(|| {
            let call = black_box(&ours).call_async(
                |_| std::future::ready(Ok::<_, Failed>(black_box(7))),
                tokio::time::sleep,
            );
            ready(call).is_ok()
        })
    });
    let mut tower_retry = tower::retry::RetryLayer::new(BudgetPolicy(tps_budget())).layer(echo());
    g.bench_function("tower Retry + TpsBudget request", |b| {
        b.iter(|| request(black_box(&mut tower_retry)))
    });
    let mut peer = peer_retry_layer::<Failed>().layer(echo());
    g.bench_function("tower-resilience Retry (budget) request", |b| {
        b.iter(|| request(black_box(&mut peer)))
    });
    g.finish();

    let mut g = setup::group(
        c,
        "retry budget deposit, two threads sharing it (wall per call)",
    );
    let ours = budget();
    g.bench_function("resilience RetryBudget::deposit", |b| {
        b.iter_custom(|iters| setup::two_threads(iters, &|| black_box(&ours).deposit()))
    });
    let tower_budget = tps_budget();
    g.bench_function("tower TpsBudget::deposit", |b| {
        b.iter_custom(|iters| setup::two_threads(iters, &|| black_box(&tower_budget).deposit()))
    });
    g.finish();
}

fn time_limit_group(c: &mut Criterion) {
    let _ticker = setup::ticker();
    let runtime = setup::runtime();
    let _context = runtime.enter();
    let mut g = setup::group(c, "time limit, call ready at once, one thread");
    let ours = time_limiter();
    g.bench_function("resilience TimeLimiter::call_async (tokio sleep)", |b| {
        b.iter(|| {
            let call = black_box(&ours)
                .call_async(|_| std::future::ready(black_box(7)), tokio::time::sleep);
            ready(call).is_ok()
        })
    });
    g.bench_function("resilience timeout() (tokio sleep)", |b| {
        b.iter(|| {
            let call = timeout(
                Duration::from_secs(1),
                tokio::time::sleep,
                std::future::ready(black_box(7)),
            );
            ready(call).is_ok()
        })
    });
    g.bench_function("tokio::time::timeout", |b| {
        b.iter(|| {
            let call =
                tokio::time::timeout(Duration::from_secs(1), std::future::ready(black_box(7)));
            ready(call).is_ok()
        })
    });
    let mut tower_timeout = tower::timeout::TimeoutLayer::new(Duration::from_secs(1)).layer(echo());
    g.bench_function("tower Timeout request", |b| {
        b.iter(|| request(black_box(&mut tower_timeout)))
    });
    let mut peer = peer_time_limiter().layer(echo());
    g.bench_function("tower-resilience TimeLimiter request", |b| {
        b.iter(|| request(black_box(&mut peer)))
    });
    g.finish();
}

fn pipeline_group(c: &mut Criterion) {
    let _ticker = setup::ticker();
    let runtime = setup::runtime();
    let _context = runtime.enter();
    let mut g = setup::group(c, "composed pipeline, nothing failing, one thread");
    let sync = pipeline(false);
    g.bench_function(
        "resilience Pipeline::call_or (fallback, retry, breaker, bulkhead, rate limit)",
        |b| {
            b.iter(|| {
                black_box(&sync)
                    .call_or(|_| Ok::<_, Failed>(black_box(7)), |_| 0)
                    .is_ok()
            })
        },
    );
    let full = pipeline(true);
    g.bench_function(
        "resilience Pipeline::call_async_or (+ time limit, tokio sleep)",
        |b| {
            b.iter(|| {
                let call = black_box(&full).call_async_or(
                    |_| std::future::ready(Ok::<_, Failed>(black_box(7))),
                    tokio::time::sleep,
                    |_| 0,
                );
                ready(call).is_ok()
            })
        },
    );
    let mut tower_stack = ServiceBuilder::new()
        .layer(tower::retry::RetryLayer::new(BudgetPolicy(tps_budget())))
        .layer(tower::timeout::TimeoutLayer::new(Duration::from_secs(1)))
        .layer(peer_breaker())
        .layer(tower::limit::ConcurrencyLimitLayer::new(LIMIT as usize))
        .service(echo());
    g.bench_function(
        "tower Retry+TpsBudget, Timeout, ConcurrencyLimit + tower-resilience breaker",
        |b| b.iter(|| request(black_box(&mut tower_stack))),
    );
    let mut peer_stack = ServiceBuilder::new()
        .layer(peer_retry_layer())
        .layer(peer_time_limiter())
        .layer(peer_breaker())
        .layer(peer_bulkhead())
        .layer(peer_rate_limiter())
        .service(echo());
    g.bench_function(
        "tower-resilience retry, time limiter, breaker, bulkhead, rate limiter",
        |b| b.iter(|| request(black_box(&mut peer_stack))),
    );
    g.finish();

    let mut g = setup::group(
        c,
        "composed pipeline, two threads sharing it (wall per call)",
    );
    g.bench_function("resilience Pipeline::call_or", |b| {
        b.iter_custom(|iters| {
            setup::two_threads(iters, &|| {
                black_box(
                    black_box(&sync)
                        .call_or(|_| Ok::<_, Failed>(black_box(7)), |_| 0)
                        .is_ok(),
                );
            })
        })
    });
    let handle = runtime.handle().clone();
    let peer_stack = ServiceBuilder::new()
        .layer(peer_retry_layer())
        .layer(peer_time_limiter())
        .layer(peer_breaker())
        .layer(peer_bulkhead())
        .layer(peer_rate_limiter())
        .service(echo());
    g.bench_function(
        "tower-resilience retry, time limiter, breaker, bulkhead, rate limiter",
        |b| {
            b.iter_custom(|iters| {
                // Each call enters the runtime context (the second thread has none, and
                // tower-resilience's timer needs one): a thread-local swap, small beside
                // the stack's cost.
                setup::two_threads_each(iters, || peer_stack.clone(), &|s| {
                    let _context = handle.enter();
                    black_box(request(s));
                })
            })
        },
    );
    g.finish();
}

criterion_group!(benches, retry_group, time_limit_group, pipeline_group);
criterion_main!(benches);
