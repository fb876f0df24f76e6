//! Web access logs (Common and Combined Log Format, as nginx and Apache write them) and the
//! classification of a request into web events. Shared by [`super::nginx`] and
//! [`super::apache`].
//!
//! The client address is the FIRST field of the line (optionally after Apache's
//! `vhost:port` of `vhost_combined`): the server writes it before any client-controlled text,
//! so a path, user name, referrer or user agent cannot move it. The rest is read by a small
//! scanner (one pass, no backtracking); quoted fields allow backslash escapes (Apache writes
//! `\"`, nginx `\x22`).
//!
//! One request can yield several events (a 404 on `/.git/config` is both a probe and a
//! sensitive file); every probing scenario counts distinct paths, so the same path seen in
//! both the access and the error log is counted once.

use super::{parse_ip, Event, EventKind, Parsed};
use crate::time::Micros;

pub const SERVICE: &str = "http";

/// Longest web log line looked at: nginx refuses request lines over 8 KiB by default, so a
/// real request always fits; longer lines are rejected and counted.
pub const MAX_WEB_LINE: usize = 16 * 1024;

/// The access-log reader. A hand-written scanner (no regex): one pass over the line.
///
/// The timestamp is the first `[dd/Mon/yyyy:hh:mm:ss( +zzzz)?] "` after the address: the
/// user name before it cannot fake one, because both servers escape `"` in logged values
/// (nginx as `\x22`, Apache as `\"`). Quoted fields end at the first unescaped `"`.
#[derive(Default)]
pub struct AccessLog;

/// `dd/Mon/yyyy:hh:mm:ss` optionally followed by ` +zzzz`: its length, if `s` starts with one.
fn timestamp_len(s: &[u8]) -> Option<usize> {
    let d = |i: usize| s.get(i).is_some_and(u8::is_ascii_digit);
    let a = |i: usize| s.get(i).is_some_and(u8::is_ascii_alphabetic);
    let at = |i: usize, c: u8| s.get(i) == Some(&c);
    let ok = d(0)
        && d(1)
        && at(2, b'/')
        && a(3)
        && a(4)
        && a(5)
        && at(6, b'/')
        && (7..11).all(d)
        && at(11, b':')
        && d(12)
        && d(13)
        && at(14, b':')
        && d(15)
        && d(16)
        && at(17, b':')
        && d(18)
        && d(19);
    if !ok {
        return None;
    }
    if at(20, b' ') && (at(21, b'+') || at(21, b'-')) && (22..26).all(d) {
        Some(26)
    } else {
        Some(20)
    }
}

/// A quoted field at the start of `s` (`"..."`, backslash escapes): (content, rest after the
/// closing quote).
fn quoted(s: &str) -> Option<(&str, &str)> {
    let b = s.as_bytes();
    if b.first() != Some(&b'"') {
        return None;
    }
    let mut i = 1;
    while i < b.len() {
        match b[i] {
            b'\\' => i += 2,
            b'"' => return Some((&s[1..i], &s[i + 1..])),
            _ => i += 1,
        }
    }
    None
}

impl AccessLog {
    pub fn new() -> AccessLog {
        AccessLog
    }

    /// True when the line has the shape of an access log line (cheap check for dispatch).
    pub fn looks_like(line: &str) -> bool {
        line.as_bytes()
            .first()
            .is_some_and(|b| b.is_ascii_hexdigit() || *b == b':')
            && line.contains(" [")
            && line.contains("] \"")
    }

    /// Parses one access log line; events go to `out`.
    pub fn parse(&mut self, line: &str, t: Micros, out: &mut Vec<Event>) -> Parsed {
        match split_access(line) {
            None => Parsed::Unmatched,
            Some(f) => {
                let Some(ip) = parse_ip(f.ip) else {
                    return Parsed::Matched("access_no_address");
                };
                let user = Some(f.user).filter(|u| *u != "-" && !u.is_empty());
                classify_request(ip, t, f.request, f.status, user, f.referer, f.agent, out);
                Parsed::Matched("access")
            }
        }
    }
}

/// The fields of one access log line.
pub struct AccessFields<'a> {
    pub ip: &'a str,
    pub user: &'a str,
    pub request: &'a str,
    pub status: u16,
    pub referer: &'a str,
    pub agent: &'a str,
}

