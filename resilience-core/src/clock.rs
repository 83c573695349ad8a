//! Time for the data plane: one atomic load per read.
//!
//! A [`CoarseClock`] is a shared word holding "nanoseconds since the clock's base", advanced by a
//! [`Ticker`] thread (or by the control plane, which owns one). Reading it is one relaxed load. When
//! no ticker runs, a read falls back to the CPU's invariant time-stamp counter through `quanta`
//! (a few nanoseconds, no syscall), so a breaker never stays OPEN forever because nobody ticks.
//!
//! Tests drive time by hand with [`ManualClock`] (feature `test-util`).

// The clock's atomics are deliberately not taken from `crate::sync`: they live behind a `static`
// (the global clock), which loom's atomics cannot, and no modelled protocol depends on them.
use core::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};
use std::thread::JoinHandle;
use std::time::Duration;

use crossbeam_utils::CachePadded;

/// Nanoseconds since a clock's own base instant.
///
/// A `u64` of nanoseconds lasts 584 years, so it never wraps in practice.
///
/// # Examples
///
/// ```
/// use resilience_core::Nanos;
/// use std::time::Duration;
///
/// let t = Nanos::from_nanos(1_500_000);
/// assert_eq!(t.as_millis(), 1);
/// assert_eq!(t + Duration::from_millis(1), Nanos::from_nanos(2_500_000));
/// assert_eq!(Nanos::from_nanos(3).saturating_since(t), Duration::ZERO);
/// ```
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
#[repr(transparent)]
pub struct Nanos(u64);

impl Nanos {
    /// The clock's base instant.
    pub const ZERO: Nanos = Nanos(0);

    /// Wraps a raw nanosecond count.
    pub const fn from_nanos(nanos: u64) -> Self {
        Nanos(nanos)
    }

    /// The raw nanosecond count.
    pub const fn as_nanos(self) -> u64 {
        self.0
    }

    /// Whole milliseconds since the base.
    pub const fn as_millis(self) -> u64 {
        self.0 / 1_000_000
    }

    /// Time from `earlier` to `self`, or zero if `earlier` is later.
    pub const fn saturating_since(self, earlier: Nanos) -> Duration {
        Duration::from_nanos(self.0.saturating_sub(earlier.0))
    }
}

impl core::ops::Add<Duration> for Nanos {
    type Output = Nanos;

    /// Saturates at `u64::MAX` nanoseconds rather than wrapping.
    fn add(self, rhs: Duration) -> Nanos {
        Nanos(self.0.saturating_add(duration_nanos(rhs)))
    }
}

/// A duration as `u64` nanoseconds, saturating (584 years is "forever" here).
pub(crate) const fn duration_nanos(d: Duration) -> u64 {
    let n = d.as_nanos();
    if n > u64::MAX as u128 {
        u64::MAX
    } else {
        n as u64
    }
}

/// A source of [`Nanos`] for breakers and windows.
///
/// Implementations must be cheap (the hot path may read them) and monotonic as seen by any one
/// thread.
pub trait Clock: Send + Sync + 'static {
    /// The current time; called on the rejection path and by time-based windows.
    fn now(&self) -> Nanos;

    /// A precise reading, used only by opt-in slow-call timing. Defaults to [`Clock::now`].
    fn precise_now(&self) -> Nanos {
        self.now()
    }

    /// Wall-clock time of a reading, as nanoseconds since the Unix epoch (for records that
    /// leave the process). Defaults to treating the clock's base as the epoch.
    fn unix_nanos(&self, at: Nanos) -> u64 {
        at.as_nanos()
    }
}

/// Low bit of the shared word: set while at least one ticker keeps the word fresh.
const LIVE: u64 = 1;

#[derive(Debug)]
struct Shared {
    /// `nanos << 1 | LIVE`. Padded: every breaker on every thread reads this line.
    word: CachePadded<AtomicU64>,
    tickers: AtomicUsize,
    source: quanta::Clock,
    base: quanta::Instant,
    /// Wall-clock time of `base`, in nanoseconds since the Unix epoch.
    base_unix_nanos: u64,
}

impl Shared {
    fn read_source(&self) -> Nanos {
        Nanos(duration_nanos(
            self.source.now().saturating_duration_since(self.base),
        ))
    }
}

/// A process-wide coarse clock: reading it is one relaxed atomic load.
///
/// Start a [`Ticker`] (the control plane does) to keep it fresh; without one, each read costs a
/// time-stamp-counter read instead (no syscall, no OS clock). Clones share the same time.
///
/// # Examples
///
/// ```
/// use resilience_core::{Clock, CoarseClock};
/// use std::time::Duration;
///
/// let clock = CoarseClock::new();
/// let ticker = clock.start_ticker(Duration::from_millis(1))?;
/// let a = clock.now();
/// std::thread::sleep(Duration::from_millis(5));
/// assert!(clock.now() > a);
/// drop(ticker); // reads fall back to the time-stamp counter again
/// # Ok::<(), resilience_core::ClockError>(())
/// ```
#[derive(Clone, Debug)]
pub struct CoarseClock {
    shared: Arc<Shared>,
}

