//! `crowdwall import-fail2ban DIR`: converts a fail2ban set-up (jail.conf, jail.d/*.conf,
//! jail.local, jail.d/*.local, read in fail2ban's order, later files overriding earlier ones)
//! into crowdwall configuration, and says what it could not convert.
//!
//! Pure: it takes the files' text and returns TOML and notes; the CLI (`crowdwall import-fail2ban`)
//! reads the files.
//!
//! # Jails to scenarios
//!
//! An enabled jail's filter names the detection; it becomes an override of the built-in
//! crowdwall scenario that makes it (sshd -> ssh-bruteforce, nginx-http-auth ->
//! http-bruteforce, postfix -> mail-probing, dovecot -> mail-bruteforce, ...). fail2ban bans
//! on the `maxretry`-th failure within `findtime`; a leaky bucket with capacity
//! `maxretry - 1` and leak `2 x findtime` bans `maxretry` failures within `findtime` at any
//! spacing, like fail2ban (it leaks at most half a failure meanwhile; a leak of
//! `findtime / (maxretry - 1)` would let `maxretry` evenly spread failures go), and never a
//! source slower than one failure per `2 x findtime`. `bantime` becomes the scenario's `ban`.
//!
//! [DEFAULT] `bantime` becomes `[ban] duration`, `bantime.increment` `[ban] escalate`
//! (crowdwall doubles; other formulas are reported), `bantime.maxtime` `[ban] max_duration`,
//! `ignoreip` `[allowlist] cidrs` (host names are reported), `ignoreself` `own_addresses`.

pub mod date;
mod dual;
pub mod filter;
pub mod jail;
pub mod pyre;

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::time::Duration;

use crate::time::format_duration;

/// A parsed INI file: section -> key -> value (continuation lines joined with a space).
type Ini = BTreeMap<String, BTreeMap<String, String>>;

/// Reads fail2ban's INI dialect: `[section]`, `key = value` or `key: value`, indented
/// continuation lines, `#`/`;` comment lines.
pub fn parse_ini(text: &str, into: &mut Ini) {
    let mut section = String::from("DEFAULT");
    let mut last_key: Option<String> = None;
    for raw in text.lines() {
        let line = raw.trim_end();
        let trimmed = line.trim_start();
        if trimmed.is_empty() || trimmed.starts_with('#') || trimmed.starts_with(';') {
            continue;
        }
        if line.starts_with([' ', '\t']) {
            if let Some(k) = &last_key {
                if let Some(v) = into.get_mut(&section).and_then(|s| s.get_mut(k)) {
                    v.push(' ');
                    v.push_str(trimmed);
                }
            }
            continue;
        }
        if let Some(name) = trimmed.strip_prefix('[').and_then(|r| r.strip_suffix(']')) {
            section = name.trim().to_string();
            into.entry(section.clone()).or_default();
            last_key = None;
            continue;
        }
        let split = trimmed.find(['=', ':']);
        if let Some(i) = split {
            let key = trimmed[..i].trim().to_string();
            let value = trimmed[i + 1..].trim().to_string();
            into.entry(section.clone())
                .or_default()
                .insert(key.clone(), value);
            last_key = Some(key);
        }
    }
}

