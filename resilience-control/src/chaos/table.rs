//! [`ChaosTable`]: the fault table as the chaos engine sees it, so the engine is not generic
//! over the table's clock.

use std::sync::Arc;

use resilience_core::chaos::{
    ActiveScenario, ChaosError, ChaosLimits, FaultKind, FaultTable, ForceableBreaker, Scenario,
    ScenarioId, StopReport,
};
use resilience_core::{Clock, GovernanceHash, Nanos};

/// Implemented by [`FaultTable`]; each method is the table's own.
pub trait ChaosTable: Send + Sync + 'static {
    /// See [`FaultTable::arm`].
    ///
    /// # Errors
    ///
    /// As [`FaultTable::arm`].
    fn arm(&self, scenario: Scenario) -> Result<ScenarioId, ChaosError>;
    /// See [`FaultTable::disarm`].
    fn disarm(&self, id: ScenarioId) -> bool;
    /// See [`FaultTable::emergency_stop`].
    fn emergency_stop(&self) -> StopReport;
    /// See [`FaultTable::resume`].
    fn resume(&self);
    /// See [`FaultTable::is_stopped`].
    fn is_stopped(&self) -> bool;
    /// See [`FaultTable::force_breakers_open`].
    ///
    /// # Errors
    ///
    /// As [`FaultTable::force_breakers_open`].
    fn force_breakers_open(
        &self,
        id: ScenarioId,
        breakers: Vec<Arc<dyn ForceableBreaker>>,
    ) -> Result<usize, ChaosError>;
    /// See [`FaultTable::active`].
    fn active(&self) -> Vec<ActiveScenario>;
    /// See [`FaultTable::sweep_expired`].
    fn sweep_expired(&self) -> Vec<ScenarioId>;
    /// See [`FaultTable::injections`].
    fn injections(&self, kind: FaultKind) -> u64;
    /// See [`FaultTable::limits`].
    fn limits(&self) -> ChaosLimits;
    /// See [`FaultTable::governance`].
    fn governance(&self) -> GovernanceHash;
    /// The table clock's current reading.
    fn now(&self) -> Nanos;
}

impl<C: Clock> ChaosTable for FaultTable<C> {
    fn arm(&self, scenario: Scenario) -> Result<ScenarioId, ChaosError> {
        FaultTable::arm(self, scenario)
    }
    fn disarm(&self, id: ScenarioId) -> bool {
        FaultTable::disarm(self, id)
    }
    fn emergency_stop(&self) -> StopReport {
        FaultTable::emergency_stop(self)
    }
    fn resume(&self) {
        FaultTable::resume(self);
    }
    fn is_stopped(&self) -> bool {
        FaultTable::is_stopped(self)
    }
    fn force_breakers_open(
        &self,
        id: ScenarioId,
        breakers: Vec<Arc<dyn ForceableBreaker>>,
    ) -> Result<usize, ChaosError> {
        FaultTable::force_breakers_open(self, id, breakers)
    }
    fn active(&self) -> Vec<ActiveScenario> {
        FaultTable::active(self)
    }
    fn sweep_expired(&self) -> Vec<ScenarioId> {
        FaultTable::sweep_expired(self)
    }
    fn injections(&self, kind: FaultKind) -> u64 {
        FaultTable::injections(self, kind)
    }
    fn limits(&self) -> ChaosLimits {
        *FaultTable::limits(self)
    }
    fn governance(&self) -> GovernanceHash {
        FaultTable::governance(self)
    }
    fn now(&self) -> Nanos {
        self.clock().now()
    }
}
