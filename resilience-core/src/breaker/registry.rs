//! [`BreakerRegistry`]: named breakers in a lock-free concurrent map.

use std::sync::{Arc, OnceLock};

use crate::clock::{Clock, CoarseClock};
use crate::error::ConfigError;
use crate::event::EventChannel;
use crate::governance::{GovernanceHash, GovernanceMismatch};
use crate::sync::{AtomicU64, Ordering};

use super::config::BreakerConfig;
use super::snapshot::BreakerSnapshot;
use super::state::State;
use super::{BreakerId, CircuitBreaker, validate_name};

/// Errors from [`BreakerRegistry`] operations.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum RegistryError {
    /// A breaker of this name exists with different policies; the first configuration wins.
    /// Fetch the existing breaker with [`BreakerRegistry::get`] if it will do.
    #[error(
        "breaker {name:?} already exists with a different configuration (existing: {existing:?}, requested: {requested:?})"
    )]
    ConfigConflict {
        /// The contested name.
        name: String,
        /// The configuration in force.
        existing: Box<BreakerConfig>,
        /// The configuration that was refused.
        requested: Box<BreakerConfig>,
    },
    /// No breaker of this name.
    #[error("no breaker named {name:?}")]
    Unknown {
        /// The name asked for.
        name: String,
    },
    /// A bad name or configuration.
    #[error(transparent)]
    Config(#[from] ConfigError),
}

impl From<GovernanceMismatch> for RegistryError {
    fn from(err: GovernanceMismatch) -> Self {
        RegistryError::Config(ConfigError::Governance(err))
    }
}

/// A conflict reports the tag of the breaker in force.
impl crate::Governed for RegistryError {
    fn governance(&self) -> GovernanceHash {
        match self {
            RegistryError::ConfigConflict { existing, .. } => existing.governance(),
            RegistryError::Config(err) => crate::Governed::governance(err),
            _ => GovernanceHash::for_process(),
        }
    }
}

/// Named breakers with lock-free lookup.
///
/// The breakers live in a lock-free concurrent hash map ([`papaya`]): a lookup is a hash probe
/// that never waits, and get-or-create is O(1) at any size (100 000 breakers are created in a
/// fraction of a second; `cargo bench -p resilience-benches --bench registry`).
/// Hold on to the `Arc<CircuitBreaker>` you get rather than looking it up per call. Every breaker
/// in a registry shares its clock and event channel.
///
/// # Examples
///
/// ```
/// use resilience_core::{BreakerConfig, BreakerRegistry, RegistryError, State};
///
/// let registry = BreakerRegistry::new();
/// let db = registry.get_or_create("db", BreakerConfig::builder().fail_max(3).build()?)?;
/// let again = registry.get_or_create("db", BreakerConfig::builder().fail_max(3).build()?)?;
/// assert!(std::sync::Arc::ptr_eq(&db, &again));
///
/// // A different configuration for the same name is reported, and the first one stays.
/// let conflict = registry.get_or_create("db", BreakerConfig::default());
/// assert!(matches!(conflict, Err(RegistryError::ConfigConflict { .. })));
///
/// db.force_open();
/// assert_eq!(registry.snapshots()[0].1.state, State::ForcedOpen);
/// registry.reset_all();
/// assert_eq!(db.state(), State::Closed);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub struct BreakerRegistry<C: Clock + Clone = CoarseClock> {
    by_name: papaya::HashMap<Arc<str>, Arc<CircuitBreaker<C>>>,
    by_id: papaya::HashMap<BreakerId, Arc<str>>,
    clock: C,
    events: Arc<EventChannel>,
    defaults: BreakerConfig,
    governance: GovernanceHash,
    conflicts: AtomicU64,
}

impl BreakerRegistry<CoarseClock> {
    /// An empty registry on the global clock, with default policies and governance tag.
    pub fn new() -> Self {
        Self::with_clock(CoarseClock::default())
    }

