//! Operator controls (force open, disable, reset, half-open, restore) and observation.

use crate::clock::{Clock, Nanos};
use crate::sync::Ordering;

use super::super::snapshot::{BreakerSnapshot, CallTotals};
use super::super::state::{CLOSED, HALF_OPEN, OPEN, State, Word, deadline_payload};
use super::super::window::WindowCounts;
use super::{CircuitBreaker, stamp, stamp_for};
use crate::stats::Count;

impl<C: Clock> CircuitBreaker<C> {
    /// The word for an operator-driven move to `to`; clears the window first when `to` is
    /// CLOSED (the CAS that follows publishes the clear).
    fn forced_word(&self, word: Word, to: State, now: Nanos) -> Word {
        let (level, payload) = match to {
            State::Open => (
                word.level(),
                deadline_payload(
                    now,
                    self.config.open_nanos(word.level(), self.jitter_unit()),
                ),
            ),
            State::HalfOpen => (word.level(), Word::half_open_payload(0, 0)),
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
    fn try_force(&self, word: Word, to: State, now: Nanos) -> Result<(), Word> {
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

    /// Rejects every call until [`reset`](Self::reset); returns the previous state.
    pub fn force_open(&self) -> State {
        self.force(State::ForcedOpen)
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

    /// Undoes a [`force_open`](Self::force_open) if nothing has moved the breaker since:
    /// `forced_generation` is the generation the forced state got (see
    /// [`generation`](Self::generation)), `previous` what `force_open` returned. Returns whether
    /// it did. A breaker that was CLOSED or DISABLED goes back there; one that was OPEN or
    /// HALF_OPEN goes to HALF_OPEN so a probe decides; one an operator had already forced open
    /// stays forced. Chaos uses this so it never clobbers a later operator action.
    pub fn restore_if_unchanged(&self, forced_generation: u32, previous: State) -> bool {
        let word = self.load();
        if word.state() != State::ForcedOpen || word.generation() != forced_generation {
            return false;
        }
        let to = match previous {
            State::Closed => State::Closed,
            State::Disabled => State::Disabled,
            State::Open | State::HalfOpen => State::HalfOpen,
            State::ForcedOpen => return false,
        };
        self.try_force(word, to, self.clock.now()).is_ok()
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
        let open_until = (word.state_bits() == OPEN).then(|| {
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
            backoff_level: word.level(),
            consecutive_failures: if word.state_bits() == CLOSED {
                u32::try_from(word.payload()).unwrap_or(u32::MAX)
            } else {
                0
            },
            half_open_in_flight: in_flight,
            half_open_successes: probe_successes,
            window: self.window_counts().unwrap_or_default(),
            totals: CallTotals {
                successes: self.counters.total(Count::Successes),
                failures: self.counters.total(Count::Failures),
                ignored: self.counters.total(Count::Ignored),
                rejected: self.counters.total(Count::Rejected),
                stale: self.counters.total(Count::Stale),
                slow: self.counters.total(Count::Slow),
            },
            since,
            open_until,
            governance: self.fast.governance,
        }
    }
}
