//! [`ChaosConfig`]: the production guard, the hard bounds, and the sizes of simulated resources.

use std::time::Duration;

use resilience_core::chaos::ChaosLimits;
use resilience_core::{ConfigError, GovernanceHash};

use crate::env::{self, EnvError};
use crate::error::invalid;

/// Chaos engine settings. Chaos is **off** unless `enabled` is set: a production deployment
/// that never opts in cannot have faults injected, whatever calls the engine. In a deployment
/// marked `production` it also needs `allow_in_production`: two deliberate settings, not one.
#[derive(Clone, Debug, PartialEq)]
#[non_exhaustive]
pub struct ChaosConfig {
    /// Whether scenarios may be started at all (default `false`; `CHAOS_ENABLED`).
    pub enabled: bool,
    /// Whether this deployment is production (default `false` here; `ResilienceConfig` sets it
    /// from its `environment`, which defaults to production).
    pub production: bool,
    /// Whether chaos may run in production too (default `false`).
    pub allow_in_production: bool,
    /// Longest a scenario may run (default 300 s; `CHAOS_MAX_DURATION_SECONDS`).
    pub max_duration: Duration,
    /// Duration of a scenario started without one (default 60 s, capped at `max_duration`).
    pub default_duration: Duration,
    /// Longest the sweeper waits between looks at expired scenarios (default 1 s); it also
    /// wakes at each scenario's expiry.
    pub sweep_interval: Duration,
    /// Busy threads a CPU exhaustion at level 1.0 runs (default: the machine's parallelism).
    pub cpu_threads: usize,
    /// Ballast a MEMORY exhaustion at level 1.0 holds (default 256 MiB).
    pub memory_max_bytes: usize,
    /// Connection slots callers share (default 100); CONNECTIONS exhaustion holds a share.
    pub connections: usize,
    /// Disk bandwidth callers are paced to under DISK_IO exhaustion, scaled by `1 - level`
    /// (default 200 MB/s). Outside exhaustion callers are not paced.
    pub disk_io_bytes_per_sec: u64,
    /// As `disk_io_bytes_per_sec`, for NETWORK_BANDWIDTH (default 125 MB/s, one gigabit).
    pub network_bytes_per_sec: u64,
    /// Governance tag the fault table must carry.
    pub governance: GovernanceHash,
}

impl Default for ChaosConfig {
    fn default() -> Self {
        ChaosConfig {
            enabled: false,
            production: false,
            allow_in_production: false,
            max_duration: Duration::from_secs(300),
            default_duration: Duration::from_secs(60),
            sweep_interval: Duration::from_secs(1),
            cpu_threads: std::thread::available_parallelism().map_or(1, usize::from),
            memory_max_bytes: 256 << 20,
            connections: 100,
            disk_io_bytes_per_sec: 200_000_000,
            network_bytes_per_sec: 125_000_000,
            governance: GovernanceHash::DEFAULT,
        }
    }
}

impl ChaosConfig {
    /// The defaults, overridden by `CHAOS_ENABLED` and `CHAOS_MAX_DURATION_SECONDS` when set.
    ///
    /// # Errors
    ///
    /// [`EnvError`] naming the variable and its value.
    pub fn from_env() -> Result<Self, EnvError> {
        Self::from_vars(&env::process)
    }

