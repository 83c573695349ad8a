//! [`TokioClock`]: the data plane's [`Clock`] read from tokio's clock.

use resilience_core::{Clock, Nanos};

/// A [`Clock`] that follows tokio's clock, so `tokio::time::pause()` and `advance()` move it
/// too: give it to a breaker registry or fault table in tests and simulations of the control
/// plane, and expiries, reset timeouts and recovery delays all run on one paused timeline.
///
/// Every read asks tokio (an OS clock read unless time is paused), so it is not for the data
/// plane in production, which reads the [`CoarseClock`](resilience_core::CoarseClock) with one
/// atomic load.
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// use resilience_control::TokioClock;
/// use resilience_core::Clock;
///
/// # #[tokio::main(flavor = "current_thread", start_paused = true)]
/// # async fn main() {
/// let clock = TokioClock::new();
/// tokio::time::advance(Duration::from_secs(30)).await;
/// assert_eq!(clock.now().as_millis(), 30_000);
/// # }
/// ```
#[derive(Clone, Copy, Debug)]
pub struct TokioClock {
    base: tokio::time::Instant,
}

impl TokioClock {
    /// A clock reading zero now.
    pub fn new() -> Self {
        TokioClock {
            base: tokio::time::Instant::now(),
        }
    }
}

impl Default for TokioClock {
    fn default() -> Self {
        Self::new()
    }
}

impl Clock for TokioClock {
    fn now(&self) -> Nanos {
        Nanos::from_nanos(u64::try_from(self.base.elapsed().as_nanos()).unwrap_or(u64::MAX))
    }
}
