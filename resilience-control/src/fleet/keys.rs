//! Key and channel names. Every name starts with `{ns}`: the braces make the namespace the
//! Redis Cluster hash tag, so all of a fleet's keys share one slot and the multi-key scripts
//! below work on a cluster as on a single server.

#[derive(Clone, Debug)]
pub(crate) struct Keys {
    prefix: String,
}

impl Keys {
    pub(crate) fn new(namespace: &str) -> Self {
        Keys {
            prefix: format!("{{{namespace}}}"),
        }
    }

    /// The fleet's governance tag, set by the first instance.
    pub(crate) fn governance(&self) -> String {
        format!("{}:governance", self.prefix)
    }

    /// Instance name → last publish (ms since the epoch).
    pub(crate) fn instances(&self) -> String {
        format!("{}:instances", self.prefix)
    }

    /// One instance's report, with a TTL.
    pub(crate) fn health(&self, instance: &str) -> String {
        format!("{}:health:{instance}", self.prefix)
    }

    /// Pub/sub channel of breaker transitions.
    pub(crate) fn breaker_channel(&self) -> String {
        format!("{}:breaker", self.prefix)
    }

    /// The recovery lease of `service`.
    pub(crate) fn lease(&self, service: &str) -> String {
        format!("{}:recovery:{service}", self.prefix)
    }

    /// The fencing counter of `service`'s leases.
    pub(crate) fn fence(&self, service: &str) -> String {
        format!("{}:recovery:{service}:fence", self.prefix)
    }

    /// The last lease holder's result for `service`.
    pub(crate) fn lease_result(&self, service: &str) -> String {
        format!("{}:recovery:{service}:result", self.prefix)
    }

    /// Active fleet scenarios and the emergency-stop flag.
    pub(crate) fn chaos(&self) -> String {
        format!("{}:chaos", self.prefix)
    }

    /// Instances taking part in fleet scenario `name`.
    pub(crate) fn chaos_members(&self, name: &str) -> String {
        format!("{}:chaos:members:{name}", self.prefix)
    }

    /// Pub/sub channel announcing fleet chaos changes.
    pub(crate) fn chaos_channel(&self) -> String {
        format!("{}:chaos:changed", self.prefix)
    }
}
