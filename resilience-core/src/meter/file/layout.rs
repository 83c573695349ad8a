//! Where each field of a [`UsageEvent`] sits in a slot, for this build and for the files
//! earlier builds wrote, and the field-by-field encoding that uses it.
//!
//! A file names its layout by a fingerprint (sizes and offsets) in its header. This build
//! writes [`Layout::CURRENT`] and recovers files in any layout of [`Layout::KNOWN`], so an
//! upgrade never strands the events a ring file holds.

use core::mem::offset_of;

use super::super::event::{
    InlineId, Label, MAX_ID_LEN, MAX_LABEL_LEN, Operation, Outcome, Tier, UsageEvent,
};
use crate::clock::Nanos;
use crate::governance::GovernanceHash;
use crate::ring::Slot;

/// Offsets and sizes of one build's slots, in bytes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) struct Layout {
    pub(super) slot: usize,
    pub(super) value: usize,
    pub(super) event: usize,
    pub(super) tenant: usize,
    pub(super) agent: usize,
    pub(super) operation: usize,
    pub(super) tier: usize,
    pub(super) tokens: usize,
    pub(super) latency: usize,
    pub(super) score: usize,
    pub(super) at: usize,
    pub(super) governance: usize,
    /// Fields a layout may lack (layout 1 had none of them).
    pub(super) details: Option<Details>,
}

/// Offsets of the fields added in layout 2.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) struct Details {
    pub(super) counterpart: usize,
    pub(super) label: usize,
    pub(super) outcome: usize,
    pub(super) impact: usize,
}

/// `InlineId` and `Label`: the length byte, then the bytes.
const LEN_AT: usize = 0;
const BYTES_AT: usize = 1;
const _: () =
    assert!(offset_of!(InlineId, len) == LEN_AT && offset_of!(InlineId, bytes) == BYTES_AT);
const _: () = assert!(offset_of!(Label, len) == LEN_AT && offset_of!(Label, bytes) == BYTES_AT);

/// An `InlineId` length no real id has: marks a void slot in the file.
pub(super) const VOID_LEN: u8 = u8::MAX;

/// Byte-order mark in every fingerprint.
const BOM: u32 = 0x0102_0304;

impl Layout {
    /// This build's.
    pub(super) const CURRENT: Layout = Layout {
        slot: size_of::<Slot<UsageEvent>>(),
        value: offset_of!(Slot<UsageEvent>, value),
        event: size_of::<UsageEvent>(),
        tenant: offset_of!(UsageEvent, tenant),
        agent: offset_of!(UsageEvent, agent),
        operation: offset_of!(UsageEvent, operation),
        tier: offset_of!(UsageEvent, tier),
        tokens: offset_of!(UsageEvent, tokens),
        latency: offset_of!(UsageEvent, latency_us),
        score: offset_of!(UsageEvent, compliance_score),
        at: offset_of!(UsageEvent, at),
        governance: offset_of!(UsageEvent, governance),
        details: Some(Details {
            counterpart: offset_of!(UsageEvent, counterpart),
            label: offset_of!(UsageEvent, label),
            outcome: offset_of!(UsageEvent, outcome),
            impact: offset_of!(UsageEvent, impact_score),
        }),
    };

    /// Layout 1: 128-byte events without counterpart, label, outcome or impact score.
    pub(super) const V1: Layout = Layout {
        slot: 136,
        value: 8,
        event: 128,
        tenant: 0,
        agent: 44,
        operation: 88,
        tier: 92,
        tokens: 96,
        latency: 100,
        score: 104,
        at: 112,
        governance: 120,
        details: None,
    };

    /// Every layout this build recovers, this build's first.
    pub(super) const KNOWN: [Layout; 2] = [Layout::CURRENT, Layout::V1];