    /// The process-global registry (the original's singleton).
    pub fn global() -> &'static BreakerRegistry {
        static GLOBAL: OnceLock<BreakerRegistry> = OnceLock::new();
        GLOBAL.get_or_init(BreakerRegistry::new)
    }
}

impl Default for BreakerRegistry<CoarseClock> {
    fn default() -> Self {
        Self::new()
    }
}

impl<C: Clock + Clone> BreakerRegistry<C> {
    /// An empty registry whose breakers read `clock`.
    pub fn with_clock(clock: C) -> Self {
        BreakerRegistry {
            by_name: papaya::HashMap::new(),
            by_id: papaya::HashMap::new(),
            clock,
            events: Arc::new(EventChannel::default()),
            defaults: BreakerConfig::default(),
            governance: GovernanceHash::DEFAULT,
            conflicts: AtomicU64::new(0),
        }
    }

    /// Uses `defaults` for breakers created by [`breaker`](Self::breaker) and requires every
    /// configuration to carry the same governance tag.
    #[must_use]
    pub fn with_defaults(mut self, defaults: BreakerConfig) -> Self {
        self.governance = defaults.governance();
        self.defaults = defaults;
        self
    }

    /// Sends events to `events` instead of the registry's own channel.
    #[must_use]
    pub fn with_events(mut self, events: Arc<EventChannel>) -> Self {
        self.events = events;
        self
    }

    /// The channel every breaker of this registry emits transitions to.
    pub fn events(&self) -> &Arc<EventChannel> {
        &self.events
    }

    /// The clock every breaker of this registry reads.
    pub fn clock(&self) -> &C {
        &self.clock
    }

    /// The governance tag every configuration must carry.
    pub fn governance(&self) -> GovernanceHash {
        self.governance
    }

    /// The default configuration.
    pub fn defaults(&self) -> &BreakerConfig {
        &self.defaults
    }

    /// The breaker named `name`, if any.
    pub fn get(&self, name: &str) -> Option<Arc<CircuitBreaker<C>>> {
        self.by_name.pin().get(name).cloned()
    }

    /// The name of breaker `id`, if it is in this registry.
    pub fn name_of(&self, id: BreakerId) -> Option<Arc<str>> {
        self.by_id.pin().get(&id).cloned()
    }

    /// The breaker named `name`, created with the registry's defaults if missing.
    ///
    /// # Errors
    ///
    /// As [`get_or_create`](Self::get_or_create).
    pub fn breaker(&self, name: &str) -> Result<Arc<CircuitBreaker<C>>, RegistryError> {
        self.get_or_create(name, self.defaults.clone())
    }

    /// The breaker named `name`, created with `config` if missing. The first configuration for
    /// a name wins: asking again with an equal configuration returns the same breaker, with a
    /// different one is an error (and is counted in [`conflicts`](Self::conflicts)).
    ///
    /// # Errors
    ///
    /// [`RegistryError::ConfigConflict`], or [`RegistryError::Config`] for a bad name or a
    /// governance tag other than the registry's.
    pub fn get_or_create(
        &self,
        name: &str,
        config: BreakerConfig,
    ) -> Result<Arc<CircuitBreaker<C>>, RegistryError> {
        if let Some(existing) = self.get(name) {
            return self.same_config(existing, name, config);
        }
        validate_name(name)?;
        config
            .governance()
            .ensure_matches(self.governance, "breaker registry")?;
        let key: Arc<str> = Arc::from(name);
        let candidate = Arc::new(CircuitBreaker::from_parts(
            name.into(),
            config.clone(),
            self.clock.clone(),
            Some(Arc::clone(&self.events)),
        ));
        // The id first, so a breaker is never reachable by name before its events can be named.
        self.by_id.pin().insert(candidate.id(), Arc::clone(&key));
        let names = self.by_name.pin();
        let inserted = names
            .try_insert(key, Arc::clone(&candidate))
            .map(|_| ())
            .map_err(|occupied| Arc::clone(occupied.current));
        drop(names);
        match inserted {
            Ok(_) => Ok(candidate),
            // Another thread created it between our lookup and our insert.
            Err(existing) => {
                self.by_id.pin().remove(&candidate.id());
                self.same_config(existing, name, config)
            }
        }
    }

