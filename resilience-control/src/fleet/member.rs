//! [`FleetMember`]: the loop that makes this instance one of the fleet.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use futures_util::StreamExt;
use resilience_core::chaos::ForceableBreaker;
use resilience_core::{ForcedOpen, State};
use tokio::sync::{Notify, watch};
use tokio_util::sync::CancellationToken;

use super::client::{Fleet, InstanceReport, now_ms};
use crate::chaos::ChaosEngine;
use crate::health::{HealthReport, HealthStatus};
use crate::source::BreakerSource;

/// This instance's part in the fleet, run by [`run`](Self::run) (or by the control plane).
///
/// Every `publish_every`, at once when another instance announces a change, and within a
/// fiftieth of the period (5 to 20 ms) after one of its own breakers changes state, it:
/// publishes its report and its breakers' states (announcing its own transitions); adopts OPEN
/// for a dependency that a quorum of live instances see open, and gives it back when the
/// quorum goes (the local breaker is forced open for three publish periods at a time, so a
/// member that stops renewing never leaves a breaker stuck); and applies fleet chaos: the
/// emergency stop, and the scenarios it takes part in.
pub struct FleetMember {
    fleet: Fleet,
    breakers: Arc<dyn BreakerSource>,
    health: Option<watch::Receiver<Arc<HealthReport>>>,
    chaos: Option<ChaosEngine>,
    /// Dependencies this instance follows the fleet on, with the token to give them back.
    adopted: HashMap<String, (Arc<dyn ForceableBreaker>, ForcedOpen)>,
    /// Own-evidence states last published, to announce transitions.
    published: BTreeMap<String, String>,
    /// Fleet scenarios running here.
    running: HashSet<String>,
    /// Whether this instance's chaos is stopped because the fleet's is.
    stopped_by_fleet: bool,
}

impl std::fmt::Debug for FleetMember {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FleetMember")
            .field("fleet", &self.fleet)
            .field("adopted", &self.adopted.keys().collect::<Vec<_>>())
            .field("running", &self.running)
            .finish_non_exhaustive()
    }
}

impl FleetMember {
    /// A member publishing `breakers`.
    pub fn new(fleet: Fleet, breakers: Arc<dyn BreakerSource>) -> Self {
        FleetMember {
            fleet,
            breakers,
            health: None,
            chaos: None,
            adopted: HashMap::new(),
            published: BTreeMap::new(),
            running: HashSet::new(),
            stopped_by_fleet: false,
        }
    }

    /// Publishes the status and score of this health report stream.
    #[must_use]
    pub fn health(mut self, reports: watch::Receiver<Arc<HealthReport>>) -> Self {
        self.health = Some(reports);
        self
    }

    /// Applies fleet chaos (scenarios, emergency stop) to this engine.
    #[must_use]
    pub fn chaos(mut self, engine: ChaosEngine) -> Self {
        self.chaos = Some(engine);
        self
    }

    /// Dependencies currently adopted from the fleet.
    pub fn adopted(&self) -> Vec<String> {
        let mut names: Vec<_> = self.adopted.keys().cloned().collect();
        names.sort();
        names
    }

    /// Runs until `cancel`, then gives back every adopted breaker and ends the fleet scenarios
    /// running here. Redis errors are logged and retried next period, never fatal: an instance
    /// cut off from the fleet keeps working alone.
    pub async fn run(mut self, cancel: CancellationToken) {
        let wake = Arc::new(Notify::new());
        let listener = tokio::spawn(listen(self.fleet.clone(), wake.clone(), cancel.clone()));
        let every = self.fleet.config().publish_every;
        let mut tick = tokio::time::interval(every);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        // Local transitions are announced within this, not at the next publish.
        let mut look = tokio::time::interval(
            (every / 50).clamp(Duration::from_millis(5), Duration::from_millis(20)),
        );
        look.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        // After a failed step only the period retries, so an outage costs one attempt (and one
        // warning) per period, not one per look.
        let mut reachable = true;
        loop {
            tokio::select! {
                () = cancel.cancelled() => break,
                _ = tick.tick() => {}
                () = wake.notified() => {}
                _ = look.tick() => {
                    if !reachable || !self.local_changed() {
                        continue;
                    }
                }
            }
            match self.step().await {
                Ok(()) => reachable = true,
                Err(error @ super::FleetError::Governance(_)) => {
                    reachable = false;
                    tracing::error!(%error, "refused by the fleet: this instance writes nothing to it and is counted nowhere until the tags agree");
                }
                Err(error) => {
                    reachable = false;
                    tracing::warn!(%error, "fleet step failed; retrying next period");
                }
            }
        }
        listener.abort();
        self.leave();
    }

