//! [`CircuitBreaker`]: acquire, outcomes and transitions over one packed atomic word.

use core::fmt;
use std::sync::Arc;

use crossbeam_utils::CachePadded;

use crate::clock::{Clock, CoarseClock, Nanos};
use crate::error::ConfigError;
use crate::event::{BreakerEvent, EventChannel};
use crate::governance::GovernanceHash;
use crate::stats::{Count, Counters};
use crate::sync::{AtomicU64, Ordering};

use core::time::Duration;

use super::BreakerId;
use super::config::{
    BreakerConfig, BreakerConfigBuilder, SlidingWindow, forward_config_setters, rate_ppm,
};
use super::permit::{CallError, Outcome, Permit, RejectReason, Rejected};
use super::snapshot::{BreakerSnapshot, CallTotals};
use super::state::{CLOSED, DISABLED, HALF_OPEN, OPEN, State, Ticket, Word, deadline_payload};
use super::window::{Window, WindowCounts, code};

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

/// Config values the call paths read, kept together and precomputed.
struct Fast {
    /// Consecutive failures that trip; `u64::MAX` when that policy is off.
    fail_max: u64,
    probes: u64,
    successes_to_close: u64,
    failure_ppm: Option<u64>,
    slow_ppm: Option<u64>,
    min_calls: u32,
    probe_timeout_ms: Option<u64>,
    #[cfg(feature = "slow-call-timing")]
    slow_nanos: Option<u64>,
    /// Lifetime totals are kept.
    totals: bool,
    governance: GovernanceHash,
}

/// `generation << 44 | milliseconds`: a time tagged with the generation it belongs to, so a
/// reader can tell a stale value (the writer has not stored yet) from a current one.
const STAMP_MS_MASK: u64 = (1 << 44) - 1;

fn stamp(word: Word, now: Nanos) -> u64 {
    (u64::from(word.generation()) << 44) | (now.as_millis() & STAMP_MS_MASK)
}

fn stamp_for(stamped: u64, word: Word) -> Option<u64> {
    (stamped >> 44 == u64::from(word.generation())).then_some(stamped & STAMP_MS_MASK)
}

/// A lock-free circuit breaker.
///
/// All state lives in one atomic word (see the `state` module docs), so admitting a call in
/// CLOSED is one load, rejecting in OPEN is one load plus one clock load, and every transition
/// is one compare-and-swap. Nothing on the call paths allocates, locks or makes a syscall.
///
/// # Examples
///
/// ```
/// use resilience_core::{CircuitBreaker, State};
///
/// let breaker = CircuitBreaker::builder("payments").fail_max(2).build()?;
/// breaker.try_acquire().unwrap().failure();
/// breaker.try_acquire().unwrap().failure();
/// assert_eq!(breaker.state(), State::Open);
/// assert!(breaker.try_acquire().is_err());
/// # Ok::<(), resilience_core::ConfigError>(())
/// ```
pub struct CircuitBreaker<C: Clock = CoarseClock> {
    word: CachePadded<AtomicU64>,
    fast: Fast,
    window: Option<Window>,
    counters: Counters,
    /// Stamp of the last transition.
    since: AtomicU64,
    /// Stamp of the last HALF_OPEN probe admission (for the probe timeout).
    last_probe: AtomicU64,
    jitter_state: AtomicU64,
    clock: C,
    events: Option<Arc<EventChannel>>,
    config: BreakerConfig,
    id: BreakerId,
    name: Box<str>,
}

/// Builder for [`CircuitBreaker`]: the name, the clock, the event channel, and every
/// [`BreakerConfigBuilder`] setter.
#[must_use = "a builder does nothing until build() is called"]
pub struct CircuitBreakerBuilder<C: Clock = CoarseClock> {
    name: String,
    config: BreakerConfigBuilder,
    clock: C,
    events: Option<Arc<EventChannel>>,
}

forward_config_setters!(CircuitBreakerBuilder);

#[cfg(feature = "slow-call-timing")]
impl<C: Clock> CircuitBreakerBuilder<C> {
    /// See [`BreakerConfigBuilder::slow_call`].
    #[cfg_attr(docsrs, doc(cfg(feature = "slow-call-timing")))]
    pub fn slow_call(mut self, threshold: Duration, rate: f64) -> Self {
        self.config = self.config.slow_call(threshold, rate);
        self
    }
}

impl<C: Clock> CircuitBreakerBuilder<C> {
    /// Replaces every policy with those of `config`.
    pub fn config(mut self, config: BreakerConfig) -> Self {
        self.config = config.into();
        self
    }

