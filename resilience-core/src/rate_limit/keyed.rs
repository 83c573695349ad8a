//! [`KeyedRateLimiter`]: a GCRA limit per key (tenant, client, route) in a bounded table, one
//! atomic word per key.
//!
//! Each slot holds a 16-bit tag of the key's hash and the key's theoretical arrival time in
//! microseconds (48 bits, 8.9 years of uptime), so finding the key and admitting it is the same
//! compare-and-swap: a slot taken over by another key between the load and the swap fails the
//! swap and the lookup starts again. A key lives in one of the [`PROBE`] slots after its hash's
//! home slot. A slot whose time has passed holds no debt (its key would get a full burst
//! anyway), so a new key may take it over; when every slot of the window is in debt the call
//! is refused as "table full" with the time until the first of them is free. Size the table
//! for the keys active within one burst window.
//!
//! Two keys whose hashes share the home window and the 16-bit tag share one limit (stricter,
//! never looser): with a table of `n` slots, a given pair does so with probability about
//! 8/(n·65 536). The hash ([`key_hash`]) is seeded per process, so callers cannot aim keys at
//! a victim's window. A first call of a new key racing a second first call while a slot of the window
//! frees may place the key twice, giving it one extra burst once; the window then resolves to
//! the first slot.

use core::fmt;
use core::hash::{BuildHasher, Hash};
use core::time::Duration;
use std::sync::OnceLock;

use super::{RateLimited, gcra};
use crate::clock::{Clock, CoarseClock};
use crate::error::ConfigError;
use crate::governance::GovernanceHash;
use crate::stats::Counters;
use crate::sync::{AtomicU64, Ordering};

/// The hash [`KeyedRateLimiter::try_acquire`] uses for `key`: foldhash, seeded once per
/// process from the operating system's randomness, so callers cannot choose keys that crowd a
/// victim's slots. The same for every limiter in the process, so a key can be hashed once per
/// request and used with several limiters ([`KeyedRateLimiter::try_acquire_hashed`]).
///
/// # Examples
///
/// ```
/// use resilience_core::rate_limit::key_hash;
///
/// assert_eq!(key_hash("acme"), key_hash("acme"));
/// assert_ne!(key_hash("acme"), key_hash("globex"));
/// ```
#[inline]
pub fn key_hash<K: Hash + ?Sized>(key: &K) -> u64 {
    static STATE: OnceLock<foldhash::fast::FixedState> = OnceLock::new();
    STATE
        .get_or_init(|| {
            // std's RandomState draws its keys from the OS once per thread; one hash of a
            // constant turns them into the seed.
            let seed = std::collections::hash_map::RandomState::new().hash_one(0x5eed_u64);
            foldhash::fast::FixedState::with_seed(seed)
        })
        .hash_one(key)
}

/// Slots searched for a key from its home slot.
pub const PROBE: usize = 8;

const TAT_BITS: u32 = 48;
const TAT_MASK: u64 = (1 << TAT_BITS) - 1;
/// The longest burst window (`interval · burst`), in microseconds: a quarter of the TAT's
/// range, so `now + window` never overflows it within 6 years of uptime.
const MAX_WINDOW_US: u64 = 1 << 46;

const ADMITTED: usize = 0;
const REJECTED: usize = 1;
const TABLE_FULL: usize = 2;

#[inline(always)]
const fn tag_of(word: u64) -> u16 {
    (word >> TAT_BITS) as u16
}

#[inline(always)]
const fn tat_of(word: u64) -> u64 {
    word & TAT_MASK
}

#[inline(always)]
const fn pack(tag: u16, tat_us: u64) -> u64 {
    (tag as u64) << TAT_BITS | (tat_us & TAT_MASK)
}

/// A rate limit per key: every key gets [`rate`](KeyedRateLimiterBuilder::rate) permits per
/// period and at most [`burst`](KeyedRateLimiterBuilder::burst) at once, in a table of
/// [`capacity`](KeyedRateLimiterBuilder::capacity) keys.
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// use resilience_core::rate_limit::KeyedRateLimiter;
///
/// // Each tenant: 10 calls a second, 2 at once.
/// let per_tenant = KeyedRateLimiter::builder("tenants")
///     .rate(10, Duration::from_secs(1))
///     .burst(2)
///     .capacity(1024)
///     .build()?;
/// assert!(per_tenant.try_acquire("acme").is_ok());
/// assert!(per_tenant.try_acquire("acme").is_ok());
/// let limited = per_tenant.try_acquire("acme").unwrap_err();
/// assert!(limited.retry_after().unwrap() <= Duration::from_millis(100));
/// assert!(per_tenant.try_acquire("globex").is_ok(), "another tenant has its own limit");
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub struct KeyedRateLimiter<C: Clock = CoarseClock> {
    slots: Box<[AtomicU64]>,
    mask: usize,
    interval_us: u64,
    window_us: u64,
    burst: u32,
    clock: C,
    counters: Counters<3>,
    name: Box<str>,
    governance: GovernanceHash,
}