/// `[vhost:port ]ip ident user [time] "request" status bytes[ "referer" "agent"[ ...]]`.
pub fn split_access(line: &str) -> Option<AccessFields<'_>> {
    let (mut first, mut rest) = line.split_once(' ')?;
    // Apache's vhost_combined starts with `vhost:port`.
    if parse_ip(first).is_none() {
        if let Some((_, port)) = first.rsplit_once(':') {
            if !port.is_empty() && port.bytes().all(|b| b.is_ascii_digit()) {
                (first, rest) = rest.split_once(' ')?;
            }
        }
    }
    if first.is_empty() {
        return None;
    }
    let (_ident, rest) = rest.split_once(' ')?;
    // user, then ` [time] "`; the user may be empty.
    let mut from = 0;
    let (user, after_ts) = loop {
        let j = if from == 0 && rest.starts_with('[') {
            0
        } else {
            from + rest.get(from..)?.find(" [")? + 1
        };
        let b = rest.as_bytes();
        if let Some(n) = b.get(j + 1..).and_then(timestamp_len) {
            let end = j + 1 + n;
            if rest.get(end..)?.starts_with("] \"") {
                let user = if j == 0 { "" } else { &rest[..j - 1] };
                break (user, &rest[end + 2..]);
            }
        }
        from = j + 1;
    };
    let (request, rest) = quoted(after_ts)?;
    let rest = rest.strip_prefix(' ')?;
    let (status, rest) = rest.split_at_checked(3)?;
    if !status.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let status: u16 = status.parse().ok()?;
    let rest = rest.strip_prefix(' ')?;
    let (bytes, rest) = rest.split_once(' ').unwrap_or((rest, ""));
    if !(bytes == "-" || (!bytes.is_empty() && bytes.bytes().all(|b| b.is_ascii_digit()))) {
        return None;
    }
    let (referer, agent) = match quoted(rest) {
        Some((r, tail)) => match tail.strip_prefix(' ').and_then(quoted) {
            Some((a, _)) => (r, a),
            None => (r, ""),
        },
        None => ("", ""),
    };
    Some(AccessFields {
        ip: first,
        user,
        request,
        status,
        referer,
        agent,
    })
}

/// Statuses that count as probing when the path is not a static asset (444: nginx's "close
/// without answer", used to drop bad clients).
const PROBE_STATUSES: &[u16] = &[400, 403, 404, 405, 444];

/// Turns one request into events. `request` is the request line as logged (may be garbage).
#[allow(clippy::too_many_arguments)]
pub fn classify_request(
    ip: std::net::IpAddr,
    t: Micros,
    request: &str,
    status: u16,
    user: Option<&str>,
    referer: &str,
    agent: &str,
    out: &mut Vec<Event>,
) {
    let mut parts = request.splitn(3, ' ');
    let (method, target) = match (parts.next(), parts.next(), parts.next()) {
        (Some(m), Some(t), Some(p)) if p.starts_with("HTTP/") => (m, t),
        (Some(m), Some(t), None) if m.bytes().all(|b| b.is_ascii_uppercase()) => (m, t),
        _ => ("", request),
    };
    let path = target.split(['?', '#']).next().unwrap_or(target);
    let ev = |kind: EventKind| Event::new(t, SERVICE, kind, ip).with_path(Some(path));
    let well_formed = !method.is_empty();
    if PROBE_STATUSES.contains(&status) && (!well_formed || !is_static(path)) {
        out.push(ev(EventKind::HttpProbe));
    }
    classify_target(ip, t, target, path, status, out);
    if method == "POST" && (status == 401 || status == 403) {
        out.push(ev(EventKind::AuthFail).with_user(user));
    }
    if is_bad_agent(agent) || is_shellshock(referer) {
        out.push(ev(EventKind::HttpBadAgent));
    }
}

/// Events that depend on the target only (also used for error-log lines that name one).
pub fn classify_target(
    ip: std::net::IpAddr,
    t: Micros,
    target: &str,
    path: &str,
    status: u16,
    out: &mut Vec<Event>,
) {
    let ev = |kind: EventKind| Event::new(t, SERVICE, kind, ip).with_path(Some(path));
    let decoded = decode(target);
    if is_traversal(&decoded) {
        out.push(ev(EventKind::HttpTraversal));
    }
    let decoded_path = decode(path).to_ascii_lowercase();
    if is_sensitive(&decoded_path) {
        out.push(ev(EventKind::HttpSensitive));
    }
    if matches!(status, 401 | 403 | 404) && is_admin(&decoded_path) {
        out.push(ev(EventKind::HttpAdminProbe));
    }
}

