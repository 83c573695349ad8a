//! What a [`Pipeline`](super::Pipeline) call can end in, and when its fallback answers.

use core::fmt;

use crate::breaker::Rejected;
use crate::bulkhead::BulkheadFull;
use crate::chaos::Fault;
use crate::governance::{GovernanceHash, Governed};
use crate::rate_limit::RateLimited;
use crate::timeout::TimedOut;

/// A policy refused the call before it ran. Never retried.
#[derive(Clone, Copy, Debug, PartialEq)]
#[non_exhaustive]
pub enum Refusal {
    /// The circuit breaker is open (or half-open with every probe slot taken).
    Breaker(Rejected),
    /// Every bulkhead slot is taken.
    Bulkhead(BulkheadFull),
    /// The rate limit is reached.
    RateLimited(RateLimited),
}

impl Refusal {
    /// A short snake_case label for metrics.
    pub fn reason(&self) -> &'static str {
        match self {
            Refusal::Breaker(r) => r.reason().as_str(),
            Refusal::Bulkhead(b) => b.reason(),
            Refusal::RateLimited(r) => r.reason(),
        }
    }
}

impl fmt::Display for Refusal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Refusal::Breaker(r) => r.fmt(f),
            Refusal::Bulkhead(b) => b.fmt(f),
            Refusal::RateLimited(r) => r.fmt(f),
        }
    }
}

impl Governed for Refusal {
    fn governance(&self) -> GovernanceHash {
        match self {
            Refusal::Breaker(r) => r.governance(),
            Refusal::Bulkhead(b) => b.governance(),
            Refusal::RateLimited(r) => r.governance(),
        }
    }
}

/// How a [`Pipeline`](super::Pipeline) call failed: the last attempt's outcome when retries
/// gave up.
#[derive(Clone, Debug, PartialEq)]
pub enum PipelineError<E> {
    /// A policy refused the call; it did not run.
    Refused(Refusal),
    /// The attempt ran past the time limit and was cancelled.
    TimedOut(TimedOut),
    /// Chaos failed the attempt (the call did not run).
    Injected(Fault),
    /// The call failed, and that failure left the breaker open: the seed's "the call that
    /// trips the breaker" is answered like a refusal by [`FallbackOn::Rejection`].
    Tripped(E),
    /// The call failed.
    Failed(E),
}

impl<E> PipelineError<E> {
    /// The call's own error, if it ran and failed.
    pub fn into_inner(self) -> Option<E> {
        match self {
            PipelineError::Tripped(e) | PipelineError::Failed(e) => Some(e),
            _ => None,
        }
    }

    /// Whether a policy refused the call (it never ran).
    pub fn is_refused(&self) -> bool {
        matches!(self, PipelineError::Refused(_))
    }

    /// A short snake_case label for metrics.
    pub fn reason(&self) -> &'static str {
        match self {
            PipelineError::Refused(r) => r.reason(),
            PipelineError::TimedOut(t) => t.reason(),
            PipelineError::Injected(_) => "chaos_injected",
            PipelineError::Tripped(_) => "tripped",
            PipelineError::Failed(_) => "failed",
        }
    }

    /// Whether the retry may try again after this: failures, timeouts and injected errors
    /// are transient; refusals are not, nor is a failure that opened the breaker.
    pub(super) fn is_transient(&self, retry_inner: impl FnOnce(&E) -> bool) -> bool {
        match self {
            PipelineError::Failed(e) => retry_inner(e),
            PipelineError::TimedOut(_) => true,
            PipelineError::Injected(fault) => !matches!(fault, Fault::BreakerOpen),
            PipelineError::Refused(_) | PipelineError::Tripped(_) => false,
        }
    }
}

impl<E: fmt::Display> fmt::Display for PipelineError<E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PipelineError::Refused(r) => r.fmt(f),
            PipelineError::TimedOut(t) => t.fmt(f),
            PipelineError::Injected(fault) => write!(f, "chaos injected {fault:?}"),
            PipelineError::Tripped(e) => write!(f, "{e} (and the breaker opened)"),
            PipelineError::Failed(e) => e.fmt(f),
        }
    }
}

impl<E: std::error::Error + 'static> std::error::Error for PipelineError<E> {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            PipelineError::Tripped(e) | PipelineError::Failed(e) => Some(e),
            _ => None,
        }
    }
}

/// A refusal or time-out carries its policy's tag; the service's own error, the process's.
impl<E> Governed for PipelineError<E> {
    fn governance(&self) -> GovernanceHash {
        match self {
            PipelineError::Refused(r) => r.governance(),
            PipelineError::TimedOut(t) => t.governance(),
            _ => GovernanceHash::for_process(),
        }
    }
}

/// When [`Pipeline::call_or`](super::Pipeline::call_or) answers with its fallback.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[cfg_attr(feature = "serde", serde(rename_all = "snake_case"))]
pub enum FallbackOn {
    /// When a policy refused the call, and on the failure that opened the breaker (the
    /// seed's `with_circuit_breaker`).
    #[default]
    Rejection,
    /// When the call ran and failed, timed out or had a fault injected.
    Error,
    /// On every error.
    Any,
}

impl FallbackOn {
    /// Whether the fallback answers `error`.
    pub fn applies<E>(self, error: &PipelineError<E>) -> bool {
        let refused = matches!(error, PipelineError::Refused(_) | PipelineError::Tripped(_));
        match self {
            FallbackOn::Rejection => refused,
            FallbackOn::Error => !matches!(error, PipelineError::Refused(_)),
            FallbackOn::Any => true,
        }
    }
}
