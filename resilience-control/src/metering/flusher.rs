//! [`MeteringFlusher`]: drains the meter ring into a sink, spooling through outages.

use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use resilience_core::meter::{MeterRing, Refused, RingLedger, UsageEvent};
use resilience_core::{Clock, ConfigError, GovernanceHash, Nanos};
use serde::Serialize;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::record::{Batch, EventRecord};
use super::sink::MeterSink;
use super::spool::{CorruptSpoolFile, Spool, SpoolError};
use crate::error::invalid;

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
    /// See [`MeterRing::drain_into`].
    fn drain_into(&self, out: &mut Vec<UsageEvent>, max: usize) -> usize;
    /// See [`MeterRing::ledger`].
    fn ledger(&self) -> RingLedger;
    /// See [`MeterRing::close`].
    fn close(&self);
    /// Wall-clock time of a ring timestamp, in nanoseconds since the Unix epoch.
    fn unix_nanos(&self, at: Nanos) -> u64;
    /// Governance tag stamped on events.
    fn governance(&self) -> GovernanceHash;
}

impl<C: Clock> MeterSource for MeterRing<C> {
    fn record(&self, event: UsageEvent) -> Result<(), Refused> {
        MeterRing::record(self, event)
    }
    fn drain_into(&self, out: &mut Vec<UsageEvent>, max: usize) -> usize {
        MeterRing::drain_into(self, out, max)
    }
    fn ledger(&self) -> RingLedger {
        MeterRing::ledger(self)
    }
    fn close(&self) {
        MeterRing::close(self);
    }
    fn unix_nanos(&self, at: Nanos) -> u64 {
        self.clock().unix_nanos(at)
    }
    fn governance(&self) -> GovernanceHash {
        MeterRing::governance(self)
    }
}

/// Flusher settings; defaults from the original (1 s, batches of 100).
#[derive(Clone, Debug, PartialEq)]
#[non_exhaustive]
pub struct MeteringConfig {
    /// Flush at least this often (default 1 s).
    pub flush_interval: Duration,
    /// Flush as soon as this many events wait (default 100).
    pub batch_size: usize,
    /// Most events in one write when catching up (default 2000).
    pub max_batch: usize,
    /// How often the ring is looked at (default 2 ms): the latency of "as soon as".
    pub poll: Duration,
    /// Spool directory (default `resilience-spool`).
    pub spool_dir: PathBuf,
    /// Spool size bound (default 64 MiB). At the bound the flusher stops draining and the ring
    /// refuses new events (counted), so nothing accepted is dropped.
    pub spool_max_bytes: u64,
    /// First and longest wait before retrying a failed sink (default 250 ms and 30 s).
    pub retry: (Duration, Duration),
    /// Names this process in batch ids (default `$HOSTNAME` or `resilience`).
    pub instance: String,
    /// Governance tag the ring must carry.
    pub governance: GovernanceHash,
}

impl Default for MeteringConfig {
    fn default() -> Self {
        MeteringConfig {
            flush_interval: Duration::from_secs(1),
            batch_size: 100,
            max_batch: 2000,
            poll: Duration::from_millis(2),
            spool_dir: PathBuf::from("resilience-spool"),
            spool_max_bytes: 64 << 20,
            retry: (Duration::from_millis(250), Duration::from_secs(30)),
            instance: std::env::var("HOSTNAME").unwrap_or_else(|_| "resilience".to_owned()),
            governance: GovernanceHash::DEFAULT,
        }
    }
}

impl MeteringConfig {
    /// The spool directory.
    #[must_use]
    pub fn spool_dir(mut self, dir: impl Into<PathBuf>) -> Self {
        self.spool_dir = dir.into();
        self
    }

    /// First and longest retry wait.
    #[must_use]
    pub fn retry(mut self, first: Duration, longest: Duration) -> Self {
        self.retry = (first, longest);
        self
    }

    /// The instance name in batch ids.
    #[must_use]
    pub fn instance(mut self, name: impl Into<String>) -> Self {
        self.instance = name.into();
        self
    }

