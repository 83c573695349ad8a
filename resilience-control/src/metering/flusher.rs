//! [`MeteringFlusher`]: drains the meter ring into a sink, spooling through outages.

use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use resilience_core::meter::{Drained, MeterRing, Refused, RingLedger, UsageEvent};
use resilience_core::{Clock, GovernanceHash};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::config::MeteringConfig;
use super::ledger::{Counts, MeteringLedger, SinkHealth};
use super::record::{Batch, EventRecord};
use super::sink::{MeterSink, SinkError};
use super::spool::{CorruptSpoolFile, Spool, SpoolError, SpoolReadError};
use crate::task::{CatchUnwind, panic_message};
use resilience_core::ConfigError;
use std::panic::{AssertUnwindSafe, catch_unwind};

/// Longest a flush round keeps writing back-to-back batches before it returns to `run` (which
/// comes straight back while a batch is due, after checking for cancellation).
const STEP_BUDGET: Duration = Duration::from_millis(50);

/// The metering ring as the control plane sees it (implemented by [`MeterRing`]), so the
/// flusher is not generic over the ring's clock.
pub trait MeterSource: Send + Sync + 'static {
    /// See [`MeterRing::record`].
    ///
    /// # Errors
    ///
    /// As [`MeterRing::record`].
    #[allow(clippy::result_large_err)] // the refused event comes back by value, as in core
    fn record(&self, event: UsageEvent) -> Result<(), Refused>;
    /// See [`MeterRing::drain_held`]: events keep their slots until released.
    fn drain_held(&self, out: &mut Vec<Drained>, max: usize) -> usize;
    /// See [`MeterRing::release_through`].
    fn release_through(&self, seq: u64);
    /// See [`MeterRing::ledger`].
    fn ledger(&self) -> RingLedger;
    /// See [`MeterRing::close`].
    fn close(&self);
    /// Governance tag stamped on events.
    fn governance(&self) -> GovernanceHash;
    /// See [`MeterRing::epoch`].
    fn epoch(&self) -> u64;
}

impl<C: Clock> MeterSource for MeterRing<C> {
    fn record(&self, event: UsageEvent) -> Result<(), Refused> {
        MeterRing::record(self, event)
    }
    fn drain_held(&self, out: &mut Vec<Drained>, max: usize) -> usize {
        MeterRing::drain_held(self, out, max)
    }
    fn release_through(&self, seq: u64) {
        MeterRing::release_through(self, seq);
    }
    fn ledger(&self) -> RingLedger {
        MeterRing::ledger(self)
    }
    fn close(&self) {
        MeterRing::close(self);
    }
    fn governance(&self) -> GovernanceHash {
        MeterRing::governance(self)
    }
    fn epoch(&self) -> u64 {
        MeterRing::epoch(self)
    }
}

/// A batch on its way out, and the ring sequence to release once it is safe (in the sink or
/// in the spool). Spool replays release nothing: their events left the ring long ago.
struct Outgoing {
    batch: Batch,
    release: Option<u64>,
}

struct FlushState {
    /// A batch the sink refused while the spool was full: the oldest unwritten events after
    /// the spool's, so nothing more is drained until it is written. Its slots stay held.
    held: Option<Outgoing>,
    healthy: bool,
    retry_at: Instant,
    backoff: Duration,
    last_flush: Instant,
    buffer: Vec<Drained>,
}

struct Inner {
    source: Arc<dyn MeterSource>,
    sink: Arc<dyn MeterSink>,
    spool: Spool,
    config: MeteringConfig,
    counts: Mutex<Counts>,
    state: tokio::sync::Mutex<FlushState>,
    corrupt: Mutex<Vec<CorruptSpoolFile>>,
    health: Mutex<SinkHealth>,
}

