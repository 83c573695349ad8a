//! What the control plane needs from the data plane, as object-safe traits, so control types
//! are not generic over the breakers' clock.

use std::sync::Arc;

use resilience_core::chaos::ForceableBreaker;
use resilience_core::{
    BreakerId, BreakerRegistry, BreakerSnapshot, CircuitBreaker, Clock, EventChannel,
    GovernanceHash, State,
};

/// A breaker the recovery orchestrator can move (implemented by [`CircuitBreaker`]).
pub trait RecoverableBreaker: Send + Sync {
    /// The breaker's name.
    fn breaker_name(&self) -> &str;
    /// Current state.
    fn current_state(&self) -> State;
    /// See [`CircuitBreaker::transition_to_half_open`].
    fn half_open(&self) -> State;
    /// See [`CircuitBreaker::reset`].
    fn close(&self) -> State;
    /// See [`CircuitBreaker::trip_open`].
    fn reopen(&self) -> State;
}

impl<C: Clock> RecoverableBreaker for CircuitBreaker<C> {
    fn breaker_name(&self) -> &str {
        self.name()
    }

    fn current_state(&self) -> State {
        self.state()
    }

    fn half_open(&self) -> State {
        self.transition_to_half_open()
    }

    fn close(&self) -> State {
        self.reset()
    }

    fn reopen(&self) -> State {
        self.trip_open()
    }
}

/// The breakers the control plane watches (implemented by [`BreakerRegistry`]).
pub trait BreakerSource: Send + Sync + 'static {
    /// Every breaker with its snapshot.
    fn snapshots(&self) -> Vec<(Arc<str>, BreakerSnapshot)>;
    /// The breaker named `name`.
    fn breaker(&self, name: &str) -> Option<Arc<dyn RecoverableBreaker>>;
    /// The breaker named `name`, as chaos forces it open. Sources whose breakers chaos may not
    /// force keep the default, `None`.
    fn forceable(&self, name: &str) -> Option<Arc<dyn ForceableBreaker>> {
        let _ = name;
        None
    }
    /// The name of breaker `id`.
    fn name_of(&self, id: BreakerId) -> Option<Arc<str>>;
    /// The channel the breakers emit transitions to.
    fn events(&self) -> Arc<EventChannel>;
    /// The governance tag the breakers carry.
    fn governance(&self) -> GovernanceHash;
    /// Makes every breaker's due time-based transitions (see
    /// [`CircuitBreaker::tick`](resilience_core::CircuitBreaker::tick)); returns how many moved.
    /// Sources that cannot keep the default, which does nothing.
    fn tick(&self) -> usize {
        0
    }
}

impl<C: Clock + Clone> BreakerSource for BreakerRegistry<C> {
    fn snapshots(&self) -> Vec<(Arc<str>, BreakerSnapshot)> {
        BreakerRegistry::snapshots(self)
    }

    fn breaker(&self, name: &str) -> Option<Arc<dyn RecoverableBreaker>> {
        self.get(name).map(|b| b as Arc<dyn RecoverableBreaker>)
    }

    fn forceable(&self, name: &str) -> Option<Arc<dyn ForceableBreaker>> {
        self.get(name).map(|b| b as Arc<dyn ForceableBreaker>)
    }

    fn name_of(&self, id: BreakerId) -> Option<Arc<str>> {
        BreakerRegistry::name_of(self, id)
    }

    fn events(&self) -> Arc<EventChannel> {
        Arc::clone(BreakerRegistry::events(self))
    }

    fn governance(&self) -> GovernanceHash {
        BreakerRegistry::governance(self)
    }

    fn tick(&self) -> usize {
        BreakerRegistry::tick_all(self)
    }
}
