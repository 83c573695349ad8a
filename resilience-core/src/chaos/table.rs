//! [`FaultTable`]: armed chaos scenarios, read by the data path with one atomic load when
//! nothing is armed.

use core::time::Duration;
use std::collections::HashMap;
use std::sync::Arc;

use arc_swap::ArcSwap;
use crossbeam_utils::CachePadded;

use crate::breaker::{CircuitBreaker, ForcedOpen};
use crate::clock::{Clock, CoarseClock, Nanos};
use crate::error::ConfigError;
use crate::governance::GovernanceHash;
use crate::sync::{AtomicU32, AtomicU64, Ordering};

use super::fault::{Fault, FaultKind, packed};
use super::rng;
use super::scenario::{ChaosError, ChaosLimits, Scenario, ScenarioId};
use super::slot::{self, ENTRIES, EntryData, Slot};

/// Low bit of the armed word: an emergency stop is in force.
const STOPPED: u64 = 1;
/// The armed word counts live entries in its upper bits.
const ENTRY: u64 = 2;

/// A resolved chaos point: resolve once per target with [`FaultTable::point`], then check it on
/// every call.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct ChaosPoint {
    index: u32,
    table: u32,
}

impl ChaosPoint {
    /// The point's index in its table.
    pub const fn index(self) -> u32 {
        self.index
    }
}

/// A breaker chaos can force open and later restore (implemented by [`CircuitBreaker`]).
pub trait ForceableBreaker: Send + Sync + 'static {
    /// The breaker's name, for reports.
    fn breaker_name(&self) -> &str;
    /// See [`CircuitBreaker::force_open_for`].
    ///
    /// # Errors
    ///
    /// As [`CircuitBreaker::force_open_for`].
    fn force_open_for(&self, duration: Duration) -> Result<ForcedOpen, ConfigError>;
    /// See [`CircuitBreaker::restore_if_unchanged`].
    fn restore_if_unchanged(&self, forced: ForcedOpen) -> bool;
}

impl<C: Clock> ForceableBreaker for CircuitBreaker<C> {
    fn breaker_name(&self) -> &str {
        self.name()
    }

    fn force_open_for(&self, duration: Duration) -> Result<ForcedOpen, ConfigError> {
        CircuitBreaker::force_open_for(self, duration)
    }

    fn restore_if_unchanged(&self, forced: ForcedOpen) -> bool {
        CircuitBreaker::restore_if_unchanged(self, forced)
    }
}

/// One arming of a scenario.
struct Record {
    id: ScenarioId,
    scenario: Scenario,
    expires_at: Nanos,
    points: Vec<u32>,
}

struct Forced {
    scenario: ScenarioId,
    breaker: Arc<dyn ForceableBreaker>,
    token: ForcedOpen,
}

/// An armed scenario as reported by [`FaultTable::active`].
#[derive(Clone, Debug, PartialEq)]
#[non_exhaustive]
pub struct ActiveScenario {
    /// This arming's id.
    pub id: ScenarioId,
    /// The scenario as armed.
    pub scenario: Scenario,
    /// Time left before it expires.
    pub remaining: Duration,
    /// Injections it has made so far.
    pub injections: u64,
}

/// What an [`FaultTable::emergency_stop`] did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct StopReport {
    /// Scenarios disarmed.
    pub scenarios: usize,
    /// Breakers chaos had forced open, restored.
    pub breakers_restored: usize,
}

/// Builder for [`FaultTable`].
#[must_use = "a builder does nothing until build() is called"]
pub struct FaultTableBuilder<C: Clock = CoarseClock> {
    clock: C,
    limits: ChaosLimits,
    capacity: usize,
    governance: GovernanceHash,
}

impl<C: Clock> FaultTableBuilder<C> {
    /// The clock expiries are checked against (default: the global [`CoarseClock`]).
    pub fn clock<C2: Clock>(self, clock: C2) -> FaultTableBuilder<C2> {
        FaultTableBuilder {
            clock,
            limits: self.limits,
            capacity: self.capacity,
            governance: self.governance,
        }
    }

    /// The hard bounds every scenario is checked against.
    pub fn limits(mut self, limits: ChaosLimits) -> Self {
        self.limits = limits;
        self
    }

    /// Most distinct points (default 256); the slots are allocated up front.
    pub fn capacity(mut self, points: usize) -> Self {
        self.capacity = points;
        self
    }

