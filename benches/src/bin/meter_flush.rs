//! Sustained metering throughput into a real Redis: one producer thread records usage events
//! at a target rate, the flusher drains them into `{ns}:meter`, and the run reports what
//! arrived per second end to end (recorded → acknowledged by Redis) and any refusals.
//!
//! `cargo run --release -p resilience-benches --bin meter_flush [-- <events/s> <seconds>]`
//!
//! Defaults: 200000 events/s for 10 s, `REDIS_URL` or `redis://127.0.0.1:6379`. A rate of 0
//! records flat out, which finds the ceiling. The stream and batch markers are deleted after.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use resilience_control::metering::{MeteringConfig, MeteringFlusher, RedisStreamSink};
use resilience_core::meter::{MeterRing, Operation, Tier, UsageEvent};
use tokio_util::sync::CancellationToken;

fn arg(n: usize, default: u64) -> u64 {
    std::env::args().nth(n).map_or(default, |a| {
        a.parse()
            .unwrap_or_else(|_| panic!("argument {n}: {a:?} is not a number"))
    })
}

/// Records `rate` events/s (0: flat out) until `stop`; returns (offered, refused).
fn produce(ring: &MeterRing, rate: u64, stop: &AtomicBool) -> (u64, u64) {
    let event = UsageEvent::new(
        "tenant-1",
        "agent-1",
        Operation::AgentMessage,
        Tier::Standard,
    )
    .unwrap_or_else(|e| panic!("event: {e}"))
    .tokens(42)
    .latency(Duration::from_micros(120));
    let (mut offered, mut refused) = (0u64, 0u64);
    let start = Instant::now();
    while !stop.load(Ordering::Relaxed) {
        // Pace in 1 ms slices: the schedule says how many events should exist by now.
        let due = if rate == 0 {
            offered + 1_000
        } else {
            (start.elapsed().as_micros() as u64 * rate / 1_000_000).max(offered)
        };
        while offered < due {
            offered += 1;
            if ring.record(event.tokens(offered as u32)).is_err() {
                refused += 1;
            }
        }
        if rate != 0 {
            std::thread::sleep(Duration::from_micros(500));
        }
    }
    (offered, refused)
}

fn main() {
    let rate = arg(1, 200_000);
    let seconds = arg(2, 10);
    let url = std::env::var("REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".to_owned());
    let ns = format!("bench-{}", std::process::id());
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap_or_else(|e| panic!("runtime: {e}"));
    runtime.block_on(async {
        let spool = std::env::temp_dir().join(format!("resilience-bench-spool-{}", std::process::id()));
        let ring = Arc::new(MeterRing::with_capacity(1 << 17).unwrap_or_else(|e| panic!("{e}")));
        let sink = Arc::new(RedisStreamSink::new(&url, &ns).unwrap_or_else(|e| panic!("{url}: {e}")));
        let key = sink.stream_key().to_owned();
        let flusher = MeteringFlusher::open(
            ring.clone(),
            sink,
            MeteringConfig::default().spool_dir(&spool).instance("bench"),
        )
        .await
        .unwrap_or_else(|e| panic!("flusher: {e}"));
        let cancel = CancellationToken::new();
        let runner = tokio::spawn({
            let flusher = flusher.clone();
            let cancel = cancel.clone();
            async move { flusher.run(cancel).await }
        });

        let stop = Arc::new(AtomicBool::new(false));
        let started = Instant::now();
        let producer = std::thread::spawn({
            let ring = ring.clone();
            let stop = stop.clone();
            move || produce(&ring, rate, &stop)
        });
        tokio::time::sleep(Duration::from_secs(seconds)).await;
        stop.store(true, Ordering::Relaxed);
        let (offered, refused) = producer.join().unwrap_or_else(|_| panic!("producer panicked"));
        let produced_for = started.elapsed();
        // Drain: wait until everything accepted is acknowledged by Redis.
        let accepted = offered - refused;
        while flusher.ledger().flushed < accepted && started.elapsed() < produced_for * 3 {
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        let elapsed = started.elapsed();
        cancel.cancel();
        let _ = runner.await;
        let ledger = flusher.finish(Duration::from_secs(5)).await;

        let client = redis::Client::open(url.as_str()).unwrap_or_else(|e| panic!("{e}"));
        let mut conn = client.get_connection().unwrap_or_else(|e| panic!("{e}"));
        let xlen = entries_added(&mut conn, &key);
        let markers: Vec<String> = redis::cmd("KEYS")
            .arg(format!("{{{ns}}}*"))
            .query(&mut conn)
            .unwrap_or_default();
        let _: redis::RedisResult<()> = redis::cmd("DEL").arg(markers).query(&mut conn);
        let _ = std::fs::remove_dir_all(&spool);

        let secs = elapsed.as_secs_f64();
        println!(
            "target {} events/s for {seconds} s into {url}",
            if rate == 0 { "unpaced".to_owned() } else { rate.to_string() }
        );
        println!(
            "offered {offered}  refused {refused}  flushed {}  in Redis {xlen}  batches {}  sink failures {}",
            ledger.flushed, ledger.batches, ledger.sink_failures
        );
        println!(
            "recorded {:.0} events/s; delivered {:.0} events/s end to end ({:.2} s including drain)",
            offered as f64 / produced_for.as_secs_f64(),
            ledger.flushed as f64 / secs,
            secs
        );
        assert_eq!(xlen, ledger.flushed, "every flushed event is in the stream, once");
    });
}

/// Entries ever added to the stream (`XINFO STREAM`'s `entries-added`, Redis 7): the stream
/// itself is trimmed to about a million entries.
fn entries_added(conn: &mut redis::Connection, key: &str) -> u64 {
    let info: std::collections::HashMap<String, redis::Value> = redis::cmd("XINFO")
        .arg("STREAM")
        .arg(key)
        .query(conn)
        .unwrap_or_else(|e| panic!("XINFO STREAM {key}: {e}"));
    info.get("entries-added")
        .and_then(|v| redis::from_redis_value_ref::<u64>(v).ok())
        .unwrap_or_else(|| panic!("XINFO STREAM {key} has no entries-added (Redis 7 or later)"))
}
