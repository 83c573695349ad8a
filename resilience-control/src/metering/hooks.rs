//! [`MeteringHooks`]: the original's metering hooks, and a `metered` wrapper for async work.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use resilience_core::meter::{MeterError, Operation, RefuseReason, Tier, UsageEvent};
use tokio::time::Instant;

use super::flusher::MeterSource;

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
}

impl MeteringHooks {
    /// Hooks recording into `source` at `tier`; `enabled = false` makes every hook a no-op.
    pub fn new(source: Arc<dyn MeterSource>, tier: Tier, enabled: bool) -> Self {
        MeteringHooks {
            source: enabled.then_some(source),
            tier,
        }
    }

    /// Hooks that record nothing (metering turned off), with no ring behind them.
    pub fn disabled() -> Self {
        MeteringHooks {
            source: None,
            tier: Tier::Standard,
        }
    }

    /// Whether hooks record anything.
    pub fn enabled(&self) -> bool {
        self.source.is_some()
    }

    /// Records one event.
    ///
    /// # Errors
    ///
    /// [`HookError::Refused`] when the ring is full or closed (the refusal is counted there).
    pub fn record(&self, event: UsageEvent) -> Result<(), HookError> {
        let Some(source) = &self.source else {
            return Ok(());
        };
        source
            .record(event)
            .map_err(|refused| HookError::Refused(refused.reason))
    }

    #[allow(clippy::too_many_arguments)]
    fn hook(
        &self,
        operation: Operation,
        tenant: &str,
        agent: &str,
        tokens: u32,
        latency: Duration,
        compliance: f32,
    ) -> Result<(), HookError> {
        if self.source.is_none() {
            return Ok(());
        }
        let event = UsageEvent::new(tenant, agent, operation, self.tier)?
            .tokens(tokens)
            .latency(latency)
            .compliance_score(compliance)?;
        self.record(event)
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
        let started = Instant::now();
        let output = work.await;
        if let Err(err) = self.hook(operation, tenant, agent, 0, started.elapsed(), 1.0) {
            tracing::debug!(%err, ?operation, "metered operation not recorded");
        }
        output
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
