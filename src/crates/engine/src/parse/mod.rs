//! Parsers: [`LogEntry`] in, [`Event`]s out. Pure: no I/O, no clock; an event carries the
//! entry's own timestamp.

pub mod apache;
pub mod dovecot;
pub mod kernel;
pub mod nginx;
pub mod postfix;
pub mod proftpd;
pub mod pureftpd;
pub mod sshd;
pub mod template;
pub mod time;
pub mod user;
pub mod vsftpd;
pub mod web;

use std::fmt;
use std::net::IpAddr;
use std::str::FromStr;

use serde::Serialize;

use crate::time::Micros;
use crate::LogEntry;

/// Longest message a parser looks at. Longer ones are counted as rejected and skipped:
/// no real sshd line comes near it, and a hostile one must not cost time.
pub const MAX_MESSAGE_LEN: usize = 4096;

/// What an event says happened.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum EventKind {
    /// One failed authentication attempt (password, publickey, keyboard-interactive, none,
    /// refused root login...). `count` may be more than one ("message repeated N times",
    /// "PAM N more authentication failures").
    AuthFail,
    /// A connection named a user that does not exist. Once per connection; carries the user,
    /// for user-enumeration scenarios.
    InvalidUser,
    /// Pre-authentication noise: no identification string, banner or key-exchange errors,
    /// timeouts before authentication; for mail, rejected RCPT/EHLO/DATA and protocol abuse.
    /// Weaker evidence than an attempt.
    Probe,
    /// A successful login. Cancels buckets that ask for it.
    Success,
    /// A web request answered 400/403/404/405/444 for a path that is not a static asset
    /// (`path`: the request path without its query).
    HttpProbe,
    /// A request for a file that should never be served (`.env`, `.git/`, backups, keys...),
    /// whatever the answer.
    HttpSensitive,
    /// A request whose decoded target climbs out of the web root (`../`).
    HttpTraversal,
    /// A request for an administration interface (phpMyAdmin, wp-login, Tomcat manager...)
    /// answered 401/403/404.
    HttpAdminProbe,
    /// A request whose user agent names a known attack tool, or a header exploit
    /// (shellshock).
    HttpBadAgent,
    /// A packet the admin's own firewall rule logged (kernel LOG / nftables `log`): `port` is
    /// its destination port.
    PortProbe,
}

impl EventKind {
    pub const ALL: [EventKind; 10] = [
        EventKind::AuthFail,
        EventKind::InvalidUser,
        EventKind::Probe,
        EventKind::Success,
        EventKind::HttpProbe,
        EventKind::HttpSensitive,
        EventKind::HttpTraversal,
        EventKind::HttpAdminProbe,
        EventKind::HttpBadAgent,
        EventKind::PortProbe,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            EventKind::AuthFail => "auth_fail",
            EventKind::InvalidUser => "invalid_user",
            EventKind::Probe => "probe",
            EventKind::Success => "success",
            EventKind::HttpProbe => "http_probe",
            EventKind::HttpSensitive => "http_sensitive",
            EventKind::HttpTraversal => "http_traversal",
            EventKind::HttpAdminProbe => "http_admin_probe",
            EventKind::HttpBadAgent => "http_bad_agent",
            EventKind::PortProbe => "port_probe",
        }
    }
}

impl fmt::Display for EventKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A name that is no [`EventKind`]; the message lists the known ones.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown event kind '{0}' (known: {known})", known = EventKind::ALL.map(|k| k.as_str()).join(", "))]
pub struct UnknownKind(pub String);

impl FromStr for EventKind {
    type Err = UnknownKind;
    fn from_str(s: &str) -> Result<Self, UnknownKind> {
        EventKind::ALL
            .into_iter()
            .find(|k| k.as_str() == s)
            .ok_or_else(|| UnknownKind(s.to_string()))
    }
}

/// An event kind as written in the config (`auth_fail`).
#[derive(Debug, Clone, Copy)]
pub struct KindName(pub EventKind);

impl<'de> serde::Deserialize<'de> for KindName {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = <String as serde::Deserialize>::deserialize(d)?;
        s.parse().map(KindName).map_err(serde::de::Error::custom)
    }
}

