//! What `[firewall]` says: where and how the rules hook in, and which sets are filled. The
//! section is this crate's; the daemon's config only holds it.

use std::time::Duration;

use crowdwall_base::{Dur, Section, SectionError};
use crowdwall_engine::enforce::Ports;

/// How the tables and chains are laid out. Validated by config.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    /// crowdwall's own table, chains, sets and counters.
    #[default]
    Table,
    /// Only named sets inside a table the administrator owns; their rules are theirs.
    Sets,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Verdict {
    #[default]
    Drop,
    /// TCP reset for TCP, ICMP(v6) administratively prohibited otherwise.
    Reject,
}

/// nftables table family (set-only mode may point into an `ip` or `ip6` table).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TableFamily {
    #[default]
    Inet,
    Ip,
    Ip6,
}

impl TableFamily {
    pub fn nfproto(self) -> u8 {
        match self {
            TableFamily::Inet => libc::NFPROTO_INET as u8,
            TableFamily::Ip => libc::NFPROTO_IPV4 as u8,
            TableFamily::Ip6 => libc::NFPROTO_IPV6 as u8,
        }
    }
}

/// Where and how the rules hook in. Validated by config.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FirewallSpec {
    pub mode: Mode,
    pub family: TableFamily,
    /// Table name (own table: family inet).
    pub table: String,
    /// Priority of the base chains (lower runs earlier; filter is 0).
    pub priority: i32,
    pub input: bool,
    /// Also filter forwarded traffic (routers, gateways).
    pub forward: bool,
    pub verdict: Verdict,
    /// Set-only mode: the admin's set names.
    pub set_v4: Option<String>,
    pub set_v6: Option<String>,
    pub set_v4_net: Option<String>,
    pub set_v6_net: Option<String>,
    /// The port lists bans are limited to (`[scenarios.*] ports`, `[ban] ports`): the own
    /// table gets sets and a chain for each. Not a `[firewall]` key: the daemon's config
    /// fills it from the sections that name ports.
    pub port_groups: Vec<Ports>,
}

impl Default for FirewallSpec {
    fn default() -> Self {
        FirewallSpec {
            mode: Mode::Table,
            family: TableFamily::Inet,
            table: "crowdwall".into(),
            priority: -10,
            input: true,
            forward: false,
            verdict: Verdict::Drop,
            set_v4: None,
            set_v6: None,
            set_v4_net: None,
            set_v6_net: None,
            port_groups: Vec::new(),
        }
    }
}

/// A base chain crowdwall hooks into (own-table mode).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum FirewallHook {
    Input,
    Forward,
}

/// `[firewall]`.
#[derive(Debug, Clone, PartialEq, Eq, serde::Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct FirewallSection {
    pub mode: Mode,
    pub table: String,
    pub family: TableFamily,
    pub priority: i32,
    pub hooks: Vec<FirewallHook>,
    pub verdict: Verdict,
    pub set_v4: Option<String>,
    pub set_v6: Option<String>,
    pub set_v4_net: Option<String>,
    pub set_v6_net: Option<String>,
    /// How often every set is read back and compared with the store (the backstop behind
    /// netlink events).
    pub readback: Dur,
}

impl Default for FirewallSection {
    fn default() -> Self {
        FirewallSection {
            mode: Mode::Table,
            table: "crowdwall".into(),
            family: TableFamily::Inet,
            priority: -10,
            hooks: vec![FirewallHook::Input],
            verdict: Verdict::Drop,
            set_v4: None,
            set_v6: None,
            set_v4_net: None,
            set_v6_net: None,
            readback: Dur(Duration::from_secs(15 * 60)),
        }
    }
}

impl FirewallSection {
    /// What the backend is opened with.
    pub fn spec(&self) -> FirewallSpec {
        FirewallSpec {
            mode: self.mode,
            family: self.family,
            table: self.table.clone(),
            priority: self.priority,
            input: self.hooks.contains(&FirewallHook::Input),
            forward: self.hooks.contains(&FirewallHook::Forward),
            verdict: self.verdict,
            set_v4: self.set_v4.clone(),
            set_v6: self.set_v6.clone(),
            set_v4_net: self.set_v4_net.clone(),
            set_v6_net: self.set_v6_net.clone(),
            port_groups: Vec::new(),
        }
    }
}

/// Names of tables and sets: 1-64 letters, digits, '_' or '-'.
fn name_ok(t: &str) -> bool {
    !t.is_empty()
        && t.len() <= 64
        && t.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
}

impl Section for FirewallSection {
    const NAME: &'static str = "firewall";

    fn check(&self) -> Result<(), SectionError> {
        let bad_name =
            |v: &str| format!("'{v}' must be 1-64 characters of letters, digits, '_' or '-'");
        if !name_ok(&self.table) {
            return Err(SectionError::new("table", bad_name(&self.table)));
        }
        for (key, v) in [
            ("set_v4", &self.set_v4),
            ("set_v6", &self.set_v6),
            ("set_v4_net", &self.set_v4_net),
            ("set_v6_net", &self.set_v6_net),
        ] {
            if let Some(v) = v {
                if !name_ok(v) {
                    return Err(SectionError::new(key, bad_name(v)));
                }
                if self.mode == Mode::Table {
                    return Err(SectionError::new(
                        key,
                        "set names are for mode = \"sets\" (the own table names its sets itself)",
                    ));
                }
            }
        }
        match self.mode {
            Mode::Table => {
                if self.family != TableFamily::Inet {
                    return Err(SectionError::new(
                        "family",
                        "the own table is always family inet; family is for mode = \"sets\"",
                    ));
                }
                if self.hooks.is_empty() {
                    return Err(SectionError::new(
                        "hooks",
                        "needs \"input\", \"forward\" or both (nothing would be filtered)",
                    ));
                }
            }
            Mode::Sets => {
                if self.set_v4.is_none()
                    && self.set_v6.is_none()
                    && self.set_v4_net.is_none()
                    && self.set_v6_net.is_none()
                {
                    return Err(SectionError::new(
                        "",
                        "mode = \"sets\" needs set_v4 and/or set_v6: the sets in your table to fill",
                    ));
                }
                let v4ok = self.family != TableFamily::Ip6;
                let v6ok = self.family != TableFamily::Ip;
                if (!v4ok && (self.set_v4.is_some() || self.set_v4_net.is_some()))
                    || (!v6ok && (self.set_v6.is_some() || self.set_v6_net.is_some()))
                {
                    return Err(SectionError::new(
                        "family",
                        "an ip table holds only IPv4 sets and an ip6 table only IPv6 sets",
                    ));
                }
            }
        }
        if self.readback.0 < Duration::from_secs(10) {
            return Err(SectionError::new("readback", "must be at least 10s"));
        }
        Ok(())
    }
}
