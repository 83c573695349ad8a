//! [`BreakerPreset`]: named sets of breakers to create at start-up (the seed's
//! `initialize_core_circuit_breakers()`), chosen by configuration, never by default.

use std::sync::Arc;
use std::time::Duration;

use resilience_core::{
    BreakerConfig, BreakerRegistry, CircuitBreaker, Clock, ConfigError, GovernanceHash,
    RegistryError,
};

/// A named set of breakers, each with settings suited to its service.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum BreakerPreset {
    /// The original system's core services (`core_services` in configuration):
    ///
    /// | service | trips after | first OPEN time | why |
    /// |---|---|---|---|
    /// | `rust_message_bus` | 3 failures | 10 s | on every request: fail fast, probe soon |
    /// | `deliberation_layer` | 5 | 30 s | slow by nature; a few failures are noise |
    /// | `constraint_generation` | 5 | 30 s | as above |
    /// | `vector_search` | 3 | 15 s | cheap to skip, quick to come back |
    /// | `audit_ledger` | 10 | 60 s | must not give up lightly; writes are retried elsewhere |
    /// | `adaptive_governance` | 5 | 30 s | background decisions |
    CoreServices,
}

impl BreakerPreset {
    /// Every preset.
    pub const ALL: [BreakerPreset; 1] = [BreakerPreset::CoreServices];

    /// Its name in configuration.
    pub const fn name(self) -> &'static str {
        match self {
            BreakerPreset::CoreServices => "core_services",
        }
    }

    /// Its breakers, carrying `governance`.
    ///
    /// # Errors
    ///
    /// None in practice (the settings are fixed and valid); typed for the builder's sake.
    pub fn breakers(
        self,
        governance: GovernanceHash,
    ) -> Result<Vec<(String, BreakerConfig)>, ConfigError> {
        let services: &[(&str, u32, u64)] = match self {
            BreakerPreset::CoreServices => &[
                ("rust_message_bus", 3, 10),
                ("deliberation_layer", 5, 30),
                ("constraint_generation", 5, 30),
                ("vector_search", 3, 15),
                ("audit_ledger", 10, 60),
                ("adaptive_governance", 5, 30),
            ],
        };
        services
            .iter()
            .map(|&(name, fail_max, reset)| {
                let config = BreakerConfig::builder()
                    .fail_max(fail_max)
                    .reset_timeout(Duration::from_secs(reset))
                    .governance(governance)
                    .build()?;
                Ok((name.to_owned(), config))
            })
            .collect()
    }
}

impl std::str::FromStr for BreakerPreset {
    type Err = String;

    fn from_str(name: &str) -> Result<Self, String> {
        Self::ALL
            .into_iter()
            .find(|p| p.name() == name)
            .ok_or_else(|| {
                let names: Vec<&str> = Self::ALL.iter().map(|p| p.name()).collect();
                format!("one of {}", names.join(", "))
            })
    }
}

/// Creates the core services' breakers in `registry` (the seed's
/// `initialize_core_circuit_breakers()`); returns them in order. Breakers that exist already
/// with the same settings are returned as they are.
///
/// # Errors
///
/// [`RegistryError`] when one exists with other settings (the first configuration wins).
///
/// # Examples
///
/// ```
/// use resilience_control::presets::initialize_core_circuit_breakers;
/// use resilience_core::BreakerRegistry;
///
/// let registry = BreakerRegistry::new();
/// let breakers = initialize_core_circuit_breakers(&registry)?;
/// assert_eq!(breakers.len(), 6);
/// assert!(registry.get("audit_ledger").is_some());
/// # Ok::<(), resilience_core::RegistryError>(())
/// ```
pub fn initialize_core_circuit_breakers<C: Clock + Clone>(
    registry: &BreakerRegistry<C>,
) -> Result<Vec<Arc<CircuitBreaker<C>>>, RegistryError> {
    registry.preinitialize(BreakerPreset::CoreServices.breakers(registry.governance())?)
}
