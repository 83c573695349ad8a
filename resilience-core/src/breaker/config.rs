//! Breaker configuration: a builder whose `build()` validates every field.

use core::time::Duration;

use crate::clock::duration_nanos;
use crate::error::ConfigError;
use crate::governance::GovernanceHash;

use super::state::HALF_OPEN_FIELD_MAX;

/// How the failure-rate policy remembers recent calls.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum SlidingWindow {
    /// The outcomes of the last `n` calls.
    Count(u32),
    /// The outcomes of calls in the last `duration`, kept in `buckets` equal buckets (the
    /// window slides one bucket at a time).
    Time {
        /// Length of the window.
        duration: Duration,
        /// Number of buckets the window is divided into.
        buckets: u32,
    },
}

/// Slow-call policy: calls slower than `threshold` count as slow, and the breaker trips when the
/// share of slow calls in the window reaches `rate`.
#[cfg(feature = "slow-call-timing")]
#[cfg_attr(docsrs, doc(cfg(feature = "slow-call-timing")))]
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct SlowCallPolicy {
    /// A call taking at least this long is slow.
    pub threshold: Duration,
    /// Share of slow calls, in (0, 1], that trips the breaker.
    pub rate: f64,
}

/// A validated breaker configuration; make one with [`BreakerConfig::builder`].
///
/// Two configurations compare equal when every policy matches; the registry uses this to spot a
/// second, conflicting configuration for the same name.
///
/// # Examples
///
/// ```
/// use resilience_core::{BreakerConfig, SlidingWindow};
/// use std::time::Duration;
///
/// let config = BreakerConfig::builder()
///     .fail_max(3)
///     .failure_rate(0.5)
///     .sliding_window(SlidingWindow::Count(20))
///     .reset_timeout(Duration::from_secs(10))
///     .build()?;
/// assert_eq!(config.fail_max(), Some(3));
/// assert_eq!(config.min_calls(), 20);
/// # Ok::<(), resilience_core::ConfigError>(())
/// ```
#[derive(Clone, Debug, PartialEq)]
pub struct BreakerConfig {
    fail_max: Option<u32>,
    failure_rate: Option<f64>,
    window: SlidingWindow,
    min_calls: u32,
    reset_timeout: Duration,
    max_reset_timeout: Duration,
    backoff_multiplier: f64,
    jitter: f64,
    half_open_probes: u32,
    half_open_successes: u32,
    probe_timeout: Option<Duration>,
    #[cfg(feature = "slow-call-timing")]
    slow_call: Option<SlowCallPolicy>,
    call_totals: bool,
    governance: GovernanceHash,
}

impl Default for BreakerConfig {
    /// The original's defaults: trip after 5 consecutive failures, stay open 30 s.
    fn default() -> Self {
        match BreakerConfig::builder().build() {
            Ok(config) => config,
            // The defaults are constants checked by `defaults_are_valid` below.
            Err(err) => unreachable!("default breaker configuration is invalid: {err}"),
        }
    }
}

impl BreakerConfig {
    /// Default consecutive-failure threshold.
    pub const DEFAULT_FAIL_MAX: u32 = 5;
    /// Default time spent OPEN before the first probe.
    pub const DEFAULT_RESET_TIMEOUT: Duration = Duration::from_secs(30);
    /// Default cap on the growing OPEN time.
    pub const DEFAULT_MAX_RESET_TIMEOUT: Duration = Duration::from_secs(300);
    /// Default growth factor of the OPEN time per consecutive re-open.
    pub const DEFAULT_BACKOFF_MULTIPLIER: f64 = 2.0;
    /// Default time after which an unanswered HALF_OPEN probe is presumed lost.
    pub const DEFAULT_PROBE_TIMEOUT: Duration = Duration::from_secs(30);
    /// Longest reset timeout (and cap) accepted: 30 days.
    pub const MAX_TIMEOUT: Duration = Duration::from_secs(30 * 24 * 3600);

    /// A builder holding the defaults.
    pub fn builder() -> BreakerConfigBuilder {
        BreakerConfigBuilder::default()
    }

    /// Consecutive failures that trip a CLOSED breaker, if that policy is on.
    pub fn fail_max(&self) -> Option<u32> {
        self.fail_max
    }

    /// Failure share in the sliding window that trips a CLOSED breaker, if that policy is on.
    pub fn failure_rate(&self) -> Option<f64> {
        self.failure_rate
    }

    /// The sliding window behind the rate policies.
    pub fn sliding_window(&self) -> SlidingWindow {
        self.window
    }

