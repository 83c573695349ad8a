//! [`RedisStreamSink`]: batches into a Redis stream, each event applied exactly once.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use redis::AsyncConnectionConfig;
use redis::aio::MultiplexedConnection;
use tokio::sync::Mutex;

use super::record::{Applied, Batch, EventRecord};
use super::sink::{MeterSink, SinkError};
use crate::health::BoxFuture;

/// How long an epoch's high-water mark is kept after its last write: longer than any outage a
/// spool is expected to bridge.
const APPLIED_TTL_SECONDS: u64 = 7 * 24 * 3600;

/// How long a connection attempt may take before the write fails (and the flusher spools).
const CONNECT_TIMEOUT: Duration = Duration::from_secs(1);
/// How long a reply may take; a stopped (`SIGSTOP`) Redis answers nothing, and the flusher
/// must go back to spooling rather than wait.
const RESPONSE_TIMEOUT: Duration = Duration::from_secs(2);

/// How far the stream is trimmed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum StreamTrim {
    /// `XTRIM MAXLEN ~ n` after each batch (at least [`RedisStreamSink::MIN_MAX_LEN`]).
    MaxLen(u64),
    /// Never trim: the stream's consumers delete what they have read.
    None,
}

/// What Redis keeps across its own restart, as far as its configuration says.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Durability {
    /// Append-only file or RDB snapshots are on.
    Persistent {
        /// `appendonly` and `save`, as Redis reports them.
        detail: String,
    },
    /// Neither AOF nor RDB: a restart of Redis loses acknowledged events.
    Volatile,
    /// `CONFIG GET` was refused (managed services often forbid it).
    Unknown {
        /// Why.
        reason: String,
    },
    /// Redis did not answer at all.
    Unreachable {
        /// Why.
        reason: String,
    },
}

/// Writes usage events to the stream `{ns}:meter`, one field set per event (governance tag and
/// `event_id` included). Connects lazily, and after any failure starts over with a fresh
/// connection on the next write, so delivery resumes as soon as Redis answers again.
///
/// **Exactly once.** Every record carries an [`EventId`](resilience_core::meter::EventId)
/// (ring epoch, sequence). For each epoch the sink keeps the highest sequence applied in
/// `{ns}:meter:applied:<epoch>`, set in the same `MULTI`/`EXEC` transaction as the `XADD`s, so
/// both land or neither does. Before a write it reads those marks and skips records at or
/// below them: a batch retried after a lost reply, replayed from the spool, or rebuilt from a
/// recovered ring file after `kill -9` adds nothing twice. The flusher writes each epoch in
/// sequence order, which is what makes one number per epoch enough, and only one flusher owns
/// an epoch (its ring file is locked), which makes the read-then-write race-free.
///
/// What it cannot cover: a Redis that loses acknowledged writes (no AOF or RDB, see
/// [`durability`](Self::durability)) loses the events and their marks together.
///
/// The stream and the marks share the hash tag `{ns}`, so this works on Redis Cluster.
///
/// # Examples
///
/// ```
/// use resilience_control::metering::RedisStreamSink;
///
/// let sink = RedisStreamSink::new("redis://127.0.0.1:6379", "resilience")?;
/// assert_eq!(sink.stream_key(), "{resilience}:meter");
/// # Ok::<(), redis::RedisError>(())
/// ```
pub struct RedisStreamSink {
    client: redis::Client,
    connection: Mutex<Option<MultiplexedConnection>>,
    stream: String,
    applied_prefix: String,
    trim: StreamTrim,
    duplicates: AtomicU64,
}

impl RedisStreamSink {
    /// Default stream length bound (approximate trimming).
    pub const DEFAULT_MAX_LEN: u64 = 1_000_000;
    /// Smallest length bound accepted: well above any batch, so trimming can never remove
    /// events just written before a consumer had a chance to read them.
    pub const MIN_MAX_LEN: u64 = 10_000;

    /// A sink for `url` (e.g. `redis://127.0.0.1:6379`, from `REDIS_URL`) under namespace `ns`.
    ///
    /// # Errors
    ///
    /// A [`redis::RedisError`] if `url` does not parse. Nothing connects until the first write.
    pub fn new(url: &str, ns: &str) -> Result<Self, redis::RedisError> {
        Ok(Self::with_client(redis::Client::open(url)?, ns))
    }

