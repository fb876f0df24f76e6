//! One log entry, whichever source it came from.

use crowdwall_base::Micros;

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
