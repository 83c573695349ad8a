//! [`RetryBudget`]: a token bucket shared by every caller, so retries cannot multiply the load
//! on a dependency that is already failing.
//!
//! Each first attempt deposits a fraction of a token ([`ratio`](RetryBudgetBuilder::ratio),
//! 0.2 by default: at most one retry per five calls), each retry withdraws a whole one, and a
//! small time-based reserve ([`min_per_sec`](RetryBudgetBuilder::min_per_sec)) lets a
//! low-traffic caller retry at all. This is Finagle's `RetryBudget` and tower's `TpsBudget`,
//! with the deposits capped by a balance instead of expiring after a time-to-live.
//!
//! Cost: a deposit when the balance is full (the steady state of a healthy service) is one
//! atomic load; otherwise one `fetch_add`. A withdrawal is one compare-and-swap, or when the
//! balance is empty one GCRA admission on the reserve.

use core::fmt;
use core::time::Duration;

use crossbeam_utils::CachePadded;

use crate::clock::{Clock, CoarseClock};
use crate::error::ConfigError;
use crate::rate_limit::RateLimiter;
use crate::stats::Counters;
use crate::sync::{AtomicI64, Ordering};

/// Thousandths of a retry: deposits are fractions of a token.
const MILLI: i64 = 1000;

const WITHDRAWN: usize = 0;
const REFUSED: usize = 1;

/// A retry budget shared by all the callers of a dependency.
///
/// # Examples
///
/// ```
/// use resilience_core::retry::RetryBudget;
///
/// let budget = RetryBudget::builder().ratio(0.5).min_per_sec(0).build()?;
/// budget.deposit(); // two calls made...
/// budget.deposit();
/// assert!(budget.try_withdraw()); // ...earn one retry
/// assert!(!budget.try_withdraw());
/// # Ok::<(), resilience_core::ConfigError>(())
/// ```
pub struct RetryBudget<C: Clock = CoarseClock> {
    /// Thousandths of a retry available.
    balance: CachePadded<AtomicI64>,
    deposit: i64,
    cap: i64,
    reserve: Option<RateLimiter<C>>,
    counters: Counters<2>,
}

impl RetryBudget {
    /// A builder with Finagle's defaults: 20% of calls may be retried, 10 retries a second
    /// always allowed, at most 100 retries banked.
    pub fn builder() -> RetryBudgetBuilder {
        RetryBudgetBuilder {
            ratio: 0.2,
            min_per_sec: 10,
            max_balance: 100,
            clock: CoarseClock::global().clone(),
        }
    }
}

impl<C: Clock> RetryBudget<C> {
    /// Credits one call (a first attempt) to the budget.
    #[inline]
    pub fn deposit(&self) {
        // A load first: a healthy service keeps the balance full and then pays no RMW. A
        // deposit fills at most the room it saw; threads that see the same room at once may
        // overshoot the cap by a deposit each, which is harmless.
        let balance = self.balance.load(Ordering::Relaxed);
        if balance < self.cap {
            let amount = self.deposit.min(self.cap - balance);
            if amount > 0 {
                self.balance.fetch_add(amount, Ordering::Relaxed);
            }
        }
    }

    /// Takes one retry from the budget; `false` means the caller must not retry.
    #[inline]
    pub fn try_withdraw(&self) -> bool {
        let mut balance = self.balance.load(Ordering::Relaxed);
        while balance >= MILLI {
            match self.balance.compare_exchange_weak(
                balance,
                balance - MILLI,
                Ordering::Relaxed,
                Ordering::Relaxed,
            ) {
                Ok(_) => {
                    self.counters.bump(WITHDRAWN);
                    return true;
                }
                Err(now) => balance = now,
            }
        }
        if self
            .reserve
            .as_ref()
            .is_some_and(|r| r.try_acquire().is_ok())
        {
            self.counters.bump(WITHDRAWN);
            return true;
        }
        self.counters.bump(REFUSED);
        false
    }

    /// Retries banked now (not counting the time-based reserve).
    pub fn available(&self) -> u32 {
        (self.balance.load(Ordering::Relaxed).max(0) / MILLI) as u32
    }

    /// Counters and balance, for metrics and health.
    pub fn snapshot(&self) -> RetryBudgetSnapshot {
        RetryBudgetSnapshot {
            available: self.available(),
            withdrawn: self.counters.total(WITHDRAWN),
            refused: self.counters.total(REFUSED),
        }
    }
}

impl<C: Clock> fmt::Debug for RetryBudget<C> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RetryBudget")
            .field("ratio", &(self.deposit as f64 / MILLI as f64))
            .field("max_balance", &(self.cap / MILLI))
            .field("available", &self.available())
            .finish_non_exhaustive()
    }
}

