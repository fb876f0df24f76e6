//! The pure pipeline, parse -> detect -> decide, without the kernel or the store. The daemon
//! uses [`Detector`]; `replay`, `explain` and the benchmarks use [`Replay`], which adds
//! decisions with an in-memory offence history. Time is the entries' own.

use std::collections::HashMap;

use ipnet::IpNet;

use crate::config::{Config, ConfigError};
use crate::decide::{self, Allowlist, BanPolicy, DecideError, Decision};
use crate::detect::{Engine, Overflow};
use crate::parse::{Event, Parsed, Parsers};
use crate::source::LogEntry;
use crate::time::{from_duration, Micros, SECOND};

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
    pub fn new(cfg: &Config) -> Result<Detector, ConfigError> {
        Ok(Detector {
            parsers: Parsers::with_user(cfg.user_parsers()?),
            engine: Engine::new(cfg.scenario_specs()?, cfg.detect.max_buckets),
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
    pub fn new(cfg: &Config) -> Result<Replay, ConfigError> {
        Ok(Replay {
            detector: Detector::new(cfg)?,
            policy: policy(cfg),
            allow: Allowlist::new(cfg.allowlist_nets()),
            forget_after: from_duration(cfg.ban.forget_after.0),
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

pub fn policy(cfg: &Config) -> BanPolicy {
    BanPolicy {
        duration: from_duration(cfg.ban.duration.0),
        max_duration: from_duration(cfg.ban.max_duration.0),
        escalate: cfg.ban.escalate,
        ipv6_prefix: cfg.ban.ipv6_prefix,
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
        let cfg = Config::embedded().unwrap();
        let mut r = Replay::new(&cfg).unwrap();
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
