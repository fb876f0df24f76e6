//! fail2ban's regular expressions (Python `re` syntax, with fail2ban's `<HOST>`-style tags)
//! translated to the `regex` crate's syntax.
//!
//! The `regex` crate runs in time linear in the input; Python's `re` backtracks. Everything
//! both engines run the same way is translated one to one (leftmost-first alternation, greedy
//! and lazy repetition, named groups, inline flags, Unicode classes). What a linear-time
//! engine cannot run (look-ahead, look-behind, back-references, conditional groups, atomic
//! groups, possessive repetition) is refused with the construct and its offset: the caller
//! refuses that one failregex line (or the whole filter when the refused regex is an
//! `ignoreregex`, a `prefregex` or a date pattern, since dropping those would widen what the
//! filter matches). The one rewrite is in fail2ban's own `<HOST>` tag (see [`IP6`]), where it
//! is provably equivalent.

use std::collections::{BTreeMap, BTreeSet};

/// A construct the linear-time engine cannot run, at a char offset of the regex it was found in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Unsupported {
    /// What it is: "negative look-ahead `(?!`", "back-reference `(?P=user)`", ...
    pub construct: String,
    /// Char offset in the (tag-resolved) regex.
    pub offset: usize,
}

/// fail2ban's IPv4 (`IPAddr.IP_4_RE`), with its optional `::ffff:` prefix.
const IP4: &str = r"(?:::f{4,6}:)?(?P<ip4>(?:\d{1,3}\.){3}\d{1,3})";
/// fail2ban's IPv6 is `(?:[0-9a-fA-F]{1,4}::?|::){1,7}(?:[0-9a-fA-F]{1,4}|(?<=:):)`. The
/// look-behind `(?<=:)` is dropped, which is equivalent: it follows a `{1,7}` repetition
/// (at least one iteration) of alternatives that all end with `:`, so the char before it is
/// always `:` and the assertion always holds.
const IP6: &str = r"(?P<ip6>(?:[0-9a-fA-F]{1,4}::?|::){1,7}(?:[0-9a-fA-F]{1,4}|:))";
const DNS: &str = r"(?P<dns>[\w\-.^_]*\w)";
const CIDR: &str = r"(?P<cidr>\d+)";

fn addr() -> String {
    format!(r"\[?(?:{IP4}|{IP6})\]?")
}

/// What fail2ban's `Regex._resolveHostTag` does: `<HOST>`, `<ADDR>`, `<IP4>`, `<IP6>`,
/// `<DNS>`, `<CIDR>`, `<SUBNET>`, `<F-ID/>`, `<F-PORT/>`, `<SKIPLINES>`, and the custom
/// `<F-NAME>...</F-NAME>` groups (`(?P<name>...)`, lower-cased; `F-ID` is `fid`, `F-PORT`
/// is `fport`). With `use_dns = false` (`usedns = no`) `<HOST>` is `<ADDR>`.
pub fn resolve_tags(regex: &str, use_dns: bool) -> String {
    let mut out = String::with_capacity(regex.len() * 2);
    let mut open: BTreeSet<String> = BTreeSet::new();
    let mut skiplines = 0;
    let b = regex.as_bytes();
    let mut i = 0;
    while i < regex.len() {
        if b[i] == b'<' {
            if let Some(len) = tag_len(&regex[i..]) {
                let tag = &regex[i..i + len];
                if let Some(rep) = tag_regex(tag, use_dns, &mut open, &mut skiplines) {
                    out.push_str(&rep);
                    i += len;
                    continue;
                }
            }
        }
        let ch = regex[i..].chars().next().unwrap_or('\0');
        out.push(ch);
        i += ch.len_utf8().max(1);
    }
    out
}

/// Length of a tag `</?[\w\-]+/?>` at the start of `s`.
fn tag_len(s: &str) -> Option<usize> {
    let mut it = s.char_indices().skip(1).peekable();
    if let Some(&(_, '/')) = it.peek() {
        it.next();
    }
    let mut seen = false;
    for (j, c) in it {
        if c.is_alphanumeric() || c == '_' || c == '-' {
            seen = true;
            continue;
        }
        if c == '>' && seen {
            return Some(j + 1);
        }
        if c == '/' && seen && s[j + 1..].starts_with('>') {
            return Some(j + 2);
        }
        return None;
    }
    None
}

fn tag_regex(
    tag: &str,
    use_dns: bool,
    open: &mut BTreeSet<String>,
    skiplines: &mut u32,
) -> Option<String> {
    let tn = &tag[1..tag.len() - 1];
    let fixed = match tn {
        "HOST" => Some(if use_dns {
            format!("(?:{}|{DNS})", addr())
        } else {
            addr()
        }),
        "ADDR" | "F-ADDR/" => Some(addr()),
        "IP4" | "F-IP4/" => Some(IP4.to_string()),
        "IP6" | "F-IP6/" => Some(IP6.to_string()),
        "DNS" | "F-DNS/" => Some(DNS.to_string()),
        "CIDR" | "F-CIDR/" => Some(CIDR.to_string()),
        "SUBNET" | "F-SUBNET/" => Some(format!(r"\[?(?:{IP4}|{IP6})(?:/{CIDR})?\]?")),
        "F-ID/" => Some(r"(?P<fid>\S+)".to_string()),
        "F-PORT/" => Some(r"(?P<fport>\w+)".to_string()),
        "SKIPLINES" => {
            let n = *skiplines;
            *skiplines += 1;
            Some(format!(r"\n(?P<skiplines{n}>(?:(?:.*\n)*?))"))
        }
        _ => None,
    };
    if fixed.is_some() {
        return fixed;
    }
    let (close, name) = match tn.strip_prefix('/') {
        Some(n) => (true, n),
        None => (false, tn),
    };
    let name = name.strip_prefix("F-")?;
    if name.is_empty()
        || !name
            .chars()
            .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || c == '_' || c == '-')
    {
        return None;
    }
    if close {
        return if open.contains(name) {
            Some(")".to_string())
        } else {
            None
        };
    }
    open.insert(name.to_string());
    let lower = name.to_ascii_lowercase();
    let group = match lower.as_str() {
        "id" => "fid".to_string(),
        "port" => "fport".to_string(),
        _ => lower,
    };
    Some(format!("(?P<{group}>"))
}

/// Translates a (tag-resolved) Python regex to the `regex` crate's syntax, or says which
/// construct it cannot run. Look-aheads are rewritten only where the rewrite is the same
/// language ([`rewrite_not_starting_with`], [`distribute_not_starting_with`]); nothing is
/// left to check after the match (see [`translate_checked`] for that).
pub fn translate(py: &str) -> Result<String, Unsupported> {
    let t = translate_checked(py, false)?;
    Ok(t.regex)
}

/// A construct kept as a check after the match: the regex marks where it is (an empty group
/// for a negative look-ahead, a copy of the group for a back-reference), and the check is
/// exact only if that position is the same on every path of the regex, which the caller
/// proves with [`pinned`] on the final regex (else it refuses, naming `construct`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Check {
    /// `(?!W1|W2...)` of literal words at the empty group `marker`: the text from there
    /// must start with none of `words`.
    NotStartingWith {
        marker: String,
        words: Vec<String>,
        construct: String,
        offset: usize,
    },
    /// `(?P=group)`, run as the group `copy` (the group's own pattern): its text must equal
    /// the group's.
    BackRef {
        group: String,
        copy: String,
        construct: String,
        offset: usize,
    },
}

