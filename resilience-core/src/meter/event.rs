//! [`UsageEvent`]: a fixed-size `Copy` usage record, with inline ids and no heap.

use core::fmt;
use core::time::Duration;

use crate::clock::Nanos;
use crate::governance::GovernanceHash;

use super::MeterError;

/// Longest id kept inline (a UUID in text form is 36 bytes).
pub const MAX_ID_LEN: usize = 43;

/// A short identifier (tenant, agent) stored inline, so events never touch the heap.
///
/// # Examples
///
/// ```
/// use resilience_core::meter::InlineId;
///
/// let tenant = InlineId::new("tenant-7f3c")?;
/// assert_eq!(tenant.as_str(), "tenant-7f3c");
/// assert!(InlineId::new(&"x".repeat(44)).is_err());
/// # Ok::<(), resilience_core::meter::MeterError>(())
/// ```
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
#[repr(C)] // a fixed layout: file-backed rings keep events on disk (see `MeterRing::open`)
pub struct InlineId {
    pub(crate) len: u8,
    pub(crate) bytes: [u8; MAX_ID_LEN],
}

impl InlineId {
    /// The empty id.
    pub const EMPTY: InlineId = InlineId {
        len: 0,
        bytes: [0; MAX_ID_LEN],
    };

    /// Copies `id` inline.
    ///
    /// # Errors
    ///
    /// [`MeterError::Invalid`] if `id` is longer than [`MAX_ID_LEN`] bytes.
    pub fn new(id: &str) -> Result<Self, MeterError> {
        Self::named("id", id)
    }

    pub(crate) fn named(field: &'static str, id: &str) -> Result<Self, MeterError> {
        if id.len() > MAX_ID_LEN {
            return Err(MeterError::invalid(
                field,
                format_args!("{id:?}"),
                "at most 43 bytes",
            ));
        }
        let mut bytes = [0; MAX_ID_LEN];
        bytes[..id.len()].copy_from_slice(id.as_bytes());
        Ok(InlineId {
            len: id.len() as u8,
            bytes,
        })
    }

    /// The id as text.
    pub fn as_str(&self) -> &str {
        // The bytes were copied from a `&str` whole, so they are UTF-8; never fails.
        core::str::from_utf8(&self.bytes[..usize::from(self.len)]).unwrap_or_default()
    }
}

impl fmt::Debug for InlineId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self.as_str(), f)
    }
}

impl fmt::Display for InlineId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What was metered (the original's `MeterableOperation`).
///
/// The discriminants are part of the ring file's format and never change.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
#[repr(u16)]
pub enum Operation {
    /// A constitutional (governance) validation.
    ConstitutionalValidation = 0,
    /// An agent message through the bus.
    AgentMessage = 1,
    /// A policy evaluation.
    PolicyEvaluation = 2,
    /// A deliberation (review) request.
    DeliberationRequest = 3,
    /// A human-in-the-loop approval.
    HitlApproval = 4,
    /// An application-defined operation.
    Other(u16) = 5,
}

impl Operation {
    /// snake_case name for records and metrics; `other` for [`Operation::Other`].
    pub const fn as_str(self) -> &'static str {
        match self {
            Operation::ConstitutionalValidation => "constitutional_validation",
            Operation::AgentMessage => "agent_message",
            Operation::PolicyEvaluation => "policy_evaluation",
            Operation::DeliberationRequest => "deliberation_request",
            Operation::HitlApproval => "hitl_approval",
            Operation::Other(_) => "other",
        }
    }
}

/// Billing tier (the original's `MeteringTier`).
///
/// The discriminants are part of the ring file's format and never change.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
#[repr(u8)]
pub enum Tier {
    /// Free tier.
    Free = 0,
    /// Standard tier.
    Standard = 1,
    /// Premium tier.
    Premium = 2,
    /// Enterprise tier.
    Enterprise = 3,
    /// Enhanced processing (the original's `ENHANCED`, its policy evaluations' tier).
    Enhanced = 4,
    /// Deliberation (the original's `DELIBERATION`, for reviews and human approvals).
    Deliberation = 5,
}