    /// Uses `clock` instead of the global [`CoarseClock`] (e.g. a
    /// [`ManualClock`](crate::ManualClock) in tests).
    pub fn clock<C2: Clock>(self, clock: C2) -> CircuitBreakerBuilder<C2> {
        CircuitBreakerBuilder {
            name: self.name,
            config: self.config,
            clock,
            events: self.events,
        }
    }

    /// Sends transition events to `events`.
    pub fn events(mut self, events: Arc<EventChannel>) -> Self {
        self.events = Some(events);
        self
    }

    /// Validates the name and every policy, and builds the breaker.
    ///
    /// # Errors
    ///
    /// [`ConfigError::Invalid`] naming the first bad field and its value.
    pub fn build(self) -> Result<CircuitBreaker<C>, ConfigError> {
        validate_name(&self.name)?;
        let config = self.config.build()?;
        Ok(CircuitBreaker::from_parts(
            self.name.into_boxed_str(),
            config,
            self.clock,
            self.events,
        ))
    }
}

/// Breaker names: 1 to 200 bytes, no control characters (they end up in logs, metrics labels and
/// Redis keys).
pub(crate) fn validate_name(name: &str) -> Result<(), ConfigError> {
    if name.is_empty() || name.len() > 200 || name.chars().any(char::is_control) {
        return Err(ConfigError::invalid(
            "name",
            format_args!("{name:?}"),
            "1 to 200 bytes without control characters",
        ));
    }
    Ok(())
}

impl CircuitBreaker<CoarseClock> {
    /// A builder named `name`, with the default policies and the global [`CoarseClock`].
    pub fn builder(name: impl Into<String>) -> CircuitBreakerBuilder<CoarseClock> {
        CircuitBreakerBuilder {
            name: name.into(),
            config: BreakerConfigBuilder::default(),
            clock: CoarseClock::default(),
            events: None,
        }
    }
}

impl<C: Clock> CircuitBreaker<C> {
    pub(crate) fn from_parts(
        name: Box<str>,
        config: BreakerConfig,
        clock: C,
        events: Option<Arc<EventChannel>>,
    ) -> Self {
        let now = clock.now();
        let fast = Fast {
            fail_max: config.fail_max().map_or(u64::MAX, u64::from),
            probes: u64::from(config.half_open_probes()),
            successes_to_close: u64::from(config.half_open_successes()),
            failure_ppm: config.failure_rate().map(rate_ppm),
            #[cfg(feature = "slow-call-timing")]
            slow_ppm: config.slow_call().map(|s| rate_ppm(s.rate)),
            #[cfg(not(feature = "slow-call-timing"))]
            slow_ppm: None,
            min_calls: config.min_calls(),
            probe_timeout_ms: config.probe_timeout().map(|t| t.as_millis() as u64),
            #[cfg(feature = "slow-call-timing")]
            slow_nanos: config
                .slow_call()
                .map(|s| crate::clock::duration_nanos(s.threshold)),
            totals: config.call_totals(),
            governance: config.governance(),
        };
        let id = BreakerId::next();
        CircuitBreaker {
            word: CachePadded::new(AtomicU64::new(Word::INITIAL.0)),
            fast,
            window: config
                .uses_window()
                .then(|| Window::new(config.sliding_window())),
            counters: Counters::new(),
            since: AtomicU64::new(stamp(Word::INITIAL, now)),
            last_probe: AtomicU64::new(0),
            jitter_state: AtomicU64::new(
                u64::from(id.as_u32()).wrapping_mul(0x9e37_79b9_7f4a_7c15)
                    ^ clock.precise_now().as_nanos(),
            ),
            clock,
            events,
            config,
            id,
            name,
        }
    }

    /// The breaker's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The breaker's process-unique id (events carry it instead of the name).
    pub fn id(&self) -> BreakerId {
        self.id
    }

    /// The policies it was built with.
    pub fn config(&self) -> &BreakerConfig {
        &self.config
    }

    /// The clock it reads.
    pub fn clock(&self) -> &C {
        &self.clock
    }

    /// The event channel transitions go to, if any.
    pub fn events(&self) -> Option<&Arc<EventChannel>> {
        self.events.as_ref()
    }

    /// The current state (an OPEN breaker whose timeout has passed still reads OPEN until the
    /// next call moves it to HALF_OPEN).
    pub fn state(&self) -> State {
        self.load().state()
    }

    #[cfg(all(test, resilience_loom))]
    pub(crate) fn word_for_tests(&self) -> u64 {
        self.load().0
    }

    #[inline(always)]
    fn load(&self) -> Word {
        // Acquire pairs with the Release of the CAS that published a state, so whoever sees
        // CLOSED also sees the window that was cleared before it.
        Word(self.word.load(Ordering::Acquire))
    }

