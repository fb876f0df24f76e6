//! Web access logs (Common and Combined Log Format, as nginx and Apache write them) and the
//! classification of a request into web events. Shared by [`super::nginx`] and
//! [`super::apache`].
//!
//! The client address is the FIRST field of the line (optionally after Apache's
//! `vhost:port` of `vhost_combined`): the server writes it before any client-controlled text,
//! so a path, user name, referrer or user agent cannot move it. The rest is matched by one
//! anchored regex; quoted fields allow backslash escapes (Apache writes `\"`, nginx `\x22`).
//!
//! One request can yield several events (a 404 on `/.git/config` is both a probe and a
//! sensitive file); every probing scenario counts distinct paths, so the same path seen in
//! both the access and the error log is counted once.

use regex::{CaptureLocations, Regex};

use super::{parse_ip, Event, EventKind, Parsed};
use crate::time::Micros;

pub const SERVICE: &str = "http";

/// Longest web log line looked at: nginx refuses request lines over 8 KiB by default, so a
/// real request always fits; longer lines are rejected and counted.
pub const MAX_WEB_LINE: usize = 16 * 1024;

pub struct AccessLog {
    re: Regex,
    locs: CaptureLocations,
}

const Q: &str = r#""((?:[^"\\]|\\.)*)""#;

impl Default for AccessLog {
    fn default() -> Self {
        Self::new()
    }
}

impl AccessLog {
    pub fn new() -> AccessLog {
        // ip ident user [time] "request" status bytes ["referer" "agent" [extra...]]
        let pat = format!(
            r#"^(?:[^\s:]+:[0-9]+ )?(\S+) \S+ (.*?) \[([0-9]{{2}}/[A-Za-z]{{3}}/[0-9]{{4}}:[0-9]{{2}}:[0-9]{{2}}:[0-9]{{2}}(?: [+-][0-9]{{4}})?)\] {Q} ([0-9]{{3}}) (?:[0-9]+|-)(?: {Q}(?: {Q})?)?(?: .*)?$"#
        );
        let re = match Regex::new(&pat) {
            Ok(r) => r,
            Err(e) => panic!("access log pattern: {e}"),
        };
        let locs = re.capture_locations();
        AccessLog { re, locs }
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
        if self.re.captures_read(&mut self.locs, line).is_none() {
            return Parsed::Unmatched;
        }
        let g = |i: usize| self.locs.get(i).map(|(a, b)| &line[a..b]);
        let Some(ip) = g(1).and_then(parse_ip) else {
            return Parsed::Matched("access_no_address");
        };
        let user = g(2).filter(|u| *u != "-" && !u.is_empty());
        let request = g(4).unwrap_or("");
        let status: u16 = g(5).and_then(|s| s.parse().ok()).unwrap_or(0);
        let referer = g(6).unwrap_or("");
        let agent = g(7).unwrap_or("");
        classify_request(ip, t, request, status, user, referer, agent, out);
        Parsed::Matched("access")
    }
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
