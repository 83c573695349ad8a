//! [`ChaosEngine`]: validated scenario injection, lifecycle (expiry, deactivation, emergency
//! stop), resource exhaustion and metrics, on top of the data plane's fault table.

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use resilience_core::chaos::{
    ActiveScenario, ChaosError, ChaosLimits, ErrorCode, FaultKind, FaultSpec, FaultTable,
    ForceableBreaker, Resource, Scenario, ScenarioId,
};
use resilience_core::{Clock, GovernanceHash};
use serde::Serialize;
use tokio::sync::Notify;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::config::ChaosConfig;
use super::resources::{ResourceUsage, Resources, Sizes};
use super::scoped::ScopedChaos;
use super::table::ChaosTable;
use crate::error::BuildError;
use crate::source::BreakerSource;

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // Bookkeeping only; a poisoned map is still a consistent map.
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Why the chaos engine refused a request.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ChaosEngineError {
    /// Chaos is not enabled in this deployment's configuration (the production guard).
    #[error(
        "chaos is disabled here: enable it in the chaos configuration (CHAOS_ENABLED=true) to inject faults"
    )]
    Disabled,
    /// The scenario broke a rule: a field out of range (named, with its value), a target
    /// outside the blast radius, a name in use, an emergency stop in force.
    #[error(transparent)]
    Chaos(#[from] ChaosError),
    /// `force_circuit_open` named a breaker that does not exist (or no breakers were given).
    #[error("no circuit breaker named {name:?} to force open")]
    UnknownBreaker {
        /// The name asked for.
        name: String,
    },
    /// Chaos is enabled, but this deployment is production and chaos has not been allowed
    /// there.
    #[error(
        "chaos is refused in production: this deployment's environment is production; set chaos.allow_in_production = true (with chaos.enabled) to run it here, or mark a non-production deployment with environment = \"staging\" or \"development\" (RESILIENCE_ENVIRONMENT)"
    )]
    Production,
    /// A local resume asked while a fleet-wide emergency stop is in force: the fleet's stop
    /// wins, and only lifting it fleet-wide resumes chaos here.
    #[error(
        "a fleet-wide emergency stop is in force; lift it for every instance with `resilience chaos resume --fleet`"
    )]
    FleetStopped,
}

impl resilience_core::Governed for ChaosEngineError {
    fn governance(&self) -> GovernanceHash {
        match self {
            ChaosEngineError::Chaos(err) => resilience_core::Governed::governance(err),
            _ => GovernanceHash::for_process(),
        }
    }
}

impl ChaosEngineError {
    /// The offending field, for field errors.
    pub fn field(&self) -> Option<&'static str> {
        match self {
            ChaosEngineError::Chaos(e) => e.field(),
            ChaosEngineError::UnknownBreaker { .. } => Some("target"),
            ChaosEngineError::Disabled
            | ChaosEngineError::FleetStopped
            | ChaosEngineError::Production => None,
        }
    }
}

/// What [`ChaosEngine::emergency_stop`] ended.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
#[non_exhaustive]
pub struct EmergencyStop {
    /// Scenarios disarmed.
    pub scenarios: usize,
    /// Breakers chaos had forced open, restored.
    pub breakers_restored: usize,
    /// Resource holdings released.
    pub resources_released: usize,
}

/// Counters and current state, for metrics and `chaos list`.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
#[non_exhaustive]
pub struct ChaosMetrics {
    /// Injections performed, per kind (`LATENCY`, `ERROR`, ...), including by ended scenarios.
    pub injections: BTreeMap<&'static str, u64>,
    /// Scenarios started.
    pub started: u64,
    /// Requests refused (disabled, invalid, duplicate name, stopped).
    pub refused: u64,
    /// Scenarios ended by `deactivate` or a scoped guard.
    pub deactivated: u64,
    /// Scenarios ended by their time running out.
    pub expired: u64,
    /// Emergency stops.
    pub emergency_stops: u64,
    /// Scenarios live now.
    pub active: usize,
    /// Whether an emergency stop is in force.
    pub stopped: bool,
    /// Whether that stop is the fleet's (only `chaos resume --fleet` lifts it).
    pub fleet_stopped: bool,
    /// Whether chaos is enabled at all.
    pub enabled: bool,
    /// Resources chaos holds now.
    pub resources: ResourceUsage,
}

