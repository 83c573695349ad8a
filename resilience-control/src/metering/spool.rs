//! The outage buffer: batches the sink could not take, on disk, replayed in order.
//!
//! One process owns a spool directory: it holds an exclusive lock on `<dir>/.lock` (stamped
//! with its pid) for as long as the spool is open, and a second process is refused with an
//! error naming the directory and the holder. (Two instances need two directories; set
//! `metering.spool_dir` per instance.)
//!
//! One file per batch, named `<sequence>-<pid>.jsonl`, the sequence growing across restarts, so
//! listing the directory gives the replay order. Each file is a header line
//! (`{"batch":..,"events":..}`) then one record per line, written to a temporary name, synced,
//! and renamed into place, so a crash never leaves a half-written batch under a real name.
//! Every file is read whole at open, so the events it holds are counted exactly; a file that
//! fails to parse is moved to `corrupt/` and reported (with its size, and its event count
//! where the header was readable), and never stops the flusher.

use std::collections::VecDeque;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, PoisonError};

use resilience_core::meter::{LockError, LockFile};
use serde::{Deserialize, Serialize};

use super::record::{Batch, EventRecord};

/// A batch waiting in the spool.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SpoolFile {
    /// Where it is.
    pub path: PathBuf,
    /// Events it holds.
    pub events: u64,
    /// Its size.
    pub bytes: u64,
}

#[derive(Serialize, Deserialize)]
struct Header {
    batch: String,
    events: u64,
}

/// Why the spool could not be opened or a batch could not be spooled.
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
    /// Another process owns the directory.
    #[error(
        "spool directory {dir} is in use by {}; give each instance its own metering.spool_dir",
        pid.map_or_else(|| "another process".to_owned(), |p| format!("process {p}"))
    )]
    Locked {
        /// The spool directory.
        dir: PathBuf,
        /// The holder's process id, when it could be read.
        pid: Option<u32>,
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

resilience_core::governed_by_process!(SpoolError);

/// Why a spooled batch could not be read back.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SpoolReadError {
    /// Its content is damaged: quarantine it.
    #[error(transparent)]
    Corrupt(CorruptSpoolFile),
    /// It could not be read now (out of file descriptors, a disk error): try again later.
    #[error("spool {path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The failure.
        #[source]
        source: std::io::Error,
    },
}

resilience_core::governed_by_process!(SpoolReadError);

/// A spool file that could not be read back.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("corrupt spool file {path}: {reason}")]
pub struct CorruptSpoolFile {
    /// The file (moved to `corrupt/`).
    pub path: PathBuf,
    /// What was wrong.
    pub reason: String,
    /// Events it held, when that is known (from a readable header); `None` when the header
    /// itself is damaged, never a guess.
    pub events: Option<u64>,
    /// Its size.
    pub bytes: u64,
}

resilience_core::governed_by_process!(CorruptSpoolFile);

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
    _lock: LockFile,
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> SpoolError + '_ {
    move |source| SpoolError::Io {
        path: path.to_owned(),
        source,
    }
}

/// The sequence of a spool file name (`<sequence>-<pid>.jsonl`, or `<sequence>.jsonl` from
/// earlier builds).
fn sequence_of(name: &str) -> Option<u64> {
    let stem = name.strip_suffix(".jsonl")?;
    stem.split('-').next()?.parse().ok()
}

