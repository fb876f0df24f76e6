//! The hub's store: SQLite (embedded default) or PostgreSQL (several hub instances). Both
//! keep everything an instance needs, so any instance can answer any request.
//!
//! Versions of the blocklist are handed out under a lock held to commit (SQLite's single
//! writer; a PostgreSQL advisory lock), so a version becomes visible only after every smaller
//! one: a client that read version V never misses a change numbered below V.

use crate::consensus::Params;
use crowdwall_base::time::Micros;

use super::postgres::PgStore;
use super::sqlite::SqliteStore;

#[derive(Debug, thiserror::Error)]
pub enum HubStoreError {
    #[error("hub database: {0}")]
    Sqlite(#[from] rusqlite::Error),
    #[error("hub database: {0}")]
    Postgres(#[from] tokio_postgres::Error),
    #[error("hub database {url}: {message}")]
    Open { url: String, message: String },
    #[error("hub database schema version {found} is newer than this crowdwall knows ({known})")]
    Schema { found: i64, known: i64 },
    #[error("hub database: a worker thread failed: {0}")]
    Join(String),
    /// An error shared by every look-up of a batch.
    #[error("hub database: {0}")]
    Shared(String),
}

/// A signal that passed validation, in the store's units.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ValidSignal {
    /// Index in the pushed batch (for refusals).
    pub index: usize,
    pub uid: String,
    /// Canonical address text.
    pub ip: String,
    pub scenario: String,
    pub first_seen: Micros,
    pub last_seen: Micros,
    pub events: i64,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct IngestOutcome {
    pub accepted: usize,
    pub duplicates: usize,
    /// Batch indices refused because the agent's hourly cap was reached.
    pub capped: Vec<usize>,
    /// Addresses that entered the blocklist with this batch.
    pub listed: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BlockRow {
    pub ip: String,
    pub scenario: String,
    pub score: u8,
    pub until: Micros,
    pub version: i64,
    pub active: bool,
}

/// What the store knows of one address, for the reputation API.
#[derive(Debug, Clone, PartialEq)]
pub struct AddressInfo {
    pub first_seen: Micros,
    pub last_seen: Micros,
    pub reports: i64,
    /// Distinct agents that ever reported it (within retention).
    pub reporters: i64,
    /// Distinct reporter networks (/24, /48) among the reports in the consensus window at
    /// the last report: what the score and the listing count.
    pub networks: i64,
    /// In-window weight at the last report (see `consensus::score_at`).
    pub weight: f64,
    /// scenario -> reports, most reported first
    pub scenarios: Vec<(String, i64)>,
    pub listed_until: Option<Micros>,
}

#[derive(Debug, Clone, Default, PartialEq)]
pub struct HubStats {
    /// (hour start, signals received) over the last 24 hours, oldest first.
    pub per_hour: Vec<(Micros, i64)>,
    pub top_scenarios: Vec<(String, i64)>,
    pub listed: i64,
    pub agents: i64,
    /// Refusal and error counters, by name.
    pub counters: Vec<(String, i64)>,
}

/// The per-network cap on live agents an enrolment is checked against.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EnrolCap {
    /// Most live agents enrolled from one reporter network.
    pub max: i64,
    /// An agent is live if it enrolled or pushed a signal after this.
    pub live_since: Micros,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Enrolled {
    Yes,
    /// Refused: the network already holds this many live agents.
    NetworkFull {
        live: i64,
    },
}

/// The delta (or snapshot) a `since` asks for.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Changes {
    pub version: i64,
    pub snapshot: bool,
    pub rows: Vec<BlockRow>,
}

pub enum HubStore {
    Sqlite(SqliteStore),
    Postgres(PgStore),
}

impl HubStore {
    /// `sqlite:PATH`, a plain path, or `postgres://...` / `postgresql://...`. Runs the
    /// migrations.
    pub async fn open(url: &str) -> Result<HubStore, HubStoreError> {
        if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            Ok(HubStore::Postgres(PgStore::open(url).await?))
        } else {
            let path = url
                .strip_prefix("sqlite://")
                .or(url.strip_prefix("sqlite:"))
                .unwrap_or(url);
            let path = path.to_string();
            let s = tokio::task::spawn_blocking(move || SqliteStore::open(&path))
                .await
                .map_err(|e| HubStoreError::Join(e.to_string()))??;
            Ok(HubStore::Sqlite(s))
        }
    }

    pub fn backend(&self) -> &'static str {
        match self {
            HubStore::Sqlite(_) => "sqlite",
            HubStore::Postgres(_) => "postgresql",
        }
    }

