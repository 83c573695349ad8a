//! The metering hooks as the original's message bus calls them: each seed operation's own
//! arguments become fields of the record that reaches JSONL and a real `redis-server`, an event
//! without a tenant is billed to `default` (and counted), and `metered` marks how the work ended,
//! a panic included.
#![allow(clippy::unwrap_used, clippy::expect_used)] // tests may panic on bad setup

mod support;

use std::sync::Arc;
use std::time::Duration;

use resilience_control::metering::{
    DEFAULT_TENANT, EventRecord, HookError, JsonlSink, MeteringConfig, MeteringFlusher,
    MeteringHooks, RedisStreamSink, Verdict,
};
use resilience_core::meter::{MeterError, MeterRing, Operation, Outcome, Tier, UsageEvent};
use support::{RedisServer, TempDir};

fn config(dir: &TempDir) -> MeteringConfig {
    MeteringConfig::default()
        .spool_dir(dir.0.join("spool"))
        .flush_interval(Duration::from_millis(20))
        .retry(Duration::from_millis(50), Duration::from_millis(200))
        .instance("hooks")
}

/// The five seed hooks with the seed's own arguments, then one with no tenant.
fn record_seed_calls(hooks: &MeteringHooks) {
    hooks
        .constitutional_validation("tenant-1", "agent-1", false)
        .latency(Duration::from_micros(120))
        .record()
        .unwrap();
    hooks
        .agent_message("tenant-1", "agent-1", "agent-2", "command", true)
        .tokens(512)
        .latency(Duration::from_micros(900))
        .record()
        .unwrap();
    hooks
        .policy_evaluation("tenant-1", "agent-1", "data-retention", "deny")
        .record()
        .unwrap();
    hooks
        .deliberation_request("tenant-1", "agent-1", 0.85)
        .record()
        .unwrap();
    hooks
        .hitl_approval("tenant-1", "agent-1", "reviewer-9", true)
        .latency(Duration::from_secs(90))
        .record()
        .unwrap();
    hooks
        .agent_message("", "agent-3", "agent-1", "query", true)
        .record()
        .unwrap();
}