#[derive(Default)]
struct Counters {
    started: AtomicU64,
    refused: AtomicU64,
    deactivated: AtomicU64,
    expired: AtomicU64,
    emergency_stops: AtomicU64,
}

struct Live {
    until: Instant,
}

struct Inner {
    table: Arc<dyn ChaosTable>,
    breakers: Option<Arc<dyn BreakerSource>>,
    config: ChaosConfig,
    limits: ChaosLimits,
    resources: Resources,
    live: Mutex<HashMap<ScenarioId, Live>>,
    counters: Counters,
    wake: Notify,
    /// A fleet-wide emergency stop is in force here (set by the fleet member).
    fleet_stop: std::sync::atomic::AtomicBool,
}

impl Inner {
    /// Ends every scenario this engine started and releases every resource.
    fn end_all(&self) {
        let ids: Vec<ScenarioId> = lock(&self.live).drain().map(|(id, _)| id).collect();
        for id in ids {
            self.table.disarm(id);
            self.resources.release(id);
        }
        self.resources.release_all();
    }
}

impl Drop for Inner {
    /// The last handle on the engine is gone: nothing could end its scenarios any more, so
    /// they end now (fault-table armings, forced breakers, memory, threads, connections).
    fn drop(&mut self) {
        self.end_all();
    }
}

/// Builder for [`ChaosEngine`].
#[must_use = "a builder does nothing until build() is called"]
pub struct ChaosEngineBuilder {
    table: Arc<dyn ChaosTable>,
    breakers: Option<Arc<dyn BreakerSource>>,
    config: ChaosConfig,
}

impl ChaosEngineBuilder {
    /// The breakers `force_circuit_open` may force (usually an `Arc<BreakerRegistry>`).
    pub fn breakers(mut self, source: Arc<dyn BreakerSource>) -> Self {
        self.breakers = Some(source);
        self
    }

    /// Settings, including the production guard (`enabled`, off by default).
    pub fn config(mut self, config: ChaosConfig) -> Self {
        self.config = config;
        self
    }

    /// Validates the settings and the governance tags of the table and the breakers.
    ///
    /// # Errors
    ///
    /// [`BuildError::Config`] naming a bad setting, [`BuildError::Governance`] on a tag
    /// mismatch.
    pub fn build(self) -> Result<ChaosEngine, BuildError> {
        self.config.validate()?;
        let expected = self.config.governance;
        self.table
            .governance()
            .ensure_matches(expected, "fault table")?;
        if let Some(breakers) = &self.breakers {
            breakers
                .governance()
                .ensure_matches(expected, "breaker registry")?;
        }
        let config = self.config;
        Ok(ChaosEngine {
            inner: Arc::new(Inner {
                limits: config.limits()?,
                resources: Resources::new(Sizes {
                    cpu_threads: config.cpu_threads,
                    memory_max_bytes: config.memory_max_bytes,
                    connections: config.connections,
                    disk_io_bytes_per_sec: config.disk_io_bytes_per_sec,
                    network_bytes_per_sec: config.network_bytes_per_sec,
                }),
                table: self.table,
                breakers: self.breakers,
                config,
                live: Mutex::new(HashMap::new()),
                counters: Counters::default(),
                wake: Notify::new(),
                fleet_stop: std::sync::atomic::AtomicBool::new(false),
            }),
        })
    }
}