impl Check {
    /// The groups whose positions must be fixed for the check to be exact.
    pub fn groups(&self) -> Vec<&str> {
        match self {
            Check::NotStartingWith { marker, .. } => vec![marker.as_str()],
            Check::BackRef { group, copy, .. } => vec![group.as_str(), copy.as_str()],
        }
    }
    /// The group that is only on the paths where the check applies.
    pub fn marker(&self) -> &str {
        match self {
            Check::NotStartingWith { marker, .. } => marker,
            Check::BackRef { copy, .. } => copy,
        }
    }
    pub fn construct(&self) -> (&str, usize) {
        match self {
            Check::NotStartingWith {
                construct, offset, ..
            }
            | Check::BackRef {
                construct, offset, ..
            } => (construct, *offset),
        }
    }
}

/// A translated regex and the one construct, if any, left to check after the match.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Translated {
    pub regex: String,
    pub check: Option<Check>,
    /// `regex` with the check's marker group made unmatchable: what Python matches when the
    /// check fails (see [`Check`]).
    pub without: Option<String>,
}

/// A group that never matches (an empty class), so the paths through it are gone while the
/// group still exists.
const NEVER: &str = r"[^\s\S]";

/// `(?P<_g>C?)X(?P=_g)` -> `(?:CXC|X)`: a group that is one optional literal char `C`, its
/// one back-reference after a plain stretch `X` (no groups, no alternation), as selinux-ssh's
/// `acct=(?P<_quote_acct>"?)\S+(?P=_quote_acct)`.
///
/// Why it is the same, paths and their order included: Python's greedy `C?` is the choice
/// `(?:(?P<_g>C)|(?P<_g>))`, the first alternative tried first; on the first the reference
/// must match `C`, on the second nothing. So the regex is `(?:C X C|X) REST`, and
/// concatenation distributes over alternation in a backtracking engine (`(?:a|b)c` tries
/// `a` then `c`, then `b` then `c`: the order of `ac|bc`). The regex crate's leftmost-first
/// alternation takes the first path in that order that matches, as Python does, so the
/// match and every other group are the same. Only for a group fail2ban does not read (its
/// name starts with `_`), which the rewrite drops; `X` is written twice, so it must hold no
/// group; a second reference to the group keeps the regex as it is (refused later).
pub fn optional_char_backrefs(py: &str) -> String {
    let mut s = py.to_string();
    let mut from = 0;
    while let Some(at) = s[from..].find("(?P<_").map(|k| k + from) {
        from = at + 1;
        let rest = &s[at + 4..];
        let Some(close) = rest.find('>') else { break };
        let name = &rest[..close];
        if !name.chars().all(|c| c.is_alphanumeric() || c == '_') {
            continue;
        }
        let body = &rest[close + 1..];
        // One literal char (or an escaped punctuation char), then `?)`.
        let (lit, n) = match body.chars().next() {
            Some('\\') => match body[1..].chars().next() {
                Some(p) if p.is_ascii_punctuation() => (format!("\\{p}"), 1 + p.len_utf8()),
                _ => continue,
            },
            Some(c) if !"()[]{}|?*+.^$\\".contains(c) => (c.to_string(), c.len_utf8()),
            _ => continue,
        };
        if !body[n..].starts_with("?)") {
            continue;
        }
        let x_start = at + 4 + close + 1 + n + 2;
        let reference = format!("(?P={name})");
        let Some(x_len) = s[x_start..].find(&reference) else {
            continue;
        };
        let x = &s[x_start..x_start + x_len];
        if x.is_empty() || x.contains(['(', ')', '|']) || x.ends_with('\\') {
            continue;
        }
        let end = x_start + x_len + reference.len();
        if s[end..].contains(&reference) || s[..at].contains(&reference) {
            continue;
        }
        let rewritten = format!("(?:{lit}{x}{lit}|{x})");
        s = format!("{}{rewritten}{}", &s[..at], &s[end..]);
        from = at + rewritten.len();
    }
    s
}

