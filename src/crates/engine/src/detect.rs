//! Scenarios as leaky buckets, in the spirit of CrowdSec's: a bucket per (scenario, source
//! address) holds up to `capacity` events and leaks one every `leak`; the event that finds it
//! full overflows. Pure and driven by event time only, so a replay gives the same overflows as
//! the live run did.
//!
//! Memory is bounded: buckets live in an LRU map capped at `max_buckets` (evictions counted),
//! and a bucket that has leaked empty is dropped by [`Engine::sweep`].

pub mod scenarios;

use std::collections::HashMap;
use std::net::IpAddr;
use std::num::NonZeroUsize;

use lru::LruCache;
use serde::Serialize;

use crate::parse::{Event, EventKind};
use crate::time::Micros;

/// `[detect]`: the bucket engine's limits.
#[derive(Debug, Clone, PartialEq, Eq, serde::Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DetectSection {
    /// Live buckets at most; the least recently used is evicted beyond (counted).
    pub max_buckets: usize,
}

impl Default for DetectSection {
    fn default() -> Self {
        DetectSection {
            max_buckets: 100_000,
        }
    }
}

impl crowdwall_base::Section for DetectSection {
    const NAME: &'static str = "detect";
    fn check(&self) -> Result<(), crowdwall_base::SectionError> {
        if self.max_buckets == 0 {
            return Err(crowdwall_base::SectionError::new(
                "max_buckets",
                "must be at least 1",
            ));
        }
        Ok(())
    }
}

/// A field whose distinct values are counted instead of events.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Field {
    User,
    /// The request path (web scenarios).
    Path,
    /// The destination port (port scans).
    Port,
}

impl Field {
    pub fn as_str(self) -> &'static str {
        match self {
            Field::User => "user",
            Field::Path => "path",
            Field::Port => "port",
        }
    }
}

/// Distinct values remembered per bucket, beyond the capacity (the oldest are forgotten):
/// a slow source sending new values forever must not grow a bucket without bound.
const SEEN_SLACK: usize = 16;

/// A stable 64-bit digest of a distinct value (FNV-1a): buckets keep digests, not strings.
fn digest(bytes: &[u8]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for &b in bytes {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    h
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScenarioSpec {
    pub name: String,
    /// Only events of this service (None: any).
    pub service: Option<String>,
    /// Event kinds poured into the bucket.
    pub kinds: Vec<EventKind>,
    /// Events the bucket holds; the next one overflows. 0 makes a trigger.
    pub capacity: u32,
    /// Time to leak one event.
    pub leak: Micros,
    pub distinct: Option<Field>,
    /// After an overflow, the same address cannot overflow this scenario again for this long.
    pub blackhole: Micros,
    /// Event kinds (same service, same address) that empty the bucket.
    pub cancel_on: Vec<EventKind>,
    /// Ban duration for this scenario instead of the default.
    pub ban: Option<Micros>,
    /// Addresses this scenario never bans, on top of `[allowlist]` (fail2ban's per-jail
    /// `ignoreip`): a monitoring host that probes sshd may still be banned for web attacks.
    pub allowlist: Vec<ipnet::IpNet>,
    /// The ports its bans are limited to (every port when empty).
    pub ports: crate::enforce::Ports,
    /// Whether this scenario's bans grow with earlier offences, instead of `[ban] escalate`
    /// (fail2ban's per-jail `bantime.increment`), and their cap instead of
    /// `[ban] max_duration` (`bantime.maxtime`).
    pub escalate: Option<bool>,
    pub max_ban: Option<Micros>,
}

impl ScenarioSpec {
    fn wants(&self, ev: &Event) -> bool {
        self.service.as_deref().is_none_or(|s| s == ev.service) && self.kinds.contains(&ev.kind)
    }

    fn cancelled_by(&self, ev: &Event) -> bool {
        self.service.as_deref().is_none_or(|s| s == ev.service) && self.cancel_on.contains(&ev.kind)
    }
}

/// A scenario fired for an address.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Overflow {
    pub scenario: String,
    pub ip: IpAddr,
    /// Time of the first event in the bucket, and of the one that overflowed it.
    pub first: Micros,
    pub last: Micros,
    /// Events poured, the overflowing one included.
    pub events: u32,
    #[serde(skip)]
    pub ban: Option<Micros>,
    /// The scenario's own allowlist, checked when the ban is decided.
    #[serde(skip)]
    pub allowlist: Vec<ipnet::IpNet>,
    /// The scenario's ports, which its ban is limited to.
    #[serde(skip)]
    pub ports: crate::enforce::Ports,
    /// The scenario's own escalation and cap ([`ScenarioSpec::escalate`]).
    #[serde(skip)]
    pub escalate: Option<bool>,
    #[serde(skip)]
    pub max_ban: Option<Micros>,
}

#[derive(Debug)]
struct Bucket {
    /// Events held at time `last`, before leaking since then.
    level: f64,
    first: Micros,
    last: Micros,
    poured: u32,
    seen: std::collections::VecDeque<u64>,
}

impl Bucket {
    fn level_at(&self, t: Micros, leak: Micros) -> f64 {
        let dt = (t - self.last).max(0) as f64;
        (self.level - dt / leak.max(1) as f64).max(0.0)
    }
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, serde::Deserialize)]
pub struct EngineStats {
    pub live_buckets: usize,
    pub overflows: u64,
    pub evicted_idle: u64,
    /// Buckets pushed out by the cap: a flood of sources, or a cap set too low.
    pub evicted_cap: u64,
    pub blackholed: u64,
}