/// Injects faults into the data plane's [`FaultTable`] with hard safety bounds, ends them on
/// time, on request or all at once, and really exhausts resources when asked. Cheap to clone.
///
/// Every `inject_*` method returns an [`Injection`] to adjust (name, duration, rate, blast
/// radius) and then [`start`](Injection::start), hold for a scope
/// ([`scoped`](Injection::scoped)) or [`run`](Injection::run) around a test body.
///
/// # Examples
///
/// ```
/// use std::sync::Arc;
/// use std::time::Duration;
/// use resilience_control::chaos::{ChaosConfig, ChaosEngine};
/// use resilience_core::chaos::{Fault, FaultTable};
///
/// let table = Arc::new(FaultTable::builder().build()?);
/// let engine = ChaosEngine::builder(table.clone())
///     .config(ChaosConfig::default().enabled(true)) // off unless configured on
///     .build()?;
/// let db = table.point("db")?;
///
/// let slow = engine
///     .inject_latency("db", Duration::from_millis(200))
///     .duration(Duration::from_secs(30))
///     .scoped()?;
/// assert_eq!(table.check(db), Some(Fault::Latency(Duration::from_millis(200))));
/// drop(slow);
/// assert_eq!(table.check(db), None);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone)]
pub struct ChaosEngine {
    inner: Arc<Inner>,
}

impl ChaosEngine {
    /// A builder over `table`, the fault table the data plane checks.
    pub fn builder<C: Clock>(table: Arc<FaultTable<C>>) -> ChaosEngineBuilder {
        ChaosEngineBuilder {
            table,
            breakers: None,
            config: ChaosConfig::default(),
        }
    }

