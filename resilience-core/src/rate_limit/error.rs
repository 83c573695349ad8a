//! [`RateLimited`]: a call refused because it came faster than the rate allows.

use core::fmt;
use core::time::Duration;

use crate::governance::GovernanceHash;

/// A call refused by a [`RateLimiter`](super::RateLimiter): a small `Copy` value saying when
/// the same call would be admitted, with the governance tag.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct RateLimited {
    /// Nanoseconds to wait; `u64::MAX` when asking for more permits than the burst holds.
    wait_nanos: u64,
    /// A keyed limiter had no slot for a new key.
    table_full: bool,
    governance: GovernanceHash,
}

impl RateLimited {
    #[inline]
    pub(super) fn new(wait_nanos: u64, governance: GovernanceHash) -> Self {
        RateLimited {
            wait_nanos,
            table_full: false,
            governance,
        }
    }

    #[inline]
    pub(super) fn table_full(self) -> Self {
        RateLimited {
            table_full: true,
            ..self
        }
    }

    /// Whether a [`KeyedRateLimiter`](super::KeyedRateLimiter) refused a new key because its
    /// table had no free slot (rather than the key's own limit).
    pub const fn is_table_full(&self) -> bool {
        self.table_full
    }

    /// How long until the same call would be admitted (if nobody else takes the permits
    /// first); `None` when it asked for more permits than the burst holds, so it never will.
    pub fn retry_after(&self) -> Option<Duration> {
        (self.wait_nanos != u64::MAX).then(|| Duration::from_nanos(self.wait_nanos))
    }

    /// A short snake_case label for metrics.
    pub const fn reason(&self) -> &'static str {
        if self.table_full {
            "rate_limit_table_full"
        } else {
            "rate_limited"
        }
    }
}

impl fmt::Display for RateLimited {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.retry_after() {
            Some(after) if self.table_full => write!(
                f,
                "rate limited: no room for a new key; retry after {after:?}"
            )?,
            Some(after) => write!(f, "rate limited; retry after {after:?}")?,
            None => write!(f, "rate limited; more permits asked than the burst holds")?,
        }
        write!(f, " (governance {})", self.governance)
    }
}

impl std::error::Error for RateLimited {}

impl crate::Governed for RateLimited {
    fn governance(&self) -> GovernanceHash {
        self.governance
    }
}
