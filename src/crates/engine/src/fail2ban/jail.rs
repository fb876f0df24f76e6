//! fail2ban jails run by crowdwall without conversion: `[fail2ban] dir = "/etc/fail2ban"`,
//! `jails = ["asterisk", ...]`. Each jail is read from jail.conf, jail.d/*.conf, jail.local,
//! jail.d/*.local (with jail.conf's `[INCLUDES]`, e.g. paths-debian.conf, so `%(sshd_log)s`
//! resolves), its filter loaded by [`super::filter::load`] with the jail's options
//! (`filter = sshd[mode=aggressive]`).
//!
//! In the pipeline a jail is a parser `f2b:JAIL` (its matches are `auth_fail` events of
//! service `f2b:JAIL`, through the same scenarios, decisions and allowlist as every parser's)
//! and a scenario `f2b:JAIL`: fail2ban bans on the `maxretry`-th failure within `findtime`;
//! a leaky bucket of capacity `maxretry - 1` leaking one per `2 x findtime` bans `maxretry`
//! failures within `findtime` at any spacing (see the module above). `bantime` is the
//! scenario's ban.
//! fail2ban's defaults: 5 / 10m / 10m.

use std::collections::BTreeMap;
use std::time::Duration;

use crowdwall_base::{Section, SectionError};
use serde::Deserialize;

use super::filter::{self, expand, merge, Filter, FilterError, FilterSource, Host, Ini};
use crate::detect::ScenarioSpec;
use crate::parse::user::intern;
use crate::parse::{Event, EventKind, Parsed, ServiceParser};
use crate::time::{from_duration, Micros};
use crate::LogEntry;

/// `[fail2ban]`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Fail2banSection {
    /// fail2ban's configuration directory (`/etc/fail2ban`).
    pub dir: Option<String>,
    /// Jails to run, by name (enabled or not in fail2ban's files: naming one here enables it).
    pub jails: Vec<String>,
}

impl Section for Fail2banSection {
    const NAME: &'static str = "fail2ban";
    fn check(&self) -> Result<(), SectionError> {
        if !self.jails.is_empty() && self.dir.is_none() {
            return Err(SectionError::new(
                "dir",
                "jails need the fail2ban directory (dir = \"/etc/fail2ban\")",
            ));
        }
        for (i, j) in self.jails.iter().enumerate() {
            if j.is_empty()
                || !j
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b))
            {
                return Err(SectionError::new(
                    format!("jails[{i}]"),
                    format!("'{j}' is not a jail name (letters, digits, '-', '_', '.')"),
                ));
            }
        }
        Ok(())
    }
}

/// A jail, read and its filter loaded.
#[derive(Debug, Clone)]
pub struct Jail {
    pub name: String,
    /// `filter = NAME[opts]`: the filter's name and options.
    pub filter_name: String,
    pub filter_opts: BTreeMap<String, String>,
    pub filter: Filter,
    pub maxretry: u32,
    pub findtime: Duration,
    /// `None`: `bantime = -1` (forever) or not set (crowdwall's `[ban]` default applies).
    pub bantime: Option<Duration>,
    /// `bantime.increment`, and its cap `bantime.maxtime`.
    pub escalate: bool,
    pub max_ban: Option<Duration>,
    pub logpath: Vec<String>,
    pub backend: String,
    pub journalmatch: Vec<String>,
    /// What was not taken over, said to the admin.
    pub notes: Vec<String>,
}

/// Why a jail does not load.
#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
pub enum JailError {
    #[error("fail2ban jail {0}: not defined in jail.conf, jail.local or jail.d/")]
    NotFound(String),
    #[error("fail2ban jail {jail}: {msg}")]
    Bad { jail: String, msg: String },
    #[error("fail2ban jail {jail}: {error}")]
    Filter { jail: String, error: FilterError },
}

