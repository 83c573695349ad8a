//! The outage buffer: batches the sink could not take, on disk, replayed in order.
//!
//! One file per batch, named by a sequence number that keeps growing across restarts, so
//! listing the directory gives the replay order. Each file is a header line
//! (`{"batch":..,"events":..}`) then one record per line, written to a temporary name and renamed
//! into place, so a crash never leaves a half-written batch under a real name. A file that fails
//! to parse is moved to `corrupt/` and reported; it never stops the flusher.

use std::collections::VecDeque;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, PoisonError};

use serde::{Deserialize, Serialize};

use super::record::{Batch, EventRecord};

/// A batch waiting in the spool.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SpoolFile {
    /// Where it is.
    pub path: PathBuf,
    /// Events it holds (from its header).
    pub events: u64,
    /// Its size.
    pub bytes: u64,
}

#[derive(Serialize, Deserialize)]
struct Header {
    batch: String,
    events: u64,
}

/// Why a batch could not be spooled.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SpoolError {
    /// The spool is at its size bound.
    #[error("spool {dir} is full ({bytes} of {max} bytes)")]
    Full {
        /// The spool directory.
        dir: PathBuf,
        /// Bytes in use.
        bytes: u64,
        /// The bound.
        max: u64,
    },
    /// The disk refused.
    #[error("spool {path}: {source}")]
    Io {
        /// The file or directory.
        path: PathBuf,
        /// The failure.
        #[source]
        source: std::io::Error,
    },
}

/// A spool file that could not be read back.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("corrupt spool file {path}: {reason}")]
pub struct CorruptSpoolFile {
    /// The file (moved to `corrupt/`).
    pub path: PathBuf,
    /// What was wrong.
    pub reason: String,
    /// Events its header claimed, if the header was readable.
    pub events: u64,
}

struct State {
    files: VecDeque<SpoolFile>,
    bytes: u64,
    next_sequence: u64,
}

/// The bounded on-disk spool.
pub struct Spool {
    dir: PathBuf,
    max_bytes: u64,
    state: Mutex<State>,
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> SpoolError + '_ {
    move |source| SpoolError::Io {
        path: path.to_owned(),
        source,
    }
}

