//! What the edges that pull decisions in (community blocklist, CrowdSec, feeds) hand the
//! daemon's core, and what it answers. The edges build these; only `daemon::edges` turns them
//! into core calls, so no edge sees the core.

use ipnet::IpNet;
use serde::Serialize;

use crowdwall_engine::decide::{Decision, Origin};

/// Decisions from an origin outside this host's scenarios; see [`crate::daemon::Core::apply_external`].
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
