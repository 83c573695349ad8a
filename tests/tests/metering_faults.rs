//! Metering's promises under real faults, with real processes: a worker (`meter_worker`, wired
//! as a service wires the library: file-backed ring, flusher, spool, Redis) is killed with
//! SIGKILL mid-stream and between a Redis write and its acknowledgement, Redis is killed and
//! stopped, two workers share one directory, the spool's disk fills, producers race shutdown.
//! Every test numbers its events and reads the Redis stream itself: 0 missing, 0 duplicated,
//! and the ledger balanced exactly.
#![allow(clippy::unwrap_used, clippy::expect_used)] // tests may panic on bad setup

#[path = "../../resilience-control/tests/support/mod.rs"]
mod support;

use std::collections::{BTreeMap, BTreeSet};
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdout, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use resilience_control::metering::{MeteringConfig, MeteringFlusher, RedisStreamSink};
use resilience_core::meter::{MeterRing, Operation, RefuseReason, Tier, UsageEvent};
use support::{RedisServer, TempDir, free_port};

/// Tokens of run `r` are `r * RUN + i`.
const RUN: u32 = 10_000_000;
const NS: &str = "faults";

/// A running `meter_worker`.
struct Worker {
    child: Child,
    stdout: BufReader<ChildStdout>,
    /// Its `ready` line.
    ready: String,
}

fn worker_args(dir: &Path, sink: &str, run: u32, extra: &[String]) -> Vec<String> {
    let mut args = vec![
        format!("ring={}", dir.join("meter.ring").display()),
        format!("spool={}", dir.join("spool").display()),
        format!("progress={}", dir.join(format!("progress-{run}")).display()),
        format!("run={run}"),
        format!("namespace={NS}"),
        sink.to_owned(),
    ];
    args.extend_from_slice(extra);
    args
}

impl Worker {
    /// Starts a worker and waits for its `ready` line; `Err(first line)` if it refuses.
    fn start(args: Vec<String>) -> Result<Worker, String> {
        Self::start_in(Command::new(env!("CARGO_BIN_EXE_meter_worker")), args)
    }

    /// As [`start`](Self::start), with `nofile` file descriptors at most.
    fn start_limited(nofile: u32, args: Vec<String>) -> Result<Worker, String> {
        let mut command = Command::new("prlimit");
        command
            .arg(format!("--nofile={nofile}:{nofile}"))
            .arg("--")
            .arg(env!("CARGO_BIN_EXE_meter_worker"));
        Self::start_in(command, args)
    }

    fn start_in(mut command: Command, args: Vec<String>) -> Result<Worker, String> {
        let mut child = command
            .args(args)
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap();
        let mut stdout = BufReader::new(child.stdout.take().unwrap());
        let mut line = String::new();
        stdout.read_line(&mut line).unwrap();
        if !line.starts_with("ready") {
            let _ = child.wait();
            return Err(line);
        }
        Ok(Worker {
            child,
            stdout,
            ready: line,
        })
    }

    fn pid(&self) -> u32 {
        self.child.id()
    }

    /// `recovered=N` from the ready line.
    fn recovered(&self) -> u64 {
        field(&self.ready, "recovered=")
    }

    /// SIGKILL, now.
    fn kill9(mut self) {
        self.child.kill().unwrap();
        self.child.wait().unwrap();
    }

    fn stdout_line(&mut self) -> String {
        let mut line = String::new();
        let _ = self.stdout.read_line(&mut line);
        line
    }

    /// SIGTERM, then the ledger it prints after flushing (as JSON).
    fn terminate(mut self) -> serde_json::Value {
        let status = Command::new("kill")
            .args(["-TERM", &self.pid().to_string()])
            .status()
            .unwrap();
        assert!(status.success());
        loop {
            let line = self.stdout_line();
            assert!(!line.is_empty(), "worker exited without a ledger");
            if let Some(rest) = line.strip_prefix("ledger ") {
                let json = rest.split(" produced=").next().unwrap();
                let ledger: serde_json::Value = serde_json::from_str(json).unwrap();
                assert!(self.child.wait().unwrap().success());
                return ledger;
            }
        }
    }
}

