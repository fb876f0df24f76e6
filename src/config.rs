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
    /// The matches as (field, value) pairs; validated at load.
    pub fn match_pairs(&self) -> Vec<(String, String)> {
        self.matches
            .iter()
            .filter_map(|m| m.split_once('='))
            .map(|(f, v)| (f.to_string(), v.to_string()))
            .collect()
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct FirewallSection {
    pub table: String,
    pub priority: i32,
}

impl Default for FirewallSection {
    fn default() -> Self {
        FirewallSection {
            table: "crowdwall".into(),
            priority: -10,
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct BanSection {
    pub duration: Dur,
    pub max_duration: Dur,
    pub escalate: bool,
    pub forget_after: Dur,
}

impl Default for BanSection {
    fn default() -> Self {
        BanSection {
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
            _ => Err(serde::de::Error::custom(format!(
                "unknown distinct field '{s}' (known: user)"
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
    pub metrics: MetricsSection,
    pub lockout: LockoutSection,
    /// Where this config came from, for messages.
    #[serde(skip)]
    pub origin: PathBuf,
}

/// The built-in scenarios, parameters from CrowdSec's hub defaults (see
/// shared/notes/peers.md). They count attempts, not lines (the sshd parser correlates).
pub fn builtin_scenarios() -> Vec<ScenarioSpec> {
    let s = |n: u64| from_duration(Duration::from_secs(n));
    vec![
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
    ]
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
        cfg.allowlist.from_dir = match &cfg.allowlist.dir {
            Some(d) => read_allowlist_dir(d)?,
            None => Vec::new(),
        };
        Ok(cfg)
    }

    fn invalid(&self, key: impl Into<String>, message: impl Into<String>) -> ConfigError {
        ConfigError::Invalid {
            path: self.origin.clone(),
            key: key.into(),
            message: message.into(),
        }
    }

    fn validate(&self) -> Result<(), ConfigError> {
        for m in &self.journal.matches {
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
        let t = &self.firewall.table;
        if t.is_empty()
            || t.len() > 64
            || !t
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
        {
            return Err(self.invalid(
                "firewall.table",
                format!("'{t}' must be 1-64 characters of letters, digits, '_' or '-'"),
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
        self.scenario_specs()?;
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
                            "a new scenario needs `kinds` and `capacity` (built-ins: ssh-bruteforce, ssh-slow-bruteforce, ssh-user-enum, ssh-probing)",
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
        assert_eq!(specs.len(), 4);
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
