//! The daemon's community task: delivers the signals of local bans through the on-disk
//! outbox, and pulls the blocklist (a snapshot first, then deltas) for the daemon to apply
//! as origin `community` through `Core::apply_external`.
//!
//! The task only talks HTTP and files; the daemon's loop owns the store and the firewall,
//! so the task hands it [`ExternalUpdate`]s over a channel.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use ipnet::IpNet;
use tokio::sync::mpsc;

use super::client::{Credentials, HubClient};
use super::outbox::Outbox;
use super::{BlockEntry, CommunityError, CommunitySection, Signal};
use crate::external::ExternalUpdate;
use crate::time::{self, Micros, SECOND};
use crowdwall_engine::decide::{Decision, Origin};
use crowdwall_engine::detect::Overflow;

/// Signals in one push.
const PUSH_BATCH: usize = 500;

/// Counters for `status`.
#[derive(Debug, Default)]
pub struct AgentStats {
    pub signals_queued: AtomicU64,
    pub signals_delivered: AtomicU64,
    pub signals_refused: AtomicU64,
    pub push_failures: AtomicU64,
    pub pulls: AtomicU64,
    pub pull_failures: AtomicU64,
    pub blocklist_entries: AtomicU64,
    pub over_cap: AtomicU64,
    pub outbox: AtomicU64,
}

pub struct Agent {
    updates: mpsc::Receiver<ExternalUpdate>,
    signals: Option<mpsc::UnboundedSender<Vec<Signal>>>,
    resync: Arc<AtomicBool>,
    pub stats: Arc<AgentStats>,
    pub hub: String,
}

/// The signal a local ban shares: the address, scenario, times and count, and a fresh uid.
/// Nothing else of the log leaves the host.
pub fn signal_of(ov: &Overflow) -> Signal {
    let uid = super::random_hex(16).unwrap_or_else(|_| {
        format!("{}-{}-{}", ov.ip, ov.scenario, ov.last).replace([':', '.'], "_")
    });
    Signal {
        uid,
        ip: ov.ip.to_string(),
        scenario: ov.scenario.clone(),
        first_seen: ov.first / SECOND,
        last_seen: ov.last / SECOND,
        events: ov.events as u64,
    }
}

fn resolve(state_dir: &Path, p: &Path) -> PathBuf {
    if p.is_absolute() {
        p.to_path_buf()
    } else {
        state_dir.join(p)
    }
}

/// Where `register` writes the credentials for this configuration.
pub fn credentials_path(cfg: &CommunitySection, state_dir: &Path) -> PathBuf {
    resolve(state_dir, &cfg.credentials)
}

/// Starts the task when enabled and registered; `Ok(None)` otherwise (nothing leaves the
/// host). Must be called inside the daemon's runtime.
pub fn start(cfg: &CommunitySection, state_dir: &Path) -> Result<Option<Agent>, CommunityError> {
    if !cfg.enabled || (!cfg.share && !cfg.pull) {
        return Ok(None);
    }
    let path = credentials_path(cfg, state_dir);
    let Some(creds) = Credentials::load(&path)? else {
        log::info!(
            "community: not registered ({} missing; `crowdwall community register --hub URL`)",
            path.display()
        );
        return Ok(None);
    };
    let client = HubClient::new(&creds.hub, Some(&creds))?;
    let outbox = if cfg.share {
        Some(Outbox::open(
            &state_dir.join("community-outbox.jsonl"),
            cfg.max_outbox,
        )?)
    } else {
        None
    };
    let (utx, urx) = mpsc::channel(4);
    let (stx, srx) = mpsc::unbounded_channel();
    let resync = Arc::new(AtomicBool::new(false));
    let stats = Arc::new(AgentStats::default());
    log::info!(
        "community: hub {} as agent {} (share {}, pull {})",
        creds.hub,
        creds.agent_id,
        cfg.share,
        cfg.pull
    );
    let task = Task {
        client,
        outbox,
        updates: utx,
        signals: srx,
        resync: resync.clone(),
        stats: stats.clone(),
        push_every: cfg.push_every.0.max(Duration::from_millis(100)),
        pull_every: cfg.pull_every.0.max(Duration::from_secs(1)),
        pull: cfg.pull,
        max_decisions: cfg.max_decisions,
        since: None,
        held: HashMap::new(),
    };
    tokio::spawn(task.run());
    Ok(Some(Agent {
        updates: urx,
        signals: cfg.share.then_some(stx),
        resync,
        stats,
        hub: creds.hub,
    }))
}

