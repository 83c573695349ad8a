//! Resource exhaustion that takes from the process itself: busy threads and resident memory,
//! measured through `/proc`. Its own test binary, so no other test's threads or allocations
//! blur the measurements.
#![allow(clippy::unwrap_used, clippy::expect_used)] // tests may panic on bad setup

use std::sync::Arc;
use std::time::Duration;

use resilience_control::chaos::{ChaosConfig, ChaosEngine};
use resilience_core::chaos::{FaultTable, Resource};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cpu_and_memory_are_really_taken_and_released() {
    let table = Arc::new(FaultTable::builder().build().unwrap());
    let engine = ChaosEngine::builder(table)
        .config(
            ChaosConfig::default()
                .enabled(true)
                .cpu_threads(2)
                .memory_max_bytes(64 << 20),
        )
        .build()
        .unwrap();
    let res = engine.resources().clone();
    let resident_before = resident_bytes();
    let cpu_before = cpu_time();
    engine
        .simulate_resource_exhaustion(Resource::Cpu, 0.2, "worker")
        .start()
        .unwrap();
    engine
        .simulate_resource_exhaustion(Resource::Memory, 0.25, "worker")
        .start()
        .unwrap();
    let usage = res.usage();
    assert_eq!(usage.cpu_threads, 2);
    assert!((usage.cpu_level - 0.2).abs() < 1e-9);
    assert_eq!(usage.memory_bytes, 16 << 20);
    assert_eq!(chaos_threads(), 2, "two busy threads really run");
    let resident = resident_bytes();
    assert!(
        resident >= resident_before + (15 << 20),
        "the ballast is resident: {resident_before} -> {resident}"
    );
    // Two threads at 20% for half a second: about 200 ms of CPU; ask for a fifth of that.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let burnt = cpu_time().saturating_sub(cpu_before);
    assert!(burnt >= Duration::from_millis(40), "CPU burnt: {burnt:?}");

    engine.deactivate("resource_exhaustion:cpu:worker").unwrap();
    engine
        .deactivate("resource_exhaustion:memory:worker")
        .unwrap();
    assert_eq!(res.usage().memory_bytes, 0);
    let after = resident_bytes();
    assert!(
        after + (15 << 20) <= resident,
        "the ballast went back to the OS: {resident} -> {after}"
    );
    until_real("busy threads exit", || res.usage().cpu_threads == 0).await;
    until_real("OS threads gone", || chaos_threads() == 0).await;

    // Busy threads also end on their own at the deadline, with no sweeper running.
    engine
        .simulate_resource_exhaustion(Resource::Cpu, 0.1, "worker")
        .duration(Duration::from_millis(200))
        .start()
        .unwrap();
    assert_eq!(res.usage().cpu_threads, 2);
    until_real("busy threads end at their deadline", || {
        res.usage().cpu_threads == 0
    })
    .await;
}

async fn until_real(what: &str, mut done: impl FnMut() -> bool) {
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    while !done() {
        assert!(
            std::time::Instant::now() < deadline,
            "timed out waiting: {what}"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

fn resident_bytes() -> u64 {
    std::fs::read_to_string("/proc/self/statm")
        .ok()
        .and_then(|s| s.split_whitespace().nth(1)?.parse::<u64>().ok())
        .map_or(0, |pages| pages * 4096)
}

/// OS threads of this process named `chaos-cpu-*`.
fn chaos_threads() -> usize {
    std::fs::read_dir("/proc/self/task")
        .map(|tasks| {
            tasks
                .filter_map(Result::ok)
                .filter(|t| {
                    std::fs::read_to_string(t.path().join("comm"))
                        .is_ok_and(|name| name.starts_with("chaos-cpu-"))
                })
                .count()
        })
        .unwrap_or(0)
}

/// User + system CPU time of this process so far.
fn cpu_time() -> Duration {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    // Fields after the parenthesised command name; utime and stime are the 12th and 13th.
    let after = stat.rsplit_once(')').map_or("", |(_, rest)| rest);
    let fields: Vec<u64> = after
        .split_whitespace()
        .skip(11)
        .take(2)
        .filter_map(|f| f.parse().ok())
        .collect();
    let ticks: u64 = fields.iter().sum();
    Duration::from_millis(ticks * 10) // USER_HZ is 100 on Linux
}