/// jail.conf, jail.d/*.conf, jail.local, jail.d/*.local, merged (`jail_d`: the names in
/// jail.d/, which the caller lists).
pub fn read_jails(src: &dyn FilterSource, jail_d: &[String]) -> Ini {
    let mut files = Vec::new();
    let mut d: Vec<&String> = jail_d.iter().collect();
    d.sort();
    // jail.conf (and its includes; its .local comes after jail.d/*.conf, as in fail2ban).
    let mut conf = Vec::new();
    expand(src, "jail.conf", 0, &mut conf);
    let (local, conf): (Vec<_>, Vec<_>) = conf.into_iter().partition(|(f, _)| f == "jail.local");
    files.extend(conf);
    for n in d.iter().filter(|n| n.ends_with(".conf")) {
        if let Some(t) = src.read(&format!("jail.d/{n}")) {
            let f = format!("jail.d/{n}");
            files.push((f.clone(), filter::parse_ini(&t, &f)));
        }
    }
    files.extend(local);
    for n in d.iter().filter(|n| n.ends_with(".local")) {
        if let Some(t) = src.read(&format!("jail.d/{n}")) {
            let f = format!("jail.d/{n}");
            files.push((f.clone(), filter::parse_ini(&t, &f)));
        }
    }
    merge(files)
}

/// The jails enabled in fail2ban's files (`enabled = true`), in name order.
pub fn enabled(ini: &Ini) -> Vec<String> {
    ini.sections
        .keys()
        .filter(|n| *n != "INCLUDES" && *n != "Definition" && !n.starts_with("KNOWN/"))
        .filter(|n| {
            ini.get(n, "enabled", &BTreeMap::new())
                .ok()
                .flatten()
                .is_some_and(|v| matches!(v.text.trim(), "true" | "yes" | "1" | "on"))
        })
        .cloned()
        .collect()
}

/// `NAME[k=v, k2="v 2"]` -> (NAME, options).
pub fn split_filter(s: &str) -> (String, BTreeMap<String, String>) {
    let s = s.trim();
    let Some((name, rest)) = s.split_once('[') else {
        return (s.to_string(), BTreeMap::new());
    };
    let body = rest.strip_suffix(']').unwrap_or(rest);
    let mut opts = BTreeMap::new();
    let mut cur = String::new();
    let mut quote: Option<char> = None;
    let mut parts = Vec::new();
    for ch in body.chars() {
        match (quote, ch) {
            (None, '"' | '\'') => quote = Some(ch),
            (Some(q), c) if c == q => quote = None,
            (None, ',') => parts.push(std::mem::take(&mut cur)),
            (_, c) => cur.push(c),
        }
    }
    parts.push(cur);
    for p in parts {
        if let Some((k, v)) = p.split_once('=') {
            opts.insert(k.trim().to_string(), v.trim().to_string());
        }
    }
    (name.trim().to_string(), opts)
}

