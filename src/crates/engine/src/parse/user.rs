//! User-defined parsers from the configuration (`[parsers.NAME]`): rules of an anchored
//! regex with typed placeholders (see [`super::template`]) and the event kind a match
//! yields, bound to identifiers (journal/syslog) or to file sources that name the parser.

use std::collections::HashSet;
use std::sync::Mutex;

use super::template::{Emit, Rule, RuleParser, Template, TemplateError};
use super::{Event, EventKind, Parsed, ServiceParser};
use crate::LogEntry;

/// Names of user-defined parsers, services and rules live as long as the process: events
/// carry `&'static str`. Interned so that reloading the same configuration does not grow.
pub fn intern(s: &str) -> &'static str {
    static NAMES: Mutex<Option<HashSet<&'static str>>> = Mutex::new(None);
    let mut guard = match NAMES.lock() {
        Ok(g) => g,
        Err(p) => p.into_inner(),
    };
    let set = guard.get_or_insert_with(HashSet::new);
    if let Some(&s) = set.get(s) {
        return s;
    }
    let leaked: &'static str = Box::leak(s.to_owned().into_boxed_str());
    set.insert(leaked);
    leaked
}

/// One rule as written in the configuration.
#[derive(Debug, Clone)]
pub struct RuleDef {
    pub name: Option<String>,
    pub kind: EventKind,
    pub pattern: String,
}

/// A compiled user-defined parser.
pub struct UserParser {
    name: &'static str,
    identifiers: Vec<String>,
    inner: RuleParser,
}

impl UserParser {
    /// Compiles a parser; the error names the rule (0-based) and what is wrong.
    pub fn new(
        name: &str,
        service: Option<&str>,
        identifiers: &[String],
        rules: &[RuleDef],
    ) -> Result<UserParser, (usize, TemplateError)> {
        let mut out = Vec::with_capacity(rules.len());
        for (i, r) in rules.iter().enumerate() {
            let tpl = Template::new(&r.pattern).map_err(|e| (i, e))?;
            let rname = r.name.clone().unwrap_or_else(|| format!("rule{}", i + 1));
            out.push(Rule::any(intern(&rname), r.kind, tpl));
        }
        Ok(UserParser {
            name: intern(name),
            identifiers: identifiers.to_vec(),
            inner: RuleParser::new(intern(service.unwrap_or(name)), out, |m| m, emit),
        })
    }

    pub fn name(&self) -> &str {
        self.name
    }

    pub fn name_static(&self) -> &'static str {
        self.name
    }

    pub fn identifiers(&self) -> &[String] {
        &self.identifiers
    }

    /// The expanded regexes, for `explain`.
    pub fn regexes(&self) -> Vec<(&'static str, &str)> {
        self.inner.regexes()
    }
}

impl ServiceParser for UserParser {
    fn parse(&mut self, entry: &LogEntry, out: &mut Vec<Event>) -> Parsed {
        self.inner.parse(entry, out)
    }
}

/// Every field a user-defined rule can capture goes into its event.
fn emit(e: &Emit<'_>, out: &mut Vec<Event>) -> Parsed {
    let f = &e.hit.found;
    let mut ev = Event::new(e.time, e.service, e.hit.kind, e.hit.ip)
        .with_user(f.user)
        .with_path(f.path)
        .with_count(f.count.unwrap_or(1));
    ev.port = f.port;
    out.push(ev);
    Parsed::Matched(e.hit.rule)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rules_in_order_and_fields() {
        let mut p = UserParser::new(
            "gitea",
            None,
            &["gitea".into()],
            &[RuleDef {
                name: Some("failed".into()),
                kind: EventKind::AuthFail,
                pattern: r"Failed authentication attempt for <user> from <ip>:<port>".into(),
            }],
        )
        .unwrap();
        let e = LogEntry {
            time: 5,
            identifier: "gitea".into(),
            pid: None,
            message: "Failed authentication attempt for bob from 192.0.2.7:4242".into(),
        };
        let mut out = vec![];
        assert_eq!(p.parse(&e, &mut out), Parsed::Matched("failed"));
        assert_eq!(out[0].service, "gitea");
        assert_eq!(out[0].user.as_deref(), Some("bob"));
        assert_eq!(out[0].port, Some(4242));
        assert!(std::ptr::eq(intern("gitea"), intern("gitea")));
    }
}

