//! The chaos check on the data path, in each situation a service meets.
//!
//! `cargo bench -p resilience-benches --bench chaos`

use std::hint::black_box;
use std::time::Duration;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use resilience_benches as setup;
use resilience_core::chaos::{ErrorCode, FaultSpec, FaultTable, Scenario};

fn table() -> FaultTable {
    FaultTable::builder()
        .build()
        .unwrap_or_else(|e| panic!("{e}"))
}

fn arm(t: &FaultTable, scenario: Scenario) {
    t.arm(scenario.duration(Duration::from_secs(300)))
        .unwrap_or_else(|e| panic!("{e}"));
}

fn check(c: &mut Criterion) {
    let _ticker = setup::ticker();
    let mut g = c.benchmark_group("chaos check");
    g.throughput(Throughput::Elements(1));

    g.bench_function("harness floor (no table)", |b| {
        b.iter(|| black_box(Some(1u8)).is_some())
    });
    let idle = table();
    let p = idle.point("db").unwrap_or_else(|e| panic!("{e}"));
    g.bench_function("nothing armed", |b| {
        b.iter(|| black_box(&idle).check(black_box(p)).is_some())
    });

    let elsewhere = table();
    let p = elsewhere.point("db").unwrap_or_else(|e| panic!("{e}"));
    arm(
        &elsewhere,
        Scenario::new("cache-down", "cache", FaultSpec::Partition),
    );
    g.bench_function("armed at another point", |b| {
        b.iter(|| black_box(&elsewhere).check(black_box(p)).is_some())
    });

    let always = table();
    let p = always.point("db").unwrap_or_else(|e| panic!("{e}"));
    arm(
        &always,
        Scenario::new(
            "slow-db",
            "db",
            FaultSpec::Latency(Duration::from_millis(50)),
        ),
    );
    g.bench_function("armed, rate 1 (injects)", |b| {
        b.iter(|| black_box(&always).check(black_box(p)).is_some())
    });

    let partial = table();
    let p = partial.point("db").unwrap_or_else(|e| panic!("{e}"));
    arm(
        &partial,
        Scenario::new("flaky-db", "db", FaultSpec::Error(ErrorCode(503))).rate(0.1),
    );
    g.bench_function("armed, rate 0.1 (random draw)", |b| {
        b.iter(|| black_box(&partial).check(black_box(p)).is_some())
    });

    let stacked = table();
    let p = stacked.point("db").unwrap_or_else(|e| panic!("{e}"));
    arm(
        &stacked,
        Scenario::new("flaky-db", "db", FaultSpec::Error(ErrorCode(503))).rate(0.1),
    );
    arm(
        &stacked,
        Scenario::new(
            "slow-db",
            "db",
            FaultSpec::Latency(Duration::from_millis(50)),
        ),
    );
    g.bench_function("two scenarios on the point", |b| {
        b.iter(|| black_box(&stacked).check(black_box(p)).is_some())
    });
    g.finish();
}

/// The control plane's side: starting and ending a scenario (the original budgets 0-100 µs for
/// its engine's operations), and an emergency stop with scenarios live.
fn engine(c: &mut Criterion) {
    let _ticker = setup::ticker();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap_or_else(|e| panic!("{e}"));
    let _entered = runtime.enter();
    let table = std::sync::Arc::new(table());
    let engine = resilience_control::chaos::ChaosEngine::builder(table)
        .config(resilience_control::chaos::ChaosConfig::default().enabled(true))
        .build()
        .unwrap_or_else(|e| panic!("{e}"));
    let mut g = c.benchmark_group("chaos engine");
    g.bench_function("start + end a latency scenario (scoped)", |b| {
        b.iter(|| {
            let guard = engine
                .inject_latency("db", Duration::from_millis(50))
                .scoped()
                .unwrap_or_else(|e| panic!("{e}"));
            drop(black_box(guard));
        })
    });
    g.bench_function("emergency stop with 8 scenarios live, then resume", |b| {
        b.iter_batched(
            || {
                engine.resume().unwrap_or_else(|e| panic!("{e}"));
                for n in 0..8 {
                    engine
                        .partition(&format!("svc-{n}"))
                        .start()
                        .unwrap_or_else(|e| panic!("{e}"));
                }
            },
            |()| black_box(engine.emergency_stop()),
            criterion::BatchSize::PerIteration,
        )
    });
    g.finish();
}

criterion_group! {
    name = chaos;
    config = Criterion::default().warm_up_time(Duration::from_secs(1)).measurement_time(Duration::from_secs(2));
    targets = check, engine
}
criterion_main!(chaos);
