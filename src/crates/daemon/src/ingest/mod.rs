//! Decisions from outside this host's scenarios that crowdwall pulls in: a CrowdSec Local
//! API followed as a bouncer ([`crowdsec`]) and blocklist feeds ([`feeds`]).
//!
//! The fetching runs on tasks of the daemon's runtime and never touches state: each update
//! is sent as an [`IngestMsg`] into the daemon's loop, where `daemon::edges` applies it through
//! `Core::apply_external` (allowlist filter, one store transaction, one kernel sync). A
//! feed's allowlist check runs there too, because only the Core knows the allowlist
//! (including this host's addresses, which change).

pub mod crowdsec;
pub mod feeds;
mod http;

use ipnet::IpNet;
use tokio::sync::{mpsc, oneshot};

use crate::external::{ExternalReport, ExternalUpdate};
use crate::time::{self, Micros};

#[derive(Debug, thiserror::Error)]
pub enum IngestError {
    #[error("{what}: {message}")]
    Fetch { what: String, message: String },
    #[error("{0}")]
    Refused(String),
    #[error("the daemon is shutting down")]
    Closed,
}

/// An update for the Core, with the way back.
#[derive(Debug)]
pub enum IngestMsg {
    /// Decisions that need no check beyond the allowlist filter (CrowdSec).
    External {
        update: ExternalUpdate,
        reply: oneshot::Sender<Result<ExternalReport, String>>,
    },
    /// A feed's whole new version: refused as a whole if any entry is allowlisted.
    Feed {
        name: String,
        entries: Vec<IpNet>,
        until: Micros,
        reply: oneshot::Sender<Result<ExternalReport, String>>,
    },
    /// Feeds no longer configured: their decisions end.
    Forget { keep: Vec<String> },
}

/// What each follower and feed last did, for `crowdwall status`: written by the tasks,
/// read by the loop when status is asked (a lock held for a map insert or a clone).
#[derive(Debug, Default)]
pub struct Board(std::sync::Mutex<std::collections::BTreeMap<String, serde_json::Value>>);

impl Board {
    /// Records an outcome for `what` ("crowdsec", "feed NAME").
    pub fn set(&self, what: &str, ok: Result<String, String>) {
        let now = time::format_rfc3339(time::now());
        if let Ok(mut m) = self.0.lock() {
            let e = m
                .entry(what.to_string())
                .or_insert_with(|| serde_json::json!({}));
            match ok {
                Ok(msg) => {
                    e["last_ok"] = now.into();
                    e["last_result"] = msg.into();
                    e["error"] = serde_json::Value::Null;
                }
                Err(msg) => {
                    e["last_error_at"] = now.into();
                    e["error"] = msg.into();
                }
            }
        }
    }

    pub fn snapshot(&self) -> serde_json::Value {
        self.0
            .lock()
            .map(|m| serde_json::Value::Object(m.clone().into_iter().collect()))
            .unwrap_or_default()
    }
}

/// Sends a message and waits for the Core's answer.
pub(crate) async fn ask(
    tx: &mpsc::Sender<IngestMsg>,
    make: impl FnOnce(oneshot::Sender<Result<ExternalReport, String>>) -> IngestMsg,
) -> Result<ExternalReport, IngestError> {
    let (otx, orx) = oneshot::channel();
    tx.send(make(otx)).await.map_err(|_| IngestError::Closed)?;
    orx.await
        .map_err(|_| IngestError::Closed)?
        .map_err(IngestError::Refused)
}

/// Starts the CrowdSec follower and the feeds that the config enables.
pub fn start(
    crowdsec: &crowdsec::CrowdsecSection,
    feeds: &feeds::FeedsSection,
    tx: mpsc::Sender<IngestMsg>,
) -> Result<std::sync::Arc<Board>, IngestError> {
    let board = std::sync::Arc::new(Board::default());
    let keep: Vec<String> = feeds
        .lists
        .iter()
        .filter(|(_, l)| l.enabled)
        .map(|(n, _)| n.clone())
        .collect();
    let forget = tx.clone();
    tokio::spawn(async move {
        let _ = forget.send(IngestMsg::Forget { keep }).await;
    });
    if crowdsec.enabled {
        let follower = crowdsec::Follower::new(crowdsec)?;
        tokio::spawn(follower.run(tx.clone(), board.clone()));
    }
    for (name, list) in &feeds.lists {
        if list.enabled {
            let feed = feeds::Feed::new(name, list, feeds)?;
            tokio::spawn(feed.run(tx.clone(), board.clone()));
        }
    }
    Ok(board)
}