impl Spool {
    /// Opens (creating) the spool at `dir`, bounded at `max_bytes`, and lists batches left by
    /// an earlier run. Files whose header cannot be read are quarantined and returned.
    ///
    /// # Errors
    ///
    /// [`SpoolError::Io`] if the directory cannot be created or listed.
    pub async fn open(
        dir: impl Into<PathBuf>,
        max_bytes: u64,
    ) -> Result<(Spool, Vec<CorruptSpoolFile>), SpoolError> {
        let dir = dir.into();
        tokio::fs::create_dir_all(&dir).await.map_err(io(&dir))?;
        let mut names = Vec::new();
        let mut entries = tokio::fs::read_dir(&dir).await.map_err(io(&dir))?;
        while let Some(entry) = entries.next_entry().await.map_err(io(&dir))? {
            let name = entry.file_name().to_string_lossy().into_owned();
            if name.starts_with(".tmp-") {
                // A write cut short by a crash: never renamed, so never accepted as spooled.
                let _ = tokio::fs::remove_file(entry.path()).await;
            } else if let Some(sequence) = name
                .strip_suffix(".jsonl")
                .and_then(|s| s.parse::<u64>().ok())
            {
                names.push((sequence, entry.path()));
            }
        }
        names.sort_unstable();
        let spool = Spool {
            max_bytes,
            state: Mutex::new(State {
                files: VecDeque::new(),
                bytes: 0,
                next_sequence: names.last().map_or(1, |(s, _)| s + 1),
            }),
            dir,
        };
        let mut corrupt = Vec::new();
        for (_, path) in names {
            match read_header(&path).await {
                Ok((header, bytes)) => {
                    let mut state = spool.lock();
                    state.bytes += bytes;
                    state.files.push_back(SpoolFile {
                        path,
                        events: header.events,
                        bytes,
                    });
                }
                Err(reason) => corrupt.push(spool.quarantine_path(&path, reason, 0).await),
            }
        }
        Ok((spool, corrupt))
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The spool directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Bytes in use.
    pub fn bytes(&self) -> u64 {
        self.lock().bytes
    }

    /// Events waiting.
    pub fn events(&self) -> u64 {
        self.lock().files.iter().map(|f| f.events).sum()
    }

    /// Whether nothing waits.
    pub fn is_empty(&self) -> bool {
        self.lock().files.is_empty()
    }

    /// The oldest batch waiting.
    pub fn oldest(&self) -> Option<SpoolFile> {
        self.lock().files.front().cloned()
    }

    /// Writes `batch` to the spool. `force` ignores the size bound (shutdown: the alternative
    /// would be to lose accepted events).
    ///
    /// # Errors
    ///
    /// [`SpoolError::Full`] at the bound, [`SpoolError::Io`] if the disk refuses.
    pub async fn push(&self, batch: &Batch, force: bool) -> Result<(), SpoolError> {
        let mut body = Vec::with_capacity(64 + batch.records.len() * 256);
        let header = Header {
            batch: batch.id.clone(),
            events: batch.records.len() as u64,
        };
        let encode = |e: serde_json::Error| SpoolError::Io {
            path: self.dir.clone(),
            source: e.into(),
        };
        serde_json::to_writer(&mut body, &header).map_err(encode)?;
        body.push(b'\n');
        for record in &batch.records {
            serde_json::to_writer(&mut body, record).map_err(encode)?;
            body.push(b'\n');
        }
        let size = body.len() as u64;
        let sequence = {
            let mut state = self.lock();
            if !force && state.bytes + size > self.max_bytes {
                return Err(SpoolError::Full {
                    dir: self.dir.clone(),
                    bytes: state.bytes,
                    max: self.max_bytes,
                });
            }
            // Reserve the space and the name now, so concurrent pushes stay in bounds and order.
            state.bytes += size;
            state.next_sequence += 1;
            state.next_sequence - 1
        };
        let path = self.dir.join(format!("{sequence:020}.jsonl"));
        let tmp = self.dir.join(format!(".tmp-{sequence:020}"));
        let written = async {
            tokio::fs::write(&tmp, &body).await.map_err(io(&tmp))?;
            tokio::fs::rename(&tmp, &path).await.map_err(io(&path))
        }
        .await;
        // Account under the lock, await only after it is released.
        let failed = {
            let mut state = self.lock();
            match written {
                Ok(()) => {
                    state.files.push_back(SpoolFile {
                        path,
                        events: header.events,
                        bytes: size,
                    });
                    None
                }
                Err(err) => {
                    state.bytes -= size;
                    Some(err)
                }
            }
        };
        match failed {
            None => Ok(()),
            Some(err) => {
                let _ = tokio::fs::remove_file(&tmp).await;
                Err(err)
            }
        }
    }

    /// Reads a spooled batch back.
    ///
    /// # Errors
    ///
    /// [`CorruptSpoolFile`] if it cannot be parsed; the caller then [`quarantine`]s it.
    ///
    /// [`quarantine`]: Self::quarantine
    pub async fn read(&self, file: &SpoolFile) -> Result<Batch, CorruptSpoolFile> {
        let corrupt = |reason: String| CorruptSpoolFile {
            path: file.path.clone(),
            reason,
            events: file.events,
        };
        let text = tokio::fs::read_to_string(&file.path)
            .await
            .map_err(|e| corrupt(e.to_string()))?;
        let mut lines = text.lines();
        let header: Header = lines
            .next()
            .ok_or_else(|| corrupt("empty file".into()))
            .and_then(|l| serde_json::from_str(l).map_err(|e| corrupt(format!("header: {e}"))))?;
        let records = lines
            .enumerate()
            .map(|(i, line)| {
                serde_json::from_str::<EventRecord>(line)
                    .map_err(|e| corrupt(format!("line {}: {e}", i + 2)))
            })
            .collect::<Result<Vec<_>, _>>()?;
        if records.len() as u64 != header.events {
            return Err(corrupt(format!(
                "header says {} events, file has {}",
                header.events,
                records.len()
            )));
        }
        Ok(Batch {
            id: header.batch,
            records,
        })
    }

    /// Deletes a batch that reached the sink.
    pub async fn remove(&self, file: &SpoolFile) {
        if let Err(err) = tokio::fs::remove_file(&file.path).await {
            tracing::warn!(path = %file.path.display(), %err, "could not delete a replayed spool file");
        }
        self.forget(file);
    }

    fn forget(&self, file: &SpoolFile) {
        let mut state = self.lock();
        if let Some(at) = state.files.iter().position(|f| f.path == file.path) {
            state.files.remove(at);
            state.bytes -= file.bytes;
        }
    }

    /// Moves an unreadable batch to `corrupt/` (kept for inspection, never replayed).
    pub async fn quarantine(&self, corrupt: &CorruptSpoolFile) {
        let file = self
            .lock()
            .files
            .iter()
            .find(|f| f.path == corrupt.path)
            .cloned();
        if let Some(file) = file {
            self.quarantine_path(&file.path, corrupt.reason.clone(), file.events)
                .await;
            self.forget(&file);
        }
    }

    async fn quarantine_path(&self, path: &Path, reason: String, events: u64) -> CorruptSpoolFile {
        let corrupt_dir = self.dir.join("corrupt");
        let target = corrupt_dir.join(path.file_name().unwrap_or_default());
        let moved = async {
            tokio::fs::create_dir_all(&corrupt_dir).await?;
            tokio::fs::rename(path, &target).await
        }
        .await;
        tracing::error!(path = %path.display(), %reason, quarantined = moved.is_ok(), "corrupt spool file skipped");
        CorruptSpoolFile {
            path: path.to_owned(),
            reason,
            events,
        }
    }
}

async fn read_header(path: &Path) -> Result<(Header, u64), String> {
    let text = tokio::fs::read_to_string(path)
        .await
        .map_err(|e| e.to_string())?;
    let first = text.lines().next().ok_or("empty file")?;
    let header: Header = serde_json::from_str(first).map_err(|e| format!("header: {e}"))?;
    Ok((header, text.len() as u64))
}

impl std::fmt::Debug for Spool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Spool")
            .field("dir", &self.dir)
            .field("bytes", &self.bytes())
            .field("max_bytes", &self.max_bytes)
            .finish()
    }
}
