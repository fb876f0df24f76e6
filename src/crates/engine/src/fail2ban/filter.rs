//! fail2ban filters (`filter.d/NAME.conf` and `NAME.local`) read the way fail2ban reads
//! them, translated to the `regex` crate, and run on log lines the way fail2ban's
//! `Filter.processLine` runs them.
//!
//! Reading ([`load`]): `[INCLUDES] before/after` (each with its `.local`), later files
//! overriding earlier ones section by section, `[DEFAULT]`, `%(name)s`, `%(section/name)s`
//! and `%(known/name)s` interpolation, `[Init]` options and those a jail passes
//! (`sshd[mode=aggressive]`), then `<tag>` substitution (`<mdre-<mode>>`). The engine reads no
//! files: the caller hands file texts over through [`FilterSource`].
//!
//! Translating ([`super::pyre`]): a `failregex` line that uses a construct a linear-time
//! engine cannot run is refused alone (listed in [`Filter::refused`] with file, line and
//! construct; the filter then matches less, never more). A refused `ignoreregex`,
//! `prefregex` or `datepattern` refuses the whole filter: dropping it would widen what the
//! filter matches.
//!
//! Running ([`Filter::process`]): the date is cut out of the line, `maxlines` lines are kept,
//! `ignoreregex` and `prefregex` (with `<F-CONTENT>`) apply, the first `failregex` that
//! matches gives the failure; `<F-MLFID>` merges the lines of one connection
//! (`<F-NOFAIL>`, `<F-MLFFORGET>`, `<F-MLFGAINED>`), `<F-ALT_*>` fill empty fields. `<HOST>`
//! matching a host name gives [`Host::Name`]: no DNS look-up, the caller counts it.

use std::borrow::Cow;
use std::collections::{BTreeMap, HashMap};
use std::net::IpAddr;

use super::dual::{Caps, Re, ReSet};

use super::date::Dates;
use super::pyre;

/// Where the filter files come from: `read("filter.d/sshd.conf")` is the text of that file
/// under the fail2ban directory, `None` when there is none.
pub trait FilterSource {
    fn read(&self, path: &str) -> Option<String>;
}

impl<F: Fn(&str) -> Option<String>> FilterSource for F {
    fn read(&self, path: &str) -> Option<String> {
        self(path)
    }
}

/// Why a filter does not load.
#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
pub enum FilterError {
    #[error("fail2ban filter {0}: no filter.d/{0}.conf or .local")]
    NotFound(String),
    #[error("{file}:{line}: {key} uses {construct}, which a linear-time regex engine cannot run; the filter is refused (dropping it would make the filter match more)")]
    Refused {
        file: String,
        line: usize,
        key: String,
        construct: String,
    },
    #[error("{file}:{line}: {msg}")]
    Bad {
        file: String,
        line: usize,
        msg: String,
    },
    #[error("fail2ban filter {0}: no failregex")]
    Empty(String),
}

/// One `failregex` line that was not loaded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    pub file: String,
    pub line: usize,
    pub construct: String,
    /// The regex as fail2ban has it after interpolation (tags not resolved).
    pub regex: String,
}

/// Who a failure names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Host {
    Addr(IpAddr),
    /// `<HOST>` matched a host name: fail2ban would resolve it, crowdwall does not.
    Name(String),
    /// Only a failure id (`<F-ID>`) or a malformed address: nothing to ban.
    Other(String),
}

/// One failure found by a filter.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Failure {
    /// Index among the filter's loaded failregex lines.
    pub regex: usize,
    pub host: Host,
    pub user: Option<String>,
}

#[derive(Debug, Clone)]
struct Rule {
    re: Re,
    /// Group names that fail2ban maps (`alt_user` -> `user`).
    alts: Vec<(String, String)>,
    /// Source position, for `explain` (interned: `Parsed::Matched` carries it).
    source: &'static str,
    /// A look-ahead or back-reference checked after the match, at positions [`pyre::pinned`]
    /// proved fixed, and the regex without the paths through it (what Python matches when
    /// the check fails on them: since the positions are the same on all those paths, it
    /// fails on all of them).
    check: Option<(pyre::Check, Re)>,
}

impl Rule {
    fn captures(&self, text: &str) -> Option<Caps> {
        let c = self.re.captures(text)?;
        let Some((check, without)) = &self.check else {
            return Some(c);
        };
        let span = |name: &str| self.re.index(name).and_then(|i| c.get(i));
        let holds = match check {
            pyre::Check::NotStartingWith { marker, words, .. } => match span(marker) {
                Some((s, _)) => !words.iter().any(|w| text[s..].starts_with(w.as_str())),
                None => true,
            },
            pyre::Check::BackRef { group, copy, .. } => match span(copy) {
                Some((s, e)) => span(group).is_some_and(|(gs, ge)| text[gs..ge] == text[s..e]),
                None => true,
            },
        };
        if holds {
            // The first path of the regex passes the check, so it is Python's first too.
            Some(c)
        } else {
            // `without` has the same groups at the same indices (only the marker group's
            // body is replaced), so its spans read with `self.re`'s names.
            without.captures(text)
        }
    }

