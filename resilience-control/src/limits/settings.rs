//! `[[bulkheads]]` and `[[rate_limits]]` (one limit for all, or one per key): the limits to
//! create at start-up.

use std::sync::Arc;
use std::time::Duration;

use resilience_core::bulkhead::Bulkhead;
use resilience_core::rate_limit::{KeyedRateLimiter, RateLimiter};
use serde::{Deserialize, Serialize};

use crate::config::{ConfigLoadError, ResilienceConfig};

/// A bulkhead created at start-up.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
#[non_exhaustive]
pub struct BulkheadSettings {
    /// Its name (unique among bulkheads).
    pub name: String,
    /// Calls admitted at once (default 25).
    pub max_concurrent: Option<u32>,
}

/// A rate limiter created at start-up: `rate` permits per `period_seconds`, `burst` at once.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
#[non_exhaustive]
pub struct RateLimitSettings {
    /// Its name (unique among rate limiters).
    pub name: String,
    /// Permits per period (required).
    pub rate: u32,
    /// The period in seconds (default 1).
    pub period_seconds: Option<f64>,
    /// Permits at once after a quiet spell (default: `rate`).
    pub burst: Option<u32>,
    /// A limit per key (tenant, client) rather than one for all: the keys the table holds
    /// (8 to 16 777 216). Built by [`ResilienceConfig::keyed_rate_limiters`].
    pub keys: Option<usize>,
}

impl ResilienceConfig {
    /// The bulkheads of `[[bulkheads]]`, tagged with this configuration's governance tag.
    ///
    /// # Errors
    ///
    /// [`ConfigLoadError::Invalid`] naming `bulkheads[i].max_concurrent` or a repeated
    /// `bulkheads[i].name`.
    pub fn bulkheads(&self) -> Result<Vec<Arc<Bulkhead>>, ConfigLoadError> {
        let mut built: Vec<Arc<Bulkhead>> = Vec::with_capacity(self.bulkheads.len());
        for (i, settings) in self.bulkheads.iter().enumerate() {
            let section = format!("bulkheads[{i}]");
            if built.iter().any(|b| b.name() == settings.name) {
                return Err(self.invalid(
                    &format!("{section}.name"),
                    format!("{:?}", settings.name),
                    "a name no other bulkhead has",
                ));
            }
            let mut builder =
                Bulkhead::builder(settings.name.clone()).governance(self.constitutional_hash);
            if let Some(n) = settings.max_concurrent {
                builder = builder.max_concurrent(n);
            }
            let bulkhead = builder
                .build()
                .map_err(|e| self.located(&section, &[], e))?;
            built.push(Arc::new(bulkhead));
        }
        Ok(built)
    }

    /// The rate limiters of `[[rate_limits]]`, tagged with this configuration's governance
    /// tag, on the process-global coarse clock.
    ///
    /// # Errors
    ///
    /// [`ConfigLoadError::Invalid`] naming `rate_limits[i].rate`, `.period_seconds`, `.burst`
    /// or a repeated `.name`.
    pub fn rate_limiters(&self) -> Result<Vec<Arc<RateLimiter>>, ConfigLoadError> {
        self.unique_rate_limit_names()?;
        let mut built: Vec<Arc<RateLimiter>> = Vec::with_capacity(self.rate_limits.len());
        for (i, settings) in self.rate_limits.iter().enumerate() {
            if settings.keys.is_some() {
                continue;
            }
            let section = format!("rate_limits[{i}]");
            let period = match settings.period_seconds {
                Some(s) => self.seconds(&format!("{section}.period_seconds"), s)?,
                None => Duration::from_secs(1),
            };
            let mut builder = RateLimiter::builder(settings.name.clone())
                .rate(settings.rate, period)
                .governance(self.constitutional_hash);
            if let Some(burst) = settings.burst {
                builder = builder.burst(burst);
            }
            let limiter = builder
                .build()
                .map_err(|e| self.located(&section, &[("period", "period_seconds")], e))?;
            built.push(Arc::new(limiter));
        }
        Ok(built)
    }

    /// The per-key rate limiters of `[[rate_limits]]` (those with `keys`), tagged with this
    /// configuration's governance tag, on the process-global coarse clock.
    ///
    /// # Errors
    ///
    /// [`ConfigLoadError::Invalid`] naming `rate_limits[i].keys`, `.rate` (at most one permit
    /// per microsecond per key), `.period_seconds`, `.burst` or a repeated `.name`.
    pub fn keyed_rate_limiters(&self) -> Result<Vec<Arc<KeyedRateLimiter>>, ConfigLoadError> {
        self.unique_rate_limit_names()?;
        let mut built = Vec::new();
        for (i, settings) in self.rate_limits.iter().enumerate() {
            let Some(keys) = settings.keys else {
                continue;
            };
            let section = format!("rate_limits[{i}]");
            let period = match settings.period_seconds {
                Some(s) => self.seconds(&format!("{section}.period_seconds"), s)?,
                None => Duration::from_secs(1),
            };
            let mut builder = KeyedRateLimiter::builder(settings.name.clone())
                .rate(settings.rate, period)
                .capacity(keys)
                .governance(self.constitutional_hash);
            if let Some(burst) = settings.burst {
                builder = builder.burst(burst);
            }
            let limiter = builder.build().map_err(|e| {
                self.located(
                    &section,
                    &[("period", "period_seconds"), ("capacity", "keys")],
                    e,
                )
            })?;
            built.push(Arc::new(limiter));
        }
        Ok(built)
    }

    fn unique_rate_limit_names(&self) -> Result<(), ConfigLoadError> {
        for (i, settings) in self.rate_limits.iter().enumerate() {
            if self.rate_limits[..i]
                .iter()
                .any(|l| l.name == settings.name)
            {
                return Err(self.invalid(
                    &format!("rate_limits[{i}].name"),
                    format!("{:?}", settings.name),
                    "a name no other rate limiter has",
                ));
            }
        }
        Ok(())
    }
}
