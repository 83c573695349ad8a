//! [`MeteringConfig`]: the flusher's settings, validated.

use std::path::PathBuf;
use std::time::Duration;

use resilience_core::{ConfigError, GovernanceHash};

use crate::error::invalid;

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
    /// First and longest wait before retrying a failed sink (default 100 ms and 500 ms).
    /// Every retry dials a fresh connection, so once the sink is back delivery resumes
    /// within the longest wait; meanwhile batches go to the spool.
    pub retry: (Duration, Duration),
    /// Names this process in batch ids and logs (default `$HOSTNAME` or `resilience`).
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
            retry: (Duration::from_millis(100), Duration::from_millis(500)),
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
        if self.retry.0.is_zero()
            || self.retry.1 < self.retry.0
            || self.retry.1 > Duration::from_secs(60)
        {
            return Err(invalid(
                "retry",
                format_args!("{:?}", self.retry),
                "a first wait above 0, no longer than the longest, itself at most 60s",
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
