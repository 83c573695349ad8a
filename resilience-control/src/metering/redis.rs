//! [`RedisStreamSink`]: batches into a Redis stream, each batch applied exactly once.

use std::time::Duration;

use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use tokio::sync::OnceCell;

use super::record::Batch;
use super::sink::{MeterSink, SinkError};
use crate::health::BoxFuture;

/// Marks the batch, then appends its events; a batch already marked is skipped. Atomic in
/// Redis, so a batch whose reply was lost can be retried (from memory or from the spool after a
/// restart) without being written twice.
const APPEND_ONCE: &str = r"
if redis.call('SET', KEYS[2], '1', 'NX', 'EX', ARGV[2]) == false then
    return 0
end
local fields = tonumber(ARGV[3])
local i = 4
while i <= #ARGV do
    redis.call('XADD', KEYS[1], 'MAXLEN', '~', ARGV[1], '*', unpack(ARGV, i, i + fields - 1))
    i = i + fields
end
return 1
";

/// How long a batch marker is kept: longer than any outage a spool is expected to bridge.
const MARKER_TTL_SECONDS: u64 = 7 * 24 * 3600;

/// Writes usage events to the stream `{ns}:meter` with `XADD ... MAXLEN ~ n`, one field set per
/// event (governance tag included). Connects lazily and reconnects on its own.
///
/// The stream and the batch markers share the hash tag `{ns}`, so this works on Redis Cluster.
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
    connection: OnceCell<ConnectionManager>,
    stream: String,
    marker_prefix: String,
    max_len: u64,
    script: redis::Script,
}

impl RedisStreamSink {
    /// Default stream length bound (approximate trimming).
    pub const DEFAULT_MAX_LEN: u64 = 1_000_000;

    /// A sink for `url` (e.g. `redis://127.0.0.1:6379`, from `REDIS_URL`) under namespace `ns`.
    ///
    /// # Errors
    ///
    /// A [`redis::RedisError`] if `url` does not parse. Nothing connects until the first write.
    pub fn new(url: &str, ns: &str) -> Result<Self, redis::RedisError> {
        Ok(RedisStreamSink {
            client: redis::Client::open(url)?,
            connection: OnceCell::new(),
            stream: format!("{{{ns}}}:meter"),
            marker_prefix: format!("{{{ns}}}:meter:batch:"),
            max_len: Self::DEFAULT_MAX_LEN,
            script: redis::Script::new(APPEND_ONCE),
        })
    }

    /// Trims the stream to about `max_len` entries (default one million).
    #[must_use]
    pub fn max_len(mut self, max_len: u64) -> Self {
        self.max_len = max_len;
        self
    }

    /// The stream written to.
    pub fn stream_key(&self) -> &str {
        &self.stream
    }

    async fn connection(&self) -> Result<ConnectionManager, redis::RedisError> {
        let config = ConnectionManagerConfig::new()
            .set_number_of_retries(1)
            .set_connection_timeout(Some(Duration::from_secs(2)))
            .set_response_timeout(Some(Duration::from_secs(5)));
        self.connection
            .get_or_try_init(|| self.client.get_connection_manager_with_config(config))
            .await
            .cloned()
    }
}

impl MeterSink for RedisStreamSink {
    fn name(&self) -> &'static str {
        "redis"
    }

    fn write<'a>(&'a self, batch: &'a Batch) -> BoxFuture<'a, Result<(), SinkError>> {
        Box::pin(async move {
            let mut connection = self.connection().await?;
            let mut invocation = self.script.key(&self.stream);
            invocation
                .key(format!("{}{}", self.marker_prefix, batch.id))
                .arg(self.max_len)
                .arg(MARKER_TTL_SECONDS)
                .arg(18);
            for record in &batch.records {
                for (name, value) in record.fields() {
                    invocation.arg(name).arg(value);
                }
            }
            // 1: applied now; 0: applied by an earlier attempt. Either way it is in the stream.
            let _applied: i64 = invocation.invoke_async(&mut connection).await?;
            Ok(())
        })
    }
}

impl std::fmt::Debug for RedisStreamSink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisStreamSink")
            .field("stream", &self.stream)
            .field("max_len", &self.max_len)
            .finish()
    }
}
