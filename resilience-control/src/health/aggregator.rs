//! [`HealthAggregator`]: samples the breakers on an interval and publishes the result.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, SystemTime};

use resilience_core::{ConfigError, GovernanceHash, State};
use serde::Serialize;
use tokio::sync::{broadcast, mpsc, watch};
use tokio::task::JoinSet;
use tokio::time::{Instant, MissedTickBehavior};
use tokio_util::sync::CancellationToken;

use super::alert::{Alert, AlertAction, AlertClass, AlertSink, BoxFuture};
use super::score::{HealthStatus, HealthThresholds, HealthWeights, StateCounts};
use crate::error::invalid;
use crate::source::BreakerSource;
use crate::task::CatchUnwind;

/// Health aggregator settings.
#[derive(Clone, Debug, PartialEq)]
#[non_exhaustive]
pub struct HealthConfig {
    /// Whether the aggregator samples at all (default on). Off, the loop does not run, the
    /// report stays UNKNOWN, no alert is raised, and readiness does not wait for a sample.
    pub enabled: bool,
    /// Sampling interval (default 1 s, from `HEALTH_CHECK_INTERVAL_SECONDS`).
    pub interval: Duration,
    /// Snapshots kept (default 300: five minutes at one a second).
    pub history: usize,
    /// The window [`recent_history`](HealthAggregator::recent_history) returns (default five
    /// minutes, the original's `history_window_minutes`).
    pub history_window: Duration,
    /// What each breaker state is worth.
    pub weights: HealthWeights,
    /// Where HEALTHY and DEGRADED begin.
    pub thresholds: HealthThresholds,
    /// Dedup key of the CRITICAL alert, so a trigger and its resolve are one incident.
    pub alert_dedup_key: String,
    /// Before each sample, make the time-based transitions calls would make (an OPEN breaker
    /// past its OPEN time goes to HALF_OPEN, an expired hold is lifted), so breakers without
    /// traffic report truthfully (default on). Off, an idle breaker stays OPEN, and health
    /// CRITICAL, until a call comes; and when readiness failing is what keeps calls away, none
    /// ever comes. See [`CircuitBreaker::tick`](resilience_core::CircuitBreaker::tick).
    pub automatic_half_open: bool,
    /// Governance tag stamped on reports and alerts.
    pub governance: GovernanceHash,
}

impl Default for HealthConfig {
    fn default() -> Self {
        HealthConfig {
            enabled: true,
            interval: Duration::from_secs(1),
            history: 300,
            history_window: Duration::from_secs(300),
            weights: HealthWeights::default(),
            thresholds: HealthThresholds::default(),
            alert_dedup_key: "resilience-health".to_owned(),
            automatic_half_open: true,
            governance: GovernanceHash::DEFAULT,
        }
    }
}

impl HealthConfig {
    /// Dedup key of the CRITICAL alert.
    #[must_use]
    pub fn alert_dedup_key(mut self, key: impl Into<String>) -> Self {
        self.alert_dedup_key = key.into();
        self
    }

    /// Checks every field.
    ///
    /// # Errors
    ///
    /// [`ConfigError::Invalid`] naming the field and its value.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if self.interval < Duration::from_millis(10) || self.interval > Duration::from_secs(3600) {
            return Err(invalid(
                "interval",
                format_args!("{:?}", self.interval),
                "between 10ms and 1h",
            ));
        }
        if self.history == 0 || self.history > 100_000 {
            return Err(invalid("history", self.history, "1 to 100000 snapshots"));
        }
        if self.history_window.is_zero() || self.history_window > Duration::from_secs(7 * 86_400) {
            return Err(invalid(
                "history_window",
                format_args!("{:?}", self.history_window),
                "between 1ns and 7 days",
            ));
        }
        if self.alert_dedup_key.is_empty() {
            return Err(invalid("alert_dedup_key", "\"\"", "a non-empty key"));
        }
        self.weights.validate()?;
        self.thresholds.validate()
    }
}

crate::setters::setters!(HealthConfig {
    /// Whether the aggregator samples at all.
    enabled: bool;
    /// The window of `recent_history`.
    history_window: Duration;
    /// The sampling interval.
    interval: Duration;
    /// Snapshots kept.
    history: usize;
    /// What each breaker state is worth.
    weights: HealthWeights;
    /// Where HEALTHY and DEGRADED begin.
    thresholds: HealthThresholds;
    /// Whether time-based transitions are made before each sample.
    automatic_half_open: bool;
    /// Governance tag.
    governance: GovernanceHash;
});

