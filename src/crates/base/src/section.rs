//! The one way a config section checks itself. Each module owns its section (its struct,
//! defaults and checks); the daemon's `config` only aggregates them and turns a
//! [`SectionError`] into `file: section.key: message` (or `file:line:col` when the section
//! knows where in the text the bad value stood).

/// A value that parses but does not make sense.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{key}: {message}")]
pub struct SectionError {
    /// The key, relative to the section (`leak`, `rules[2]`); empty for the section itself.
    pub key: String,
    pub message: String,
    /// Byte offset of the bad value in the config text, when the section kept its span.
    pub offset: Option<usize>,
}

impl SectionError {
    pub fn new(key: impl Into<String>, message: impl Into<String>) -> SectionError {
        SectionError {
            key: key.into(),
            message: message.into(),
            offset: None,
        }
    }

    pub fn at(mut self, offset: usize) -> SectionError {
        self.offset = Some(offset);
        self
    }

    /// The key under a parent (`scenarios.ssh` + `leak` = `scenarios.ssh.leak`).
    pub fn under(mut self, parent: &str) -> SectionError {
        self.key = match (parent.is_empty(), self.key.is_empty()) {
            (true, _) => self.key,
            (false, true) => parent.to_string(),
            (false, false) if self.key.starts_with('[') => format!("{parent}{}", self.key),
            (false, false) => format!("{parent}.{}", self.key),
        };
        self
    }
}

/// A config section that checks what serde cannot (ranges, cross-field rules).
pub trait Section {
    /// The section's name in the file (`ban`, `firewall`, `syslog`).
    const NAME: &'static str;
    fn check(&self) -> Result<(), SectionError>;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_nest() {
        let e = SectionError::new("leak", "must be more than 0s").under("scenarios.ssh");
        assert_eq!(e.to_string(), "scenarios.ssh.leak: must be more than 0s");
        let e = SectionError::new("[2]", "x").under("files");
        assert_eq!(e.key, "files[2]");
        let e = SectionError::new("", "x").under("syslog");
        assert_eq!(e.key, "syslog");
    }
}

/// What can be wrong with a config file, for every program that reads one (the daemon's and
/// the hub's): the message names the file, and the line or the key.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("{path}: cannot read: {source}")]
    Read {
        path: std::path::PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// Syntax, unknown keys, or a value of the wrong form, with the position toml gives.
    #[error("{path}:{line}:{column}: {message}")]
    Parse {
        path: std::path::PathBuf,
        line: usize,
        column: usize,
        message: String,
    },
    /// Values that parse but do not make sense together.
    #[error("{path}: {key}: {message}")]
    Invalid {
        path: std::path::PathBuf,
        key: String,
        message: String,
    },
}

impl ConfigError {
    /// A section's complaint about `path`: at its line when the section kept the value's
    /// position in `text`, else by key.
    pub fn from_section(path: &std::path::Path, text: &str, e: SectionError) -> ConfigError {
        // When the section did not keep the value's span, the key may still name a table
        // (`[scenarios.ssh-bruteforse]`) or a key in one that the text has.
        match e.offset.or_else(|| locate(text, &e.key)) {
            Some(offset) => {
                let (line, column) = line_col(text, offset);
                ConfigError::Parse {
                    path: path.to_path_buf(),
                    line,
                    column,
                    message: format!("{}: {}", e.key, e.message),
                }
            }
            None => ConfigError::Invalid {
                path: path.to_path_buf(),
                key: e.key,
                message: e.message,
            },
        }
    }
}

/// Where `key` (`scenarios.ssh-bruteforse`, `ban.duration`) stands in a config text: the
/// `key =` line inside its table, else the table's `[header]`; `None` when the text has
/// neither (a default value, an inline table).
pub fn locate(text: &str, key: &str) -> Option<usize> {
    let parts: Vec<&str> = key.split('.').collect();
    // The longest table header the key starts with.
    for n in (1..=parts.len()).rev() {
        let header = format!("[{}]", parts[..n].join("."));
        let mut offset = 0;
        let mut found = None;
        for line in text.split_inclusive('\n') {
            let t = line.split('#').next().unwrap_or("").trim();
            if found.is_none() && t == header {
                found = Some(offset + (line.len() - line.trim_start().len()));
            } else if found.is_some() {
                if t.starts_with('[') {
                    break;
                }
                if n + 1 == parts.len() {
                    let k = t.split('=').next().unwrap_or("").trim();
                    if t.contains('=') && k == parts[n] {
                        return Some(offset + (line.len() - line.trim_start().len()));
                    }
                }
            }
            offset += line.len();
        }
        if found.is_some() {
            return found;
        }
    }
    None
}

/// The closest of `candidates` to a misspelt `word` (at most two edits away, and fewer
/// than half its length), for "did you mean ...?".
pub fn closest<'a>(word: &str, candidates: impl IntoIterator<Item = &'a str>) -> Option<&'a str> {
    fn distance(a: &str, b: &str) -> usize {
        let b: Vec<char> = b.chars().collect();
        let mut prev: Vec<usize> = (0..=b.len()).collect();
        for (i, ca) in a.chars().enumerate() {
            let mut cur = vec![i + 1];
            for (j, cb) in b.iter().enumerate() {
                let sub = prev[j] + usize::from(ca != *cb);
                cur.push(sub.min(prev[j + 1] + 1).min(cur[j] + 1));
            }
            prev = cur;
        }
        prev[b.len()]
    }
    candidates
        .into_iter()
        .map(|c| (distance(word, c), c))
        .filter(|&(d, _)| d > 0 && d <= 2 && d * 2 < word.chars().count())
        .min_by_key(|&(d, _)| d)
        .map(|(_, c)| c)
}