/// [`translate`], and with `checks` a negative look-ahead of literal words that cannot be
/// rewritten, or one back-reference to a named group, becomes a [`Check`] (at most one per
/// regex; a second one is refused).
pub fn translate_checked(py: &str, checks: bool) -> Result<Translated, Unsupported> {
    let c: Vec<char> = py.chars().collect();
    let mut out = String::with_capacity(py.len() + 16);
    let mut i = 0;
    let unsupported = |what: &str, at: usize| Unsupported {
        construct: what.to_string(),
        offset: at,
    };
    let icase = py.contains("(?i");
    let mut check: Option<Check> = None;
    // Open groups: (where in `out` the group starts, its name, header length); closed named
    // groups: name -> their pattern in `out` (for back-references).
    let mut open: Vec<(usize, Option<String>, usize)> = Vec::new();
    let mut closed: BTreeMap<String, String> = BTreeMap::new();
    // Whether the last thing emitted can take a quantifier (so `{` may start one).
    let mut quantifiable = false;
    while i < c.len() {
        let ch = c[i];
        match ch {
            '\\' => {
                let (s, n) = escape(&c, i, false)?;
                out.push_str(&s);
                i += n;
                quantifiable = true;
            }
            '[' => {
                let n = class(&c, i, &mut out)?;
                i += n;
                quantifiable = true;
            }
            '(' => {
                if c.get(i + 1) == Some(&'?') {
                    let rest: String = c[i + 2..].iter().take(3).collect();
                    let two = |p: &str| rest.starts_with(p);
                    if two(":") {
                        open.push((out.len(), None, 3));
                        out.push_str("(?:");
                        i += 3;
                    } else if two("P<") {
                        let end = c[i + 4..]
                            .iter()
                            .position(|&x| x == '>')
                            .ok_or_else(|| unsupported("unterminated group name", i))?;
                        let name: String = c[i + 4..i + 4 + end].iter().collect();
                        if name.is_empty() || !name.chars().all(|x| x.is_alphanumeric() || x == '_')
                        {
                            return Err(unsupported(&format!("group name `{name}`"), i));
                        }
                        open.push((out.len(), Some(name.clone()), name.len() + 5));
                        out.push_str("(?P<");
                        out.push_str(&name);
                        out.push('>');
                        i += 5 + end;
                        quantifiable = false;
                        continue;
                    } else if two("P=") {
                        let end = c[i..].iter().position(|&x| x == ')').unwrap_or(0);
                        let s: String = c[i..=i + end].iter().collect();
                        let construct = format!("back-reference `{s}`");
                        let name: String = c[i + 4..i + end].iter().collect();
                        // Python compares a back-reference case-insensitively under `(?i)`;
                        // the check compares bytes, so such patterns stay refused.
                        let inner = closed.get(&name).filter(|p| !p.contains("(?P<"));
                        match inner {
                            Some(inner) if checks && check.is_none() && !icase => {
                                let copy = "__br0".to_string();
                                out.push_str(&format!("(?P<{copy}>{inner})"));
                                check = Some(Check::BackRef {
                                    group: name,
                                    copy,
                                    construct,
                                    offset: i,
                                });
                                i += end + 1;
                                quantifiable = true;
                                continue;
                            }
                            _ => return Err(unsupported(&construct, i)),
                        }
                    } else if two("=") {
                        match implied_lookahead(&c, i, &out, open.last()) {
                            Some(n) => {
                                i += n;
                                continue;
                            }
                            None => return Err(unsupported("look-ahead `(?=`", i)),
                        }
                    } else if two("!") {
                        if let Some((rust, n)) = rewrite_not_starting_with(&c, i, icase) {
                            out.push_str(&rust);
                            i += n;
                            quantifiable = false;
                            continue;
                        }
                        if let Some((rust, n)) = distribute_not_starting_with(&c, i, icase)? {
                            out.push_str(&rust);
                            i += n;
                            quantifiable = true;
                            continue;
                        }
                        let words = lookahead_words(&c, i);
                        match words {
                            Some((words, n)) if checks && check.is_none() && !icase => {
                                let marker = "__la0".to_string();
                                out.push_str(&format!("(?P<{marker}>)"));
                                check = Some(Check::NotStartingWith {
                                    marker,
                                    words: words
                                        .into_iter()
                                        .map(|w| w.into_iter().collect())
                                        .collect(),
                                    construct: "negative look-ahead `(?!`".into(),
                                    offset: i,
                                });
                                i += n;
                                quantifiable = false;
                                continue;
                            }
                            _ => return Err(unsupported("negative look-ahead `(?!`", i)),
                        }
                    } else if two("<=") {
                        return Err(unsupported("look-behind `(?<=`", i));
                    } else if two("<!") {
                        return Err(unsupported("negative look-behind `(?<!`", i));
                    } else if two("(") {
                        return Err(unsupported("conditional group `(?(`", i));
                    } else if two(">") {
                        return Err(unsupported("atomic group `(?>`", i));
                    } else if two("#") {
                        // A comment group: nothing to match.
                        let end = c[i..]
                            .iter()
                            .position(|&x| x == ')')
                            .ok_or_else(|| unsupported("unterminated comment", i))?;
                        i += end + 1;
                        continue;
                    } else {
                        // Inline flags `(?imsx)` or `(?imsx-imsx:...)`.
                        let mut j = i + 2;
                        let mut flags = String::new();
                        while j < c.len() && (c[j].is_ascii_alphabetic() || c[j] == '-') {
                            match c[j] {
                                'i' | 'm' | 's' | 'x' | '-' => flags.push(c[j]),
                                // Python 3 str patterns are Unicode already.
                                'u' => {}
                                f => {
                                    return Err(unsupported(&format!("inline flag `{f}`"), i));
                                }
                            }
                            j += 1;
                        }
                        match c.get(j) {
                            Some(')') => {
                                if !flags.is_empty() {
                                    out.push_str("(?");
                                    out.push_str(&flags);
                                    out.push(')');
                                }
                                i = j + 1;
                                quantifiable = false;
                                continue;
                            }
                            Some(':') => {
                                open.push((out.len(), None, 0));
                                if flags.is_empty() {
                                    out.push_str("(?:");
                                } else {
                                    out.push_str("(?");
                                    out.push_str(&flags);
                                    out.push(':');
                                }
                                i = j + 1;
                            }
                            _ => return Err(unsupported("unknown group extension `(?`", i)),
                        }
                    }
                } else {
                    open.push((out.len(), None, 1));
                    out.push('(');
                    i += 1;
                }
                quantifiable = false;
            }
            ')' => {
                if let Some((at, Some(name), header)) = open.pop() {
                    closed.insert(name, out[at + header..].to_string());
                }
                out.push(')');
                i += 1;
                quantifiable = true;
            }
            '*' | '+' | '?' => {
                out.push(ch);
                i += 1;
                if c.get(i) == Some(&'?') {
                    out.push('?');
                    i += 1;
                } else if c.get(i) == Some(&'+') {
                    return Err(unsupported("possessive repetition", i - 1));
                }
                quantifiable = false;
            }
            '{' => {
                // A repetition `{m}`, `{m,}`, `{,n}`, `{m,n}`; anything else is a literal
                // brace in Python.
                let end = c[i..].iter().position(|&x| x == '}');
                let inner: Option<String> = end.map(|e| c[i + 1..i + e].iter().collect());
                let valid = inner.as_deref().is_some_and(|s| {
                    let (a, b) = s.split_once(',').unwrap_or((s, ""));
                    !s.is_empty()
                        && a.chars().all(|d| d.is_ascii_digit())
                        && b.chars().all(|d| d.is_ascii_digit())
                        && (s.contains(',') || !a.is_empty())
                        && s != ","
                });
                if quantifiable && valid {
                    let s = inner.unwrap_or_default();
                    let e = end.unwrap_or(0);
                    let s = if s.starts_with(',') {
                        format!("0{s}")
                    } else {
                        s
                    };
                    out.push('{');
                    out.push_str(&s);
                    out.push('}');
                    i += e + 1;
                    if c.get(i) == Some(&'?') {
                        out.push('?');
                        i += 1;
                    } else if c.get(i) == Some(&'+') {
                        return Err(unsupported("possessive repetition", i - 1));
                    }
                    quantifiable = false;
                } else {
                    out.push_str("\\{");
                    i += 1;
                    quantifiable = true;
                }
            }
            '}' | ']' => {
                out.push('\\');
                out.push(ch);
                i += 1;
                quantifiable = true;
            }
            '|' | '^' | '$' => {
                out.push(ch);
                i += 1;
                quantifiable = ch == '$' || ch == '^';
            }
            _ => {
                out.push(ch);
                i += 1;
                quantifiable = true;
            }
        }
    }
    let without = check.as_ref().map(|k| {
        let m = k.marker();
        let head = format!("(?P<{m}>");
        match out.find(&head) {
            Some(at) => {
                // The marker group's own pattern is replaced by one that never matches.
                let body_start = at + head.len();
                let mut depth = 1usize;
                let b = out.as_bytes();
                let mut j = body_start;
                let mut esc = false;
                let mut in_class = 0usize;
                while j < b.len() {
                    let x = b[j];
                    if esc {
                        esc = false;
                    } else if x == b'\\' {
                        esc = true;
                    } else if x == b'[' {
                        in_class += 1;
                    } else if x == b']' && in_class > 0 {
                        in_class -= 1;
                    } else if in_class == 0 && x == b'(' {
                        depth += 1;
                    } else if in_class == 0 && x == b')' {
                        depth -= 1;
                        if depth == 0 {
                            break;
                        }
                    }
                    j += 1;
                }
                format!("{}{NEVER}{}", &out[..body_start], &out[j..])
            }
            None => out.clone(),
        }
    });
    Ok(Translated {
        regex: out,
        check,
        without,
    })
}

/// One literal char at `c[j]` (an escaped punctuation char counts): the char and its length.
fn literal_at(c: &[char], j: usize) -> Option<(char, usize)> {
    match *c.get(j)? {
        '\\' => {
            let e = *c.get(j + 1)?;
            (!e.is_ascii_alphanumeric()).then_some((e, 2))
        }
        x if ".+*?()[]{}^$|".contains(x) => None,
        x => Some((x, 1)),
    }
}

