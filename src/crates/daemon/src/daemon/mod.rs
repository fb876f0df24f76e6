//! The daemon: wires source -> parse -> detect -> decide -> store -> enforce.
//!
//! [`Core`] owns all state and is driven by messages (entry batches, control requests,
//! ticks), so it is tested without I/O beyond SQLite, against the in-memory firewall. [`run`]
//! adds the edges: the journal thread, the control socket, signals, sd_notify and the
//! watchdog. Everything runs on one thread of a current-thread runtime: the work per entry is
//! microseconds, and one owner means no locks.

use std::collections::HashMap;
use std::net::IpAddr;
use std::path::PathBuf;
use std::time::Duration;

use ipnet::IpNet;
use serde::Serialize;
use serde_json::json;

use crate::config::{parse_net, Config};
use crate::control::{Request, Response};
use crate::decide::{self, Allowlist, BanPolicy, DecideError, Decision, Origin};
use crate::detect::Overflow;
use crate::enforce::plan::Desired;
use crate::enforce::{Drift, EnforceError, Firewall};
use crate::replay::{policy, Detector};
use crate::source::LogEntry;
use crate::store::{Store, StoreError};
use crate::time::{self, format_duration, format_rfc3339, from_duration, Micros, SECOND};

/// Elements lapsing within this margin are left to the kernel's own timeout rather than
/// deleted (a delete racing the kernel's expiry fails the transaction with ENOENT).
const LAPSE_MARGIN: Micros = 2 * SECOND;
/// Tolerance when comparing a read-back timeout with the plan: the kernel counts in jiffies
/// and the read takes time.
const AUDIT_SLACK: Micros = 5 * SECOND;

/// After the kernel refused to catch up with the store, retry after this long, doubling up to
/// [`RETRY_MAX`]: the store stays the source of truth, and a transient refusal (a busy
/// kernel, a firewall reload in progress) must not leave a ban unenforced until the next one.
const RETRY_MIN: Micros = 2 * SECOND;
const RETRY_MAX: Micros = 60 * SECOND;

