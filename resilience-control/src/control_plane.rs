//! [`ControlPlane`]: one builder that wires every loop, one driver that runs them, one
//! `shutdown()` that stops, drains and waits.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use std::collections::HashMap;
use std::sync::{Mutex, PoisonError};

use resilience_core::{BreakerEvent, CoarseClock, GovernanceHash, State};
use tokio::sync::{broadcast, watch};
use tokio::task::JoinSet;
use tokio::time::MissedTickBehavior;
use tokio_util::sync::CancellationToken;

use crate::chaos::ChaosEngine;
use crate::error::{BuildError, ControlError, invalid};
use crate::fleet::{Fleet, FleetMember, LeasedCheck};
use crate::health::{
    AlertClass, AlertSink, BreakerAlertCounts, BreakerAlerts, HealthAggregator, HealthConfig,
    deliver_breaker_alerts,
};
use crate::metering::MeteringFlusher;
use crate::recovery::{HealthCheck, RecoveryConfig, RecoveryOrchestrator, RecoveryPolicy};
use crate::source::BreakerSource;
use crate::task::{CatchUnwind, panic_message};

/// Builder for [`ControlPlane`]: the breakers to watch, each component's settings, and the
/// governance tag every component must carry.
#[must_use = "a builder does nothing until build() or spawn() is called"]
pub struct ControlPlaneBuilder {
    source: Option<Arc<dyn BreakerSource>>,
    governance: GovernanceHash,
    health: HealthConfig,
    recovery: RecoveryConfig,
    alerts: Option<Arc<dyn AlertSink>>,
    alert_on: Vec<AlertClass>,
    checks: Vec<(String, Arc<dyn HealthCheck>)>,
    policies: Vec<(String, RecoveryPolicy)>,
    metering: Option<MeteringFlusher>,
    chaos: Option<ChaosEngine>,
    fleet: Option<Fleet>,
    event_interval: Duration,
    tick: Option<(CoarseClock, Duration)>,
    grace: Duration,
    limits: crate::limits::Limits,
    duplicate: Option<BuildError>,
}

impl ControlPlaneBuilder {
    /// A bulkhead to hold by name (see [`ControlPlane::limits`]): shown in `/metrics` and
    /// `GET /limits`. Its governance tag must be the control plane's.
    pub fn bulkhead(mut self, bulkhead: Arc<resilience_core::bulkhead::Bulkhead>) -> Self {
        if let Err(name) = self.limits.add_bulkhead(bulkhead) {
            self.duplicate.get_or_insert(BuildError::DuplicateName {
                kind: "bulkhead",
                name,
            });
        }
        self
    }

    /// A rate limiter to hold by name, as [`bulkhead`](Self::bulkhead).
    pub fn rate_limiter(mut self, limiter: Arc<resilience_core::rate_limit::RateLimiter>) -> Self {
        if let Err(name) = self.limits.add_rate_limiter(limiter) {
            self.duplicate.get_or_insert(BuildError::DuplicateName {
                kind: "rate limiter",
                name,
            });
        }
        self
    }

    /// A per-key rate limiter to hold by name, as [`bulkhead`](Self::bulkhead) (names are
    /// shared with the plain rate limiters).
    pub fn keyed_rate_limiter(
        mut self,
        limiter: Arc<resilience_core::rate_limit::KeyedRateLimiter>,
    ) -> Self {
        if let Err(name) = self.limits.add_keyed_rate_limiter(limiter) {
            self.duplicate.get_or_insert(BuildError::DuplicateName {
                kind: "rate limiter",
                name,
            });
        }
        self
    }

    /// A retry policy to hold by name, as [`bulkhead`](Self::bulkhead); a budget it draws on
    /// that runs dry is reported in health.
    pub fn retry(mut self, retry: Arc<resilience_core::retry::Retry>) -> Self {
        if let Err(name) = self.limits.add_retry(retry) {
            self.duplicate.get_or_insert(BuildError::DuplicateName {
                kind: "retry",
                name,
            });
        }
        self
    }

    /// A time limit to hold by name, as [`bulkhead`](Self::bulkhead).
    pub fn time_limiter(mut self, limiter: Arc<resilience_core::timeout::TimeLimiter>) -> Self {
        if let Err(name) = self.limits.add_time_limiter(limiter) {
            self.duplicate.get_or_insert(BuildError::DuplicateName {
                kind: "time limit",
                name,
            });
        }
        self
    }