/// One breaker in a report.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct BreakerHealth {
    /// The breaker's name.
    pub name: String,
    /// Its state.
    pub state: State,
}

fn wall_time<S: serde::Serializer>(at: &SystemTime, s: S) -> Result<S::Ok, S::Error> {
    s.collect_str(&humantime::format_rfc3339_millis(*at))
}

/// A full health report: status, score, per-state counts and every breaker.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[non_exhaustive]
pub struct HealthReport {
    /// Overall status.
    pub status: HealthStatus,
    /// Weighted score in [0, 1].
    pub score: f64,
    /// Breakers per state.
    pub counts: StateCounts,
    /// Every breaker, sorted by name.
    pub breakers: Vec<BreakerHealth>,
    /// Breakers HALF_OPEN (probing), sorted: the original's `degraded_services`.
    pub degraded: Vec<String>,
    /// Breakers OPEN or forced open, sorted: the original's `critical_services`.
    pub critical: Vec<String>,
    /// Bulkheads and retry budgets that turned calls away since the previous sample; while
    /// any is listed, a HEALTHY score reads DEGRADED.
    pub pressure: super::Pressure,
    /// Sample number (0 before the first sample).
    pub sequence: u64,
    /// When it was sampled (wall clock).
    #[serde(serialize_with = "wall_time")]
    pub sampled_at: SystemTime,
    /// When it was sampled (monotonic, paused in tests).
    #[serde(skip)]
    pub instant: Instant,
    /// Governance tag.
    pub governance: GovernanceHash,
}

/// One point of the history.
#[derive(Clone, Copy, Debug, PartialEq, Serialize)]
pub struct HealthSnapshot {
    /// Sample number.
    pub sequence: u64,
    /// Score.
    pub score: f64,
    /// Status.
    pub status: HealthStatus,
    /// Wall-clock time.
    #[serde(serialize_with = "wall_time")]
    pub at: SystemTime,
    /// Monotonic time.
    #[serde(skip)]
    pub instant: Instant,
    /// Governance tag of the aggregator that took it.
    pub governance: GovernanceHash,
}

/// A change of status, as subscribers receive it.
#[derive(Clone, Debug)]
pub struct HealthChange {
    /// Status before.
    pub from: HealthStatus,
    /// Status after.
    pub to: HealthStatus,
    /// The report that changed it.
    pub report: Arc<HealthReport>,
}

/// Counters for metrics.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
#[non_exhaustive]
pub struct HealthStats {
    /// Samples taken (health checks run).
    pub samples: u64,
    /// Status changes.
    pub changes: u64,
    /// Alerts delivered.
    pub alerts_sent: u64,
    /// Alerts that failed.
    pub alerts_failed: u64,
    /// Change callbacks started (the original's fire-and-forget callbacks fired).
    pub callbacks_fired: u64,
    /// Change callbacks that panicked.
    pub callback_panics: u64,
}

type Callback = Arc<dyn Fn(HealthChange) -> BoxFuture<'static, ()> + Send + Sync>;

struct Inner {
    source: Arc<dyn BreakerSource>,
    pressure: std::sync::OnceLock<Arc<dyn super::PressureSource>>,
    config: HealthConfig,
    report: watch::Sender<Arc<HealthReport>>,
    history: Mutex<VecDeque<HealthSnapshot>>,
    changes: broadcast::Sender<HealthChange>,
    callbacks: Mutex<Vec<Callback>>,
    alerts: Option<Arc<dyn AlertSink>>,
    /// Feeds the dispatcher task (started on the first change): it spawns the callbacks and
    /// delivers alerts one after another, in order, so the sampler never waits for either.
    dispatch: Mutex<Option<mpsc::UnboundedSender<HealthChange>>>,
    /// The dispatcher; aborted at shutdown after a grace period.
    tasks: Mutex<JoinSet<()>>,
    samples: AtomicU64,
    change_count: AtomicU64,
    alerts_sent: AtomicU64,
    alerts_failed: AtomicU64,
    callbacks_fired: AtomicU64,
    callback_panics: AtomicU64,
}

