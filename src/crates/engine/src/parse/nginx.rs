//! nginx: access log (see [`super::web`]) and error log, told apart by the line's shape, so
//! one `parser = "nginx"` serves both files and the journal's `nginx` entries.
//!
//! Error-log lines end with `, client: ADDR, server: NAME, request: "...", host: "..."`.
//! The user name of a basic-auth failure comes BEFORE the address and is the client's own
//! text (nginx does not escape it), so the address is taken as the last one followed by a
//! strict tail: the request line, host, upstream and referrer as single tokens without
//! spaces. `, client: ` contains a space, so no fake one can hide in that tail; a request
//! whose tail is not that strict (spaces in the URI) is matched without an event.

use super::template::{Hit, Rule, Rules};
use super::web::{self, AccessLog, MAX_WEB_LINE};
use super::{precheck, Event, EventKind, Parsed, ServiceParser};
use crate::LogEntry;

const TAIL: &str = r#", server: \S*, request: "[A-Za-z]{1,16} <path> HTTP/[0-9.]{1,3}"(?:, upstream: "[^"\s]*")?(?:, host: "[^"\s]*")?(?:, referrer: "[^"\s]*")?"#;

pub struct NginxParser {
    access: AccessLog,
    rules: Rules,
}

impl Default for NginxParser {
    fn default() -> Self {
        Self::new()
    }
}

// Rule names double as `Parsed::Matched` names.
const R_AUTH: &str = "basic_auth_failure";
const R_NOFILE: &str = "file_not_found";
const R_FORBIDDEN: &str = "access_forbidden";
const R_SCRIPT: &str = "primary_script_unknown";
const R_SSL: &str = "ssl_handshake_failed";

impl NginxParser {
    pub fn new() -> NginxParser {
        use EventKind::*;
        let rules = vec![
            Rule::builtin(
                R_AUTH,
                "user \"",
                AuthFail,
                &format!(
                    r#"user "<user>":? (?:password mismatch|was not found in "[^"]*"), client: <ip>{TAIL}"#
                ),
            ),
            Rule::builtin(
                R_NOFILE,
                "(2: No such file or directory), client: ",
                HttpProbe,
                &format!(
                    r#"(?:open\(\) "<any>" failed|"<any>" is not found) \(2: No such file or directory\), client: <ip>{TAIL}"#
                ),
            ),
            Rule::builtin(
                R_FORBIDDEN,
                "forbidden",
                HttpProbe,
                &format!(
                    r#"(?:access forbidden by rule|directory index of "<any>" is forbidden), client: <ip>{TAIL}"#
                ),
            ),
            Rule::builtin(
                R_SCRIPT,
                "Primary script unknown",
                HttpProbe,
                &format!(
                    r#"FastCGI sent in stderr: "Primary script unknown" while reading response header from upstream, client: <ip>{TAIL}"#
                ),
            ),
            Rule::builtin(
                R_SSL,
                "SSL_do_handshake() failed",
                Probe,
                r"SSL_do_handshake\(\) failed \(SSL: error:[0-9A-Fa-f]+:SSL routines:[^)]*\) while SSL handshaking, client: <ip>, server: \S+",
            ),
        ];
        NginxParser {
            access: AccessLog::new(),
            rules: Rules::new(rules),
        }
    }

    /// Names of the error-log rules, for `explain`.
    pub fn rule_names(&self) -> Vec<&'static str> {
        self.rules.regexes().into_iter().map(|(n, _)| n).collect()
    }
}

/// `2015/01/21 10:56:10 [error] 2833#0: *16336 MSG` -> MSG (the date is optional: syslog).
fn strip_error_prefix(line: &str) -> Option<&str> {
    let b = line.as_bytes();
    let mut rest = line;
    if b.len() > 20 && b[4] == b'/' && b[7] == b'/' && b[10] == b' ' && b[13] == b':' {
        rest = &line[20..];
    }
    let rest = rest.strip_prefix('[')?;
    let (level, rest) = rest.split_once("] ")?;
    if level.is_empty() || !level.bytes().all(|c| c.is_ascii_lowercase()) {
        return None;
    }
    let (pid, rest) = rest.split_once(": ")?;
    if !pid.bytes().all(|c| c.is_ascii_digit() || c == b'#') {
        return None;
    }
    match rest.strip_prefix('*') {
        Some(r) => {
            let (cid, msg) = r.split_once(' ')?;
            cid.bytes().all(|c| c.is_ascii_digit()).then_some(msg)
        }
        None => Some(rest),
    }
}

impl ServiceParser for NginxParser {
    fn parse(&mut self, entry: &LogEntry, out: &mut Vec<Event>) -> Parsed {
        let line = entry.message.trim_end_matches([' ', '\r']);
        if let Some(why) = precheck(line, MAX_WEB_LINE) {
            return Parsed::Rejected(why);
        }
        let t = entry.time;
        if AccessLog::looks_like(line) {
            return self.access.parse(line, t, out);
        }
        let Some(msg) = strip_error_prefix(line) else {
            return Parsed::Unmatched;
        };
        if msg.starts_with("limiting requests, ")
            || msg.starts_with("limiting connections by zone ")
        {
            // Rate limiting already acted; it is not an attack signal by itself.
            return Parsed::Matched("rate_limited");
        }
        if msg.starts_with("no user/password was provided for basic authentication") {
            // Every browser's first request to a protected page.
            return Parsed::Matched("basic_auth_prompt");
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
        match kind {
            EventKind::HttpProbe => {
                let target = f.path.unwrap_or("");
                let path = target.split(['?', '#']).next().unwrap_or(target);
                let status = if name == R_FORBIDDEN { 403 } else { 404 };
                if !web::is_static(path) {
                    out.push(Event::new(t, web::SERVICE, kind, ip).with_path(Some(path)));
                }
                web::classify_target(ip, t, target, path, status, out);
            }
            EventKind::AuthFail => {
                out.push(
                    Event::new(t, web::SERVICE, kind, ip)
                        .with_user(f.user)
                        .with_path(f.path),
                );
            }
            _ => out.push(Event::new(t, web::SERVICE, kind, ip)),
        }
        Parsed::Matched(name)
    }
}
