//! [`MeteringHooks`]: the original's metering hooks, and a `metered` wrapper for async work.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use std::sync::atomic::{AtomicU64, Ordering};

use resilience_core::meter::{
    InlineId, MeterError, Operation, Outcome, RefuseReason, Tier, UsageEvent,
};
use tokio::time::Instant;

use super::flusher::MeterSource;
use crate::task::CatchUnwind;

/// Why a hook did not record.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum HookError {
    /// A value was out of range (an id too long, a score outside [0, 1]).
    #[error(transparent)]
    Invalid(#[from] MeterError),
    /// The ring refused the event (full, or closed for shutdown); it is counted there.
    #[error("metering refused the event: ring {}", .0.as_str())]
    Refused(RefuseReason),
}

/// A refusal reports the process's tag (the refused event is not kept).
impl resilience_core::Governed for HookError {
    fn governance(&self) -> resilience_core::GovernanceHash {
        match self {
            HookError::Invalid(err) => resilience_core::Governed::governance(err),
            _ => resilience_core::GovernanceHash::for_process(),
        }
    }
}

/// Non-blocking metering hooks for a message bus (the original's `MeteringHooks`): each records
/// one [`UsageEvent`] and returns at once. With metering disabled (`METERING_ENABLED=false`)
/// they do nothing.
///
/// # Examples
///
/// ```
/// use std::sync::Arc;
/// use std::time::Duration;
/// use resilience_control::metering::MeteringHooks;
/// use resilience_core::meter::{MeterRing, Tier};
///
/// let ring = Arc::new(MeterRing::with_capacity(1024)?);
/// let hooks = MeteringHooks::new(ring.clone(), Tier::Standard, true);
/// hooks.on_agent_message("tenant-1", "agent-7", 512, Duration::from_micros(900))?;
/// assert_eq!(ring.ledger().accepted, 1);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone)]
pub struct MeteringHooks {
    /// `None` when metering is off.
    source: Option<Arc<dyn MeterSource>>,
    tier: Tier,
    /// Events recorded with no tenant, as the original's `default` tenant.
    defaulted: Arc<AtomicU64>,
}

/// The tenant an event without one is billed to, as in the original.
pub const DEFAULT_TENANT: &str = "default";

impl MeteringHooks {
    /// Hooks recording into `source` at `tier`; `enabled = false` makes every hook a no-op.
    pub fn new(source: Arc<dyn MeterSource>, tier: Tier, enabled: bool) -> Self {
        MeteringHooks {
            source: enabled.then_some(source),
            tier,
            defaulted: Arc::default(),
        }
    }

    /// Hooks that record nothing (metering turned off), with no ring behind them.
    pub fn disabled() -> Self {
        MeteringHooks {
            source: None,
            tier: Tier::Standard,
            defaulted: Arc::default(),
        }
    }

    /// Whether hooks record anything.
    pub fn enabled(&self) -> bool {
        self.source.is_some()
    }

    /// Events recorded with an empty tenant, billed to [`DEFAULT_TENANT`].
    pub fn defaulted_tenants(&self) -> u64 {
        self.defaulted.load(Ordering::Relaxed)
    }

