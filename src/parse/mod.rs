//! Parsers: [`LogEntry`] in, [`Event`]s out. Pure: no I/O, no clock; an event carries the
//! entry's own timestamp.

pub mod sshd;

use std::fmt;
use std::net::IpAddr;
use std::str::FromStr;

use serde::Serialize;

use crate::source::LogEntry;
use crate::time::Micros;

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
    /// timeouts before authentication. Weaker evidence than an attempt.
    Probe,
    /// A successful login. Cancels buckets that ask for it.
    Success,
}

impl EventKind {
    pub const ALL: [EventKind; 4] = [
        EventKind::AuthFail,
        EventKind::InvalidUser,
        EventKind::Probe,
        EventKind::Success,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            EventKind::AuthFail => "auth_fail",
            EventKind::InvalidUser => "invalid_user",
            EventKind::Probe => "probe",
            EventKind::Success => "success",
        }
    }
}

impl fmt::Display for EventKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for EventKind {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        EventKind::ALL
            .into_iter()
            .find(|k| k.as_str() == s)
            .ok_or_else(|| {
                format!(
                    "unknown event kind '{s}' (known: {})",
                    EventKind::ALL.map(|k| k.as_str()).join(", ")
                )
            })
    }
}

/// One security-relevant fact taken from a log entry.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Event {
    /// The entry's own time.
    pub time: Micros,
    /// Which service produced it (`sshd`).
    pub service: &'static str,
    pub kind: EventKind,
    /// The remote address. IPv4-mapped IPv6 (`::ffff:a.b.c.d`) is already unmapped.
    pub ip: IpAddr,
    /// The user name the client tried, when the line names one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub user: Option<String>,
    /// How many occurrences this event stands for (at least 1).
    pub count: u32,
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
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct ParserStats {
    pub lines: u64,
    pub matched: u64,
    pub unmatched: u64,
    pub rejected: u64,
    pub events: u64,
}

/// Turns an IP as written in a log into the address events carry: IPv4-mapped IPv6 becomes
/// plain IPv4 so that one attacker has one identity (and one kernel set) whichever socket
/// family sshd used.
pub fn canonical_ip(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => IpAddr::V6(v6),
        },
        v4 => v4,
    }
}

/// Parses an address as logged, or `None` (host names are not resolved: a name in a log is
/// whatever the remote side's DNS says).
pub fn parse_ip(s: &str) -> Option<IpAddr> {
    IpAddr::from_str(s).ok().map(canonical_ip)
}

/// All parsers, chosen by the entry's identifier.
pub struct Parsers {
    sshd: sshd::SshdParser,
    pub sshd_stats: ParserStats,
}

impl Default for Parsers {
    fn default() -> Self {
        Self::new()
    }
}

impl Parsers {
    pub fn new() -> Self {
        Parsers {
            sshd: sshd::SshdParser::new(),
            sshd_stats: ParserStats::default(),
        }
    }

    /// The identifiers some parser wants (journal matches default to these).
    pub fn identifiers() -> &'static [&'static str] {
        &["sshd", "sshd-session"]
    }

    /// Feeds one entry; events are appended to `out`. Returns the parser's name and what it
    /// made of the line, or `None` when no parser takes this identifier.
    pub fn parse(
        &mut self,
        entry: &LogEntry,
        out: &mut Vec<Event>,
    ) -> Option<(&'static str, Parsed)> {
        match entry.identifier.as_str() {
            "sshd" | "sshd-session" => {
                let before = out.len();
                let r = self.sshd.parse(entry, out);
                let st = &mut self.sshd_stats;
                st.lines += 1;
                match r {
                    Parsed::Matched(_) => st.matched += 1,
                    Parsed::Unmatched => st.unmatched += 1,
                    Parsed::Rejected(_) => st.rejected += 1,
                }
                st.events += (out.len() - before) as u64;
                Some(("sshd", r))
            }
            _ => None,
        }
    }

    /// Forgets correlation state older than `now - horizon` (bounded memory).
    pub fn expire(&mut self, now: Micros) {
        self.sshd.expire(now);
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
