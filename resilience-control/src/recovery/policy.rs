//! How recovery retries: strategies, limits and the delay before each attempt.

use std::time::Duration;

use resilience_core::ConfigError;
use serde::Serialize;

use crate::error::invalid;

/// When the next recovery attempt runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum RecoveryStrategy {
    /// `initial · multiplier^(n−1)` before attempt `n`, capped at `max_delay`.
    ExponentialBackoff,
    /// `initial · n` before attempt `n`, capped at `max_delay`.
    LinearBackoff,
    /// No delay.
    Immediate,
    /// Waits in AWAITING_MANUAL until an operator approves (or cancels).
    Manual,
}

/// A service's recovery policy; defaults from the original.
///
/// # Examples
///
/// ```
/// use resilience_control::recovery::{RecoveryPolicy, RecoveryStrategy};
/// use std::time::Duration;
///
/// let policy = RecoveryPolicy::default();
/// let delays: Vec<_> = (1..=5).map(|n| policy.delay(n).as_secs()).collect();
/// assert_eq!(delays, [1, 2, 4, 8, 16]);
/// let linear = RecoveryPolicy::with_strategy(RecoveryStrategy::LinearBackoff)
///     .initial_delay(Duration::from_millis(500));
/// assert_eq!(linear.delay(3), Duration::from_millis(1500));
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Serialize)]
#[non_exhaustive]
pub struct RecoveryPolicy {
    /// How attempts are spaced.
    pub strategy: RecoveryStrategy,
    /// Attempts before giving up (default 5, from `RECOVERY_MAX_RETRY_ATTEMPTS`).
    pub max_retries: u32,
    /// Growth per attempt for exponential backoff (default 2.0).
    pub multiplier: f64,
    /// Delay before the first attempt (default 1000 ms).
    #[serde(with = "millis")]
    pub initial_delay: Duration,
    /// Cap on any delay (default 60000 ms).
    #[serde(with = "millis")]
    pub max_delay: Duration,
    /// Randomise each delay by ±this fraction (default 0), in [0, 1).
    pub jitter: f64,
    /// Limit on one health check (default 5 s).
    #[serde(with = "millis")]
    pub health_check_timeout: Duration,
}

mod millis {
    use std::time::Duration;

    pub(super) fn serialize<S: serde::Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_u64(d.as_millis() as u64)
    }
}

impl Default for RecoveryPolicy {
    fn default() -> Self {
        RecoveryPolicy {
            strategy: RecoveryStrategy::ExponentialBackoff,
            max_retries: 5,
            multiplier: 2.0,
            initial_delay: Duration::from_millis(1000),
            max_delay: Duration::from_millis(60_000),
            jitter: 0.0,
            health_check_timeout: Duration::from_secs(5),
        }
    }
}

impl RecoveryPolicy {
    /// The default policy with another strategy.
    pub fn with_strategy(strategy: RecoveryStrategy) -> Self {
        RecoveryPolicy {
            strategy,
            ..RecoveryPolicy::default()
        }
    }

    /// Checks every field.
    ///
    /// # Errors
    ///
    /// [`ConfigError::Invalid`] naming the field and its value.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if self.max_retries == 0 || self.max_retries > 1000 {
            return Err(invalid(
                "max_retries",
                self.max_retries,
                "1 to 1000 attempts",
            ));
        }
        if !(self.multiplier.is_finite() && (1.0..=100.0).contains(&self.multiplier)) {
            return Err(invalid(
                "multiplier",
                self.multiplier,
                "between 1.0 and 100.0",
            ));
        }
        if self.max_delay > Duration::from_secs(24 * 3600) {
            return Err(invalid(
                "max_delay",
                format_args!("{:?}", self.max_delay),
                "at most 24h",
            ));
        }
        if self.initial_delay > self.max_delay {
            return Err(invalid(
                "initial_delay",
                format_args!("{:?}", self.initial_delay),
                "at most max_delay",
            ));
        }
        if !(self.jitter.is_finite() && (0.0..1.0).contains(&self.jitter)) {
            return Err(invalid("jitter", self.jitter, "a fraction in [0, 1)"));
        }
        if self.health_check_timeout < Duration::from_millis(1)
            || self.health_check_timeout > Duration::from_secs(600)
        {
            return Err(invalid(
                "health_check_timeout",
                format_args!("{:?}", self.health_check_timeout),
                "between 1ms and 10min",
            ));
        }
        Ok(())
    }

    /// The delay before attempt `attempt` (1-based), without jitter.
    pub fn delay(&self, attempt: u32) -> Duration {
        let n = attempt.max(1);
        let delay = match self.strategy {
            RecoveryStrategy::ExponentialBackoff => {
                let factor = self
                    .multiplier
                    .powi(i32::try_from(n - 1).unwrap_or(i32::MAX));
                Duration::try_from_secs_f64(self.initial_delay.as_secs_f64() * factor)
                    .unwrap_or(self.max_delay)
            }
            RecoveryStrategy::LinearBackoff => self.initial_delay.saturating_mul(n),
            RecoveryStrategy::Immediate | RecoveryStrategy::Manual => Duration::ZERO,
        };
        delay.min(self.max_delay)
    }

    /// `delay(attempt)` spread by `jitter`, with `unit` uniform in [0, 1).
    pub(crate) fn jittered(&self, attempt: u32, unit: f64) -> Duration {
        let delay = self.delay(attempt);
        if self.jitter == 0.0 || delay.is_zero() {
            return delay;
        }
        delay
            .mul_f64(1.0 - self.jitter + 2.0 * self.jitter * unit)
            .min(self.max_delay)
    }
}

crate::setters::setters!(RecoveryPolicy {
    /// Attempts before giving up.
    max_retries: u32;
    /// Growth per attempt for exponential backoff.
    multiplier: f64;
    /// Delay before the first attempt.
    initial_delay: Duration;
    /// Cap on any delay.
    max_delay: Duration;
    /// Spread each delay by ±this fraction.
    jitter: f64;
    /// Limit on one health check.
    health_check_timeout: Duration;
});
