//! Recording usage events: our `MeterRing`, in memory and backed by a file (the crash-safe
//! default of `serve` and `demo`), beside crossbeam's `ArrayQueue` holding the same 192-byte
//! events, single producer and two producers.
//!
//! `cargo bench -p resilience-benches --bench meter` (the ring file goes in the system temp
//! directory; set `TMPDIR` to measure another disk).

use std::hint::black_box;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use crossbeam_queue::ArrayQueue;
use resilience_benches as setup;
use resilience_core::meter::{MeterRing, Operation, Tier, UsageEvent};

const CAPACITY: usize = 1 << 16;

thread_local! {
    /// The consumer's drain buffer.
    static SINK: std::cell::RefCell<Vec<UsageEvent>> =
        std::cell::RefCell::new(Vec::with_capacity(1024));
}
const CHUNK: u64 = 4096;

fn event() -> UsageEvent {
    UsageEvent::new(
        "tenant-42",
        "agent-7",
        Operation::AgentMessage,
        Tier::Standard,
    )
    .unwrap_or_else(|e| panic!("{e}"))
    .tokens(256)
}

/// Times `iters` pushes in chunks, emptying the queue between chunks off the clock.
fn timed_chunks(iters: u64, mut push: impl FnMut(), mut empty: impl FnMut()) -> Duration {
    let mut total = Duration::ZERO;
    let mut left = iters;
    while left > 0 {
        let n = left.min(CHUNK);
        let start = Instant::now();
        for _ in 0..n {
            push();
        }
        total += start.elapsed();
        empty();
        left -= n;
    }
    total
}

/// A ring file for this run, removed (with its lock) when dropped.
struct RingFile(std::path::PathBuf);

impl RingFile {
    fn new(name: &str) -> RingFile {
        let path = std::env::temp_dir().join(format!("bench-{name}-{}.ring", std::process::id()));
        let _ = std::fs::remove_file(&path);
        RingFile(path)
    }
}

impl Drop for RingFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
        let _ = std::fs::remove_file(self.0.with_extension("ring.lock"));
    }
}

fn single(c: &mut Criterion) {
    let _ticker = setup::ticker();
    let mut g = c.benchmark_group("meter record, one producer");
    g.throughput(Throughput::Elements(1));
    let e = event();
    let file = RingFile::new("single");
    let rings = [
        (
            "resilience MeterRing::record",
            MeterRing::with_capacity(CAPACITY).unwrap_or_else(|e| panic!("{e}")),
        ),
        (
            "resilience MeterRing::record, file-backed",
            MeterRing::open(&file.0, CAPACITY).unwrap_or_else(|e| panic!("{e}")),
        ),
    ];
    let mut sink = Vec::with_capacity(CAPACITY);
    for (name, ring) in &rings {
        g.bench_function(*name, |b| {
            b.iter_custom(|iters| {
                timed_chunks(
                    iters,
                    || {
                        let _ = black_box(ring).record(black_box(e));
                    },
                    || {
                        sink.clear();
                        ring.drain_into(&mut sink, usize::MAX);
                    },
                )
            })
        });
    }
    let queue = ArrayQueue::new(CAPACITY);
    g.bench_function("crossbeam ArrayQueue::push", |b| {
        b.iter_custom(|iters| {
            timed_chunks(
                iters,
                || {
                    let _ = black_box(&queue).push(black_box(e));
                },
                || while queue.pop().is_some() {},
            )
        })
    });
    g.finish();
}

/// Wall time per event while two producers record and a consumer drains continuously.
fn two_producers_with(
    iters: u64,
    push: &(dyn Fn() -> bool + Sync),
    drain: &(dyn Fn() + Sync),
) -> Duration {
    let stop = AtomicBool::new(false);
    std::thread::scope(|s| {
        s.spawn(|| {
            while !stop.load(Ordering::Relaxed) {
                drain()
            }
        });
        let started = Instant::now();
        let other = s.spawn(|| {
            for _ in 0..iters {
                while !push() {}
            }
        });
        for _ in 0..iters {
            while !push() {}
        }
        other.join().unwrap_or_else(|_| panic!("producer panicked"));
        let elapsed = started.elapsed();
        stop.store(true, Ordering::Relaxed);
        elapsed
    })
}

fn contended(c: &mut Criterion) {
    let _ticker = setup::ticker();
    let mut g = c.benchmark_group("meter record, two producers and a consumer (wall per event)");
    g.throughput(Throughput::Elements(1));
    let e = event();
    let file = RingFile::new("contended");
    let rings = [
        (
            "resilience MeterRing::record",
            MeterRing::with_capacity(CAPACITY).unwrap_or_else(|e| panic!("{e}")),
        ),
        (
            "resilience MeterRing::record, file-backed",
            MeterRing::open(&file.0, CAPACITY).unwrap_or_else(|e| panic!("{e}")),
        ),
    ];
    for (name, ring) in &rings {
        g.bench_function(*name, |b| {
            b.iter_custom(|iters| {
                two_producers_with(iters, &|| ring.record(black_box(e)).is_ok(), &|| {
                    // One buffer reused, as the flusher does: a fresh 128 KiB Vec per drain
                    // would time the allocator (an mmap at that size), not the ring.
                    SINK.with(|sink| {
                        let mut sink = sink.borrow_mut();
                        sink.clear();
                        ring.drain_into(&mut sink, 1024);
                    })
                })
            })
        });
    }
    let queue = ArrayQueue::new(CAPACITY);
    g.bench_function("crossbeam ArrayQueue::push", |b| {
        b.iter_custom(|iters| {
            two_producers_with(iters, &|| queue.push(black_box(e)).is_ok(), &|| {
                for _ in 0..1024 {
                    if queue.pop().is_none() {
                        break;
                    }
                }
            })
        })
    });
    g.finish();
}

criterion_group! {
    name = meter;
    config = Criterion::default().warm_up_time(Duration::from_secs(1)).measurement_time(Duration::from_secs(3));
    targets = single, contended
}
criterion_main!(meter);
