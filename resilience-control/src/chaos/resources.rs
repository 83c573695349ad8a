//! [`Resources`]: what a RESOURCE_EXHAUSTION scenario really starves. CPU and memory are taken
//! from the process (busy threads, resident ballast); connections and bandwidth are gates that
//! callers consult ([`ConnectionGate`], [`Throttle`]), so the starvation reaches their code.
//!
//! Every holding is bounded by its level (shares of one resource never add up past 1.0) and by
//! the scenario's time, and is released by expiry, deactivation or an emergency stop. Busy
//! threads, connection holds and throttles also end on their own at the deadline, so a stalled
//! sweeper cannot leave them behind; only memory ballast waits for the sweeper.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use resilience_core::chaos::{ChaosError, Resource, ScenarioId};
use serde::Serialize;
use tokio::sync::Notify;
use tokio::time::Instant;

/// Critical sections here are bookkeeping; a panic elsewhere never leaves them half-done.
fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Sizes of the simulated resources (from [`ChaosConfig`](super::ChaosConfig)).
#[derive(Clone, Copy, Debug)]
pub(crate) struct Sizes {
    pub(crate) cpu_threads: usize,
    pub(crate) memory_max_bytes: usize,
    pub(crate) connections: usize,
    pub(crate) disk_io_bytes_per_sec: u64,
    pub(crate) network_bytes_per_sec: u64,
}

/// What is held right now, per resource.
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize)]
#[non_exhaustive]
pub struct ResourceUsage {
    /// Busy threads running (CPU exhaustion).
    pub cpu_threads: usize,
    /// Share of each busy thread's time spent spinning.
    pub cpu_level: f64,
    /// Bytes of resident ballast (MEMORY exhaustion).
    pub memory_bytes: usize,
    /// Connection slots held by chaos.
    pub connections_held: usize,
    /// Connection slots held by callers.
    pub connections_in_use: usize,
    /// Share of disk bandwidth taken away.
    pub disk_io_level: f64,
    /// Share of network bandwidth taken away.
    pub network_level: f64,
}

enum Effect {
    Cpu { stop: Arc<AtomicBool> },
    Memory { ballast: Vec<u8> },
    Connections,
    DiskIo,
    Network,
}

struct Holding {
    id: ScenarioId,
    resource: Resource,
    level: f64,
    until: Instant,
    effect: Effect,
}

/// The resources chaos can exhaust. Cheap to clone; callers keep a clone and consult it.
#[derive(Clone)]
pub struct Resources {
    inner: Arc<Inner>,
}

struct Inner {
    sizes: Sizes,
    holdings: Mutex<Vec<Holding>>,
    cpu_live: Arc<AtomicUsize>,
    connections: ConnectionGate,
    disk_io: Throttle,
    network: Throttle,
}

impl Resources {
    pub(crate) fn new(sizes: Sizes) -> Self {
        Resources {
            inner: Arc::new(Inner {
                sizes,
                holdings: Mutex::new(Vec::new()),
                cpu_live: Arc::new(AtomicUsize::new(0)),
                connections: ConnectionGate::new(sizes.connections),
                disk_io: Throttle::new(sizes.disk_io_bytes_per_sec),
                network: Throttle::new(sizes.network_bytes_per_sec),
            }),
        }
    }

    /// The connection slots callers take before opening a connection.
    pub fn connections(&self) -> &ConnectionGate {
        &self.inner.connections
    }

    /// The disk bandwidth callers consume before reading or writing.
    pub fn disk_io(&self) -> &Throttle {
        &self.inner.disk_io
    }

    /// The network bandwidth callers consume before sending.
    pub fn network(&self) -> &Throttle {
        &self.inner.network
    }

    /// What chaos holds right now.
    pub fn usage(&self) -> ResourceUsage {
        let holdings = lock(&self.inner.holdings);
        let level_of = |resource: Resource| -> f64 {
            holdings
                .iter()
                .filter(|h| h.resource == resource)
                .map(|h| h.level)
                // Not `sum()`: an empty float sum is -0.0, which JSON would show as such.
                .fold(0.0, |total, level| total + level)
                .min(1.0)
        };
        let connections = self.inner.connections.counts();
        ResourceUsage {
            cpu_threads: self.inner.cpu_live.load(Ordering::Acquire),
            cpu_level: level_of(Resource::Cpu),
            memory_bytes: holdings
                .iter()
                .map(|h| match &h.effect {
                    Effect::Memory { ballast } => ballast.len(),
                    _ => 0,
                })
                .sum(),
            connections_held: connections.held,
            connections_in_use: connections.in_use,
            disk_io_level: self.inner.disk_io.level(),
            network_level: self.inner.network.level(),
        }
    }

