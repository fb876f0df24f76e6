//! fail2ban's annotated sample logs (`fail2ban/tests/files/logs/*`, Debian package
//! `fail2ban`), read the way `fail2ban-testcases` reads them (`samplestestcase.py`):
//! `# failJSON: {...}` annotates the very next line; `# filterOptions: {...}` or `[{...}, ...]`
//! starts a block scored under each of those filter options (merged over `# fileOptions:`);
//! `# addFILE: "name"` appends another sample file; other `#` lines and blank lines are
//! skipped; a line without annotation is a sample that must not match.
//!
//! Shared by tests/suite/conformance.rs (crowdwall's own parsers) and
//! tests/suite/f2b_filters.rs (fail2ban's filters loaded by crowdwall).

use serde_json::Value;

pub const DIRS: &[&str] = &[
    "/usr/lib/python3/dist-packages/fail2ban/tests/files/logs",
    "/usr/share/fail2ban/tests/files/logs",
];

/// The directory with the sample logs, if the fail2ban package is installed.
pub fn logs_dir() -> Option<&'static str> {
    DIRS.iter()
        .copied()
        .find(|d| std::path::Path::new(&format!("{d}/sshd")).exists())
}

#[derive(Debug, Clone)]
pub struct Sample {
    /// `file:line` of the sample line.
    pub at: String,
    pub line: String,
    /// The annotation (`{}` when the line had none: it must not match).
    pub json: Value,
}

impl Sample {
    pub fn must_match(&self) -> bool {
        self.json["match"].as_bool() == Some(true)
    }
    pub fn host(&self) -> Option<&str> {
        self.json["host"].as_str()
    }
}

#[derive(Debug, Clone)]
pub enum Item {
    /// A new block: the filter options to score it under (each already merged over the
    /// file options).
    Options(Vec<serde_json::Map<String, Value>>),
    Sample(Sample),
}

/// The items of sample log `name` (and the files it adds), `None` when there is none.
pub fn read(dir: &str, name: &str) -> Option<Vec<Item>> {
    let mut files = vec![name.to_string()];
    let mut items = Vec::new();
    let mut i = 0;
    while i < files.len() {
        let raw = std::fs::read(format!("{dir}/{}", files[i])).ok()?;
        let text = String::from_utf8_lossy(&raw).into_owned();
        let file = files[i].clone();
        i += 1;
        let mut common = serde_json::Map::new();
        let lines: Vec<&str> = text.split('\n').collect();
        let mut n = 0;
        while n < lines.len() {
            let line = lines[n].trim_end_matches('\r');
            n += 1;
            if let Some((kind, body)) = annotation(line) {
                let Ok(v) = serde_json::from_str::<Value>(body) else {
                    continue;
                };
                match kind {
                    "fileOptions" => {
                        common = v.as_object().cloned().unwrap_or_default();
                    }
                    "filterOptions" => {
                        let list = match v {
                            Value::Array(a) => a,
                            o => vec![o],
                        };
                        let opts = list
                            .into_iter()
                            .map(|o| {
                                let mut m = common.clone();
                                m.extend(o.as_object().cloned().unwrap_or_default());
                                m
                            })
                            .collect();
                        items.push(Item::Options(opts));
                    }
                    "addFILE" => {
                        if let Some(f) = v.as_str() {
                            files.push(f.to_string());
                        }
                    }
                    _ => {
                        // failJSON: the very next line is the sample, whatever it is.
                        if n < lines.len() && !(n + 1 == lines.len() && lines[n].is_empty()) {
                            items.push(Item::Sample(Sample {
                                at: format!("{file}:{}", n + 1),
                                line: lines[n].trim_end_matches('\r').to_string(),
                                json: v,
                            }));
                            n += 1;
                        }
                    }
                }
                continue;
            }
            if line.starts_with('#') || line.trim().is_empty() {
                continue;
            }
            items.push(Item::Sample(Sample {
                at: format!("{file}:{n}"),
                line: line.to_string(),
                json: Value::Object(Default::default()),
            }));
        }
    }
    Some(items)
}

/// `^#+ ?(failJSON|fileOptions|filterOptions|addFILE):(.+)$`
fn annotation(line: &str) -> Option<(&str, &str)> {
    let rest = line.trim_start_matches('#');
    if rest.len() == line.len() {
        return None;
    }
    let rest = rest.strip_prefix(' ').unwrap_or(rest);
    for k in ["failJSON", "fileOptions", "filterOptions", "addFILE"] {
        if let Some(body) = rest.strip_prefix(k).and_then(|r| r.strip_prefix(':')) {
            if !body.is_empty() {
                return Some((k, body));
            }
        }
    }
    None
}

/// The few Python conditions the sample logs use (`name == 'sshd'`,
/// `opts.get('mode') != 'aggressive'`); `None` for any other.
pub fn condition(expr: &str, name: &str, opts: &serde_json::Map<String, Value>) -> Option<bool> {
    let e: String = expr.chars().filter(|c| !c.is_whitespace()).collect();
    let (lhs, rhs, eq) = if let Some((l, r)) = e.split_once("==") {
        (l, r, true)
    } else if let Some((l, r)) = e.split_once("!=") {
        (l, r, false)
    } else {
        return None;
    };
    let rhs = rhs.trim_matches('\'').trim_matches('"');
    let value = if lhs == "name" {
        name.to_string()
    } else if let Some(k) = lhs
        .strip_prefix("opts.get('")
        .and_then(|k| k.strip_suffix("')"))
    {
        opts.get(k)
            .and_then(|v| v.as_str())
            .unwrap_or("")
            .to_string()
    } else {
        return None;
    };
    Some((value == rhs) == eq)
}
