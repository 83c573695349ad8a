//! Fleet mode against a real redis-server: several instances (as tasks, each with its own
//! registry and chaos engine) sharing health, breaker quorums, recovery leases and chaos.
#![allow(clippy::unwrap_used, clippy::expect_used)] // tests may panic on bad setup

mod support;

use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use resilience_control::chaos::{ChaosConfig, ChaosEngine};
use resilience_control::fleet::{
    Fleet, FleetConfig, FleetError, FleetFault, FleetHealth, FleetMember, FleetScenario,
    InstanceReport, LeasedCheck,
};
use resilience_control::health::HealthStatus;
use resilience_control::recovery::HealthCheck;
use resilience_core::{BreakerRegistry, FaultTable, GovernanceHash, RejectReason, State};
use support::RedisServer;
use tokio_util::sync::CancellationToken;

fn config(server: &RedisServer, ns: &str, instance: &str) -> FleetConfig {
    FleetConfig::new(instance)
        .namespace(ns.to_owned())
        .redis_url(server.url())
        .publish_every(Duration::from_millis(50))
        .report_ttl(Duration::from_millis(400))
        .lease_ttl(Duration::from_millis(600))
        .follow_timeout(Duration::from_secs(3))
}

async fn fleet(server: &RedisServer, ns: &str, instance: &str) -> Fleet {
    Fleet::connect(config(server, ns, instance)).await.unwrap()
}

