//! Enforcement: from decisions to what the kernel drops.
//!
//! - [`plan`]: pure. Turns active decisions (addresses and CIDR ranges, possibly overlapping,
//!   each with its own expiry) into disjoint [`Element`]s, and diffs two such plans.
//! - [`Firewall`]: the small trait the daemon talks to.
//! - [`netlink`]: the nftables backend (nftnl + mnl), one transaction per call.
//! - [`memory`]: an in-memory backend for pure tests.

pub mod memory;
pub mod netlink;
pub mod plan;

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use serde::Serialize;

use crate::time::Micros;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Family {
    V4,
    V6,
}

/// A closed range of addresses `[first, last]` of one family. IPv4 uses the low 32 bits.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Interval {
    pub family: Family,
    pub first: u128,
    pub last: u128,
}

impl Interval {
    pub fn single(ip: IpAddr) -> Self {
        let (family, v) = addr_to_u128(ip);
        Interval {
            family,
            first: v,
            last: v,
        }
    }

    pub fn from_net(net: &ipnet::IpNet) -> Self {
        let (family, first) = addr_to_u128(net.network());
        let (_, last) = addr_to_u128(net.broadcast());
        Interval {
            family,
            first,
            last,
        }
    }

    pub fn first_addr(&self) -> IpAddr {
        u128_to_addr(self.family, self.first)
    }

    pub fn last_addr(&self) -> IpAddr {
        u128_to_addr(self.family, self.last)
    }

    /// The largest address of the family, where an interval has no exclusive end.
    pub fn family_max(family: Family) -> u128 {
        match family {
            Family::V4 => u32::MAX as u128,
            Family::V6 => u128::MAX,
        }
    }

    pub fn contains(&self, ip: IpAddr) -> bool {
        let (f, v) = addr_to_u128(ip);
        f == self.family && self.first <= v && v <= self.last
    }
}

impl fmt::Display for Interval {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.first == self.last {
            write!(f, "{}", self.first_addr())
        } else {
            write!(f, "{}-{}", self.first_addr(), self.last_addr())
        }
    }
}

pub fn addr_to_u128(ip: IpAddr) -> (Family, u128) {
    match ip {
        IpAddr::V4(v4) => (Family::V4, u32::from(v4) as u128),
        IpAddr::V6(v6) => (Family::V6, u128::from(v6)),
    }
}

pub fn u128_to_addr(family: Family, v: u128) -> IpAddr {
    match family {
        Family::V4 => IpAddr::V4(Ipv4Addr::from(v as u32)),
        Family::V6 => IpAddr::V6(Ipv6Addr::from(v)),
    }
}

/// One element the kernel should hold: a range and the wall-clock time it stops being
/// enforced. The backend turns `expires` into a per-element kernel timeout at send time, so
/// bans expire in the kernel even if the daemon is gone.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Element {
    pub range: Interval,
    pub expires: Micros,
}

/// An element as read back from the kernel.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KernelElement {
    pub range: Interval,
    /// The timeout the element was added with, in milliseconds.
    pub timeout_ms: Option<u64>,
    /// What is left of it, in milliseconds.
    pub expires_ms: Option<u64>,
}

/// Counts per set, for `status`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct SetSizes {
    pub v4: usize,
    pub v6: usize,
}

/// Where the rules hook in. Validated by config.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FirewallSpec {
    /// Table name in family `inet`.
    pub table: String,
    /// Priority of the input base chain (lower runs earlier; filter is 0).
    pub priority: i32,
}

impl Default for FirewallSpec {
    fn default() -> Self {
        FirewallSpec {
            table: "crowdwall".into(),
            priority: -10,
        }
    }
}

/// Errors at the firewall boundary.
#[derive(Debug, thiserror::Error)]
pub enum EnforceError {
    /// The netlink socket itself failed (open, send, receive).
    #[error("netlink {op}: {source}")]
    Io {
        op: &'static str,
        #[source]
        source: std::io::Error,
    },
    /// The kernel refused the transaction; nothing of it was applied.
    #[error("kernel refused {what}: {errno_text} (errno {errno}){}", .message.as_ref().map(|m| format!(": {m}")).unwrap_or_default())]
    Kernel {
        what: String,
        errno: i32,
        errno_text: String,
        /// The extended-ack message, when the kernel gives one.
        message: Option<String>,
    },
    /// A reply that does not parse, or acks that never came.
    #[error("netlink protocol: {0}")]
    Protocol(String),
}

/// The firewall as the daemon sees it. Every call is one atomic transaction: it applies
/// whole or not at all.
pub trait Firewall {
    /// Creates (or re-creates) the table, chain, rules and sets, and makes the sets hold
    /// exactly `elements`. Used at start and to heal.
    fn load(&mut self, elements: &[Element]) -> Result<(), EnforceError>;
    /// Removes `remove`, then adds `add`. An interval in both is refreshed with the new
    /// expiry (delete + add, which works on every kernel).
    fn apply(&mut self, remove: &[Interval], add: &[Element]) -> Result<(), EnforceError>;
    /// Whether the table, chain and both sets are present.
    fn is_intact(&mut self) -> Result<bool, EnforceError>;
    /// The elements the kernel holds now.
    fn list(&mut self) -> Result<Vec<KernelElement>, EnforceError>;
    /// Deletes the table (and so every ban). Not an error when it is absent.
    fn remove(&mut self) -> Result<(), EnforceError>;
}
