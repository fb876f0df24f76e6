//! When the store cannot be written (a full disk, a read-only remount): bans still reach the
//! kernel at once, the writes wait here and are retried, and the sources' positions do not
//! move past entries whose decisions are not stored, so a restart during the outage reads
//! them again instead of losing them.

use std::net::IpAddr;

use ipnet::IpNet;

use crowdwall_engine::decide::Decision;
use crowdwall_engine::enforce::Firewall;

use super::Core;
use crate::store::StoreError;
use crate::time::{self, Micros};

/// A source position held back while decisions wait for the store.
pub type Commit = Box<dyn FnOnce() -> Result<(), crate::source::SourceError> + Send>;

/// One decision waiting for the store.
struct Waiting {
    /// Its id is provisional (negative) until `stored`.
    decision: Decision,
    /// The offence it records, until written.
    offence: Option<(IpNet, Micros)>,
    stored: bool,
}

/// What waits for the store, and since when it fails.
#[derive(Default)]
pub struct Outage {
    /// Decisions in the kernel but not in the store, with a provisional (negative) id, and
    /// the offence each one records.
    decisions: std::collections::VecDeque<Waiting>,
    /// Source positions to store once the decisions are (oldest first).
    commits: Vec<(&'static str, Commit)>,
    /// The error that started the outage, and when.
    pub error: Option<(String, Micros)>,
    next_id: i64,
}

impl Outage {
    pub fn is_failing(&self) -> bool {
        self.error.is_some()
    }

    pub fn pending(&self) -> usize {
        self.decisions.len()
    }

    /// Whether a decision waiting for the store already bans `ip`.
    pub fn covers(&self, ip: IpAddr, now: Micros) -> bool {
        self.decisions
            .iter()
            .any(|w| w.decision.until > now && w.decision.value.contains(&ip))
    }

    /// Offences of `value` recorded in the kernel but not yet in the store.
    pub fn offences(&self, value: &IpNet) -> u32 {
        self.decisions
            .iter()
            .filter(|w| w.offence.as_ref().is_some_and(|(v, _)| v == value))
            .count() as u32
    }

    /// Holds a source position back until the store is written.
    pub fn defer(&mut self, source: &'static str, commit: Commit) {
        self.commits.push((source, commit));
    }
}

impl<F: Firewall> Core<F> {
    /// Stores `d` (and its offence), or, when the store refuses, gives it a provisional id
    /// and keeps it for [`Core::flush_pending`]. Either way the caller tracks it in the plan.
    pub(super) fn store_decision(&mut self, d: &mut Decision, offence: Option<(IpNet, Micros)>) {
        let mut w = Waiting {
            decision: d.clone(),
            offence,
            stored: false,
        };
        // Once failing, new writes queue behind the old ones: order is kept and a full disk
        // is not hammered once per ban.
        if !self.outage.is_failing() {
            match self.write(&mut w) {
                Ok(()) => {
                    d.id = w.decision.id;
                    return;
                }
                Err(e) => self.store_failed(&e),
            }
        }
        if !w.stored {
            self.outage.next_id -= 1;
            w.decision.id = self.outage.next_id;
        }
        d.id = w.decision.id;
        self.outage.decisions.push_back(w);
    }

    /// Writes what is not written yet of `w`; `w.stored` tells how far it got.
    fn write(&mut self, w: &mut Waiting) -> Result<(), StoreError> {
        if !w.stored {
            self.store.insert(&mut w.decision)?;
            w.stored = true;
        }
        if let Some((value, at)) = &w.offence {
            self.store.record_offence(value, *at)?;
            w.offence = None;
        }
        Ok(())
    }

    fn store_failed(&mut self, e: &StoreError) {
        if self.outage.error.is_none() {
            log::error!(
                "{e}: bans still go to the kernel; they are written to the store, and the sources' positions saved, once it takes writes again (retried every few seconds)"
            );
            self.outage.error = Some((e.to_string(), time::now()));
        }
    }

    /// Whether the store is behind (decisions waiting): positions are then held back.
    pub fn store_failing(&self) -> bool {
        self.outage.is_failing()
    }

    /// Holds a source position back until what waits for the store is written.
    pub fn defer_commit(&mut self, source: &'static str, commit: Commit) {
        self.outage.defer(source, commit);
    }

    /// Retries what waits for the store, oldest first; stops at the first refusal. Once all
    /// is written, the held-back source positions are stored. Logs when the outage ends.
    pub fn flush_pending(&mut self) {
        if !self.outage.is_failing() {
            return;
        }
        let mut written = 0usize;
        while let Some(mut w) = self.outage.decisions.pop_front() {
            let provisional = w.decision.id;
            let r = self.write(&mut w);
            if w.decision.id != provisional {
                // Same value, origin and ports: the element stays; only the plan's key changes.
                let d = &w.decision;
                self.desired
                    .remove(provisional, d.origin, &d.ports, &d.value);
                let d = d.clone();
                self.track(&d);
            }
            if let Err(e) = r {
                log::debug!("the store still refuses writes: {e}");
                self.outage.decisions.push_front(w);
                return;
            }
            written += 1;
        }
        let commits = std::mem::take(&mut self.outage.commits);
        for (source, commit) in commits {
            if let Err(e) = commit() {
                log::error!("saving the {source} position: {e}");
            }
        }
        let since = self.outage.error.take().map(|(_, t)| t).unwrap_or(0);
        log::warn!(
            "the store takes writes again after {}: {written} decision(s) made meanwhile are stored",
            time::format_duration(time::to_duration((time::now() - since).max(0)))
        );
        if let Err(e) = self.sync() {
            log::error!("syncing after the store came back: {e}");
        }
    }
}