    /// Starves `resource` at `level` for `duration` on behalf of scenario `id`.
    pub(crate) fn exhaust(
        &self,
        id: ScenarioId,
        resource: Resource,
        level: f64,
        duration: Duration,
    ) -> Result<(), ChaosError> {
        let mut holdings = lock(&self.inner.holdings);
        let taken: f64 = holdings
            .iter()
            .filter(|h| h.resource == resource)
            .map(|h| h.level)
            .sum();
        // A little slack so that e.g. 0.7 + 0.3 is accepted despite rounding.
        if taken + level > 1.0 + 1e-9 {
            return Err(ChaosError::Invalid {
                field: "level",
                value: level.to_string(),
                expected: format!(
                    "at most {:.3}: other scenarios already take {taken:.3} of {resource}",
                    (1.0 - taken).max(0.0)
                ),
            });
        }
        let until = Instant::now() + duration;
        let sizes = self.inner.sizes;
        let effect = match resource {
            Resource::Cpu => Effect::Cpu {
                stop: self.burn_cpu(level, duration, sizes.cpu_threads),
            },
            Resource::Memory => Effect::Memory {
                ballast: ballast((sizes.memory_max_bytes as f64 * level) as usize),
            },
            Resource::Connections => {
                let slots = (sizes.connections as f64 * level).ceil() as usize;
                self.inner.connections.hold(id, slots, until);
                Effect::Connections
            }
            Resource::DiskIo => {
                self.inner.disk_io.limit(id, level, until);
                Effect::DiskIo
            }
            Resource::NetworkBandwidth => {
                self.inner.network.limit(id, level, until);
                Effect::Network
            }
            _ => {
                return Err(ChaosError::Invalid {
                    field: "resource",
                    value: resource.to_string(),
                    expected: "CPU, MEMORY, CONNECTIONS, DISK_IO or NETWORK_BANDWIDTH".to_owned(),
                });
            }
        };
        holdings.push(Holding {
            id,
            resource,
            level,
            until,
            effect,
        });
        Ok(())
    }

    /// Releases what scenario `id` holds; returns whether it held anything.
    pub(crate) fn release(&self, id: ScenarioId) -> bool {
        let released: Vec<Holding> = {
            let mut holdings = lock(&self.inner.holdings);
            let (gone, kept) = std::mem::take(&mut *holdings)
                .into_iter()
                .partition(|h| h.id == id);
            *holdings = kept;
            gone
        };
        let any = !released.is_empty();
        released.into_iter().for_each(|h| self.undo(h));
        any
    }

    /// Releases every holding whose time is up; returns how many.
    pub(crate) fn release_expired(&self) -> usize {
        let now = Instant::now();
        let released: Vec<Holding> = {
            let mut holdings = lock(&self.inner.holdings);
            let (gone, kept) = std::mem::take(&mut *holdings)
                .into_iter()
                .partition(|h| h.until <= now);
            *holdings = kept;
            gone
        };
        let n = released.len();
        released.into_iter().for_each(|h| self.undo(h));
        n
    }

    /// Releases everything.
    pub(crate) fn release_all(&self) -> usize {
        let released = std::mem::take(&mut *lock(&self.inner.holdings));
        let n = released.len();
        released.into_iter().for_each(|h| self.undo(h));
        n
    }

    /// The earliest deadline of any holding.
    pub(crate) fn next_deadline(&self) -> Option<Instant> {
        lock(&self.inner.holdings).iter().map(|h| h.until).min()
    }

    fn undo(&self, holding: Holding) {
        match holding.effect {
            Effect::Cpu { stop } => stop.store(true, Ordering::Release),
            Effect::Memory { ballast } => drop(ballast),
            Effect::Connections => self.inner.connections.unhold(holding.id),
            Effect::DiskIo => self.inner.disk_io.unlimit(holding.id),
            Effect::Network => self.inner.network.unlimit(holding.id),
        }
        tracing::info!(resource = %holding.resource, level = holding.level, scenario = %holding.id, "chaos resource released");
    }

