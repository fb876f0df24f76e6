//! Decisions: what to ban, for how long, and what never to ban. Pure: the caller supplies the
//! offence history and the clock.

use std::fmt;
use std::net::IpAddr;
use std::str::FromStr;

use ipnet::IpNet;
use serde::{Deserialize, Serialize};

use crate::detect::Overflow;
use crate::enforce::Ports;
use crate::time::Micros;

/// Where a decision came from. The allowlist wins over every one of them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Origin {
    /// A scenario of this host overflowed.
    Local,
    /// An administrator, through `crowdwall decisions add`.
    Manual,
    /// The community hub's consensus blocklist.
    Community,
    /// A CrowdSec Local API that crowdwall follows as a bouncer.
    Crowdsec,
    /// A blocklist feed; the decision's `scenario` names the list (as CrowdSec does).
    Lists,
}

impl Origin {
    /// Every origin, in the order status and counters list them.
    pub const ALL: [Origin; 5] = [
        Origin::Local,
        Origin::Manual,
        Origin::Community,
        Origin::Crowdsec,
        Origin::Lists,
    ];
}

impl Origin {
    pub fn as_str(self) -> &'static str {
        match self {
            Origin::Local => "local",
            Origin::Manual => "manual",
            Origin::Community => "community",
            Origin::Crowdsec => "crowdsec",
            Origin::Lists => "lists",
        }
    }
}

