//! The built-in scenarios (sshd, web, mail, FTP, port scans) and `[scenarios.NAME]`, which
//! overrides, disables or adds them. Parameters come from CrowdSec's hub defaults where it
//! has one; every key can be overridden.

use std::collections::BTreeMap;
use std::time::Duration;

use crowdwall_base::{Dur, Section, SectionError};
use serde::{Deserialize, Deserializer};

use super::{Field, ScenarioSpec};
use crate::parse::{EventKind, KindName};
use crate::time::from_duration;

fn spec(
    name: &str,
    service: &str,
    kinds: &[EventKind],
    capacity: u32,
    leak_s: u64,
    distinct: Option<Field>,
    blackhole_s: u64,
) -> ScenarioSpec {
    let s = |n: u64| from_duration(Duration::from_secs(n));
    ScenarioSpec {
        name: name.into(),
        service: Some(service.into()),
        kinds: kinds.to_vec(),
        capacity,
        leak: s(leak_s),
        distinct,
        blackhole: s(blackhole_s),
        cancel_on: vec![],
        ban: None,
        allowlist: vec![],
        ports: Default::default(),
        escalate: None,
        max_ban: None,
    }
}

/// The sshd scenarios. They count attempts, not lines (the sshd parser correlates the lines
/// of one connection).
///
/// Why these numbers: a real sshd takes 2-4 s per failed password (its own failure delay),
/// so a guesser cannot burst; what matters is the pace. With capacity 4 the 5th attempt
/// fires when the bucket has leaked less than one attempt since the first:
/// - `ssh-bruteforce` (4, leaks one per 5 min): the 5th attempt at any pace up to one a
///   minute (4 minutes leak 0.8);
/// - `ssh-slow-bruteforce` (4, one per 20 min): the 5th attempt within 10 minutes, at any
///   spacing (fail2ban's default jail: maxretry 5, findtime 10m), a guess every 5 minutes by
///   the 6th, every 15 minutes within about 3 hours; a source that never fails more than
///   three times an hour leaks as fast as it fills and is never banned.
///
/// A success on the connection's own account empties both (cancel on `Success`).
fn sshd() -> Vec<ScenarioSpec> {
    let ssh = |name: &str, kinds, capacity, leak_s, distinct, cancel_on| ScenarioSpec {
        cancel_on,
        ..spec(name, "sshd", kinds, capacity, leak_s, distinct, 60)
    };
    vec![
        ssh(
            "ssh-bruteforce",
            &[EventKind::AuthFail],
            4,
            300,
            None,
            vec![EventKind::Success],
        ),
        ssh(
            "ssh-slow-bruteforce",
            &[EventKind::AuthFail],
            4,
            1200,
            None,
            vec![EventKind::Success],
        ),
        ssh(
            "ssh-user-enum",
            &[EventKind::InvalidUser],
            5,
            10,
            Some(Field::User),
            vec![],
        ),
        ssh("ssh-probing", &[EventKind::Probe], 3, 180, None, vec![]),
    ]
}

/// Every built-in scenario, in the order `status` lists them: sshd's first.
pub fn builtin() -> Vec<ScenarioSpec> {
    let mut v = sshd();
    v.extend(services());
    v
}

/// The scenarios of the services beyond sshd.
fn services() -> Vec<ScenarioSpec> {
    use EventKind::*;
    let mut v = vec![
        // 400/403/404 on non-static paths; distinct paths, so a broken link clicked ten
        // times is one value.
        spec(
            "http-probing",
            "http",
            &[HttpProbe],
            10,
            10,
            Some(Field::Path),
            300,
        ),
        spec(
            "http-sensitive-files",
            "http",
            &[HttpSensitive],
            4,
            5,
            Some(Field::Path),
            300,
        ),
        spec(
            "http-path-traversal",
            "http",
            &[HttpTraversal],
            3,
            10,
            Some(Field::Path),
            120,
        ),
        spec(
            "http-admin-probing",
            "http",
            &[HttpAdminProbe],
            2,
            10,
            Some(Field::Path),
            60,
        ),
        spec(
            "http-bad-user-agent",
            "http",
            &[HttpBadAgent],
            1,
            60,
            None,
            120,
        ),
        // Failed logins: basic/digest auth (error logs) and POST answered 401/403 (login
        // forms). Credential stuffing (one try per user name) is the same events, so the
        // fast and slow buckets catch it whatever the names.
        spec("http-bruteforce", "http", &[AuthFail], 5, 10, None, 60),
        spec(
            "http-slow-bruteforce",
            "http",
            &[AuthFail],
            10,
            60,
            None,
            60,
        ),
        spec("mail-bruteforce", "mail", &[AuthFail], 5, 10, None, 60),
        spec(
            "mail-slow-bruteforce",
            "mail",
            &[AuthFail],
            10,
            60,
            None,
            60,
        ),
        // Rejected RCPT/HELO/sender, pipelining, too many errors: spam bots and relay
        // probing. A legitimate server retries minutes apart and leaks out.
        spec("mail-probing", "mail", &[Probe], 5, 60, None, 60),
        spec("ftp-bruteforce", "ftp", &[AuthFail], 5, 10, None, 60),
        spec("ftp-slow-bruteforce", "ftp", &[AuthFail], 10, 60, None, 60),
        spec(
            "port-scan",
            "firewall",
            &[PortProbe],
            15,
            5,
            Some(Field::Port),
            60,
        ),
    ];
    for s in &mut v {
        if s.kinds == [AuthFail] {
            s.cancel_on = vec![Success];
        }
    }
    v
}

