//! Recovery of open breakers: a priority queue of attempts, four strategies, health checks under
//! a timeout, manual approval, and a bounded history of results.

mod orchestrator;
mod policy;

pub use orchestrator::{
    HealthCheck, RecoveryConfig, RecoveryError, RecoveryOrchestrator, RecoveryResult,
    RecoveryState, RecoveryStats, RecoveryStatus, ServiceRecovery,
};
pub use policy::{RecoveryPolicy, RecoveryStrategy};
