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
        match e.offset {
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
            message: e.message().to_string(),
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
mod line_col_tests {
    #[test]
    fn lines_and_columns_count_from_one() {
        assert_eq!(super::line_col("a\nbc\n", 0), (1, 1));
        assert_eq!(super::line_col("a\nbc\n", 3), (2, 2));
        assert_eq!(super::line_col("a", 99), (1, 2));
    }
}