    /// An event of `operation` by `agent` for `tenant` (empty: [`DEFAULT_TENANT`]) at these
    /// hooks' tier, to describe further and [`record`](HookEvent::record).
    ///
    /// # Examples
    ///
    /// ```
    /// # use std::sync::Arc;
    /// # use std::time::Duration;
    /// # use resilience_control::metering::MeteringHooks;
    /// # use resilience_core::meter::{MeterRing, Operation, Outcome, Tier};
    /// # let ring = Arc::new(MeterRing::with_capacity(16)?);
    /// let hooks = MeteringHooks::new(ring.clone(), Tier::Standard, true);
    /// hooks
    ///     .event(Operation::Other(7), "tenant-1", "agent-1")
    ///     .outcome(Outcome::Failure)
    ///     .label("quota")
    ///     .record()?;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn event(&self, operation: Operation, tenant: &str, agent: &str) -> HookEvent<'_> {
        self.event_at(operation, self.tier, tenant, agent)
    }

    fn event_at(
        &self,
        operation: Operation,
        tier: Tier,
        tenant: &str,
        agent: &str,
    ) -> HookEvent<'_> {
        // An empty tenant is kept here and billed to the default one by `record`, the one
        // place that counts it.
        let event = UsageEvent::new(tenant, agent, operation, tier).map_err(HookError::from);
        HookEvent { hooks: self, event }
    }

    /// A constitutional validation by `agent`: valid or not (the original's `is_valid`; also
    /// the compliance score, 1 or 0).
    pub fn constitutional_validation(
        &self,
        tenant: &str,
        agent: &str,
        is_valid: bool,
    ) -> HookEvent<'_> {
        self.event(Operation::ConstitutionalValidation, tenant, agent)
            .valid(is_valid)
    }

    /// A message from `from_agent` to `to_agent` of `message_type`, valid or not.
    pub fn agent_message(
        &self,
        tenant: &str,
        from_agent: &str,
        to_agent: &str,
        message_type: &str,
        is_valid: bool,
    ) -> HookEvent<'_> {
        self.event(Operation::AgentMessage, tenant, from_agent)
            .to_agent(to_agent)
            .message_type(message_type)
            .valid(is_valid)
    }

    /// `agent` had `policy` evaluated, with `decision` (`allow`, `deny`, ...), at the
    /// original's ENHANCED tier.
    pub fn policy_evaluation(
        &self,
        tenant: &str,
        agent: &str,
        policy: &str,
        decision: &str,
    ) -> HookEvent<'_> {
        self.event_at(Operation::PolicyEvaluation, Tier::Enhanced, tenant, agent)
            .policy(policy)
            .decision(decision)
    }

    /// `agent` asked for a deliberation of `impact_score` in [0, 1], at the DELIBERATION tier.
    pub fn deliberation_request(
        &self,
        tenant: &str,
        agent: &str,
        impact_score: f32,
    ) -> HookEvent<'_> {
        self.event_at(
            Operation::DeliberationRequest,
            Tier::Deliberation,
            tenant,
            agent,
        )
        .impact_score(impact_score)
    }

    /// `approver` approved `agent`'s request or not, at the DELIBERATION tier.
    pub fn hitl_approval(
        &self,
        tenant: &str,
        agent: &str,
        approver: &str,
        approved: bool,
    ) -> HookEvent<'_> {
        self.event_at(Operation::HitlApproval, Tier::Deliberation, tenant, agent)
            .approver(approver)
            .approved(approved)
    }

    /// Records one event.
    ///
    /// # Errors
    ///
    /// [`HookError::Refused`] when the ring is full or closed (the refusal is counted there).
    pub fn record(&self, mut event: UsageEvent) -> Result<(), HookError> {
        let Some(source) = &self.source else {
            return Ok(());
        };
        if event.tenant.as_str().is_empty() {
            self.defaulted.fetch_add(1, Ordering::Relaxed);
            // "default" fits an id (43 bytes), so this always replaces it.
            if let Ok(default) = InlineId::new(DEFAULT_TENANT) {
                event.tenant = default;
            }
        }
        source
            .record(event)
            .map_err(|refused| HookError::Refused(refused.reason))
    }

    fn hook(
        &self,
        operation: Operation,
        tenant: &str,
        agent: &str,
        tokens: u32,
        latency: Duration,
        compliance: f32,
    ) -> Result<(), HookError> {
        self.event(operation, tenant, agent)
            .tokens(tokens)
            .latency(latency)
            .compliance(compliance)
            .record()
    }

    /// A constitutional (governance) validation took `latency` and scored `compliance`.
    ///
    /// # Errors
    ///
    /// [`HookError`] for an invalid value or a refusal.
    pub fn on_constitutional_validation(
        &self,
        tenant: &str,
        agent: &str,
        latency: Duration,
        compliance: f32,
    ) -> Result<(), HookError> {
        self.hook(
            Operation::ConstitutionalValidation,
            tenant,
            agent,
            0,
            latency,
            compliance,
        )
    }

    /// An agent message of `tokens` tokens went through the bus.
    ///
    /// # Errors
    ///
    /// [`HookError`] for an invalid value or a refusal.
    pub fn on_agent_message(
        &self,
        tenant: &str,
        agent: &str,
        tokens: u32,
        latency: Duration,
    ) -> Result<(), HookError> {
        self.hook(Operation::AgentMessage, tenant, agent, tokens, latency, 1.0)
    }

    /// A policy evaluation ran.
    ///
    /// # Errors
    ///
    /// [`HookError`] for an invalid value or a refusal.
    pub fn on_policy_evaluation(
        &self,
        tenant: &str,
        agent: &str,
        latency: Duration,
        compliance: f32,
    ) -> Result<(), HookError> {
        self.hook(
            Operation::PolicyEvaluation,
            tenant,
            agent,
            0,
            latency,
            compliance,
        )
    }

    /// A deliberation (review) was requested.
    ///
    /// # Errors
    ///
    /// [`HookError`] for an invalid value or a refusal.
    pub fn on_deliberation_request(
        &self,
        tenant: &str,
        agent: &str,
        tokens: u32,
        latency: Duration,
    ) -> Result<(), HookError> {
        self.hook(
            Operation::DeliberationRequest,
            tenant,
            agent,
            tokens,
            latency,
            1.0,
        )
    }

    /// A human-in-the-loop approval completed.
    ///
    /// # Errors
    ///
    /// [`HookError`] for an invalid value or a refusal.
    pub fn on_hitl_approval(
        &self,
        tenant: &str,
        agent: &str,
        latency: Duration,
    ) -> Result<(), HookError> {
        self.hook(Operation::HitlApproval, tenant, agent, 0, latency, 1.0)
    }

    /// Runs `work`, then records `operation` with how long it took (the original's
    /// `@metered_operation`). The work's result is returned whether or not metering accepted
    /// the event: metering never fails the work.
    ///
    /// # Examples
    ///
    /// ```
    /// # use std::sync::Arc;
    /// # use resilience_control::metering::MeteringHooks;
    /// # use resilience_core::meter::{MeterRing, Operation, Tier};
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// # let ring = Arc::new(MeterRing::with_capacity(16)?);
    /// let hooks = MeteringHooks::new(ring.clone(), Tier::Premium, true);
    /// let verdict = hooks.metered(Operation::PolicyEvaluation, "t1", "a1", async { "allow" }).await;
    /// assert_eq!(verdict, "allow");
    /// # assert_eq!(ring.ledger().accepted, 1);
    /// # Ok(()) }
    /// ```
    pub async fn metered<F: Future>(
        &self,
        operation: Operation,
        tenant: &str,
        agent: &str,
        work: F,
    ) -> F::Output {
        self.metered_with(operation, tenant, agent, work, |_| Verdict::default())
            .await
    }

    /// [`metered`](Self::metered) for work that returns a `Result`: `Ok` is recorded as a
    /// success, `Err` as a failure with a compliance score of 0.
    pub async fn metered_result<T, E, F>(
        &self,
        operation: Operation,
        tenant: &str,
        agent: &str,
        work: F,
    ) -> Result<T, E>
    where
        F: Future<Output = Result<T, E>>,
    {
        self.metered_with(operation, tenant, agent, work, |result| match result {
            Ok(_) => Verdict::success(),
            Err(_) => Verdict::failure(),
        })
        .await
    }

    /// [`metered`](Self::metered) with the outcome and compliance score `judge` reads from the
    /// work's output (say, a verdict's own score). Work that panics is recorded as a failure
    /// before the panic goes on.
    ///
    /// # Examples
    ///
    /// ```
    /// # use std::sync::Arc;
    /// # use resilience_control::metering::{MeteringHooks, Verdict};
    /// # use resilience_core::meter::{MeterRing, Operation, Tier};
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// # let ring = Arc::new(MeterRing::with_capacity(16)?);
    /// let hooks = MeteringHooks::new(ring.clone(), Tier::Premium, true);
    /// let score = hooks
    ///     .metered_with(Operation::ConstitutionalValidation, "t1", "a1", async { 0.8_f32 }, |s| {
    ///         Verdict::success().compliance(*s)
    ///     })
    ///     .await;
    /// assert_eq!(score, 0.8);
    /// # Ok(()) }
    /// ```
    pub async fn metered_with<F, J>(
        &self,
        operation: Operation,
        tenant: &str,
        agent: &str,
        work: F,
        judge: J,
    ) -> F::Output
    where
        F: Future,
        J: FnOnce(&F::Output) -> Verdict,
    {
        let started = Instant::now();
        let output = CatchUnwind::new(work).await;
        let verdict = match &output {
            Ok(output) => judge(output),
            Err(_) => Verdict::failure(),
        };
        let recorded = self
            .event(operation, tenant, agent)
            .latency(started.elapsed())
            .outcome(verdict.outcome)
            .compliance(verdict.compliance)
            .record();
        if let Err(err) = recorded {
            tracing::debug!(%err, ?operation, "metered operation not recorded");
        }
        match output {
            Ok(output) => output,
            Err(panic) => std::panic::resume_unwind(panic),
        }
    }
}

