//! When does a reported address enter the community blocklist? Pure: takes the reports with
//! their own times and a `now`, does no I/O.
//!
//! The threat is one party posing as many reporters to get a victim blocked everywhere.
//! Enrolment is cheap, networks are not: an address is listed only when reports come from
//! enough distinct agents **and** enough distinct reporter networks (the /24 or /48 each
//! report was pushed from), and a network counts once whatever the number of agents in it.
//! Agents start with half a vote and earn a full one when addresses they reported get listed
//! with others' agreement. The reputation score follows the same rule: it counts networks,
//! not agents, and is 0 until a second network agrees (`scoring_networks`), so one network
//! alone cannot make an address look bad either.

use std::collections::{HashMap, HashSet};
use std::net::IpAddr;
use std::time::Duration;

use ipnet::IpNet;
use serde::Deserialize;

use crowdwall_base::time::{from_duration, Micros, SECOND};
use crowdwall_base::Dur;

/// Consensus parameters (`[hub.consensus]`); the defaults are justified in README.md.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ConsensusSection {
    /// Only reports whose attack ended within this window count towards listing.
    pub window: Dur,
    pub min_agents: usize,
    pub min_networks: usize,
    /// Sum over distinct networks of the best agent weight in each.
    pub min_weight: f64,
    /// Weight of an agent none of whose reports was corroborated yet.
    pub new_agent_weight: f64,
    /// Corroborated reports after which an agent has full weight (1.0).
    pub trusted_after: u32,
    /// New signals one agent may add per hour; the rest are refused and counted.
    pub agent_hourly_cap: u64,
    /// A listing lasts this long after the latest report that supports it.
    pub ttl: Dur,
    /// The reputation score halves for every this long without a new report.
    pub half_life: Dur,
}

impl Default for ConsensusSection {
    fn default() -> Self {
        ConsensusSection {
            window: Dur(Duration::from_secs(24 * 3600)),
            min_agents: 3,
            min_networks: 3,
            min_weight: 1.5,
            new_agent_weight: 0.5,
            trusted_after: 3,
            agent_hourly_cap: 600,
            ttl: Dur(Duration::from_secs(24 * 3600)),
            half_life: Dur(Duration::from_secs(24 * 3600)),
        }
    }
}

/// The parameters in the pipeline's units.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Params {
    pub window: Micros,
    pub min_agents: usize,
    pub min_networks: usize,
    pub min_weight: f64,
    pub new_agent_weight: f64,
    pub trusted_after: u32,
    pub agent_hourly_cap: u64,
    pub ttl: Micros,
    pub half_life: Micros,
}

impl ConsensusSection {
    pub fn params(&self) -> Params {
        Params {
            window: from_duration(self.window.0),
            min_agents: self.min_agents,
            min_networks: self.min_networks,
            min_weight: self.min_weight,
            new_agent_weight: self.new_agent_weight,
            trusted_after: self.trusted_after,
            agent_hourly_cap: self.agent_hourly_cap,
            ttl: from_duration(self.ttl.0),
            half_life: from_duration(self.half_life.0),
        }
    }

    pub(crate) fn validate(&self) -> Result<(), String> {
        if self.min_agents == 0 || self.min_networks == 0 {
            return Err("min_agents and min_networks must be at least 1".into());
        }
        if !(self.new_agent_weight > 0.0 && self.new_agent_weight <= 1.0) {
            return Err("new_agent_weight must be in (0, 1]".into());
        }
        if !(self.min_weight > 0.0 && self.min_weight.is_finite()) {
            return Err("min_weight must be more than 0".into());
        }
        if self.window.0.is_zero() || self.ttl.0.is_zero() || self.half_life.0.is_zero() {
            return Err("window, ttl and half_life must be more than 0s".into());
        }
        Ok(())
    }
}

impl Default for Params {
    fn default() -> Self {
        ConsensusSection::default().params()
    }
}

