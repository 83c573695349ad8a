//! [`ResilienceConfig`]: one TOML file plus environment variables (which win), turned into
//! each component's validated settings. Every bad value is an error naming the key or the
//! variable, and the value.
//!
//! ```toml
//! namespace = "resilience"
//! constitutional_hash = "cdd01ef066bc6cf2"
//! redis_url = "redis://127.0.0.1:6379"   # leave out to meter into a JSONL file
//!
//! [http]
//! listen = "127.0.0.1:9090"
//!
//! [health]
//! interval_seconds = 1.0
//!
//! [recovery]
//! max_retry_attempts = 5
//! strategy = "exponential_backoff"       # linear_backoff, immediate, manual
//!
//! [metering]
//! enabled = true
//! spool_dir = "resilience-spool"        # one process per directory
//! durable_ring = true                   # ring in <spool_dir>/meter.ring: survives kill -9
//! stream_max_len = 1000000              # at least 10000; stream_trim = false never trims
//!
//! [chaos]
//! enabled = false
//! max_duration_seconds = 300
//!
//! [fleet]                               # many instances acting as one, through redis_url
//! enabled = false
//! instance = "web-1"                     # default: the host name
//! publish_seconds = 1.0
//! quorum = 0.5
//!
//! [[breakers]]
//! name = "payments"
//! fail_max = 5
//! reset_timeout_seconds = 30.0
//! ```

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use resilience_core::{BreakerConfig, ConfigError, GovernanceHash, SlidingWindow};
use serde::{Deserialize, Serialize};

use crate::chaos::ChaosConfig;
use crate::fleet::FleetConfig;

/// The host name, or `instance-<pid>` where it cannot be read.
fn default_instance() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .map(|h| h.trim().to_owned())
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| format!("instance-{}", std::process::id()))
}
use crate::env::{self, EnvError, Lookup};
use crate::health::{AlertClass, HealthConfig};
use crate::metering::{MeteringConfig, RedisStreamSink, StreamTrim};
use crate::recovery::{RecoveryConfig, RecoveryPolicy, RecoveryStrategy};

/// The configuration could not be loaded.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigLoadError {
    /// The file could not be read.
    #[error("cannot read configuration file {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The file is not valid TOML for this configuration (the message names the line, the key
    /// and the value).
    #[error("invalid configuration file {path}: {message}")]
    Parse {
        /// The file.
        path: PathBuf,
        /// The parser's account, with line and column.
        message: String,
    },
    /// An environment variable holds a bad value.
    #[error(transparent)]
    Env(#[from] EnvError),
    /// A value is out of range.
    #[error("invalid configuration {key} = {value}{origin}: expected {expected}")]
    Invalid {
        /// The TOML key, e.g. `health.interval_seconds`.
        key: String,
        /// The rejected value.
        value: String,
        /// ` (from VARIABLE)` when the value came from the environment, else empty.
        origin: String,
        /// What is accepted.
        expected: String,
    },
}

resilience_core::governed_by_process!(ConfigLoadError);

impl ConfigLoadError {
    /// The key or variable at fault, when there is one.
    pub fn key(&self) -> Option<&str> {
        match self {
            ConfigLoadError::Env(e) => Some(e.variable),
            ConfigLoadError::Invalid { key, .. } => Some(key),
            _ => None,
        }
    }
}

/// HTTP endpoints.
#[derive(Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
#[non_exhaustive]
pub struct HttpSettings {
    /// Where `/metrics` and `/health/*` listen (default `127.0.0.1:9090`;
    /// `RESILIENCE_HTTP_LISTEN`).
    pub listen: SocketAddr,
    /// The bearer token state-changing endpoints require (`RESILIENCE_ADMIN_TOKEN`). Without
    /// one (and without `admin_token_file`) they are refused. Never printed.
    pub admin_token: Option<String>,
    /// A file holding the token, e.g. a mounted Kubernetes secret
    /// (`RESILIENCE_ADMIN_TOKEN_FILE`).
    pub admin_token_file: Option<PathBuf>,
    /// Time a client has to send a request's head (default 5000).
    pub header_read_timeout_ms: u64,
    /// Time for a whole request (default 10000).
    pub request_timeout_ms: u64,
    /// Connections open at once (default 256).
    pub max_connections: usize,
    /// Largest request body (default 16384).
    pub max_body_bytes: usize,
}

impl Default for HttpSettings {
    fn default() -> Self {
        let http = crate::http::HttpConfig::default();
        HttpSettings {
            listen: SocketAddr::from(([127, 0, 0, 1], 9090)),
            admin_token: None,
            admin_token_file: None,
            header_read_timeout_ms: http.header_read_timeout.as_millis() as u64,
            request_timeout_ms: http.request_timeout.as_millis() as u64,
            max_connections: http.max_connections,
            max_body_bytes: http.max_body_bytes,
        }
    }
}

impl std::fmt::Debug for HttpSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HttpSettings")
            .field("listen", &self.listen)
            .field("admin_token", &self.admin_token.as_ref().map(|_| "***"))
            .field("admin_token_file", &self.admin_token_file)
            .field("header_read_timeout_ms", &self.header_read_timeout_ms)
            .field("request_timeout_ms", &self.request_timeout_ms)
            .field("max_connections", &self.max_connections)
            .field("max_body_bytes", &self.max_body_bytes)
            .finish()
    }
}

