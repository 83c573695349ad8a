//! Usage metering on the data path: fixed-size [`UsageEvent`]s into a lock-free [`MeterRing`]
//! that the control plane's flusher drains.
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

mod event;
mod ring;

pub use event::{InlineId, MAX_ID_LEN, Operation, Tier, UsageEvent};
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
}

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