    /// Checks every field.
    ///
    /// # Errors
    ///
    /// [`ConfigError::Invalid`] naming the field and its value.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if self.flush_interval < Duration::from_millis(1)
            || self.flush_interval > Duration::from_secs(3600)
        {
            return Err(invalid(
                "flush_interval",
                format_args!("{:?}", self.flush_interval),
                "between 1ms and 1h",
            ));
        }
        if self.batch_size == 0 || self.batch_size > 100_000 {
            return Err(invalid("batch_size", self.batch_size, "1 to 100000 events"));
        }
        if self.max_batch < self.batch_size || self.max_batch > 100_000 {
            return Err(invalid(
                "max_batch",
                self.max_batch,
                "from batch_size to 100000 events",
            ));
        }
        if self.poll.is_zero() || self.poll > self.flush_interval {
            return Err(invalid(
                "poll",
                format_args!("{:?}", self.poll),
                "greater than 0 and at most flush_interval",
            ));
        }
        if self.spool_max_bytes < 4096 {
            return Err(invalid(
                "spool_max_bytes",
                self.spool_max_bytes,
                "at least 4096 bytes",
            ));
        }
        if self.retry.0.is_zero() || self.retry.1 < self.retry.0 {
            return Err(invalid(
                "retry",
                format_args!("{:?}", self.retry),
                "a first wait above 0, no longer than the longest",
            ));
        }
        if self.instance.is_empty() || self.instance.contains(char::is_whitespace) {
            return Err(invalid(
                "instance",
                format_args!("{:?}", self.instance),
                "a name without spaces",
            ));
        }
        Ok(())
    }
}

crate::setters::setters!(MeteringConfig {
    /// The flush interval.
    flush_interval: Duration;
    /// The batch size that triggers a flush.
    batch_size: usize;
    /// The largest write.
    max_batch: usize;
    /// The spool size bound.
    spool_max_bytes: u64;
    /// Governance tag.
    governance: GovernanceHash;
});

/// Where every event stands, end to end. In every snapshot:
///
/// * `offered = accepted + refused_full + refused_closed`
/// * `accepted + inherited = flushed + spooled + pending + quarantined`
///
/// `inherited` counts events found in the spool at start (left by an earlier run) and
/// `quarantined` events in spool files that could not be read back; both are zero in a run that
/// started with an empty spool and met no corruption, where simply `accepted = flushed +
/// spooled + pending`.
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
    /// Spooled by an earlier run, found at start.
    pub inherited: u64,
    /// Written to the sink.
    pub flushed: u64,
    /// On disk, waiting for the sink.
    pub spooled: u64,
    /// Accepted and not yet written or spooled (in the ring or in flight).
    pub pending: u64,
    /// In spool files that could not be read back (reported, kept in `corrupt/`).
    pub quarantined: u64,
    /// Batches written to the sink.
    pub batches: u64,
    /// Failed sink writes.
    pub sink_failures: u64,
}

#[derive(Default)]
struct Counts {
    inherited: u64,
    flushed: u64,
    spooled: u64,
    quarantined: u64,
    batches: u64,
    sink_failures: u64,
}

struct FlushState {
    /// A batch the sink refused while the spool was full: the oldest unwritten events after
    /// the spool's, so nothing more is drained until it is written.
    held: Option<Batch>,
    healthy: bool,
    retry_at: Instant,
    backoff: Duration,
    last_flush: Instant,
    buffer: Vec<UsageEvent>,
}

struct Inner {
    source: Arc<dyn MeterSource>,
    sink: Arc<dyn MeterSink>,
    spool: Spool,
    config: MeteringConfig,
    boot: u64,
    sequence: AtomicU64,
    counts: Mutex<Counts>,
    state: tokio::sync::Mutex<FlushState>,
    corrupt: Mutex<Vec<CorruptSpoolFile>>,
}