/// Reads jail `name` from the merged jail files and loads its filter.
pub fn load_jail(src: &dyn FilterSource, ini: &Ini, name: &str) -> Result<Jail, JailError> {
    if !ini.sections.contains_key(name) {
        return Err(JailError::NotFound(name.to_string()));
    }
    let none = BTreeMap::new();
    let get = |k: &str| -> Result<Option<String>, JailError> {
        ini.get(name, k, &none)
            .map(|v| v.map(|v| v.text))
            .map_err(|e| JailError::Bad {
                jail: name.to_string(),
                msg: e.to_string(),
            })
    };
    let bad = |msg: String| JailError::Bad {
        jail: name.to_string(),
        msg,
    };
    let filter_line = get("filter")?.unwrap_or_else(|| name.to_string());
    let (filter_name, filter_opts) = split_filter(&filter_line);
    let mut notes = Vec::new();
    let filter =
        filter::load(src, &filter_name, &filter_opts).map_err(|error| JailError::Filter {
            jail: name.to_string(),
            error,
        })?;
    for r in &filter.refused {
        notes.push(format!(
            "failregex at {}:{} not loaded: {}",
            r.file, r.line, r.construct
        ));
    }
    let maxretry = match get("maxretry")? {
        Some(v) => v
            .trim()
            .parse::<u32>()
            .map_err(|_| bad(format!("maxretry '{v}' is not a number")))?,
        None => 5,
    }
    .max(1);
    let time = |k: &str, def: u64| -> Result<Option<Duration>, JailError> {
        match get(k)? {
            Some(v) => super::parse_f2b_time(&v).map_err(|e| bad(format!("{k}: {e}"))),
            None => Ok(Some(Duration::from_secs(def))),
        }
    };
    let findtime = time("findtime", 600)?.unwrap_or(Duration::from_secs(600));
    let bantime = time("bantime", 600)?;
    // `bantime.increment` (the jail's or [DEFAULT]'s): each ban of an address that was
    // banned before lasts longer, up to `bantime.maxtime`. crowdwall doubles per earlier
    // offence; fail2ban's factor/formula/multipliers are not taken over (said in the notes).
    let escalate = match get("bantime.increment")? {
        Some(v) => match v.trim().to_ascii_lowercase().as_str() {
            "true" | "yes" | "1" | "on" => true,
            "false" | "no" | "0" | "off" => false,
            _ => return Err(bad(format!("bantime.increment '{v}' is not true or false"))),
        },
        None => false,
    };
    let max_ban = match get("bantime.maxtime")? {
        Some(v) if escalate => {
            super::parse_f2b_time(&v).map_err(|e| bad(format!("bantime.maxtime: {e}")))?
        }
        _ => None,
    };
    if escalate {
        for k in ["bantime.factor", "bantime.formula", "bantime.multipliers"] {
            if let Some(v) = get(k)? {
                notes.push(format!(
                    "{k} = {v} not taken over (crowdwall doubles the ban for each earlier offence)"
                ));
            }
        }
    }
    let logpath: Vec<String> = get("logpath")?
        .unwrap_or_default()
        .split('\n')
        .flat_map(|l| l.split_whitespace().next())
        .filter(|p| !p.is_empty())
        .map(String::from)
        .collect();
    let backend = get("backend")?.unwrap_or_else(|| "auto".into());
    let mut journalmatch = filter.journalmatch.clone();
    if let Some(j) = get("journalmatch")? {
        journalmatch = j
            .split('\n')
            .map(|l| l.trim().to_string())
            .filter(|l| !l.is_empty())
            .collect();
    }
    for k in [
        "action",
        "banaction",
        "port",
        "protocol",
        "destemail",
        "usedns",
        "ignorecommand",
    ] {
        if let Some(v) = ini.sections.get(name).and_then(|s| s.get(k)) {
            notes.push(format!(
                "{k} = {} not taken over (crowdwall bans in its own nftables sets, every port)",
                v.text
            ));
        }
    }
    Ok(Jail {
        name: name.to_string(),
        filter_name,
        filter_opts,
        filter,
        maxretry,
        findtime,
        bantime,
        escalate,
        max_ban,
        logpath,
        backend,
        journalmatch,
        notes,
    })
}

