//! crowdwall's daemon: the edges around the pure engine.
//!
//! - [`config`]: the configuration file, aggregated from the sections each module owns, with
//!   file:line errors.
//! - [`source`]: where entries come from (the journal through sd-journal, followed files, a
//!   syslog listener, NFLOG), each resuming from a persisted position.
//! - [`store`]: the embedded SQLite that keeps decisions, offences and bouncers.
//! - [`daemon`]: `crowdwall run`: the [`daemon::Core`] that owns all state, the loop that
//!   feeds it messages, reload, status.
//! - [`control`]: the unix-socket protocol between the daemon and the CLI, with the typed
//!   status both the CLI and the metrics endpoint render.
//! - [`api`]: the CrowdSec-compatible bouncer API (existing bouncers pull our decisions).
//! - [`ingest`]: decisions pulled in: a CrowdSec Local API followed as a bouncer, feeds.
//! - [`community`]: this host as an agent of a community hub.
//! - [`metrics`]: the counters as Prometheus text and tables.
//! - [`lockout`]: warns when a logged-in SSH session's address is not allowlisted.
//!
//! Edges (sources, the API, ingest, the community agent, the metrics endpoint) never see the
//! core: they send messages into the loop, and `daemon::edges` turns each into core calls.

pub mod api;
pub mod community;
pub mod config;
pub mod control;
pub mod daemon;
pub mod external;
pub mod ingest;
pub mod lockout;
pub mod metrics;
pub mod source;
pub mod store;

/// Pipeline time and the wall clock together, for the edges (the engine gets only the
/// former).
pub(crate) mod time {
    pub use crowdwall_base::clock::now;
    pub use crowdwall_base::time::*;
}
