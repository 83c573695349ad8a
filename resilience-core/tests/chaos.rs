//! `FaultTable`: validation, blast radius, expiry on the data path, priorities, rates, unique
//! names, emergency stop, and breakers forced open by chaos.
#![allow(clippy::unwrap_used, clippy::expect_used)] // tests may panic on bad setup

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Barrier};
use std::thread;
use std::time::{Duration, Instant};

use resilience_core::chaos::{
    ChaosError, ChaosLimits, ErrorCode, Fault, FaultKind, FaultSpec, FaultTable, ForceableBreaker,
    Resource, Scenario, seed_thread_rng,
};
use resilience_core::{CircuitBreaker, ManualClock, RejectReason, State};

fn table(clock: &ManualClock) -> FaultTable<ManualClock> {
    FaultTable::builder().clock(clock.clone()).build().unwrap()
}

const SECOND: Duration = Duration::from_secs(1);

fn latency(ms: u64) -> FaultSpec {
    FaultSpec::Latency(Duration::from_millis(ms))
}

#[test]
fn nothing_armed_means_no_fault_anywhere() {
    let clock = ManualClock::new();
    let t = table(&clock);
    let p = t.point("db").unwrap();
    assert_eq!(t.check(p), None);
    assert_eq!(t.armed_entries(), 0);
    assert_eq!(t.point("db").unwrap(), p, "points resolve to the same slot");
}

#[test]
fn every_bound_is_enforced_with_a_named_field() {
    let clock = ManualClock::new();
    let t = table(&clock);
    let cases: Vec<(Scenario, &str)> = vec![
        (
            Scenario::new("a", "db", latency(10)).duration(Duration::from_secs(301)),
            "duration",
        ),
        (
            Scenario::new("a", "db", latency(10)).duration(Duration::ZERO),
            "duration",
        ),
        (Scenario::new("a", "db", latency(5001)), "latency"),
        (Scenario::new("a", "db", latency(1)).rate(1.01), "rate"),
        (Scenario::new("a", "db", latency(1)).rate(-0.1), "rate"),
        (Scenario::new("a", "db", latency(1)).rate(f64::NAN), "rate"),
        (
            Scenario::new("a", "db", FaultSpec::Timeout(Duration::ZERO)),
            "timeout",
        ),
        (
            Scenario::new(
                "a",
                "db",
                FaultSpec::ResourceExhaustion {
                    resource: Resource::Cpu,
                    level: 1.5,
                },
            ),
            "level",
        ),
        (Scenario::new("", "db", latency(1)), "name"),
        (Scenario::new("a", "", latency(1)), "target"),
        (
            Scenario::new("a", "db", latency(1)).blast_radius(["cache"]),
            "blast_radius",
        ),
        (
            Scenario::new("a", "db", latency(1)).blast_radius((0..65).map(|i| format!("t{i}"))),
            "blast_radius",
        ),
    ];
    for (scenario, field) in cases {
        let err = t.arm(scenario.clone()).unwrap_err();
        assert_eq!(err.field(), Some(field), "{scenario:?}: {err}");
    }
    assert!(matches!(
        t.arm(Scenario::new("a", "db", latency(1)).blast_radius(["cache"])),
        Err(ChaosError::TargetOutsideBlastRadius { target, .. }) if target == "db"
    ));
    // The edges themselves are accepted.
    t.arm(
        Scenario::new("edge", "db", latency(5000))
            .duration(Duration::from_secs(300))
            .rate(0.0),
    )
    .unwrap();
    assert_eq!(t.armed_entries(), 1);
    let custom = ChaosLimits::with_max_duration(Duration::from_secs(10)).unwrap();
    let strict = FaultTable::builder()
        .clock(clock.clone())
        .limits(custom)
        .build()
        .unwrap();
    assert_eq!(
        strict
            .arm(Scenario::new("b", "db", latency(1)).duration(Duration::from_secs(11)))
            .unwrap_err()
            .field(),
        Some("duration")
    );
}

#[test]
fn a_scenario_hits_its_blast_radius_and_nothing_else() {
    let clock = ManualClock::new();
    let t = table(&clock);
    let (db, replica, cache) = (
        t.point("db").unwrap(),
        t.point("db-replica").unwrap(),
        t.point("cache").unwrap(),
    );
    t.arm(Scenario::new("db-down", "db", FaultSpec::Partition).blast_radius(["db", "db-replica"]))
        .unwrap();
    assert_eq!(t.check(db), Some(Fault::Partition));
    assert_eq!(t.check(replica), Some(Fault::Partition));
    assert_eq!(t.check(cache), None, "outside the blast radius");
    // A point first named in a blast radius resolves to the slot the scenario armed.
    let late = t.point("db-replica").unwrap();
    assert_eq!(t.check(late), Some(Fault::Partition));
}