    /// Delays calls to `target` by `delay` (0 to 5000 ms).
    pub fn inject_latency(&self, target: &str, delay: Duration) -> Injection<'_> {
        Injection::new(self, target, FaultSpec::Latency(delay))
    }

    /// Fails a share `error_rate` (in [0, 1]) of calls to `target` with `code`.
    pub fn inject_errors(&self, target: &str, error_rate: f64, code: ErrorCode) -> Injection<'_> {
        let mut injection = Injection::new(self, target, FaultSpec::Error(code)).rate(error_rate);
        if !(error_rate.is_finite() && (0.0..=1.0).contains(&error_rate)) {
            injection.refusal = Some(ChaosError::Invalid {
                field: "error_rate",
                value: error_rate.to_string(),
                expected: "a share in [0, 1]".to_owned(),
            });
        }
        injection
    }

    /// Forces the breaker `breaker` (and every other breaker named in the blast radius) open,
    /// restoring each when the scenario ends unless someone has moved it since.
    pub fn force_circuit_open(&self, breaker: &str) -> Injection<'_> {
        Injection::new(self, breaker, FaultSpec::BreakerOpen)
    }

    /// Exhausts `resource` at `level` (in (0, 1]) for real, and marks calls to `target` as
    /// finding it exhausted. See [`Resources`] for what each resource does.
    pub fn simulate_resource_exhaustion(
        &self,
        resource: Resource,
        level: f64,
        target: &str,
    ) -> Injection<'_> {
        Injection::new(
            self,
            target,
            FaultSpec::ResourceExhaustion { resource, level },
        )
    }

    /// Makes `target` unreachable.
    pub fn partition(&self, target: &str) -> Injection<'_> {
        Injection::new(self, target, FaultSpec::Partition)
    }

    /// Makes calls to `target` time out after `after`.
    pub fn inject_timeouts(&self, target: &str, after: Duration) -> Injection<'_> {
        Injection::new(self, target, FaultSpec::Timeout(after))
    }

    fn start(&self, injection: Injection<'_>) -> Result<ScenarioId, ChaosEngineError> {
        let result = self.try_start(injection);
        match &result {
            Ok(_) => {
                self.inner.counters.started.fetch_add(1, Ordering::Relaxed);
                self.inner.wake.notify_one();
            }
            Err(err) => {
                self.inner.counters.refused.fetch_add(1, Ordering::Relaxed);
                tracing::warn!(%err, "chaos scenario refused");
            }
        }
        result
    }

    fn try_start(&self, injection: Injection<'_>) -> Result<ScenarioId, ChaosEngineError> {
        let inner = &self.inner;
        if !inner.config.enabled {
            return Err(ChaosEngineError::Disabled);
        }
        if !inner.config.permits_chaos() {
            return Err(ChaosEngineError::Production);
        }
        if let Some(refusal) = injection.refusal {
            return Err(refusal.into());
        }
        let duration = injection
            .duration
            .unwrap_or(inner.config.default_duration.min(inner.config.max_duration));
        let name = injection.name.unwrap_or_else(|| {
            let kind = injection.spec.kind().as_str().to_ascii_lowercase();
            match injection.spec {
                FaultSpec::ResourceExhaustion { resource, .. } => format!(
                    "{kind}:{}:{}",
                    resource.as_str().to_ascii_lowercase(),
                    injection.target
                ),
                _ => format!("{kind}:{}", injection.target),
            }
        });
        let mut scenario = Scenario::new(name, injection.target, injection.spec)
            .duration(duration)
            .rate(injection.rate);
        if let Some(radius) = injection.blast_radius {
            scenario = scenario.blast_radius(radius);
        }
        scenario.validate(&inner.limits)?;
        let breakers = match injection.spec {
            FaultSpec::BreakerOpen => self.breakers_in(&scenario)?,
            _ => Vec::new(),
        };
        let (name, target, spec) = (
            scenario.name().to_owned(),
            scenario.target().to_owned(),
            scenario.spec(),
        );
        let id = inner.table.arm(scenario)?;
        let applied = match spec {
            FaultSpec::BreakerOpen => inner.table.force_breakers_open(id, breakers).map(|_| ()),
            FaultSpec::ResourceExhaustion { resource, level } => {
                inner.resources.exhaust(id, resource, level, duration)
            }
            _ => Ok(()),
        };
        if let Err(err) = applied {
            inner.table.disarm(id);
            return Err(err.into());
        }
        let until = Instant::now() + duration;
        lock(&inner.live).insert(id, Live { until });
        self.expire_at(until);
        tracing::warn!(%id, %name, %target, kind = %spec.kind(), ?duration, "chaos scenario started");
        Ok(id)
    }

    /// Makes sure something sweeps at `until` even when no control plane runs this engine's
    /// [`run`](Self::run): a tokio task when a runtime is at hand, else a thread. Either holds
    /// only a weak handle, so it never keeps the engine alive.
    fn expire_at(&self, until: Instant) {
        let weak = Arc::downgrade(&self.inner);
        let sweep = move || {
            if let Some(inner) = weak.upgrade() {
                ChaosEngine { inner }.sweep();
            }
        };
        match tokio::runtime::Handle::try_current() {
            Ok(runtime) => {
                runtime.spawn(async move {
                    tokio::time::sleep_until(until).await;
                    sweep();
                });
            }
            Err(_) => {
                let wait = until.saturating_duration_since(Instant::now());
                let spawned = std::thread::Builder::new()
                    .name("resilience-chaos-expiry".to_owned())
                    .spawn(move || {
                        std::thread::sleep(wait);
                        sweep();
                    });
                if let Err(err) = spawned {
                    tracing::warn!(%err, "no thread to expire a chaos scenario; the fault table's own deadline still ends its faults");
                }
            }
        }
    }

    /// The breakers to force: the target must exist; other blast-radius members are forced
    /// when they name a breaker.
    fn breakers_in(
        &self,
        scenario: &Scenario,
    ) -> Result<Vec<Arc<dyn ForceableBreaker>>, ChaosEngineError> {
        let unknown = || ChaosEngineError::UnknownBreaker {
            name: scenario.target().to_owned(),
        };
        let source = self.inner.breakers.as_ref().ok_or_else(unknown)?;
        source.forceable(scenario.target()).ok_or_else(unknown)?;
        let mut seen = Vec::new();
        Ok(scenario
            .radius()
            .iter()
            .filter(|name| {
                let fresh = !seen.contains(name);
                seen.push(*name);
                fresh
            })
            .filter_map(|name| source.forceable(name))
            .collect())
    }

    /// Ends the live scenario called `name` (and releases what it holds).
    ///
    /// # Errors
    ///
    /// [`ChaosError::Unknown`] if no live scenario has that name.
    pub fn deactivate(&self, name: &str) -> Result<ScenarioId, ChaosEngineError> {
        let id = self
            .inner
            .table
            .active()
            .into_iter()
            .find(|a| a.scenario.name() == name)
            .map(|a| a.id)
            .ok_or_else(|| ChaosError::Unknown {
                what: format!("{name:?}"),
            })?;
        if self.end(id) {
            self.inner
                .counters
                .deactivated
                .fetch_add(1, Ordering::Relaxed);
        }
        Ok(id)
    }

    /// Ends one arming; `true` if it was live. Used by deactivation and scoped guards.
    pub(crate) fn end(&self, id: ScenarioId) -> bool {
        let disarmed = self.inner.table.disarm(id);
        let released = self.inner.resources.release(id);
        let tracked = lock(&self.inner.live).remove(&id).is_some();
        if disarmed {
            tracing::info!(%id, "chaos scenario ended");
        }
        disarmed || released || tracked
    }

    pub(crate) fn count_deactivated(&self) {
        self.inner
            .counters
            .deactivated
            .fetch_add(1, Ordering::Relaxed);
    }

    /// Stops all chaos at once: one atomic store in the fault table that every later check
    /// sees, then every scenario disarmed, every breaker chaos forced open restored and every
    /// resource released. Starting scenarios is refused until [`resume`](Self::resume).
    pub fn emergency_stop(&self) -> EmergencyStop {
        let table = self.inner.table.emergency_stop();
        let resources_released = self.inner.resources.release_all();
        lock(&self.inner.live).clear();
        self.inner
            .counters
            .emergency_stops
            .fetch_add(1, Ordering::Relaxed);
        let stop = EmergencyStop {
            scenarios: table.scenarios,
            breakers_restored: table.breakers_restored,
            resources_released,
        };
        tracing::warn!(?stop, "chaos emergency stop");
        stop
    }

    /// Allows scenarios again after a local emergency stop.
    ///
    /// # Errors
    ///
    /// [`ChaosEngineError::FleetStopped`] while a fleet-wide stop is in force: that one is
    /// lifted fleet-wide, never by one instance.
    pub fn resume(&self) -> Result<(), ChaosEngineError> {
        if self.is_fleet_stopped() {
            tracing::warn!("local chaos resume refused: a fleet-wide emergency stop is in force");
            return Err(ChaosEngineError::FleetStopped);
        }
        self.inner.table.resume();
        tracing::warn!("chaos resumed after an emergency stop");
        Ok(())
    }

    /// Whether a fleet-wide emergency stop holds this engine.
    pub fn is_fleet_stopped(&self) -> bool {
        self.inner.fleet_stop.load(Ordering::SeqCst)
    }

    /// The fleet member's side: applies (`true`) or lifts a fleet-wide stop here.
    pub(crate) fn fleet_stop(&self, stopped: bool) {
        if stopped {
            self.inner.fleet_stop.store(true, Ordering::SeqCst);
            self.emergency_stop();
        } else if self.inner.fleet_stop.swap(false, Ordering::SeqCst) {
            self.inner.table.resume();
            tracing::info!("fleet emergency stop lifted");
        }
    }

    /// Whether an emergency stop is in force.
    pub fn is_stopped(&self) -> bool {
        self.inner.table.is_stopped()
    }

    /// Whether this deployment allows chaos at all (enabled, and allowed in production when
    /// it is production).
    pub fn is_enabled(&self) -> bool {
        self.inner.config.permits_chaos()
    }

    /// Live scenarios, with time left and injections so far.
    pub fn active(&self) -> Vec<ActiveScenario> {
        self.inner.table.active()
    }

    /// The simulated resources callers consult (connections, bandwidth) and what chaos holds.
    pub fn resources(&self) -> &Resources {
        &self.inner.resources
    }

    /// Counters and current state.
    pub fn metrics(&self) -> ChaosMetrics {
        let c = &self.inner.counters;
        ChaosMetrics {
            injections: FaultKind::ALL
                .iter()
                .map(|&kind| (kind.as_str(), self.inner.table.injections(kind)))
                .collect(),
            started: c.started.load(Ordering::Relaxed),
            refused: c.refused.load(Ordering::Relaxed),
            deactivated: c.deactivated.load(Ordering::Relaxed),
            expired: c.expired.load(Ordering::Relaxed),
            emergency_stops: c.emergency_stops.load(Ordering::Relaxed),
            active: self.inner.table.active().len(),
            stopped: self.inner.table.is_stopped(),
            fleet_stopped: self.is_fleet_stopped(),
            enabled: self.inner.config.permits_chaos(),
            resources: self.inner.resources.usage(),
        }
    }

    /// The settings.
    pub fn config(&self) -> &ChaosConfig {
        &self.inner.config
    }

    /// Governance tag.
    pub fn governance(&self) -> GovernanceHash {
        self.inner.config.governance
    }

    /// Ends every scenario whose time is up, here and in the fault table; returns how many.
    /// [`run`](Self::run) calls it at each expiry.
    pub fn sweep(&self) -> usize {
        let swept = self.inner.table.sweep_expired();
        let now = Instant::now();
        // Only what this call takes out of `live` is counted: two sweeps at once (the expiry
        // task and a caller) both see the table's or the clock's verdict, but only one removes
        // each scenario.
        let mut ended = Vec::new();
        {
            let mut live = lock(&self.inner.live);
            for id in swept {
                if live.remove(&id).is_some() {
                    ended.push(id);
                }
            }
            let overdue: Vec<ScenarioId> = live
                .iter()
                .filter(|(_, l)| l.until <= now)
                .map(|(id, _)| *id)
                .collect();
            for id in overdue {
                live.remove(&id);
                ended.push(id);
            }
        }
        for &id in &ended {
            self.inner.table.disarm(id);
            self.inner.resources.release(id);
        }
        self.inner.resources.release_expired();
        if !ended.is_empty() {
            tracing::info!(count = ended.len(), "chaos scenarios expired");
        }
        self.inner
            .counters
            .expired
            .fetch_add(ended.len() as u64, Ordering::Relaxed);
        ended.len()
    }

    /// Sweeps at each expiry (and at least every `sweep_interval`) until `cancel`, then ends
    /// every scenario this engine started.
    pub async fn run(&self, cancel: CancellationToken) {
        loop {
            let next = {
                let live = lock(&self.inner.live);
                live.values().map(|l| l.until).min()
            };
            let next = [next, self.inner.resources.next_deadline()]
                .into_iter()
                .flatten()
                .chain([Instant::now() + self.inner.config.sweep_interval])
                .min()
                .unwrap_or_else(Instant::now);
            tokio::select! {
                () = cancel.cancelled() => break,
                () = tokio::time::sleep_until(next) => { self.sweep(); }
                () = self.inner.wake.notified() => {}
            }
        }
        self.finish();
    }

    /// Ends every scenario this engine started and releases every resource (at shutdown; also
    /// done when the last handle on the engine is dropped).
    pub fn finish(&self) {
        self.inner.end_all();
    }
}