/// A jail's `journalmatch` as `[journal] matches` terms: `FIELD=value` terms, groups
/// separated by `+` (journalctl's OR), and the identifiers its entries carry
/// (`SYSLOG_IDENTIFIER=x` and `_COMM=x` name `x`; `_SYSTEMD_UNIT=x.service` names `x`, what a
/// unit's processes log as unless they set another identifier). `Err` names a term that is
/// not `FIELD=value`.
pub fn journal_terms(journalmatch: &[String]) -> Result<(Vec<String>, Vec<String>), String> {
    let mut terms = Vec::new();
    let mut idents = Vec::new();
    for line in journalmatch {
        for t in line.split_whitespace() {
            if t == "+" {
                if !terms.is_empty() && terms.last().map(String::as_str) != Some("+") {
                    terms.push("+".to_string());
                }
                continue;
            }
            let Some((f, v)) = t.split_once('=') else {
                return Err(format!("journalmatch term '{t}' is not FIELD=value"));
            };
            if f.is_empty()
                || v.is_empty()
                || !f
                    .bytes()
                    .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit() || b == b'_')
            {
                return Err(format!("journalmatch term '{t}' is not FIELD=value"));
            }
            let ident = match f {
                "SYSLOG_IDENTIFIER" | "_COMM" => Some(v),
                "_SYSTEMD_UNIT" => v
                    .strip_suffix(".service")
                    .map(|u| u.split('@').next().unwrap_or(u)),
                _ => None,
            };
            if let Some(i) = ident.filter(|i| !i.is_empty()) {
                if !idents.iter().any(|x| x == i) {
                    idents.push(i.to_string());
                }
            }
            terms.push(t.to_string());
        }
    }
    if terms.last().map(String::as_str) == Some("+") {
        terms.pop();
    }
    Ok((terms, idents))
}

impl Jail {
    /// The parser name (and service of its events): `f2b:JAIL`.
    pub fn parser_name(&self) -> String {
        format!("f2b:{}", self.name)
    }

    /// The scenario: capacity `maxretry - 1`, leak `2 x findtime`, ban `bantime`, growing
    /// per earlier offence (capped at `bantime.maxtime`) when `bantime.increment` is on.
    pub fn scenario(&self) -> ScenarioSpec {
        let cap = self.maxretry.saturating_sub(1);
        let leak = if cap == 0 {
            self.findtime
        } else {
            self.findtime.saturating_mul(2)
        };
        ScenarioSpec {
            name: self.parser_name(),
            service: Some(self.parser_name()),
            kinds: vec![EventKind::AuthFail],
            capacity: cap,
            leak: from_duration(leak.max(Duration::from_millis(1))),
            distinct: None,
            blackhole: from_duration(Duration::from_secs(60)),
            cancel_on: vec![],
            ban: self.bantime.map(from_duration),
            allowlist: vec![],
            ports: Default::default(),
            escalate: Some(self.escalate),
            max_ban: self.max_ban.map(from_duration),
        }
    }

    /// The journal identifiers whose entries this jail takes: those its `journalmatch`
    /// names, for a jail whose backend reads the journal (`systemd`); none otherwise, or
    /// when the journalmatch does not read (the configuration refuses it then).
    pub fn journal_identifiers(&self) -> Vec<String> {
        if !self.backend.trim().starts_with("systemd") {
            return Vec::new();
        }
        journal_terms(&self.journalmatch)
            .map(|(_, idents)| idents)
            .unwrap_or_default()
    }

    /// The parser that runs this jail's filter.
    pub fn parser(&self) -> JailParser {
        let name = intern(&self.parser_name());
        JailParser {
            name,
            filter: self.filter.clone(),
        }
    }
}

/// A jail's filter as a crowdwall parser. Lines a file source hands it whole (identifier =
/// the parser's name) still carry their time stamp, which is cut as fail2ban does; entries
/// from the journal or syslog come without it and are given as `IDENT[PID]: MESSAGE`, what
/// fail2ban's journal backend makes of them.
pub struct JailParser {
    name: &'static str,
    filter: Filter,
}