/// Health aggregation.
#[derive(Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
#[non_exhaustive]
pub struct HealthSettings {
    /// Whether health is aggregated at all (default true; `HEALTH_ENABLED`).
    pub enabled: bool,
    /// Sampling interval (default 1; `HEALTH_CHECK_INTERVAL_SECONDS`).
    pub interval_seconds: f64,
    /// Snapshots kept (default 300).
    pub history: usize,
    /// Minutes of history `recent_history` returns (default 5).
    pub history_window_minutes: f64,
    /// PagerDuty Events v2 routing key (`PAGERDUTY_ROUTING_KEY`); alerts are off without one.
    pub pagerduty_routing_key: Option<String>,
    /// What raises alerts: `health` (CRITICAL), `recovery_exhausted`, `breaker_opened`
    /// (default the first two).
    pub alert_on: Vec<String>,
    /// Events endpoint (default PagerDuty's).
    pub pagerduty_url: Option<String>,
}

impl Default for HealthSettings {
    fn default() -> Self {
        HealthSettings {
            enabled: true,
            interval_seconds: 1.0,
            history: 300,
            history_window_minutes: 5.0,
            pagerduty_routing_key: None,
            alert_on: AlertClass::DEFAULT
                .iter()
                .map(|c| c.as_str().to_owned())
                .collect(),
            pagerduty_url: None,
        }
    }
}

impl std::fmt::Debug for HealthSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HealthSettings")
            .field("enabled", &self.enabled)
            .field("interval_seconds", &self.interval_seconds)
            .field("history", &self.history)
            .field("history_window_minutes", &self.history_window_minutes)
            .field(
                "pagerduty_routing_key",
                &self.pagerduty_routing_key.as_ref().map(|_| "***"),
            )
            .field("pagerduty_url", &self.pagerduty_url)
            .field("alert_on", &self.alert_on)
            .finish()
    }
}

/// Recovery orchestration.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
#[non_exhaustive]
pub struct RecoverySettings {
    /// Attempts before giving up (default 5; `RECOVERY_MAX_RETRY_ATTEMPTS`).
    pub max_retry_attempts: u32,
    /// `exponential_backoff` (default), `linear_backoff`, `immediate` or `manual`.
    pub strategy: StrategyName,
    /// Delay before the first attempt (default 1000).
    pub initial_delay_ms: u64,
    /// Cap on any delay (default 60000).
    pub max_delay_ms: u64,
    /// Growth per attempt (default 2.0).
    pub multiplier: f64,
    /// ± fraction of randomness in each delay (default 0).
    pub jitter: f64,
    /// Limit on one health check (default 5000).
    pub health_check_timeout_ms: u64,
    /// Attempts running at once (default 4).
    pub max_concurrent: usize,
}

impl Default for RecoverySettings {
    fn default() -> Self {
        let policy = RecoveryPolicy::default();
        RecoverySettings {
            max_retry_attempts: policy.max_retries,
            strategy: StrategyName::ExponentialBackoff,
            initial_delay_ms: policy.initial_delay.as_millis() as u64,
            max_delay_ms: policy.max_delay.as_millis() as u64,
            multiplier: policy.multiplier,
            jitter: policy.jitter,
            health_check_timeout_ms: policy.health_check_timeout.as_millis() as u64,
            max_concurrent: 4,
        }
    }
}

/// What kind of deployment this is. Production (the default) refuses chaos unless
/// `chaos.allow_in_production` is set as well as `chaos.enabled`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum Environment {
    /// A developer's machine.
    Development,
    /// A pre-production environment.
    Staging,
    /// Production.
    #[default]
    Production,
}

impl std::str::FromStr for Environment {
    type Err = ();

    fn from_str(text: &str) -> Result<Self, ()> {
        match text.to_ascii_lowercase().as_str() {
            "development" | "dev" => Ok(Environment::Development),
            "staging" => Ok(Environment::Staging),
            "production" | "prod" => Ok(Environment::Production),
            _ => Err(()),
        }
    }
}

impl std::fmt::Display for Environment {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Environment::Development => "development",
            Environment::Staging => "staging",
            Environment::Production => "production",
        })
    }
}

/// A recovery strategy, as written in the file.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum StrategyName {
    /// See [`RecoveryStrategy::ExponentialBackoff`].
    ExponentialBackoff,
    /// See [`RecoveryStrategy::LinearBackoff`].
    LinearBackoff,
    /// See [`RecoveryStrategy::Immediate`].
    Immediate,
    /// See [`RecoveryStrategy::Manual`].
    Manual,
}

impl From<StrategyName> for RecoveryStrategy {
    fn from(name: StrategyName) -> Self {
        match name {
            StrategyName::ExponentialBackoff => RecoveryStrategy::ExponentialBackoff,
            StrategyName::LinearBackoff => RecoveryStrategy::LinearBackoff,
            StrategyName::Immediate => RecoveryStrategy::Immediate,
            StrategyName::Manual => RecoveryStrategy::Manual,
        }
    }
}

