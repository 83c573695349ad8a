//! Ours beside failsafe and recloser, same workload, same criterion group, same run.
//!
//! Every routine reduces its result to a `bool` (`is_ok()`), so no implementation pays for
//! moving a larger result type through the harness. Run:
//! `cargo bench -p resilience-benches --bench peers`

use std::hint::black_box;
use std::time::Duration;

use criterion::{Criterion, criterion_group, criterion_main};
use failsafe::CircuitBreaker as _;
use resilience_benches as setup;
use resilience_core::CircuitBreaker;

#[inline(always)]
fn acquire_success(b: &CircuitBreaker) -> bool {
    b.try_acquire().map(|p| p.success()).is_ok()
}

fn closed(c: &mut Criterion) {
    let _ticker = setup::ticker();
    let mut g = setup::group(c, "closed acquire+success");
    // The harness's own cost per iteration, for reading the others.
    g.bench_function("harness floor (no breaker)", |b| {
        b.iter(|| black_box(Ok::<(), ()>(())).is_ok())
    });
    let ours = setup::ours();
    g.bench_function("resilience try_acquire", |b| {
        b.iter(|| acquire_success(black_box(&ours)))
    });
    g.bench_function("resilience call", |b| {
        b.iter(|| black_box(&ours).call(|| Ok::<(), ()>(())).is_ok())
    });
    let bare = setup::ours_with_totals(false);
    g.bench_function("resilience try_acquire (totals off)", |b| {
        b.iter(|| acquire_success(black_box(&bare)))
    });
    let failsafe = setup::failsafe();
    g.bench_function("failsafe call", |b| {
        b.iter(|| black_box(&failsafe).call(|| Ok::<(), ()>(())).is_ok())
    });
    let recloser = setup::recloser();
    g.bench_function("recloser call", |b| {
        b.iter(|| black_box(&recloser).call(|| Ok::<(), ()>(())).is_ok())
    });
    g.finish();
}

fn open(c: &mut Criterion) {
    let _ticker = setup::ticker();
    let mut g = setup::group(c, "open rejection");
    let ours = setup::ours_open();
    g.bench_function("resilience try_acquire", |b| {
        b.iter(|| black_box(&ours).try_acquire().is_err())
    });
    g.bench_function("resilience call", |b| {
        b.iter(|| black_box(&ours).call(|| Ok::<(), ()>(())).is_ok())
    });
    let failsafe = setup::failsafe_open();
    g.bench_function("failsafe call", |b| {
        b.iter(|| black_box(&failsafe).call(|| Ok::<(), ()>(())).is_ok())
    });
    let recloser = setup::recloser_open();
    g.bench_function("recloser call", |b| {
        b.iter(|| black_box(&recloser).call(|| Ok::<(), ()>(())).is_ok())
    });
    g.finish();
}

fn contended(c: &mut Criterion) {
    let _ticker = setup::ticker();
    let mut g = setup::group(c, "two threads, one breaker (wall per call)");
    let ours = setup::ours();
    g.bench_function("resilience try_acquire", |b| {
        b.iter_custom(|iters| {
            setup::two_threads(iters, &|| {
                black_box(acquire_success(black_box(&ours)));
            })
        })
    });
    let failsafe = setup::failsafe();
    g.bench_function("failsafe call", |b| {
        b.iter_custom(|iters| {
            setup::two_threads(iters, &|| {
                black_box(black_box(&failsafe).call(|| Ok::<(), ()>(())).is_ok());
            })
        })
    });
    let recloser = setup::recloser();
    g.bench_function("recloser call", |b| {
        b.iter_custom(|iters| {
            setup::two_threads(iters, &|| {
                black_box(black_box(&recloser).call(|| Ok::<(), ()>(())).is_ok());
            })
        })
    });
    g.finish();
}

criterion_group! {
    name = peers;
    config = Criterion::default()
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3));
    targets = closed, open, contended
}
criterion_main!(peers);
