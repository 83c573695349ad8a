//! Recovery of open breakers: a priority queue of attempts, four strategies, health checks under
//! a timeout on a runtime of their own, manual approval, a bounded history of results, and a
//! growing cool-down (with an alert) when a recovery gives up.

mod orchestrator;
mod policy;
mod runner;

pub use orchestrator::{
    HealthCheck, RecoveryConfig, RecoveryError, RecoveryOrchestrator, RecoveryResult,
    RecoveryState, RecoveryStats, RecoveryStatus, ServiceRecovery,
};
pub use policy::{RecoveryPolicy, RecoveryStrategy};
pub use runner::CheckIsolation;