/// Usage metering.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
#[non_exhaustive]
pub struct MeteringSettings {
    /// Whether hooks record anything (default true; `METERING_ENABLED`).
    pub enabled: bool,
    /// Flush at least this often (default 1000).
    pub flush_interval_ms: u64,
    /// Flush as soon as this many events wait (default 100).
    pub batch_size: usize,
    /// Events the ring holds (default 65536).
    pub ring_capacity: usize,
    /// Keep the ring in a file, so accepted events survive `kill -9` of the process and are
    /// delivered by the next start (default true). With false the ring lives in memory and
    /// whatever it holds dies with the process.
    pub durable_ring: bool,
    /// The ring's file (default `<spool_dir>/meter.ring`).
    pub ring_path: Option<PathBuf>,
    /// Where batches wait through a Redis outage (default `resilience-spool`). One process
    /// per directory: a second one is refused, naming the holder's pid.
    pub spool_dir: PathBuf,
    /// Spool bound (default 64 MiB).
    pub spool_max_bytes: u64,
    /// The file events go to when no Redis is configured (default `resilience-usage.jsonl`).
    pub jsonl_path: PathBuf,
    /// Approximate bound on the Redis stream (default 1000000, at least 10000).
    pub stream_max_len: u64,
    /// Whether the stream is trimmed at all (default true). Set false when consumers delete
    /// what they have read.
    pub stream_trim: bool,
}

impl Default for MeteringSettings {
    fn default() -> Self {
        let flusher = MeteringConfig::default();
        MeteringSettings {
            enabled: true,
            flush_interval_ms: flusher.flush_interval.as_millis() as u64,
            batch_size: flusher.batch_size,
            ring_capacity: 65_536,
            durable_ring: true,
            ring_path: None,
            spool_dir: flusher.spool_dir,
            spool_max_bytes: flusher.spool_max_bytes,
            jsonl_path: PathBuf::from("resilience-usage.jsonl"),
            stream_max_len: crate::metering::RedisStreamSink::DEFAULT_MAX_LEN,
            stream_trim: true,
        }
    }
}

/// Chaos engineering.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
#[non_exhaustive]
pub struct ChaosSettings {
    /// Whether chaos may run here at all (default false; `CHAOS_ENABLED`).
    pub enabled: bool,
    /// Whether it may also run when `environment` is production (default false).
    pub allow_in_production: bool,
    /// Longest scenario (default 300; `CHAOS_MAX_DURATION_SECONDS`).
    pub max_duration_seconds: u64,
}

impl Default for ChaosSettings {
    fn default() -> Self {
        ChaosSettings {
            enabled: false,
            allow_in_production: false,
            max_duration_seconds: 300,
        }
    }
}

/// Fleet mode: instances coordinating through Redis (`redis_url`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
#[non_exhaustive]
pub struct FleetSettings {
    /// Whether this instance joins its fleet (default false; `FLEET_ENABLED`).
    pub enabled: bool,
    /// This instance's unique name (default: the host name; `RESILIENCE_INSTANCE`).
    pub instance: Option<String>,
    /// How often it publishes and re-reads the fleet (default 1 s).
    pub publish_seconds: f64,
    /// How long a report stays live (default 5 s).
    pub report_ttl_seconds: f64,
    /// Share of reporting instances that must see a dependency OPEN (default 0.5).
    pub quorum: f64,
    /// Fewest reporting instances for a quorum (default 2).
    pub min_reporting: u32,
    /// Recovery lease length (default 10 s).
    pub lease_seconds: f64,
}

impl Default for FleetSettings {
    fn default() -> Self {
        FleetSettings {
            enabled: false,
            instance: None,
            publish_seconds: 1.0,
            report_ttl_seconds: 5.0,
            quorum: 0.5,
            min_reporting: 2,
            lease_seconds: 10.0,
        }
    }
}

/// A breaker created at start-up (the original's pre-initialised core services).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
#[non_exhaustive]
pub struct BreakerSettings {
    /// Its name.
    pub name: String,
    /// Consecutive failures that trip it (default 5).
    pub fail_max: Option<u32>,
    /// Failure share over the window that trips it, in (0, 1].
    pub failure_rate: Option<f64>,
    /// Calls in the sliding window (default 100).
    pub window_calls: Option<u32>,
    /// Calls the window needs before the rate counts.
    pub min_calls: Option<u32>,
    /// OPEN time after the first trip (default 30).
    pub reset_timeout_seconds: Option<f64>,
    /// Cap on the growing OPEN time (default 300).
    pub max_reset_timeout_seconds: Option<f64>,
    /// Probes admitted at once in HALF_OPEN (default 1).
    pub half_open_probes: Option<u32>,
    /// ± fraction of randomness in each OPEN time (default 0).
    pub jitter: Option<f64>,
}

