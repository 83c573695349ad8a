//! [`PressureWatch`]: which bulkheads and retry budgets turned calls away between two health
//! samples, from the change of their refusal totals.

use std::sync::{Mutex, PoisonError};

use super::Limits;
use crate::health::{Pressure, PressureSource};

/// Watches a [`Limits`]' refusal totals for the health sampler.
pub(crate) struct PressureWatch {
    limits: Limits,
    /// Refusal totals at the previous sample: bulkheads', then retries' budget refusals.
    last: Mutex<(Vec<u64>, Vec<u64>)>,
}

impl PressureWatch {
    pub(crate) fn new(limits: Limits) -> Self {
        let watch = PressureWatch {
            limits,
            last: Mutex::new((Vec::new(), Vec::new())),
        };
        // The first sample reports what happened after start, not since the process began.
        watch.pressure();
        watch
    }
}

impl PressureSource for PressureWatch {
    fn pressure(&self) -> Pressure {
        let bulkheads: Vec<u64> = self
            .limits
            .bulkheads()
            .iter()
            .map(|b| b.snapshot().rejected)
            .collect();
        let retries: Vec<u64> = self
            .limits
            .retries()
            .iter()
            .map(|r| r.snapshot().gave_up_budget)
            .collect();
        // A panic elsewhere cannot leave two vectors of totals inconsistent.
        let mut last = self.last.lock().unwrap_or_else(PoisonError::into_inner);
        let grew =
            |now: &[u64], before: &[u64], i: usize| now[i] > before.get(i).copied().unwrap_or(0);
        let mut pressure = Pressure::default();
        for (i, b) in self.limits.bulkheads().iter().enumerate() {
            if grew(&bulkheads, &last.0, i) {
                pressure.rejecting_bulkheads.push(b.name().to_owned());
            }
        }
        for (i, r) in self.limits.retries().iter().enumerate() {
            if grew(&retries, &last.1, i) {
                pressure.exhausted_retry_budgets.push(r.name().to_owned());
            }
        }
        pressure.rejecting_bulkheads.sort();
        pressure.exhausted_retry_budgets.sort();
        *last = (bulkheads, retries);
        pressure
    }
}