impl Tier {
    /// snake_case name.
    pub const fn as_str(self) -> &'static str {
        match self {
            Tier::Free => "free",
            Tier::Standard => "standard",
            Tier::Premium => "premium",
            Tier::Enterprise => "enterprise",
            Tier::Enhanced => "enhanced",
            Tier::Deliberation => "deliberation",
        }
    }
}

/// How the metered operation ended.
///
/// The discriminants are part of the ring file's format and never change.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
#[non_exhaustive]
#[repr(u8)]
pub enum Outcome {
    /// Not said (the default).
    #[default]
    Unknown = 0,
    /// It succeeded: valid, allowed, approved.
    Success = 1,
    /// It failed: invalid, denied, rejected, or an error.
    Failure = 2,
}

impl Outcome {
    /// snake_case name.
    pub const fn as_str(self) -> &'static str {
        match self {
            Outcome::Unknown => "unknown",
            Outcome::Success => "success",
            Outcome::Failure => "failure",
        }
    }

    /// `Success` for `true`, `Failure` for `false`.
    pub const fn of(ok: bool) -> Self {
        if ok {
            Outcome::Success
        } else {
            Outcome::Failure
        }
    }
}

/// Longest [`Label`].
pub const MAX_LABEL_LEN: usize = 15;

/// A short word kept inline (a message type, a policy decision): at most 15 bytes.
///
/// # Examples
///
/// ```
/// use resilience_core::meter::Label;
///
/// assert_eq!(Label::new("escalate")?.as_str(), "escalate");
/// assert!(Label::new("a-label-that-is-too-long").is_err());
/// # Ok::<(), resilience_core::meter::MeterError>(())
/// ```
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
#[repr(C)]
pub struct Label {
    pub(crate) len: u8,
    pub(crate) bytes: [u8; MAX_LABEL_LEN],
}

impl Label {
    /// The empty label.
    pub const EMPTY: Label = Label {
        len: 0,
        bytes: [0; MAX_LABEL_LEN],
    };

    /// Copies `text` inline.
    ///
    /// # Errors
    ///
    /// [`MeterError::Invalid`] if `text` is longer than 15 bytes.
    pub fn new(text: &str) -> Result<Self, MeterError> {
        Self::named("label", text)
    }

    pub(crate) fn named(field: &'static str, text: &str) -> Result<Self, MeterError> {
        if text.len() > MAX_LABEL_LEN {
            return Err(MeterError::invalid(
                field,
                format_args!("{text:?}"),
                "at most 15 bytes",
            ));
        }
        let mut bytes = [0; MAX_LABEL_LEN];
        bytes[..text.len()].copy_from_slice(text.as_bytes());
        Ok(Label {
            len: text.len() as u8,
            bytes,
        })
    }

    /// The label as text.
    pub fn as_str(&self) -> &str {
        // Copied from a `&str` whole, so UTF-8; never fails.
        core::str::from_utf8(&self.bytes[..usize::from(self.len)]).unwrap_or_default()
    }
}

impl fmt::Debug for Label {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self.as_str(), f)
    }
}

