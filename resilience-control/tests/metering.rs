//! The metering pipeline against a real `redis-server` started by each test on a free port:
//! order and content, a Redis killed and restarted mid-stream, a process restart replaying its spool,
//! corrupt spool files, a full spool, exactly-once retries, JSONL, and shutdown (hooks: `metering_hooks.rs`).
#![allow(clippy::unwrap_used, clippy::expect_used)] // tests may panic on bad setup

mod support;

use std::collections::BTreeSet;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use resilience_control::ControlPlane;
use resilience_control::metering::{
    Batch, EventRecord, JsonlSink, MeterSink, MeteringConfig, MeteringFlusher, MeteringLedger,
    RedisStreamSink, Spool,
};
use resilience_core::BreakerRegistry;
use resilience_core::meter::{MeterRing, Operation, Tier, UsageEvent};
use support::{RedisServer, TempDir, free_port};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

fn event(i: u32) -> UsageEvent {
    UsageEvent::new(
        &format!("tenant-{}", i % 7),
        "agent-1",
        Operation::AgentMessage,
        Tier::Standard,
    )
    .unwrap()
    .tokens(i)
    .latency(Duration::from_micros(u64::from(i % 1000)))
    .compliance_score(0.9)
    .unwrap()
}

fn config(dir: &TempDir) -> MeteringConfig {
    MeteringConfig::default()
        .spool_dir(&dir.0)
        .flush_interval(Duration::from_millis(20))
        .retry(Duration::from_millis(50), Duration::from_millis(200))
        .instance("test")
}

/// Every entry of `{ns}:meter`, as (tokens, fields).
fn stream(server: &RedisServer, ns: &str) -> Vec<(u32, std::collections::HashMap<String, String>)> {
    server
        .meter_stream(ns)
        .into_iter()
        .map(|fields| (fields["tokens"].parse().unwrap(), fields))
        .collect()
}

fn assert_ledger(l: &MeteringLedger) {
    assert_eq!(
        l.offered,
        l.accepted + l.refused_full + l.refused_closed,
        "{l:?}"
    );
    assert_eq!(
        l.accepted + l.inherited,
        l.flushed + l.duplicates + l.spooled + l.pending + l.quarantined,
        "{l:?}"
    );
    assert!(l.balances());
}

