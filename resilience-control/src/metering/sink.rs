//! Where flushed usage events go: the [`MeterSink`] trait and the JSONL file sink.

use std::path::{Path, PathBuf};

use tokio::io::{AsyncReadExt, AsyncSeekExt, AsyncWriteExt};
use tokio::sync::Mutex;

use super::record::{Applied, Batch, EventRecord};
use crate::health::BoxFuture;

/// A sink refused or failed a batch; the flusher spools it and retries later.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SinkError {
    /// Redis failed (connection, timeout, script error).
    #[error("redis sink: {0}")]
    Redis(#[from] redis::RedisError),
    /// A file could not be written.
    #[error("file sink {path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The failure.
        #[source]
        source: std::io::Error,
    },
    /// A record could not be encoded.
    #[error("record encoding: {0}")]
    Encode(#[from] serde_json::Error),
    /// The sink panicked (caught by the flusher: the batch is kept and retried, like any other
    /// failure, and nothing else stops).
    #[error("sink panicked: {0}")]
    Panicked(String),
}

resilience_core::governed_by_process!(SinkError);

/// Where the flusher writes batches. Implementations must apply each record at most once per
/// [`event_id`](EventRecord::event_id) (a retried or replayed batch whose events already
/// landed must not add them twice), or document that they cannot. The flusher writes each
/// epoch's events in sequence order, so remembering the highest sequence per epoch suffices.
pub trait MeterSink: Send + Sync + 'static {
    /// Short name for logs and metrics (`redis`, `jsonl`).
    fn name(&self) -> &'static str;
    /// Writes one batch.
    fn write<'a>(&'a self, batch: &'a Batch) -> BoxFuture<'a, Result<(), SinkError>>;
    /// Records skipped so far because the sink already had them (redelivery after a crash or
    /// a lost reply). Sinks that cannot tell return 0.
    fn duplicates_skipped(&self) -> u64 {
        0
    }
}

/// Appends one JSON object per event to a file: the embedded default when no Redis is
/// configured. Each batch is one append.
///
/// Exactly once across crashes, as far as a plain file allows: on first use it cuts a torn last
/// line (a crash in the middle of an append) and reads the file's tail to learn the highest
/// `event_id` sequence per epoch already written; records at or below it are skipped. Only the
/// last write before a crash can come back (the flusher releases events as soon as a write
/// lands), so the tail is enough.
#[derive(Debug)]
pub struct JsonlSink {
    path: PathBuf,
    file: Mutex<Option<(tokio::fs::File, Applied)>>,
    duplicates: std::sync::atomic::AtomicU64,
}

/// How much of an existing file's end is read for ids at first use: far more than one batch.
const TAIL_BYTES: u64 = 8 << 20;

impl JsonlSink {
    /// A sink appending to `path` (created on first write, with its directory).
    pub fn new(path: impl Into<PathBuf>) -> Self {
        JsonlSink {
            path: path.into(),
            file: Mutex::new(None),
            duplicates: std::sync::atomic::AtomicU64::new(0),
        }
    }

    /// The file written to.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Opens the file, cuts a torn last line, and learns what its tail already holds.
    async fn open(&self) -> std::io::Result<(tokio::fs::File, Applied)> {
        if let Some(dir) = self.path.parent().filter(|d| !d.as_os_str().is_empty()) {
            tokio::fs::create_dir_all(dir).await?;
        }
        let mut file = tokio::fs::OpenOptions::new()
            .create(true)
            .read(true)
            .append(true)
            .open(&self.path)
            .await?;
        let len = file.metadata().await?.len();
        let start = len.saturating_sub(TAIL_BYTES);
        file.seek(std::io::SeekFrom::Start(start)).await?;
        let mut tail = Vec::with_capacity((len - start) as usize);
        file.read_to_end(&mut tail).await?;
        let complete = tail.iter().rposition(|&b| b == b'\n').map_or(0, |i| i + 1);
        if complete < tail.len() {
            let keep = start + complete as u64;
            tracing::warn!(path = %self.path.display(), cut = len - keep, "metering: cutting a torn last line (a crash mid-append); its events are redelivered");
            file.set_len(keep).await?;
        }
        let mut applied = Applied::default();
        // The first line of a window that starts mid-file may be partial: skip what fails.
        let lines = tail[..complete]
            .split(|&b| b == b'\n')
            .filter(|l| !l.is_empty());
        for line in lines {
            if let Ok(record) = serde_json::from_slice::<EventRecord>(line) {
                applied.note_all([&record]);
            }
        }
        Ok((file, applied))
    }

    async fn append(&self, batch: &Batch) -> Result<(), SinkError> {
        let io = |source| SinkError::Io {
            path: self.path.clone(),
            source,
        };
        let mut slot = self.file.lock().await;
        if slot.is_none() {
            *slot = Some(self.open().await.map_err(io)?);
        }
        let Some((file, applied)) = slot.as_mut() else {
            return Ok(());
        };
        let mut bytes = Vec::with_capacity(batch.records.len() * 256);
        let fresh: Vec<&EventRecord> = batch.records.iter().filter(|r| applied.is_new(r)).collect();
        self.duplicates.fetch_add(
            (batch.records.len() - fresh.len()) as u64,
            std::sync::atomic::Ordering::Relaxed,
        );
        for record in &fresh {
            serde_json::to_writer(&mut bytes, record)?;
            bytes.push(b'\n');
        }
        if bytes.is_empty() {
            return Ok(());
        }
        // tokio's File hands writes to a background thread: flush so "written" means written.
        let result = match file.write_all(&bytes).await {
            Ok(()) => file.flush().await,
            Err(err) => Err(err),
        };
        match result {
            Ok(()) => {
                applied.note_all(fresh);
                Ok(())
            }
            Err(err) => {
                // Reopen next time: the handle may be stale (file removed, disk replaced), and
                // reopening cuts whatever part of this append landed.
                *slot = None;
                Err(io(err))
            }
        }
    }
}

impl MeterSink for JsonlSink {
    fn name(&self) -> &'static str {
        "jsonl"
    }

    fn write<'a>(&'a self, batch: &'a Batch) -> BoxFuture<'a, Result<(), SinkError>> {
        Box::pin(self.append(batch))
    }

    fn duplicates_skipped(&self) -> u64 {
        self.duplicates.load(std::sync::atomic::Ordering::Relaxed)
    }
}