impl Agent {
    /// Queues signals for the hub (dropped when sharing is off).
    pub fn send(&self, signals: Vec<Signal>) {
        if signals.is_empty() {
            return;
        }
        if let Some(tx) = &self.signals {
            let _ = tx.send(signals);
        }
    }

    /// The next blocklist update to apply; never resolves without an agent.
    pub async fn recv(agent: &mut Option<Agent>) -> Option<ExternalUpdate> {
        match agent {
            Some(a) => a.updates.recv().await,
            None => std::future::pending().await,
        }
    }

    /// The daemon could not apply an update: the next pull asks for a snapshot.
    pub fn apply_failed(&self) {
        self.resync.store(true, Ordering::Relaxed);
    }

    pub fn status(&self) -> serde_json::Value {
        let g = |a: &AtomicU64| a.load(Ordering::Relaxed);
        let s = &self.stats;
        serde_json::json!({
            "hub": self.hub,
            "signals_queued": g(&s.signals_queued),
            "signals_delivered": g(&s.signals_delivered),
            "signals_refused": g(&s.signals_refused),
            "outbox": g(&s.outbox),
            "push_failures": g(&s.push_failures),
            "pulls": g(&s.pulls),
            "pull_failures": g(&s.pull_failures),
            "blocklist_entries": g(&s.blocklist_entries),
            "over_cap": g(&s.over_cap),
        })
    }
}

struct Task {
    client: HubClient,
    outbox: Option<Outbox>,
    updates: mpsc::Sender<ExternalUpdate>,
    signals: mpsc::UnboundedReceiver<Vec<Signal>>,
    resync: Arc<AtomicBool>,
    stats: Arc<AgentStats>,
    push_every: Duration,
    pull_every: Duration,
    pull: bool,
    max_decisions: usize,
    since: Option<i64>,
    /// Community values the daemon holds, with their score (for the size cap).
    held: HashMap<IpNet, u8>,
}

impl Task {
    async fn run(mut self) {
        let mut pull_tick = tokio::time::interval(self.pull_every);
        pull_tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut backoff = self.push_every;
        let next_push = tokio::time::sleep(self.push_every);
        tokio::pin!(next_push);
        if let Some(ob) = &self.outbox {
            self.stats.outbox.store(ob.len() as u64, Ordering::Relaxed);
        }
        loop {
            let pending = self.outbox.as_ref().is_some_and(|o| !o.is_empty());
            tokio::select! {
                batch = self.signals.recv() => {
                    let Some(batch) = batch else { return };
                    self.stats.signals_queued.fetch_add(batch.len() as u64, Ordering::Relaxed);
                    if let Some(ob) = &mut self.outbox {
                        if let Err(e) = ob.add(batch) {
                            log::error!("community: {e}");
                        }
                        self.stats.outbox.store(ob.len() as u64, Ordering::Relaxed);
                    }
                }
                _ = &mut next_push, if pending => {
                    let ok = self.deliver().await;
                    backoff = if ok { self.push_every } else { (backoff * 2).min(self.push_every * 10) };
                    next_push.as_mut().reset(tokio::time::Instant::now() + backoff);
                }
                _ = pull_tick.tick(), if self.pull => {
                    if self.updates.is_closed() {
                        return;
                    }
                    self.pull_once().await;
                }
            }
        }
    }

