//! Apache httpd: access log (see [`super::web`]) and error log (2.2 and 2.4 formats, in a
//! file or through syslog), told apart by the line's shape.
//!
//! In the error log the client address sits in a fixed field, `[client ADDR(:port)]`, right
//! after the time, level and pid fields the server writes itself: it is taken there, before
//! any client-controlled text. The message after it (paths, user names, referrers) is only
//! classified, never searched for an address.

use regex::{CaptureLocations, Regex};

use super::web::{self, AccessLog, MAX_WEB_LINE};
use super::{parse_ip, precheck, Event, EventKind, Parsed, ServiceParser};
use crate::LogEntry;

pub struct ApacheParser {
    access: AccessLog,
    error: Regex,
    locs: CaptureLocations,
}

impl Default for ApacheParser {
    fn default() -> Self {
        Self::new()
    }
}

impl ApacheParser {
    pub fn new() -> ApacheParser {
        // [time] [module:level] [pid N:tid M] [client ADDR:port] (AHnnnnn: )?MSG
        let re = Regex::new(
            r"^(?:\[[A-Za-z]{3} [A-Za-z]{3} [0-9]{2} [0-9:.]{8,15} [0-9]{4}\] )?\[([A-Za-z0-9_]*):?[a-z]+[0-9]?\] (?:\[pid [0-9]+(?::tid [0-9]+)?\] )?(?:\([0-9]+\)[^\[]*: )?\[client (\[[0-9A-Fa-f:.]+\](?::[0-9]{1,5})?|[0-9A-Fa-f:.]+)\] (?:AH[0-9]{5}: )?(.*)$",
        );
        let error = match re {
            Ok(r) => r,
            Err(e) => panic!("apache error pattern: {e}"),
        };
        let locs = error.capture_locations();
        ApacheParser {
            access: AccessLog::new(),
            error,
            locs,
        }
    }
}

/// `ADDR`, `ADDR:port` (IPv4) or `[ADDR]:port` (IPv6) -> the address.
fn client_addr(s: &str) -> Option<std::net::IpAddr> {
    if let Some(r) = s.strip_prefix('[') {
        return parse_ip(r.split(']').next()?);
    }
    parse_ip(s).or_else(|| {
        let (a, port) = s.rsplit_once(':')?;
        if a.contains(':') || !port.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        parse_ip(a)
    })
}

/// What an error-log message is.
fn classify(module: &str, msg: &str) -> Option<(&'static str, EventKind)> {
    use EventKind::*;
    let m = msg.strip_prefix("Digest: ").unwrap_or(msg);
    let auth = [(" not found", "user "), (" not found", "user `")];
    for (needle, start) in auth {
        if m.starts_with(start) && m.contains(needle) {
            return Some(("user_not_found", AuthFail));
        }
    }
    if m.starts_with("user ")
        && (m.contains(": authentication failure for ")
            || m.contains(": password mismatch")
            || m.contains(": authorization failure for "))
    {
        return Some(("auth_failure", AuthFail));
    }
    if m.starts_with("Authorization of user ") && m.contains(" failed, reason: ") {
        return Some(("authorization_failed", AuthFail));
    }
    if m.starts_with("client used wrong authentication scheme") {
        return Some(("wrong_auth_scheme", AuthFail));
    }
    if m.starts_with("client denied by server configuration") {
        // mod_evasive reports its own rate limiting with this text: not an attack signal.
        if module.starts_with("evasive") {
            return Some(("rate_limited", Success)); // marker: matched, no event
        }
        return Some(("client_denied", AuthFail));
    }
    if m.starts_with("invalid nonce ") {
        if m.contains("hash is not") {
            // A stale nonce after a server restart: ordinary clients hit it.
            return Some(("digest_stale_nonce", Success));
        }
        return Some(("digest_invalid_nonce", AuthFail));
    }
    if m.starts_with("invalid qop ")
        || m.starts_with("realm mismatch - got ")
        || m.starts_with("unknown algorithm ")
    {
        return Some(("digest_failure", AuthFail));
    }
    if m.starts_with("Hostname ") && m.contains(" provided via SNI")
        || m.starts_with("No hostname was provided via SNI")
    {
        return Some(("sni_mismatch", Probe));
    }
    if m.starts_with("File does not exist: ")
        || m.starts_with("script not found or unable to stat: ")
        || (m.starts_with("script '") && m.ends_with("' not found or unable to stat"))
        || m.starts_with("Got error 'Primary script unknown")
    {
        return Some(("file_not_found", HttpProbe));
    }
    if m.starts_with("Invalid URI in request ")
        || m.starts_with("request failed: URI too long")
        || m.starts_with("request failed: erroneous characters after protocol string")
        || m.starts_with("Invalid method in request ")
    {
        return Some(("bad_request", HttpProbe));
    }
    if m.starts_with("/bin/bash: warning: ") && m.ends_with("ignoring function definition attempt")
        || m.starts_with("/bin/bash: error importing function definition for ")
    {
        return Some(("shellshock", HttpBadAgent));
    }
    None
}

