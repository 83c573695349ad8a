//! The [`MeterRing`] against a `VecDeque` with a capacity.

use std::collections::VecDeque;

use crate::ManualClock;
use crate::meter::{MeterRing, Operation, RefuseReason, Tier, UsageEvent};

/// What one run exercised: accepted, refused full, refused closed, drained.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Coverage {
    /// Events accepted.
    pub accepted: u64,
    /// Events refused because the ring was full.
    pub refused_full: u64,
    /// Events refused because the ring was closed.
    pub refused_closed: u64,
    /// Events drained.
    pub drained: u64,
    /// Of those, drained held (kept in their slots until released).
    pub held: u64,
    /// `release_through` calls that freed at least one held slot.
    pub releases: u64,
}

impl Coverage {
    /// Adds another run's coverage to this one.
    pub fn merge(&mut self, other: &Coverage) {
        self.accepted += other.accepted;
        self.refused_full += other.refused_full;
        self.refused_closed += other.refused_closed;
        self.drained += other.drained;
        self.held += other.held;
        self.releases += other.releases;
    }
}

/// The oldest sequence still occupying a slot (held or pending), or `next` when none does.
fn oldest(held: &VecDeque<(u64, u32)>, pending: &VecDeque<(u64, u32)>, next: u64) -> u64 {
    let first = |q: &VecDeque<(u64, u32)>| q.front().map_or(next, |&(seq, _)| seq);
    first(held).min(first(pending))
}

/// Decodes `data` into records, drains and a close, on a real ring and the model; panics on
/// the first difference (results, drained order, every ledger field).
///
/// # Panics
///
/// When the ring and the model disagree.
pub fn run(data: &[u8]) -> Coverage {
    let Some((&first, ops)) = data.split_first() else {
        return Coverage::default();
    };
    let capacity = 1 + usize::from(first % 16);
    let ring = MeterRing::with_clock(capacity, ManualClock::new(), Default::default())
        .expect("capacity 1 to 16 is valid");
    let template = UsageEvent::new("tenant", "agent", Operation::AgentMessage, Tier::Standard)
        .expect("short ids fit");
    // Accepted and not drained, and drained by `drain_held` but not released: both occupy
    // the ring. Each as (sequence, token).
    let mut model: VecDeque<(u64, u32)> = VecDeque::new();
    let mut held: VecDeque<(u64, u32)> = VecDeque::new();
    let mut closed = false;
    let mut next_token = 0u32;
    let mut next_seq = 0u64;
    let mut coverage = Coverage::default();
    let mut out = Vec::new();
    let mut taken = Vec::new();

    for &op in ops {
        match op % 8 {
            0..=4 => {
                let event = template.tokens(next_token);
                let real = ring.record(event);
                let expected = if closed {
                    Err(RefuseReason::Closed)
                } else if next_seq - oldest(&held, &model, next_seq) == capacity as u64 {
                    // Positional, as the ring is: a held slot blocks producers once they
                    // reach it again, even if later slots were freed.
                    Err(RefuseReason::Full)
                } else {
                    model.push_back((next_seq, next_token));
                    next_seq += 1;
                    Ok(())
                };
                match (real, expected) {
                    (Ok(()), Ok(())) => coverage.accepted += 1,
                    (Err(refused), Err(reason)) => {
                        assert_eq!(refused.reason, reason);
                        assert_eq!(
                            refused.event.tokens, next_token,
                            "the refused event comes back"
                        );
                        if reason == RefuseReason::Full {
                            coverage.refused_full += 1;
                        } else {
                            coverage.refused_closed += 1;
                        }
                    }
                    (real, expected) => panic!("record diverged: {real:?} vs {expected:?}"),
                }
                next_token += 1;
            }
            5 => {
                let max = usize::from(op >> 3);
                out.clear();
                let n = ring.drain_into(&mut out, max);
                let expected: Vec<u32> = (0..max.min(model.len()))
                    .filter_map(|_| model.pop_front().map(|(_, token)| token))
                    .collect();
                assert_eq!(n, expected.len());
                assert_eq!(
                    out.iter().map(|e| e.tokens).collect::<Vec<_>>(),
                    expected,
                    "drained in order"
                );
                coverage.drained += n as u64;
            }
            6 => {
                let max = usize::from(op >> 3);
                taken.clear();
                let n = ring.drain_held(&mut taken, max);
                let expected: Vec<(u64, u32)> = (0..max.min(model.len()))
                    .filter_map(|_| model.pop_front())
                    .collect();
                assert_eq!(
                    taken
                        .iter()
                        .map(|d| (d.id.seq, d.event.tokens))
                        .collect::<Vec<_>>(),
                    expected,
                    "held drains in order, numbered by acceptance"
                );
                assert!(taken.iter().all(|d| d.id.epoch == ring.epoch()));
                held.extend(expected);
                coverage.drained += n as u64;
                coverage.held += n as u64;
            }
            _ if (op >> 3) % 2 == 1 && !held.is_empty() => {
                let through = held[usize::from(op >> 4) % held.len()].0;
                ring.release_through(through);
                held.retain(|&(seq, _)| seq > through);
                coverage.releases += 1;
            }
            _ => {
                ring.close();
                closed = true;
            }
        }
        let l = ring.ledger();
        assert_eq!(l.offered, u64::from(next_token));
        assert_eq!(
            (l.accepted, l.refused_full, l.refused_closed),
            (
                coverage.accepted,
                coverage.refused_full,
                coverage.refused_closed
            )
        );
        assert_eq!(
            (l.drained, l.pending),
            (coverage.drained, model.len() as u64)
        );
    }
    coverage
}
