//! The [`RateLimiter`] against the other formulation of GCRA: a continuous-state leaky bucket
//! (a level that drains one nanosecond per nanosecond, filled by each admitted call's cost),
//! computed in `u128` so nothing saturates.

use std::time::Duration;

use crate::rate_limit::RateLimiter;
use crate::{Clock, ManualClock};

/// What one run exercised.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Coverage {
    /// Calls admitted.
    pub admitted: u64,
    /// Calls refused with a retry time.
    pub refused: u64,
    /// Calls asking for more than the burst.
    pub never: u64,
    /// Calls admitted right after the retry time a refusal gave.
    pub retried_on_time: u64,
}

impl Coverage {
    /// Adds another run's coverage to this one.
    pub fn merge(&mut self, other: &Coverage) {
        self.admitted += other.admitted;
        self.refused += other.refused;
        self.never += other.never;
        self.retried_on_time += other.retried_on_time;
    }
}

/// Decodes `data` into a limiter's settings and calls at times on a manual clock, applies them
/// to the limiter and to the bucket model, and panics on the first difference.
///
/// # Panics
///
/// When the limiter and the model disagree.
pub fn run(data: &[u8]) -> Coverage {
    let mut coverage = Coverage::default();
    let mut bytes = data.iter().copied();
    let mut next = move || bytes.next();
    let permits = u32::from(next().unwrap_or(10) % 50) + 1;
    let period_ms = u64::from(next().unwrap_or(100)) + 1;
    let burst = u32::from(next().unwrap_or(3) % 8) + 1;
    let clock = ManualClock::new();
    let limiter = RateLimiter::builder("model")
        .rate(permits, Duration::from_millis(period_ms))
        .burst(burst)
        .clock(clock.clone())
        .build()
        .unwrap_or_else(|e| panic!("settings {permits}/{period_ms}ms burst {burst}: {e}"));
    let interval = u128::from(period_ms * 1_000_000 / u64::from(permits));
    let window = interval * u128::from(burst);
    // The bucket: its level at `last`, in nanoseconds of work.
    let (mut level, mut last) = (0u128, u128::from(clock.now().as_nanos()));
    let mut pending_retry: Option<(u32, Duration)> = None;
    while let Some(op) = next() {
        let arg = next().unwrap_or(0);
        // A retry time holds for the very next step only (nothing else changed meanwhile).
        let retry = pending_retry.take();
        match op % 4 {
            0 => clock.advance(Duration::from_micros(u64::from(arg) * 97)),
            1 => clock.advance(Duration::from_nanos(u64::from(arg))),
            2 => {
                if let Some((n, after)) = retry {
                    clock.advance(after);
                    let now = u128::from(clock.now().as_nanos());
                    let drained = level.saturating_sub(now - last);
                    assert!(drained + interval * u128::from(n) <= window);
                    limiter
                        .try_acquire_n(n)
                        .unwrap_or_else(|e| panic!("refused at its own retry time: {e}"));
                    level = drained + interval * u128::from(n);
                    last = now;
                    coverage.retried_on_time += 1;
                    coverage.admitted += 1;
                }
            }
            _ => {
                let n = u32::from(arg) % (burst + 2);
                let now = u128::from(clock.now().as_nanos());
                let drained = level.saturating_sub(now - last);
                let cost = interval * u128::from(n);
                let got = limiter.try_acquire_n(n);
                if n > burst {
                    let err = got.expect_err("more than the burst was admitted");
                    assert_eq!(err.retry_after(), None);
                    coverage.never += 1;
                } else if drained + cost <= window {
                    got.unwrap_or_else(|e| {
                        panic!("refused {n} with level {drained}, window {window}: {e}")
                    });
                    level = drained + cost;
                    last = now;
                    coverage.admitted += 1;
                } else {
                    let err = got.expect_err("admitted beyond the window");
                    let wait = drained + cost - window;
                    assert_eq!(
                        err.retry_after(),
                        Some(Duration::from_nanos(wait as u64)),
                        "retry time for {n}"
                    );
                    pending_retry = Some((n, Duration::from_nanos(wait as u64)));
                    coverage.refused += 1;
                }
            }
        }
    }
    let snap = limiter.snapshot();
    assert_eq!(snap.admitted, coverage.admitted);
    assert_eq!(snap.rejected, coverage.refused + coverage.never);
    coverage
}