/// fail2ban time: seconds, or `10m`, `1h 30m`, `1d`, `1w`, `1mo`, `1y`; `-1` = forever.
pub(crate) fn parse_f2b_time(s: &str) -> Result<Option<Duration>, String> {
    let s = s.trim();
    if let Ok(n) = s.parse::<i64>() {
        return Ok(if n < 0 {
            None
        } else {
            Some(Duration::from_secs(n as u64))
        });
    }
    let mut total: u64 = 0;
    let compact: String = s.split_whitespace().collect();
    let b = compact.as_bytes();
    let mut i = 0;
    while i < b.len() {
        let start = i;
        while i < b.len() && (b[i].is_ascii_digit() || b[i] == b'.') {
            i += 1;
        }
        let num: f64 = compact[start..i]
            .parse()
            .map_err(|_| format!("'{s}' is not a fail2ban time"))?;
        let ustart = i;
        while i < b.len() && b[i].is_ascii_alphabetic() {
            i += 1;
        }
        let unit = match compact[ustart..i].to_ascii_lowercase().as_str() {
            "" | "s" | "sec" | "secs" | "second" | "seconds" => 1.0,
            "m" | "mi" | "min" | "mins" | "minute" | "minutes" => 60.0,
            "h" | "hour" | "hours" => 3600.0,
            "d" | "day" | "days" => 86_400.0,
            "w" | "week" | "weeks" => 604_800.0,
            "mo" | "mon" | "month" | "months" => 30.0 * 86_400.0,
            "y" | "year" | "years" => 365.0 * 86_400.0,
            u => return Err(format!("'{s}': unknown time unit '{u}'")),
        };
        total = total.saturating_add((num * unit) as u64);
    }
    Ok(Some(Duration::from_secs(total)))
}

/// Expands `%(name)s` from the same section, then DEFAULT (fail2ban's interpolation, one
/// level deep is enough for the keys converted here).
fn interpolate(
    v: &str,
    section: &BTreeMap<String, String>,
    default: &BTreeMap<String, String>,
) -> String {
    interpolate_at(v, section, default, 0)
}

fn interpolate_at(
    v: &str,
    section: &BTreeMap<String, String>,
    default: &BTreeMap<String, String>,
    depth: usize,
) -> String {
    let mut out = String::new();
    let mut rest = v;
    while let Some(i) = rest.find("%(") {
        out.push_str(&rest[..i]);
        let after = &rest[i + 2..];
        match after.find(")s") {
            Some(j) => {
                let name = &after[..j];
                let val = section.get(name).or_else(|| default.get(name));
                match val {
                    Some(x) if !x.contains("%(") => out.push_str(x),
                    // paths-debian.conf: `sshd_log = %(syslog_authpriv)s`, a few levels deep.
                    Some(x) if depth < 10 => {
                        out.push_str(&interpolate_at(x, section, default, depth + 1))
                    }
                    _ => {
                        out.push_str("%(");
                        out.push_str(name);
                        out.push_str(")s");
                    }
                }
                rest = &after[j + 2..];
            }
            None => {
                out.push_str(&rest[i..]);
                rest = "";
            }
        }
    }
    out.push_str(rest);
    out
}

/// The crowdwall scenario a fail2ban filter's detection corresponds to.
pub fn scenario_for(filter: &str) -> Option<&'static str> {
    let base = filter.split('[').next().unwrap_or(filter).trim();
    let mode = filter
        .split_once("mode=")
        .map(|(_, m)| m.trim_end_matches(']').trim());
    Some(match base {
        "sshd" | "sshd-ddos" | "dropbear" => {
            if mode == Some("ddos") {
                "ssh-probing"
            } else {
                "ssh-bruteforce"
            }
        }
        "nginx-http-auth" | "apache-auth" | "lighttpd-auth" => "http-bruteforce",
        "nginx-botsearch"
        | "apache-botsearch"
        | "apache-noscript"
        | "apache-nohome"
        | "apache-overflows"
        | "nginx-bad-request"
        | "apache-fakegooglebot" => "http-probing",
        "apache-badbots" | "apache-shellshock" | "nginx-badbots" => "http-bad-user-agent",
        "postfix-sasl" => "mail-bruteforce",
        "postfix" | "postfix-rbl" => {
            if mode == Some("auth") {
                "mail-bruteforce"
            } else {
                "mail-probing"
            }
        }
        "dovecot" | "sieve" | "courier-auth" | "sasl" => "mail-bruteforce",
        "vsftpd" | "proftpd" | "pure-ftpd" | "wuftpd" | "gssftpd" => "ftp-bruteforce",
        "portsentry" | "scanlogd" => "port-scan",
        _ => return None,
    })
}