/// One security-relevant fact taken from a log entry.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Event {
    /// The entry's own time.
    pub time: Micros,
    /// Which service it is about: `sshd`, `http`, `mail`, `ftp`, `firewall`, or a
    /// user-defined parser's service. Scenarios select on it.
    pub service: &'static str,
    pub kind: EventKind,
    /// The remote address. IPv4-mapped IPv6 (`::ffff:a.b.c.d`) is already unmapped.
    pub ip: IpAddr,
    /// The user name the client tried, when the line names one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub user: Option<String>,
    /// How many occurrences this event stands for (at least 1).
    pub count: u32,
    /// The request path (web) or other target, for `distinct = "path"` scenarios.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub path: Option<String>,
    /// The destination port (port probes), for `distinct = "port"` scenarios.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub port: Option<u16>,
}

impl Event {
    /// An event with count 1 and no user, path or port.
    pub fn new(time: Micros, service: &'static str, kind: EventKind, ip: IpAddr) -> Event {
        Event {
            time,
            service,
            kind,
            ip,
            user: None,
            count: 1,
            path: None,
            port: None,
        }
    }

    pub fn with_user(mut self, user: Option<&str>) -> Event {
        self.user = user.map(|u| truncate(u, MAX_FIELD).to_owned());
        self
    }

    pub fn with_path(mut self, path: Option<&str>) -> Event {
        self.path = path.map(|p| truncate(p, MAX_FIELD).to_owned());
        self
    }

    pub fn with_count(mut self, n: u32) -> Event {
        self.count = n.max(1);
        self
    }
}

/// Longest user name or path an event keeps (the rest is cut at a character boundary).
pub const MAX_FIELD: usize = 256;