impl fmt::Display for Origin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A name that is no [`Origin`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown origin '{0}'")]
pub struct UnknownOrigin(pub String);

impl FromStr for Origin {
    type Err = UnknownOrigin;
    fn from_str(s: &str) -> Result<Self, UnknownOrigin> {
        match s {
            "local" => Ok(Origin::Local),
            "manual" => Ok(Origin::Manual),
            "community" => Ok(Origin::Community),
            "crowdsec" => Ok(Origin::Crowdsec),
            "lists" => Ok(Origin::Lists),
            _ => Err(UnknownOrigin(s.to_string())),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Decision {
    /// Row id in the store (0 before it is stored).
    pub id: i64,
    /// An address (as a /32 or /128) or a CIDR range.
    pub value: IpNet,
    pub origin: Origin,
    pub scenario: String,
    pub reason: String,
    pub created: Micros,
    pub until: Micros,
    /// The destination ports the ban is limited to; every port when empty.
    #[serde(default, skip_serializing_if = "Ports::is_all")]
    pub ports: Ports,
}

impl Decision {
    /// The value as people write it: a bare address for a single host.
    pub fn value_text(&self) -> String {
        value_text(&self.value)
    }
}

pub fn value_text(net: &IpNet) -> String {
    if net.prefix_len() == net.max_prefix_len() {
        net.addr().to_string()
    } else {
        net.to_string()
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DecideError {
    /// The value is, or covers, an allowlisted address.
    #[error("{value} is allowlisted ({reason}); remove it from [allowlist] cidrs first if you really mean it")]
    Allowlisted { value: String, reason: String },
    #[error("a ban must last more than 0s")]
    ZeroDuration,
}

/// Addresses never banned: loopback, link-local, this host's own, and configured ranges.
#[derive(Debug, Clone, Default)]
pub struct Allowlist {
    fixed: Vec<(IpNet, &'static str)>,
    configured: Vec<IpNet>,
    own: Vec<IpAddr>,
}

impl Allowlist {
    pub fn new(configured: Vec<IpNet>) -> Self {
        let fixed = [
            ("127.0.0.0/8", "loopback"),
            ("::1/128", "loopback"),
            ("169.254.0.0/16", "link-local"),
            ("fe80::/10", "link-local"),
            ("0.0.0.0/32", "unspecified"),
            ("::/128", "unspecified"),
        ]
        .into_iter()
        .filter_map(|(n, why)| n.parse().ok().map(|n| (n, why)))
        .collect();
        Allowlist {
            fixed,
            configured,
            own: Vec::new(),
        }
    }

    /// This host's addresses, refreshed by the daemon (they change with DHCP).
    pub fn set_own(&mut self, own: Vec<IpAddr>) {
        self.own = own;
    }

    pub fn own(&self) -> &[IpAddr] {
        &self.own
    }

    /// Why `net` must not be banned, if it must not: it is, or overlaps, an allowlisted
    /// address or range. A range that merely contains an allowlisted address is refused as a
    /// whole: banning the rest of it is a decision for a person.
    pub fn check(&self, net: &IpNet) -> Option<String> {
        for (a, why) in &self.fixed {
            if overlaps(a, net) {
                return Some(format!("{why} {a}"));
            }
        }
        for a in &self.configured {
            if overlaps(a, net) {
                return Some(format!("configured {a}"));
            }
        }
        for ip in &self.own {
            if net.contains(ip) {
                return Some(format!("own address {ip}"));
            }
        }
        None
    }
}

fn overlaps(a: &IpNet, b: &IpNet) -> bool {
    a.contains(&b.network()) || b.contains(&a.network())
}

/// How long bans last.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BanPolicy {
    pub duration: Micros,
    pub max_duration: Micros,
    pub escalate: bool,
    /// IPv6 offenders are banned with this prefix (128: the address alone).
    pub ipv6_prefix: u8,
}

/// What an offence from `ip` bans: the address, or its IPv6 network when aggregation is on.
/// An aggregated network that would touch the allowlist (this host's own /64, say) falls back
/// to the address alone.
pub fn ban_value(ip: IpAddr, policy: &BanPolicy, allow: &Allowlist) -> IpNet {
    let single = IpNet::from(ip);
    if let IpAddr::V6(v6) = ip {
        if policy.ipv6_prefix < 128 {
            if let Ok(net) = ipnet::Ipv6Net::new(v6, policy.ipv6_prefix) {
                let net = IpNet::V6(net.trunc());
                if allow.check(&net).is_none() {
                    return net;
                }
            }
        }
    }
    single
}

impl BanPolicy {
    /// `base` doubled once per earlier offence, capped at the maximum.
    pub fn escalated(&self, base: Micros, prior_offences: u32) -> Micros {
        if !self.escalate || prior_offences == 0 {
            return base.min(self.max_duration.max(base));
        }
        let factor = 1i64.checked_shl(prior_offences.min(62)).unwrap_or(i64::MAX);
        base.saturating_mul(factor).min(self.max_duration.max(base))
    }
}

/// The decision for a scenario overflow, `prior_offences` being how often this address was
/// banned before (within the forget window).
/// Whole seconds between two event times, each taken down to its second first: a syslog
/// line carries whole seconds and the journal microseconds, and the same attack must read
/// "in 89s" whichever of the two the times came from (truncating the difference gave 88s
/// from the journal and 89s from a replay of the same log).
pub fn span_seconds(first: Micros, last: Micros) -> i64 {
    let s = |t: Micros| t.div_euclid(crate::time::SECOND);
    (s(last) - s(first)).max(0)
}

pub fn from_overflow(
    ov: &Overflow,
    prior_offences: u32,
    policy: &BanPolicy,
    allow: &Allowlist,
    now: Micros,
) -> Result<Decision, DecideError> {
    let value = ban_value(ov.ip, policy, allow);
    if let Some(reason) = allow.check(&value) {
        return Err(DecideError::Allowlisted {
            value: value_text(&value),
            reason,
        });
    }
    // The scenario's own allowlist: named by its rule, as the global one is.
    if let Some(n) = ov.allowlist.iter().find(|n| n.contains(&ov.ip)) {
        return Err(DecideError::Allowlisted {
            value: value_text(&value),
            reason: format!("[scenarios.{}] allowlist {n}", ov.scenario),
        });
    }
    // A scenario may carry its own escalation (a fail2ban jail's `bantime.increment`).
    let own = BanPolicy {
        escalate: ov.escalate.unwrap_or(policy.escalate),
        max_duration: ov.max_ban.unwrap_or(policy.max_duration),
        ..*policy
    };
    let duration = own.escalated(ov.ban.unwrap_or(policy.duration), prior_offences);
    Ok(Decision {
        id: 0,
        value,
        origin: Origin::Local,
        scenario: ov.scenario.clone(),
        reason: format!(
            "{} events from {} in {}s{}",
            ov.events,
            ov.ip,
            span_seconds(ov.first, ov.last),
            if prior_offences > 0 {
                format!(", offence #{}", prior_offences + 1)
            } else {
                String::new()
            }
        ),
        created: now,
        until: now.saturating_add(duration),
        ports: ov.ports.clone(),
    })
}

/// An administrator's ban.
pub fn manual(
    value: IpNet,
    duration: Micros,
    reason: &str,
    allow: &Allowlist,
    now: Micros,
) -> Result<Decision, DecideError> {
    if duration <= 0 {
        return Err(DecideError::ZeroDuration);
    }
    if let Some(why) = allow.check(&value) {
        return Err(DecideError::Allowlisted {
            value: value_text(&value),
            reason: why,
        });
    }
    Ok(Decision {
        id: 0,
        value,
        origin: Origin::Manual,
        scenario: "manual".into(),
        reason: if reason.is_empty() {
            "manual ban".into()
        } else {
            reason.into()
        },
        created: now,
        until: now.saturating_add(duration),
        ports: Ports::all(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::time::SECOND;

    const H: Micros = 3600 * SECOND;

    #[test]
    fn attack_span_reads_the_same_from_the_journal_and_from_syslog() {
        // The journal's times (10.9 s .. 99.1 s) and the same lines' syslog times (10 s ..
        // 99 s): one answer, 89 s.
        let journal = span_seconds(10 * SECOND + 900_000, 99 * SECOND + 100_000);
        let syslog = span_seconds(10 * SECOND, 99 * SECOND);
        assert_eq!((journal, syslog), (89, 89));
        assert_eq!(span_seconds(5 * SECOND, 5 * SECOND + 999_999), 0);
        assert_eq!(span_seconds(9 * SECOND, 3 * SECOND), 0, "never negative");
    }

    fn policy() -> BanPolicy {
        BanPolicy {
            ipv6_prefix: 128,
            duration: 4 * H,
            max_duration: 24 * H,
            escalate: true,
        }
    }

    fn ov(ip: &str) -> Overflow {
        Overflow {
            scenario: "ssh-bruteforce".into(),
            ip: ip.parse().unwrap(),
            first: 0,
            last: 5 * SECOND,
            events: 6,
            ban: None,
            allowlist: vec![],
            ports: Ports::all(),
            escalate: None,
            max_ban: None,
        }
    }

    #[test]
    fn a_scenario_allowlist_spares_only_that_scenario() {
        let allow = Allowlist::new(vec![]);
        let mut o = ov("192.0.2.7");
        o.allowlist = vec!["192.0.2.0/28".parse().unwrap()];
        match from_overflow(&o, 0, &policy(), &allow, 5 * SECOND) {
            Err(DecideError::Allowlisted { reason, .. }) => {
                assert_eq!(reason, "[scenarios.ssh-bruteforce] allowlist 192.0.2.0/28")
            }
            other => panic!("{other:?}"),
        }
        // Outside the range, and the same address for a scenario without the list: banned.
        let mut outside = o.clone();
        outside.ip = "192.0.2.77".parse().unwrap();
        assert!(from_overflow(&outside, 0, &policy(), &allow, 5 * SECOND).is_ok());
        let mut other = ov("192.0.2.7");
        other.scenario = "http-probing".into();
        assert!(from_overflow(&other, 0, &policy(), &allow, 5 * SECOND).is_ok());
    }

    #[test]
    fn a_scenario_escalation_overrides_the_ban_section() {
        let allow = Allowlist::new(vec![]);
        let len = |o: &Overflow, p: &BanPolicy, prior| {
            let d = from_overflow(o, prior, p, &allow, 5 * SECOND).unwrap();
            d.until - d.created
        };
        let flat = BanPolicy {
            escalate: false,
            ..policy()
        };
        let mut o = ov("192.0.2.8");
        o.ban = Some(H);
        assert_eq!(len(&o, &flat, 2), H);
        // A jail with bantime.increment = true escalates though [ban] does not, capped at
        // its own bantime.maxtime.
        o.escalate = Some(true);
        o.max_ban = Some(3 * H);
        assert_eq!(len(&o, &flat, 1), 2 * H);
        assert_eq!(len(&o, &flat, 2), 3 * H);
        // And one with it off stays flat though [ban] escalates.
        o.escalate = Some(false);
        assert_eq!(len(&o, &policy(), 2), H);
    }

    #[test]
    fn escalation_doubles_up_to_the_cap() {
        let p = policy();
        assert_eq!(p.escalated(4 * H, 0), 4 * H);
        assert_eq!(p.escalated(4 * H, 1), 8 * H);
        assert_eq!(p.escalated(4 * H, 2), 16 * H);
        assert_eq!(p.escalated(4 * H, 3), 24 * H);
        assert_eq!(p.escalated(4 * H, 200), 24 * H);
        let flat = BanPolicy {
            ipv6_prefix: 128,
            escalate: false,
            ..p
        };
        assert_eq!(flat.escalated(4 * H, 5), 4 * H);
    }

    #[test]
    fn overflow_gives_a_local_ban() {
        let a = Allowlist::new(vec![]);
        let d = from_overflow(&ov("198.51.100.7"), 1, &policy(), &a, 1000).unwrap();
        assert_eq!(d.origin, Origin::Local);
        assert_eq!(d.value_text(), "198.51.100.7");
        assert_eq!(d.until, 1000 + 8 * H);
        assert!(d.reason.contains("offence #2"));
    }

    #[test]
    fn allowlist_wins_over_every_origin() {
        let mut a = Allowlist::new(vec!["203.0.113.0/24".parse().unwrap()]);
        a.set_own(vec!["198.51.100.1".parse().unwrap()]);
        for ip in [
            "127.0.0.1",
            "::1",
            "169.254.1.1",
            "fe80::1",
            "203.0.113.9",
            "198.51.100.1",
        ] {
            assert!(
                matches!(
                    from_overflow(&ov(ip), 0, &policy(), &a, 0),
                    Err(DecideError::Allowlisted { .. })
                ),
                "{ip}"
            );
            let net = IpNet::from(ip.parse::<IpAddr>().unwrap());
            let e = manual(net, H, "", &a, 0).unwrap_err();
            assert!(e.to_string().contains("allowlisted"), "{e}");
        }
        // a range covering an allowlisted address is refused, one beside it is not.
        assert!(manual("198.51.100.0/24".parse().unwrap(), H, "", &a, 0).is_err());
        assert!(manual("203.0.0.0/16".parse().unwrap(), H, "", &a, 0).is_err());
        assert!(manual("198.51.101.0/24".parse().unwrap(), H, "", &a, 0).is_ok());
        assert!(from_overflow(&ov("192.0.2.1"), 0, &policy(), &a, 0).is_ok());
    }

    #[test]
    fn manual_needs_a_duration() {
        let a = Allowlist::new(vec![]);
        assert_eq!(
            manual("192.0.2.1/32".parse().unwrap(), 0, "", &a, 0),
            Err(DecideError::ZeroDuration)
        );
    }
}

/// `[ban]`: how long offenders are banned.
#[derive(Debug, Clone, PartialEq, Eq, serde::Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct BanSection {
    /// IPv6 attackers are banned with this prefix length (64: their whole /64, since one
    /// host usually has all of it).
    pub ipv6_prefix: u8,
    pub duration: crowdwall_base::Dur,
    pub max_duration: crowdwall_base::Dur,
    pub escalate: bool,
    pub forget_after: crowdwall_base::Dur,
    /// `[ban.ports]`: per origin (`community = [22]`), the ports its bans are limited to
    /// when a decision names none; origins left out are banned on every port.
    pub ports: std::collections::BTreeMap<String, Ports>,
}

impl Default for BanSection {
    fn default() -> Self {
        use crowdwall_base::Dur;
        BanSection {
            ipv6_prefix: 128,
            duration: Dur::secs(4 * 3600),
            max_duration: Dur::secs(7 * 86400),
            escalate: true,
            forget_after: Dur::secs(30 * 86400),
            ports: Default::default(),
        }
    }
}

impl crowdwall_base::Section for BanSection {
    const NAME: &'static str = "ban";
    fn check(&self) -> Result<(), crowdwall_base::SectionError> {
        use crowdwall_base::SectionError;
        if !(32..=128).contains(&self.ipv6_prefix) {
            return Err(SectionError::new(
                "ipv6_prefix",
                "must be 32..=128 (128 bans the address, 64 its /64)",
            ));
        }
        if self.duration.0.is_zero() {
            return Err(SectionError::new("duration", "must be more than 0s"));
        }
        if self.max_duration.0 < self.duration.0 {
            return Err(SectionError::new(
                "max_duration",
                "must be at least ban.duration",
            ));
        }
        for name in self.ports.keys() {
            if name.parse::<Origin>().is_err() {
                let names: Vec<&str> = Origin::ALL.iter().map(|o| o.as_str()).collect();
                return Err(SectionError::new(
                    format!("ports.{name}"),
                    format!("'{name}' is not an origin (origins: {})", names.join(", ")),
                ));
            }
        }
        Ok(())
    }
}

impl BanSection {
    /// The ports `[ban.ports]` limits each origin's bans to (checked: every key an origin).
    pub fn origin_ports(&self) -> Vec<(Origin, Ports)> {
        self.ports
            .iter()
            .filter_map(|(k, v)| k.parse::<Origin>().ok().map(|o| (o, v.clone())))
            .collect()
    }

    pub fn policy(&self) -> BanPolicy {
        BanPolicy {
            duration: self.duration.micros(),
            max_duration: self.max_duration.micros(),
            escalate: self.escalate,
            ipv6_prefix: self.ipv6_prefix,
        }
    }
}

/// `[allowlist]`: what is never banned, whatever the origin.
#[derive(Debug, Clone, PartialEq, Eq, serde::Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AllowlistSection {
    pub cidrs: Vec<crowdwall_base::Net>,
    pub own_addresses: bool,
    /// Drop-in directory: every `*.list` file in it holds addresses or ranges, one a line.
    /// The package writes the installing session's address here, so upgrades never touch it
    /// and the main file stays an untouched conffile.
    pub dir: Option<std::path::PathBuf>,
    /// What `dir` held when the config was loaded (the daemon's config reads it: the engine
    /// reads no files).
    #[serde(skip)]
    pub from_dir: Vec<crowdwall_base::Net>,
}

impl Default for AllowlistSection {
    fn default() -> Self {
        AllowlistSection {
            cidrs: Vec::new(),
            own_addresses: true,
            dir: Some("/etc/crowdwall/allowlist.d".into()),
            from_dir: Vec::new(),
        }
    }
}

impl AllowlistSection {
    /// Configured and drop-in ranges (not the fixed ones, nor this host's addresses).
    pub fn nets(&self) -> Vec<IpNet> {
        self.cidrs
            .iter()
            .chain(&self.from_dir)
            .map(|n| n.0)
            .collect()
    }
}

impl crowdwall_base::Section for AllowlistSection {
    const NAME: &'static str = "allowlist";
    /// Every entry already parsed as an address or range; the drop-in directory is read
    /// (and its lines checked) by the daemon's config.
    fn check(&self) -> Result<(), crowdwall_base::SectionError> {
        Ok(())
    }
}
