//! fail2ban's date detector, as far as a filter needs it: find the time stamp in a line and
//! cut it out, because fail2ban matches `failregex` on the line without it (`__prefix_line`
//! and the `^` anchors of Debian's filters are written for that). The time itself comes from
//! the entry (journal, file source), so it is not parsed.
//!
//! The templates are fail2ban's (`DateDetectorCache.DEFAULT_TEMPLATES`, `strptime.timeRE`),
//! written for the `regex` crate: the back-reference of `(?P<_sep>[-/.])%m(?P=_sep)` is
//! expanded into one alternative per separator (the same language, the class takes one
//! char), and the word-boundary look-arounds fail2ban wraps a template in
//! (`(?=^|\b|\W)`, `(?=\b|\W|$)`) are checked on the chars around a match in code.

use super::dual::Re;
use super::pyre;

/// strptime directives, fail2ban's regexes without group names (nothing reads the parts).
fn directive(d: &str) -> Option<&'static str> {
    Some(match d {
        "a" => "(?i:mon|tue|wed|thu|fri|sat|sun)",
        "A" => "(?i:wednesday|thursday|saturday|tuesday|monday|friday|sunday)",
        "b" => "(?i:jan|feb|mar|apr|may|jun|jul|aug|sep|oct|nov|dec)",
        "B" => "(?i:september|february|november|december|january|october|august|march|april|june|july|may)",
        "p" => "(?i:am|pm)",
        "f" => "[0-9]{1,6}",
        "y" | "Exy" => r"\d\d",
        "Y" => r"\d{4}",
        "ExY" => r"20[0-3]\d",
        "I" => "(?:1[0-2]|0[1-9]|[1-9])",
        "j" => r"(?:36[0-6]|3[0-5]\d|[1-2]\d\d|0[1-9]\d|00[1-9]|[1-9]\d|0[1-9]|[1-9])",
        "U" | "W" => r"(?:5[0-3]|[0-4]\d|\d)",
        "w" => "[0-6]",
        "k" => r" ?(?:[0-2]?\d)",
        "l" => r" ?(?:1?\d)",
        "Z" => "(?:Z|[A-Z]{3,5})",
        "z" => r"(?:Z|UTC|GMT|[+-][01]\d(?::?\d{2})?)",
        "ExZ" => "(?:[A-Z](?:[A-Z]{2,4})?)",
        "Exz" => r"(?:(?:[A-Z](?:[A-Z]{2,4})?)?[+-][01]\d(?::?\d{2})?|[A-Z](?:[A-Z]{2,4})?)",
        "d" => r"(?:[1-2]\d|[0 ]?[1-9]|3[0-1])",
        "m" => "(?:0?[1-9]|1[0-2])",
        "H" => r"(?:[0-1]?\d|2[0-3])",
        "M" => r"(?:[0-5]?\d)",
        "S" => r"(?:[0-5]?\d|6[0-1])",
        "Exd" => r"(?:[1-2]\d|0[1-9]|3[0-1])",
        "Exm" => "(?:0[1-9]|1[0-2])",
        "ExH" => r"(?:[0-1]\d|2[0-3])",
        "Exk" => r" ?(?:[0-1]?\d|2[0-3])",
        "Exl" => r" ?(?:1[0-2]|\d)",
        "ExM" => r"(?:[0-5]\d)",
        "ExS" => r"(?:[0-5]\d|6[0-1])",
        "%" => "%",
        _ => return None,
    })
}

