//! The health score: a weighted share of breakers that are letting calls through.

use core::fmt;

use resilience_core::{BreakerSnapshot, ConfigError, State};
use serde::{Deserialize, Serialize};

use crate::error::invalid;

/// Overall status derived from the score.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum HealthStatus {
    /// Score at or above the healthy threshold (0.7).
    Healthy,
    /// Score at or above the degraded threshold (0.5).
    Degraded,
    /// Score below the degraded threshold.
    Critical,
    /// No sample taken yet.
    Unknown,
}

impl HealthStatus {
    /// Upper-case name, as in the original.
    pub const fn as_str(self) -> &'static str {
        match self {
            HealthStatus::Healthy => "HEALTHY",
            HealthStatus::Degraded => "DEGRADED",
            HealthStatus::Critical => "CRITICAL",
            HealthStatus::Unknown => "UNKNOWN",
        }
    }
}

impl fmt::Display for HealthStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What each breaker state is worth, from 0 (down) to 1 (healthy). DISABLED breakers are left
/// out of the score: an operator chose not to protect that dependency.
#[derive(Clone, Copy, Debug, PartialEq, Serialize)]
pub struct HealthWeights {
    /// CLOSED (default 1.0).
    pub closed: f64,
    /// HALF_OPEN (default 0.5).
    pub half_open: f64,
    /// OPEN (default 0.0).
    pub open: f64,
    /// FORCED_OPEN (default 0.0).
    pub forced_open: f64,
}

impl Default for HealthWeights {
    fn default() -> Self {
        HealthWeights {
            closed: 1.0,
            half_open: 0.5,
            open: 0.0,
            forced_open: 0.0,
        }
    }
}

/// Score thresholds: `healthy` and above is HEALTHY, `degraded` and above DEGRADED.
#[derive(Clone, Copy, Debug, PartialEq, Serialize)]
pub struct HealthThresholds {
    /// Default 0.7.
    pub healthy: f64,
    /// Default 0.5.
    pub degraded: f64,
}

impl Default for HealthThresholds {
    fn default() -> Self {
        HealthThresholds {
            healthy: 0.7,
            degraded: 0.5,
        }
    }
}

impl HealthWeights {
    pub(crate) fn validate(&self) -> Result<(), ConfigError> {
        for (field, w) in [
            ("weights.closed", self.closed),
            ("weights.half_open", self.half_open),
            ("weights.open", self.open),
            ("weights.forced_open", self.forced_open),
        ] {
            if !(0.0..=1.0).contains(&w) {
                return Err(invalid(field, w, "a weight in [0, 1]"));
            }
        }
        Ok(())
    }

    /// The weight of `state`, or `None` for a state left out of the score.
    pub fn of(&self, state: State) -> Option<f64> {
        match state {
            State::Closed => Some(self.closed),
            State::HalfOpen => Some(self.half_open),
            State::Open => Some(self.open),
            State::ForcedOpen => Some(self.forced_open),
            State::Disabled => None,
        }
    }
}

impl HealthThresholds {
    pub(crate) fn validate(&self) -> Result<(), ConfigError> {
        if !(0.0..=1.0).contains(&self.healthy) {
            return Err(invalid(
                "thresholds.healthy",
                self.healthy,
                "a score in [0, 1]",
            ));
        }
        if !(0.0..=self.healthy).contains(&self.degraded) {
            return Err(invalid(
                "thresholds.degraded",
                self.degraded,
                "a score in [0, thresholds.healthy]",
            ));
        }
        Ok(())
    }

    /// The status a score maps to.
    pub fn status(&self, score: f64) -> HealthStatus {
        if score >= self.healthy {
            HealthStatus::Healthy
        } else if score >= self.degraded {
            HealthStatus::Degraded
        } else {
            HealthStatus::Critical
        }
    }
}

/// Breakers per state.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub struct StateCounts {
    /// CLOSED breakers.
    pub closed: usize,
    /// OPEN breakers.
    pub open: usize,
    /// HALF_OPEN breakers.
    pub half_open: usize,
    /// FORCED_OPEN breakers.
    pub forced_open: usize,
    /// DISABLED breakers.
    pub disabled: usize,
}

impl StateCounts {
    /// Counts `snapshots` by state.
    pub fn of<'a>(snapshots: impl IntoIterator<Item = &'a BreakerSnapshot>) -> Self {
        let mut counts = StateCounts::default();
        for s in snapshots {
            match s.state {
                State::Closed => counts.closed += 1,
                State::Open => counts.open += 1,
                State::HalfOpen => counts.half_open += 1,
                State::ForcedOpen => counts.forced_open += 1,
                State::Disabled => counts.disabled += 1,
            }
        }
        counts
    }

    /// All breakers.
    pub fn total(&self) -> usize {
        self.closed + self.open + self.half_open + self.forced_open + self.disabled
    }

    /// The score: `Σ weight(state) / breakers scored`, 1.0 when none are scored.
    ///
    /// # Examples
    ///
    /// ```
    /// use resilience_control::health::{HealthWeights, StateCounts};
    ///
    /// let counts = StateCounts { closed: 2, half_open: 1, open: 1, ..StateCounts::default() };
    /// assert_eq!(counts.score(&HealthWeights::default()), (2.0 + 0.5) / 4.0);
    /// assert_eq!(StateCounts::default().score(&HealthWeights::default()), 1.0);
    /// ```
    pub fn score(&self, weights: &HealthWeights) -> f64 {
        let scored = self.closed + self.open + self.half_open + self.forced_open;
        if scored == 0 {
            return 1.0;
        }
        let sum = self.closed as f64 * weights.closed
            + self.half_open as f64 * weights.half_open
            + self.open as f64 * weights.open
            + self.forced_open as f64 * weights.forced_open;
        sum / scored as f64
    }
}
