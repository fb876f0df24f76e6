//! Enforcement: from decisions to what the kernel drops.
//!
//! - [`plan`]: pure. Turns active decisions (addresses and CIDR ranges, possibly overlapping,
//!   each with its own expiry) into disjoint [`Element`]s, and diffs two such plans.
//! - [`Firewall`]: the small trait the daemon talks to, and the [`Layout`] of sets a backend
//!   fills. The nftables backend is the `crowdwall-nft` crate.
//! - [`memory`]: an in-memory backend for pure tests.

pub mod memory;
pub mod plan;

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use serde::Serialize;

use crate::decide::Origin;
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
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, serde::Deserialize)]
pub struct SetSizes {
    pub v4: usize,
    pub v6: usize,
}

/// Index of a kernel set in a [`Layout`].
pub type SetIx = u16;

/// The destination ports a ban is limited to, sorted and without repeats; empty means every
/// port, the default (fail2ban's `nftables-allports`; a list is its `nftables-multiport`).
/// A port-limited ban drops TCP and UDP to those ports and lets the source reach the rest.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(transparent)]
pub struct Ports(Vec<u16>);

/// More ports than this in one list is a configuration mistake (each port is a rule in the
/// kernel's hook chain); a service has a handful.
pub const MAX_PORTS: usize = 32;

impl Ports {
    /// Every port, as a constant (for a `static`).
    pub const ALL: Ports = Ports(Vec::new());

    /// Every port.
    pub fn all() -> Ports {
        Ports::ALL
    }

    /// A list as written in the config or the store; refuses port 0 and overlong lists.
    pub fn new(mut v: Vec<u16>) -> Result<Ports, String> {
        if v.contains(&0) {
            return Err("port 0 is not a port (ports are 1..=65535)".into());
        }
        v.sort_unstable();
        v.dedup();
        if v.len() > MAX_PORTS {
            return Err(format!(
                "{} ports: at most {MAX_PORTS} in one list (leave `ports` out to ban every port)",
                v.len()
            ));
        }
        Ok(Ports(v))
    }

    /// The store's form, `22,2222` (empty for every port).
    pub fn parse(text: &str) -> Result<Ports, String> {
        if text.trim().is_empty() {
            return Ok(Ports::all());
        }
        let v = text
            .split(',')
            .map(|p| {
                p.trim()
                    .parse::<u16>()
                    .map_err(|_| format!("'{p}' is not a port number"))
            })
            .collect::<Result<Vec<u16>, String>>()?;
        Ports::new(v)
    }

    pub fn is_all(&self) -> bool {
        self.0.is_empty()
    }

    pub fn as_slice(&self) -> &[u16] {
        &self.0
    }

    /// `22,2222`, or the empty string for every port (the store's form).
    pub fn to_list(&self) -> String {
        let v: Vec<String> = self.0.iter().map(|p| p.to_string()).collect();
        v.join(",")
    }
}

impl fmt::Display for Ports {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.0.is_empty() {
            f.write_str("all ports")
        } else {
            write!(f, "port {}", self.to_list())
        }
    }
}

impl<'de> serde::Deserialize<'de> for Ports {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let v = Vec::<u16>::deserialize(d)?;
        Ports::new(v).map_err(serde::de::Error::custom)
    }
}

/// One kernel set the backend fills.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SetDef {
    pub name: String,
    pub family: Family,
    /// Interval sets hold ranges (and may hold single addresses); hash sets only addresses.
    pub interval: bool,
    /// The origin whose decisions it holds (own-table mode; None for the admin's sets).
    pub origin: Option<Origin>,
    /// The ports its bans are limited to (every port for most sets).
    pub ports: Ports,
}

