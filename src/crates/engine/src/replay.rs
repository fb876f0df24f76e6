//! The pure pipeline, parse -> detect -> decide, without the kernel or the store. The daemon
//! uses [`Detector`]; `replay`, `explain` and the benchmarks use [`Replay`], which adds
//! decisions with an in-memory offence history. Time is the entries' own.

use std::collections::HashMap;

use ipnet::IpNet;

use crowdwall_base::SectionError;

use crate::decide::{
    self, Allowlist, AllowlistSection, BanPolicy, BanSection, DecideError, Decision,
};
use crate::detect::scenarios::ScenariosSection;
use crate::detect::{DetectSection, Engine, Overflow};
use crate::parse::user::ParsersSection;
use crate::parse::{Event, Parsed, Parsers};
use crate::time::{Micros, SECOND};
use crate::LogEntry;

/// The configuration sections the pipeline runs on; the daemon's config holds them among its
/// own and lends them here.
#[derive(Debug, Clone, Copy)]
pub struct Settings<'a> {
    pub scenarios: &'a ScenariosSection,
    pub parsers: &'a ParsersSection,
    pub detect: &'a DetectSection,
    pub ban: &'a BanSection,
    pub allowlist: &'a AllowlistSection,
    /// fail2ban jails run as they are (`[fail2ban]`), loaded by the caller.
    pub fail2ban: &'a [crate::fail2ban::jail::Jail],
}

/// Which section a [`SectionError`] of the pipeline's settings came from.
#[derive(Debug, thiserror::Error)]
#[error("{section}.{error}")]
pub struct SettingsError {
    pub section: &'static str,
    pub error: SectionError,
}

/// How often (in event time) idle buckets and sshd connections are swept.
const SWEEP_EVERY: Micros = 60 * SECOND;

/// parse + detect.
pub struct Detector {
    pub parsers: Parsers,
    pub engine: Engine,
    events: Vec<Event>,
    last_sweep: Micros,
}

impl Detector {
    pub fn new(cfg: Settings<'_>) -> Result<Detector, SettingsError> {
        let user = cfg.parsers.compile().map_err(|error| SettingsError {
            section: "parsers",
            error,
        })?;
        let specs = cfg.scenarios.specs().map_err(|error| SettingsError {
            section: "scenarios",
            error,
        })?;
        let mut specs = specs;
        let mut parsers = Parsers::with_user(user);
        for j in cfg.fail2ban {
            let p = j.parser();
            let name = crate::parse::user::intern(&j.parser_name());
            parsers.add(name, Box::new(p));
            // A systemd-backend jail takes its service's journal entries (the identifiers
            // its journalmatch names), ahead of any built-in parser, as `explain` does.
            for id in j.journal_identifiers() {
                parsers.route(&id, name);
            }
            specs.push(j.scenario());
        }
        Ok(Detector {
            parsers,
            engine: Engine::new(specs, cfg.detect.max_buckets),
            events: Vec::new(),
            last_sweep: Micros::MIN,
        })
    }

    /// Feeds one entry. Events go to `events` when given; overflows are appended to
    /// `overflows`. Returns what the parser made of the line.
    pub fn feed(
        &mut self,
        entry: &LogEntry,
        events: Option<&mut Vec<Event>>,
        overflows: &mut Vec<Overflow>,
    ) -> Option<(&'static str, Parsed)> {
        if self.last_sweep == Micros::MIN {
            self.last_sweep = entry.time;
        } else if entry.time - self.last_sweep >= SWEEP_EVERY {
            self.engine.sweep(entry.time);
            self.parsers.expire(entry.time);
            self.last_sweep = entry.time;
        }
        self.events.clear();
        let r = self.parsers.parse(entry, &mut self.events);
        for ev in &self.events {
            self.engine.process(ev, overflows);
        }
        if let Some(out) = events {
            out.extend(self.events.iter().cloned());
        }
        r
    }
}

/// parse + detect + decide, with offences remembered in memory.
pub struct Replay {
    pub detector: Detector,
    policy: BanPolicy,
    allow: Allowlist,
    forget_after: Micros,
    offences: HashMap<IpNet, (u32, Micros)>,
    /// Bans made so far (value -> until), so that overflows of an address already banned
    /// are not new offences, as in the daemon.
    banned: HashMap<IpNet, Micros>,
    overflows: Vec<Overflow>,
    pub refused: Vec<(Overflow, DecideError)>,
}

impl Replay {
    pub fn new(cfg: Settings<'_>) -> Result<Replay, SettingsError> {
        Ok(Replay {
            detector: Detector::new(cfg)?,
            policy: cfg.ban.policy(),
            allow: Allowlist::new(cfg.allowlist.nets()),
            forget_after: cfg.ban.forget_after.micros(),
            offences: HashMap::new(),
            banned: HashMap::new(),
            overflows: Vec::new(),
            refused: Vec::new(),
        })
    }

    pub fn feed(
        &mut self,
        entry: &LogEntry,
        events: Option<&mut Vec<Event>>,
        decisions: &mut Vec<Decision>,
    ) -> Option<(&'static str, Parsed)> {
        self.overflows.clear();
        let r = self.detector.feed(entry, events, &mut self.overflows);
        for ov in self.overflows.drain(..) {
            let value = IpNet::from(ov.ip);
            if self
                .banned
                .get(&value)
                .is_some_and(|&until| ov.last < until)
            {
                continue;
            }
            let prior = match self.offences.get(&value) {
                Some(&(n, last)) if ov.last - last <= self.forget_after => n,
                _ => 0,
            };
            match decide::from_overflow(&ov, prior, &self.policy, &self.allow, ov.last) {
                Ok(d) => {
                    self.offences.insert(value, (prior + 1, ov.last));
                    self.banned.insert(value, d.until);
                    decisions.push(d);
                }
                Err(e) => self.refused.push((ov, e)),
            }
        }
        r
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(t: i64, pid: u32, msg: &str) -> LogEntry {
        LogEntry {
            time: t * SECOND,
            identifier: "sshd".into(),
            pid: Some(pid),
            message: msg.into(),
        }
    }

    #[test]
    fn six_attempts_ban_and_repeat_offences_escalate() {
        let (scenarios, parsers, detect, ban, allowlist) = Default::default();
        let mut r = Replay::new(Settings {
            scenarios: &scenarios,
            parsers: &parsers,
            detect: &detect,
            ban: &ban,
            allowlist: &allowlist,
            fail2ban: &[],
        })
        .unwrap();
        let mut decisions = vec![];
        for round in 0..2i64 {
            for i in 0..6i64 {
                // the second round comes after the first ban (4h) ended
                let t = round * 5 * 3600 + i;
                r.feed(
                    &entry(
                        t,
                        100 + (round * 10 + i) as u32,
                        "Failed password for root from 198.51.100.9 port 4242 ssh2",
                    ),
                    None,
                    &mut decisions,
                );
            }
        }
        let bf: Vec<_> = decisions
            .iter()
            .filter(|d| d.scenario == "ssh-bruteforce")
            .collect();
        assert_eq!(bf.len(), 2, "{decisions:?}");
        assert_eq!(bf[0].until - bf[0].created, 4 * 3600 * SECOND);
        assert_eq!(bf[1].until - bf[1].created, 8 * 3600 * SECOND);
    }
}
