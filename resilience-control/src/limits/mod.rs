//! [`Limits`]: the named bulkheads and rate limiters a control plane holds, from configuration
//! (`[[bulkheads]]`, `[[rate_limits]]`) or handed to its builder; looked up by name by the
//! service, and shown in `/metrics` and `GET /limits`.

mod settings;

use std::sync::Arc;

use resilience_core::GovernanceHash;
use resilience_core::bulkhead::Bulkhead;
use resilience_core::rate_limit::RateLimiter;
use serde::Serialize;

pub use settings::{BulkheadSettings, RateLimitSettings};

/// Named bulkheads and rate limiters. Names are unique within each kind.
#[derive(Clone, Debug, Default)]
pub struct Limits {
    bulkheads: Vec<Arc<Bulkhead>>,
    rate_limiters: Vec<Arc<RateLimiter>>,
}

impl Limits {
    /// The bulkhead called `name`.
    pub fn bulkhead(&self, name: &str) -> Option<&Arc<Bulkhead>> {
        self.bulkheads.iter().find(|b| b.name() == name)
    }

    /// The rate limiter called `name`.
    pub fn rate_limiter(&self, name: &str) -> Option<&Arc<RateLimiter>> {
        self.rate_limiters.iter().find(|l| l.name() == name)
    }

    /// Every bulkhead, in the order given.
    pub fn bulkheads(&self) -> &[Arc<Bulkhead>] {
        &self.bulkheads
    }

    /// Every rate limiter, in the order given.
    pub fn rate_limiters(&self) -> &[Arc<RateLimiter>] {
        &self.rate_limiters
    }

    /// Adds `bulkhead`; its name back when a bulkhead already has it.
    pub(crate) fn add_bulkhead(&mut self, bulkhead: Arc<Bulkhead>) -> Result<(), String> {
        if self.bulkhead(bulkhead.name()).is_some() {
            return Err(bulkhead.name().to_owned());
        }
        self.bulkheads.push(bulkhead);
        Ok(())
    }

    /// Adds `limiter`; its name back when a rate limiter already has it.
    pub(crate) fn add_rate_limiter(&mut self, limiter: Arc<RateLimiter>) -> Result<(), String> {
        if self.rate_limiter(limiter.name()).is_some() {
            return Err(limiter.name().to_owned());
        }
        self.rate_limiters.push(limiter);
        Ok(())
    }

    /// The first tag among the limits that is not `expected`.
    pub(crate) fn foreign_tag(&self, expected: GovernanceHash) -> Option<GovernanceHash> {
        self.bulkheads
            .iter()
            .map(|b| b.governance())
            .chain(self.rate_limiters.iter().map(|l| l.governance()))
            .find(|tag| *tag != expected)
    }

    /// Names of the bulkheads with every slot taken now.
    pub fn saturated_bulkheads(&self) -> Vec<String> {
        self.bulkheads
            .iter()
            .filter(|b| b.snapshot().saturated())
            .map(|b| b.name().to_owned())
            .collect()
    }

    /// Every limit's state now, for people and dashboards.
    pub fn report(&self, governance: GovernanceHash) -> LimitsReport {
        LimitsReport {
            governance,
            bulkheads: self
                .bulkheads
                .iter()
                .map(|b| {
                    let s = b.snapshot();
                    BulkheadView {
                        name: b.name().to_owned(),
                        limit: s.limit,
                        in_flight: s.in_flight,
                        saturated: s.saturated(),
                        admitted: s.admitted,
                        rejected: s.rejected,
                    }
                })
                .collect(),
            rate_limiters: self
                .rate_limiters
                .iter()
                .map(|l| {
                    let s = l.snapshot();
                    RateLimiterView {
                        name: l.name().to_owned(),
                        interval_ns: u64::try_from(l.interval().as_nanos()).unwrap_or(u64::MAX),
                        burst: s.burst,
                        available: s.available,
                        admitted: s.admitted,
                        rejected: s.rejected,
                    }
                })
                .collect(),
        }
    }
}

/// What `GET /limits` answers.
#[derive(Clone, Debug, Serialize)]
#[non_exhaustive]
pub struct LimitsReport {
    /// The control plane's governance tag.
    pub governance: GovernanceHash,
    /// Every bulkhead.
    pub bulkheads: Vec<BulkheadView>,
    /// Every rate limiter.
    pub rate_limiters: Vec<RateLimiterView>,
}

/// One bulkhead, now.
#[derive(Clone, Debug, Serialize)]
#[non_exhaustive]
pub struct BulkheadView {
    /// Its name.
    pub name: String,
    /// Calls admitted at once.
    pub limit: u32,
    /// Calls holding a slot.
    pub in_flight: u32,
    /// Every slot taken.
    pub saturated: bool,
    /// Calls admitted since start.
    pub admitted: u64,
    /// Calls refused since start.
    pub rejected: u64,
}

/// One rate limiter, now.
#[derive(Clone, Debug, Serialize)]
#[non_exhaustive]
pub struct RateLimiterView {
    /// Its name.
    pub name: String,
    /// Nanoseconds per permit.
    pub interval_ns: u64,
    /// Permits at once after a quiet spell.
    pub burst: u32,
    /// Permits that could be taken now.
    pub available: u32,
    /// Calls admitted since start.
    pub admitted: u64,
    /// Calls refused since start.
    pub rejected: u64,
}
