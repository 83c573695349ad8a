//! [`Fleet`]: this instance's handle on the fleet's shared state in Redis.

use std::collections::BTreeMap;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use std::sync::Arc;

use redis::AsyncCommands;
use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use resilience_core::{GovernanceHash, GovernanceMismatch};
use serde::{Deserialize, Serialize};
use tokio::sync::OnceCell;

use super::keys::Keys;
use super::{FleetConfig, FleetError};
use crate::health::HealthStatus;

/// What one instance publishes about itself.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct InstanceReport {
    /// The instance.
    pub instance: String,
    /// Its health status.
    pub status: HealthStatus,
    /// Its health score in [0, 1].
    pub score: f64,
    /// Dependency → breaker state on this instance's own evidence (`CLOSED`, `OPEN`,
    /// `HALF_OPEN`, `FORCED_OPEN`, `DISABLED`), or `ADOPTED` when it follows a fleet quorum.
    pub breakers: BTreeMap<String, String>,
    /// When it was published, in ms since the Unix epoch.
    pub published_at_ms: u64,
    /// Its governance tag.
    pub governance: GovernanceHash,
}

/// An instance whose report has lapsed.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct SilentInstance {
    /// The instance.
    pub instance: String,
    /// Its last publish, in ms since the Unix epoch.
    pub last_seen_ms: u64,
}

/// The fleet at a glance: [`Fleet::fleet_health`].
#[derive(Clone, Debug, PartialEq, Serialize)]
#[non_exhaustive]
pub struct FleetHealth {
    /// Live instances' reports, by instance name.
    pub instances: Vec<InstanceReport>,
    /// Instances that stopped publishing (within `forget_after`).
    pub silent: Vec<SilentInstance>,
    /// Live instances carrying another governance tag: listed, never counted (not in
    /// `instances`, so not in any vote, score or status).
    pub foreign: Vec<String>,
    /// The worst live status (`UNKNOWN` with no live instance).
    pub worst: HealthStatus,
    /// Mean live score (`None` with no live instance).
    pub mean_score: Option<f64>,
}

impl FleetHealth {
    /// Live instances.
    pub fn live(&self) -> usize {
        self.instances.len()
    }

    /// How the live instances see `dependency`: `(open, reporting)`, where `open` counts
    /// own-evidence OPEN / HALF_OPEN / FORCED_OPEN and `reporting` every instance that has the
    /// dependency at all (adopters included).
    pub fn votes(&self, dependency: &str) -> (usize, usize) {
        let mut open = 0;
        let mut reporting = 0;
        for report in &self.instances {
            if let Some(state) = report.breakers.get(dependency) {
                reporting += 1;
                if matches!(state.as_str(), "OPEN" | "HALF_OPEN" | "FORCED_OPEN") {
                    open += 1;
                }
            }
        }
        (open, reporting)
    }
}

/// A recovery lease: this instance alone probes `service` until it completes or the lease
/// expires.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Lease {
    /// The service being probed.
    pub service: String,
    /// Fencing token: grows with every lease of the service, so a result from an expired
    /// holder is refused.
    pub fence: u64,
    value: String,
}

/// The result the last lease holder reported.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub struct LeaseResult {
    /// The holder's fencing token.
    pub fence: u64,
    /// Whether its probe succeeded.
    pub succeeded: bool,
}

/// A fault a fleet scenario injects on each taking-part instance.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
#[non_exhaustive]
pub enum FleetFault {
    /// Added latency.
    Latency {
        /// Milliseconds.
        ms: u64,
    },
    /// Errors at a rate.
    Errors {
        /// Share of calls in [0, 1].
        rate: f64,
        /// Error code.
        code: u16,
    },
    /// Timeouts after a delay.
    Timeouts {
        /// Milliseconds.
        after_ms: u64,
    },
    /// Unreachable.
    Partition,
    /// The target breaker forced open.
    ForceOpen,
}

