//! Configuration errors: every one names the field and the rejected value.

use core::fmt::Display;

use crate::governance::GovernanceMismatch;

/// A configuration value was rejected by a `build()` or constructor.
///
/// # Examples
///
/// ```
/// use resilience_core::{CircuitBreaker, ConfigError};
///
/// let err = CircuitBreaker::builder("db").fail_max(0).build().unwrap_err();
/// assert!(matches!(err, ConfigError::Invalid { field: "fail_max", .. }));
/// assert_eq!(err.to_string(), "invalid `fail_max` = 0: expected at least 1");
/// ```
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// A field holds a value outside its allowed range.
    #[error("invalid `{field}` = {value}: expected {expected}")]
    Invalid {
        /// The field, as named by its builder method.
        field: &'static str,
        /// The rejected value, rendered.
        value: String,
        /// What would have been accepted.
        expected: &'static str,
    },
    /// The configuration carries a governance tag other than the one required.
    #[error(transparent)]
    Governance(#[from] GovernanceMismatch),
}

impl ConfigError {
    pub(crate) fn invalid(
        field: &'static str,
        value: impl Display,
        expected: &'static str,
    ) -> Self {
        ConfigError::Invalid {
            field,
            value: value.to_string(),
            expected,
        }
    }

    /// The offending field, when the error is about one field.
    pub fn field(&self) -> Option<&'static str> {
        match self {
            ConfigError::Invalid { field, .. } => Some(field),
            ConfigError::Governance(_) => None,
        }
    }
}

impl crate::Governed for ConfigError {
    fn governance(&self) -> crate::GovernanceHash {
        match self {
            ConfigError::Governance(mismatch) => mismatch.expected,
            _ => crate::GovernanceHash::for_process(),
        }
    }
}
