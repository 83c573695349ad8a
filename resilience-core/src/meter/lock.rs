//! [`LockFile`]: one process owns a path, and a second one is told who does.

use std::fs::{File, OpenOptions, TryLockError};
use std::io::{Read, Seek, Write};
use std::path::{Path, PathBuf};

/// An exclusive advisory lock on a file, stamped with the holder's process id and held until
/// dropped (or until the process dies, however it dies: the kernel releases it).
///
/// The meter ring's file takes one beside itself, and the control plane's spool takes one in
/// its directory, so two processes (or two rings in one process) can never write the same
/// events.
///
/// # Examples
///
/// ```
/// use resilience_core::meter::LockFile;
///
/// let path = std::env::temp_dir().join(format!("lock-doc-{}", std::process::id()));
/// let lock = LockFile::acquire(&path)?;
/// let second = LockFile::acquire(&path).unwrap_err();
/// assert_eq!(second.holder(), Some(std::process::id()));
/// drop(lock);
/// assert!(LockFile::acquire(&path).is_ok());
/// # std::fs::remove_file(&path)?;
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug)]
pub struct LockFile {
    _file: File,
    path: PathBuf,
}

/// A lock that could not be taken.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum LockError {
    /// Another process (or another handle in this one) holds it.
    #[error("{} is locked by {}", path.display(), holder_text(*pid))]
    Held {
        /// The lock file.
        path: PathBuf,
        /// The holder's process id, when it could be read.
        pid: Option<u32>,
    },
    /// The lock file could not be opened or locked.
    #[error("cannot lock {}: {reason}", path.display())]
    Io {
        /// The lock file.
        path: PathBuf,
        /// What the system said.
        reason: String,
    },
}

crate::governed_by_process!(LockError);

fn holder_text(pid: Option<u32>) -> String {
    pid.map_or_else(
        || "another process".to_owned(),
        |pid| format!("process {pid}"),
    )
}

impl LockError {
    /// The holder's process id, for [`LockError::Held`] when it could be read.
    pub fn holder(&self) -> Option<u32> {
        match self {
            LockError::Held { pid, .. } => *pid,
            LockError::Io { .. } => None,
        }
    }

    /// The lock file.
    pub fn path(&self) -> &Path {
        match self {
            LockError::Held { path, .. } | LockError::Io { path, .. } => path,
        }
    }
}

impl LockFile {
    /// Takes the lock on `path` (creating the file), without waiting.
    ///
    /// # Errors
    ///
    /// [`LockError::Held`] naming the holder's pid when another process holds it,
    /// [`LockError::Io`] when the file cannot be opened.
    pub fn acquire(path: impl AsRef<Path>) -> Result<LockFile, LockError> {
        let path = path.as_ref().to_owned();
        let io = |e: std::io::Error| LockError::Io {
            path: path.clone(),
            reason: e.to_string(),
        };
        let mut file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&path)
            .map_err(io)?;
        match file.try_lock() {
            Ok(()) => {}
            Err(TryLockError::WouldBlock) => {
                let mut text = String::new();
                let pid = file
                    .read_to_string(&mut text)
                    .ok()
                    .and_then(|_| text.trim().parse().ok());
                return Err(LockError::Held { path, pid });
            }
            Err(TryLockError::Error(e)) => return Err(io(e)),
        }
        // Stamp our pid for the next one who asks. Best effort: the lock is what counts.
        let _ = file
            .set_len(0)
            .and_then(|()| file.rewind())
            .and_then(|()| writeln!(file, "{}", std::process::id()))
            .and_then(|()| file.flush());
        Ok(LockFile { _file: file, path })
    }

    /// The lock file.
    pub fn path(&self) -> &Path {
        &self.path
    }
}