    /// The breakers to watch, recover and report on (usually an `Arc<BreakerRegistry>`).
    pub fn registry(mut self, source: Arc<dyn BreakerSource>) -> Self {
        self.source = Some(source);
        self
    }

    /// The governance tag every component must carry (default `cdd01ef066bc6cf2`); `build()`
    /// refuses to start on any mismatch.
    pub fn governance(mut self, hash: GovernanceHash) -> Self {
        self.governance = hash;
        self
    }

    /// Health aggregator settings.
    pub fn health(mut self, config: HealthConfig) -> Self {
        self.health = config;
        self
    }

    /// Recovery orchestrator settings.
    pub fn recovery(mut self, config: RecoveryConfig) -> Self {
        self.recovery = config;
        self
    }

    /// Where alerts go (e.g. a [`PagerDutySink`](crate::health::PagerDutySink)): by default
    /// CRITICAL health and recoveries that gave up; see [`alert_on`](Self::alert_on).
    pub fn alerts(mut self, sink: Arc<dyn AlertSink>) -> Self {
        self.alerts = Some(sink);
        self
    }

    /// What raises alerts (default [`AlertClass::DEFAULT`]: CRITICAL health and recoveries
    /// that give up). With [`AlertClass::BreakerOpened`] every breaker that opens from CLOSED
    /// triggers an incident of its own, resolved when it closes.
    pub fn alert_on(mut self, classes: impl IntoIterator<Item = AlertClass>) -> Self {
        self.alert_on = classes.into_iter().collect();
        self
    }

    /// `service`'s health check for recovery; its breaker is then recovered automatically when
    /// it opens.
    pub fn health_check(mut self, service: impl Into<String>, check: impl HealthCheck) -> Self {
        self.checks.push((service.into(), Arc::new(check)));
        self
    }

    /// `service`'s recovery policy.
    pub fn recovery_policy(mut self, service: impl Into<String>, policy: RecoveryPolicy) -> Self {
        self.policies.push((service.into(), policy));
        self
    }

    /// Runs this metering flusher (opened with [`MeteringFlusher::open`]); shutdown writes out
    /// everything it accepted.
    pub fn metering(mut self, flusher: MeteringFlusher) -> Self {
        self.metering = Some(flusher);
        self
    }

    /// Runs this chaos engine's expiry sweeper; shutdown ends every scenario it started.
    pub fn chaos(mut self, engine: ChaosEngine) -> Self {
        self.chaos = Some(engine);
        self
    }

    /// Makes this instance a member of `fleet`: it publishes its health and breakers, adopts
    /// OPEN on a fleet quorum, obeys fleet chaos (with the chaos engine, if one is given), and
    /// every registered health check runs under the fleet's recovery lease
    /// ([`LeasedCheck`](crate::fleet::LeasedCheck)), so one instance at a time probes a
    /// recovering dependency.
    pub fn fleet(mut self, fleet: Fleet) -> Self {
        self.fleet = Some(fleet);
        self
    }

    /// How often breaker events are drained (default 10 ms).
    pub fn event_interval(mut self, every: Duration) -> Self {
        self.event_interval = every;
        self
    }

    /// Keep `clock` ticking every `every` while the control plane runs (default: the global
    /// coarse clock, every millisecond).
    pub fn clock_ticker(mut self, clock: CoarseClock, every: Duration) -> Self {
        self.tick = Some((clock, every));
        self
    }

    /// Leave the coarse clock alone (it then falls back to the time-stamp counter, or someone
    /// else ticks it).
    pub fn without_clock_ticker(mut self) -> Self {
        self.tick = None;
        self
    }

    /// How long shutdown waits for callbacks, alerts and health checks in flight before
    /// aborting them (default 5 s).
    pub fn shutdown_grace(mut self, grace: Duration) -> Self {
        self.grace = grace;
        self
    }

