//! Scenarios (what to inject, where, for how long) and the hard limits they are checked against.

use core::fmt;
use core::time::Duration;

use crate::governance::GovernanceMismatch;

use super::fault::FaultSpec;

/// A chaos scenario, checked against the table's [`ChaosLimits`] when it is armed.
///
/// It injects `spec` at every point in its blast radius (by default just its target), with
/// probability `rate`, until `duration` has passed.
///
/// # Examples
///
/// ```
/// use resilience_core::chaos::{FaultSpec, Scenario};
/// use std::time::Duration;
///
/// let slow_db = Scenario::new("slow-db", "db", FaultSpec::Latency(Duration::from_millis(200)))
///     .duration(Duration::from_secs(60))
///     .rate(0.25)
///     .blast_radius(["db", "db-replica"]);
/// assert_eq!(slow_db.target(), "db");
/// ```
#[derive(Clone, Debug, PartialEq)]
pub struct Scenario {
    name: String,
    target: String,
    spec: FaultSpec,
    duration: Duration,
    rate: f64,
    blast_radius: Vec<String>,
}

impl Scenario {
    /// Default duration: one minute.
    pub const DEFAULT_DURATION: Duration = Duration::from_secs(60);

    /// A scenario named `name` injecting `spec` at `target` (rate 1, blast radius `{target}`,
    /// one minute).
    pub fn new(name: impl Into<String>, target: impl Into<String>, spec: FaultSpec) -> Self {
        let target = target.into();
        Scenario {
            name: name.into(),
            blast_radius: vec![target.clone()],
            target,
            spec,
            duration: Self::DEFAULT_DURATION,
            rate: 1.0,
        }
    }

    /// How long it stays armed.
    #[must_use]
    pub fn duration(mut self, duration: Duration) -> Self {
        self.duration = duration;
        self
    }

    /// The share of checks that inject, in [0, 1].
    #[must_use]
    pub fn rate(mut self, rate: f64) -> Self {
        self.rate = rate;
        self
    }

    /// Every point the scenario may touch; must contain the target.
    #[must_use]
    pub fn blast_radius<S: Into<String>>(mut self, targets: impl IntoIterator<Item = S>) -> Self {
        self.blast_radius = targets.into_iter().map(Into::into).collect();
        self
    }

    /// The unique name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The primary target.
    pub fn target(&self) -> &str {
        &self.target
    }

    /// What it injects.
    pub fn spec(&self) -> FaultSpec {
        self.spec
    }

    /// How long it stays armed.
    pub fn duration_limit(&self) -> Duration {
        self.duration
    }

    /// The share of checks that inject.
    pub fn injection_rate(&self) -> f64 {
        self.rate
    }

    /// Every point it may touch (deduplicated at arming).
    pub fn radius(&self) -> &[String] {
        &self.blast_radius
    }

    /// Checks every field against `limits`.
    ///
    /// # Errors
    ///
    /// The first [`ChaosError`] found: a field out of range (named, with its value), or a target
    /// outside the blast radius.
    pub fn validate(&self, limits: &ChaosLimits) -> Result<(), ChaosError> {
        check_name("name", &self.name)?;
        check_name("target", &self.target)?;
        if self.duration.is_zero() || self.duration > limits.max_duration {
            return Err(ChaosError::invalid(
                "duration",
                format_args!("{:?}", self.duration),
                format_args!("greater than 0 and at most {:?}", limits.max_duration),
            ));
        }
        if !(self.rate.is_finite() && (0.0..=1.0).contains(&self.rate)) {
            return Err(ChaosError::invalid("rate", self.rate, "a share in [0, 1]"));
        }
        match self.spec {
            FaultSpec::Latency(d) if d > limits.max_latency => {
                return Err(ChaosError::invalid(
                    "latency",
                    format_args!("{d:?}"),
                    format_args!("between 0 and {:?}", limits.max_latency),
                ));
            }
            FaultSpec::Timeout(d) if d.is_zero() || d > limits.max_duration => {
                return Err(ChaosError::invalid(
                    "timeout",
                    format_args!("{d:?}"),
                    format_args!("greater than 0 and at most {:?}", limits.max_duration),
                ));
            }
            FaultSpec::ResourceExhaustion { level, .. }
                if !(level.is_finite() && level > 0.0 && level <= 1.0) =>
            {
                return Err(ChaosError::invalid("level", level, "a share in (0, 1]"));
            }
            _ => {}
        }
        if self.blast_radius.len() > limits.max_blast_radius {
            return Err(ChaosError::invalid(
                "blast_radius",
                self.blast_radius.len(),
                format_args!("at most {} targets", limits.max_blast_radius),
            ));
        }
        for member in &self.blast_radius {
            check_name("blast_radius", member)?;
        }
        if !self.blast_radius.contains(&self.target) {
            return Err(ChaosError::TargetOutsideBlastRadius {
                target: self.target.clone(),
                blast_radius: self.blast_radius.clone(),
            });
        }
        Ok(())
    }
}

