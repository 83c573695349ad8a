//! Permits: one slot each, given back when dropped.

use core::fmt;
use std::sync::Arc;

use super::Bulkhead;

/// One slot of a [`Bulkhead`], given back when dropped.
#[must_use = "the slot is given back as soon as the permit is dropped"]
pub struct BulkheadPermit<'a> {
    bulkhead: &'a Bulkhead,
}

impl<'a> BulkheadPermit<'a> {
    #[inline]
    pub(super) fn new(bulkhead: &'a Bulkhead) -> Self {
        BulkheadPermit { bulkhead }
    }

    /// The bulkhead it belongs to.
    pub fn bulkhead(&self) -> &'a Bulkhead {
        self.bulkhead
    }
}

impl Drop for BulkheadPermit<'_> {
    #[inline]
    fn drop(&mut self) {
        self.bulkhead.release();
    }
}

impl fmt::Debug for BulkheadPermit<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BulkheadPermit")
            .field("bulkhead", &self.bulkhead.name())
            .finish()
    }
}

/// A [`BulkheadPermit`] holding its bulkhead by `Arc`, for `'static` futures.
#[must_use = "the slot is given back as soon as the permit is dropped"]
pub struct OwnedBulkheadPermit {
    bulkhead: Arc<Bulkhead>,
}

impl OwnedBulkheadPermit {
    #[inline]
    pub(super) fn new(bulkhead: Arc<Bulkhead>) -> Self {
        OwnedBulkheadPermit { bulkhead }
    }

    /// The bulkhead it belongs to.
    pub fn bulkhead(&self) -> &Arc<Bulkhead> {
        &self.bulkhead
    }
}

impl Drop for OwnedBulkheadPermit {
    #[inline]
    fn drop(&mut self) {
        self.bulkhead.release();
    }
}

impl fmt::Debug for OwnedBulkheadPermit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("OwnedBulkheadPermit")
            .field("bulkhead", &self.bulkhead.name())
            .finish()
    }
}