    /// The header's fingerprint words: twelve at offset 32 (all a layout-1 build wrote), and
    /// four more for the details.
    pub(super) fn fingerprint(&self) -> ([u32; 12], [u32; 4]) {
        let base = [
            self.slot as u32,
            self.event as u32,
            self.tenant as u32,
            self.agent as u32,
            self.operation as u32,
            self.tier as u32,
            self.tokens as u32,
            self.latency as u32,
            self.score as u32,
            self.at as u32,
            self.governance as u32,
            BOM,
        ];
        let details = self.details.map_or([0; 4], |d| {
            [
                d.counterpart as u32,
                d.label as u32,
                d.outcome as u32,
                d.impact as u32,
            ]
        });
        (base, details)
    }

    /// Writes `event` into a slot's value bytes exactly as a typed store would lay it out
    /// (fields this layout lacks are left out).
    pub(super) fn encode(&self, event: &UsageEvent, out: &mut [u8]) {
        encode_text(out, self.tenant, event.tenant.len, &event.tenant.bytes);
        encode_text(out, self.agent, event.agent.len, &event.agent.bytes);
        // `repr(u16)` enum with fields: the tag first, then the payload (RFC 2195).
        let (tag, code): (u16, u16) = match event.operation {
            Operation::ConstitutionalValidation => (0, 0),
            Operation::AgentMessage => (1, 0),
            Operation::PolicyEvaluation => (2, 0),
            Operation::DeliberationRequest => (3, 0),
            Operation::HitlApproval => (4, 0),
            Operation::Other(code) => (5, code),
        };
        put(out, self.operation, &tag.to_ne_bytes());
        put(out, self.operation + 2, &code.to_ne_bytes());
        out[self.tier] = event.tier as u8;
        put(out, self.tokens, &event.tokens.to_ne_bytes());
        put(out, self.latency, &event.latency_us.to_ne_bytes());
        put(
            out,
            self.score,
            &event.compliance_score.to_bits().to_ne_bytes(),
        );
        put(out, self.at, &event.at.as_nanos().to_ne_bytes());
        put(
            out,
            self.governance,
            &event.governance.as_u64().to_ne_bytes(),
        );
        if let Some(d) = self.details {
            encode_text(
                out,
                d.counterpart,
                event.counterpart.len,
                &event.counterpart.bytes,
            );
            encode_text(out, d.label, event.label.len, &event.label.bytes);
            out[d.outcome] = event.outcome as u8;
            put(out, d.impact, &event.impact_score.to_bits().to_ne_bytes());
        }
    }

    /// Reads an event back from a slot's value bytes; `None` when any field is invalid.
    pub(super) fn decode(&self, value: &[u8]) -> Option<UsageEvent> {
        let tenant = InlineId::new(decode_text(value, self.tenant, MAX_ID_LEN)?).ok()?;
        let agent = InlineId::new(decode_text(value, self.agent, MAX_ID_LEN)?).ok()?;
        let tag = u16::from_ne_bytes([value[self.operation], value[self.operation + 1]]);
        let code = u16::from_ne_bytes([value[self.operation + 2], value[self.operation + 3]]);
        let operation = match tag {
            0 => Operation::ConstitutionalValidation,
            1 => Operation::AgentMessage,
            2 => Operation::PolicyEvaluation,
            3 => Operation::DeliberationRequest,
            4 => Operation::HitlApproval,
            5 => Operation::Other(code),
            _ => return None,
        };
        let tier = match value[self.tier] {
            0 => Tier::Free,
            1 => Tier::Standard,
            2 => Tier::Premium,
            3 => Tier::Enterprise,
            4 => Tier::Enhanced,
            5 => Tier::Deliberation,
            _ => return None,
        };
        let mut event = UsageEvent::from_ids(tenant, agent, operation, tier)
            .compliance_score(f32::from_bits(u32_at(value, self.score)))
            .ok()?;
        event.tokens = u32_at(value, self.tokens);
        event.latency_us = u32_at(value, self.latency);
        event.at = Nanos::from_nanos(u64_at(value, self.at));
        event.governance = GovernanceHash::from_u64(u64_at(value, self.governance));
        if let Some(d) = self.details {
            event = event
                .counterpart(decode_text(value, d.counterpart, MAX_ID_LEN)?)
                .ok()?
                .label(decode_text(value, d.label, MAX_LABEL_LEN)?)
                .ok()?
                .impact_score(f32::from_bits(u32_at(value, d.impact)))
                .ok()?;
            event.outcome = match value[d.outcome] {
                0 => Outcome::Unknown,
                1 => Outcome::Success,
                2 => Outcome::Failure,
                _ => return None,
            };
        }
        Some(event)
    }

