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

/// 1-based line and column of a byte offset in a config text, for `file:line:col` errors.
pub fn line_col(text: &str, offset: usize) -> (usize, usize) {
    let before = &text[..offset.min(text.len())];
    let line = before.matches('\n').count() + 1;
    let column = before.len() - before.rfind('\n').map(|i| i + 1).unwrap_or(0) + 1;
    (line, column)
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
