//! [`EventId`] and [`Drained`]: what a consumer gets from a held drain.

use core::fmt;
use core::str::FromStr;

use super::event::UsageEvent;

/// Names one accepted event for ever: the ring's epoch (random, fixed for the life of a ring
/// file, new for each in-memory ring) and the event's sequence number in that ring (from 0,
/// one per accepted event, in order).
///
/// Sinks use it to apply each event exactly once across retries, restarts and crash recovery;
/// it is written with every record as `event_id` (`<epoch as 16 hex digits>-<seq>`).
///
/// # Examples
///
/// ```
/// use resilience_core::meter::EventId;
///
/// let id = EventId { epoch: 0xabc, seq: 42 };
/// assert_eq!(id.to_string(), "0000000000000abc-42");
/// assert_eq!("0000000000000abc-42".parse::<EventId>(), Ok(id));
/// assert!("abc".parse::<EventId>().is_err());
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct EventId {
    /// The ring's epoch.
    pub epoch: u64,
    /// The event's sequence number within the epoch.
    pub seq: u64,
}

impl fmt::Display for EventId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:016x}-{}", self.epoch, self.seq)
    }
}

/// Text that is not an [`EventId`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid event id {value:?}: expected <16 hex digits>-<sequence>")]
pub struct EventIdParseError {
    /// The rejected text.
    pub value: String,
}

crate::governed_by_process!(EventIdParseError);

impl FromStr for EventId {
    type Err = EventIdParseError;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let bad = || EventIdParseError {
            value: text.to_owned(),
        };
        let (epoch, seq) = text.split_once('-').ok_or_else(bad)?;
        if epoch.len() != 16 || !epoch.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(bad());
        }
        Ok(EventId {
            epoch: u64::from_str_radix(epoch, 16).map_err(|_| bad())?,
            seq: seq.parse().map_err(|_| bad())?,
        })
    }
}

#[cfg(feature = "serde")]
impl serde::Serialize for EventId {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

#[cfg(feature = "serde")]
impl<'de> serde::Deserialize<'de> for EventId {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        text.parse().map_err(serde::de::Error::custom)
    }
}

/// An event taken by [`MeterRing::drain_held`](super::MeterRing::drain_held): still occupying
/// its slot (and, in a ring file, still on disk) until
/// [`release_through`](super::MeterRing::release_through) its sequence.
#[derive(Clone, Copy, Debug, PartialEq)]
#[non_exhaustive]
pub struct Drained {
    /// Who it is, for exactly-once delivery.
    pub id: EventId,
    /// When it was recorded, in nanoseconds since the Unix epoch (from the clock of the run
    /// that recorded it, which for a recovered event is an earlier process).
    pub unix_nanos: u64,
    /// The event.
    pub event: UsageEvent,
}