    fn is_match(&self, text: &str) -> bool {
        if self.check.is_none() {
            self.re.is_match(text)
        } else {
            self.captures(text).is_some()
        }
    }
}

/// A loaded filter and its running state (the `maxlines` buffer, the `<F-MLFID>` cache).
#[derive(Debug, Clone)]
pub struct Filter {
    pub name: String,
    failregex: Vec<Rule>,
    ignoreregex: Vec<Rule>,
    prefregex: Option<Rule>,
    /// All failregex lines as one set, to skip a line none of them matches in one pass.
    set: Option<ReSet>,
    pub maxlines: usize,
    dates: Option<Dates>,
    /// `journalmatch` lines (systemd backend), as written.
    pub journalmatch: Vec<String>,
    /// failregex lines not loaded, and why.
    pub refused: Vec<Refusal>,
    /// How many failregex lines the filter has, loaded or not.
    pub total: usize,
    buffer: Vec<(String, String, String)>,
    mlfid: HashMap<String, BTreeMap<String, String>>,
    mlfid_order: Vec<String>,
}

// ---------------------------------------------------------------------------------------
// INI reading

#[derive(Debug, Clone)]
pub(crate) struct Val {
    pub(crate) text: String,
    pub(crate) file: String,
    pub(crate) line: usize,
}

type Section = BTreeMap<String, Val>;

#[derive(Debug, Default, Clone)]
/// Merged INI files (fail2ban's configparser), opaque outside the fail2ban module.
pub struct Ini {
    pub(crate) defaults: Section,
    pub(crate) sections: BTreeMap<String, Section>,
}

/// Python's configparser as fail2ban sets it up: `key = value` or `key: value` (keys
/// lower-cased), continuation lines indented (joined with a newline), `#`/`;` comment lines,
/// `;` inline comments after white space.
pub(crate) fn parse_ini(text: &str, file: &str) -> Ini {
    let mut ini = Ini::default();
    let mut section: Option<String> = None;
    let mut last: Option<(usize, String)> = None; // (indent, key)
    for (n, raw) in text.lines().enumerate() {
        let stripped = raw.trim();
        if stripped.starts_with('#') || stripped.starts_with(';') {
            continue;
        }
        let line = match raw.find(" ;").or_else(|| raw.find("\t;")) {
            Some(i) => &raw[..i],
            None => raw,
        };
        let indent = line.len() - line.trim_start().len();
        if let Some((ind, key)) = &last {
            if indent > *ind && !line.trim().is_empty() {
                let s = match section.as_deref() {
                    None | Some("DEFAULT") => &mut ini.defaults,
                    Some(s) => ini.sections.entry(s.to_string()).or_default(),
                };
                if let Some(v) = s.get_mut(key) {
                    v.text.push('\n');
                    v.text.push_str(line.trim());
                }
                continue;
            }
        }
        if stripped.is_empty() {
            continue;
        }
        if indent == 0 && stripped.starts_with('[') && stripped.ends_with(']') {
            section = Some(stripped[1..stripped.len() - 1].trim().to_string());
            if section.as_deref() != Some("DEFAULT") {
                ini.sections
                    .entry(section.clone().unwrap_or_default())
                    .or_default();
            }
            last = None;
            continue;
        }
        let Some(i) = line.find(['=', ':']) else {
            continue;
        };
        let key = line[..i].trim().to_lowercase();
        let value = line[i + 1..].trim().to_string();
        let s = match section.as_deref() {
            None | Some("DEFAULT") => &mut ini.defaults,
            Some(s) => ini.sections.entry(s.to_string()).or_default(),
        };
        s.insert(
            key.clone(),
            Val {
                text: value,
                file: file.to_string(),
                line: n + 1,
            },
        );
        last = Some((indent, key));
    }
    ini
}

/// `filter.d/x.conf` -> [`x.conf`, `x.local`] with their includes, in fail2ban's order.
pub(crate) fn expand(
    src: &dyn FilterSource,
    conf: &str,
    depth: usize,
    out: &mut Vec<(String, Ini)>,
) {
    if depth > 10 {
        return;
    }
    let local = match conf.strip_suffix(".conf") {
        Some(stem) => format!("{stem}.local"),
        None => format!("{conf}.local"),
    };
    for f in [conf.to_string(), local] {
        let Some(text) = src.read(&f) else { continue };
        let ini = parse_ini(&text, &f);
        let dir = f.rsplit_once('/').map(|(d, _)| d).unwrap_or("");
        let incl = ini.sections.get("INCLUDES").cloned().unwrap_or_default();
        let names = |k: &str| -> Vec<String> {
            incl.get(k)
                .map(|v| {
                    v.text
                        .split_whitespace()
                        .map(|n| {
                            if dir.is_empty() {
                                n.to_string()
                            } else {
                                format!("{dir}/{n}")
                            }
                        })
                        .collect()
                })
                .unwrap_or_default()
        };
        for b in names("before") {
            expand(src, &b, depth + 1, out);
        }
        let after = names("after");
        out.push((f.clone(), ini));
        for a in after {
            expand(src, &a, depth + 1, out);
        }
    }
}