/// Why a fail2ban key has no crowdwall counterpart.
fn drop_why(k: &str) -> &'static str {
    match k {
        "action" | "banaction" | "banaction_allports" => {
            " (crowdwall bans in its own nftables table and runs no commands)"
        }
        "port" | "protocol" => " (a jail run as it is bans every port; converted jails keep theirs)",
        "destemail" | "sender" | "mta" => " (crowdwall sends no mail; see `crowdwall status` and the metrics)",
        "ignoreip" => " (a jail run as it is takes [allowlist] only; converted jails keep theirs as the scenario's allowlist)",
        _ => "",
    }
}

/// Addresses and ranges of an `ignoreip` value; what is not one (a host name) is noted.
fn ignoreip_nets(v: &str, label: &str, c: &mut Conversion) -> Vec<String> {
    let mut out = Vec::new();
    for tok in v.split([' ', ',', '\t']).filter(|t| !t.is_empty()) {
        match crowdwall_base::parse_net(tok) {
            Ok(n) => out.push(n.to_string()),
            Err(_) => match tok.parse::<ipnet::IpNet>() {
                Ok(n) => {
                    c.info.push(format!(
                        "{label} {tok}: host bits set, taken as {}",
                        n.trunc()
                    ));
                    out.push(n.trunc().to_string());
                }
                Err(_) => c.notes.push(format!(
                    "{label} {tok}: not an address or range (crowdwall does not resolve names): not converted"
                )),
            },
        }
    }
    out
}

/// A jail's `port` as numbers: `22`, `ssh`, `http,https`, `1000:1002`. Empty for every
/// port (`0:65535`, fail2ban's default).
fn jail_ports(v: &str) -> Result<Vec<u16>, String> {
    // The names Debian's jail.conf uses; fail2ban reads them from /etc/services.
    const NAMES: &[(&str, u16)] = &[
        ("ftp-data", 20),
        ("ftp", 21),
        ("ssh", 22),
        ("smtp", 25),
        ("domain", 53),
        ("http", 80),
        ("pop3", 110),
        ("imap", 143),
        ("imap2", 143),
        ("imap3", 220),
        ("ldap", 389),
        ("https", 443),
        ("smtps", 465),
        ("submissions", 465),
        ("submission", 587),
        ("ldaps", 636),
        ("ftps", 990),
        ("imaps", 993),
        ("pop3s", 995),
        ("mysql", 3306),
        ("sieve", 4190),
        ("postgresql", 5432),
        ("sip", 5060),
    ];
    let one = |t: &str| -> Result<u16, String> {
        t.parse::<u16>().or_else(|_| {
            NAMES
                .iter()
                .find(|(n, _)| *n == t)
                .map(|(_, p)| *p)
                .ok_or_else(|| format!("'{t}' is not a port number or a known service name"))
        })
    };
    let mut out = Vec::new();
    for tok in v.split([',', ' ']).map(str::trim).filter(|t| !t.is_empty()) {
        match tok.split_once(':') {
            Some((a, b)) => {
                let (a, b) = (one(a)?, one(b)?);
                if a <= 1 && b == u16::MAX {
                    return Ok(Vec::new());
                }
                if b < a || usize::from(b - a) >= crate::enforce::MAX_PORTS {
                    return Err(format!("range {tok} is not a short list of ports"));
                }
                out.extend(a..=b);
            }
            None => out.push(one(tok)?),
        }
    }
    crate::enforce::Ports::new(out).map(|p| p.as_slice().to_vec())
}

/// The converted configuration and what was left out.
#[derive(Debug, Clone, Default)]
pub struct Conversion {
    pub toml: String,
    pub converted_jails: Vec<(String, String)>,
    /// Enabled jails crowdwall has no parser of its own for: to run as they are
    /// (`[fail2ban] jails`), once the caller has checked that their filters load.
    pub fail2ban_jails: Vec<String>,
    /// What was taken over with a change worth saying (not a loss).
    pub info: Vec<String>,
    /// What was not taken over.
    pub notes: Vec<String>,
}

fn dur(d: Duration) -> String {
    format_duration(d)
}