impl FleetFault {
    /// Starts this fault on `engine` as scenario `name` against `target` for `duration`: how
    /// fleet members and `POST /chaos` turn a description into a running scenario.
    pub(crate) fn start_on(
        self,
        engine: &crate::chaos::ChaosEngine,
        name: &str,
        target: &str,
        duration: Duration,
    ) -> Result<resilience_core::chaos::ScenarioId, crate::chaos::ChaosEngineError> {
        let injection = match self {
            FleetFault::Latency { ms } => engine.inject_latency(target, Duration::from_millis(ms)),
            FleetFault::Errors { rate, code } => {
                engine.inject_errors(target, rate, resilience_core::chaos::ErrorCode(code))
            }
            FleetFault::Timeouts { after_ms } => {
                engine.inject_timeouts(target, Duration::from_millis(after_ms))
            }
            FleetFault::Partition => engine.partition(target),
            FleetFault::ForceOpen => engine.force_circuit_open(target),
        };
        injection.name(name).duration(duration).start()
    }
}

/// A chaos scenario for the whole fleet, persisted so instances that start later obey it too.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct FleetScenario {
    /// Unique name.
    pub name: String,
    /// Target (chaos point or breaker name).
    pub target: String,
    /// What to inject.
    pub fault: FleetFault,
    /// Fleet blast radius: at most this share of the live instances take part (rounded down).
    pub share: f64,
    /// When it ends, in ms since the Unix epoch.
    pub expires_at_ms: u64,
}

impl FleetScenario {
    /// A scenario on every instance for `duration` from now.
    pub fn new(
        name: impl Into<String>,
        target: impl Into<String>,
        fault: FleetFault,
        duration: Duration,
    ) -> Self {
        FleetScenario {
            name: name.into(),
            target: target.into(),
            fault,
            share: 1.0,
            expires_at_ms: now_ms().saturating_add(duration.as_millis() as u64),
        }
    }

    /// At most this share of the live instances take part.
    #[must_use]
    pub fn share(mut self, share: f64) -> Self {
        self.share = share;
        self
    }

    /// Time left, zero once expired.
    pub fn remaining(&self) -> Duration {
        Duration::from_millis(self.expires_at_ms.saturating_sub(now_ms()))
    }
}

/// A fleet-wide emergency stop in force.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct FleetStop {
    /// Who stopped it (instance or operator).
    pub by: String,
    /// When, in ms since the Unix epoch.
    pub at_ms: u64,
}

/// Fleet chaos as persisted: [`Fleet::chaos_state`].
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
#[non_exhaustive]
pub struct FleetChaos {
    /// The emergency stop, if one is in force.
    pub stopped: Option<FleetStop>,
    /// Unexpired scenarios, by name.
    pub scenarios: Vec<FleetScenario>,
}

const STOP_FIELD: &str = "emergency_stop";
const SCENARIO_PREFIX: &str = "scenario:";

/// Asserts this member's governance tag on the fleet's key, which holds `<tag> <since_ms>`:
/// when the member joined the fleet under that tag. KEYS[1]: the key. ARGV: our tag, our
/// since, `1` if we may create the key or take it back.
///
/// Returns `{code, value found}`: 1 the tag is ours (and the oldest `since` is kept), 2 a
/// *younger* member of another tag had set it (after Redis lost the key) and we, older, took it
/// back, 3 the key is missing and we may not create it yet, 0 another tag holds it: refused.
const ASSERT: &str = r"
local v = redis.call('GET', KEYS[1])
local ours = ARGV[1] .. ' ' .. ARGV[2]
if not v then
  if ARGV[3] == '1' then redis.call('SET', KEYS[1], ours) return {1, ''} end
  return {3, ''}
end
local tag, since = string.match(v, '^(%x+) ?(%d*)$')
if tag == ARGV[1] then
  if since == '' or tonumber(since) > tonumber(ARGV[2]) then redis.call('SET', KEYS[1], ours) end
  return {1, v}
end
if ARGV[3] == '1' and since ~= nil and since ~= '' and tonumber(since) > tonumber(ARGV[2]) then
  redis.call('SET', KEYS[1], ours)
  return {2, v}
end
return {0, v}";

/// Publishes a report only while the fleet's tag is ours: KEYS governance, health, instances;
/// ARGV tag, report, ttl ms, now ms, forget-before ms. 0 when the tag is not ours (nothing
/// written).
const PUBLISH: &str = r"
local v = redis.call('GET', KEYS[1])
if not v or string.match(v, '^(%x+)') ~= ARGV[1] then return 0 end
redis.call('SET', KEYS[2], ARGV[2], 'PX', ARGV[3])
redis.call('ZADD', KEYS[3], ARGV[4], ARGV[6])
redis.call('ZREMRANGEBYSCORE', KEYS[3], '-inf', ARGV[5])
return 1";