impl std::fmt::Debug for MeteringHooks {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MeteringHooks")
            .field("tier", &self.tier)
            .field("enabled", &self.enabled())
            .finish_non_exhaustive()
    }
}

/// How a metered operation went, for [`MeteringHooks::metered_with`].
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Verdict {
    /// How it ended.
    pub outcome: Outcome,
    /// Its compliance score in [0, 1].
    pub compliance: f32,
}

impl Default for Verdict {
    /// Not said: unknown outcome, compliance 1 (nothing found wrong).
    fn default() -> Self {
        Verdict {
            outcome: Outcome::Unknown,
            compliance: 1.0,
        }
    }
}

impl Verdict {
    /// It worked: success, compliance 1.
    pub fn success() -> Self {
        Verdict {
            outcome: Outcome::Success,
            compliance: 1.0,
        }
    }

    /// It failed: failure, compliance 0.
    pub fn failure() -> Self {
        Verdict {
            outcome: Outcome::Failure,
            compliance: 0.0,
        }
    }

    /// With this compliance score.
    #[must_use]
    pub fn compliance(mut self, score: f32) -> Self {
        self.compliance = score;
        self
    }
}

/// An event being described: each setter keeps the first invalid value's error for
/// [`record`](Self::record), so a chain reads straight through. Nothing is recorded until then.
#[must_use = "nothing is recorded until record()"]
pub struct HookEvent<'h> {
    hooks: &'h MeteringHooks,
    event: Result<UsageEvent, HookError>,
}

