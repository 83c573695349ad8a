//! `BreakerRegistry`: lookup, first-config-wins, conflicts, resets, snapshots, concurrency.
#![allow(clippy::unwrap_used, clippy::expect_used)] // tests may panic on bad setup

use std::sync::{Arc, Barrier};
use std::thread;

use resilience_core::{
    BreakerConfig, BreakerRegistry, ConfigError, GovernanceHash, ManualClock, RegistryError, State,
};

fn config(fail_max: u32) -> BreakerConfig {
    BreakerConfig::builder().fail_max(fail_max).build().unwrap()
}

fn registry() -> BreakerRegistry<ManualClock> {
    BreakerRegistry::with_clock(ManualClock::new())
}

#[test]
fn first_config_wins_and_a_conflict_is_reported_without_losing_either() {
    let r = registry();
    let a = r.get_or_create("db", config(3)).unwrap();
    let b = r.get_or_create("db", config(3)).unwrap();
    assert!(Arc::ptr_eq(&a, &b));
    match r.get_or_create("db", config(4)) {
        Err(RegistryError::ConfigConflict {
            name,
            existing,
            requested,
        }) => {
            assert_eq!(name, "db");
            assert_eq!(existing.fail_max(), Some(3));
            assert_eq!(requested.fail_max(), Some(4));
        }
        other => panic!("expected a conflict, got {other:?}"),
    }
    assert_eq!(r.conflicts(), 1);
    assert_eq!(r.get("db").unwrap().config().fail_max(), Some(3));
}

#[test]
fn unknown_names_and_bad_names_are_typed_errors() {
    let r = registry();
    assert!(matches!(r.reset("nope"), Err(RegistryError::Unknown { name }) if name == "nope"));
    let err = r.get_or_create("", config(1)).unwrap_err();
    assert!(matches!(
        err,
        RegistryError::Config(ConfigError::Invalid { field: "name", .. })
    ));
    assert!(r.get("nope").is_none());
}

#[test]
fn a_foreign_governance_tag_is_refused() {
    let r = registry();
    let foreign = BreakerConfig::builder()
        .governance(GovernanceHash::from_u64(7))
        .build()
        .unwrap();
    match r.get_or_create("db", foreign) {
        Err(RegistryError::Config(ConfigError::Governance(m))) => {
            assert_eq!(m.expected, GovernanceHash::DEFAULT);
            assert_eq!(m.found, GovernanceHash::from_u64(7));
        }
        other => panic!("expected a governance mismatch, got {other:?}"),
    }
    assert!(r.is_empty());
}

#[test]
fn reset_one_reset_all_snapshots_and_names() {
    let r = registry();
    let created = r
        .preinitialize([
            ("policy", config(1)),
            ("audit", config(1)),
            ("cache", config(1)),
        ])
        .unwrap();
    assert_eq!(created.len(), 3);
    for b in &created {
        b.try_acquire().unwrap().failure();
    }
    assert_eq!(r.reset("audit").unwrap(), State::Open);
    let snaps = r.snapshots();
    let names: Vec<&str> = snaps.iter().map(|(n, _)| &**n).collect();
    assert_eq!(names, ["audit", "cache", "policy"]);
    let states: Vec<State> = snaps.iter().map(|(_, s)| s.state).collect();
    assert_eq!(states, [State::Closed, State::Open, State::Open]);
    assert_eq!(r.reset_all(), 3);
    assert!(r.breakers().iter().all(|b| b.state() == State::Closed));
    assert_eq!(&*r.name_of(created[2].id()).unwrap(), "cache");
    let removed = r.remove("cache").unwrap();
    assert!(r.get("cache").is_none() && r.name_of(removed.id()).is_none());
    assert_eq!(
        removed.try_acquire().map(|p| p.success()),
        Ok(()),
        "holders keep a working breaker"
    );
}

#[test]
fn registry_breakers_share_the_event_channel() {
    let r = registry();
    let a = r.get_or_create("a", config(1)).unwrap();
    let b = r.get_or_create("b", config(1)).unwrap();
    a.try_acquire().unwrap().failure();
    b.force_open();
    let mut events = Vec::new();
    r.events().drain_into(&mut events, 10);
    let named: Vec<(String, State)> = events
        .iter()
        .map(|e| (r.name_of(e.breaker).unwrap().to_string(), e.to))
        .collect();
    assert_eq!(
        named,
        [("a".into(), State::Open), ("b".into(), State::ForcedOpen)]
    );
}

#[test]
fn concurrent_get_or_create_yields_one_breaker_per_name() {
    const THREADS: usize = 8;
    let r = Arc::new(registry());
    let barrier = Arc::new(Barrier::new(THREADS));
    let got: Vec<Vec<usize>> = (0..THREADS)
        .map(|_| {
            let (r, barrier) = (r.clone(), barrier.clone());
            thread::spawn(move || {
                barrier.wait();
                (0..50)
                    .map(|i| {
                        Arc::as_ptr(&r.get_or_create(&format!("svc-{i}"), config(2)).unwrap())
                            as usize
                    })
                    .collect()
            })
        })
        .collect::<Vec<_>>()
        .into_iter()
        .map(|h| h.join().unwrap())
        .collect();
    assert_eq!(r.len(), 50);
    for per_thread in &got[1..] {
        assert_eq!(
            per_thread, &got[0],
            "every thread got the same breaker for each name"
        );
    }
}

#[test]
fn global_registry_is_one_instance() {
    let a = BreakerRegistry::global().breaker("global-test").unwrap();
    let b = BreakerRegistry::global().get("global-test").unwrap();
    assert!(Arc::ptr_eq(&a, &b));
}
