//! The control protocol between the CLI and the daemon: one JSON request and one JSON
//! response per line, over a unix socket that only root can open (mode 0600). The server side
//! lives in the daemon; this module holds the messages and the blocking client.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Write};
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::time::Duration;

use serde::{Deserialize, Serialize};

/// Longest request line the daemon reads; anything longer is refused.
pub const MAX_REQUEST: usize = 64 * 1024;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "cmd", rename_all = "snake_case", deny_unknown_fields)]
pub enum Request {
    List,
    Add {
        value: String,
        duration: Option<String>,
        reason: Option<String>,
        /// `22,2222`: the ban covers only these ports (one of the configured lists). Left
        /// out when absent, so an older daemon reads a plain add as before.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        ports: Option<String>,
    },
    Delete {
        value: String,
    },
    /// Ends every active decision inside `range` (an address or a CIDR: a /24 ends its
    /// addresses and its sub-ranges), or every decision at all when `range` is `None`.
    DeleteCovered {
        range: Option<String>,
    },
    /// Forgets the offence history of an address or range, so its next ban starts again at
    /// `[ban] duration` instead of escalating.
    Forget {
        value: String,
    },
    Status,
    /// Read the configuration file again and swap it in, or refuse it and keep the running
    /// one.
    Reload,
    /// `crowdwall bouncers`: the key is made by the CLI; only its SHA-256 crosses the socket.
    BouncerAdd {
        name: String,
        key_sha256: String,
    },
    BouncerList,
    BouncerDelete {
        name: String,
    },
    /// The counters snapshot (`crowdwall metrics`).
    Metrics,
    /// Kept log lines numbered after `after` (0: the newest `max`), for `crowdwall log`.
    Log {
        after: u64,
        max: usize,
    },
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Response {
    Ok(serde_json::Value),
    Error(String),
}

/// `crowdwall status`: what the daemon reads, holds and does. The CLI renders it, `--json`
/// prints it, and the metrics snapshot is computed from the same counters.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Status {
    pub version: String,
    pub uptime_s: u64,
    /// Every source, journal or not.
    pub sources: Vec<crate::source::SourceStatus>,
    /// The community agent, when this host is enrolled.
    pub community: Option<serde_json::Value>,
    pub parsers: BTreeMap<String, crowdwall_engine::parse::ParserStats>,
    /// CrowdSec follower and feeds: last result and error of each.
    pub ingest: serde_json::Value,
    pub buckets: crowdwall_engine::detect::EngineStats,
    pub overflows: BTreeMap<String, u64>,
    /// Active decisions per origin.
    pub decisions: BTreeMap<String, usize>,
    pub firewall: FirewallStatus,
    pub allowlist: AllowlistStatus,
    pub lockout: crate::lockout::LockoutStatus,
    #[serde(default)]
    pub store: StoreStatus,
}

/// The store's health: while it refuses writes, bans are enforced and wait here.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct StoreStatus {
    /// Why writes fail, since when (RFC 3339); None when they work.
    pub error: Option<String>,
    pub failing_since: Option<String>,
    /// Decisions in the kernel waiting to be written.
    pub pending: usize,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct FirewallStatus {
    /// `inet crowdwall`.
    pub table: String,
    /// Elements held, as the plan (kept equal to the kernel) counts them.
    pub sets: crowdwall_engine::enforce::SetSizes,
    /// Packets and bytes dropped per origin (own-table mode).
    pub dropped: Vec<crowdwall_engine::enforce::DropCounter>,
    /// Why the counters could not be read.
    pub error: Option<String>,
    /// The kernel refused to catch up with the store; a retry is scheduled.
    pub behind_store: bool,
    pub stats: CoreStats,
}

