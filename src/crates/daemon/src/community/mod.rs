//! Community: what crowdwall shares with other hosts and what it takes from them.
//!
//! - [`consensus`]: the pure rule that decides when reported addresses enter the community
//!   blocklist (distinct agents, distinct networks, trust, decay, never-lists).
//! - [`hub`]: `crowdwall hub`, the server agents report to and pull the blocklist from, with
//!   its SQLite and PostgreSQL stores, the public reputation API and web page.
//! - [`client`], [`outbox`], [`agent`]: the daemon's side: enrolment, the on-disk outbox of
//!   signals not yet delivered, and the task that pushes signals and pulls the blocklist.
//!
//! What leaves a host is exactly a [`Signal`]: no log line, user name or path.

pub mod agent;
pub mod client;
pub mod consensus;
pub mod hub;
pub mod outbox;

use std::path::PathBuf;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::config::Dur;

/// One report of an attacking address, as it travels from an agent to the hub. This is all
/// an agent ever sends about an attack.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Signal {
    /// Unique per signal, chosen by the agent: a re-sent signal is recognised and counted
    /// once (pushes are idempotent).
    pub uid: String,
    /// The attacking address (a single address, never a range).
    pub ip: String,
    /// The scenario that fired (`ssh-bruteforce`...).
    pub scenario: String,
    /// First and last event of the attack, Unix seconds.
    pub first_seen: i64,
    pub last_seen: i64,
    /// How many events the scenario counted.
    pub events: u64,
}

/// `POST /v1/signals` body.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PushRequest {
    pub signals: Vec<Signal>,
}

/// Why the hub refused one signal of a batch.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Refusal {
    pub index: usize,
    pub reason: String,
}

/// `POST /v1/signals` answer: the batch is processed in one transaction.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PushResponse {
    /// New signals stored.
    pub accepted: usize,
    /// Signals already delivered before (same agent and uid).
    pub duplicates: usize,
    /// Signals refused (bad address, never-listed, bad times, over the hourly cap).
    pub refused: Vec<Refusal>,
}

/// `POST /v1/agents` body.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EnrollRequest {
    #[serde(default)]
    pub name: String,
    /// The hub's enrolment token, when it requires one.
    #[serde(default)]
    pub token: Option<String>,
}

/// `POST /v1/agents` answer. The secret is shown once; the hub keeps only its SHA-256.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct EnrollResponse {
    pub agent_id: String,
    pub secret: String,
}

/// One blocklist entry as served.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BlockEntry {
    /// Address (bare) as listed.
    pub value: String,
    pub scenario: String,
    /// Remaining seconds: relative, so the agent's clock need not agree with the hub's.
    pub duration_s: i64,
    /// The same in CrowdSec's always-h-m-s form (`3h59m57s`).
    pub duration: String,
    pub score: u8,
}

/// `GET /v1/blocklist[?since=V]` answer.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct BlocklistResponse {
    /// Pass back as `since` for the next delta.
    pub version: i64,
    /// True when this is the whole list (no `since`, or `since` too old or unknown): the
    /// client replaces what it holds.
    pub snapshot: bool,
    pub new: Vec<BlockEntry>,
    /// Values no longer listed (expired or delisted). Empty in a snapshot.
    pub deleted: Vec<String>,
}

/// Duration in CrowdSec's form, always with hours, minutes and seconds (see the note on the
/// lua bouncer, which reads "4h" as 4 seconds).
pub fn hms(secs: i64) -> String {
    let s = secs.max(0);
    format!("{}h{}m{}s", s / 3600, (s / 60) % 60, s % 60)
}

/// Scenario names on the wire: short, and safe to embed in JSON paths and HTML.
pub fn valid_scenario(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 64
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_' || b == b'/' || b == b'.')
}

/// `[community]`: this host as an agent of a hub.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct CommunitySection {
    /// Off: no pushing, no pulling, whatever the credentials say.
    pub enabled: bool,
    /// Credentials written by `crowdwall community register` (mode 0600). Relative to
    /// `[daemon] state_dir` when not absolute. Nothing happens until this file exists.
    pub credentials: PathBuf,
    /// Push signals of local bans. `false`: only pull the blocklist.
    pub share: bool,
    /// Pull and apply the community blocklist.
    pub pull: bool,
    pub pull_every: Dur,
    /// How long signals are gathered before a push, and the retry interval while the hub is
    /// unreachable (doubling up to 10 times this).
    pub push_every: Dur,
    /// Community decisions held at most; beyond this the highest scores are kept.
    pub max_decisions: usize,
    /// Signals kept in the on-disk outbox while the hub is unreachable; the oldest are dropped
    /// (and counted) beyond this.
    pub max_outbox: usize,
}

impl Default for CommunitySection {
    fn default() -> Self {
        CommunitySection {
            enabled: true,
            credentials: "community.json".into(),
            share: true,
            pull: true,
            pull_every: Dur(Duration::from_secs(300)),
            push_every: Dur(Duration::from_secs(10)),
            max_decisions: 100_000,
            max_outbox: 100_000,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum CommunityError {
    #[error("{what}: {source}")]
    Io {
        what: String,
        #[source]
        source: std::io::Error,
    },
    /// A credentials or outbox file that does not read back.
    #[error("{path}: {message}")]
    BadFile { path: String, message: String },
    /// The hub could not be reached (network, DNS, timeout): worth retrying.
    #[error("hub {url} unreachable: {message}")]
    Unreachable { url: String, message: String },
    /// The hub answered with an error that retrying will not fix.
    #[error("hub {url} refused: HTTP {status}: {body}")]
    Refused {
        url: String,
        status: u16,
        body: String,
    },
    /// The hub answered with a transient error (429, 5xx).
    #[error("hub {url} busy: HTTP {status}")]
    Busy { url: String, status: u16 },
}

impl CommunityError {
    pub fn retryable(&self) -> bool {
        matches!(
            self,
            CommunityError::Unreachable { .. } | CommunityError::Busy { .. }
        )
    }
}

/// Random hex from the OS, for agent ids, secrets and signal uids.
pub fn random_hex(bytes: usize) -> Result<String, CommunityError> {
    let mut b = vec![0u8; bytes];
    getrandom::fill(&mut b).map_err(|e| CommunityError::Io {
        what: "random bytes".into(),
        source: std::io::Error::other(e.to_string()),
    })?;
    Ok(b.iter().map(|x| format!("{x:02x}")).collect())
}

/// SHA-256 of a secret, hex. Agent secrets are 256 random bits, so a plain hash (not a slow
/// password hash) is enough: there is nothing to guess.
pub fn sha256_hex(s: &str) -> String {
    use sha2::Digest;
    let d = sha2::Sha256::digest(s.as_bytes());
    d.iter().map(|x| format!("{x:02x}")).collect()
}
