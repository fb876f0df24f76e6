//! Dovecot: login processes (`imap-login`, `pop3-login`, `submission-login`,
//! `managesieve-login`), the auth process and workers (`auth`, `auth-worker`, with
//! `auth_verbose`), and `pam_unix(dovecot:auth)`; in the journal, in syslog or in Dovecot's
//! own log file.
//!
//! # Attempts, not lines
//!
//! A login process logs one summary per connection, `(auth failed, N attempts ...)`; with
//! `auth_verbose = yes` the auth worker also logs each failed attempt. Each per-attempt line
//! counts one, and is remembered per address for ten minutes; a summary counts only the
//! attempts the per-attempt lines did not already count, so the total is the same whether
//! one or both kinds of lines are logged.
//!
//! # Hostile input
//!
//! User names are the client's text and come before the address (`user=<NAME>, ...,
//! rip=ADDR`, `pam(NAME,ADDR)`); only server-written text follows the address. The address
//! is the last that fits (greedy name), see [`super::template`]. PAM lines have client text
//! on both sides (`ruser=` and `user=`), so both readings must agree.

use std::net::IpAddr;
use std::num::NonZeroUsize;

use lru::LruCache;

use super::template::{Hit, Rule, Rules};
use super::{precheck, Event, EventKind, Parsed, ServiceParser, MAX_MESSAGE_LEN};
use crate::time::{Micros, SECOND};
use crate::LogEntry;

pub const SERVICE: &str = "mail";
const HORIZON: Micros = 600 * SECOND;
const MAX_TRACKED: usize = 16_384;

pub const PAM_BODY: &str = r"authentication failure; logname=\S* uid=\S* euid=\S* tty=\S* ruser=<any> rhost=<ip>(?: +user=<user>)?";

const R_SUMMARY: &str = "login_auth_failed";
const R_WORKER: &str = "auth_worker_failure";
const R_PAM: &str = "pam_unix_auth_failure";

pub struct DovecotParser {
    rules: Rules,
    /// Per-attempt failures not yet matched by a login summary: address -> (count, last).
    unclaimed: LruCache<IpAddr, (u32, Micros)>,
}

impl Default for DovecotParser {
    fn default() -> Self {
        Self::new()
    }
}

impl DovecotParser {
    pub fn new() -> DovecotParser {
        use EventKind::*;
        let rules = vec![
            Rule::builtin(
                R_SUMMARY,
                "rip=",
                AuthFail,
                r"(?:Aborted login|Disconnected|Client has quit the connection|Remote closed connection|Login aborted)<any>\((?:auth failed, <count> attempts?(?: in [0-9]+ secs?)?|tried to use dis(?:abled|allowed) plaintext auth|proxy dest auth failed)\): (?:user=<<user>>, )?(?:method=\S+, )?rip=<ip>(?:, .*)?",
            ),
            Rule::builtin(
                R_WORKER,
                "): ",
                AuthFail,
                r"(?:pam|passwd-file|passwd|shadow|sql|ldap|checkpassword|bsdauth|static|lua|oauth2|vpopmail)\(<user>,<ip>(?:,<[^>]*>|,)?\): (?:unknown user|[Pp]assword mismatch|invalid credentials|pam_authenticate\(\) failed: [^:]*(?:: <count> Time\(s\))?)(?: \(.*\))?",
            ),
            Rule::builtin(
                R_PAM,
                "authentication failure; ",
                AuthFail,
                &format!(r"pam_unix\(dovecot:auth\): {PAM_BODY}"),
            ),
        ];
        DovecotParser {
            rules: Rules::new(rules),
            unclaimed: LruCache::new(NonZeroUsize::new(MAX_TRACKED).unwrap_or(NonZeroUsize::MIN)),
        }
    }
}

