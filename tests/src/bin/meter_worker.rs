//! A metering worker for the fault suite (`tests/metering_faults.rs`): it records numbered
//! usage events into a file-backed ring at a steady rate and flushes them to Redis (or a JSONL
//! file), exactly as a service wires the library, so the suite can kill it at the worst moments.
//!
//! Arguments are `key=value`:
//!
//! * `ring=PATH spool=DIR` (required), `redis=URL` or `jsonl=PATH`, `namespace=NS`
//! * `run=N`: tokens are `N * 10_000_000 + i` for the i-th accepted event of this run
//! * `rate=EVENTS_PER_SECOND` (default 20000), `capacity=EVENTS` (default 65536)
//! * `progress=PATH`: after each accepted event, its count is written there (8 bytes, little
//!   endian); a write lands in the page cache at once, so it survives `kill -9`
//! * `crash_after_writes=K`: after the K-th successful sink write, and before the flusher can
//!   release the batch's ring slots, the worker sends itself SIGKILL
//! * `spool_max=BYTES`
//! * `http=ADDR`: also serve the control plane's HTTP endpoints there (bounded by
//!   `max_connections=N` and `header_read_ms=N`), an attack surface for the fault suite
//!
//! It prints `ready pid=.. recovered=.. inherited=..` once the flusher is open (or `error: ..`
//! and exits 2), and on SIGTERM stops producing, finishes (flushes) and prints
//! `ledger <json>` before exiting 0.
#![allow(clippy::print_stdout)]

use std::collections::HashMap;
use std::io::Write;
use std::os::unix::fs::FileExt;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use resilience_control::ControlPlane;
use resilience_control::health::BoxFuture;
use resilience_control::http::{self, HttpConfig};
use resilience_control::metering::{
    Batch, JsonlSink, MeterSink, MeterSource, MeteringConfig, MeteringFlusher, RedisStreamSink,
    SinkError,
};
use resilience_core::BreakerRegistry;
use resilience_core::meter::{MeterRing, Operation, RefuseReason, Tier, UsageEvent};
use tokio_util::sync::CancellationToken;

/// Kills this process with SIGKILL right after the K-th successful write: the batch is in the
/// sink, its ring slots are not yet released.
struct CrashAfter {
    inner: Arc<dyn MeterSink>,
    writes: AtomicU64,
    after: u64,
}

impl MeterSink for CrashAfter {
    fn name(&self) -> &'static str {
        self.inner.name()
    }

    fn write<'a>(&'a self, batch: &'a Batch) -> BoxFuture<'a, Result<(), SinkError>> {
        Box::pin(async move {
            let result = self.inner.write(batch).await;
            if result.is_ok() && self.writes.fetch_add(1, Ordering::SeqCst) + 1 == self.after {
                let _ = std::process::Command::new("kill")
                    .args(["-9", &std::process::id().to_string()])
                    .status();
                loop {
                    std::thread::sleep(Duration::from_secs(1));
                }
            }
            result
        })
    }

    fn duplicates_skipped(&self) -> u64 {
        self.inner.duplicates_skipped()
    }
}

fn main() -> ExitCode {
    let args: HashMap<String, String> = std::env::args()
        .skip(1)
        .filter_map(|a| a.split_once('=').map(|(k, v)| (k.to_owned(), v.to_owned())))
        .collect();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(e) => {
            println!("error: runtime: {e}");
            return ExitCode::from(2);
        }
    };
    match runtime.block_on(run(&args)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            println!("error: {e}");
            let _ = std::io::stdout().flush();
            ExitCode::from(2)
        }
    }
}