/// Everything the `resilience` binary and a service's `main` need, from a TOML file and the
/// environment. Environment variables win over the file: `REDIS_URL`, `METERING_ENABLED`,
/// `HEALTH_CHECK_INTERVAL_SECONDS`, `RECOVERY_MAX_RETRY_ATTEMPTS`,
/// `CHAOS_MAX_DURATION_SECONDS`, `CHAOS_ENABLED`, `CONSTITUTIONAL_HASH`,
/// `RESILIENCE_NAMESPACE` and `RESILIENCE_HTTP_LISTEN`.
///
/// # Examples
///
/// ```
/// use resilience_control::ResilienceConfig;
///
/// let config = ResilienceConfig::from_toml_str(
///     "[recovery]\nmax_retry_attempts = 3\n",
///     &|name| (name == "RECOVERY_MAX_RETRY_ATTEMPTS").then(|| "7".to_owned()),
/// )?;
/// assert_eq!(config.recovery.max_retry_attempts, 7, "the environment wins");
/// assert_eq!(config.recovery_config()?.default_policy.max_retries, 7);
///
/// let err = ResilienceConfig::from_toml_str("", &|name| {
///     (name == "HEALTH_CHECK_INTERVAL_SECONDS").then(|| "soon".to_owned())
/// })
/// .unwrap_err();
/// assert_eq!(err.key(), Some("HEALTH_CHECK_INTERVAL_SECONDS"));
/// # Ok::<(), resilience_control::ConfigLoadError>(())
/// ```
#[derive(Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
#[non_exhaustive]
pub struct ResilienceConfig {
    /// Prefix of every Redis key (default `resilience`; `RESILIENCE_NAMESPACE`).
    pub namespace: String,
    /// Governance tag every component must carry (default `cdd01ef066bc6cf2`;
    /// `CONSTITUTIONAL_HASH`).
    pub constitutional_hash: GovernanceHash,
    /// Redis for metering and fleet mode (`REDIS_URL`): `redis://`, or `rediss://` for TLS,
    /// with `user:password@` for an ACL user. Without it metering goes to a JSONL file. Its
    /// password is never printed.
    pub redis_url: Option<String>,
    /// A PEM file of the CA that signs the Redis server's certificate, for `rediss://` to a
    /// private CA (default: the system's roots).
    pub redis_ca_file: Option<PathBuf>,
    /// What this deployment is (default production; `RESILIENCE_ENVIRONMENT`): production
    /// refuses chaos unless `chaos.allow_in_production`.
    pub environment: Environment,
    /// HTTP endpoints.
    pub http: HttpSettings,
    /// Health aggregation.
    pub health: HealthSettings,
    /// Recovery orchestration.
    pub recovery: RecoverySettings,
    /// Usage metering.
    pub metering: MeteringSettings,
    /// Chaos engineering.
    pub chaos: ChaosSettings,
    /// Fleet mode.
    pub fleet: FleetSettings,
    /// Named sets of breakers to create at start-up, before `breakers` (which override a
    /// preset's entry of the same name): `core_services` (see
    /// [`BreakerPreset`](crate::presets::BreakerPreset)).
    pub breaker_presets: Vec<String>,
    /// Breakers to create at start-up.
    pub breakers: Vec<BreakerSettings>,
    /// Bulkheads to create at start-up (`[[bulkheads]]`).
    pub bulkheads: Vec<crate::limits::BulkheadSettings>,
    /// Rate limiters to create at start-up (`[[rate_limits]]`).
    pub rate_limits: Vec<crate::limits::RateLimitSettings>,
    /// Retry policies to create at start-up (`[[retries]]`).
    pub retries: Vec<crate::limits::RetrySettings>,
    /// Retry budgets the retries share by name (`[[retry_budgets]]`).
    pub retry_budgets: Vec<crate::limits::RetryBudgetSettings>,
    /// Time limits to create at start-up (`[[time_limits]]`).
    pub time_limits: Vec<crate::limits::TimeLimitSettings>,
    /// Keys set by the environment, for error messages.
    #[serde(skip)]
    from_env: Vec<(&'static str, &'static str)>,
}

impl std::fmt::Debug for ResilienceConfig {
    /// Every setting, with the Redis password and every token shown as `***`.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ResilienceConfig")
            .field("namespace", &self.namespace)
            .field("constitutional_hash", &self.constitutional_hash)
            .field(
                "redis_url",
                &self.redis_url.as_deref().map(crate::redact_url),
            )
            .field("redis_ca_file", &self.redis_ca_file)
            .field("environment", &self.environment)
            .field("http", &self.http)
            .field("health", &self.health)
            .field("recovery", &self.recovery)
            .field("metering", &self.metering)
            .field("chaos", &self.chaos)
            .field("fleet", &self.fleet)
            .field("breaker_presets", &self.breaker_presets)
            .field("breakers", &self.breakers)
            .field("bulkheads", &self.bulkheads)
            .field("rate_limits", &self.rate_limits)
            .field("retries", &self.retries)
            .field("retry_budgets", &self.retry_budgets)
            .field("time_limits", &self.time_limits)
            .finish()
    }
}

impl Default for ResilienceConfig {
    fn default() -> Self {
        ResilienceConfig {
            namespace: "resilience".to_owned(),
            constitutional_hash: GovernanceHash::DEFAULT,
            redis_url: None,
            redis_ca_file: None,
            environment: Environment::Production,
            http: HttpSettings::default(),
            health: HealthSettings::default(),
            recovery: RecoverySettings::default(),
            metering: MeteringSettings::default(),
            chaos: ChaosSettings::default(),
            fleet: FleetSettings::default(),
            breaker_presets: Vec::new(),
            breakers: Vec::new(),
            bulkheads: Vec::new(),
            rate_limits: Vec::new(),
            retries: Vec::new(),
            retry_budgets: Vec::new(),
            time_limits: Vec::new(),
            from_env: Vec::new(),
        }
    }
}

impl ResilienceConfig {
    /// The defaults, then `path` (when given), then the process environment; validated.
    ///
    /// # Errors
    ///
    /// [`ConfigLoadError`] naming the file, key or variable, and the value.
    pub fn load(path: Option<&Path>) -> Result<Self, ConfigLoadError> {
        let text = match path {
            Some(path) => {
                std::fs::read_to_string(path).map_err(|source| ConfigLoadError::Read {
                    path: path.to_owned(),
                    source,
                })?
            }
            None => String::new(),
        };
        Self::parse(&text, path.unwrap_or(Path::new("<none>")), &env::process)
    }