impl Drop for Worker {
    /// A failing test must not leave its worker running.
    fn drop(&mut self) {
        if self.child.try_wait().ok().flatten().is_none() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

fn field(line: &str, key: &str) -> u64 {
    line.split_whitespace()
        .find_map(|w| w.strip_prefix(key))
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("no {key} in {line:?}"))
}

/// Events run `run` had accepted (by its own count, written after each acceptance).
fn progress(dir: &Path, run: u32) -> u64 {
    std::fs::read(dir.join(format!("progress-{run}")))
        .ok()
        .filter(|b| b.len() == 8)
        .map_or(0, |b| u64::from_le_bytes(b.try_into().unwrap()))
}

fn wait_for(what: &str, limit: Duration, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + limit;
    while !done() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// Every entry of the stream, as (token, event id).
fn stream(server: &RedisServer) -> Vec<(u32, String)> {
    let reply: redis::streams::StreamRangeReply = redis::cmd("XRANGE")
        .arg(format!("{{{NS}}}:meter"))
        .arg("-")
        .arg("+")
        .query(&mut server.connection())
        .unwrap();
    reply
        .ids
        .iter()
        .map(|entry| {
            let get = |k: &str| redis::from_redis_value::<String>(entry.map[k].clone()).unwrap();
            (get("tokens").parse().unwrap(), get("event_id"))
        })
        .collect()
}

fn stream_len(server: &RedisServer) -> u64 {
    redis::cmd("XLEN")
        .arg(format!("{{{NS}}}:meter"))
        .query(&mut server.connection())
        .unwrap_or(0)
}

/// One run's share: what it accepted by its own count, and whether it was killed (then the
/// event after its last count may have been accepted too, its count never written).
struct Run {
    run: u32,
    accepted: u64,
    killed: bool,
}

/// Checks the stream holds every accepted event exactly once and nothing else; returns the
/// number of entries.
fn assert_exactly_once(entries: &[(u32, String)], runs: &[Run]) -> usize {
    let mut counts: BTreeMap<u32, u32> = BTreeMap::new();
    for (token, _) in entries {
        *counts.entry(*token).or_default() += 1;
    }
    let duplicated: Vec<u32> = counts
        .iter()
        .filter(|(_, n)| **n > 1)
        .map(|(t, _)| *t)
        .collect();
    let ids: BTreeSet<&String> = entries.iter().map(|(_, id)| id).collect();
    let mut missing = Vec::new();
    let mut expected = BTreeSet::new();
    for r in runs {
        for i in 0..r.accepted {
            let token = r.run * RUN + i as u32;
            expected.insert(token);
            if !counts.contains_key(&token) {
                missing.push(token);
            }
        }
        if r.killed {
            expected.insert(r.run * RUN + r.accepted as u32);
        }
    }
    let phantom: Vec<u32> = counts
        .keys()
        .filter(|t| !expected.contains(t))
        .copied()
        .collect();
    assert!(
        missing.is_empty() && duplicated.is_empty() && phantom.is_empty(),
        "{} missing (first {:?}), {} duplicated (first {:?}), {} never accepted (first {:?})",
        missing.len(),
        missing.first(),
        duplicated.len(),
        duplicated.first(),
        phantom.len(),
        phantom.first()
    );
    assert_eq!(ids.len(), entries.len(), "every event id once");
    entries.len()
}

fn assert_balanced(ledger: &serde_json::Value) {
    let n = |k: &str| {
        ledger[k]
            .as_u64()
            .unwrap_or_else(|| panic!("{k} in {ledger}"))
    };
    assert_eq!(
        n("offered"),
        n("accepted") + n("refused_full") + n("refused_closed"),
        "{ledger}"
    );
    assert_eq!(
        n("accepted") + n("inherited"),
        n("flushed") + n("duplicates") + n("spooled") + n("pending") + n("quarantined"),
        "{ledger}"
    );
    assert_eq!(
        (n("pending"), n("spooled")),
        (0, 0),
        "all delivered: {ledger}"
    );
}

#[test]
fn kill9_mid_stream_and_restarts_lose_nothing_and_duplicate_nothing() {
    let data = TempDir::new("faults-kill-data");
    let Some(server) = RedisServer::start_durable(&data.0) else {
        return;
    };
    let dir = TempDir::new("faults-kill");
    let sink = format!("redis={}", server.url());
    let mut runs = Vec::new();
    let mut recovered = 0;
    // Kill at varying points until a restart has had to recover events from the ring file
    // (not vacuous), at least twice.
    for run in 0..6u32 {
        let worker = Worker::start(worker_args(&dir.0, &sink, run, &[])).unwrap();
        recovered += worker.recovered();
        let target = 5_000 + u64::from(run) * 3_137;
        wait_for("events accepted", Duration::from_secs(30), || {
            progress(&dir.0, run) >= target
        });
        worker.kill9();
        runs.push(Run {
            run,
            accepted: progress(&dir.0, run),
            killed: true,
        });
        if run >= 1 && recovered > 0 {
            break;
        }
    }
    assert!(recovered > 0, "no restart found events to recover");
    let last = runs.len() as u32;
    let worker = Worker::start(worker_args(&dir.0, &sink, last, &[])).unwrap();
    recovered += worker.recovered();
    wait_for("events accepted", Duration::from_secs(30), || {
        progress(&dir.0, last) >= 3_000
    });
    let ledger = worker.terminate();
    runs.push(Run {
        run: last,
        accepted: progress(&dir.0, last),
        killed: false,
    });
    assert_balanced(&ledger);
    let total = assert_exactly_once(&stream(&server), &runs);
    eprintln!(
        "kill -9 ×{}: {total} events in Redis, each once; {recovered} recovered from ring files",
        runs.len() - 1
    );
}

#[test]
fn kill9_between_the_redis_write_and_the_release_is_redelivered_exactly_once() {
    let data = TempDir::new("faults-ack-data");
    let Some(server) = RedisServer::start_durable(&data.0) else {
        return;
    };
    let dir = TempDir::new("faults-ack");
    let sink = format!("redis={}", server.url());
    let mut crashing = Worker::start(worker_args(
        &dir.0,
        &sink,
        0,
        &["crash_after_writes=8".into()],
    ))
    .unwrap();
    let status = {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Some(status) = crashing.child.try_wait().unwrap() {
                break status;
            }
            assert!(Instant::now() < deadline, "the worker never crashed");
            std::thread::sleep(Duration::from_millis(10));
        }
    };
    use std::os::unix::process::ExitStatusExt;
    assert_eq!(status.signal(), Some(9), "killed by SIGKILL");
    let in_redis = stream_len(&server);
    let first = Run {
        run: 0,
        accepted: progress(&dir.0, 0),
        killed: true,
    };

    let worker = Worker::start(worker_args(&dir.0, &sink, 1, &[])).unwrap();
    assert!(
        worker.recovered() > 0,
        "the batch written but not released comes back: {}",
        worker.ready
    );
    wait_for("events accepted", Duration::from_secs(30), || {
        progress(&dir.0, 1) >= 2_000
    });
    let ledger = worker.terminate();
    assert_balanced(&ledger);
    let duplicates = ledger["duplicates"].as_u64().unwrap();
    assert!(
        duplicates > 0,
        "Redis already had the crashed batch, and said so: {ledger}"
    );
    let runs = [
        first,
        Run {
            run: 1,
            accepted: progress(&dir.0, 1),
            killed: false,
        },
    ];
    assert_exactly_once(&stream(&server), &runs);
    eprintln!(
        "crash between write and release: {in_redis} events in Redis at the crash, {} recovered, {duplicates} found already delivered and skipped",
        ledger["recovered"]
    );
}

/// Kills Redis, keeps it down for `down`, restarts it; how long after it answered again the
/// stream grew.
fn outage(server: &mut RedisServer, down: Duration) -> Duration {
    server.kill();
    std::thread::sleep(down);
    server.restart();
    resumed(server, stream_len(server))
}

/// Polls the stream until it grows past `from`; how long that took.
fn resumed(server: &RedisServer, from: u64) -> Duration {
    let started = Instant::now();
    wait_for("delivery to resume", Duration::from_secs(20), || {
        stream_len(server) > from
    });
    started.elapsed()
}

#[test]
fn redis_killed_or_stopped_delivery_resumes_within_a_second_of_its_return() {
    let data = TempDir::new("faults-outage-data");
    let Some(mut server) = RedisServer::start_durable(&data.0) else {
        return;
    };
    let dir = TempDir::new("faults-outage");
    let sink = format!("redis={}", server.url());
    let worker = Worker::start(worker_args(&dir.0, &sink, 0, &["rate=5000".into()])).unwrap();
    wait_for("events flowing", Duration::from_secs(30), || {
        stream_len(&server) >= 2_000
    });

    let after_kill = outage(&mut server, Duration::from_secs(2));

    std::thread::sleep(Duration::from_millis(500));
    server.signal("STOP");
    std::thread::sleep(Duration::from_secs(3));
    server.signal("CONT");
    let after_stop = resumed(&server, stream_len(&server));

    std::thread::sleep(Duration::from_millis(500));
    let ledger = worker.terminate();
    assert_balanced(&ledger);
    assert!(ledger["sink_failures"].as_u64().unwrap() > 0, "{ledger}");
    let runs = [Run {
        run: 0,
        accepted: progress(&dir.0, 0),
        killed: false,
    }];
    assert_exactly_once(&stream(&server), &runs);
    eprintln!(
        "delivery resumed {} ms after Redis restarted (SIGKILL, 2 s down) and {} ms after SIGCONT (SIGSTOP, 3 s)",
        after_kill.as_millis(),
        after_stop.as_millis()
    );
    assert!(after_kill < Duration::from_secs(1), "{after_kill:?}");
    assert!(after_stop < Duration::from_secs(1), "{after_stop:?}");
}

#[test]
fn two_processes_on_one_directory_the_second_is_refused_naming_the_first() {
    let dir = TempDir::new("faults-two");
    let jsonl = format!("jsonl={}", dir.0.join("usage.jsonl").display());
    let first = Worker::start(worker_args(&dir.0, &jsonl, 0, &[])).unwrap();
    // Same ring file and spool.
    let err = Worker::start(worker_args(&dir.0, &jsonl, 1, &[]))
        .err()
        .expect("a second worker on the same ring is refused");
    assert!(
        err.contains("meter.ring") && err.contains(&format!("in use by process {}", first.pid())),
        "{err}"
    );
    // Own ring file, same spool directory.
    let mut args = worker_args(&dir.0, &jsonl, 2, &[]);
    args[0] = format!("ring={}", dir.0.join("other.ring").display());
    let err = Worker::start(args)
        .err()
        .expect("a second worker on the same spool is refused");
    assert!(
        err.contains("spool directory")
            && err.contains(&format!("in use by process {}", first.pid())),
        "{err}"
    );
    wait_for("events accepted", Duration::from_secs(30), || {
        progress(&dir.0, 0) >= 2_000
    });
    let ledger = first.terminate();
    assert_balanced(&ledger);
    // The refused ones wrote nothing: every line is the first worker's, once.
    let text = std::fs::read_to_string(dir.0.join("usage.jsonl")).unwrap();
    let tokens: Vec<u64> = text
        .lines()
        .map(|l| {
            serde_json::from_str::<serde_json::Value>(l).unwrap()["tokens"]
                .as_u64()
                .unwrap()
        })
        .collect();
    assert_eq!(tokens, (0..progress(&dir.0, 0)).collect::<Vec<_>>());
}

/// A tmpfs of `size` mounted at `dir`, unmounted on drop.
struct SmallDisk(PathBuf);

impl SmallDisk {
    fn mount(dir: &Path, size: &str) -> Option<SmallDisk> {
        std::fs::create_dir_all(dir).unwrap();
        let mounted = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(dir)
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
        mounted.then(|| SmallDisk(dir.to_owned()))
    }
}

impl Drop for SmallDisk {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(&self.0).status();
    }
}

