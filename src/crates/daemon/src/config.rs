//! Configuration: TOML with every default in one place, unknown keys refused, values checked
//! while parsing so errors carry file:line.

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use ipnet::IpNet;
use serde::{Deserialize, Deserializer};

use crate::detect::{Field, ScenarioSpec};
use crate::parse::EventKind;
use crate::time::{format_duration, from_duration, parse_duration};

/// The commented default file; also what the daemon runs on when no file exists.
pub const EMBEDDED: &str = include_str!("../config/crowdwall.toml");
pub const DEFAULT_PATH: &str = "/etc/crowdwall/crowdwall.toml";

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("{path}: cannot read: {source}")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// Syntax, unknown keys, or a value of the wrong form, with the position toml gives.
    #[error("{path}:{line}:{column}: {message}")]
    Parse {
        path: PathBuf,
        line: usize,
        column: usize,
        message: String,
    },
    /// Values that parse but do not make sense together.
    #[error("{path}: {key}: {message}")]
    Invalid {
        path: PathBuf,
        key: String,
        message: String,
    },
}

/// A duration written as text (`4h`); parsed during deserialisation so a bad one is reported
/// at its line.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct Dur(pub Duration);

impl fmt::Debug for Dur {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&format_duration(self.0))
    }
}

impl<'de> Deserialize<'de> for Dur {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        parse_duration(&s)
            .map(Dur)
            .map_err(serde::de::Error::custom)
    }
}

/// An address or CIDR range; a bare address means a single-address range.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Net(pub IpNet);

impl<'de> Deserialize<'de> for Net {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        parse_net(&s).map(Net).map_err(serde::de::Error::custom)
    }
}