/// Keys of a jail that the conversion uses or that need no conversion.
const HANDLED_KEYS: &[&str] = &[
    "enabled",
    "filter",
    "maxretry",
    "findtime",
    "bantime",
    "ignoreip",
    "ignoreself",
    "bantime.increment",
    "bantime.maxtime",
    "backend",
    "port",
    "protocol",
    "chain",
    "mode",
    "journalmatch",
];

/// Converts the files (in fail2ban's reading order) into crowdwall TOML and notes.
pub fn convert(files: &[(String, String)]) -> Conversion {
    let mut ini = Ini::new();
    for (_, text) in files {
        parse_ini(text, &mut ini);
    }
    let empty = BTreeMap::new();
    let default = ini.get("DEFAULT").cloned().unwrap_or_default();
    let mut c = Conversion::default();
    let get = |sec: &BTreeMap<String, String>, k: &str| -> Option<String> {
        sec.get(k)
            .or_else(|| default.get(k))
            .map(|v| interpolate(v, sec, &default))
    };
    let mut toml = String::from(
        "# Converted from a fail2ban set-up by `crowdwall import-fail2ban`. Review before use.\n\n",
    );

    // [ban]
    let mut ban = String::new();
    let mut base_ban = Duration::from_secs(600);
    match default.get("bantime").map(|v| parse_f2b_time(v)) {
        Some(Ok(Some(d))) if !d.is_zero() => {
            base_ban = d;
            let _ = writeln!(ban, "duration = \"{}\"", dur(d));
        }
        Some(Ok(_)) => c.notes.push(
            "[DEFAULT] bantime is permanent or zero: crowdwall bans always expire; kept the default 4h (set [ban] duration/max_duration)".into(),
        ),
        Some(Err(e)) => c.notes.push(format!("[DEFAULT] bantime: {e}")),
        None => {
            let _ = writeln!(ban, "duration = \"10m\"  # fail2ban's default");
        }
    }
    let increment = default
        .get("bantime.increment")
        .map(|v| {
            matches!(
                v.trim().to_ascii_lowercase().as_str(),
                "true" | "yes" | "1" | "on"
            )
        })
        .unwrap_or(false);
    let _ = writeln!(ban, "escalate = {increment}");
    if increment {
        if let Some(v) = default.get("bantime.maxtime") {
            match parse_f2b_time(v) {
                Ok(Some(d)) if d >= base_ban => {
                    let _ = writeln!(ban, "max_duration = \"{}\"", dur(d));
                }
                _ => c
                    .notes
                    .push(format!("bantime.maxtime = {v}: not converted")),
            }
        }
        for k in [
            "bantime.factor",
            "bantime.formula",
            "bantime.multipliers",
            "bantime.rndtime",
            "bantime.overalljails",
        ] {
            if let Some(v) = default.get(k) {
                c.notes.push(format!(
                    "{k} = {v}: not converted (crowdwall doubles the ban for each earlier offence within [ban] forget_after)"
                ));
            }
        }
    }
    if let Some(v) = default.get("findtime") {
        if parse_f2b_time(v).is_err() {
            c.notes
                .push(format!("[DEFAULT] findtime = {v}: not a fail2ban time"));
        }
    }
    let _ = writeln!(toml, "[ban]\n{ban}");

    // [allowlist]
    let cidrs = match default.get("ignoreip") {
        Some(v) => ignoreip_nets(&interpolate(v, &empty, &default), "ignoreip", &mut c),
        None => Vec::new(),
    };
    let ignoreself = default
        .get("ignoreself")
        .map(|v| {
            !matches!(
                v.trim().to_ascii_lowercase().as_str(),
                "false" | "no" | "0" | "off"
            )
        })
        .unwrap_or(true);
    let _ = writeln!(
        toml,
        "[allowlist]\ncidrs = [{}]\nown_addresses = {ignoreself}\n",
        cidrs
            .iter()
            .map(|c| format!("\"{c}\""))
            .collect::<Vec<_>>()
            .join(", ")
    );

    for k in [
        "action",
        "banaction",
        "banaction_allports",
        "destemail",
        "sender",
        "mta",
    ] {
        if let Some(v) = default.get(k) {
            c.notes
                .push(format!("[DEFAULT] {k} = {v}: not converted{}", drop_why(k)));
        }
    }

    // Jails
    let mut files: Vec<String> = Vec::new();
    let mut by_scenario: BTreeMap<&'static str, String> = BTreeMap::new();
    for (name, sec) in &ini {
        if name == "DEFAULT" || name == "INCLUDES" || name == "Definition" || name == "Init" {
            continue;
        }
        let enabled = get(sec, "enabled")
            .map(|v| {
                matches!(
                    v.trim().to_ascii_lowercase().as_str(),
                    "true" | "yes" | "1" | "on"
                )
            })
            .unwrap_or(false);
        if !enabled {
            continue;
        }
        let filter = get(sec, "filter")
            .map(|f| f.replace("%(__name__)s", name))
            .unwrap_or_else(|| name.clone());
        if name == "recidive" || filter.starts_with("recidive") {
            c.info.push(format!(
                "jail [{name}] (recidive) maps to [ban] escalate = true: crowdwall doubles the ban of an address banned again within [ban] forget_after, so no log-reading jail is needed{}",
                if increment { "" } else { " (set escalate = true to get it)" }
            ));
            continue;
        }
        let Some(scenario) = scenario_for(&filter) else {
            // Run it as it is: the filter is read from filter.d, logpath from the jail.
            for k in ["action", "banaction", "port", "ignoreip", "destemail"] {
                if let Some(v) = sec.get(k) {
                    c.notes.push(format!(
                        "jail [{name}] {k} = {v}: not converted{}",
                        drop_why(k)
                    ));
                }
            }
            c.fail2ban_jails.push(name.clone());
            continue;
        };
        let maxretry = get(sec, "maxretry")
            .and_then(|v| v.trim().parse::<u32>().ok())
            .unwrap_or(5);
        let findtime = get(sec, "findtime")
            .and_then(|v| parse_f2b_time(&v).ok().flatten())
            .unwrap_or(Duration::from_secs(600));
        let mut s = String::new();
        let _ = writeln!(
            s,
            "# from jail [{name}] (filter {filter}): maxretry {maxretry} within {}",
            dur(findtime)
        );
        let _ = writeln!(s, "[scenarios.{scenario}]");
        let cap = maxretry.saturating_sub(1);
        let _ = writeln!(s, "capacity = {cap}");
        let leak = if cap == 0 { findtime } else { findtime * 2 };
        let leak = leak.max(Duration::from_secs(1));
        let _ = writeln!(s, "leak = \"{}\"", dur(Duration::from_secs(leak.as_secs())));
        if let Some(v) = sec.get("bantime") {
            match parse_f2b_time(&interpolate(v, sec, &default)) {
                Ok(Some(d)) if !d.is_zero() => {
                    let _ = writeln!(s, "ban = \"{}\"", dur(d));
                }
                _ => c.notes.push(format!(
                    "jail [{name}] bantime = {v}: permanent or invalid, not converted"
                )),
            }
        }
        // The jail's own ignoreip is the scenario's allowlist, on top of [allowlist].
        if let Some(v) = sec.get("ignoreip") {
            let nets = ignoreip_nets(
                &interpolate(v, sec, &default),
                &format!("jail [{name}] ignoreip"),
                &mut c,
            );
            if !nets.is_empty() {
                let quoted: Vec<String> = nets.iter().map(|n| format!("\"{n}\"")).collect();
                let _ = writeln!(s, "allowlist = [{}]", quoted.join(", "));
            }
        }
        // A multiport banaction (fail2ban's default) bans the jail's ports only; allports
        // bans every port, as crowdwall does by default.
        let banaction = get(sec, "banaction").unwrap_or_default();
        if let Some(v) = get(sec, "port") {
            if !banaction.contains("allports") {
                match jail_ports(&v) {
                    Ok(p) if p.is_empty() => {}
                    Ok(p) => {
                        let list: Vec<String> = p.iter().map(|n| n.to_string()).collect();
                        let _ = writeln!(s, "ports = [{}]", list.join(", "));
                        c.info.push(format!(
                            "jail [{name}] port = {v} ({banaction}): its bans drop TCP and UDP to port {} only",
                            list.join(",")
                        ));
                    }
                    Err(e) => c.notes.push(format!(
                        "jail [{name}] port = {v}: {e}; its bans cover every port"
                    )),
                }
            }
        }
        let systemd = get(sec, "backend").is_some_and(|b| b.trim().starts_with("systemd"));
        if let Some(v) = get(sec, "logpath") {
            let paths: Vec<String> = v
                .split_whitespace()
                .filter(|p| p.starts_with('/'))
                .map(|p| format!("\"{p}\""))
                .collect();
            if systemd {
                c.info.push(format!(
                    "jail [{name}] backend = systemd: read from the journal ([journal]), logpath not needed"
                ));
            } else if !paths.is_empty() {
                let parser = if filter.starts_with("nginx") {
                    "\nparser = \"nginx\""
                } else if filter.starts_with("apache") {
                    "\nparser = \"apache\""
                } else {
                    "" // syslog lines: dispatched by their tag
                };
                files.push(format!(
                    "# from jail [{name}] logpath\n[[files]]\npaths = [{}]{parser}\n",
                    paths.join(", ")
                ));
            }
        }
        for k in ["action", "banaction", "destemail"] {
            if let Some(v) = sec.get(k) {
                c.notes.push(format!(
                    "jail [{name}] {k} = {v}: not converted{}",
                    drop_why(k)
                ));
            }
        }
        for k in sec.keys() {
            if !HANDLED_KEYS.contains(&k.as_str())
                && ![
                    "logpath",
                    "action",
                    "banaction",
                    "ignoreip",
                    "port",
                    "destemail",
                ]
                .contains(&k.as_str())
            {
                c.notes.push(format!("jail [{name}] {k}: not converted"));
            }
        }
        if let Some(prev) = by_scenario.insert(scenario, s) {
            let _ = prev;
            c.notes.push(format!(
                "jail [{name}] maps to scenario {scenario} like an earlier jail: the later one wins"
            ));
        }
        c.converted_jails.push((name.clone(), scenario.to_string()));
    }
    for s in by_scenario.values() {
        toml.push_str(s);
        toml.push('\n');
    }
    for f in &files {
        toml.push_str(f);
        toml.push('\n');
    }
    c.toml = toml;
    c
}

