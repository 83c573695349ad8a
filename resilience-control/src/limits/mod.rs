//! [`Limits`]: the named bulkheads, rate limiters, retry policies and time limits a control
//! plane holds, from configuration (`[[bulkheads]]`, `[[rate_limits]]`, `[[retries]]` with
//! `[[retry_budgets]]`, `[[time_limits]]`) or handed to its builder; looked up by name by the
//! service, shown in `/metrics` and `GET /limits`, and counted in health when they turn calls
//! away (see [`Pressure`](crate::health::Pressure)).

mod pressure;
mod retry_settings;
mod settings;

use std::sync::Arc;

use resilience_core::GovernanceHash;
use resilience_core::bulkhead::Bulkhead;
use resilience_core::rate_limit::{KeyedRateLimiter, RateLimiter};
use resilience_core::retry::Retry;
use resilience_core::timeout::TimeLimiter;
use serde::Serialize;

pub(crate) use pressure::PressureWatch;
pub use retry_settings::{RetryBudgetSettings, RetrySettings, TimeLimitSettings};
pub use settings::{BulkheadSettings, RateLimitSettings};

/// Named policies. Names are unique within each kind.
#[derive(Clone, Debug, Default)]
pub struct Limits {
    bulkheads: Vec<Arc<Bulkhead>>,
    rate_limiters: Vec<Arc<RateLimiter>>,
    keyed_rate_limiters: Vec<Arc<KeyedRateLimiter>>,
    retries: Vec<Arc<Retry>>,
    time_limiters: Vec<Arc<TimeLimiter>>,
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

    /// The per-key rate limiter called `name`.
    pub fn keyed_rate_limiter(&self, name: &str) -> Option<&Arc<KeyedRateLimiter>> {
        self.keyed_rate_limiters.iter().find(|l| l.name() == name)
    }

    /// Every per-key rate limiter, in the order given.
    pub fn keyed_rate_limiters(&self) -> &[Arc<KeyedRateLimiter>] {
        &self.keyed_rate_limiters
    }

    /// The retry policy called `name`.
    pub fn retry(&self, name: &str) -> Option<&Arc<Retry>> {
        self.retries.iter().find(|r| r.name() == name)
    }

    /// The time limit called `name`.
    pub fn time_limiter(&self, name: &str) -> Option<&Arc<TimeLimiter>> {
        self.time_limiters.iter().find(|t| t.name() == name)
    }

    /// Every retry policy, in the order given.
    pub fn retries(&self) -> &[Arc<Retry>] {
        &self.retries
    }

    /// Every time limit, in the order given.
    pub fn time_limiters(&self) -> &[Arc<TimeLimiter>] {
        &self.time_limiters
    }

    /// Whether it holds no policy at all.
    pub fn is_empty(&self) -> bool {
        self.bulkheads.is_empty()
            && self.rate_limiters.is_empty()
            && self.keyed_rate_limiters.is_empty()
            && self.retries.is_empty()
            && self.time_limiters.is_empty()
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
        if self.rate_limiter(limiter.name()).is_some()
            || self.keyed_rate_limiter(limiter.name()).is_some()
        {
            return Err(limiter.name().to_owned());
        }
        self.rate_limiters.push(limiter);
        Ok(())
    }

    /// Adds `limiter`; its name back when a rate limiter (keyed or not) already has it.
    pub(crate) fn add_keyed_rate_limiter(
        &mut self,
        limiter: Arc<KeyedRateLimiter>,
    ) -> Result<(), String> {
        if self.keyed_rate_limiter(limiter.name()).is_some()
            || self.rate_limiter(limiter.name()).is_some()
        {
            return Err(limiter.name().to_owned());
        }
        self.keyed_rate_limiters.push(limiter);
        Ok(())
    }

    /// Adds `retry`; its name back when a retry already has it.
    pub(crate) fn add_retry(&mut self, retry: Arc<Retry>) -> Result<(), String> {
        if self.retry(retry.name()).is_some() {
            return Err(retry.name().to_owned());
        }
        self.retries.push(retry);
        Ok(())
    }