/// Takes the lease when free: bumps the fence and stores `holder:fence` with a TTL.
const ACQUIRE: &str = r"
if redis.call('EXISTS', KEYS[1]) == 1 then return 0 end
local fence = redis.call('INCR', KEYS[2])
redis.call('SET', KEYS[1], ARGV[1] .. ':' .. fence, 'PX', ARGV[2])
return fence";

/// Extends the lease if still held by this holder and fence.
const RENEW: &str = r"
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('PEXPIRE', KEYS[1], ARGV[2])
end
return 0";

/// Publishes the result and frees the lease, only for the current holder and fence.
const COMPLETE: &str = r"
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return 0 end
redis.call('SET', KEYS[2], ARGV[2])
redis.call('DEL', KEYS[1])
return 1";

/// Joins a scenario's participants while they are fewer than the cap.
const JOIN: &str = r"
if redis.call('SISMEMBER', KEYS[1], ARGV[1]) == 1 then return 1 end
if redis.call('SCARD', KEYS[1]) < tonumber(ARGV[2]) then
  redis.call('SADD', KEYS[1], ARGV[1])
  redis.call('PEXPIRE', KEYS[1], ARGV[3])
  return 1
end
return 0";

/// This instance's handle on the fleet. Cheap to clone; reconnects to Redis on its own.
#[derive(Clone)]
pub struct Fleet {
    config: FleetConfig,
    keys: Keys,
    client: redis::Client,
    /// Set on the first successful connection.
    redis: Arc<OnceCell<ConnectionManager>>,
    /// When this handle first had its tag accepted (ms since the epoch), 0 before: an
    /// incumbent may recreate a lost key, or take it back from a younger foreign tag.
    joined_at_ms: Arc<std::sync::atomic::AtomicU64>,
}

impl std::fmt::Debug for Fleet {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Fleet")
            .field("instance", &self.config.instance)
            .field("namespace", &self.config.namespace)
            .finish_non_exhaustive()
    }
}

pub(crate) fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

fn millis(d: Duration) -> u64 {
    d.as_millis().max(1) as u64
}

impl Fleet {
    /// Validates `config`, connects, and joins under the fleet's governance tag (see
    /// [`assert_governance`](Self::assert_governance)).
    ///
    /// # Errors
    ///
    /// [`FleetError::Invalid`], [`FleetError::Redis`] when Redis cannot be reached, or
    /// [`FleetError::Governance`] when the fleet carries another tag (nothing was written).
    pub async fn connect(config: FleetConfig) -> Result<Fleet, FleetError> {
        let fleet = Fleet::lazy(config)?;
        fleet.assert_governance().await?;
        Ok(fleet)
    }

    /// Validates `config` without touching Redis: the first operation connects, and a failed
    /// one is retried by the next. For an instance that must start while Redis is down and
    /// join the fleet when it returns (its member asserts the tag before every round), and for
    /// read-only use (the `*_health`, `*_state`, `lease_*` reads never write).
    ///
    /// # Errors
    ///
    /// [`FleetError::Invalid`].
    pub fn lazy(config: FleetConfig) -> Result<Fleet, FleetError> {
        config.validate()?;
        let client = crate::redis_client(&config.redis_url, config.redis_ca_file.as_deref())
            .map_err(|e| {
                FleetError::invalid(
                    "redis_url",
                    crate::redact_url(&config.redis_url),
                    &format!("a redis:// or rediss:// URL ({e})"),
                )
            })?;
        Ok(Fleet {
            keys: Keys::new(&config.namespace),
            config,
            client,
            redis: Arc::new(OnceCell::new()),
            joined_at_ms: Arc::new(std::sync::atomic::AtomicU64::new(0)),
        })
    }

    /// The shared connection, made on first use (it reconnects on its own after that).
    async fn connection(&self) -> Result<ConnectionManager, FleetError> {
        let redis = self
            .redis
            .get_or_try_init(|| async {
                let manager = ConnectionManagerConfig::new()
                    .set_connection_timeout(Some(Duration::from_secs(2)))
                    .set_response_timeout(Some(Duration::from_secs(2)))
                    .set_number_of_retries(2);
                ConnectionManager::new_with_config(self.client.clone(), manager).await
            })
            .await?;
        Ok(redis.clone())
    }

