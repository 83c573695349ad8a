//! The metering pipeline: a flusher draining the core's [`MeterRing`] into Redis Streams (or a
//! JSONL file when no Redis is configured), a bounded disk spool that carries batches through a
//! sink outage, and the original's metering hooks.
//!
//! [`MeterRing`]: resilience_core::meter::MeterRing

mod flusher;
mod hooks;
mod record;
mod redis;
mod sink;
mod spool;

pub use flusher::{MeterSource, MeteringConfig, MeteringError, MeteringFlusher, MeteringLedger};
pub use hooks::{HookError, MeteringHooks};
pub use record::{Batch, EventRecord};
pub use redis::RedisStreamSink;
pub use sink::{JsonlSink, MeterSink, SinkError};
pub use spool::{CorruptSpoolFile, Spool, SpoolError, SpoolFile};
