//! [`Deadline`]: a point in time on a policy's clock, handed to the calls inside a policy so
//! they can give their own callees only the time that is left.

use core::time::Duration;

use crate::clock::{Clock, Nanos};

/// When a call must be done, on the clock of the policy that set it.
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// use resilience_core::{ManualClock, timeout::Deadline};
///
/// let clock = ManualClock::new();
/// let deadline = Deadline::after(&clock, Duration::from_millis(100));
/// clock.advance(Duration::from_millis(30));
/// assert_eq!(deadline.remaining(&clock), Duration::from_millis(70));
/// assert!(!deadline.is_past(&clock));
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Deadline {
    at: Nanos,
}

impl Deadline {
    /// `after` from now on `clock`.
    #[inline]
    pub fn after<C: Clock>(clock: &C, after: Duration) -> Self {
        Deadline {
            at: clock.now() + after,
        }
    }

    /// At `at` on the clock the caller uses.
    pub const fn at(at: Nanos) -> Self {
        Deadline { at }
    }

    /// The instant, on the clock it was set on.
    pub const fn instant(&self) -> Nanos {
        self.at
    }

    /// Time left on `clock` (zero once past).
    #[inline]
    pub fn remaining<C: Clock>(&self, clock: &C) -> Duration {
        self.at.saturating_since(clock.now())
    }

    /// Whether it has passed on `clock`.
    #[inline]
    pub fn is_past<C: Clock>(&self, clock: &C) -> bool {
        clock.now() >= self.at
    }
}
