//! `resilience bench`: what the hot path costs on this machine, with percentiles.
//!
//! Each sample is the mean per-call time over a batch of 64 calls, read with the CPU
//! time-stamp counter (quanta): a single 2 ns call is below any clock's resolution. The
//! percentiles of those samples show the tail (preemption, cache misses). Peers are measured
//! side by side by `cargo bench -p resilience-benches --bench peers`.

use std::hint::black_box;
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;
use resilience_core::chaos::{FaultSpec, FaultTable, Scenario};
use resilience_core::meter::{MeterRing, Operation, Tier, UsageEvent};
use resilience_core::{CircuitBreaker, CoarseClock};

use crate::Error;

const BATCH: u64 = 64;

#[derive(clap::Args, Debug)]
pub(crate) struct Args {
    /// How long each case runs.
    #[arg(long, default_value = "1s", value_parser = crate::duration)]
    pub(crate) per_case: Duration,
}

/// Per-call times of `call` in picoseconds, one sample per batch.
fn sample(
    run_for: Duration,
    clock: &quanta::Clock,
    call: &mut dyn FnMut(),
) -> Result<Histogram<u64>, Error> {
    sample_with(run_for, clock, call, &mut || {})
}

/// As `sample`, running `between` (untimed) after each batch.
fn sample_with(
    run_for: Duration,
    clock: &quanta::Clock,
    call: &mut dyn FnMut(),
    between: &mut dyn FnMut(),
) -> Result<Histogram<u64>, Error> {
    let mut hist = Histogram::<u64>::new_with_bounds(1, 60_000_000_000, 3)?;
    let deadline = Instant::now() + run_for;
    while Instant::now() < deadline {
        for _ in 0..1_000 {
            let start = clock.raw();
            for _ in 0..BATCH {
                call();
            }
            let end = clock.raw();
            hist.saturating_record((clock.delta_as_nanos(start, end) * 1_000 / BATCH).max(1));
            between();
        }
    }
    Ok(hist)
}

/// A row of the report; also what the demo prints.
pub(crate) fn row(name: &str, hist: &Histogram<u64>) {
    let ns = |q: f64| hist.value_at_quantile(q) as f64 / 1_000.0;
    println!(
        "  {name:<44} {:>8.2} {:>8.2} {:>8.2} {:>8.2} {:>9.2}",
        ns(0.5),
        ns(0.9),
        ns(0.99),
        ns(0.999),
        hist.max() as f64 / 1_000.0,
    );
}

pub(crate) fn header(unit: &str) {
    println!(
        "  {:<44} {:>8} {:>8} {:>8} {:>8} {:>9}",
        unit, "p50", "p90", "p99", "p99.9", "max"
    );
}

pub(crate) fn run(args: &Args) -> Result<(), Error> {
    let clock = quanta::Clock::new();
    let _ticker = CoarseClock::global().start_ticker(Duration::from_millis(1))?;
    let closed = CircuitBreaker::builder("bench").fail_max(5).build()?;
    let open = CircuitBreaker::builder("bench-open")
        .reset_timeout(Duration::from_secs(3600))
        .max_reset_timeout(Duration::from_secs(3600))
        .build()?;
    open.trip_open();
    let idle = FaultTable::builder().build()?;
    let idle_point = idle.point("db")?;
    let armed = FaultTable::builder().build()?;
    let armed_point = armed.point("db")?;
    armed.arm(
        Scenario::new("cache-down", "cache", FaultSpec::Partition)
            .duration(Duration::from_secs(300)),
    )?;
    let ring = MeterRing::with_capacity(1 << 16)?;
    let event = UsageEvent::new(
        "tenant-1",
        "agent-1",
        Operation::AgentMessage,
        Tier::Standard,
    )?;
    let mut drained = Vec::with_capacity(1 << 16);
    // What the flusher does, outside the timed batches.
    let mut drain = || {
        drained.clear();
        ring.drain_into(&mut drained, 1 << 16);
    };

    println!(
        "hot-path cost on this machine, ns per call ({} per case, batches of {BATCH}):\n",
        humantime::format_duration(args.per_case)
    );
    header("path");
    let d = args.per_case;
    row(
        "breaker CLOSED: try_acquire + success",
        &sample(d, &clock, &mut || {
            black_box(
                black_box(&closed)
                    .try_acquire()
                    .map(|p| p.success())
                    .is_ok(),
            );
        })?,
    );
    row(
        "breaker OPEN: rejection",
        &sample(d, &clock, &mut || {
            black_box(black_box(&open).try_acquire().is_err());
        })?,
    );
    row(
        "chaos check, nothing armed",
        &sample(d, &clock, &mut || {
            black_box(black_box(&idle).check(black_box(idle_point)).is_some());
        })?,
    );
    row(
        "chaos check, armed at another point",
        &sample(d, &clock, &mut || {
            black_box(black_box(&armed).check(black_box(armed_point)).is_some());
        })?,
    );
    let mut n = 0u32;
    row(
        "meter record (192-byte event)",
        &sample_with(
            d,
            &clock,
            &mut || {
                n = n.wrapping_add(1);
                black_box(ring.record(event.tokens(n)).is_ok());
            },
            &mut drain,
        )?,
    );
    // The crash-safe ring `serve` and `demo` use: the same path on a shared file mapping.
    let file = std::env::temp_dir().join(format!("resilience-bench-{}.ring", std::process::id()));
    let file_ring = MeterRing::open(&file, 1 << 16)?;
    let mut file_drained = Vec::with_capacity(1 << 16);
    row(
        "meter record, file-backed ring",
        &sample_with(
            d,
            &clock,
            &mut || {
                n = n.wrapping_add(1);
                black_box(file_ring.record(event.tokens(n)).is_ok());
            },
            &mut || {
                file_drained.clear();
                file_ring.drain_into(&mut file_drained, 1 << 16);
            },
        )?,
    );
    drop(file_ring);
    let _ = std::fs::remove_file(&file);
    let _ = std::fs::remove_file(file.with_extension("ring.lock"));
    let mut drained = Vec::with_capacity(1 << 16);
    row(
        "all three: check + acquire/success + record",
        &sample_with(
            d,
            &clock,
            &mut || {
                n = n.wrapping_add(1);
                if idle.check(idle_point).is_none()
                    && let Ok(permit) = closed.try_acquire()
                {
                    permit.success();
                }
                black_box(ring.record(event.tokens(n)).is_ok());
            },
            &mut || {
                drained.clear();
                ring.drain_into(&mut drained, 1 << 16);
            },
        )?,
    );
    println!(
        "\nno allocation, lock or syscall on any of these paths (resilience-core/tests/no_alloc.rs);"
    );
    println!("peers side by side: cargo bench -p resilience-benches --bench peers");
    Ok(())
}