    /// The defaults, then TOML `text`, then variables from `lookup`; validated.
    ///
    /// # Errors
    ///
    /// As [`load`](Self::load).
    pub fn from_toml_str(
        text: &str,
        lookup: &dyn Fn(&str) -> Option<String>,
    ) -> Result<Self, ConfigLoadError> {
        Self::parse(text, Path::new("<string>"), lookup)
    }

    fn parse(text: &str, path: &Path, lookup: Lookup<'_>) -> Result<Self, ConfigLoadError> {
        let mut config: ResilienceConfig =
            toml::from_str(text).map_err(|e| ConfigLoadError::Parse {
                path: path.to_owned(),
                // The parser quotes the offending line: never a password or a token.
                message: crate::redact_text(e.to_string().trim_end()),
            })?;
        config.apply_env(lookup)?;
        config.validate()?;
        Ok(config)
    }

    fn apply_env(&mut self, lookup: Lookup<'_>) -> Result<(), EnvError> {
        if let Some(url) = env::parsed::<String>(lookup, "REDIS_URL", "a redis:// URL")? {
            redis::Client::open(url.as_str()).map_err(|_| EnvError {
                variable: "REDIS_URL",
                value: crate::redact_url(&url),
                expected: "a redis:// or rediss:// URL",
            })?;
            self.redis_url = Some(url);
            self.from_env.push(("redis_url", "REDIS_URL"));
        }
        if let Some(on) = env::flag(lookup, "METERING_ENABLED")? {
            self.metering.enabled = on;
        }
        if let Some(on) = env::flag(lookup, "HEALTH_ENABLED")? {
            self.health.enabled = on;
        }
        // Kept out of files (and so out of version control) by deployments that inject secrets.
        if let Some(key) = lookup("PAGERDUTY_ROUTING_KEY").filter(|k| !k.is_empty()) {
            self.health.pagerduty_routing_key = Some(key);
            self.from_env
                .push(("health.pagerduty_routing_key", "PAGERDUTY_ROUTING_KEY"));
        }
        if let Some(seconds) = env::parsed::<f64>(
            lookup,
            "HEALTH_CHECK_INTERVAL_SECONDS",
            "seconds, e.g. 1 or 0.5",
        )? {
            self.health.interval_seconds = seconds;
            self.from_env
                .push(("health.interval_seconds", "HEALTH_CHECK_INTERVAL_SECONDS"));
        }
        if let Some(n) = env::parsed::<u32>(
            lookup,
            "RECOVERY_MAX_RETRY_ATTEMPTS",
            "a whole number of attempts, 1 to 1000",
        )? {
            self.recovery.max_retry_attempts = n;
            self.from_env
                .push(("recovery.max_retry_attempts", "RECOVERY_MAX_RETRY_ATTEMPTS"));
        }
        if let Some(n) = env::parsed::<u64>(
            lookup,
            "CHAOS_MAX_DURATION_SECONDS",
            "whole seconds, 1 to 86400",
        )? {
            self.chaos.max_duration_seconds = n;
            self.from_env
                .push(("chaos.max_duration_seconds", "CHAOS_MAX_DURATION_SECONDS"));
        }
        if let Some(on) = env::flag(lookup, "CHAOS_ENABLED")? {
            self.chaos.enabled = on;
        }
        if let Some(text) = lookup("RESILIENCE_ENVIRONMENT").filter(|t| !t.is_empty()) {
            self.environment = text.parse().map_err(|()| EnvError {
                variable: "RESILIENCE_ENVIRONMENT",
                value: crate::redact_text(&text),
                expected: "development, staging or production",
            })?;
        }
        if let Some(on) = env::flag(lookup, "FLEET_ENABLED")? {
            self.fleet.enabled = on;
        }
        if let Some(name) = env::parsed::<String>(lookup, "RESILIENCE_INSTANCE", "a name")? {
            self.fleet.instance = Some(name);
            self.from_env
                .push(("fleet.instance", "RESILIENCE_INSTANCE"));
        }
        if let Some(hash) =
            env::parsed::<GovernanceHash>(lookup, "CONSTITUTIONAL_HASH", "16 hexadecimal digits")?
        {
            self.constitutional_hash = hash;
        }
        if let Some(ns) = env::parsed::<String>(lookup, "RESILIENCE_NAMESPACE", "a name")? {
            self.namespace = ns;
            self.from_env.push(("namespace", "RESILIENCE_NAMESPACE"));
        }
        if let Some(listen) = env::parsed::<SocketAddr>(
            lookup,
            "RESILIENCE_HTTP_LISTEN",
            "an address and port, e.g. 127.0.0.1:9090",
        )? {
            self.http.listen = listen;
        }
        // The environment wins over the file, whichever way the file gives the token.
        if let Some(file) = lookup("RESILIENCE_ADMIN_TOKEN_FILE").filter(|t| !t.is_empty()) {
            self.http.admin_token_file = Some(PathBuf::from(file));
            self.http.admin_token = None;
            self.from_env
                .push(("http.admin_token_file", "RESILIENCE_ADMIN_TOKEN_FILE"));
        }
        if let Some(token) = lookup("RESILIENCE_ADMIN_TOKEN").filter(|t| !t.is_empty()) {
            self.http.admin_token = Some(token);
            self.http.admin_token_file = None;
            self.from_env
                .push(("http.admin_token", "RESILIENCE_ADMIN_TOKEN"));
        }
        Ok(())
    }