/// A look-ahead `(?=x)` of one literal char that every path takes right after it: it ends
/// the body of a repeated group (`(...(?=x))*`, `*?`, `+`, `+?`) whose body starts with a
/// mandatory `x`, and the group is followed by a mandatory `x`. Whether the group repeats
/// or not, the next char the path consumes is `x`, so the assertion holds on every path that
/// goes on and dropping it keeps the same paths in the same order (exim's
/// `"[^"]+(?:"+[^"]*(?="))*?"`). Returns the look-ahead's length.
fn implied_lookahead(
    c: &[char],
    i: usize,
    out: &str,
    group: Option<&(usize, Option<String>, usize)>,
) -> Option<usize> {
    let (x, len) = literal_at(c, i + 3)?;
    let n = 3 + len + 1;
    if c.get(i + 3 + len) != Some(&')') || c.get(i + n) != Some(&')') {
        return None;
    }
    // The group's body, as translated so far, starts with a mandatory `x`.
    let &(at, _, header) = group?;
    let lit = literal(x);
    let body = out.get(at + header..)?;
    let after = body.strip_prefix(lit.as_str())?;
    if matches!(after.chars().next(), Some('?' | '*' | '{')) || header == 0 {
        return None;
    }
    // The group repeats and is followed by a mandatory `x`.
    let mut k = i + n + 1;
    if !matches!(c.get(k), Some('*' | '+')) {
        return None;
    }
    k += 1;
    if c.get(k) == Some(&'?') {
        k += 1;
    }
    let (y, ylen) = literal_at(c, k)?;
    if y != x || matches!(c.get(k + ylen), Some('?' | '*' | '{')) {
        return None;
    }
    Some(n)
}

/// The literal words of a negative look-ahead `(?!W1|W2...)` at `c[i]`, and how many chars
/// the look-ahead takes; `None` unless every alternative is a non-empty plain literal.
fn lookahead_words(c: &[char], i: usize) -> Option<(Vec<Vec<char>>, usize)> {
    let mut j = i + 3;
    let mut words: Vec<Vec<char>> = vec![Vec::new()];
    loop {
        let ch = *c.get(j)?;
        match ch {
            ')' => {
                j += 1;
                break;
            }
            '|' => words.push(Vec::new()),
            '\\' => {
                let e = *c.get(j + 1)?;
                if e.is_ascii_alphanumeric() {
                    return None;
                }
                words.last_mut()?.push(e);
                j += 1;
            }
            x if ".+*?()[]{}^$|".contains(x) => return None,
            x => words.last_mut()?.push(x),
        }
        j += 1;
    }
    if words.iter().any(|w| w.is_empty()) {
        return None;
    }
    Some((words, j - i))
}

/// A negative look-ahead `(?!W1|W2...)` of plain literals rewritten into the run that
/// follows it: group openings, then a greedy run `C+` or `C*` of one class C (`.`, `\S`,
/// `\w`, `\d`, `[\w-]`), then the closings of those groups and a follower `f` that is a
/// literal char or `$`.
///
/// Why it is equivalent: on every path the text at the look-ahead is `T = s f X`, with `s`
/// the run's text. `T` starts with a word W exactly when
/// (a) W is all C chars and `s` starts with W, or
/// (b) `s` is `W[..k]` for a k with `W[k] == f`, and X starts with `W[k+1..]`.
/// When `k + 1 == |W|`, (b) is "`s` is exactly `W[..k]`"; any other k with `W[k] == f`
/// would need the text after the follower, so the rewrite refuses. So the look-ahead holds on
/// a path exactly when `s` is none of the (b) words and starts with none of the (a) words:
/// the run restricted to those strings (a trie of the words, see [`trie_tail`]) keeps the
/// same paths, and as the trie still takes the longest run first, in the same order, so the
/// match and its groups are Python's. `$` counts as a newline follower (what it stands
/// before in a multi-line buffer). A run at the end of the pattern is not rewritten: the
/// match may stop inside the text's run there, and (b) would depend on what follows.
/// Case-insensitive patterns are not rewritten.
fn rewrite_not_starting_with(c: &[char], i: usize, icase: bool) -> Option<(String, usize)> {
    if icase {
        return None;
    }
    let (words, n) = lookahead_words(c, i)?;
    let mut j = i + n;
    // Group openings between the look-ahead and the run.
    let mut openers = String::new();
    let mut depth = 0;
    loop {
        let rest: String = c[j..].iter().take(4).collect();
        if rest.starts_with("(?P<") {
            let end = c[j..].iter().position(|&x| x == '>')?;
            openers.extend(&c[j..=j + end]);
            j += end + 1;
            depth += 1;
        } else if rest.starts_with("(?:") {
            openers.push_str("(?:");
            j += 3;
            depth += 1;
        } else {
            break;
        }
    }
    let text: String = c[j..].iter().take(6).collect();
    let (class, inside, n): (&str, fn(char) -> bool, usize) = if text.starts_with(".") {
        ("[^\\n]", |x| x != '\n', 1)
    } else if text.starts_with("\\S") {
        ("\\S", |x| !x.is_whitespace(), 2)
    } else if text.starts_with("\\w") {
        ("\\w", |x| x.is_alphanumeric() || x == '_', 2)
    } else if text.starts_with("\\d") {
        ("\\d", |x| x.is_numeric(), 2)
    } else if text.starts_with("[\\w-]") {
        (
            "[\\w\\-]",
            |x| x.is_alphanumeric() || x == '_' || x == '-',
            5,
        )
    } else if text.starts_with("[\\w\\-]") {
        (
            "[\\w\\-]",
            |x| x.is_alphanumeric() || x == '_' || x == '-',
            6,
        )
    } else {
        return None;
    };
    j += n;
    let plus = match c.get(j) {
        Some('+') => true,
        Some('*') => false,
        _ => return None,
    };
    j += 1;
    if matches!(c.get(j), Some('?' | '+' | '{')) {
        return None;
    }
    let mut closers = String::new();
    while depth > 0 && c.get(j) == Some(&')') {
        closers.push(')');
        depth -= 1;
        j += 1;
        if matches!(c.get(j), Some('?' | '*' | '+' | '{')) {
            return None;
        }
    }
    if depth > 0 {
        return None;
    }
    // The follower: one literal char (a quantifier after it would let it be absent).
    let follower = match c.get(j) {
        Some('$') => '\n',
        Some('\\') => {
            let e = *c.get(j + 1)?;
            if e.is_ascii_alphanumeric() || matches!(c.get(j + 2), Some('?' | '*' | '{')) {
                return None;
            }
            e
        }
        Some(&x) if !".+*?()[]{}^|".contains(x) => {
            if matches!(c.get(j + 1), Some('?' | '*' | '{')) {
                return None;
            }
            x
        }
        _ => return None,
    };
    let mut excluded: Vec<(Vec<char>, bool)> = Vec::new();
    for w in &words {
        if w.iter().all(|&x| inside(x)) {
            excluded.push((w.clone(), false));
        }
        for k in 0..w.len() {
            if w[k] == follower {
                if k + 1 != w.len() {
                    return None;
                }
                excluded.push((w[..k].to_vec(), true));
            }
            if !inside(w[k]) {
                break;
            }
        }
    }
    let run = if plus {
        match trie_alts(&excluded, 0, class) {
            Some(a) => format!("(?:{a})"),
            None => NEVER.to_string(),
        }
    } else {
        match trie_tail(&excluded, 0, class) {
            Some(t) => t,
            None => NEVER.to_string(),
        }
    };
    Some((format!("{openers}{run}{closers}"), j - i))
}

/// Strings of `class` chars (possibly empty) that may follow the `depth` chars the alive
/// `words` share: `(word, exact)` excludes every string starting with `word`, or with
/// `exact` only `word` itself. `None` when nothing may follow.
fn trie_tail(words: &[(Vec<char>, bool)], depth: usize, class: &str) -> Option<String> {
    if words.iter().any(|(w, exact)| !exact && w.len() == depth) {
        return None;
    }
    let empty_ok = !words.iter().any(|(w, exact)| *exact && w.len() == depth);
    let alts = trie_alts(words, depth, class);
    match (alts, empty_ok) {
        (Some(a), true) => Some(format!("(?:{a})?")),
        (Some(a), false) => Some(format!("(?:{a})")),
        (None, true) => Some(String::new()),
        (None, false) => None,
    }
}

