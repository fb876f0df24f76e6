//! ProFTPD: failed logins, unknown users, refused root logins and the per-session maximum,
//! from syslog/the journal (`proftpd[PID]: SERVER (NAME[ADDR]) - MSG`) or ProFTPD's own log
//! file (`2013-11-16 21:59:30,121 HOST proftpd[PID] SERVER (NAME[ADDR]): MSG`).
//!
//! The address is taken from the `(NAME[ADDR])` field right after the server name, which the
//! server writes before the message; user names inside the message (`USER x (Login
//! failed)`) cannot move it. NAME is the client's reverse DNS name: one that holds brackets,
//! parentheses or spaces makes the line unmatched rather than ambiguous.
//!
//! # Attempts, not lines
//!
//! One session process (pid) makes several attempts and may end with `Maximum login attempts
//! (N) exceeded`. Per pid, each failure line counts one, and the summary raises the count to
//! N: only the difference is emitted.

use std::num::NonZeroUsize;

use lru::LruCache;
use regex::{CaptureLocations, Regex};

use super::{parse_ip, precheck, Event, EventKind, Parsed, ServiceParser, MAX_MESSAGE_LEN};
use crate::time::{Micros, SECOND};
use crate::LogEntry;

pub const SERVICE: &str = "ftp";
const HORIZON: Micros = 600 * SECOND;

pub struct ProftpdParser {
    re: Regex,
    locs: CaptureLocations,
    /// pid -> (address, attempts counted, last seen).
    sessions: LruCache<u32, (std::net::IpAddr, u32, Micros)>,
}

impl Default for ProftpdParser {
    fn default() -> Self {
        Self::new()
    }
}

impl ProftpdParser {
    pub fn new() -> ProftpdParser {
        let re = Regex::new(
            r"^(?:(?:[0-9]{4}-[0-9]{2}-[0-9]{2} [0-9:]{8}(?:,[0-9]+)?|[A-Z][a-z]{2} +[0-9]{1,2} [0-9:]{8}) \S+ )?(?:proftpd\[([0-9]+)\]:? )?\S+ \([^\s\[\]()]*\[([0-9A-Fa-f:.]+)\]\)(?::| -) (.*)$",
        );
        let re = match re {
            Ok(r) => r,
            Err(e) => panic!("proftpd pattern: {e}"),
        };
        ProftpdParser {
            locs: re.capture_locations(),
            re,
            sessions: LruCache::new(NonZeroUsize::new(16_384).unwrap_or(NonZeroUsize::MIN)),
        }
    }
}

impl ServiceParser for ProftpdParser {
    fn parse(&mut self, entry: &LogEntry, out: &mut Vec<Event>) -> Parsed {
        let line = entry.message.trim_end_matches(' ');
        if let Some(why) = precheck(line, MAX_MESSAGE_LEN) {
            return Parsed::Rejected(why);
        }
        if self.re.captures_read(&mut self.locs, line).is_none() {
            return Parsed::Unmatched;
        }
        let g = |i: usize| self.locs.get(i).map(|(a, b)| &line[a..b]);
        let pid = g(1).and_then(|p| p.parse::<u32>().ok()).or(entry.pid);
        let msg = g(3).unwrap_or("");
        let (name, user, at_least) = if let Some(r) = msg.strip_prefix("USER ") {
            if let Some((u, _)) = r.split_once(" (Login failed)") {
                ("login_failed", Some(u), None)
            } else if let Some((u, _)) = r.split_once(": no such user found from ") {
                ("no_such_user", Some(u), None)
            } else {
                return Parsed::Unmatched;
            }
        } else if msg.starts_with("SECURITY VIOLATION: ")
            && msg
                .trim_end_matches('.')
                .eq_ignore_ascii_case("SECURITY VIOLATION: root login attempted")
        {
            ("root_login_attempted", Some("root"), None)
        } else if let Some(r) = msg.strip_prefix("Maximum login attempts (") {
            let Some((n, rest)) = r.split_once(')') else {
                return Parsed::Unmatched;
            };
            if rest != " exceeded" {
                return Parsed::Unmatched;
            }
            ("max_login_attempts", None, n.parse::<u32>().ok())
        } else {
            return Parsed::Unmatched;
        };
        let Some(ip) = g(2).and_then(parse_ip) else {
            return Parsed::Matched(name);
        };
        let t = entry.time;
        let n = match pid {
            Some(p) => {
                let s = match self.sessions.get_mut(&p) {
                    Some(s) if s.0 == ip => s,
                    _ => {
                        self.sessions.put(p, (ip, 0, t));
                        match self.sessions.get_mut(&p) {
                            Some(s) => s,
                            None => return Parsed::Matched(name),
                        }
                    }
                };
                s.2 = t;
                let target = match at_least {
                    Some(k) => s.1.max(k),
                    None => s.1.saturating_add(1),
                };
                let n = target - s.1;
                s.1 = target;
                n
            }
            None => at_least.unwrap_or(1),
        };
        if n > 0 {
            out.push(
                Event::new(t, SERVICE, EventKind::AuthFail, ip)
                    .with_user(user)
                    .with_count(n),
            );
        }
        Parsed::Matched(name)
    }

    fn expire(&mut self, now: Micros) {
        let cutoff = now.saturating_sub(HORIZON);
        while let Some((_, &(_, _, last))) = self.sessions.peek_lru() {
            if last >= cutoff {
                break;
            }
            self.sessions.pop_lru();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_session_counts_attempts_up_to_its_maximum() {
        let mut p = ProftpdParser::new();
        let mut total = 0;
        for m in [
            "srv (h[192.0.2.9]) - USER bob (Login failed): Incorrect password.",
            "srv (h[192.0.2.9]) - USER bob (Login failed): Incorrect password.",
            "srv (h[192.0.2.9]) - Maximum login attempts (3) exceeded",
        ] {
            let e = LogEntry {
                time: 0,
                identifier: "proftpd".into(),
                pid: Some(42),
                message: m.into(),
            };
            let mut out = vec![];
            assert!(matches!(p.parse(&e, &mut out), Parsed::Matched(_)), "{m}");
            total += out.iter().map(|e| e.count).sum::<u32>();
        }
        assert_eq!(total, 3);
    }
}