pub struct Engine {
    specs: Vec<ScenarioSpec>,
    buckets: LruCache<(u16, IpAddr), Bucket>,
    blackholes: HashMap<(u16, IpAddr), Micros>,
    overflows_by_scenario: Vec<u64>,
    stats: EngineStats,
}

impl Engine {
    pub fn new(specs: Vec<ScenarioSpec>, max_buckets: usize) -> Self {
        let cap = NonZeroUsize::new(max_buckets.max(1)).unwrap_or(NonZeroUsize::MIN);
        Engine {
            overflows_by_scenario: vec![0; specs.len()],
            specs,
            buckets: LruCache::new(cap),
            blackholes: HashMap::new(),
            stats: EngineStats::default(),
        }
    }

    pub fn specs(&self) -> &[ScenarioSpec] {
        &self.specs
    }

    /// How long an event can still matter to a bucket: the time the fullest bucket of any
    /// scenario takes to leak empty (capped at a day). Reading this much history again
    /// rebuilds the buckets a restart emptied.
    pub fn memory(&self) -> Micros {
        const DAY: Micros = 86_400 * crate::time::SECOND;
        self.specs
            .iter()
            .map(|s| (s.capacity as Micros + 1).saturating_mul(s.leak))
            .max()
            .unwrap_or(0)
            .min(DAY)
    }

    pub fn stats(&self) -> EngineStats {
        EngineStats {
            live_buckets: self.buckets.len(),
            ..self.stats
        }
    }

    pub fn overflows_by_scenario(&self) -> impl Iterator<Item = (&str, u64)> {
        self.specs
            .iter()
            .map(|s| s.name.as_str())
            .zip(self.overflows_by_scenario.iter().copied())
    }

    /// Pours one event into every scenario that wants it; overflows are appended to `out`.
    pub fn process(&mut self, ev: &Event, out: &mut Vec<Overflow>) {
        let t = ev.time;
        for idx in 0..self.specs.len() {
            let spec = &self.specs[idx];
            let key = (idx as u16, ev.ip);
            if spec.cancelled_by(ev) {
                self.buckets.pop(&key);
                continue;
            }
            if !spec.wants(ev) {
                continue;
            }
            if let Some(&until) = self.blackholes.get(&key) {
                if t < until {
                    self.stats.blackholed += 1;
                    continue;
                }
                self.blackholes.remove(&key);
            }
            let distinct_value = match spec.distinct {
                Some(Field::User) => Some(digest(ev.user.as_deref().unwrap_or("").as_bytes())),
                Some(Field::Path) => Some(digest(ev.path.as_deref().unwrap_or("").as_bytes())),
                Some(Field::Port) => Some(digest(&ev.port.unwrap_or(0).to_be_bytes())),
                None => None,
            };
            let n = ev.count.max(1);
            let bucket = match self.buckets.get_mut(&key) {
                Some(b) => b,
                None => {
                    let fresh = Bucket {
                        level: 0.0,
                        first: t,
                        last: t,
                        poured: 0,
                        seen: std::collections::VecDeque::new(),
                    };
                    if let Some((old_key, old)) = self.buckets.push(key, fresh) {
                        // push returns the evicted LRU entry, or the same key when replacing.
                        if old_key != key
                            && old.level_at(t, self.specs[old_key.0 as usize].leak) > 0.0
                        {
                            self.stats.evicted_cap += 1;
                        } else if old_key != key {
                            self.stats.evicted_idle += 1;
                        }
                    }
                    match self.buckets.get_mut(&key) {
                        Some(b) => b,
                        None => continue,
                    }
                }
            };
            if let Some(v) = distinct_value {
                if bucket.seen.contains(&v) {
                    continue;
                }
                if bucket.seen.len() >= spec.capacity as usize + SEEN_SLACK {
                    bucket.seen.pop_front();
                }
                bucket.seen.push_back(v);
            }
            let level = bucket.level_at(t, spec.leak);
            bucket.poured = bucket.poured.saturating_add(n);
            if level + n as f64 > spec.capacity as f64 {
                out.push(Overflow {
                    scenario: spec.name.clone(),
                    ip: ev.ip,
                    first: bucket.first,
                    last: t,
                    events: bucket.poured,
                    ban: spec.ban,
                    allowlist: spec.allowlist.clone(),
                    ports: spec.ports.clone(),
                    escalate: spec.escalate,
                    max_ban: spec.max_ban,
                });
                self.overflows_by_scenario[idx] += 1;
                self.stats.overflows += 1;
                self.buckets.pop(&key);
                if spec.blackhole > 0 {
                    self.blackholes.insert(key, t + spec.blackhole);
                }
            } else {
                bucket.level = level + n as f64;
                bucket.last = bucket.last.max(t);
            }
        }
    }

