//! The configuration file: TOML, unknown keys refused, every value checked before anything
//! changes, errors naming file, line and key.
//!
//! Each module owns its section (struct, defaults, checks through
//! [`crowdwall_base::Section`]); this module only aggregates them, reads the allowlist
//! drop-in directory, and turns a section's complaint into a [`ConfigError`] that names the
//! file and the key (or the line, when the section kept the value's position).

use std::path::{Path, PathBuf};

use crowdwall_base::section::{parse_toml, read_config};
use crowdwall_base::{Net, Section, SectionError};
use crowdwall_engine::decide::{AllowlistSection, BanSection};
use crowdwall_engine::detect::scenarios::ScenariosSection;
use crowdwall_engine::detect::{DetectSection, ScenarioSpec};
use crowdwall_engine::enforce::Ports;
use crowdwall_engine::fail2ban::filter::FilterSource;
use crowdwall_engine::fail2ban::jail::{self, Fail2banSection, Jail};
use crowdwall_engine::parse::user::{ParsersSection, UserParser};
use crowdwall_engine::parse::Parsers;
use crowdwall_engine::replay::{Detector, Replay, Settings, SettingsError};
use crowdwall_nft::FirewallSection;
use serde::Deserialize;

use crate::api::ApiSection;
use crate::community::CommunitySection;
use crate::ingest::crowdsec::CrowdsecSection;
use crate::ingest::feeds::FeedsSection;
use crate::lockout::LockoutSection;
use crate::metrics::MetricsSection;
use crate::source::file::{FileSpec, FilesSection};
use crate::source::nflog::NflogSection;
use crate::source::syslog::SyslogSection;
use crate::source::JournalSection;

/// The commented default file; also what the daemon runs on when no file exists.
pub const EMBEDDED: &str = include_str!("../../../../config/crowdwall.toml");
pub const DEFAULT_PATH: &str = "/etc/crowdwall/crowdwall.toml";

pub use crowdwall_base::section::ConfigError;

/// `[daemon]`: where state and the control socket live (the whole program's, so it stays
/// with the aggregate).
#[derive(Debug, Clone, PartialEq, Eq, serde::Deserialize)]
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

impl crowdwall_base::Section for DaemonSection {
    const NAME: &'static str = "daemon";
    fn check(&self) -> Result<(), crowdwall_base::SectionError> {
        if self.socket.as_os_str().is_empty() || self.state_dir.as_os_str().is_empty() {
            return Err(crowdwall_base::SectionError::new(
                "",
                "socket and state_dir must not be empty",
            ));
        }
        // A relative path would land under whatever directory the daemon was started from.
        for (key, p) in [("socket", &self.socket), ("state_dir", &self.state_dir)] {
            if p.is_relative() {
                return Err(crowdwall_base::SectionError::new(
                    key,
                    format!(
                        "'{}' is relative: give an absolute path (e.g. /var/lib/crowdwall)",
                        p.display()
                    ),
                ));
            }
        }
        Ok(())
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
    pub scenarios: ScenariosSection,
    /// This host as an agent of a community hub.
    pub community: CommunitySection,
    /// `[hub]` moved to the hub's own file (`crowdwall-hub`, /etc/crowdwall-hub/hub.toml):
    /// kept here only to say so instead of "unknown field".
    hub: Option<toml::Value>,
    /// `[[files]]`: log files to follow (none by default).
    pub files: FilesSection,
    /// `[syslog]`: the syslog listener (off by default).
    pub syslog: SyslogSection,
    /// `[nflog]`: packets logged by the admin's rules to an NFLOG group (off by default).
    pub nflog: NflogSection,
    /// User-defined parsers (`[parsers.NAME]`).
    pub parsers: ParsersSection,
    pub api: ApiSection,
    pub crowdsec: CrowdsecSection,
    pub feeds: FeedsSection,
    pub metrics: MetricsSection,
    pub lockout: LockoutSection,
    /// `[fail2ban]`: fail2ban jails run as they are.
    pub fail2ban: Fail2banSection,
    /// Those jails, read and their filters loaded (by [`Config::parse`]).
    #[serde(skip)]
    pub fail2ban_jails: Vec<Jail>,
    /// Journal identifiers whose entries go to a systemd-backend jail's parser.
    #[serde(skip)]
    pub fail2ban_routes: Vec<(String, String)>,
    /// Where this config came from, for messages.
    #[serde(skip)]
    pub origin: PathBuf,
}

impl Config {
    /// The embedded default configuration.
    pub fn embedded() -> Result<Config, ConfigError> {
        Config::parse(EMBEDDED, Path::new("<embedded default>"))
    }

