//! The governance tag (the original's "constitutional hash").
//!
//! Sixteen hex digits that every report, event, record and error carries, and that every component
//! checks against its expected value at start-up. Stored as a `u64`, so stamping it costs nothing.

use core::fmt;
use core::str::FromStr;
use core::sync::atomic::{AtomicU64, Ordering};

// Not `crate::sync`: this is a plain published value, not a protocol for loom to explore.
static PROCESS_TAG: AtomicU64 = AtomicU64::new(GovernanceHash::DEFAULT.as_u64());

/// A 16-hex-digit governance tag.
///
/// # Examples
///
/// ```
/// use resilience_core::GovernanceHash;
///
/// let hash: GovernanceHash = "cdd01ef066bc6cf2".parse()?;
/// assert_eq!(hash, GovernanceHash::DEFAULT);
/// assert_eq!(hash.to_string(), "cdd01ef066bc6cf2");
/// assert!("cdd01ef0".parse::<GovernanceHash>().is_err());
///
/// let other = GovernanceHash::from_u64(0x0123_4567_89ab_cdef);
/// let err = other.ensure_matches(GovernanceHash::DEFAULT, "chaos-engine").unwrap_err();
/// assert_eq!(err.found, other);
/// # Ok::<(), resilience_core::HashParseError>(())
/// ```
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[repr(transparent)]
pub struct GovernanceHash(u64);

impl GovernanceHash {
    /// The default tag, `cdd01ef066bc6cf2`.
    pub const DEFAULT: GovernanceHash = GovernanceHash(0xcdd0_1ef0_66bc_6cf2);

    /// Wraps a raw value.
    pub const fn from_u64(value: u64) -> Self {
        GovernanceHash(value)
    }

    /// The raw value.
    pub const fn as_u64(self) -> u64 {
        self.0
    }

    /// Parses exactly sixteen hex digits (either case).
    ///
    /// # Errors
    ///
    /// [`HashParseError`] naming the value when it is not sixteen hex digits.
    pub fn parse(text: &str) -> Result<Self, HashParseError> {
        let bytes = text.as_bytes();
        if bytes.len() != 16 || !bytes.iter().all(u8::is_ascii_hexdigit) {
            return Err(HashParseError {
                value: text.to_owned(),
            });
        }
        u64::from_str_radix(text, 16)
            .map(GovernanceHash)
            .map_err(|_| HashParseError {
                value: text.to_owned(),
            })
    }

    /// The tag of this process: what errors report through [`Governed`] when the component that
    /// raised them does not carry a tag of its own. [`GovernanceHash::DEFAULT`] until a tag is
    /// [declared](GovernanceHash::declare_for_process); the control plane declares its tag when
    /// it is built, after every component was checked against it.
    ///
    /// # Examples
    ///
    /// ```
    /// use resilience_core::GovernanceHash;
    ///
    /// assert_eq!(GovernanceHash::for_process(), GovernanceHash::DEFAULT);
    /// ```
    pub fn for_process() -> GovernanceHash {
        GovernanceHash(PROCESS_TAG.load(Ordering::Relaxed))
    }

    /// Makes this the tag of this process (see [`for_process`](GovernanceHash::for_process)).
    /// A process runs under one tag; the last declaration wins.
    pub fn declare_for_process(self) {
        PROCESS_TAG.store(self.0, Ordering::Relaxed);
    }

    /// Checks this (found) tag against the `expected` one, as every component does at start-up.
    ///
    /// # Errors
    ///
    /// [`GovernanceMismatch`] carrying both values and the component's name.
    pub fn ensure_matches(
        self,
        expected: GovernanceHash,
        component: &'static str,
    ) -> Result<(), GovernanceMismatch> {
        if self == expected {
            Ok(())
        } else {
            Err(GovernanceMismatch {
                component,
                expected,
                found: self,
            })
        }
    }
}

impl Default for GovernanceHash {
    fn default() -> Self {
        GovernanceHash::DEFAULT
    }
}

impl fmt::Display for GovernanceHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:016x}", self.0)
    }
}

impl fmt::Debug for GovernanceHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "GovernanceHash({:016x})", self.0)
    }
}