/// Drains the meter ring every flush interval, or as soon as a batch is ready, into a sink;
/// through a sink outage, batches go to a bounded disk spool and are replayed in order when the
/// sink returns. Cheap to clone.
///
/// Events stay in their ring slots (on disk, for a file-backed ring) until the sink or the
/// spool has them, so a crash at any moment loses nothing accepted; the sink's per-event ids
/// make the redelivery that follows exactly once.
///
/// # Examples
///
/// ```no_run
/// use std::sync::Arc;
/// use resilience_control::metering::{MeteringConfig, MeteringFlusher, RedisStreamSink};
/// use resilience_core::meter::MeterRing;
///
/// # async fn run() -> Result<(), Box<dyn std::error::Error>> {
/// let ring = Arc::new(MeterRing::open("spool/meter.ring", 65_536)?);
/// let sink = Arc::new(RedisStreamSink::new("redis://127.0.0.1:6379", "resilience")?);
/// let flusher = MeteringFlusher::open(ring.clone(), sink, MeteringConfig::default()).await?;
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct MeteringFlusher {
    inner: Arc<Inner>,
}

/// Why a flusher could not start.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum MeteringError {
    /// A setting is out of range.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// The ring carries another governance tag.
    #[error(transparent)]
    Governance(#[from] resilience_core::GovernanceMismatch),
    /// The spool directory is unusable (or owned by another process).
    #[error(transparent)]
    Spool(#[from] SpoolError),
}

impl resilience_core::Governed for MeteringError {
    fn governance(&self) -> resilience_core::GovernanceHash {
        match self {
            MeteringError::Config(err) => resilience_core::Governed::governance(err),
            MeteringError::Governance(mismatch) => mismatch.expected,
            _ => resilience_core::GovernanceHash::for_process(),
        }
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    // Critical sections are plain arithmetic; a poisoned lock still holds consistent counts.
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

impl MeteringFlusher {
    /// Opens the spool (replaying what an earlier run left comes first) and returns a flusher
    /// for `source` into `sink`. Events the ring recovered from its file count as inherited.
    ///
    /// # Errors
    ///
    /// [`MeteringError`] for a bad setting, a governance mismatch or an unusable (or already
    /// owned) spool.
    pub async fn open(
        source: Arc<dyn MeterSource>,
        sink: Arc<dyn MeterSink>,
        config: MeteringConfig,
    ) -> Result<Self, MeteringError> {
        config.validate()?;
        source
            .governance()
            .ensure_matches(config.governance, "metering ring")?;
        let (spool, corrupt) = Spool::open(&config.spool_dir, config.spool_max_bytes).await?;
        let from_spool = spool.events();
        let from_ring = source.ledger().recovered;
        if from_spool + from_ring > 0 {
            tracing::info!(
                spooled = from_spool,
                recovered = from_ring,
                dir = %spool.dir().display(),
                "delivering events an earlier run left behind"
            );
        }
        let mut counts = Counts {
            inherited: from_spool,
            spooled: from_spool,
            ..Counts::default()
        };
        for file in &corrupt {
            counts.corrupt_files += 1;
            counts.corrupt_bytes = counts.corrupt_bytes.saturating_add(file.bytes);
        }
        let now = Instant::now();
        Ok(MeteringFlusher {
            inner: Arc::new(Inner {
                source,
                sink,
                spool,
                counts: Mutex::new(counts),
                state: tokio::sync::Mutex::new(FlushState {
                    held: None,
                    healthy: true,
                    retry_at: now,
                    backoff: config.retry.0,
                    last_flush: now,
                    buffer: Vec::with_capacity(config.max_batch),
                }),
                corrupt: Mutex::new(corrupt),
                health: Mutex::new(SinkHealth::Up),
                config,
            }),
        })
    }

    /// The settings.
    pub fn config(&self) -> &MeteringConfig {
        &self.inner.config
    }

    /// The sink's name.
    pub fn sink_name(&self) -> &'static str {
        self.inner.sink.name()
    }

    /// Spool files found corrupt so far (reported and skipped).
    pub fn corrupt_spool_files(&self) -> Vec<CorruptSpoolFile> {
        lock(&self.inner.corrupt).clone()
    }

    /// Whether the sink is taking batches, or since when it has not (events meanwhile go to
    /// the spool).
    pub fn sink_health(&self) -> SinkHealth {
        lock(&self.inner.health).clone()
    }

    /// Where every event stands (see [`MeteringLedger`] for the identities that always hold).
    pub fn ledger(&self) -> MeteringLedger {
        // Counts first, ring second: the ring's accepted only grows, so what the sink and the
        // spool account for can never exceed it (pending never goes negative).
        let counts = lock(&self.inner.counts).clone();
        MeteringLedger::from_parts(&counts, &self.inner.source.ledger())
    }

    /// Flushes until `cancel` fires (then call [`finish`](Self::finish)).
    pub async fn run(&self, cancel: CancellationToken) {
        let mut backlog = false;
        loop {
            let pause = if backlog {
                Duration::ZERO
            } else {
                self.inner.config.poll
            };
            tokio::select! {
                biased;
                () = cancel.cancelled() => break,
                () = tokio::time::sleep(pause) => backlog = self.step(false).await,
            }
        }
    }

    /// Closes the ring (later events are refused and counted) and writes out everything
    /// accepted: to the sink while it works and `grace` lasts (trying it once even if it was
    /// failing), to the spool (past its bound, if need be) otherwise. Nothing accepted is left
    /// only in memory.
    pub async fn finish(&self, grace: Duration) -> MeteringLedger {
        self.inner.source.close();
        let deadline = Instant::now() + grace;
        // Mid-backoff, still give the sink one chance before falling back to the disk.
        self.inner.state.lock().await.retry_at = Instant::now();
        loop {
            self.step(true).await;
            let (held, healthy) = {
                let state = self.inner.state.lock().await;
                (state.held.is_some(), state.healthy)
            };
            let drained = !held && self.inner.source.ledger().pending == 0;
            if drained && (self.inner.spool.is_empty() || !healthy) {
                break;
            }
            if Instant::now() >= deadline || !healthy {
                self.spool_everything().await;
                break;
            }
            // A producer that claimed a slot before the close is still writing it.
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        let ledger = self.ledger();
        tracing::info!(?ledger, "metering finished");
        ledger
    }

    fn next_batch(&self, state: &mut FlushState) -> Option<Outgoing> {
        state.buffer.clear();
        let n = self
            .inner
            .source
            .drain_held(&mut state.buffer, self.inner.config.max_batch);
        let (first, last) = (state.buffer.first()?.id, state.buffer.last()?.id);
        debug_assert_eq!(n, state.buffer.len());
        let records = state.buffer.iter().map(EventRecord::from_drained).collect();
        Some(Outgoing {
            batch: Batch {
                id: format!(
                    "{}:{:016x}:{}-{}",
                    self.inner.config.instance, first.epoch, first.seq, last.seq
                ),
                records,
            },
            release: Some(last.seq),
        })
    }

    /// The batch is safe in the sink or the spool: its slots may go.
    fn release(&self, outgoing: &Outgoing) {
        if let Some(seq) = outgoing.release {
            self.inner.source.release_through(seq);
        }
    }

    /// One round: replay the spool, write a held batch, then flush the ring if a batch is
    /// ready (or the interval passed, or `force`), draining any backlog in full batches for up
    /// to [`STEP_BUDGET`]. Returns whether a full batch is still waiting.
    async fn step(&self, force: bool) -> bool {
        let mut state = self.inner.state.lock().await;
        let now = Instant::now();
        if !state.healthy && now < state.retry_at {
            // The sink is down and not due for a retry: keep the ring from filling by moving
            // batches to the spool while it has room.
            self.drain_to_spool(&mut state, force).await;
            return false;
        }
        if !self.replay_spool().await {
            self.failed(&mut state);
            return false;
        }
        if let Some(outgoing) = state.held.take() {
            if let Some(duplicates) = self.write(&outgoing.batch).await {
                self.delivered(&outgoing, duplicates, false);
            } else {
                state.held = Some(outgoing);
                self.failed(&mut state);
                return false;
            }
        }
        let pending = self.inner.source.ledger().pending;
        let due = force
            || pending >= self.inner.config.batch_size as u64
            || (pending > 0
                && now.duration_since(state.last_flush) >= self.inner.config.flush_interval);
        if due {
            // Under sustained load a full batch is always waiting: return after a bounded
            // stretch so `run` sees its cancellation and shutdown is never held up by traffic.
            let budget = now + STEP_BUDGET;
            while let Some(outgoing) = self.next_batch(&mut state) {
                let Some(duplicates) = self.write(&outgoing.batch).await else {
                    self.failed(&mut state);
                    self.spool_or_hold(&mut state, outgoing, false).await;
                    return false;
                };
                self.delivered(&outgoing, duplicates, false);
                // Keep going while a full batch waits (throughput is not capped by the
                // interval); a partial one waits for the next round.
                if !force
                    && (self.inner.source.ledger().pending < self.inner.config.batch_size as u64
                        || Instant::now() >= budget)
                {
                    break;
                }
            }
            state.last_flush = now;
        }
        if !state.healthy {
            tracing::info!(sink = self.inner.sink.name(), "metering sink is back");
        }
        state.healthy = true;
        state.backoff = self.inner.config.retry.0;
        *lock(&self.inner.health) = SinkHealth::Up;
        self.inner.source.ledger().pending >= self.inner.config.batch_size as u64
    }

    /// Writes a batch: `Some(records the sink already had)` when the sink has it all. A sink
    /// that panics (making its future or polling it) is a failed write: the batch stays, the
    /// flusher backs off and retries, and the control plane's other loops never notice.
    async fn write(&self, batch: &Batch) -> Option<u64> {
        let before = self.inner.sink.duplicates_skipped();
        let sink = &self.inner.sink;
        let written = match catch_unwind(AssertUnwindSafe(|| sink.write(batch))) {
            Ok(future) => CatchUnwind::new(future)
                .await
                .unwrap_or_else(|p| Err(SinkError::Panicked(panic_message(&*p)))),
            Err(p) => Err(SinkError::Panicked(panic_message(&*p))),
        };
        if matches!(written, Err(SinkError::Panicked(_))) {
            lock(&self.inner.counts).sink_panics += 1;
        }
        match written {
            Ok(()) => Some(
                self.inner
                    .sink
                    .duplicates_skipped()
                    .saturating_sub(before)
                    .min(batch.records.len() as u64),
            ),
            Err(err) => {
                lock(&self.inner.counts).sink_failures += 1;
                let message = err.to_string();
                tracing::warn!(sink = self.inner.sink.name(), error = %message, events = batch.records.len(), "metering sink write failed");
                let mut health = lock(&self.inner.health);
                match &mut *health {
                    SinkHealth::Down { error, .. } => *error = message,
                    up => {
                        *up = SinkHealth::Down {
                            since: std::time::SystemTime::now(),
                            error: message,
                        }
                    }
                }
                None
            }
        }
    }

    /// A batch reached the sink (`duplicates` of its records were already there), from the
    /// spool or not: counted in one step, so no ledger snapshot sees its events twice; then
    /// its ring slots are released.
    fn delivered(&self, outgoing: &Outgoing, duplicates: u64, from_spool: bool) {
        let events = outgoing.batch.records.len() as u64;
        {
            let mut counts = lock(&self.inner.counts);
            counts.duplicates += duplicates;
            counts.flushed += events - duplicates;
            counts.batches += 1;
            if from_spool {
                counts.spooled = counts.spooled.saturating_sub(events);
            }
        }
        self.release(outgoing);
    }

    fn failed(&self, state: &mut FlushState) {
        state.healthy = false;
        state.retry_at = Instant::now() + state.backoff;
        state.backoff = (state.backoff * 2).min(self.inner.config.retry.1);
    }

    /// Writes the spool's batches, oldest first; `false` when the sink fails.
    async fn replay_spool(&self) -> bool {
        while let Some(file) = self.inner.spool.oldest() {
            match self.inner.spool.read(&file).await {
                Ok(batch) => {
                    let outgoing = Outgoing {
                        batch,
                        release: None,
                    };
                    let Some(duplicates) = self.write(&outgoing.batch).await else {
                        return false;
                    };
                    self.inner.spool.remove(&file).await;
                    self.delivered(&outgoing, duplicates, true);
                }
                Err(SpoolReadError::Io { path, source }) => {
                    // Transient (out of descriptors, say): the file stays for the next round.
                    tracing::warn!(path = %path.display(), %source, "could not read a spool file; retrying");
                    return false;
                }
                Err(SpoolReadError::Corrupt(corrupt)) => {
                    self.inner.spool.quarantine(&corrupt).await;
                    {
                        let mut counts = lock(&self.inner.counts);
                        counts.spooled = counts.spooled.saturating_sub(file.events);
                        counts.quarantined = counts.quarantined.saturating_add(file.events);
                        counts.corrupt_files += 1;
                        counts.corrupt_bytes = counts.corrupt_bytes.saturating_add(file.bytes);
                    }
                    lock(&self.inner.corrupt).push(corrupt);
                }
            }
        }
        true
    }

    async fn spool_or_hold(&self, state: &mut FlushState, outgoing: Outgoing, force: bool) -> bool {
        let events = outgoing.batch.records.len() as u64;
        match self.inner.spool.push(&outgoing.batch, force).await {
            Ok(()) => {
                lock(&self.inner.counts).spooled += events;
                self.release(&outgoing);
                true
            }
            Err(err) => {
                if matches!(err, SpoolError::Io { .. }) {
                    tracing::error!(%err, "could not spool a metering batch; holding it in the ring");
                }
                // Full (or failing) spool: hold the batch and stop draining, so the ring fills
                // and refuses new events (counted) instead of anything accepted being dropped.
                state.held = Some(outgoing);
                false
            }
        }
    }

    async fn drain_to_spool(&self, state: &mut FlushState, force: bool) {
        let now = Instant::now();
        let config = &self.inner.config;
        while state.held.is_none() {
            let pending = self.inner.source.ledger().pending;
            let due = force
                || pending >= config.batch_size as u64
                || (pending > 0 && now.duration_since(state.last_flush) >= config.flush_interval);
            if !due {
                break;
            }
            let Some(outgoing) = self.next_batch(state) else {
                break;
            };
            state.last_flush = now;
            if !self.spool_or_hold(state, outgoing, false).await {
                break;
            }
        }
    }

    /// Shutdown with the sink unavailable: everything accepted goes to disk, bound or not. If
    /// the disk itself refuses, the batch stays held in the ring (and counted as pending; a
    /// file-backed ring still has it for the next start) and draining stops.
    async fn spool_everything(&self) {
        let mut state = self.inner.state.lock().await;
        let mut next = state.held.take();
        while let Some(outgoing) = next.or_else(|| self.next_batch(&mut state)) {
            if !self.spool_or_hold(&mut state, outgoing, true).await {
                tracing::error!(
                    "metering events could not be written anywhere at shutdown; they stay counted as pending (and in the ring file, if there is one)"
                );
                return;
            }
            next = None;
        }
    }
}

impl std::fmt::Debug for MeteringFlusher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MeteringFlusher")
            .field("sink", &self.sink_name())
            .field("ledger", &self.ledger())
            .finish_non_exhaustive()
    }
}
