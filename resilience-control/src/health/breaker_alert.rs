//! Alerts on breakers opening: one incident per breaker, triggered when it opens from CLOSED
//! and resolved when it closes again, delivered in order by one task.

use std::collections::HashSet;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime};

use resilience_core::{BreakerEvent, GovernanceHash, State};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use super::alert::{Alert, AlertAction, AlertClass, AlertSink};
use super::score::HealthStatus;
use crate::task::CatchUnwind;

/// Alerts waiting for delivery; beyond this a flapping fleet of breakers drops (and counts)
/// alerts rather than growing memory.
const QUEUE: usize = 256;

/// Watches breaker transitions (from the event pump, one task) and queues alerts.
pub(crate) struct BreakerAlerts {
    queue: mpsc::Sender<Alert>,
    /// Breakers with an incident open, so a re-open after a failed probe is not a new incident
    /// and only an opened breaker's closing resolves one.
    open: HashSet<Arc<str>>,
    governance: GovernanceHash,
    counts: Arc<BreakerAlertCounts>,
}

/// Delivery counters.
#[derive(Debug, Default)]
pub(crate) struct BreakerAlertCounts {
    pub(crate) sent: AtomicU64,
    pub(crate) failed: AtomicU64,
    pub(crate) dropped: AtomicU64,
}

impl BreakerAlerts {
    /// The watcher and the receiving end for [`deliver`].
    pub(crate) fn new(
        governance: GovernanceHash,
        counts: Arc<BreakerAlertCounts>,
    ) -> (Self, mpsc::Receiver<Alert>) {
        let (queue, rx) = mpsc::channel(QUEUE);
        let alerts = BreakerAlerts {
            queue,
            open: HashSet::new(),
            governance,
            counts,
        };
        (alerts, rx)
    }

    /// Queues a trigger when `name` opens from CLOSED (or from HALF_OPEN with no incident
    /// open), a resolve when it closes after one. Operator actions (forced open, disabled) are
    /// not incidents.
    pub(crate) fn observe(&mut self, name: &Arc<str>, event: &BreakerEvent) {
        let action = match event.to {
            State::Open if self.open.insert(Arc::clone(name)) => AlertAction::Trigger,
            State::Closed if self.open.remove(name) => AlertAction::Resolve,
            _ => return,
        };
        let summary = match action {
            AlertAction::Trigger => format!("breaker {name} opened (was {})", event.from),
            AlertAction::Resolve => format!("breaker {name} closed again"),
        };
        let alert = Alert {
            action,
            dedup_key: format!("resilience-breaker-{name}"),
            summary,
            class: AlertClass::BreakerOpened,
            status: HealthStatus::Unknown,
            score: 0.0,
            open_breakers: vec![name.to_string()],
            at: SystemTime::now(),
            governance: self.governance,
        };
        if self.queue.try_send(alert).is_err() {
            self.counts.dropped.fetch_add(1, Ordering::Relaxed);
            tracing::warn!(breaker = %name, "breaker alert dropped: the alert queue is full");
        }
    }
}

/// Delivers queued alerts in order until `cancel`, then what is queued within `grace`.
pub(crate) async fn deliver(
    sink: Arc<dyn AlertSink>,
    mut queue: mpsc::Receiver<Alert>,
    counts: Arc<BreakerAlertCounts>,
    cancel: CancellationToken,
    grace: Duration,
) {
    let send = |alert: Alert| {
        let (sink, counts) = (Arc::clone(&sink), Arc::clone(&counts));
        async move {
            match CatchUnwind::new(async { sink.send(&alert).await }).await {
                Ok(Ok(())) => counts.sent.fetch_add(1, Ordering::Relaxed),
                Ok(Err(err)) => {
                    tracing::warn!(%err, "breaker alert not delivered");
                    counts.failed.fetch_add(1, Ordering::Relaxed)
                }
                Err(_) => {
                    tracing::warn!("the alert sink panicked");
                    counts.failed.fetch_add(1, Ordering::Relaxed)
                }
            };
        }
    };
    loop {
        tokio::select! {
            () = cancel.cancelled() => break,
            next = queue.recv() => match next {
                Some(alert) => send(alert).await,
                None => return,
            },
        }
    }
    queue.close();
    let _ = tokio::time::timeout(grace, async {
        while let Some(alert) = queue.recv().await {
            send(alert).await;
        }
    })
    .await;
}
