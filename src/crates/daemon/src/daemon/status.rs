//! What `crowdwall status` and the metrics endpoint show, computed from the same numbers.

use std::collections::BTreeMap;

use crowdwall_engine::decide::Origin;
use crowdwall_engine::enforce::Firewall;

use super::Core;
use crate::control::{AllowlistStatus, FirewallStatus, Status};
use crate::time::{Micros, SECOND};

impl<F: Firewall> Core<F> {
    pub(super) fn status(&mut self, extra: &StatusExtra, now: Micros) -> Status {
        let mut decisions: BTreeMap<String, usize> = Origin::ALL
            .iter()
            .map(|o| (o.as_str().to_string(), 0))
            .collect();
        for d in self.store.active(now).unwrap_or_default() {
            *decisions.entry(d.origin.as_str().to_string()).or_default() += 1;
        }
        *decisions
            .entry(Origin::Local.as_str().to_string())
            .or_default() += self.outage.pending();
        let (dropped, error) = match self.fw.counters() {
            Ok(c) => (c, None),
            Err(e) => (Vec::new(), Some(e.to_string())),
        };
        let texts = |nets: &[crowdwall_base::Net]| nets.iter().map(|n| n.0.to_string()).collect();
        Status {
            version: env!("CARGO_PKG_VERSION").into(),
            uptime_s: ((now - self.started) / SECOND).max(0) as u64,
            sources: extra.sources.clone(),
            community: extra.community.clone(),
            parsers: self
                .detector
                .parsers
                .stats()
                .into_iter()
                .map(|(k, v)| (k.to_string(), v))
                .collect(),
            ingest: extra.ingest.clone(),
            buckets: self.detector.engine.stats(),
            overflows: self
                .detector
                .engine
                .overflows_by_scenario()
                .map(|(n, c)| (n.to_string(), c))
                .collect(),
            decisions,
            firewall: FirewallStatus {
                table: format!("inet {}", self.cfg.firewall.table),
                sets: self.desired.sizes(now),
                dropped,
                error,
                behind_store: self.retry_at.is_some(),
                stats: self.stats,
            },
            allowlist: AllowlistStatus {
                configured: texts(&self.cfg.allowlist.cidrs),
                own_addresses: self.allow.own().iter().map(|a| a.to_string()).collect(),
                from_dir: texts(&self.cfg.allowlist.from_dir),
            },
            lockout: self.lockout.status(),
            store: crate::control::StoreStatus {
                error: self.outage.error.as_ref().map(|(e, _)| e.clone()),
                failing_since: self
                    .outage
                    .error
                    .as_ref()
                    .map(|(_, t)| crate::time::format_rfc3339(*t)),
                pending: self.outage.pending(),
            },
        }
    }

    /// Packets and bytes dropped per origin, from the nftables named counters (own-table
    /// mode; empty otherwise or when the kernel cannot be read).
    fn drop_counters(&mut self) -> Vec<crate::metrics::DropCounter> {
        self.fw.counters().unwrap_or_default()
    }

    /// The counters snapshot for `crowdwall metrics` and the Prometheus endpoint.
    pub fn metrics(&mut self, extra: &StatusExtra, now: Micros) -> crate::metrics::Snapshot {
        use crate::metrics::{NetlinkMetrics, ParserMetrics, Snapshot, SourceMetrics};
        let sources = extra
            .sources
            .iter()
            .map(|s| SourceMetrics {
                name: s.name.clone(),
                entries_read: s.entries_read,
                skipped: s.skipped,
                gaps: s.gaps,
                lag_s: s.lag_s,
            })
            .collect();
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
            store_failing: u64::from(self.outage.is_failing()),
            store_pending: self.outage.pending() as u64,
        }
    }
}

/// What only the edges know, passed into status.
#[derive(Debug, Default)]
pub struct StatusExtra {
    /// Every source, journal or not: status and metrics read the same list.
    pub sources: Vec<crate::source::SourceStatus>,
    /// CrowdSec follower and feeds: last result and error of each.
    pub ingest: serde_json::Value,
    pub community: Option<serde_json::Value>,
}

impl StatusExtra {
    /// Gathered from the edges, the same way for a status request and a metrics scrape.
    pub fn of(
        sources: &crate::source::Sources,
        ingest: &crate::ingest::Board,
        community: Option<&crate::community::agent::Agent>,
    ) -> StatusExtra {
        StatusExtra {
            sources: sources.status(),
            ingest: ingest.snapshot(),
            community: community.map(|c| c.status()),
        }
    }
}

pub(super) fn status_line<F: Firewall>(core: &Core<F>) -> String {
    format!(
        "{} entries read, {} ban(s) made, {} address(es) and range(s) held",
        core.stats.entries,
        core.stats.decisions_local,
        core.desired.held()
    )
}