    /// Calls the window must hold before a rate can trip the breaker.
    pub fn min_calls(&self) -> u32 {
        self.min_calls
    }

    /// OPEN time after the first trip.
    pub fn reset_timeout(&self) -> Duration {
        self.reset_timeout
    }

    /// Cap on the OPEN time as it grows.
    pub fn max_reset_timeout(&self) -> Duration {
        self.max_reset_timeout
    }

    /// Growth factor of the OPEN time per consecutive re-open.
    pub fn backoff_multiplier(&self) -> f64 {
        self.backoff_multiplier
    }

    /// Jitter fraction applied to the OPEN time, in [0, 1).
    pub fn jitter(&self) -> f64 {
        self.jitter
    }

    /// Probes admitted at once in HALF_OPEN.
    pub fn half_open_probes(&self) -> u32 {
        self.half_open_probes
    }

    /// Probe successes that close a HALF_OPEN breaker.
    pub fn half_open_successes(&self) -> u32 {
        self.half_open_successes
    }

    /// Time after which HALF_OPEN probes that have not reported are presumed lost.
    pub fn probe_timeout(&self) -> Option<Duration> {
        self.probe_timeout
    }

    /// The slow-call policy, if on.
    #[cfg(feature = "slow-call-timing")]
    #[cfg_attr(docsrs, doc(cfg(feature = "slow-call-timing")))]
    pub fn slow_call(&self) -> Option<SlowCallPolicy> {
        self.slow_call
    }

    /// Whether lifetime call totals are kept (see [`BreakerConfigBuilder::call_totals`]).
    pub fn call_totals(&self) -> bool {
        self.call_totals
    }

    /// Governance tag stamped on this breaker's events and errors.
    pub fn governance(&self) -> GovernanceHash {
        self.governance
    }

    /// Whether a sliding window is kept (a rate policy is on).
    pub(crate) fn uses_window(&self) -> bool {
        #[cfg(feature = "slow-call-timing")]
        if self.slow_call.is_some() {
            return true;
        }
        self.failure_rate.is_some()
    }

    /// OPEN time at backoff `level`, jittered by `unit` in [0, 1), in nanoseconds.
    pub(crate) fn open_nanos(&self, level: u32, unit: f64) -> u64 {
        let base = duration_nanos(self.reset_timeout) as f64;
        let cap = duration_nanos(self.max_reset_timeout) as f64;
        let grown = (base * self.backoff_multiplier.powi(level as i32)).min(cap);
        let jittered = if self.jitter > 0.0 {
            grown * (1.0 - self.jitter + 2.0 * self.jitter * unit)
        } else {
            grown
        };
        // At least 1 ms (the word's resolution), at most the cap.
        jittered.clamp(1_000_000.0, cap) as u64
    }
}

/// The min_calls a window gets when none is set: the count window's size, at most 100.
pub(crate) fn default_min_calls(window: SlidingWindow) -> u32 {
    match window {
        SlidingWindow::Count(n) => n.min(100),
        SlidingWindow::Time { .. } => 100,
    }
}

/// Parts per million: rates are compared in integers so the fuzz model can match exactly.
pub(crate) fn rate_ppm(rate: f64) -> u64 {
    (rate * 1_000_000.0).round() as u64
}

/// Builder for [`BreakerConfig`]; every setter is checked in [`build`](Self::build).
#[derive(Clone, Debug)]
#[must_use = "a builder does nothing until build() is called"]
pub struct BreakerConfigBuilder {
    fail_max: Option<u32>,
    failure_rate: Option<f64>,
    window: SlidingWindow,
    min_calls: Option<u32>,
    reset_timeout: Duration,
    max_reset_timeout: Duration,
    backoff_multiplier: f64,
    jitter: f64,
    half_open_probes: u32,
    half_open_successes: u32,
    probe_timeout: Option<Duration>,
    #[cfg(feature = "slow-call-timing")]
    slow_call: Option<SlowCallPolicy>,
    call_totals: bool,
    governance: GovernanceHash,
}

impl Default for BreakerConfigBuilder {
    fn default() -> Self {
        BreakerConfigBuilder {
            fail_max: Some(BreakerConfig::DEFAULT_FAIL_MAX),
            failure_rate: None,
            window: SlidingWindow::Count(100),
            min_calls: None,
            reset_timeout: BreakerConfig::DEFAULT_RESET_TIMEOUT,
            max_reset_timeout: BreakerConfig::DEFAULT_MAX_RESET_TIMEOUT,
            backoff_multiplier: BreakerConfig::DEFAULT_BACKOFF_MULTIPLIER,
            jitter: 0.0,
            half_open_probes: 1,
            half_open_successes: 1,
            probe_timeout: Some(BreakerConfig::DEFAULT_PROBE_TIMEOUT),
            #[cfg(feature = "slow-call-timing")]
            slow_call: None,
            call_totals: true,
            governance: GovernanceHash::DEFAULT,
        }
    }
}