/// All files merged: later ones override earlier ones key by key; what they override is
/// kept as `KNOWN/<section>` for `%(known/name)s`.
pub(crate) fn merge(files: Vec<(String, Ini)>) -> Ini {
    let mut all = Ini::default();
    for (_, ini) in files {
        all.defaults.extend(ini.defaults);
        for (name, sec) in ini.sections {
            if let Some(old) = all.sections.get(&name).cloned() {
                let known: Section = old
                    .iter()
                    .filter(|(k, _)| sec.contains_key(*k))
                    .map(|(k, v)| (k.clone(), v.clone()))
                    .collect();
                all.sections
                    .entry(format!("KNOWN/{name}"))
                    .or_default()
                    .extend(known);
                all.sections.entry(name).or_default().extend(sec);
            } else {
                all.sections.insert(name, sec);
            }
        }
    }
    all
}

impl Ini {
    fn raw(&self, section: &str, key: &str, vars: &BTreeMap<String, String>) -> Option<Val> {
        if let Some(v) = vars.get(key) {
            return Some(Val {
                text: v.clone(),
                file: "(jail options)".into(),
                line: 0,
            });
        }
        if let Some(v) = self.sections.get(section).and_then(|s| s.get(key)) {
            return Some(v.clone());
        }
        self.defaults.get(key).cloned()
    }

    /// `section`'s `key` with `%(...)s` interpolated (configparser's `BasicInterpolation`
    /// with fail2ban's `section/name` and `known/name`).
    pub(crate) fn get(
        &self,
        section: &str,
        key: &str,
        vars: &BTreeMap<String, String>,
    ) -> Result<Option<Val>, FilterError> {
        let Some(v) = self.raw(section, key, vars) else {
            return Ok(None);
        };
        let text = self.interpolate(section, &v, &v.text, vars, 0)?;
        Ok(Some(Val { text, ..v }))
    }

    fn interpolate(
        &self,
        section: &str,
        at: &Val,
        text: &str,
        vars: &BTreeMap<String, String>,
        depth: usize,
    ) -> Result<String, FilterError> {
        let bad = |msg: String| FilterError::Bad {
            file: at.file.clone(),
            line: at.line,
            msg,
        };
        if depth > 10 {
            return Err(bad("interpolation deeper than 10 levels".into()));
        }
        let mut out = String::with_capacity(text.len());
        let mut rest = text;
        while let Some(i) = rest.find('%') {
            out.push_str(&rest[..i]);
            let after = &rest[i + 1..];
            if let Some(r) = after.strip_prefix('%') {
                out.push('%');
                rest = r;
                continue;
            }
            let Some(r) = after.strip_prefix('(') else {
                return Err(bad(format!(
                    "'%' must be followed by '%' or '(' in {text:?}"
                )));
            };
            let Some(close) = r.find(")s") else {
                return Err(bad(format!("bad interpolation syntax in {text:?}")));
            };
            let name = r[..close].to_lowercase();
            rest = &r[close + 2..];
            let val = if name == "__name__" {
                Some(Val {
                    text: section.to_string(),
                    ..at.clone()
                })
            } else if let Some(v) = self.raw(section, &name, vars) {
                Some(v)
            } else if let Some((sec, opt)) = name.split_once('/') {
                let found = match sec {
                    "known" => self
                        .sections
                        .get(&format!("KNOWN/{section}"))
                        .and_then(|s| s.get(opt))
                        .cloned(),
                    "default" => None,
                    _ => self
                        .sections
                        .iter()
                        .find(|(n, _)| n.to_lowercase() == sec)
                        .and_then(|(_, s)| s.get(opt))
                        .cloned(),
                };
                found.or_else(|| self.defaults.get(opt).cloned())
            } else {
                None
            };
            let Some(v) = val else {
                return Err(bad(format!("%({name})s is not defined")));
            };
            let sec = match name.split_once('/') {
                Some((s, _)) if s != "known" && s != "default" && v.line != 0 => self
                    .sections
                    .keys()
                    .find(|n| n.to_lowercase() == s)
                    .cloned()
                    .unwrap_or(section.to_string()),
                _ => section.to_string(),
            };
            out.push_str(&self.interpolate(&sec, &v, &v.text, vars, depth + 1)?);
        }
        out.push_str(rest);
        Ok(out)
    }
}

// ---------------------------------------------------------------------------------------
// Loading

const CONFIG_OPTS: &[&str] = &[
    "usedns",
    "prefregex",
    "ignoreregex",
    "failregex",
    "maxlines",
    "datepattern",
    "journalmatch",
];