#[test]
fn a_full_spool_disk_holds_events_in_the_ring_and_loses_none() {
    let dir = TempDir::new("faults-disk");
    let Some(_disk) = SmallDisk::mount(&dir.0.join("spool"), "160k") else {
        // Fails with how to run it, unless opted out (then SKIPPED).
        support::unavailable(
            "a tmpfs for the full-disk test",
            "run the tests as root (CI does), so it can mount a 160 KiB tmpfs",
        );
        return;
    };
    let port = free_port();
    let sink = format!("redis=redis://127.0.0.1:{port}");
    let worker = Worker::start(worker_args(
        &dir.0,
        &sink,
        0,
        &["rate=4000".into(), "capacity=4096".into()],
    ))
    .unwrap();
    // Redis is down: batches spool until the disk is full, then stay in the ring, which fills;
    // the producer's retries are refusals (counted), never losses.
    std::thread::sleep(Duration::from_secs(3));
    let stalled = progress(&dir.0, 0);
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(
        progress(&dir.0, 0),
        stalled,
        "the ring is full: nothing more is accepted"
    );
    let Some(server) = RedisServer::start_on_checked(port) else {
        return;
    };
    wait_for("the backlog delivered", Duration::from_secs(30), || {
        progress(&dir.0, 0) > stalled + 2_000
    });
    let ledger = worker.terminate();
    assert_balanced(&ledger);
    assert!(ledger["refused_full"].as_u64().unwrap() > 0, "{ledger}");
    let runs = [Run {
        run: 0,
        accepted: progress(&dir.0, 0),
        killed: false,
    }];
    let total = assert_exactly_once(&stream(&server), &runs);
    eprintln!(
        "full spool disk: {stalled} accepted before the ring filled, {} refusals (retried), {total} delivered once each",
        ledger["refused_full"]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn producers_racing_shutdown_never_strand_an_accepted_event() {
    let Some(server) = RedisServer::start() else {
        return;
    };
    let dir = TempDir::new("faults-race");
    for round in 0..40u32 {
        let ns = format!("race-{round}");
        // Small, so each round's drain is quick: the race is at the close, not in volume.
        let ring = Arc::new(MeterRing::with_capacity(1 << 10).unwrap());
        let sink = Arc::new(RedisStreamSink::new(&server.url(), &ns).unwrap());
        let config = MeteringConfig::default()
            .spool_dir(dir.0.join(format!("spool-{round}")))
            .flush_interval(Duration::from_millis(5));
        let flusher = MeteringFlusher::open(ring.clone(), sink, config)
            .await
            .unwrap();
        let go = Arc::new(AtomicBool::new(false));
        let producers: Vec<_> = (0..6u32)
            .map(|p| {
                let (ring, go) = (ring.clone(), go.clone());
                std::thread::spawn(move || {
                    while !go.load(Ordering::Relaxed) {
                        std::hint::spin_loop();
                    }
                    let template =
                        UsageEvent::new("t", "a", Operation::AgentMessage, Tier::Free).unwrap();
                    let mut accepted = Vec::new();
                    for i in 0..1_000_000u32 {
                        match ring.record(template.tokens(p * RUN + i)) {
                            Ok(()) => accepted.push(p * RUN + i),
                            Err(r) if r.reason == RefuseReason::Closed => break,
                            // Full: let the flusher (two cores, six producers) catch up.
                            Err(_) => std::thread::yield_now(),
                        }
                    }
                    accepted
                })
            })
            .collect();
        // The flusher runs, so producers are being accepted (not refused as full) at the
        // instant of the close.
        let stop = tokio_util::sync::CancellationToken::new();
        let running = {
            let (flusher, stop) = (flusher.clone(), stop.clone());
            tokio::spawn(async move { flusher.run(stop).await })
        };
        go.store(true, Ordering::Relaxed);
        tokio::time::sleep(Duration::from_micros(u64::from(round % 7) * 700)).await;
        let cancelled = Instant::now();
        stop.cancel();
        running.await.unwrap();
        assert!(
            cancelled.elapsed() < Duration::from_secs(1),
            "round {round}: the flusher kept writing under load instead of stopping: {:?}",
            cancelled.elapsed()
        );
        let ledger = flusher.finish(Duration::from_secs(10)).await;
        let accepted: BTreeSet<u32> = producers
            .into_iter()
            .flat_map(|p| p.join().unwrap())
            .collect();
        assert!(ledger.balances(), "{ledger:?}");
        assert_eq!(ledger.pending, 0, "round {round}: {ledger:?}");
        assert!(
            ring.ledger().refused_closed > 0,
            "round {round}: producers were still going at the close"
        );
        assert_eq!(ledger.accepted, accepted.len() as u64, "round {round}");
        let reply: redis::streams::StreamRangeReply = redis::cmd("XRANGE")
            .arg(format!("{{{ns}}}:meter"))
            .arg("-")
            .arg("+")
            .query(&mut server.connection())
            .unwrap();
        let written: Vec<u32> = reply
            .ids
            .iter()
            .map(|e| {
                redis::from_redis_value::<String>(e.map["tokens"].clone())
                    .unwrap()
                    .parse()
                    .unwrap()
            })
            .collect();
        let unique: BTreeSet<u32> = written.iter().copied().collect();
        assert_eq!(written.len(), unique.len(), "round {round}: duplicates");
        assert_eq!(unique, accepted, "round {round}: accepted == delivered");
    }
}

#[test]
fn under_a_low_nofile_limit_idle_http_clients_cannot_starve_metering() {
    let data = TempDir::new("faults-nofile-data");
    let Some(mut server) = RedisServer::start_durable(&data.0) else {
        return;
    };
    let dir = TempDir::new("faults-nofile");
    let sink = format!("redis={}", server.url());
    // 64 descriptors in all; a ring that the outage overflows unless the spool takes batches
    // (8 000 events in 4 s against 4 096 slots), with 2 s of slack for a loaded machine.
    let worker = Worker::start_limited(
        64,
        worker_args(
            &dir.0,
            &sink,
            0,
            &[
                "rate=2000".into(),
                "capacity=4096".into(),
                "http=127.0.0.1:0".into(),
                "max_connections=16".into(),
                "header_read_ms=300".into(),
            ],
        ),
    )
    .unwrap();
    let address = worker
        .ready
        .split_whitespace()
        .find_map(|w| w.strip_prefix("http="))
        .unwrap()
        .to_owned();
    // An attacker keeps hundreds of idle connections coming for the whole test.
    let attacking = Arc::new(AtomicBool::new(true));
    let attacker = {
        let (attacking, address) = (attacking.clone(), address.clone());
        std::thread::spawn(move || {
            let mut opened = 0u64;
            let mut held = std::collections::VecDeque::new();
            while attacking.load(Ordering::Relaxed) {
                for _ in 0..50 {
                    if let Ok(stream) = std::net::TcpStream::connect(&address) {
                        held.push_back(stream);
                        opened += 1;
                    }
                }
                while held.len() > 400 {
                    held.pop_front();
                }
                std::thread::sleep(Duration::from_millis(50));
            }
            opened
        })
    };
    wait_for("events flowing", Duration::from_secs(30), || {
        stream_len(&server) >= 2_000
    });
    // Redis goes away: every batch must now be spooled (a new file, a new descriptor each).
    let after = outage(&mut server, Duration::from_secs(4));
    std::thread::sleep(Duration::from_millis(500));
    attacking.store(false, Ordering::Relaxed);
    let opened = attacker.join().unwrap();
    let ledger = worker.terminate();
    assert_balanced(&ledger);
    assert_eq!(
        ledger["refused_full"].as_u64(),
        Some(0),
        "the spool took every batch during the outage: {ledger}"
    );
    assert!(ledger["sink_failures"].as_u64().unwrap() > 0, "{ledger}");
    let runs = [Run {
        run: 0,
        accepted: progress(&dir.0, 0),
        killed: false,
    }];
    let total = assert_exactly_once(&stream(&server), &runs);
    eprintln!(
        "nofile 64, {opened} attacking connections: {total} events delivered once each, delivery resumed {} ms after Redis returned",
        after.as_millis()
    );
}
