//! [`LeasedCheck`]: a recovery health check that one instance of the fleet runs at a time.

use std::sync::Arc;
use std::time::Duration;

use futures_util::future::BoxFuture;

use super::client::Fleet;
use crate::recovery::HealthCheck;

/// Wraps a service's [`HealthCheck`] so that across the fleet only the holder of the service's
/// recovery lease probes the dependency; the others wait for its result and follow it.
///
/// Register it with the [`RecoveryOrchestrator`](crate::recovery::RecoveryOrchestrator) in place
/// of the plain check. The holder's lease lasts `lease_ttl` and is renewed while the check runs;
/// a holder that dies frees it when it expires, and its late result is refused (fencing), so a
/// newer probe's result is never overwritten. When Redis cannot be reached the instance probes
/// on its own, as it would without a fleet.
pub struct LeasedCheck {
    fleet: Fleet,
    check: Arc<dyn HealthCheck>,
}

impl std::fmt::Debug for LeasedCheck {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LeasedCheck")
            .field("fleet", &self.fleet)
            .finish_non_exhaustive()
    }
}

impl LeasedCheck {
    /// `check`, run under `fleet`'s recovery leases.
    pub fn new(fleet: Fleet, check: impl HealthCheck) -> Self {
        LeasedCheck {
            fleet,
            check: Arc::new(check),
        }
    }
}

impl HealthCheck for LeasedCheck {
    fn check(&self, service: String) -> BoxFuture<'static, Result<(), String>> {
        let fleet = self.fleet.clone();
        let check = self.check.clone();
        Box::pin(async move {
            let seen = match fleet.lease_result(&service).await {
                Ok(result) => result.map_or(0, |r| r.fence),
                Err(error) => {
                    tracing::warn!(%service, %error, "fleet unreachable; probing alone");
                    return check.check(service).await;
                }
            };
            match fleet.try_lease(&service).await {
                Ok(Some(lease)) => {
                    let renew_every = fleet.config().lease_ttl / 3;
                    let probe = check.check(service.clone());
                    tokio::pin!(probe);
                    let result = loop {
                        tokio::select! {
                            result = &mut probe => break result,
                            () = tokio::time::sleep(renew_every) => {
                                if !fleet.renew(&lease).await.unwrap_or(false) {
                                    break Err(format!("lost the recovery lease of {service} mid-probe"));
                                }
                            }
                        }
                    };
                    match fleet.complete(&lease, result.is_ok()).await {
                        Ok(true) => result,
                        Ok(false) => Err(format!(
                            "the recovery lease of {service} (fence {}) expired before the probe ended; its result was discarded",
                            lease.fence
                        )),
                        Err(error) => {
                            tracing::warn!(%service, %error, "could not publish the probe's result");
                            result
                        }
                    }
                }
                Ok(None) => follow(&fleet, &service, seen).await,
                Err(error) => {
                    tracing::warn!(%service, %error, "fleet unreachable; probing alone");
                    check.check(service).await
                }
            }
        })
    }
}

/// Waits for a result newer than `seen` from whoever holds the lease.
async fn follow(fleet: &Fleet, service: &str, seen: u64) -> Result<(), String> {
    let deadline = tokio::time::Instant::now() + fleet.config().follow_timeout;
    let poll = (fleet.config().publish_every / 4).max(Duration::from_millis(10));
    while tokio::time::Instant::now() < deadline {
        match fleet.lease_result(service).await {
            Ok(Some(result)) if result.fence > seen => {
                return if result.succeeded {
                    Ok(())
                } else {
                    Err(format!(
                        "{service}: the fleet's probe (fence {}) failed",
                        result.fence
                    ))
                };
            }
            Ok(_) => {}
            Err(error) => return Err(format!("{service}: fleet unreachable: {error}")),
        }
        tokio::time::sleep(poll).await;
    }
    Err(format!(
        "{service}: no fleet probe result within {:?}",
        fleet.config().follow_timeout
    ))
}