impl FromStr for GovernanceHash {
    type Err = HashParseError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        GovernanceHash::parse(s)
    }
}

#[cfg(feature = "serde")]
#[cfg_attr(docsrs, doc(cfg(feature = "serde")))]
impl serde::Serialize for GovernanceHash {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

#[cfg(feature = "serde")]
#[cfg_attr(docsrs, doc(cfg(feature = "serde")))]
impl<'de> serde::Deserialize<'de> for GovernanceHash {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = <std::borrow::Cow<'de, str>>::deserialize(d)?;
        GovernanceHash::parse(&text).map_err(serde::de::Error::custom)
    }
}

/// A governance tag that is not sixteen hex digits.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid governance hash {value:?}: expected exactly 16 hex digits, e.g. cdd01ef066bc6cf2")]
pub struct HashParseError {
    /// The rejected text.
    pub value: String,
}

/// A component was configured with a governance tag other than the one expected.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("governance hash mismatch in {component}: expected {expected}, found {found}")]
pub struct GovernanceMismatch {
    /// The component that refused to start.
    pub component: &'static str,
    /// The tag the deployment requires.
    pub expected: GovernanceHash,
    /// The tag the component was configured with.
    pub found: GovernanceHash,
}

/// Anything that carries a governance tag for audit trails: every error type of this workspace
/// (the original's "all exceptions include the constitutional hash"), reports and events.
///
/// An error reports the tag of the component that raised it when it holds one (a
/// [`Rejected`](crate::Rejected) call, a [`GovernanceMismatch`]), otherwise the
/// [process's tag](GovernanceHash::for_process).
///
/// # Examples
///
/// ```
/// use resilience_core::{CircuitBreaker, GovernanceHash, Governed};
///
/// let err = CircuitBreaker::builder("db").fail_max(0).build().unwrap_err();
/// assert_eq!(err.governance(), GovernanceHash::DEFAULT);
/// ```
pub trait Governed {
    /// The governance tag this value carries.
    fn governance(&self) -> GovernanceHash;
}

/// Implements [`Governed`] for error types that report the process's tag.
#[doc(hidden)]
#[macro_export]
macro_rules! governed_by_process {
    ($($ty:ty),+ $(,)?) => {$(
        impl $crate::Governed for $ty {
            fn governance(&self) -> $crate::GovernanceHash {
                $crate::GovernanceHash::for_process()
            }
        }
    )+};
}

impl Governed for GovernanceHash {
    fn governance(&self) -> GovernanceHash {
        *self
    }
}

/// The tag the deployment requires.
impl Governed for GovernanceMismatch {
    fn governance(&self) -> GovernanceHash {
        self.expected
    }
}

governed_by_process!(HashParseError);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_prints_round_trip() {
        for text in ["cdd01ef066bc6cf2", "0000000000000000", "ffffffffffffffff"] {
            assert_eq!(GovernanceHash::parse(text).unwrap().to_string(), text);
        }
        assert_eq!(
            GovernanceHash::parse("CDD01EF066BC6CF2").unwrap(),
            GovernanceHash::DEFAULT
        );
    }

    #[test]
    fn rejects_wrong_shapes_naming_the_value() {
        for bad in [
            "",
            "cdd01ef066bc6cf",
            "cdd01ef066bc6cf20",
            "+dd01ef066bc6cf2",
            "cdd01ef066bc6cfg",
        ] {
            let err = GovernanceHash::parse(bad).unwrap_err();
            assert_eq!(err.value, bad);
            assert!(err.to_string().contains(&format!("{bad:?}")));
        }
    }

    #[test]
    fn mismatch_names_both_values() {
        let found = GovernanceHash::from_u64(1);
        let err = found
            .ensure_matches(GovernanceHash::DEFAULT, "registry")
            .unwrap_err();
        let text = err.to_string();
        assert!(
            text.contains("cdd01ef066bc6cf2") && text.contains("0000000000000001"),
            "{text}"
        );
        assert!(text.contains("registry"));
        assert!(
            GovernanceHash::DEFAULT
                .ensure_matches(GovernanceHash::DEFAULT, "x")
                .is_ok()
        );
    }
}
