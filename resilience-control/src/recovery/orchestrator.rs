//! [`RecoveryOrchestrator`]: schedules recovery attempts for open breakers and runs their
//! health checks.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap, VecDeque};
use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, SystemTime};

use resilience_core::{BreakerEvent, ConfigError, GovernanceHash, State};
use serde::Serialize;
use tokio::sync::{Notify, OwnedSemaphorePermit, Semaphore};
use tokio::task::JoinSet;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::policy::{RecoveryPolicy, RecoveryStrategy};
use super::runner::{CheckIsolation, CheckRunner};
use crate::error::invalid;
use crate::health::{Alert, AlertAction, AlertClass, AlertSink, BoxFuture, HealthStatus};
use crate::source::BreakerSource;
use crate::task::CatchUnwind;

/// Longest cool-down after repeated exhaustion.
const MAX_COOLDOWN: Duration = Duration::from_secs(3600);

/// How long a service whose recovery has given up `exhaustions` times in a row waits before
/// its next round: the policy's longest delay, doubling with each exhaustion, at most an hour.
pub(crate) fn cooldown(policy: &RecoveryPolicy, exhaustions: u32) -> Duration {
    let doublings = exhaustions.saturating_sub(1).min(20);
    policy
        .max_delay
        .max(Duration::from_millis(1))
        .saturating_mul(1 << doublings)
        .min(MAX_COOLDOWN)
}

/// Where a service's recovery stands (the original's seven states).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum RecoveryState {
    /// Nothing to do.
    Idle,
    /// An attempt is due at a set time.
    Scheduled,
    /// An attempt (its health check) is running.
    InProgress,
    /// The last attempt passed; the breaker was closed.
    Succeeded,
    /// Every attempt failed: the recovery gave up, alerted, and cools down before another
    /// round (see [`RecoveryOrchestrator`]).
    Failed,
    /// An operator cancelled it.
    Cancelled,
    /// A MANUAL recovery waits for an operator's approval.
    AwaitingManual,
}

impl RecoveryState {
    /// Whether recovery is under way (scheduled, running or waiting for approval).
    pub fn is_active(self) -> bool {
        matches!(
            self,
            RecoveryState::Scheduled | RecoveryState::InProgress | RecoveryState::AwaitingManual
        )
    }
}

/// A service's health check: `Ok` when the dependency works again. Closures
/// `Fn(String) -> impl Future<Output = Result<(), String>>` implement it.
pub trait HealthCheck: Send + Sync + 'static {
    /// Checks `service`.
    fn check(&self, service: String) -> BoxFuture<'static, Result<(), String>>;
}

impl<F, Fut> HealthCheck for F
where
    F: Fn(String) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<(), String>> + Send + 'static,
{
    fn check(&self, service: String) -> BoxFuture<'static, Result<(), String>> {
        Box::pin(self(service))
    }
}

/// The result of one attempt.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[non_exhaustive]
pub struct RecoveryResult {
    /// The service.
    pub service: String,
    /// Attempt number (1-based; 0 for a cancellation before any attempt).
    pub attempt: u32,
    /// Whether the health check passed.
    pub success: bool,
    /// The recovery's state after this attempt.
    pub state: RecoveryState,
    /// What went wrong, if anything.
    pub error: Option<String>,
    /// How long the attempt took.
    #[serde(serialize_with = "millis")]
    pub duration: Duration,
    /// When it ended (wall clock).
    #[serde(serialize_with = "wall_time")]
    pub at: SystemTime,
    /// Governance tag.
    pub governance: GovernanceHash,
}

fn millis<S: serde::Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_u64(d.as_millis() as u64)
}

fn wall_time<S: serde::Serializer>(at: &SystemTime, s: S) -> Result<S::Ok, S::Error> {
    s.collect_str(&humantime::format_rfc3339_millis(*at))
}

/// Orchestrator settings.
#[derive(Clone, Debug, PartialEq)]
#[non_exhaustive]
pub struct RecoveryConfig {
    /// Policy for services without one of their own.
    pub default_policy: RecoveryPolicy,
    /// Priority for services scheduled without one (lower runs first; default 5).
    pub default_priority: u8,
    /// Attempts running at once (default 4).
    pub max_concurrent: usize,
    /// Results kept (default 1000).
    pub history: usize,
    /// Schedule recovery when a breaker with a registered health check opens (default on).
    pub auto_schedule: bool,
    /// Where health checks run (default [`CheckIsolation::Runtime`], a runtime of their own).
    pub check_isolation: CheckIsolation,
    /// Governance tag stamped on results.
    pub governance: GovernanceHash,
}

impl Default for RecoveryConfig {
    fn default() -> Self {
        RecoveryConfig {
            default_policy: RecoveryPolicy::default(),
            default_priority: 5,
            max_concurrent: 4,
            history: 1000,
            auto_schedule: true,
            check_isolation: CheckIsolation::Runtime,
            governance: GovernanceHash::DEFAULT,
        }
    }
}