    /// Asserts this instance's governance tag on the fleet's key, `{ns}:governance`, which
    /// holds the tag and since when its oldest member has held it. Called on joining, by the
    /// member before every round (so after every reconnection, and after a Redis restart that
    /// lost the key), and before every operator write.
    ///
    /// * The tag is ours: fine.
    /// * The key is missing (a new fleet, or Redis lost it): a member that had joined recreates
    ///   it at once; a newcomer first waits one publish period for the incumbents to do so,
    ///   and is refused if they (or any live instance) carry another tag. A misconfigured
    ///   instance started right after a Redis restart therefore cannot claim the fleet.
    /// * Another tag holds it: refused with [`FleetError::Governance`], unless that tag was set
    ///   *after* this member joined (by a newcomer that raced a Redis restart): then this
    ///   older member takes the key back, and the newcomer is refused on its next round.
    ///
    /// A refused instance writes nothing more: its reports stop (every report write is guarded
    /// by the tag, atomically), and others never count it (reports carry the tag).
    ///
    /// # Errors
    ///
    /// [`FleetError::Governance`] naming the fleet's tag and ours, [`FleetError::Redis`].
    pub async fn assert_governance(&self) -> Result<(), FleetError> {
        let joined = self.joined_at_ms.load(std::sync::atomic::Ordering::Relaxed);
        let since = if joined == 0 { now_ms() } else { joined };
        let (code, found) = self.eval_assert(since, joined != 0).await?;
        let (code, found) = if code == 3 {
            // A missing key, and we are new: give the fleet's members a period to put it back,
            // and refuse to found a fleet beside live members of another tag.
            self.refuse_beside_foreign_members().await?;
            tokio::time::sleep(self.config.publish_every).await;
            self.refuse_beside_foreign_members().await?;
            self.eval_assert(since, true).await?
        } else {
            (code, found)
        };
        match code {
            1 | 2 => {
                if code == 2 {
                    tracing::warn!(found = %found, ours = %self.config.governance, "fleet governance key held a younger instance's tag (Redis lost it); restored ours");
                }
                let _ = self.joined_at_ms.compare_exchange(
                    0,
                    since,
                    std::sync::atomic::Ordering::Relaxed,
                    std::sync::atomic::Ordering::Relaxed,
                );
                Ok(())
            }
            _ => Err(self.mismatch(&found)),
        }
    }

    async fn eval_assert(&self, since: u64, may_write: bool) -> Result<(i64, String), FleetError> {
        let mut redis = self.connection().await?;
        let (code, found): (i64, String) = redis::cmd("EVAL")
            .arg(ASSERT)
            .arg(1)
            .arg(self.keys.governance())
            .arg(self.config.governance.to_string())
            .arg(since)
            .arg(if may_write { "1" } else { "0" })
            .query_async(&mut redis)
            .await?;
        Ok((code, found))
    }

    async fn refuse_beside_foreign_members(&self) -> Result<(), FleetError> {
        let fleet = self.fleet_health().await?;
        let mut redis = self.connection().await?;
        if let Some(instance) = fleet.foreign.first() {
            let json: Option<String> = redis.get(self.keys.health(instance)).await?;
            let tag = json
                .and_then(|j| serde_json::from_str::<InstanceReport>(&j).ok())
                .map(|r| r.governance.to_string())
                .unwrap_or_default();
            return Err(self.mismatch(&tag));
        }
        Ok(())
    }

    fn mismatch(&self, found: &str) -> FleetError {
        let tag = found.split_whitespace().next().unwrap_or_default();
        match tag.parse::<GovernanceHash>() {
            Ok(expected) => FleetError::Governance(GovernanceMismatch {
                component: "fleet member",
                expected,
                found: self.config.governance,
            }),
            Err(e) => FleetError::Corrupt {
                key: self.keys.governance(),
                reason: format!("{found:?}: {e}"),
            },
        }
    }

    /// The settings.
    pub fn config(&self) -> &FleetConfig {
        &self.config
    }

    /// This instance's name.
    pub fn instance(&self) -> &str {
        &self.config.instance
    }

    pub(crate) fn client(&self) -> &redis::Client {
        &self.client
    }

    pub(crate) fn keys(&self) -> &Keys {
        &self.keys
    }