impl std::fmt::Debug for ChaosEngine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ChaosEngine")
            .field("enabled", &self.inner.config.enabled)
            .field("active", &lock(&self.inner.live).len())
            .field("stopped", &self.inner.table.is_stopped())
            .finish_non_exhaustive()
    }
}

/// A scenario being prepared: adjust it, then [`start`](Self::start), [`scoped`](Self::scoped)
/// or [`run`](Self::run). Nothing happens until one of those.
#[must_use = "an injection does nothing until start(), scoped() or run()"]
pub struct Injection<'e> {
    engine: &'e ChaosEngine,
    target: String,
    spec: FaultSpec,
    name: Option<String>,
    duration: Option<Duration>,
    rate: f64,
    blast_radius: Option<Vec<String>>,
    refusal: Option<ChaosError>,
}

impl<'e> Injection<'e> {
    fn new(engine: &'e ChaosEngine, target: &str, spec: FaultSpec) -> Self {
        Injection {
            engine,
            target: target.to_owned(),
            spec,
            name: None,
            duration: None,
            rate: 1.0,
            blast_radius: None,
            refusal: None,
        }
    }

    /// The scenario's unique name (default `<kind>:<target>`, e.g. `latency:db`, and
    /// `resource_exhaustion:<resource>:<target>` for resources).
    pub fn name(mut self, name: impl Into<String>) -> Self {
        self.name = Some(name.into());
        self
    }