impl Spool {
    /// Opens (creating) the spool at `dir`, bounded at `max_bytes`, takes its lock, and reads
    /// every batch left by an earlier run. Files that cannot be read are quarantined and
    /// returned.
    ///
    /// # Errors
    ///
    /// [`SpoolError::Locked`] when another process owns `dir`, [`SpoolError::Io`] if the
    /// directory cannot be created or listed.
    pub async fn open(
        dir: impl Into<PathBuf>,
        max_bytes: u64,
    ) -> Result<(Spool, Vec<CorruptSpoolFile>), SpoolError> {
        let dir = dir.into();
        tokio::fs::create_dir_all(&dir).await.map_err(io(&dir))?;
        let lock = LockFile::acquire(dir.join(".lock")).map_err(|e| match e {
            LockError::Held { pid, .. } => SpoolError::Locked {
                dir: dir.clone(),
                pid,
            },
            other => SpoolError::Io {
                path: other.path().to_owned(),
                source: std::io::Error::other(other.to_string()),
            },
        })?;
        let mut names = Vec::new();
        let mut entries = tokio::fs::read_dir(&dir).await.map_err(io(&dir))?;
        while let Some(entry) = entries.next_entry().await.map_err(io(&dir))? {
            let name = entry.file_name().to_string_lossy().into_owned();
            if name.starts_with(".tmp-") {
                // A write cut short by a crash: never renamed, so never accepted as spooled.
                let _ = tokio::fs::remove_file(entry.path()).await;
            } else if let Some(sequence) = sequence_of(&name) {
                names.push((sequence, entry.path()));
            }
        }
        names.sort_unstable();
        let spool = Spool {
            max_bytes,
            state: Mutex::new(State {
                files: VecDeque::new(),
                bytes: 0,
                next_sequence: names.last().map_or(1, |(s, _)| s.saturating_add(1)),
            }),
            dir,
            _lock: lock,
        };
        let mut corrupt = Vec::new();
        for (_, path) in names {
            let bytes = tokio::fs::metadata(&path).await.map_or(0, |m| m.len());
            let text = match tokio::fs::read_to_string(&path).await {
                Ok(text) => Ok(text),
                Err(e) if e.kind() == std::io::ErrorKind::InvalidData => Err((e.to_string(), None)),
                // Unreadable now is not corrupt: refuse to start rather than set it aside.
                Err(source) => return Err(SpoolError::Io { path, source }),
            };
            match text.and_then(|text| parse(&text)) {
                Ok(batch) => {
                    let mut state = spool.lock();
                    state.bytes = state.bytes.saturating_add(bytes);
                    state.files.push_back(SpoolFile {
                        path,
                        events: batch.records.len() as u64,
                        bytes,
                    });
                }
                Err((reason, events)) => {
                    corrupt.push(spool.quarantine_path(&path, reason, events, bytes).await);
                }
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
        self.lock()
            .files
            .iter()
            .fold(0u64, |n, f| n.saturating_add(f.events))
    }

    /// Whether nothing waits.
    pub fn is_empty(&self) -> bool {
        self.lock().files.is_empty()
    }

    /// The oldest batch waiting.
    pub fn oldest(&self) -> Option<SpoolFile> {
        self.lock().files.front().cloned()
    }

    /// Writes `batch` to the spool, durably (synced before it is renamed into place). `force`
    /// ignores the size bound (shutdown: the alternative would be to lose accepted events).
    ///
    /// # Errors
    ///
    /// [`SpoolError::Full`] at the bound, [`SpoolError::Io`] if the disk refuses (full disk
    /// included; nothing partial is left under a real name).
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
            if !force && state.bytes.saturating_add(size) > self.max_bytes {
                return Err(SpoolError::Full {
                    dir: self.dir.clone(),
                    bytes: state.bytes,
                    max: self.max_bytes,
                });
            }
            // Reserve the space and the name now, so concurrent pushes stay in bounds and order.
            state.bytes = state.bytes.saturating_add(size);
            state.next_sequence += 1;
            state.next_sequence - 1
        };
        let pid = std::process::id();
        let path = self.dir.join(format!("{sequence:020}-{pid}.jsonl"));
        let tmp = self.dir.join(format!(".tmp-{sequence:020}-{pid}"));
        // Plain blocking I/O on the blocking pool: tokio's `File::sync_all` swallows an error
        // of the write before it (a full disk would count as spooled), std's does not.
        let written = {
            let (t, p, d) = (tmp.clone(), path.clone(), self.dir.clone());
            tokio::task::spawn_blocking(move || write_synced(&t, &p, &d, &body))
                .await
                .unwrap_or_else(|e| {
                    Err(SpoolError::Io {
                        path: tmp.clone(),
                        source: std::io::Error::other(e.to_string()),
                    })
                })
        };
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
                    state.bytes = state.bytes.saturating_sub(size);
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
    /// [`SpoolReadError::Corrupt`] if its content cannot be parsed (the caller then
    /// [`quarantine`]s it); [`SpoolReadError::Io`] if it could not be read at all (out of file
    /// descriptors, a disk error): the file stays, to be read again later.
    ///
    /// [`quarantine`]: Self::quarantine
    pub async fn read(&self, file: &SpoolFile) -> Result<Batch, SpoolReadError> {
        let text = tokio::fs::read_to_string(&file.path)
            .await
            .map_err(|source| match source.kind() {
                // Not UTF-8: the bytes themselves are damaged.
                std::io::ErrorKind::InvalidData => SpoolReadError::Corrupt(CorruptSpoolFile {
                    path: file.path.clone(),
                    reason: source.to_string(),
                    events: Some(file.events),
                    bytes: file.bytes,
                }),
                _ => SpoolReadError::Io {
                    path: file.path.clone(),
                    source,
                },
            })?;
        parse(&text).map_err(|(reason, _)| {
            SpoolReadError::Corrupt(CorruptSpoolFile {
                path: file.path.clone(),
                reason,
                events: Some(file.events),
                bytes: file.bytes,
            })
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
            state.bytes = state.bytes.saturating_sub(file.bytes);
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
            self.quarantine_path(
                &file.path,
                corrupt.reason.clone(),
                Some(file.events),
                file.bytes,
            )
            .await;
            self.forget(&file);
        }
    }

    async fn quarantine_path(
        &self,
        path: &Path,
        reason: String,
        events: Option<u64>,
        bytes: u64,
    ) -> CorruptSpoolFile {
        let corrupt_dir = self.dir.join("corrupt");
        let target = corrupt_dir.join(path.file_name().unwrap_or_default());
        let moved = async {
            tokio::fs::create_dir_all(&corrupt_dir).await?;
            tokio::fs::rename(path, &target).await
        }
        .await;
        tracing::error!(path = %path.display(), %reason, ?events, bytes, quarantined = moved.is_ok(), "corrupt spool file skipped");
        CorruptSpoolFile {
            path: path.to_owned(),
            reason,
            events,
            bytes,
        }
    }
}

/// Writes `body` to `tmp`, syncs it, renames it to `path` and syncs `dir`, so the batch is on
/// disk under its real name, or not there at all.
fn write_synced(tmp: &Path, path: &Path, dir: &Path, body: &[u8]) -> Result<(), SpoolError> {
    use std::io::Write;
    let mut file = std::fs::File::create(tmp).map_err(io(tmp))?;
    file.write_all(body).map_err(io(tmp))?;
    file.sync_all().map_err(io(tmp))?;
    std::fs::rename(tmp, path).map_err(io(path))?;
    // The rename is durable once the directory is (best effort).
    if let Ok(dir) = std::fs::File::open(dir) {
        let _ = dir.sync_all();
    }
    Ok(())
}

/// Checks a spool file's text: the header, every record, and that the header's count matches.
/// On failure: why, and the header's count when the header was readable.
fn parse(text: &str) -> Result<Batch, (String, Option<u64>)> {
    let mut lines = text.lines();
    let header: Header = lines
        .next()
        .ok_or_else(|| ("empty file".to_owned(), None))
        .and_then(|l| serde_json::from_str(l).map_err(|e| (format!("header: {e}"), None)))?;
    let claimed = Some(header.events);
    let records = lines
        .enumerate()
        .map(|(i, line)| {
            serde_json::from_str::<EventRecord>(line)
                .map_err(|e| (format!("line {}: {e}", i + 2), claimed))
        })
        .collect::<Result<Vec<_>, _>>()?;
    if records.len() as u64 != header.events {
        return Err((
            format!(
                "header says {} events, file has {}",
                header.events,
                records.len()
            ),
            // A header that lies about its count is not believed either.
            None,
        ));
    }
    Ok(Batch {
        id: header.batch,
        records,
    })
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