/// One stored report of an address, as consensus sees it.
#[derive(Debug, Clone, PartialEq)]
pub struct Report {
    pub agent: String,
    /// The reporter's network (/24 or /48 of where the report was pushed from).
    pub net: String,
    /// How many of the agent's reports were corroborated so far.
    pub corroborated: u32,
    /// When the reported attack ended (the report's own time).
    pub last_seen: Micros,
    /// When the hub received the report (delisting discounts reports received before it).
    pub received: Micros,
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Verdict {
    pub listed: bool,
    /// Until when the listing holds (latest supporting report + ttl); 0 when not listed.
    pub until: Micros,
    pub agents: usize,
    pub networks: usize,
    pub weight: f64,
    /// 0-100, decayed by the age of the reports.
    pub score: u8,
}

/// An agent's vote: `new_agent_weight` at first, growing linearly to 1.0 at `trusted_after`
/// corroborated reports.
pub fn agent_weight(corroborated: u32, p: &Params) -> f64 {
    if p.trusted_after == 0 || corroborated >= p.trusted_after {
        return 1.0;
    }
    p.new_agent_weight + (1.0 - p.new_agent_weight) * corroborated as f64 / p.trusted_after as f64
}

/// The network a reporter's address counts as: its /24 (IPv4) or /48 (IPv6).
pub fn reporter_network(ip: IpAddr) -> IpNet {
    let ip = crowdwall_base::canonical_ip(ip);
    let prefix = if ip.is_ipv4() { 24 } else { 48 };
    IpNet::new(ip, prefix)
        .map(|n| n.trunc())
        .unwrap_or(IpNet::from(ip))
}

/// How many distinct reporter networks an address needs before its score is more than 0:
/// two, or `min_networks` if that is lower (a private hub that lists on one network's word
/// may as well score on it). One network, however many agents it holds, is one
/// uncorroborated opinion; scoring it would let whoever holds a /24 make any address
/// "suspicious" to every client that reads the score.
pub fn scoring_networks(p: &Params) -> usize {
    p.min_networks.clamp(1, 2)
}

/// Score 0-100 from a decayed weight sum: one full network is 50, two 75, three 87.
fn score_of(weight: f64) -> u8 {
    (100.0 * (1.0 - 0.5f64.powf(weight.max(0.0))))
        .round()
        .clamp(0.0, 100.0) as u8
}

/// The score of an address whose in-window weight was `weight`, from `networks` distinct
/// reporter networks, at its last report, seen at `now`: what the reputation API shows
/// without re-reading every report.
pub fn score_at(weight: f64, networks: usize, last_seen: Micros, now: Micros, p: &Params) -> u8 {
    if networks < scoring_networks(p) {
        return 0;
    }
    let age = (now - last_seen).max(0) as f64;
    score_of(weight * 0.5f64.powf(age / p.half_life.max(1) as f64))
}

/// Evaluates the reports of one address at `now`. Reports received before an admin's
/// delisting (`delisted_at`) no longer count, so a delisted address needs fresh reports to
/// return.
pub fn evaluate(
    reports: &[Report],
    delisted_at: Option<Micros>,
    now: Micros,
    p: &Params,
) -> Verdict {
    let floor = now - p.window;
    let delisted = delisted_at.unwrap_or(i64::MIN);
    let mut agents = HashSet::new();
    // per network: best weight, best decayed weight, latest report
    let mut nets: HashMap<&str, (f64, f64, Micros)> = HashMap::new();
    for r in reports {
        let w = agent_weight(r.corroborated, p);
        let age = (now - r.last_seen).max(0) as f64;
        let d = w * 0.5f64.powf(age / p.half_life.max(1) as f64);
        if r.last_seen <= floor || r.last_seen > now + 300 * SECOND || r.received <= delisted {
            continue;
        }
        agents.insert(r.agent.as_str());
        let e = nets.entry(r.net.as_str()).or_insert((0.0, 0.0, 0));
        e.0 = e.0.max(w);
        e.1 = e.1.max(d);
        e.2 = e.2.max(r.last_seen);
    }
    let weight: f64 = nets.values().map(|v| v.0).sum();
    let listed = agents.len() >= p.min_agents
        && nets.len() >= p.min_networks
        && weight + 1e-9 >= p.min_weight;
    let latest = nets.values().map(|v| v.2).max().unwrap_or(0);
    Verdict {
        listed,
        until: if listed { latest + p.ttl } else { 0 },
        agents: agents.len(),
        networks: nets.len(),
        weight,
        score: if nets.len() < scoring_networks(p) {
            0
        } else {
            score_of(nets.values().map(|v| v.1).sum())
        },
    }
}

/// Reputation words, as CrowdSec's smoke API uses them.
pub fn reputation(listed: bool, never: bool, score: u8) -> &'static str {
    if never {
        "safe"
    } else if listed {
        "malicious"
    } else if score >= 10 {
        "suspicious"
    } else {
        "unknown"
    }
}