    /// Starts `threads` threads, each spinning for `level` of every 10 ms, until `stop` or
    /// `duration` (on the wall clock: the threads end on their own even if nobody stops them).
    fn burn_cpu(&self, level: f64, duration: Duration, threads: usize) -> Arc<AtomicBool> {
        const PERIOD: Duration = Duration::from_millis(10);
        let stop = Arc::new(AtomicBool::new(false));
        let deadline = std::time::Instant::now() + duration;
        let busy = PERIOD.mul_f64(level.clamp(0.0, 1.0));
        for n in 0..threads {
            let stop = Arc::clone(&stop);
            let live = Arc::clone(&self.inner.cpu_live);
            live.fetch_add(1, Ordering::AcqRel);
            let spawned = std::thread::Builder::new()
                .name(format!("chaos-cpu-{n}"))
                .spawn(move || {
                    let _live = LiveThread(live);
                    while !stop.load(Ordering::Acquire) && std::time::Instant::now() < deadline {
                        let start = std::time::Instant::now();
                        while start.elapsed() < busy {
                            std::hint::spin_loop();
                        }
                        let rest = PERIOD.saturating_sub(start.elapsed());
                        if !rest.is_zero() {
                            std::thread::sleep(rest);
                        }
                    }
                });
            if let Err(err) = spawned {
                self.inner.cpu_live.fetch_sub(1, Ordering::AcqRel);
                tracing::warn!(%err, "could not start a chaos CPU thread");
            }
        }
        stop
    }
}

/// Decrements the live-thread count when a busy thread ends, however it ends.
struct LiveThread(Arc<AtomicUsize>);

impl Drop for LiveThread {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

/// `bytes` of memory, every page written so the ballast is resident, not just reserved.
fn ballast(bytes: usize) -> Vec<u8> {
    let mut ballast = vec![0u8; bytes];
    for page in ballast.chunks_mut(4096) {
        page[0] = 1;
    }
    ballast
}

impl std::fmt::Debug for Resources {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Resources")
            .field("usage", &self.usage())
            .finish()
    }
}

/// Connection slots shared by callers: take one with [`try_acquire`](Self::try_acquire) before
/// opening a connection. CONNECTIONS exhaustion holds a share of the slots, so callers find
/// fewer (none at level 1.0) until it ends.
///
/// # Examples
///
/// ```
/// # use resilience_control::chaos::{ChaosConfig, ChaosEngine};
/// # use resilience_core::chaos::FaultTable;
/// # use std::sync::Arc;
/// # let engine = ChaosEngine::builder(Arc::new(FaultTable::builder().build()?))
/// #     .config(ChaosConfig::default().enabled(true).connections(2))
/// #     .build()?;
/// let gate = engine.resources().connections();
/// let first = gate.try_acquire().expect("a free slot");
/// let _second = gate.try_acquire().expect("a free slot");
/// assert!(gate.try_acquire().is_none(), "both slots in use");
/// drop(first);
/// assert!(gate.try_acquire().is_some());
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug)]
pub struct ConnectionGate {
    capacity: usize,
    state: Arc<Mutex<GateState>>,
}

#[derive(Debug, Default)]
struct GateState {
    in_use: usize,
    held: Vec<(ScenarioId, usize, Instant)>,
}

struct GateCounts {
    in_use: usize,
    held: usize,
}

impl GateState {
    fn held_now(&mut self) -> usize {
        let now = Instant::now();
        self.held.retain(|(_, _, until)| *until > now);
        self.held.iter().map(|(_, n, _)| n).sum()
    }
}

impl ConnectionGate {
    fn new(capacity: usize) -> Self {
        ConnectionGate {
            capacity,
            state: Arc::new(Mutex::new(GateState::default())),
        }
    }

    /// A slot, or `None` when every slot is in use or held by chaos.
    pub fn try_acquire(&self) -> Option<ConnectionPermit> {
        let mut state = lock(&self.state);
        let held = state.held_now();
        if state.in_use + held >= self.capacity {
            return None;
        }
        state.in_use += 1;
        Some(ConnectionPermit {
            state: Arc::clone(&self.state),
        })
    }

    /// Slots free right now.
    pub fn available(&self) -> usize {
        let mut state = lock(&self.state);
        let held = state.held_now();
        self.capacity.saturating_sub(state.in_use + held)
    }

    /// Total slots.
    pub fn capacity(&self) -> usize {
        self.capacity
    }