    /// Reads `path`; a missing file at the default path means the embedded default.
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let (text, origin) = read_config(path, DEFAULT_PATH, EMBEDDED)?;
        Config::parse(&text, &origin)
    }

    pub fn parse(text: &str, path: &Path) -> Result<Config, ConfigError> {
        let mut cfg: Config = parse_toml(text, path)?;
        cfg.origin = path.to_path_buf();
        cfg.check(text)?;
        cfg.allowlist.from_dir = match &cfg.allowlist.dir {
            Some(d) => read_allowlist_dir(d)?,
            None => Vec::new(),
        };
        cfg.load_fail2ban()?;
        Ok(cfg)
    }

    /// `[fail2ban] jails`: each read from the jail files, its filter loaded; a jail's
    /// `logpath` becomes a `[[files]]` source for its parser `f2b:JAIL` (systemd-backend jails
    /// read the journal, which every parser already gets). A jail or filter that does not
    /// load refuses the whole configuration.
    fn load_fail2ban(&mut self) -> Result<(), ConfigError> {
        let Some(dir) = self.fail2ban.dir.clone() else {
            return Ok(());
        };
        let src = DirSource(PathBuf::from(&dir));
        let jail_d: Vec<String> = std::fs::read_dir(Path::new(&dir).join("jail.d"))
            .map(|rd| {
                rd.filter_map(|e| e.ok())
                    .filter_map(|e| e.file_name().to_str().map(String::from))
                    .collect()
            })
            .unwrap_or_default();
        if src.read("jail.conf").is_none() && src.read("jail.local").is_none() {
            return Err(self.invalid(
                "fail2ban.dir",
                format!("{dir}: no jail.conf or jail.local there"),
            ));
        }
        let ini = jail::read_jails(&src, &jail_d);
        let mut jails = Vec::new();
        for (i, name) in self.fail2ban.jails.iter().enumerate() {
            let j = jail::load_jail(&src, &ini, name)
                .map_err(|e| self.invalid(format!("fail2ban.jails[{i}]"), e.to_string()))?;
            let systemd = j.backend.trim().starts_with("systemd");
            if !systemd && j.logpath.is_empty() {
                return Err(self.invalid(
                    format!("fail2ban.jails[{i}]"),
                    format!("jail {name}: no logpath and backend '{}'", j.backend),
                ));
            }
            if systemd {
                // The journal source reads the jail's entries (its journalmatch, ORed with
                // the other matches) and hands those of its identifiers to f2b:JAIL.
                let at = format!("fail2ban.jails[{i}]");
                if !self.journal.enabled {
                    return Err(self.invalid(
                        at,
                        format!("jail {name}: backend '{}' reads the journal, but [journal] enabled = false", j.backend),
                    ));
                }
                let (terms, idents) = jail::journal_terms(&j.journalmatch)
                    .map_err(|e| self.invalid(at.clone(), format!("jail {name}: {e}")))?;
                if terms.is_empty() || idents.is_empty() {
                    return Err(self.invalid(
                        at,
                        format!("jail {name}: backend '{}' needs a journalmatch naming its service (SYSLOG_IDENTIFIER=, _COMM= or _SYSTEMD_UNIT=NAME.service), in the jail or its filter", j.backend),
                    ));
                }
                if !self.journal.matches.is_empty() {
                    self.journal.matches.push("+".into());
                }
                self.journal.matches.extend(terms);
                self.fail2ban_routes
                    .extend(idents.into_iter().map(|id| (id, j.parser_name())));
            } else {
                let spec = FileSpec {
                    paths: j.logpath.iter().map(PathBuf::from).collect(),
                    parser: Some(j.parser_name()),
                };
                let one = FilesSection(vec![spec.clone()]);
                one.check().map_err(|e| {
                    self.invalid(
                        format!("fail2ban.jails[{i}]"),
                        format!("jail {name}: logpath: {}", e.message),
                    )
                })?;
                self.files.0.push(spec);
            }
            jails.push(j);
        }
        self.fail2ban_jails = jails;
        Ok(())
    }