/// Percent-decoding, repeated (double encoding is a classic evasion), with backslashes as
/// slashes. Invalid escapes stay as they are.
pub fn decode(s: &str) -> String {
    let mut cur = s.replace('\\', "/");
    for _ in 0..3 {
        if !cur.contains('%') {
            break;
        }
        let b = cur.as_bytes();
        let mut out = Vec::with_capacity(b.len());
        let mut i = 0;
        while i < b.len() {
            if b[i] == b'%' && i + 2 < b.len() {
                let hex = |c: u8| (c as char).to_digit(16);
                if let (Some(h), Some(l)) = (hex(b[i + 1]), hex(b[i + 2])) {
                    out.push((h * 16 + l) as u8);
                    i += 3;
                    continue;
                }
            }
            // %u002e (IIS) and overlong UTF-8 are not decoded: they are not a path on nginx
            // or Apache.
            out.push(b[i]);
            i += 1;
        }
        cur = String::from_utf8_lossy(&out).replace('\\', "/");
    }
    cur
}

pub fn is_traversal(decoded: &str) -> bool {
    decoded.contains("/../")
        || decoded.starts_with("../")
        || decoded.ends_with("/..")
        || decoded.contains("=../")
        || decoded.contains("/..;/")
        || decoded.contains("/.../")
}

const STATIC_EXT: &[&str] = &[
    "css", "js", "mjs", "map", "png", "jpg", "jpeg", "gif", "ico", "svg", "webp", "avif", "bmp",
    "woff", "woff2", "ttf", "otf", "eot", "mp4", "webm", "mp3", "ogg",
];

/// Missing static assets are mistakes of the site, not probes (and browsers ask for
/// `/favicon.ico`, crawlers for `/robots.txt`, by themselves).
pub fn is_static(path: &str) -> bool {
    let last = path.rsplit('/').next().unwrap_or("");
    let lower = last.to_ascii_lowercase();
    if lower == "robots.txt" || lower == "sitemap.xml" || lower.starts_with("apple-touch-icon") {
        return true;
    }
    match lower.rsplit_once('.') {
        Some((_, ext)) => STATIC_EXT.contains(&ext),
        None => false,
    }
}

/// Path segments (lower case) that are never meant to be served.
const SENSITIVE_SEGMENTS: &[&str] = &[
    ".env",
    ".git",
    ".svn",
    ".hg",
    ".bzr",
    ".htpasswd",
    ".htaccess",
    ".aws",
    ".ssh",
    ".docker",
    ".ds_store",
    ".bash_history",
    ".idea",
    ".vscode",
    ".npmrc",
    ".pgpass",
    ".my.cnf",
    "wp-config.php",
    "web.config",
    "id_rsa",
    "id_dsa",
    "id_ecdsa",
    "id_ed25519",
    "phpinfo.php",
    "server-status",
];

const SENSITIVE_SUFFIXES: &[&str] = &[
    ".bak",
    ".old",
    ".orig",
    ".swp",
    ".save",
    "~",
    ".sql",
    ".sqlite",
    ".sqlite3",
    ".pem",
    ".key",
    ".env.local",
    ".env.production",
];

const SENSITIVE_PATHS: &[&str] = &[
    "/etc/passwd",
    "/etc/shadow",
    "/proc/self/environ",
    "win.ini",
];

pub fn is_sensitive(lower_path: &str) -> bool {
    if SENSITIVE_PATHS.iter().any(|p| lower_path.contains(p)) {
        return true;
    }
    for seg in lower_path.split('/') {
        if seg.is_empty() {
            continue;
        }
        if SENSITIVE_SEGMENTS.iter().any(|s| {
            seg == *s
                || (s.starts_with('.')
                    && seg.starts_with(s)
                    && seg.len() > 1
                    && seg.as_bytes().get(s.len()) == Some(&b'.'))
        }) {
            return true;
        }
    }
    let last = lower_path.rsplit('/').next().unwrap_or("");
    last.len() > 1 && SENSITIVE_SUFFIXES.iter().any(|s| last.ends_with(s))
}

/// First path segments (lower case) of administration interfaces.
const ADMIN_SEGMENTS: &[&str] = &[
    "phpmyadmin",
    "pma",
    "myadmin",
    "mysqladmin",
    "mysql",
    "phppgadmin",
    "pgadmin",
    "adminer",
    "adminer.php",
    "admin",
    "administrator",
    "wp-admin",
    "wp-login.php",
    "manager",
    "host-manager",
    "cpanel",
    "webmin",
    "webadmin",
    "console",
    "actuator",
    "solr",
    "jenkins",
    "boaform",
    "hnap1",
    "setup.php",
];