impl RecoveryConfig {
    /// Checks every field.
    ///
    /// # Errors
    ///
    /// [`ConfigError::Invalid`] naming the field and its value.
    pub fn validate(&self) -> Result<(), ConfigError> {
        self.default_policy.validate()?;
        if self.max_concurrent == 0 || self.max_concurrent > 1024 {
            return Err(invalid(
                "max_concurrent",
                self.max_concurrent,
                "1 to 1024 attempts",
            ));
        }
        if self.history == 0 || self.history > 1_000_000 {
            return Err(invalid("history", self.history, "1 to 1000000 results"));
        }
        Ok(())
    }
}

crate::setters::setters!(RecoveryConfig {
    /// The policy for services without one of their own.
    default_policy: RecoveryPolicy;
    /// The priority for services scheduled without one.
    default_priority: u8;
    /// Attempts running at once.
    max_concurrent: usize;
    /// Results kept.
    history: usize;
    /// Whether opening breakers with a health check get a recovery scheduled.
    auto_schedule: bool;
    /// Where health checks run.
    check_isolation: CheckIsolation;
    /// Governance tag.
    governance: GovernanceHash;
});

/// Why a recovery request was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum RecoveryError {
    /// No breaker of that name.
    #[error("no breaker named {service:?} to recover")]
    UnknownService {
        /// The name asked for.
        service: String,
    },
    /// Approval asked of a recovery that is not waiting for one.
    #[error("recovery of {service:?} is {state:?}, not awaiting approval")]
    NotAwaitingApproval {
        /// The service.
        service: String,
        /// Its current state.
        state: RecoveryState,
    },
    /// An attempt for this service is running already.
    #[error("a recovery attempt for {service:?} is in progress")]
    InProgress {
        /// The service.
        service: String,
    },
    /// A bad policy.
    #[error(transparent)]
    Config(#[from] ConfigError),
}

impl resilience_core::Governed for RecoveryError {
    fn governance(&self) -> GovernanceHash {
        match self {
            RecoveryError::Config(err) => resilience_core::Governed::governance(err),
            _ => GovernanceHash::for_process(),
        }
    }
}

/// One service's recovery, as the status report shows it.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[non_exhaustive]
pub struct ServiceRecovery {
    /// The service.
    pub service: String,
    /// Where it stands.
    pub state: RecoveryState,
    /// Attempts made in this recovery.
    pub attempts: u32,
    /// Priority (lower runs first).
    pub priority: u8,
    /// The policy in force.
    pub policy: RecoveryPolicy,
    /// Its strategy (the seed's `strategy`).
    pub strategy: RecoveryStrategy,
    /// Attempts allowed before giving up (the seed's `max_attempts`).
    pub max_attempts: u32,
    /// When the recovery was scheduled.
    #[serde(serialize_with = "optional_wall_time")]
    pub scheduled_at: Option<SystemTime>,
    /// When its latest attempt started.
    #[serde(serialize_with = "optional_wall_time")]
    pub last_attempt_at: Option<SystemTime>,
    /// When the next attempt is due (or, after giving up, when the cool-down ends).
    #[serde(serialize_with = "optional_wall_time")]
    pub next_attempt_at: Option<SystemTime>,
    /// Time until the next attempt, when one is scheduled (or, after giving up, until the
    /// cool-down ends and a new round starts).
    #[serde(serialize_with = "optional_millis")]
    pub next_attempt_in: Option<Duration>,
    /// Rounds in a row that ran out of attempts (each lengthens the next cool-down).
    pub exhaustions: u32,
    /// The last failure.
    pub last_error: Option<String>,
}

fn optional_wall_time<S: serde::Serializer>(
    at: &Option<SystemTime>,
    s: S,
) -> Result<S::Ok, S::Error> {
    match at {
        Some(at) => s.collect_str(&humantime::format_rfc3339_millis(*at)),
        None => s.serialize_none(),
    }
}

fn optional_millis<S: serde::Serializer>(d: &Option<Duration>, s: S) -> Result<S::Ok, S::Error> {
    match d {
        Some(d) => s.serialize_some(&(d.as_millis() as u64)),
        None => s.serialize_none(),
    }
}

/// The orchestrator's status report.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[non_exhaustive]
pub struct RecoveryStatus {
    /// Every service with a recovery record, sorted by name.
    pub services: Vec<ServiceRecovery>,
    /// Attempts running now (the seed's `active_recoveries`).
    pub active: usize,
    /// Recoveries waiting: scheduled, or awaiting an operator (the seed's `queued`).
    pub queued: usize,
    /// The last ten results, newest last (the seed's `recent_results`).
    pub recent: Vec<RecoveryResult>,
    /// Counters.
    pub stats: RecoveryStats,
    /// Governance tag.
    pub governance: GovernanceHash,
}