/// Which kernel set each decision goes to. Own-table mode has one hash set (addresses) and one
/// interval set (ranges) per origin and family, so each origin has its own drop counter and a
/// single-address change never touches an interval set (whose kernel cost grows with its
/// size); and the same four again per origin for every port list bans are limited to.
/// Set-only mode routes every origin to the admin's one or two sets per family, which hold
/// no ports: a port-limited ban there covers every port (stricter, never looser).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Layout {
    pub sets: Vec<SetDef>,
    /// The port lists with sets of their own; a decision's list is looked up here, index + 1
    /// being its group (group 0: every port).
    pub port_groups: Vec<Ports>,
    /// `[group][origin][family][single]` -> set.
    routes: Vec<[[[Option<SetIx>; 2]; 2]; 5]>,
}

fn origin_ix(o: Origin) -> usize {
    Origin::ALL.iter().position(|x| *x == o).unwrap_or(0)
}

fn family_ix(f: Family) -> usize {
    match f {
        Family::V4 => 0,
        Family::V6 => 1,
    }
}

impl Layout {
    /// Own table: `<origin>_v4`, `<origin>_v6` (hash) and `<origin>_v4_net`, `<origin>_v6_net`
    /// (interval) for every origin.
    pub fn own() -> Layout {
        Layout::own_with_ports(&[])
    }

    /// Own table, plus `<origin>_p<N>_v4` (and the other three) for the N-th port list, for
    /// bans limited to those ports. Empty lists and repeats are ignored.
    pub fn own_with_ports(groups: &[Ports]) -> Layout {
        let mut port_groups: Vec<Ports> = Vec::new();
        for g in groups {
            if !g.is_all() && !port_groups.contains(g) {
                port_groups.push(g.clone());
            }
        }
        port_groups.sort();
        let mut sets = Vec::new();
        let mut routes = vec![[[[None; 2]; 2]; 5]; port_groups.len() + 1];
        for (gi, ports) in std::iter::once(Ports::all())
            .chain(port_groups.iter().cloned())
            .enumerate()
        {
            for o in Origin::ALL {
                for f in [Family::V4, Family::V6] {
                    for single in [true, false] {
                        let fam = match f {
                            Family::V4 => "v4",
                            Family::V6 => "v6",
                        };
                        let group = if gi == 0 {
                            String::new()
                        } else {
                            format!("_p{gi}")
                        };
                        let net = if single { "" } else { "_net" };
                        routes[gi][origin_ix(o)][family_ix(f)][single as usize] =
                            Some(sets.len() as SetIx);
                        sets.push(SetDef {
                            name: format!("{o}{group}_{fam}{net}"),
                            family: f,
                            interval: !single,
                            origin: Some(o),
                            ports: ports.clone(),
                        });
                    }
                }
            }
        }
        Layout {
            sets,
            port_groups,
            routes,
        }
    }

    /// Set-only mode: every origin into the admin's sets. `v4`/`v6` take addresses (and
    /// ranges when they are interval sets); `v4_net`/`v6_net`, when given, take ranges.
    pub fn shared(
        v4: Option<SetDef>,
        v6: Option<SetDef>,
        v4_net: Option<SetDef>,
        v6_net: Option<SetDef>,
    ) -> Layout {
        let mut sets = Vec::new();
        let mut routes = [[[None; 2]; 2]; 5];
        let mut put = |d: Option<SetDef>, f: Family, singles: bool, ranges: bool| {
            let Some(d) = d else { return };
            let ix = sets.len() as SetIx;
            for per_origin in routes.iter_mut() {
                if singles {
                    per_origin[family_ix(f)][1] = Some(ix);
                }
                if ranges && d.interval {
                    per_origin[family_ix(f)][0] = Some(ix);
                }
            }
            sets.push(d);
        };
        let (n4, n6) = (v4_net.is_some(), v6_net.is_some());
        put(v4, Family::V4, true, !n4);
        put(v6, Family::V6, true, !n6);
        put(v4_net, Family::V4, false, true);
        put(v6_net, Family::V6, false, true);
        Layout {
            sets,
            port_groups: Vec::new(),
            routes: vec![routes],
        }
    }

    /// The set a decision of `origin` on `range` goes to; None when no set can hold it (a
    /// range in set-only mode without an interval set).
    pub fn route(&self, origin: Origin, range: &Interval) -> Option<SetIx> {
        self.route_ports(origin, &Ports::all(), range)
    }

