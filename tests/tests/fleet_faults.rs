//! Fleet mode under a real process fault: the instance holding a recovery lease is killed with
//! SIGKILL mid-lease. Another instance must get the lease within its length, and the dead
//! holder's fence must never be honoured again.
#![allow(clippy::unwrap_used, clippy::expect_used)] // tests may panic on bad setup

#[path = "../../resilience-control/tests/support/mod.rs"]
mod support;

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use resilience_control::fleet::{Fleet, FleetConfig};
use support::RedisServer;

const LEASE: Duration = Duration::from_millis(800);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lease_holder_killed_mid_lease_is_replaced_within_the_lease_and_fenced_out() {
    let Some(server) = RedisServer::start() else {
        return;
    };
    let mut holder = Command::new(env!("CARGO_BIN_EXE_lease_holder"))
        .args([
            format!("redis={}", server.url()),
            "namespace=leasekill".to_owned(),
            "service=db".to_owned(),
            "instance=holder".to_owned(),
            format!("lease_ms={}", LEASE.as_millis()),
        ])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(holder.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let dead_fence: u64 = line
        .trim()
        .strip_prefix("leased fence=")
        .unwrap_or_else(|| panic!("{line:?}"))
        .parse()
        .unwrap();

    let other = Fleet::connect(
        FleetConfig::new("other")
            .namespace("leasekill".to_owned())
            .redis_url(server.url())
            .publish_every(LEASE / 10)
            .report_ttl(LEASE / 2)
            .lease_ttl(LEASE),
    )
    .await
    .unwrap();
    // Held and renewed: nobody else gets it, however long we wait.
    tokio::time::sleep(LEASE * 2).await;
    assert!(other.try_lease("db").await.unwrap().is_none());
    assert_eq!(
        other.lease_holder("db").await.unwrap(),
        Some(("holder".to_owned(), dead_fence))
    );

    holder.kill().unwrap();
    holder.wait().unwrap();
    let killed = Instant::now();
    let lease = loop {
        if let Some(lease) = other.try_lease("db").await.unwrap() {
            break lease;
        }
        assert!(killed.elapsed() < LEASE * 3, "the lease never freed");
        tokio::time::sleep(Duration::from_millis(10)).await;
    };
    let waited = killed.elapsed();
    eprintln!(
        "lease of a SIGKILLed holder taken over {} ms after the kill (lease {} ms)",
        waited.as_millis(),
        LEASE.as_millis()
    );
    assert!(waited <= LEASE + Duration::from_millis(200), "{waited:?}");
    assert!(lease.fence > dead_fence, "a newer fence");
    assert!(other.complete(&lease, true).await.unwrap());
    let result = other.lease_result("db").await.unwrap().unwrap();
    assert_eq!((result.fence, result.succeeded), (lease.fence, true));
}