    /// A sink through `client` (e.g. from [`redis_client`](crate::redis_client), for TLS to a
    /// private CA) under namespace `ns`.
    pub fn with_client(client: redis::Client, ns: &str) -> Self {
        RedisStreamSink {
            client,
            connection: Mutex::new(None),
            stream: format!("{{{ns}}}:meter"),
            applied_prefix: format!("{{{ns}}}:meter:applied:"),
            trim: StreamTrim::MaxLen(Self::DEFAULT_MAX_LEN),
            duplicates: AtomicU64::new(0),
        }
    }

    /// How the stream is trimmed (default about one million entries).
    ///
    /// # Errors
    ///
    /// [`ConfigError::Invalid`](resilience_core::ConfigError::Invalid) naming `stream_max_len` below
    /// [`MIN_MAX_LEN`](Self::MIN_MAX_LEN) (`MAXLEN 0` would delete every event as it is
    /// written).
    pub fn trim(mut self, trim: StreamTrim) -> Result<Self, resilience_core::ConfigError> {
        if let StreamTrim::MaxLen(n) = trim
            && n < Self::MIN_MAX_LEN
        {
            return Err(crate::error::invalid(
                "stream_max_len",
                n,
                "at least 10000 entries, or no trimming",
            ));
        }
        self.trim = trim;
        Ok(self)
    }

    /// The stream written to.
    pub fn stream_key(&self) -> &str {
        &self.stream
    }

    async fn connection(&self) -> Result<MultiplexedConnection, redis::RedisError> {
        let mut slot = self.connection.lock().await;
        if let Some(connection) = slot.as_ref() {
            return Ok(connection.clone());
        }
        let config = AsyncConnectionConfig::new()
            .set_connection_timeout(Some(CONNECT_TIMEOUT))
            .set_response_timeout(Some(RESPONSE_TIMEOUT));
        let connection = self
            .client
            .get_multiplexed_async_connection_with_config(&config)
            .await?;
        *slot = Some(connection.clone());
        Ok(connection)
    }

    /// Drops the connection after a failure: the next write dials afresh instead of trusting
    /// a connection (or a cached error) from before the outage.
    async fn forget(&self) {
        *self.connection.lock().await = None;
    }

    /// Whether the Redis behind this sink persists what it acknowledges (asks `CONFIG GET`).
    pub async fn durability(&self) -> Durability {
        let ask = async {
            let mut connection = self.connection().await?;
            let (_, appendonly): (String, String) = redis::cmd("CONFIG")
                .arg("GET")
                .arg("appendonly")
                .query_async(&mut connection)
                .await?;
            let (_, save): (String, String) = redis::cmd("CONFIG")
                .arg("GET")
                .arg("save")
                .query_async(&mut connection)
                .await?;
            Ok::<_, redis::RedisError>((appendonly, save))
        };
        match ask.await {
            Ok((appendonly, save)) if appendonly == "no" && save.trim().is_empty() => {
                Durability::Volatile
            }
            Ok((appendonly, save)) => Durability::Persistent {
                detail: format!("appendonly {appendonly}, save {save:?}"),
            },
            Err(err) if err.is_io_error() || err.is_timeout() || err.is_connection_refusal() => {
                self.forget().await;
                Durability::Unreachable {
                    reason: err.to_string(),
                }
            }
            Err(err) => Durability::Unknown {
                reason: err.to_string(),
            },
        }
    }