const DEFAULT_TEMPLATES: &[&str] = &[
    r"%ExY(?P<_sep>[-/.])%m(?P=_sep)%d(?:T|  ?)%H:%M:%S(?:[.,]%f)?(?:\s*%z)?",
    r"(?:%a )?%b %d %k:%M:%S(?:\.%f)?(?: %ExY)?",
    r"(?:%a )?%b %d %ExY %k:%M:%S(?:\.%f)?",
    r"%d(?P<_sep>[-/])%m(?P=_sep)(?:%ExY|%Exy) %k:%M:%S",
    r"%d(?P<_sep>[-/])%b(?P=_sep)%ExY[ :]?%H:%M:%S(?:\.%f)?(?: %z)?",
    r"%m/%d/%ExY:%H:%M:%S",
    r"%m-%d-%ExY %k:%M:%S(?:\.%f)?",
    r"EPOCH",
    r"{^LN-BEG}%H:%M:%S",
    r"^<%m/%d/%Exy@%H:%M:%S>",
    r"%Exy%Exm%Exd  ?%H:%M:%S",
    r"%b %d, %ExY %I:%M:%S %p",
    r"^%b-%d-%Exy %k:%M:%S",
    r"%ExY%Exm%Exd(?:T|  ?)%ExH%ExM%ExS(?:[.,]%f)?(?:\s*%z)?",
    r"(?:%Z )?(?:%a )?%b %d %k:%M:%S(?:\.%f)?(?: %ExY)?",
    r"(?:%z )?(?:%a )?%b %d %k:%M:%S(?:\.%f)?(?: %ExY)?",
    r"TAI64N",
];

#[derive(Debug, Clone)]
struct Template {
    re: Re,
    /// Group 1 is the date (the pattern had a group of its own), else the whole match.
    grouped: bool,
    bound_begin: bool,
    bound_end: bool,
}

/// The date templates of one filter (its `datepattern`, or fail2ban's defaults).
#[derive(Debug, Clone, Default)]
pub struct Dates {
    templates: Vec<Template>,
}

/// A date pattern the linear-time engine cannot run, or that does not compile.
#[derive(Debug, Clone)]
pub struct BadDate {
    pub pattern: String,
    pub why: String,
}

/// `(?P<N>[abc])BODY(?P=N)` -> `(?:aBODYa|bBODYb|cBODYc)`: the same language (the class
/// takes exactly one char, and the reference must repeat it), no back-reference.
fn expand_sep(p: &str) -> String {
    let mut s = p.to_string();
    while let Some(start) = s.find("(?P<_sep>[") {
        let cls_start = start + "(?P<_sep>[".len();
        let Some(cls_len) = s[cls_start..].find("])") else {
            break;
        };
        let chars: Vec<char> = s[cls_start..cls_start + cls_len]
            .replace("\\", "")
            .chars()
            .collect();
        let body_start = cls_start + cls_len + 2;
        let Some(body_len) = s[body_start..].find("(?P=_sep)") else {
            break;
        };
        let body = s[body_start..body_start + body_len].to_string();
        let alts: Vec<String> = chars
            .iter()
            .map(|c| {
                let l = regex::escape(&c.to_string());
                format!("{l}{body}{l}")
            })
            .collect();
        let end = body_start + body_len + "(?P=_sep)".len();
        s = format!("{}(?:{}){}", &s[..start], alts.join("|"), &s[end..]);
    }
    s
}

/// strptime `%X` directives to regexes.
fn directives(p: &str) -> Result<String, String> {
    let mut out = String::new();
    let mut rest = p;
    while let Some(i) = rest.find('%') {
        out.push_str(&rest[..i]);
        let after = &rest[i + 1..];
        let (d, n) = if let Some(x) = after.strip_prefix("Ex") {
            let k = x.chars().next().map(|c| c.len_utf8()).unwrap_or(0);
            (&after[..2 + k], 2 + k)
        } else {
            let k = after.chars().next().map(|c| c.len_utf8()).unwrap_or(0);
            (&after[..k], k)
        };
        let Some(r) = directive(d) else {
            return Err(format!("unknown date directive `%{d}`"));
        };
        out.push_str(r);
        rest = &after[n..];
    }
    out.push_str(rest);
    Ok(out)
}

fn starts_unbounded(p: &str) -> bool {
    let p = p.trim_start_matches('(');
    p.starts_with('^') || p.starts_with("?:^") || p.starts_with("**")
}