#[derive(Debug, thiserror::Error)]
pub enum DaemonError {
    #[error(transparent)]
    Config(#[from] crate::config::ConfigError),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("firewall: {0}")]
    Enforce(#[from] EnforceError),
    #[error("{what}: {source}")]
    Io {
        what: String,
        #[source]
        source: std::io::Error,
    },
    #[error("journal: {0}")]
    Source(String),
}

/// Counters shown by `status`.
#[derive(Debug, Default, Clone, Copy, serde::Serialize)]
pub struct CoreStats {
    pub entries: u64,
    pub decisions_local: u64,
    pub refused_allowlisted: u64,
    pub already_banned: u64,
    pub transactions: u64,
    pub transaction_failures: u64,
    pub full_loads: u64,
    pub heals: u64,
    pub audits: u64,
    pub audit_repairs: u64,
}

/// Decisions from an origin outside this host's scenarios; see [`Core::apply_external`].
#[derive(Debug, Clone)]
pub enum ExternalUpdate {
    /// The origin's whole state (or one list's, by its name in `scenario`).
    Replace {
        origin: Origin,
        list: Option<String>,
        decisions: Vec<Decision>,
    },
    /// Additions, and values whose decisions of this origin end.
    Delta {
        origin: Origin,
        add: Vec<Decision>,
        remove: Vec<IpNet>,
    },
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct ExternalReport {
    pub inserted: usize,
    pub deleted: usize,
    pub refused_allowlisted: usize,
}

/// All of the daemon's state.
pub struct Core<F: Firewall> {
    cfg: Config,
    store: Store,
    fw: F,
    detector: Detector,
    policy: BanPolicy,
    allow: Allowlist,
    forget_after: Micros,
    /// What the kernel should hold and, as far as the last successful transaction says,
    /// does hold; updated decision by decision so a sync costs what changed.
    desired: Desired,
    overflows: Vec<Overflow>,
    pub stats: CoreStats,
    started: Micros,
    /// Last time a netlink round trip succeeded (watchdog).
    pub last_fw_ok: Micros,
    /// When the kernel is behind the store (a transaction failed): when to retry, and the
    /// current back-off.
    retry_at: Option<Micros>,
    retry_backoff: Micros,
    /// Signals of new local bans, taken by the community agent after each batch.
    pub community_out: Vec<crate::community::Signal>,
    /// Duration of every netlink transaction (metrics).
    pub fw_timing: crate::metrics::Histogram,
    pub lockout: crate::lockout::Guard,
    /// A read-back should start as soon as none is running.
    pub audit_wanted: bool,
}

impl<F: Firewall> Core<F> {
    pub fn new(cfg: Config, store: Store, fw: F) -> Result<Self, DaemonError> {
        let lockout = crate::lockout::Guard::new(&cfg.lockout);
        let desired = Desired::new(fw.layout().clone());
        let mut core = Core {
            detector: Detector::new(&cfg)?,
            policy: policy(&cfg),
            allow: Allowlist::new(cfg.allowlist_nets()),
            forget_after: from_duration(cfg.ban.forget_after.0),
            cfg,
            store,
            fw,
            desired,
            overflows: Vec::new(),
            stats: CoreStats::default(),
            started: time::now(),
            last_fw_ok: 0,
            retry_at: None,
            retry_backoff: 0,
            community_out: Vec::new(),
            fw_timing: Default::default(),
            lockout,
            audit_wanted: false,
        };
        // The one full read of the store: from here on the in-memory plan follows each change.
        for d in core.store.active(time::now())? {
            if !core.desired.insert(d.id, d.origin, &d.value, d.until) {
                log::warn!(
                    "{} ({}) cannot be enforced: no set takes ranges (set-only mode without an interval set)",
                    d.value_text(),
                    d.origin
                );
            }
        }
        Ok(core)
    }

    pub fn firewall(&mut self) -> &mut F {
        &mut self.fw
    }

    /// For the edges that answer from the store inside the loop (bouncer API).
    pub fn store_mut(&mut self) -> &mut Store {
        &mut self.store
    }

    pub fn allowlist(&self) -> &Allowlist {
        &self.allow
    }

    pub fn set_own_addresses(&mut self, own: Vec<IpAddr>) {
        self.allow.set_own(own);
    }

    /// Records a stored decision in the plan (the next sync sends it).
    fn track(&mut self, d: &Decision) {
        if !self.desired.insert(d.id, d.origin, &d.value, d.until) {
            log::warn!(
                "{} ({}) cannot be enforced: no set takes ranges (set-only mode without an interval set)",
                d.value_text(),
                d.origin
            );
        }
    }

    /// Makes the kernel hold exactly the store's active decisions, re-creating the table:
    /// one transaction. Used at start and to heal.
    pub fn reconcile(&mut self) -> Result<(), DaemonError> {
        let now = time::now();
        let full = self.desired.full(now);
        self.stats.transactions += 1;
        self.stats.full_loads += 1;
        let t = std::time::Instant::now();
        let r = self.fw.load(&full);
        self.fw_timing.observe(t.elapsed());
        if let Err(e) = r {
            self.stats.transaction_failures += 1;
            self.retry_backoff = (self.retry_backoff * 2).clamp(RETRY_MIN, RETRY_MAX);
            self.retry_at = Some(now + self.retry_backoff);
            return Err(e.into());
        }
        self.desired.commit_full(now);
        self.last_fw_ok = time::now();
        self.retry_at = None;
        self.retry_backoff = 0;
        Ok(())
    }

    /// Brings the kernel to the store's state with the smallest transaction; if the kernel
    /// refuses it (state drifted under us), falls back to a full reconcile.
    pub fn sync(&mut self) -> Result<(), DaemonError> {
        let now = time::now();
        let pending = self.desired.changes(now, LAPSE_MARGIN);
        if pending.is_empty() {
            self.desired.commit(pending);
            return Ok(());
        }
        self.stats.transactions += 1;
        let t = std::time::Instant::now();
        let r = self.fw.apply(&pending.changes);
        self.fw_timing.observe(t.elapsed());
        match r {
            Ok(()) => {
                self.desired.commit(pending);
                self.last_fw_ok = time::now();
                self.retry_at = None;
                self.retry_backoff = 0;
                Ok(())
            }
            Err(e) => {
                self.stats.transaction_failures += 1;
                log::warn!("delta transaction refused ({e}); reloading the whole set");
                self.reconcile()
            }
        }
    }

    /// Repairs what someone else changed, as nftables' events tell it: a removed object means
    /// a full reload; deleted elements are re-added; lost events mean a read-back.
    pub fn repair(&mut self, drift: Drift) -> Result<(), DaemonError> {
        if drift.rebuild || (drift.check && !self.fw.is_intact()?) {
            log::warn!(
                "table inet {} was changed by someone else (flush, firewall reload?): restoring it",
                self.cfg.firewall.table
            );
            self.stats.heals += 1;
            return self.reconcile();
        }
        if !drift.deleted.is_empty() {
            let mut n = 0;
            for (set, lost) in &drift.deleted {
                n += self.desired.forget(*set, lost);
            }
            if n > 0 {
                log::warn!("{n} ban(s) deleted from the kernel by someone else: re-adding them");
                self.stats.heals += 1;
                self.sync()?;
            }
        }
        if drift.lost {
            log::warn!("nftables events were lost: reading the kernel back");
            if !self.fw.is_intact()? {
                self.stats.heals += 1;
                return self.reconcile();
            }
            self.audit_wanted = true;
        }
        Ok(())
    }

    /// The backstop: reads every set back and repairs what differs from the plan (missing
    /// or wrongly timed elements re-added, strays removed). Logs what it repaired.
    pub fn audit(&mut self) -> Result<(usize, usize), DaemonError> {
        let generation = self.desired.generation();
        let mut held = Vec::new();
        for ix in 0..self.fw.layout().sets.len() {
            held.push(self.fw.list(ix as crate::enforce::SetIx)?);
        }
        Ok(self.audit_with(held, generation)?.unwrap_or((0, 0)))
    }

    /// The current plan generation, to tag a read-back taken elsewhere.
    pub fn generation(&self) -> u64 {
        self.desired.generation()
    }

    /// Compares a read-back (one list per set, taken while the plan was at `generation`)
    /// with the plan and repairs. None when the plan changed meanwhile (the read-back is
    /// stale; the next one will do).
    pub fn audit_with(
        &mut self,
        held: Vec<Vec<crate::enforce::KernelElement>>,
        generation: u64,
    ) -> Result<Option<(usize, usize)>, DaemonError> {
        if generation != self.desired.generation() {
            log::debug!("read-back is stale (the kernel changed meanwhile): skipped");
            return Ok(None);
        }
        let now = time::now();
        let (mut missing, mut stray) = (0, 0);
        for (ix, held) in held.iter().enumerate() {
            let (m, s) = self
                .desired
                .audit(ix as crate::enforce::SetIx, held, now, AUDIT_SLACK);
            missing += m;
            stray += s;
        }
        self.stats.audits += 1;
        if missing + stray > 0 {
            log::warn!(
                "read-back found {missing} missing or mistimed and {stray} stray element(s): repairing"
            );
            self.stats.audit_repairs += (missing + stray) as u64;
            self.sync()?;
        }
        Ok(Some((missing, stray)))
    }

    /// Processes a batch of entries; returns the new decisions (already stored and sent to
    /// the kernel). The caller persists the source cursor after this returns.
    pub fn handle_entries(&mut self, entries: &[LogEntry]) -> Result<Vec<Decision>, DaemonError> {
        let mut new = Vec::new();
        for entry in entries {
            self.stats.entries += 1;
            self.overflows.clear();
            self.detector.feed(entry, None, &mut self.overflows);
            // Taken out and put back so deciding can borrow self; keeps the buffer's capacity.
            let overflows = std::mem::take(&mut self.overflows);
            for ov in &overflows {
                if let Some(d) = self.decide_overflow(ov)? {
                    new.push(d);
                }
            }
            self.overflows = overflows;
        }
        if !new.is_empty() {
            self.sync()?;
        }
        Ok(new)
    }

    fn decide_overflow(&mut self, ov: &Overflow) -> Result<Option<Decision>, DaemonError> {
        let value = decide::ban_value(ov.ip, &self.policy, &self.allow);
        let at = ov.last;
        // An address already banned is not a new offence: several scenarios overflow on the
        // same attack, and lines still in flight when the ban landed overflow again. Counting
        // those would escalate a first offender at once.
        let now = time::now();
        if self.store.covered(ov.ip, now)? {
            self.stats.already_banned += 1;
            return Ok(None);
        }
        let prior = self
            .store
            .offences(&value, at.saturating_sub(self.forget_after))?;
        let mut d = match decide::from_overflow(ov, prior, &self.policy, &self.allow, at) {
            Ok(d) => d,
            Err(DecideError::Allowlisted { value, reason }) => {
                self.stats.refused_allowlisted += 1;
                log::info!(
                    "{} overflowed {} but is allowlisted ({reason}): not banned",
                    value,
                    ov.scenario
                );
                return Ok(None);
            }
            Err(e) => {
                log::warn!("no decision for {}: {e}", ov.ip);
                return Ok(None);
            }
        };
        if d.until <= now {
            // An old attack read after downtime: its ban would already be over.
            return Ok(None);
        }
        self.lockout.before_ban(&self.allow);
        self.store.insert(&mut d)?;
        self.track(&d);
        self.store.record_offence(&value, at)?;
        self.stats.decisions_local += 1;
        self.community_out
            .push(crate::community::agent::signal_of(ov));
        log::warn!(
            "ban {} for {} ({}: {})",
            d.value_text(),
            format_duration(time::to_duration(d.until - d.created)),
            d.scenario,
            d.reason
        );
        Ok(Some(d))
    }

    /// Applies decisions that come from outside this host's scenarios (community blocklist,
    /// CrowdSec, feeds). `Replace` makes the origin (or one list of it) exactly `decisions`;
    /// `Delta` adds `decisions` and ends the listed values. Allowlisted values are dropped and
    /// counted here, so no origin can bypass the allowlist; then one store transaction and one
    /// kernel sync.
    pub fn apply_external(
        &mut self,
        update: ExternalUpdate,
    ) -> Result<ExternalReport, DaemonError> {
        let mut report = ExternalReport::default();
        let keep = |d: &Decision, allow: &Allowlist, report: &mut ExternalReport| {
            if let Some(why) = allow.check(&d.value) {
                report.refused_allowlisted += 1;
                log::info!(
                    "{} from {} ({}) is allowlisted ({why}): not applied",
                    d.value_text(),
                    d.origin,
                    d.scenario
                );
                false
            } else {
                true
            }
        };
        match update {
            ExternalUpdate::Replace {
                origin,
                list,
                decisions,
            } => {
                let mut kept: Vec<Decision> = decisions
                    .into_iter()
                    .filter(|d| keep(d, &self.allow, &mut report))
                    .collect();
                let deleted = self
                    .store
                    .replace_origin(origin, list.as_deref(), &mut kept)?;
                for (id, v) in &deleted {
                    self.desired.remove(*id, origin, v);
                }
                for d in &kept {
                    self.track(d);
                }
                report.inserted = kept.len();
                report.deleted = deleted.len();
            }
            ExternalUpdate::Delta {
                origin,
                add,
                remove,
            } => {
                let deleted = self.store.delete_origin_values(origin, &remove)?;
                for (id, v) in &deleted {
                    self.desired.remove(*id, origin, v);
                }
                report.deleted = deleted.len();
                for mut d in add {
                    if keep(&d, &self.allow, &mut report) {
                        self.store.insert(&mut d)?;
                        self.track(&d);
                        report.inserted += 1;
                    }
                }
            }
        }
        self.sync()?;
        Ok(report)
    }

    /// Periodic work: prune the store, sweep, check the table is still there.
    pub fn housekeeping(&mut self) -> Result<(), DaemonError> {
        let now = time::now();
        self.store.prune(now, now - self.forget_after)?;
        self.desired.sweep(now);
        Ok(())
    }

    /// Re-creates the table if someone removed it (flush ruleset, firewall reload), and
    /// retries a refused catch-up once its back-off has passed.
    pub fn heal(&mut self) -> Result<bool, DaemonError> {
        let intact = self.fw.is_intact()?;
        let now = time::now();
        self.last_fw_ok = now;
        if intact {
            if self.retry_at.is_none() && self.desired.is_dirty() {
                // A refresh that waited for its old element to lapse.
                self.sync()?;
                return Ok(false);
            }
            if self.retry_at.is_some_and(|t| now >= t) {
                log::info!("retrying to bring the kernel up to the store");
                self.sync()?;
                return Ok(true);
            }
            return Ok(false);
        }
        log::warn!(
            "table inet {} is missing or incomplete (ruleset flushed?): restoring it",
            self.cfg.firewall.table
        );
        self.stats.heals += 1;
        self.reconcile()?;
        Ok(true)
    }

    /// Swaps in what a new configuration changes in the core: scenarios (bucket state is
    /// kept when they did not change), allowlist, ban policy. `new` is already validated; the
    /// keys that need a restart were compared by the caller. Returns what changed.
    pub fn reload(&mut self, new: Config) -> Result<Vec<&'static str>, DaemonError> {
        let mut changed = Vec::new();
        if new.scenario_specs()? != self.cfg.scenario_specs()?
            || new.detect.max_buckets != self.cfg.detect.max_buckets
        {
            // Built first: a failure leaves everything as it was.
            self.detector = Detector::new(&new)?;
            changed.push("scenarios");
        }
        if new.allowlist.cidrs != self.cfg.allowlist.cidrs
            || new.allowlist.own_addresses != self.cfg.allowlist.own_addresses
            || new.allowlist.from_dir != self.cfg.allowlist.from_dir
        {
            let own = if new.allowlist.own_addresses {
                self.allow.own().to_vec()
            } else {
                Vec::new()
            };
            self.allow = Allowlist::new(new.allowlist_nets());
            self.allow.set_own(own);
            changed.push("allowlist");
        }
        let b = (&new.ban, &self.cfg.ban);
        if b.0.duration != b.1.duration
            || b.0.max_duration != b.1.max_duration
            || b.0.escalate != b.1.escalate
            || b.0.forget_after != b.1.forget_after
        {
            self.policy = policy(&new);
            self.forget_after = from_duration(new.ban.forget_after.0);
            changed.push("ban");
        }
        // After every config change: are the logged-in admins still allowlisted?
        self.lockout = crate::lockout::Guard::new(&new.lockout);
        self.lockout
            .check(&self.allow, "after a config reload", true);
        self.cfg = new;
        Ok(changed)
    }

    pub fn handle_request(&mut self, req: Request, extra: &StatusExtra) -> Response {
        match self.request(req, extra) {
            Ok(v) => Response::Ok(v),
            Err(msg) => Response::Error(msg),
        }
    }

    fn request(&mut self, req: Request, extra: &StatusExtra) -> Result<serde_json::Value, String> {
        let now = time::now();
        match req {
            Request::List => {
                let active = self.store.active(now).map_err(|e| e.to_string())?;
                Ok(serde_json::Value::Array(
                    active.iter().map(|d| decision_json(d, now)).collect(),
                ))
            }
            Request::Add {
                value,
                duration,
                reason,
            } => {
                let net = parse_net(&value)?;
                let dur = match duration {
                    Some(s) => time::parse_duration(&s).map(from_duration)?,
                    None => self.policy.duration,
                };
                let mut d =
                    decide::manual(net, dur, reason.as_deref().unwrap_or(""), &self.allow, now)
                        .map_err(|e| e.to_string())?;
                self.store.insert(&mut d).map_err(|e| e.to_string())?;
                self.track(&d);
                log::warn!(
                    "manual ban {} for {} ({})",
                    d.value_text(),
                    format_duration(time::to_duration(dur)),
                    d.reason
                );
                self.sync().map_err(|e| {
                    format!("stored, but the kernel refused it: {e} (it will be retried)")
                })?;
                Ok(decision_json(&d, now))
            }
            Request::Delete { value } => {
                let net = parse_net(&value)?;
                let gone = self
                    .store
                    .delete_value(&net, now)
                    .map_err(|e| e.to_string())?;
                for (id, origin) in &gone {
                    self.desired.remove(*id, *origin, &net);
                }
                let n = gone.len();
                if n == 0 {
                    return Err(format!(
                        "no active decision on {} (see `crowdwall decisions list`; a range is deleted by its exact CIDR)",
                        decide::value_text(&net)
                    ));
                }
                log::warn!(
                    "unban {} ({n} decision(s) deleted)",
                    decide::value_text(&net)
                );
                self.sync()
                    .map_err(|e| format!("deleted, but the kernel refused it: {e}"))?;
                Ok(json!({ "deleted": n, "value": decide::value_text(&net) }))
            }
            Request::Status => Ok(self.status(extra, now)),
            Request::Metrics => {
                serde_json::to_value(self.metrics(extra, now)).map_err(|e| e.to_string())
            }
            // Handled by the serve loop, which owns the sources.
            Request::Reload => Err("reload is handled by the daemon loop".into()),
            r @ (Request::BouncerAdd { .. }
            | Request::BouncerList
            | Request::BouncerDelete { .. }) => {
                crate::api::bouncer_request(&mut self.store, r, now)
            }
        }
    }

    fn status(&mut self, extra: &StatusExtra, now: Micros) -> serde_json::Value {
        let active = self.store.active(now).unwrap_or_default();
        let mut by_origin: HashMap<&str, usize> = HashMap::new();
        for o in Origin::ALL {
            by_origin.insert(o.as_str(), 0);
        }
        for d in &active {
            *by_origin.entry(d.origin.as_str()).or_default() += 1;
        }
        let sets = self.desired.sizes(now);
        let (counters, fw_error) = match self.fw.counters() {
            Ok(c) => (c, None),
            Err(e) => (Vec::new(), Some(e.to_string())),
        };
        let overflows: serde_json::Map<String, serde_json::Value> = self
            .detector
            .engine
            .overflows_by_scenario()
            .map(|(n, c)| (n.to_string(), json!(c)))
            .collect();
        json!({
            "version": env!("CARGO_PKG_VERSION"),
            "uptime_s": (now - self.started) / SECOND,
            "sources": extra.sources,
            "community": extra.community,
            "parsers": self.detector.parsers.stats(),
            "ingest": extra.ingest,
            "buckets": self.detector.engine.stats(),
            "overflows": overflows,
            "decisions": by_origin,
            "firewall": {
                "table": format!("inet {}", self.cfg.firewall.table),
                "sets": sets,
                "dropped": counters,
                "error": fw_error,
                // the kernel refused to catch up with the store; a retry is scheduled
                "behind_store": self.retry_at.is_some(),
                "stats": self.stats,
            },
            "allowlist": {
                "configured": self.cfg.allowlist.cidrs.iter().map(|n| n.0.to_string()).collect::<Vec<_>>(),
                "own_addresses": self.allow.own().iter().map(|a| a.to_string()).collect::<Vec<_>>(),
                "from_dir": self.cfg.allowlist.from_dir.iter().map(|n| n.0.to_string()).collect::<Vec<_>>(),
            },
            "lockout": self.lockout.status(),
        })
    }

    /// Packets and bytes dropped per origin, from the nftables named counters (own-table
    /// mode; empty otherwise or when the kernel cannot be read).
    fn drop_counters(&mut self) -> Vec<crate::metrics::DropCounter> {
        self.fw
            .counters()
            .map(|cs| {
                cs.into_iter()
                    .map(|c| crate::metrics::DropCounter {
                        origin: c.origin,
                        packets: c.packets,
                        bytes: c.bytes,
                    })
                    .collect()
            })
            .unwrap_or_default()
    }

    /// The counters snapshot for `crowdwall metrics` and the Prometheus endpoint.
    pub fn metrics(&mut self, extra: &StatusExtra, now: Micros) -> crate::metrics::Snapshot {
        use crate::metrics::{NetlinkMetrics, ParserMetrics, Snapshot, SourceMetrics};
        let n = |v: &serde_json::Value| v.as_u64().unwrap_or(0);
        let sources = extra
            .sources
            .as_array()
            .map(|a| {
                a.iter()
                    .map(|s| SourceMetrics {
                        name: s["name"].as_str().unwrap_or("?").to_string(),
                        entries_read: n(&s["entries_read"]),
                        skipped: n(&s["skipped"]),
                        gaps: n(&s["gaps"]),
                        lag_s: n(&s["lag_s"]),
                    })
                    .collect()
            })
            .unwrap_or_default();
        let parsers = self
            .detector
            .parsers
            .stats()
            .into_iter()
            .map(|(name, p)| ParserMetrics {
                name: name.into(),
                lines: p.lines,
                hits: p.matched,
                misses: p.unmatched,
                rejected: p.rejected,
                events: p.events,
            })
            .collect();
        let mut decisions_active: std::collections::BTreeMap<String, u64> = Origin::ALL
            .iter()
            .map(|o| (o.as_str().to_string(), 0))
            .collect();
        for d in self.store.active(now).unwrap_or_default() {
            *decisions_active
                .entry(d.origin.as_str().to_string())
                .or_default() += 1;
        }
        // What the kernel holds, as the in-memory plan (kept equal to it) counts it.
        let sizes = self.desired.sizes(now);
        let kernel_elements = Some(std::collections::BTreeMap::from([
            ("v4".to_string(), sizes.v4 as u64),
            ("v6".to_string(), sizes.v6 as u64),
        ]));
        let b = self.detector.engine.stats();
        Snapshot {
            version: env!("CARGO_PKG_VERSION").into(),
            uptime_s: ((now - self.started) / SECOND).max(0) as u64,
            sources,
            parsers,
            live_buckets: b.live_buckets as u64,
            evicted_idle: b.evicted_idle,
            evicted_cap: b.evicted_cap,
            overflows: self
                .detector
                .engine
                .overflows_by_scenario()
                .map(|(k, v)| (k.to_string(), v))
                .collect(),
            refused_allowlisted: self.stats.refused_allowlisted,
            already_banned: self.stats.already_banned,
            bans_local: self.stats.decisions_local,
            decisions_active,
            kernel_elements,
            netlink: NetlinkMetrics {
                transactions: self.stats.transactions,
                errors: self.stats.transaction_failures,
                full_loads: self.stats.full_loads,
                heals: self.stats.heals,
                duration: self.fw_timing.clone(),
            },
            drops: self.drop_counters(),
            unprotected_sessions: self.lockout.unprotected.len() as u64,
        }
    }
}

/// What only the edges know, passed into status.
#[derive(Debug, Default)]
pub struct StatusExtra {
    pub sources: serde_json::Value,
    /// CrowdSec follower and feeds: last result and error of each.
    pub ingest: serde_json::Value,
    pub community: Option<serde_json::Value>,
}

pub fn decision_json(d: &Decision, now: Micros) -> serde_json::Value {
    json!({
        "id": d.id,
        "value": d.value_text(),
        "origin": d.origin,
        "scenario": d.scenario,
        "reason": d.reason,
        "created": format_rfc3339(d.created),
        "until": format_rfc3339(d.until),
        "remaining": format_duration(Duration::from_secs(((d.until - now).max(0) / SECOND) as u64)),
    })
}

/// This host's addresses, for the allowlist.
pub fn own_addresses() -> Vec<IpAddr> {
    let mut out = Vec::new();
    if let Ok(addrs) = nix::ifaddrs::getifaddrs() {
        for a in addrs {
            if let Some(sa) = a.address {
                if let Some(v4) = sa.as_sockaddr_in() {
                    out.push(IpAddr::V4(v4.ip()));
                } else if let Some(v6) = sa.as_sockaddr_in6() {
                    out.push(IpAddr::V6(v6.ip()));
                }
            }
        }
    }
    out.sort();
    out.dedup();
    out
}

/// Options of `crowdwall run` that override the config.
#[derive(Debug, Clone, Default)]
pub struct RunOptions {
    pub journal_dir: Option<PathBuf>,
    pub state_dir: Option<PathBuf>,
    pub socket: Option<PathBuf>,
    /// The file `crowdwall reload` and SIGHUP read again (default: the default path).
    pub config_path: Option<PathBuf>,
}

impl RunOptions {
    fn apply(&self, cfg: &mut Config) {
        if let Some(d) = &self.state_dir {
            cfg.daemon.state_dir = d.clone();
        }
        if let Some(s) = &self.socket {
            cfg.daemon.socket = s.clone();
        }
        if let Some(j) = &self.journal_dir {
            cfg.journal.directory = Some(j.clone());
        }
    }
}

/// A descriptor owned elsewhere (the firewall), for AsyncFd.
struct BorrowedRaw(std::os::fd::RawFd);

impl std::os::fd::AsRawFd for BorrowedRaw {
    fn as_raw_fd(&self) -> std::os::fd::RawFd {
        self.0
    }
}

/// A request from the control socket with the way back.
type ControlMsg = (Request, tokio::sync::oneshot::Sender<Response>);

/// How often the objects are checked for tampering: the backstop to netlink events, which
/// report tampering at once.
const HEAL_EVERY: Duration = Duration::from_secs(2);
/// How often the store is pruned and own addresses refreshed.
const HOUSEKEEPING_EVERY: Duration = Duration::from_secs(60);

/// `crowdwall run`: everything up to the first reconcile happens before READY=1, and a broken
/// config never gets here (main validates it first), so the firewall is not touched by one.
pub fn run(mut cfg: Config, opts: RunOptions) -> Result<(), DaemonError> {
    opts.apply(&mut cfg);
    // Files the daemon creates (store, cursor, socket) are for root only.
    nix::sys::stat::umask(nix::sys::stat::Mode::from_bits_truncate(0o077));
    let io = |what: String| move |source| DaemonError::Io { what, source };
    std::fs::create_dir_all(&cfg.daemon.state_dir).map_err(io(format!(
        "state directory {}",
        cfg.daemon.state_dir.display()
    )))?;
    let store = Store::open(&cfg.daemon.state_dir.join("crowdwall.db"))?;
    let spec = cfg.firewall.spec();
    let fw = crate::enforce::netlink::NftFirewall::open(spec.clone())?;
    // Read-backs run on a thread with a socket of their own: dumping a big set takes the
    // kernel long (it re-walks the set for every 32 KiB part), and the loop must not wait.
    let reader: Reader = std::sync::Arc::new(move || {
        let mut fw = crate::enforce::netlink::NftFirewall::open_reader(spec.clone())?;
        let n = fw.layout().sets.len();
        (0..n)
            .map(|i| fw.list(i as crate::enforce::SetIx))
            .collect()
    });
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(io("tokio runtime".into()))?;
    rt.block_on(serve(Core::new(cfg, store, fw)?, opts, Some(reader)))
}

/// Every set as read back, indexed like the layout.
type ReadBack = Result<Vec<Vec<crate::enforce::KernelElement>>, EnforceError>;

/// Reads every set back, from another thread.
type Reader = std::sync::Arc<
    dyn Fn() -> Result<Vec<Vec<crate::enforce::KernelElement>>, EnforceError> + Send + Sync,
>;

/// `crowdwall reload` and SIGHUP: reads the config file again, refuses it (changing nothing)
/// when it is broken or changes what needs a restart, else restarts the sources whose
/// section changed and swaps the core's parts. If a changed source cannot start (an address
/// in use), the old sources are started again and the reload is refused.
async fn reload<F: Firewall>(
    core: &mut Core<F>,
    journal: &mut Sources,
    live: &mut crate::source::live::LiveSources,
    opts: &RunOptions,
) -> Response {
    use crate::source::live::{LiveConfig, LiveSources};
    let path = opts
        .config_path
        .clone()
        .unwrap_or_else(|| crate::config::DEFAULT_PATH.into());
    let stays = "the running configuration stays";
    let mut new = match Config::load(&path) {
        Ok(c) => c,
        Err(e) => return Response::Error(format!("{e}; {stays}")),
    };
    opts.apply(&mut new);
    let old = &core.cfg;
    let mut restart = Vec::new();
    if new.daemon.state_dir != old.daemon.state_dir {
        restart.push("daemon.state_dir");
    }
    if new.daemon.socket != old.daemon.socket {
        restart.push("daemon.socket");
    }
    if new.firewall.spec() != old.firewall.spec() {
        restart.push("firewall");
    }
    if !restart.is_empty() {
        return Response::Error(format!(
            "{}: {} changed, which needs a restart (systemctl restart crowdwall); {stays}",
            path.display(),
            restart.join(", ")
        ));
    }
    if let Err(e) = Detector::new(&new) {
        return Response::Error(format!("{e}; {stays}"));
    }
    let state_dir = new.daemon.state_dir.clone();
    let mut changed = Vec::new();
    let (oj, nj) = (&old.journal, &new.journal);
    let journal_changed =
        oj.enabled != nj.enabled || oj.matches != nj.matches || oj.directory != nj.directory;
    let old_journal = oj.clone();
    if journal_changed {
        // Stopped before the new one starts: it resumes from the cursor of the last batch
        // processed, so nothing is skipped or read twice.
        journal.stop();
        match Sources::start(nj, &state_dir) {
            Ok(j) => *journal = j,
            Err(e) => {
                if let Ok(j) = Sources::start(&old_journal, &state_dir) {
                    *journal = j;
                }
                return Response::Error(format!("{}: journal: {e}; {stays}", path.display()));
            }
        }
        changed.push("journal");
    }
    let new_live = LiveConfig::of(&new);
    if new_live != live.config {
        let old_live = live.config.clone();
        live.stop().await;
        match LiveSources::start(new_live, &state_dir) {
            Ok(l) => *live = l,
            Err(e) => {
                match LiveSources::start(old_live, &state_dir) {
                    Ok(l) => *live = l,
                    Err(e2) => log::error!("restarting the previous sources: {e2}"),
                }
                if journal_changed {
                    journal.stop();
                    if let Ok(j) = Sources::start(&old_journal, &state_dir) {
                        *journal = j;
                    }
                }
                return Response::Error(format!("{}: {e}; {stays}", path.display()));
            }
        }
        changed.push("sources");
    }
    match core.reload(new) {
        Ok(c) => changed.extend(c),
        Err(e) => return Response::Error(format!("{e}; {stays}")),
    }
    log::info!(
        "configuration {} reloaded; changed: {}",
        path.display(),
        if changed.is_empty() {
            "nothing".to_string()
        } else {
            changed.join(", ")
        }
    );
    Response::Ok(json!({ "config": path, "changed": changed }))
}

async fn serve<F: Firewall>(
    mut core: Core<F>,
    opts: RunOptions,
    reader: Option<Reader>,
) -> Result<(), DaemonError> {
    use tokio::signal::unix::{signal, SignalKind};
    let io = |what: String| move |source| DaemonError::Io { what, source };

    let cfg = core.cfg.clone();

    let socket_path = cfg.daemon.socket.clone();
    let state_dir = cfg.daemon.state_dir.clone();
    let table = cfg.firewall.table.clone();
    let journal_cfg = cfg.journal.clone();
    if cfg.allowlist.own_addresses {
        core.set_own_addresses(own_addresses());
    }
    core.store
        .prune(time::now(), time::now() - core.forget_after)?;
    // Config changes take effect at start: this is the check "after every config change",
    // and it runs before the first ban of the run.
    core.lockout.check(&core.allow, "at start", true);
    core.reconcile()?;
    let n = core.desired.sizes(time::now());
    let n = n.v4 + n.v6;
    log::info!("table inet {table} loaded with {n} element(s)");

    // Control socket: bound after the reconcile, so a CLI that connects sees a daemon whose
    // kernel state is already right.
    if let Some(dir) = socket_path.parent() {
        std::fs::create_dir_all(dir).map_err(io(format!("socket directory {}", dir.display())))?;
    }
    match std::fs::remove_file(&socket_path) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(io(format!("stale socket {}", socket_path.display()))(e)),
    }
    let listener = tokio::net::UnixListener::bind(&socket_path)
        .map_err(io(format!("control socket {}", socket_path.display())))?;
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&socket_path, std::fs::Permissions::from_mode(0o600))
            .map_err(io(format!("chmod {}", socket_path.display())))?;
    }
    let (ctl_tx, mut ctl_rx) = tokio::sync::mpsc::channel::<ControlMsg>(64);
    tokio::spawn(accept_loop(listener, ctl_tx));

    // Bouncer API and pulled decisions (CrowdSec, feeds): edges that talk to the Core by
    // message, answered in the loop below.
    let (api_tx, mut api_rx) = tokio::sync::mpsc::channel::<crate::api::ApiMsg>(64);
    crate::api::start(&cfg.api, api_tx.clone())
        .await
        .map_err(|e| io("starting".into())(std::io::Error::other(e.to_string())))?;
    let (ingest_tx, mut ingest_rx) = tokio::sync::mpsc::channel::<crate::ingest::IngestMsg>(16);
    let ingest_board = crate::ingest::start(&cfg, ingest_tx.clone())
        .map_err(|e| io("starting".into())(std::io::Error::other(e.to_string())))?;
    // Optional Prometheus endpoint; scrapes ask this loop for a snapshot.
    let (metrics_tx, mut metrics_rx) =
        tokio::sync::mpsc::channel::<crate::metrics::SnapshotRequest>(8);
    if cfg.metrics.enabled {
        let l = crate::metrics::bind(cfg.metrics.listen).map_err(io(format!(
            "metrics endpoint {} ([metrics] listen)",
            cfg.metrics.listen
        )))?;
        log::info!("metrics endpoint on http://{}/metrics", cfg.metrics.listen);
        tokio::spawn(crate::metrics::serve(l, metrics_tx));
    } else {
        drop(metrics_tx);
    }

    // Journal source.
    let mut sources = Sources::start(&journal_cfg, &state_dir)?;
    // A broken credentials or outbox file must not stop the host's own protection.
    let mut community =
        crate::community::agent::start(&cfg.community, &state_dir).unwrap_or_else(|e| {
            log::error!("community sharing off: {e}");
            None
        });
    // Files, syslog, NFLOG.
    let mut live = crate::source::live::LiveSources::start(
        crate::source::live::LiveConfig::of(&cfg),
        &state_dir,
    )
    .map_err(DaemonError::Source)?;

    let mut sigterm = signal(SignalKind::terminate()).map_err(io("SIGTERM handler".into()))?;
    let mut sigint = signal(SignalKind::interrupt()).map_err(io("SIGINT handler".into()))?;
    let mut sighup = signal(SignalKind::hangup()).map_err(io("SIGHUP handler".into()))?;
    let mut heal_tick = tokio::time::interval(HEAL_EVERY);
    let mut readback_tick = tokio::time::interval(cfg.firewall.readback.0);
    readback_tick.tick().await; // the first tick is immediate; the start just loaded everything
                                // nftables events: someone else changing our objects wakes us at once.
    let events = match core.fw.event_fd() {
        // SAFETY: the descriptor belongs to the firewall inside `core`, which outlives this
        // registration (both live until this function returns; `events` is declared later
        // and so dropped first).
        Some(fd) => match unsafe {
            tokio::io::unix::AsyncFd::register_with_interest(
                BorrowedRaw(fd),
                tokio::io::Interest::READABLE,
            )
        } {
            Ok(a) => Some(a),
            Err(e) => {
                log::warn!("cannot watch nftables events ({e}); relying on the periodic check");
                None
            }
        },
        None => None,
    };
    let mut house_tick = tokio::time::interval(HOUSEKEEPING_EVERY);
    let watchdog = watchdog_interval();
    let mut dog_tick =
        tokio::time::interval(watchdog.map(|w| w / 2).unwrap_or(Duration::from_secs(3600)));

    let _ = sd_notify::notify(
        false,
        &[
            sd_notify::NotifyState::Ready,
            sd_notify::NotifyState::Status(&format!(
                "{n} ban(s) enforced; watching {}",
                std::iter::once(sources.describe())
                    .chain(live.describe())
                    .collect::<Vec<_>>()
                    .join(", ")
            )),
        ],
    );
    log::info!(
        "crowdwall {} running; control socket {}",
        env!("CARGO_PKG_VERSION"),
        socket_path.display()
    );

    let mut audit_task: Option<tokio::task::JoinHandle<(u64, ReadBack)>> = None;
    loop {
        if core.audit_wanted && audit_task.is_none() {
            core.audit_wanted = false;
            if let Some(r) = reader.clone() {
                let generation = core.generation();
                audit_task = Some(tokio::task::spawn_blocking(move || (generation, r())));
            }
        }
        tokio::select! {
            batch = sources.recv() => {
                match batch {
                    Some(batch) => {
                        if batch.gap {
                            log::warn!("journal cursor not found (vacuumed?): entries may have been missed");
                        }
                        match core.handle_entries(&batch.entries) {
                            Ok(new) => {
                                if !new.is_empty() {
                                    let _ = sd_notify::notify(false, &[sd_notify::NotifyState::Status(&status_line(&core))]);
                                }
                            }
                            Err(e) => log::error!("processing entries: {e}"),
                        }
                        let signals = std::mem::take(&mut core.community_out);
                        if let Some(c) = &community {
                            c.send(signals);
                        }
                        // Only now is the batch's effect durable (store written, kernel
                        // updated): moving the cursor earlier could skip entries after a crash.
                        sources.commit(&batch.cursor);
                    }
                    None => {
                        if let Some(e) = sources.finish() {
                            log::error!("journal source stopped: {e}");
                            return Err(DaemonError::Source(e));
                        }
                    }
                }
            }
            Some(update) = crate::community::agent::Agent::recv(&mut community) => {
                match core.apply_external(update) {
                    Ok(r) => log::info!("community blocklist: {} added, {} removed, {} allowlisted", r.inserted, r.deleted, r.refused_allowlisted),
                    Err(e) => {
                        log::error!("applying the community blocklist: {e}");
                        if let Some(c) = &community {
                            c.apply_failed();
                        }
                    }
                }
            }
            Some(batch) = live.recv() => {
                if let Err(e) = core.handle_entries(&batch.entries) {
                    log::error!("processing {} entries: {e}", batch.source);
                }
                let signals = std::mem::take(&mut core.community_out);
                if let Some(c) = &community {
                    c.send(signals);
                }
                // As with the journal cursor: positions move only after the batch's effect
                // is durable.
                if let Some(commit) = batch.commit {
                    if let Err(e) = commit() {
                        log::error!("saving the {} position: {e}", batch.source);
                    }
                }
            }
            Some((req, reply)) = ctl_rx.recv() => {
                let resp = if req == Request::Reload {
                    reload(&mut core, &mut sources, &mut live, &opts).await
                } else {
                    let mut all = sources.status();
                    if let Some(a) = all.as_array_mut() {
                        a.extend(live.status());
                    }
                    let extra = StatusExtra { sources: all, ingest: ingest_board.snapshot(), community: community.as_ref().map(|c| c.status()) };
                    core.handle_request(req, &extra)
                };
                let _ = reply.send(resp);
            }
            _ = sighup.recv() => {
                match reload(&mut core, &mut sources, &mut live, &opts).await {
                    Response::Ok(_) => {}
                    Response::Error(e) => log::error!("SIGHUP: reload refused: {e}"),
                }
            }
            ready = async {
                match &events {
                    Some(a) => a.readable().await,
                    None => std::future::pending().await,
                }
            } => {
                if let Ok(mut guard) = ready {
                    guard.clear_ready();
                }
                match core.fw.drift() {
                    Ok(d) if !d.is_empty() => {
                        if let Err(e) = core.repair(d) {
                            log::error!("repairing the firewall: {e}");
                        }
                    }
                    Ok(_) => {}
                    Err(e) => log::error!("reading nftables events: {e}"),
                }
            }
            _ = readback_tick.tick() => {
                core.audit_wanted = true;
            }
            done = async {
                match &mut audit_task {
                    Some(t) => t.await,
                    None => std::future::pending().await,
                }
            } => {
                audit_task = None;
                match done {
                    Ok((generation, Ok(held))) => match core.audit_with(held, generation) {
                        Ok(Some((0, 0))) => log::debug!("read-back: the kernel matches the store"),
                        Ok(Some(_)) => {}
                        // Stale: try again soon.
                        Ok(None) => core.audit_wanted = true,
                        Err(e) => log::error!("read-back repair: {e}"),
                    },
                    Ok((_, Err(e))) => log::error!("read-back: {e}"),
                    Err(e) => log::error!("read-back thread: {e}"),
                }
            }
            Some(msg) = api_rx.recv() => crate::api::handle(&mut core, msg),
            Some(msg) = ingest_rx.recv() => crate::ingest::handle(&mut core, msg),
            Some(reply) = metrics_rx.recv() => {
                let extra = StatusExtra { sources: sources.status(), ingest: ingest_board.snapshot(), community: community.as_ref().map(|c| c.status()) };
                let _ = reply.send(core.metrics(&extra, time::now()));
            }
            _ = heal_tick.tick() => {
                if let Err(e) = core.heal() {
                    log::error!("firewall check: {e}");
                }
            }
            _ = house_tick.tick() => {
                if core.cfg.allowlist.own_addresses {
                    core.set_own_addresses(own_addresses());
                }
                core.lockout.check(&core.allow, "periodic", false);
                if let Err(e) = core.housekeeping() {
                    log::error!("housekeeping: {e}");
                }
            }
            _ = dog_tick.tick(), if watchdog.is_some() => {
                // Ping only while both ends move: the journal thread loops (it updates its
                // heartbeat even when idle) and netlink answered recently.
                let limit = from_duration(watchdog.unwrap_or_default());
                let now = time::now();
                if sources.heartbeat_age(now) < limit && now - core.last_fw_ok < limit {
                    let _ = sd_notify::notify(false, &[sd_notify::NotifyState::Watchdog]);
                } else {
                    log::error!("watchdog not fed: journal or netlink stalled");
                }
            }
            _ = sigterm.recv() => break,
            _ = sigint.recv() => break,
        }
    }
    let _ = sd_notify::notify(false, &[sd_notify::NotifyState::Stopping]);
    sources.stop();
    live.stop().await;
    let _ = std::fs::remove_file(&socket_path);
    log::info!("stopped; table inet {table} stays in place and its bans expire by themselves");
    Ok(())
}

