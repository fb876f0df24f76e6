//! Log sources: where [`LogEntry`]s come from.
//!
//! - [`journal`]: the systemd journal through sd-journal, on a thread of its own, with a
//!   persisted cursor (feature `journald`).
//! - [`text`]: syslog-format text lines and `journalctl -o json` lines, for replay.
//! - [`cursor`]: atomic persistence of a source's position in the state directory.
//! - [`file`]: log files followed with inotify through rotation, positions persisted.
//! - [`syslog`]: a syslog listener (unix datagram socket, UDP), RFC 3164, 3339 and 5424.
//! - [`nflog`]: packets the admin's firewall rules log to an NFLOG group, as kernel log lines.
//!
//! Every source but the journal hands [`Batch`]es to the daemon through one channel
//! ([`live`]).

pub mod cursor;
pub mod file;
#[cfg(feature = "journald")]
pub mod journal;
pub mod live;
pub mod nflog;
pub mod syslog;
pub mod text;

/// Entries from a source, and what to persist once they are processed.
pub struct Batch {
    /// Which source (`files`, `syslog`, `nflog`), for messages.
    pub source: &'static str,
    pub entries: Vec<LogEntry>,
    /// Stores the source's position after these entries. The daemon runs it only after the
    /// batch's decisions are stored and in the kernel (as the journal cursor).
    pub commit: Option<Box<dyn FnOnce() -> Result<(), SourceError> + Send>>,
}

pub use crowdwall_engine::LogEntry;

/// Errors of the log sources that are not about one line of text (see [`text::TextError`]).
#[derive(Debug, thiserror::Error)]
pub enum SourceError {
    /// Reading or writing a cursor file failed.
    #[error("cursor file {path}: {source}")]
    CursorIo {
        path: std::path::PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// A cursor file exists but does not hold a usable cursor (empty, garbage, truncated).
    #[error("cursor file {path}: {reason}")]
    CursorInvalid {
        path: std::path::PathBuf,
        reason: String,
    },
    /// An sd-journal call failed; `what` says which step (open, match, seek, read...).
    #[cfg(feature = "journald")]
    #[error("journal: {what}: {source}")]
    Journal {
        what: String,
        #[source]
        source: systemd::Error,
    },
    /// The journal thread could not be started or ended without reporting.
    #[error("journal thread: {0}")]
    Thread(String),
}