/// Parses `1.2.3.4`, `1.2.3.0/24`, `2001:db8::/48`; IPv4-mapped IPv6 becomes IPv4. Host bits
/// set in a CIDR are an error: `10.0.0.1/8` is more likely a typo than a wish to ban a /8.
pub fn parse_net(s: &str) -> Result<IpNet, String> {
    let s = s.trim();
    let net = if s.contains('/') {
        let n: IpNet = s
            .parse()
            .map_err(|_| format!("'{s}' is not an address or CIDR range"))?;
        if n.trunc() != n {
            return Err(format!(
                "'{s}' has host bits set; did you mean {}?",
                n.trunc()
            ));
        }
        n
    } else {
        let ip: std::net::IpAddr = s
            .parse()
            .map_err(|_| format!("'{s}' is not an address or CIDR range"))?;
        IpNet::from(crate::parse::canonical_ip(ip))
    };
    Ok(match net {
        IpNet::V6(v6) if v6.prefix_len() >= 96 => match v6.network().to_ipv4_mapped() {
            Some(v4) => IpNet::new(v4.into(), v6.prefix_len() - 96).unwrap_or(net),
            None => net,
        },
        other => other,
    })
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DaemonSection {
    pub state_dir: PathBuf,
    pub socket: PathBuf,
}

impl Default for DaemonSection {
    fn default() -> Self {
        DaemonSection {
            state_dir: "/var/lib/crowdwall".into(),
            socket: "/run/crowdwall/crowdwall.sock".into(),
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct JournalSection {
    pub enabled: bool,
    pub matches: Vec<String>,
    pub directory: Option<PathBuf>,
}

impl Default for JournalSection {
    fn default() -> Self {
        JournalSection {
            enabled: true,
            matches: vec![
                "SYSLOG_IDENTIFIER=sshd".into(),
                "SYSLOG_IDENTIFIER=sshd-session".into(),
            ],
            directory: None,
        }
    }
}

impl JournalSection {
    /// The matches as (field, value) pairs; validated at load. `+` becomes `("+", "")`.
    pub fn match_pairs(&self) -> Vec<(String, String)> {
        self.matches
            .iter()
            .filter_map(|m| {
                if m == "+" {
                    Some(("+", ""))
                } else {
                    m.split_once('=')
                }
            })
            .map(|(f, v)| (f.to_string(), v.to_string()))
            .collect()
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum FirewallMode {
    Table,
    Sets,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum FirewallVerdict {
    Drop,
    Reject,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum FirewallHook {
    Input,
    Forward,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum NftFamily {
    Inet,
    Ip,
    Ip6,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct FirewallSection {
    pub mode: FirewallMode,
    pub table: String,
    pub family: NftFamily,
    pub priority: i32,
    pub hooks: Vec<FirewallHook>,
    pub verdict: FirewallVerdict,
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
            mode: FirewallMode::Table,
            table: "crowdwall".into(),
            family: NftFamily::Inet,
            priority: -10,
            hooks: vec![FirewallHook::Input],
            verdict: FirewallVerdict::Drop,
            set_v4: None,
            set_v6: None,
            set_v4_net: None,
            set_v6_net: None,
            readback: Dur(Duration::from_secs(15 * 60)),
        }
    }
}

impl FirewallSection {
    pub fn spec(&self) -> crate::enforce::FirewallSpec {
        use crate::enforce::{FirewallSpec, Mode, TableFamily, Verdict};
        FirewallSpec {
            mode: match self.mode {
                FirewallMode::Table => Mode::Table,
                FirewallMode::Sets => Mode::Sets,
            },
            family: match self.family {
                NftFamily::Inet => TableFamily::Inet,
                NftFamily::Ip => TableFamily::Ip,
                NftFamily::Ip6 => TableFamily::Ip6,
            },
            table: self.table.clone(),
            priority: self.priority,
            input: self.hooks.contains(&FirewallHook::Input),
            forward: self.hooks.contains(&FirewallHook::Forward),
            verdict: match self.verdict {
                FirewallVerdict::Drop => Verdict::Drop,
                FirewallVerdict::Reject => Verdict::Reject,
            },
            set_v4: self.set_v4.clone(),
            set_v6: self.set_v6.clone(),
            set_v4_net: self.set_v4_net.clone(),
            set_v6_net: self.set_v6_net.clone(),
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct BanSection {
    /// IPv6 attackers are banned with this prefix length (64: their whole /64, since one
    /// host usually has all of it).
    pub ipv6_prefix: u8,
    pub duration: Dur,
    pub max_duration: Dur,
    pub escalate: bool,
    pub forget_after: Dur,
}

impl Default for BanSection {
    fn default() -> Self {
        BanSection {
            ipv6_prefix: 128,
            duration: Dur(Duration::from_secs(4 * 3600)),
            max_duration: Dur(Duration::from_secs(7 * 86400)),
            escalate: true,
            forget_after: Dur(Duration::from_secs(30 * 86400)),
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AllowlistSection {
    pub cidrs: Vec<Net>,
    pub own_addresses: bool,
    /// Drop-in directory: every `*.list` file in it holds addresses or ranges, one a line.
    /// The package writes the installing session's address here, so upgrades never touch it
    /// and the main file stays an untouched conffile.
    pub dir: Option<PathBuf>,
    /// What `dir` held when the config was loaded.
    #[serde(skip)]
    pub from_dir: Vec<Net>,
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

/// `[metrics]`: the optional Prometheus endpoint.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct MetricsSection {
    pub enabled: bool,
    pub listen: std::net::SocketAddr,
}

impl Default for MetricsSection {
    fn default() -> Self {
        MetricsSection {
            enabled: false,
            listen: std::net::SocketAddr::from(([127, 0, 0, 1], 9818)),
        }
    }
}

/// `[lockout]`: warn about logged-in SSH sessions the allowlist does not cover.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LockoutSection {
    pub enabled: bool,
    pub utmp: PathBuf,
}

impl Default for LockoutSection {
    fn default() -> Self {
        LockoutSection {
            enabled: true,
            utmp: "/var/run/utmp".into(),
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DetectSection {
    pub max_buckets: usize,
}

impl Default for DetectSection {
    fn default() -> Self {
        DetectSection {
            max_buckets: 100_000,
        }
    }
}

/// One `[scenarios.NAME]` table: every key optional so that it can override a built-in.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ScenarioOverride {
    pub enabled: Option<bool>,
    pub service: Option<String>,
    pub kinds: Option<Vec<KindName>>,
    pub capacity: Option<u32>,
    pub leak: Option<Dur>,
    pub distinct: Option<FieldName>,
    pub blackhole: Option<Dur>,
    pub cancel_on: Option<Vec<KindName>>,
    pub ban: Option<Dur>,
}

#[derive(Debug, Clone, Copy)]
pub struct KindName(pub EventKind);

impl<'de> Deserialize<'de> for KindName {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map(KindName).map_err(serde::de::Error::custom)
    }
}

#[derive(Debug, Clone, Copy)]
pub struct FieldName(pub Field);

impl<'de> Deserialize<'de> for FieldName {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        match s.as_str() {
            "user" => Ok(FieldName(Field::User)),
            "path" => Ok(FieldName(Field::Path)),
            "port" => Ok(FieldName(Field::Port)),
            _ => Err(serde::de::Error::custom(format!(
                "unknown distinct field '{s}' (known: user, path, port)"
            ))),
        }
    }
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    pub daemon: DaemonSection,
    pub journal: JournalSection,
    pub firewall: FirewallSection,
    pub ban: BanSection,
    pub allowlist: AllowlistSection,
    pub detect: DetectSection,
    pub scenarios: BTreeMap<String, ScenarioOverride>,
    /// This host as an agent of a community hub.
    pub community: crate::community::CommunitySection,
    /// `crowdwall hub` (the server); the daemon ignores it.
    pub hub: crate::community::hub::HubSection,
    /// `[[files]]`: log files to follow (none by default).
    pub files: Vec<crate::source::file::FileSpec>,
    /// `[syslog]`: the syslog listener (off by default).
    pub syslog: crate::source::syslog::SyslogSection,
    /// `[nflog]`: packets logged by the admin's rules to an NFLOG group (off by default).
    pub nflog: crate::source::nflog::NflogSection,
    /// User-defined parsers (`[parsers.NAME]`).
    pub parsers: BTreeMap<String, ParserDef>,
    pub api: crate::api::ApiSection,
    pub crowdsec: crate::ingest::crowdsec::CrowdsecSection,
    pub feeds: crate::ingest::feeds::FeedsSection,
    pub metrics: MetricsSection,
    pub lockout: LockoutSection,
    /// Where this config came from, for messages.
    #[serde(skip)]
    pub origin: PathBuf,
}

/// One `[parsers.NAME]` table: a user-defined parser.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ParserDef {
    /// Journal `SYSLOG_IDENTIFIER`s / syslog tags whose entries it takes (file sources name
    /// the parser instead).
    #[serde(default)]
    pub identifiers: Vec<String>,
    /// The `service` of its events (default: the parser's name); scenarios select on it.
    pub service: Option<String>,
    pub rules: Vec<RuleDefToml>,
}

/// One rule of a user-defined parser.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RuleDefToml {
    pub name: Option<String>,
    pub kind: KindName,
    /// Kept with its position so a bad pattern is reported at its line.
    pub pattern: toml::Spanned<String>,
}

fn is_name(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 64
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

/// The built-in scenarios, parameters from CrowdSec's hub defaults (see
/// shared/notes/peers.md). They count attempts, not lines (the sshd parser correlates).
pub fn builtin_scenarios() -> Vec<ScenarioSpec> {
    let s = |n: u64| from_duration(Duration::from_secs(n));
    let mut v = vec![
        ScenarioSpec {
            name: "ssh-bruteforce".into(),
            service: Some("sshd".into()),
            kinds: vec![EventKind::AuthFail],
            capacity: 5,
            leak: s(10),
            distinct: None,
            blackhole: s(60),
            cancel_on: vec![EventKind::Success],
            ban: None,
        },
        ScenarioSpec {
            name: "ssh-slow-bruteforce".into(),
            service: Some("sshd".into()),
            kinds: vec![EventKind::AuthFail],
            capacity: 10,
            leak: s(60),
            distinct: None,
            blackhole: s(60),
            cancel_on: vec![EventKind::Success],
            ban: None,
        },
        ScenarioSpec {
            name: "ssh-user-enum".into(),
            service: Some("sshd".into()),
            kinds: vec![EventKind::InvalidUser],
            capacity: 5,
            leak: s(10),
            distinct: Some(Field::User),
            blackhole: s(60),
            cancel_on: vec![],
            ban: None,
        },
        ScenarioSpec {
            name: "ssh-probing".into(),
            service: Some("sshd".into()),
            kinds: vec![EventKind::Probe],
            capacity: 3,
            leak: s(180),
            distinct: None,
            blackhole: s(60),
            cancel_on: vec![],
            ban: None,
        },
    ];
    v.extend(crate::detect::scenarios::builtin());
    v
}

impl Config {
    /// The embedded default configuration.
    pub fn embedded() -> Result<Config, ConfigError> {
        Config::parse(EMBEDDED, Path::new("<embedded default>"))
    }

    /// Reads `path`; a missing file at the default path means the embedded default.
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        match std::fs::read_to_string(path) {
            Ok(text) => Config::parse(&text, path),
            Err(e)
                if e.kind() == std::io::ErrorKind::NotFound && path == Path::new(DEFAULT_PATH) =>
            {
                Config::embedded()
            }
            Err(source) => Err(ConfigError::Read {
                path: path.to_path_buf(),
                source,
            }),
        }
    }

    pub fn parse(text: &str, path: &Path) -> Result<Config, ConfigError> {
        let mut cfg: Config = toml::from_str(text).map_err(|e| {
            let (line, column) = e.span().map(|s| line_col(text, s.start)).unwrap_or((0, 0));
            ConfigError::Parse {
                path: path.to_path_buf(),
                line,
                column,
                message: e.message().to_string(),
            }
        })?;
        cfg.origin = path.to_path_buf();
        cfg.validate()?;
        cfg.validate_parsers(text)?;
        cfg.allowlist.from_dir = match &cfg.allowlist.dir {
            Some(d) => read_allowlist_dir(d)?,
            None => Vec::new(),
        };
        Ok(cfg)
    }

    /// User-defined parsers: names, bindings, and every pattern compiled; a bad pattern is
    /// reported at its line.
    fn validate_parsers(&self, text: &str) -> Result<(), ConfigError> {
        let builtin: Vec<&str> = crate::parse::BUILTIN.iter().map(|b| b.0).collect();
        let mut ids: BTreeMap<&str, &str> = BTreeMap::new();
        for (name, def) in &self.parsers {
            let key = format!("parsers.{name}");
            if !is_name(name) {
                return Err(self.invalid(key, "name must be 1-64 letters, digits, '-' or '_'"));
            }
            if builtin.contains(&name.as_str()) {
                return Err(self.invalid(
                    key,
                    format!("'{name}' is a built-in parser; choose another name"),
                ));
            }
            if let Some(svc) = &def.service {
                if !is_name(svc) {
                    return Err(self.invalid(
                        format!("{key}.service"),
                        "must be 1-64 letters, digits, '-' or '_'",
                    ));
                }
            }
            if def.rules.is_empty() {
                return Err(self.invalid(format!("{key}.rules"), "needs at least one rule"));
            }
            for id in &def.identifiers {
                if id.is_empty() || id.len() > 128 || id.chars().any(char::is_whitespace) {
                    return Err(self.invalid(
                        format!("{key}.identifiers"),
                        format!("'{id}' is not an identifier (no spaces, 1-128 characters)"),
                    ));
                }
                if let Some(other) = ids.insert(id, name) {
                    return Err(self.invalid(
                        format!("{key}.identifiers"),
                        format!("'{id}' is already bound to parser '{other}'"),
                    ));
                }
            }
            for r in &def.rules {
                if let Err(e) = crate::parse::template::Template::new(r.pattern.get_ref()) {
                    let (line, column) = line_col(text, r.pattern.span().start);
                    return Err(ConfigError::Parse {
                        path: self.origin.clone(),
                        line,
                        column,
                        message: format!("{key}: pattern: {e}"),
                    });
                }
            }
        }
        Ok(())
    }

    /// The user-defined parsers, compiled.
    pub fn user_parsers(&self) -> Result<Vec<crate::parse::user::UserParser>, ConfigError> {
        let mut out = Vec::new();
        for (name, def) in &self.parsers {
            let rules: Vec<crate::parse::user::RuleDef> = def
                .rules
                .iter()
                .map(|r| crate::parse::user::RuleDef {
                    name: r.name.clone(),
                    kind: r.kind.0,
                    pattern: r.pattern.get_ref().clone(),
                })
                .collect();
            let p = crate::parse::user::UserParser::new(
                name,
                def.service.as_deref(),
                &def.identifiers,
                &rules,
            )
            .map_err(|(i, e)| self.invalid(format!("parsers.{name}.rules[{i}]"), e.to_string()))?;
            out.push(p);
        }
        Ok(out)
    }

    fn invalid(&self, key: impl Into<String>, message: impl Into<String>) -> ConfigError {
        ConfigError::Invalid {
            path: self.origin.clone(),
            key: key.into(),
            message: message.into(),
        }
    }

    fn validate(&self) -> Result<(), ConfigError> {
        for (i, m) in self.journal.matches.iter().enumerate() {
            if m == "+" {
                // journalctl's disjunction: one service's matches OR another's.
                let n = self.journal.matches.len();
                if i == 0 || i + 1 == n || self.journal.matches[i - 1] == "+" {
                    return Err(self.invalid(
                        "journal.matches",
                        "'+' must stand between two groups of FIELD=value matches",
                    ));
                }
                continue;
            }
            match m.split_once('=') {
                Some((f, v))
                    if !f.is_empty()
                        && !v.is_empty()
                        && f.bytes()
                            .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit() || b == b'_') => {
                }
                _ => {
                    return Err(self.invalid(
                        "journal.matches",
                        format!("'{m}' is not FIELD=value with an upper-case journal field name"),
                    ))
                }
            }
        }
        let fw = &self.firewall;
        let name_ok = |t: &str| {
            !t.is_empty()
                && t.len() <= 64
                && t.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
        };
        if !name_ok(&fw.table) {
            return Err(self.invalid(
                "firewall.table",
                format!(
                    "'{}' must be 1-64 characters of letters, digits, '_' or '-'",
                    fw.table
                ),
            ));
        }
        for (key, v) in [
            ("firewall.set_v4", &fw.set_v4),
            ("firewall.set_v6", &fw.set_v6),
            ("firewall.set_v4_net", &fw.set_v4_net),
            ("firewall.set_v6_net", &fw.set_v6_net),
        ] {
            if let Some(v) = v {
                if !name_ok(v) {
                    return Err(self.invalid(
                        key,
                        format!("'{v}' must be 1-64 characters of letters, digits, '_' or '-'"),
                    ));
                }
                if fw.mode == FirewallMode::Table {
                    return Err(self.invalid(
                        key,
                        "set names are for mode = \"sets\" (the own table names its sets itself)",
                    ));
                }
            }
        }
        match fw.mode {
            FirewallMode::Table => {
                if fw.family != NftFamily::Inet {
                    return Err(self.invalid(
                        "firewall.family",
                        "the own table is always family inet; family is for mode = \"sets\"",
                    ));
                }
                if fw.hooks.is_empty() {
                    return Err(self.invalid(
                        "firewall.hooks",
                        "needs \"input\", \"forward\" or both (nothing would be filtered)",
                    ));
                }
            }
            FirewallMode::Sets => {
                if fw.set_v4.is_none()
                    && fw.set_v6.is_none()
                    && fw.set_v4_net.is_none()
                    && fw.set_v6_net.is_none()
                {
                    return Err(self.invalid(
                        "firewall",
                        "mode = \"sets\" needs set_v4 and/or set_v6: the sets in your table to fill",
                    ));
                }
                let v4ok = fw.family != NftFamily::Ip6;
                let v6ok = fw.family != NftFamily::Ip;
                if (!v4ok && (fw.set_v4.is_some() || fw.set_v4_net.is_some()))
                    || (!v6ok && (fw.set_v6.is_some() || fw.set_v6_net.is_some()))
                {
                    return Err(self.invalid(
                        "firewall.family",
                        "an ip table holds only IPv4 sets and an ip6 table only IPv6 sets",
                    ));
                }
            }
        }
        if fw.readback.0 < Duration::from_secs(10) {
            return Err(self.invalid("firewall.readback", "must be at least 10s"));
        }
        if !(32..=128).contains(&self.ban.ipv6_prefix) {
            return Err(self.invalid(
                "ban.ipv6_prefix",
                "must be 32..=128 (128 bans the address, 64 its /64)",
            ));
        }
        if self.ban.duration.0.is_zero() {
            return Err(self.invalid("ban.duration", "must be more than 0s"));
        }
        if self.ban.max_duration.0 < self.ban.duration.0 {
            return Err(self.invalid("ban.max_duration", "must be at least ban.duration"));
        }
        if self.detect.max_buckets == 0 {
            return Err(self.invalid("detect.max_buckets", "must be at least 1"));
        }
        if self.daemon.socket.as_os_str().is_empty() || self.daemon.state_dir.as_os_str().is_empty()
        {
            return Err(self.invalid("daemon", "socket and state_dir must not be empty"));
        }
        for (i, f) in self.files.iter().enumerate() {
            f.validate()
                .map_err(|m| self.invalid(format!("files[{i}]"), m))?;
        }
        self.syslog
            .validate()
            .map_err(|m| self.invalid("syslog", m))?;
        self.scenario_specs()?;
        for r in [self.api.check(), self.crowdsec.check(), self.feeds.check()] {
            r.map_err(|(key, message)| self.invalid(key, message))?;
        }
        self.hub
            .validate()
            .map_err(|(key, message)| self.invalid(key, message))?;
        Ok(())
    }

    /// Built-ins with the overrides applied, plus user-defined scenarios; disabled ones left
    /// out.
    pub fn scenario_specs(&self) -> Result<Vec<ScenarioSpec>, ConfigError> {
        let mut specs = builtin_scenarios();
        for (name, o) in &self.scenarios {
            let key = |k: &str| format!("scenarios.{name}.{k}");
            if name.is_empty()
                || !name
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
            {
                return Err(self.invalid(
                    format!("scenarios.{name}"),
                    "name must be letters, digits, '-' or '_'",
                ));
            }
            let idx = match specs.iter().position(|s| &s.name == name) {
                Some(i) => i,
                None => {
                    if o.kinds.is_none() || o.capacity.is_none() {
                        return Err(self.invalid(
                            format!("scenarios.{name}"),
                            format!(
                                "a new scenario needs `kinds` and `capacity` (built-ins: {})",
                                builtin_scenarios()
                                    .iter()
                                    .map(|s| s.name.as_str())
                                    .collect::<Vec<_>>()
                                    .join(", ")
                            ),
                        ));
                    }
                    specs.push(ScenarioSpec {
                        name: name.clone(),
                        service: None,
                        kinds: vec![],
                        capacity: 0,
                        leak: from_duration(Duration::from_secs(10)),
                        distinct: None,
                        blackhole: from_duration(Duration::from_secs(60)),
                        cancel_on: vec![],
                        ban: None,
                    });
                    specs.len() - 1
                }
            };
            let s = &mut specs[idx];
            if let Some(v) = &o.service {
                s.service = Some(v.clone());
            }
            if let Some(v) = &o.kinds {
                if v.is_empty() {
                    return Err(self.invalid(key("kinds"), "must name at least one kind"));
                }
                s.kinds = v.iter().map(|k| k.0).collect();
            }
            if let Some(v) = o.capacity {
                s.capacity = v;
            }
            if let Some(v) = o.leak {
                if v.0.is_zero() {
                    return Err(self.invalid(key("leak"), "must be more than 0s"));
                }
                s.leak = from_duration(v.0);
            }
            if let Some(v) = o.distinct {
                s.distinct = Some(v.0);
            }
            if let Some(v) = o.blackhole {
                s.blackhole = from_duration(v.0);
            }
            if let Some(v) = &o.cancel_on {
                s.cancel_on = v.iter().map(|k| k.0).collect();
            }
            if let Some(v) = o.ban {
                if v.0.is_zero() {
                    return Err(self.invalid(key("ban"), "must be more than 0s"));
                }
                s.ban = Some(from_duration(v.0));
            }
            if o.enabled == Some(false) {
                s.name.clear(); // marked for removal below
            }
        }
        specs.retain(|s| !s.name.is_empty());
        Ok(specs)
    }

    pub fn allowlist_nets(&self) -> Vec<IpNet> {
        self.allowlist
            .cidrs
            .iter()
            .chain(&self.allowlist.from_dir)
            .map(|n| n.0)
            .collect()
    }
}

/// The `*.list` files of an allowlist drop-in directory, in name order: one address or CIDR
/// range a line, `#` starts a comment. A missing directory is empty; a bad line names its
/// file and line.
pub fn read_allowlist_dir(dir: &Path) -> Result<Vec<Net>, ConfigError> {
    let rd = match std::fs::read_dir(dir) {
        Ok(rd) => rd,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(source) => {
            return Err(ConfigError::Read {
                path: dir.to_path_buf(),
                source,
            })
        }
    };
    let mut files: Vec<PathBuf> = rd
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "list"))
        .collect();
    files.sort();
    let mut out = Vec::new();
    for f in files {
        let text = std::fs::read_to_string(&f).map_err(|source| ConfigError::Read {
            path: f.clone(),
            source,
        })?;
        for (i, line) in text.lines().enumerate() {
            let v = line.split('#').next().unwrap_or("").trim();
            if v.is_empty() {
                continue;
            }
            let net = parse_net(v).map_err(|message| ConfigError::Parse {
                path: f.clone(),
                line: i + 1,
                column: 1,
                message: format!("{message} (one address or CIDR range a line)"),
            })?;
            out.push(Net(net));
        }
    }
    Ok(out)
}

/// 1-based line and column of a byte offset.
fn line_col(text: &str, offset: usize) -> (usize, usize) {
    let before = &text[..offset.min(text.len())];
    let line = before.matches('\n').count() + 1;
    let column = before.len() - before.rfind('\n').map(|i| i + 1).unwrap_or(0) + 1;
    (line, column)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<Config, ConfigError> {
        Config::parse(text, Path::new("test.toml"))
    }

    #[test]
    fn embedded_default_parses_and_has_builtins() {
        let c = Config::embedded().unwrap();
        let specs = c.scenario_specs().unwrap();
        assert_eq!(specs.len(), builtin_scenarios().len());
        assert_eq!(c.ban.duration.0.as_secs(), 4 * 3600);
        assert_eq!(c.journal.match_pairs().len(), 2);
    }

    #[test]
    fn unknown_key_is_refused_with_line() {
        let e = parse("[ban]\nduration = \"4h\"\nbogus = 1\n").unwrap_err();
        let msg = e.to_string();
        assert!(msg.starts_with("test.toml:3:"), "{msg}");
        assert!(msg.contains("bogus"), "{msg}");
    }

    #[test]
    fn bad_duration_names_its_line() {
        let e = parse("\n[scenarios.ssh-bruteforce]\nleak = \"10x\"\n").unwrap_err();
        let msg = e.to_string();
        assert!(msg.starts_with("test.toml:3:"), "{msg}");
        assert!(msg.contains("bad unit"), "{msg}");
    }

    #[test]
    fn bad_cidr_and_host_bits() {
        let e = parse("[allowlist]\ncidrs = [\"10.0.0.1/8\"]\n").unwrap_err();
        assert!(e.to_string().contains("did you mean 10.0.0.0/8"), "{e}");
        let e = parse("[allowlist]\ncidrs = [\"nope\"]\n").unwrap_err();
        assert!(e.to_string().starts_with("test.toml:2:"), "{e}");
    }

    #[test]
    fn override_and_disable_and_define() {
        let c = parse(
            "[scenarios.ssh-bruteforce]\ncapacity = 3\n[scenarios.ssh-probing]\nenabled = false\n\
             [scenarios.my-enum]\nkinds = [\"invalid_user\"]\ncapacity = 2\ndistinct = \"user\"\n",
        )
        .unwrap();
        let specs = c.scenario_specs().unwrap();
        let bf = specs.iter().find(|s| s.name == "ssh-bruteforce").unwrap();
        assert_eq!(bf.capacity, 3);
        assert_eq!(
            bf.leak, 10_000_000,
            "untouched keys keep the built-in value"
        );
        assert!(!specs.iter().any(|s| s.name == "ssh-probing"));
        let mine = specs.iter().find(|s| s.name == "my-enum").unwrap();
        assert_eq!(mine.distinct, Some(Field::User));
    }

    #[test]
    fn new_scenario_needs_kinds() {
        let e = parse("[scenarios.mine]\ncapacity = 2\n").unwrap_err();
        assert!(e.to_string().contains("scenarios.mine"), "{e}");
        let e = parse("[scenarios.mine]\nkinds = [\"nope\"]\ncapacity = 1\n").unwrap_err();
        assert!(e.to_string().contains("unknown event kind"), "{e}");
    }

    #[test]
    fn cross_field_checks() {
        let e = parse("[ban]\nduration = \"4h\"\nmax_duration = \"1h\"\n").unwrap_err();
        assert!(e.to_string().contains("ban.max_duration"), "{e}");
        let e = parse("[firewall]\ntable = \"a b\"\n").unwrap_err();
        assert!(e.to_string().contains("firewall.table"), "{e}");
        let e = parse("[journal]\nmatches = [\"sshd\"]\n").unwrap_err();
        assert!(e.to_string().contains("journal.matches"), "{e}");
        for bad in [
            "[\"+\", \"A=b\"]",
            "[\"A=b\", \"+\"]",
            "[\"A=b\", \"+\", \"+\", \"C=d\"]",
        ] {
            let e = parse(&format!("[journal]\nmatches = {bad}\n")).unwrap_err();
            assert!(e.to_string().contains("'+'"), "{e}");
        }
        let ok = parse("[journal]\nmatches = [\"A=b\", \"+\", \"_TRANSPORT=kernel\"]\n").unwrap();
        assert_eq!(
            ok.journal.match_pairs()[1],
            ("+".to_string(), String::new())
        );
    }

    #[test]
    fn user_parser_errors_name_their_line() {
        let ok = parse(
            "[parsers.gitea]\nidentifiers = [\"gitea\"]\n[[parsers.gitea.rules]]\nkind = \"auth_fail\"\npattern = 'Failed login for <user> from <ip>'\n\n[scenarios.gitea-bf]\nservice = \"gitea\"\nkinds = [\"auth_fail\"]\ncapacity = 3\n",
        )
        .unwrap();
        assert_eq!(ok.user_parsers().unwrap().len(), 1);
        let e = parse(
            "[parsers.x]\n[[parsers.x.rules]]\nkind = \"auth_fail\"\npattern = 'no address here'\n",
        )
        .unwrap_err();
        assert!(e.to_string().starts_with("test.toml:4:"), "{e}");
        assert!(e.to_string().contains("<ip>"), "{e}");
        let e =
            parse("[parsers.x]\n[[parsers.x.rules]]\nkind = \"auth_fail\"\npattern = '<ip> ('\n")
                .unwrap_err();
        assert!(e.to_string().starts_with("test.toml:4:"), "{e}");
        let e = parse(
            "[parsers.nginx]\n[[parsers.nginx.rules]]\nkind = \"auth_fail\"\npattern = '<ip>'\n",
        )
        .unwrap_err();
        assert!(e.to_string().contains("built-in"), "{e}");
        let e = parse("[parsers.x]\n[[parsers.x.rules]]\nkind = \"nope\"\npattern = '<ip>'\n")
            .unwrap_err();
        assert!(e.to_string().starts_with("test.toml:3:"), "{e}");
    }

    #[test]
    fn nets_canonicalise() {
        assert_eq!(
            parse_net("::ffff:192.0.2.1").unwrap().to_string(),
            "192.0.2.1/32"
        );
        assert_eq!(
            parse_net("2001:db8::/32").unwrap().to_string(),
            "2001:db8::/32"
        );
        assert!(parse_net("300.1.1.1").is_err());
    }

    #[test]
    fn allowlist_drop_in_dir_is_read_and_bad_lines_name_file_and_line() {
        let d = tempfile::tempdir().unwrap();
        std::fs::write(
            d.path().join("a.list"),
            "# admin\n198.51.100.7\n\n2001:db8::/48 # v6\n",
        )
        .unwrap();
        std::fs::write(d.path().join("ignored.txt"), "not an address\n").unwrap();
        let c = parse(&format!("[allowlist]\ndir = \"{}\"\n", d.path().display())).unwrap();
        let nets: Vec<String> = c.allowlist_nets().iter().map(|n| n.to_string()).collect();
        assert_eq!(nets, ["198.51.100.7/32", "2001:db8::/48"]);
        std::fs::write(d.path().join("b.list"), "10.0.0.1\nnope\n").unwrap();
        let e = parse(&format!("[allowlist]\ndir = \"{}\"\n", d.path().display())).unwrap_err();
        assert!(e.to_string().contains("b.list:2:"), "{e}");
        // a missing directory is an empty one
        let c = parse("[allowlist]\ndir = \"/nonexistent/crowdwall\"\n").unwrap();
        assert!(c.allowlist_nets().is_empty());
    }

    #[test]
    fn metrics_off_and_on_loopback_by_default() {
        let c = Config::embedded().unwrap();
        assert!(!c.metrics.enabled);
        assert!(c.metrics.listen.ip().is_loopback());
        assert!(c.lockout.enabled);
    }
}