impl Default for CoarseClock {
    /// The process-global clock (see [`CoarseClock::global`]).
    fn default() -> Self {
        Self::global().clone()
    }
}

impl CoarseClock {
    /// A new, independent clock whose base is now.
    ///
    /// The first clock in a process calibrates the time-stamp counter (10–200 ms, once).
    pub fn new() -> Self {
        let source = quanta::Clock::new();
        let base = source.now();
        // Read once, at construction, to label records with wall-clock time; never per call.
        #[allow(clippy::disallowed_methods)]
        let wall = std::time::SystemTime::now();
        let base_unix_nanos = wall
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, duration_nanos);
        CoarseClock {
            shared: Arc::new(Shared {
                word: CachePadded::new(AtomicU64::new(0)),
                tickers: AtomicUsize::new(0),
                source,
                base,
                base_unix_nanos,
            }),
        }
    }

    /// The process-global clock, shared by every breaker built without an explicit clock.
    pub fn global() -> &'static CoarseClock {
        static GLOBAL: OnceLock<CoarseClock> = OnceLock::new();
        GLOBAL.get_or_init(CoarseClock::new)
    }

    /// Starts a thread that refreshes this clock every `interval` until the returned [`Ticker`]
    /// is dropped.
    ///
    /// # Errors
    ///
    /// [`ClockError::InvalidInterval`] if `interval` is zero or longer than one second (a
    /// breaker's deadlines would lag by that much); [`ClockError::Spawn`] if the OS refuses a
    /// thread.
    pub fn start_ticker(&self, interval: Duration) -> Result<Ticker, ClockError> {
        if interval.is_zero() || interval > Duration::from_secs(1) {
            return Err(ClockError::InvalidInterval { interval });
        }
        Ticker::spawn(self.clone(), interval)
    }

    /// Whether a ticker currently keeps this clock fresh.
    pub fn is_ticking(&self) -> bool {
        self.shared.word.load(Ordering::Relaxed) & LIVE != 0
    }

    /// Stores a fresh reading; `live` keeps the ticking flag set.
    fn refresh(&self, live: bool) {
        let nanos = self.shared.read_source().as_nanos();
        self.shared
            .word
            .store(nanos << 1 | u64::from(live), Ordering::Relaxed);
    }

    #[cold]
    #[inline(never)]
    fn fallback(&self) -> Nanos {
        self.shared.read_source()
    }
}

impl Clock for CoarseClock {
    #[inline]
    fn now(&self) -> Nanos {
        // Relaxed is enough: a clock reading orders nothing else, and per-location coherence
        // already stops one thread from seeing the word go backwards.
        let word = self.shared.word.load(Ordering::Relaxed);
        if word & LIVE != 0 {
            Nanos(word >> 1)
        } else {
            self.fallback()
        }
    }

    fn precise_now(&self) -> Nanos {
        self.shared.read_source()
    }

    fn unix_nanos(&self, at: Nanos) -> u64 {
        self.shared.base_unix_nanos.saturating_add(at.as_nanos())
    }
}

/// Keeps a [`CoarseClock`] fresh from a dedicated thread; stops (and joins) when dropped.
///
/// A dedicated OS thread rather than an async task: a stalled async runtime must not freeze time
/// for the data plane.
#[derive(Debug)]
#[must_use = "the clock stops ticking when the Ticker is dropped"]
pub struct Ticker {
    clock: CoarseClock,
    stop: Arc<std::sync::atomic::AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl Ticker {
    fn spawn(clock: CoarseClock, interval: Duration) -> Result<Ticker, ClockError> {
        let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
        clock.shared.tickers.fetch_add(1, Ordering::AcqRel);
        // Publish a fresh reading before returning, so `now()` is live at once.
        clock.refresh(true);
        let thread_clock = clock.clone();
        let thread_stop = Arc::clone(&stop);
        let spawned = std::thread::Builder::new()
            .name("resilience-clock".into())
            .spawn(move || {
                while !thread_stop.load(Ordering::Acquire) {
                    thread_clock.refresh(true);
                    std::thread::park_timeout(interval);
                }
            });
        match spawned {
            Ok(handle) => Ok(Ticker {
                clock,
                stop,
                thread: Some(handle),
            }),
            Err(source) => {
                Self::release(&clock);
                Err(ClockError::Spawn(source))
            }
        }
    }

    fn release(clock: &CoarseClock) {
        if clock.shared.tickers.fetch_sub(1, Ordering::AcqRel) == 1 {
            clock.refresh(false);
        }
    }

    /// The clock this ticker drives.
    pub fn clock(&self) -> &CoarseClock {
        &self.clock
    }
}

impl Drop for Ticker {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Release);
        if let Some(thread) = self.thread.take() {
            thread.thread().unpark();
            // The loop cannot panic; a join error would only repeat a panic already reported.
            let _ = thread.join();
        }
        Self::release(&self.clock);
    }
}

