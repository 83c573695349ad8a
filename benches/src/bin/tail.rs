//! Tail latency of the breaker paths, ours beside failsafe and recloser, and of the tower layer
//! beside tower-resilience's, in one run.
//!
//! `cargo run --release -p resilience-benches --bin tail [-- <seconds per case>]`
//!
//! A single 2 ns call is below what a clock can resolve, so each sample is the mean per-call
//! time of a batch of 64 calls, read with the CPU time-stamp counter. Percentiles of those
//! samples show the tail: preemption, cache misses, contention.

use std::cell::RefCell;
use std::hint::black_box;
use std::sync::Barrier;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use failsafe::CircuitBreaker as _;
use hdrhistogram::Histogram;
use resilience_benches as setup;
use tower::Layer;

const BATCH: u64 = 64;

/// Samples `call` in batches for `run_for`; values are picoseconds per call.
fn sample(run_for: Duration, clock: &quanta::Clock, call: &dyn Fn()) -> Histogram<u64> {
    let mut hist = Histogram::<u64>::new_with_bounds(1, 60_000_000_000, 3)
        .unwrap_or_else(|e| panic!("histogram bounds: {e}"));
    let deadline = Instant::now() + run_for;
    while Instant::now() < deadline {
        for _ in 0..1_000 {
            let start = clock.raw();
            for _ in 0..BATCH {
                call();
            }
            let end = clock.raw();
            let ps = clock.delta_as_nanos(start, end) * 1_000 / BATCH;
            hist.saturating_record(ps.max(1));
        }
    }
    hist
}

/// As `sample`, while a second thread runs `call` flat out on the same breaker.
fn sample_contended(
    run_for: Duration,
    clock: &quanta::Clock,
    call: &(dyn Fn() + Sync),
) -> Histogram<u64> {
    let stop = AtomicBool::new(false);
    let ready = Barrier::new(2);
    std::thread::scope(|s| {
        s.spawn(|| {
            ready.wait();
            while !stop.load(Ordering::Relaxed) {
                for _ in 0..BATCH {
                    call();
                }
            }
        });
        ready.wait();
        let hist = sample(run_for, clock, call);
        stop.store(true, Ordering::Relaxed);
        hist
    })
}

fn row(name: &str, hist: &Histogram<u64>) {
    let ns = |q: f64| hist.value_at_quantile(q) as f64 / 1_000.0;
    println!(
        "| {name:<34} | {:>7.2} | {:>7.2} | {:>7.2} | {:>7.2} | {:>8.2} | {:>9.2} |",
        hist.min() as f64 / 1_000.0,
        ns(0.5),
        ns(0.95),
        ns(0.99),
        ns(0.999),
        hist.max() as f64 / 1_000.0,
    );
}

fn main() {
    let secs: f64 = std::env::args()
        .nth(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or(2.0);
    let run_for = Duration::from_secs_f64(secs);
    let clock = quanta::Clock::new();
    let _ticker = setup::ticker();

    let ours = setup::ours();
    let ours_open = setup::ours_open();
    let failsafe = setup::failsafe();
    let failsafe_open = setup::failsafe_open();
    let recloser = setup::recloser();
    let recloser_open = setup::recloser_open();

    println!("ns per call (batches of {BATCH}), {secs} s per case\n");
    println!(
        "| case                               |     min |     p50 |     p95 |     p99 |    p99.9 |       max |"
    );
    println!(
        "|------------------------------------|--------:|--------:|--------:|--------:|---------:|----------:|"
    );
    let closed_ours = || {
        black_box(black_box(&ours).try_acquire().map(|p| p.success()).is_ok());
    };
    let closed_failsafe = || {
        black_box(black_box(&failsafe).call(|| Ok::<(), ()>(())).is_ok());
    };
    let closed_recloser = || {
        black_box(black_box(&recloser).call(|| Ok::<(), ()>(())).is_ok());
    };
    row("closed: resilience", &sample(run_for, &clock, &closed_ours));
    row(
        "closed: failsafe",
        &sample(run_for, &clock, &closed_failsafe),
    );
    row(
        "closed: recloser",
        &sample(run_for, &clock, &closed_recloser),
    );
    row(
        "open: resilience",
        &sample(run_for, &clock, &|| {
            black_box(black_box(&ours_open).try_acquire().is_err());
        }),
    );
    row(
        "open: failsafe",
        &sample(run_for, &clock, &|| {
            black_box(black_box(&failsafe_open).call(|| Ok::<(), ()>(())).is_ok());
        }),
    );
    row(
        "open: recloser",
        &sample(run_for, &clock, &|| {
            black_box(black_box(&recloser_open).call(|| Ok::<(), ()>(())).is_ok());
        }),
    );
    row(
        "closed, 2 threads: resilience",
        &sample_contended(run_for, &clock, &closed_ours),
    );
    row(
        "closed, 2 threads: failsafe",
        &sample_contended(run_for, &clock, &closed_failsafe),
    );
    row(
        "closed, 2 threads: recloser",
        &sample_contended(run_for, &clock, &closed_recloser),
    );

    // Tower middleware, one request = ready + call + response, inside a runtime context
    // (tower-resilience needs one).
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap_or_else(|e| panic!("runtime: {e}"));
    let _context = runtime.enter();
    let echo = || tower::service_fn(|n: u32| std::future::ready(Ok::<u32, ()>(n)));
    let leaked: &'static resilience_core::CircuitBreaker = Box::leak(Box::new(setup::ours()));
    let ours_layer =
        RefCell::new(resilience_core::tower::CircuitBreakerLayer::new(leaked).layer(echo()));
    let peer_layer = RefCell::new(
        tower_resilience_circuitbreaker::CircuitBreakerLayer::builder()
            .consecutive_failures(5)
            .wait_duration_in_open(setup::OPEN_FOR)
            .build()
            .unwrap_or_else(|e| panic!("tower-resilience config: {e}"))
            .layer(echo()),
    );
    row(
        "tower closed: resilience, &'static",
        &sample(run_for, &clock, &|| {
            black_box(setup::request(&mut *ours_layer.borrow_mut()));
        }),
    );
    row(
        "tower closed: tower-resilience",
        &sample(run_for, &clock, &|| {
            black_box(setup::request(&mut *peer_layer.borrow_mut()));
        }),
    );
}
