//! How fast the fleet acts as one, against a real Redis: `N` members (tasks, each with its own
//! registry and chaos engine) publishing every second, and three measurements repeated:
//!
//! * emergency stop: `Fleet::emergency_stop` → every member's engine stopped;
//! * quorum: the quorum-making breaker trips → every other member has adopted OPEN;
//! * health: a member publishes → another's `fleet_health()` reads it (one round trip each).
//!
//! `cargo run --release -p resilience-benches --bin fleet_latency [-- <members> <rounds>]`
//!
//! Defaults: 8 members, 20 rounds, `REDIS_URL` or `redis://127.0.0.1:6379`, a namespace of its
//! own (its keys are left to expire; the instance index is deleted after).

use std::sync::Arc;
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;
use resilience_control::chaos::{ChaosConfig, ChaosEngine};
use resilience_control::fleet::{Fleet, FleetConfig, FleetMember};
use resilience_core::{BreakerRegistry, FaultTable, State};
use tokio_util::sync::CancellationToken;

fn arg(n: usize, default: u64) -> u64 {
    std::env::args().nth(n).map_or(default, |a| {
        a.parse()
            .unwrap_or_else(|_| panic!("argument {n}: {a:?} is not a number"))
    })
}

struct Member {
    registry: Arc<BreakerRegistry>,
    engine: ChaosEngine,
}

fn config(url: &str, ns: &str, name: &str) -> FleetConfig {
    FleetConfig::new(name)
        .namespace(ns.to_owned())
        .redis_url(url.to_owned())
        .publish_every(Duration::from_secs(1))
        .report_ttl(Duration::from_secs(5))
}

async fn connect(url: &str, ns: &str, name: &str) -> Fleet {
    Fleet::connect(config(url, ns, name))
        .await
        .unwrap_or_else(|e| panic!("cannot reach Redis at {url}: {e}"))
}

/// Waits until `done`, polling every 100 µs; the time it took.
async fn until(started: Instant, mut done: impl FnMut() -> bool) -> Duration {
    let deadline = started + Duration::from_secs(10);
    while !done() {
        assert!(Instant::now() < deadline, "no propagation within 10 s");
        tokio::time::sleep(Duration::from_micros(100)).await;
    }
    started.elapsed()
}

fn report(name: &str, hist: &Histogram<u64>) {
    let ms = |q: f64| hist.value_at_quantile(q) as f64 / 1000.0;
    println!(
        "{name:<44} {:>8.2} {:>8.2} {:>8.2} {:>8.2}",
        ms(0.5),
        ms(0.9),
        ms(0.99),
        hist.max() as f64 / 1000.0
    );
}

#[tokio::main]
async fn main() {
    let members = arg(1, 8) as usize;
    let rounds = arg(2, 20);
    let url = std::env::var("REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".into());
    let ns = format!("fleet-latency-{}", std::process::id());
    let cancel = CancellationToken::new();
    let mut fleet = Vec::new();
    for i in 0..members {
        let registry = Arc::new(BreakerRegistry::new());
        let _ = registry.breaker("db");
        let engine = ChaosEngine::builder(Arc::new(
            FaultTable::builder()
                .build()
                .unwrap_or_else(|e| panic!("fault table: {e}")),
        ))
        .breakers(registry.clone())
        .config(ChaosConfig::default().enabled(true))
        .build()
        .unwrap_or_else(|e| panic!("chaos engine: {e}"));
        let member = FleetMember::new(connect(&url, &ns, &format!("m{i}")).await, registry.clone())
            .chaos(engine.clone());
        tokio::spawn(member.run(cancel.clone()));
        fleet.push(Member { registry, engine });
    }
    let operator = connect(&url, &ns, "operator").await;
    while operator.fleet_health().await.map_or(0, |h| h.live()) < members {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    println!(
        "fleet of {members} members (tasks on one runtime), publish every 1 s, {rounds} rounds, {url}\n"
    );
    println!(
        "{:<44} {:>8} {:>8} {:>8} {:>8}",
        "ms until every member has it", "p50", "p90", "p99", "max"
    );

    let mut stop = Histogram::<u64>::new(3).unwrap_or_else(|e| panic!("{e}"));
    let mut quorum = Histogram::<u64>::new(3).unwrap_or_else(|e| panic!("{e}"));
    let mut health = Histogram::<u64>::new(3).unwrap_or_else(|e| panic!("{e}"));
    let quorum_size = members / 2 + 1;
    for _ in 0..rounds {
        let started = Instant::now();
        operator
            .emergency_stop("fleet_latency")
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        let took = until(started, || fleet.iter().all(|m| m.engine.is_stopped())).await;
        stop.record(took.as_micros() as u64).ok();
        operator.resume().await.unwrap_or_else(|e| panic!("{e}"));
        until(Instant::now(), || {
            fleet.iter().all(|m| !m.engine.is_stopped())
        })
        .await;

        let started = Instant::now();
        for member in &fleet[..quorum_size] {
            if let Some(b) = member.registry.get("db") {
                b.trip_open();
            }
        }
        let took = until(started, || {
            fleet[quorum_size..].iter().all(|m| {
                m.registry
                    .get("db")
                    .is_some_and(|b| b.state() == State::ForcedOpen)
            })
        })
        .await;
        quorum.record(took.as_micros() as u64).ok();
        for member in &fleet[..quorum_size] {
            if let Some(b) = member.registry.get("db") {
                b.reset();
            }
        }
        until(Instant::now(), || {
            fleet.iter().all(|m| {
                m.registry
                    .get("db")
                    .is_some_and(|b| b.state() == State::Closed)
            })
        })
        .await;

        let started = Instant::now();
        let reader = connect(&url, &ns, "reader").await;
        let _ = reader.fleet_health().await;
        health.record(started.elapsed().as_micros() as u64).ok();
    }
    report("emergency stop → all members stopped", &stop);
    report(
        &format!("{quorum_size} of {members} open → the rest adopt OPEN"),
        &quorum,
    );
    report("connect + fleet_health() (one reader)", &health);
    cancel.cancel();
    if let Ok(client) = redis::Client::open(url.as_str())
        && let Ok(mut conn) = client.get_multiplexed_async_connection().await
    {
        let _: Result<(), _> = redis::cmd("DEL")
            .arg(format!("{{{ns}}}:instances"))
            .arg(format!("{{{ns}}}:chaos"))
            .arg(format!("{{{ns}}}:governance"))
            .query_async(&mut conn)
            .await;
    }
}