    /// Every parser: built-ins, `[parsers.*]`, fail2ban jails.
    pub fn parsers(&self) -> Result<Parsers, ConfigError> {
        let mut p = Parsers::with_user(self.user_parsers()?);
        for j in &self.fail2ban_jails {
            p.add(
                crowdwall_engine::parse::user::intern(&j.parser_name()),
                Box::new(j.parser()),
            );
        }
        for (ident, parser) in &self.fail2ban_routes {
            p.route(ident, parser);
        }
        Ok(p)
    }

    /// Every section's own check, in file order; the first complaint wins.
    fn check(&self, text: &str) -> Result<(), ConfigError> {
        if self.hub.is_some() {
            return Err(self.invalid(
                "hub",
                "the community hub is its own program now (package crowdwall-hub): move [hub] to /etc/crowdwall-hub/hub.toml and remove it here",
            ));
        }
        fn run<S: Section>(s: &S) -> Result<(), SectionError> {
            s.check().map_err(|e| e.under(S::NAME))
        }
        [
            run(&self.daemon),
            run(&self.journal),
            run(&self.firewall),
            run(&self.ban),
            run(&self.allowlist),
            run(&self.detect),
            run(&self.files),
            run(&self.syslog),
            run(&self.nflog),
            run(&self.scenarios),
            run(&self.parsers),
            run(&self.api),
            run(&self.crowdsec),
            run(&self.feeds),
            run(&self.community),
            run(&self.metrics),
            run(&self.lockout),
            run(&self.fail2ban),
        ]
        .into_iter()
        .try_for_each(|r| r.map_err(|e| self.section_error(e, text)))?;
        self.check_ports(text)
    }

    /// Port-limited bans need rules of crowdwall's own: the admin's sets (mode = "sets")
    /// take addresses only, and their rules decide which ports are filtered.
    fn check_ports(&self, text: &str) -> Result<(), ConfigError> {
        if self.firewall.mode != crowdwall_nft::Mode::Sets {
            return Ok(());
        }
        let scenario = self.scenarios.0.iter().find(|(_, o)| o.ports.is_some());
        let key = match (scenario, self.ban.ports.keys().next()) {
            (Some((name, _)), _) => format!("scenarios.{name}.ports"),
            (None, Some(origin)) => format!("ban.ports.{origin}"),
            (None, None) => return Ok(()),
        };
        let (section, rest) = key.split_once('.').unwrap_or(("", key.as_str()));
        Err(self.section_error(
            SectionError::new(
                rest,
                "bans limited to ports need crowdwall's own table; with firewall.mode = \"sets\" the rules around your sets decide the ports (leave `ports` out)",
            )
            .under(section),
            text,
        ))
    }

    /// A section's complaint as a config error: at its line when the section knows where the
    /// value stood, else by key.
    fn section_error(&self, e: SectionError, text: &str) -> ConfigError {
        ConfigError::from_section(&self.origin, text, e)
    }

    fn invalid(&self, key: impl Into<String>, message: impl Into<String>) -> ConfigError {
        ConfigError::Invalid {
            path: self.origin.clone(),
            key: key.into(),
            message: message.into(),
        }
    }

    fn settings_error(&self, e: SettingsError) -> ConfigError {
        let e = e.error.under(e.section);
        self.invalid(e.key, e.message)
    }

    /// The engine's sections, lent to the pipeline.
    pub fn settings(&self) -> Settings<'_> {
        Settings {
            scenarios: &self.scenarios,
            parsers: &self.parsers,
            detect: &self.detect,
            ban: &self.ban,
            allowlist: &self.allowlist,
            fail2ban: &self.fail2ban_jails,
        }
    }

    /// Built-ins with the overrides applied, plus user-defined scenarios; disabled ones left
    /// out.
    pub fn scenario_specs(&self) -> Result<Vec<ScenarioSpec>, ConfigError> {
        self.scenarios.specs().map_err(|e| {
            let e = e.under("scenarios");
            self.invalid(e.key, e.message)
        })
    }

    /// The user-defined parsers, compiled.
    pub fn user_parsers(&self) -> Result<Vec<UserParser>, ConfigError> {
        self.parsers.compile().map_err(|e| {
            let e = e.under("parsers");
            self.invalid(e.key, e.message)
        })
    }

    /// parse + detect, as the daemon runs it.
    pub fn detector(&self) -> Result<Detector, ConfigError> {
        Detector::new(self.settings()).map_err(|e| self.settings_error(e))
    }

    /// parse + detect + decide, for `replay`, `explain` and the benchmarks.
    pub fn replay(&self) -> Result<Replay, ConfigError> {
        Replay::new(self.settings()).map_err(|e| self.settings_error(e))
    }

    /// What the firewall is opened with: `[firewall]`, plus the port lists bans are limited
    /// to (`[scenarios.*] ports`, `[ban.ports]`), which get sets and a chain each.
    pub fn firewall_spec(&self) -> crowdwall_nft::FirewallSpec {
        let mut spec = self.firewall.spec();
        // Checked at parse: the specs build.
        let scenarios = self.scenario_specs().unwrap_or_default();
        let mut groups: Vec<Ports> = scenarios
            .into_iter()
            .map(|s| s.ports)
            .chain(self.ban.ports.values().cloned())
            .filter(|p| !p.is_all())
            .collect();
        groups.sort();
        groups.dedup();
        spec.port_groups = groups;
        spec
    }

    /// What is valid but most likely not meant: `check-config` prints these and the daemon
    /// logs them at start and reload.
    pub fn warnings(&self) -> Vec<String> {
        let mut w = Vec::new();
        for n in self.allowlist_nets() {
            if n.prefix_len() == 0 {
                w.push(format!(
                    "[allowlist] {n} covers every {} address: none of them can ever be banned",
                    if n.addr().is_ipv4() { "IPv4" } else { "IPv6" }
                ));
            }
        }
        w
    }

    /// Configured and drop-in allowlist ranges.
    pub fn allowlist_nets(&self) -> Vec<ipnet::IpNet> {
        self.allowlist.nets()
    }
}