    /// Governance tag.
    pub fn governance(mut self, hash: GovernanceHash) -> Self {
        self.governance = hash;
        self
    }

    /// Builds the table.
    ///
    /// # Errors
    ///
    /// [`ChaosError::Invalid`] if the capacity is zero or above 65536.
    pub fn build(self) -> Result<FaultTable<C>, ChaosError> {
        if self.capacity == 0 || self.capacity > 1 << 16 {
            return Err(ChaosError::invalid(
                "capacity",
                self.capacity,
                "1 to 65536 points",
            ));
        }
        static NEXT_TABLE: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(1);
        Ok(FaultTable {
            armed: CachePadded::new(AtomicU64::new(0)),
            slots: (0..self.capacity).map(|_| Slot::default()).collect(),
            points: ArcSwap::from_pointee(HashMap::new()),
            scenarios: ArcSwap::from_pointee(Vec::new()),
            forced: ArcSwap::from_pointee(Vec::new()),
            next_id: AtomicU32::new(1),
            retired_injections: Default::default(),
            limits: self.limits,
            clock: self.clock,
            id: NEXT_TABLE.fetch_add(1, std::sync::atomic::Ordering::Relaxed),
            governance: self.governance,
        })
    }
}

/// Armed chaos scenarios, checked on the data path.
///
/// With nothing armed, [`check`](Self::check) is one atomic load. With scenarios armed it reads
/// the point's slot under a seqlock (a handful of loads), the clock, and a per-thread random
/// number for partial rates. Every scenario's expiry is checked right there, so chaos ends on
/// time even if no control plane runs, and [`emergency_stop`](Self::emergency_stop) is one
/// atomic store that every later check sees.
///
/// # Examples
///
/// ```
/// use resilience_core::chaos::{Fault, FaultSpec, FaultTable, Scenario};
/// use resilience_core::ManualClock;
/// use std::time::Duration;
///
/// let clock = ManualClock::new();
/// let table = FaultTable::builder().clock(clock.clone()).build()?;
/// let db = table.point("db")?; // resolve once, check on every call
/// assert_eq!(table.check(db), None);
///
/// let delay = Duration::from_millis(250);
/// table.arm(Scenario::new("slow-db", "db", FaultSpec::Latency(delay)).duration(Duration::from_secs(10)))?;
/// assert_eq!(table.check(db), Some(Fault::Latency(delay)));
///
/// clock.advance(Duration::from_secs(10));
/// assert_eq!(table.check(db), None, "expired on the data path, no control plane needed");
/// # Ok::<(), resilience_core::chaos::ChaosError>(())
/// ```
pub struct FaultTable<C: Clock = CoarseClock> {
    /// `live entries * 2 | STOPPED`: zero means nothing to do.
    armed: CachePadded<AtomicU64>,
    slots: Box<[Slot]>,
    points: ArcSwap<HashMap<Box<str>, u32>>,
    scenarios: ArcSwap<Vec<Arc<Record>>>,
    forced: ArcSwap<Vec<Arc<Forced>>>,
    next_id: AtomicU32,
    /// Injections by scenarios no longer armed, per kind (live ones are counted in the slots,
    /// so an injecting check pays one counter, not two).
    retired_injections: [AtomicU64; 6],
    limits: ChaosLimits,
    clock: C,
    id: u32,
    governance: GovernanceHash,
}

impl FaultTable<CoarseClock> {
    /// A builder with the default limits, 256 points, and the global clock.
    pub fn builder() -> FaultTableBuilder<CoarseClock> {
        FaultTableBuilder {
            clock: CoarseClock::default(),
            limits: ChaosLimits::default(),
            capacity: 256,
            governance: GovernanceHash::DEFAULT,
        }
    }
}

impl<C: Clock> FaultTable<C> {
    /// Resolves `target` to a point, registering it on first use.
    ///
    /// # Errors
    ///
    /// [`ChaosError::Invalid`] for a bad name, [`ChaosError::TooManyPoints`] when full.
    pub fn point(&self, target: &str) -> Result<ChaosPoint, ChaosError> {
        Ok(ChaosPoint {
            index: self.register(target)?,
            table: self.id,
        })
    }