/// Polls `condition` every 20 ms for up to 5 s.
async fn eventually(what: &str, mut condition: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(5);
    while !condition() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

async fn eventually_async<F: Future<Output = bool>>(what: &str, mut condition: impl FnMut() -> F) {
    let deadline = Instant::now() + Duration::from_secs(8);
    while !condition().await {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Polls `watcher.fleet_health()` until `seen` holds; a read that fails (Redis restarting)
/// counts as not yet.
async fn until_fleet(what: &str, watcher: &Fleet, seen: impl Fn(&FleetHealth) -> bool) {
    eventually_async(what, || async {
        watcher.fleet_health().await.is_ok_and(|h| seen(&h))
    })
    .await;
}

fn report(instance: &str, status: HealthStatus, score: f64) -> InstanceReport {
    serde_json::from_value(serde_json::json!({
        "instance": instance,
        "status": status,
        "score": score,
        "breakers": {},
        "published_at_ms": 0,
        "governance": GovernanceHash::DEFAULT,
    }))
    .unwrap()
}

/// One instance: a registry with the given breakers, a chaos engine, and its fleet member.
struct Instance {
    registry: Arc<BreakerRegistry>,
    engine: ChaosEngine,
    cancel: CancellationToken,
    task: tokio::task::JoinHandle<()>,
}

impl Instance {
    async fn start(server: &RedisServer, ns: &str, name: &str, breakers: &[&str]) -> Instance {
        let registry = Arc::new(BreakerRegistry::new());
        for name in breakers {
            registry.breaker(name).unwrap();
        }
        let table = Arc::new(FaultTable::builder().build().unwrap());
        let engine = ChaosEngine::builder(table)
            .breakers(registry.clone())
            .config(ChaosConfig::default().enabled(true))
            .build()
            .unwrap();
        let member =
            FleetMember::new(fleet(server, ns, name).await, registry.clone()).chaos(engine.clone());
        let cancel = CancellationToken::new();
        let task = tokio::spawn(member.run(cancel.clone()));
        Instance {
            registry,
            engine,
            cancel,
            task,
        }
    }

    fn state(&self, breaker: &str) -> State {
        self.registry.get(breaker).unwrap().state()
    }

    async fn stop(self) {
        self.cancel.cancel();
        self.task.await.unwrap();
    }
}

#[tokio::test]
async fn fleet_health_aggregates_live_instances_and_notices_silent_ones() {
    let Some(server) = RedisServer::start() else {
        return;
    };
    let a = fleet(&server, "health", "a").await;
    let b = fleet(&server, "health", "b").await;
    let c = fleet(&server, "health", "c").await;
    a.publish(&report("a", HealthStatus::Healthy, 1.0))
        .await
        .unwrap();
    b.publish(&report("b", HealthStatus::Degraded, 0.6))
        .await
        .unwrap();
    c.publish(&report("c", HealthStatus::Critical, 0.2))
        .await
        .unwrap();
    let health = a.fleet_health().await.unwrap();
    assert_eq!(health.live(), 3);
    assert_eq!(health.worst, HealthStatus::Critical);
    assert!((health.mean_score.unwrap() - 0.6).abs() < 1e-9);
    assert!(health.silent.is_empty());

    // c goes quiet; a and b keep publishing.
    for _ in 0..6 {
        tokio::time::sleep(Duration::from_millis(100)).await;
        a.publish(&report("a", HealthStatus::Healthy, 1.0))
            .await
            .unwrap();
        b.publish(&report("b", HealthStatus::Degraded, 0.6))
            .await
            .unwrap();
    }
    let health = b.fleet_health().await.unwrap();
    let live: Vec<_> = health
        .instances
        .iter()
        .map(|r| r.instance.as_str())
        .collect();
    assert_eq!(live, ["a", "b"]);
    assert_eq!(health.worst, HealthStatus::Degraded);
    assert_eq!(health.silent.len(), 1);
    assert_eq!(health.silent[0].instance, "c");
}

#[tokio::test]
async fn a_fleet_with_another_governance_tag_refuses_to_start() {
    let Some(server) = RedisServer::start() else {
        return;
    };
    let _first = fleet(&server, "gov", "a").await;
    let other: GovernanceHash = "0123456789abcdef".parse().unwrap();
    let err = Fleet::connect(config(&server, "gov", "b").governance(other))
        .await
        .unwrap_err();
    assert!(matches!(err, FleetError::Governance(_)), "{err}");
    assert!(err.to_string().contains("0123456789abcdef"), "{err}");
}

#[tokio::test]
async fn bad_settings_name_the_field_and_value() {
    let err = FleetConfig::new("a b").validate().unwrap_err();
    assert!(err.to_string().contains("instance = a b"), "{err}");
    let err = FleetConfig::new("a").quorum(1.5).validate().unwrap_err();
    assert!(err.to_string().contains("quorum = 1.5"), "{err}");
    let err = FleetConfig::new("a")
        .report_ttl(Duration::from_millis(500))
        .publish_every(Duration::from_secs(1))
        .validate()
        .unwrap_err();
    assert!(
        matches!(
            err,
            FleetError::Invalid {
                field: "report_ttl",
                ..
            }
        ),
        "{err}"
    );
}

#[tokio::test]
async fn a_quorum_of_open_breakers_opens_the_dependency_everywhere() {
    let Some(server) = RedisServer::start() else {
        return;
    };
    let a = Instance::start(&server, "quorum", "a", &["payments", "search"]).await;
    let b = Instance::start(&server, "quorum", "b", &["payments", "search"]).await;
    let c = Instance::start(&server, "quorum", "c", &["payments", "search"]).await;

    // One instance of three is no quorum (default: half of those reporting).
    a.registry.get("payments").unwrap().trip_open();
    tokio::time::sleep(Duration::from_millis(400)).await;
    assert_eq!(c.state("payments"), State::Closed);

    // Two of three are.
    b.registry.get("payments").unwrap().trip_open();
    eventually("c to adopt OPEN", || {
        c.state("payments") == State::ForcedOpen
    })
    .await;
    let rejected = c
        .registry
        .get("payments")
        .unwrap()
        .try_acquire()
        .unwrap_err();
    assert_eq!(rejected.reason(), RejectReason::ForcedOpen);
    assert_eq!(
        c.state("search"),
        State::Closed,
        "other dependencies untouched"
    );

    // The dependency recovers where it had failed; the adopter gives its breaker back.
    a.registry.get("payments").unwrap().reset();
    b.registry.get("payments").unwrap().reset();
    eventually("c to give the breaker back", || {
        c.state("payments") == State::Closed
    })
    .await;

    // A member that stops (or dies) never leaves a breaker stuck open.
    b.registry.get("payments").unwrap().trip_open();
    a.registry.get("payments").unwrap().trip_open();
    eventually("c to adopt again", || {
        c.state("payments") == State::ForcedOpen
    })
    .await;
    c.task.abort();
    let c_registry = c.registry.clone();
    eventually("the adoption to lapse on its own", || {
        c_registry.get("payments").unwrap().try_acquire().is_ok()
    })
    .await;
    a.stop().await;
    b.stop().await;
}

#[tokio::test]
async fn one_lease_holder_at_a_time_and_a_dead_holders_result_is_fenced_out() {
    let Some(server) = RedisServer::start() else {
        return;
    };
    let a = fleet(&server, "lease", "a").await;
    let b = fleet(&server, "lease", "b").await;
    let first = a.try_lease("db").await.unwrap().expect("free lease");
    assert!(b.try_lease("db").await.unwrap().is_none(), "held by a");
    assert_eq!(
        b.lease_holder("db").await.unwrap(),
        Some(("a".into(), first.fence))
    );

    // a dies mid-lease: the lease frees itself after its TTL.
    tokio::time::sleep(Duration::from_millis(700)).await;
    let second = b.try_lease("db").await.unwrap().expect("expired lease");
    assert!(second.fence > first.fence);
    // a comes back with its stale result: refused, nothing published.
    assert!(!a.complete(&first, false).await.unwrap());
    assert!(!a.renew(&first).await.unwrap());
    assert_eq!(a.lease_result("db").await.unwrap(), None);
    assert!(b.complete(&second, true).await.unwrap());
    let result = a.lease_result("db").await.unwrap().unwrap();
    assert_eq!((result.fence, result.succeeded), (second.fence, true));
}

#[tokio::test]
async fn only_the_lease_holder_probes_and_the_others_follow_its_result() {
    let Some(server) = RedisServer::start() else {
        return;
    };
    let probes = Arc::new(AtomicUsize::new(0));
    let healthy = Arc::new(std::sync::atomic::AtomicBool::new(true));
    let check = |probes: Arc<AtomicUsize>, healthy: Arc<std::sync::atomic::AtomicBool>| {
        move |_service: String| {
            let (probes, healthy) = (probes.clone(), healthy.clone());
            async move {
                probes.fetch_add(1, Ordering::SeqCst);
                tokio::time::sleep(Duration::from_millis(200)).await;
                if healthy.load(Ordering::SeqCst) {
                    Ok(())
                } else {
                    Err("still down".to_owned())
                }
            }
        }
    };
    let mut checks = Vec::new();
    for name in ["a", "b", "c"] {
        checks.push(LeasedCheck::new(
            fleet(&server, "follow", name).await,
            check(probes.clone(), healthy.clone()),
        ));
    }
    let results = futures_util::future::join_all(checks.iter().map(|c| c.check("db".into()))).await;
    assert_eq!(results, vec![Ok(()), Ok(()), Ok(())]);
    assert_eq!(probes.load(Ordering::SeqCst), 1, "one probe for the fleet");

    healthy.store(false, Ordering::SeqCst);
    let results = futures_util::future::join_all(checks.iter().map(|c| c.check("db".into()))).await;
    assert!(results.iter().all(Result::is_err), "{results:?}");
    assert_eq!(probes.load(Ordering::SeqCst), 2);

    // The holder dies mid-probe: followers give up, and the next attempt probes anew once the
    // lease has expired.
    healthy.store(true, Ordering::SeqCst);
    let hanging = LeasedCheck::new(fleet(&server, "follow", "d").await, |_s: String| async {
        std::future::pending::<Result<(), String>>().await
    });
    let holder = tokio::spawn(hanging.check("db".into()));
    let follower = fleet(&server, "follow", "a").await;
    eventually_async("d to hold the lease", || {
        let follower = follower.clone();
        async move { follower.lease_holder("db").await.unwrap().is_some() }
    })
    .await;
    holder.abort();
    tokio::time::sleep(Duration::from_millis(700)).await;
    assert_eq!(checks[0].check("db".into()).await, Ok(()));
    assert_eq!(probes.load(Ordering::SeqCst), 3);
}

#[tokio::test]
async fn fleet_chaos_reaches_every_instance_and_a_late_joiner_obeys_the_stop() {
    let Some(server) = RedisServer::start() else {
        return;
    };
    let operator = fleet(&server, "chaos", "operator").await;
    let a = Instance::start(&server, "chaos", "a", &["search"]).await;
    let b = Instance::start(&server, "chaos", "b", &["search"]).await;
    operator
        .start_scenario(&FleetScenario::new(
            "slow-search",
            "search",
            FleetFault::Latency { ms: 50 },
            Duration::from_secs(30),
        ))
        .await
        .unwrap();
    eventually("both to run the scenario", || {
        a.engine.active().len() == 1 && b.engine.active().len() == 1
    })
    .await;
    assert_eq!(a.engine.active()[0].scenario.name(), "slow-search");

    operator.emergency_stop("operator").await.unwrap();
    eventually("both to stop", || {
        a.engine.is_stopped() && b.engine.is_stopped()
    })
    .await;
    assert!(a.engine.active().is_empty());

    // Started after the stop: obeys it from its first round.
    let late = Instance::start(&server, "chaos", "late", &["search"]).await;
    eventually("the late joiner to stop", || late.engine.is_stopped()).await;
    assert!(late.engine.active().is_empty());
    let state = operator.chaos_state().await.unwrap();
    assert_eq!(state.stopped.unwrap().by, "operator");

    operator.resume().await.unwrap();
    eventually("everyone to resume and rejoin the scenario", || {
        [&a, &b, &late]
            .iter()
            .all(|i| !i.engine.is_stopped() && i.engine.active().len() == 1)
    })
    .await;
    assert!(operator.stop_scenario("slow-search").await.unwrap());
    eventually("the scenario to end everywhere", || {
        [&a, &b, &late].iter().all(|i| i.engine.active().is_empty())
    })
    .await;
    for instance in [a, b, late] {
        instance.stop().await;
    }
}

#[tokio::test]
async fn a_fleet_blast_radius_caps_the_share_of_instances() {
    let Some(server) = RedisServer::start() else {
        return;
    };
    let operator = fleet(&server, "radius", "operator").await;
    let mut instances = Vec::new();
    for name in ["a", "b", "c", "d"] {
        instances.push(Instance::start(&server, "radius", name, &["db"]).await);
    }
    until_fleet("four live instances", &operator, |h| h.live() == 4).await;
    operator
        .start_scenario(
            &FleetScenario::new(
                "db-errors",
                "db",
                FleetFault::Errors {
                    rate: 1.0,
                    code: 503,
                },
                Duration::from_secs(30),
            )
            .share(0.5),
        )
        .await
        .unwrap();
    eventually("two instances to take part", || {
        instances
            .iter()
            .filter(|i| i.engine.active().len() == 1)
            .count()
            == 2
    })
    .await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(
        instances
            .iter()
            .filter(|i| i.engine.active().len() == 1)
            .count(),
        2,
        "never more than half"
    );
    for instance in instances {
        instance.stop().await;
    }
}

#[tokio::test]
async fn a_member_started_while_redis_is_down_joins_when_it_comes_up() {
    // A port where a server ran a moment ago and none runs now.
    let Some(probe) = RedisServer::start() else {
        return;
    };
    let port = probe.port();
    drop(probe);
    let url = format!("redis://127.0.0.1:{port}");
    let settings = FleetConfig::new("early")
        .namespace("lazy".to_owned())
        .redis_url(url)
        .publish_every(Duration::from_millis(50))
        .report_ttl(Duration::from_millis(400));
    assert!(matches!(
        Fleet::connect(settings.clone()).await,
        Err(FleetError::Redis(_))
    ));
    let registry = Arc::new(BreakerRegistry::new());
    registry.breaker("db").unwrap();
    let cancel = CancellationToken::new();
    let member = tokio::spawn(
        FleetMember::new(Fleet::lazy(settings).unwrap(), registry.clone()).run(cancel.clone()),
    );
    tokio::time::sleep(Duration::from_millis(200)).await;
    let server = RedisServer::start_on(port);
    let watcher = fleet(&server, "lazy", "watcher").await;
    until_fleet("the early member to join", &watcher, |h| {
        h.instances.iter().any(|r| r.instance == "early")
    })
    .await;
    cancel.cancel();
    member.await.unwrap();
}

#[tokio::test]
async fn members_carry_on_through_a_redis_restart() {
    let Some(mut server) = RedisServer::start() else {
        return;
    };
    let a = Instance::start(&server, "restart", "a", &["db"]).await;
    let watcher = fleet(&server, "restart", "watcher").await;
    until_fleet("a to publish", &watcher, |h| h.live() == 1).await;
    server.restart(); // an empty server: every key is gone
    until_fleet("a to publish again after the restart", &watcher, |h| {
        h.instances.iter().any(|r| r.instance == "a")
    })
    .await;
    assert!(!a.task.is_finished(), "the member survived the outage");
    a.stop().await;
}

#[tokio::test]
async fn control_planes_in_a_fleet_probe_a_recovering_dependency_once() {
    use resilience_control::ControlPlane;
    use resilience_control::recovery::{RecoveryPolicy, RecoveryStrategy};

    let Some(server) = RedisServer::start() else {
        return;
    };
    let probes = Arc::new(AtomicUsize::new(0));
    let mut planes = Vec::new();
    let mut registries = Vec::new();
    for name in ["a", "b", "c"] {
        let registry = Arc::new(BreakerRegistry::new());
        registry.breaker("db").unwrap();
        let counted = probes.clone();
        let plane = ControlPlane::builder()
            .registry(registry.clone())
            .fleet(fleet(&server, "planes", name).await)
            .health_check("db", move |_service: String| {
                let counted = counted.clone();
                async move {
                    counted.fetch_add(1, Ordering::SeqCst);
                    tokio::time::sleep(Duration::from_millis(300)).await;
                    Ok(())
                }
            })
            .recovery_policy(
                "db",
                RecoveryPolicy::with_strategy(RecoveryStrategy::Immediate),
            )
            .spawn()
            .unwrap();
        planes.push(plane);
        registries.push(registry);
    }
    for registry in &registries {
        registry.get("db").unwrap().trip_open();
    }
    eventually("every instance to recover db", || {
        registries
            .iter()
            .all(|r| r.get("db").unwrap().state() == State::Closed)
    })
    .await;
    assert_eq!(
        probes.load(Ordering::SeqCst),
        1,
        "one probe for three instances"
    );
    for plane in planes {
        plane.shutdown().await.unwrap();
    }
}

/// An instance whose registry and fleet carry `tag`.
async fn instance_with_tag(
    server: &RedisServer,
    ns: &str,
    name: &str,
    tag: GovernanceHash,
) -> (
    Arc<BreakerRegistry>,
    CancellationToken,
    tokio::task::JoinHandle<()>,
) {
    let defaults = resilience_core::BreakerConfig::builder()
        .governance(tag)
        .build()
        .unwrap();
    let registry = Arc::new(BreakerRegistry::new().with_defaults(defaults));
    registry.breaker("db").unwrap();
    // Lazy, as `serve` joins when Redis is not there yet: the member asserts the tag itself.
    let fleet = Fleet::lazy(config(server, ns, name).governance(tag)).unwrap();
    let member = FleetMember::new(fleet, registry.clone());
    let cancel = CancellationToken::new();
    let task = tokio::spawn(member.run(cancel.clone()));
    (registry, cancel, task)
}

#[tokio::test]
async fn after_a_redis_restart_a_misconfigured_instance_cannot_take_the_fleet() {
    let Some(mut server) = RedisServer::start() else {
        return;
    };
    let ns = "hijack";
    let a = Instance::start(&server, ns, "a", &["db"]).await;
    let b = Instance::start(&server, ns, "b", &["db"]).await;
    let c = Instance::start(&server, ns, "c", &["db"]).await;
    let watcher = Fleet::lazy(config(&server, ns, "watcher")).unwrap();
    until_fleet("three members", &watcher, |h| h.live() == 3).await;

    // Redis restarts empty, and a misconfigured instance starts at once, racing the members.
    server.restart();
    let wrong: GovernanceHash = "deadbeefdeadbeef".parse().unwrap();
    let (w_registry, w_cancel, w_task) = instance_with_tag(&server, ns, "w", wrong).await;
    // It sees `db` open; were it counted, 2 of 4 would be a quorum (default: half).
    w_registry.get("db").unwrap().trip_open();
    a.registry.get("db").unwrap().trip_open();

    // The members put the fleet's tag back; the newcomer is refused and counted nowhere.
    let mut redis = server.connection();
    let mut tag = String::new();
    for _ in 0..250 {
        tag = redis::cmd("GET")
            .arg(format!("{{{ns}}}:governance"))
            .query::<Option<String>>(&mut redis)
            .unwrap()
            .unwrap_or_default();
        if tag.starts_with(&GovernanceHash::DEFAULT.to_string()) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(
        tag.starts_with("cdd01ef066bc6cf2"),
        "the fleet's tag: {tag:?}"
    );
    let refused = Fleet::lazy(config(&server, ns, "w2").governance(wrong))
        .unwrap()
        .assert_governance()
        .await
        .unwrap_err();
    assert!(matches!(refused, FleetError::Governance(_)), "{refused}");
    assert!(
        refused.to_string().contains("cdd01ef066bc6cf2"),
        "{refused}"
    );
    until_fleet("w listed as foreign, never as live", &watcher, |h| {
        h.live() == 3 && h.instances.iter().all(|r| r.instance != "w")
    })
    .await;
    tokio::time::sleep(Duration::from_millis(600)).await;
    for member in [&b, &c] {
        assert_eq!(member.state("db"), State::Closed, "1 of 3 is no quorum");
    }
    let health = watcher.fleet_health().await.unwrap();
    assert_eq!(health.votes("db"), (1, 3));
    let w_report: Option<String> = redis::cmd("GET")
        .arg(format!("{{{ns}}}:health:w"))
        .query(&mut redis)
        .unwrap();
    assert_eq!(w_report, None, "the refused instance has no live report");

    // A correctly configured instance started now joins, and an operator can stop chaos.
    let d = Instance::start(&server, ns, "d", &["db"]).await;
    let operator = Fleet::lazy(config(&server, ns, "operator")).unwrap();
    operator.emergency_stop("operator").await.unwrap();
    until_fleet("four members", &watcher, |h| h.live() == 4).await;

    w_cancel.cancel();
    w_task.await.unwrap();
    for member in [a, b, c, d] {
        member.stop().await;
    }
}

#[tokio::test]
async fn read_only_commands_write_nothing() {
    let Some(server) = RedisServer::start() else {
        return;
    };
    let reader = Fleet::lazy(config(&server, "readonly", "reader")).unwrap();
    reader.fleet_health().await.unwrap();
    reader.chaos_state().await.unwrap();
    reader.lease_holder("db").await.unwrap();
    let keys: Vec<String> = redis::cmd("KEYS")
        .arg("*")
        .query(&mut server.connection())
        .unwrap();
    assert!(keys.is_empty(), "{keys:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_adopted_hold_lapses_on_time_with_redis_down_and_no_traffic() {
    use resilience_control::ControlPlane;
    use resilience_control::health::HealthConfig;

    let Some(mut server) = RedisServer::start() else {
        return;
    };
    let a = Instance::start(&server, "lapse", "a", &["db"]).await;
    let b = Instance::start(&server, "lapse", "b", &["db"]).await;
    let registry = Arc::new(BreakerRegistry::new());
    registry.breaker("db").unwrap();
    let control = ControlPlane::builder()
        .registry(registry.clone())
        .health(HealthConfig::default().interval(Duration::from_millis(50)))
        .fleet(fleet(&server, "lapse", "c").await)
        .spawn()
        .unwrap();
    a.registry.get("db").unwrap().trip_open();
    b.registry.get("db").unwrap().trip_open();
    eventually("c to adopt OPEN", || {
        registry.get("db").unwrap().state() == State::ForcedOpen
    })
    .await;
    eventually("c's health to see it", || {
        control.health().report().status == HealthStatus::Critical
    })
    .await;

    // Redis dies; nobody calls `db` here. The hold (three 50 ms periods) must still end.
    server.kill();
    let killed = Instant::now();
    eventually("the hold to lapse and health to recover", || {
        registry.get("db").unwrap().state() == State::Closed
            && control.health().report().status == HealthStatus::Healthy
    })
    .await;
    let lapsed = killed.elapsed();
    eprintln!(
        "hold lapsed and health recovered {} ms after Redis died",
        lapsed.as_millis()
    );
    assert!(lapsed < Duration::from_secs(1), "{lapsed:?}");
    control.shutdown().await.unwrap();
    a.stop().await;
    b.stop().await;
}

#[tokio::test]
async fn a_local_resume_cannot_lift_a_fleet_stop() {
    use resilience_control::chaos::ChaosEngineError;
    let Some(server) = RedisServer::start() else {
        return;
    };
    let a = Instance::start(&server, "stopwins", "a", &["db"]).await;
    let operator = Fleet::lazy(config(&server, "stopwins", "operator")).unwrap();
    operator.emergency_stop("operator").await.unwrap();
    eventually("the stop to reach a", || a.engine.is_fleet_stopped()).await;
    assert_eq!(a.engine.resume(), Err(ChaosEngineError::FleetStopped));
    assert!(a.engine.is_stopped(), "still stopped");
    assert!(a.engine.metrics().fleet_stopped);
    let refused = a
        .engine
        .inject_latency("db", Duration::from_millis(5))
        .start();
    assert!(
        refused.is_err(),
        "nothing starts while the fleet is stopped"
    );
    operator.resume().await.unwrap();
    eventually("the fleet resume to reach a", || !a.engine.is_stopped()).await;
    assert!(!a.engine.is_fleet_stopped());
    a.stop().await;
}
