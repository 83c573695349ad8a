//! Operator controls (force open, disable, reset, half-open, restore) and observation.

use core::time::Duration;

use crate::clock::{Clock, Nanos, duration_nanos};
use crate::error::ConfigError;
use crate::sync::Ordering;

use super::super::config::BreakerConfig;
use super::super::snapshot::{BreakerSnapshot, CallTotals};
use super::super::state::{
    CLOSED, FORCED_OPEN, HALF_OPEN, OPEN, State, Word, deadline_payload, later_deadline,
};
use super::super::window::WindowCounts;
use super::{CircuitBreaker, stamp, stamp_for};
use crate::stats::Count;

impl<C: Clock> CircuitBreaker<C> {
    /// The word for an operator-driven move to `to`; clears the window first when `to` is
    /// CLOSED (the CAS that follows publishes the clear).
    fn forced_word(&self, word: Word, to: State, now: Nanos) -> Word {
        // In FORCED_OPEN the level bits hold the restore target, not a backoff level.
        let level = if word.state_bits() == FORCED_OPEN {
            0
        } else {
            word.level()
        };
        let (level, payload) = match to {
            State::Open => (
                level,
                deadline_payload(now, self.config.open_nanos(level, self.jitter_unit())),
            ),
            State::HalfOpen => (level, Word::half_open_payload(0, 0)),
            State::Closed | State::ForcedOpen | State::Disabled => (0, 0),
        };
        if to == State::Closed
            && let Some(window) = &self.window
        {
            window.clear();
        }
        word.transition(to, level, payload)
    }

    /// Publishes a forced move from exactly `word`.
    pub(super) fn try_force(&self, word: Word, to: State, now: Nanos) -> Result<(), Word> {
        let next = self.forced_word(word, to, now);
        self.cas(word, next)?;
        if to == State::HalfOpen {
            self.last_probe.store(stamp(next, now), Ordering::Relaxed);
        }
        self.transitioned(word, next, now);
        Ok(())
    }

    /// Moves to `to` from whatever state holds now; returns the state it left.
    fn force(&self, to: State) -> State {
        let now = self.clock.now();
        let mut word = self.load();
        loop {
            match self.try_force(word, to, now) {
                Ok(()) => return word.state(),
                Err(actual) => word = actual,
            }
        }
    }

    /// Rejects every call until [`reset`](Self::reset) (an operator's forced open: no deadline,
    /// and chaos will not undo it); returns a token for
    /// [`restore_if_unchanged`](Self::restore_if_unchanged).
    pub fn force_open(&self) -> ForcedOpen {
        let previous = self.force(State::ForcedOpen);
        ForcedOpen {
            generation: self.generation(),
            previous,
        }
    }

    /// Admits every call and records nothing until [`reset`](Self::reset); returns the previous
    /// state.
    pub fn disable(&self) -> State {
        self.force(State::Disabled)
    }

    /// Back to CLOSED with counts, window and backoff cleared; returns the previous state.
    pub fn reset(&self) -> State {
        self.force(State::Closed)
    }

    /// OPEN now, for the current backoff level's timeout (used when the fleet agrees a
    /// dependency is down); returns the previous state.
    pub fn trip_open(&self) -> State {
        self.force(State::Open)
    }

    /// HALF_OPEN now with no probes in flight (used by recovery before a health check);
    /// returns the previous state.
    pub fn transition_to_half_open(&self) -> State {
        self.force(State::HalfOpen)
    }

