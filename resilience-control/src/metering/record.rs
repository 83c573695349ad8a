//! The wire form of a usage event: what sinks write and the spool keeps.

use resilience_core::meter::{Drained, EventId, Operation, Outcome, UsageEvent};
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
    /// How it ended (`success` or `failure`); absent when not said.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub outcome: Option<String>,
    /// Who else took part (a target agent, a policy, an approver); absent when nobody.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub counterpart: Option<String>,
    /// A short word about it (a message type, a decision); absent when none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub label: Option<String>,
    /// A deliberation's impact score in [0, 1]; absent when not given.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub impact_score: Option<f32>,
    /// When it was recorded, in milliseconds since the Unix epoch.
    pub timestamp_ms: u64,
    /// Governance tag (16 hex digits).
    pub constitutional_hash: String,
    /// Who the event is, for ever (`<ring epoch>-<sequence>`): sinks apply each id at most
    /// once, so redelivery after a crash or a lost reply never duplicates. Absent only in
    /// spool files written before ids existed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub event_id: Option<EventId>,
}

impl EventRecord {
    /// The record of an event taken from the ring, with its id and time.
    pub fn from_drained(drained: &Drained) -> Self {
        EventRecord {
            event_id: Some(drained.id),
            ..Self::from_event(&drained.event, drained.unix_nanos)
        }
    }

    /// The record of `event`, recorded at `unix_nanos`, without an id.
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
            outcome: (event.outcome != Outcome::Unknown).then(|| event.outcome.as_str().to_owned()),
            counterpart: text(event.counterpart.as_str()),
            label: text(event.label.as_str()),
            impact_score: (event.impact_score != 0.0).then_some(event.impact_score),
            timestamp_ms: unix_nanos / 1_000_000,
            constitutional_hash: event.governance.to_string(),
            event_id: None,
        }
    }
}

fn text(s: &str) -> Option<String> {
    (!s.is_empty()).then(|| s.to_owned())
}

/// A batch of records, oldest first. Sinks apply each record's
/// [`event_id`](EventRecord::event_id) at most once, so a batch may be retried, replayed from
/// the spool or rebuilt differently after a crash without duplicating anything.
#[derive(Clone, Debug, PartialEq)]
pub struct Batch {
    /// For logs and the spool: `instance:epoch:first-last`.
    pub id: String,
    /// The records, oldest first.
    pub records: Vec<EventRecord>,
}

/// The highest sequence per epoch that a sink has applied, for skipping what it already has.
/// Sinks write events of one epoch in sequence order (the flusher guarantees it: spool first,
/// then the ring, each in order), so one number per epoch says everything.
#[derive(Debug, Default)]
pub(crate) struct Applied(std::collections::HashMap<u64, u64>);

impl Applied {
    /// Whether `record` is new to a sink that has applied this much.
    pub(crate) fn is_new(&self, record: &EventRecord) -> bool {
        record
            .event_id
            .is_none_or(|id| self.0.get(&id.epoch).is_none_or(|&seq| id.seq > seq))
    }

    /// Notes `id` as applied.
    pub(crate) fn note(&mut self, id: EventId) {
        let seq = self.0.entry(id.epoch).or_insert(id.seq);
        *seq = (*seq).max(id.seq);
    }

    /// Notes every id in `records`.
    pub(crate) fn note_all<'a>(&mut self, records: impl IntoIterator<Item = &'a EventRecord>) {
        for id in records.into_iter().filter_map(|r| r.event_id) {
            self.note(id);
        }
    }

    /// Epochs seen, with their highest sequence.
    pub(crate) fn iter(&self) -> impl Iterator<Item = (u64, u64)> + '_ {
        self.0.iter().map(|(&epoch, &seq)| (epoch, seq))
    }
}
