//! The [`Bulkhead`] against a plain reference model: a limit and a list of live permits.

use std::sync::Arc;

use crate::ConfigError;
use crate::bulkhead::{Bulkhead, BulkheadPermit, OwnedBulkheadPermit};

/// What one run exercised.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Coverage {
    /// Calls admitted.
    pub admitted: u64,
    /// Calls refused because the bulkhead was full.
    pub refused: u64,
    /// Limit changes applied, and refused (0).
    pub limit_changes: [u64; 2],
    /// Admissions refused while more were in flight than a lowered limit.
    pub refused_over_limit: u64,
}

impl Coverage {
    /// Adds another run's coverage to this one.
    pub fn merge(&mut self, other: &Coverage) {
        self.admitted += other.admitted;
        self.refused += other.refused;
        self.limit_changes[0] += other.limit_changes[0];
        self.limit_changes[1] += other.limit_changes[1];
        self.refused_over_limit += other.refused_over_limit;
    }
}

enum Held<'a> {
    Borrowed(#[allow(dead_code)] BulkheadPermit<'a>),
    Owned(#[allow(dead_code)] OwnedBulkheadPermit),
}

/// Decodes `data` into operations on a real bulkhead and the model; panics on the first
/// difference.
///
/// # Panics
///
/// When the bulkhead and the model disagree.
pub fn run(data: &[u8]) -> Coverage {
    let mut coverage = Coverage::default();
    let mut bytes = data.iter().copied();
    let first = u32::from(bytes.next().unwrap_or(2) % 6).max(1);
    let bulkhead = Arc::new(
        Bulkhead::builder("model")
            .max_concurrent(first)
            .build()
            .unwrap_or_else(|e| panic!("limit {first}: {e}")),
    );
    let mut limit = first;
    let mut held: Vec<Held<'_>> = Vec::new();
    let (mut admitted, mut refused) = (0u64, 0u64);
    while let Some(op) = bytes.next() {
        let arg = bytes.next().unwrap_or(0);
        match op % 5 {
            0 | 4 => {
                let fits = (held.len() as u32) < limit;
                let got = if op % 5 == 0 {
                    bulkhead.try_acquire().map(Held::Borrowed)
                } else {
                    bulkhead.try_acquire_owned().map(Held::Owned)
                };
                match got {
                    Ok(permit) => {
                        assert!(fits, "admitted {} in flight at limit {limit}", held.len());
                        held.push(permit);
                        admitted += 1;
                        coverage.admitted += 1;
                    }
                    Err(full) => {
                        assert!(
                            !fits,
                            "refused with {} in flight, limit {limit}",
                            held.len()
                        );
                        assert_eq!(full.limit(), limit);
                        refused += 1;
                        coverage.refused += 1;
                        if held.len() as u32 > limit {
                            coverage.refused_over_limit += 1;
                        }
                    }
                }
            }
            1 => {
                if !held.is_empty() {
                    held.swap_remove(usize::from(arg) % held.len());
                }
            }
            2 => {
                let new = u32::from(arg % 6);
                match bulkhead.set_limit(new) {
                    Ok(()) => {
                        assert_ne!(new, 0, "a zero limit was accepted");
                        limit = new;
                        coverage.limit_changes[0] += 1;
                    }
                    Err(ConfigError::Invalid { field, .. }) => {
                        assert_eq!((field, new), ("max_concurrent", 0));
                        coverage.limit_changes[1] += 1;
                    }
                    Err(other) => panic!("unexpected error {other}"),
                }
            }
            _ => {
                let inside = held.len() as u32 + 1;
                let fits = (held.len() as u32) < limit;
                match bulkhead.call(|| bulkhead.in_flight()) {
                    Ok(seen) => {
                        assert!(fits);
                        assert_eq!(seen, inside, "in flight seen from inside a call");
                        admitted += 1;
                        coverage.admitted += 1;
                    }
                    Err(_) => {
                        assert!(!fits);
                        refused += 1;
                        coverage.refused += 1;
                    }
                }
            }
        }
        let snap = bulkhead.snapshot();
        assert_eq!(
            (
                snap.limit,
                snap.in_flight as usize,
                snap.admitted,
                snap.rejected
            ),
            (limit, held.len(), admitted, refused),
            "bulkhead vs model"
        );
    }
    drop(held);
    assert_eq!(bulkhead.in_flight(), 0, "every permit gave its slot back");
    coverage
}
