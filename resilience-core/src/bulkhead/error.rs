//! [`BulkheadFull`]: a call refused because every slot was taken.

use core::fmt;

use crate::governance::GovernanceHash;

/// A call refused by a [`Bulkhead`](super::Bulkhead): every slot was taken. A small `Copy`
/// value carrying the limit and the governance tag.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct BulkheadFull {
    limit: u32,
    governance: GovernanceHash,
}

impl BulkheadFull {
    #[inline]
    pub(super) fn new(limit: u32, governance: GovernanceHash) -> Self {
        BulkheadFull { limit, governance }
    }

    /// The limit that was reached.
    pub fn limit(&self) -> u32 {
        self.limit
    }

    /// A short snake_case label for metrics.
    pub const fn reason(&self) -> &'static str {
        "bulkhead_full"
    }
}

impl fmt::Display for BulkheadFull {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "bulkhead full at {} concurrent calls (governance {})",
            self.limit, self.governance
        )
    }
}

impl std::error::Error for BulkheadFull {}

impl crate::Governed for BulkheadFull {
    fn governance(&self) -> GovernanceHash {
        self.governance
    }
}
