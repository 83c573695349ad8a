//! File-backed `MeterRing`: events survive the ring (and the process, see the `tests` package's
//! kill -9 suite), come back with their ids and times, in order, exactly the unreleased ones;
//! one ring per file; sequences continue; damage is refused or voided, never trusted.
#![allow(clippy::unwrap_used, clippy::expect_used)] // tests may panic on bad setup

use std::path::PathBuf;
use std::time::Duration;

use resilience_core::meter::{Drained, MeterError, MeterRing, Operation, Tier, UsageEvent};
use resilience_core::{GovernanceHash, ManualClock};

struct Dir(PathBuf);

impl Dir {
    fn new(name: &str) -> Dir {
        let dir = std::env::temp_dir().join(format!(
            "meter-file-{name}-{}-{:?}",
            std::process::id(),
            std::thread::current().id()
        ));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        Dir(dir)
    }

    fn ring(&self) -> PathBuf {
        self.0.join("meter.ring")
    }
}

impl Drop for Dir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn event(tokens: u32) -> UsageEvent {
    UsageEvent::new(
        &format!("tenant-{}", tokens % 3),
        "agent-ü",
        if tokens.is_multiple_of(2) {
            Operation::AgentMessage
        } else {
            Operation::Other(tokens as u16)
        },
        Tier::Premium,
    )
    .unwrap()
    .tokens(tokens)
    .latency(Duration::from_micros(u64::from(tokens)))
    .compliance_score(0.5)
    .unwrap()
}

fn drain_all<C: resilience_core::Clock>(ring: &MeterRing<C>) -> Vec<Drained> {
    let mut out = Vec::new();
    while ring.drain_held(&mut out, 7) > 0 {}
    out
}

#[test]
fn unreleased_events_come_back_with_their_ids_times_and_content() {
    let dir = Dir::new("recover");
    let clock = ManualClock::new();
    let hash = GovernanceHash::from_u64(0xfeed);
    let (epoch, before) = {
        let ring = MeterRing::open_with_clock(dir.ring(), 16, clock.clone(), hash).unwrap();
        for i in 0..10 {
            clock.advance(Duration::from_millis(1));
            ring.record(event(i)).unwrap();
        }
        // 0..4 delivered and released; 4..7 taken but not released (in flight); 7..10 never
        // drained.
        let mut taken = Vec::new();
        assert_eq!(ring.drain_held(&mut taken, 7), 7);
        ring.release_through(taken[3].id.seq);
        (ring.epoch(), taken)
    };
    let ring = MeterRing::open_with_clock(dir.ring(), 16, ManualClock::new(), hash).unwrap();
    assert_eq!(ring.epoch(), epoch, "a ring file keeps its epoch");
    let ledger = ring.ledger();
    assert_eq!(
        (ledger.recovered, ledger.accepted, ledger.pending),
        (6, 0, 6)
    );
    let recovered = drain_all(&ring);
    let seqs: Vec<u64> = recovered.iter().map(|d| d.id.seq).collect();
    assert_eq!(seqs, (4..10).collect::<Vec<_>>());
    for (got, want) in recovered.iter().zip(&before[4..]) {
        assert_eq!(got, want, "same id, time and event as the first drain");
    }
    assert_eq!(recovered[5].event, {
        let mut e = event(9);
        e.at = recovered[5].event.at;
        e.governance = hash;
        e
    });
    assert_eq!(
        recovered[5].unix_nanos, 10_000_000,
        "times from the recording run's clock"
    );
    // New events continue the sequence.
    ring.record(event(100)).unwrap();
    let next = drain_all(&ring);
    assert_eq!(next[0].id.seq, 10);
    assert_eq!(next[0].id.epoch, epoch);
}

#[test]
fn released_events_never_come_back_and_a_clean_ring_recovers_nothing() {
    let dir = Dir::new("clean");
    {
        let ring = MeterRing::open(dir.ring(), 8).unwrap();
        for round in 0..5 {
            for i in 0..6 {
                ring.record(event(round * 10 + i)).unwrap();
            }
            let taken = drain_all(&ring);
            ring.release_through(taken.last().unwrap().id.seq);
        }
    }
    let ring = MeterRing::open(dir.ring(), 8).unwrap();
    assert_eq!(ring.ledger().recovered, 0);
    assert!(drain_all(&ring).is_empty());
    ring.record(event(1)).unwrap();
    assert_eq!(
        drain_all(&ring)[0].id.seq,
        30,
        "the sequence continues past 30 events"
    );
}

#[test]
fn a_second_ring_on_the_same_file_is_refused_naming_the_holder() {
    let dir = Dir::new("lock");
    let first = MeterRing::open(dir.ring(), 8).unwrap();
    let err = MeterRing::open(dir.ring(), 8).unwrap_err();
    match &err {
        MeterError::Locked { path, pid } => {
            assert_eq!(path, &dir.ring());
            assert_eq!(*pid, Some(std::process::id()));
        }
        other => panic!("expected Locked, got {other:?}"),
    }
    assert!(
        err.to_string()
            .contains(&format!("process {}", std::process::id()))
    );
    drop(first);
    MeterRing::open(dir.ring(), 8).unwrap();
}

