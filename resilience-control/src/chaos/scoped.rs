//! [`ScopedChaos`]: a scenario that ends when its guard is dropped.

use resilience_core::chaos::ScenarioId;

use super::engine::ChaosEngine;

/// A running scenario that ends (disarmed, breakers restored, resources released) when this
/// guard is dropped, including during a panic. From [`Injection::scoped`](super::Injection::scoped).
#[must_use = "the scenario ends as soon as the guard is dropped"]
#[derive(Debug)]
pub struct ScopedChaos {
    engine: ChaosEngine,
    id: ScenarioId,
}

impl ScopedChaos {
    pub(crate) fn new(engine: ChaosEngine, id: ScenarioId) -> Self {
        ScopedChaos { engine, id }
    }

    /// The arming this guard ends.
    pub fn id(&self) -> ScenarioId {
        self.id
    }
}

impl Drop for ScopedChaos {
    fn drop(&mut self) {
        if self.engine.end(self.id) {
            self.engine.count_deactivated();
        }
    }
}