/// One `[scenarios.NAME]` table: every key optional so that it can override a built-in.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ScenarioOverride {
    pub enabled: Option<bool>,
    pub service: Option<String>,
    pub kinds: Option<Vec<KindName>>,
    pub capacity: Option<u32>,
    pub leak: Option<Dur>,
    pub distinct: Option<FieldName>,
    pub blackhole: Option<Dur>,
    pub cancel_on: Option<Vec<KindName>>,
    pub ban: Option<Dur>,
    /// Addresses and ranges this scenario never bans (fail2ban's per-jail `ignoreip`).
    pub allowlist: Option<Vec<crowdwall_base::Net>>,
    /// Ban only these destination ports (TCP and UDP) instead of every port: fail2ban's
    /// `nftables-multiport`. A monitoring service on another port stays reachable.
    pub ports: Option<crate::enforce::Ports>,
}

/// A distinct field as written in the config (`user`, `path`, `port`).
#[derive(Debug, Clone, Copy)]
pub struct FieldName(pub Field);

impl<'de> Deserialize<'de> for FieldName {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        match s.as_str() {
            "user" => Ok(FieldName(Field::User)),
            "path" => Ok(FieldName(Field::Path)),
            "port" => Ok(FieldName(Field::Port)),
            _ => Err(serde::de::Error::custom(format!(
                "unknown distinct field '{s}' (known: user, path, port)"
            ))),
        }
    }
}

/// `[scenarios.*]`: overrides of the built-ins, and scenarios of one's own.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(transparent)]
pub struct ScenariosSection(pub BTreeMap<String, ScenarioOverride>);

impl Section for ScenariosSection {
    const NAME: &'static str = "scenarios";
    fn check(&self) -> Result<(), SectionError> {
        self.specs().map(|_| ())
    }
}

impl ScenariosSection {
    /// Built-ins with the overrides applied, plus user-defined scenarios; disabled ones left
    /// out. Error keys are relative to `[scenarios]` (`NAME.leak`).
    pub fn specs(&self) -> Result<Vec<ScenarioSpec>, SectionError> {
        let mut specs = builtin();
        for (name, o) in &self.0 {
            let key = |k: &str| format!("{name}.{k}");
            if name.is_empty()
                || !name
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
            {
                return Err(SectionError::new(
                    name.as_str(),
                    "name must be letters, digits, '-' or '_'",
                ));
            }
            let idx = match specs.iter().position(|s| &s.name == name) {
                Some(i) => i,
                None => {
                    if o.kinds.is_none() || o.capacity.is_none() {
                        let names: Vec<String> = builtin().into_iter().map(|s| s.name).collect();
                        let near = crowdwall_base::section::closest(
                            name,
                            names.iter().map(|n| n.as_str()),
                        );
                        return Err(SectionError::new(
                            name.as_str(),
                            match near {
                                // A typo of a built-in's name, most likely.
                                Some(b) => format!(
                                    "no built-in scenario is called '{name}': did you mean {b}? (a scenario of your own needs `kinds` and `capacity`)"
                                ),
                                None => format!(
                                    "a new scenario needs `kinds` and `capacity` (built-ins: {})",
                                    names.join(", ")
                                ),
                            },
                        ));
                    }
                    specs.push(ScenarioSpec {
                        name: name.clone(),
                        service: None,
                        kinds: vec![],
                        capacity: 0,
                        leak: from_duration(Duration::from_secs(10)),
                        distinct: None,
                        blackhole: from_duration(Duration::from_secs(60)),
                        cancel_on: vec![],
                        ban: None,
                        allowlist: vec![],
                        ports: Default::default(),
                        escalate: None,
                        max_ban: None,
                    });
                    specs.len() - 1
                }
            };
            let s = &mut specs[idx];
            if let Some(v) = &o.service {
                s.service = Some(v.clone());
            }
            if let Some(v) = &o.kinds {
                if v.is_empty() {
                    return Err(SectionError::new(
                        key("kinds"),
                        "must name at least one kind",
                    ));
                }
                s.kinds = v.iter().map(|k| k.0).collect();
            }
            if let Some(v) = o.capacity {
                s.capacity = v;
            }
            if let Some(v) = o.leak {
                if v.0.is_zero() {
                    return Err(SectionError::new(key("leak"), "must be more than 0s"));
                }
                s.leak = v.micros();
            }
            if let Some(v) = o.distinct {
                s.distinct = Some(v.0);
            }
            if let Some(v) = o.blackhole {
                s.blackhole = v.micros();
            }
            if let Some(v) = &o.cancel_on {
                s.cancel_on = v.iter().map(|k| k.0).collect();
            }
            if let Some(v) = o.ban {
                if v.0.is_zero() {
                    return Err(SectionError::new(key("ban"), "must be more than 0s"));
                }
                s.ban = Some(v.micros());
            }
            if let Some(v) = &o.allowlist {
                s.allowlist = v.iter().map(|n| n.0).collect();
            }
            if let Some(v) = &o.ports {
                s.ports = v.clone();
            }
            if o.enabled == Some(false) {
                s.name.clear(); // marked for removal below
            }
        }
        specs.retain(|s| !s.name.is_empty());
        Ok(specs)
    }
}