#[test]
fn the_capacity_may_change_between_runs_keeping_sequences() {
    let dir = Dir::new("resize");
    {
        let ring = MeterRing::open(dir.ring(), 4).unwrap();
        for i in 0..3 {
            ring.record(event(i)).unwrap();
        }
        let taken = drain_all(&ring);
        ring.release_through(taken[0].id.seq);
        ring.record(event(3)).unwrap();
        ring.record(event(4)).unwrap();
    }
    {
        let ring = MeterRing::open(dir.ring(), 64).unwrap();
        let got: Vec<(u64, u32)> = drain_all(&ring)
            .iter()
            .map(|d| (d.id.seq, d.event.tokens))
            .collect();
        assert_eq!(got, [(1, 1), (2, 2), (3, 3), (4, 4)]);
        // Not released: still there for the next open, even a smaller one.
    }
    let ring = MeterRing::open(dir.ring(), 4).unwrap();
    assert_eq!(ring.ledger().recovered, 4);
    let err = {
        drop(ring);
        MeterRing::open(dir.ring(), 3).unwrap_err()
    };
    assert!(
        err.to_string().contains("more than the capacity 3"),
        "{err}"
    );
}

#[test]
fn a_foreign_or_truncated_file_is_refused_and_left_alone() {
    let dir = Dir::new("foreign");
    std::fs::write(dir.ring(), b"not a ring at all").unwrap();
    let err = MeterRing::open(dir.ring(), 8).unwrap_err();
    assert!(matches!(err, MeterError::File { .. }), "{err:?}");
    assert!(err.to_string().contains("bad magic"), "{err}");
    assert_eq!(std::fs::read(dir.ring()).unwrap(), b"not a ring at all");

    let other = Dir::new("truncated");
    {
        let ring = MeterRing::open(other.ring(), 8).unwrap();
        ring.record(event(1)).unwrap();
    }
    let len = std::fs::metadata(other.ring()).unwrap().len();
    std::fs::OpenOptions::new()
        .write(true)
        .open(other.ring())
        .unwrap()
        .set_len(len - 100)
        .unwrap();
    let err = MeterRing::open(other.ring(), 8).unwrap_err();
    assert!(err.to_string().contains("bytes, expected"), "{err}");
}

#[test]
fn a_damaged_event_becomes_a_void_that_is_skipped_and_not_counted() {
    let dir = Dir::new("void");
    {
        let ring = MeterRing::open(dir.ring(), 8).unwrap();
        for i in 0..4 {
            ring.record(event(i)).unwrap();
        }
    }
    // Slot 1's tier byte (header page, then 8-byte stamp, then the event).
    let slot = size_of::<UsageEvent>() + 8;
    let mut bytes = std::fs::read(dir.ring()).unwrap();
    bytes[4096 + slot + 8 + std::mem::offset_of!(UsageEvent, tier)] = 200;
    std::fs::write(dir.ring(), &bytes).unwrap();
    let ring = MeterRing::open(dir.ring(), 8).unwrap();
    let ledger = ring.ledger();
    assert_eq!((ledger.recovered, ledger.pending), (3, 3));
    let got: Vec<u32> = drain_all(&ring).iter().map(|d| d.event.tokens).collect();
    assert_eq!(got, [0, 2, 3]);
    assert_eq!(ring.ledger().pending, 0);
    assert_eq!(ring.ledger().drained, 3);
    // Still void on the next open, until released.
    drop(ring);
    let ring = MeterRing::open(dir.ring(), 8).unwrap();
    assert_eq!(ring.ledger().recovered, 3);
}

#[test]
fn a_file_backed_ring_drains_like_an_in_memory_one() {
    let dir = Dir::new("same");
    let file = MeterRing::open(dir.ring(), 5).unwrap();
    let memory = MeterRing::with_capacity(5).unwrap();
    for i in 0..7u32 {
        assert_eq!(
            file.record(event(i)).map_err(|r| r.reason),
            memory.record(event(i)).map_err(|r| r.reason)
        );
        if i % 3 == 2 {
            let (mut a, mut b) = (Vec::new(), Vec::new());
            file.drain_into(&mut a, 2);
            memory.drain_into(&mut b, 2);
            assert_eq!(
                a.iter().map(|e| e.tokens).collect::<Vec<_>>(),
                b.iter().map(|e| e.tokens).collect::<Vec<_>>()
            );
        }
    }
    file.close();
    memory.close();
    assert!(file.record(event(9)).is_err());
    assert!(memory.record(event(9)).is_err());
    let (a, b) = (file.ledger(), memory.ledger());
    assert_eq!(a, b);
}