    /// Validates everything and returns the handle and the driver future, which runs every loop
    /// until [`ControlPlane::shutdown`] (spawn it, or use [`spawn`](Self::spawn)).
    ///
    /// # Errors
    ///
    /// [`BuildError::Governance`] naming the first component whose tag differs (with both
    /// values), [`BuildError::Config`] for a bad setting, [`BuildError::MissingRegistry`].
    pub fn build(self) -> Result<(ControlPlane, ControlDriver), BuildError> {
        let source = self.source.ok_or(BuildError::MissingRegistry)?;
        let expected = self.governance;
        source
            .governance()
            .ensure_matches(expected, "breaker registry")?;
        self.health
            .governance
            .ensure_matches(expected, "health aggregator")?;
        self.recovery
            .governance
            .ensure_matches(expected, "recovery orchestrator")?;
        if let Some(engine) = &self.chaos {
            engine
                .governance()
                .ensure_matches(expected, "chaos engine")?;
        }
        if let Some(fleet) = &self.fleet {
            fleet
                .config()
                .governance
                .ensure_matches(expected, "fleet member")?;
        }
        if let Some(err) = self.duplicate {
            return Err(err);
        }
        if let Some(found) = self.limits.foreign_tag(expected) {
            found.ensure_matches(expected, "bulkhead, rate limiter, retry or time limit")?;
        }
        // Every component checked: errors raised from here on report this tag.
        expected.declare_for_process();
        if self.event_interval < Duration::from_millis(1)
            || self.event_interval > Duration::from_secs(10)
        {
            return Err(invalid(
                "event_interval",
                format_args!("{:?}", self.event_interval),
                "between 1ms and 10s",
            )
            .into());
        }
        let sink_for = |class: AlertClass| {
            self.alerts
                .clone()
                .filter(|_| self.alert_on.contains(&class))
        };
        let health = HealthAggregator::new(
            Arc::clone(&source),
            self.health,
            sink_for(AlertClass::Health),
        )?;
        if !self.limits.is_empty() {
            health.set_pressure_source(Arc::new(crate::limits::PressureWatch::new(
                self.limits.clone(),
            )));
        }
        let recovery = RecoveryOrchestrator::new(Arc::clone(&source), self.recovery)?;
        if let Some(sink) = sink_for(AlertClass::RecoveryExhausted) {
            recovery.set_alert_sink(sink);
        }
        let breaker_alerts = sink_for(AlertClass::BreakerOpened);
        for (service, policy) in self.policies {
            recovery.set_policy(&service, policy).map_err(|e| match e {
                crate::recovery::RecoveryError::Config(c) => BuildError::Config(c),
                other => BuildError::Config(invalid("recovery_policy", other, "a valid policy")),
            })?;
        }
        for (service, check) in self.checks {
            match &self.fleet {
                Some(fleet) => recovery.register_health_check(
                    &service,
                    LeasedCheck::new(fleet.clone(), SharedCheck(check)),
                ),
                None => recovery.register_health_check(&service, SharedCheck(check)),
            }
        }
        let ticker = match self.tick {
            Some((clock, every)) => Some(clock.start_ticker(every)?),
            None => None,
        };
        let cancel = CancellationToken::new();
        let (done_tx, done_rx) = watch::channel(None);
        let (events_tx, _) = broadcast::channel(1024);
        let transitions = Arc::new(Transitions::default());
        let alert_counts = Arc::new(BreakerAlertCounts::default());
        let driver = drive(Driver {
            breaker_alerts: breaker_alerts.map(|sink| (sink, Arc::clone(&alert_counts))),
            governance: expected,
            source: Arc::clone(&source),
            health: health.clone(),
            recovery: recovery.clone(),
            metering: self.metering.clone(),
            chaos: self.chaos.clone(),
            fleet: self.fleet,
            transitions: Arc::clone(&transitions),
            events: events_tx.clone(),
            cancel: cancel.clone(),
            event_interval: self.event_interval,
            grace: self.grace,
            ticker,
            done: done_tx,
        });
        let plane = ControlPlane {
            inner: Arc::new(Inner {
                health,
                recovery,
                metering: self.metering,
                chaos: self.chaos,
                transitions,
                alert_counts,
                source,
                events: events_tx,
                cancel,
                done: done_rx,
                governance: expected,
                limits: self.limits,
            }),
        };
        Ok((plane, ControlDriver(Box::pin(driver))))
    }

    /// [`build`](Self::build), and spawn the driver on the current tokio runtime.
    ///
    /// # Errors
    ///
    /// As [`build`](Self::build).
    ///
    /// # Panics
    ///
    /// If called outside a tokio runtime.
    pub fn spawn(self) -> Result<ControlPlane, BuildError> {
        let (plane, driver) = self.build()?;
        tokio::spawn(driver);
        Ok(plane)
    }
}

/// Lets an `Arc<dyn HealthCheck>` be registered where `impl HealthCheck` is asked for.
struct SharedCheck(Arc<dyn HealthCheck>);

impl HealthCheck for SharedCheck {
    fn check(&self, service: String) -> crate::health::BoxFuture<'static, Result<(), String>> {
        self.0.check(service)
    }
}