/// Samples every breaker on an interval: score, status, history, change notifications and
/// CRITICAL alerts. Cheap to clone (a handle).
///
/// # Examples
///
/// ```
/// use std::sync::Arc;
/// use resilience_control::health::{HealthAggregator, HealthConfig, HealthStatus};
/// use resilience_core::BreakerRegistry;
///
/// let registry = Arc::new(BreakerRegistry::new());
/// registry.breaker("db")?.force_open();
/// let health = HealthAggregator::new(registry, HealthConfig::default(), None)?;
/// assert_eq!(health.report().status, HealthStatus::Unknown); // before the first sample
/// let report = health.sample();
/// assert_eq!((report.status, report.score), (HealthStatus::Critical, 0.0));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone)]
pub struct HealthAggregator {
    inner: Arc<Inner>,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    // A panic while holding these locks cannot leave them inconsistent (each critical section
    // is a single push, pop or swap), so a poisoned lock is still usable.
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

impl HealthAggregator {
    /// An aggregator over `source`, sending CRITICAL alerts to `alerts` if given.
    ///
    /// # Errors
    ///
    /// [`ConfigError`] if `config` is invalid.
    pub fn new(
        source: Arc<dyn BreakerSource>,
        config: HealthConfig,
        alerts: Option<Arc<dyn AlertSink>>,
    ) -> Result<Self, ConfigError> {
        config.validate()?;
        let unknown = HealthReport {
            status: HealthStatus::Unknown,
            score: 1.0,
            counts: StateCounts::default(),
            breakers: Vec::new(),
            degraded: Vec::new(),
            critical: Vec::new(),
            pressure: super::Pressure::default(),
            sequence: 0,
            sampled_at: SystemTime::now(),
            instant: Instant::now(),
            governance: config.governance,
        };
        Ok(HealthAggregator {
            inner: Arc::new(Inner {
                source,
                pressure: std::sync::OnceLock::new(),
                history: Mutex::new(VecDeque::with_capacity(config.history)),
                report: watch::Sender::new(Arc::new(unknown)),
                changes: broadcast::Sender::new(64),
                callbacks: Mutex::new(Vec::new()),
                alerts,
                dispatch: Mutex::new(None),
                tasks: Mutex::new(JoinSet::new()),
                samples: AtomicU64::new(0),
                change_count: AtomicU64::new(0),
                alerts_sent: AtomicU64::new(0),
                alerts_failed: AtomicU64::new(0),
                callbacks_fired: AtomicU64::new(0),
                callback_panics: AtomicU64::new(0),
                config,
            }),
        })
    }

    /// Adds the policies' pressure to every sample from now on (see [`HealthReport::pressure`]).
    /// Only the first source set is used; `false` when one was already set.
    pub(crate) fn set_pressure_source(&self, source: Arc<dyn super::PressureSource>) -> bool {
        self.inner.pressure.set(source).is_ok()
    }

    /// The settings.
    pub fn config(&self) -> &HealthConfig {
        &self.inner.config
    }

    /// The latest report (UNKNOWN before the first sample).
    pub fn report(&self) -> Arc<HealthReport> {
        self.inner.report.borrow().clone()
    }

    /// A receiver that sees every new report.
    pub fn watch(&self) -> watch::Receiver<Arc<HealthReport>> {
        self.inner.report.subscribe()
    }

    /// A receiver of status changes. A receiver that falls behind misses changes (it sees
    /// `Lagged`); it never slows the sampler.
    pub fn subscribe(&self) -> broadcast::Receiver<HealthChange> {
        self.inner.changes.subscribe()
    }

    /// Runs `callback` on every status change, each call in a task of its own: a slow or
    /// panicking callback never delays sampling (panics are counted). Like any async code it
    /// must not block its thread; for blocking work use [`on_change_blocking`].
    ///
    /// [`on_change_blocking`]: Self::on_change_blocking
    pub fn on_change<F, Fut>(&self, callback: F)
    where
        F: Fn(HealthChange) -> Fut + Send + Sync + 'static,
        Fut: std::future::Future<Output = ()> + Send + 'static,
    {
        let callback: Callback = Arc::new(move |change| Box::pin(callback(change)));
        lock(&self.inner.callbacks).push(callback);
    }

    /// Runs a blocking `callback` (file I/O, a synchronous client) on every status change, on
    /// tokio's blocking pool, so it never occupies a runtime worker. Panics are counted.
    pub fn on_change_blocking<F>(&self, callback: F)
    where
        F: Fn(&HealthChange) + Send + Sync + 'static,
    {
        let callback = Arc::new(callback);
        self.on_change(move |change| {
            let callback = Arc::clone(&callback);
            async move {
                if let Err(join) = tokio::task::spawn_blocking(move || callback(&change)).await
                    && join.is_panic()
                {
                    // Re-raised here, to be counted by the dispatcher's panic guard.
                    std::panic::resume_unwind(join.into_panic());
                }
            }
        });
    }

