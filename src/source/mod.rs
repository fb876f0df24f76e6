//! Log sources: where [`LogEntry`]s come from.
//!
//! - [`journal`]: the systemd journal through sd-journal, on a thread of its own, with a
//!   persisted cursor (feature `journald`).
//! - [`text`]: syslog-format text lines and `journalctl -o json` lines, for replay.
//! - [`cursor`]: atomic persistence of a source's position in the state directory.

pub mod cursor;
#[cfg(feature = "journald")]
pub mod journal;
pub mod text;

use crate::time::Micros;

/// One log entry as a source hands it to the parsers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogEntry {
    /// When the entry was written (journal `__REALTIME_TIMESTAMP`, or the syslog header).
    pub time: Micros,
    /// The program that wrote it: `SYSLOG_IDENTIFIER` in the journal, the tag in syslog
    /// (`sshd`, `sshd-session`, ...). Parsers are chosen by it.
    pub identifier: String,
    /// The writing process, used to correlate the several lines of one sshd connection.
    pub pid: Option<u32>,
    /// The message text (the journal's `MESSAGE`, or what follows `tag[pid]: ` in syslog).
    pub message: String,
}