/// Loads filter `name` (`filter.d/NAME.conf`, `.local`) with the options a jail passes
/// (`filter = NAME[mode=aggressive]`) or a test sets (`logtype`, `mode`).
pub fn load(
    src: &dyn FilterSource,
    name: &str,
    opts: &BTreeMap<String, String>,
) -> Result<Filter, FilterError> {
    let mut files = Vec::new();
    expand(src, &format!("filter.d/{name}.conf"), 0, &mut files);
    if files.is_empty() {
        return Err(FilterError::NotFound(name.to_string()));
    }
    let ini = merge(files.clone());
    let vars: BTreeMap<String, String> = opts
        .iter()
        .map(|(k, v)| (k.to_lowercase(), v.clone()))
        .collect();
    // Definition options, interpolated with the jail's options as variables.
    let mut combined: BTreeMap<String, Val> = BTreeMap::new();
    for key in CONFIG_OPTS {
        if let Some(v) = ini.get("Definition", key, &vars)? {
            combined.insert(key.to_string(), v);
        }
    }
    // [Init]: the jail's options win; the filter's own fill the rest.
    let mut init: BTreeMap<String, Val> = vars
        .iter()
        .map(|(k, v)| {
            (
                k.clone(),
                Val {
                    text: v.clone(),
                    file: "(jail options)".into(),
                    line: 0,
                },
            )
        })
        .collect();
    if let Some(sec) = ini.sections.get("Init") {
        for k in sec.keys() {
            if let Some(v) = ini.get("Init", k, &vars)? {
                init.entry(format!("known/{k}")).or_insert(v.clone());
                init.entry(k.clone()).or_insert(v);
            }
        }
    }
    combined.extend(init);
    // `<tag>` substitution, innermost first (fail2ban's substituteRecursiveTags).
    let lookup =
        |tag: &str, combined: &BTreeMap<String, Val>| -> Result<Option<String>, FilterError> {
            if let Some(v) = combined.get(tag) {
                return Ok(Some(v.text.clone()));
            }
            let lower = tag.to_lowercase();
            if let Some((sec, opt)) = lower.split_once('/') {
                let s = ini
                    .sections
                    .keys()
                    .find(|n| n.to_lowercase() == sec)
                    .cloned();
                return match s {
                    Some(s) => Ok(ini.get(&s, opt, &vars)?.map(|v| v.text)),
                    None => Ok(None),
                };
            }
            Ok(ini.get("Definition", &lower, &vars)?.map(|v| v.text))
        };
    let mut out: BTreeMap<String, Val> = BTreeMap::new();
    for key in CONFIG_OPTS {
        let Some(v) = combined.get(*key).cloned() else {
            continue;
        };
        let mut text = v.text.clone();
        let mut rounds = 0;
        let mut from = 0;
        while let Some((s, e)) = find_tag(&text, from) {
            let tag = text[s + 1..e - 1].to_string();
            if tag == *key {
                from = e;
                continue;
            }
            match lookup(&tag, &combined)? {
                Some(r) => {
                    rounds += 1;
                    if rounds > 200 {
                        return Err(FilterError::Bad {
                            file: v.file.clone(),
                            line: v.line,
                            msg: format!("{key}: tags do not resolve (self-referencing <{tag}>)"),
                        });
                    }
                    text = text.replace(&format!("<{tag}>"), &r);
                    from = 0;
                }
                None => from = e,
            }
        }
        out.insert(key.to_string(), Val { text, ..v });
    }
    build(name, &out, &files)
}

/// The next `<tag>` (`<[^ <>]+>`) at or after `from`: (start, end) of `<...>`.
fn find_tag(s: &str, from: usize) -> Option<(usize, usize)> {
    let b = s.as_bytes();
    let mut i = from;
    while i < b.len() {
        if b[i] == b'<' {
            let mut j = i + 1;
            while j < b.len() && b[j] != b'<' && b[j] != b'>' && b[j] != b' ' {
                j += 1;
            }
            if j < b.len() && b[j] == b'>' && j > i + 1 {
                return Some((i, j + 1));
            }
            i = j;
            continue;
        }
        i += 1;
    }
    None
}

/// Where a construct found in `regex` comes from: the first line of a loaded file that has
/// the literal text around it, else the key's own definition.
fn locate(files: &[(String, Ini)], regex: &str, offset: usize, at: &Val) -> (String, usize) {
    let chars: Vec<char> = regex.chars().collect();
    let start = offset.min(chars.len());
    for len in [24usize, 16, 10, 6] {
        let snippet: String = chars[start..].iter().take(len).collect();
        if snippet.len() < 3 {
            break;
        }
        // `%` is doubled in the files.
        let needle = snippet.replace('%', "%%");
        for (f, ini) in files {
            for sec in std::iter::once(&ini.defaults).chain(ini.sections.values()) {
                for v in sec.values() {
                    for (k, l) in v.text.lines().enumerate() {
                        if l.contains(&needle) || l.contains(&snippet) {
                            return (f.clone(), v.line + k);
                        }
                    }
                }
            }
        }
    }
    (at.file.clone(), at.line)
}

