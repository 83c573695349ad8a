//! Usage metering on the data path: fixed-size [`UsageEvent`]s into a lock-free [`MeterRing`]
//! that the control plane's flusher drains. A ring can live in memory or in a file
//! ([`MeterRing::open`]), where accepted events survive `kill -9` and come back, with their
//! [`EventId`]s, when the file is opened again.
//!
//! ```
//! use resilience_core::meter::{MeterRing, Operation, Tier, UsageEvent};
//!
//! let ring = MeterRing::with_capacity(MeterRing::DEFAULT_CAPACITY)?;
//! let event = UsageEvent::new("tenant-1", "agent-1", Operation::AgentMessage, Tier::Premium)?;
//! if let Err(refused) = ring.record(event.tokens(128)) {
//!     eprintln!("{refused}"); // full or closed: counted, and the event is handed back
//! }
//! assert_eq!(ring.ledger().accepted, 1);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

mod drained;
mod event;
mod file;
mod lock;
mod ring;

pub use drained::{Drained, EventId, EventIdParseError};
pub use event::{InlineId, Label, MAX_ID_LEN, MAX_LABEL_LEN, Operation, Outcome, Tier, UsageEvent};
pub use lock::{LockError, LockFile};
pub use ring::{MeterRing, RefuseReason, Refused, RingLedger};

/// A rejected metering value, naming the field.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum MeterError {
    /// A field is out of range.
    #[error("invalid metering `{field}` = {value}: expected {expected}")]
    Invalid {
        /// The field.
        field: &'static str,
        /// The rejected value, rendered.
        value: String,
        /// What would have been accepted.
        expected: &'static str,
    },
    /// Another process holds the ring file (see [`MeterRing::open`]).
    #[error("meter ring file {} is in use by {}", path.display(), pid.map_or_else(|| "another process".to_owned(), |p| format!("process {p}")))]
    Locked {
        /// The ring file.
        path: std::path::PathBuf,
        /// The holder's process id, when it could be read.
        pid: Option<u32>,
    },
    /// The ring file cannot be used.
    #[error("meter ring file {}: {reason}", path.display())]
    File {
        /// The ring file.
        path: std::path::PathBuf,
        /// What is wrong with it.
        reason: String,
    },
}

crate::governed_by_process!(MeterError);

impl MeterError {
    pub(crate) fn invalid(
        field: &'static str,
        value: impl core::fmt::Display,
        expected: &'static str,
    ) -> Self {
        MeterError::Invalid {
            field,
            value: value.to_string(),
            expected,
        }
    }
}