/// Counters for metrics.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
#[non_exhaustive]
pub struct RecoveryStats {
    /// Attempts started.
    pub attempts: u64,
    /// Attempts whose health check passed.
    pub succeeded: u64,
    /// Attempts that failed (including timeouts and panics).
    pub failed: u64,
    /// Recoveries that gave up after their last attempt.
    pub exhausted: u64,
    /// Recoveries cancelled.
    pub cancelled: u64,
}

struct Task {
    policy: RecoveryPolicy,
    priority: u8,
    state: RecoveryState,
    attempts: u32,
    due: Option<Instant>,
    /// Bumped whenever the task is rescheduled or cancelled; queued entries with an older
    /// generation are ignored.
    generation: u64,
    running: Option<CancellationToken>,
    last_error: Option<String>,
    /// Rounds in a row that ran out of attempts.
    exhaustions: u32,
    /// After giving up: no automatic round before this.
    cooldown_until: Option<Instant>,
    /// When this recovery was scheduled (wall clock).
    scheduled_at: Option<SystemTime>,
    /// When its latest attempt started (wall clock).
    last_attempt_at: Option<SystemTime>,
}

/// What an attempt needs once its task is marked in progress.
struct Begun {
    attempt: u32,
    timeout: Duration,
    check: Option<Arc<dyn HealthCheck>>,
    token: CancellationToken,
}

/// A future attempt, ordered by due time, then priority, then scheduling order.
#[derive(PartialEq, Eq, PartialOrd, Ord)]
struct Timer {
    due: Instant,
    priority: u8,
    sequence: u64,
    service: String,
    generation: u64,
}

/// A due attempt waiting for a free slot, ordered by priority, then scheduling order.
#[derive(PartialEq, Eq, PartialOrd, Ord)]
struct Ready {
    priority: u8,
    sequence: u64,
    service: String,
    generation: u64,
}

#[derive(Default)]
struct Queues {
    tasks: HashMap<String, Task>,
    timers: BinaryHeap<Reverse<Timer>>,
    ready: BinaryHeap<Reverse<Ready>>,
    history: VecDeque<RecoveryResult>,
    policies: HashMap<String, RecoveryPolicy>,
    checks: HashMap<String, Arc<dyn HealthCheck>>,
    sequence: u64,
}

struct Inner {
    source: Arc<dyn BreakerSource>,
    config: RecoveryConfig,
    queues: Mutex<Queues>,
    wake: Notify,
    slots: Arc<Semaphore>,
    attempts: Mutex<JoinSet<()>>,
    jitter: AtomicU64,
    stats: [AtomicU64; 5],
    runner: CheckRunner,
    alerts: Mutex<Option<Arc<dyn AlertSink>>>,
}

const ATTEMPTS: usize = 0;
const SUCCEEDED: usize = 1;
const FAILED: usize = 2;
const EXHAUSTED: usize = 3;
const CANCELLED: usize = 4;

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    // Every critical section leaves the queues consistent before anything can panic.
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Recovers open breakers: a priority queue of attempts, each putting the breaker to HALF_OPEN
/// and running the service's health check under a timeout; success closes the breaker, failure
/// reopens it and schedules the next attempt by the service's strategy. Cheap to clone.
///
/// **Bounded.** After `max_retries` failed attempts a recovery gives up (FAILED), raises an
/// alert (class `recovery_exhausted`, on the sink given to
/// [`set_alert_sink`](Self::set_alert_sink); resolved when the service later recovers) and is
/// not scheduled again, whatever the breaker's own OPEN/HALF_OPEN cycle does, until a
/// cool-down passes: the policy's `max_delay`, doubling with each round that gives up in a row,
/// at most an hour. Then a new round starts if the breaker is still not CLOSED. An operator's
/// [`reset`](Self::reset) or explicit [`schedule`](Self::schedule) starts one at once.
///
/// **Isolated.** Health checks run on a runtime of their own, with their creation and polling
/// under `catch_unwind` and the timeout kept on the control plane's runtime: a check that
/// blocks its thread or panics (even before returning its future) fails its attempt, and
/// nothing else.
///
/// # Examples
///
/// ```
/// use std::sync::Arc;
/// use resilience_control::recovery::{RecoveryConfig, RecoveryOrchestrator, RecoveryState};
/// use resilience_core::BreakerRegistry;
///
/// # #[tokio::main(flavor = "current_thread", start_paused = true)]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let registry = Arc::new(BreakerRegistry::new());
/// registry.breaker("db")?.force_open();
/// let recovery = RecoveryOrchestrator::new(registry.clone(), RecoveryConfig::default())?;
/// recovery.register_health_check("db", |_service: String| async { Ok(()) });
/// recovery.schedule("db")?;
/// assert_eq!(recovery.state("db"), RecoveryState::Scheduled);
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct RecoveryOrchestrator {
    inner: Arc<Inner>,
}