    async fn write_batch(&self, batch: &Batch) -> Result<(), redis::RedisError> {
        let mut connection = self.connection().await?;
        let mut applied = Applied::default();
        let epochs: Vec<u64> = {
            let mut epochs: Vec<u64> = batch
                .records
                .iter()
                .filter_map(|r| r.event_id.map(|id| id.epoch))
                .collect();
            epochs.sort_unstable();
            epochs.dedup();
            epochs
        };
        let key = |epoch: u64| format!("{}{epoch:016x}", self.applied_prefix);
        if !epochs.is_empty() {
            let marks: Vec<Option<u64>> = redis::cmd("MGET")
                .arg(epochs.iter().map(|&e| key(e)).collect::<Vec<_>>())
                .query_async(&mut connection)
                .await?;
            for (&epoch, mark) in epochs.iter().zip(marks) {
                if let Some(seq) = mark {
                    applied.note(resilience_core::meter::EventId { epoch, seq });
                }
            }
        }
        let fresh: Vec<&EventRecord> = batch.records.iter().filter(|r| applied.is_new(r)).collect();
        let skipped = (batch.records.len() - fresh.len()) as u64;
        if skipped > 0 {
            self.duplicates.fetch_add(skipped, Ordering::Relaxed);
            tracing::info!(
                skipped,
                batch = %batch.id,
                "metering: Redis already had these events (redelivery after a crash or lost reply)"
            );
        }
        if fresh.is_empty() {
            return Ok(());
        }
        let mut marks = Applied::default();
        marks.note_all(fresh.iter().copied());
        let mut transaction = redis::Pipeline::with_capacity(fresh.len() + 2 + epochs.len());
        transaction.atomic();
        for record in &fresh {
            transaction.add_command(self.xadd(record)).ignore();
        }
        if let StreamTrim::MaxLen(max_len) = self.trim {
            // Trimming once per batch rather than per entry saves Redis a tenth of its work.
            transaction
                .cmd("XTRIM")
                .arg(&self.stream)
                .arg("MAXLEN")
                .arg("~")
                .arg(max_len)
                .ignore();
        }
        for (epoch, seq) in marks.iter() {
            transaction
                .cmd("SET")
                .arg(key(epoch))
                .arg(seq)
                .arg("EX")
                .arg(APPLIED_TTL_SECONDS)
                .ignore();
        }
        transaction.query_async::<()>(&mut connection).await
    }

    fn xadd(&self, record: &EventRecord) -> redis::Cmd {
        let mut xadd = redis::Cmd::with_capacity(31, 384);
        xadd.arg("XADD")
            .arg(&self.stream)
            .arg("*")
            .arg("tenant_id")
            .arg(&record.tenant_id)
            .arg("agent_id")
            .arg(&record.agent_id)
            .arg("operation")
            .arg(&record.operation)
            .arg("tier")
            .arg(&record.tier)
            .arg("tokens")
            .arg(record.tokens)
            .arg("latency_us")
            .arg(record.latency_us)
            .arg("compliance_score")
            .arg(record.compliance_score)
            .arg("timestamp_ms")
            .arg(record.timestamp_ms)
            .arg("constitutional_hash")
            .arg(&record.constitutional_hash);
        let details = [
            ("outcome", record.outcome.as_deref()),
            ("counterpart", record.counterpart.as_deref()),
            ("label", record.label.as_deref()),
        ];
        for (field, value) in details {
            if let Some(value) = value {
                xadd.arg(field).arg(value);
            }
        }
        if let Some(score) = record.impact_score {
            xadd.arg("impact_score").arg(score);
        }
        if let Some(id) = record.event_id {
            xadd.arg("event_id").arg(id.to_string());
        }
        xadd
    }
}

impl MeterSink for RedisStreamSink {
    fn name(&self) -> &'static str {
        "redis"
    }

    fn write<'a>(&'a self, batch: &'a Batch) -> BoxFuture<'a, Result<(), SinkError>> {
        Box::pin(async move {
            match self.write_batch(batch).await {
                Ok(()) => Ok(()),
                Err(err) => {
                    // Whatever failed, the next attempt starts from a fresh connection.
                    self.forget().await;
                    Err(err.into())
                }
            }
        })
    }

    /// Records skipped because Redis already had them (redelivery after a crash or a lost
    /// reply).
    fn duplicates_skipped(&self) -> u64 {
        self.duplicates.load(Ordering::Relaxed)
    }
}

impl std::fmt::Debug for RedisStreamSink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisStreamSink")
            .field("stream", &self.stream)
            .field("trim", &self.trim)
            .finish_non_exhaustive()
    }
}