fn status_line<F: Firewall>(core: &Core<F>) -> String {
    format!(
        "{} entries read, {} ban(s) made, {} address(es) and range(s) held",
        core.stats.entries,
        core.stats.decisions_local,
        core.desired.held()
    )
}

fn watchdog_interval() -> Option<Duration> {
    let mut usec = 0u64;
    if sd_notify::watchdog_enabled(false, &mut usec) && usec > 0 {
        Some(Duration::from_micros(usec))
    } else {
        None
    }
}

async fn accept_loop(
    listener: tokio::net::UnixListener,
    tx: tokio::sync::mpsc::Sender<ControlMsg>,
) {
    loop {
        match listener.accept().await {
            Ok((stream, _)) => {
                tokio::spawn(serve_client(stream, tx.clone()));
            }
            Err(e) => {
                log::warn!("control socket accept: {e}");
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    }
}

async fn serve_client(stream: tokio::net::UnixStream, tx: tokio::sync::mpsc::Sender<ControlMsg>) {
    use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
    let (rd, mut wr) = stream.into_split();
    let mut line = String::new();
    let mut limited = BufReader::new(rd.take(crate::control::MAX_REQUEST as u64));
    let resp =
        match tokio::time::timeout(Duration::from_secs(10), limited.read_line(&mut line)).await {
            Ok(Ok(n)) if n > 0 && line.ends_with('\n') => {
                match serde_json::from_str::<Request>(&line) {
                    Ok(req) => {
                        let (otx, orx) = tokio::sync::oneshot::channel();
                        if tx.send((req, otx)).await.is_err() {
                            Response::Error("daemon is shutting down".into())
                        } else {
                            orx.await
                                .unwrap_or(Response::Error("daemon is shutting down".into()))
                        }
                    }
                    Err(e) => Response::Error(format!("bad request: {e}")),
                }
            }
            Ok(Ok(_)) => Response::Error("request too long or not terminated by a newline".into()),
            Ok(Err(e)) => Response::Error(format!("reading request: {e}")),
            Err(_) => Response::Error("request timed out".into()),
        };
    if let Ok(mut out) = serde_json::to_vec(&resp) {
        out.push(b'\n');
        let _ = wr.write_all(&out).await;
    }
}

/// The daemon's log sources. Only the journal for now.
struct Sources {
    #[cfg(feature = "journald")]
    journal: Option<JournalHandle>,
}

#[cfg(feature = "journald")]
struct JournalHandle {
    rx: tokio::sync::mpsc::Receiver<crate::source::journal::JournalBatch>,
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
    stats: std::sync::Arc<crate::source::journal::JournalStats>,
    cursor_file: crate::source::cursor::CursorFile,
    thread: Option<std::thread::JoinHandle<Result<(), crate::source::SourceError>>>,
    directory: Option<PathBuf>,
}

impl Sources {
    #[cfg(feature = "journald")]
    fn start(
        cfg: &crate::config::JournalSection,
        state_dir: &std::path::Path,
    ) -> Result<Sources, DaemonError> {
        use crate::source::{cursor::CursorFile, journal};
        if !cfg.enabled {
            return Ok(Sources { journal: None });
        }
        let cursor_file = CursorFile::new(state_dir.join("journal.cursor"));
        let cursor = cursor_file
            .load()
            .map_err(|e| DaemonError::Source(e.to_string()))?;
        match &cursor {
            Some(_) => log::info!("journal: resuming from the saved cursor"),
            None => log::info!("journal: first start, reading from the tail"),
        }
        let (tx, rx) = tokio::sync::mpsc::channel(16);
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let stats = journal::JournalStats::new();
        let thread = journal::spawn(
            journal::JournalConfig {
                matches: cfg.match_pairs(),
                directory: cfg.directory.clone(),
                cursor,
                start_at_head: false,
            },
            tx,
            stop.clone(),
            stats.clone(),
        )
        .map_err(|e| DaemonError::Source(e.to_string()))?;
        Ok(Sources {
            journal: Some(JournalHandle {
                rx,
                stop,
                stats,
                cursor_file,
                thread: Some(thread),
                directory: cfg.directory.clone(),
            }),
        })
    }

    #[cfg(not(feature = "journald"))]
    fn start(
        cfg: &crate::config::JournalSection,
        _state_dir: &std::path::Path,
    ) -> Result<Sources, DaemonError> {
        if cfg.enabled {
            log::warn!("built without journald support: [journal] is ignored");
        }
        Ok(Sources {})
    }

    fn describe(&self) -> String {
        #[cfg(feature = "journald")]
        if let Some(j) = &self.journal {
            return match &j.directory {
                Some(d) => format!("journal directory {}", d.display()),
                None => "the system journal".into(),
            };
        }
        "no log source".into()
    }

    #[cfg(feature = "journald")]
    async fn recv(&mut self) -> Option<crate::source::journal::JournalBatch> {
        match &mut self.journal {
            Some(j) => j.rx.recv().await,
            None => std::future::pending().await,
        }
    }

    #[cfg(not(feature = "journald"))]
    async fn recv(&mut self) -> Option<Batch> {
        std::future::pending().await
    }

    fn commit(&mut self, cursor: &str) {
        #[cfg(feature = "journald")]
        if let Some(j) = &self.journal {
            if let Err(e) = j.cursor_file.store(cursor) {
                log::error!("saving the journal cursor: {e}");
            }
        }
        let _ = cursor;
    }

    /// The source ended: its error, if it had one.
    fn finish(&mut self) -> Option<String> {
        #[cfg(feature = "journald")]
        if let Some(j) = &mut self.journal {
            let r = j.thread.take().map(|t| t.join());
            self.journal = None;
            return match r {
                Some(Ok(Err(e))) => Some(e.to_string()),
                Some(Err(_)) => Some("journal thread panicked".into()),
                _ => Some("journal thread ended".into()),
            };
        }
        None
    }

    fn heartbeat_age(&self, now: Micros) -> Micros {
        #[cfg(feature = "journald")]
        if let Some(j) = &self.journal {
            return now
                - j.stats
                    .last_progress
                    .load(std::sync::atomic::Ordering::Relaxed);
        }
        let _ = now;
        0
    }

    fn status(&self) -> serde_json::Value {
        #[cfg(feature = "journald")]
        if let Some(j) = &self.journal {
            use std::sync::atomic::Ordering::Relaxed;
            let caught_up = j.stats.caught_up.load(Relaxed);
            let newest = j.stats.newest_entry.load(Relaxed);
            let lag = if caught_up || newest == 0 {
                0
            } else {
                (time::now() - newest).max(0) / SECOND
            };
            return json!([{
                "name": "journal",
                "directory": j.directory,
                "entries_read": j.stats.entries.load(Relaxed),
                "skipped": j.stats.skipped.load(Relaxed),
                "gaps": j.stats.gaps.load(Relaxed),
                "caught_up": caught_up,
                "newest_entry": if newest > 0 { Some(format_rfc3339(newest)) } else { None },
                "lag_s": lag,
            }]);
        }
        json!([])
    }

    fn stop(&mut self) {
        #[cfg(feature = "journald")]
        if let Some(mut j) = self.journal.take() {
            j.stop.store(true, std::sync::atomic::Ordering::Relaxed);
            j.rx.close();
            if let Some(t) = j.thread.take() {
                let _ = t.join();
            }
        }
    }
}

/// A batch from a source: entries and the position after them.
#[cfg(not(feature = "journald"))]
struct Batch {
    entries: Vec<LogEntry>,
    cursor: String,
    gap: bool,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::enforce::memory::MemoryFirewall;

    fn core() -> Core<MemoryFirewall> {
        let cfg = Config::embedded().unwrap();
        let mut c = Core::new(cfg, Store::in_memory().unwrap(), MemoryFirewall::new()).unwrap();
        c.reconcile().unwrap();
        c
    }

    fn add(c: &mut Core<MemoryFirewall>, v: &str, dur: &str) -> Response {
        c.handle_request(
            Request::Add {
                value: v.into(),
                duration: Some(dur.into()),
                reason: None,
            },
            &StatusExtra::default(),
        )
    }

    #[test]
    fn manual_add_and_delete_reach_the_firewall() {
        let mut c = core();
        assert!(matches!(add(&mut c, "192.0.2.7", "1h"), Response::Ok(_)));
        assert!(matches!(
            add(&mut c, "198.51.100.0/24", "2h"),
            Response::Ok(_)
        ));
        assert_eq!(c.firewall().elements.len(), 2);
        // An address goes to the hash set and leaves the range alone; a nested range with a
        // longer ban splits the interval set's element, all without a full reload.
        let loads = c.stats.full_loads;
        assert!(matches!(add(&mut c, "198.51.100.9", "5h"), Response::Ok(_)));
        assert_eq!(c.firewall().elements.len(), 3);
        assert!(matches!(
            add(&mut c, "198.51.100.0/25", "5h"),
            Response::Ok(_)
        ));
        let ranges: Vec<String> = c
            .firewall()
            .ranges()
            .iter()
            .map(|r| r.to_string())
            .collect();
        assert_eq!(
            ranges,
            [
                "192.0.2.7",
                "198.51.100.0-198.51.100.127",
                "198.51.100.9",
                "198.51.100.128-198.51.100.255"
            ]
        );
        assert_eq!(c.stats.full_loads, loads);
        let r = c.handle_request(
            Request::Delete {
                value: "192.0.2.7".into(),
            },
            &StatusExtra::default(),
        );
        assert!(matches!(r, Response::Ok(_)), "{r:?}");
        assert_eq!(c.firewall().elements.len(), 3);
        assert!(!c
            .firewall()
            .ranges()
            .iter()
            .any(|r| r.to_string() == "192.0.2.7"));
        let r = c.handle_request(
            Request::Delete {
                value: "192.0.2.7".into(),
            },
            &StatusExtra::default(),
        );
        assert!(
            matches!(r, Response::Error(ref m) if m.contains("no active decision")),
            "{r:?}"
        );
    }

    #[test]
    fn allowlisted_manual_ban_is_refused_clearly() {
        let mut c = core();
        c.set_own_addresses(vec!["203.0.113.5".parse().unwrap()]);
        for v in ["127.0.0.1", "203.0.113.5", "203.0.113.0/24"] {
            match add(&mut c, v, "1h") {
                Response::Error(m) => assert!(m.contains("allowlisted"), "{m}"),
                r => panic!("{v}: {r:?}"),
            }
        }
        assert!(c.firewall().elements.is_empty());
        match add(&mut c, "10.0.0.1/8", "1h") {
            Response::Error(m) => assert!(m.contains("host bits"), "{m}"),
            r => panic!("{r:?}"),
        }
    }

    #[test]
    fn heal_restores_a_removed_table() {
        let mut c = core();
        add(&mut c, "192.0.2.7", "1h");
        c.firewall().remove().unwrap();
        assert!(c.heal().unwrap());
        assert_eq!(c.firewall().elements.len(), 1);
        assert!(!c.heal().unwrap());
    }

    #[test]
    fn drift_falls_back_to_a_full_load() {
        let mut c = core();
        add(&mut c, "192.0.2.7", "1h");
        // someone deleted our element behind our back: the delete in the next delta fails.
        c.firewall().elements.clear();
        let r = c.handle_request(
            Request::Delete {
                value: "192.0.2.7".into(),
            },
            &StatusExtra::default(),
        );
        assert!(matches!(r, Response::Ok(_)), "{r:?}");
        assert_eq!(c.stats.transaction_failures, 1);
        assert!(c.firewall().elements.is_empty());
    }

    fn sshd(pid: u32, msg: &str) -> LogEntry {
        LogEntry {
            time: time::now(),
            identifier: "sshd".into(),
            pid: Some(pid),
            message: msg.into(),
        }
    }

    #[test]
    fn one_attack_overflowing_two_scenarios_is_one_offence() {
        let mut c = core();
        // eight invalid users, one failed password each: ssh-bruteforce and ssh-user-enum
        // both overflow on the same attack.
        let mut batch = Vec::new();
        for i in 0..8u32 {
            batch.push(sshd(
                1000 + i,
                &format!("Invalid user u{i} from 198.51.100.2 port {}", 5000 + i),
            ));
            batch.push(sshd(
                1000 + i,
                &format!(
                    "Failed password for invalid user u{i} from 198.51.100.2 port {} ssh2",
                    5000 + i
                ),
            ));
        }
        let new = c.handle_entries(&batch).unwrap();
        assert_eq!(new.len(), 1, "{new:?}");
        assert_eq!(
            new[0].until - new[0].created,
            4 * 3600 * SECOND,
            "first offence: no escalation"
        );
        assert!(c.stats.already_banned >= 1);
        assert_eq!(c.firewall().elements.len(), 1);
    }

    fn ext(v: &str, origin: Origin, list: &str, until: Micros) -> Decision {
        Decision {
            id: 0,
            value: v.parse().unwrap(),
            origin,
            scenario: list.into(),
            reason: String::new(),
            created: time::now(),
            until,
        }
    }

    #[test]
    fn external_replace_swaps_one_list_and_the_allowlist_still_wins() {
        let mut c = core();
        let until = time::now() + 3600 * SECOND;
        let first = vec![
            ext("203.0.113.0/24", Origin::Lists, "drop", until),
            ext("127.0.0.0/8", Origin::Lists, "drop", until),
        ];
        let r = c
            .apply_external(ExternalUpdate::Replace {
                origin: Origin::Lists,
                list: Some("drop".into()),
                decisions: first,
            })
            .unwrap();
        assert_eq!((r.inserted, r.refused_allowlisted), (1, 1));
        c.apply_external(ExternalUpdate::Replace {
            origin: Origin::Lists,
            list: Some("other".into()),
            decisions: vec![ext("198.51.100.7/32", Origin::Lists, "other", until)],
        })
        .unwrap();
        // Replacing "drop" leaves "other" alone.
        let r = c
            .apply_external(ExternalUpdate::Replace {
                origin: Origin::Lists,
                list: Some("drop".into()),
                decisions: vec![ext("192.0.2.0/24", Origin::Lists, "drop", until)],
            })
            .unwrap();
        assert_eq!((r.inserted, r.deleted), (1, 1));
        let ranges: Vec<String> = c
            .firewall()
            .elements
            .keys()
            .map(|(_, i)| i.to_string())
            .collect();
        assert_eq!(ranges.len(), 2, "{ranges:?}");
        let r = c
            .apply_external(ExternalUpdate::Delta {
                origin: Origin::Lists,
                add: vec![],
                remove: vec!["198.51.100.7/32".parse().unwrap()],
            })
            .unwrap();
        assert_eq!(r.deleted, 1);
        assert_eq!(c.firewall().elements.len(), 1);
    }

    #[test]
    fn allowlisted_attacker_is_never_banned() {
        let cfg = Config::parse(
            "[allowlist]\ncidrs = [\"198.51.100.0/24\"]\n",
            std::path::Path::new("t.toml"),
        )
        .unwrap();
        let mut c = Core::new(cfg, Store::in_memory().unwrap(), MemoryFirewall::new()).unwrap();
        c.reconcile().unwrap();
        let batch: Vec<_> = (0..10u32)
            .map(|i| {
                sshd(
                    2000 + i,
                    "Failed password for root from 198.51.100.2 port 22 ssh2",
                )
            })
            .collect();
        assert!(c.handle_entries(&batch).unwrap().is_empty());
        assert!(c.stats.refused_allowlisted >= 1);
        assert!(c.firewall().elements.is_empty());
    }

    #[test]
    fn a_refused_transaction_is_retried_until_the_kernel_holds_the_ban() {
        let mut c = core();
        // the delta and the full-reload fallback are both refused
        c.firewall().fail_next = 2;
        match add(&mut c, "192.0.2.7", "1h") {
            Response::Error(m) => assert!(m.contains("kernel refused"), "{m}"),
            r => panic!("{r:?}"),
        }
        assert!(c.firewall().elements.is_empty());
        assert!(c.retry_at.is_some());
        // not before the back-off
        assert!(!c.heal().unwrap());
        assert!(c.firewall().elements.is_empty());
        c.retry_at = Some(0);
        assert!(c.heal().unwrap());
        assert_eq!(
            c.firewall().elements.len(),
            1,
            "the stored ban reached the kernel"
        );
        assert!(c.retry_at.is_none());
    }
}