    /// Publishes this instance's report, live for `report_ttl`, and forgets instances silent
    /// longer than `forget_after`.
    ///
    /// # Errors
    ///
    /// [`FleetError::Redis`].
    pub async fn publish(&self, report: &InstanceReport) -> Result<(), FleetError> {
        let json = serde_json::to_string(report).map_err(|e| FleetError::Corrupt {
            key: self.keys.health(&report.instance),
            reason: e.to_string(),
        })?;
        let now = now_ms();
        let forget_before = now.saturating_sub(millis(self.config.forget_after));
        let mut redis = self.connection().await?;
        let written: i64 = redis::cmd("EVAL")
            .arg(PUBLISH)
            .arg(3)
            .arg(self.keys.governance())
            .arg(self.keys.health(&report.instance))
            .arg(self.keys.instances())
            .arg(self.config.governance.to_string())
            .arg(json)
            .arg(millis(self.config.report_ttl))
            .arg(now)
            .arg(forget_before)
            .arg(&report.instance)
            .query_async(&mut redis)
            .await?;
        if written == 1 {
            return Ok(());
        }
        let found: Option<String> = redis.get(self.keys.governance()).await?;
        Err(self.mismatch(&found.unwrap_or_default()))
    }

    /// Announces a breaker transition to every instance (they re-read the fleet at once).
    ///
    /// # Errors
    ///
    /// [`FleetError::Redis`].
    pub async fn announce_transition(
        &self,
        dependency: &str,
        state: &str,
    ) -> Result<(), FleetError> {
        let message = serde_json::json!({
            "instance": self.config.instance,
            "dependency": dependency,
            "state": state,
            "at_ms": now_ms(),
            "governance": self.config.governance,
        });
        let mut redis = self.connection().await?;
        let _: i64 = redis
            .publish(self.keys.breaker_channel(), message.to_string())
            .await?;
        Ok(())
    }

    /// Every instance's latest report: live ones, and those gone silent.
    ///
    /// # Errors
    ///
    /// [`FleetError::Redis`]. A report that does not parse is skipped and its instance listed
    /// as silent (logged), never fatal.
    pub async fn fleet_health(&self) -> Result<FleetHealth, FleetError> {
        let mut redis = self.connection().await?;
        let known: Vec<(String, u64)> = redis
            .zrange_withscores(self.keys.instances(), 0, -1)
            .await?;
        let mut instances = Vec::new();
        let mut silent = Vec::new();
        let mut foreign = Vec::new();
        if !known.is_empty() {
            let keys: Vec<String> = known.iter().map(|(i, _)| self.keys.health(i)).collect();
            let reports: Vec<Option<String>> = redis::cmd("MGET")
                .arg(&keys)
                .query_async(&mut redis)
                .await?;
            for ((instance, last_seen_ms), report) in known.into_iter().zip(reports) {
                match report.map(|json| serde_json::from_str::<InstanceReport>(&json)) {
                    Some(Ok(report)) if report.governance != self.config.governance => {
                        foreign.push(report.instance);
                    }
                    Some(Ok(report)) => instances.push(report),
                    Some(Err(error)) => {
                        tracing::warn!(%instance, %error, "unreadable fleet report");
                        silent.push(SilentInstance {
                            instance,
                            last_seen_ms,
                        });
                    }
                    None => silent.push(SilentInstance {
                        instance,
                        last_seen_ms,
                    }),
                }
            }
        }
        instances.sort_by(|a, b| a.instance.cmp(&b.instance));
        let worst = instances
            .iter()
            .map(|r| r.status)
            .max_by_key(|s| severity(*s))
            .unwrap_or(HealthStatus::Unknown);
        let mean_score = (!instances.is_empty())
            .then(|| instances.iter().fold(0.0, |sum, r| sum + r.score) / instances.len() as f64);
        Ok(FleetHealth {
            instances,
            silent,
            foreign,
            worst,
            mean_score,
        })
    }

    /// Takes `service`'s recovery lease if no instance holds it.
    ///
    /// # Errors
    ///
    /// [`FleetError::Redis`].
    pub async fn try_lease(&self, service: &str) -> Result<Option<Lease>, FleetError> {
        self.assert_governance().await?;
        let mut redis = self.connection().await?;
        let fence: u64 = redis::cmd("EVAL")
            .arg(ACQUIRE)
            .arg(2)
            .arg(self.keys.lease(service))
            .arg(self.keys.fence(service))
            .arg(&self.config.instance)
            .arg(millis(self.config.lease_ttl))
            .query_async(&mut redis)
            .await?;
        Ok((fence != 0).then(|| Lease {
            service: service.to_owned(),
            fence,
            value: format!("{}:{fence}", self.config.instance),
        }))
    }