/// The path an error message names, if any (filesystem path or request target).
fn message_path(msg: &str) -> Option<&str> {
    let m = msg.split(", referer: ").next().unwrap_or(msg);
    if let Some(p) = m.strip_prefix("File does not exist: ") {
        return Some(p);
    }
    if let Some(p) = m.strip_prefix("script not found or unable to stat: ") {
        return Some(p);
    }
    if let Some(p) = m.strip_prefix("script '") {
        return p.strip_suffix("' not found or unable to stat");
    }
    if let Some(r) = m.strip_prefix("Invalid URI in request ") {
        return Some(r);
    }
    None
}

impl ServiceParser for ApacheParser {
    fn parse(&mut self, entry: &LogEntry, out: &mut Vec<Event>) -> Parsed {
        let line = entry.message.trim_end_matches([' ', '\r']);
        if let Some(why) = precheck(line, MAX_WEB_LINE) {
            return Parsed::Rejected(why);
        }
        let t = entry.time;
        if AccessLog::looks_like(line) {
            return self.access.parse(line, t, out);
        }
        if self.error.captures_read(&mut self.locs, line).is_none() {
            return Parsed::Unmatched;
        }
        let g = |i: usize| self.locs.get(i).map(|(a, b)| &line[a..b]);
        let module = g(1).unwrap_or("");
        let msg = g(3).unwrap_or("");
        let Some((name, kind)) = classify(module, msg) else {
            return Parsed::Unmatched;
        };
        let Some(ip) = g(2).and_then(client_addr) else {
            return Parsed::Matched(name);
        };
        match kind {
            EventKind::Success => {}
            EventKind::HttpProbe => {
                let target = message_path(msg);
                let path = target.map(|p| p.split(['?', '#']).next().unwrap_or(p));
                if name == "bad_request" || !path.is_some_and(web::is_static) {
                    // Without a path, the message stands for it (distinct counting).
                    let p = path.or(Some(msg));
                    out.push(Event::new(t, web::SERVICE, kind, ip).with_path(p));
                }
                if let (Some(target), Some(path)) = (target, path) {
                    web::classify_target(ip, t, target, path, 404, out);
                }
            }
            EventKind::AuthFail => {
                let user = msg
                    .strip_prefix("Digest: ")
                    .unwrap_or(msg)
                    .strip_prefix("user ")
                    .and_then(|r| r.split([':', ' ']).next())
                    .map(|u| u.trim_matches(['`', '\'']))
                    .filter(|u| !u.is_empty());
                out.push(Event::new(t, web::SERVICE, kind, ip).with_user(user));
            }
            _ => out.push(Event::new(t, web::SERVICE, kind, ip)),
        }
        Parsed::Matched(name)
    }
}