/// `s` cut to at most `max` bytes at a character boundary.
pub fn truncate(s: &str, max: usize) -> &str {
    if s.len() <= max {
        return s;
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}

/// The result of feeding one entry to a parser.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Parsed {
    /// A pattern (named) matched. It may have produced no event, e.g. the second line of an
    /// attempt already counted from the first.
    Matched(&'static str),
    /// No pattern matched: ordinary noise (session opened, disconnects...).
    Unmatched,
    /// The line was refused before matching (too long, control characters); counted.
    Rejected(&'static str),
}

/// Per-parser counters, for `status` and metrics.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, serde::Deserialize)]
pub struct ParserStats {
    pub lines: u64,
    pub matched: u64,
    pub unmatched: u64,
    pub rejected: u64,
    pub events: u64,
}

// Parsers take addresses through these, so every event carries the canonical form.
pub use crowdwall_base::net::{canonical_ip, parse_ip};

/// What every parser does with one entry. Pure: no I/O, no clock.
pub trait ServiceParser {
    /// Parses one entry; events are appended to `out`.
    fn parse(&mut self, entry: &LogEntry, out: &mut Vec<Event>) -> Parsed;
    /// Forgets correlation state older than the parser's horizon, as of `now`.
    fn expire(&mut self, _now: Micros) {}
}

/// Refuses what no log line of these services contains (control characters) or what would
/// cost time for nothing (longer than `max`). `None`: go ahead.
pub fn precheck(msg: &str, max: usize) -> Option<&'static str> {
    if msg.len() > max {
        return Some("too_long");
    }
    if sshd::has_control(msg) {
        return Some("control_character");
    }
    None
}

/// The built-in parsers: name (what a file source's `parser =` names), service of their
/// events, and the identifiers (journal `SYSLOG_IDENTIFIER`, syslog tag) they take.
pub const BUILTIN: &[(&str, &str, &[&str])] = &[
    ("sshd", "sshd", &["sshd", "sshd-session"]),
    ("nginx", "http", &["nginx"]),
    ("apache", "http", &["apache2", "httpd", "apache"]),
    // Any `postfix*/...` identifier is taken too (multi-instance set-ups).
    (
        "postfix",
        "mail",
        &[
            "postfix/smtpd",
            "postfix/submission/smtpd",
            "postfix/smtps/smtpd",
            "postfix/postscreen",
        ],
    ),
    (
        "dovecot",
        "mail",
        &[
            "dovecot",
            "imap-login",
            "pop3-login",
            "submission-login",
            "managesieve-login",
            "auth-worker",
            "dovecot-auth",
        ],
    ),
    ("vsftpd", "ftp", &["vsftpd"]),
    ("proftpd", "ftp", &["proftpd"]),
    ("pure-ftpd", "ftp", &["pure-ftpd"]),
    ("kernel", "firewall", &["kernel"]),
];

const SSHD: usize = 0;
const NGINX: usize = 1;
const APACHE: usize = 2;
const POSTFIX: usize = 3;
const DOVECOT: usize = 4;
const VSFTPD: usize = 5;
const PROFTPD: usize = 6;
const PUREFTPD: usize = 7;
const KERNEL: usize = 8;

struct Slot {
    name: &'static str,
    parser: Box<dyn ServiceParser>,
    stats: ParserStats,
}

/// All parsers, chosen by the entry's identifier: a built-in parser's name or one of its
/// identifiers, or a user-defined parser's name or identifiers (which win over built-ins).
/// A file source sets the identifier of its entries to the parser it names.
pub struct Parsers {
    slots: Vec<Slot>,
    /// Identifiers and names of user-defined parsers -> slot.
    user: std::collections::HashMap<String, usize>,
}

impl Default for Parsers {
    fn default() -> Self {
        Self::new()
    }
}

impl Parsers {
    /// The built-in parsers only.
    pub fn new() -> Self {
        let slot = |name: &'static str, parser: Box<dyn ServiceParser>| Slot {
            name,
            parser,
            stats: ParserStats::default(),
        };
        Parsers {
            slots: vec![
                slot("sshd", Box::<sshd::SshdParser>::default()),
                slot("nginx", Box::<nginx::NginxParser>::default()),
                slot("apache", Box::<apache::ApacheParser>::default()),
                slot("postfix", Box::new(postfix::parser())),
                slot("dovecot", Box::<dovecot::DovecotParser>::default()),
                slot("vsftpd", Box::new(vsftpd::parser())),
                slot("proftpd", Box::<proftpd::ProftpdParser>::default()),
                slot("pure-ftpd", Box::new(pureftpd::parser())),
                slot("kernel", Box::new(kernel::KernelParser)),
            ],
            user: std::collections::HashMap::new(),
        }
    }

    /// Built-ins plus the configuration's user-defined parsers (compiled by
    /// [`user::ParsersSection::compile`]).
    pub fn with_user(defs: Vec<user::UserParser>) -> Self {
        let mut p = Parsers::new();
        for d in defs {
            let idx = p.slots.len();
            p.user.insert(d.name().to_string(), idx);
            for id in d.identifiers() {
                p.user.insert(id.clone(), idx);
            }
            let name = d.name_static();
            p.slots.push(Slot {
                name,
                parser: Box::new(d),
                stats: ParserStats::default(),
            });
        }
        p
    }

    /// Adds a parser taking entries whose identifier is `name` (fail2ban jails: `f2b:JAIL`).
    pub fn add(&mut self, name: &'static str, parser: Box<dyn ServiceParser>) {
        let idx = self.slots.len();
        self.user.insert(name.to_string(), idx);
        self.slots.push(Slot {
            name,
            parser,
            stats: ParserStats::default(),
        });
    }

    /// Entries with this identifier (journal `SYSLOG_IDENTIFIER`, syslog tag) go to the
    /// parser `name` added before, ahead of any built-in one: a fail2ban jail reading the
    /// journal (`backend = systemd`) takes its service's entries. `false`: no such parser.
    pub fn route(&mut self, identifier: &str, name: &str) -> bool {
        let Some(idx) = self.slots.iter().position(|s| s.name == name) else {
            return false;
        };
        self.user.insert(identifier.to_string(), idx);
        true
    }

    /// The identifiers some built-in parser takes (journal matches can default to these).
    pub fn identifiers() -> Vec<&'static str> {
        BUILTIN.iter().flat_map(|b| b.2.iter().copied()).collect()
    }

    /// Names a file source may give in `parser =`: built-ins and user-defined ones.
    pub fn names(&self) -> Vec<&'static str> {
        self.slots.iter().map(|s| s.name).collect()
    }

    /// Per-parser counters, by parser name.
    pub fn stats(&self) -> std::collections::BTreeMap<&'static str, ParserStats> {
        self.slots.iter().map(|s| (s.name, s.stats)).collect()
    }

    /// Adds the counters of the parsers this set replaces (a reload rebuilds the parsers):
    /// status and metrics keep counting since the daemon started instead of dropping to 0.
    pub fn carry_stats(&mut self, old: &std::collections::BTreeMap<&'static str, ParserStats>) {
        for s in &mut self.slots {
            if let Some(o) = old.get(s.name) {
                s.stats.lines += o.lines;
                s.stats.matched += o.matched;
                s.stats.unmatched += o.unmatched;
                s.stats.rejected += o.rejected;
                s.stats.events += o.events;
            }
        }
    }

    /// Sets the counters back to a copy taken earlier (entries read again after a restart
    /// to rebuild state are not lines read).
    pub fn restore_stats(&mut self, saved: &std::collections::BTreeMap<&'static str, ParserStats>) {
        for s in &mut self.slots {
            s.stats = saved.get(s.name).copied().unwrap_or_default();
        }
    }

    /// Counters of one parser.
    pub fn stats_of(&self, name: &str) -> Option<ParserStats> {
        self.slots.iter().find(|s| s.name == name).map(|s| s.stats)
    }

    /// The name of the parser that would take `entry`, if any.
    pub fn parser_for(&self, entry: &LogEntry) -> Option<&'static str> {
        self.slot_for(entry).map(|i| self.slots[i].name)
    }

    fn slot_for(&self, entry: &LogEntry) -> Option<usize> {
        let id = entry.identifier.as_str();
        if !self.user.is_empty() {
            if let Some(&i) = self.user.get(id) {
                return Some(i);
            }
        }
        let by_id = match id {
            "sshd" | "sshd-session" => Some(SSHD),
            "nginx" => Some(NGINX),
            "apache" | "apache2" | "httpd" => Some(APACHE),
            "postfix" => Some(POSTFIX),
            "dovecot" | "imap-login" | "pop3-login" | "submission-login" | "managesieve-login"
            | "auth-worker" | "dovecot-auth" => Some(DOVECOT),
            "vsftpd" => Some(VSFTPD),
            "proftpd" => Some(PROFTPD),
            "pure-ftpd" | "pure-ftpd-mysql" | "pure-ftpd-ldap" | "pure-ftpd-postgresql" => {
                Some(PUREFTPD)
            }
            "kernel" => Some(KERNEL),
            _ if id.starts_with("postfix") && id.contains('/') => Some(POSTFIX),
            _ if id.starts_with("httpd/") || id.starts_with("apache2/") => Some(APACHE),
            _ => None,
        };
        if by_id.is_some() {
            return by_id;
        }
        // PAM's own lines name the service they are about: `pam_unix(dovecot:auth): ...`,
        // logged under whatever identifier the process had (`auth`, the daemon's name).
        let svc = entry.message.strip_prefix("pam_unix(")?.split_once(':')?.0;
        match svc {
            "dovecot" => Some(DOVECOT),
            "vsftpd" => Some(VSFTPD),
            "proftpd" => Some(PROFTPD),
            "pure-ftpd" => Some(PUREFTPD),
            _ => None,
        }
    }

    /// Feeds one entry; events are appended to `out`. Returns the parser's name and what it
    /// made of the line, or `None` when no parser takes this identifier.
    pub fn parse(
        &mut self,
        entry: &LogEntry,
        out: &mut Vec<Event>,
    ) -> Option<(&'static str, Parsed)> {
        let i = self.slot_for(entry)?;
        let slot = &mut self.slots[i];
        let before = out.len();
        let r = slot.parser.parse(entry, out);
        let st = &mut slot.stats;
        st.lines += 1;
        match r {
            Parsed::Matched(_) => st.matched += 1,
            Parsed::Unmatched => st.unmatched += 1,
            Parsed::Rejected(_) => st.rejected += 1,
        }
        st.events += (out.len() - before) as u64;
        Some((slot.name, r))
    }

    /// Forgets correlation state older than each parser's horizon (bounded memory).
    pub fn expire(&mut self, now: Micros) {
        for s in &mut self.slots {
            s.parser.expire(now);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mapped_v6_becomes_v4() {
        assert_eq!(
            parse_ip("::ffff:203.0.113.5"),
            Some("203.0.113.5".parse().unwrap())
        );
        assert_eq!(
            parse_ip("2001:db8::1"),
            Some("2001:db8::1".parse().unwrap())
        );
        assert_eq!(parse_ip("example.com"), None);
    }

    #[test]
    fn kinds_round_trip() {
        for k in EventKind::ALL {
            assert_eq!(k.as_str().parse::<EventKind>().unwrap(), k);
        }
        assert!("nope".parse::<EventKind>().is_err());
    }
}