fn compile_rule(rust: &str, multiline: bool) -> Result<Re, String> {
    Re::new(rust, multiline)
}

fn rule_of(py: &str, use_dns: bool, multiline: bool) -> Result<Rule, (String, usize)> {
    let resolved = pyre::optional_char_backrefs(&pyre::resolve_tags(py, use_dns));
    let t = pyre::translate_checked(&resolved, true).map_err(|u| (u.construct, u.offset))?;
    let rust = t.regex;
    let re = compile_rule(&rust, multiline).map_err(|e| (format!("regex error: {e}"), 0))?;
    let check = match (t.check, t.without) {
        (Some(check), Some(without)) => {
            let (construct, offset) = check.construct();
            let (construct, offset) = (construct.to_string(), offset);
            pyre::pinned(&rust, multiline, &check.groups())
                .map_err(|why| (format!("{construct} ({why})"), offset))?;
            let without =
                compile_rule(&without, multiline).map_err(|e| (format!("regex error: {e}"), 0))?;
            Some((check, without))
        }
        _ => None,
    };
    let alts = re
        .names()
        .map(|(_, n)| n)
        .filter_map(|n| {
            let base = n.strip_prefix("alt_")?;
            let base = match base.rsplit_once('_') {
                Some((b, d)) if d.chars().all(|c| c.is_ascii_digit()) && !d.is_empty() => b,
                _ => base,
            };
            let base = match base {
                "id" => "fid",
                "port" => "fport",
                b => b,
            };
            Some((n.to_string(), base.to_string()))
        })
        .collect();
    Ok(Rule {
        re,
        alts,
        source: "",
        check,
    })
}

fn build(
    name: &str,
    opts: &BTreeMap<String, Val>,
    files: &[(String, Ini)],
) -> Result<Filter, FilterError> {
    let use_dns = opts
        .get("usedns")
        .map(|v| v.text.trim() != "no")
        .unwrap_or(true);
    let maxlines = match opts.get("maxlines") {
        Some(v) => v
            .text
            .trim()
            .parse::<usize>()
            .map_err(|_| FilterError::Bad {
                file: v.file.clone(),
                line: v.line,
                msg: format!("maxlines {:?} is not a number", v.text),
            })?,
        None => 1,
    }
    .max(1);
    let multiline = maxlines > 1;
    let refuse = |key: &str, v: &Val, regex: &str, c: String, off: usize| {
        let (file, line) = locate(files, regex, off, v);
        FilterError::Refused {
            file,
            line,
            key: key.to_string(),
            construct: c,
        }
    };
    let mut filter = Filter {
        name: name.to_string(),
        failregex: Vec::new(),
        ignoreregex: Vec::new(),
        prefregex: None,
        set: None,
        maxlines,
        dates: None,
        journalmatch: Vec::new(),
        refused: Vec::new(),
        total: 0,
        buffer: Vec::new(),
        mlfid: HashMap::new(),
        mlfid_order: Vec::new(),
    };
    if let Some(v) = opts.get("prefregex") {
        let py = v.text.trim();
        if !py.is_empty() {
            let mut r = rule_of(py, use_dns, multiline).map_err(|(c, off)| {
                refuse("prefregex", v, &pyre::resolve_tags(py, use_dns), c, off)
            })?;
            r.source = crate::parse::user::intern(&format!("{}:{}", v.file, v.line));
            filter.prefregex = Some(r);
        }
    }
    if let Some(v) = opts.get("ignoreregex") {
        for py in v.text.split('\n').filter(|l| !l.is_empty()) {
            let mut r = rule_of(py, use_dns, multiline).map_err(|(c, off)| {
                refuse("ignoreregex", v, &pyre::resolve_tags(py, use_dns), c, off)
            })?;
            r.source = crate::parse::user::intern(&format!("{}:{}", v.file, v.line));
            filter.ignoreregex.push(r);
        }
    }
    if let Some(v) = opts.get("datepattern") {
        let d = Dates::from_pattern(&v.text).map_err(|b| FilterError::Refused {
            file: v.file.clone(),
            line: v.line,
            key: "datepattern".into(),
            construct: format!("{} ({})", b.why, b.pattern),
        })?;
        filter.dates = Some(d);
    }
    if let Some(v) = opts.get("journalmatch") {
        filter.journalmatch = v
            .text
            .split('\n')
            .map(str::trim)
            .filter(|l| !l.is_empty())
            .map(String::from)
            .collect();
    }
    let Some(v) = opts.get("failregex") else {
        return Err(FilterError::Empty(name.to_string()));
    };
    for py in v.text.split('\n').filter(|l| !l.is_empty()) {
        filter.total += 1;
        match rule_of(py, use_dns, multiline) {
            Ok(mut r) => {
                let (file, line) = locate(files, py, 0, v);
                r.source = crate::parse::user::intern(&format!("{file}:{line}"));
                filter.failregex.push(r);
            }
            Err((construct, off)) => {
                let resolved = pyre::optional_char_backrefs(&pyre::resolve_tags(py, use_dns));
                let (file, line) = locate(files, &resolved, off, v);
                // A line that only remembers or ends a connection (`<F-NOFAIL>`,
                // `<F-MLFFORGET>`, `<F-MLFGAINED>`) changes what the connection's other
                // lines mean: without it they could report what fail2ban would not.
                if ["<F-NOFAIL>", "<F-MLFFORGET>", "<F-MLFGAINED>"]
                    .iter()
                    .any(|t| py.contains(t))
                {
                    return Err(FilterError::Refused {
                        file,
                        line,
                        key:
                            "failregex (a line that carries <F-NOFAIL>/<F-MLFFORGET>/<F-MLFGAINED>)"
                                .into(),
                        construct,
                    });
                }
                filter.refused.push(Refusal {
                    file,
                    line,
                    construct,
                    regex: py.to_string(),
                });
            }
        }
    }
    if !filter.failregex.is_empty() {
        filter.set = ReSet::new(filter.failregex.iter().map(|r| r.re.as_str()), multiline);
    }
    if filter.failregex.is_empty() {
        if let Some(r) = filter.refused.first() {
            return Err(FilterError::Refused {
                file: r.file.clone(),
                line: r.line,
                key: "failregex".into(),
                construct: r.construct.clone(),
            });
        }
        return Err(FilterError::Empty(name.to_string()));
    }
    Ok(filter)
}