/// The future that runs every control loop; returned by [`ControlPlaneBuilder::build`].
#[must_use = "the control plane does nothing unless its driver is polled (spawn it)"]
pub struct ControlDriver(Pin<Box<dyn Future<Output = Result<(), ControlError>> + Send>>);

impl Future for ControlDriver {
    type Output = Result<(), ControlError>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        self.0.as_mut().poll(cx)
    }
}

struct Driver {
    breaker_alerts: Option<(Arc<dyn AlertSink>, Arc<BreakerAlertCounts>)>,
    governance: GovernanceHash,
    source: Arc<dyn BreakerSource>,
    health: HealthAggregator,
    recovery: RecoveryOrchestrator,
    metering: Option<MeteringFlusher>,
    chaos: Option<ChaosEngine>,
    fleet: Option<Fleet>,
    transitions: Arc<Transitions>,
    events: broadcast::Sender<BreakerEvent>,
    cancel: CancellationToken,
    event_interval: Duration,
    grace: Duration,
    ticker: Option<resilience_core::Ticker>,
    done: watch::Sender<Option<Result<(), String>>>,
}

async fn drive(d: Driver) -> Result<(), ControlError> {
    let mut loops: JoinSet<(&'static str, Result<(), String>)> = JoinSet::new();
    let named = |name: &'static str, future: Pin<Box<dyn Future<Output = ()> + Send>>| async move {
        (
            name,
            CatchUnwind::new(future)
                .await
                .map_err(|p| panic_message(&*p)),
        )
    };
    let (health, recovery) = (d.health.clone(), d.recovery.clone());
    let token = d.cancel.child_token();
    loops.spawn(named(
        "health",
        Box::pin(async move { health.run(token).await }),
    ));
    let token = d.cancel.child_token();
    loops.spawn(named(
        "recovery",
        Box::pin(async move { recovery.run(token).await }),
    ));
    let (source, recovery, events, token) = (
        Arc::clone(&d.source),
        d.recovery.clone(),
        d.events.clone(),
        d.cancel.child_token(),
    );
    let every = d.event_interval;
    let transitions = Arc::clone(&d.transitions);
    let watcher = d.breaker_alerts.map(|(sink, counts)| {
        let (watcher, queue) = BreakerAlerts::new(d.governance, Arc::clone(&counts));
        let (token, grace) = (d.cancel.child_token(), d.grace);
        loops.spawn(named(
            "alerts",
            Box::pin(deliver_breaker_alerts(sink, queue, counts, token, grace)),
        ));
        watcher
    });
    let pump = Pump {
        channel: source.events(),
        source,
        recovery,
        transitions,
        subscribers: events,
        alerts: watcher,
    };
    loops.spawn(named(
        "events",
        Box::pin(async move { pump.run(token, every).await }),
    ));
    if let Some(flusher) = d.metering.clone() {
        let token = d.cancel.child_token();
        loops.spawn(named(
            "metering",
            Box::pin(async move { flusher.run(token).await }),
        ));
    }
    if let Some(engine) = d.chaos.clone() {
        let token = d.cancel.child_token();
        loops.spawn(named(
            "chaos",
            Box::pin(async move { engine.run(token).await }),
        ));
    }
    if let Some(fleet) = d.fleet {
        let mut member = FleetMember::new(fleet, Arc::clone(&d.source)).health(d.health.watch());
        if let Some(engine) = d.chaos.clone() {
            member = member.chaos(engine);
        }
        let token = d.cancel.child_token();
        loops.spawn(named(
            "fleet",
            Box::pin(async move { member.run(token).await }),
        ));
    }
    tracing::info!(governance = %d.source.governance(), "control plane started");

    let mut result = Ok(());
    while let Some(joined) = loops.join_next().await {
        // A loop only ends on cancellation; one that ends otherwise (a panic) stops the rest.
        let failure = match joined {
            Ok((_, Ok(()))) => None,
            Ok((name, Err(message))) => Some(ControlError::LoopPanicked { name, message }),
            Err(join) => Some(ControlError::LoopPanicked {
                name: "unknown",
                message: join.to_string(),
            }),
        };
        if let Some(err) = failure {
            tracing::error!(%err, "control loop failed; stopping the control plane");
            if result.is_ok() {
                result = Err(err);
            }
        }
        d.cancel.cancel();
    }
    if let Some(flusher) = &d.metering {
        flusher.finish(d.grace).await;
    }
    d.recovery.finish_attempts(d.grace).await;
    d.health.finish(d.grace).await;
    drop(d.ticker);
    tracing::info!("control plane stopped");
    d.done.send_replace(Some(
        result.as_ref().map(|_| ()).map_err(ToString::to_string),
    ));
    result
}