impl KeyedRateLimiter {
    /// A builder for a limiter called `name`, on the process-global [`CoarseClock`], with
    /// 4096 slots.
    pub fn builder(name: impl Into<String>) -> KeyedRateLimiterBuilder {
        KeyedRateLimiterBuilder {
            name: name.into(),
            permits: 0,
            period: Duration::ZERO,
            burst: None,
            capacity: 4096,
            governance: None,
            clock: CoarseClock::global().clone(),
        }
    }
}

impl<C: Clock> KeyedRateLimiter<C> {
    /// Takes one permit of `key`'s limit if its rate allows it now.
    ///
    /// # Errors
    ///
    /// [`RateLimited`] with the time until the key has a permit, or, when the table has no
    /// room for a new key ([`RateLimited::is_table_full`]), until a slot frees.
    #[inline]
    pub fn try_acquire<K: Hash + ?Sized>(&self, key: &K) -> Result<(), RateLimited> {
        self.try_acquire_hashed(key_hash(key))
    }

    /// [`try_acquire`](Self::try_acquire) for a key already hashed with [`key_hash`] (or any
    /// well-mixed 64-bit hash the caller keeps secret).
    ///
    /// # Errors
    ///
    /// As [`try_acquire`](Self::try_acquire).
    #[inline]
    pub fn try_acquire_hashed(&self, hash: u64) -> Result<(), RateLimited> {
        let tag = match (hash >> TAT_BITS) as u16 {
            0 => 1, // 0 marks an empty slot
            t => t,
        };
        let home = hash as usize & self.mask;
        let now = self.clock.now().as_nanos() / 1_000;
        'lookup: loop {
            // The key's own slot, if it has one in its window.
            for i in 0..PROBE {
                let slot = &self.slots[(home + i) & self.mask];
                let mut word = slot.load(Ordering::Relaxed);
                if tag_of(word) != tag {
                    continue;
                }
                loop {
                    let next =
                        match gcra::admit(tat_of(word), now, self.interval_us, self.window_us) {
                            Ok(next) => next,
                            Err(wait_us) => return Err(self.refuse(wait_us, false)),
                        };
                    // Relaxed: the word orders nothing but itself.
                    match slot.compare_exchange_weak(
                        word,
                        pack(tag, next),
                        Ordering::Relaxed,
                        Ordering::Relaxed,
                    ) {
                        Ok(_) => return self.admitted(),
                        // Taken over by another key: look again.
                        Err(current) if tag_of(current) != tag => continue 'lookup,
                        Err(current) => word = current,
                    }
                }
            }
            // A new key: the first slot of the window that is empty or holds no debt.
            let mut soonest = u64::MAX;
            for i in 0..PROBE {
                let slot = &self.slots[(home + i) & self.mask];
                let word = slot.load(Ordering::Relaxed);
                if word != 0 && tag_of(word) == tag {
                    // The key was placed since the first pass.
                    continue 'lookup;
                }
                let tat = tat_of(word);
                if word != 0 && tat > now {
                    soonest = soonest.min(tat - now);
                    continue;
                }
                let fresh = pack(tag, now + self.interval_us);
                match slot.compare_exchange(word, fresh, Ordering::Relaxed, Ordering::Relaxed) {
                    Ok(_) => return self.admitted(),
                    Err(_) => continue 'lookup,
                }
            }
            return Err(self.refuse(soonest, true));
        }
    }

    #[inline]
    fn admitted(&self) -> Result<(), RateLimited> {
        self.counters.bump(ADMITTED);
        Ok(())
    }

    #[cold]
    fn refuse(&self, wait_us: u64, table_full: bool) -> RateLimited {
        self.counters
            .bump(if table_full { TABLE_FULL } else { REJECTED });
        let limited = RateLimited::new(wait_us.saturating_mul(1_000), self.governance);
        if table_full {
            limited.table_full()
        } else {
            limited
        }
    }

    /// The permits a full burst holds, per key.
    pub fn burst(&self) -> u32 {
        self.burst
    }

    /// Time per permit, per key (whole microseconds).
    pub fn interval(&self) -> Duration {
        Duration::from_micros(self.interval_us)
    }

    /// Keys the table holds.
    pub fn capacity(&self) -> usize {
        self.slots.len()
    }

    /// The limiter's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The governance tag its refusals carry.
    pub fn governance(&self) -> GovernanceHash {
        self.governance
    }

    /// The clock it reads.
    pub fn clock(&self) -> &C {
        &self.clock
    }

    /// Totals and occupancy, for metrics.
    pub fn snapshot(&self) -> KeyedRateLimiterSnapshot {
        let now = self.clock.now().as_nanos() / 1_000;
        let in_debt = self
            .slots
            .iter()
            .filter(|s| {
                let w = s.load(Ordering::Relaxed);
                w != 0 && tat_of(w) > now
            })
            .count();
        KeyedRateLimiterSnapshot {
            keys_limited: in_debt,
            capacity: self.slots.len(),
            admitted: self.counters.total(ADMITTED),
            rejected: self.counters.total(REJECTED),
            table_full: self.counters.total(TABLE_FULL),
        }
    }
}

