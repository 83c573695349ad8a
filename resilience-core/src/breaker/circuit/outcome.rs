//! Outcomes reported by permits, and the transitions they cause.

use crate::clock::{Clock, Nanos};
use crate::event::BreakerEvent;
use crate::stats::Count;
use crate::sync::Ordering;

use super::super::state::{CLOSED, HALF_OPEN, State, Ticket, Word, deadline_payload};
use super::super::window::{Window, code};
use super::{CircuitBreaker, stamp};

/// How an [`CircuitBreaker::update`] ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Update {
    /// The CAS succeeded, from the first word to the second.
    Moved(Word, Word),
    /// Nothing needed changing.
    Unchanged,
    /// The generation moved on first; the caller's outcome is stale.
    Stale,
}

impl<C: Clock> CircuitBreaker<C> {
    // Each outcome takes effect at one atomic step (the load that finds nothing to change, or
    // the CAS that changes the word). If the word moves to another generation first, the outcome
    // belongs to a state that is gone: it is counted as stale, never as applied. That keeps the
    // counts linearizable with the transitions (checked by the loom models).

    /// The common case inline (CLOSED or DISABLED, no failure run, no window: nothing to change,
    /// just count), the rest out of line so callers' loops stay small.
    #[inline(always)]
    pub(crate) fn on_success(&self, ticket: Ticket, slow: bool) {
        let word = self.load();
        // Equal words mean same state and generation, level 0 and an empty payload.
        if word.0 == u64::from(ticket)
            && word.state_bits() != HALF_OPEN
            && self.window.is_none()
            && !slow
        {
            return self.bump(Count::Successes);
        }
        self.on_success_slow(word, ticket, slow);
    }

    #[inline(never)]
    fn on_success_slow(&self, word: Word, ticket: Ticket, slow: bool) {
        let applied = word.ticket() == ticket
            && match word.state_bits() {
                CLOSED => {
                    let mut trips = false;
                    if let Some(window) = &self.window {
                        window.record(code(false, slow), || self.clock.now());
                        trips = slow && self.window_trips(window);
                    }
                    if trips {
                        self.count_failure(word, true)
                    } else if word.payload() == 0 {
                        true
                    } else {
                        self.clear_consecutive(word)
                    }
                }
                HALF_OPEN if slow && self.fast.slow_ppm.is_some() => self.reopen(word),
                HALF_OPEN => self.probe_succeeded(word),
                _ => true,
            };
        self.count(applied, Count::Successes, slow);
    }

    #[inline(never)]
    pub(crate) fn on_failure(&self, ticket: Ticket, slow: bool) {
        let word = self.load();
        let applied = word.ticket() == ticket
            && match word.state_bits() {
                CLOSED => {
                    let window_trips = match &self.window {
                        Some(window) => {
                            window.record(code(true, slow), || self.clock.now());
                            self.window_trips(window)
                        }
                        None => false,
                    };
                    self.count_failure(word, window_trips)
                }
                HALF_OPEN => self.reopen(word),
                _ => true,
            };
        self.count(applied, Count::Failures, slow);
    }

    #[inline(always)]
    pub(crate) fn on_release(&self, ticket: Ticket) {
        let word = self.load();
        if word.0 == u64::from(ticket) && word.state_bits() != HALF_OPEN {
            return self.bump(Count::Ignored);
        }
        self.on_release_slow(word, ticket);
    }

    #[inline(never)]
    fn on_release_slow(&self, word: Word, ticket: Ticket) {
        let applied = word.ticket() == ticket
            && self.update(word, |w| {
                (w.state_bits() == HALF_OPEN).then(|| {
                    w.with_payload(Word::half_open_payload(
                        w.half_open_in_flight().saturating_sub(1),
                        w.half_open_successes(),
                    ))
                })
            }) != Update::Stale;
        self.bump(if applied {
            Count::Ignored
        } else {
            Count::Stale
        });
    }

    fn count(&self, applied: bool, count: Count, slow: bool) {
        if !applied {
            return self.bump(Count::Stale);
        }
        self.bump(count);
        if slow {
            self.bump(Count::Slow);
        }
    }

    #[inline(always)]
    pub(super) fn bump(&self, count: Count) {
        if self.fast.totals {
            self.counters.bump(count as usize);
        }
    }

    fn window_trips(&self, window: &Window) -> bool {
        window.counts(|| self.clock.now()).reaches(
            self.fast.min_calls,
            self.fast.failure_ppm,
            self.fast.slow_ppm,
        )
    }

