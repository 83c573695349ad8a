//! [`ChaosHarness`]: a fault table, breakers and an enabled chaos engine for tests, and what
//! [`#[chaos_test]`](crate::chaos_test) starts its scenario with.

use std::sync::Arc;
use std::time::Duration;

use resilience_core::chaos::{ChaosPoint, ErrorCode, FaultTable};
use resilience_core::{BreakerRegistry, CircuitBreaker};

use super::config::ChaosConfig;
use super::engine::{ChaosEngine, ChaosEngineError};
use super::scoped::ScopedChaos;

/// Everything a chaos test needs: the [`FaultTable`] the code under test checks, the
/// [`BreakerRegistry`] its breakers live in, and a [`ChaosEngine`] over both, enabled (a test
/// is never production). Cheap to clone.
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// use resilience_control::chaos::ChaosHarness;
/// use resilience_core::chaos::Fault;
///
/// let chaos = ChaosHarness::new();
/// let payments = chaos.point("payments");
/// let _slow = chaos.engine().inject_latency("payments", Duration::from_millis(100)).scoped()?;
/// assert_eq!(chaos.table().check(payments), Some(Fault::Latency(Duration::from_millis(100))));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone, Debug)]
pub struct ChaosHarness {
    table: Arc<FaultTable>,
    registry: Arc<BreakerRegistry>,
    engine: ChaosEngine,
}

impl ChaosHarness {
    /// A fresh table and registry with an enabled engine (default limits).
    ///
    /// # Panics
    ///
    /// Never with the default settings; they are fixed and valid.
    #[allow(clippy::expect_used)] // fixed, valid settings
    pub fn new() -> Self {
        let table = Arc::new(
            FaultTable::builder()
                .build()
                .expect("the default fault table settings are valid"),
        );
        Self::with(table, Arc::new(BreakerRegistry::new()))
            .expect("a fresh table and registry carry the default governance tag")
    }

    /// An enabled engine over your own `table` and `registry` (the ones your service checks),
    /// so a test injects into the code it exercises.
    ///
    /// # Errors
    ///
    /// [`BuildError`](crate::BuildError) when their governance tags are not the default one.
    pub fn with(
        table: Arc<FaultTable>,
        registry: Arc<BreakerRegistry>,
    ) -> Result<Self, crate::BuildError> {
        let engine = ChaosEngine::builder(table.clone())
            .breakers(registry.clone())
            .config(ChaosConfig::default().enabled(true).production(false))
            .build()?;
        Ok(ChaosHarness {
            table,
            registry,
            engine,
        })
    }

    /// The fault table the code under test checks.
    pub fn table(&self) -> &Arc<FaultTable> {
        &self.table
    }

    /// The breakers.
    pub fn registry(&self) -> &Arc<BreakerRegistry> {
        &self.registry
    }

    /// The engine.
    pub fn engine(&self) -> &ChaosEngine {
        &self.engine
    }

    /// The chaos point of `target`, as the code under test looks it up.
    ///
    /// # Panics
    ///
    /// When the table is full or `target` is not a valid point name: a test's setup error.
    #[allow(clippy::expect_used)] // a test's setup
    pub fn point(&self, target: &str) -> ChaosPoint {
        self.table
            .point(target)
            .unwrap_or_else(|e| panic!("chaos point {target:?}: {e}"))
    }

    /// The breaker named `name`, created with the registry's defaults if new.
    ///
    /// # Panics
    ///
    /// When `name` is not a valid breaker name: a test's setup error.
    pub fn breaker(&self, name: &str) -> Arc<CircuitBreaker> {
        self.registry
            .breaker(name)
            .unwrap_or_else(|e| panic!("breaker {name:?}: {e}"))
    }

    /// Starts the scenario a [`#[chaos_test]`](crate::chaos_test) describes, as a guard that
    /// ends it when dropped, also while the test panics.
    ///
    /// # Errors
    ///
    /// [`ChaosEngineError`] when the engine refuses it (the macro turns that into a panic
    /// naming the scenario).
    #[doc(hidden)]
    pub fn start_test_scenario(
        &self,
        fault: TestFault,
        target: &str,
        name: &str,
        duration: Option<Duration>,
        rate: Option<f64>,
    ) -> Result<ScopedChaos, ChaosEngineError> {
        let engine = &self.engine;
        let mut injection = match fault {
            TestFault::Latency(delay) => engine.inject_latency(target, delay),
            TestFault::Errors { rate, code } => engine.inject_errors(target, rate, ErrorCode(code)),
            TestFault::Timeouts(after) => engine.inject_timeouts(target, after),
            TestFault::Partition => engine.partition(target),
            TestFault::ForceOpen => {
                // The breaker must exist to be forced open.
                let _ = self.registry.breaker(target);
                engine.force_circuit_open(target)
            }
        }
        .name(name);
        if let Some(duration) = duration {
            injection = injection.duration(duration);
        }
        if let Some(rate) = rate {
            injection = injection.rate(rate);
        }
        injection.scoped()
    }
}

impl Default for ChaosHarness {
    fn default() -> Self {
        Self::new()
    }
}

/// The fault a [`#[chaos_test]`](crate::chaos_test) injects.
#[doc(hidden)]
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum TestFault {
    /// `latency = "100ms"`.
    Latency(Duration),
    /// `errors = 0.5` (with `code`, default 503).
    Errors {
        /// Share of calls.
        rate: f64,
        /// Error code.
        code: u16,
    },
    /// `timeout = "2s"`.
    Timeouts(Duration),
    /// `partition`.
    Partition,
    /// `force_open`.
    ForceOpen,
}