    /// One round: publish, follow quorums, apply chaos.
    ///
    /// # Errors
    ///
    /// [`FleetError::Redis`](super::FleetError::Redis) when Redis cannot be reached.
    pub async fn step(&mut self) -> Result<(), super::FleetError> {
        // Every round, so after any reconnection (or a Redis that lost the key) the fleet's
        // tag is asserted again before anything is written.
        self.fleet.assert_governance().await?;
        let report = self.report();
        for (dependency, state) in &report.breakers {
            if self.published.get(dependency) != Some(state) && state != "ADOPTED" {
                self.fleet.announce_transition(dependency, state).await?;
            }
        }
        self.fleet.publish(&report).await?;
        self.published = report.breakers;
        let fleet = self.fleet.fleet_health().await?;
        self.follow_quorums(&fleet);
        if self.chaos.is_some() {
            self.apply_chaos(fleet.live()).await?;
        }
        Ok(())
    }

    /// Whether a local breaker changed state since the last publish (reading the registry only).
    fn local_changed(&self) -> bool {
        let snapshots = self.breakers.snapshots();
        snapshots.len() != self.published.len()
            || snapshots.iter().any(|(name, snapshot)| {
                !self.adopted.contains_key(&**name)
                    && self.published.get(&**name).map(String::as_str)
                        != Some(snapshot.state.as_str())
            })
    }

    fn report(&self) -> InstanceReport {
        let (status, score) = match &self.health {
            Some(reports) => {
                let report = reports.borrow();
                (report.status, report.score)
            }
            None => (HealthStatus::Unknown, 0.0),
        };
        let breakers = self
            .breakers
            .snapshots()
            .into_iter()
            .map(|(name, snapshot)| {
                let state = if self.adopted.contains_key(&*name) {
                    "ADOPTED".to_owned()
                } else {
                    snapshot.state.as_str().to_owned()
                };
                (name.to_string(), state)
            })
            .collect();
        InstanceReport {
            instance: self.fleet.instance().to_owned(),
            status,
            score,
            breakers,
            published_at_ms: now_ms(),
            governance: self.breakers.governance(),
        }
    }

    fn follow_quorums(&mut self, fleet: &super::FleetHealth) {
        let config = self.fleet.config().clone();
        let hold = config.publish_every * 3;
        for (name, _) in self.breakers.snapshots() {
            let (open, reporting) = fleet.votes(&name);
            let quorum = reporting >= config.min_reporting as usize
                && open > 0
                && open as f64 >= config.quorum * reporting as f64;
            let Some(breaker) = self.breakers.forceable(&name) else {
                continue;
            };
            match (quorum, self.adopted.remove(&*name)) {
                (true, Some((breaker, token))) => {
                    // Renew: a fresh hold replaces ours if nobody changed the breaker since.
                    if breaker.restore_if_unchanged(token) {
                        self.adopt(&name, breaker, hold);
                    }
                }
                (true, None) => {
                    let state = self
                        .breakers
                        .breaker(&name)
                        .map_or(State::Closed, |b| b.current_state());
                    if state == State::Closed {
                        tracing::info!(dependency = %name, open, reporting, "adopting OPEN from the fleet");
                        self.adopt(&name, breaker, hold);
                    }
                }
                (false, Some((breaker, token))) => {
                    tracing::info!(dependency = %name, open, reporting, "fleet quorum gone; giving the breaker back");
                    breaker.restore_if_unchanged(token);
                }
                (false, None) => {}
            }
        }
    }