    /// As [`from_env`](Self::from_env), with variables from `lookup` instead of the process
    /// environment.
    ///
    /// ```
    /// use resilience_control::chaos::ChaosConfig;
    ///
    /// let config = ChaosConfig::from_vars(&|name| match name {
    ///     "CHAOS_ENABLED" => Some("true".into()),
    ///     "CHAOS_MAX_DURATION_SECONDS" => Some("120".into()),
    ///     _ => None,
    /// })?;
    /// assert!(config.enabled);
    /// assert_eq!(config.max_duration.as_secs(), 120);
    /// # Ok::<(), resilience_control::EnvError>(())
    /// ```
    ///
    /// # Errors
    ///
    /// [`EnvError`] naming the variable and its value.
    pub fn from_vars(lookup: &dyn Fn(&str) -> Option<String>) -> Result<Self, EnvError> {
        let mut config = ChaosConfig::default();
        if let Some(enabled) = env::flag(lookup, "CHAOS_ENABLED")? {
            config.enabled = enabled;
        }
        if let Some(seconds) = env::parsed::<u64>(
            lookup,
            "CHAOS_MAX_DURATION_SECONDS",
            "whole seconds, 1 to 86400",
        )? {
            if seconds == 0 || seconds > 86_400 {
                return Err(EnvError {
                    variable: "CHAOS_MAX_DURATION_SECONDS",
                    value: seconds.to_string(),
                    expected: "whole seconds, 1 to 86400",
                });
            }
            config.max_duration = Duration::from_secs(seconds);
        }
        Ok(config)
    }

    /// The limits scenarios are checked against (the table's own limits apply too).
    ///
    /// # Errors
    ///
    /// [`ConfigError::Invalid`] naming `max_duration` when it is out of range.
    pub fn limits(&self) -> Result<ChaosLimits, ConfigError> {
        ChaosLimits::with_max_duration(self.max_duration).map_err(|_| {
            invalid(
                "max_duration",
                format_args!("{:?}", self.max_duration),
                "between 1ns and 24h",
            )
        })
    }

    /// Checks every field.
    ///
    /// # Errors
    ///
    /// [`ConfigError::Invalid`] naming the field and its value.
    pub fn validate(&self) -> Result<(), ConfigError> {
        self.limits()?;
        if self.default_duration.is_zero() {
            return Err(invalid(
                "default_duration",
                format_args!("{:?}", self.default_duration),
                "greater than 0",
            ));
        }
        if self.sweep_interval < Duration::from_millis(1)
            || self.sweep_interval > Duration::from_secs(60)
        {
            return Err(invalid(
                "sweep_interval",
                format_args!("{:?}", self.sweep_interval),
                "between 1ms and 60s",
            ));
        }
        if self.cpu_threads == 0 || self.cpu_threads > 1024 {
            return Err(invalid(
                "cpu_threads",
                self.cpu_threads,
                "1 to 1024 threads",
            ));
        }
        if self.memory_max_bytes > 64 << 30 {
            return Err(invalid(
                "memory_max_bytes",
                self.memory_max_bytes,
                "at most 64 GiB",
            ));
        }
        if self.connections == 0 {
            return Err(invalid("connections", self.connections, "at least 1 slot"));
        }
        if self.disk_io_bytes_per_sec == 0 {
            return Err(invalid(
                "disk_io_bytes_per_sec",
                self.disk_io_bytes_per_sec,
                "at least 1 byte per second",
            ));
        }
        if self.network_bytes_per_sec == 0 {
            return Err(invalid(
                "network_bytes_per_sec",
                self.network_bytes_per_sec,
                "at least 1 byte per second",
            ));
        }
        Ok(())
    }
}

crate::setters::setters!(ChaosConfig {
    /// Allow (or refuse) chaos.
    enabled: bool;
    /// Mark this deployment as production.
    production: bool;
    /// Allow chaos in production too.
    allow_in_production: bool;
    /// The longest scenario.
    max_duration: Duration;
    /// The duration of scenarios started without one.
    default_duration: Duration;
    /// The longest wait between sweeps.
    sweep_interval: Duration;
    /// Busy threads at CPU level 1.0.
    cpu_threads: usize;
    /// Ballast at MEMORY level 1.0.
    memory_max_bytes: usize;
    /// Connection slots.
    connections: usize;
    /// Paced disk bandwidth at level 0.
    disk_io_bytes_per_sec: u64;
    /// Paced network bandwidth at level 0.
    network_bytes_per_sec: u64;
    /// Governance tag.
    governance: GovernanceHash;
});

impl ChaosConfig {
    /// Whether scenarios may start here: enabled, and not production unless allowed there.
    pub fn permits_chaos(&self) -> bool {
        self.enabled && (!self.production || self.allow_in_production)
    }
}
