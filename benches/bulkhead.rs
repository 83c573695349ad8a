//! The bulkhead's admission beside its peers, same workload, same groups, same run: tokio's
//! `Semaphore::try_acquire` (what tower's `ConcurrencyLimit` and tower-resilience's bulkhead
//! take a permit from), tower's `ConcurrencyLimit` and tower-resilience's bulkhead as whole
//! services.
//!
//! `cargo bench -p resilience-benches --bench bulkhead`

use std::hint::black_box;
use std::sync::Arc;
use std::time::Duration;

use criterion::{Criterion, criterion_group, criterion_main};
use resilience_benches as setup;
use resilience_core::bulkhead::Bulkhead;
use tokio::sync::Semaphore;

const LIMIT: u32 = 64;

fn ours() -> Bulkhead {
    ours_with_totals(true)
}

fn ours_with_totals(totals: bool) -> Bulkhead {
    Bulkhead::builder("bench")
        .max_concurrent(LIMIT)
        .call_totals(totals)
        .build()
        .unwrap_or_else(|e| panic!("{e}"))
}

fn semaphore() -> Arc<Semaphore> {
    Arc::new(Semaphore::new(LIMIT as usize))
}

type Answer = fn(u32) -> std::future::Ready<Result<u32, ()>>;

/// A tower service answering at once, behind `ConcurrencyLimit`.
fn tower_limited() -> tower::limit::ConcurrencyLimit<tower::util::ServiceFn<Answer>> {
    let inner: Answer = |r| std::future::ready(Ok(r));
    tower::limit::ConcurrencyLimit::new(tower::service_fn(inner), LIMIT as usize)
}

/// tower-resilience's bulkhead layer, refusing when full (no wait).
fn tower_resilience() -> impl tower::Service<u32, Response = u32, Future: Send> + Clone + Send {
    use tower::Layer;
    let inner: Answer = |r| std::future::ready(Ok(r));
    tower_resilience_bulkhead::BulkheadLayer::builder()
        .max_concurrent_calls(LIMIT as usize)
        .build()
        .unwrap_or_else(|e| panic!("{e}"))
        .layer(tower::service_fn(inner))
}

fn one_thread(c: &mut Criterion) {
    let mut g = setup::group(c, "bulkhead admit + release, one thread");
    let bulkhead = ours();
    g.bench_function("resilience Bulkhead::try_acquire", |b| {
        b.iter(|| black_box(&bulkhead).try_acquire().is_ok())
    });
    let bare = ours_with_totals(false);
    g.bench_function(
        "resilience Bulkhead::try_acquire, call_totals(false)",
        |b| b.iter(|| black_box(&bare).try_acquire().is_ok()),
    );
    let shared = Arc::new(ours());
    g.bench_function("resilience Bulkhead::try_acquire_owned", |b| {
        b.iter(|| black_box(&shared).try_acquire_owned().is_ok())
    });
    let sem = semaphore();
    g.bench_function("tokio Semaphore::try_acquire", |b| {
        b.iter(|| black_box(&sem).try_acquire().is_ok())
    });
    g.bench_function("tokio Semaphore::try_acquire_owned", |b| {
        b.iter(|| black_box(&sem).clone().try_acquire_owned().is_ok())
    });
    let mut service = tower_limited();
    g.bench_function("tower ConcurrencyLimit request", |b| {
        b.iter(|| setup::request(black_box(&mut service)))
    });
    let runtime = setup::runtime();
    let _context = runtime.enter();
    let mut peer = tower_resilience();
    g.bench_function("tower-resilience Bulkhead request", |b| {
        b.iter(|| setup::request(black_box(&mut peer)))
    });
    g.finish();

    let mut g = setup::group(c, "bulkhead full: rejection, one thread");
    let full = ours();
    let _held: Vec<_> = (0..LIMIT).map(|_| full.try_acquire()).collect();
    g.bench_function("resilience Bulkhead::try_acquire", |b| {
        b.iter(|| black_box(&full).try_acquire().is_err())
    });
    let bare = ours_with_totals(false);
    let _held_bare: Vec<_> = (0..LIMIT).map(|_| bare.try_acquire()).collect();
    g.bench_function(
        "resilience Bulkhead::try_acquire, call_totals(false)",
        |b| b.iter(|| black_box(&bare).try_acquire().is_err()),
    );
    let sem_full = semaphore();
    let _taken = sem_full.try_acquire_many(LIMIT);
    g.bench_function("tokio Semaphore::try_acquire", |b| {
        b.iter(|| black_box(&sem_full).try_acquire().is_err())
    });
    g.finish();
}

fn two_threads(c: &mut Criterion) {
    let mut g = setup::group(
        c,
        "bulkhead admit + release, two threads sharing it (wall per call)",
    );
    let bulkhead = ours();
    g.bench_function("resilience Bulkhead::try_acquire", |b| {
        b.iter_custom(|iters| {
            setup::two_threads(iters, &|| {
                black_box(black_box(&bulkhead).try_acquire().is_ok());
            })
        })
    });
    let sem = semaphore();
    g.bench_function("tokio Semaphore::try_acquire", |b| {
        b.iter_custom(|iters| {
            setup::two_threads(iters, &|| {
                black_box(black_box(&sem).try_acquire().is_ok());
            })
        })
    });
    let limited = tower_limited();
    g.bench_function("tower ConcurrencyLimit request", |b| {
        b.iter_custom(|iters| {
            setup::two_threads_each(iters, || limited.clone(), &|s| {
                black_box(setup::request(s));
            })
        })
    });
    let runtime = setup::runtime();
    let handle = runtime.handle().clone();
    let peer = tower_resilience();
    g.bench_function("tower-resilience Bulkhead request", |b| {
        b.iter_custom(|iters| {
            // The second thread has no tokio context: each call enters it.
            setup::two_threads_each(iters, || peer.clone(), &|s| {
                let _context = handle.enter();
                black_box(setup::request(s));
            })
        })
    });
    g.finish();
}

criterion_group! {
    name = bulkhead;
    config = Criterion::default()
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3));
    targets = one_thread, two_threads
}
criterion_main!(bulkhead);