    /// Extends `lease` by `lease_ttl`; `false` when it was lost (expired, taken over).
    ///
    /// # Errors
    ///
    /// [`FleetError::Redis`].
    pub async fn renew(&self, lease: &Lease) -> Result<bool, FleetError> {
        let mut redis = self.connection().await?;
        let renewed: i64 = redis::cmd("EVAL")
            .arg(RENEW)
            .arg(1)
            .arg(self.keys.lease(&lease.service))
            .arg(&lease.value)
            .arg(millis(self.config.lease_ttl))
            .query_async(&mut redis)
            .await?;
        Ok(renewed == 1)
    }

    /// Publishes the probe's result and frees the lease. `false` (and nothing published) when
    /// the lease was lost meanwhile: the fence keeps a stale holder from overwriting a newer
    /// result.
    ///
    /// # Errors
    ///
    /// [`FleetError::Redis`].
    pub async fn complete(&self, lease: &Lease, succeeded: bool) -> Result<bool, FleetError> {
        let mut redis = self.connection().await?;
        let result = format!("{}:{}", lease.fence, u8::from(succeeded));
        let done: i64 = redis::cmd("EVAL")
            .arg(COMPLETE)
            .arg(2)
            .arg(self.keys.lease(&lease.service))
            .arg(self.keys.lease_result(&lease.service))
            .arg(&lease.value)
            .arg(result)
            .query_async(&mut redis)
            .await?;
        Ok(done == 1)
    }

    /// Who holds `service`'s lease now, if anyone: `(instance, fence)`.
    ///
    /// # Errors
    ///
    /// [`FleetError::Redis`].
    pub async fn lease_holder(&self, service: &str) -> Result<Option<(String, u64)>, FleetError> {
        let mut redis = self.connection().await?;
        let value: Option<String> = redis.get(self.keys.lease(service)).await?;
        Ok(value.and_then(|v| {
            let (instance, fence) = v.rsplit_once(':')?;
            Some((instance.to_owned(), fence.parse().ok()?))
        }))
    }

    /// The last published lease result for `service`.
    ///
    /// # Errors
    ///
    /// [`FleetError::Redis`], or [`FleetError::Corrupt`] for an unreadable value.
    pub async fn lease_result(&self, service: &str) -> Result<Option<LeaseResult>, FleetError> {
        let mut redis = self.connection().await?;
        let key = self.keys.lease_result(service);
        let value: Option<String> = redis.get(&key).await?;
        value
            .map(|v| {
                let parsed = v.split_once(':').and_then(|(fence, ok)| {
                    Some(LeaseResult {
                        fence: fence.parse().ok()?,
                        succeeded: ok == "1",
                    })
                });
                parsed.ok_or_else(|| FleetError::Corrupt {
                    key: key.clone(),
                    reason: format!("expected fence:0|1, found {v:?}"),
                })
            })
            .transpose()
    }

    /// Persists and broadcasts a fleet-wide emergency stop: every instance stops its chaos at
    /// once, and one that starts later starts stopped.
    ///
    /// # Errors
    ///
    /// [`FleetError::Redis`].
    pub async fn emergency_stop(&self, by: &str) -> Result<(), FleetError> {
        let stop = FleetStop {
            by: by.to_owned(),
            at_ms: now_ms(),
        };
        let json = serde_json::to_string(&stop).unwrap_or_default();
        self.change_chaos(|pipe, key| {
            pipe.hset(key, STOP_FIELD, json).ignore();
        })
        .await
    }

    /// Lifts a fleet-wide emergency stop.
    ///
    /// # Errors
    ///
    /// [`FleetError::Redis`].
    pub async fn resume(&self) -> Result<(), FleetError> {
        self.change_chaos(|pipe, key| {
            pipe.hdel(key, STOP_FIELD).ignore();
        })
        .await
    }

