//! Redis over TLS (`rediss://`, a server certificate signed by a CA made in the test) and with
//! an ACL user, for metering and fleet mode, against real `redis-server` processes.
#![allow(clippy::unwrap_used, clippy::expect_used)] // tests may panic on bad setup

mod support;

use std::sync::Arc;
use std::time::Duration;

use resilience_control::ResilienceConfig;
use resilience_control::fleet::{Fleet, FleetConfig};
use resilience_control::metering::{MeteringConfig, MeteringFlusher, RedisStreamSink};
use resilience_core::meter::{MeterRing, Operation, Tier, UsageEvent};
use support::{RedisServer, TempDir};

async fn meter_into(client: redis::Client, ns: &str, dir: &TempDir) -> u64 {
    let ring = Arc::new(MeterRing::with_capacity(1024).unwrap());
    let sink = Arc::new(RedisStreamSink::with_client(client, ns));
    let flusher = MeteringFlusher::open(
        ring.clone(),
        sink,
        MeteringConfig::default().spool_dir(dir.0.join(ns)),
    )
    .await
    .unwrap();
    let event = UsageEvent::new("t", "a", Operation::AgentMessage, Tier::Free).unwrap();
    for i in 0..100 {
        ring.record(event.tokens(i)).unwrap();
    }
    let ledger = flusher.finish(Duration::from_secs(5)).await;
    assert!(ledger.balances());
    ledger.flushed
}

fn stream_len(server: &RedisServer, ns: &str) -> u64 {
    redis::cmd("XLEN")
        .arg(format!("{{{ns}}}:meter"))
        .query(&mut server.connection())
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metering_and_fleet_mode_over_tls_to_a_private_ca() {
    let certs = TempDir::new("tls-certs");
    let Some(server) = RedisServer::start_tls(&certs.0) else {
        return;
    };
    let url = server.url();
    assert!(url.starts_with("rediss://"), "{url}");
    let ca = server.ca_file().unwrap().to_owned();
    let dir = TempDir::new("tls");

    // Metering, through the configuration as `serve` builds it.
    let config = ResilienceConfig::from_toml_str(
        &format!(
            "redis_url = \"{url}\"\nredis_ca_file = \"{}\"\n",
            ca.display()
        ),
        &|_| None,
    )
    .unwrap();
    let client = config.redis_client().unwrap().unwrap();
    assert_eq!(meter_into(client, "tls", &dir).await, 100);
    assert_eq!(stream_len(&server, "tls"), 100);

    // Without the CA the server's certificate is not trusted: the write fails (and spools).
    let untrusted = resilience_control::redis_client(&url, None).unwrap();
    let ring = Arc::new(MeterRing::with_capacity(16).unwrap());
    let flusher = MeteringFlusher::open(
        ring.clone(),
        Arc::new(RedisStreamSink::with_client(untrusted, "untrusted")),
        MeteringConfig::default().spool_dir(dir.0.join("untrusted")),
    )
    .await
    .unwrap();
    ring.record(UsageEvent::new("t", "a", Operation::AgentMessage, Tier::Free).unwrap())
        .unwrap();
    let ledger = flusher.finish(Duration::from_secs(3)).await;
    assert_eq!((ledger.flushed, ledger.spooled), (0, 1), "{ledger:?}");

    // Fleet mode over the same TLS.
    let fleet = Fleet::connect(
        FleetConfig::new("tls-a")
            .namespace("tlsfleet".to_owned())
            .redis_url(url.clone())
            .redis_ca_file(&ca)
            .publish_every(Duration::from_millis(50))
            .report_ttl(Duration::from_millis(500)),
    )
    .await
    .unwrap();
    fleet.emergency_stop("tls-test").await.unwrap();
    assert!(fleet.chaos_state().await.unwrap().stopped.is_some());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_acl_user_with_a_password_works_and_a_wrong_one_is_refused_unprinted() {
    let Some(server) = RedisServer::start_with_acl_user("meter", "S3cretPW-acl") else {
        return;
    };
    let dir = TempDir::new("acl");
    let url = server.url();
    assert!(url.contains("meter:S3cretPW-acl@"));
    let client = resilience_control::redis_client(&url, None).unwrap();
    assert_eq!(meter_into(client, "acl", &dir).await, 100);
    assert_eq!(stream_len(&server, "acl"), 100);

    // A wrong password is an error that names neither password.
    let wrong = url.replace("S3cretPW-acl", "Wr0ngPW-acl");
    let sink = RedisStreamSink::with_client(
        resilience_control::redis_client(&wrong, None).unwrap(),
        "acl-wrong",
    );
    let batch = resilience_control::metering::Batch {
        id: "x".into(),
        records: vec![resilience_control::metering::EventRecord::from_event(
            &UsageEvent::new("t", "a", Operation::AgentMessage, Tier::Free).unwrap(),
            0,
        )],
    };
    use resilience_control::metering::MeterSink;
    let err = sink.write(&batch).await.unwrap_err().to_string();
    assert!(
        !err.contains("S3cretPW") && !err.contains("Wr0ngPW"),
        "{err}"
    );
    // Fleet mode with the ACL user.
    let fleet = Fleet::connect(
        FleetConfig::new("acl-a")
            .namespace("aclfleet".to_owned())
            .redis_url(url.clone())
            .publish_every(Duration::from_millis(50))
            .report_ttl(Duration::from_millis(500)),
    )
    .await
    .unwrap();
    fleet.resume().await.unwrap();
}