impl RecoveryOrchestrator {
    /// An orchestrator for the breakers of `source`.
    ///
    /// # Errors
    ///
    /// [`ConfigError`] if `config` is invalid.
    pub fn new(
        source: Arc<dyn BreakerSource>,
        config: RecoveryConfig,
    ) -> Result<Self, ConfigError> {
        config.validate()?;
        Ok(RecoveryOrchestrator {
            inner: Arc::new(Inner {
                source,
                queues: Mutex::new(Queues::default()),
                wake: Notify::new(),
                slots: Arc::new(Semaphore::new(config.max_concurrent)),
                attempts: Mutex::new(JoinSet::new()),
                jitter: AtomicU64::new(0x9e37_79b9_7f4a_7c15),
                stats: Default::default(),
                runner: CheckRunner::default(),
                alerts: Mutex::new(None),
                config,
            }),
        })
    }

    /// The settings.
    pub fn config(&self) -> &RecoveryConfig {
        &self.inner.config
    }

    /// Sets `service`'s policy (used by its next recovery).
    ///
    /// # Errors
    ///
    /// [`RecoveryError::Config`] if the policy is invalid.
    pub fn set_policy(&self, service: &str, policy: RecoveryPolicy) -> Result<(), RecoveryError> {
        policy.validate()?;
        lock(&self.inner.queues)
            .policies
            .insert(service.to_owned(), policy);
        Ok(())
    }

    /// Registers `service`'s health check (and so makes it eligible for automatic recovery).
    pub fn register_health_check(&self, service: &str, check: impl HealthCheck) {
        lock(&self.inner.queues)
            .checks
            .insert(service.to_owned(), Arc::new(check));
    }

    /// Sends an alert to `sink` when a recovery gives up, and its resolve when the service
    /// recovers later. (The control plane passes its health alert sink here.)
    pub fn set_alert_sink(&self, sink: Arc<dyn AlertSink>) {
        *lock(&self.inner.alerts) = Some(sink);
    }

    /// An operator's reset of `service`'s recovery: forgets past exhaustions and their
    /// cool-down, and starts a new round now unless the breaker is CLOSED. Returns the state.
    ///
    /// # Errors
    ///
    /// [`RecoveryError::UnknownService`] if there is no such breaker.
    pub fn reset(&self, service: &str) -> Result<RecoveryState, RecoveryError> {
        let Some(breaker) = self.inner.source.breaker(service) else {
            return Err(RecoveryError::UnknownService {
                service: service.to_owned(),
            });
        };
        {
            let mut q = lock(&self.inner.queues);
            if let Some(task) = q.tasks.get_mut(service) {
                if let Some(token) = &task.running {
                    token.cancel();
                }
                task.exhaustions = 0;
                task.cooldown_until = None;
                task.generation += 1;
                task.state = RecoveryState::Idle;
            }
        }
        if breaker.current_state() == State::Closed {
            return Ok(RecoveryState::Idle);
        }
        self.schedule(service)
    }

    /// Schedules recovery of `service` by its policy at the default priority.
    ///
    /// # Errors
    ///
    /// As [`schedule_with`](Self::schedule_with).
    pub fn schedule(&self, service: &str) -> Result<RecoveryState, RecoveryError> {
        self.schedule_with(service, self.inner.config.default_priority, None)
    }

    /// Schedules recovery of `service` at `priority` (lower runs first), with `policy` or the
    /// service's own. A recovery already under way is left as it is. Returns the state.
    ///
    /// # Errors
    ///
    /// [`RecoveryError::UnknownService`] if there is no such breaker; [`RecoveryError::Config`]
    /// for a bad policy.
    pub fn schedule_with(
        &self,
        service: &str,
        priority: u8,
        policy: Option<RecoveryPolicy>,
    ) -> Result<RecoveryState, RecoveryError> {
        if let Some(policy) = &policy {
            policy.validate()?;
        }
        if self.inner.source.breaker(service).is_none() {
            return Err(RecoveryError::UnknownService {
                service: service.to_owned(),
            });
        }
        let mut q = lock(&self.inner.queues);
        if let Some(task) = q.tasks.get(service)
            && task.state.is_active()
        {
            return Ok(task.state);
        }
        let mut task = self.new_task(&q, service, priority, policy);
        let policy = task.policy;
        if policy.strategy != RecoveryStrategy::Manual {
            let delay = policy.jittered(1, self.jitter_unit());
            Self::arm(&mut q, service, &mut task, Instant::now() + delay);
        }
        let state = task.state;
        q.tasks.insert(service.to_owned(), task);
        drop(q);
        tracing::info!(service, ?state, "recovery scheduled");
        self.inner.wake.notify_one();
        Ok(state)
    }

