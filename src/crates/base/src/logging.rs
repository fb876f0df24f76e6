//! The logger both binaries install: the journal when stderr is connected to it (under
//! systemd), else plain lines on stderr with a UTC time stamp. `CROWDWALL_LOG=debug|warn`
//! changes the level on stderr; under systemd it is info.
//!
//! Either way the last [`RECENT_MAX`] lines are also kept in memory, numbered, for
//! `crowdwall log -f`: without systemd the daemon's log otherwise goes only to its stderr,
//! which a sysadmin on a router or in a container may never see.

use std::collections::VecDeque;
use std::sync::Mutex;

/// Lines kept for `crowdwall log`.
pub const RECENT_MAX: usize = 2000;

/// One logged line as `crowdwall log` shows it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct LogLine {
    /// Numbered from 1 since the process started; a reader asks for what follows its last.
    pub seq: u64,
    /// RFC 3339, UTC.
    pub time: String,
    pub level: String,
    pub message: String,
}

struct Recent {
    next: u64,
    lines: VecDeque<LogLine>,
}

static RECENT: Mutex<Recent> = Mutex::new(Recent {
    next: 1,
    lines: VecDeque::new(),
});

fn remember(r: &log::Record) {
    // A poisoned lock means a panic while logging elsewhere: keep logging to the real
    // logger, skip the copy.
    let Ok(mut rec) = RECENT.lock() else { return };
    let seq = rec.next;
    rec.next += 1;
    if rec.lines.len() >= RECENT_MAX {
        rec.lines.pop_front();
    }
    rec.lines.push_back(LogLine {
        seq,
        time: crate::time::format_rfc3339(crate::clock::now()),
        level: r.level().to_string(),
        message: r.args().to_string(),
    });
}

/// The kept lines numbered after `after`, at most `max` of them (the newest when `after` is
/// 0, the oldest following `after` otherwise), and the number the next line will get. A
/// reader whose `after` is older than the oldest kept line has missed some: the first line
/// returned then has `seq > after + 1`.
pub fn recent(after: u64, max: usize) -> (Vec<LogLine>, u64) {
    let Ok(rec) = RECENT.lock() else {
        return (Vec::new(), 0);
    };
    let newer = rec.lines.iter().filter(|l| l.seq > after);
    let out: Vec<LogLine> = if after == 0 {
        let v: Vec<&LogLine> = newer.collect();
        v[v.len().saturating_sub(max)..]
            .iter()
            .map(|l| (*l).clone())
            .collect()
    } else {
        newer.take(max).cloned().collect()
    };
    (out, rec.next)
}

/// Installs the logger; a second call does nothing.
pub fn init() {
    if systemd_journal_logger::connected_to_journal() {
        if let Ok(l) = systemd_journal_logger::JournalLog::new() {
            if log::set_boxed_logger(Box::new(Keep(l))).is_ok() {
                log::set_max_level(log::LevelFilter::Info);
                return;
            }
        }
    }
    if log::set_boxed_logger(Box::new(Keep(StderrLog))).is_ok() {
        log::set_max_level(match std::env::var("CROWDWALL_LOG").as_deref() {
            Ok("debug") => log::LevelFilter::Debug,
            Ok("warn") => log::LevelFilter::Warn,
            _ => log::LevelFilter::Info,
        });
    }
}

/// A logger that also keeps what it logs for [`recent`].
struct Keep<L>(L);

impl<L: log::Log> log::Log for Keep<L> {
    fn enabled(&self, m: &log::Metadata) -> bool {
        self.0.enabled(m)
    }

    fn log(&self, r: &log::Record) {
        if self.0.enabled(r.metadata()) {
            remember(r);
        }
        self.0.log(r);
    }

    fn flush(&self) {
        self.0.flush();
    }
}

/// Plain stderr logging when not under systemd.
struct StderrLog;

impl log::Log for StderrLog {
    fn enabled(&self, _: &log::Metadata) -> bool {
        true
    }

    fn log(&self, r: &log::Record) {
        eprintln!(
            "{} {:<5} {}",
            crate::time::format_rfc3339(crate::clock::now()),
            r.level(),
            r.args()
        );
    }

    fn flush(&self) {}
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn recent_lines_are_numbered_bounded_and_read_after_a_position() {
        let log = |m: &str| {
            remember(
                &log::Record::builder()
                    .args(format_args!("{m}"))
                    .level(log::Level::Warn)
                    .build(),
            )
        };
        let (_, start) = recent(0, 0);
        for i in 0..RECENT_MAX + 5 {
            log(&format!("line {i}"));
        }
        let (last, next) = recent(0, 3);
        assert_eq!(next, start + RECENT_MAX as u64 + 5);
        assert_eq!(last.len(), 3);
        assert_eq!(last[2].message, format!("line {}", RECENT_MAX + 4));
        assert_eq!(last[2].seq, next - 1);
        assert_eq!(last[0].level, "WARN");
        // After a position: what follows it, oldest first.
        let (after, _) = recent(next - 3, 10);
        assert_eq!(after.len(), 2);
        assert_eq!(after[0].seq, next - 2);
        // A reader that fell behind the ring sees the jump in the numbers.
        let (behind, _) = recent(start, 1);
        assert!(behind[0].seq > start + 1, "{behind:?}");
    }
}