    /// Applies `next` to the word with a CAS, re-running `next` on the fresh word whenever only
    /// the payload changed under us (same generation). `next` returning `None` means there is
    /// nothing to change.
    #[inline]
    fn update(&self, mut word: Word, mut next: impl FnMut(Word) -> Option<Word>) -> Update {
        let ticket = word.ticket();
        loop {
            let Some(new) = next(word) else {
                return Update::Unchanged;
            };
            match self.cas(word, new) {
                Ok(()) => return Update::Moved(word, new),
                Err(actual) if actual.ticket() == ticket => word = actual,
                Err(_) => return Update::Stale,
            }
        }
    }

    /// Publishes the event for an update that changed generation; whether it applied.
    fn finish(&self, update: Update, now: impl FnOnce() -> Nanos) -> bool {
        match update {
            Update::Moved(from, to) if from.generation() != to.generation() => {
                self.transitioned(from, to, now());
                true
            }
            Update::Stale => false,
            _ => true,
        }
    }

    /// When a breaker opening now at `level` may admit its first probe: `(now, payload)`.
    fn open_deadline(&self, level: u32) -> (Nanos, u64) {
        let now = self.clock.now();
        (
            now,
            deadline_payload(now, self.config.open_nanos(level, self.jitter_unit())),
        )
    }

    /// A success in CLOSED ends a run of consecutive failures.
    #[cold]
    fn clear_consecutive(&self, word: Word) -> bool {
        self.update(word, |w| (w.payload() != 0).then(|| w.with_payload(0))) != Update::Stale
    }

    /// A failure in CLOSED: extend the run, or trip (at backoff level 0) when the run reaches
    /// fail_max or the window says so. A success that clears the run first is honoured.
    fn count_failure(&self, word: Word, window_trips: bool) -> bool {
        if !window_trips && self.fast.fail_max == u64::MAX {
            return true;
        }
        let mut deadline = None;
        let update = self.update(word, |w| {
            let failures = w.payload() + 1;
            Some(if window_trips || failures >= self.fast.fail_max {
                let (_, payload) = *deadline.get_or_insert_with(|| self.open_deadline(0));
                w.transition(State::Open, 0, payload)
            } else {
                w.with_payload(failures)
            })
        });
        self.finish(update, || {
            deadline.map_or_else(|| self.clock.now(), |d| d.0)
        })
    }

    /// HALF_OPEN → OPEN, one backoff level up.
    #[cold]
    fn reopen(&self, word: Word) -> bool {
        let level = word.level() + 1;
        let (now, payload) = self.open_deadline(level);
        let update = self.update(word, |w| Some(w.transition(State::Open, level, payload)));
        self.finish(update, || now)
    }

    #[cold]
    fn probe_succeeded(&self, word: Word) -> bool {
        let update = self.update(word, |w| {
            let successes = w.half_open_successes() + 1;
            Some(if successes >= self.fast.successes_to_close {
                // Clear before publishing CLOSED (the CAS releases it). Clearing while not
                // CLOSED is harmless even if the CAS then loses.
                if let Some(window) = &self.window {
                    window.clear();
                }
                w.transition(State::Closed, 0, 0)
            } else {
                w.with_payload(Word::half_open_payload(
                    w.half_open_in_flight().saturating_sub(1),
                    successes,
                ))
            })
        });
        self.finish(update, || self.clock.now())
    }

    pub(super) fn transitioned(&self, from: Word, to: Word, now: Nanos) {
        self.since.store(stamp(to, now), Ordering::Relaxed);
        if let Some(events) = &self.events {
            events.emit(BreakerEvent {
                breaker: self.id,
                from: from.state(),
                to: to.state(),
                generation: to.generation(),
                at: now,
                governance: self.fast.governance,
            });
        }
    }

    /// A uniform value in [0, 1) for jitter (splitmix64 over a per-breaker sequence).
    pub(super) fn jitter_unit(&self) -> f64 {
        if self.config.jitter() == 0.0 {
            return 0.0;
        }
        let mut z = self
            .jitter_state
            .fetch_add(0x9e37_79b9_7f4a_7c15, Ordering::Relaxed);
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^= z >> 31;
        (z >> 11) as f64 / (1u64 << 53) as f64
    }

    #[cfg(feature = "slow-call-timing")]
    #[inline]
    pub(crate) fn start_timing(&self) -> Option<Nanos> {
        self.fast.slow_nanos.map(|_| self.clock.precise_now())
    }

    #[cfg(feature = "slow-call-timing")]
    #[inline]
    pub(crate) fn is_slow(&self, started: Option<Nanos>) -> bool {
        match (started, self.fast.slow_nanos) {
            (Some(started), Some(threshold)) => {
                self.clock
                    .precise_now()
                    .as_nanos()
                    .saturating_sub(started.as_nanos())
                    >= threshold
            }
            _ => false,
        }
    }
}