    fn register(&self, target: &str) -> Result<u32, ChaosError> {
        if let Some(&index) = self.points.load().get(target) {
            return Ok(index);
        }
        if target.is_empty() || target.len() > 200 || target.chars().any(char::is_control) {
            return Err(ChaosError::invalid(
                "target",
                format_args!("{target:?}"),
                "1 to 200 bytes without control characters",
            ));
        }
        let mut result = Err(ChaosError::TooManyPoints {
            capacity: self.slots.len(),
        });
        self.points.rcu(|current| {
            if let Some(&index) = current.get(target) {
                result = Ok(index);
                return Arc::clone(current);
            }
            if current.len() >= self.slots.len() {
                result = Err(ChaosError::TooManyPoints {
                    capacity: self.slots.len(),
                });
                return Arc::clone(current);
            }
            let index = current.len() as u32;
            result = Ok(index);
            let mut next = HashMap::clone(current);
            next.insert(target.into(), index);
            Arc::new(next)
        });
        result
    }

    /// The fault to apply to this call at `point`, if any.
    ///
    /// Never blocks, allocates or makes a syscall. With nothing armed (or an emergency stop in
    /// force) it is one relaxed atomic load.
    #[inline(always)]
    pub fn check(&self, point: ChaosPoint) -> Option<Fault> {
        // Relaxed: a check that races an arm may miss the new scenario by a few nanoseconds;
        // one that starts after a stop's store sees it (coherence of this one word).
        let armed = self.armed.load(Ordering::Relaxed);
        if armed == 0 || armed & STOPPED != 0 {
            return None;
        }
        self.check_armed(point)
    }

    #[inline(never)]
    fn check_armed(&self, point: ChaosPoint) -> Option<Fault> {
        if point.table != self.id {
            return None;
        }
        let slot = self.slots.get(point.index as usize)?;
        let mut entries = [EntryData::default(); ENTRIES];
        let n = slot.read(&mut entries)?;
        if n == 0 {
            return None;
        }
        let now = self.clock.now().as_nanos();
        for (index, entry) in entries[..n].iter().enumerate() {
            if now >= entry.expiry {
                continue;
            }
            let fires = entry.threshold == u64::MAX
                || (entry.threshold != 0 && rng::next_u64() < entry.threshold);
            if fires {
                let fault = packed::unpack(entry.spec)?;
                slot.hit(index);
                return Some(fault);
            }
        }
        None
    }

    /// Arms `scenario` after checking it against the table's limits.
    ///
    /// A name is unique among live scenarios; once a scenario has expired its name may be used
    /// again, and the new arming gets a new [`ScenarioId`] so nothing aimed at the old one can
    /// end it.
    ///
    /// # Errors
    ///
    /// Any [`ChaosError`]: invalid fields, a target outside the blast radius, a duplicate name,
    /// an emergency stop in force, or a point that is full.
    pub fn arm(&self, scenario: Scenario) -> Result<ScenarioId, ChaosError> {
        scenario.validate(&self.limits)?;
        if self.is_stopped() {
            return Err(ChaosError::EmergencyStopped);
        }
        let mut points = Vec::with_capacity(scenario.radius().len());
        for target in scenario.radius() {
            let index = self.register(target)?;
            if !points.contains(&index) {
                points.push(index);
            }
        }
        let now = self.clock.now();
        let id = ScenarioId(self.next_id.fetch_add(1, Ordering::Relaxed));
        let record = Arc::new(Record {
            id,
            expires_at: now + scenario.duration_limit(),
            points,
            scenario,
        });
        self.claim_name(&record, now)?;
        let entry = EntryData {
            spec: packed::pack(&record.scenario.spec()),
            threshold: rng::threshold(record.scenario.injection_rate()),
            expiry: record.expires_at.as_nanos(),
            scenario: id.0,
        };
        for (written, &point) in record.points.iter().enumerate() {
            if !self.slots[point as usize].write(|data, hits| slot::insert(data, hits, entry)) {
                for &done in &record.points[..written] {
                    self.remove_entries(done, id, record.scenario.spec().kind());
                }
                self.scenarios.rcu(|current| without(current, id));
                return Err(ChaosError::TooManyFaults {
                    target: self.name_of_point(point),
                    max: ENTRIES,
                });
            }
            self.armed.fetch_add(ENTRY, Ordering::Release);
        }
        if self.is_stopped() {
            // Raced an emergency stop: the stop wins.
            self.disarm(id);
            return Err(ChaosError::EmergencyStopped);
        }
        Ok(id)
    }