impl<C: Clock> fmt::Debug for KeyedRateLimiter<C> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KeyedRateLimiter")
            .field("name", &self.name)
            .field("interval", &self.interval())
            .field("burst", &self.burst)
            .field("capacity", &self.slots.len())
            .finish_non_exhaustive()
    }
}

/// A keyed limiter's totals and occupancy at one moment.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct KeyedRateLimiterSnapshot {
    /// Slots whose key has spent part of its burst (the keys in use now).
    pub keys_limited: usize,
    /// Slots in the table.
    pub capacity: usize,
    /// Calls admitted since start.
    pub admitted: u64,
    /// Calls refused by their key's limit.
    pub rejected: u64,
    /// Calls of new keys refused because their window had no free slot.
    pub table_full: u64,
}

/// Configures a [`KeyedRateLimiter`]; [`build`](Self::build) validates.
#[derive(Debug)]
#[must_use = "a builder does nothing until build() is called"]
pub struct KeyedRateLimiterBuilder<C: Clock = CoarseClock> {
    name: String,
    permits: u32,
    period: Duration,
    burst: Option<u32>,
    capacity: usize,
    governance: Option<GovernanceHash>,
    clock: C,
}

impl<C: Clock> KeyedRateLimiterBuilder<C> {
    /// `permits` per `period` for each key (required; at most one per microsecond).
    pub fn rate(mut self, permits: u32, period: Duration) -> Self {
        self.permits = permits;
        self.period = period;
        self
    }

    /// Permits a key may take at once after a quiet spell (default: the rate's `permits`).
    pub fn burst(mut self, burst: u32) -> Self {
        self.burst = Some(burst);
        self
    }

    /// Keys the table holds (rounded up to a power of two; 8 to 2^24, default 4096).
    pub fn capacity(mut self, keys: usize) -> Self {
        self.capacity = keys;
        self
    }

    /// The governance tag refusals carry (default: the process's).
    pub fn governance(mut self, hash: GovernanceHash) -> Self {
        self.governance = Some(hash);
        self
    }

    /// The clock (default the global [`CoarseClock`]).
    pub fn clock<C2: Clock>(self, clock: C2) -> KeyedRateLimiterBuilder<C2> {
        KeyedRateLimiterBuilder {
            name: self.name,
            permits: self.permits,
            period: self.period,
            burst: self.burst,
            capacity: self.capacity,
            governance: self.governance,
            clock,
        }
    }

    /// Validates and builds.
    ///
    /// # Errors
    ///
    /// [`ConfigError::Invalid`] naming `rate` (zero, or more than one permit per
    /// microsecond), `period` (zero), `burst` (zero, or a window `interval · burst` past two
    /// years) or `capacity`.
    pub fn build(self) -> Result<KeyedRateLimiter<C>, ConfigError> {
        let gcra::Quota {
            interval: interval_us,
            burst,
            window: window_us,
        } = gcra::Quota::new(
            self.permits,
            self.period,
            self.burst,
            1_000,
            "at most one permit per microsecond per key",
        )?;
        if window_us > MAX_WINDOW_US {
            return Err(ConfigError::invalid(
                "burst",
                burst,
                "an interval × burst of at most 2 years",
            ));
        }
        if !(8..=1 << 24).contains(&self.capacity) {
            return Err(ConfigError::invalid(
                "capacity",
                self.capacity,
                "between 8 and 16777216 keys",
            ));
        }
        let size = self.capacity.next_power_of_two();
        Ok(KeyedRateLimiter {
            slots: (0..size).map(|_| AtomicU64::new(0)).collect(),
            mask: size - 1,
            interval_us,
            window_us,
            burst,
            clock: self.clock,
            counters: Counters::new(),
            name: self.name.into_boxed_str(),
            governance: self.governance.unwrap_or_else(GovernanceHash::for_process),
        })
    }
}