/// Errors from starting a [`Ticker`].
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ClockError {
    /// The tick interval is zero or longer than one second.
    #[error("invalid ticker `interval` = {interval:?}: must be greater than zero and at most 1s")]
    InvalidInterval {
        /// The rejected interval.
        interval: Duration,
    },
    /// The OS refused to start the ticker thread.
    #[error("could not start the clock ticker thread: {0}")]
    Spawn(#[source] std::io::Error),
}

crate::governed_by_process!(ClockError);

/// A clock that moves only when told to: deterministic time for tests and fuzzing.
///
/// # Examples
///
/// ```
/// use resilience_core::{Clock, ManualClock, Nanos};
/// use std::time::Duration;
///
/// let clock = ManualClock::new();
/// clock.advance(Duration::from_secs(30));
/// assert_eq!(clock.now(), Nanos::from_nanos(30_000_000_000));
/// ```
#[cfg(any(test, feature = "test-util"))]
#[cfg_attr(docsrs, doc(cfg(feature = "test-util")))]
#[derive(Clone, Debug, Default)]
pub struct ManualClock {
    now: Arc<AtomicU64>,
}

#[cfg(any(test, feature = "test-util"))]
impl ManualClock {
    /// A clock at [`Nanos::ZERO`].
    pub fn new() -> Self {
        Self::default()
    }

    /// Moves time forward by `by` (saturating).
    pub fn advance(&self, by: Duration) {
        let by = duration_nanos(by);
        // fetch_update cannot fail with a closure that always returns Some.
        let _ = self
            .now
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |t| {
                Some(t.saturating_add(by))
            });
    }

    /// Sets the time; tests may move it backwards on purpose to probe monotonicity handling.
    pub fn set(&self, now: Nanos) {
        self.now.store(now.as_nanos(), Ordering::Relaxed);
    }
}

#[cfg(any(test, feature = "test-util"))]
impl Clock for ManualClock {
    #[inline]
    fn now(&self) -> Nanos {
        Nanos(self.now.load(Ordering::Relaxed))
    }
}

#[cfg(test)]
// These tests are about the real clock, so real time has to pass.
#[allow(clippy::disallowed_methods)]
mod tests {
    use super::*;

    #[test]
    fn untickled_clock_still_advances() {
        let clock = CoarseClock::new();
        assert!(!clock.is_ticking());
        let a = clock.now();
        std::thread::sleep(Duration::from_millis(2));
        assert!(clock.now().saturating_since(a) >= Duration::from_millis(2));
    }

    #[test]
    fn ticker_sets_and_clears_live_flag() {
        let clock = CoarseClock::new();
        let first = clock.start_ticker(Duration::from_millis(1)).unwrap();
        let second = clock.start_ticker(Duration::from_millis(1)).unwrap();
        assert!(clock.is_ticking());
        drop(first);
        assert!(clock.is_ticking(), "one ticker still runs");
        let before = clock.now();
        std::thread::sleep(Duration::from_millis(20));
        assert!(clock.now() > before, "the remaining ticker advances time");
        drop(second);
        assert!(!clock.is_ticking());
    }

    #[test]
    fn ticker_interval_is_validated() {
        let clock = CoarseClock::new();
        for bad in [Duration::ZERO, Duration::from_secs(2)] {
            let err = clock.start_ticker(bad).unwrap_err();
            assert!(matches!(err, ClockError::InvalidInterval { interval } if interval == bad));
            assert!(err.to_string().contains("interval"), "{err}");
        }
    }

    #[test]
    fn coarse_readings_map_to_wall_clock_time() {
        let clock = CoarseClock::new();
        let wall = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap();
        let mapped = Duration::from_nanos(clock.unix_nanos(clock.now()));
        let skew = mapped.abs_diff(wall);
        assert!(skew < Duration::from_secs(1), "{skew:?}");
        assert_eq!(ManualClock::new().unix_nanos(Nanos::from_nanos(5)), 5);
    }

    #[test]
    fn manual_clock_moves_only_when_told() {
        let clock = ManualClock::new();
        assert_eq!(clock.now(), Nanos::ZERO);
        clock.advance(Duration::from_millis(7));
        assert_eq!(clock.now().as_millis(), 7);
        clock.advance(Duration::MAX);
        assert_eq!(clock.now(), Nanos::from_nanos(u64::MAX));
    }
}