/// The non-empty strings of [`trie_tail`], as alternatives that differ in their first char
/// (so at most one applies to a text, and each takes its longest run first).
fn trie_alts(words: &[(Vec<char>, bool)], depth: usize, class: &str) -> Option<String> {
    let alive: Vec<&(Vec<char>, bool)> = words.iter().filter(|(w, _)| w.len() > depth).collect();
    let mut children: Vec<char> = alive.iter().map(|(w, _)| w[depth]).collect();
    children.sort_unstable();
    children.dedup();
    let mut alts = Vec::new();
    if children.is_empty() {
        alts.push(format!("{class}+"));
    } else {
        let ex: String = children.iter().map(|&x| literal(x)).collect();
        alts.push(format!("[{class}&&[^{ex}]]{class}*"));
    }
    for ch in children {
        let next: Vec<(Vec<char>, bool)> = alive
            .iter()
            .filter(|(w, _)| w[depth] == ch)
            .map(|&x| x.clone())
            .collect();
        let l = literal(ch);
        if let Some(t) = trie_tail(&next, depth + 1, class) {
            alts.push(format!("{l}{t}"));
        }
    }
    Some(alts.join("|"))
}

/// `(?!W1|W2...)` before a group of alternatives: distributed over them, which is the same
/// regex (the look-ahead is at the same place on every alternative). An alternative that
/// starts with a literal L no word agrees with loses the look-ahead (it holds on every path
/// there); one where some word is a prefix of L can never match (it stays, unmatchable, so
/// its groups exist); the others are rewritten with [`rewrite_not_starting_with`] on the
/// words still alive. Anything else: `Ok(None)`.
fn distribute_not_starting_with(
    c: &[char],
    i: usize,
    icase: bool,
) -> Result<Option<(String, usize)>, Unsupported> {
    if icase {
        return Ok(None);
    }
    let Some((words, n)) = lookahead_words(c, i) else {
        return Ok(None);
    };
    let g = i + n;
    let rest: String = c[g..].iter().take(4).collect();
    let header = if rest.starts_with("(?:") {
        3
    } else if rest.starts_with("(?P<") {
        match c[g..].iter().position(|&x| x == '>') {
            Some(e) => e + 1,
            None => return Ok(None),
        }
    } else {
        return Ok(None);
    };
    // The group's top-level alternatives.
    let mut alts: Vec<(usize, usize)> = Vec::new();
    let mut depth = 0usize;
    let mut j = g + header;
    let mut from = j;
    let mut end = None;
    while j < c.len() {
        match c[j] {
            '\\' => j += 1,
            '[' => {
                // Skip the class: `]` first in it is a literal.
                j += 1;
                if c.get(j) == Some(&'^') {
                    j += 1;
                }
                if c.get(j) == Some(&']') {
                    j += 1;
                }
                while j < c.len() && c[j] != ']' {
                    if c[j] == '\\' {
                        j += 1;
                    }
                    j += 1;
                }
            }
            '(' => depth += 1,
            ')' if depth == 0 => {
                alts.push((from, j));
                end = Some(j);
                break;
            }
            ')' => depth -= 1,
            '|' if depth == 0 => {
                alts.push((from, j));
                from = j + 1;
            }
            _ => {}
        }
        j += 1;
    }
    let Some(end) = end else { return Ok(None) };
    let mut out: String = c[g..g + header].iter().collect();
    for (k, &(a, b)) in alts.iter().enumerate() {
        if k > 0 {
            out.push('|');
        }
        let alt = &c[a..b];
        let lit = literal_prefix(alt);
        let mut alive = Vec::new();
        let mut dead = false;
        for w in &words {
            let m = w.len().min(lit.len());
            if w[..m] != lit[..m] {
                continue; // never starts the text here
            }
            if w.len() <= lit.len() {
                dead = true;
            } else {
                alive.push(w.clone());
            }
        }
        let body: String = alt.iter().collect();
        if dead {
            out.push_str(NEVER);
            out.push_str(&translate(&body)?);
        } else if alive.is_empty() {
            out.push_str(&translate(&body)?);
        } else {
            let la: String = alive
                .iter()
                .map(|w| w.iter().map(|&x| lookahead_literal(x)).collect::<String>())
                .collect::<Vec<_>>()
                .join("|");
            let syn: Vec<char> = format!("(?!{la}){body}").chars().collect();
            let Some((head, used)) = rewrite_not_starting_with(&syn, 0, false) else {
                return Ok(None);
            };
            out.push_str(&head);
            let tail: String = syn[used..].iter().collect();
            out.push_str(&translate(&tail)?);
        }
    }
    out.push(')');
    Ok(Some((out, end + 1 - i)))
}

/// The literal chars an alternative starts with (escapes of punctuation included), less the
/// last one if a quantifier follows it.
fn literal_prefix(alt: &[char]) -> Vec<char> {
    let mut lit = Vec::new();
    let mut j = 0;
    while j < alt.len() {
        match alt[j] {
            '\\' => match alt.get(j + 1) {
                Some(&e) if !e.is_ascii_alphanumeric() => {
                    lit.push(e);
                    j += 2;
                }
                _ => break,
            },
            x if ".+*?()[]{}^$|".contains(x) => {
                if matches!(x, '?' | '*' | '{') {
                    lit.pop();
                }
                break;
            }
            x => {
                lit.push(x);
                j += 1;
            }
        }
    }
    lit
}

/// A char as Python source inside a look-ahead of literals.
fn lookahead_literal(x: char) -> String {
    if ".+*?()[]{}^$|\\".contains(x) {
        format!("\\{x}")
    } else {
        x.to_string()
    }
}