    /// A fresh task for `service` (carrying over its generation and exhaustions), with `policy`
    /// or the service's own.
    fn new_task(
        &self,
        q: &Queues,
        service: &str,
        priority: u8,
        policy: Option<RecoveryPolicy>,
    ) -> Task {
        let previous = q.tasks.get(service);
        Task {
            policy: policy
                .or_else(|| q.policies.get(service).copied())
                .unwrap_or(self.inner.config.default_policy),
            priority,
            state: RecoveryState::AwaitingManual,
            attempts: 0,
            due: None,
            generation: previous.map_or(0, |t| t.generation + 1),
            running: None,
            last_error: None,
            exhaustions: previous.map_or(0, |t| t.exhaustions),
            cooldown_until: None,
            scheduled_at: Some(SystemTime::now()),
            last_attempt_at: previous.and_then(|t| t.last_attempt_at),
        }
    }

    /// The policy `service`'s recovery uses: its running recovery's, else the one set for it,
    /// else the default.
    pub fn policy(&self, service: &str) -> RecoveryPolicy {
        let q = lock(&self.inner.queues);
        q.tasks
            .get(service)
            .map(|t| t.policy)
            .or_else(|| q.policies.get(service).copied())
            .unwrap_or(self.inner.config.default_policy)
    }

    /// Runs one recovery attempt for `service` now, whatever its schedule (the seed's
    /// `execute_recovery`): the breaker goes to HALF_OPEN, the health check runs under the
    /// policy's timeout; success closes the breaker, failure reopens it and schedules the next
    /// attempt by the policy (or gives up, after the last). Waits for a free attempt slot.
    ///
    /// # Errors
    ///
    /// [`RecoveryError::UnknownService`] if there is no such breaker,
    /// [`RecoveryError::InProgress`] if an attempt for it is running.
    pub async fn execute(&self, service: &str) -> Result<RecoveryResult, RecoveryError> {
        let unknown = || RecoveryError::UnknownService {
            service: service.to_owned(),
        };
        if self.inner.source.breaker(service).is_none() {
            return Err(unknown());
        }
        let _slot = Arc::clone(&self.inner.slots)
            .acquire_owned()
            .await
            .map_err(|_| unknown())?;
        let begun = {
            let mut q = lock(&self.inner.queues);
            if q.tasks
                .get(service)
                .is_some_and(|t| t.state == RecoveryState::InProgress)
            {
                return Err(RecoveryError::InProgress {
                    service: service.to_owned(),
                });
            }
            if let Some(task) = q.tasks.get_mut(service) {
                // Whatever was queued for it is superseded by this attempt.
                task.generation += 1;
            } else {
                let task = self.new_task(&q, service, self.inner.config.default_priority, None);
                q.tasks.insert(service.to_owned(), task);
            }
            self.begin(&mut q, service).ok_or_else(unknown)?
        };
        let started = Instant::now();
        let outcome = self
            .attempt(service, begun.check, begun.timeout, begun.token)
            .await;
        self.finish(service, begun.attempt, outcome, started.elapsed())
            .ok_or_else(unknown)
    }

    fn arm(q: &mut Queues, service: &str, task: &mut Task, due: Instant) {
        task.state = RecoveryState::Scheduled;
        task.due = Some(due);
        Self::arm_at(q, service, task, due);
    }

    /// Approves a MANUAL recovery waiting in AWAITING_MANUAL: its attempt runs now.
    ///
    /// # Errors
    ///
    /// [`RecoveryError::NotAwaitingApproval`] otherwise.
    pub fn approve(&self, service: &str) -> Result<(), RecoveryError> {
        let mut q = lock(&self.inner.queues);
        let mut task = match q.tasks.remove(service) {
            Some(task) if task.state == RecoveryState::AwaitingManual => task,
            other => {
                let state = other.as_ref().map_or(RecoveryState::Idle, |t| t.state);
                if let Some(task) = other {
                    q.tasks.insert(service.to_owned(), task);
                }
                return Err(RecoveryError::NotAwaitingApproval {
                    service: service.to_owned(),
                    state,
                });
            }
        };
        Self::arm(&mut q, service, &mut task, Instant::now());
        q.tasks.insert(service.to_owned(), task);
        drop(q);
        self.inner.wake.notify_one();
        Ok(())
    }

    /// Cancels `service`'s recovery if one is under way (a running health check is stopped);
    /// returns whether there was one.
    pub fn cancel(&self, service: &str) -> bool {
        let mut q = lock(&self.inner.queues);
        let Some(task) = q.tasks.get_mut(service) else {
            return false;
        };
        match task.state {
            RecoveryState::InProgress => {
                // The attempt sees the token, records the cancellation and frees its slot.
                if let Some(token) = &task.running {
                    token.cancel();
                }
                true
            }
            RecoveryState::Scheduled | RecoveryState::AwaitingManual => {
                task.state = RecoveryState::Cancelled;
                task.generation += 1;
                task.due = None;
                let attempt = task.attempts;
                self.record(
                    &mut q,
                    service,
                    attempt,
                    false,
                    RecoveryState::Cancelled,
                    Some("cancelled".into()),
                    Duration::ZERO,
                );
                self.inner.stats[CANCELLED].fetch_add(1, Ordering::Relaxed);
                true
            }
            _ => false,
        }
    }