    /// How long it runs (default the configured `default_duration`, 60 s; at most
    /// `max_duration`, 300 s).
    pub fn duration(mut self, duration: Duration) -> Self {
        self.duration = Some(duration);
        self
    }

    /// The share of calls affected, in [0, 1] (default 1).
    pub fn rate(mut self, rate: f64) -> Self {
        self.rate = rate;
        self
    }

    /// Every point it may touch; must contain the target (default: just the target).
    pub fn blast_radius<S: Into<String>>(mut self, targets: impl IntoIterator<Item = S>) -> Self {
        self.blast_radius = Some(targets.into_iter().map(Into::into).collect());
        self
    }

    /// Validates and starts the scenario; it ends on its own when its time is up.
    ///
    /// # Errors
    ///
    /// [`ChaosEngineError`]: chaos disabled, a field out of range (named, with its value), a
    /// target outside the blast radius, a name in use, an emergency stop, an unknown breaker.
    pub fn start(self) -> Result<ScenarioId, ChaosEngineError> {
        let engine = self.engine;
        engine.start(self)
    }

    /// Starts the scenario for as long as the returned guard lives.
    ///
    /// # Errors
    ///
    /// As [`start`](Self::start).
    pub fn scoped(self) -> Result<ScopedChaos, ChaosEngineError> {
        let engine = self.engine.clone();
        let id = self.start()?;
        Ok(ScopedChaos::new(engine, id))
    }