/// Drains the meter ring every flush interval, or as soon as a batch is ready, into a sink;
/// through a sink outage, batches go to a bounded disk spool and are replayed in order when the
/// sink returns. Cheap to clone.
///
/// # Examples
///
/// ```no_run
/// use std::sync::Arc;
/// use resilience_control::metering::{MeteringConfig, MeteringFlusher, RedisStreamSink};
/// use resilience_core::meter::MeterRing;
///
/// # async fn run() -> Result<(), Box<dyn std::error::Error>> {
/// let ring = Arc::new(MeterRing::with_capacity(MeterRing::DEFAULT_CAPACITY)?);
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
    /// The spool directory is unusable.
    #[error(transparent)]
    Spool(#[from] SpoolError),
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    // Critical sections are plain arithmetic; a poisoned lock still holds consistent counts.
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

impl MeteringFlusher {
    /// Opens the spool (replaying what an earlier run left comes first) and returns a flusher
    /// for `source` into `sink`.
    ///
    /// # Errors
    ///
    /// [`MeteringError`] for a bad setting, a governance mismatch or an unusable spool.
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
        let inherited = spool.events();
        if inherited > 0 {
            tracing::info!(events = inherited, dir = %spool.dir().display(), "replaying a spool left by an earlier run");
        }
        let boot = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos() as u64);
        let now = Instant::now();
        Ok(MeteringFlusher {
            inner: Arc::new(Inner {
                source,
                sink,
                spool,
                boot,
                sequence: AtomicU64::new(0),
                counts: Mutex::new(Counts {
                    inherited,
                    spooled: inherited,
                    ..Counts::default()
                }),
                state: tokio::sync::Mutex::new(FlushState {
                    held: None,
                    healthy: true,
                    retry_at: now,
                    backoff: config.retry.0,
                    last_flush: now,
                    buffer: Vec::with_capacity(config.max_batch),
                }),
                corrupt: Mutex::new(corrupt),
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

    /// Where every event stands (see [`MeteringLedger`] for the identities that always hold).
    pub fn ledger(&self) -> MeteringLedger {
        // Counts first, ring second: the ring's accepted only grows, so what the sink and the
        // spool account for can never exceed it (pending never goes negative).
        let counts = {
            let c = lock(&self.inner.counts);
            Counts { ..*c }
        };
        let ring = self.inner.source.ledger();
        let settled = counts.flushed + counts.spooled + counts.quarantined;
        MeteringLedger {
            offered: ring.offered,
            accepted: ring.accepted,
            refused_full: ring.refused_full,
            refused_closed: ring.refused_closed,
            inherited: counts.inherited,
            flushed: counts.flushed,
            spooled: counts.spooled,
            pending: (ring.accepted + counts.inherited).saturating_sub(settled),
            quarantined: counts.quarantined,
            batches: counts.batches,
            sink_failures: counts.sink_failures,
        }
    }

    /// Flushes until `cancel` fires (then call [`finish`](Self::finish)).
    pub async fn run(&self, cancel: CancellationToken) {
        loop {
            tokio::select! {
                () = cancel.cancelled() => break,
                () = tokio::time::sleep(self.inner.config.poll) => self.step(false).await,
            }
        }
    }

    /// Closes the ring (later events are refused and counted) and writes out everything
    /// accepted: to the sink while it works and `grace` lasts, to the spool (past its bound, if
    /// need be) otherwise. Nothing accepted is left in memory.
    pub async fn finish(&self, grace: Duration) -> MeteringLedger {
        self.inner.source.close();
        let deadline = Instant::now() + grace;
        loop {
            self.step(true).await;
            let settled = {
                let state = self.inner.state.lock().await;
                state.held.is_none() && self.inner.source.ledger().pending == 0
            };
            let healthy = self.inner.state.lock().await.healthy;
            if settled && (self.inner.spool.is_empty() || !healthy) {
                break;
            }
            if Instant::now() >= deadline || !healthy {
                self.spool_everything().await;
                break;
            }
        }
        let ledger = self.ledger();
        tracing::info!(?ledger, "metering finished");
        ledger
    }

    fn next_batch(&self, state: &mut FlushState) -> Option<Batch> {
        state.buffer.clear();
        let n = self
            .inner
            .source
            .drain_into(&mut state.buffer, self.inner.config.max_batch);
        if n == 0 {
            return None;
        }
        let records = state
            .buffer
            .iter()
            .map(|e| EventRecord::from_event(e, self.inner.source.unix_nanos(e.at)))
            .collect();
        let sequence = self.inner.sequence.fetch_add(1, Ordering::Relaxed);
        Some(Batch {
            id: format!(
                "{}:{:x}:{sequence}",
                self.inner.config.instance, self.inner.boot
            ),
            records,
        })
    }

    /// One round: replay the spool, write a held batch, then flush the ring if a batch is
    /// ready (or the interval passed, or `force`), draining any backlog in full batches.
    async fn step(&self, force: bool) {
        let mut state = self.inner.state.lock().await;
        let now = Instant::now();
        if !state.healthy && now < state.retry_at {
            // The sink is down and not due for a retry: keep the ring from filling by moving
            // batches to the spool while it has room.
            self.drain_to_spool(&mut state, force).await;
            return;
        }
        if !self.replay_spool().await {
            self.failed(&mut state);
            return;
        }
        if let Some(batch) = state.held.take() {
            if self.write(&batch).await {
                self.settled(batch.records.len() as u64, 0);
            } else {
                state.held = Some(batch);
                self.failed(&mut state);
                return;
            }
        }
        let pending = self.inner.source.ledger().pending;
        let due = force
            || pending >= self.inner.config.batch_size as u64
            || (pending > 0
                && now.duration_since(state.last_flush) >= self.inner.config.flush_interval);
        if due {
            while let Some(batch) = self.next_batch(&mut state) {
                if !self.write(&batch).await {
                    self.failed(&mut state);
                    self.spool_or_hold(&mut state, batch, false).await;
                    return;
                }
                self.settled(batch.records.len() as u64, 0);
                // Keep going while a full batch waits (throughput is not capped by the
                // interval); a partial one waits for the next round.
                if !force
                    && self.inner.source.ledger().pending < self.inner.config.batch_size as u64
                {
                    break;
                }
            }
            state.last_flush = now;
        }
        state.healthy = true;
        state.backoff = self.inner.config.retry.0;
    }

    async fn write(&self, batch: &Batch) -> bool {
        match self.inner.sink.write(batch).await {
            Ok(()) => true,
            Err(err) => {
                lock(&self.inner.counts).sink_failures += 1;
                tracing::warn!(sink = self.inner.sink.name(), %err, events = batch.records.len(), "metering sink write failed");
                false
            }
        }
    }

    /// Records `flushed` events written and `unspooled` of them taken from the spool, in one
    /// step so the ledger never sees them twice.
    fn settled(&self, flushed: u64, unspooled: u64) {
        let mut counts = lock(&self.inner.counts);
        counts.spooled -= unspooled;
        counts.flushed += flushed;
        counts.batches += 1;
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
                    if !self.write(&batch).await {
                        return false;
                    }
                    self.inner.spool.remove(&file).await;
                    self.settled(batch.records.len() as u64, file.events);
                }
                Err(corrupt) => {
                    self.inner.spool.quarantine(&corrupt).await;
                    {
                        let mut counts = lock(&self.inner.counts);
                        counts.spooled -= corrupt.events;
                        counts.quarantined += corrupt.events;
                    }
                    lock(&self.inner.corrupt).push(corrupt);
                }
            }
        }
        true
    }

    async fn spool_or_hold(&self, state: &mut FlushState, batch: Batch, force: bool) -> bool {
        let events = batch.records.len() as u64;
        match self.inner.spool.push(&batch, force).await {
            Ok(()) => {
                lock(&self.inner.counts).spooled += events;
                true
            }
            Err(err) => {
                if matches!(err, SpoolError::Io { .. }) {
                    tracing::error!(%err, "could not spool a metering batch; holding it in memory");
                }
                // Full (or failing) spool: hold the batch and stop draining, so the ring fills
                // and refuses new events (counted) instead of anything accepted being dropped.
                state.held = Some(batch);
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
            let Some(batch) = self.next_batch(state) else {
                break;
            };
            state.last_flush = now;
            if !self.spool_or_hold(state, batch, false).await {
                break;
            }
        }
    }

    /// Shutdown with the sink unavailable: everything accepted goes to disk, bound or not. If
    /// the disk itself refuses, the batch stays held (and counted as pending) and draining stops,
    /// rather than replacing it with the next one.
    async fn spool_everything(&self) {
        let mut state = self.inner.state.lock().await;
        let mut next = state.held.take();
        while let Some(batch) = next.or_else(|| self.next_batch(&mut state)) {
            if !self.spool_or_hold(&mut state, batch, true).await {
                tracing::error!(
                    "metering events could not be written anywhere at shutdown; they stay counted as pending"
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