/// Whether each group in `groups` starts and ends at one position on every path of `rust`
/// that takes it, so a check made at the positions one match gives holds or fails for all
/// matches (see [`Check`]). `Err` says why not.
///
/// The proof walks the regex from `^` (non-multi-line: the start of the text) along the
/// path to the groups, keeping the position pinned: a part of fixed length keeps it pinned;
/// a greedy run of one class followed by a literal char outside the class (or `$`) ends
/// at the first char outside it, so it keeps it pinned; and after a literal `c`, where the
/// pattern so far holds `c` a fixed number m of times on every path, the position is the
/// one after the m-th `c` of the text, pinned again. Groups must be on the main path (not
/// in a repetition); an alternation is entered only on the branch that holds them, so all
/// of them must be in the same branch.
pub fn pinned(rust: &str, multiline: bool, groups: &[&str]) -> Result<(), String> {
    use regex_syntax::hir::{Hir, HirKind};
    if multiline {
        return Err("the buffer has several lines, so `^` has several positions".into());
    }
    let hir = regex_syntax::ParserBuilder::new()
        .build()
        .parse(rust)
        .map_err(|e| e.to_string())?;
    enum Item<'a> {
        Node(&'a Hir),
        Open(String),
        Close(String),
    }
    fn has(h: &Hir, groups: &[&str]) -> bool {
        match h.kind() {
            HirKind::Capture(c) => {
                c.name.as_deref().is_some_and(|n| groups.contains(&n)) || has(&c.sub, groups)
            }
            HirKind::Concat(v) | HirKind::Alternation(v) => v.iter().any(|x| has(x, groups)),
            HirKind::Repetition(r) => has(&r.sub, groups),
            _ => false,
        }
    }
    fn flatten<'a>(h: &'a Hir, groups: &[&str], out: &mut Vec<Item<'a>>) -> Result<(), String> {
        if !has(h, groups) {
            out.push(Item::Node(h));
            return Ok(());
        }
        match h.kind() {
            HirKind::Capture(c) => {
                let name = c.name.as_deref().unwrap_or("").to_string();
                out.push(Item::Open(name.clone()));
                flatten(&c.sub, groups, out)?;
                out.push(Item::Close(name));
                Ok(())
            }
            HirKind::Concat(v) => v.iter().try_for_each(|x| flatten(x, groups, out)),
            HirKind::Alternation(v) => {
                let with: Vec<&Hir> = v.iter().filter(|x| has(x, groups)).collect();
                if with.len() != 1 {
                    return Err("the groups are on different alternatives".into());
                }
                flatten(with[0], groups, out)
            }
            _ => Err("a group is inside a repetition".into()),
        }
    }
    let mut items = Vec::new();
    flatten(&hir, groups, &mut items)?;
    let starts = matches!(items.first(), Some(Item::Node(h)) if matches!(h.kind(), HirKind::Look(regex_syntax::hir::Look::Start)));
    if !starts {
        return Err("the regex is not anchored at the start (`^`)".into());
    }
    // How often byte `b` occurs in every text `h` matches, if that is fixed.
    fn count(h: &Hir, b: u8) -> Option<usize> {
        match h.kind() {
            HirKind::Empty | HirKind::Look(_) => Some(0),
            HirKind::Literal(l) => Some(l.0.iter().filter(|&&x| x == b).count()),
            HirKind::Class(c) => (!class_has(c, b)).then_some(0),
            HirKind::Repetition(r) => match count(&r.sub, b)? {
                0 => Some(0),
                k if Some(r.min) == r.max => Some(k * r.min as usize),
                _ => None,
            },
            HirKind::Capture(c) => count(&c.sub, b),
            HirKind::Concat(v) => v.iter().map(|x| count(x, b)).sum::<Option<usize>>(),
            HirKind::Alternation(v) => {
                let k = count(&v[0], b)?;
                v.iter().all(|x| count(x, b) == Some(k)).then_some(k)
            }
        }
    }
    fn class_has(c: &regex_syntax::hir::Class, b: u8) -> bool {
        match c {
            regex_syntax::hir::Class::Unicode(u) => u
                .iter()
                .any(|r| r.start() <= b as char && b as char <= r.end()),
            regex_syntax::hir::Class::Bytes(u) => u.iter().any(|r| r.start() <= b && b <= r.end()),
        }
    }
    fn last_byte(h: &Hir) -> Option<u8> {
        match h.kind() {
            HirKind::Literal(l) => l.0.last().copied(),
            HirKind::Capture(c) => last_byte(&c.sub),
            HirKind::Concat(v) => v.last().and_then(last_byte),
            _ => None,
        }
    }
    // What may follow item k: its first literal byte, or end of text.
    enum Next {
        Byte(u8),
        End,
        Other,
    }
    fn first_of(h: &Hir) -> Next {
        match h.kind() {
            HirKind::Literal(l) => l.0.first().map_or(Next::Other, |&b| Next::Byte(b)),
            HirKind::Capture(c) => first_of(&c.sub),
            HirKind::Concat(v) => v.first().map_or(Next::Other, first_of),
            HirKind::Look(regex_syntax::hir::Look::End) => Next::End,
            _ => Next::Other,
        }
    }
    let next = |k: usize| -> Next {
        for it in &items[k + 1..] {
            if let Item::Node(h) = it {
                if matches!(h.kind(), HirKind::Empty) {
                    continue;
                }
                return first_of(h);
            }
        }
        Next::End
    };
    // A greedy run of one class that the following literal (or the end) stops.
    let maximal_run = |h: &Hir, k: usize| -> bool {
        let HirKind::Repetition(r) = h.kind() else {
            return false;
        };
        let HirKind::Class(cl) = r.sub.kind() else {
            return false;
        };
        r.greedy
            && r.max.is_none()
            && match next(k) {
                Next::Byte(b) => b.is_ascii() && !class_has(cl, b),
                Next::End => true,
                Next::Other => false,
            }
    };
    let fixed = |h: &Hir| -> bool {
        let p = h.properties();
        p.minimum_len().is_some() && p.minimum_len() == p.maximum_len()
    };
    // Every delimiter byte the pattern has as a literal is tried.
    let mut delims: Vec<u8> = items
        .iter()
        .filter_map(|it| match it {
            Item::Node(h) => last_byte(h),
            _ => None,
        })
        .filter(u8::is_ascii)
        .collect();
    delims.sort_unstable();
    delims.dedup();
    let mut unpinned: Vec<String> = groups.iter().map(|g| g.to_string()).collect();
    for d in std::iter::once(None).chain(delims.into_iter().map(Some)) {
        let mut pinned = true;
        let mut seen = Some(0usize);
        let mut ok: BTreeSet<String> = BTreeSet::new();
        let mut bad: BTreeSet<String> = BTreeSet::new();
        for (k, it) in items.iter().enumerate() {
            match it {
                Item::Open(n) | Item::Close(n) => {
                    if pinned {
                        ok.insert(n.clone());
                    } else {
                        bad.insert(n.clone());
                    }
                }
                Item::Node(h) => {
                    pinned = pinned && (fixed(h) || maximal_run(h, k));
                    if let Some(b) = d {
                        seen = match (seen, count(h, b)) {
                            (Some(a), Some(x)) => Some(a + x),
                            _ => None,
                        };
                        if seen.is_some() && last_byte(h) == Some(b) {
                            pinned = true;
                        }
                    }
                }
            }
        }
        unpinned.retain(|g| !ok.contains(g) || bad.contains(g));
        if unpinned.is_empty() {
            return Ok(());
        }
    }
    Err(format!(
        "the position of {} is not fixed by the regex",
        unpinned.join(", ")
    ))
}

/// One escape at `c[i] == '\\'`: its translation and how many chars it took.
fn escape(c: &[char], i: usize, in_class: bool) -> Result<(String, usize), Unsupported> {
    let err = |what: String| Unsupported {
        construct: what,
        offset: i,
    };
    let Some(&e) = c.get(i + 1) else {
        return Err(err("trailing backslash".into()));
    };
    let hex = |n: usize| -> Result<(String, usize), Unsupported> {
        let h: String = c.iter().skip(i + 2).take(n).collect();
        if h.len() == n && h.chars().all(|x| x.is_ascii_hexdigit()) {
            Ok((format!("\\x{{{h}}}"), 2 + n))
        } else {
            Err(err(format!("bad escape `\\{e}{h}`")))
        }
    };
    Ok(match e {
        'd' | 'D' | 'w' | 'W' | 's' | 'S' | 'n' | 't' | 'r' | 'f' | 'v' => (format!("\\{e}"), 2),
        'b' if in_class => ("\\x08".into(), 2),
        'b' | 'B' | 'A' if !in_class => (format!("\\{e}"), 2),
        'Z' if !in_class => ("\\z".into(), 2),
        'a' => ("\\x07".into(), 2),
        'x' => hex(2)?,
        'u' => hex(4)?,
        'U' => hex(8)?,
        '0' => {
            let mut n = 2;
            let mut v = 0u32;
            while n < 4 && c.get(i + n).is_some_and(|d| ('0'..='7').contains(d)) {
                v = v * 8 + c[i + n].to_digit(8).unwrap_or(0);
                n += 1;
            }
            (format!("\\x{{{v:x}}}"), n)
        }
        '1'..='9' if !in_class => {
            return Err(err(format!("back-reference `\\{e}`")));
        }
        x if x.is_ascii_alphanumeric() => return Err(err(format!("escape `\\{x}`"))),
        x => (literal(x), 2),
    })
}

