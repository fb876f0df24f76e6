//! A translated fail2ban regex compiled twice: as written (Unicode classes, as Python's `re`
//! has them on `str`), and without Unicode for lines that are all ASCII.
//!
//! Why: Python's `\w`, `\d`, `\s`, `.`, `\S` and negated classes are Unicode, so the
//! translation keeps them Unicode; but a Unicode `\w` is hundreds of byte ranges and `.` a
//! small UTF-8 automaton, which makes the capture engines (the PikeVM and the bounded
//! backtracker, which every line that matches needs for its `<HOST>` span) several times
//! slower per byte than the ASCII classes, and a large NFA also pushes the regex crate off
//! the backtracker onto the slower PikeVM.
//!
//! Why it is the same: on a haystack of ASCII bytes only, every Unicode class and its ASCII
//! counterpart agree on every byte the haystack can hold: `\d` (Nd) ∩ ASCII is `[0-9]`, `\w`
//! ∩ ASCII is `[0-9A-Za-z_]`, `\s` (White_Space) ∩ ASCII is `[\t\n\v\f\r ]`, so `\b` agrees
//! too; a negated class or `.` excludes the same ASCII bytes in both; `(?i)` adds, beyond
//! ASCII case pairs, only non-ASCII chars (`K` ~ U+212A KELVIN SIGN), which an ASCII haystack
//! does not have. Spans are byte offsets in both. A pattern that does not compile without
//! Unicode (a literal non-ASCII char, `\pL`) keeps only its Unicode form.

use regex::bytes;
use regex::{Regex, RegexBuilder, RegexSet, RegexSetBuilder};

const SIZE: usize = 64 << 20;
const DFA_SIZE: usize = 16 << 20;

/// Group spans of one match, by group index (0 = the whole match).
#[derive(Debug, Clone, Default)]
pub(crate) struct Caps {
    slots: Vec<Option<(usize, usize)>>,
}

impl Caps {
    pub(crate) fn get(&self, i: usize) -> Option<(usize, usize)> {
        self.slots.get(i).copied().flatten()
    }
}

#[derive(Debug, Clone)]
pub(crate) struct Re {
    uni: Regex,
    ascii: Option<bytes::Regex>,
    names: Vec<Option<String>>,
}

impl Re {
    pub(crate) fn new(pattern: &str, multiline: bool) -> Result<Re, String> {
        let uni = RegexBuilder::new(pattern)
            .multi_line(multiline)
            .size_limit(SIZE)
            .dfa_size_limit(DFA_SIZE)
            .build()
            .map_err(|e| e.to_string())?;
        let ascii = bytes::RegexBuilder::new(pattern)
            .unicode(false)
            .multi_line(multiline)
            .size_limit(SIZE)
            .dfa_size_limit(DFA_SIZE)
            .build()
            .ok();
        let names = uni.capture_names().map(|n| n.map(String::from)).collect();
        Ok(Re { uni, ascii, names })
    }

    pub(crate) fn as_str(&self) -> &str {
        self.uni.as_str()
    }

    /// Group names by index (`None` for unnamed groups and the whole match).
    pub(crate) fn names(&self) -> impl Iterator<Item = (usize, &str)> {
        self.names
            .iter()
            .enumerate()
            .filter_map(|(i, n)| n.as_deref().map(|n| (i, n)))
    }

    pub(crate) fn index(&self, name: &str) -> Option<usize> {
        self.names.iter().position(|n| n.as_deref() == Some(name))
    }

    pub(crate) fn is_match(&self, text: &str) -> bool {
        match &self.ascii {
            Some(a) if text.is_ascii() => a.is_match(text.as_bytes()),
            _ => self.uni.is_match(text),
        }
    }

    pub(crate) fn captures(&self, text: &str) -> Option<Caps> {
        self.captures_at(text, 0)
    }

    pub(crate) fn captures_at(&self, text: &str, from: usize) -> Option<Caps> {
        match &self.ascii {
            Some(a) if text.is_ascii() => {
                let mut locs = a.capture_locations();
                a.captures_read_at(&mut locs, text.as_bytes(), from)?;
                Some(Caps {
                    slots: (0..locs.len()).map(|i| locs.get(i)).collect(),
                })
            }
            _ => {
                let mut locs = self.uni.capture_locations();
                self.uni.captures_read_at(&mut locs, text, from)?;
                Some(Caps {
                    slots: (0..locs.len()).map(|i| locs.get(i)).collect(),
                })
            }
        }
    }
}

/// Several [`Re`] patterns as one set, for "does any of them match".
#[derive(Debug, Clone)]
pub(crate) struct ReSet {
    uni: RegexSet,
    ascii: Option<bytes::RegexSet>,
}

impl ReSet {
    pub(crate) fn new<'a>(
        patterns: impl Iterator<Item = &'a str> + Clone,
        multiline: bool,
    ) -> Option<ReSet> {
        let uni = RegexSetBuilder::new(patterns.clone())
            .multi_line(multiline)
            .size_limit(SIZE)
            .dfa_size_limit(DFA_SIZE)
            .build()
            .ok()?;
        let ascii = bytes::RegexSetBuilder::new(patterns)
            .unicode(false)
            .multi_line(multiline)
            .size_limit(SIZE)
            .dfa_size_limit(DFA_SIZE)
            .build()
            .ok();
        Some(ReSet { uni, ascii })
    }

    pub(crate) fn is_match(&self, text: &str) -> bool {
        match &self.ascii {
            Some(a) if text.is_ascii() => a.is_match(text.as_bytes()),
            _ => self.uni.is_match(text),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ascii_and_unicode_forms_agree() {
        let re = Re::new(r"^(?i)user (?P<u>\w+) from (?P<h>\S+)\b", false).unwrap();
        assert!(re.ascii.is_some());
        let c = re.captures("USER bob from 192.0.2.1").unwrap();
        assert_eq!(c.get(re.index("u").unwrap()), Some((5, 8)));
        assert_eq!(c.get(re.index("h").unwrap()), Some((14, 23)));
        // Non-ASCII lines take the Unicode form: `\w` takes `é`.
        let c = re.captures("user bébé from x").unwrap();
        assert_eq!(c.get(re.index("u").unwrap()), Some((5, 11)));
        // A pattern with a non-ASCII literal keeps the Unicode form only, and still runs.
        let re = Re::new("^é(?P<x>.)$", false).unwrap();
        assert_eq!(re.captures("éa").unwrap().get(1), Some((2, 3)));
        assert!(!re.is_match("ea"));
    }
}