    /// Adds `record` to the live scenarios unless its name is taken by a live one; expired
    /// holders of the name are dropped (and their entries cleared).
    fn claim_name(&self, record: &Arc<Record>, now: Nanos) -> Result<(), ChaosError> {
        let mut taken = false;
        let mut expired = Vec::new();
        self.scenarios.rcu(|current| {
            taken = false;
            expired.clear();
            let mut next = Vec::with_capacity(current.len() + 1);
            for r in current.iter() {
                if r.scenario.name() != record.scenario.name() {
                    next.push(Arc::clone(r));
                } else if r.expires_at > now {
                    taken = true;
                    return Arc::clone(current);
                } else {
                    expired.push(Arc::clone(r));
                }
            }
            next.push(Arc::clone(record));
            Arc::new(next)
        });
        if taken {
            return Err(ChaosError::DuplicateName {
                name: record.scenario.name().to_owned(),
            });
        }
        for old in expired {
            self.retire(&old);
        }
        Ok(())
    }

    fn remove_entries(&self, point: u32, id: ScenarioId, kind: FaultKind) {
        let (removed, hits) =
            self.slots[point as usize].write(|data, hits| slot::remove(data, hits, id.0));
        self.retired_injections[kind.index()].fetch_add(hits, Ordering::Relaxed);
        self.armed
            .fetch_sub(ENTRY * removed as u64, Ordering::Release);
    }

    /// Clears a record's entries and restores the breakers it forced.
    fn retire(&self, record: &Record) -> usize {
        for &point in &record.points {
            self.remove_entries(point, record.id, record.scenario.spec().kind());
        }
        self.restore_forced(|f| f.scenario == record.id)
    }

    fn restore_forced(&self, matches: impl Fn(&Forced) -> bool) -> usize {
        let mut taken = Vec::new();
        self.forced.rcu(|current| {
            taken = current.iter().filter(|f| matches(f)).cloned().collect();
            Arc::new(
                current
                    .iter()
                    .filter(|f| !matches(f))
                    .cloned()
                    .collect::<Vec<_>>(),
            )
        });
        taken
            .iter()
            .filter(|f| f.breaker.restore_if_unchanged(f.token))
            .count()
    }

    fn name_of_point(&self, point: u32) -> String {
        self.points
            .load()
            .iter()
            .find(|(_, i)| **i == point)
            .map(|(name, _)| name.to_string())
            .unwrap_or_default()
    }

    /// Disarms one arming; returns whether it was live. Breakers it forced open are restored
    /// unless someone has moved them since.
    pub fn disarm(&self, id: ScenarioId) -> bool {
        let mut found = None;
        self.scenarios.rcu(|current| {
            found = current.iter().find(|r| r.id == id).cloned();
            without(current, id)
        });
        match found {
            Some(record) => {
                self.retire(&record);
                true
            }
            None => false,
        }
    }

    /// Disarms the live scenario called `name`.
    ///
    /// # Errors
    ///
    /// [`ChaosError::Unknown`] if there is none.
    pub fn disarm_name(&self, name: &str) -> Result<ScenarioId, ChaosError> {
        let id = self
            .scenarios
            .load()
            .iter()
            .find(|r| r.scenario.name() == name)
            .map(|r| r.id)
            .ok_or_else(|| ChaosError::Unknown {
                what: format!("{name:?}"),
            })?;
        self.disarm(id);
        Ok(id)
    }

    /// Stops all chaos at once: one atomic store that every later check sees, then every
    /// scenario is disarmed and every breaker chaos forced open is restored. Arming is refused
    /// until [`resume`](Self::resume).
    pub fn emergency_stop(&self) -> StopReport {
        self.armed.fetch_or(STOPPED, Ordering::SeqCst);
        let retired = self.scenarios.swap(Arc::new(Vec::new()));
        let mut report = StopReport {
            scenarios: retired.len(),
            breakers_restored: 0,
        };
        for record in retired.iter() {
            report.breakers_restored += self.retire(record);
        }
        report.breakers_restored += self.restore_forced(|_| true);
        report
    }

    /// Allows arming again after an emergency stop.
    pub fn resume(&self) {
        self.armed.fetch_and(!STOPPED, Ordering::SeqCst);
    }

    /// Whether an emergency stop is in force.
    pub fn is_stopped(&self) -> bool {
        self.armed.load(Ordering::SeqCst) & STOPPED != 0
    }