    /// Where `service`'s recovery stands (IDLE if it never had one).
    pub fn state(&self, service: &str) -> RecoveryState {
        lock(&self.inner.queues)
            .tasks
            .get(service)
            .map_or(RecoveryState::Idle, |t| t.state)
    }

    /// Every service's recovery, and the counters.
    pub fn status(&self) -> RecoveryStatus {
        let q = lock(&self.inner.queues);
        let now = Instant::now();
        let wall = SystemTime::now();
        let due_at = |t: &Task| match t.state {
            RecoveryState::Scheduled => t.due,
            RecoveryState::Failed => t.cooldown_until,
            _ => None,
        };
        let mut services: Vec<ServiceRecovery> = q
            .tasks
            .iter()
            .map(|(service, t)| ServiceRecovery {
                service: service.clone(),
                state: t.state,
                attempts: t.attempts,
                priority: t.priority,
                policy: t.policy,
                strategy: t.policy.strategy,
                max_attempts: t.policy.max_retries,
                scheduled_at: t.scheduled_at,
                last_attempt_at: t.last_attempt_at,
                next_attempt_at: due_at(t).map(|d| wall + d.saturating_duration_since(now)),
                next_attempt_in: due_at(t).map(|d| d.saturating_duration_since(now)),
                exhaustions: t.exhaustions,
                last_error: t.last_error.clone(),
            })
            .collect();
        services.sort_by(|a, b| a.service.cmp(&b.service));
        let count = |states: &[RecoveryState]| {
            q.tasks
                .values()
                .filter(|t| states.contains(&t.state))
                .count()
        };
        RecoveryStatus {
            active: count(&[RecoveryState::InProgress]),
            queued: count(&[RecoveryState::Scheduled, RecoveryState::AwaitingManual]),
            recent: q.history.iter().rev().take(10).rev().cloned().collect(),
            services,
            stats: self.stats(),
            governance: self.inner.config.governance,
        }
    }

    /// Counters for metrics.
    pub fn stats(&self) -> RecoveryStats {
        let s = &self.inner.stats;
        RecoveryStats {
            attempts: s[ATTEMPTS].load(Ordering::Relaxed),
            succeeded: s[SUCCEEDED].load(Ordering::Relaxed),
            failed: s[FAILED].load(Ordering::Relaxed),
            exhausted: s[EXHAUSTED].load(Ordering::Relaxed),
            cancelled: s[CANCELLED].load(Ordering::Relaxed),
        }
    }

    /// Results, oldest first (bounded by the history size).
    pub fn history(&self) -> Vec<RecoveryResult> {
        lock(&self.inner.queues).history.iter().cloned().collect()
    }

    /// Reacts to a breaker transition: a breaker that opened, with a health check registered,
    /// gets a recovery scheduled (unless one is under way). The control plane calls this for
    /// every event it drains.
    pub fn on_transition(&self, event: &BreakerEvent) {
        if event.to != State::Open || !self.inner.config.auto_schedule {
            return;
        }
        let Some(name) = self.inner.source.name_of(event.breaker) else {
            return;
        };
        {
            let q = lock(&self.inner.queues);
            if !q.checks.contains_key(&*name) {
                return;
            }
            // A recovery that gave up waits out its cool-down, however often the breaker's
            // own cycle reopens it.
            if let Some(task) = q.tasks.get(&*name)
                && task.state == RecoveryState::Failed
                && task
                    .cooldown_until
                    .is_some_and(|until| until > Instant::now())
            {
                return;
            }
        }
        if let Err(err) = self.schedule(&name) {
            tracing::warn!(service = %name, %err, "could not schedule recovery");
        }
    }

    fn jitter_unit(&self) -> f64 {
        let mut z = self
            .inner
            .jitter
            .fetch_add(0x9e37_79b9_7f4a_7c15, Ordering::Relaxed);
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        ((z ^ (z >> 31)) >> 11) as f64 / (1u64 << 53) as f64
    }

    #[allow(clippy::too_many_arguments)]
    fn record(
        &self,
        q: &mut Queues,
        service: &str,
        attempt: u32,
        success: bool,
        state: RecoveryState,
        error: Option<String>,
        duration: Duration,
    ) -> RecoveryResult {
        if q.history.len() == self.inner.config.history {
            q.history.pop_front();
        }
        let result = RecoveryResult {
            service: service.to_owned(),
            attempt,
            success,
            state,
            error,
            duration,
            at: SystemTime::now(),
            governance: self.inner.config.governance,
        };
        q.history.push_back(result.clone());
        result
    }

