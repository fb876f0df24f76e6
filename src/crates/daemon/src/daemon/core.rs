//! The Core: all of the daemon's state, and what it does with each message.

use std::net::IpAddr;

use crowdwall_engine::decide::{self, Allowlist, BanPolicy, DecideError, Decision};
use crowdwall_engine::detect::Overflow;
use crowdwall_engine::enforce::plan::Desired;
use crowdwall_engine::enforce::{Drift, Firewall, Ports};
use crowdwall_engine::replay::Detector;
use crowdwall_engine::LogEntry;

use super::DaemonError;
use crate::config::Config;
pub use crate::control::CoreStats;
use crate::external::{ExternalReport, ExternalUpdate};
use crate::store::Store;
use crate::time::{self, format_duration, Micros, SECOND};

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

/// All of the daemon's state.
pub struct Core<F: Firewall> {
    pub(super) cfg: Config,
    pub(super) store: Store,
    pub(super) fw: F,
    pub(super) detector: Detector,
    pub(super) policy: BanPolicy,
    pub(super) allow: Allowlist,
    pub(super) forget_after: Micros,
    /// What the kernel should hold and, as far as the last successful transaction says,
    /// does hold; updated decision by decision so a sync costs what changed.
    pub(super) desired: Desired,
    overflows: Vec<Overflow>,
    pub stats: CoreStats,
    pub(super) started: Micros,
    /// Last time a netlink round trip succeeded (watchdog).
    pub last_fw_ok: Micros,
    /// When the kernel is behind the store (a transaction failed): when to retry, and the
    /// current back-off.
    pub(super) retry_at: Option<Micros>,
    retry_backoff: Micros,
    /// Signals of new local bans, taken by the community agent after each batch.
    pub community_out: Vec<crowdwall_proto::Signal>,
    /// Duration of every netlink transaction (metrics).
    pub fw_timing: crate::metrics::Histogram,
    pub lockout: crate::lockout::Guard,
    /// A read-back should start as soon as none is running.
    pub audit_wanted: bool,
    /// Decisions enforced while the store could not be written (a full disk): the kernel
    /// has them, the store gets them when writes work again ([`Core::flush_pending`]).
    pub(super) outage: super::outage::Outage,
}

impl<F: Firewall> Core<F> {
    pub fn new(cfg: Config, store: Store, fw: F) -> Result<Self, DaemonError> {
        let lockout = crate::lockout::Guard::new(&cfg.lockout);
        let mut desired = Desired::new(fw.layout().clone());
        for (origin, ports) in cfg.ban.origin_ports() {
            desired.set_origin_ports(origin, ports);
        }
        let mut core = Core {
            detector: cfg.detector()?,
            policy: cfg.ban.policy(),
            allow: Allowlist::new(cfg.allowlist_nets()),
            forget_after: cfg.ban.forget_after.micros(),
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
            outage: Default::default(),
        };
        // The one full read of the store: from here on the in-memory plan follows each change.
        for d in core.store.active(time::now())? {
            if !core
                .desired
                .insert(d.id, d.origin, &d.ports, &d.value, d.until)
            {
                log::warn!(
                    "{} ({}) cannot be enforced: no set takes ranges (set-only mode without an interval set)",
                    d.value_text(),
                    d.origin
                );
            }
        }
        Ok(core)
    }