    /// Pushes the outbox, oldest first, until it is empty or the hub fails; false on failure.
    async fn deliver(&mut self) -> bool {
        let Some(ob) = &mut self.outbox else {
            return true;
        };
        while !ob.is_empty() {
            let batch = ob.peek(PUSH_BATCH);
            match self.client.push(&batch).await {
                Ok(r) => {
                    // Delivered means taken (new or a re-send the hub already had); a
                    // refused signal is counted as refused, not as delivered.
                    let taken = batch.len().saturating_sub(r.refused.len());
                    self.stats
                        .signals_delivered
                        .fetch_add(taken as u64, Ordering::Relaxed);
                    if !r.refused.is_empty() {
                        self.stats
                            .signals_refused
                            .fetch_add(r.refused.len() as u64, Ordering::Relaxed);
                        log::info!(
                            "community: hub refused {} signal(s): {}",
                            r.refused.len(),
                            r.refused[0].reason
                        );
                    }
                    if let Err(e) = ob.ack(batch.len()) {
                        log::error!("community: {e}");
                        return false;
                    }
                }
                Err(e) if e.retryable() => {
                    self.stats.push_failures.fetch_add(1, Ordering::Relaxed);
                    log::warn!("community: {e}; {} signal(s) kept in the outbox", ob.len());
                    return false;
                }
                Err(e @ CommunityError::Refused { status: 401, .. }) => {
                    self.stats.push_failures.fetch_add(1, Ordering::Relaxed);
                    log::error!(
                        "community: {e}; signals kept; register again if the hub forgot this agent"
                    );
                    return false;
                }
                Err(e) => {
                    // The hub will never take this batch (400/413): keep the rest flowing.
                    self.stats
                        .signals_refused
                        .fetch_add(batch.len() as u64, Ordering::Relaxed);
                    log::error!("community: {e}; {} signal(s) dropped", batch.len());
                    if let Err(e) = ob.ack(batch.len()) {
                        log::error!("community: {e}");
                        return false;
                    }
                }
            }
            self.stats.outbox.store(ob.len() as u64, Ordering::Relaxed);
        }
        self.stats.outbox.store(0, Ordering::Relaxed);
        true
    }

    async fn pull_once(&mut self) {
        if self.resync.swap(false, Ordering::Relaxed) {
            self.since = None;
        }
        let resp = match self.client.blocklist(self.since).await {
            Ok(r) => r,
            Err(e) => {
                self.stats.pull_failures.fetch_add(1, Ordering::Relaxed);
                log::warn!("community: blocklist: {e}");
                return;
            }
        };
        self.stats.pulls.fetch_add(1, Ordering::Relaxed);
        let now = time::now();
        let update = if resp.snapshot {
            let (decisions, held, over) = snapshot(&resp.new, self.max_decisions, now);
            if over > 0 {
                self.stats
                    .over_cap
                    .fetch_add(over as u64, Ordering::Relaxed);
                log::warn!(
                    "community: blocklist has {} entries; keeping the {} best scored (max_decisions)",
                    resp.new.len(),
                    self.max_decisions
                );
            }
            self.held = held;
            ExternalUpdate::Replace {
                origin: Origin::Community,
                list: None,
                decisions,
            }
        } else {
            let mut remove: Vec<IpNet> = Vec::new();
            for v in &resp.deleted {
                if let Ok(n) = crowdwall_base::parse_net(v) {
                    if self.held.remove(&n).is_some() {
                        remove.push(n);
                    }
                }
            }
            let mut add = Vec::new();
            for e in &resp.new {
                let Some(d) = decision(e, now) else { continue };
                if !self.held.contains_key(&d.value) && self.held.len() >= self.max_decisions {
                    self.stats.over_cap.fetch_add(1, Ordering::Relaxed);
                    continue;
                }
                // re-listed or extended: the old decision is replaced, not duplicated
                if self.held.insert(d.value, e.score).is_some() {
                    remove.push(d.value);
                }
                add.push(d);
            }
            if add.is_empty() && remove.is_empty() {
                self.since = Some(resp.version);
                return;
            }
            ExternalUpdate::Delta {
                origin: Origin::Community,
                add,
                remove,
            }
        };
        self.stats
            .blocklist_entries
            .store(self.held.len() as u64, Ordering::Relaxed);
        if self.updates.send(update).await.is_ok() {
            self.since = Some(resp.version);
        }
    }
}