impl fmt::Display for Label {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One usage record: fixed size, `Copy`, no heap. [`MeterRing::record`](super::MeterRing::record)
/// stamps the time and the governance tag.
///
/// # Examples
///
/// ```
/// use resilience_core::meter::{Operation, Tier, UsageEvent};
/// use std::time::Duration;
///
/// let event = UsageEvent::new("tenant-1", "agent-9", Operation::AgentMessage, Tier::Standard)?
///     .tokens(512)
///     .latency(Duration::from_micros(830))
///     .compliance_score(0.97)?;
/// assert_eq!(event.tenant.as_str(), "tenant-1");
/// # Ok::<(), resilience_core::meter::MeterError>(())
/// ```
#[derive(Clone, Copy, Debug, PartialEq)]
#[non_exhaustive]
#[repr(C)] // a fixed layout: file-backed rings keep events on disk (see `MeterRing::open`)
pub struct UsageEvent {
    /// Who is billed.
    pub tenant: InlineId,
    /// Which agent acted.
    pub agent: InlineId,
    /// Who else took part (empty when nobody): the target agent of a message, the policy
    /// evaluated, the approver of a human approval.
    pub counterpart: InlineId,
    /// A short word about it (empty when none): a message's type, a policy's decision.
    pub label: Label,
    /// What was done.
    pub operation: Operation,
    /// Billing tier.
    pub tier: Tier,
    /// How it ended.
    pub outcome: Outcome,
    /// Tokens processed.
    pub tokens: u32,
    /// Latency in microseconds (saturating at about 71 minutes).
    pub latency_us: u32,
    /// Compliance score in [0, 1].
    pub compliance_score: f32,
    /// Impact score in [0, 1] of a deliberation (0 when not given).
    pub impact_score: f32,
    /// When it was recorded, on the ring's clock.
    pub at: Nanos,
    /// Governance tag, stamped by the ring.
    pub governance: GovernanceHash,
}

impl crate::Governed for UsageEvent {
    fn governance(&self) -> GovernanceHash {
        self.governance
    }
}

impl UsageEvent {
    /// An event with zero tokens, zero latency and a compliance score of 1.
    ///
    /// # Errors
    ///
    /// [`MeterError::Invalid`] naming `tenant` or `agent` if one is longer than 43 bytes.
    pub fn new(
        tenant: &str,
        agent: &str,
        operation: Operation,
        tier: Tier,
    ) -> Result<Self, MeterError> {
        Ok(UsageEvent::from_ids(
            InlineId::named("tenant", tenant)?,
            InlineId::named("agent", agent)?,
            operation,
            tier,
        ))
    }

    /// An event for ids already copied inline (no validation left to fail), with zero tokens,
    /// zero latency and a compliance score of 1.
    pub const fn from_ids(
        tenant: InlineId,
        agent: InlineId,
        operation: Operation,
        tier: Tier,
    ) -> Self {
        UsageEvent {
            tenant,
            agent,
            counterpart: InlineId::EMPTY,
            label: Label::EMPTY,
            operation,
            tier,
            outcome: Outcome::Unknown,
            tokens: 0,
            latency_us: 0,
            compliance_score: 1.0,
            impact_score: 0.0,
            at: Nanos::ZERO,
            governance: GovernanceHash::DEFAULT,
        }
    }

    /// Sets the tokens processed.
    #[must_use]
    pub fn tokens(mut self, tokens: u32) -> Self {
        self.tokens = tokens;
        self
    }

    /// Sets the latency.
    #[must_use]
    pub fn latency(mut self, latency: Duration) -> Self {
        self.latency_us = u32::try_from(latency.as_micros()).unwrap_or(u32::MAX);
        self
    }

    /// Sets the compliance score.
    ///
    /// # Errors
    ///
    /// [`MeterError::Invalid`] naming `compliance_score` unless it is in [0, 1].
    pub fn compliance_score(mut self, score: f32) -> Result<Self, MeterError> {
        if !(0.0..=1.0).contains(&score) {
            return Err(MeterError::invalid(
                "compliance_score",
                score,
                "a score in [0, 1]",
            ));
        }
        self.compliance_score = score;
        Ok(self)
    }

    /// Sets how it ended.
    #[must_use]
    pub fn outcome(mut self, outcome: Outcome) -> Self {
        self.outcome = outcome;
        self
    }

    /// Sets who else took part (a target agent, a policy, an approver).
    ///
    /// # Errors
    ///
    /// [`MeterError::Invalid`] naming `counterpart` if it is longer than 43 bytes.
    pub fn counterpart(mut self, id: &str) -> Result<Self, MeterError> {
        self.counterpart = InlineId::named("counterpart", id)?;
        Ok(self)
    }

    /// Sets the label (a message type, a decision).
    ///
    /// # Errors
    ///
    /// [`MeterError::Invalid`] naming `label` if it is longer than 15 bytes.
    pub fn label(mut self, text: &str) -> Result<Self, MeterError> {
        self.label = Label::named("label", text)?;
        Ok(self)
    }

    /// Sets the impact score.
    ///
    /// # Errors
    ///
    /// [`MeterError::Invalid`] naming `impact_score` unless it is in [0, 1].
    pub fn impact_score(mut self, score: f32) -> Result<Self, MeterError> {
        if !(0.0..=1.0).contains(&score) {
            return Err(MeterError::invalid(
                "impact_score",
                score,
                "a score in [0, 1]",
            ));
        }
        self.impact_score = score;
        Ok(self)
    }
}
