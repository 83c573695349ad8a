//! System health from the breakers: a weighted score, a status, history, change notifications
//! and CRITICAL alerts.

mod aggregator;
mod alert;
mod breaker_alert;
mod breakers;
mod pressure;
mod score;

pub use aggregator::{
    BreakerHealth, HealthAggregator, HealthChange, HealthConfig, HealthReport, HealthSnapshot,
    HealthStats,
};
pub use alert::{Alert, AlertAction, AlertClass, AlertError, AlertSink, BoxFuture, PagerDutySink};
pub(crate) use breaker_alert::{
    BreakerAlertCounts, BreakerAlerts, deliver as deliver_breaker_alerts,
};
pub use breakers::{BreakerHealthCheck, BreakerStatus, breaker_health_check, breaker_status};
pub use pressure::Pressure;
pub(crate) use pressure::PressureSource;
pub use score::{HealthStatus, HealthThresholds, HealthWeights, StateCounts};
