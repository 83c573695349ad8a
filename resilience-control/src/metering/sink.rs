//! Where flushed usage events go: the [`MeterSink`] trait and the JSONL file sink.

use std::path::{Path, PathBuf};

use tokio::io::AsyncWriteExt;
use tokio::sync::Mutex;

use super::record::Batch;
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
}

/// Where the flusher writes batches. Implementations must apply a batch at most once per batch
/// id (a retried batch whose first attempt landed must not be written twice), or document that
/// they cannot.
pub trait MeterSink: Send + Sync + 'static {
    /// Short name for logs and metrics (`redis`, `jsonl`).
    fn name(&self) -> &'static str;
    /// Writes one batch.
    fn write<'a>(&'a self, batch: &'a Batch) -> BoxFuture<'a, Result<(), SinkError>>;
}

/// Appends one JSON object per event to a file: the embedded default when no Redis is
/// configured. Each batch is one append, so a retry only follows a write that reported failure;
/// a crash in the middle of an append can leave a partial last line, which readers should skip.
#[derive(Debug)]
pub struct JsonlSink {
    path: PathBuf,
    file: Mutex<Option<tokio::fs::File>>,
}

impl JsonlSink {
    /// A sink appending to `path` (created on first write, with its directory).
    pub fn new(path: impl Into<PathBuf>) -> Self {
        JsonlSink {
            path: path.into(),
            file: Mutex::new(None),
        }
    }

    /// The file written to.
    pub fn path(&self) -> &Path {
        &self.path
    }

    async fn append(&self, bytes: &[u8]) -> std::io::Result<()> {
        let mut file = self.file.lock().await;
        if file.is_none() {
            if let Some(dir) = self.path.parent().filter(|d| !d.as_os_str().is_empty()) {
                tokio::fs::create_dir_all(dir).await?;
            }
            *file = Some(
                tokio::fs::OpenOptions::new()
                    .create(true)
                    .append(true)
                    .open(&self.path)
                    .await?,
            );
        }
        // tokio's File hands writes to a background thread: flush so "written" means written.
        let result = match file.as_mut() {
            Some(f) => match f.write_all(bytes).await {
                Ok(()) => f.flush().await,
                Err(err) => Err(err),
            },
            None => Ok(()),
        };
        if result.is_err() {
            // Reopen next time: the handle may be stale (file removed, disk replaced).
            *file = None;
        }
        result
    }
}

impl MeterSink for JsonlSink {
    fn name(&self) -> &'static str {
        "jsonl"
    }

    fn write<'a>(&'a self, batch: &'a Batch) -> BoxFuture<'a, Result<(), SinkError>> {
        Box::pin(async move {
            let mut bytes = Vec::with_capacity(batch.records.len() * 256);
            for record in &batch.records {
                serde_json::to_writer(&mut bytes, record)?;
                bytes.push(b'\n');
            }
            self.append(&bytes).await.map_err(|source| SinkError::Io {
                path: self.path.clone(),
                source,
            })
        })
    }
}
