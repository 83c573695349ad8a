//! The registry and the control plane at scale: creating many breakers, looking one up, and
//! rendering `/metrics` over 20 000 of them.
//!
//! `cargo bench -p resilience-benches --bench registry`

use std::hint::black_box;
use std::sync::Arc;
use std::time::{Duration, Instant};

use criterion::{Criterion, criterion_group, criterion_main};
use resilience_control::ControlPlane;
use resilience_core::BreakerRegistry;

fn names(n: usize) -> Vec<String> {
    (0..n).map(|i| format!("dependency-{i:06}")).collect()
}

fn filled(names: &[String]) -> BreakerRegistry {
    let registry = BreakerRegistry::new();
    for name in names {
        registry.breaker(name).unwrap_or_else(|e| panic!("{e}"));
    }
    registry
}

fn insertion(c: &mut Criterion) {
    let mut g = c.benchmark_group("registry");
    g.sample_size(10);
    for n in [20_000usize, 100_000] {
        let names = names(n);
        g.bench_function(format!("create {n} breakers"), |b| {
            b.iter_custom(|iters| {
                let mut total = Duration::ZERO;
                for _ in 0..iters {
                    let started = Instant::now();
                    black_box(filled(&names));
                    total += started.elapsed();
                }
                total
            })
        });
    }
    g.finish();
}

fn lookup(c: &mut Criterion) {
    let mut g = c.benchmark_group("registry lookup among 100000");
    let names = names(100_000);
    let registry = filled(&names);
    g.bench_function("get, hit", |b| {
        let mut i = 0;
        b.iter(|| {
            i = (i + 7919) % names.len();
            black_box(registry.get(black_box(&names[i])).is_some())
        })
    });
    g.bench_function("get, miss", |b| {
        b.iter(|| black_box(registry.get(black_box("no-such-dependency")).is_some()))
    });
    g.finish();
}

fn metrics(c: &mut Criterion) {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap_or_else(|e| panic!("{e}"));
    let registry = Arc::new(filled(&names(20_000)));
    let control = runtime.block_on(async {
        ControlPlane::builder()
            .registry(registry)
            .spawn()
            .unwrap_or_else(|e| panic!("{e}"))
    });
    let mut g = c.benchmark_group("control plane, 20000 breakers");
    g.sample_size(10);
    g.bench_function("render /metrics", |b| {
        b.iter(|| {
            let _guard = runtime.enter();
            black_box(
                resilience_control::http::render_metrics(&control)
                    .unwrap_or_else(|e| panic!("{e}"))
                    .len(),
            )
        })
    });
    g.finish();
    runtime.block_on(async { control.shutdown().await.unwrap_or_else(|e| panic!("{e}")) });
}

criterion_group! {
    name = registry;
    config = Criterion::default().warm_up_time(Duration::from_secs(1)).measurement_time(Duration::from_secs(3));
    targets = insertion, lookup, metrics
}
criterion_main!(registry);