/// A budget's balance and totals at one moment.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct RetryBudgetSnapshot {
    /// Retries banked now.
    pub available: u32,
    /// Retries granted since start.
    pub withdrawn: u64,
    /// Retries refused since start (the budget was exhausted).
    pub refused: u64,
}

/// Configures a [`RetryBudget`]; [`build`](Self::build) validates.
#[derive(Debug)]
#[must_use = "a builder does nothing until build() is called"]
pub struct RetryBudgetBuilder<C: Clock = CoarseClock> {
    ratio: f64,
    min_per_sec: u32,
    max_balance: u32,
    clock: C,
}

impl<C: Clock> RetryBudgetBuilder<C> {
    /// Retries earned per call: 0.2 allows one retry per five calls (0 to 1000).
    pub fn ratio(mut self, ratio: f64) -> Self {
        self.ratio = ratio;
        self
    }

    /// Retries a second allowed whatever the balance (0 for none).
    pub fn min_per_sec(mut self, min_per_sec: u32) -> Self {
        self.min_per_sec = min_per_sec;
        self
    }

    /// The most retries that can be banked (at least 1): the largest burst of retries an
    /// outage can start with.
    pub fn max_balance(mut self, max_balance: u32) -> Self {
        self.max_balance = max_balance;
        self
    }

    /// The clock of the time-based reserve.
    pub fn clock<C2: Clock>(self, clock: C2) -> RetryBudgetBuilder<C2> {
        RetryBudgetBuilder {
            ratio: self.ratio,
            min_per_sec: self.min_per_sec,
            max_balance: self.max_balance,
            clock,
        }
    }

    /// Validates and builds.
    ///
    /// # Errors
    ///
    /// [`ConfigError::Invalid`] naming `ratio` (outside 0 to 1000 or not finite) or
    /// `max_balance` (zero).
    pub fn build(self) -> Result<RetryBudget<C>, ConfigError> {
        if !(0.0..=1000.0).contains(&self.ratio) {
            return Err(ConfigError::invalid(
                "ratio",
                self.ratio,
                "a finite number from 0 to 1000",
            ));
        }
        if self.max_balance == 0 {
            return Err(ConfigError::invalid("max_balance", 0, "at least 1"));
        }
        let reserve = match self.min_per_sec {
            0 => None,
            n => Some(
                RateLimiter::builder("retry-budget-reserve")
                    .rate(n, Duration::from_secs(1))
                    .burst(n)
                    .call_totals(false)
                    .clock(self.clock)
                    .build()?,
            ),
        };
        Ok(RetryBudget {
            balance: CachePadded::new(AtomicI64::new(0)),
            deposit: (self.ratio * MILLI as f64).round() as i64,
            cap: i64::from(self.max_balance) * MILLI,
            reserve,
            counters: Counters::new(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::ManualClock;

    #[test]
    fn deposits_earn_retries_up_to_the_cap() {
        let budget = RetryBudget::builder()
            .ratio(0.25)
            .min_per_sec(0)
            .max_balance(2)
            .build()
            .unwrap();
        assert!(!budget.try_withdraw(), "starts empty");
        for _ in 0..100 {
            budget.deposit();
        }
        assert_eq!(budget.available(), 2, "capped");
        // A ratio above the cap fills it exactly, never beyond.
        let generous = RetryBudget::builder()
            .ratio(50.0)
            .min_per_sec(0)
            .max_balance(3)
            .build()
            .unwrap();
        generous.deposit();
        generous.deposit();
        assert_eq!(generous.available(), 3);
        assert!(budget.try_withdraw() && budget.try_withdraw());
        assert!(!budget.try_withdraw());
        let snap = budget.snapshot();
        assert_eq!((snap.withdrawn, snap.refused), (2, 2));
    }

    #[test]
    fn the_reserve_refills_with_time() {
        let clock = ManualClock::new();
        let budget = RetryBudget::builder()
            .ratio(0.0)
            .min_per_sec(2)
            .clock(clock.clone())
            .build()
            .unwrap();
        assert!(budget.try_withdraw() && budget.try_withdraw());
        assert!(!budget.try_withdraw());
        clock.advance(Duration::from_millis(500));
        assert!(budget.try_withdraw());
        assert!(!budget.try_withdraw());
    }

    #[test]
    fn bad_settings_name_the_field() {
        let err = RetryBudget::builder().ratio(f64::NAN).build().unwrap_err();
        assert_eq!(err.field(), Some("ratio"));
        let err = RetryBudget::builder().max_balance(0).build().unwrap_err();
        assert_eq!(err.field(), Some("max_balance"));
    }
}
