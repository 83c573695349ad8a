//! Turning a [`ResilienceConfig`] into running parts: breakers, fault table, chaos engine,
//! meter ring, flusher and hooks, shared by `demo` and `serve`.

use std::sync::Arc;
use std::time::Duration;

use resilience_control::ResilienceConfig;
use resilience_control::chaos::{ChaosConfig, ChaosEngine};
use resilience_control::metering::{
    JsonlSink, MeterSink, MeteringFlusher, MeteringHooks, RedisStreamSink,
};
use resilience_core::chaos::FaultTable;
use resilience_core::meter::{MeterRing, Tier};
use resilience_core::{BreakerConfig, BreakerRegistry, CoarseClock};

use crate::Error;

/// Where metering goes.
pub(crate) enum Sink {
    /// Redis at this URL (the spool covers outages).
    Redis(String),
    /// A JSONL file.
    Jsonl,
}

pub(crate) struct Parts {
    pub(crate) registry: Arc<BreakerRegistry>,
    pub(crate) table: Arc<FaultTable>,
    pub(crate) chaos: ChaosEngine,
    pub(crate) flusher: MeteringFlusher,
    pub(crate) hooks: MeteringHooks,
    /// Where usage events go, for people.
    pub(crate) destination: String,
}

/// Redis for metering: the configured URL; `serve` stops there, while the demo also tries the
/// default local Redis and falls back to JSONL when nothing answers.
pub(crate) async fn choose_sink(config: &ResilienceConfig, probe_default: bool) -> Sink {
    match &config.redis_url {
        Some(url) => Sink::Redis(url.clone()),
        None if probe_default => {
            let url = "redis://127.0.0.1:6379";
            if answers(url).await {
                Sink::Redis(url.to_owned())
            } else {
                Sink::Jsonl
            }
        }
        None => Sink::Jsonl,
    }
}

/// Whether a Redis at `url` answers PING within half a second.
async fn answers(url: &str) -> bool {
    let Ok(client) = redis::Client::open(url) else {
        return false;
    };
    let ping = async {
        let mut conn = client.get_multiplexed_async_connection().await?;
        redis::cmd("PING").query_async::<String>(&mut conn).await
    };
    matches!(
        tokio::time::timeout(Duration::from_millis(500), ping).await,
        Ok(Ok(_))
    )
}

pub(crate) async fn assemble(
    config: &ResilienceConfig,
    chaos: ChaosConfig,
    sink: Sink,
) -> Result<Parts, Error> {
    let governance = config.constitutional_hash;
    let defaults = BreakerConfig::builder().governance(governance).build()?;
    let registry = Arc::new(BreakerRegistry::new().with_defaults(defaults));
    for (name, breaker) in config.breaker_configs()? {
        registry.get_or_create(&name, breaker)?;
    }
    let table = Arc::new(
        FaultTable::builder()
            .limits(config.chaos_config()?.limits()?)
            .governance(governance)
            .build()?,
    );
    let chaos = ChaosEngine::builder(table.clone())
        .breakers(registry.clone())
        .config(chaos)
        .build()?;
    let ring = Arc::new(MeterRing::with_clock(
        config.metering.ring_capacity,
        CoarseClock::default(),
        governance,
    )?);
    let (sink, destination): (Arc<dyn MeterSink>, String) = match sink {
        Sink::Redis(url) => {
            let sink = RedisStreamSink::new(&url, &config.namespace)?
                .max_len(config.metering.stream_max_len);
            let destination = format!("Redis stream {} at {url}", sink.stream_key());
            (Arc::new(sink), destination)
        }
        Sink::Jsonl => {
            let path = config.metering.jsonl_path.clone();
            let destination = format!("JSONL file {}", path.display());
            (Arc::new(JsonlSink::new(path)), destination)
        }
    };
    let flusher = MeteringFlusher::open(ring.clone(), sink, config.metering_config()?).await?;
    let hooks = MeteringHooks::new(ring.clone(), Tier::Standard, config.metering.enabled);
    Ok(Parts {
        registry,
        table,
        chaos,
        flusher,
        hooks,
        destination,
    })
}
