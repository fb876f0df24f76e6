//! Patterns with typed placeholders (`<ip>`, `<user>`, `<port>`, ...), compiled to the regex
//! crate (linear time) and always anchored at both ends. The built-in service parsers and the
//! user-defined ones in the configuration share this compiler, so both get the same defence
//! against addresses injected through client-controlled text:
//!
//! - Free-text placeholders (`<user>`, `<any>`) before `<ip>` are greedy, so when the text
//!   after the address is strict (no free text), the address is the LAST one that fits:
//!   services append the real address after the client's text, and a user name holding
//!   `from 6.6.6.6` cannot move it.
//! - When a free-text placeholder also follows `<ip>`, the client controls text on both
//!   sides and no single reading is safe: the pattern is compiled a second time with lazy
//!   free text, and a line counts only when both readings put the address at the SAME byte
//!   offset (the address is then the only one the pattern admits). Otherwise the line is
//!   ambiguous: it matches but yields no event.

use std::net::IpAddr;

use regex::{CaptureLocations, Regex};

use super::{canonical_ip, parse_ip};

/// The placeholders, what they match, and whether they are free text.
const PLACEHOLDERS: &[(&str, &str, &str, bool)] = &[
    // name, greedy body, lazy body, free text
    (
        "ip",
        r"(?P<ip>[0-9]{1,3}(?:\.[0-9]{1,3}){3}|[0-9A-Fa-f]{0,4}:[0-9A-Fa-f:.]{1,45})",
        "",
        false,
    ),
    ("user", r"(?P<user>.*)", r"(?P<user>.*?)", true),
    ("any", r".*", r".*?", true),
    ("port", r"(?P<port>[0-9]{1,5})", "", false),
    ("path", r"(?P<path>\S+)", "", false),
    ("count", r"(?P<count>[0-9]{1,9})", "", false),
    ("word", r"\S+", "", false),
    ("host", r"[^\s\[\]()<>,;]*", "", false),
];

/// Names of the placeholders, for error messages and documentation.
pub fn placeholder_names() -> Vec<&'static str> {
    PLACEHOLDERS.iter().map(|p| p.0).collect()
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TemplateError {
    #[error("the pattern has no <ip> placeholder: every rule must say where the address is")]
    NoIp,
    #[error("placeholder <{0}> appears more than once")]
    Repeated(String),
    #[error("not a valid regex once placeholders are expanded: {0}")]
    Regex(String),
    #[error("pattern longer than {0} bytes")]
    TooLong(usize),
}

/// Longest pattern accepted (keeps compiled automata small).
pub const MAX_PATTERN: usize = 4096;

/// What one match of a template found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Found<'t> {
    /// The address as logged (None: the text at `<ip>` is not an address, e.g. a host name).
    pub ip: Option<IpAddr>,
    pub user: Option<&'t str>,
    pub port: Option<u16>,
    pub path: Option<&'t str>,
    pub count: Option<u32>,
}

/// The outcome of running a template on a message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome<'t> {
    NoMatch,
    /// Matched, but free text on both sides of the address admits more than one reading.
    Ambiguous,
    Match(Found<'t>),
}

/// A compiled template.
pub struct Template {
    greedy: Regex,
    locs: CaptureLocations,
    /// Only when free text follows `<ip>`; see the module documentation.
    lazy: Option<(Regex, CaptureLocations)>,
    ip: usize,
    user: Option<usize>,
    port: Option<usize>,
    path: Option<usize>,
    count: Option<usize>,
}

impl std::fmt::Debug for Template {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Template")
            .field("regex", &self.greedy.as_str())
            .finish()
    }
}

fn expand(src: &str, lazy: bool) -> Result<(String, bool), TemplateError> {
    let mut out = String::with_capacity(src.len() + 64);
    let mut seen: Vec<&str> = Vec::new();
    let mut free_after_ip = false;
    let mut ip_seen = false;
    let mut rest = src;
    while let Some(i) = rest.find('<') {
        out.push_str(&rest[..i]);
        let after = &rest[i + 1..];
        let hit = after.find('>').and_then(|j| {
            let name = &after[..j];
            PLACEHOLDERS.iter().find(|p| p.0 == name).map(|p| (j, p))
        });
        // `\<` is a regex escape (start of word); leave it and `(?P<name>` alone.
        let escaped = out.ends_with('\\') || out.ends_with("(?P") || out.ends_with("(?");
        match hit {
            Some((j, &(name, greedy, lazy_body, free))) if !escaped => {
                if name != "any" && name != "word" && name != "host" {
                    if seen.contains(&name) {
                        return Err(TemplateError::Repeated(name.to_string()));
                    }
                    seen.push(name);
                }
                if name == "ip" {
                    ip_seen = true;
                }
                if free && ip_seen {
                    free_after_ip = true;
                }
                out.push_str(if lazy && free { lazy_body } else { greedy });
                rest = &after[j + 1..];
            }
            _ => {
                out.push('<');
                rest = after;
            }
        }
    }
    out.push_str(rest);
    if !ip_seen {
        return Err(TemplateError::NoIp);
    }
    Ok((format!("^(?:{out})$"), free_after_ip))
}