    /// Snapshots from the last `window` (all of them, up to the history size, for a long window).
    pub fn history(&self, window: Duration) -> Vec<HealthSnapshot> {
        let now = Instant::now();
        lock(&self.inner.history)
            .iter()
            .filter(|s| now.saturating_duration_since(s.instant) <= window)
            .copied()
            .collect()
    }

    /// Snapshots from the configured [`history_window`](HealthConfig::history_window)
    /// (five minutes by default): the original's `get_health_history()` without an argument.
    pub fn recent_history(&self) -> Vec<HealthSnapshot> {
        self.history(self.inner.config.history_window)
    }

    /// Counters for metrics.
    pub fn stats(&self) -> HealthStats {
        let i = &self.inner;
        HealthStats {
            samples: i.samples.load(Ordering::Relaxed),
            changes: i.change_count.load(Ordering::Relaxed),
            alerts_sent: i.alerts_sent.load(Ordering::Relaxed),
            alerts_failed: i.alerts_failed.load(Ordering::Relaxed),
            callbacks_fired: i.callbacks_fired.load(Ordering::Relaxed),
            callback_panics: i.callback_panics.load(Ordering::Relaxed),
        }
    }

    /// Takes one sample now: publishes the report, records it in the history and, if the
    /// status changed, notifies subscribers and alerts. Needs a tokio runtime when callbacks or
    /// an alert sink are registered.
    pub fn sample(&self) -> Arc<HealthReport> {
        let i = &self.inner;
        if i.config.automatic_half_open {
            i.source.tick();
        }
        let mut breakers: Vec<_> = i
            .source
            .snapshots()
            .into_iter()
            .map(|(name, snapshot)| {
                (
                    BreakerHealth {
                        name: name.to_string(),
                        state: snapshot.state,
                    },
                    snapshot,
                )
            })
            .collect();
        breakers.sort_by(|a, b| a.0.name.cmp(&b.0.name));
        let counts = StateCounts::of(breakers.iter().map(|(_, s)| s));
        let score = counts.score(&i.config.weights);
        let named = |wanted: fn(State) -> bool| -> Vec<String> {
            breakers
                .iter()
                .filter(|(b, _)| wanted(b.state))
                .map(|(b, _)| b.name.clone())
                .collect()
        };
        let degraded = named(|s| s == State::HalfOpen);
        let critical = named(|s| matches!(s, State::Open | State::ForcedOpen));
        let sequence = i.samples.fetch_add(1, Ordering::Relaxed) + 1;
        let pressure = i
            .pressure
            .get()
            .map(|source| source.pressure())
            .unwrap_or_default();
        let mut status = i.config.thresholds.status(score);
        if status == HealthStatus::Healthy && !pressure.is_empty() {
            status = HealthStatus::Degraded;
        }
        let report = Arc::new(HealthReport {
            status,
            score,
            counts,
            breakers: breakers.into_iter().map(|(b, _)| b).collect(),
            degraded,
            critical,
            pressure,
            sequence,
            sampled_at: SystemTime::now(),
            instant: Instant::now(),
            governance: i.config.governance,
        });
        let previous = i.report.send_replace(Arc::clone(&report));
        {
            let mut history = lock(&i.history);
            if history.len() == i.config.history {
                history.pop_front();
            }
            history.push_back(HealthSnapshot {
                sequence,
                score,
                status: report.status,
                at: report.sampled_at,
                instant: report.instant,
                governance: report.governance,
            });
        }
        if previous.status != report.status {
            self.changed(HealthChange {
                from: previous.status,
                to: report.status,
                report: Arc::clone(&report),
            });
        }
        report
    }

    fn changed(&self, change: HealthChange) {
        let i = &self.inner;
        i.change_count.fetch_add(1, Ordering::Relaxed);
        tracing::info!(from = %change.from, to = %change.to, score = change.report.score, "health status changed");
        // No receivers is fine: nobody asked to hear.
        let _ = i.changes.send(change.clone());
        if lock(&i.callbacks).is_empty() && i.alerts.is_none() {
            return;
        }
        let mut dispatch = lock(&i.dispatch);
        let sender = dispatch.get_or_insert_with(|| {
            let (tx, rx) = mpsc::unbounded_channel();
            lock(&i.tasks).spawn(self.clone().dispatch(rx));
            tx
        });
        // The dispatcher only stops once `finish` has taken the sender; then nothing is sent.
        let _ = sender.send(change);
    }