    #[inline]
    fn cas(&self, current: Word, new: Word) -> Result<(), Word> {
        self.word
            .compare_exchange(current.0, new.0, Ordering::AcqRel, Ordering::Acquire)
            .map(|_| ())
            .map_err(Word)
    }

    /// Asks to make one call.
    ///
    /// In CLOSED (and DISABLED) this always succeeds. In OPEN it fails until the reset timeout
    /// passes; the first call after that becomes the HALF_OPEN probe. In HALF_OPEN it succeeds
    /// while a probe slot is free.
    ///
    /// # Errors
    ///
    /// [`Rejected`], with the reason and (in OPEN) when to retry.
    ///
    /// # Examples
    ///
    /// ```
    /// use resilience_core::CircuitBreaker;
    ///
    /// let breaker = CircuitBreaker::builder("search").build()?;
    /// match breaker.try_acquire() {
    ///     Ok(permit) => permit.success(),
    ///     Err(rejected) => eprintln!("{rejected}"),
    /// }
    /// # Ok::<(), resilience_core::ConfigError>(())
    /// ```
    #[inline(always)]
    pub fn try_acquire(&self) -> Result<Permit<'_, C>, Rejected> {
        // Relaxed: the outcome path re-reads the word with Acquire before touching anything
        // the word publishes.
        let word = Word(self.word.load(Ordering::Relaxed));
        if word.state_bits() == CLOSED {
            return Ok(Permit::new(self, word.ticket()));
        }
        if word.state_bits() == OPEN {
            let remaining = word.open_remaining_ms(self.clock.now());
            if remaining != 0 {
                return Err(self.reject(RejectReason::Open, Some(remaining)));
            }
        }
        self.acquire_slow(word)
    }

    #[inline]
    fn reject(&self, reason: RejectReason, retry_after_ms: Option<u64>) -> Rejected {
        self.bump(Count::Rejected);
        Rejected::new(reason, self.id, retry_after_ms, self.fast.governance)
    }

    #[inline(never)]
    fn acquire_slow(&self, mut word: Word) -> Result<Permit<'_, C>, Rejected> {
        loop {
            match word.state_bits() {
                CLOSED | DISABLED => return Ok(Permit::new(self, word.ticket())),
                OPEN => {
                    let now = self.clock.now();
                    let remaining = word.open_remaining_ms(now);
                    if remaining != 0 {
                        return Err(self.reject(RejectReason::Open, Some(remaining)));
                    }
                    // Timeout over: this call becomes the first HALF_OPEN probe.
                    let next = word.transition(
                        State::HalfOpen,
                        word.level(),
                        Word::half_open_payload(1, 0),
                    );
                    match self.cas(word, next) {
                        Ok(()) => {
                            self.last_probe.store(stamp(next, now), Ordering::Relaxed);
                            self.transitioned(word, next, now);
                            return Ok(Permit::new(self, next.ticket()));
                        }
                        Err(actual) => word = actual,
                    }
                }
                HALF_OPEN => {
                    let in_flight = word.half_open_in_flight();
                    if in_flight < self.fast.probes {
                        let next = word.with_payload(Word::half_open_payload(
                            in_flight + 1,
                            word.half_open_successes(),
                        ));
                        match self.cas(word, next) {
                            Ok(()) => {
                                self.last_probe
                                    .store(stamp(word, self.clock.now()), Ordering::Relaxed);
                                return Ok(Permit::new(self, word.ticket()));
                            }
                            Err(actual) => word = actual,
                        }
                    } else if let Some(now) = self.probes_lost(word) {
                        // Every slot has been held past the probe timeout: presume the probes
                        // lost and start a fresh HALF_OPEN generation (their late outcomes will
                        // be stale).
                        let next = word.transition(
                            State::HalfOpen,
                            word.level(),
                            Word::half_open_payload(1, 0),
                        );
                        match self.cas(word, next) {
                            Ok(()) => {
                                self.last_probe.store(stamp(next, now), Ordering::Relaxed);
                                self.transitioned(word, next, now);
                                return Ok(Permit::new(self, next.ticket()));
                            }
                            Err(actual) => word = actual,
                        }
                    } else {
                        return Err(self.reject(RejectReason::HalfOpenFull, None));
                    }
                }
                _ => return Err(self.reject(RejectReason::ForcedOpen, None)),
            }
        }
    }

    /// `Some(now)` when HALF_OPEN probes have gone unanswered for the probe timeout.
    fn probes_lost(&self, word: Word) -> Option<Nanos> {
        let timeout = self.fast.probe_timeout_ms?;
        let admitted_ms = stamp_for(self.last_probe.load(Ordering::Relaxed), word)?;
        let now = self.clock.now();
        let elapsed = now.as_millis().wrapping_sub(admitted_ms) & STAMP_MS_MASK;
        (elapsed >= timeout).then_some(now)
    }

    /// Runs `f` if admitted; counts `Err` as a failure and `Ok` as a success.
    ///
    /// # Errors
    ///
    /// [`CallError::Rejected`] without running `f`, or [`CallError::Inner`] with `f`'s error.
    ///
    /// # Examples
    ///
    /// ```
    /// use resilience_core::{CallError, CircuitBreaker};
    ///
    /// let breaker = CircuitBreaker::builder("inventory").fail_max(1).build()?;
    /// let first: Result<(), _> = breaker.call(|| Err("timeout"));
    /// assert_eq!(first, Err(CallError::Inner("timeout")));
    /// let second = breaker.call(|| Ok::<_, &str>(42));
    /// assert!(matches!(second, Err(CallError::Rejected(_))));
    /// # Ok::<(), resilience_core::ConfigError>(())
    /// ```
    #[inline]
    pub fn call<T, E>(&self, f: impl FnOnce() -> Result<T, E>) -> Result<T, CallError<E>> {
        self.call_with(
            |result: &Result<T, E>| {
                if result.is_ok() {
                    Outcome::Success
                } else {
                    Outcome::Failure
                }
            },
            f,
        )
    }

    /// Runs `f` if admitted, and counts its result as `classify` says (which errors are
    /// failures, which are ignored).
    ///
    /// # Errors
    ///
    /// As [`call`](Self::call).
    ///
    /// # Examples
    ///
    /// ```
    /// use resilience_core::{CircuitBreaker, Outcome, State};
    ///
    /// let breaker = CircuitBreaker::builder("api").fail_max(1).build()?;
    /// // A 404 says nothing about the dependency's health: ignore it.
    /// let classify = |r: &Result<u16, u16>| match r {
    ///     Ok(_) => Outcome::Success,
    ///     Err(404) => Outcome::Ignore,
    ///     Err(_) => Outcome::Failure,
    /// };
    /// let _ = breaker.call_with(classify, || Err(404));
    /// assert_eq!(breaker.state(), State::Closed);
    /// let _ = breaker.call_with(classify, || Err(503));
    /// assert_eq!(breaker.state(), State::Open);
    /// # Ok::<(), resilience_core::ConfigError>(())
    /// ```
    #[inline]
    pub fn call_with<T, E>(
        &self,
        classify: impl FnOnce(&Result<T, E>) -> Outcome,
        f: impl FnOnce() -> Result<T, E>,
    ) -> Result<T, CallError<E>> {
        let permit = self.try_acquire()?;
        let result = f();
        permit.record(classify(&result));
        result.map_err(CallError::Inner)
    }

    // -----------------------------------------------------------------------------------------
    // Outcomes (called by Permit)

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
    fn bump(&self, count: Count) {
        if self.fast.totals {
            self.counters.bump(count);
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

    fn transitioned(&self, from: Word, to: Word, now: Nanos) {
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
    fn jitter_unit(&self) -> f64 {
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

    // -----------------------------------------------------------------------------------------
    // Operator controls

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

    // -----------------------------------------------------------------------------------------
    // Observation

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

impl<C: Clock> fmt::Debug for CircuitBreaker<C> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CircuitBreaker")
            .field("name", &self.name)
            .field("id", &self.id)
            .field("word", &self.load())
            .finish_non_exhaustive()
    }
}

impl From<BreakerConfig> for BreakerConfigBuilder {
    fn from(config: BreakerConfig) -> Self {
        let window = config.sliding_window();
        let mut builder = BreakerConfigBuilder::default().sliding_window(window);
        // Only carry min_calls over when it was set explicitly, so a later window change
        // still gets its own default.
        if config.min_calls() != super::config::default_min_calls(window) {
            builder = builder.min_calls(config.min_calls());
        }
        let builder = builder
            .call_totals(config.call_totals())
            .reset_timeout(config.reset_timeout())
            .max_reset_timeout(config.max_reset_timeout())
            .backoff_multiplier(config.backoff_multiplier())
            .jitter(config.jitter())
            .half_open_probes(config.half_open_probes())
            .half_open_successes(config.half_open_successes())
            .governance(config.governance());
        let builder = match config.fail_max() {
            Some(n) => builder.fail_max(n),
            None => builder.without_fail_max(),
        };
        let builder = match config.failure_rate() {
            Some(rate) => builder.failure_rate(rate),
            None => builder,
        };
        #[cfg(feature = "slow-call-timing")]
        let builder = match config.slow_call() {
            Some(slow) => builder.slow_call(slow.threshold, slow.rate),
            None => builder,
        };
        match config.probe_timeout() {
            Some(timeout) => builder.probe_timeout(timeout),
            None => builder.without_probe_timeout(),
        }
    }
}