/// The control socket a config file names, read leniently: the CLI must reach the daemon
/// even when the file does not validate, or `crowdwall reload` of a broken file would fail
/// in the CLI and the daemon (and its log) would never hear of it. The default socket when
/// the file does not even parse as TOML.
pub fn socket_of(path: &Path) -> PathBuf {
    let default = DaemonSection::default().socket;
    let Ok((text, _)) = read_config(path, DEFAULT_PATH, EMBEDDED) else {
        return default;
    };
    toml::from_str::<toml::Table>(&text)
        .ok()
        .and_then(|t| Some(PathBuf::from(t.get("daemon")?.get("socket")?.as_str()?)))
        .unwrap_or(default)
}

/// fail2ban's files under its directory, for the engine's loader (`.conf` then `.local` is
/// the loader's business; this only reads).
struct DirSource(PathBuf);

impl FilterSource for DirSource {
    fn read(&self, path: &str) -> Option<String> {
        std::fs::read_to_string(self.0.join(path)).ok()
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
            let net = crowdwall_base::parse_net(v).map_err(|e| ConfigError::Parse {
                path: f.clone(),
                line: i + 1,
                column: 1,
                message: format!("{e} (one address or CIDR range a line)"),
            })?;
            out.push(Net(net));
        }
    }
    Ok(out)
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
        assert_eq!(
            specs.len(),
            crowdwall_engine::detect::scenarios::builtin().len()
        );
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
        assert!(msg.contains("'10x' is not a duration"), "{msg}");
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
            bf.leak, 300_000_000,
            "untouched keys keep the built-in value"
        );
        assert!(!specs.iter().any(|s| s.name == "ssh-probing"));
        let mine = specs.iter().find(|s| s.name == "my-enum").unwrap();
        assert_eq!(mine.distinct, Some(crowdwall_engine::detect::Field::User));
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
    fn a_hub_section_is_refused_with_where_it_went() {
        let e = parse("[hub]\nlisten = \"0.0.0.0:8080\"\n").unwrap_err();
        assert!(e.to_string().contains("crowdwall-hub"), "{e}");
    }

    #[test]
    fn fail2ban_conversion_is_a_valid_config() {
        let jail = "[DEFAULT]\nignoreip = 127.0.0.1/8 192.0.2.0/24\nbantime = 1h\n\n[sshd]\nenabled = true\n";
        let c = crowdwall_engine::fail2ban::convert(&[("jail.local".into(), jail.into())]);
        let cfg = parse(&c.toml).unwrap_or_else(|e| panic!("{e}\n{}", c.toml));
        assert_eq!(cfg.ban.duration.0.as_secs(), 3600);
        assert!(cfg
            .scenario_specs()
            .unwrap()
            .iter()
            .any(|s| s.name == "ssh-bruteforce"));
    }

    #[test]
    fn metrics_off_and_on_loopback_by_default() {
        let c = Config::embedded().unwrap();
        assert!(!c.metrics.enabled);
        assert!(c.metrics.listen.ip().is_loopback());
        assert!(c.lockout.enabled);
    }
}