    /// Runs `body` under the scenario and ends it afterwards, also when `body` panics (the
    /// panic then continues). For `#[tokio::test]`s:
    ///
    /// ```
    /// # use std::sync::Arc;
    /// # use std::time::Duration;
    /// # use resilience_control::chaos::{ChaosConfig, ChaosEngine};
    /// # use resilience_core::chaos::{Fault, FaultTable};
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// # let table = Arc::new(FaultTable::builder().build()?);
    /// # let engine = ChaosEngine::builder(table.clone())
    /// #     .config(ChaosConfig::default().enabled(true)).build()?;
    /// let db = table.point("db")?;
    /// engine
    ///     .partition("db")
    ///     .run(async {
    ///         assert_eq!(table.check(db), Some(Fault::Partition));
    ///         // ... exercise the code under test ...
    ///     })
    ///     .await?;
    /// assert_eq!(table.check(db), None);
    /// # Ok(()) }
    /// ```
    ///
    /// # Errors
    ///
    /// As [`start`](Self::start); `body` does not run then.
    pub async fn run<T>(self, body: impl Future<Output = T>) -> Result<T, ChaosEngineError> {
        let guard = self.scoped()?;
        let outcome = crate::task::CatchUnwind::new(body).await;
        drop(guard);
        match outcome {
            Ok(value) => Ok(value),
            Err(panic) => std::panic::resume_unwind(panic),
        }
    }
}

impl std::fmt::Debug for Injection<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Injection")
            .field("target", &self.target)
            .field("spec", &self.spec)
            .field("name", &self.name)
            .field("duration", &self.duration)
            .field("rate", &self.rate)
            .finish_non_exhaustive()
    }
}