    fn adopt(&mut self, name: &str, breaker: Arc<dyn ForceableBreaker>, hold: Duration) {
        match breaker.force_open_for(hold) {
            Ok(token) => {
                self.adopted.insert(name.to_owned(), (breaker, token));
            }
            Err(error) => tracing::warn!(dependency = %name, %error, "cannot adopt OPEN"),
        }
    }

    async fn apply_chaos(&mut self, live: usize) -> Result<(), super::FleetError> {
        let Some(engine) = self.chaos.clone() else {
            return Ok(());
        };
        let state = self.fleet.chaos_state().await?;
        match (&state.stopped, self.stopped_by_fleet) {
            (Some(stop), false) => {
                tracing::warn!(by = %stop.by, "fleet emergency stop");
                engine.fleet_stop(true);
                self.stopped_by_fleet = true;
                self.running.clear();
            }
            (None, true) => {
                engine.fleet_stop(false);
                self.stopped_by_fleet = false;
            }
            _ => {}
        }
        let wanted: HashSet<&str> = state.scenarios.iter().map(|s| s.name.as_str()).collect();
        let gone: Vec<String> = self
            .running
            .iter()
            .filter(|name| !wanted.contains(name.as_str()))
            .cloned()
            .collect();
        for name in gone {
            let _ = engine.deactivate(&name);
            self.running.remove(&name);
        }
        if state.stopped.is_some() {
            return Ok(());
        }
        for scenario in &state.scenarios {
            if self.running.contains(&scenario.name)
                || !self.fleet.join_scenario(scenario, live).await?
            {
                continue;
            }
            let started = scenario.fault.start_on(
                &engine,
                &scenario.name,
                &scenario.target,
                scenario.remaining(),
            );
            match started {
                Ok(_) => {
                    self.running.insert(scenario.name.clone());
                }
                Err(error) => {
                    tracing::warn!(scenario = %scenario.name, %error, "fleet scenario refused here");
                }
            }
        }
        // Scenarios that ended here on their own (expiry) may be started again only if the fleet
        // still wants them: forget the ones the engine no longer runs.
        let active: HashSet<String> = engine
            .active()
            .into_iter()
            .map(|a| a.scenario.name().to_owned())
            .collect();
        self.running.retain(|name| active.contains(name));
        Ok(())
    }

    fn leave(&mut self) {
        for (_, (breaker, token)) in self.adopted.drain() {
            breaker.restore_if_unchanged(token);
        }
        if let Some(engine) = &self.chaos {
            for name in self.running.drain() {
                let _ = engine.deactivate(&name);
            }
        }
    }
}

/// Wakes the member whenever another instance announces a breaker transition or a chaos change;
/// resubscribes after Redis comes back.
async fn listen(fleet: Fleet, wake: Arc<Notify>, cancel: CancellationToken) {
    let channels = [fleet.keys().breaker_channel(), fleet.keys().chaos_channel()];
    while !cancel.is_cancelled() {
        match fleet.client().get_async_pubsub().await {
            Ok(mut pubsub) => {
                if pubsub.subscribe(&channels).await.is_ok() {
                    let mut messages = pubsub.on_message();
                    loop {
                        tokio::select! {
                            () = cancel.cancelled() => return,
                            message = messages.next() => match message {
                                Some(_) => wake.notify_one(),
                                None => break,
                            },
                        }
                    }
                }
            }
            Err(error) => tracing::debug!(%error, "fleet subscription failed; retrying"),
        }
        tokio::select! {
            () = cancel.cancelled() => return,
            () = tokio::time::sleep(Duration::from_millis(250)) => {}
        }
    }
}
