//! Alerts (CRITICAL health, recoveries that give up, breakers opening): the [`AlertSink`]
//! trait and a PagerDuty Events v2 sink.

use std::future::Future;
use std::pin::Pin;
use std::time::{Duration, SystemTime};

use resilience_core::GovernanceHash;
use serde::Serialize;

use super::score::HealthStatus;

/// Whether an alert opens or closes an incident.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum AlertAction {
    /// Opens an incident (health went CRITICAL, a recovery gave up, a breaker opened).
    Trigger,
    /// Closes it (health, the dependency or the breaker recovered).
    Resolve,
}

/// What an alert is about.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum AlertClass {
    /// Health went CRITICAL (or recovered from it).
    Health,
    /// A dependency's recovery ran out of attempts and cools down (or it recovered later).
    RecoveryExhausted,
    /// A breaker opened (or closed again). Off by default: see
    /// [`ControlPlaneBuilder::alert_on`](crate::ControlPlaneBuilder::alert_on).
    BreakerOpened,
}

impl AlertClass {
    /// snake_case name, as in PagerDuty's `class`.
    pub const fn as_str(self) -> &'static str {
        match self {
            AlertClass::Health => "health",
            AlertClass::RecoveryExhausted => "recovery_exhausted",
            AlertClass::BreakerOpened => "breaker_opened",
        }
    }

    /// Every class.
    pub const ALL: [AlertClass; 3] = [
        AlertClass::Health,
        AlertClass::RecoveryExhausted,
        AlertClass::BreakerOpened,
    ];

    /// What the control plane alerts on unless told otherwise: CRITICAL health and recoveries
    /// that give up. Breakers opening are left out, since a busy service opens breakers as a
    /// matter of course and health already pages when enough of them are open.
    pub const DEFAULT: [AlertClass; 2] = [AlertClass::Health, AlertClass::RecoveryExhausted];
}

impl std::str::FromStr for AlertClass {
    type Err = String;

    fn from_str(name: &str) -> Result<Self, String> {
        AlertClass::ALL
            .into_iter()
            .find(|c| c.as_str() == name)
            .ok_or_else(|| "one of health, recovery_exhausted, breaker_opened".to_owned())
    }
}

/// One alert, as the health aggregator, the recovery orchestrator or the breaker watcher
/// raises it.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[non_exhaustive]
pub struct Alert {
    /// Trigger or resolve.
    pub action: AlertAction,
    /// Groups a trigger and its resolve into one incident.
    pub dedup_key: String,
    /// One line for humans.
    pub summary: String,
    /// What it is about.
    pub class: AlertClass,
    /// Health status that caused the alert (`UNKNOWN` for recovery alerts).
    pub status: HealthStatus,
    /// Health score at that moment (0 for recovery alerts).
    pub score: f64,
    /// Names of the breakers that were OPEN or FORCED_OPEN (for a recovery alert, the one whose
    /// recovery gave up).
    pub open_breakers: Vec<String>,
    /// When, as wall-clock time.
    #[serde(with = "rfc3339")]
    pub at: SystemTime,
    /// Governance tag.
    pub governance: GovernanceHash,
}

mod rfc3339 {
    use std::time::SystemTime;

    use serde::Serializer;

    pub(super) fn serialize<S: Serializer>(at: &SystemTime, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(&humantime::format_rfc3339_millis(*at))
    }
}

/// A boxed future, for an object-safe async trait.
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// Where alerts go. Called from a task of its own: a slow or failing sink never delays sampling.
pub trait AlertSink: Send + Sync + 'static {
    /// Delivers one alert.
    fn send<'a>(&'a self, alert: &'a Alert) -> BoxFuture<'a, Result<(), AlertError>>;
}

/// An alert that could not be delivered.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum AlertError {
    /// The request failed (connection, timeout, TLS).
    #[error("alert delivery to {url} failed: {source}")]
    Transport {
        /// Where it was sent.
        url: String,
        /// The client error.
        #[source]
        source: reqwest::Error,
    },
    /// The receiver answered with an error status.
    #[error("alert receiver {url} answered {status}: {body}")]
    Rejected {
        /// Where it was sent.
        url: String,
        /// HTTP status.
        status: u16,
        /// Response body (truncated).
        body: String,
    },
}

resilience_core::governed_by_process!(AlertError);

/// Sends alerts as PagerDuty Events API v2 `trigger` / `resolve` events.
///
/// # Examples
///
/// ```
/// use resilience_control::health::PagerDutySink;
///
/// let sink = PagerDutySink::new("R0UT1NGKEY", "checkout-service")
///     .url("https://events.pagerduty.com/v2/enqueue");
/// # let _ = sink;
/// ```
#[derive(Clone)]
pub struct PagerDutySink {
    client: reqwest::Client,
    url: String,
    routing_key: String,
    source: String,
}

/// The routing key is a secret: never printed.
impl std::fmt::Debug for PagerDutySink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PagerDutySink")
            .field("url", &self.url)
            .field("routing_key", &"***")
            .field("source", &self.source)
            .finish_non_exhaustive()
    }
}

impl PagerDutySink {
    /// PagerDuty's Events v2 endpoint.
    pub const DEFAULT_URL: &'static str = "https://events.pagerduty.com/v2/enqueue";

    /// A sink posting to PagerDuty with `routing_key`, naming `source` (the service or host) in
    /// each event.
    pub fn new(routing_key: impl Into<String>, source: impl Into<String>) -> Self {
        PagerDutySink {
            client: reqwest::Client::builder()
                .timeout(Duration::from_secs(10))
                .build()
                .unwrap_or_else(|_| reqwest::Client::new()),
            url: Self::DEFAULT_URL.to_owned(),
            routing_key: routing_key.into(),
            source: source.into(),
        }
    }

    /// Posts to `url` instead (a proxy, or a test server).
    #[must_use]
    pub fn url(mut self, url: impl Into<String>) -> Self {
        self.url = url.into();
        self
    }

    /// The Events v2 JSON body for `alert`.
    pub fn body(&self, alert: &Alert) -> serde_json::Value {
        let mut body = serde_json::json!({
            "routing_key": self.routing_key,
            "event_action": alert.action,
            "dedup_key": alert.dedup_key,
        });
        if alert.action == AlertAction::Trigger {
            body["payload"] = serde_json::json!({
                "summary": alert.summary,
                "source": self.source,
                "severity": match alert.class {
                    AlertClass::Health => "critical",
                    AlertClass::BreakerOpened => "warning",
                    _ => "error",
                },
                "timestamp": humantime::format_rfc3339_millis(alert.at).to_string(),
                "component": "resilience",
                "class": alert.class.as_str(),
                "custom_details": {
                    "status": alert.status,
                    "score": alert.score,
                    "open_breakers": alert.open_breakers,
                    "constitutional_hash": alert.governance.to_string(),
                },
            });
        }
        body
    }
}

impl AlertSink for PagerDutySink {
    fn send<'a>(&'a self, alert: &'a Alert) -> BoxFuture<'a, Result<(), AlertError>> {
        Box::pin(async move {
            let transport = |source| AlertError::Transport {
                url: self.url.clone(),
                source,
            };
            let response = self
                .client
                .post(&self.url)
                .json(&self.body(alert))
                .send()
                .await
                .map_err(transport)?;
            let status = response.status();
            if status.is_success() {
                return Ok(());
            }
            let mut body = response.text().await.unwrap_or_default();
            body.truncate(512);
            Err(AlertError::Rejected {
                url: self.url.clone(),
                status: status.as_u16(),
                body,
            })
        })
    }
}
