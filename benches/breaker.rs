//! Our own breaker paths, one group per path, including the rate windows and the slow paths.
//!
//! `cargo bench -p resilience-benches --bench breaker`

use std::hint::black_box;
use std::time::Duration;

use criterion::{BatchSize, Criterion, Throughput, criterion_group, criterion_main};
use resilience_benches as setup;
use resilience_core::{CircuitBreaker, SlidingWindow};

fn with_window(window: SlidingWindow) -> CircuitBreaker {
    CircuitBreaker::builder("bench")
        .fail_max(1_000_000)
        .failure_rate(0.99)
        .sliding_window(window)
        .build()
        .unwrap_or_else(|e| panic!("bench config: {e}"))
}

fn paths(c: &mut Criterion) {
    let _ticker = setup::ticker();
    let mut g = c.benchmark_group("breaker paths");
    g.throughput(Throughput::Elements(1));

    let closed = setup::ours();
    g.bench_function("closed success", |b| {
        b.iter(|| black_box(&closed).try_acquire().map(|p| p.success()))
    });
    g.bench_function("closed failure then success", |b| {
        b.iter(|| {
            let _ = black_box(&closed).try_acquire().map(|p| p.failure());
            black_box(&closed).try_acquire().map(|p| p.success())
        })
    });
    g.bench_function("closed dropped permit", |b| {
        b.iter(|| drop(black_box(&closed).try_acquire()))
    });

    let count = with_window(SlidingWindow::Count(100));
    g.bench_function("closed success, count window", |b| {
        b.iter(|| black_box(&count).try_acquire().map(|p| p.success()))
    });
    let time = with_window(SlidingWindow::Time {
        duration: Duration::from_secs(10),
        buckets: 10,
    });
    g.bench_function("closed success, time window", |b| {
        b.iter(|| black_box(&time).try_acquire().map(|p| p.success()))
    });

    let open = setup::ours_open();
    g.bench_function("open rejection", |b| {
        b.iter(|| black_box(&open).try_acquire().is_err())
    });
    let forced = setup::ours();
    forced.force_open();
    g.bench_function("forced-open rejection", |b| {
        b.iter(|| black_box(&forced).try_acquire().is_err())
    });

    let half_open = setup::ours();
    half_open.transition_to_half_open();
    g.bench_function("half-open admit and release", |b| {
        b.iter(|| drop(black_box(&half_open).try_acquire()))
    });

    g.bench_function("trip (CLOSED to OPEN) and reset", |b| {
        let breaker = CircuitBreaker::builder("trip")
            .fail_max(1)
            .build()
            .unwrap_or_else(|e| panic!("{e}"));
        b.iter_batched(
            || breaker.reset(),
            |_| black_box(&breaker).try_acquire().map(|p| p.failure()),
            BatchSize::SmallInput,
        )
    });
    g.bench_function("snapshot", |b| b.iter(|| black_box(&closed).snapshot()));
    g.finish();
}

criterion_group! {
    name = breaker;
    config = Criterion::default()
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(2));
    targets = paths
}
criterion_main!(breaker);