// ---------------------------------------------------------------------------------------
// Running

const MLFID_CAP: usize = 100;

impl Filter {
    /// How many failregex lines are loaded.
    pub fn loaded(&self) -> usize {
        self.failregex.len()
    }

    /// Where the `i`-th loaded failregex line is defined (`filter.d/x.conf:12`).
    pub fn source_of(&self, i: usize) -> Option<&'static str> {
        self.failregex.get(i).map(|r| r.source)
    }

    /// One log line as a file source has it (the date still in it). `dated`: the caller
    /// already cut the time off (the journal gives it separately), as fail2ban's systemd
    /// backend does.
    pub fn process(&mut self, line: &str, dated: bool) -> Vec<Failure> {
        let span = if dated {
            None
        } else {
            match &self.dates {
                Some(d) => d.find(line),
                None => default_dates().find(line),
            }
        };
        if self.maxlines > 1 {
            let tuple = match span {
                Some((s, e)) => (
                    line[..s].to_string(),
                    line[s..e].to_string(),
                    line[e..].to_string(),
                ),
                None => (String::new(), String::new(), line.to_string()),
            };
            self.buffer.push(tuple);
            let n = self.buffer.len();
            if n > self.maxlines {
                self.buffer.drain(..n - self.maxlines);
            }
            let buf = Self::buf_of(&self.buffer, true);
            return self.find(Cow::Owned(buf));
        }
        // One line at a time: fail2ban's buffer is the line less its date, and nothing is
        // kept between lines, so the line is not copied unless the date sits inside it.
        let buf = match span {
            Some((0, e)) => Cow::Borrowed(&line[e..]),
            Some((s, e)) => Cow::Owned([&line[..s], &line[e..]].concat()),
            None => Cow::Borrowed(line),
        };
        self.find(buf)
    }

    fn buf_of(lines: &[(String, String, String)], multiline: bool) -> String {
        let mut s = String::new();
        for (i, (a, _, c)) in lines.iter().enumerate() {
            if i > 0 {
                s.push('\n');
            }
            s.push_str(a);
            s.push_str(c);
        }
        // fail2ban's buffer ends with a newline; Python's `$` matches before it without
        // MULTILINE, so single lines go without it (the `regex` crate's `$` is the end).
        if multiline {
            s.push('\n');
        }
        s
    }

    fn find(&mut self, mut buf: Cow<'_, str>) -> Vec<Failure> {
        let multiline = self.maxlines > 1;
        if !self.ignoreregex.is_empty()
            && self.ignoreregex.len() + 2 < self.failregex.len()
            && self.ignoreregex.iter().any(|r| r.is_match(&buf))
        {
            return Vec::new();
        }
        let mut pre: BTreeMap<String, String> = BTreeMap::new();
        if let Some(p) = &self.prefregex {
            let Some(c) = p.captures(&buf) else {
                return Vec::new();
            };
            pre = groups(&p.re, &c, &buf, &p.alts);
            if let Some(content) = pre.remove("content") {
                if !content.is_empty() {
                    if multiline {
                        self.buffer = vec![(String::new(), String::new(), content)];
                        buf = Cow::Owned(Self::buf_of(&self.buffer, true));
                    } else {
                        buf = Cow::Owned(content);
                    }
                }
            }
        }
        // A line no failregex can match (most of a real log) costs one pass over it; the
        // lines are then tried in order, the first that matches wins, as in fail2ban.
        if self.set.as_ref().is_some_and(|s| !s.is_match(&buf)) {
            return Vec::new();
        }
        for (idx, rule) in self.failregex.iter().enumerate() {
            let Some(c) = rule.captures(&buf) else {
                continue;
            };
            let whole = c.get(0).unwrap_or((0, 0));
            let (matched, unmatched) = if multiline {
                split_lines(&buf, whole, &self.buffer, &rule.re, &c)
            } else {
                (Vec::new(), Vec::new())
            };
            let mut fail = groups(&rule.re, &c, &buf, &rule.alts);
            // ignoreregex on the matched lines.
            let ibuf = if multiline {
                Cow::Owned(Self::buf_of(&matched, true))
            } else {
                Cow::Borrowed(&*buf)
            };
            if self.ignoreregex.iter().any(|r| r.is_match(&ibuf)) {
                if multiline {
                    self.buffer = unmatched;
                }
                return Vec::new();
            }
            if multiline {
                self.buffer = unmatched;
            }
            if !pre.is_empty() {
                let mut merged = pre.clone();
                merged.extend(fail);
                fail = merged;
            }
            if let Some(id) = fail.get("mlfid").cloned() {
                fail = self.merge_mlfid(&id, fail);
                if fail.contains_key("nofail") {
                    return Vec::new();
                }
            }
            let host = if let Some(ip) = fail.get("ip4").or(fail.get("ip6")) {
                match ip.parse::<IpAddr>() {
                    Ok(a) => Host::Addr(crate::parse::canonical_ip(a)),
                    Err(_) => Host::Other(ip.clone()),
                }
            } else if let Some(d) = fail.get("dns") {
                match d.parse::<IpAddr>() {
                    Ok(a) => Host::Addr(crate::parse::canonical_ip(a)),
                    Err(_) => Host::Name(d.clone()),
                }
            } else if let Some(f) = fail.get("fid") {
                match f.parse::<IpAddr>() {
                    Ok(a) => Host::Addr(crate::parse::canonical_ip(a)),
                    Err(_) => Host::Other(f.clone()),
                }
            } else {
                if let Some(id) = fail.get("mlfid").cloned() {
                    if let Some(m) = self.mlfid.get_mut(&id) {
                        m.insert("mlfpending".into(), "1".into());
                    }
                }
                return Vec::new();
            };
            return vec![Failure {
                regex: idx,
                host,
                user: fail.get("user").cloned(),
            }];
        }
        Vec::new()
    }

    /// fail2ban's `_mergeFailure`: the lines of one connection (`<F-MLFID>`) share what
    /// they found; `<F-NOFAIL>` lines only remember, `<F-MLFFORGET>` ends the connection,
    /// `<F-MLFGAINED>` (a success) cancels what was pending.
    fn merge_mlfid(
        &mut self,
        id: &str,
        mut fail: BTreeMap<String, String>,
    ) -> BTreeMap<String, String> {
        let gained = fail.contains_key("mlfgained");
        let mut nofail = gained || fail.contains_key("nofail");
        if gained && !fail.contains_key("nofail") {
            fail.insert("nofail".into(), "1".into());
        }
        let forget = fail.remove("mlfforget").is_some();
        let users_many;
        let mut pending = false;
        let merged = if let Some(cached) = self.mlfid.get_mut(id) {
            let mut users: Vec<String> = cached
                .get("users")
                .map(|u| u.split('\u{1}').map(String::from).collect())
                .unwrap_or_default();
            if let Some(u) = fail.get("user") {
                if !users.contains(u) {
                    users.push(u.clone());
                }
            }
            cached.remove("nofail");
            cached.remove("mlfgained");
            if gained {
                cached.remove("mlfpending");
            }
            for (k, v) in &fail {
                cached.insert(k.clone(), v.clone());
            }
            if !users.is_empty() {
                cached.insert("users".into(), users.join("\u{1}"));
            }
            users_many = users.len() > 1;
            if cached.remove("mlfpending").is_some() {
                pending = true;
            }
            let m = cached.clone();
            if forget {
                self.mlfid.remove(id);
            }
            m
        } else {
            if let Some(u) = fail.get("user").cloned() {
                fail.insert("users".into(), u);
            }
            users_many = false;
            if !forget {
                if self.mlfid.len() >= MLFID_CAP {
                    if let Some(old) =
                        (!self.mlfid_order.is_empty()).then(|| self.mlfid_order.remove(0))
                    {
                        self.mlfid.remove(&old);
                    }
                }
                self.mlfid.insert(id.to_string(), fail.clone());
                self.mlfid_order.push(id.to_string());
            }
            fail
        };
        let mut merged = merged;
        if pending || users_many {
            merged.remove("nofail");
            merged.remove("mlfgained");
            nofail = false;
            if let Some(c) = self.mlfid.get_mut(id) {
                c.remove("nofail");
            }
        }
        if nofail {
            merged.insert("nofail".into(), "1".into());
        }
        merged
    }

    /// Forgets buffered lines and connections (between unrelated inputs).
    pub fn reset(&mut self) {
        self.buffer.clear();
        self.mlfid.clear();
        self.mlfid_order.clear();
    }
}