fn check_name(field: &'static str, value: &str) -> Result<(), ChaosError> {
    if value.is_empty() || value.len() > 200 || value.chars().any(char::is_control) {
        return Err(ChaosError::invalid(
            field,
            format_args!("{value:?}"),
            "1 to 200 bytes without control characters",
        ));
    }
    Ok(())
}

/// The hard safety bounds every scenario is checked against.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct ChaosLimits {
    /// Longest a scenario (and a timeout fault) may last. Default 300 s.
    pub max_duration: Duration,
    /// Largest latency fault. Default 5000 ms.
    pub max_latency: Duration,
    /// Most targets in one blast radius. Default 64.
    pub max_blast_radius: usize,
}

impl Default for ChaosLimits {
    fn default() -> Self {
        ChaosLimits {
            max_duration: Duration::from_secs(300),
            max_latency: Duration::from_millis(5000),
            max_blast_radius: 64,
        }
    }
}

impl ChaosLimits {
    /// The defaults with another maximum duration (e.g. from `CHAOS_MAX_DURATION_SECONDS`).
    ///
    /// # Errors
    ///
    /// [`ChaosError::Invalid`] if `max` is zero or longer than 24 hours.
    pub fn with_max_duration(max: Duration) -> Result<Self, ChaosError> {
        if max.is_zero() || max > Duration::from_secs(24 * 3600) {
            return Err(ChaosError::invalid(
                "max_duration",
                format_args!("{max:?}"),
                "between 1ns and 24h",
            ));
        }
        Ok(ChaosLimits {
            max_duration: max,
            ..ChaosLimits::default()
        })
    }
}

/// Identifies one arming of a scenario: re-arming a name gets a new id, so the old arming's
/// timers can never end the new one.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ScenarioId(pub(crate) u32);

impl ScenarioId {
    /// The raw id.
    pub const fn as_u32(self) -> u32 {
        self.0
    }
}

impl fmt::Display for ScenarioId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "scenario#{}", self.0)
    }
}

/// Why chaos refused something.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ChaosError {
    /// A field is out of its allowed range.
    #[error("invalid chaos `{field}` = {value}: expected {expected}")]
    Invalid {
        /// The field.
        field: &'static str,
        /// The rejected value, rendered.
        value: String,
        /// What would have been accepted.
        expected: String,
    },
    /// The target is not in the blast radius.
    #[error("chaos target {target:?} is outside its blast radius {blast_radius:?}")]
    TargetOutsideBlastRadius {
        /// The target.
        target: String,
        /// The blast radius that should contain it.
        blast_radius: Vec<String>,
    },
    /// A live scenario already has this name.
    #[error("a chaos scenario named {name:?} is already active")]
    DuplicateName {
        /// The name.
        name: String,
    },
    /// An emergency stop is in force; `resume` first.
    #[error("chaos is emergency-stopped; resume it before arming scenarios")]
    EmergencyStopped,
    /// The table has no room for another point.
    #[error("the fault table is full: at most {capacity} points")]
    TooManyPoints {
        /// The table's point capacity.
        capacity: usize,
    },
    /// A point already has the most scenarios one point can hold.
    #[error("chaos target {target:?} already has {max} active scenarios")]
    TooManyFaults {
        /// The crowded point.
        target: String,
        /// Scenarios one point can hold.
        max: usize,
    },
    /// No live scenario with this name or id.
    #[error("no active chaos scenario {what}")]
    Unknown {
        /// The name or id asked for.
        what: String,
    },
    /// The table's governance tag is not the one required.
    #[error(transparent)]
    Governance(#[from] GovernanceMismatch),
}

impl crate::Governed for ChaosError {
    fn governance(&self) -> crate::GovernanceHash {
        match self {
            ChaosError::Governance(mismatch) => mismatch.expected,
            _ => crate::GovernanceHash::for_process(),
        }
    }
}

impl ChaosError {
    pub(crate) fn invalid(
        field: &'static str,
        value: impl fmt::Display,
        expected: impl fmt::Display,
    ) -> Self {
        ChaosError::Invalid {
            field,
            value: value.to_string(),
            expected: expected.to_string(),
        }
    }

    /// The offending field, for field errors.
    pub fn field(&self) -> Option<&'static str> {
        match self {
            ChaosError::Invalid { field, .. } => Some(field),
            ChaosError::TargetOutsideBlastRadius { .. } => Some("blast_radius"),
            _ => None,
        }
    }
}