fn decision(e: &BlockEntry, now: Micros) -> Option<Decision> {
    let value = crowdwall_base::parse_net(&e.value).ok()?;
    if e.duration_s <= 0 {
        return None;
    }
    Some(Decision {
        id: 0,
        value,
        origin: Origin::Community,
        scenario: e.scenario.clone(),
        reason: format!("community blocklist, score {}", e.score),
        created: now,
        until: now.saturating_add(e.duration_s.saturating_mul(SECOND)),
        ports: Default::default(),
    })
}

/// A snapshot's decisions within the cap (best scores first): (decisions, held, left out).
fn snapshot(
    entries: &[BlockEntry],
    cap: usize,
    now: Micros,
) -> (Vec<Decision>, HashMap<IpNet, u8>, usize) {
    let mut sorted: Vec<&BlockEntry> = entries.iter().collect();
    sorted.sort_by(|a, b| b.score.cmp(&a.score).then(b.duration_s.cmp(&a.duration_s)));
    let mut held = HashMap::new();
    let mut out = Vec::new();
    let mut over = 0;
    for e in sorted {
        let Some(d) = decision(e, now) else { continue };
        if held.contains_key(&d.value) {
            continue;
        }
        if out.len() >= cap {
            over += 1;
            continue;
        }
        held.insert(d.value, e.score);
        out.push(d);
    }
    (out, held, over)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn e(v: &str, score: u8, secs: i64) -> BlockEntry {
        BlockEntry {
            value: v.into(),
            scenario: "ssh-bruteforce".into(),
            duration_s: secs,
            duration: crowdwall_proto::duration::crowdsec_duration(secs * crowdwall_base::SECOND),
            score,
        }
    }

    #[test]
    fn snapshot_keeps_the_best_within_the_cap() {
        let entries = vec![
            e("45.0.0.1", 50, 100),
            e("45.0.0.2", 90, 100),
            e("45.0.0.3", 70, 100),
            e("not-an-ip", 99, 100),
            e("45.0.0.4", 99, 0),
        ];
        let (d, held, over) = snapshot(&entries, 2, 1000);
        assert_eq!(over, 1);
        let vals: Vec<String> = d.iter().map(|d| d.value_text()).collect();
        assert_eq!(vals, vec!["45.0.0.2", "45.0.0.3"]);
        assert_eq!(held.len(), 2);
        assert_eq!(d[0].until, 1000 + 100 * SECOND);
        assert_eq!(d[0].origin, Origin::Community);
    }

    #[test]
    fn a_signal_carries_no_log_text() {
        let ov = Overflow {
            scenario: "ssh-bruteforce".into(),
            ip: "45.0.0.9".parse().unwrap(),
            first: 10 * SECOND,
            last: 20 * SECOND,
            events: 6,
            ban: None,
            allowlist: vec![],
            ports: Default::default(),
            escalate: None,
            max_ban: None,
        };
        let s = signal_of(&ov);
        let json = serde_json::to_value(&s).unwrap();
        let mut keys: Vec<&String> = json.as_object().unwrap().keys().collect();
        keys.sort();
        assert_eq!(
            keys,
            vec!["events", "first_seen", "ip", "last_seen", "scenario", "uid"]
        );
        assert_eq!((s.first_seen, s.last_seen, s.events), (10, 20, 6));
        assert_eq!(s.uid.len(), 32);
    }
}