    fn same_config(
        &self,
        existing: Arc<CircuitBreaker<C>>,
        name: &str,
        requested: BreakerConfig,
    ) -> Result<Arc<CircuitBreaker<C>>, RegistryError> {
        if *existing.config() == requested {
            Ok(existing)
        } else {
            self.conflicts.fetch_add(1, Ordering::Relaxed);
            Err(RegistryError::ConfigConflict {
                name: name.to_owned(),
                existing: Box::new(existing.config().clone()),
                requested: Box::new(requested),
            })
        }
    }

    /// Creates each `(name, config)` that is missing (the original's core-service
    /// pre-initialisation); returns the breakers in order.
    ///
    /// # Errors
    ///
    /// The first [`RegistryError`]; services before it stay registered.
    pub fn preinitialize<N: AsRef<str>>(
        &self,
        services: impl IntoIterator<Item = (N, BreakerConfig)>,
    ) -> Result<Vec<Arc<CircuitBreaker<C>>>, RegistryError> {
        services
            .into_iter()
            .map(|(name, config)| self.get_or_create(name.as_ref(), config))
            .collect()
    }

    /// Removes the breaker named `name`; holders of its `Arc` keep a working breaker.
    pub fn remove(&self, name: &str) -> Option<Arc<CircuitBreaker<C>>> {
        let removed = self.by_name.pin().remove(name).cloned()?;
        self.by_id.pin().remove(&removed.id());
        Some(removed)
    }

    /// Resets the breaker named `name` to CLOSED; returns the state it left.
    ///
    /// # Errors
    ///
    /// [`RegistryError::Unknown`] if there is no such breaker.
    pub fn reset(&self, name: &str) -> Result<State, RegistryError> {
        self.get(name)
            .map(|breaker| breaker.reset())
            .ok_or_else(|| RegistryError::Unknown {
                name: name.to_owned(),
            })
    }

    /// Resets every breaker to CLOSED; returns how many.
    pub fn reset_all(&self) -> usize {
        let breakers = self.by_name.pin();
        for breaker in breakers.values() {
            breaker.reset();
        }
        breakers.len()
    }

    /// [`tick`](CircuitBreaker::tick)s every breaker; returns how many moved.
    pub fn tick_all(&self) -> usize {
        self.by_name
            .pin()
            .values()
            .filter(|b| b.tick().is_some())
            .count()
    }

    /// Every breaker with its snapshot, sorted by name.
    pub fn snapshots(&self) -> Vec<(Arc<str>, BreakerSnapshot)> {
        let mut all: Vec<_> = self
            .by_name
            .pin()
            .iter()
            .map(|(name, b)| (Arc::clone(name), b.snapshot()))
            .collect();
        all.sort_unstable_by(|a, b| a.0.cmp(&b.0));
        all
    }

    /// Every breaker, sorted by name.
    pub fn breakers(&self) -> Vec<Arc<CircuitBreaker<C>>> {
        let mut all: Vec<_> = self.by_name.pin().values().cloned().collect();
        all.sort_unstable_by(|a, b| a.name().cmp(b.name()));
        all
    }

    /// Number of breakers.
    pub fn len(&self) -> usize {
        self.by_name.len()
    }

    /// Whether there are no breakers.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Refused conflicting configurations since construction.
    pub fn conflicts(&self) -> u64 {
        self.conflicts.load(Ordering::Relaxed)
    }
}

impl<C: Clock + Clone> core::fmt::Debug for BreakerRegistry<C> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("BreakerRegistry")
            .field("breakers", &self.len())
            .field("governance", &self.governance)
            .field("events", &self.events)
            .finish_non_exhaustive()
    }
}