    /// At start, when the store was created just now (missing, zero-byte or new file) but
    /// the table still holds bans: the store lost its memory, and loading its empty state
    /// would flush every ban the kernel enforces. Instead each element becomes a decision
    /// again (its set's origin and ports, the time it has left, scenario `recovered`), so
    /// the reconcile that follows keeps them. Sets of the admin's (set-only mode) are never
    /// adopted: their elements may be the admin's own. Returns how many were adopted.
    pub fn adopt_kernel(&mut self, store_path: &std::path::Path) -> Result<usize, DaemonError> {
        let now = time::now();
        let sets: Vec<_> = self.fw.layout().sets.clone();
        let mut adopted = Vec::new();
        for (ix, set) in sets.iter().enumerate() {
            let Some(origin) = set.origin else { continue };
            // A table that is not there (first start, reboot) holds nothing to adopt.
            let Ok(held) = self.fw.list(ix as crowdwall_engine::enforce::SetIx) else {
                continue;
            };
            for e in held {
                let left = e
                    .expires_ms
                    .map(|ms| ms as Micros * 1000)
                    .unwrap_or(self.cfg.ban.max_duration.micros());
                if left <= 0 {
                    continue;
                }
                for value in interval_nets(&e.range) {
                    adopted.push(Decision {
                        id: 0,
                        value,
                        origin,
                        scenario: "recovered".into(),
                        reason: format!(
                            "adopted from the kernel's set {} at start: the store {} was new",
                            set.name,
                            store_path.display()
                        ),
                        created: now,
                        until: now + left,
                        ports: set.ports.clone(),
                    });
                }
            }
        }
        if adopted.is_empty() {
            return Ok(0);
        }
        for d in &mut adopted {
            self.store.insert(d)?;
        }
        for d in &adopted {
            self.track(d);
        }
        log::warn!(
            "the store {} is new (missing, empty or replaced) but table inet {} holds {} ban(s): adopted them as decisions (scenario `recovered`) instead of flushing them",
            store_path.display(),
            self.cfg.firewall.table,
            adopted.len()
        );
        self.stats.recovered = adopted.len() as u64;
        Ok(adopted.len())
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
    pub(super) fn track(&mut self, d: &Decision) {
        if !self
            .desired
            .insert(d.id, d.origin, &d.ports, &d.value, d.until)
        {
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
            held.push(self.fw.list(ix as crowdwall_engine::enforce::SetIx)?);
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
        held: Vec<Vec<crowdwall_engine::enforce::KernelElement>>,
        generation: u64,
    ) -> Result<Option<(usize, usize)>, DaemonError> {
        if generation != self.desired.generation() {
            log::debug!("read-back is stale (the kernel changed meanwhile): skipped");
            return Ok(None);
        }
        let now = time::now();
        let (mut missing, mut stray) = (0, 0);
        for (ix, held) in held.iter().enumerate() {
            let (m, s) = self.desired.audit(
                ix as crowdwall_engine::enforce::SetIx,
                held,
                now,
                AUDIT_SLACK,
            );
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

    /// Feeds entries from before the saved position (read again after a restart) to the
    /// buckets only: the previous run decided on them, so their overflows are dropped, and
    /// the parsers' counters stay as they were (status counts what was read for real).
    pub fn warm_up(&mut self, entries: &[LogEntry]) {
        let counters = self.detector.parsers.stats();
        for entry in entries {
            self.overflows.clear();
            self.detector.feed(entry, None, &mut self.overflows);
        }
        self.overflows.clear();
        self.detector.parsers.restore_stats(&counters);
        self.stats.warmed += entries.len() as u64;
    }

    fn decide_overflow(&mut self, ov: &Overflow) -> Result<Option<Decision>, DaemonError> {
        let value = decide::ban_value(ov.ip, &self.policy, &self.allow);
        let at = ov.last;
        // An address already banned is not a new offence: several scenarios overflow on the
        // same attack, and lines still in flight when the ban landed overflow again. Counting
        // those would escalate a first offender at once.
        let now = time::now();
        if self.outage.covers(ov.ip, now) || self.store.covered(ov.ip, now)? {
            self.stats.already_banned += 1;
            return Ok(None);
        }
        let prior = self
            .store
            .offences(&value, at.saturating_sub(self.forget_after))?
            + self.outage.offences(&value);
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
        // The kernel gets the ban whether or not the store takes it now.
        self.store_decision(&mut d, Some((value, at)));
        self.track(&d);
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
                // Feeds, the hub and CrowdSec name no ports: their decisions were placed
                // with every port (and the origin's `[ban.ports]`, which `remove` applies).
                for (id, v) in &deleted {
                    self.desired.remove(*id, origin, &Ports::all(), v);
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
                    self.desired.remove(*id, origin, &Ports::all(), v);
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
        // Pruning writes: during a store outage it waits, like everything else written.
        if !self.store_failing() {
            self.store.prune(now, now - self.forget_after)?;
        }
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
}

/// The CIDR blocks that make up a kernel interval (one, for what crowdwall itself adds).
fn interval_nets(iv: &crowdwall_engine::enforce::Interval) -> Vec<ipnet::IpNet> {
    use std::net::IpAddr;
    match (iv.first_addr(), iv.last_addr()) {
        (IpAddr::V4(a), IpAddr::V4(b)) => ipnet::Ipv4Subnets::new(a, b, 0)
            .map(ipnet::IpNet::V4)
            .collect(),
        (IpAddr::V6(a), IpAddr::V6(b)) => ipnet::Ipv6Subnets::new(a, b, 0)
            .map(ipnet::IpNet::V6)
            .collect(),
        // Families never mix within one interval.
        _ => Vec::new(),
    }
}
