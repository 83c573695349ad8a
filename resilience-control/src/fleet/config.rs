//! [`FleetConfig`]: who this instance is, where the fleet meets, and its thresholds.

use std::time::Duration;

use resilience_core::GovernanceHash;

use super::FleetError;

/// Fleet settings. Defaults: namespace `resilience`, Redis at `redis://127.0.0.1:6379`,
/// publish every 1 s, reports live for 5 s, quorum half of the reporting instances and at least
/// 2 of them, recovery leases of 10 s, fleet chaos on every instance (share 1.0).
#[derive(Clone)]
#[non_exhaustive]
pub struct FleetConfig {
    pub(crate) instance: String,
    pub(crate) namespace: String,
    pub(crate) redis_url: String,
    pub(crate) redis_ca_file: Option<std::path::PathBuf>,
    pub(crate) publish_every: Duration,
    pub(crate) report_ttl: Duration,
    pub(crate) forget_after: Duration,
    pub(crate) quorum: f64,
    pub(crate) min_reporting: u32,
    pub(crate) lease_ttl: Duration,
    pub(crate) follow_timeout: Duration,
    pub(crate) governance: GovernanceHash,
}

impl FleetConfig {
    /// Settings for the instance named `instance` (unique in the fleet: a host name, a pod name).
    pub fn new(instance: impl Into<String>) -> Self {
        FleetConfig {
            instance: instance.into(),
            namespace: "resilience".into(),
            redis_url: "redis://127.0.0.1:6379".into(),
            redis_ca_file: None,
            publish_every: Duration::from_secs(1),
            report_ttl: Duration::from_secs(5),
            forget_after: Duration::from_secs(300),
            quorum: 0.5,
            min_reporting: 2,
            lease_ttl: Duration::from_secs(10),
            follow_timeout: Duration::from_secs(30),
            governance: GovernanceHash::DEFAULT,
        }
    }

    /// This instance's name.
    pub fn instance_name(&self) -> &str {
        &self.instance
    }

    /// The PEM file of the CA that signs the Redis server's certificate (`rediss://` to a
    /// private CA).
    #[must_use]
    pub fn redis_ca_file(mut self, file: impl Into<std::path::PathBuf>) -> Self {
        self.redis_ca_file = Some(file.into());
        self
    }
}

impl std::fmt::Debug for FleetConfig {
    /// Every setting, with the Redis password shown as `***`.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FleetConfig")
            .field("instance", &self.instance)
            .field("namespace", &self.namespace)
            .field("redis_url", &crate::redact_url(&self.redis_url))
            .field("redis_ca_file", &self.redis_ca_file)
            .field("publish_every", &self.publish_every)
            .field("report_ttl", &self.report_ttl)
            .field("quorum", &self.quorum)
            .field("min_reporting", &self.min_reporting)
            .field("lease_ttl", &self.lease_ttl)
            .field("governance", &self.governance)
            .finish_non_exhaustive()
    }
}

impl FleetConfig {
    /// Checks every value, naming the first bad one.
    ///
    /// # Errors
    ///
    /// [`FleetError::Invalid`] naming the field and its value.
    pub fn validate(&self) -> Result<(), FleetError> {
        let name_ok = |s: &str| {
            !s.is_empty()
                && s.len() <= 128
                && s.chars()
                    .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c))
        };
        if !name_ok(&self.instance) {
            return Err(FleetError::invalid(
                "instance",
                &self.instance,
                "1 to 128 of [A-Za-z0-9._-]",
            ));
        }
        if !name_ok(&self.namespace) {
            return Err(FleetError::invalid(
                "namespace",
                &self.namespace,
                "1 to 128 of [A-Za-z0-9._-]",
            ));
        }
        if self.publish_every < Duration::from_millis(10) {
            return Err(FleetError::invalid(
                "publish_every",
                format!("{:?}", self.publish_every),
                "at least 10 ms",
            ));
        }
        if self.report_ttl <= self.publish_every {
            return Err(FleetError::invalid(
                "report_ttl",
                format!("{:?}", self.report_ttl),
                "longer than publish_every, or reports lapse between publishes",
            ));
        }
        if self.forget_after < self.report_ttl {
            return Err(FleetError::invalid(
                "forget_after",
                format!("{:?}", self.forget_after),
                "at least report_ttl",
            ));
        }
        if !(self.quorum > 0.0 && self.quorum <= 1.0) {
            return Err(FleetError::invalid(
                "quorum",
                self.quorum,
                "a share in (0, 1]",
            ));
        }
        if self.min_reporting == 0 {
            return Err(FleetError::invalid("min_reporting", 0, "at least 1"));
        }
        if self.lease_ttl < Duration::from_millis(100) {
            return Err(FleetError::invalid(
                "lease_ttl",
                format!("{:?}", self.lease_ttl),
                "at least 100 ms",
            ));
        }
        Ok(())
    }
}

crate::setters::setters!(FleetConfig {
    /// Key prefix (the Redis Cluster hash tag of every fleet key).
    namespace: String;
    /// Where the fleet meets.
    redis_url: String;
    /// How often this instance publishes its report and re-reads the fleet.
    publish_every: Duration;
    /// How long a report stays live; an instance silent this long drops out of quorums.
    report_ttl: Duration;
    /// How long a silent instance is still listed as silent before it is forgotten.
    forget_after: Duration;
    /// Share of the reporting live instances that must see a dependency OPEN for the rest to
    /// adopt it.
    quorum: f64;
    /// The fewest instances reporting a dependency before a quorum counts.
    min_reporting: u32;
    /// How long a recovery lease lasts unless renewed; a holder that dies frees it this late.
    lease_ttl: Duration;
    /// How long a follower waits for the lease holder's result.
    follow_timeout: Duration;
    /// Governance tag; every instance of a fleet must carry the same one.
    governance: GovernanceHash;
});