/// The Core's own counters (entries, bans, transactions, heals, read-backs).
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct CoreStats {
    pub entries: u64,
    pub decisions_local: u64,
    pub refused_allowlisted: u64,
    pub already_banned: u64,
    pub transactions: u64,
    pub transaction_failures: u64,
    pub full_loads: u64,
    pub heals: u64,
    pub audits: u64,
    pub audit_repairs: u64,
    /// Journal entries read again at start to rebuild the buckets (not counted in
    /// `entries`).
    #[serde(default)]
    pub warmed: u64,
    /// Bans adopted from the kernel at start because the store was new.
    #[serde(default)]
    pub recovered: u64,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct AllowlistStatus {
    pub configured: Vec<String>,
    pub own_addresses: Vec<String>,
    pub from_dir: Vec<String>,
}

#[derive(Debug, thiserror::Error)]
pub enum ControlError {
    /// The cause is in the message and not a `#[source]`: anyhow's `{:#}` would print it a
    /// second time.
    #[error("cannot reach the daemon at {path}: {error} ({hint})")]
    Connect {
        path: String,
        error: std::io::Error,
        hint: &'static str,
    },
    #[error("talking to the daemon: {0}")]
    Io(#[from] std::io::Error),
    #[error("the daemon's answer does not parse: {0}")]
    Decode(#[from] serde_json::Error),
    #[error("the daemon closed the connection without an answer")]
    NoAnswer,
}

/// What to do when the socket cannot be opened: the advice that applies on this host (no
/// `systemctl` hint where systemd is not running).
pub fn connect_hint(error: &std::io::Error, systemd: bool) -> &'static str {
    use std::io::ErrorKind::*;
    match (error.kind(), systemd) {
        (PermissionDenied, _) => "the control socket is root only: run this as root",
        (_, true) => "is it running? `systemctl status crowdwall`, `journalctl -u crowdwall`",
        (_, false) => {
            "is it running? systemd is not running here, so nothing started it: run `crowdwall run`"
        }
    }
}

/// Sends one request and waits for its answer.
pub fn call(socket: &Path, req: &Request) -> Result<Response, ControlError> {
    let mut stream = UnixStream::connect(socket).map_err(|error| ControlError::Connect {
        path: socket.display().to_string(),
        hint: connect_hint(&error, Path::new("/run/systemd/system").is_dir()),
        error,
    })?;
    stream.set_read_timeout(Some(Duration::from_secs(30)))?;
    let mut line = serde_json::to_vec(req)?;
    line.push(b'\n');
    stream.write_all(&line)?;
    let mut reader = BufReader::new(stream);
    let mut answer = String::new();
    if reader.read_line(&mut answer)? == 0 {
        return Err(ControlError::NoAnswer);
    }
    Ok(serde_json::from_str(&answer)?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn connect_error_names_the_cause_once_and_the_hint_that_applies() {
        let e = ControlError::Connect {
            path: "/run/crowdwall/crowdwall.sock".into(),
            error: std::io::Error::from(std::io::ErrorKind::NotFound),
            hint: connect_hint(&std::io::Error::from(std::io::ErrorKind::NotFound), false),
        };
        assert!(std::error::Error::source(&e).is_none());
        let msg = e.to_string();
        assert!(msg.contains("crowdwall run"), "{msg}");
        assert!(!msg.contains("systemctl"), "{msg}");
        let with_systemd = connect_hint(&std::io::Error::from(std::io::ErrorKind::NotFound), true);
        assert!(with_systemd.contains("systemctl status crowdwall"));
        let denied = connect_hint(
            &std::io::Error::from(std::io::ErrorKind::PermissionDenied),
            true,
        );
        assert!(denied.contains("root"), "{denied}");
    }

    #[test]
    fn wire_format_is_stable() {
        let r = Request::Add {
            value: "192.0.2.1".into(),
            duration: Some("1h".into()),
            reason: None,
            ports: None,
        };
        let s = serde_json::to_string(&r).unwrap();
        assert_eq!(
            s,
            r#"{"cmd":"add","value":"192.0.2.1","duration":"1h","reason":null}"#
        );
        assert_eq!(serde_json::from_str::<Request>(&s).unwrap(), r);
        assert!(
            serde_json::from_str::<Request>(r#"{"cmd":"delete","value":"x","all":1}"#).is_err()
        );
        assert!(serde_json::from_str::<Request>(r#"{"cmd":"drop_table"}"#).is_err());
    }
}
