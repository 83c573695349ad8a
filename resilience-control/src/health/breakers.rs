//! [`breaker_health_check`]: every breaker at a glance (the seed's
//! `circuit_breaker_health_check()`).

use std::time::SystemTime;

use resilience_core::{GovernanceHash, State};
use serde::Serialize;

use super::score::HealthStatus;
use crate::source::BreakerSource;

/// One breaker in a [`BreakerHealthCheck`].
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[non_exhaustive]
pub struct BreakerStatus {
    /// The breaker.
    pub name: String,
    /// Its state.
    pub state: State,
    /// HEALTHY (CLOSED or DISABLED), DEGRADED (HALF_OPEN: probing) or CRITICAL (OPEN or
    /// FORCED_OPEN).
    pub status: HealthStatus,
    /// Consecutive failures counted towards tripping (the seed's `fail_counter`).
    pub consecutive_failures: u32,
    /// Failed calls since it was created.
    pub failures: u64,
    /// Successful calls since it was created.
    pub successes: u64,
    /// Calls it refused.
    pub rejected: u64,
}

/// Every breaker's state and verdict, with the governance tag.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[non_exhaustive]
pub struct BreakerHealthCheck {
    /// Whether no breaker is CRITICAL.
    pub healthy: bool,
    /// Every breaker, by name.
    pub breakers: Vec<BreakerStatus>,
    /// How many are HEALTHY.
    pub healthy_count: usize,
    /// How many are DEGRADED.
    pub degraded_count: usize,
    /// How many are CRITICAL.
    pub critical_count: usize,
    /// When it was taken.
    #[serde(with = "humantime_serde_rfc3339")]
    pub checked_at: SystemTime,
    /// Governance tag (serialised as `constitutional_hash`, the seed's name).
    #[serde(rename = "constitutional_hash")]
    pub governance: GovernanceHash,
}

mod humantime_serde_rfc3339 {
    use std::time::SystemTime;

    pub(super) fn serialize<S: serde::Serializer>(
        at: &SystemTime,
        s: S,
    ) -> Result<S::Ok, S::Error> {
        s.collect_str(&humantime::format_rfc3339_millis(*at))
    }
}

/// The verdict for one breaker state.
pub fn breaker_status(state: State) -> HealthStatus {
    match state {
        State::HalfOpen => HealthStatus::Degraded,
        State::Open | State::ForcedOpen => HealthStatus::Critical,
        _ => HealthStatus::Healthy,
    }
}

/// Every breaker of `source` at a glance (the seed's `circuit_breaker_health_check()`).
///
/// # Examples
///
/// ```
/// use resilience_control::health::{HealthStatus, breaker_health_check};
/// use resilience_core::BreakerRegistry;
///
/// let registry = BreakerRegistry::new();
/// registry.breaker("db")?.trip_open();
/// registry.breaker("cache")?;
/// let check = breaker_health_check(&registry);
/// assert!(!check.healthy);
/// assert_eq!((check.healthy_count, check.critical_count), (1, 1));
/// assert_eq!(check.breakers[1].name, "db");
/// assert_eq!(check.breakers[1].status, HealthStatus::Critical);
/// # Ok::<(), resilience_core::RegistryError>(())
/// ```
pub fn breaker_health_check(source: &dyn BreakerSource) -> BreakerHealthCheck {
    let breakers: Vec<BreakerStatus> = source
        .snapshots()
        .into_iter()
        .map(|(name, s)| BreakerStatus {
            name: name.to_string(),
            state: s.state,
            status: breaker_status(s.state),
            consecutive_failures: s.consecutive_failures,
            failures: s.totals.failures,
            successes: s.totals.successes,
            rejected: s.totals.rejected,
        })
        .collect();
    let count = |status| breakers.iter().filter(|b| b.status == status).count();
    BreakerHealthCheck {
        healthy: count(HealthStatus::Critical) == 0,
        healthy_count: count(HealthStatus::Healthy),
        degraded_count: count(HealthStatus::Degraded),
        critical_count: count(HealthStatus::Critical),
        breakers,
        checked_at: SystemTime::now(),
        governance: source.governance(),
    }
}