    /// Drops buckets that have leaked empty and blackholes that have ended, as of `now`.
    pub fn sweep(&mut self, now: Micros) {
        let dead: Vec<(u16, IpAddr)> = self
            .buckets
            .iter()
            .filter(|(k, b)| b.level_at(now, self.specs[k.0 as usize].leak) <= 0.0)
            .map(|(k, _)| *k)
            .collect();
        self.stats.evicted_idle += dead.len() as u64;
        for k in dead {
            self.buckets.pop(&k);
        }
        self.blackholes.retain(|_, until| *until > now);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::time::SECOND;

    fn spec(cap: u32, leak_s: i64) -> ScenarioSpec {
        ScenarioSpec {
            name: "t".into(),
            service: Some("sshd".into()),
            kinds: vec![EventKind::AuthFail],
            capacity: cap,
            leak: leak_s * SECOND,
            distinct: None,
            blackhole: 60 * SECOND,
            cancel_on: vec![EventKind::Success],
            ban: None,
            allowlist: vec![],
            ports: Default::default(),
            escalate: None,
            max_ban: None,
        }
    }

    fn ev(t_s: f64, ip: &str, kind: EventKind) -> Event {
        Event::new(
            (t_s * SECOND as f64) as Micros,
            "sshd",
            kind,
            ip.parse().unwrap(),
        )
    }

    fn run(engine: &mut Engine, evs: &[Event]) -> Vec<Overflow> {
        let mut out = vec![];
        for e in evs {
            engine.process(e, &mut out);
        }
        out
    }

    #[test]
    fn sixth_event_overflows_a_bucket_of_five() {
        let mut e = Engine::new(vec![spec(5, 10)], 100);
        let evs: Vec<_> = (0..5)
            .map(|i| ev(i as f64, "192.0.2.1", EventKind::AuthFail))
            .collect();
        assert!(run(&mut e, &evs).is_empty());
        let o = run(&mut e, &[ev(5.0, "192.0.2.1", EventKind::AuthFail)]);
        assert_eq!(o.len(), 1);
        assert_eq!(o[0].events, 6);
        assert_eq!(o[0].first, 0);
        assert_eq!(o[0].last, 5 * SECOND);
    }

    #[test]
    fn leaking_keeps_a_slow_source_below_capacity() {
        let mut e = Engine::new(vec![spec(5, 10)], 100);
        // one attempt every 10 s leaks as fast as it fills: never overflows.
        let evs: Vec<_> = (0..100)
            .map(|i| ev(i as f64 * 10.0, "192.0.2.1", EventKind::AuthFail))
            .collect();
        assert!(run(&mut e, &evs).is_empty());
        // one every 8 s fills slowly and overflows eventually.
        let mut e = Engine::new(vec![spec(5, 10)], 100);
        let evs: Vec<_> = (0..100)
            .map(|i| ev(i as f64 * 8.0, "192.0.2.1", EventKind::AuthFail))
            .collect();
        assert!(!run(&mut e, &evs).is_empty());
    }

    #[test]
    fn count_pours_several() {
        let mut e = Engine::new(vec![spec(5, 10)], 100);
        let mut x = ev(0.0, "192.0.2.1", EventKind::AuthFail);
        x.count = 6;
        assert_eq!(run(&mut e, &[x]).len(), 1);
    }

    #[test]
    fn groups_by_address() {
        let mut e = Engine::new(vec![spec(5, 10)], 100);
        let evs: Vec<_> = (0..10)
            .map(|i| {
                ev(
                    i as f64 * 0.1,
                    if i % 2 == 0 { "192.0.2.1" } else { "192.0.2.2" },
                    EventKind::AuthFail,
                )
            })
            .collect();
        assert!(run(&mut e, &evs).is_empty(), "5 each: no overflow");
    }

    #[test]
    fn blackhole_suppresses_then_expires() {
        let mut e = Engine::new(vec![spec(0, 10)], 100); // trigger
        let o = run(
            &mut e,
            &[
                ev(0.0, "192.0.2.1", EventKind::AuthFail),
                ev(30.0, "192.0.2.1", EventKind::AuthFail),
            ],
        );
        assert_eq!(o.len(), 1, "second within the blackhole");
        assert_eq!(e.stats().blackholed, 1);
        let o = run(&mut e, &[ev(61.0, "192.0.2.1", EventKind::AuthFail)]);
        assert_eq!(o.len(), 1, "after the blackhole");
    }

    #[test]
    fn success_cancels() {
        let mut e = Engine::new(vec![spec(5, 10)], 100);
        let mut evs: Vec<_> = (0..5)
            .map(|i| ev(i as f64, "192.0.2.1", EventKind::AuthFail))
            .collect();
        evs.push(ev(5.0, "192.0.2.1", EventKind::Success));
        evs.push(ev(6.0, "192.0.2.1", EventKind::AuthFail));
        assert!(run(&mut e, &evs).is_empty());
    }

    #[test]
    fn distinct_counts_new_values_only() {
        let mut s = spec(2, 10);
        s.kinds = vec![EventKind::InvalidUser];
        s.distinct = Some(Field::User);
        let mut e = Engine::new(vec![s], 100);
        let mk = |t: f64, u: &str| {
            let mut x = ev(t, "192.0.2.1", EventKind::InvalidUser);
            x.user = Some(u.into());
            x
        };
        assert!(run(
            &mut e,
            &[
                mk(0.0, "a"),
                mk(0.1, "a"),
                mk(0.2, "b"),
                mk(0.3, "a"),
                mk(0.4, "b")
            ]
        )
        .is_empty());
        assert_eq!(run(&mut e, &[mk(0.5, "c")]).len(), 1);
    }

    #[test]
    fn distinct_ports_and_bounded_memory() {
        let mut s = spec(15, 5);
        s.kinds = vec![EventKind::PortProbe];
        s.service = None;
        s.distinct = Some(Field::Port);
        let mut e = Engine::new(vec![s], 100);
        let mk = |t: f64, port: u16| {
            let mut x = ev(t, "192.0.2.1", EventKind::PortProbe);
            x.port = Some(port);
            x
        };
        // the same port a hundred times: one value
        let same: Vec<_> = (0..100).map(|i| mk(i as f64 * 0.01, 22)).collect();
        assert!(run(&mut e, &same).is_empty());
        let many: Vec<_> = (0..16)
            .map(|i| mk(1.0 + i as f64 * 0.01, 1000 + i))
            .collect();
        assert_eq!(run(&mut e, &many).len(), 1, "16 new ports overflow 15");
        // a slow scanner never overflows, and its bucket stays small
        let mut e = Engine::new(vec![e.specs()[0].clone()], 100);
        let slow: Vec<_> = (0..5000).map(|i| mk(i as f64 * 5.0, i as u16)).collect();
        assert!(run(&mut e, &slow).is_empty());
        let b = e.buckets.iter().next().unwrap().1;
        assert!(b.seen.len() <= 15 + SEEN_SLACK);
    }

    #[test]
    fn replay_is_deterministic() {
        let evs: Vec<_> = (0..200)
            .map(|i| {
                ev(
                    i as f64 * 0.7,
                    &format!("192.0.2.{}", i % 7),
                    EventKind::AuthFail,
                )
            })
            .collect();
        let a = run(&mut Engine::new(vec![spec(5, 10)], 100), &evs);
        let b = run(&mut Engine::new(vec![spec(5, 10)], 100), &evs);
        assert_eq!(a, b);
        assert!(!a.is_empty());
    }

    #[test]
    fn cap_bounds_memory_and_counts_evictions() {
        let mut e = Engine::new(vec![spec(5, 10)], 1000);
        for i in 0..100_000u32 {
            let ip = std::net::Ipv4Addr::from(0x0b00_0000 + i);
            e.process(
                &Event::new(i as Micros, "sshd", EventKind::AuthFail, ip.into()),
                &mut vec![],
            );
        }
        let st = e.stats();
        assert_eq!(st.live_buckets, 1000);
        assert_eq!(st.evicted_cap, 99_000);
    }

    #[test]
    fn sweep_drops_empty_buckets() {
        let mut e = Engine::new(vec![spec(5, 10)], 100);
        run(
            &mut e,
            &[
                ev(0.0, "192.0.2.1", EventKind::AuthFail),
                ev(0.0, "192.0.2.2", EventKind::AuthFail),
            ],
        );
        e.sweep(5 * SECOND);
        assert_eq!(e.stats().live_buckets, 2);
        e.sweep(11 * SECOND);
        assert_eq!(e.stats().live_buckets, 0);
        assert_eq!(e.stats().evicted_idle, 2);
    }
}
