//! `[[retries]]`, `[[retry_budgets]]` and `[[time_limits]]`: retry policies (sharing budgets by
//! name) and time limits to create at start-up.

use std::sync::Arc;

use resilience_core::retry::{Backoff, Jitter, Retry, RetryBudget};
use resilience_core::timeout::TimeLimiter;
use serde::{Deserialize, Serialize};

use crate::config::{ConfigLoadError, ResilienceConfig};

/// A retry policy created at start-up.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
#[non_exhaustive]
pub struct RetrySettings {
    /// Its name (unique among retries).
    pub name: String,
    /// Attempts per call, the first included (default 3, at most 100).
    pub max_attempts: Option<u32>,
    /// The first backoff in seconds (default 0.1).
    pub initial_backoff_seconds: Option<f64>,
    /// The longest backoff in seconds (default 10).
    pub max_backoff_seconds: Option<f64>,
    /// Growth per retry (default 2).
    pub multiplier: Option<f64>,
    /// `none`, `full` (default), `equal` or `decorrelated`.
    pub jitter: Option<Jitter>,
    /// The `[[retry_budgets]]` entry it draws on, shared with every retry naming it.
    pub budget: Option<String>,
}

/// A retry budget shared by the retries that name it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
#[non_exhaustive]
pub struct RetryBudgetSettings {
    /// Its name (unique among budgets).
    pub name: String,
    /// Retries earned per call (default 0.2: one retry per five calls).
    pub ratio: Option<f64>,
    /// Retries a second allowed whatever the balance (default 10).
    pub min_per_sec: Option<u32>,
    /// Retries that can be banked (default 100).
    pub max_balance: Option<u32>,
}

/// A time limit created at start-up.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
#[non_exhaustive]
pub struct TimeLimitSettings {
    /// Its name (unique among time limits).
    pub name: String,
    /// The limit per call in seconds (required, more than zero).
    pub timeout_seconds: f64,
}

impl ResilienceConfig {
    /// The retry policies of `[[retries]]`, each drawing on the `[[retry_budgets]]` entry it
    /// names (one budget object per entry, shared), tagged with the governance tag.
    ///
    /// # Errors
    ///
    /// [`ConfigLoadError::Invalid`] naming the field: `retries[i].max_attempts`,
    /// `.initial_backoff_seconds`, `.max_backoff_seconds`, `.multiplier`, a `.budget` no
    /// budget has, `retry_budgets[i].ratio` or `.max_balance`, or a repeated `.name`.
    pub fn retries(&self) -> Result<Vec<Arc<Retry>>, ConfigLoadError> {
        let mut budgets: Vec<(&str, Arc<RetryBudget>)> = Vec::new();
        for (i, settings) in self.retry_budgets.iter().enumerate() {
            let section = format!("retry_budgets[{i}]");
            if budgets.iter().any(|(name, _)| *name == settings.name) {
                return Err(self.invalid(
                    &format!("{section}.name"),
                    format!("{:?}", settings.name),
                    "a name no other retry budget has",
                ));
            }
            let mut builder = RetryBudget::builder();
            if let Some(ratio) = settings.ratio {
                builder = builder.ratio(ratio);
            }
            if let Some(n) = settings.min_per_sec {
                builder = builder.min_per_sec(n);
            }
            if let Some(n) = settings.max_balance {
                builder = builder.max_balance(n);
            }
            let budget = builder
                .build()
                .map_err(|e| self.located(&section, &[], e))?;
            budgets.push((&settings.name, Arc::new(budget)));
        }
        let mut built: Vec<Arc<Retry>> = Vec::with_capacity(self.retries.len());
        for (i, settings) in self.retries.iter().enumerate() {
            let section = format!("retries[{i}]");
            if built.iter().any(|r| r.name() == settings.name) {
                return Err(self.invalid(
                    &format!("{section}.name"),
                    format!("{:?}", settings.name),
                    "a name no other retry has",
                ));
            }
            let default = Backoff::default();
            let initial = match settings.initial_backoff_seconds {
                Some(s) => self.seconds(&format!("{section}.initial_backoff_seconds"), s)?,
                None => default.initial(),
            };
            let max = match settings.max_backoff_seconds {
                Some(s) => self.seconds(&format!("{section}.max_backoff_seconds"), s)?,
                None => default.max().max(initial),
            };
            let backoff = Backoff::exponential(initial, max)
                .multiplier(settings.multiplier.unwrap_or(default.growth()))
                .jitter(settings.jitter.unwrap_or(default.jitter_kind()));
            let mut builder = Retry::builder(settings.name.clone())
                .backoff(backoff)
                .governance(self.constitutional_hash);
            if let Some(n) = settings.max_attempts {
                builder = builder.max_attempts(n);
            }
            if let Some(wanted) = &settings.budget {
                let Some((_, budget)) = budgets.iter().find(|(name, _)| name == wanted) else {
                    return Err(self.invalid(
                        &format!("{section}.budget"),
                        format!("{wanted:?}"),
                        "the name of a [[retry_budgets]] entry",
                    ));
                };
                builder = builder.budget(Arc::clone(budget));
            }
            let retry = builder.build().map_err(|e| {
                self.located(&section, &[("max_backoff", "max_backoff_seconds")], e)
            })?;
            built.push(Arc::new(retry));
        }
        Ok(built)
    }

    /// The time limits of `[[time_limits]]`, tagged with the governance tag.
    ///
    /// # Errors
    ///
    /// [`ConfigLoadError::Invalid`] naming `time_limits[i].timeout_seconds` or a repeated
    /// `.name`.
    pub fn time_limiters(&self) -> Result<Vec<Arc<TimeLimiter>>, ConfigLoadError> {
        let mut built: Vec<Arc<TimeLimiter>> = Vec::with_capacity(self.time_limits.len());
        for (i, settings) in self.time_limits.iter().enumerate() {
            let section = format!("time_limits[{i}]");
            if built.iter().any(|t| t.name() == settings.name) {
                return Err(self.invalid(
                    &format!("{section}.name"),
                    format!("{:?}", settings.name),
                    "a name no other time limit has",
                ));
            }
            let key = format!("{section}.timeout_seconds");
            let timeout = self.seconds(&key, settings.timeout_seconds)?;
            if timeout.is_zero() {
                return Err(self.invalid(&key, "0".to_owned(), "more than zero seconds"));
            }
            let limiter = TimeLimiter::builder(settings.name.clone())
                .timeout(timeout)
                .governance(self.constitutional_hash)
                .build()
                .map_err(|e| self.located(&section, &[("timeout", "timeout_seconds")], e))?;
            built.push(Arc::new(limiter));
        }
        Ok(built)
    }
}