    /// Persists and broadcasts a fleet scenario.
    ///
    /// # Errors
    ///
    /// [`FleetError::Invalid`] for a bad name, share or expiry; [`FleetError::Redis`].
    pub async fn start_scenario(&self, scenario: &FleetScenario) -> Result<(), FleetError> {
        if scenario.name.is_empty()
            || scenario.name.len() > 128
            || scenario.name.contains(char::is_whitespace)
        {
            return Err(FleetError::invalid(
                "name",
                &scenario.name,
                "1 to 128 characters, no spaces",
            ));
        }
        if !(scenario.share > 0.0 && scenario.share <= 1.0) {
            return Err(FleetError::invalid(
                "share",
                scenario.share,
                "a share of the instances in (0, 1]",
            ));
        }
        if scenario.remaining().is_zero() {
            return Err(FleetError::invalid(
                "expires_at_ms",
                scenario.expires_at_ms,
                "a time in the future",
            ));
        }
        let json = serde_json::to_string(scenario).unwrap_or_default();
        let field = format!("{SCENARIO_PREFIX}{}", scenario.name);
        let members = self.keys.chaos_members(&scenario.name);
        self.change_chaos(|pipe, key| {
            pipe.del(members).ignore();
            pipe.hset(key, field, json).ignore();
        })
        .await
    }

    /// Withdraws a fleet scenario; `false` if there was none of that name.
    ///
    /// # Errors
    ///
    /// [`FleetError::Redis`].
    pub async fn stop_scenario(&self, name: &str) -> Result<bool, FleetError> {
        let field = format!("{SCENARIO_PREFIX}{name}");
        let members = self.keys.chaos_members(name);
        let (removed,): (i64,) = self
            .change_chaos(|pipe, key| {
                pipe.hdel(key, field);
                pipe.del(members).ignore();
            })
            .await?;
        Ok(removed == 1)
    }

    /// Applies `change` to the fleet's chaos keys and announces it, in one transaction; returns
    /// the replies of the commands `change` did not ignore.
    async fn change_chaos<T: redis::FromRedisValue>(
        &self,
        change: impl FnOnce(&mut redis::Pipeline, &str),
    ) -> Result<T, FleetError> {
        // An operator's write: only under the fleet's own tag.
        self.assert_governance().await?;
        let key = self.keys.chaos();
        let mut pipe = redis::pipe();
        pipe.atomic();
        change(&mut pipe, &key);
        pipe.publish(self.keys.chaos_channel(), &self.config.instance)
            .ignore();
        let mut redis = self.connection().await?;
        Ok(pipe.query_async(&mut redis).await?)
    }

    /// Fleet chaos as persisted: the emergency stop and the unexpired scenarios.
    ///
    /// # Errors
    ///
    /// [`FleetError::Redis`]. Unreadable entries are skipped (logged).
    pub async fn chaos_state(&self) -> Result<FleetChaos, FleetError> {
        let mut redis = self.connection().await?;
        let fields: BTreeMap<String, String> = redis.hgetall(self.keys.chaos()).await?;
        let mut state = FleetChaos::default();
        for (field, json) in fields {
            if field == STOP_FIELD {
                state.stopped = Some(serde_json::from_str(&json).unwrap_or(FleetStop {
                    by: "unknown".into(),
                    at_ms: 0,
                }));
            } else if field.starts_with(SCENARIO_PREFIX) {
                match serde_json::from_str::<FleetScenario>(&json) {
                    Ok(s) if !s.remaining().is_zero() => state.scenarios.push(s),
                    Ok(_) => {}
                    Err(error) => tracing::warn!(%field, %error, "unreadable fleet scenario"),
                }
            }
        }
        Ok(state)
    }

    /// Whether this instance takes part in `scenario`: joins its participants while they are
    /// fewer than `share × live` (rounded down).
    ///
    /// # Errors
    ///
    /// [`FleetError::Redis`].
    pub async fn join_scenario(
        &self,
        scenario: &FleetScenario,
        live: usize,
    ) -> Result<bool, FleetError> {
        let cap = (scenario.share * live as f64).floor() as u64;
        let mut redis = self.connection().await?;
        let joined: i64 = redis::cmd("EVAL")
            .arg(JOIN)
            .arg(1)
            .arg(self.keys.chaos_members(&scenario.name))
            .arg(&self.config.instance)
            .arg(cap)
            .arg(millis(scenario.remaining()) + 60_000)
            .query_async(&mut redis)
            .await?;
        Ok(joined == 1)
    }
}

/// Larger is worse.
fn severity(status: HealthStatus) -> u8 {
    match status {
        HealthStatus::Healthy => 0,
        HealthStatus::Unknown => 1,
        HealthStatus::Degraded => 2,
        HealthStatus::Critical => 3,
    }
}
