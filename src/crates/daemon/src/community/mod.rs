//! This host as an agent of a community hub: what it shares and what it takes.
//!
//! - [`client`], [`outbox`], [`agent`]: enrolment, the on-disk outbox of signals not yet
//!   delivered, and the task that pushes signals and pulls the blocklist (handed to the
//!   daemon's loop as `ExternalUpdate`s).
//! - The wire types are `crowdwall-proto`'s; the hub itself, with its consensus rule, is the
//!   `crowdwall-hub` crate and program.
//!
//! What leaves a host is exactly a [`Signal`]: no log line, user name or path.

pub mod agent;
pub mod client;
pub mod outbox;

use std::path::PathBuf;
use std::time::Duration;

use serde::Deserialize;

use crowdwall_base::Dur;

// The wire types live in crowdwall-proto, shared with the hub.
pub use crowdwall_proto::{
    BlockEntry, BlocklistResponse, EnrollRequest, EnrollResponse, PushRequest, PushResponse,
    Refusal, Signal,
};

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

impl crowdwall_base::Section for CommunitySection {
    const NAME: &'static str = "community";
    fn check(&self) -> Result<(), crowdwall_base::SectionError> {
        Ok(())
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
    crowdwall_base::hash::random_hex(bytes).map_err(|source| CommunityError::Io {
        what: "random bytes".into(),
        source,
    })
}