/// What each seed call must have become (tenant, operation, tier, outcome, counterpart, label,
/// impact score, compliance).
fn assert_seed_records(records: &[EventRecord]) {
    assert_eq!(records.len(), 6, "{records:#?}");
    #[allow(clippy::type_complexity)]
    fn field(
        r: &EventRecord,
    ) -> (
        &str,
        &str,
        &str,
        Option<&str>,
        Option<&str>,
        Option<&str>,
        Option<f32>,
        f32,
    ) {
        (
            r.tenant_id.as_str(),
            r.operation.as_str(),
            r.tier.as_str(),
            r.outcome.as_deref(),
            r.counterpart.as_deref(),
            r.label.as_deref(),
            r.impact_score,
            r.compliance_score,
        )
    }
    let expected = [
        (
            "tenant-1",
            "constitutional_validation",
            "standard",
            Some("failure"),
            None,
            None,
            None,
            0.0,
        ),
        (
            "tenant-1",
            "agent_message",
            "standard",
            Some("success"),
            Some("agent-2"),
            Some("command"),
            None,
            1.0,
        ),
        (
            "tenant-1",
            "policy_evaluation",
            "enhanced",
            Some("failure"),
            Some("data-retention"),
            Some("deny"),
            None,
            1.0,
        ),
        (
            "tenant-1",
            "deliberation_request",
            "deliberation",
            None,
            None,
            None,
            Some(0.85),
            1.0,
        ),
        (
            "tenant-1",
            "hitl_approval",
            "deliberation",
            Some("success"),
            Some("reviewer-9"),
            None,
            None,
            1.0,
        ),
        (
            DEFAULT_TENANT,
            "agent_message",
            "standard",
            Some("success"),
            Some("agent-1"),
            Some("query"),
            None,
            1.0,
        ),
    ];
    for (record, expected) in records.iter().zip(expected) {
        assert_eq!(field(record), expected, "{record:#?}");
        assert_eq!(record.constitutional_hash, "cdd01ef066bc6cf2");
    }
    assert_eq!(records[1].tokens, 512);
    assert_eq!(records[1].latency_us, 900);
    assert_eq!(records[4].latency_us, 90_000_000);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn seed_hooks_reach_jsonl_with_their_own_fields() {
    let dir = TempDir::new("hooks-jsonl");
    let path = dir.0.join("metering.jsonl");
    let ring = Arc::new(MeterRing::with_capacity(64).unwrap());
    let flusher =
        MeteringFlusher::open(ring.clone(), Arc::new(JsonlSink::new(&path)), config(&dir))
            .await
            .unwrap();
    let hooks = MeteringHooks::new(ring.clone(), Tier::Standard, true);
    record_seed_calls(&hooks);
    assert_eq!(
        hooks.defaulted_tenants(),
        1,
        "the event without a tenant is counted"
    );
    let ledger = flusher.finish(Duration::from_secs(5)).await;
    assert_eq!((ledger.accepted, ledger.flushed), (6, 6), "{ledger:?}");
    let records: Vec<EventRecord> = std::fs::read_to_string(&path)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_seed_records(&records);
    // Fields not given are left out of the line, not written empty.
    let first = std::fs::read_to_string(&path).unwrap();
    let first = first.lines().next().unwrap();
    assert!(
        !first.contains("counterpart") && !first.contains("impact_score"),
        "{first}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn seed_hooks_reach_redis_with_their_own_fields() {
    let Some(server) = RedisServer::start() else {
        return;
    };
    let ns = server.namespace("hooks");
    let dir = TempDir::new("hooks-redis");
    let ring = Arc::new(MeterRing::with_capacity(64).unwrap());
    let sink = Arc::new(RedisStreamSink::new(&server.url(), &ns).unwrap());
    let flusher = MeteringFlusher::open(ring.clone(), sink, config(&dir))
        .await
        .unwrap();
    let hooks = MeteringHooks::new(ring.clone(), Tier::Standard, true);
    record_seed_calls(&hooks);
    let ledger = flusher.finish(Duration::from_secs(5)).await;
    assert_eq!((ledger.accepted, ledger.flushed), (6, 6), "{ledger:?}");
    let entries = server.meter_stream(&ns);
    // The stream's fields read back as the records the hooks made.
    let records: Vec<EventRecord> = entries
        .iter()
        .map(|f| EventRecord {
            outcome: f.get("outcome").cloned(),
            counterpart: f.get("counterpart").cloned(),
            label: f.get("label").cloned(),
            impact_score: f.get("impact_score").map(|s| s.parse().unwrap()),
            ..serde_json::from_value(serde_json::json!({
                "tenant_id": f["tenant_id"],
                "agent_id": f["agent_id"],
                "operation": f["operation"],
                "tier": f["tier"],
                "tokens": f["tokens"].parse::<u32>().unwrap(),
                "latency_us": f["latency_us"].parse::<u32>().unwrap(),
                "compliance_score": f["compliance_score"].parse::<f32>().unwrap(),
                "timestamp_ms": f["timestamp_ms"].parse::<u64>().unwrap(),
                "constitutional_hash": f["constitutional_hash"],
            }))
            .unwrap()
        })
        .collect();
    assert_seed_records(&records);
    assert!(!entries[0].contains_key("counterpart"), "{:?}", entries[0]);
}

#[tokio::test(start_paused = true)]
async fn metered_marks_how_the_work_ended() {
    let ring = Arc::new(MeterRing::with_capacity(64).unwrap());
    let hooks = MeteringHooks::new(ring.clone(), Tier::Premium, true);
    let ok: Result<u8, &str> = hooks
        .metered_result(Operation::PolicyEvaluation, "t", "a", async {
            tokio::time::sleep(Duration::from_millis(3)).await;
            Ok(1)
        })
        .await;
    let err: Result<u8, &str> = hooks
        .metered_result(Operation::PolicyEvaluation, "t", "a", async {
            Err("denied")
        })
        .await;
    assert_eq!((ok, err), (Ok(1), Err("denied")), "the work's own results");
    let scored = hooks
        .metered_with(
            Operation::ConstitutionalValidation,
            "t",
            "a",
            async { 0.25_f32 },
            |s| Verdict::success().compliance(*s),
        )
        .await;
    assert_eq!(scored, 0.25);
    let plain = hooks
        .metered(Operation::Other(3), "", "a", async { "done" })
        .await;
    assert_eq!(plain, "done");
    // A panicking work is recorded as a failure, and the panic still reaches the caller.
    let hooks2 = hooks.clone();
    let panicked = tokio::spawn(async move {
        hooks2
            .metered(Operation::AgentMessage, "t", "a", async {
                if true {
                    panic!("work failed");
                }
            })
            .await;
    })
    .await;
    assert!(panicked.unwrap_err().is_panic());

    let mut events: Vec<UsageEvent> = Vec::new();
    ring.drain_into(&mut events, 100);
    let seen: Vec<(Outcome, f32, &str)> = events
        .iter()
        .map(|e| (e.outcome, e.compliance_score, e.tenant.as_str()))
        .collect();
    assert_eq!(
        seen,
        [
            (Outcome::Success, 1.0, "t"),
            (Outcome::Failure, 0.0, "t"),
            (Outcome::Success, 0.25, "t"),
            (Outcome::Unknown, 1.0, DEFAULT_TENANT),
            (Outcome::Failure, 0.0, "t"),
        ]
    );
    assert_eq!(events[0].latency_us, 3_000, "the work's own duration");
    assert!(events.iter().all(|e| e.tier == Tier::Premium));
    assert_eq!(hooks.defaulted_tenants(), 1);
}

#[test]
fn bad_hook_arguments_are_typed_errors_naming_the_field() {
    let ring = Arc::new(MeterRing::with_capacity(16).unwrap());
    let hooks = MeteringHooks::new(ring.clone(), Tier::Standard, true);
    let invalid = |result: Result<(), HookError>| match result {
        Err(HookError::Invalid(MeterError::Invalid { field, .. })) => field,
        other => panic!("expected a typed error, got {other:?}"),
    };
    assert_eq!(
        invalid(hooks.deliberation_request("t", "a", 1.5).record()),
        "impact_score"
    );
    assert_eq!(
        invalid(
            hooks
                .agent_message("t", "a", "b", "a-very-long-message-type", true)
                .record()
        ),
        "label"
    );
    assert_eq!(
        invalid(
            hooks
                .hitl_approval("t", "a", &"r".repeat(44), true)
                .record()
        ),
        "counterpart"
    );
    assert_eq!(
        invalid(
            hooks
                .event(Operation::Other(1), "t", "a")
                .compliance(f32::NAN)
                .record()
        ),
        "compliance_score"
    );
    let message = hooks
        .deliberation_request("t", "a", 1.5)
        .record()
        .unwrap_err()
        .to_string();
    assert!(
        message.contains("impact_score") && message.contains("1.5"),
        "{message}"
    );
    assert_eq!(ring.ledger().offered, 0, "nothing invalid reached the ring");
    // Disabled hooks accept anything and record nothing.
    let off = MeteringHooks::disabled();
    off.deliberation_request("t", "a", 7.0).record().unwrap();
    assert!(!off.enabled());
}
#[tokio::test(start_paused = true)]
async fn hooks_record_each_operation_and_metered_times_the_work() {
    let ring = Arc::new(MeterRing::with_capacity(64).unwrap());
    let hooks = MeteringHooks::new(ring.clone(), Tier::Enterprise, true);
    hooks
        .on_constitutional_validation("t", "a", Duration::from_micros(10), 0.99)
        .unwrap();
    hooks
        .on_agent_message("t", "a", 128, Duration::from_micros(20))
        .unwrap();
    hooks
        .on_policy_evaluation("t", "a", Duration::from_micros(30), 1.0)
        .unwrap();
    hooks
        .on_deliberation_request("t", "a", 64, Duration::from_micros(40))
        .unwrap();
    hooks
        .on_hitl_approval("t", "a", Duration::from_secs(90))
        .unwrap();
    let out = hooks
        .metered(Operation::Other(9), "t", "a", async {
            tokio::time::sleep(Duration::from_millis(25)).await;
            7
        })
        .await;
    assert_eq!(out, 7);
    let mut events = Vec::new();
    ring.drain_into(&mut events, 100);
    let ops: Vec<Operation> = events.iter().map(|e| e.operation).collect();
    assert_eq!(
        ops,
        [
            Operation::ConstitutionalValidation,
            Operation::AgentMessage,
            Operation::PolicyEvaluation,
            Operation::DeliberationRequest,
            Operation::HitlApproval,
            Operation::Other(9)
        ]
    );
    assert!(events.iter().all(|e| e.tier == Tier::Enterprise));
    assert_eq!(events[5].latency_us, 25_000, "the work's own duration");
    assert_eq!(events[4].latency_us, 90_000_000);
    // Bad input is a typed error naming the field; metering never fails the work.
    let long = "x".repeat(44);
    assert!(matches!(
        hooks.on_agent_message(&long, "a", 1, Duration::ZERO),
        Err(HookError::Invalid(MeterError::Invalid {
            field: "tenant",
            ..
        }))
    ));
    assert!(
        hooks
            .on_policy_evaluation("t", "a", Duration::ZERO, 2.0)
            .is_err()
    );
    let off = MeteringHooks::new(ring.clone(), Tier::Free, false);
    off.on_agent_message("t", "a", 1, Duration::ZERO).unwrap();
    assert_eq!(ring.ledger().offered, 6, "disabled hooks record nothing");
}