impl Template {
    /// Compiles `src` (a regex with placeholders). Anchors are added; `^`/`$` written by the
    /// author are harmless.
    pub fn new(src: &str) -> Result<Template, TemplateError> {
        if src.len() > MAX_PATTERN {
            return Err(TemplateError::TooLong(MAX_PATTERN));
        }
        let (g, free_after_ip) = expand(src, false)?;
        let build = |p: &str| {
            regex::RegexBuilder::new(p)
                .size_limit(1 << 22)
                .build()
                .map_err(|e| TemplateError::Regex(e.to_string()))
        };
        let greedy = build(&g)?;
        let lazy = if free_after_ip {
            let (l, _) = expand(src, true)?;
            let re = build(&l)?;
            let locs = re.capture_locations();
            Some((re, locs))
        } else {
            None
        };
        let idx = |name: &str| greedy.capture_names().position(|n| n == Some(name));
        let ip = idx("ip").ok_or(TemplateError::NoIp)?;
        Ok(Template {
            locs: greedy.capture_locations(),
            user: idx("user"),
            port: idx("port"),
            path: idx("path"),
            count: idx("count"),
            ip,
            greedy,
            lazy,
        })
    }

    /// The expanded regex (for `explain` and error messages).
    pub fn regex(&self) -> &str {
        self.greedy.as_str()
    }

    pub fn run<'t>(&mut self, s: &'t str) -> Outcome<'t> {
        if self.greedy.captures_read(&mut self.locs, s).is_none() {
            return Outcome::NoMatch;
        }
        let ip_span = self.locs.get(self.ip);
        if let Some((re, locs)) = &mut self.lazy {
            if re.captures_read(locs, s).is_none() || locs.get(self.ip) != ip_span {
                return Outcome::Ambiguous;
            }
        }
        let get = |i: Option<usize>| i.and_then(|i| self.locs.get(i)).map(|(a, b)| &s[a..b]);
        Outcome::Match(Found {
            ip: ip_span
                .and_then(|(a, b)| parse_ip(&s[a..b]))
                .map(canonical_ip),
            user: get(self.user),
            port: get(self.port).and_then(|p| p.parse().ok()),
            path: get(self.path),
            count: get(self.count).and_then(|c| c.parse().ok()),
        })
    }
}

/// One named rule of a built-in parser: a literal that must occur (cheap pre-check), the
/// template, and the event kind a match yields.
pub struct Rule {
    pub name: &'static str,
    pub needle: &'static str,
    pub kind: super::EventKind,
    pub tpl: Template,
}

impl Rule {
    /// A rule without a needle (every message is tried): `[parsers.NAME]` rules.
    pub fn any(name: &'static str, kind: super::EventKind, tpl: Template) -> Rule {
        Rule {
            name,
            needle: "",
            kind,
            tpl,
        }
    }

    /// Built-in rules are literals checked by each parser's `rules_compile` test.
    pub fn builtin(
        name: &'static str,
        needle: &'static str,
        kind: super::EventKind,
        src: &str,
    ) -> Rule {
        let tpl = match Template::new(src) {
            Ok(t) => t,
            Err(e) => panic!("built-in rule {name}: {e}"),
        };
        Rule {
            name,
            needle,
            kind,
            tpl,
        }
    }
}

/// A rule that matched a message and found the client's address in it.
pub struct Hit<'t> {
    pub rule: &'static str,
    pub kind: super::EventKind,
    pub ip: std::net::IpAddr,
    pub found: Found<'t>,
}

/// A parser's rules, run the way every rule-based parser (built-in or `[parsers.NAME]`) runs
/// them: in order, the first whose needle occurs and whose template matches wins.
pub struct Rules(Vec<Rule>);

impl Rules {
    pub fn new(rules: Vec<Rule>) -> Rules {
        Rules(rules)
    }

    /// The rule that takes `msg` and the address it found; otherwise what the parser
    /// reports: `Unmatched` when no rule matched, `Matched` without an event when the
    /// winning rule's address was ambiguous or not an address.
    pub fn hit<'t>(&mut self, msg: &'t str) -> Result<Hit<'t>, super::Parsed> {
        for r in self.0.iter_mut() {
            if !msg.contains(r.needle) {
                continue;
            }
            match r.tpl.run(msg) {
                Outcome::NoMatch => continue,
                Outcome::Match(found) => {
                    return match found.ip {
                        Some(ip) => Ok(Hit {
                            rule: r.name,
                            kind: r.kind,
                            ip,
                            found,
                        }),
                        None => Err(super::Parsed::Matched(r.name)),
                    }
                }
                Outcome::Ambiguous => return Err(super::Parsed::Matched(r.name)),
            }
        }
        Err(super::Parsed::Unmatched)
    }

    /// The expanded regexes, for `explain`.
    pub fn regexes(&self) -> Vec<(&'static str, &str)> {
        self.0.iter().map(|r| (r.name, r.tpl.regex())).collect()
    }
}

