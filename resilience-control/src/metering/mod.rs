//! The metering pipeline: a flusher draining the core's [`MeterRing`] into Redis Streams (or a
//! JSONL file when no Redis is configured), a bounded disk spool that carries batches through a
//! sink outage, and the original's metering hooks.
//!
//! ```
//! use std::sync::Arc;
//! use resilience_control::metering::{JsonlSink, MeteringConfig, MeteringFlusher, MeteringHooks};
//! use resilience_core::meter::{MeterRing, Tier};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! # let dir = std::env::temp_dir().join(format!("metering-doc-{}", std::process::id()));
//! let ring = Arc::new(MeterRing::with_capacity(MeterRing::DEFAULT_CAPACITY)?);
//! let sink = Arc::new(JsonlSink::new(dir.join("usage.jsonl"))); // or RedisStreamSink
//! let config = MeteringConfig::default().spool_dir(dir.join("spool"));
//! let flusher = MeteringFlusher::open(ring.clone(), sink, config).await?;
//!
//! let hooks = MeteringHooks::new(ring, Tier::Standard, true);
//! hooks.on_agent_message("tenant-1", "agent-7", 512, std::time::Duration::from_micros(850))?;
//!
//! let ledger = flusher.finish(std::time::Duration::from_secs(5)).await; // at shutdown
//! assert_eq!((ledger.accepted, ledger.flushed), (1, 1));
//! # std::fs::remove_dir_all(&dir)?;
//! # Ok(()) }
//! ```
//!
//! (In a service, [`ControlPlaneBuilder::metering`](crate::ControlPlaneBuilder::metering) runs
//! the flusher and calls `finish` on shutdown.)
//!
//! # Guarantees
//!
//! * **Nothing accepted is lost, nothing is silent.** [`MeteringLedger`] holds in every
//!   snapshot: `offered = accepted + refused_full + refused_closed` and
//!   `accepted + inherited = flushed + spooled + pending + quarantined` (`inherited` is what an
//!   earlier run left in the spool; `quarantined` is what was in spool files that could not be
//!   read back, each reported by [`MeteringFlusher::corrupt_spool_files`]).
//! * **Exactly once, in order.** Batches carry ids unique across processes and restarts;
//!   [`RedisStreamSink`] applies a batch's events and its marker in one transaction, so retries
//!   after a lost reply or a restart never duplicate. Spooled batches are replayed before
//!   anything newer, so the stream keeps recording order.
//! * **Bounded.** Through an outage batches go to the spool up to `spool_max_bytes`; past that
//!   the flusher holds the oldest batch and stops draining, the ring fills, and further events
//!   are refused and counted. At shutdown the spool may exceed its bound rather than drop
//!   anything accepted.
//! * **Not capped by the interval.** A backlog is written in batches of up to `max_batch`
//!   back to back: 200 000 events/s sustained into a local Redis with no refusals, and a
//!   ceiling around 225 000–240 000 events/s on a 2-vCPU VM
//!   (`cargo run --release -p resilience-benches --bin meter_flush`).
//!
//! [`MeterRing`]: resilience_core::meter::MeterRing

mod config;
mod flusher;
mod hooks;
mod ledger;
mod record;
mod redis;
mod sink;
mod spool;

pub use config::MeteringConfig;
pub use flusher::{MeterSource, MeteringError, MeteringFlusher};
pub use hooks::{HookError, MeteringHooks};
pub use ledger::{MeteringLedger, SinkHealth};
pub use record::{Batch, EventRecord};
pub use redis::{Durability, RedisStreamSink, StreamTrim};
pub use sink::{JsonlSink, MeterSink, SinkError};
pub use spool::{CorruptSpoolFile, Spool, SpoolError, SpoolFile};