#[cfg(test)]
mod tests {
    use super::*;

    const JAIL: &str = "[DEFAULT]\nignoreip = 127.0.0.1/8 ::1 10.0.0.1/8 gateway.lan\n  192.0.2.0/24\nbantime = 1h\nfindtime = 10m\nmaxretry = 5\nbantime.increment = true\nbantime.maxtime = 1w\nbantime.factor = 2\n\n[sshd]\nenabled = true\nport = ssh\nlogpath = %(sshd_log)s\nbackend = systemd\n\n[nginx-http-auth]\nenabled = true\nmaxretry = 3\nfindtime = 1m\nbantime = 2h\n\n[custom]\nenabled = true\nfilter = myapp\n\n[postfix]\nenabled = false\n";

    #[test]
    fn converts_jails_defaults_and_reports_the_rest() {
        let c = convert(&[("jail.local".into(), JAIL.into())]);
        // What the converter writes is the engine's part of the config file.
        #[derive(serde::Deserialize)]
        #[serde(deny_unknown_fields)]
        struct Out {
            #[serde(default)]
            ban: crate::decide::BanSection,
            #[serde(default)]
            allowlist: crate::decide::AllowlistSection,
            #[serde(default)]
            scenarios: crate::detect::scenarios::ScenariosSection,
        }
        let cfg: Out = toml::from_str(&c.toml).unwrap_or_else(|e| panic!("{e}\n{}", c.toml));
        assert_eq!(cfg.ban.duration.0, Duration::from_secs(3600));
        assert!(cfg.ban.escalate);
        assert_eq!(cfg.ban.max_duration.0, Duration::from_secs(7 * 86_400));
        let nets: Vec<String> = cfg.allowlist.nets().iter().map(|n| n.to_string()).collect();
        assert!(nets.contains(&"127.0.0.0/8".into()), "{nets:?}");
        assert!(nets.contains(&"192.0.2.0/24".into()), "{nets:?}");
        let specs = cfg.scenarios.specs().unwrap();
        let ssh = specs.iter().find(|s| s.name == "ssh-bruteforce").unwrap();
        assert_eq!(ssh.capacity, 4);
        assert_eq!(ssh.leak, 1200 * 1_000_000);
        let web = specs.iter().find(|s| s.name == "http-bruteforce").unwrap();
        assert_eq!(web.capacity, 2);
        assert_eq!(web.leak, 120 * 1_000_000);
        assert_eq!(web.ban, Some(7200 * 1_000_000));
        let notes = c.notes.join("\n");
        assert!(notes.contains("gateway.lan"), "{notes}");
        assert_eq!(c.fail2ban_jails, vec!["custom".to_string()]);
        assert!(notes.contains("bantime.factor"), "{notes}");
        let info = c.info.join("\n");
        assert!(info.contains("[sshd] backend = systemd"), "{info}");
        assert!(
            info.contains("127.0.0.1/8: host bits set, taken as 127.0.0.0/8"),
            "{info}"
        );
        assert!(
            !notes.contains("127.0.0.1/8"),
            "said once, as taken over: {notes}"
        );
        assert!(
            !notes.contains("postfix"),
            "disabled jails are ignored: {notes}"
        );
    }