/// The groups that matched, with fail2ban's `alt_` fallbacks.
fn groups(re: &Re, c: &Caps, text: &str, alts: &[(String, String)]) -> BTreeMap<String, String> {
    let mut m: BTreeMap<String, String> = re
        .names()
        .filter_map(|(i, n)| {
            c.get(i)
                .map(|(s, e)| (n.to_string(), text[s..e].to_string()))
        })
        .collect();
    for (k, base) in alts {
        if let Some(v) = m.get(k).cloned() {
            if !v.is_empty() && m.get(base).is_none_or(|b| b.is_empty()) {
                m.insert(base.clone(), v);
            }
        }
    }
    m
}

type Lines = Vec<(String, String, String)>;

/// fail2ban's `Regex.search` bookkeeping for multi-line buffers: the lines the match spans
/// (less those `<SKIPLINES>` skipped), and the rest, which stays buffered.
fn split_lines(buf: &str, whole: (usize, usize), org: &Lines, re: &Re, c: &Caps) -> (Lines, Lines) {
    if org.len() <= 1 {
        return (org.clone(), Vec::new());
    }
    let start = buf[..(whole.0 + 1).min(buf.len())]
        .rfind('\n')
        .map_or(0, |i| i + 1);
    let end = match buf[whole.1.saturating_sub(1).min(buf.len())..].find('\n') {
        Some(i) => whole.1.saturating_sub(1) + i + 1,
        None => buf.len(),
    };
    let l1 = buf[..start].matches('\n').count().min(org.len());
    let l2 = buf[..end].matches('\n').count().clamp(l1, org.len());
    let mut matched: Lines = org[l1..l2].to_vec();
    let mut unmatched: Lines = org[..l1].to_vec();
    let skipped: Vec<String> = re
        .names()
        .filter(|(_, n)| n.starts_with("skiplines"))
        .filter_map(|(i, _)| c.get(i))
        .flat_map(|(s, e)| buf[s..e].lines().map(String::from).collect::<Vec<_>>())
        .collect();
    let mut n = 0;
    for s in skipped {
        if let Some(k) = matched[n.min(matched.len())..]
            .iter()
            .position(|(a, _, c)| format!("{a}{c}") == s)
        {
            unmatched.push(matched.remove(n + k));
            n += k;
        }
    }
    unmatched.extend(org[l2..].iter().cloned());
    (matched, unmatched)
}