    /// Checks every value by building each component's settings.
    ///
    /// # Errors
    ///
    /// [`ConfigLoadError::Invalid`] naming the key (or variable) and the value.
    pub fn validate(&self) -> Result<(), ConfigLoadError> {
        if self.namespace.is_empty()
            || self.namespace.len() > 64
            || !self
                .namespace
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "-_.:".contains(c))
        {
            return Err(self.invalid(
                "namespace",
                format!("{:?}", self.namespace),
                "1 to 64 letters, digits, '-', '_', '.' or ':'",
            ));
        }
        self.redis_client()?;
        self.http_config()?;
        self.health_config()?;
        self.alert_classes()?;
        self.recovery_config()?;
        self.metering_config()?;
        self.chaos_config()?;
        self.fleet_config()?;
        let mut names = Vec::new();
        for (i, breaker) in self.breakers.iter().enumerate() {
            if names.contains(&breaker.name.as_str()) {
                return Err(self.invalid(
                    &format!("breakers[{i}].name"),
                    format!("{:?}", breaker.name),
                    "a name no other breaker has",
                ));
            }
            names.push(&breaker.name);
        }
        self.breaker_configs()?;
        self.bulkheads()?;
        self.rate_limiters()?;
        self.keyed_rate_limiters()?;
        self.retries()?;
        self.time_limiters()?;
        Ok(())
    }

    pub(crate) fn invalid(&self, key: &str, value: String, expected: &str) -> ConfigLoadError {
        let origin = self
            .from_env
            .iter()
            .find(|(k, _)| *k == key)
            .map(|(_, var)| format!(" (from {var})"))
            .unwrap_or_default();
        // Every value echoed back goes through the one redaction rule, whatever its key.
        ConfigLoadError::Invalid {
            key: key.to_owned(),
            value: crate::redact_text(&value),
            origin,
            expected: crate::redact_text(expected),
        }
    }

    /// A component's [`ConfigError`], reported against the file's key for that field.
    pub(crate) fn located(
        &self,
        section: &str,
        keys: &[(&str, &str)],
        err: ConfigError,
    ) -> ConfigLoadError {
        let ConfigError::Invalid {
            field,
            value,
            expected,
        } = err
        else {
            return self.invalid(section, err.to_string(), "valid settings");
        };
        let key = keys.iter().find(|(f, _)| *f == field).map_or_else(
            || format!("{section}.{field}"),
            |(_, k)| format!("{section}.{k}"),
        );
        self.invalid(&key, value, expected)
    }

    pub(crate) fn seconds(&self, key: &str, seconds: f64) -> Result<Duration, ConfigLoadError> {
        Duration::try_from_secs_f64(seconds)
            .map_err(|_| self.invalid(key, seconds.to_string(), "a number of seconds ≥ 0"))
    }

    /// A client for `redis_url` (with `redis_ca_file` for TLS to a private CA), when one is
    /// configured.
    ///
    /// # Errors
    ///
    /// [`ConfigLoadError::Invalid`] naming `redis_url` (password hidden) or `redis_ca_file`.
    pub fn redis_client(&self) -> Result<Option<redis::Client>, ConfigLoadError> {
        let Some(url) = &self.redis_url else {
            return Ok(None);
        };
        if let Some(ca) = &self.redis_ca_file {
            std::fs::metadata(ca).map_err(|e| {
                self.invalid(
                    "redis_ca_file",
                    format!("{} ({e})", ca.display()),
                    "a readable PEM file",
                )
            })?;
        }
        crate::redis_client(url, self.redis_ca_file.as_deref())
            .map(Some)
            .map_err(|e| {
                self.invalid(
                    "redis_url",
                    format!("{:?}", crate::redact_url(url)),
                    &format!(
                        "a redis:// or rediss:// URL ({})",
                        crate::redact_text(&e.to_string())
                    ),
                )
            })
    }

    /// The HTTP endpoints' settings, with the admin token read from `http.admin_token` or the
    /// file `http.admin_token_file` (not both).
    ///
    /// # Errors
    ///
    /// [`ConfigLoadError::Invalid`] naming the key and value (a token is never shown, only its
    /// length), or the token file when it cannot be read.
    pub fn http_config(&self) -> Result<crate::http::HttpConfig, ConfigLoadError> {
        let h = &self.http;
        let token = match (&h.admin_token, &h.admin_token_file) {
            (Some(_), Some(_)) => {
                return Err(self.invalid(
                    "http.admin_token_file",
                    "set together with http.admin_token".to_owned(),
                    "one of http.admin_token and http.admin_token_file",
                ));
            }
            (Some(token), None) => Some(token.clone()),
            (None, Some(file)) => Some(
                std::fs::read_to_string(file)
                    .map_err(|e| {
                        self.invalid(
                            "http.admin_token_file",
                            format!("{} ({e})", file.display()),
                            "a readable file holding the token",
                        )
                    })?
                    .trim()
                    .to_owned(),
            ),
            (None, None) => None,
        };
        let mut config = crate::http::HttpConfig::default()
            .header_read_timeout(Duration::from_millis(h.header_read_timeout_ms))
            .request_timeout(Duration::from_millis(h.request_timeout_ms))
            .max_connections(h.max_connections)
            .max_body_bytes(h.max_body_bytes);
        if let Some(token) = token {
            let key = if h.admin_token_file.is_some() {
                "admin_token_file"
            } else {
                "admin_token"
            };
            let token = crate::http::AdminToken::new(token)
                .map_err(|e| self.located("http", &[("admin_token", key)], e))?;
            config = config.admin_token(token);
        }
        let keys = [
            ("header_read_timeout", "header_read_timeout_ms"),
            ("request_timeout", "request_timeout_ms"),
        ];
        config
            .validate()
            .map_err(|e| self.located("http", &keys, e))?;
        Ok(config)
    }

    /// What raises alerts (`health.alert_on`).
    ///
    /// # Errors
    ///
    /// [`ConfigLoadError::Invalid`] naming `health.alert_on[i]` and the value.
    pub fn alert_classes(&self) -> Result<Vec<AlertClass>, ConfigLoadError> {
        self.health
            .alert_on
            .iter()
            .enumerate()
            .map(|(i, name)| {
                name.parse().map_err(|expected: String| {
                    self.invalid(
                        &format!("health.alert_on[{i}]"),
                        format!("{name:?}"),
                        &expected,
                    )
                })
            })
            .collect()
    }

    /// The health aggregator's settings.
    ///
    /// # Errors
    ///
    /// [`ConfigLoadError::Invalid`] naming the key and value.
    pub fn health_config(&self) -> Result<HealthConfig, ConfigLoadError> {
        let interval = self.seconds("health.interval_seconds", self.health.interval_seconds)?;
        let minutes = self.health.history_window_minutes;
        let window = Duration::try_from_secs_f64(minutes * 60.0).map_err(|_| {
            self.invalid(
                "health.history_window_minutes",
                minutes.to_string(),
                "a number of minutes > 0",
            )
        })?;
        let config = HealthConfig::default()
            .enabled(self.health.enabled)
            .interval(interval)
            .history(self.health.history)
            .history_window(window)
            .governance(self.constitutional_hash);
        config.validate().map_err(|e| {
            self.located(
                "health",
                &[
                    ("interval", "interval_seconds"),
                    ("history", "history"),
                    ("history_window", "history_window_minutes"),
                ],
                e,
            )
        })?;
        Ok(config)
    }

    /// The recovery orchestrator's settings.
    ///
    /// # Errors
    ///
    /// [`ConfigLoadError::Invalid`] naming the key and value.
    pub fn recovery_config(&self) -> Result<RecoveryConfig, ConfigLoadError> {
        let r = &self.recovery;
        let policy = RecoveryPolicy::with_strategy(r.strategy.into())
            .max_retries(r.max_retry_attempts)
            .multiplier(r.multiplier)
            .initial_delay(Duration::from_millis(r.initial_delay_ms))
            .max_delay(Duration::from_millis(r.max_delay_ms))
            .jitter(r.jitter)
            .health_check_timeout(Duration::from_millis(r.health_check_timeout_ms));
        let keys = [
            ("max_retries", "max_retry_attempts"),
            ("initial_delay", "initial_delay_ms"),
            ("max_delay", "max_delay_ms"),
            ("health_check_timeout", "health_check_timeout_ms"),
        ];
        policy
            .validate()
            .map_err(|e| self.located("recovery", &keys, e))?;
        let config = RecoveryConfig::default()
            .default_policy(policy)
            .max_concurrent(r.max_concurrent)
            .governance(self.constitutional_hash);
        config
            .validate()
            .map_err(|e| self.located("recovery", &keys, e))?;
        Ok(config)
    }

    /// The metering flusher's settings.
    ///
    /// # Errors
    ///
    /// [`ConfigLoadError::Invalid`] naming the key and value.
    pub fn metering_config(&self) -> Result<MeteringConfig, ConfigLoadError> {
        let m = &self.metering;
        let config = MeteringConfig::default()
            .flush_interval(Duration::from_millis(m.flush_interval_ms))
            .batch_size(m.batch_size)
            .max_batch(m.batch_size.max(MeteringConfig::default().max_batch))
            .spool_dir(&m.spool_dir)
            .spool_max_bytes(m.spool_max_bytes)
            .governance(self.constitutional_hash);
        config
            .validate()
            .map_err(|e| self.located("metering", &[("flush_interval", "flush_interval_ms")], e))?;
        if m.ring_capacity < 2 || m.ring_capacity > 1 << 24 {
            return Err(self.invalid(
                "metering.ring_capacity",
                m.ring_capacity.to_string(),
                "2 to 16777216 events",
            ));
        }
        if m.stream_trim && m.stream_max_len < RedisStreamSink::MIN_MAX_LEN {
            return Err(self.invalid(
                "metering.stream_max_len",
                m.stream_max_len.to_string(),
                "at least 10000 entries (or metering.stream_trim = false to never trim)",
            ));
        }
        Ok(config)
    }

    /// The ring's file, when the ring is durable: `metering.ring_path`, or `meter.ring` in the
    /// spool directory.
    pub fn ring_path(&self) -> Option<PathBuf> {
        let m = &self.metering;
        m.durable_ring.then(|| {
            m.ring_path
                .clone()
                .unwrap_or_else(|| m.spool_dir.join("meter.ring"))
        })
    }

    /// How the Redis stream is trimmed.
    pub fn stream_trim(&self) -> StreamTrim {
        if self.metering.stream_trim {
            StreamTrim::MaxLen(self.metering.stream_max_len)
        } else {
            StreamTrim::None
        }
    }

    /// The chaos engine's settings.
    ///
    /// # Errors
    ///
    /// [`ConfigLoadError::Invalid`] naming the key and value.
    pub fn chaos_config(&self) -> Result<ChaosConfig, ConfigLoadError> {
        let c = &self.chaos;
        if c.max_duration_seconds == 0 || c.max_duration_seconds > 86_400 {
            return Err(self.invalid(
                "chaos.max_duration_seconds",
                c.max_duration_seconds.to_string(),
                "1 to 86400 seconds",
            ));
        }
        let config = ChaosConfig::default()
            .enabled(c.enabled)
            .production(self.environment == Environment::Production)
            .allow_in_production(c.allow_in_production)
            .max_duration(Duration::from_secs(c.max_duration_seconds))
            .governance(self.constitutional_hash);
        config
            .validate()
            .map_err(|e| self.located("chaos", &[], e))?;
        Ok(config)
    }

    /// The fleet settings, when fleet mode is on: `None` when off.
    ///
    /// # Errors
    ///
    /// [`ConfigLoadError::Invalid`] naming the key (`fleet.quorum`, ...) and value, or
    /// `redis_url` when fleet mode is on without Redis.
    pub fn fleet_config(&self) -> Result<Option<FleetConfig>, ConfigLoadError> {
        let f = &self.fleet;
        if !f.enabled {
            return Ok(None);
        }
        let Some(url) = &self.redis_url else {
            return Err(self.invalid(
                "redis_url",
                "unset".to_owned(),
                "a Redis URL: fleet mode meets in Redis (REDIS_URL)",
            ));
        };
        let seconds = |key: &str, value: f64| {
            if value.is_finite() && value > 0.0 && value <= 3600.0 {
                Ok(Duration::from_secs_f64(value))
            } else {
                Err(self.invalid(key, value.to_string(), "seconds in (0, 3600]"))
            }
        };
        let instance = f.instance.clone().unwrap_or_else(default_instance);
        let mut config = FleetConfig::new(instance)
            .namespace(self.namespace.clone())
            .redis_url(url.clone())
            .publish_every(seconds("fleet.publish_seconds", f.publish_seconds)?)
            .report_ttl(seconds("fleet.report_ttl_seconds", f.report_ttl_seconds)?)
            .quorum(f.quorum)
            .min_reporting(f.min_reporting)
            .lease_ttl(seconds("fleet.lease_seconds", f.lease_seconds)?)
            .governance(self.constitutional_hash);
        if let Some(ca) = &self.redis_ca_file {
            config = config.redis_ca_file(ca);
        }
        config.validate().map_err(|e| match e {
            crate::fleet::FleetError::Invalid {
                field,
                value,
                expected,
            } => {
                let key = match field {
                    "publish_every" => "fleet.publish_seconds".to_owned(),
                    "report_ttl" => "fleet.report_ttl_seconds".to_owned(),
                    "lease_ttl" => "fleet.lease_seconds".to_owned(),
                    other => format!("fleet.{other}"),
                };
                self.invalid(&key, value, &expected)
            }
            other => self.invalid("fleet", other.to_string(), "valid fleet settings"),
        })?;
        Ok(Some(config))
    }

    /// The configured breakers, each with its validated configuration.
    ///
    /// # Errors
    ///
    /// [`ConfigLoadError::Invalid`] naming the key (`breakers[i].field`) and value.
    pub fn breaker_configs(&self) -> Result<Vec<(String, BreakerConfig)>, ConfigLoadError> {
        let mut all = Vec::new();
        for (i, name) in self.breaker_presets.iter().enumerate() {
            let preset: crate::presets::BreakerPreset =
                name.parse().map_err(|expected: String| {
                    self.invalid(
                        &format!("breaker_presets[{i}]"),
                        format!("{name:?}"),
                        &expected,
                    )
                })?;
            let breakers = preset
                .breakers(self.constitutional_hash)
                .map_err(|e| self.located("breaker_presets", &[], e))?;
            all.extend(breakers);
        }
        let explicit = self.explicit_breaker_configs()?;
        all.retain(|(name, _)| !explicit.iter().any(|(n, _)| n == name));
        all.extend(explicit);
        Ok(all)
    }

    fn explicit_breaker_configs(&self) -> Result<Vec<(String, BreakerConfig)>, ConfigLoadError> {
        self.breakers
            .iter()
            .enumerate()
            .map(|(i, b)| {
                let section = format!("breakers[{i}]");
                let mut builder = BreakerConfig::builder().governance(self.constitutional_hash);
                if let Some(n) = b.fail_max {
                    builder = builder.fail_max(n);
                }
                if let Some(rate) = b.failure_rate {
                    builder = builder.failure_rate(rate);
                }
                if let Some(n) = b.window_calls {
                    builder = builder.sliding_window(SlidingWindow::Count(n));
                }
                if let Some(n) = b.min_calls {
                    builder = builder.min_calls(n);
                }
                if let Some(s) = b.reset_timeout_seconds {
                    builder = builder.reset_timeout(
                        self.seconds(&format!("{section}.reset_timeout_seconds"), s)?,
                    );
                }
                if let Some(s) = b.max_reset_timeout_seconds {
                    builder = builder.max_reset_timeout(
                        self.seconds(&format!("{section}.max_reset_timeout_seconds"), s)?,
                    );
                }
                if let Some(n) = b.half_open_probes {
                    builder = builder.half_open_probes(n);
                }
                if let Some(j) = b.jitter {
                    builder = builder.jitter(j);
                }
                let keys = [
                    ("reset_timeout", "reset_timeout_seconds"),
                    ("max_reset_timeout", "max_reset_timeout_seconds"),
                    ("window", "window_calls"),
                ];
                builder
                    .build()
                    .map(|config| (b.name.clone(), config))
                    .map_err(|e| self.located(&section, &keys, e))
            })
            .collect()
    }
}