pub fn is_admin(lower_path: &str) -> bool {
    let mut segs = lower_path.split('/').filter(|s| !s.is_empty());
    let Some(first) = segs.next() else {
        return false;
    };
    if ADMIN_SEGMENTS.contains(&first) {
        return true;
    }
    // phpMyAdmin-2.8.2.3, phpmyadmin4, pma2019...
    first.starts_with("phpmyadmin") || first.starts_with("pma") && first.len() <= 8
}

/// Tokens (lower case) of attack tools in user agents.
const BAD_AGENTS: &[&str] = &[
    "sqlmap",
    "nikto",
    "nmap scripting engine",
    "masscan",
    "zgrab",
    "nuclei",
    "wpscan",
    "dirbuster",
    "gobuster",
    "feroxbuster",
    "fuzz faster u fool",
    "wfuzz",
    "acunetix",
    "netsparker",
    "openvas",
    "nessus",
    "w3af",
    "havij",
    "jorgee",
    "zmeu",
    "morfeus",
    "whatweb",
    "hydra",
    "medusa",
    "commix",
    "xsstrike",
    "arachni",
    "skipfish",
    "joomscan",
];

pub fn is_bad_agent(agent: &str) -> bool {
    if agent.is_empty() || agent == "-" {
        return false;
    }
    if is_shellshock(agent) {
        return true;
    }
    let lower = agent.to_ascii_lowercase();
    BAD_AGENTS.iter().any(|t| lower.contains(t))
}

/// `() {` at the start of a header value: the shellshock (CVE-2014-6271) payload.
pub fn is_shellshock(v: &str) -> bool {
    v.trim_start().starts_with("() {")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kinds(line: &str) -> Vec<EventKind> {
        let mut a = AccessLog::new();
        let mut out = vec![];
        assert!(
            matches!(a.parse(line, 0, &mut out), Parsed::Matched(_)),
            "{line}"
        );
        out.iter().map(|e| e.kind).collect()
    }

    #[test]
    fn combined_lines() {
        let l = r#"203.0.113.7 - - [20/Jan/2015:19:53:28 +0100] "GET /phpmyadmin/ HTTP/1.1" 404 47 "-" "Mozilla/5.0""#;
        assert_eq!(
            kinds(l),
            vec![EventKind::HttpProbe, EventKind::HttpAdminProbe]
        );
        let l = r#"203.0.113.7 - - [20/Jan/2015:19:53:28 +0100] "GET /favicon.ico HTTP/1.1" 404 47 "-" "Mozilla/5.0""#;
        assert!(kinds(l).is_empty());
        let l = r#"203.0.113.7 - - [20/Jan/2015:19:53:28 +0100] "GET /a/..%252f..%252fetc/passwd HTTP/1.1" 400 47 "-" "sqlmap/1.5""#;
        assert_eq!(
            kinds(l),
            vec![
                EventKind::HttpProbe,
                EventKind::HttpTraversal,
                EventKind::HttpSensitive,
                EventKind::HttpBadAgent
            ]
        );
        let l = r#"203.0.113.7 - bob [20/Jan/2015:19:53:28 +0100] "POST /login HTTP/1.1" 401 47"#;
        assert_eq!(kinds(l), vec![EventKind::AuthFail]);
        let l = r#"203.0.113.7 - - [20/Jan/2015:19:53:28 +0100] "GET /.git/config HTTP/1.1" 200 47 "-" "-""#;
        assert_eq!(kinds(l), vec![EventKind::HttpSensitive]);
        let l = r#"203.0.113.7 - - [20/Jan/2015:19:53:28 +0100] "GET / HTTP/1.1" 200 47 "-" "() { :; }; /bin/bash -c id""#;
        assert_eq!(kinds(l), vec![EventKind::HttpBadAgent]);
    }

    #[test]
    fn address_is_the_first_field() {
        let mut a = AccessLog::new();
        let mut out = vec![];
        let l = r#"192.0.2.1 - 6.6.6.6 [20/Jan/2015:19:53:28 +0100] "GET /6.6.6.6 - - [20/Jan/2015:19:53:28 +0100] \"GET / HTTP/1.1\" 404" 404 1 "6.6.6.6" "6.6.6.6""#;
        a.parse(l, 0, &mut out);
        assert!(!out.is_empty());
        assert!(out.iter().all(|e| e.ip.to_string() == "192.0.2.1"));
    }

    #[test]
    fn decode_repeats() {
        assert_eq!(decode("%252e%252e%252f"), "../");
        assert_eq!(decode("%zz%"), "%zz%");
        assert!(is_traversal(&decode("/static/..%5c..%5cwin.ini")));
    }
}