    /// Forces `breakers` open for the rest of scenario `id`'s time. Each restores itself on its
    /// own call path when the time is up (even with no control plane), and is restored at once
    /// by [`disarm`](Self::disarm) or [`emergency_stop`](Self::emergency_stop) if nobody has
    /// moved it since.
    ///
    /// # Errors
    ///
    /// [`ChaosError::Unknown`] if `id` is not live; [`ChaosError::EmergencyStopped`].
    pub fn force_breakers_open(
        &self,
        id: ScenarioId,
        breakers: impl IntoIterator<Item = Arc<dyn ForceableBreaker>>,
    ) -> Result<usize, ChaosError> {
        if self.is_stopped() {
            return Err(ChaosError::EmergencyStopped);
        }
        let remaining = self
            .scenarios
            .load()
            .iter()
            .find(|r| r.id == id)
            .map(|r| r.expires_at.saturating_since(self.clock.now()))
            .filter(|d| !d.is_zero())
            .ok_or_else(|| ChaosError::Unknown {
                what: id.to_string(),
            })?;
        let mut forced = Vec::new();
        for breaker in breakers {
            let token = breaker
                .force_open_for(remaining.max(Duration::from_millis(1)))
                .map_err(|e| ChaosError::invalid("duration", format_args!("{remaining:?}"), e))?;
            forced.push(Arc::new(Forced {
                scenario: id,
                breaker,
                token,
            }));
        }
        let count = forced.len();
        self.forced.rcu(|current| {
            let mut next = Vec::clone(current);
            next.extend(forced.iter().cloned());
            next
        });
        if self.is_stopped() {
            self.restore_forced(|_| true);
            return Err(ChaosError::EmergencyStopped);
        }
        Ok(count)
    }

    /// Live scenarios, with the time they have left and the injections they made.
    pub fn active(&self) -> Vec<ActiveScenario> {
        let now = self.clock.now();
        self.scenarios
            .load()
            .iter()
            .filter(|r| r.expires_at > now)
            .map(|r| ActiveScenario {
                id: r.id,
                scenario: r.scenario.clone(),
                remaining: r.expires_at.saturating_since(now),
                injections: r
                    .points
                    .iter()
                    .map(|&p| self.slots[p as usize].hits_of(r.id.0))
                    .sum(),
            })
            .collect()
    }

    /// Drops scenarios whose time is up (the data path already ignores them); returns their ids.
    /// The control plane calls this periodically to free their slots.
    pub fn sweep_expired(&self) -> Vec<ScenarioId> {
        let now = self.clock.now();
        let mut expired = Vec::new();
        self.scenarios.rcu(|current| {
            expired = current
                .iter()
                .filter(|r| r.expires_at <= now)
                .cloned()
                .collect::<Vec<_>>();
            current
                .iter()
                .filter(|r| r.expires_at > now)
                .cloned()
                .collect::<Vec<_>>()
        });
        expired
            .iter()
            .map(|r| {
                self.retire(r);
                r.id
            })
            .collect()
    }

    /// Injections made so far of one kind (including by scenarios since disarmed).
    pub fn injections(&self, kind: FaultKind) -> u64 {
        let live: u64 = self
            .slots
            .iter()
            .map(|slot| slot.hits_of_kind(kind as u64))
            .sum();
        self.retired_injections[kind.index()].load(Ordering::Relaxed) + live
    }

    /// The limits scenarios are checked against.
    pub fn limits(&self) -> &ChaosLimits {
        &self.limits
    }

    /// The clock expiries are checked against.
    pub fn clock(&self) -> &C {
        &self.clock
    }

    /// Governance tag.
    pub fn governance(&self) -> GovernanceHash {
        self.governance
    }

    /// Number of live entries across all points (what keeps `check` off its one-load path).
    pub fn armed_entries(&self) -> u64 {
        self.armed.load(Ordering::Relaxed) / ENTRY
    }
}

fn without(current: &Arc<Vec<Arc<Record>>>, id: ScenarioId) -> Vec<Arc<Record>> {
    current.iter().filter(|r| r.id != id).cloned().collect()
}

impl<C: Clock> core::fmt::Debug for FaultTable<C> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("FaultTable")
            .field("points", &self.points.load().len())
            .field("scenarios", &self.scenarios.load().len())
            .field("stopped", &self.is_stopped())
            .finish_non_exhaustive()
    }
}