impl ServiceParser for JailParser {
    fn parse(&mut self, entry: &LogEntry, out: &mut Vec<Event>) -> Parsed {
        if let Some(why) = crate::parse::precheck(&entry.message, 16 * 1024) {
            return Parsed::Rejected(why);
        }
        let whole = entry.identifier == self.name;
        let fails = if whole {
            self.filter.process(&entry.message, false)
        } else {
            let line = match entry.pid {
                Some(p) => format!("{}[{p}]: {}", entry.identifier, entry.message),
                None => format!("{}: {}", entry.identifier, entry.message),
            };
            self.filter.process(&line, true)
        };
        let Some(f) = fails.into_iter().next() else {
            return Parsed::Unmatched;
        };
        match f.host {
            Host::Addr(ip) => {
                out.push(
                    Event::new(entry.time, self.name, EventKind::AuthFail, ip)
                        .with_user(f.user.as_deref()),
                );
                Parsed::Matched(self.filter.source_of(f.regex).unwrap_or("failregex"))
            }
            // Counted in the parser's `rejected`: fail2ban would resolve it, crowdwall does not.
            Host::Name(_) => Parsed::Rejected("host_name_not_resolved"),
            Host::Other(_) => Parsed::Rejected("no_address"),
        }
    }

    fn expire(&mut self, _now: Micros) {}
}

#[cfg(test)]
mod tests {
    use super::*;

    fn jail(jail_local: &str) -> Result<Jail, JailError> {
        let files: BTreeMap<String, String> = [
            ("jail.local".to_string(), jail_local.to_string()),
            (
                "filter.d/t.conf".to_string(),
                "[Definition]\nfailregex = ^bad from <HOST>$\n".to_string(),
            ),
        ]
        .into();
        let src = move |p: &str| files.get(p).cloned();
        let ini = read_jails(&src, &[]);
        load_jail(&src, &ini, "t")
    }

    #[test]
    fn journalmatch_becomes_journal_terms_and_identifiers() {
        let (t, i) = journal_terms(&[
            "_SYSTEMD_UNIT=sshd.service + _COMM=sshd".to_string(),
            "+ SYSLOG_IDENTIFIER=asterisk".to_string(),
        ])
        .unwrap();
        assert_eq!(
            t,
            [
                "_SYSTEMD_UNIT=sshd.service",
                "+",
                "_COMM=sshd",
                "+",
                "SYSLOG_IDENTIFIER=asterisk"
            ]
        );
        assert_eq!(i, ["sshd", "asterisk"]);
        let (_, i) =
            journal_terms(&["_SYSTEMD_UNIT=getty@tty1.service PRIORITY=5".into()]).unwrap();
        assert_eq!(i, ["getty"]);
        let e = journal_terms(&["_SYSTEMD_UNIT".into()]).unwrap_err();
        assert!(e.contains("'_SYSTEMD_UNIT' is not FIELD=value"), "{e}");
    }

    #[test]
    fn bantime_increment_per_jail_is_the_scenario_escalation() {
        let j = jail("[DEFAULT]\nbantime.increment = false\n[t]\nenabled = true\nlogpath = /x\nbantime = 1h\nbantime.increment = true\nbantime.maxtime = 1d\nbantime.factor = 3\n").unwrap();
        assert!(j.escalate);
        let s = j.scenario();
        assert_eq!(s.escalate, Some(true));
        assert_eq!(s.max_ban, Some(from_duration(Duration::from_secs(86400))));
        assert!(
            j.notes.iter().any(|n| n.contains("bantime.factor")),
            "{:?}",
            j.notes
        );
        // From [DEFAULT], and off: the scenario says so (it does not inherit [ban] escalate).
        let j = jail("[DEFAULT]\nbantime.increment = true\n[t]\nenabled = true\nlogpath = /x\n")
            .unwrap();
        assert_eq!(j.scenario().escalate, Some(true));
        assert_eq!(j.scenario().max_ban, None);
        let j = jail("[t]\nenabled = true\nlogpath = /x\n").unwrap();
        assert_eq!(j.scenario().escalate, Some(false));
        // A value that is not a boolean is refused, naming the jail and key.
        let e = jail("[t]\nenabled = true\nlogpath = /x\nbantime.increment = maybe\n").unwrap_err();
        assert!(
            e.to_string().contains("jail t: bantime.increment 'maybe'"),
            "{e}"
        );
    }
}