impl Dates {
    /// fail2ban's default templates: each anchored at the line's start first, then anywhere.
    pub fn defaults() -> Dates {
        let mut d = Dates::default();
        let mut anywhere = Vec::new();
        for t in DEFAULT_TEMPLATES {
            if !t.starts_with('^') && !t.starts_with("{^LN-BEG}") {
                // Defaults are fail2ban's own and known to compile.
                if let Ok(a) = compile(&format!("{{^LN-BEG}}{t}")) {
                    d.templates.extend(a);
                }
            }
            if let Ok(a) = compile(t) {
                anywhere.extend(a);
            }
        }
        d.templates.extend(anywhere);
        d
    }

    /// A filter's `datepattern` (one template a line; `{^LN-BEG}` alone: the defaults at the
    /// line's start only; `{NONE}`: no date in the line).
    pub fn from_pattern(pattern: &str) -> Result<Dates, BadDate> {
        let mut d = Dates::default();
        for p in pattern.split('\n').map(str::trim).filter(|p| !p.is_empty()) {
            let bad = |why: String| BadDate {
                pattern: p.to_string(),
                why,
            };
            let upper = p.to_ascii_uppercase();
            if upper == "{NONE}" || upper == "{^LN-BEG}{NONE}" {
                continue;
            }
            if upper == "{^LN-BEG}" {
                for t in DEFAULT_TEMPLATES {
                    let t = t.trim_start_matches('^').trim_start_matches("{^LN-BEG}");
                    d.templates
                        .extend(compile(&format!("{{^LN-BEG}}{t}")).map_err(bad)?);
                }
                continue;
            }
            if p.contains("{DATE}") {
                for t in DEFAULT_TEMPLATES {
                    let t = t.trim_start_matches('^').trim_start_matches("{^LN-BEG}");
                    if t == "EPOCH" || t == "TAI64N" {
                        continue;
                    }
                    // `{UNB}`: the template's own bounds are off inside the pattern.
                    let full = format!("{{UNB}}{}", p.replace("{DATE}", t));
                    d.templates.extend(compile(&full).map_err(bad)?);
                }
                continue;
            }
            d.templates.extend(compile(p).map_err(bad)?);
        }
        Ok(d)
    }

    /// The byte span of the date in `line`, if one of the templates finds it.
    pub fn find(&self, line: &str) -> Option<(usize, usize)> {
        for t in &self.templates {
            let mut from = 0;
            while from <= line.len() {
                let Some(c) = t.re.captures_at(line, from) else {
                    break;
                };
                let whole = c.get(0)?;
                let m = if t.grouped { c.get(1) } else { c.get(0) };
                let Some(m) = m else { break };
                if bounds_ok(line, whole.0, whole.1, t) {
                    return Some(m);
                }
                // Try again one char further (what the look-around would have done).
                from = whole.0 + line[whole.0..].chars().next().map_or(1, char::len_utf8);
            }
        }
        None
    }
}

fn is_word(c: Option<char>) -> bool {
    c.is_some_and(|c| c.is_alphanumeric() || c == '_')
}

/// fail2ban's `(?=^|\b|\W)` before and `(?=\b|\W|$)` after a template: false only inside
/// a word (a word char on both sides).
fn bounds_ok(line: &str, s: usize, e: usize, t: &Template) -> bool {
    let before = line[..s].chars().next_back();
    let first = line[s..].chars().next();
    let last = line[..e].chars().next_back();
    let after = line[e..].chars().next();
    if t.bound_begin && is_word(before) && is_word(first) {
        return false;
    }
    if t.bound_end && is_word(last) && is_word(after) {
        return false;
    }
    true
}