    /// Enrols an agent from address `from` in reporter network `net`, unless `cap` says that
    /// network already holds its share of live agents. The count and the insert are one
    /// transaction (serialised per network), so concurrent enrolments cannot overshoot.
    #[allow(clippy::too_many_arguments)]
    pub async fn enroll(
        &self,
        id: &str,
        secret_sha256: &str,
        name: &str,
        from: &str,
        net: &str,
        cap: Option<EnrolCap>,
        now: Micros,
    ) -> Result<Enrolled, HubStoreError> {
        match self {
            HubStore::Sqlite(s) => {
                let (id, h, n, f, net) = (
                    id.to_string(),
                    secret_sha256.to_string(),
                    name.to_string(),
                    from.to_string(),
                    net.to_string(),
                );
                s.write(move |c| SqliteStore::enroll(c, &id, &h, &n, &f, &net, cap, now))
                    .await
            }
            HubStore::Postgres(p) => p.enroll(id, secret_sha256, name, from, net, cap, now).await,
        }
    }

    /// The agent's secret hash, if the agent exists and is not revoked.
    pub async fn agent_secret(&self, id: &str) -> Result<Option<String>, HubStoreError> {
        match self {
            HubStore::Sqlite(s) => {
                let id = id.to_string();
                s.read(move |c| SqliteStore::agent_secret(c, &id)).await
            }
            HubStore::Postgres(p) => p.agent_secret(id).await,
        }
    }

    /// Stores a batch (one transaction) and re-evaluates consensus for its addresses.
    pub async fn ingest(
        &self,
        agent: &str,
        net: &str,
        signals: Vec<ValidSignal>,
        now: Micros,
        p: Params,
    ) -> Result<IngestOutcome, HubStoreError> {
        match self {
            HubStore::Sqlite(s) => {
                let (agent, net) = (agent.to_string(), net.to_string());
                s.write(move |c| SqliteStore::ingest(c, &agent, &net, &signals, now, &p))
                    .await
            }
            HubStore::Postgres(pg) => pg.ingest(agent, net, &signals, now, &p).await,
        }
    }

    pub async fn changes(&self, since: Option<i64>, now: Micros) -> Result<Changes, HubStoreError> {
        match self {
            HubStore::Sqlite(s) => s.read(move |c| SqliteStore::changes(c, since, now)).await,
            HubStore::Postgres(p) => p.changes(since, now).await,
        }
    }

    pub async fn lookup(&self, ip: &str) -> Result<Option<AddressInfo>, HubStoreError> {
        match self {
            HubStore::Sqlite(s) => {
                let ip = ip.to_string();
                s.read(move |c| SqliteStore::lookup(c, &ip)).await
            }
            HubStore::Postgres(p) => p.lookup(ip).await,
        }
    }

    pub async fn stats(&self, now: Micros) -> Result<HubStats, HubStoreError> {
        match self {
            HubStore::Sqlite(s) => s.read(move |c| SqliteStore::stats(c, now)).await,
            HubStore::Postgres(p) => p.stats(now).await,
        }
    }

    /// Adds to named counters (refusals by reason); shared by every instance.
    pub async fn count(&self, counts: Vec<(String, i64)>) -> Result<(), HubStoreError> {
        if counts.is_empty() {
            return Ok(());
        }
        match self {
            HubStore::Sqlite(s) => s.write(move |c| SqliteStore::count(c, &counts)).await,
            HubStore::Postgres(p) => p.count(&counts).await,
        }
    }

    /// Ends expired listings (new version) and forgets old signals and delisted rows.
    pub async fn sweep(&self, now: Micros, retention: Micros) -> Result<usize, HubStoreError> {
        match self {
            HubStore::Sqlite(s) => {
                s.write(move |c| SqliteStore::sweep(c, now, retention))
                    .await
            }
            HubStore::Postgres(p) => p.sweep(now, retention).await,
        }
    }

    /// An administrator's delisting: the entry ends now and reports up to now no longer count.
    pub async fn delist(&self, ip: &str, now: Micros) -> Result<bool, HubStoreError> {
        match self {
            HubStore::Sqlite(s) => {
                let ip = ip.to_string();
                s.write(move |c| SqliteStore::delist(c, &ip, now)).await
            }
            HubStore::Postgres(p) => p.delist(ip, now).await,
        }
    }
}

/// Signals per hour and top scenarios cover this much.
pub const STATS_SPAN: Micros = 24 * 3600 * crowdwall_base::SECOND;
/// Delisted or expired rows are kept this long for deltas, then a client that far behind
/// gets a snapshot.
pub const TOMBSTONE_KEEP: Micros = 7 * 24 * 3600 * crowdwall_base::SECOND;