    /// Adds `limiter`; its name back when a time limit already has it.
    pub(crate) fn add_time_limiter(&mut self, limiter: Arc<TimeLimiter>) -> Result<(), String> {
        if self.time_limiter(limiter.name()).is_some() {
            return Err(limiter.name().to_owned());
        }
        self.time_limiters.push(limiter);
        Ok(())
    }

    /// The first tag among the policies that is not `expected`.
    pub(crate) fn foreign_tag(&self, expected: GovernanceHash) -> Option<GovernanceHash> {
        self.bulkheads
            .iter()
            .map(|b| b.governance())
            .chain(self.rate_limiters.iter().map(|l| l.governance()))
            .chain(self.keyed_rate_limiters.iter().map(|l| l.governance()))
            .chain(self.retries.iter().map(|r| r.governance()))
            .chain(self.time_limiters.iter().map(|t| t.governance()))
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
            keyed_rate_limiters: self
                .keyed_rate_limiters
                .iter()
                .map(|l| {
                    let s = l.snapshot();
                    KeyedRateLimiterView {
                        name: l.name().to_owned(),
                        interval_ns: u64::try_from(l.interval().as_nanos()).unwrap_or(u64::MAX),
                        burst: l.burst(),
                        capacity: s.capacity,
                        keys_limited: s.keys_limited,
                        admitted: s.admitted,
                        rejected: s.rejected,
                        table_full: s.table_full,
                    }
                })
                .collect(),
            retries: self
                .retries
                .iter()
                .map(|r| {
                    let s = r.snapshot();
                    RetryView {
                        name: r.name().to_owned(),
                        max_attempts: r.max_attempts(),
                        retries: s.retries,
                        gave_up_attempts: s.gave_up_attempts,
                        gave_up_budget: s.gave_up_budget,
                        gave_up_deadline: s.gave_up_deadline,
                        budget_available: s.budget.map(|b| b.available),
                    }
                })
                .collect(),
            time_limiters: self
                .time_limiters
                .iter()
                .map(|t| {
                    let s = t.snapshot();
                    TimeLimiterView {
                        name: t.name().to_owned(),
                        timeout_ns: u64::try_from(t.timeout().as_nanos()).unwrap_or(u64::MAX),
                        completed: s.completed,
                        timed_out: s.timed_out,
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
    /// Every per-key rate limiter.
    pub keyed_rate_limiters: Vec<KeyedRateLimiterView>,
    /// Every retry policy.
    pub retries: Vec<RetryView>,
    /// Every time limit.
    pub time_limiters: Vec<TimeLimiterView>,
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

/// One retry policy, now.
#[derive(Clone, Debug, Serialize)]
#[non_exhaustive]
pub struct RetryView {
    /// Its name.
    pub name: String,
    /// Attempts per call, the first included.
    pub max_attempts: u32,
    /// Retries made since start.
    pub retries: u64,
    /// Calls that failed on their last attempt.
    pub gave_up_attempts: u64,
    /// Calls not retried because the budget was empty.
    pub gave_up_budget: u64,
    /// Calls not retried because the deadline was too near.
    pub gave_up_deadline: u64,
    /// Retries banked in its budget, if it has one.
    pub budget_available: Option<u32>,
}

/// One time limit, now.
#[derive(Clone, Debug, Serialize)]
#[non_exhaustive]
pub struct TimeLimiterView {
    /// Its name.
    pub name: String,
    /// The limit in nanoseconds.
    pub timeout_ns: u64,
    /// Calls that finished in time since start.
    pub completed: u64,
    /// Calls cut off at the limit since start.
    pub timed_out: u64,
}

/// One per-key rate limiter, now.
#[derive(Clone, Debug, Serialize)]
#[non_exhaustive]
pub struct KeyedRateLimiterView {
    /// Its name.
    pub name: String,
    /// Nanoseconds per permit, per key.
    pub interval_ns: u64,
    /// Permits at once per key after a quiet spell.
    pub burst: u32,
    /// Keys the table holds.
    pub capacity: usize,
    /// Keys that have spent part of their burst now.
    pub keys_limited: usize,
    /// Calls admitted since start.
    pub admitted: u64,
    /// Calls refused by their key's limit since start.
    pub rejected: u64,
    /// Calls of new keys refused for want of a slot since start.
    pub table_full: u64,
}