/// Transitions seen by the event pump, per breaker and edge, for metrics.
#[derive(Default)]
struct Transitions(Mutex<HashMap<Edge, u64>>);

/// A breaker and the states it moved between.
type Edge = (Arc<str>, State, State);

impl Transitions {
    /// Counts `event`; returns its breaker's name.
    fn record(&self, source: &dyn BreakerSource, event: &BreakerEvent) -> Arc<str> {
        let name = source
            .name_of(event.breaker)
            .unwrap_or_else(|| Arc::from(format!("#{}", event.breaker.as_u32())));
        *self
            .0
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .entry((Arc::clone(&name), event.from, event.to))
            .or_default() += 1;
        name
    }

    fn counts(&self) -> Vec<TransitionCount> {
        let mut counts: Vec<TransitionCount> = self
            .0
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .iter()
            .map(|((breaker, from, to), count)| TransitionCount {
                breaker: Arc::clone(breaker),
                from: *from,
                to: *to,
                count: *count,
            })
            .collect();
        counts.sort_by(|a, b| (&a.breaker, a.from, a.to).cmp(&(&b.breaker, b.from, b.to)));
        counts
    }
}

/// How many times one breaker moved from one state to another.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct TransitionCount {
    /// The breaker.
    pub breaker: Arc<str>,
    /// State left.
    pub from: State,
    /// State entered.
    pub to: State,
    /// Times seen.
    pub count: u64,
}

/// Drains breaker transitions: recovery sees each one, subscribers get a copy. On cancellation
/// it drains once more so nothing emitted before shutdown is lost.
/// The event pump: breaker transitions to metrics, recovery, alerts and subscribers.
struct Pump {
    channel: Arc<resilience_core::EventChannel>,
    source: Arc<dyn BreakerSource>,
    recovery: RecoveryOrchestrator,
    transitions: Arc<Transitions>,
    subscribers: broadcast::Sender<BreakerEvent>,
    alerts: Option<BreakerAlerts>,
}

impl Pump {
    async fn run(mut self, cancel: CancellationToken, every: Duration) {
        let mut batch = Vec::with_capacity(1024);
        let mut ticker = tokio::time::interval(every);
        ticker.set_missed_tick_behavior(MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                () = cancel.cancelled() => {
                    self.drain(&mut batch);
                    break;
                }
                _ = ticker.tick() => self.drain(&mut batch),
            }
        }
    }

    fn drain(&mut self, batch: &mut Vec<BreakerEvent>) {
        loop {
            batch.clear();
            if self.channel.drain_into(batch, 1024) == 0 {
                break;
            }
            for event in batch.iter() {
                let name = self.transitions.record(&*self.source, event);
                self.recovery.on_transition(event);
                if let Some(alerts) = &mut self.alerts {
                    alerts.observe(&name, event);
                }
                // No subscribers is fine.
                let _ = self.subscribers.send(*event);
            }
        }
    }
}

struct Inner {
    health: HealthAggregator,
    recovery: RecoveryOrchestrator,
    metering: Option<MeteringFlusher>,
    chaos: Option<ChaosEngine>,
    transitions: Arc<Transitions>,
    alert_counts: Arc<BreakerAlertCounts>,
    source: Arc<dyn BreakerSource>,
    events: broadcast::Sender<BreakerEvent>,
    cancel: CancellationToken,
    done: watch::Receiver<Option<Result<(), String>>>,
    governance: GovernanceHash,
    limits: crate::limits::Limits,
}

impl Drop for Inner {
    /// The last handle gone stops the loops.
    fn drop(&mut self) {
        self.cancel.cancel();
    }
}

/// A running control plane: health, recovery and the event pump. Cheap to clone; when the last
/// handle is dropped the loops stop.
///
/// # Examples
///
/// ```
/// use std::sync::Arc;
/// use resilience_control::ControlPlane;
/// use resilience_core::BreakerRegistry;
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let registry = Arc::new(BreakerRegistry::new());
/// let db = registry.breaker("db")?;
/// let control = ControlPlane::builder()
///     .registry(registry.clone())
///     .health_check("db", |_service: String| async { Ok(()) }) // recover "db" when it opens
///     .spawn()?;
///
/// // ... serve traffic through `db` ...
/// # let _ = db;
/// control.shutdown().await?; // stop, drain, wait
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct ControlPlane {
    inner: Arc<Inner>,
}