    fn counts(&self) -> GateCounts {
        let mut state = lock(&self.state);
        GateCounts {
            held: state.held_now(),
            in_use: state.in_use,
        }
    }

    fn hold(&self, id: ScenarioId, slots: usize, until: Instant) {
        lock(&self.state).held.push((id, slots, until));
    }

    fn unhold(&self, id: ScenarioId) {
        lock(&self.state).held.retain(|(held, _, _)| *held != id);
    }
}

/// One connection slot; dropping it gives the slot back.
#[derive(Debug)]
#[must_use = "the slot is released when the permit is dropped"]
pub struct ConnectionPermit {
    state: Arc<Mutex<GateState>>,
}

impl Drop for ConnectionPermit {
    fn drop(&mut self) {
        let mut state = lock(&self.state);
        state.in_use = state.in_use.saturating_sub(1);
    }
}

/// A bandwidth gate callers consult with [`consume`](Self::consume) before moving bytes.
/// Outside chaos it returns at once; under DISK_IO or NETWORK_BANDWIDTH exhaustion at `level`
/// it paces callers to `baseline × (1 - level)` bytes per second (a token bucket without
/// burst: each call reserves its bytes' share of the link, in call order), and at level 1.0
/// it holds them until the scenario ends.
#[derive(Debug)]
pub struct Throttle {
    baseline: f64,
    state: Mutex<ThrottleState>,
    changed: Notify,
}

#[derive(Debug)]
struct ThrottleState {
    limits: Vec<(ScenarioId, f64, Instant)>,
    /// When the link is next free (theoretical arrival time of the next byte).
    free_at: Instant,
}

enum Pace {
    Go,
    Reserved(Instant),
    Blocked(Instant),
}

impl Throttle {
    fn new(baseline: u64) -> Self {
        Throttle {
            baseline: baseline as f64,
            state: Mutex::new(ThrottleState {
                limits: Vec::new(),
                free_at: Instant::now(),
            }),
            changed: Notify::new(),
        }
    }

    /// Waits until `bytes` may move; returns how long that took.
    pub async fn consume(&self, bytes: u64) -> Duration {
        let started = Instant::now();
        loop {
            let changed = self.changed.notified();
            tokio::pin!(changed);
            changed.as_mut().enable();
            match self.pace(bytes) {
                Pace::Go => return started.elapsed(),
                Pace::Reserved(at) => {
                    tokio::select! {
                        () = tokio::time::sleep_until(at) => {}
                        () = &mut changed => {}
                    }
                    return started.elapsed();
                }
                Pace::Blocked(until) => {
                    tokio::select! {
                        () = tokio::time::sleep_until(until) => {}
                        () = &mut changed => {}
                    }
                }
            }
        }
    }

    /// Share of bandwidth taken away right now.
    pub fn level(&self) -> f64 {
        let mut state = lock(&self.state);
        Self::level_now(&mut state, Instant::now())
    }

    fn level_now(state: &mut ThrottleState, now: Instant) -> f64 {
        state.limits.retain(|(_, _, until)| *until > now);
        state
            .limits
            .iter()
            .map(|(_, level, _)| level)
            .fold(0.0, |total, level| total + level)
            .min(1.0)
    }

    fn pace(&self, bytes: u64) -> Pace {
        let now = Instant::now();
        let mut state = lock(&self.state);
        let level = Self::level_now(&mut state, now);
        if level <= 0.0 {
            return Pace::Go;
        }
        let rate = self.baseline * (1.0 - level);
        if rate < 1.0 {
            let until = state
                .limits
                .iter()
                .map(|(_, _, until)| *until)
                .min()
                .unwrap_or(now);
            return Pace::Blocked(until);
        }
        let start = state.free_at.max(now);
        state.free_at = start + Duration::from_secs_f64(bytes as f64 / rate);
        if state.free_at <= now {
            Pace::Go
        } else {
            Pace::Reserved(state.free_at)
        }
    }

    fn limit(&self, id: ScenarioId, level: f64, until: Instant) {
        lock(&self.state).limits.push((id, level, until));
        self.changed.notify_waiters();
    }

    fn unlimit(&self, id: ScenarioId) {
        {
            let mut state = lock(&self.state);
            state.limits.retain(|(held, _, _)| *held != id);
            if state.limits.is_empty() {
                state.free_at = Instant::now();
            }
        }
        self.changed.notify_waiters();
    }
}
