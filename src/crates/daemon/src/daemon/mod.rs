//! The daemon: `crowdwall run`.
//!
//! [`Core`] owns all state (config, store, firewall, detector, plan) and is driven by
//! messages: entry batches, control requests, ticks, pulled decisions. It is tested without
//! I/O beyond SQLite, against the in-memory firewall. Around it:
//!
//! - [`core`]: the Core and what it does with entries, overflows, pulled decisions and the
//!   kernel (sync, heal, repair, read-back audit);
//! - [`requests`]: control-socket requests (decisions, bouncers);
//! - [`status`]: the typed status and the metrics snapshot, from the same numbers;
//! - [`reload`]: `crowdwall reload` and SIGHUP;
//! - [`edges`]: the translation of the edges' messages (bouncer API, ingest, community) into
//!   Core calls: the edges never see the Core;
//! - [`run`]: the run loop: sources, the control socket, signals, sd_notify, the watchdog.
//!
//! Everything runs on one thread of a current-thread runtime: the work per entry is
//! microseconds, and one owner means no locks.

mod core;
mod edges;
mod outage;
mod reload;
mod requests;
mod run;
mod status;
#[cfg(test)]
mod tests;

use std::path::PathBuf;

use crowdwall_engine::enforce::EnforceError;

use crate::store::StoreError;

pub use self::core::{Core, CoreStats};
pub use self::run::{own_addresses, run};
pub use self::status::StatusExtra;
pub use crate::external::{ExternalReport, ExternalUpdate};

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
    /// A source could not start, or ended with an error; the message names which.
    #[error(transparent)]
    Source(#[from] crate::source::SourcesError),
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
    fn apply(&self, cfg: &mut crate::config::Config) {
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