impl HookEvent<'_> {
    fn map(mut self, f: impl FnOnce(UsageEvent) -> Result<UsageEvent, MeterError>) -> Self {
        self.event = self.event.and_then(|e| f(e).map_err(HookError::from));
        self
    }

    /// Tokens processed.
    pub fn tokens(self, tokens: u32) -> Self {
        self.map(|e| Ok(e.tokens(tokens)))
    }

    /// How long it took.
    pub fn latency(self, latency: Duration) -> Self {
        self.map(|e| Ok(e.latency(latency)))
    }

    /// The billing tier, instead of the default.
    pub fn tier(self, tier: Tier) -> Self {
        self.map(|mut e| {
            e.tier = tier;
            Ok(e)
        })
    }

    /// How it ended.
    pub fn outcome(self, outcome: Outcome) -> Self {
        self.map(|e| Ok(e.outcome(outcome)))
    }

    /// Its compliance score in [0, 1].
    pub fn compliance(self, score: f32) -> Self {
        self.map(|e| e.compliance_score(score))
    }

    /// Valid or not: the outcome, and a compliance score of 1 or 0 (as the original).
    pub fn valid(self, is_valid: bool) -> Self {
        self.outcome(Outcome::of(is_valid))
            .compliance(if is_valid { 1.0 } else { 0.0 })
    }

    /// Approved or not: the outcome.
    pub fn approved(self, approved: bool) -> Self {
        self.outcome(Outcome::of(approved))
    }

    /// A policy decision (at most 15 bytes): the label, and the outcome when it is a plain
    /// allow (`allow`, `allowed`, `permit`, `accept`, `approve`, `approved`) or deny (`deny`,
    /// `denied`, `reject`, `rejected`, `block`); others (`escalate`) leave it unknown.
    pub fn decision(self, decision: &str) -> Self {
        let outcome = match decision.to_ascii_lowercase().as_str() {
            "allow" | "allowed" | "permit" | "accept" | "approve" | "approved" => Outcome::Success,
            "deny" | "denied" | "reject" | "rejected" | "block" => Outcome::Failure,
            _ => Outcome::Unknown,
        };
        self.label(decision).outcome(outcome)
    }

    /// Who else took part (at most 43 bytes).
    pub fn counterpart(self, id: &str) -> Self {
        self.map(|e| e.counterpart(id))
    }

    /// A short word about it (at most 15 bytes).
    pub fn label(self, text: &str) -> Self {
        self.map(|e| e.label(text))
    }

    /// The agent a message went to.
    pub fn to_agent(self, agent: &str) -> Self {
        self.counterpart(agent)
    }

    /// The policy evaluated.
    pub fn policy(self, policy: &str) -> Self {
        self.counterpart(policy)
    }

    /// Who approved (or not).
    pub fn approver(self, approver: &str) -> Self {
        self.counterpart(approver)
    }

    /// A message's type (at most 15 bytes).
    pub fn message_type(self, message_type: &str) -> Self {
        self.label(message_type)
    }

    /// A deliberation's impact score in [0, 1].
    pub fn impact_score(self, score: f32) -> Self {
        self.map(|e| e.impact_score(score))
    }

    /// Records it (never blocks).
    ///
    /// # Errors
    ///
    /// [`HookError::Invalid`] naming the first invalid field and value, or
    /// [`HookError::Refused`] when the ring is full or closed (counted there). With metering
    /// off, `Ok` and nothing recorded.
    pub fn record(self) -> Result<(), HookError> {
        if !self.hooks.enabled() {
            return Ok(());
        }
        self.hooks.record(self.event?)
    }
}
