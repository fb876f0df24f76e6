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

use std::collections::BTreeSet;

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
/// construct it cannot run.
pub fn translate(py: &str) -> Result<String, Unsupported> {
    let c: Vec<char> = py.chars().collect();
    let mut out = String::with_capacity(py.len() + 16);
    let mut i = 0;
    let unsupported = |what: &str, at: usize| Unsupported {
        construct: what.to_string(),
        offset: at,
    };
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
                        out.push_str("(?P<");
                        out.push_str(&name);
                        out.push('>');
                        i += 5 + end;
                    } else if two("P=") {
                        let end = c[i..].iter().position(|&x| x == ')').unwrap_or(0);
                        let s: String = c[i..=i + end].iter().collect();
                        return Err(unsupported(&format!("back-reference `{s}`"), i));
                    } else if two("=") {
                        return Err(unsupported("look-ahead `(?=`", i));
                    } else if two("!") {
                        match rewrite_not_starting_with(&c, i, py.contains("(?i")) {
                            Some((rust, n)) => {
                                out.push_str(&rust);
                                i += n;
                                quantifiable = false;
                                continue;
                            }
                            None => return Err(unsupported("negative look-ahead `(?!`", i)),
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
                    out.push('(');
                    i += 1;
                }
                quantifiable = false;
            }
            ')' => {
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
    Ok(out)
}

/// The one class of negative look-ahead rewritten: `(?!W1|W2...)` of plain literals, then
/// group openings, then a run `C+` or `C*` of one class C (`.`, `\S`, `\w`, `\d`,
/// `[\w-]`), then group closings and a follower that cannot take a char of C (`$`, the
/// pattern's end, or a literal not in C), with every char of every W in C.
///
/// Why it is equivalent: the follower cannot match a char of C, so the run always takes the
/// whole C-run of the text at that point; every W is made of C chars, so "the text there
/// starts with some W" is "the run starts with some W". The rewrite is the run restricted to
/// strings that do not start with any W: a trie of the Ws, where each node either leaves
/// the trie with a C char that is not a child (then any C run), or takes a child that ends
/// no W and goes on (or stops there). Case-insensitive patterns are not rewritten.
fn rewrite_not_starting_with(c: &[char], i: usize, icase: bool) -> Option<(String, usize)> {
    if icase {
        return None;
    }
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
    // The follower.
    let ok = match c.get(j) {
        None | Some('$') => true,
        Some('\\') => c
            .get(j + 1)
            .is_some_and(|&e| !e.is_ascii_alphanumeric() && !inside(e)),
        Some(&x) => !".+*?()[]{}^|".contains(x) && !inside(x),
    };
    if !ok || words.iter().flatten().any(|&x| !inside(x)) {
        return None;
    }
    let body = trie_alternatives(&words, 0, class);
    let body = body?;
    let run = if plus {
        format!("(?:{body})")
    } else {
        format!("(?:{body})?")
    };
    Some((format!("{openers}{run}{closers}"), j - i))
}

/// Strings of `class` chars (at least one) that start with none of `words` (those of
/// `words` still alive at this depth all share the prefix before `depth`). `None` when every
/// continuation is excluded.
fn trie_alternatives(words: &[Vec<char>], depth: usize, class: &str) -> Option<String> {
    let mut children: Vec<char> = words.iter().filter_map(|w| w.get(depth).copied()).collect();
    children.sort_unstable();
    children.dedup();
    let excluded: String = children.iter().map(|&x| literal(x)).collect();
    let mut alts = vec![format!("[{class}&&[^{excluded}]]{class}*")];
    for ch in children {
        let next: Vec<Vec<char>> = words
            .iter()
            .filter(|w| w.get(depth) == Some(&ch))
            .cloned()
            .collect();
        if next.iter().any(|w| w.len() == depth + 1) {
            continue; // a whole word: excluded
        }
        let l = literal(ch);
        match trie_alternatives(&next, depth + 1, class) {
            Some(rest) => alts.push(format!("{l}(?:{rest})?")),
            None => alts.push(l),
        }
    }
    Some(alts.join("|"))
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
        // Followers that could take a char of the run, or words with chars outside it: kept
        // refused.
        assert!(translate(r"(?!error)\w+or").is_err());
        assert!(translate(r"(?!- )\S+ ").is_err());
        assert!(translate(r"(?i)(?!error)\w+:").is_err());
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
