//! The GCRA rate limiter beside governor's (the same algorithm), same workload, same groups,
//! same run, with tower-resilience's rate limiter layer: admission with permits to spare,
//! refusal when exhausted, two threads sharing one; and a limit per key beside governor's keyed
//! limiter (a concurrent hash map of GCRA cells).
//!
//! `cargo bench -p resilience-benches --bench rate_limit`

use std::hint::black_box;
use std::num::NonZeroU32;
use std::time::Duration;

use criterion::{Criterion, criterion_group, criterion_main};
use governor::{Quota, RateLimiter as Governor};
use resilience_benches as setup;
use resilience_core::rate_limit::{KeyedRateLimiter, RateLimiter};
use tower::Layer;

/// More than any bench can take: every call is admitted.
const PLENTY: u32 = 1_000_000_000;

fn ours(per_second: u32, burst: u32) -> RateLimiter {
    ours_with_totals(per_second, burst, true)
}

fn ours_with_totals(per_second: u32, burst: u32, totals: bool) -> RateLimiter {
    RateLimiter::builder("bench")
        .rate(per_second, Duration::from_secs(1))
        .burst(burst)
        .call_totals(totals)
        .build()
        .unwrap_or_else(|e| panic!("{e}"))
}

fn governor(per_second: u32, burst: u32) -> governor::DefaultDirectRateLimiter {
    let nz = |n: u32| NonZeroU32::new(n).unwrap_or(NonZeroU32::MIN);
    Governor::direct(Quota::per_second(nz(per_second)).allow_burst(nz(burst)))
}

type Answer = fn(u32) -> std::future::Ready<Result<u32, ()>>;

fn echo() -> tower::util::ServiceFn<Answer> {
    let answer: Answer = |n| std::future::ready(Ok(n));
    tower::service_fn(answer)
}

/// tower-resilience's rate limiter: `per_second` permits each second.
fn tower_resilience(per_second: u32) -> tower_resilience_ratelimiter::RateLimiterLayer {
    tower_resilience_ratelimiter::RateLimiterLayer::builder()
        .limit_for_period(per_second as usize)
        .refresh_period(Duration::from_secs(1))
        .build()
        .unwrap_or_else(|e| panic!("{e}"))
}

fn one_thread(c: &mut Criterion) {
    let _ticker = setup::ticker();
    let mut g = setup::group(c, "rate limiter admit, one thread");
    let limiter = ours(PLENTY, PLENTY);
    g.bench_function("resilience RateLimiter::try_acquire", |b| {
        b.iter(|| black_box(&limiter).try_acquire().is_ok())
    });
    let bare = ours_with_totals(PLENTY, PLENTY, false);
    g.bench_function(
        "resilience RateLimiter::try_acquire, call_totals(false)",
        |b| b.iter(|| black_box(&bare).try_acquire().is_ok()),
    );
    let peer = governor(PLENTY, PLENTY);
    g.bench_function("governor check", |b| {
        b.iter(|| black_box(&peer).check().is_ok())
    });
    let runtime = setup::runtime();
    let _context = runtime.enter();
    let mut layered = tower_resilience(PLENTY).layer(echo());
    g.bench_function("tower-resilience RateLimiter request", |b| {
        b.iter(|| setup::request(black_box(&mut layered)))
    });
    g.finish();

    let mut g = setup::group(c, "rate limiter refusal, one thread");
    let limiter = ours(1, 1);
    let _ = limiter.try_acquire();
    g.bench_function("resilience RateLimiter::try_acquire", |b| {
        b.iter(|| black_box(&limiter).try_acquire().is_err())
    });
    let bare = ours_with_totals(1, 1, false);
    let _ = bare.try_acquire();
    g.bench_function(
        "resilience RateLimiter::try_acquire, call_totals(false)",
        |b| b.iter(|| black_box(&bare).try_acquire().is_err()),
    );
    let peer = governor(1, 1);
    let _ = peer.check();
    g.bench_function("governor check", |b| {
        b.iter(|| black_box(&peer).check().is_err())
    });
    g.finish();
}

fn two_threads(c: &mut Criterion) {
    let _ticker = setup::ticker();
    let mut g = setup::group(
        c,
        "rate limiter admit, two threads sharing it (wall per call)",
    );
    let limiter = ours(PLENTY, PLENTY);
    g.bench_function("resilience RateLimiter::try_acquire", |b| {
        b.iter_custom(|iters| {
            setup::two_threads(iters, &|| {
                black_box(black_box(&limiter).try_acquire().is_ok());
            })
        })
    });
    let peer = governor(PLENTY, PLENTY);
    g.bench_function("governor check", |b| {
        b.iter_custom(|iters| {
            setup::two_threads(iters, &|| {
                black_box(black_box(&peer).check().is_ok());
            })
        })
    });
    let runtime = setup::runtime();
    let handle = runtime.handle().clone();
    let layered = tower_resilience(PLENTY).layer(echo());
    g.bench_function("tower-resilience RateLimiter request", |b| {
        b.iter_custom(|iters| {
            // The second thread has no tokio context: each call enters it (a thread-local
            // swap, small beside the peer's cost).
            setup::two_threads_each(iters, || layered.clone(), &|s| {
                let _context = handle.enter();
                black_box(setup::request(s));
            })
        })
    });
    g.finish();
}

/// Keys a keyed bench cycles through: more than fit in a cache line, fewer than the table.
const KEYS: u64 = 1_000;

fn keyed(c: &mut Criterion) {
    let _ticker = setup::ticker();
    let mut g = setup::group(c, "keyed rate limiter admit, 1000 keys, one thread");
    let ours = KeyedRateLimiter::builder("bench")
        .rate(1_000_000, Duration::from_secs(1))
        .burst(PLENTY)
        .capacity(4096)
        .build()
        .unwrap_or_else(|e| panic!("{e}"));
    let mut key = 0u64;
    g.bench_function("resilience KeyedRateLimiter::try_acquire", |b| {
        b.iter(|| {
            key = (key + 1) % KEYS;
            black_box(&ours).try_acquire(&black_box(key)).is_ok()
        })
    });
    let nz = |n: u32| NonZeroU32::new(n).unwrap_or(NonZeroU32::MIN);
    let peer: governor::DefaultKeyedRateLimiter<u64> =
        Governor::keyed(Quota::per_second(nz(1_000_000)).allow_burst(nz(PLENTY)));
    g.bench_function("governor keyed check_key", |b| {
        b.iter(|| {
            key = (key + 1) % KEYS;
            black_box(&peer).check_key(&black_box(key)).is_ok()
        })
    });
    g.finish();

    let mut g = setup::group(
        c,
        "keyed rate limiter admit, 1000 keys, two threads sharing it (wall per call)",
    );
    g.bench_function("resilience KeyedRateLimiter::try_acquire", |b| {
        b.iter_custom(|iters| {
            setup::two_threads_each(iters, || 0u64, &|k| {
                *k = (*k + 7) % KEYS;
                black_box(black_box(&ours).try_acquire(k).is_ok());
            })
        })
    });
    g.bench_function("governor keyed check_key", |b| {
        b.iter_custom(|iters| {
            setup::two_threads_each(iters, || 0u64, &|k| {
                *k = (*k + 7) % KEYS;
                black_box(black_box(&peer).check_key(k).is_ok());
            })
        })
    });
    g.finish();
}

criterion_group! {
    name = rate_limit;
    config = Criterion::default()
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3));
    targets = one_thread, two_threads, keyed
}
criterion_main!(rate_limit);
