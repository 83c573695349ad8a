//! [`Backoff`]: how long to wait before each retry, exponential with a cap and a [`Jitter`].
//!
//! The delay is a pure function of the retry number, the previous delay and one random draw,
//! so the reference sequences in the tests and the policy compute the same numbers.

use core::time::Duration;

use crate::clock::duration_nanos;

/// How a delay is spread at random, so that callers that failed together do not retry
/// together (the "thundering herd" that retries without jitter cause).
///
/// The names and formulas are those of the AWS Architecture Blog's "Exponential Backoff And
/// Jitter", where `base` is `initial · multiplier^(n-1)` capped at `max`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[cfg_attr(feature = "serde", serde(rename_all = "snake_case"))]
#[non_exhaustive]
pub enum Jitter {
    /// Exactly `base`: reproducible, and synchronised across callers.
    None,
    /// Uniform in `[0, base)`: the least total work under contention.
    #[default]
    Full,
    /// `base/2` plus uniform in `[0, base/2)`: never shorter than half the base.
    Equal,
    /// Uniform in `[initial, 3 · previous)`, capped at `max`: grows from the previous delay
    /// rather than the retry number.
    Decorrelated,
}

/// Exponential backoff: retry `n` (from 1) waits `initial · multiplier^(n-1)`, at most `max`,
/// spread by the [`Jitter`].
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// use resilience_core::retry::{Backoff, Jitter};
///
/// let backoff = Backoff::exponential(Duration::from_millis(100), Duration::from_secs(1))
///     .multiplier(2.0)
///     .jitter(Jitter::None);
/// let delays: Vec<_> = (1..=5).map(|n| backoff.base(n)).collect();
/// assert_eq!(delays, [100, 200, 400, 800, 1000].map(Duration::from_millis));
/// ```
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Backoff {
    initial: u64,
    max: u64,
    multiplier: f64,
    jitter: Jitter,
}

impl Default for Backoff {
    /// 100 ms, doubling, at most 10 s, full jitter.
    fn default() -> Self {
        Backoff::exponential(Duration::from_millis(100), Duration::from_secs(10))
    }
}

impl Backoff {
    /// Starts at `initial`, doubles, never exceeds `max`, with [`Jitter::Full`].
    pub fn exponential(initial: Duration, max: Duration) -> Self {
        Backoff {
            initial: duration_nanos(initial),
            max: duration_nanos(max),
            multiplier: 2.0,
            jitter: Jitter::Full,
        }
    }

    /// The same delay every time (a multiplier of 1), with no jitter.
    pub fn constant(delay: Duration) -> Self {
        Backoff::exponential(delay, delay)
            .multiplier(1.0)
            .jitter(Jitter::None)
    }

    /// The growth factor per retry (validated by the retry builder: at least 1, finite).
    pub fn multiplier(mut self, multiplier: f64) -> Self {
        self.multiplier = multiplier;
        self
    }

    /// The jitter.
    pub fn jitter(mut self, jitter: Jitter) -> Self {
        self.jitter = jitter;
        self
    }

    /// The first delay before jitter.
    pub fn initial(&self) -> Duration {
        Duration::from_nanos(self.initial)
    }

    /// The cap.
    pub fn max(&self) -> Duration {
        Duration::from_nanos(self.max)
    }

    /// The growth factor.
    pub fn growth(&self) -> f64 {
        self.multiplier
    }

    /// The jitter kind.
    pub fn jitter_kind(&self) -> Jitter {
        self.jitter
    }

    /// The delay before retry `retry` (1 for the first retry) without jitter.
    pub fn base(&self, retry: u32) -> Duration {
        Duration::from_nanos(self.base_nanos(retry))
    }

    fn base_nanos(&self, retry: u32) -> u64 {
        let grown = self.initial as f64
            * self
                .multiplier
                .powi(retry.saturating_sub(1).min(1024) as i32);
        if grown >= self.max as f64 {
            self.max
        } else {
            grown as u64
        }
    }

    /// The delay before retry `retry`, given the delay before the previous one (zero before
    /// the first) and a random `draw` uniform over `u64`.
    pub fn delay(&self, retry: u32, previous: Duration, draw: u64) -> Duration {
        let unit = (draw >> 11) as f64 / (1u64 << 53) as f64;
        let nanos = match self.jitter {
            Jitter::None => self.base_nanos(retry),
            Jitter::Full => (self.base_nanos(retry) as f64 * unit) as u64,
            Jitter::Equal => {
                let half = self.base_nanos(retry) / 2;
                half + (half as f64 * unit) as u64
            }
            Jitter::Decorrelated => {
                let previous = duration_nanos(previous).max(self.initial);
                let high = previous.saturating_mul(3);
                let span = high.saturating_sub(self.initial) as f64;
                (self.initial + (span * unit) as u64).min(self.max)
            }
        };
        Duration::from_nanos(nanos)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: u64 = 1_000_000;

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    #[test]
    fn no_jitter_is_the_exponential_sequence_with_its_cap() {
        let b = Backoff::exponential(ms(10), ms(70))
            .multiplier(2.0)
            .jitter(Jitter::None);
        let got: Vec<_> = (1..=6).map(|n| b.delay(n, Duration::ZERO, 7)).collect();
        assert_eq!(got, [10, 20, 40, 70, 70, 70].map(ms));
        assert_eq!(b.base(u32::MAX), ms(70), "huge retry numbers saturate");
    }

    #[test]
    fn jitters_stay_in_their_ranges_and_reach_both_ends() {
        let b = Backoff::exponential(ms(100), ms(10_000)).multiplier(3.0);
        for draw in [0, u64::MAX, 1 << 63, 12_345_678_901] {
            let full = b.jitter(Jitter::Full).delay(3, Duration::ZERO, draw);
            assert!(full < ms(900), "full {full:?}");
            let equal = b.jitter(Jitter::Equal).delay(3, Duration::ZERO, draw);
            assert!(equal >= ms(450) && equal < ms(900), "equal {equal:?}");
            let dec = b.jitter(Jitter::Decorrelated).delay(3, ms(400), draw);
            assert!(dec >= ms(100) && dec < ms(1200), "decorrelated {dec:?}");
        }
        assert_eq!(b.jitter(Jitter::Full).delay(3, Duration::ZERO, 0), ms(0));
        let top = b.jitter(Jitter::Full).delay(3, Duration::ZERO, u64::MAX);
        assert!(top.as_nanos() as u64 > 900 * MS - MS, "{top:?}");
    }

    #[test]
    fn decorrelated_is_capped_and_starts_from_initial() {
        let b = Backoff::exponential(ms(100), ms(500)).jitter(Jitter::Decorrelated);
        assert_eq!(b.delay(9, ms(10_000), u64::MAX), ms(500));
        // With no previous delay the range is [initial, 3 · initial).
        let first = b.delay(1, Duration::ZERO, u64::MAX);
        assert!(first >= ms(100) && first < ms(300), "{first:?}");
    }
}