async fn until(what: &str, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while !done() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

fn spawn(flusher: &MeteringFlusher) -> CancellationToken {
    let stop = CancellationToken::new();
    let (f, token) = (flusher.clone(), stop.clone());
    tokio::spawn(async move { f.run(token).await });
    stop
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn events_arrive_intact_and_in_order() {
    let Some(server) = RedisServer::start() else {
        return;
    };
    let ns = server.namespace("intact");
    let dir = TempDir::new("intact");
    let ring = Arc::new(MeterRing::with_capacity(10_000).unwrap());
    let sink = Arc::new(RedisStreamSink::new(&server.url(), &ns).unwrap());
    let flusher = MeteringFlusher::open(ring.clone(), sink, config(&dir))
        .await
        .unwrap();
    let stop = spawn(&flusher);
    for i in 0..1_000 {
        ring.record(event(i)).unwrap();
    }
    until("1000 flushed", || flusher.ledger().flushed == 1_000).await;
    stop.cancel();
    let ledger = flusher.finish(Duration::from_secs(5)).await;
    assert_ledger(&ledger);
    let entries = stream(&server, &ns);
    assert_eq!(
        entries.iter().map(|(t, _)| *t).collect::<Vec<_>>(),
        (0..1_000).collect::<Vec<_>>()
    );
    let (_, fields) = &entries[42];
    assert_eq!(fields["tenant_id"], "tenant-0");
    assert_eq!(fields["agent_id"], "agent-1");
    assert_eq!(fields["operation"], "agent_message");
    assert_eq!(fields["tier"], "standard");
    assert_eq!(fields["latency_us"], "42");
    assert_eq!(fields["compliance_score"], "0.9");
    assert_eq!(fields["constitutional_hash"], "cdd01ef066bc6cf2");
    let now_ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64;
    let at: u64 = fields["timestamp_ms"].parse().unwrap();
    assert!(
        now_ms.abs_diff(at) < 60_000,
        "timestamp {at} vs now {now_ms}"
    );
    assert!(ledger.batches >= 1 && ledger.sink_failures == 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_killed_mid_stream_loses_nothing_and_duplicates_nothing() {
    const EVENTS: u32 = 20_000;
    let data = TempDir::new("killed-data");
    let Some(mut server) = RedisServer::start_durable(&data.0) else {
        return;
    };
    let dir = TempDir::new("killed-spool");
    let ring = Arc::new(MeterRing::with_capacity(4_096).unwrap());
    let sink = Arc::new(RedisStreamSink::new(&server.url(), "killed").unwrap());
    let flusher = MeteringFlusher::open(ring.clone(), sink, config(&dir))
        .await
        .unwrap();
    let stop = spawn(&flusher);

    // A reader checking the ledger identities the whole time.
    let watching = Arc::new(AtomicBool::new(true));
    let checks = Arc::new(AtomicU64::new(0));
    let monitor = {
        let (flusher, watching, checks) = (flusher.clone(), watching.clone(), checks.clone());
        tokio::spawn(async move {
            while watching.load(Ordering::Relaxed) {
                assert_ledger(&flusher.ledger());
                checks.fetch_add(1, Ordering::Relaxed);
                tokio::time::sleep(Duration::from_millis(1)).await;
            }
        })
    };
    // Producers keep recording through the outage.
    let accepted_tokens = {
        let ring = ring.clone();
        tokio::spawn(async move {
            let mut accepted = BTreeSet::new();
            for i in 0..EVENTS {
                if ring.record(event(i)).is_ok() {
                    accepted.insert(i);
                }
                if i % 50 == 0 {
                    tokio::time::sleep(Duration::from_millis(1)).await;
                }
            }
            accepted
        })
    };
    until("some flushed", || flusher.ledger().flushed > 2_000).await;
    server.kill();
    until("spooling during the outage", || {
        flusher.ledger().spooled > 0
    })
    .await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    server.restart();
    let accepted = accepted_tokens.await.unwrap();
    until("everything written", || {
        let l = flusher.ledger();
        l.pending == 0 && l.spooled == 0 && l.accepted == accepted.len() as u64
    })
    .await;
    stop.cancel();
    let ledger = flusher.finish(Duration::from_secs(10)).await;
    watching.store(false, Ordering::Relaxed);
    monitor.await.unwrap();

    assert_ledger(&ledger);
    assert_eq!(ledger.offered, u64::from(EVENTS));
    assert!(ledger.sink_failures > 0, "the outage was seen");
    let written: Vec<u32> = stream(&server, "killed")
        .into_iter()
        .map(|(t, _)| t)
        .collect();
    let unique: BTreeSet<u32> = written.iter().copied().collect();
    assert_eq!(written.len(), unique.len(), "no event written twice");
    assert_eq!(unique, accepted, "every accepted event arrived");
    // A batch Redis applied just before it was killed (reply lost) is replayed from the
    // spool and found already there: counted as a duplicate, not written again.
    assert_eq!(ledger.flushed + ledger.duplicates, accepted.len() as u64);
    assert!(written.windows(2).all(|w| w[0] < w[1]), "and in order");
    assert!(checks.load(Ordering::Relaxed) > 50);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restarted_process_replays_the_spool_it_left() {
    let Some(server) = RedisServer::start() else {
        return;
    };
    let ns = server.namespace("restart");
    let dir = TempDir::new("restart");
    let nobody = format!("redis://127.0.0.1:{}", free_port());
    // First process: Redis unreachable, everything ends up in the spool at shutdown.
    {
        let ring = Arc::new(MeterRing::with_capacity(1_024).unwrap());
        let sink = Arc::new(RedisStreamSink::new(&nobody, &ns).unwrap());
        let flusher = MeteringFlusher::open(ring.clone(), sink, config(&dir))
            .await
            .unwrap();
        for i in 0..500 {
            ring.record(event(i)).unwrap();
        }
        let ledger = flusher.finish(Duration::from_secs(2)).await;
        assert_ledger(&ledger);
        assert_eq!(
            (
                ledger.accepted,
                ledger.spooled,
                ledger.flushed,
                ledger.pending
            ),
            (500, 500, 0, 0)
        );
    }
    assert!(
        std::fs::read_dir(&dir.0).unwrap().count() > 0,
        "spool files on disk"
    );
    // Second process: Redis is reachable.
    let ring = Arc::new(MeterRing::with_capacity(1_024).unwrap());
    let sink = Arc::new(RedisStreamSink::new(&server.url(), &ns).unwrap());
    let flusher = MeteringFlusher::open(ring.clone(), sink, config(&dir))
        .await
        .unwrap();
    assert_eq!(flusher.ledger().inherited, 500);
    let stop = spawn(&flusher);
    ring.record(event(500)).unwrap();
    until("the spool replayed", || flusher.ledger().flushed == 501).await;
    stop.cancel();
    let ledger = flusher.finish(Duration::from_secs(5)).await;
    assert_ledger(&ledger);
    let written: Vec<u32> = stream(&server, &ns).into_iter().map(|(t, _)| t).collect();
    assert_eq!(
        written,
        (0..=500).collect::<Vec<_>>(),
        "old events first, each once"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn corrupt_spool_files_are_reported_and_skipped() {
    let Some(server) = RedisServer::start() else {
        return;
    };
    let ns = server.namespace("corrupt");
    let dir = TempDir::new("corrupt");
    // One good batch, then a file with an unreadable header and one whose body is damaged.
    let good = |i: u32| EventRecord::from_event(&event(i), 0);
    {
        let (spool, _) = Spool::open(&dir.0, 1 << 20).await.unwrap();
        spool
            .push(
                &Batch {
                    id: "old:0:1".into(),
                    records: vec![good(1), good(2), good(3)],
                },
                false,
            )
            .await
            .unwrap();
    }
    std::fs::write(
        dir.0.join("00000000000000000002.jsonl"),
        b"\x00\x01 not json",
    )
    .unwrap();
    let body = format!(
        "{}\n{}\n{{truncated\n",
        r#"{"batch":"old:0:3","events":2}"#,
        serde_json::to_string(&good(100)).unwrap()
    );
    std::fs::write(dir.0.join("00000000000000000003.jsonl"), body).unwrap();
    // A header claiming an absurd count (it once wrapped the counters).
    std::fs::write(
        dir.0.join("00000000000000000004.jsonl"),
        format!(
            "{}\n{}\n",
            r#"{"batch":"old:0:4","events":18446744073709551615}"#,
            serde_json::to_string(&good(200)).unwrap()
        ),
    )
    .unwrap();
    let ring = Arc::new(MeterRing::with_capacity(16).unwrap());
    let sink = Arc::new(RedisStreamSink::new(&server.url(), &ns).unwrap());
    let flusher = MeteringFlusher::open(ring, sink, config(&dir))
        .await
        .unwrap();
    // Every file is read whole at open: only what parses is believed.
    let corrupt = flusher.corrupt_spool_files();
    assert_eq!(corrupt.len(), 3, "{corrupt:?}");
    assert_eq!(corrupt[0].events, None, "an unreadable header says nothing");
    assert_eq!(
        corrupt[1].events,
        Some(2),
        "a readable header, a damaged body"
    );
    assert!(
        corrupt[1].reason.contains("line 3"),
        "{}",
        corrupt[1].reason
    );
    assert_eq!(corrupt[2].events, None, "a lying header is not believed");
    assert!(corrupt.iter().all(|c| c.bytes > 0));
    let ledger = flusher.ledger();
    assert_eq!(ledger.inherited, 3, "only the good batch");
    assert_eq!(ledger.corrupt_files, 3);
    assert_eq!(
        ledger.corrupt_bytes,
        corrupt.iter().map(|c| c.bytes).sum::<u64>()
    );
    let stop = spawn(&flusher);
    until("the good batch replayed", || flusher.ledger().flushed == 3).await;
    stop.cancel();
    let ledger = flusher.finish(Duration::from_secs(5)).await;
    assert_ledger(&ledger);
    assert_eq!((ledger.quarantined, ledger.spooled), (0, 0));
    assert_eq!(
        std::fs::read_dir(dir.0.join("corrupt")).unwrap().count(),
        3,
        "kept for inspection"
    );
    let written: Vec<u32> = stream(&server, &ns).into_iter().map(|(t, _)| t).collect();
    assert_eq!(written, [1, 2, 3]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_spool_holds_back_and_the_ring_refuses_counted_never_silent() {
    let port = free_port();
    let dir = TempDir::new("full");
    let ring = Arc::new(MeterRing::with_capacity(64).unwrap());
    let sink =
        Arc::new(RedisStreamSink::new(&format!("redis://127.0.0.1:{port}"), "full").unwrap());
    let flusher = MeteringFlusher::open(
        ring.clone(),
        sink,
        config(&dir).spool_max_bytes(4_096).batch_size(20),
    )
    .await
    .unwrap();
    let stop = spawn(&flusher);
    let mut refused = 0;
    for i in 0..1_000 {
        if ring.record(event(i)).is_err() {
            refused += 1;
        }
        if i % 10 == 0 {
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
    }
    let l = flusher.ledger();
    assert_ledger(&l);
    assert!(
        refused > 0 && l.refused_full == refused,
        "refusals are counted: {l:?}"
    );
    assert!(
        l.flushed == 0 && l.spooled < 20,
        "the spool stays within its bound: {l:?}"
    );
    let accepted = l.accepted;
    // Redis arrives: everything accepted gets written.
    let server = RedisServer::start_on(port);
    until("everything accepted written", || {
        flusher.ledger().flushed == accepted
    })
    .await;
    stop.cancel();
    let ledger = flusher.finish(Duration::from_secs(5)).await;
    assert_ledger(&ledger);
    assert_eq!(stream(&server, "full").len() as u64, accepted);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_redelivered_event_is_written_once_per_id() {
    use resilience_core::meter::EventId;
    let Some(server) = RedisServer::start() else {
        return;
    };
    let ns = server.namespace("once");
    let sink = RedisStreamSink::new(&server.url(), &ns).unwrap();
    let records = |epoch: u64, seqs: std::ops::Range<u64>| Batch {
        id: format!("i:{epoch}:{seqs:?}"),
        records: seqs
            .map(|seq| EventRecord {
                event_id: Some(EventId { epoch, seq }),
                ..EventRecord::from_event(&event(seq as u32), 0)
            })
            .collect(),
    };
    sink.write(&records(7, 0..5)).await.unwrap();
    sink.write(&records(7, 0..5)).await.unwrap(); // as after a lost reply
    assert_eq!(stream(&server, &ns).len(), 5);
    assert_eq!(sink.duplicates_skipped(), 5);
    // Rebuilt differently (as after a crash): only the new part lands.
    sink.write(&records(7, 3..8)).await.unwrap();
    assert_eq!(stream(&server, &ns).len(), 8);
    assert_eq!(sink.duplicates_skipped(), 7);
    // Another epoch (another ring) has sequences of its own.
    sink.write(&records(8, 0..2)).await.unwrap();
    assert_eq!(stream(&server, &ns).len(), 10);
    let ids: Vec<String> = stream(&server, &ns)
        .into_iter()
        .map(|(_, fields)| fields["event_id"].clone())
        .collect();
    assert_eq!(ids[0], "0000000000000007-0");
    assert_eq!(ids[9], "0000000000000008-1");
    // Records without ids (spool files from before ids existed) are written as they come.
    let legacy = Batch {
        id: "legacy".into(),
        records: vec![EventRecord::from_event(&event(1), 0)],
    };
    sink.write(&legacy).await.unwrap();
    sink.write(&legacy).await.unwrap();
    assert_eq!(stream(&server, &ns).len(), 12);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_writes_out_everything_pending() {
    let Some(server) = RedisServer::start() else {
        return;
    };
    let ns = server.namespace("shutdown");
    let dir = TempDir::new("shutdown");
    let registry = Arc::new(BreakerRegistry::new());
    let ring = Arc::new(MeterRing::with_capacity(1_024).unwrap());
    let sink = Arc::new(RedisStreamSink::new(&server.url(), &ns).unwrap());
    // Nothing would flush on its own for an hour.
    let patient = config(&dir)
        .flush_interval(Duration::from_secs(3600))
        .batch_size(10_000)
        .max_batch(10_000);
    let flusher = MeteringFlusher::open(ring.clone(), sink, patient)
        .await
        .unwrap();
    let control = ControlPlane::builder()
        .registry(registry)
        .metering(flusher.clone())
        .without_clock_ticker()
        .spawn()
        .unwrap();
    for i in 0..250 {
        ring.record(event(i)).unwrap();
    }
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert_eq!(flusher.ledger().flushed, 0);
    control.shutdown().await.unwrap();
    assert_eq!(stream(&server, &ns).len(), 250);
    let ledger = flusher.ledger();
    assert_eq!((ledger.flushed, ledger.pending), (250, 0));
    assert!(
        ring.record(event(0)).is_err(),
        "the ring is closed after shutdown"
    );
    assert_eq!(flusher.ledger().refused_closed, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_jsonl_sink_is_the_embedded_default() {
    let dir = TempDir::new("jsonl");
    let path = dir.0.join("out/metering.jsonl");
    let ring = Arc::new(MeterRing::with_capacity(256).unwrap());
    let flusher =
        MeteringFlusher::open(ring.clone(), Arc::new(JsonlSink::new(&path)), config(&dir))
            .await
            .unwrap();
    for i in 0..120 {
        ring.record(event(i)).unwrap();
    }
    flusher.finish(Duration::from_secs(5)).await;
    let lines: Vec<EventRecord> = std::fs::read_to_string(&path)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(
        lines.iter().map(|r| r.tokens).collect::<Vec<_>>(),
        (0..120).collect::<Vec<_>>()
    );
    assert_eq!(lines[0].constitutional_hash, "cdd01ef066bc6cf2");
}

#[tokio::test]
async fn bad_settings_are_typed_errors() {
    let dir = TempDir::new("settings");
    let ring = Arc::new(MeterRing::with_capacity(16).unwrap());
    let sink = Arc::new(JsonlSink::new(dir.0.join("x.jsonl")));
    for (config, field) in [
        (config(&dir).batch_size(0), "batch_size"),
        (config(&dir).max_batch(1).batch_size(10), "max_batch"),
        (config(&dir).spool_max_bytes(10), "spool_max_bytes"),
        (config(&dir).instance("has space"), "instance"),
        (
            config(&dir).flush_interval(Duration::ZERO),
            "flush_interval",
        ),
    ] {
        match MeteringFlusher::open(ring.clone(), sink.clone(), config).await {
            Err(resilience_control::metering::MeteringError::Config(e)) => {
                assert_eq!(e.field(), Some(field))
            }
            other => panic!("{field}: expected a config error, got {:?}", other.err()),
        }
    }
    let foreign = config(&dir).governance(resilience_core::GovernanceHash::from_u64(1));
    assert!(matches!(
        MeteringFlusher::open(ring, sink, foreign).await,
        Err(resilience_control::metering::MeteringError::Governance(_))
    ));
}

/// A sink that panics (both ways: making the future, and inside it) for its first writes,
/// then delivers to a JSONL file.
struct Panicky {
    calls: AtomicU64,
    inner: JsonlSink,
}

impl MeterSink for Panicky {
    fn name(&self) -> &'static str {
        "panicky"
    }

    fn write<'a>(
        &'a self,
        batch: &'a Batch,
    ) -> resilience_control::health::BoxFuture<
        'a,
        Result<(), resilience_control::metering::SinkError>,
    > {
        match self.calls.fetch_add(1, Ordering::SeqCst) {
            0 => panic!("sink bug while making the future"),
            1 => Box::pin(async { panic!("sink bug while polled") }),
            _ => self.inner.write(batch),
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_panicking_sink_fails_its_writes_alone_and_nothing_else_stops() {
    let dir = TempDir::new("panicky");
    let ring = Arc::new(MeterRing::with_capacity(1_024).unwrap());
    let sink = Arc::new(Panicky {
        calls: AtomicU64::new(0),
        inner: JsonlSink::new(dir.0.join("usage.jsonl")),
    });
    let flusher = MeteringFlusher::open(ring.clone(), sink, config(&dir))
        .await
        .unwrap();
    let control = ControlPlane::builder()
        .registry(Arc::new(BreakerRegistry::new()))
        .health(
            resilience_control::health::HealthConfig::default().interval(Duration::from_millis(20)),
        )
        .metering(flusher.clone())
        .spawn()
        .unwrap();
    for i in 0..300 {
        ring.record(event(i)).unwrap();
        tokio::time::sleep(Duration::from_micros(500)).await;
    }
    until("everything written after the panics", || {
        flusher.ledger().flushed == 300
    })
    .await;
    let samples = control.health().stats().samples;
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert!(control.is_running(), "the control plane kept running");
    assert!(
        control.health().stats().samples > samples,
        "health kept sampling"
    );
    let ledger = flusher.ledger();
    assert_eq!(ledger.sink_panics, 2, "{ledger:?}");
    assert!(ledger.sink_failures >= 2);
    control.shutdown().await.unwrap();
    let ledger = flusher.ledger();
    assert_ledger(&ledger);
    let lines = std::fs::read_to_string(dir.0.join("usage.jsonl"))
        .unwrap()
        .lines()
        .count();
    assert_eq!(lines, 300, "each event once");
}

#[tokio::test]
async fn a_spool_file_that_cannot_be_read_now_is_retried_not_quarantined() {
    use resilience_control::metering::{SpoolFile, SpoolReadError};
    let dir = TempDir::new("spool-unreadable");
    let (spool, _) = Spool::open(&dir.0, 1 << 20).await.unwrap();
    // Reading a directory fails the way running out of descriptors does: an I/O error.
    let unreadable = SpoolFile {
        path: dir.0.clone(),
        events: 3,
        bytes: 300,
    };
    match spool.read(&unreadable).await {
        Err(SpoolReadError::Io { .. }) => {}
        other => panic!("expected a retryable I/O error, got {other:?}"),
    }
    // Damaged bytes are corruption.
    std::fs::write(dir.0.join("bad"), [0xff, 0xfe, b'\n']).unwrap();
    let damaged = SpoolFile {
        path: dir.0.join("bad"),
        events: 1,
        bytes: 3,
    };
    assert!(matches!(
        spool.read(&damaged).await,
        Err(SpoolReadError::Corrupt(_))
    ));
}
