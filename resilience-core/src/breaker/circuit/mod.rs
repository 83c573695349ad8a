//! [`CircuitBreaker`]: one packed atomic word; admission here, outcomes and transitions in
//! [`outcome`], operator controls and snapshots in [`control`].

mod control;
mod outcome;

pub use control::ForcedOpen;

use core::fmt;
use core::future::Future;
use std::sync::Arc;

use crossbeam_utils::CachePadded;

use crate::clock::{Clock, CoarseClock, Nanos};
use crate::error::ConfigError;
use crate::event::EventChannel;
use crate::governance::GovernanceHash;
use crate::stats::{BREAKER_FIELDS, Count, Counters};
use crate::sync::{AtomicU64, Ordering};

use core::time::Duration;

use super::BreakerId;
use super::call_future::{CallFuture, Classify, ErrorsAreFailures};
use super::config::{
    BreakerConfig, BreakerConfigBuilder, SlidingWindow, forward_config_setters, rate_ppm,
};
use super::permit::{CallError, Outcome, OwnedPermit, Permit, RejectReason, Rejected};
use super::state::{CLOSED, DISABLED, HALF_OPEN, OPEN, State, Word};
use super::window::Window;

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
    counters: Counters<BREAKER_FIELDS>,
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
                    match self.begin_half_open(word, now) {
                        Ok(permit) => return Ok(permit),
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
                        match self.begin_half_open(word, now) {
                            Ok(permit) => return Ok(permit),
                            Err(actual) => word = actual,
                        }
                    } else {
                        return Err(self.reject(RejectReason::HalfOpenFull, None));
                    }
                }
                _ => match self.forced_expiry(word) {
                    Ok(restored) => word = restored,
                    Err(retry_after) => {
                        return Err(self.reject(RejectReason::ForcedOpen, retry_after));
                    }
                },
            }
        }
    }

    /// Moves from exactly `word` to a new HALF_OPEN generation whose first probe is this call.
    fn begin_half_open(&self, word: Word, now: Nanos) -> Result<Permit<'_, C>, Word> {
        let next = word.transition(State::HalfOpen, word.level(), Word::half_open_payload(1, 0));
        self.cas(word, next)?;
        self.last_probe.store(stamp(next, now), Ordering::Relaxed);
        self.transitioned(word, next, now);
        Ok(Permit::new(self, next.ticket()))
    }

    /// `Some(now)` when HALF_OPEN probes have gone unanswered for the probe timeout.
    fn probes_lost(&self, word: Word) -> Option<Nanos> {
        let timeout = self.fast.probe_timeout_ms?;
        let admitted_ms = stamp_for(self.last_probe.load(Ordering::Relaxed), word)?;
        let now = self.clock.now();
        let elapsed = now.as_millis().wrapping_sub(admitted_ms) & STAMP_MS_MASK;
        (elapsed >= timeout).then_some(now)
    }

    /// [`try_acquire`](Self::try_acquire) for a breaker behind an [`Arc`]: the permit holds a
    /// clone of it, so it can move into a `'static` future or another task.
    ///
    /// # Errors
    ///
    /// As [`try_acquire`](Self::try_acquire).
    ///
    /// # Examples
    ///
    /// ```
    /// use std::sync::Arc;
    /// use resilience_core::CircuitBreaker;
    ///
    /// let breaker = Arc::new(CircuitBreaker::builder("search").build()?);
    /// let permit = breaker.try_acquire_owned().expect("closed");
    /// std::thread::spawn(move || permit.success()).join().unwrap();
    /// assert_eq!(breaker.snapshot().totals.successes, 1);
    /// # Ok::<(), resilience_core::ConfigError>(())
    /// ```
    #[inline(always)]
    pub fn try_acquire_owned(self: &Arc<Self>) -> Result<OwnedPermit<C>, Rejected> {
        let permit = self.try_acquire()?;
        Ok(OwnedPermit::new(Arc::clone(self), permit))
    }

    /// Runs the future `f` makes if admitted; counts `Err` as a failure and `Ok` as a success.
    ///
    /// The permit is taken when `call_async` is called and held by the returned future.
    /// Dropping the future before it completes (a timeout, a cancelled task) releases the permit
    /// without counting, so a cancelled HALF_OPEN probe frees its slot at once; a panic while it
    /// runs counts as a failure.
    ///
    /// # Errors
    ///
    /// [`CallError::Rejected`] without calling `f`, or [`CallError::Inner`] with its error.
    ///
    /// # Examples
    ///
    /// ```
    /// use resilience_core::{CallError, CircuitBreaker};
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), resilience_core::ConfigError> {
    /// let breaker = CircuitBreaker::builder("ledger").fail_max(1).build()?;
    /// let failed = breaker.call_async(|| async { Err::<u32, _>("connection reset") }).await;
    /// assert_eq!(failed, Err(CallError::Inner("connection reset")));
    /// let shed = breaker.call_async(|| async { Ok::<_, &str>(7) }).await;
    /// assert!(matches!(shed, Err(CallError::Rejected(_))));
    /// # Ok(())
    /// # }
    /// ```
    #[inline]
    pub fn call_async<F, Fut, T, E>(
        &self,
        f: F,
    ) -> CallFuture<Fut, Permit<'_, C>, ErrorsAreFailures>
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<T, E>>,
    {
        self.call_async_with(ErrorsAreFailures, f)
    }

    /// [`call_async`](Self::call_async), counting the result as `classify` says.
    ///
    /// # Errors
    ///
    /// As [`call_async`](Self::call_async).
    #[inline]
    pub fn call_async_with<K, F, Fut, T, E>(
        &self,
        classify: K,
        f: F,
    ) -> CallFuture<Fut, Permit<'_, C>, K>
    where
        K: Classify<T, E>,
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<T, E>>,
    {
        CallFuture::start(self.try_acquire(), classify, f)
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
            |result: &Result<T, E>| ErrorsAreFailures.classify(result),
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