impl ControlPlane {
    /// A builder with the defaults.
    pub fn builder() -> ControlPlaneBuilder {
        ControlPlaneBuilder {
            fleet: None,
            source: None,
            governance: GovernanceHash::DEFAULT,
            health: HealthConfig::default(),
            recovery: RecoveryConfig::default(),
            alerts: None,
            alert_on: AlertClass::DEFAULT.to_vec(),
            checks: Vec::new(),
            policies: Vec::new(),
            metering: None,
            chaos: None,
            event_interval: Duration::from_millis(10),
            tick: Some((CoarseClock::global().clone(), Duration::from_millis(1))),
            grace: Duration::from_secs(5),
            limits: crate::limits::Limits::default(),
            duplicate: None,
        }
    }

    /// The health aggregator.
    pub fn health(&self) -> &HealthAggregator {
        &self.inner.health
    }

    /// The named bulkheads, rate limiters, retries and time limits, for the service to look up
    /// (`control.limits().bulkhead("search")`).
    pub fn limits(&self) -> &crate::limits::Limits {
        &self.inner.limits
    }

    /// The recovery orchestrator.
    pub fn recovery(&self) -> &RecoveryOrchestrator {
        &self.inner.recovery
    }

    /// Every breaker at a glance, with the governance tag (the seed's
    /// `circuit_breaker_health_check()`; also `GET /breakers/health`).
    pub fn breaker_health_check(&self) -> crate::health::BreakerHealthCheck {
        crate::health::breaker_health_check(&*self.inner.source)
    }

    /// The metering flusher, if one was given.
    pub fn metering(&self) -> Option<&MeteringFlusher> {
        self.inner.metering.as_ref()
    }

    /// The chaos engine, if one was given.
    pub fn chaos(&self) -> Option<&ChaosEngine> {
        self.inner.chaos.as_ref()
    }

    /// The breakers this control plane watches.
    pub fn source(&self) -> &Arc<dyn BreakerSource> {
        &self.inner.source
    }

    /// Every breaker transition from now on (a receiver that falls behind sees `Lagged`).
    pub fn events(&self) -> broadcast::Receiver<BreakerEvent> {
        self.inner.events.subscribe()
    }

    /// The governance tag every component was checked against.
    pub fn governance(&self) -> GovernanceHash {
        self.inner.governance
    }

    /// Breaker-opened alerts (see [`ControlPlaneBuilder::alert_on`]) by outcome: delivered,
    /// failed, dropped because the queue was full.
    pub(crate) fn breaker_alert_counts(&self) -> [(&'static str, u64); 3] {
        let c = &self.inner.alert_counts;
        [
            ("sent", c.sent.load(std::sync::atomic::Ordering::Relaxed)),
            (
                "failed",
                c.failed.load(std::sync::atomic::Ordering::Relaxed),
            ),
            (
                "dropped",
                c.dropped.load(std::sync::atomic::Ordering::Relaxed),
            ),
        ]
    }

    /// Breaker transitions seen so far, per breaker and edge, sorted.
    pub fn transitions(&self) -> Vec<TransitionCount> {
        self.inner.transitions.counts()
    }

    /// Breaker events lost because the event channel was full (each also counted here, never
    /// silent).
    pub fn events_dropped(&self) -> u64 {
        self.inner.source.events().dropped()
    }

    /// Whether the loops are still running.
    pub fn is_running(&self) -> bool {
        self.inner.done.borrow().is_none()
    }

    /// Stops every loop, drains what is pending (breaker events, callbacks, alerts, running
    /// health checks, within the shutdown grace) and waits for the driver to finish.
    ///
    /// # Errors
    ///
    /// [`ControlError::LoopPanicked`] if a loop had failed, or
    /// [`ControlError::DriverNotRunning`] if the driver was never polled.
    pub async fn shutdown(&self) -> Result<(), ControlError> {
        self.inner.cancel.cancel();
        let mut done = self.inner.done.clone();
        let outcome = done
            .wait_for(Option::is_some)
            .await
            .map_err(|_| ControlError::DriverNotRunning)?;
        match outcome.as_ref() {
            Some(Err(message)) => Err(ControlError::LoopPanicked {
                name: "control",
                message: message.clone(),
            }),
            _ => Ok(()),
        }
    }
}

impl std::fmt::Debug for ControlPlane {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ControlPlane")
            .field("running", &self.is_running())
            .field("governance", &self.inner.governance)
            .finish_non_exhaustive()
    }
}