/// One template (fail2ban's `DatePatternRegex`, `DateEpoch`, `DateTai64n`).
fn compile(p: &str) -> Result<Vec<Template>, String> {
    let (line_begin, p) = match p.strip_prefix("{^LN-BEG}") {
        Some(r) => (true, r),
        None => (false, p),
    };
    let (unbound, p) = match p.strip_prefix("{UNB}") {
        Some(r) => (true, r),
        None => (false, p),
    };
    let upper = p.to_ascii_uppercase();
    let (body, grouped, words) = if upper == "EPOCH" || upper == "LEPOCH" {
        let digits = if upper == "EPOCH" {
            r"\d{10,11}\b(?:\.\d{3,6})?"
        } else {
            r"\d{10,11}(?:\d{3}(?:\.\d{1,6}|\d{3})?)?"
        };
        if line_begin {
            (format!(r"^(?:\[|audit\()?({digits})"), true, false)
        } else {
            (format!("({digits})"), true, true)
        }
    } else if upper == "TAI64N" {
        if line_begin {
            (r"^(?:\W{0,2})?(@[0-9a-f]{24})".to_string(), true, false)
        } else {
            (r"(@[0-9a-f]{24})".to_string(), true, true)
        }
    } else {
        let mut r = directives(&expand_sep(p))?;
        let grouped = has_group(&r);
        if line_begin && !r.starts_with('^') {
            r = if grouped {
                format!(r"^(?:\W{{0,2}})?{r}")
            } else {
                format!(r"^(?:\W{{0,2}})?({r})")
            };
            (r, true, !unbound)
        } else if grouped {
            (r, true, !unbound && !starts_unbounded(p))
        } else {
            let anchored = r.starts_with('^');
            let inner = r.trim_start_matches('^');
            let r = format!("{}({inner})", if anchored { "^" } else { "" });
            (r, true, !unbound && !anchored)
        }
    };
    let body = body.replace("**", "");
    let rust = pyre::translate(&body).map_err(|u| u.construct)?;
    let re = Re::new(&rust, false)?;
    Ok(vec![Template {
        re,
        grouped,
        bound_begin: words && !line_begin,
        bound_end: !unbound,
    }])
}

/// Whether a Python regex has a capturing group of its own: `(` not followed by `?`, or a
/// named `(?P<`.
fn has_group(r: &str) -> bool {
    let b = r.as_bytes();
    (0..b.len()).any(|i| {
        b[i] == b'('
            && (i == 0 || b[i - 1] != b'\\')
            && (b.get(i + 1) != Some(&b'?') || r[i..].starts_with("(?P<"))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_templates_cut_the_usual_stamps() {
        let d = Dates::defaults();
        let cases = [
            ("Jan 12 10:00:00 host sshd[1]: x", "Jan 12 10:00:00"),
            ("2013-01-02 03:04:05,123 fail x", "2013-01-02 03:04:05,123"),
            (
                "1.2.3.4 - - [01/Jan/2013:03:04:05 +0100] \"GET\"",
                "01/Jan/2013:03:04:05 +0100",
            ),
            (
                "[Sun Jul 17 22:18:49 2011] [error]",
                "Sun Jul 17 22:18:49 2011",
            ),
        ];
        for (line, want) in cases {
            let (s, e) = d.find(line).unwrap_or_else(|| panic!("no date in {line}"));
            assert_eq!(&line[s..e], want, "{line}");
        }
        assert_eq!(d.find("no stamp here"), None);
    }

    #[test]
    fn patterns_with_groups_and_separators() {
        let d = Dates::from_pattern(r"^[^\[]*\[({DATE})").unwrap();
        let line = "[Sun Jul 17 22:18:49 2011] [error] x";
        let (s, e) = d.find(line).unwrap();
        assert_eq!(&line[s..e], "Sun Jul 17 22:18:49 2011");
        let d = Dates::from_pattern(
            r"{^LN-BEG}%ExY(?P<_sep>[-/.])%m(?P=_sep)%d[T ]%H:%M:%S(?:[.,]%f)?(?:\s*%z)?",
        )
        .unwrap();
        let line = "2015/01/02 03:04:05 [error] 1#0: x";
        let (s, e) = d.find(line).unwrap();
        assert_eq!(&line[s..e], "2015/01/02 03:04:05");
        assert_eq!(d.find("2015/01-02 03:04:05 x"), None);
        assert!(Dates::from_pattern("{NONE}").unwrap().find(line).is_none());
    }
}