/// Ranges never listed, whatever the reports: addresses that are not a single attacker on
/// the public internet (private, shared, reserved, documentation, loopback, multicast), plus
/// well-known public resolvers (blocking them breaks DNS for everyone) and configured ranges
/// (CDNs: blocking one blocks every site behind it).
#[derive(Debug, Clone)]
pub struct NeverList {
    ranges: Vec<(IpNet, String)>,
}

const BUILTIN_NEVER: &[(&str, &str)] = &[
    ("0.0.0.0/8", "this network"),
    ("10.0.0.0/8", "private"),
    ("100.64.0.0/10", "shared address space (CGNAT)"),
    ("127.0.0.0/8", "loopback"),
    ("169.254.0.0/16", "link-local"),
    ("172.16.0.0/12", "private"),
    ("192.0.0.0/24", "IETF protocol assignments"),
    ("192.0.2.0/24", "documentation"),
    ("192.88.99.0/24", "6to4 relay anycast"),
    ("192.168.0.0/16", "private"),
    ("198.18.0.0/15", "benchmarking"),
    ("198.51.100.0/24", "documentation"),
    ("203.0.113.0/24", "documentation"),
    ("224.0.0.0/4", "multicast"),
    ("240.0.0.0/4", "reserved"),
    ("::/128", "unspecified"),
    ("::1/128", "loopback"),
    ("64:ff9b::/96", "NAT64"),
    ("100::/64", "discard-only"),
    ("2001::/23", "IETF protocol assignments"),
    ("2001:db8::/32", "documentation"),
    ("2002::/16", "6to4"),
    ("fc00::/7", "unique local"),
    ("fe80::/10", "link-local"),
    ("ff00::/8", "multicast"),
    // public DNS resolvers
    ("1.1.1.1/32", "public resolver (Cloudflare)"),
    ("1.0.0.1/32", "public resolver (Cloudflare)"),
    ("8.8.8.8/32", "public resolver (Google)"),
    ("8.8.4.4/32", "public resolver (Google)"),
    ("9.9.9.9/32", "public resolver (Quad9)"),
    ("149.112.112.112/32", "public resolver (Quad9)"),
    ("208.67.222.222/32", "public resolver (OpenDNS)"),
    ("208.67.220.220/32", "public resolver (OpenDNS)"),
    ("2606:4700:4700::1111/128", "public resolver (Cloudflare)"),
    ("2606:4700:4700::1001/128", "public resolver (Cloudflare)"),
    ("2001:4860:4860::8888/128", "public resolver (Google)"),
    ("2001:4860:4860::8844/128", "public resolver (Google)"),
    ("2620:fe::fe/128", "public resolver (Quad9)"),
];

impl NeverList {
    pub fn builtin() -> NeverList {
        NeverList {
            ranges: BUILTIN_NEVER
                .iter()
                .filter_map(|(n, why)| n.parse().ok().map(|n| (n, why.to_string())))
                .collect(),
        }
    }

    /// Adds ranges from a file: one address or CIDR per line, `#` comments. An unreadable
    /// line is an error naming file and line (a never-list silently shorter than meant would
    /// let a CDN be listed).
    pub(crate) fn add_text(&mut self, text: &str, source: &str) -> Result<usize, String> {
        let mut n = 0;
        for (i, line) in text.lines().enumerate() {
            let l = line.split('#').next().unwrap_or("").trim();
            if l.is_empty() {
                continue;
            }
            let net =
                crowdwall_base::parse_net(l).map_err(|e| format!("{source}:{}: {e}", i + 1))?;
            self.ranges.push((net, format!("never-list {source}")));
            n += 1;
        }
        Ok(n)
    }