/// A char as a literal that means itself in and out of a class.
fn literal(x: char) -> String {
    if x.is_alphanumeric() || x == '_' || (x as u32) > 127 {
        x.to_string()
    } else if x == ' ' {
        "\\x20".into()
    } else if "\\.+*?()|[]{}^$#&-~".contains(x) {
        // Only the `regex` crate's meta characters: `\<` and `\>` are word boundaries there.
        format!("\\{x}")
    } else if x.is_ascii_graphic() {
        x.to_string()
    } else {
        format!("\\x{{{:x}}}", x as u32)
    }
}

/// A character class at `c[i] == '['`, written to `out`; returns the chars it took. Python
/// takes `[`, `&`, `~` and a doubled `-` literally inside a class where the `regex` crate
/// reads nested classes and set operations, so every literal is escaped.
fn class(c: &[char], i: usize, out: &mut String) -> Result<usize, Unsupported> {
    let mut j = i + 1;
    out.push('[');
    if c.get(j) == Some(&'^') {
        out.push('^');
        j += 1;
    }
    let mut first = true;
    loop {
        let Some(&ch) = c.get(j) else {
            return Err(Unsupported {
                construct: "unterminated character class".into(),
                offset: i,
            });
        };
        if ch == ']' && !first {
            out.push(']');
            return Ok(j + 1 - i);
        }
        // One item: a literal or escape, possibly the start of a range.
        let (item, n, is_set) = if ch == '\\' {
            let (s, n) = escape(c, j, true)?;
            let set = matches!(c.get(j + 1), Some('d' | 'D' | 'w' | 'W' | 's' | 'S'));
            (s, n, set)
        } else {
            (literal(ch), 1, false)
        };
        j += n;
        out.push_str(&item);
        first = false;
        // A range `a-b` (not `a-]`).
        if !is_set && c.get(j) == Some(&'-') && c.get(j + 1).is_some_and(|&x| x != ']') {
            j += 1;
            let (hi, n) = if c[j] == '\\' {
                escape(c, j, true)?
            } else {
                (literal(c[j]), 1)
            };
            j += n;
            out.push('-');
            out.push_str(&hi);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(p: &str) -> String {
        translate(p).unwrap()
    }

    #[test]
    fn plain_constructs_translate() {
        assert_eq!(t(r"^a(?:b|c)+?\d{1,3}$"), r"^a(?:b|c)+?\d{1,3}$");
        assert_eq!(t(r"x{,3}"), r"x{0,3}");
        assert_eq!(t(r"{DATE}"), r"\{DATE\}");
        assert_eq!(t(r"[^\[]*"), r"[^\[]*");
        assert_eq!(t(r"[[&~]"), r"[\[\&\~]");
        assert_eq!(t(r"[\w\-.]"), r"[\w\-\.]");
        assert_eq!(t(r"\<x\>"), r"<x>");
        assert_eq!(t(r"((?i)login|plain)"), r"((?i)login|plain)");
        assert!(regex::Regex::new(&t(r"\<x\> [\w\-.^_]*\w \Z")).is_ok());
    }

    #[test]
    fn linear_time_refusals_name_the_construct() {
        for (p, what) in [
            ("a(?!b)", "negative look-ahead"),
            ("a(?=b)", "look-ahead"),
            ("(?<=a)b", "look-behind"),
            ("(?P<u>x)(?P=u)", "back-reference"),
            (r"(a)\1", "back-reference"),
            ("(?(1)a|b)", "conditional"),
            ("a++", "possessive"),
        ] {
            let e = translate(p).unwrap_err();
            assert!(e.construct.contains(what), "{p}: {e:?}");
        }
    }

    #[test]
    fn not_starting_with_is_rewritten_only_when_equivalent() {
        let re = |p: &str| regex::Regex::new(&t(p)).unwrap();
        let r = re(r"^x (?!evasive)(?P<content>.+)$");
        assert!(r.is_match("x eva"));
        assert!(r.is_match("x evasiv"));
        assert!(r.is_match("x evasivx yz"));
        assert!(!r.is_match("x evasive"));
        assert!(!r.is_match("x evasive things"));
        assert!(!r.is_match("x "));
        let r = re(r"^(?:(?!error|info)[\w-]+: )?client");
        assert!(r.is_match("security: client"));
        assert!(r.is_match("err: client"));
        assert!(!r.is_match("infos-x: client"));
        assert!(r.is_match("client"));
        assert!(!r.is_match("error: client"));
        assert!(!r.is_match("info: client"));
        // A follower that is a char of a word before its last, a run at the pattern's end
        // (where the match may stop inside the text's run), case-insensitive patterns: kept
        // refused.
        assert!(translate(r"(?!error)\w+or").is_err());
        assert!(translate(r"(?!a:b)\S+:").is_err());
        assert!(translate(r"x(?!ab)\w+").is_err());
        assert!(translate(r"(?i)(?!error)\w+:").is_err());
    }

    #[test]
    fn not_starting_with_a_word_that_ends_at_the_follower() {
        let re = |p: &str| regex::Regex::new(&t(p)).unwrap();
        // traefik-auth: `(?!- )` before `\S+ `: only the user `-` itself is excluded.
        let r = re(r"^h \- (?!- )(?P<user>\S+) \[\]");
        assert_eq!(&r.captures("h - bob []").unwrap()["user"], "bob");
        assert_eq!(&r.captures("h - -x []").unwrap()["user"], "-x");
        assert!(!r.is_match("h - - []"));
        // apache-auth: `(?!evasive)` before `\S+:\S+`; the follower `:` is in the run's class
        // but in no word, so the run is what must not start with the word.
        let r = re(r"^\[(:?error|(?!evasive)\S+:\S+)\] x");
        assert!(r.is_match("[core:info] x"));
        assert!(r.is_match("[error] x"));
        assert!(r.is_match("[evasiv:error] x"));
        assert!(!r.is_match("[evasivex:error] x"));
        assert!(!r.is_match("[evasive:error] x"));
        // recidive: `(?!recidive\])(?:.*)\]`: `.*` must be neither `recidive` nor start
        // with `recidive]`, whatever other `]` the line has.
        let r = re(r"^\[(?!recidive\])(?:.*)\]\s+Ban\s+(?P<h>\S+)$");
        assert_eq!(&r.captures("[sshd] Ban 1.2.3.4").unwrap()["h"], "1.2.3.4");
        assert!(r.is_match("[recidive2] Ban 1.2.3.4"));
        assert!(r.is_match("[recidiv] Ban 1.2.3.4"));
        assert!(!r.is_match("[recidive] Ban 1.2.3.4"));
        assert!(!r.is_match("[recidive] x] Ban 1.2.3.4"));
        // The longest run is still taken first: groups are Python's.
        let r = re(r"^(?!ab)(?P<a>\w*)b(?P<rest>\w*)$");
        let c = r.captures("xbbb").unwrap();
        assert_eq!((&c["a"], &c["rest"]), ("xbb", ""));
        assert!(!r.is_match("abb"));
        assert!(r.is_match("b"));
    }

    #[test]
    fn not_starting_with_distributed_over_alternatives() {
        let re = |p: &str| regex::Regex::new(&t(p)).unwrap();
        // courier-auth's repeated `key=value, ` list that must stop at `ip=`.
        let r = re(
            r"^LOGIN FAILED, (?:(?!ip=)(?:user=(?P<user>[^,]*)|\w+=[^,]*), )*ip=\[(?P<h>[^\]]*)\]",
        );
        let c = r
            .captures("LOGIN FAILED, user=bob, method=x, ip=[1.2.3.4]")
            .unwrap();
        assert_eq!((&c["user"], &c["h"]), ("bob", "1.2.3.4"));
        // Without the look-ahead `\w+=[^,]*, ` would take `ip=1, `; with it nothing matches.
        assert!(!r.is_match("LOGIN FAILED, ip=1, ip=[1.2.3.4]"));
        let c = r.captures("LOGIN FAILED, user=ip=x, ip=[1.2.3.4]").unwrap();
        assert_eq!(&c["user"], "ip=x");
        // An alternative a word is a prefix of can never match; it stays (its groups exist).
        let r = re(r"^(?!ab)(?:abc(?P<x>\d)=|\w+=)");
        assert!(!r.is_match("abc1="));
        assert!(r.is_match("ac="));
        assert!(r.captures("ac=").unwrap().name("x").is_none());
        // An alternative whose run could end at the group's end: refused.
        assert!(translate(r"(?!ab)(?:\w+|x)=").is_err());
    }

    #[test]
    fn look_ahead_implied_by_every_path_is_dropped() {
        let r = regex::Regex::new(&t(r#"^in "[^"]+(?:"+[^"]*(?="))*?" x$"#)).unwrap();
        assert!(r.is_match(r#"in "a"b" x"#));
        assert!(r.is_match(r#"in "ab" x"#));
        assert!(!r.is_match(r#"in "a"b x"#));
        // Not followed by the char, the group not repeated, or its body not starting with
        // it: refused.
        assert!(translate(r#""[^"]+(?:"+[^"]*(?="))*?y"#).is_err());
        assert!(translate(r#""[^"]+(?:"+[^"]*(?="))""#).is_err());
        assert!(translate(r#""[^"]+(?:"?[^"]*(?="))*""#).is_err());
        assert!(translate(r#"a(?=")"#).is_err());
    }

    #[test]
    fn checks_after_the_match_only_where_the_position_is_fixed() {
        let tc = |p: &str| translate_checked(p, true).unwrap();
        // apache-auth's `^user (?!`)`: the marker sits 5 bytes into the text.
        let x = tc(r"^user (?!`)(?P<user>(?:\S*|.*?)) not found");
        let Some(Check::NotStartingWith { marker, words, .. }) = &x.check else {
            panic!("{x:?}");
        };
        assert_eq!(words, &vec!["`".to_string()]);
        assert!(pinned(&x.regex, false, &[marker]).is_ok());
        assert!(x.without.as_deref().unwrap().contains(NEVER));
        // Not at a fixed position (after `.*`), or in a multi-line buffer: refused.
        let x = tc(r"^.*user (?!`)(?P<user>(?:\S*|.*?)) not found");
        assert!(pinned(&x.regex, false, &["__la0"]).is_err());
        let x = tc(r"^user (?!`)(?P<user>(?:\S*|.*?)) not found");
        assert!(pinned(&x.regex, true, &["__la0"]).is_err());
        // stunnel: spaces counted up to the group, a run of hex digits stopped by `:`.
        let x = tc(
            r"^ LOG\d\[\d+:\d+\]:\ SSL_accept from (?P<ip4>\d+\.\d+\.\d+\.\d+):\d+ : (?P<CODE>[\dA-F]+): error:(?P=CODE):SSL$",
        );
        let Some(Check::BackRef { group, copy, .. }) = &x.check else {
            panic!("{x:?}");
        };
        assert_eq!(group, "CODE");
        assert!(pinned(&x.regex, false, &[group, copy]).is_ok());
        // selinux-ssh's optional quote: the group's length varies, so the copy's place is
        // not fixed.
        let x = tc(r#"^op=\S+ acct=(?P<q>"?)\S+(?P=q) exe"#);
        assert!(pinned(&x.regex, false, &["q", "__br0"]).is_err());
        // Rewritten instead, with the same matches in the same order.
        let r = optional_char_backrefs(r#"^op=\S+ acct=(?P<_q>"?)\S+(?P=_q) exe"#);
        assert_eq!(r, r#"^op=\S+ acct=(?:"\S+"|\S+) exe"#);
        let re = regex::Regex::new(&translate(&r).unwrap()).unwrap();
        for (line, m) in [
            (r#"op=x acct="bob" exe"#, true),
            (r#"op=x acct=bob exe"#, true),
            (r#"op=x acct="bob exe"#, true),
            (r#"op=x acct=bob" exe"#, true),
            (r#"op=x acct= exe"#, false),
        ] {
            assert_eq!(re.is_match(line), m, "{line}");
        }
        // A group fail2ban reads, a group inside the stretch, a second reference: untouched.
        for keep in [
            r#"acct=(?P<q>"?)\S+(?P=q) x"#,
            r#"acct=(?P<_q>"?)(?P<u>\S+)(?P=_q) x"#,
            r#"acct=(?P<_q>"?)\S+(?P=_q) (?P=_q)"#,
            r#"acct=(?P<_q>"?)\S+|x(?P=_q)"#,
        ] {
            assert_eq!(optional_char_backrefs(keep), keep);
        }
        // A group on a repetition, or not anchored: refused.
        let x = tc(r"^(?:(?P<a>\w+) )*(?P=a)$");
        assert!(pinned(&x.regex, false, &["a", "__br0"]).is_err());
        let x = tc(r"(?P<a>\w+) (?P=a)$");
        assert!(pinned(&x.regex, false, &["a", "__br0"]).is_err());
        // A second back-reference, or one under `(?i)`: refused outright.
        assert!(translate_checked(r"^(?P<a>\w+) (?P=a) (?P=a)$", true).is_err());
        assert!(translate_checked(r"(?i)^(?P<a>\w+) (?P=a)$", true).is_err());
        assert!(translate(r"^(?P<a>\w+) (?P=a)$").is_err());
    }

    #[test]
    fn host_tag_matches_like_fail2ban() {
        let re = regex::Regex::new(&translate(&resolve_tags("from <HOST> port", false)).unwrap())
            .unwrap();
        for (line, want) in [
            ("from 192.0.2.1 port", "192.0.2.1"),
            ("from ::ffff:192.0.2.1 port", "192.0.2.1"),
            ("from 2001:db8::1 port", "2001:db8::1"),
            ("from [2001:db8::] port", "2001:db8::"),
        ] {
            let m = re.captures(line).unwrap();
            let got = m.name("ip4").or(m.name("ip6")).unwrap().as_str();
            assert_eq!(got, want);
        }
        assert!(!re.is_match("from host.example port"));
        let r = resolve_tags("<F-USER>x</F-USER> <F-ID/>", true);
        assert_eq!(r, r"(?P<user>x) (?P<fid>\S+)");
    }
}
