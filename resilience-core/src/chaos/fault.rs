//! What a chaos scenario injects ([`FaultSpec`]) and what a check hands back ([`Fault`]).

use core::fmt;
use core::time::Duration;

/// An error code the caller maps to its own error type (e.g. 503, or an enum discriminant).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ErrorCode(pub u16);

/// A resource that a [`FaultSpec::ResourceExhaustion`] scenario starves.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[non_exhaustive]
pub enum Resource {
    /// CPU time.
    Cpu,
    /// Memory.
    Memory,
    /// Connections (pool slots, sockets).
    Connections,
    /// Disk bandwidth.
    DiskIo,
    /// Network bandwidth.
    NetworkBandwidth,
}

impl Resource {
    /// Every resource, in declaration order.
    pub const ALL: [Resource; 5] = [
        Resource::Cpu,
        Resource::Memory,
        Resource::Connections,
        Resource::DiskIo,
        Resource::NetworkBandwidth,
    ];

    /// Upper-case name, as in the original (`CPU`, `DISK_IO`, ...).
    pub const fn as_str(self) -> &'static str {
        match self {
            Resource::Cpu => "CPU",
            Resource::Memory => "MEMORY",
            Resource::Connections => "CONNECTIONS",
            Resource::DiskIo => "DISK_IO",
            Resource::NetworkBandwidth => "NETWORK_BANDWIDTH",
        }
    }

    pub(crate) const fn code(self) -> u64 {
        self as u64
    }

    pub(crate) const fn from_code(code: u64) -> Resource {
        match code {
            0 => Resource::Cpu,
            1 => Resource::Memory,
            2 => Resource::Connections,
            3 => Resource::DiskIo,
            _ => Resource::NetworkBandwidth,
        }
    }
}

impl fmt::Display for Resource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What a scenario injects at the points in its blast radius.
#[derive(Clone, Copy, Debug, PartialEq)]
#[non_exhaustive]
pub enum FaultSpec {
    /// Delay the call by this much (0 to the table's latency limit, 5 s by default).
    Latency(Duration),
    /// Fail the call with this code.
    Error(ErrorCode),
    /// Behave as if the call timed out after this long.
    Timeout(Duration),
    /// Behave as if the dependency's circuit breaker were open.
    BreakerOpen,
    /// Starve a resource at `level` in (0, 1]; the check reports the marker, the control plane
    /// does the starving.
    ResourceExhaustion {
        /// Which resource.
        resource: Resource,
        /// How much of it, as a share.
        level: f64,
    },
    /// Make the dependency unreachable.
    Partition,
}

impl FaultSpec {
    /// The kind's name, as in the original (`LATENCY`, `ERROR`, ...).
    pub const fn kind(&self) -> FaultKind {
        match self {
            FaultSpec::Latency(_) => FaultKind::Latency,
            FaultSpec::Error(_) => FaultKind::Error,
            FaultSpec::Timeout(_) => FaultKind::Timeout,
            FaultSpec::BreakerOpen => FaultKind::BreakerOpen,
            FaultSpec::ResourceExhaustion { .. } => FaultKind::ResourceExhaustion,
            FaultSpec::Partition => FaultKind::Partition,
        }
    }
}

/// The kinds of fault, in the order a check tries them when several scenarios cover one point:
/// the ones that end a call come first, so e.g. 10% errors on top of 100% latency give 10%
/// errors and 90% slow successes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[repr(u8)]
#[non_exhaustive]
pub enum FaultKind {
    /// [`Fault::Partition`].
    Partition = 1,
    /// [`Fault::BreakerOpen`].
    BreakerOpen = 2,
    /// [`Fault::Timeout`].
    Timeout = 3,
    /// [`Fault::Error`].
    Error = 4,
    /// [`Fault::ResourceExhausted`].
    ResourceExhaustion = 5,
    /// [`Fault::Latency`].
    Latency = 6,
}

impl FaultKind {
    /// Every kind, in check order.
    pub const ALL: [FaultKind; 6] = [
        FaultKind::Partition,
        FaultKind::BreakerOpen,
        FaultKind::Timeout,
        FaultKind::Error,
        FaultKind::ResourceExhaustion,
        FaultKind::Latency,
    ];

    /// Upper-case name, as in the original's `ChaosType` (`LATENCY`, `CIRCUIT_BREAKER`, ...).
    pub const fn as_str(self) -> &'static str {
        match self {
            FaultKind::Partition => "NETWORK_PARTITION",
            FaultKind::BreakerOpen => "CIRCUIT_BREAKER",
            FaultKind::Timeout => "TIMEOUT",
            FaultKind::Error => "ERROR",
            FaultKind::ResourceExhaustion => "RESOURCE_EXHAUSTION",
            FaultKind::Latency => "LATENCY",
        }
    }

    pub(crate) const fn index(self) -> usize {
        self as usize - 1
    }
}

impl fmt::Display for FaultKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A fault to apply to one call, from [`FaultTable::check`](super::FaultTable::check).
#[derive(Clone, Copy, Debug, PartialEq)]
#[non_exhaustive]
pub enum Fault {
    /// Delay the call by this much, then make it.
    Latency(Duration),
    /// Fail the call with this code.
    Error(ErrorCode),
    /// Fail the call as timed out, after this long.
    Timeout(Duration),
    /// Reject the call as if its breaker were open.
    BreakerOpen,
    /// The call should find this resource exhausted.
    ResourceExhausted(Resource),
    /// The dependency is unreachable.
    Partition,
}

impl Fault {
    /// This fault's kind.
    pub const fn kind(&self) -> FaultKind {
        match self {
            Fault::Latency(_) => FaultKind::Latency,
            Fault::Error(_) => FaultKind::Error,
            Fault::Timeout(_) => FaultKind::Timeout,
            Fault::BreakerOpen => FaultKind::BreakerOpen,
            Fault::ResourceExhausted(_) => FaultKind::ResourceExhaustion,
            Fault::Partition => FaultKind::Partition,
        }
    }
}

/// Packing of a spec into one `u64` for the data path: `param:32 | resource:8 | kind:8`.
/// Latency and timeout are whole milliseconds (the limit validated at arming is far below 2^32),
/// the error code sits in the low 16 bits of `param`.
pub(crate) mod packed {
    use super::*;

    pub(crate) fn pack(spec: &FaultSpec) -> u64 {
        let (param, resource) = match *spec {
            FaultSpec::Latency(d) | FaultSpec::Timeout(d) => (d.as_millis() as u64, 0),
            FaultSpec::Error(ErrorCode(code)) => (u64::from(code), 0),
            FaultSpec::ResourceExhaustion { resource, .. } => (0, resource.code()),
            FaultSpec::BreakerOpen | FaultSpec::Partition => (0, 0),
        };
        (param << 16) | (resource << 8) | spec.kind() as u64
    }

    /// The fault a packed spec injects; `None` for an empty entry.
    #[inline]
    pub(crate) fn unpack(word: u64) -> Option<Fault> {
        let param = word >> 16;
        Some(match word & 0xff {
            1 => Fault::Partition,
            2 => Fault::BreakerOpen,
            3 => Fault::Timeout(Duration::from_millis(param)),
            4 => Fault::Error(ErrorCode(param as u16)),
            5 => Fault::ResourceExhausted(Resource::from_code((word >> 8) & 0xff)),
            6 => Fault::Latency(Duration::from_millis(param)),
            _ => return None,
        })
    }

    pub(crate) fn kind_code(word: u64) -> u64 {
        word & 0xff
    }
}