fn arg<T: std::str::FromStr>(args: &HashMap<String, String>, key: &str, default: T) -> T {
    args.get(key)
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

async fn run(args: &HashMap<String, String>) -> Result<(), String> {
    let path = |key: &str| {
        args.get(key)
            .map(PathBuf::from)
            .ok_or_else(|| format!("{key}= is required"))
    };
    let ring_path = path("ring")?;
    let spool = path("spool")?;
    let progress_path = path("progress")?;
    let run: u32 = arg(args, "run", 0);
    let rate: u64 = arg(args, "rate", 20_000).max(1);
    let capacity: usize = arg(args, "capacity", 65_536);
    let ring = Arc::new(MeterRing::open(&ring_path, capacity).map_err(|e| e.to_string())?);
    let mut sink: Arc<dyn MeterSink> = match (args.get("redis"), args.get("jsonl")) {
        (Some(url), _) => Arc::new(
            RedisStreamSink::new(url, args.get("namespace").map_or("faults", String::as_str))
                .map_err(|e| e.to_string())?,
        ),
        (None, Some(file)) => Arc::new(JsonlSink::new(file)),
        (None, None) => return Err("redis= or jsonl= is required".into()),
    };
    if let Some(after) = args.get("crash_after_writes").and_then(|v| v.parse().ok()) {
        sink = Arc::new(CrashAfter {
            inner: sink,
            writes: AtomicU64::new(0),
            after,
        });
    }
    let config = MeteringConfig::default()
        .spool_dir(&spool)
        .instance(format!("worker-{run}"))
        .flush_interval(Duration::from_millis(20))
        .spool_max_bytes(arg(args, "spool_max", 64 << 20));
    let source: Arc<dyn MeterSource> = ring.clone();
    let flusher = MeteringFlusher::open(source, sink, config)
        .await
        .map_err(|e| e.to_string())?;
    let ledger = flusher.ledger();
    let stop_http = CancellationToken::new();
    let mut http_address = String::new();
    if let Some(address) = args.get("http") {
        let listener = tokio::net::TcpListener::bind(address)
            .await
            .map_err(|e| format!("http={address}: {e}"))?;
        http_address = listener
            .local_addr()
            .map_err(|e| e.to_string())?
            .to_string();
        let control = ControlPlane::builder()
            .registry(Arc::new(BreakerRegistry::new()))
            .spawn()
            .map_err(|e| e.to_string())?;
        let config = HttpConfig::default()
            .max_connections(arg(args, "max_connections", 256))
            .header_read_timeout(Duration::from_millis(arg(args, "header_read_ms", 5_000)));
        tokio::spawn(http::serve_with(
            listener,
            control,
            config,
            stop_http.clone(),
        ));
    }
    println!(
        "ready pid={} recovered={} inherited={} http={http_address}",
        std::process::id(),
        ledger.recovered,
        ledger.inherited
    );
    let _ = std::io::stdout().flush();

    let stop = CancellationToken::new();
    let running = {
        let (flusher, stop) = (flusher.clone(), stop.clone());
        tokio::spawn(async move { flusher.run(stop).await })
    };
    let producing = Arc::new(AtomicBool::new(true));
    let progress = std::fs::OpenOptions::new()
        .create(true)
        .truncate(true)
        .write(true)
        .open(&progress_path)
        .map_err(|e| format!("{}: {e}", progress_path.display()))?;
    let producer = {
        let (ring, producing) = (ring.clone(), producing.clone());
        std::thread::spawn(move || produce(&ring, run, rate, &progress, &producing))
    };

    let mut terminate = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .map_err(|e| e.to_string())?;
    terminate.recv().await;
    producing.store(false, Ordering::SeqCst);
    let accepted = producer
        .join()
        .map_err(|_| "producer panicked".to_owned())?;
    stop.cancel();
    stop_http.cancel();
    let _ = running.await;
    let ledger = flusher.finish(Duration::from_secs(10)).await;
    println!(
        "ledger {} produced={accepted}",
        serde_json::to_string(&ledger).map_err(|e| e.to_string())?
    );
    let _ = std::io::stdout().flush();
    Ok(())
}

/// Records events `run * 10_000_000 + i` at `rate` per second, retrying a refused one until
/// accepted (so the accepted tokens of a run are exactly `0..count`), and writes the count after
/// each acceptance.
fn produce(
    ring: &MeterRing,
    run: u32,
    rate: u64,
    progress: &std::fs::File,
    producing: &AtomicBool,
) -> u64 {
    let started = Instant::now();
    let mut accepted = 0u64;
    let template = UsageEvent::new(
        "tenant-f",
        "worker",
        Operation::AgentMessage,
        Tier::Standard,
    )
    .unwrap_or_else(|e| panic!("{e}"));
    while producing.load(Ordering::SeqCst) {
        let due = started + Duration::from_secs_f64(accepted as f64 / rate as f64);
        let now = Instant::now();
        if now < due {
            std::thread::sleep((due - now).min(Duration::from_millis(1)));
            continue;
        }
        let token = run * 10_000_000 + accepted as u32;
        match ring.record(template.tokens(token)) {
            Ok(()) => {
                accepted += 1;
                let _ = progress.write_at(&accepted.to_le_bytes(), 0);
            }
            Err(refused) if refused.reason == RefuseReason::Full => {
                std::thread::sleep(Duration::from_micros(200));
            }
            Err(_) => break,
        }
    }
    accepted
}