    /// Why `ip` is never listed, if it is not to be.
    pub fn check(&self, ip: IpAddr) -> Option<&str> {
        let ip = crowdwall_base::canonical_ip(ip);
        self.ranges
            .iter()
            .find(|(n, _)| n.contains(&ip))
            .map(|(_, why)| why.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const H: Micros = 3600 * SECOND;
    const NOW: Micros = 1_800_000_000 * SECOND;

    fn r(agent: &str, net: &str, corroborated: u32, ago: Micros) -> Report {
        Report {
            agent: agent.into(),
            net: net.into(),
            corroborated,
            last_seen: NOW - ago,
            received: NOW - ago,
        }
    }

    #[test]
    fn three_new_agents_from_three_networks_list() {
        let p = Params::default();
        let reps = vec![
            r("a", "20.0.1.0/24", 0, H),
            r("b", "20.0.2.0/24", 0, 2 * H),
            r("c", "20.0.3.0/24", 0, 3 * H),
        ];
        let v = evaluate(&reps, None, NOW, &p);
        assert!(v.listed, "{v:?}");
        assert_eq!((v.agents, v.networks), (3, 3));
        assert_eq!(v.until, NOW - H + p.ttl, "ttl runs from the latest report");
        // two are not enough
        assert!(!evaluate(&reps[..2], None, NOW, &p).listed);
    }

    #[test]
    fn many_agents_in_one_network_count_once() {
        let p = Params::default();
        let reps: Vec<_> = (0..50)
            .map(|i| r(&format!("sybil{i}"), "20.0.9.0/24", 10, H))
            .collect();
        let v = evaluate(&reps, None, NOW, &p);
        assert!(!v.listed);
        assert_eq!((v.agents, v.networks), (50, 1));
        assert!((v.weight - 1.0).abs() < 1e-9, "one network, one vote");
        // ... and with two real networks next to them, still short of three networks
        let mut more = reps.clone();
        more.push(r("x", "20.0.10.0/24", 10, H));
        assert!(!evaluate(&more, None, NOW, &p).listed);
        more.push(r("y", "20.0.11.0/24", 10, H));
        assert!(evaluate(&more, None, NOW, &p).listed);
    }

    #[test]
    fn one_network_scores_nothing_however_many_agents() {
        let p = Params::default();
        // 20 trusted agents in one /24: the weight is one network's, the score none
        let one: Vec<_> = (0..20)
            .map(|i| r(&format!("sybil{i}"), "20.0.9.0/24", 10, 0))
            .collect();
        let v = evaluate(&one, None, NOW, &p);
        assert_eq!((v.agents, v.networks, v.score), (20, 1, 0), "{v:?}");
        assert_eq!(score_at(v.weight, v.networks, NOW, NOW, &p), 0);
        assert_eq!(reputation(false, false, v.score), "unknown");
        // ... which is what a single agent gets
        let single = evaluate(&one[..1], None, NOW, &p);
        assert_eq!(single.score, v.score);
        // a second network makes it count: two new agents are one full vote, 50
        let two = vec![r("a", "20.0.1.0/24", 0, 0), r("b", "20.0.2.0/24", 0, 0)];
        let v2 = evaluate(&two, None, NOW, &p);
        assert_eq!((v2.networks, v2.score), (2, 50), "{v2:?}");
        assert_eq!(score_at(v2.weight, v2.networks, NOW, NOW, &p), 50);
        assert_eq!(reputation(false, false, v2.score), "suspicious");
        // a hub that lists on one network's word also scores on it
        let lone = Params {
            min_networks: 1,
            ..Params::default()
        };
        assert_eq!(scoring_networks(&lone), 1);
        assert_eq!(score_at(1.0, 1, NOW, NOW, &lone), 50);
    }

    #[test]
    fn new_agents_weigh_less_until_corroborated() {
        let p = Params {
            min_weight: 2.0,
            ..Params::default()
        };
        assert_eq!(agent_weight(0, &p), 0.5);
        assert!((agent_weight(1, &p) - (0.5 + 0.5 / 3.0)).abs() < 1e-9);
        assert_eq!(agent_weight(3, &p), 1.0);
        let new = vec![r("a", "n1", 0, H), r("b", "n2", 0, H), r("c", "n3", 0, H)];
        assert!(!evaluate(&new, None, NOW, &p).listed, "3 x 0.5 < 2.0");
        let trusted = vec![r("a", "n1", 5, H), r("b", "n2", 5, H), r("c", "n3", 0, H)];
        assert!(evaluate(&trusted, None, NOW, &p).listed, "1 + 1 + 0.5");
    }

    #[test]
    fn old_reports_fall_out_of_the_window_and_the_score_decays() {
        let p = Params::default();
        let reps = vec![
            r("a", "n1", 5, 25 * H),
            r("b", "n2", 5, 2 * H),
            r("c", "n3", 5, 2 * H),
        ];
        let v = evaluate(&reps, None, NOW, &p);
        assert!(!v.listed, "the first report is outside the 24h window");
        assert_eq!(v.agents, 2);
        let fresh = evaluate(
            &[r("a", "n1", 5, 0), r("b", "n2", 5, 0), r("c", "n3", 5, 0)],
            None,
            NOW,
            &p,
        );
        assert_eq!(fresh.score, 88);
        let day_old = evaluate(
            &[
                r("a", "n1", 5, 23 * H),
                r("b", "n2", 5, 23 * H),
                r("c", "n3", 5, 23 * H),
            ],
            None,
            NOW,
            &p,
        );
        assert!(day_old.score < fresh.score, "{day_old:?}");
        assert_eq!(reputation(false, false, day_old.score), "suspicious");
        assert_eq!(reputation(true, false, 0), "malicious");
        assert_eq!(reputation(true, true, 99), "safe");
        assert_eq!(reputation(false, false, 3), "unknown");
    }

    #[test]
    fn delisting_discounts_earlier_reports() {
        let p = Params::default();
        let reps = vec![
            r("a", "n1", 5, 3 * H),
            r("b", "n2", 5, 3 * H),
            r("c", "n3", 5, H),
        ];
        assert!(evaluate(&reps, None, NOW, &p).listed);
        let v = evaluate(&reps, Some(NOW - 2 * H), NOW, &p);
        assert!(!v.listed);
        assert_eq!(v.agents, 1);
    }

    #[test]
    fn reports_from_the_future_do_not_count() {
        let p = Params::default();
        let reps = vec![r("a", "n1", 5, -H), r("b", "n2", 5, 0), r("c", "n3", 5, 0)];
        assert!(!evaluate(&reps, None, NOW, &p).listed);
    }

    #[test]
    fn reporter_networks() {
        assert_eq!(
            reporter_network("20.1.2.3".parse().unwrap()).to_string(),
            "20.1.2.0/24"
        );
        assert_eq!(
            reporter_network("2001:db8:1:2::5".parse().unwrap()).to_string(),
            "2001:db8:1::/48"
        );
        assert_eq!(
            reporter_network("::ffff:20.1.2.3".parse().unwrap()).to_string(),
            "20.1.2.0/24"
        );
    }

    #[test]
    fn never_lists() {
        let mut n = NeverList::builtin();
        for ip in [
            "10.1.2.3",
            "192.168.1.1",
            "127.0.0.1",
            "::1",
            "192.0.2.7",
            "2001:db8::1",
            "8.8.8.8",
            "100.64.1.1",
            "224.0.0.1",
            "::ffff:10.0.0.1",
        ] {
            assert!(n.check(ip.parse().unwrap()).is_some(), "{ip}");
        }
        assert!(n.check("45.0.0.66".parse().unwrap()).is_none());
        n.add_text("# cdn\n104.16.0.0/13\n\n", "cdn.txt").unwrap();
        assert!(n
            .check("104.17.1.1".parse().unwrap())
            .unwrap()
            .contains("cdn.txt"));
        let e = n.add_text("1.2.3.4\nnope\n", "x.txt").unwrap_err();
        assert!(e.starts_with("x.txt:2:"), "{e}");
    }
}
