//! The generic cell rate algorithm, as pure arithmetic on one word: the theoretical arrival
//! time (TAT) of the next request, in nanoseconds on the limiter's clock.
//!
//! A request of `cost` nanoseconds (the emission interval times the permits asked) at `now` is
//! admitted when, after it, the TAT is at most `window` ahead of now, where `window` is the
//! interval times the burst. Then the TAT moves to `max(tat, now) + cost`. Refused, it says
//! how long until it would fit.

use core::time::Duration;

use crate::error::ConfigError;

/// A validated rate in some unit of time (nanoseconds for the plain limiter, microseconds for
/// the keyed one): the time per permit and how far ahead the TAT may run.
pub(crate) struct Quota {
    pub(crate) interval: u64,
    pub(crate) burst: u32,
    pub(crate) window: u64,
}

impl Quota {
    /// `permits` per `period`, `burst` at once (default `permits`), in units of `unit_nanos`.
    ///
    /// # Errors
    ///
    /// [`ConfigError::Invalid`] naming `rate` (zero, or finer than one permit per unit,
    /// `finest` saying so), `period` (zero) or `burst` (zero).
    pub(crate) fn new(
        permits: u32,
        period: Duration,
        burst: Option<u32>,
        unit_nanos: u64,
        finest: &'static str,
    ) -> Result<Self, ConfigError> {
        if permits == 0 {
            return Err(ConfigError::invalid("rate", permits, "at least 1 permit"));
        }
        if period.is_zero() {
            return Err(ConfigError::invalid(
                "period",
                format_args!("{period:?}"),
                "more than zero",
            ));
        }
        let period_units = crate::clock::duration_nanos(period) / unit_nanos;
        let interval = period_units / u64::from(permits);
        if interval == 0 {
            return Err(ConfigError::invalid(
                "rate",
                format_args!("{permits} per {period:?}"),
                finest,
            ));
        }
        let burst = burst.unwrap_or(permits);
        if burst == 0 {
            return Err(ConfigError::invalid("burst", burst, "at least 1"));
        }
        Ok(Quota {
            interval,
            burst,
            window: interval.saturating_mul(u64::from(burst)),
        })
    }
}

/// The TAT after admitting, or the nanoseconds to wait.
#[inline(always)]
pub(crate) fn admit(tat: u64, now: u64, cost: u64, window: u64) -> Result<u64, u64> {
    let next = tat.max(now).saturating_add(cost);
    let ahead = next - now;
    if ahead > window {
        Err(ahead - window)
    } else {
        Ok(next)
    }
}

#[cfg(all(test, not(resilience_loom)))]
mod tests {
    use super::admit;

    /// Burst 3, one permit per 10 ns: three at once, then one per 10 ns.
    #[test]
    fn a_burst_then_the_rate() {
        let (interval, window) = (10, 30);
        let mut tat = 0;
        for _ in 0..3 {
            tat = admit(tat, 0, interval, window).unwrap();
        }
        assert_eq!(admit(tat, 0, interval, window), Err(10));
        assert_eq!(admit(tat, 9, interval, window), Err(1));
        tat = admit(tat, 10, interval, window).unwrap();
        assert_eq!(admit(tat, 10, interval, window), Err(10));
        // Idle for long: no credit beyond the burst.
        let mut later = tat;
        for _ in 0..3 {
            later = admit(later, 1_000, interval, window).unwrap();
        }
        assert!(admit(later, 1_000, interval, window).is_err());
    }

    #[test]
    fn a_cost_beyond_the_window_never_fits() {
        assert_eq!(admit(0, 0, 40, 30), Err(10));
        // Near the end of the clock's range the TAT saturates instead of wrapping.
        assert_eq!(admit(0, u64::MAX - 5, 20, 30), Ok(u64::MAX));
    }
}