fn default_dates() -> &'static Dates {
    static D: std::sync::OnceLock<Dates> = std::sync::OnceLock::new();
    D.get_or_init(Dates::defaults)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn filter(failregex: &str) -> Result<Filter, FilterError> {
        let conf = format!("[Definition]\nfailregex = {failregex}\n");
        let src = move |p: &str| (p == "filter.d/t.conf").then(|| conf.clone());
        load(&src, "t", &BTreeMap::new())
    }

    fn host(f: &mut Filter, line: &str) -> Option<String> {
        f.reset();
        f.process(line, true).first().map(|x| match &x.host {
            Host::Addr(a) => a.to_string(),
            h => format!("{h:?}"),
        })
    }

    #[test]
    fn back_reference_checked_after_the_match() {
        // openwebmail's shape: the copy sits in one alternative; when it differs, Python goes
        // on to the next alternative, and so does the regex without the copy's paths.
        let mut f =
            filter(r"^ - \(<HOST>\) (?P<USER>\S+) - (?:a (?P=USER)|a x\S+|b \S+)$").unwrap();
        assert!(f.refused.is_empty(), "{:?}", f.refused);
        assert_eq!(
            host(&mut f, " - (192.0.2.1) bob - a bob").as_deref(),
            Some("192.0.2.1")
        );
        assert_eq!(host(&mut f, " - (192.0.2.1) bob - a alice"), None);
        assert_eq!(
            host(&mut f, " - (192.0.2.1) bob - a xalice").as_deref(),
            Some("192.0.2.1")
        );
        assert_eq!(
            host(&mut f, " - (192.0.2.1) bob - b alice").as_deref(),
            Some("192.0.2.1")
        );
        // Where the group's place is not fixed (after `.*`) the line is refused, named.
        let e = filter(r"^.*(?P<U>\w+) <HOST> (?P=U)$").unwrap_err();
        assert!(e.to_string().contains("back-reference `(?P=U)`"), "{e}");
        assert!(e.to_string().contains("not fixed"), "{e}");
    }

    #[test]
    fn look_ahead_at_a_fixed_place_checked_after_the_match() {
        let mut f = filter(r"^user (?!`)<F-USER>(?:\S*|.*?)</F-USER> from <HOST>$").unwrap();
        assert!(f.refused.is_empty(), "{:?}", f.refused);
        assert_eq!(
            host(&mut f, "user bob from 192.0.2.1").as_deref(),
            Some("192.0.2.1")
        );
        assert_eq!(host(&mut f, "user `bob from 192.0.2.1"), None);
        assert_eq!(
            host(&mut f, "user b`ob from 192.0.2.1").as_deref(),
            Some("192.0.2.1")
        );
    }
}