/// One `[parsers.NAME]` table: a user-defined parser.
#[derive(Debug, Clone, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ParserDef {
    /// Journal `SYSLOG_IDENTIFIER`s / syslog tags whose entries it takes (file sources name
    /// the parser instead).
    #[serde(default)]
    pub identifiers: Vec<String>,
    /// The `service` of its events (default: the parser's name); scenarios select on it.
    pub service: Option<String>,
    pub rules: Vec<RuleDefToml>,
}

/// One rule of a user-defined parser.
#[derive(Debug, Clone, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RuleDefToml {
    pub name: Option<String>,
    pub kind: super::KindName,
    /// Kept with its position so a bad pattern is reported at its line.
    pub pattern: toml::Spanned<String>,
}

/// `[parsers.*]`: the user-defined parsers.
#[derive(Debug, Clone, Default, serde::Deserialize)]
#[serde(transparent)]
pub struct ParsersSection(pub std::collections::BTreeMap<String, ParserDef>);

/// Names of parsers and services: 1-64 letters, digits, '-' or '_'.
pub fn is_name(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 64
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

impl crowdwall_base::Section for ParsersSection {
    const NAME: &'static str = "parsers";

    /// Names, bindings, and every pattern compiled; a bad pattern's error carries its
    /// offset in the config text, so it is reported at its line.
    fn check(&self) -> Result<(), crowdwall_base::SectionError> {
        use crowdwall_base::SectionError;
        let builtin: Vec<&str> = super::BUILTIN.iter().map(|b| b.0).collect();
        let mut ids: std::collections::BTreeMap<&str, &str> = Default::default();
        for (name, def) in &self.0 {
            if !is_name(name) {
                return Err(SectionError::new(
                    name.as_str(),
                    "name must be 1-64 letters, digits, '-' or '_'",
                ));
            }
            if builtin.contains(&name.as_str()) {
                return Err(SectionError::new(
                    name.as_str(),
                    format!("'{name}' is a built-in parser; choose another name"),
                ));
            }
            if let Some(svc) = &def.service {
                if !is_name(svc) {
                    return Err(SectionError::new(
                        format!("{name}.service"),
                        "must be 1-64 letters, digits, '-' or '_'",
                    ));
                }
            }
            if def.rules.is_empty() {
                return Err(SectionError::new(
                    format!("{name}.rules"),
                    "needs at least one rule",
                ));
            }
            for id in &def.identifiers {
                if id.is_empty() || id.len() > 128 || id.chars().any(char::is_whitespace) {
                    return Err(SectionError::new(
                        format!("{name}.identifiers"),
                        format!("'{id}' is not an identifier (no spaces, 1-128 characters)"),
                    ));
                }
                if let Some(other) = ids.insert(id, name) {
                    return Err(SectionError::new(
                        format!("{name}.identifiers"),
                        format!("'{id}' is already bound to parser '{other}'"),
                    ));
                }
            }
            for r in &def.rules {
                if let Err(e) = Template::new(r.pattern.get_ref()) {
                    return Err(SectionError::new(name.as_str(), format!("pattern: {e}"))
                        .at(r.pattern.span().start));
                }
            }
        }
        Ok(())
    }
}

impl ParsersSection {
    /// The user-defined parsers, compiled.
    pub fn compile(&self) -> Result<Vec<UserParser>, crowdwall_base::SectionError> {
        let mut out = Vec::new();
        for (name, def) in &self.0 {
            let rules: Vec<RuleDef> = def
                .rules
                .iter()
                .map(|r| RuleDef {
                    name: r.name.clone(),
                    kind: r.kind.0,
                    pattern: r.pattern.get_ref().clone(),
                })
                .collect();
            let p = UserParser::new(name, def.service.as_deref(), &def.identifiers, &rules)
                .map_err(|(i, e)| {
                    crowdwall_base::SectionError::new(format!("{name}.rules[{i}]"), e.to_string())
                })?;
            out.push(p);
        }
        Ok(out)
    }
}
