//! The wire form of a usage event: what sinks write and the spool keeps.

use resilience_core::meter::{Operation, UsageEvent};
use serde::{Deserialize, Serialize};

/// One usage event, as written to Redis, JSONL files and the spool.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct EventRecord {
    /// Who is billed.
    pub tenant_id: String,
    /// Which agent acted.
    pub agent_id: String,
    /// What was done (`agent_message`, ..., `other:<code>`).
    pub operation: String,
    /// Billing tier.
    pub tier: String,
    /// Tokens processed.
    pub tokens: u32,
    /// Latency in microseconds.
    pub latency_us: u32,
    /// Compliance score in [0, 1].
    pub compliance_score: f32,
    /// When it was recorded, in milliseconds since the Unix epoch.
    pub timestamp_ms: u64,
    /// Governance tag (16 hex digits).
    pub constitutional_hash: String,
}

impl EventRecord {
    /// The record of `event`, recorded at `unix_nanos`.
    pub fn from_event(event: &UsageEvent, unix_nanos: u64) -> Self {
        let operation = match event.operation {
            Operation::Other(code) => format!("other:{code}"),
            op => op.as_str().to_owned(),
        };
        EventRecord {
            tenant_id: event.tenant.as_str().to_owned(),
            agent_id: event.agent.as_str().to_owned(),
            operation,
            tier: event.tier.as_str().to_owned(),
            tokens: event.tokens,
            latency_us: event.latency_us,
            compliance_score: event.compliance_score,
            timestamp_ms: unix_nanos / 1_000_000,
            constitutional_hash: event.governance.to_string(),
        }
    }
}

/// A batch of records with an id unique across processes and restarts, so a sink can apply it
/// at most once however often it is retried.
#[derive(Clone, Debug, PartialEq)]
pub struct Batch {
    /// `instance:boot:sequence`.
    pub id: String,
    /// The records, oldest first.
    pub records: Vec<EventRecord>,
}