/// Drops what comes before Dovecot's message: a timestamp of Dovecot's own log file
/// (`Jan 29 09:33:58 `, `2013-08-11 03:56:40 `, daemontools' `@4000...`), process names
/// (`dovecot: `, `imap-login: `, `auth-worker(304): `), the level (`Info: `) and the auth
/// worker's connection prefix.
fn strip_prefixes(mut m: &str) -> &str {
    let b = m.as_bytes();
    if b.first() == Some(&b'@') && b.len() > 26 && b[25] == b' ' {
        m = &m[26..];
    } else if b.len() > 16 && b[3] == b' ' && b[6] == b' ' && b[9] == b':' && b[12] == b':' {
        m = &m[16..];
    } else if b.len() > 20 && b[4] == b'-' && b[7] == b'-' && b[13] == b':' && b[16] == b':' {
        m = &m[20..];
    }
    loop {
        let Some((head, rest)) = m.split_once(": ") else {
            return m;
        };
        let name = head.split('(').next().unwrap_or(head);
        let known = matches!(
            name,
            "dovecot"
                | "dovecot-auth"
                | "auth"
                | "auth-worker"
                | "imap-login"
                | "pop3-login"
                | "submission-login"
                | "managesieve-login"
                | "lmtp"
                | "Info"
                | "Warning"
                | "Error"
        ) || head.starts_with("conn unix:")
            || (head.starts_with("auth-worker<") && head.ends_with('>'));
        // `name(...)` must close at the end of the head: `auth-worker(304)`.
        let well_formed = head.len() == name.len() || head.ends_with(')') || head.ends_with('>');
        if !(known && well_formed) {
            return m;
        }
        m = rest;
    }
}

impl ServiceParser for DovecotParser {
    fn parse(&mut self, entry: &LogEntry, out: &mut Vec<Event>) -> Parsed {
        let msg = strip_prefixes(entry.message.trim_end_matches(' '));
        if let Some(why) = precheck(msg, MAX_MESSAGE_LEN) {
            return Parsed::Rejected(why);
        }
        let Hit {
            rule: name,
            kind,
            ip,
            found: f,
        } = match self.rules.hit(msg) {
            Ok(h) => h,
            Err(p) => return p,
        };
        let t = entry.time;
        let n = f.count.unwrap_or(1).max(1);
        let user = f.user.filter(|u| !u.is_empty());
        let n = if name == R_SUMMARY {
            // Attempts already counted from per-attempt lines are not counted again.
            let (prior, _) = self.unclaimed.pop(&ip).unwrap_or((0, t));
            let claimed = prior.min(n);
            if prior > claimed {
                self.unclaimed.put(ip, (prior - claimed, t));
            }
            n - claimed
        } else {
            let e = self.unclaimed.get_or_insert_mut(ip, || (0, t));
            e.0 = e.0.saturating_add(n);
            e.1 = t;
            n
        };
        if n > 0 {
            out.push(
                Event::new(t, SERVICE, kind, ip)
                    .with_user(user)
                    .with_count(n),
            );
        }
        Parsed::Matched(name)
    }

    fn expire(&mut self, now: Micros) {
        let cutoff = now.saturating_sub(HORIZON);
        while let Some((_, &(_, last))) = self.unclaimed.peek_lru() {
            if last >= cutoff {
                break;
            }
            self.unclaimed.pop_lru();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn feed(p: &mut DovecotParser, t: i64, msg: &str) -> u32 {
        let e = LogEntry {
            time: t * SECOND,
            identifier: "dovecot".into(),
            pid: None,
            message: msg.into(),
        };
        let mut out = vec![];
        p.parse(&e, &mut out);
        out.iter().map(|e| e.count).sum()
    }

    #[test]
    fn per_attempt_lines_and_summary_count_once() {
        let mut p = DovecotParser::new();
        let worker = "auth-worker(7): pam(bob,192.0.2.9): pam_authenticate() failed: Authentication failure (password mismatch?)";
        let summary = "imap-login: Disconnected (auth failed, 3 attempts in 9 secs): user=<bob>, method=PLAIN, rip=192.0.2.9, lip=10.0.0.1, TLS";
        let n = feed(&mut p, 0, worker) + feed(&mut p, 1, worker) + feed(&mut p, 2, worker);
        assert_eq!(n, 3);
        assert_eq!(feed(&mut p, 3, summary), 0, "already counted");
        // Only the summary (auth_verbose off): all of it.
        assert_eq!(feed(&mut p, 4, summary), 3);
        // Worker lines expire with the horizon.
        feed(&mut p, 10, worker);
        p.expire(10 * SECOND + HORIZON + SECOND);
        assert_eq!(feed(&mut p, 700, summary), 3);
    }
}
