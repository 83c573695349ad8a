//! Control-plane errors: typed, naming the field or component and the value.

use resilience_core::{ConfigError, GovernanceMismatch};

/// The control plane refused to start.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum BuildError {
    /// No breaker registry was given to the builder.
    #[error("the control plane needs a breaker registry: call .registry(..)")]
    MissingRegistry,
    /// A component carries a governance tag other than the one required.
    #[error(transparent)]
    Governance(#[from] GovernanceMismatch),
    /// A configuration value is out of range.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// The clock ticker could not start.
    #[error("could not start the clock ticker: {0}")]
    Clock(#[from] resilience_core::ClockError),
    /// Two limits of one kind were given the same name.
    #[error("two {kind}s are called {name:?}: names must be unique")]
    DuplicateName {
        /// `bulkhead` or `rate limiter`.
        kind: &'static str,
        /// The repeated name.
        name: String,
    },
}

impl resilience_core::Governed for BuildError {
    fn governance(&self) -> resilience_core::GovernanceHash {
        match self {
            BuildError::Governance(mismatch) => mismatch.expected,
            BuildError::Config(err) => resilience_core::Governed::governance(err),
            _ => resilience_core::GovernanceHash::for_process(),
        }
    }
}

/// A control-plane run ended with an error.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ControlError {
    /// A loop panicked; the message is the panic payload when it was a string.
    #[error("control loop {name} panicked: {message}")]
    LoopPanicked {
        /// Which loop.
        name: &'static str,
        /// The panic message.
        message: String,
    },
    /// The driver future was dropped or never run, so shutdown had nothing to wait for.
    #[error("the control-plane driver is not running (was it spawned?)")]
    DriverNotRunning,
}

resilience_core::governed_by_process!(ControlError);

pub(crate) fn invalid(
    field: &'static str,
    value: impl core::fmt::Display,
    expected: &'static str,
) -> ConfigError {
    // ConfigError's constructor is private to core; build the public variant directly.
    ConfigError::Invalid {
        field,
        value: value.to_string(),
        expected,
    }
}