#[test]
fn expiry_is_enforced_on_the_data_path_without_any_control_plane() {
    let clock = ManualClock::new();
    let t = table(&clock);
    let p = t.point("api").unwrap();
    t.arm(Scenario::new("slow", "api", latency(300)).duration(Duration::from_secs(30)))
        .unwrap();
    clock.advance(Duration::from_millis(29_999));
    assert_eq!(t.check(p), Some(Fault::Latency(Duration::from_millis(300))));
    clock.advance(Duration::from_millis(1));
    assert_eq!(t.check(p), None, "expired exactly on time");
    assert_eq!(t.active(), vec![], "and no longer reported active");
    assert_eq!(t.sweep_expired().len(), 1);
    assert_eq!(t.armed_entries(), 0, "sweeping frees the slot");
}

#[test]
fn faults_that_end_a_call_are_tried_before_latency() {
    let clock = ManualClock::new();
    let t = table(&clock);
    let p = t.point("svc").unwrap();
    t.arm(Scenario::new("slow", "svc", latency(100))).unwrap();
    t.arm(Scenario::new("errors", "svc", FaultSpec::Error(ErrorCode(503))).rate(0.25))
        .unwrap();
    seed_thread_rng(11);
    let mut errors = 0;
    for _ in 0..10_000 {
        match t.check(p) {
            Some(Fault::Error(ErrorCode(503))) => errors += 1,
            Some(Fault::Latency(d)) => assert_eq!(d, Duration::from_millis(100)),
            other => panic!("unexpected {other:?}"),
        }
    }
    assert!(
        (2_300..2_700).contains(&errors),
        "25% errors, the rest slow: {errors}"
    );
    assert_eq!(t.injections(FaultKind::Error), errors);
    assert_eq!(t.injections(FaultKind::Latency), 10_000 - errors);
    let active = t.active();
    let injections: u64 = active.iter().map(|a| a.injections).sum();
    assert_eq!(injections, 10_000);
}

#[test]
fn seeded_rates_are_reproducible() {
    let clock = ManualClock::new();
    let t = table(&clock);
    let p = t.point("svc").unwrap();
    t.arm(Scenario::new("flaky", "svc", FaultSpec::Timeout(SECOND)).rate(0.5))
        .unwrap();
    let run = || {
        seed_thread_rng(99);
        (0..64).map(|_| t.check(p).is_some()).collect::<Vec<_>>()
    };
    assert_eq!(run(), run());
}

#[test]
fn names_are_unique_and_a_reused_name_is_a_new_arming() {
    let clock = ManualClock::new();
    let t = table(&clock);
    let p = t.point("q").unwrap();
    let first = t
        .arm(Scenario::new("drill", "q", latency(10)).duration(Duration::from_secs(10)))
        .unwrap();
    assert!(matches!(
        t.arm(Scenario::new("drill", "q", latency(20))),
        Err(ChaosError::DuplicateName { name }) if name == "drill"
    ));
    clock.advance(Duration::from_secs(10));
    let second = t
        .arm(Scenario::new("drill", "q", latency(20)).duration(Duration::from_secs(60)))
        .unwrap();
    assert_ne!(first, second);
    // The first arming's timer fires late: it must not end the second.
    assert!(!t.disarm(first));
    assert_eq!(t.check(p), Some(Fault::Latency(Duration::from_millis(20))));
    assert_eq!(t.disarm_name("drill").unwrap(), second);
    assert_eq!(t.check(p), None);
    assert!(matches!(
        t.disarm_name("drill"),
        Err(ChaosError::Unknown { .. })
    ));
}

#[test]
fn a_point_holds_at_most_four_scenarios_and_a_refused_arming_leaves_nothing_behind() {
    let clock = ManualClock::new();
    let t = table(&clock);
    for i in 0..4 {
        t.arm(Scenario::new(format!("s{i}"), "hot", latency(i)))
            .unwrap();
    }
    let err = t
        .arm(Scenario::new("s4", "cold", latency(1)).blast_radius(["cold", "hot"]))
        .unwrap_err();
    assert!(
        matches!(err, ChaosError::TooManyFaults { ref target, max: 4 } if target == "hot"),
        "{err}"
    );
    assert_eq!(
        t.check(t.point("cold").unwrap()),
        None,
        "the partial arming was rolled back"
    );
    assert_eq!(t.active().len(), 4);
    assert_eq!(t.armed_entries(), 4);
}

#[test]
fn the_point_capacity_is_a_typed_error() {
    let clock = ManualClock::new();
    let t = FaultTable::builder()
        .clock(clock.clone())
        .capacity(2)
        .build()
        .unwrap();
    t.point("a").unwrap();
    t.point("b").unwrap();
    assert!(matches!(
        t.point("c"),
        Err(ChaosError::TooManyPoints { capacity: 2 })
    ));
    assert!(FaultTable::builder().capacity(0).build().is_err());
}

