//! [`Pressure`]: policies that turned calls away since the last health sample, beside the
//! breakers' score. A bulkhead refusing calls or a retry budget refusing retries means the
//! service is shedding load: health reports them by name and reads no better than DEGRADED
//! while they last.

use serde::Serialize;

/// Policies under pressure at one sample, by name (sorted).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
#[non_exhaustive]
pub struct Pressure {
    /// Bulkheads that refused calls since the previous sample (every slot was taken).
    pub rejecting_bulkheads: Vec<String>,
    /// Retry policies whose budget refused a retry since the previous sample.
    pub exhausted_retry_budgets: Vec<String>,
}

impl Pressure {
    /// Whether nothing is under pressure.
    pub fn is_empty(&self) -> bool {
        self.rejecting_bulkheads.is_empty() && self.exhausted_retry_budgets.is_empty()
    }
}

/// What the health sampler asks for pressure on each sample. The control plane installs one
/// over its [`Limits`](crate::limits::Limits). Crate-private on purpose: the sampler calls it
/// inline, so only this crate's non-blocking, non-panicking watch may be installed (a user
/// callback that blocked or panicked here would stall or kill health sampling).
pub(crate) trait PressureSource: Send + Sync {
    /// The policies under pressure since the previous call.
    fn pressure(&self) -> Pressure;
}