    /// Runs callbacks (each in a task of its own, under a panic guard) and delivers alerts in
    /// order, until the aggregator finishes.
    async fn dispatch(self, mut changes: mpsc::UnboundedReceiver<HealthChange>) {
        let mut callbacks_running = JoinSet::new();
        while let Some(change) = changes.recv().await {
            while callbacks_running.try_join_next().is_some() {}
            for callback in lock(&self.inner.callbacks).clone() {
                let inner = Arc::clone(&self.inner);
                inner.callbacks_fired.fetch_add(1, Ordering::Relaxed);
                let change = change.clone();
                // Even calling the callback happens in its task, under the panic guard.
                let future = CatchUnwind::new(async move { callback(change).await });
                callbacks_running.spawn(async move {
                    if future.await.is_err() {
                        inner.callback_panics.fetch_add(1, Ordering::Relaxed);
                        tracing::warn!("a health-change callback panicked");
                    }
                });
            }
            if let (Some(sink), Some(alert)) = (self.inner.alerts.clone(), self.alert_for(&change))
            {
                self.deliver(&*sink, &alert).await;
            }
        }
        // Shutting down: give running callbacks the rest of the grace period (the caller
        // aborts this task, and with it them, when it runs out).
        while callbacks_running.join_next().await.is_some() {}
    }

    async fn deliver(&self, sink: &dyn AlertSink, alert: &Alert) {
        let i = &self.inner;
        match CatchUnwind::new(sink.send(alert)).await {
            Ok(Ok(())) => {
                i.alerts_sent.fetch_add(1, Ordering::Relaxed);
            }
            Ok(Err(err)) => {
                i.alerts_failed.fetch_add(1, Ordering::Relaxed);
                tracing::warn!(%err, "health alert not delivered");
            }
            Err(_) => {
                i.alerts_failed.fetch_add(1, Ordering::Relaxed);
                tracing::warn!("the alert sink panicked");
            }
        }
    }

    /// Trigger on entering CRITICAL, resolve on leaving it for HEALTHY or DEGRADED.
    fn alert_for(&self, change: &HealthChange) -> Option<Alert> {
        let action = match (change.from, change.to) {
            (from, HealthStatus::Critical) if from != HealthStatus::Critical => {
                AlertAction::Trigger
            }
            (HealthStatus::Critical, HealthStatus::Healthy | HealthStatus::Degraded) => {
                AlertAction::Resolve
            }
            _ => return None,
        };
        let report = &change.report;
        let open_breakers = report.critical.clone();
        let summary = match action {
            AlertAction::Trigger => format!(
                "health CRITICAL (score {:.2}): {} of {} breakers open",
                report.score,
                open_breakers.len(),
                report.counts.total()
            ),
            AlertAction::Resolve => format!(
                "health recovered to {} (score {:.2})",
                report.status, report.score
            ),
        };
        Some(Alert {
            action,
            dedup_key: self.inner.config.alert_dedup_key.clone(),
            summary,
            class: AlertClass::Health,
            status: report.status,
            score: report.score,
            open_breakers,
            at: report.sampled_at,
            governance: report.governance,
        })
    }

    /// Samples every interval until `cancel` fires. Misses are not made up in a burst. When
    /// the aggregator is [disabled](HealthConfig::enabled) it only waits for `cancel`.
    pub async fn run(&self, cancel: CancellationToken) {
        if !self.inner.config.enabled {
            tracing::info!("health aggregation is disabled");
            cancel.cancelled().await;
            return;
        }
        let mut ticker = tokio::time::interval(self.inner.config.interval);
        ticker.set_missed_tick_behavior(MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                () = cancel.cancelled() => break,
                _ = ticker.tick() => {
                    self.sample();
                }
            }
        }
    }

    /// Waits up to `grace` for callbacks and alerts in flight, then aborts the rest.
    pub async fn finish(&self, grace: Duration) {
        // Closing the channel lets the dispatcher finish what is queued and stop.
        lock(&self.inner.dispatch).take();
        let mut tasks = std::mem::take(&mut *lock(&self.inner.tasks));
        let drained =
            tokio::time::timeout(grace, async { while tasks.join_next().await.is_some() {} }).await;
        if drained.is_err() {
            tracing::warn!(
                left = tasks.len(),
                "aborting health callbacks still running at shutdown"
            );
            tasks.shutdown().await;
        }
    }
}

impl std::fmt::Debug for HealthAggregator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HealthAggregator")
            .field("report", &self.report().status)
            .finish_non_exhaustive()
    }
}
