//! Turning a [`ResilienceConfig`] into running parts: breakers, fault table, chaos engine,
//! meter ring, flusher and hooks, shared by `demo` and `serve`.

use std::sync::Arc;

use resilience_control::chaos::{ChaosConfig, ChaosEngine};
use resilience_control::metering::{
    Durability, JsonlSink, MeterSink, MeterSource, MeteringFlusher, MeteringHooks, RedisStreamSink,
};
use resilience_control::{ResilienceConfig, redact_url};
use resilience_core::chaos::FaultTable;
use resilience_core::meter::{MeterRing, Tier};
use resilience_core::{BreakerConfig, BreakerRegistry, CoarseClock};

use crate::Error;

/// Where metering goes.
pub(crate) enum Sink {
    /// Redis at this URL (the spool covers outages, including one at start).
    Redis(String),
    /// A JSONL file.
    Jsonl,
}

impl Sink {
    /// Redis when `redis_url` (or `REDIS_URL`) is configured, else the JSONL file. Never a
    /// guess: an unconfigured Redis that happens to run locally is not written to.
    pub(crate) fn from_config(config: &ResilienceConfig) -> Sink {
        config.redis_url.clone().map_or(Sink::Jsonl, Sink::Redis)
    }
}

pub(crate) struct Parts {
    pub(crate) registry: Arc<BreakerRegistry>,
    pub(crate) table: Arc<FaultTable>,
    pub(crate) chaos: ChaosEngine,
    /// `None` when metering is off (`METERING_ENABLED=false`): no ring, no spool, no flusher.
    pub(crate) flusher: Option<MeteringFlusher>,
    pub(crate) hooks: MeteringHooks,
    /// Where usage events go, for people (passwords redacted).
    pub(crate) destination: String,
    /// Where the ring lives, for people.
    pub(crate) ring: String,
    /// Warnings found while starting (Redis unreachable, Redis not persistent, events left by
    /// an earlier run), for stderr.
    pub(crate) notices: Vec<String>,
}

pub(crate) async fn assemble(
    config: &ResilienceConfig,
    chaos: ChaosConfig,
    sink: Sink,
    namespace: &str,
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
    if !config.metering.enabled {
        return Ok(Parts {
            registry,
            table,
            chaos,
            flusher: None,
            hooks: MeteringHooks::disabled(),
            destination: "off (metering.enabled / METERING_ENABLED)".to_owned(),
            ring: "none".to_owned(),
            notices: Vec::new(),
        });
    }
    let metering = config.metering_config()?;
    std::fs::create_dir_all(&metering.spool_dir)
        .map_err(|e| format!("metering.spool_dir {}: {e}", metering.spool_dir.display()))?;
    let capacity = config.metering.ring_capacity;
    let (ring, ring_text) = match config.ring_path() {
        Some(path) => {
            let ring =
                MeterRing::open_with_clock(&path, capacity, CoarseClock::default(), governance)?;
            let text = format!(
                "file {} ({capacity} events, survives kill -9)",
                path.display()
            );
            (Arc::new(ring), text)
        }
        None => (
            Arc::new(MeterRing::with_clock(
                capacity,
                CoarseClock::default(),
                governance,
            )?),
            format!("in memory ({capacity} events; metering.durable_ring = false)"),
        ),
    };
    let mut notices = Vec::new();
    let (sink, destination): (Arc<dyn MeterSink>, String) = match sink {
        Sink::Redis(url) => {
            let client = resilience_control::redis_client(&url, config.redis_ca_file.as_deref())
                .map_err(|e| format!("redis_url {}: {e}", redact_url(&url)))?;
            let sink =
                RedisStreamSink::with_client(client, namespace).trim(config.stream_trim())?;
            let destination = format!("Redis stream {} at {}", sink.stream_key(), redact_url(&url));
            match sink.durability().await {
                Durability::Volatile => notices.push(format!(
                    "the Redis at {} keeps nothing across its own restart (no AOF, no RDB): \
                     events it acknowledged would vanish with it; enable appendonly for \
                     exactly-once to hold through a Redis crash",
                    redact_url(&url)
                )),
                Durability::Unknown { reason } => notices.push(format!(
                    "cannot tell whether Redis persists its data ({reason})"
                )),
                Durability::Unreachable { reason } => notices.push(format!(
                    "Redis at {} is unreachable ({reason}); events go to the spool in {} and \
                     are delivered when it answers",
                    redact_url(&url),
                    metering.spool_dir.display()
                )),
                _ => {}
            }
            (Arc::new(sink), destination)
        }
        Sink::Jsonl => {
            let path = config.metering.jsonl_path.clone();
            let destination = format!("JSONL file {} (no redis_url / REDIS_URL)", path.display());
            (Arc::new(JsonlSink::new(path)), destination)
        }
    };
    let source: Arc<dyn MeterSource> = ring.clone();
    let flusher = MeteringFlusher::open(source, sink, metering).await?;
    let ledger = flusher.ledger();
    if ledger.inherited > 0 {
        notices.push(format!(
            "delivering {} events an earlier run left ({} recovered from the ring file, {} from the spool)",
            ledger.inherited,
            ledger.recovered,
            ledger.inherited - ledger.recovered
        ));
    }
    let hooks = MeteringHooks::new(ring.clone(), Tier::Standard, true);
    Ok(Parts {
        registry,
        table,
        chaos,
        flusher: Some(flusher),
        hooks,
        destination,
        ring: ring_text,
        notices,
    })
}

/// Resolves on Ctrl-C (SIGINT) or SIGTERM.
pub(crate) async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(_) => std::future::pending().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {}
        () = terminate => {}
    }
}