/// Declares the setters once; `CircuitBreakerBuilder` forwards the same list.
macro_rules! config_setters {
    ($($(#[$meta:meta])* fn $name:ident($($arg:ident: $ty:ty)?) => |$b:ident| $body:expr;)*) => {
        impl BreakerConfigBuilder {
            $(
                $(#[$meta])*
                pub fn $name(mut self, $($arg: $ty)?) -> Self {
                    let $b = &mut self;
                    $body;
                    self
                }
            )*
        }

        /// Forwards every config setter to the inner [`BreakerConfigBuilder`].
        macro_rules! forward_config_setters {
            ($builder:ident) => {
                impl<C: $crate::Clock> $builder<C> {
                    $(
                        $(#[$meta])*
                        pub fn $name(mut self, $($arg: $ty)?) -> Self {
                            self.config = self.config.$name($($arg)?);
                            self
                        }
                    )*
                }
            };
        }
        pub(crate) use forward_config_setters;
    };
}

config_setters! {
    /// Trip after `n` consecutive failures (default 5). Zero is rejected by `build()`.
    fn fail_max(n: u32) => |b| b.fail_max = Some(n);
    /// Turn the consecutive-failure policy off (a rate policy must then be on).
    fn without_fail_max() => |b| b.fail_max = None;
    /// Trip when the failure share in the sliding window reaches `rate`, in (0, 1].
    fn failure_rate(rate: f64) => |b| b.failure_rate = Some(rate);
    /// The window behind the rate policies (default: the last 100 calls).
    fn sliding_window(window: SlidingWindow) => |b| b.window = window;
    /// Calls the window must hold before a rate can trip (default: the window size, at most 100).
    fn min_calls(n: u32) => |b| b.min_calls = Some(n);
    /// OPEN time after the first trip (default 30 s), from 1 ms to 30 days.
    fn reset_timeout(timeout: Duration) => |b| b.reset_timeout = timeout;
    /// Cap on the growing OPEN time (default 300 s), at least the reset timeout.
    fn max_reset_timeout(cap: Duration) => |b| b.max_reset_timeout = cap;
    /// Growth factor per consecutive re-open (default 2.0), from 1.0 (no growth) to 1000.
    fn backoff_multiplier(multiplier: f64) => |b| b.backoff_multiplier = multiplier;
    /// Randomise each OPEN time by ±`fraction` (default 0), in [0, 1), so a fleet does not probe
    /// a dependency in lock-step.
    fn jitter(fraction: f64) => |b| b.jitter = fraction;
    /// Probes admitted at once in HALF_OPEN (default 1), up to 262143.
    fn half_open_probes(n: u32) => |b| b.half_open_probes = n;
    /// Probe successes that close the breaker (default 1), up to 262143.
    fn half_open_successes(n: u32) => |b| b.half_open_successes = n;
    /// Presume HALF_OPEN probes lost after `timeout` (default 30 s) and admit fresh ones; the
    /// lost probes' late outcomes are then ignored.
    fn probe_timeout(timeout: Duration) => |b| b.probe_timeout = Some(timeout);
    /// Never presume a probe lost (a hung probe then holds its slot until dropped).
    fn without_probe_timeout() => |b| b.probe_timeout = None;
    /// Keep exact lifetime totals of successes, failures, ignored, stale and rejected calls
    /// (default on). Off saves the one counter increment per call (about 0.7 ns back to back;
    /// see the performance docs) and leaves `snapshot().totals` at zero.
    fn call_totals(on: bool) => |b| b.call_totals = on;
    /// Governance tag stamped on events and errors (default `cdd01ef066bc6cf2`).
    fn governance(hash: GovernanceHash) => |b| b.governance = hash;
}

#[cfg(feature = "slow-call-timing")]
impl BreakerConfigBuilder {
    /// Count calls taking at least `threshold` as slow and trip when their share in the window
    /// reaches `rate`. Turns on per-call timing (the only per-call clock read).
    #[cfg_attr(docsrs, doc(cfg(feature = "slow-call-timing")))]
    pub fn slow_call(mut self, threshold: Duration, rate: f64) -> Self {
        self.slow_call = Some(SlowCallPolicy { threshold, rate });
        self
    }
}

fn check_rate(field: &'static str, rate: f64) -> Result<(), ConfigError> {
    if rate.is_finite() && rate > 0.0 && rate <= 1.0 {
        Ok(())
    } else {
        Err(ConfigError::invalid(field, rate, "a share in (0, 1]"))
    }
}

fn check_timeout(field: &'static str, timeout: Duration) -> Result<(), ConfigError> {
    if timeout >= Duration::from_millis(1) && timeout <= BreakerConfig::MAX_TIMEOUT {
        Ok(())
    } else {
        Err(ConfigError::invalid(
            field,
            format_args!("{timeout:?}"),
            "between 1ms and 30 days",
        ))
    }
}

impl BreakerConfigBuilder {
    /// Validates every field and returns the configuration.
    ///
    /// # Errors
    ///
    /// [`ConfigError::Invalid`] naming the first field out of range and its value.
    pub fn build(self) -> Result<BreakerConfig, ConfigError> {
        if self.fail_max == Some(0) {
            return Err(ConfigError::invalid("fail_max", 0, "at least 1"));
        }
        if let Some(rate) = self.failure_rate {
            check_rate("failure_rate", rate)?;
        }
        #[cfg(feature = "slow-call-timing")]
        if let Some(slow) = self.slow_call {
            if slow.threshold.is_zero() {
                return Err(ConfigError::invalid(
                    "slow_call.threshold",
                    format_args!("{:?}", slow.threshold),
                    "greater than zero",
                ));
            }
            check_rate("slow_call.rate", slow.rate)?;
        }
        let window_size = match self.window {
            SlidingWindow::Count(n) => {
                if n == 0 || n > 1_000_000 {
                    return Err(ConfigError::invalid(
                        "sliding_window.count",
                        n,
                        "1 to 1000000 calls",
                    ));
                }
                n
            }
            SlidingWindow::Time { duration, buckets } => {
                if buckets == 0 || buckets > 1024 {
                    return Err(ConfigError::invalid(
                        "sliding_window.buckets",
                        buckets,
                        "1 to 1024",
                    ));
                }
                let width = duration / buckets;
                if width < Duration::from_millis(1) || duration > Duration::from_secs(24 * 3600) {
                    return Err(ConfigError::invalid(
                        "sliding_window.duration",
                        format_args!("{duration:?}"),
                        "at most 24h, and at least 1ms per bucket",
                    ));
                }
                u32::MAX
            }
        };
        let min_calls = match self.min_calls {
            Some(n) if n == 0 || n > window_size => {
                return Err(ConfigError::invalid(
                    "min_calls",
                    n,
                    "at least 1 and at most the count window's size",
                ));
            }
            Some(n) => n,
            None => default_min_calls(self.window),
        };
        let has_rate = self.failure_rate.is_some();
        #[cfg(feature = "slow-call-timing")]
        let has_rate = has_rate || self.slow_call.is_some();
        if self.fail_max.is_none() && !has_rate {
            return Err(ConfigError::invalid(
                "fail_max",
                "none",
                "a trip policy: fail_max, failure_rate or slow_call",
            ));
        }
        check_timeout("reset_timeout", self.reset_timeout)?;
        check_timeout("max_reset_timeout", self.max_reset_timeout)?;
        if self.max_reset_timeout < self.reset_timeout {
            return Err(ConfigError::invalid(
                "max_reset_timeout",
                format_args!("{:?}", self.max_reset_timeout),
                "at least reset_timeout",
            ));
        }
        let m = self.backoff_multiplier;
        if !(m.is_finite() && (1.0..=1000.0).contains(&m)) {
            return Err(ConfigError::invalid(
                "backoff_multiplier",
                m,
                "between 1.0 and 1000.0",
            ));
        }
        if !(self.jitter.is_finite() && (0.0..1.0).contains(&self.jitter)) {
            return Err(ConfigError::invalid(
                "jitter",
                self.jitter,
                "a fraction in [0, 1)",
            ));
        }
        for (field, n) in [
            ("half_open_probes", self.half_open_probes),
            ("half_open_successes", self.half_open_successes),
        ] {
            if n == 0 || u64::from(n) > HALF_OPEN_FIELD_MAX {
                return Err(ConfigError::invalid(field, n, "1 to 262143"));
            }
        }
        if let Some(timeout) = self.probe_timeout {
            check_timeout("probe_timeout", timeout)?;
        }
        Ok(BreakerConfig {
            fail_max: self.fail_max,
            failure_rate: self.failure_rate,
            window: self.window,
            min_calls,
            reset_timeout: self.reset_timeout,
            max_reset_timeout: self.max_reset_timeout,
            backoff_multiplier: m,
            jitter: self.jitter,
            half_open_probes: self.half_open_probes,
            half_open_successes: self.half_open_successes,
            probe_timeout: self.probe_timeout,
            #[cfg(feature = "slow-call-timing")]
            slow_call: self.slow_call,
            call_totals: self.call_totals,
            governance: self.governance,
        })
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_valid() {
        let config = BreakerConfig::default();
        assert_eq!(config.fail_max(), Some(5));
        assert_eq!(config.reset_timeout(), Duration::from_secs(30));
        assert_eq!(config.governance(), GovernanceHash::DEFAULT);
        assert!(!config.uses_window());
    }

    #[test]
    fn every_bad_field_is_named_with_its_value() {
        let cases: Vec<(BreakerConfigBuilder, &str, &str)> = vec![
            (BreakerConfig::builder().fail_max(0), "fail_max", "0"),
            (
                BreakerConfig::builder().failure_rate(1.5),
                "failure_rate",
                "1.5",
            ),
            (
                BreakerConfig::builder().failure_rate(f64::NAN),
                "failure_rate",
                "NaN",
            ),
            (
                BreakerConfig::builder()
                    .failure_rate(0.5)
                    .sliding_window(SlidingWindow::Count(0)),
                "sliding_window.count",
                "0",
            ),
            (
                BreakerConfig::builder().sliding_window(SlidingWindow::Time {
                    duration: Duration::from_millis(5),
                    buckets: 10,
                }),
                "sliding_window.duration",
                "5ms",
            ),
            (
                BreakerConfig::builder().sliding_window(SlidingWindow::Time {
                    duration: Duration::from_secs(1),
                    buckets: 0,
                }),
                "sliding_window.buckets",
                "0",
            ),
            (
                BreakerConfig::builder()
                    .sliding_window(SlidingWindow::Count(10))
                    .min_calls(11),
                "min_calls",
                "11",
            ),
            (
                BreakerConfig::builder().without_fail_max(),
                "fail_max",
                "none",
            ),
            (
                BreakerConfig::builder().reset_timeout(Duration::ZERO),
                "reset_timeout",
                "0ns",
            ),
            (
                BreakerConfig::builder().max_reset_timeout(Duration::from_secs(1)),
                "max_reset_timeout",
                "1s",
            ),
            (
                BreakerConfig::builder().backoff_multiplier(0.5),
                "backoff_multiplier",
                "0.5",
            ),
            (BreakerConfig::builder().jitter(1.0), "jitter", "1"),
            (
                BreakerConfig::builder().half_open_probes(0),
                "half_open_probes",
                "0",
            ),
            (
                BreakerConfig::builder().half_open_successes(300_000),
                "half_open_successes",
                "300000",
            ),
            (
                BreakerConfig::builder().probe_timeout(Duration::ZERO),
                "probe_timeout",
                "0ns",
            ),
        ];
        for (builder, field, value) in cases {
            match builder.build() {
                Err(ConfigError::Invalid {
                    field: f, value: v, ..
                }) => {
                    assert_eq!((f, v.as_str()), (field, value));
                }
                other => panic!("{field}: expected an Invalid error, got {other:?}"),
            }
        }
    }

    #[test]
    fn open_time_grows_and_caps() {
        let config = BreakerConfig::builder()
            .reset_timeout(Duration::from_secs(1))
            .max_reset_timeout(Duration::from_secs(5))
            .build()
            .unwrap();
        let secs: Vec<u64> = (0..5)
            .map(|l| config.open_nanos(l, 0.0) / 1_000_000_000)
            .collect();
        assert_eq!(secs, [1, 2, 4, 5, 5]);
    }

    #[test]
    fn jitter_stays_within_its_band_and_the_cap() {
        let config = BreakerConfig::builder()
            .reset_timeout(Duration::from_secs(10))
            .jitter(0.2)
            .build()
            .unwrap();
        assert_eq!(config.open_nanos(0, 0.0), 8_000_000_000);
        assert_eq!(config.open_nanos(0, 0.5), 10_000_000_000);
        assert!(config.open_nanos(0, 0.999_999) <= 12_000_000_000);
        assert_eq!(
            config.open_nanos(10, 0.999),
            300_000_000_000,
            "capped even with jitter"
        );
    }
}