    /// Like [`Layout::route`] for a ban limited to `ports`. A list without sets of its own
    /// (set-only mode; a list configured after the table was built) goes to the every-port
    /// sets: a ban may reach further than asked, never less far.
    pub fn route_ports(&self, origin: Origin, ports: &Ports, range: &Interval) -> Option<SetIx> {
        let single = range.first == range.last;
        let group = if ports.is_all() {
            0
        } else {
            self.port_groups
                .iter()
                .position(|g| g == ports)
                .map_or(0, |i| i + 1)
        };
        self.routes.get(group)?[origin_ix(origin)][family_ix(range.family)][single as usize]
    }

    /// Whether a ban limited to `ports` gets exactly those ports here.
    pub fn has_ports(&self, ports: &Ports) -> bool {
        ports.is_all() || self.port_groups.contains(ports)
    }

    pub fn set(&self, ix: SetIx) -> Option<&SetDef> {
        self.sets.get(ix as usize)
    }

    pub fn index_of(&self, name: &str) -> Option<SetIx> {
        self.sets
            .iter()
            .position(|s| s.name == name)
            .map(|i| i as SetIx)
    }
}

/// What one transaction changes in one set.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SetChange {
    pub set: SetIx,
    /// Removed first; an interval in both lists is thereby refreshed with its new timeout
    /// (re-adding alone is ignored by kernels before 6.12).
    pub remove: Vec<Interval>,
    pub add: Vec<Element>,
}

/// Dropped traffic of one origin's named counter.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, serde::Deserialize)]
pub struct DropCounter {
    pub origin: String,
    pub packets: u64,
    pub bytes: u64,
}

/// What someone else did to our objects, as told by nftables' netlink events.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Drift {
    /// The table, a chain, rule, set or counter went away: rebuild everything.
    pub rebuild: bool,
    /// Elements deleted from our sets.
    pub deleted: Vec<(SetIx, Vec<Interval>)>,
    /// Events were lost (the listener's buffer overflowed): the kernel must be read back.
    pub lost: bool,
    /// We were not listening for a moment (during a big transaction of our own): check the
    /// objects are intact.
    pub check: bool,
}

impl Drift {
    pub fn is_empty(&self) -> bool {
        !self.rebuild && !self.lost && !self.check && self.deleted.is_empty()
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
    /// The configured objects cannot be used as they are (set-only mode: a missing set, a
    /// set without timeouts).
    #[error("{0}")]
    Setup(String),
}

/// The firewall as the daemon sees it. Every call that changes something is one atomic
/// transaction: it applies whole or not at all.
pub trait Firewall {
    /// The sets this backend fills and how decisions are routed to them.
    fn layout(&self) -> &Layout;
    /// Creates (or re-creates) what this backend owns and makes every set hold exactly
    /// `sets[i]` (indexed like the layout). Used at start and to heal.
    fn load(&mut self, sets: &[Vec<Element>]) -> Result<(), EnforceError>;
    /// Applies the changes, all sets in one transaction.
    fn apply(&mut self, changes: &[SetChange]) -> Result<(), EnforceError>;
    /// Whether every object this backend relies on is present.
    fn is_intact(&mut self) -> Result<bool, EnforceError>;
    /// The elements one set holds now.
    fn list(&mut self, set: SetIx) -> Result<Vec<KernelElement>, EnforceError>;
    /// Dropped packets and bytes per origin (own-table mode; empty otherwise).
    fn counters(&mut self) -> Result<Vec<DropCounter>, EnforceError>;
    /// What others changed since the last call (netlink events); empty for backends that
    /// cannot tell.
    fn drift(&mut self) -> Result<Drift, EnforceError> {
        Ok(Drift::default())
    }
    /// A descriptor that turns readable when [`Firewall::drift`] has something to say.
    fn event_fd(&self) -> Option<std::os::fd::RawFd> {
        None
    }
    /// Deletes what this backend owns (own table: the table; set-only mode: the sets'
    /// elements). Not an error when it is absent.
    fn remove(&mut self) -> Result<(), EnforceError>;
}