    /// Runs attempts as they fall due, until `cancel` fires.
    pub async fn run(&self, cancel: CancellationToken) {
        loop {
            let next = self.start_due();
            let sleep = async {
                match next {
                    Some(due) => tokio::time::sleep_until(due).await,
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                () = cancel.cancelled() => break,
                () = self.inner.wake.notified() => {}
                () = sleep => {}
            }
        }
    }

    /// Moves due timers to the ready queue and starts ready attempts in priority order while
    /// slots are free; returns when the next timer falls due.
    fn start_due(&self) -> Option<Instant> {
        let mut q = lock(&self.inner.queues);
        let now = Instant::now();
        while q.timers.peek().is_some_and(|Reverse(t)| t.due <= now) {
            if let Some(Reverse(t)) = q.timers.pop() {
                q.ready.push(Reverse(Ready {
                    priority: t.priority,
                    sequence: t.sequence,
                    service: t.service,
                    generation: t.generation,
                }));
            }
        }
        while let Some(Reverse(next)) = q.ready.peek() {
            let current = q.tasks.get(&next.service).is_some_and(|t| {
                t.generation == next.generation
                    && (t.state == RecoveryState::Scheduled
                        || (t.state == RecoveryState::Failed
                            && t.cooldown_until.is_some_and(|until| until <= now)))
            });
            if !current {
                q.ready.pop();
                continue;
            }
            let service = next.service.clone();
            if self.cooled_down(&mut q, &service) {
                q.ready.pop();
                continue;
            }
            let Ok(slot) = Arc::clone(&self.inner.slots).try_acquire_owned() else {
                break;
            };
            if let Some(Reverse(next)) = q.ready.pop() {
                self.start_attempt(&mut q, next.service, slot);
            }
        }
        q.timers.peek().map(|Reverse(t)| t.due)
    }

    /// Marks `service`'s task in progress, one attempt more, and hands back what the attempt
    /// needs.
    fn begin(&self, q: &mut Queues, service: &str) -> Option<Begun> {
        let check = q.checks.get(service).cloned();
        let task = q.tasks.get_mut(service)?;
        task.state = RecoveryState::InProgress;
        task.attempts += 1;
        task.due = None;
        task.last_attempt_at = Some(SystemTime::now());
        let token = CancellationToken::new();
        task.running = Some(token.clone());
        self.inner.stats[ATTEMPTS].fetch_add(1, Ordering::Relaxed);
        Some(Begun {
            attempt: task.attempts,
            timeout: task.policy.health_check_timeout,
            check,
            token,
        })
    }

    fn start_attempt(&self, q: &mut Queues, service: String, slot: OwnedSemaphorePermit) {
        let Some(begun) = self.begin(q, &service) else {
            return;
        };
        let this = self.clone();
        let mut attempts = lock(&self.inner.attempts);
        while attempts.try_join_next().is_some() {}
        attempts.spawn(async move {
            let _slot = slot;
            let started = Instant::now();
            let outcome = this
                .attempt(&service, begun.check, begun.timeout, begun.token)
                .await;
            this.finish(&service, begun.attempt, outcome, started.elapsed());
        });
    }

    /// Puts the breaker to HALF_OPEN and runs the health check under `timeout`, in a task of its
    /// own so a check that blocks or panics fails alone.
    async fn attempt(
        &self,
        service: &str,
        check: Option<Arc<dyn HealthCheck>>,
        timeout: Duration,
        token: CancellationToken,
    ) -> Attempt {
        let Some(breaker) = self.inner.source.breaker(service) else {
            return Attempt::Failed(format!("no breaker named {service:?}"));
        };
        breaker.half_open();
        let Some(check) = check else {
            // Without a health check the breaker's own probes decide from here.
            return Attempt::Passed;
        };
        let outcome = tokio::select! {
            () = token.cancelled() => return Attempt::Cancelled,
            result = self.inner.runner.run(
                self.inner.config.check_isolation,
                check,
                service.to_owned(),
                timeout,
            ) => result,
        };
        match outcome {
            Ok(()) => {
                breaker.close();
                Attempt::Passed
            }
            Err(error) => Attempt::Failed(error),
        }
    }

    fn finish(
        &self,
        service: &str,
        attempt: u32,
        outcome: Attempt,
        duration: Duration,
    ) -> Option<RecoveryResult> {
        let mut q = lock(&self.inner.queues);
        let mut task = q.tasks.remove(service)?;
        task.running = None;
        let (success, error) = match outcome {
            Attempt::Passed => {
                task.state = RecoveryState::Succeeded;
                self.inner.stats[SUCCEEDED].fetch_add(1, Ordering::Relaxed);
                if std::mem::take(&mut task.exhaustions) > 0 {
                    self.alert(service, AlertAction::Resolve, "recovered".to_owned());
                }
                (true, None)
            }
            Attempt::Cancelled => {
                task.state = RecoveryState::Cancelled;
                self.inner.stats[CANCELLED].fetch_add(1, Ordering::Relaxed);
                (false, Some("cancelled".to_owned()))
            }
            Attempt::Failed(error) => {
                self.inner.stats[FAILED].fetch_add(1, Ordering::Relaxed);
                if let Some(breaker) = self.inner.source.breaker(service) {
                    breaker.reopen();
                }
                if task.attempts >= task.policy.max_retries {
                    task.state = RecoveryState::Failed;
                    task.exhaustions += 1;
                    let pause = cooldown(&task.policy, task.exhaustions);
                    let until = Instant::now() + pause;
                    task.cooldown_until = Some(until);
                    Self::arm_at(&mut q, service, &task, until);
                    self.inner.stats[EXHAUSTED].fetch_add(1, Ordering::Relaxed);
                    tracing::warn!(service, attempts = task.attempts, exhaustions = task.exhaustions, cooldown = ?pause, %error, "recovery gave up; cooling down");
                    self.alert(
                        service,
                        AlertAction::Trigger,
                        format!(
                            "recovery of {service} gave up after {} attempts ({error}); next round in {}",
                            task.attempts,
                            humantime::format_duration(pause)
                        ),
                    );
                } else if task.policy.strategy == RecoveryStrategy::Manual {
                    task.state = RecoveryState::AwaitingManual;
                } else {
                    let delay = task.policy.jittered(task.attempts + 1, self.jitter_unit());
                    Self::arm(&mut q, service, &mut task, Instant::now() + delay);
                }
                task.last_error = Some(error.clone());
                (false, Some(error))
            }
        };
        let state = task.state;
        q.tasks.insert(service.to_owned(), task);
        let result = self.record(&mut q, service, attempt, success, state, error, duration);
        drop(q);
        self.inner.wake.notify_one();
        Some(result)
    }

    /// Queues a timer for `task` at `due` without changing its state (the cool-down's end).
    fn arm_at(q: &mut Queues, service: &str, task: &Task, due: Instant) {
        q.sequence += 1;
        q.timers.push(Reverse(Timer {
            due,
            priority: task.priority,
            sequence: q.sequence,
            service: service.to_owned(),
            generation: task.generation,
        }));
    }

    /// At the end of a cool-down: a new round (attempts from zero) when the breaker is still
    /// not CLOSED, returning false so the attempt starts; true when it recovered meanwhile.
    fn cooled_down(&self, q: &mut Queues, service: &str) -> bool {
        let Some(task) = q.tasks.get_mut(service) else {
            return true;
        };
        if task.state != RecoveryState::Failed {
            return false;
        }
        task.cooldown_until = None;
        task.attempts = 0;
        let closed = self
            .inner
            .source
            .breaker(service)
            .is_none_or(|b| b.current_state() == State::Closed);
        if !closed {
            task.state = RecoveryState::Scheduled;
            tracing::info!(service, "cool-down over; a new recovery round");
            return false;
        }
        task.state = RecoveryState::Succeeded;
        task.exhaustions = 0;
        self.record(
            q,
            service,
            0,
            true,
            RecoveryState::Succeeded,
            None,
            Duration::ZERO,
        );
        self.alert(
            service,
            AlertAction::Resolve,
            "recovered on its own".to_owned(),
        );
        true
    }

    /// Sends a recovery alert from a task of its own (never delaying the orchestrator).
    fn alert(&self, service: &str, action: AlertAction, summary: String) {
        let Some(sink) = lock(&self.inner.alerts).clone() else {
            return;
        };
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            return;
        };
        let alert = Alert {
            action,
            dedup_key: format!("resilience-recovery-{service}"),
            summary,
            class: AlertClass::RecoveryExhausted,
            status: HealthStatus::Unknown,
            score: 0.0,
            open_breakers: vec![service.to_owned()],
            at: SystemTime::now(),
            governance: self.inner.config.governance,
        };
        runtime.spawn(CatchUnwind::new(async move {
            if let Err(err) = sink.send(&alert).await {
                tracing::warn!(%err, "recovery alert not delivered");
            }
        }));
    }

    /// Cancels running attempts and waits up to `grace` for them to record their results.
    pub async fn finish_attempts(&self, grace: Duration) {
        for task in lock(&self.inner.queues).tasks.values() {
            if let Some(token) = &task.running {
                token.cancel();
            }
        }
        let mut attempts = std::mem::take(&mut *lock(&self.inner.attempts));
        let drained = tokio::time::timeout(grace, async {
            while attempts.join_next().await.is_some() {}
        })
        .await;
        if drained.is_err() {
            attempts.shutdown().await;
        }
    }
}

enum Attempt {
    Passed,
    Failed(String),
    Cancelled,
}

impl std::fmt::Debug for RecoveryOrchestrator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RecoveryOrchestrator")
            .field("stats", &self.stats())
            .finish_non_exhaustive()
    }
}