/// serde's type names (`expected u32`) in words an administrator reads.
fn plain_types(message: &str) -> String {
    let mut m = message.to_string();
    for (from, to) in [
        ("expected u8", "expected a whole number (0 to 255)"),
        ("expected u16", "expected a whole number (0 to 65535)"),
        ("expected u32", "expected a whole number (0 to 4294967295)"),
        ("expected u64", "expected a whole number (0 or more)"),
        ("expected usize", "expected a whole number (0 or more)"),
        ("expected i32", "expected a whole number"),
        ("expected i64", "expected a whole number"),
        ("expected f64", "expected a number"),
        ("expected a boolean", "expected true or false"),
        (
            "expected a sequence",
            "expected a list in brackets: [\"a\", \"b\"]",
        ),
    ] {
        if let Some(i) = m.find(from) {
            // not `expected u32` inside `expected u320`
            let end = i + from.len();
            if !m[end..].starts_with(|c: char| c.is_ascii_alphanumeric()) {
                m.replace_range(i..end, to);
            }
        }
    }
    m.replace("invalid type: ", "got ")
        .replace("invalid value: ", "got ")
}

/// The text of the config file at `path`, and the name to report errors under. A missing
/// file at the program's default path means its embedded default (a fresh install runs on
/// the defaults); anywhere else it is an error.
pub fn read_config(
    path: &std::path::Path,
    default_path: &str,
    embedded: &'static str,
) -> Result<(std::borrow::Cow<'static, str>, std::path::PathBuf), ConfigError> {
    match std::fs::read_to_string(path) {
        Ok(text) => Ok((text.into(), path.to_path_buf())),
        Err(e)
            if e.kind() == std::io::ErrorKind::NotFound
                && path == std::path::Path::new(default_path) =>
        {
            Ok((embedded.into(), "<embedded default>".into()))
        }
        Err(source) => Err(ConfigError::Read {
            path: path.to_path_buf(),
            source,
        }),
    }
}

/// Deserialises a config text; a syntax error, an unknown key or a value of the wrong form
/// is reported at its line and column.
pub fn parse_toml<T: serde::de::DeserializeOwned>(
    text: &str,
    path: &std::path::Path,
) -> Result<T, ConfigError> {
    toml::from_str(text).map_err(|e| {
        let (line, column) = e.span().map(|s| line_col(text, s.start)).unwrap_or((0, 0));
        ConfigError::Parse {
            path: path.to_path_buf(),
            line,
            column,
            message: plain_types(e.message()),
        }
    })
}

/// 1-based line and column of a byte offset in a config text, for `file:line:col` errors.
pub fn line_col(text: &str, offset: usize) -> (usize, usize) {
    let before = &text[..offset.min(text.len())];
    let line = before.matches('\n').count() + 1;
    let column = before.len() - before.rfind('\n').map(|i| i + 1).unwrap_or(0) + 1;
    (line, column)
}

#[cfg(test)]
mod plain_tests {
    #[test]
    fn serde_jargon_becomes_words() {
        let m = super::plain_types("invalid type: string \"five\", expected u32");
        assert_eq!(
            m,
            "got string \"five\", expected a whole number (0 to 4294967295)"
        );
        assert!(!m.contains("u32"));
    }

    #[test]
    fn keys_and_tables_are_found_in_the_text() {
        let text = "[ban]\nduration = \"4h\"\n\n[scenarios.ssh-bruteforse]\nleak = \"1m\"\n";
        let at = |k: &str| super::locate(text, k).map(|o| super::line_col(text, o).0);
        assert_eq!(at("scenarios.ssh-bruteforse"), Some(4));
        assert_eq!(at("scenarios.ssh-bruteforse.leak"), Some(5));
        assert_eq!(at("ban.duration"), Some(2));
        assert_eq!(
            at("ban.max_duration"),
            Some(1),
            "the table when the key is a default"
        );
        assert_eq!(at("firewall.table"), None);
    }

    #[test]
    fn closest_suggests_near_misses_only() {
        let names = ["ssh-bruteforce", "ssh-slow-bruteforce", "ssh-probing"];
        assert_eq!(
            super::closest("ssh-bruteforse", names),
            Some("ssh-bruteforce")
        );
        assert_eq!(super::closest("my-own-scenario", names), None);
        assert_eq!(
            super::closest("ssh-bruteforce", names),
            None,
            "an exact name is no typo"
        );
    }
}

#[cfg(test)]
mod line_col_tests {
    #[test]
    fn lines_and_columns_count_from_one() {
        assert_eq!(super::line_col("a\nbc\n", 0), (1, 1));
        assert_eq!(super::line_col("a\nbc\n", 3), (2, 2));
        assert_eq!(super::line_col("a", 99), (1, 2));
    }
}