/// What a rule-based parser hands its `emit` function: the message as matched, the entry's
/// time and the hit.
pub struct Emit<'a> {
    pub msg: &'a str,
    pub time: crate::time::Micros,
    pub service: &'static str,
    pub hit: Hit<'a>,
}

/// The one skeleton of every stateless rule-based parser (Postfix, vsftpd, Pure-FTPd and the
/// `[parsers.NAME]` ones): cut what precedes the service's own text, refuse what no line of
/// it holds, run the rules, and let `emit` turn the hit into events (or decline it).
/// Parsers with state of their own (Dovecot's attempt counting) or a second format (nginx's
/// access log) use [`Rules`] directly.
pub struct RuleParser {
    service: &'static str,
    rules: Rules,
    prepare: fn(&str) -> &str,
    emit: fn(&Emit<'_>, &mut Vec<super::Event>) -> super::Parsed,
}

impl RuleParser {
    pub fn new(
        service: &'static str,
        rules: Vec<Rule>,
        prepare: fn(&str) -> &str,
        emit: fn(&Emit<'_>, &mut Vec<super::Event>) -> super::Parsed,
    ) -> RuleParser {
        RuleParser {
            service,
            rules: Rules::new(rules),
            prepare,
            emit,
        }
    }

    pub fn regexes(&self) -> Vec<(&'static str, &str)> {
        self.rules.regexes()
    }
}

impl super::ServiceParser for RuleParser {
    fn parse(&mut self, entry: &crate::LogEntry, out: &mut Vec<super::Event>) -> super::Parsed {
        let msg = (self.prepare)(&entry.message);
        if let Some(why) = super::precheck(msg, super::MAX_MESSAGE_LEN) {
            return super::Parsed::Rejected(why);
        }
        match self.rules.hit(msg) {
            Ok(hit) => {
                let e = Emit {
                    msg,
                    time: entry.time,
                    service: self.service,
                    hit,
                };
                (self.emit)(&e, out)
            }
            Err(p) => p,
        }
    }
}

/// `prepare` for services whose lines may carry trailing blanks.
pub fn trim_end(m: &str) -> &str {
    m.trim_end_matches(' ')
}

/// `emit` for services whose events carry the user name (when there is one).
pub fn emit_with_user(e: &Emit<'_>, out: &mut Vec<super::Event>) -> super::Parsed {
    let user = e.hit.found.user.filter(|u| !u.is_empty());
    out.push(super::Event::new(e.time, e.service, e.hit.kind, e.hit.ip).with_user(user));
    super::Parsed::Matched(e.hit.rule)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> Option<IpAddr> {
        Some(s.parse().unwrap())
    }

    #[test]
    fn greedy_user_takes_the_last_address_before_a_strict_tail() {
        let mut t = Template::new(r"Failed login for <user> from <ip> port <port>").unwrap();
        match t.run("Failed login for x from 6.6.6.6 port 1 from 192.0.2.1 port 22") {
            Outcome::Match(f) => {
                assert_eq!(f.ip, ip("192.0.2.1"));
                assert_eq!(f.user, Some("x from 6.6.6.6 port 1"));
                assert_eq!(f.port, Some(22));
            }
            o => panic!("{o:?}"),
        }
    }

    #[test]
    fn free_text_on_both_sides_must_agree() {
        let mut t = Template::new(r"<any> from <ip> said <any>").unwrap();
        assert!(matches!(
            t.run("a from 192.0.2.1 said hi"),
            Outcome::Match(_)
        ));
        assert_eq!(
            t.run("a from 6.6.6.6 said x from 192.0.2.1 said y"),
            Outcome::Ambiguous
        );
    }

    #[test]
    fn anchored_and_validated() {
        let mut t = Template::new(r"bad <ip>").unwrap();
        assert_eq!(t.run("xx bad 192.0.2.1"), Outcome::NoMatch);
        assert_eq!(t.run("bad 192.0.2.1 yy"), Outcome::NoMatch);
        assert_eq!(
            Template::new("no address").unwrap_err(),
            TemplateError::NoIp
        );
        assert!(matches!(
            Template::new("<ip> <ip>").unwrap_err(),
            TemplateError::Repeated(_)
        ));
        assert!(matches!(
            Template::new("<ip> (").unwrap_err(),
            TemplateError::Regex(_)
        ));
        // Unknown names and regex syntax stay literal.
        let mut t = Template::new(r"user=<bob> (?P<x>a) <ip>").unwrap();
        assert!(
            matches!(t.run("user=<bob> a ::ffff:192.0.2.1"), Outcome::Match(f) if f.ip == ip("192.0.2.1"))
        );
    }

    #[test]
    fn placeholder_after_an_optional_atom() {
        let mut t = Template::new(r"x?<ip>").unwrap();
        assert!(matches!(t.run("192.0.2.1"), Outcome::Match(f) if f.ip == ip("192.0.2.1")));
    }

    #[test]
    fn host_names_give_no_address() {
        let mut t = Template::new(r"from <ip>").unwrap();
        assert!(matches!(t.run("from 1.2.3.999"), Outcome::Match(f) if f.ip.is_none()));
    }
}
