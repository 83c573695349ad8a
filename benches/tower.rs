//! The tower layers beside tower-resilience's circuit breaker, same inner service, same run.
//!
//! One iteration is what a server does per request: `poll_ready`, `call`, then poll the
//! response future (the inner service answers at once, so the figures are the layers' own
//! cost). Futures are polled with a no-op waker inside a tokio runtime context, since
//! tower-resilience needs one. Run: `cargo bench -p resilience-benches --bench tower`
#![allow(clippy::unwrap_used)] // bench set-up may panic

use std::hint::black_box;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use resilience_benches as setup;
use resilience_benches::request;
use resilience_core::meter::MeterRing;
use resilience_core::tower::{ChaosLayer, CircuitBreakerLayer, MeteringLayer};
use resilience_core::{CircuitBreaker, FaultTable};
use tower::{Layer, Service, ServiceBuilder, service_fn};
use tower_resilience_circuitbreaker::CircuitBreakerLayer as PeerLayer;

type Echo = tower::util::ServiceFn<fn(u32) -> std::future::Ready<Result<u32, Failed>>>;

#[derive(Debug)]
struct Failed;

fn echo() -> Echo {
    service_fn(|n: u32| std::future::ready(Ok(n)))
}

/// Succeeds until `failing` is set.
fn switchable(
    failing: Arc<AtomicBool>,
) -> impl Service<u32, Response = u32, Error = Failed, Future = std::future::Ready<Result<u32, Failed>>>
+ Clone
+ Send
+ 'static {
    service_fn(move |n: u32| {
        std::future::ready(if failing.load(Ordering::Relaxed) {
            Err(Failed)
        } else {
            Ok(n)
        })
    })
}

/// A breaker for the process's lifetime, as a `static` would be.
fn leaked() -> &'static CircuitBreaker {
    Box::leak(Box::new(setup::ours()))
}

fn ours() -> Arc<CircuitBreaker> {
    Arc::new(setup::ours())
}

fn peer_layer() -> PeerLayer {
    PeerLayer::builder()
        .consecutive_failures(5)
        .wait_duration_in_open(setup::OPEN_FOR)
        .build()
        .unwrap_or_else(|e| panic!("tower-resilience config: {e}"))
}

fn closed(c: &mut Criterion) {
    let _ticker = setup::ticker();
    let runtime = setup::runtime();
    let _context = runtime.enter();
    let mut g = c.benchmark_group("tower layer, closed (ready + call + response)");
    g.throughput(Throughput::Elements(1));

    let mut bare = echo();
    g.bench_function("inner service alone", |b| b.iter(|| request(&mut bare)));
    let mut guarded = CircuitBreakerLayer::new(ours()).layer(echo());
    g.bench_function("resilience CircuitBreakerLayer (Arc)", |b| {
        b.iter(|| request(&mut guarded))
    });
    let mut guarded = CircuitBreakerLayer::new(leaked()).layer(echo());
    g.bench_function("resilience CircuitBreakerLayer (&'static)", |b| {
        b.iter(|| request(&mut guarded))
    });
    let mut peer = peer_layer().layer(echo());
    g.bench_function("tower-resilience CircuitBreakerLayer", |b| {
        b.iter(|| request(&mut peer))
    });

    let table = Arc::new(FaultTable::builder().build().unwrap());
    let point = table.point("bench").unwrap();
    let ring = Arc::new(MeterRing::with_capacity(1 << 16).unwrap());
    let mut drained = Vec::with_capacity(1 << 16);
    let mut stack = ServiceBuilder::new()
        .layer(MeteringLayer::new(
            ring.clone(),
            |_: &u32| Some("tenant-1"),
            |_: &u32| Some("agent-1"),
        ))
        .layer(CircuitBreakerLayer::new(ours()))
        .layer(ChaosLayer::new(table, point, tokio::time::sleep))
        .service(echo());
    g.bench_function("resilience metering + breaker + chaos", |b| {
        b.iter(|| {
            if ring.pending() > 1 << 15 {
                drained.clear();
                ring.drain_into(&mut drained, 1 << 16);
            }
            request(&mut stack)
        })
    });
    g.finish();
}

fn open(c: &mut Criterion) {
    let _ticker = setup::ticker();
    let runtime = setup::runtime();
    let _context = runtime.enter();
    let mut g = c.benchmark_group("tower layer, open (rejection)");
    g.throughput(Throughput::Elements(1));

    let mut guarded = CircuitBreakerLayer::new(Arc::new(setup::ours_open())).layer(echo());
    assert!(!request(&mut guarded));
    g.bench_function("resilience CircuitBreakerLayer (Arc)", |b| {
        b.iter(|| request(&mut guarded))
    });
    let open: &'static CircuitBreaker = Box::leak(Box::new(setup::ours_open()));
    let mut guarded = CircuitBreakerLayer::new(open).layer(echo());
    g.bench_function("resilience CircuitBreakerLayer (&'static)", |b| {
        b.iter(|| request(&mut guarded))
    });

    let failing = Arc::new(AtomicBool::new(true));
    let mut peer = peer_layer().layer(switchable(failing.clone()));
    for _ in 0..10 {
        request(&mut peer);
    }
    failing.store(false, Ordering::Relaxed);
    assert!(!request(&mut peer), "tower-resilience should be open");
    g.bench_function("tower-resilience CircuitBreakerLayer", |b| {
        b.iter(|| request(&mut peer))
    });
    g.finish();
}

fn contended(c: &mut Criterion) {
    let _ticker = setup::ticker();
    let mut g = c.benchmark_group("tower layer, two threads, one breaker (wall per request)");
    g.throughput(Throughput::Elements(1));
    let guarded = CircuitBreakerLayer::new(ours()).layer(echo());
    g.bench_function("resilience CircuitBreakerLayer (Arc)", |b| {
        b.iter_custom(|iters| {
            setup::two_threads_each(iters, || guarded.clone(), &|s| {
                black_box(request(s));
            })
        })
    });
    let guarded = CircuitBreakerLayer::new(leaked()).layer(echo());
    g.bench_function("resilience CircuitBreakerLayer (&'static)", |b| {
        b.iter_custom(|iters| {
            setup::two_threads_each(iters, || guarded.clone(), &|s| {
                black_box(request(s));
            })
        })
    });
    let peer = peer_layer().layer(echo());
    g.bench_function("tower-resilience CircuitBreakerLayer", |b| {
        b.iter_custom(|iters| {
            setup::two_threads_each(iters, || peer.clone(), &|s| {
                black_box(request(s));
            })
        })
    });
    g.finish();
}

criterion_group! {
    name = tower;
    config = Criterion::default()
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3));
    targets = closed, open, contended
}
criterion_main!(tower);
