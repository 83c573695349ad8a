//! [`MeteringLedger`]: where every usage event stands, end to end; [`SinkHealth`].

use std::time::SystemTime;

use resilience_core::meter::RingLedger;
use serde::Serialize;

/// Where every event stands, end to end. In every snapshot:
///
/// * `offered = accepted + refused_full + refused_closed`
/// * `accepted + inherited = flushed + duplicates + spooled + pending + quarantined`
///
/// `inherited` counts what an earlier run left: events in the spool, and events recovered from
/// the ring file (accepted and never released, for instance because the process was killed).
/// An event can be inherited twice (spooled, then the process died before its ring slot was
/// released); the sink then finds it already delivered and counts it under `duplicates`, so
/// the identity holds and nothing is delivered twice. `quarantined` counts events in spool
/// files that could not be read back; files too damaged to say how many events they held are
/// counted in `corrupt_files` and `corrupt_bytes` instead, never as zero events.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
#[non_exhaustive]
pub struct MeteringLedger {
    /// Events offered to the ring.
    pub offered: u64,
    /// Events the ring accepted.
    pub accepted: u64,
    /// Refused by a full ring (including while a full spool held the flusher back).
    pub refused_full: u64,
    /// Refused after the ring closed for shutdown.
    pub refused_closed: u64,
    /// Left by an earlier run: spooled, or recovered from the ring file.
    pub inherited: u64,
    /// Of `inherited`, recovered from the ring file.
    pub recovered: u64,
    /// Written to the sink.
    pub flushed: u64,
    /// Found already in the sink when written (redelivered after a crash or a lost reply),
    /// so not written again.
    pub duplicates: u64,
    /// On disk, waiting for the sink.
    pub spooled: u64,
    /// Accepted (or inherited) and not yet written or spooled: in the ring, or in flight.
    pub pending: u64,
    /// In spool files that could not be read back (reported, kept in `corrupt/`).
    pub quarantined: u64,
    /// Spool files quarantined, including those whose event count is unknown.
    pub corrupt_files: u64,
    /// Their total size.
    pub corrupt_bytes: u64,
    /// Batches written to the sink.
    pub batches: u64,
    /// Failed sink writes.
    pub sink_failures: u64,
    /// Of those, writes where the sink panicked (caught; the batch was kept).
    pub sink_panics: u64,
}

/// The flusher's own counts; the ring's ledger supplies the rest.
#[derive(Clone, Default)]
pub(crate) struct Counts {
    pub(crate) inherited: u64,
    pub(crate) flushed: u64,
    pub(crate) duplicates: u64,
    pub(crate) spooled: u64,
    pub(crate) quarantined: u64,
    pub(crate) corrupt_files: u64,
    pub(crate) corrupt_bytes: u64,
    pub(crate) batches: u64,
    pub(crate) sink_failures: u64,
    pub(crate) sink_panics: u64,
}

impl MeteringLedger {
    pub(crate) fn from_parts(counts: &Counts, ring: &RingLedger) -> Self {
        let inherited = counts.inherited.saturating_add(ring.recovered);
        let settled = counts
            .flushed
            .saturating_add(counts.duplicates)
            .saturating_add(counts.spooled)
            .saturating_add(counts.quarantined);
        MeteringLedger {
            offered: ring.offered,
            accepted: ring.accepted,
            refused_full: ring.refused_full,
            refused_closed: ring.refused_closed,
            inherited,
            recovered: ring.recovered,
            flushed: counts.flushed,
            duplicates: counts.duplicates,
            spooled: counts.spooled,
            pending: ring
                .accepted
                .saturating_add(inherited)
                .saturating_sub(settled),
            quarantined: counts.quarantined,
            corrupt_files: counts.corrupt_files,
            corrupt_bytes: counts.corrupt_bytes,
            batches: counts.batches,
            sink_failures: counts.sink_failures,
            sink_panics: counts.sink_panics,
        }
    }

    /// Whether both identities hold (they do in every snapshot; this is for tests and
    /// monitors).
    pub fn balances(&self) -> bool {
        self.offered == self.accepted + self.refused_full + self.refused_closed
            && self.accepted + self.inherited
                == self.flushed + self.duplicates + self.spooled + self.pending + self.quarantined
    }
}

/// Whether the sink is taking batches.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(tag = "state", rename_all = "snake_case")]
#[non_exhaustive]
pub enum SinkHealth {
    /// The last write succeeded (or none failed yet).
    Up,
    /// Writes have failed since `since`; batches go to the spool and are retried with a fresh
    /// connection every few hundred milliseconds.
    Down {
        /// When the outage was first seen.
        since: SystemTime,
        /// The latest failure.
        error: String,
    },
}