#[test]
fn emergency_stop_disarms_everything_refuses_arming_and_restores_breakers() {
    let clock = ManualClock::new();
    let t = table(&clock);
    let p = t.point("db").unwrap();
    let breaker = Arc::new(
        CircuitBreaker::builder("db")
            .clock(clock.clone())
            .build()
            .unwrap(),
    );
    let id = t
        .arm(
            Scenario::new("db-open", "db", FaultSpec::BreakerOpen)
                .duration(Duration::from_secs(60)),
        )
        .unwrap();
    let forced = t
        .force_breakers_open(id, [breaker.clone() as Arc<dyn ForceableBreaker>])
        .unwrap();
    assert_eq!(forced, 1);
    assert_eq!(t.check(p), Some(Fault::BreakerOpen));
    assert_eq!(
        breaker.try_acquire().unwrap_err().reason(),
        RejectReason::ForcedOpen
    );

    let report = t.emergency_stop();
    assert_eq!((report.scenarios, report.breakers_restored), (1, 1));
    assert_eq!(t.check(p), None);
    assert_eq!(breaker.state(), State::Closed, "restored at once");
    assert!(matches!(
        t.arm(Scenario::new("x", "db", latency(1))),
        Err(ChaosError::EmergencyStopped)
    ));
    t.resume();
    t.arm(Scenario::new("x", "db", latency(1))).unwrap();
    assert!(t.check(p).is_some());
}

#[test]
fn forced_breakers_end_on_time_by_themselves_and_on_disarm() {
    let clock = ManualClock::new();
    let t = table(&clock);
    let a = Arc::new(
        CircuitBreaker::builder("a")
            .clock(clock.clone())
            .build()
            .unwrap(),
    );
    let b = Arc::new(
        CircuitBreaker::builder("b")
            .clock(clock.clone())
            .build()
            .unwrap(),
    );
    let id = t
        .arm(Scenario::new("open-a", "a", FaultSpec::BreakerOpen).duration(Duration::from_secs(5)))
        .unwrap();
    t.force_breakers_open(id, [a.clone() as Arc<dyn ForceableBreaker>])
        .unwrap();
    clock.advance(Duration::from_secs(5));
    assert!(
        a.try_acquire().is_ok(),
        "the breaker restored itself at the deadline"
    );

    let id = t
        .arm(Scenario::new("open-b", "b", FaultSpec::BreakerOpen).duration(Duration::from_secs(60)))
        .unwrap();
    t.force_breakers_open(id, [b.clone() as Arc<dyn ForceableBreaker>])
        .unwrap();
    assert!(t.disarm(id));
    assert_eq!(b.state(), State::Closed, "disarming restores it");
    assert!(matches!(
        t.force_breakers_open(id, []),
        Err(ChaosError::Unknown { .. })
    ));
}

#[test]
// Measures how long real threads take to see the stop, so it reads the real clock.
#[allow(clippy::disallowed_methods)]
fn emergency_stop_is_seen_by_every_thread_at_once() {
    const THREADS: usize = 3;
    let t = Arc::new(FaultTable::builder().build().unwrap());
    let p = t.point("svc").unwrap();
    t.arm(Scenario::new(
        "drill",
        "svc",
        FaultSpec::Error(ErrorCode(500)),
    ))
    .unwrap();
    let stop_at = Arc::new(AtomicU64::new(0));
    let done = Arc::new(AtomicBool::new(false));
    let started = Instant::now();
    let ready = Arc::new(Barrier::new(THREADS + 1));
    let workers: Vec<_> = (0..THREADS)
        .map(|_| {
            let (t, stop_at, ready) = (t.clone(), stop_at.clone(), ready.clone());
            thread::spawn(move || {
                ready.wait();
                // Spin until the stop is visible; report how long after the store that was.
                while t.check(p).is_some() {}
                let seen = started.elapsed().as_nanos() as u64;
                while stop_at.load(Ordering::Acquire) == 0 {}
                seen.saturating_sub(stop_at.load(Ordering::Acquire))
            })
        })
        .collect();
    ready.wait();
    thread::sleep(Duration::from_millis(5));
    stop_at.store(started.elapsed().as_nanos() as u64, Ordering::Release);
    t.emergency_stop();
    done.store(true, Ordering::Release);
    let lags: Vec<u64> = workers.into_iter().map(|w| w.join().unwrap()).collect();
    for lag in &lags {
        // Generous for a loaded 2-core CI machine; typically well under a microsecond.
        assert!(
            *lag < 50_000_000,
            "a thread saw the stop only after {lag} ns"
        );
    }
    assert_eq!(t.check(p), None);
}