    #[test]
    fn a_jails_ports_and_ignoreip_stay_the_jails() {
        let jail = "[DEFAULT]\nbanaction = nftables-multiport\n[sshd]\nenabled = true\nport = ssh,2222\nignoreip = 192.0.2.10 10.1.2.3/8\n[nginx-http-auth]\nenabled = true\nport = http,https\nbanaction = nftables-allports\n[dovecot]\nenabled = true\nport = pop3,imaps,nosuch\n";
        let c = convert(&[("jail.local".into(), jail.into())]);
        #[derive(serde::Deserialize)]
        struct Out {
            scenarios: crate::detect::scenarios::ScenariosSection,
        }
        let cfg: Out = toml::from_str(&c.toml).unwrap_or_else(|e| panic!("{e}\n{}", c.toml));
        let specs = cfg.scenarios.specs().unwrap();
        let by = |n: &str| specs.iter().find(|s| s.name == n).unwrap().clone();
        let ssh = by("ssh-bruteforce");
        assert_eq!(ssh.ports.as_slice(), &[22, 2222]);
        let allow: Vec<String> = ssh.allowlist.iter().map(|n| n.to_string()).collect();
        assert_eq!(allow, vec!["192.0.2.10/32", "10.0.0.0/8"]);
        assert!(by("http-bruteforce").ports.is_all(), "allports: every port");
        assert!(by("mail-bruteforce").ports.is_all());
        let notes = c.notes.join("\n");
        assert!(notes.contains("'nosuch' is not a port"), "{notes}");
        assert!(
            !notes.contains("ignoreip"),
            "taken over, not dropped: {notes}"
        );
        assert_eq!(jail_ports("0:65535").unwrap(), Vec::<u16>::new());
        assert_eq!(jail_ports("1000:1002").unwrap(), vec![1000, 1001, 1002]);
        assert!(jail_ports("1000:9000").is_err());
    }

    #[test]
    fn fail2ban_times() {
        assert_eq!(
            parse_f2b_time("600").unwrap(),
            Some(Duration::from_secs(600))
        );
        assert_eq!(
            parse_f2b_time("1h 30m").unwrap(),
            Some(Duration::from_secs(5400))
        );
        assert_eq!(
            parse_f2b_time("1mo").unwrap(),
            Some(Duration::from_secs(30 * 86_400))
        );
        assert_eq!(parse_f2b_time("-1").unwrap(), None);
        assert!(parse_f2b_time("5x").is_err());
    }
}