    /// Marks a slot's value as holding no event.
    pub(super) fn mark_void(&self, value: &mut [u8]) {
        value[self.tenant + LEN_AT] = VOID_LEN;
    }
}

fn encode_text(out: &mut [u8], at: usize, len: u8, bytes: &[u8]) {
    out[at + LEN_AT] = len;
    put(out, at + BYTES_AT, bytes);
}

fn decode_text(value: &[u8], at: usize, max: usize) -> Option<&str> {
    let len = usize::from(value[at + LEN_AT]);
    if len > max {
        return None;
    }
    core::str::from_utf8(&value[at + BYTES_AT..at + BYTES_AT + len]).ok()
}

pub(super) fn u32_at(bytes: &[u8], at: usize) -> u32 {
    let mut b = [0; 4];
    b.copy_from_slice(&bytes[at..at + 4]);
    u32::from_ne_bytes(b)
}

pub(super) fn u64_at(bytes: &[u8], at: usize) -> u64 {
    let mut b = [0; 8];
    b.copy_from_slice(&bytes[at..at + 8]);
    u64::from_ne_bytes(b)
}

pub(super) fn put(bytes: &mut [u8], at: usize, value: &[u8]) {
    bytes[at..at + value.len()].copy_from_slice(value);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn full_event() -> UsageEvent {
        UsageEvent::new("tenant-ä", "agent", Operation::Other(7), Tier::Deliberation)
            .unwrap()
            .tokens(99)
            .compliance_score(0.25)
            .unwrap()
            .counterpart("approver-1")
            .unwrap()
            .label("approved")
            .unwrap()
            .impact_score(0.75)
            .unwrap()
            .outcome(Outcome::Success)
    }

    #[test]
    fn an_event_survives_encode_and_decode() {
        let layout = Layout::CURRENT;
        let event = full_event();
        let mut bytes = vec![0u8; layout.event];
        layout.encode(&event, &mut bytes);
        assert_eq!(layout.decode(&bytes), Some(event));
        bytes[layout.tier] = 9;
        assert_eq!(layout.decode(&bytes), None, "a bad tier is refused");
        layout.encode(&event, &mut bytes);
        bytes[layout.details.unwrap().outcome] = 3;
        assert_eq!(layout.decode(&bytes), None, "a bad outcome is refused");
    }

    #[test]
    fn a_layout_one_event_decodes_without_the_new_fields() {
        let event = full_event();
        let mut bytes = vec![0u8; Layout::V1.event];
        Layout::V1.encode(&event, &mut bytes);
        let back = Layout::V1.decode(&bytes).unwrap();
        assert_eq!(
            (
                back.tenant,
                back.agent,
                back.tokens,
                back.compliance_score,
                back.tier
            ),
            (event.tenant, event.agent, 99, 0.25, Tier::Deliberation)
        );
        assert_eq!(
            (
                back.counterpart,
                back.label,
                back.outcome,
                back.impact_score
            ),
            (InlineId::EMPTY, Label::EMPTY, Outcome::Unknown, 0.0)
        );
    }

    #[test]
    fn a_void_marker_never_decodes() {
        for layout in Layout::KNOWN {
            let mut bytes = vec![0u8; layout.event];
            layout.mark_void(&mut bytes);
            assert_eq!(layout.decode(&bytes), None);
        }
    }

    #[test]
    fn the_layouts_differ_and_this_one_is_192_bytes() {
        assert_ne!(Layout::CURRENT.fingerprint(), Layout::V1.fingerprint());
        assert_eq!(Layout::CURRENT.event, 192);
    }
}