    /// Forces the breaker open for `duration`, after which it restores itself on its own call
    /// path, with no control plane needed: a breaker that was CLOSED or DISABLED goes back
    /// there, one that was OPEN or HALF_OPEN goes to HALF_OPEN so a probe decides. A breaker an
    /// operator forced open (with [`force_open`](Self::force_open)) is left alone; one already
    /// forced by chaos keeps the later deadline. This is how chaos forces breakers open.
    ///
    /// # Errors
    ///
    /// [`ConfigError::Invalid`] if `duration` is under 1 ms or over 30 days.
    ///
    /// # Examples
    ///
    /// ```
    /// use resilience_core::{CircuitBreaker, ManualClock, RejectReason, State};
    /// use std::time::Duration;
    ///
    /// let clock = ManualClock::new();
    /// let breaker = CircuitBreaker::builder("db").clock(clock.clone()).build()?;
    /// let forced = breaker.force_open_for(Duration::from_secs(10))?;
    /// assert_eq!(forced.previous, State::Closed);
    /// assert_eq!(breaker.try_acquire().unwrap_err().reason(), RejectReason::ForcedOpen);
    /// clock.advance(Duration::from_secs(10));
    /// assert!(breaker.try_acquire().is_ok(), "restored on time by the call path itself");
    /// assert_eq!(breaker.state(), State::Closed);
    /// # Ok::<(), resilience_core::ConfigError>(())
    /// ```
    pub fn force_open_for(&self, duration: Duration) -> Result<ForcedOpen, ConfigError> {
        if duration < Duration::from_millis(1) || duration > BreakerConfig::MAX_TIMEOUT {
            return Err(ConfigError::invalid(
                "force_open_for.duration",
                format_args!("{duration:?}"),
                "between 1ms and 30 days",
            ));
        }
        let now = self.clock.now();
        let deadline = deadline_payload(now, duration_nanos(duration));
        let mut word = self.load();
        loop {
            let (code, deadline) = match word.state() {
                State::ForcedOpen if word.level() == 0 => {
                    // An operator's forced open outranks chaos.
                    return Ok(ForcedOpen {
                        generation: word.generation(),
                        previous: State::ForcedOpen,
                    });
                }
                // Forced by chaos already: keep its restore target, and the later deadline.
                State::ForcedOpen => (word.level(), later_deadline(word.payload(), deadline)),
                other => (restore_code(other), deadline),
            };
            let next = word.transition(State::ForcedOpen, code, deadline);
            match self.cas(word, next) {
                Ok(()) => {
                    self.transitioned(word, next, now);
                    return Ok(ForcedOpen {
                        generation: next.generation(),
                        previous: word.state(),
                    });
                }
                Err(actual) => word = actual,
            }
        }
    }

    /// FORCED_OPEN with a deadline (chaos): restores the breaker once the deadline has passed.
    /// `Ok(word)` is the word to re-evaluate the call against, `Err(remaining_ms)` a rejection.
    pub(super) fn forced_expiry(&self, word: Word) -> Result<Word, Option<u64>> {
        let Some(to) = restore_state(word.level()) else {
            return Err(None);
        };
        let now = self.clock.now();
        let remaining = word.open_remaining_ms(now);
        if remaining != 0 {
            return Err(Some(remaining));
        }
        match self.try_force(word, to, now) {
            Ok(()) => Ok(self.load()),
            Err(actual) => Ok(actual),
        }
    }

    /// Undoes a forced open if nothing has moved the breaker since: `forced` is what
    /// [`force_open`](Self::force_open) or [`force_open_for`](Self::force_open_for) reported.
    /// Returns whether it did. A breaker that was CLOSED or DISABLED goes back there; one that
    /// was OPEN or HALF_OPEN goes to HALF_OPEN so a probe decides; one an operator had already
    /// forced open stays forced. Chaos uses this (on deactivation and emergency stop) so it
    /// never clobbers a later operator action.
    pub fn restore_if_unchanged(&self, forced: ForcedOpen) -> bool {
        let word = self.load();
        if word.state() != State::ForcedOpen || word.generation() != forced.generation {
            return false;
        }
        // A chaos force carries its restore target in the word (it may have re-forced an
        // earlier chaos force); an operator's force takes it from the token.
        let code = if word.level() != 0 {
            word.level()
        } else {
            restore_code(forced.previous)
        };
        let Some(to) = restore_state(code) else {
            return false;
        };
        self.try_force(word, to, self.clock.now()).is_ok()
    }

