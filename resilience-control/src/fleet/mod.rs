//! Fleet mode: many instances of a service acting as one, through Redis.
//!
//! * [`Fleet`]: the shared state. Health reports with a TTL ([`Fleet::publish`],
//!   [`Fleet::fleet_health`]: count, worst, mean score, instances gone silent), breaker
//!   transitions on a pub/sub channel, recovery leases with fencing ([`Fleet::try_lease`]),
//!   and fleet chaos persisted so late joiners obey it ([`Fleet::emergency_stop`],
//!   [`Fleet::start_scenario`] with a blast radius as a share of the instances).
//! * [`FleetMember`]: the loop that publishes this instance, adopts OPEN for a dependency when
//!   a quorum of live instances see it open (through the breaker's own forced-open state, so
//!   the hot path stays one atomic load), and applies fleet chaos to the local engine.
//! * [`LeasedCheck`]: a recovery health check that only the lease holder runs; the others
//!   follow its result.
//!
//! # Governance
//!
//! The fleet has one governance tag, in `{ns}:governance` with the time its oldest member
//! joined. Every member asserts it before every round ([`Fleet::assert_governance`]), so after
//! any reconnection, and after a Redis restart that lost the key, the members put it back at
//! once. A member with another tag is refused with a typed error and writes nothing: report
//! writes are guarded by the tag inside Redis, operator writes and leases assert it first, and
//! reports carry the tag, so a foreign instance is never counted in a vote, a score or a
//! status ([`FleetHealth::foreign`] lists it). A newcomer that finds the key missing waits one
//! publish period for the members to restore it before founding a fleet, and a younger
//! instance that still got in first (racing a Redis restart) loses the key to the older
//! members at their next round. Reads (`fleet_health`, `chaos_state`, `lease_*`, and
//! `resilience chaos list --fleet`) never write.
//!
//! # Time
//!
//! An adopted OPEN is a timed hold (three publish periods) that the member renews while the
//! quorum lasts. It ends on time with or without Redis and with or without traffic: the
//! control plane's health sampler makes due time-based transitions every sample
//! ([`CircuitBreaker::tick`](resilience_core::CircuitBreaker::tick)), so readiness follows
//! within one sample of the hold's end.
//!
//! Keys (hash-tagged by namespace, so a Redis Cluster keeps them in one slot):
//! `{ns}:health:{instance}` (JSON, TTL), `{ns}:instances` (last seen), `{ns}:breaker`
//! (pub/sub), `{ns}:recovery:{service}` (lease) with `:fence` and `:result`, `{ns}:chaos`
//! (scenarios and the emergency-stop flag) with `{ns}:chaos:changed` (pub/sub) and
//! `{ns}:chaos:members:{name}`, `{ns}:governance`.

mod client;
mod config;
mod keys;
mod lease;
mod member;

pub use client::{
    Fleet, FleetChaos, FleetFault, FleetHealth, FleetScenario, FleetStop, InstanceReport, Lease,
    LeaseResult, SilentInstance,
};
pub use config::FleetConfig;
pub use lease::LeasedCheck;
pub use member::FleetMember;

use resilience_core::GovernanceMismatch;

/// What can go wrong in fleet mode.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum FleetError {
    /// A setting or argument is out of range.
    #[error("fleet {field} = {value}: expected {expected}")]
    Invalid {
        /// The field.
        field: &'static str,
        /// Its value, as given.
        value: String,
        /// What would be accepted.
        expected: String,
    },
    /// Redis failed or could not be reached.
    #[error("fleet Redis: {0}")]
    Redis(#[from] redis::RedisError),
    /// This instance's governance tag differs from the fleet's.
    #[error(transparent)]
    Governance(#[from] GovernanceMismatch),
    /// A value in Redis is not what the fleet writes.
    #[error("fleet key {key} is unreadable: {reason}")]
    Corrupt {
        /// The key.
        key: String,
        /// What is wrong with it.
        reason: String,
    },
}

impl resilience_core::Governed for FleetError {
    fn governance(&self) -> resilience_core::GovernanceHash {
        match self {
            FleetError::Governance(mismatch) => mismatch.expected,
            _ => resilience_core::GovernanceHash::for_process(),
        }
    }
}

impl FleetError {
    pub(crate) fn invalid(
        field: &'static str,
        value: impl std::fmt::Display,
        expected: &str,
    ) -> Self {
        FleetError::Invalid {
            field,
            value: value.to_string(),
            expected: expected.to_owned(),
        }
    }
}