    /// Makes the time-based transitions a call would make, without a call: an OPEN breaker
    /// whose OPEN time has passed moves to HALF_OPEN (no probe is admitted; the next call
    /// becomes the first), and a timed force (chaos, a fleet hold) past its deadline is lifted.
    /// Returns the new state when it moved.
    ///
    /// The call path never needs this; a control loop calls it on its timer (the control
    /// plane's health sampler does, every sample) so that a breaker nobody calls, for instance
    /// because readiness failing cut its traffic, still reports HALF_OPEN once it is ready to
    /// probe, and a hold ends on time. (Resilience4j calls this
    /// `automaticTransitionFromOpenToHalfOpenEnabled`.)
    ///
    /// # Examples
    ///
    /// ```
    /// use resilience_core::{CircuitBreaker, ManualClock, State};
    /// use std::time::Duration;
    ///
    /// let clock = ManualClock::new();
    /// let breaker = CircuitBreaker::builder("db")
    ///     .reset_timeout(Duration::from_secs(1))
    ///     .clock(clock.clone())
    ///     .build()?;
    /// breaker.trip_open();
    /// assert_eq!(breaker.tick(), None, "still within its OPEN time");
    /// clock.advance(Duration::from_secs(1));
    /// assert_eq!(breaker.tick(), Some(State::HalfOpen));
    /// assert!(breaker.try_acquire().is_ok(), "the next call is the first probe");
    /// # Ok::<(), resilience_core::ConfigError>(())
    /// ```
    pub fn tick(&self) -> Option<State> {
        let word = self.load();
        match word.state_bits() {
            OPEN => {
                let now = self.clock.now();
                if word.open_remaining_ms(now) != 0 {
                    return None;
                }
                let next =
                    word.transition(State::HalfOpen, word.level(), Word::half_open_payload(0, 0));
                // Losing the CAS means a call (or another tick) moved it first.
                self.cas(word, next).ok()?;
                self.transitioned(word, next, now);
                Some(State::HalfOpen)
            }
            FORCED_OPEN if word.level() != 0 => match self.forced_expiry(word) {
                Ok(restored) if restored.state() != State::ForcedOpen => Some(restored.state()),
                _ => None,
            },
            _ => None,
        }
    }

    /// Generation of the current state (bumped by every transition).
    pub fn generation(&self) -> u32 {
        self.load().generation()
    }

    /// Counts in the sliding window, if a rate policy is on.
    pub fn window_counts(&self) -> Option<WindowCounts> {
        self.window.as_ref().map(|w| w.counts(|| self.clock.now()))
    }

    /// A consistent `Copy` view of the state, counts and timestamps.
    pub fn snapshot(&self) -> BreakerSnapshot {
        let word = self.load();
        let now = self.clock.now();
        let since = stamp_for(self.since.load(Ordering::Relaxed), word)
            .map_or(now, |ms| Nanos::from_nanos(ms * 1_000_000));
        // OPEN, and FORCED_OPEN by chaos (level bits = restore target), carry a deadline.
        let timed_force = word.state_bits() == FORCED_OPEN && word.level() != 0;
        let open_until = (word.state_bits() == OPEN || timed_force).then(|| {
            Nanos::from_nanos((now.as_millis() + word.open_remaining_ms(now)) * 1_000_000)
        });
        let (in_flight, probe_successes) = if word.state_bits() == HALF_OPEN {
            (
                word.half_open_in_flight() as u32,
                word.half_open_successes() as u32,
            )
        } else {
            (0, 0)
        };
        BreakerSnapshot {
            id: self.id,
            state: word.state(),
            generation: word.generation(),
            backoff_level: if word.state_bits() == FORCED_OPEN {
                0
            } else {
                word.level()
            },
            consecutive_failures: if word.state_bits() == CLOSED {
                u32::try_from(word.payload()).unwrap_or(u32::MAX)
            } else {
                0
            },
            half_open_in_flight: in_flight,
            half_open_successes: probe_successes,
            window: self.window_counts().unwrap_or_default(),
            totals: CallTotals {
                successes: self.counters.total(Count::Successes as usize),
                failures: self.counters.total(Count::Failures as usize),
                ignored: self.counters.total(Count::Ignored as usize),
                rejected: self.counters.total(Count::Rejected as usize),
                stale: self.counters.total(Count::Stale as usize),
                slow: self.counters.total(Count::Slow as usize),
            },
            since,
            open_until,
            governance: self.fast.governance,
        }
    }
}

/// What a forced open replaced: give it back to
/// [`CircuitBreaker::restore_if_unchanged`] to undo the force.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct ForcedOpen {
    /// Generation of the FORCED_OPEN state (the force is undone only if it still holds).
    pub generation: u32,
    /// The state before the force.
    pub previous: State,
}

/// Level bits of a FORCED_OPEN word: 0 for an operator's indefinite force, otherwise where a
/// timed (chaos) force restores to.
const fn restore_code(previous: State) -> u32 {
    match previous {
        State::Closed => 1,
        State::Open | State::HalfOpen => 2,
        State::Disabled => 3,
        State::ForcedOpen => 0,
    }
}

const fn restore_state(code: u32) -> Option<State> {
    match code {
        1 => Some(State::Closed),
        2 => Some(State::HalfOpen),
        3 => Some(State::Disabled),
        _ => None,
    }
}
