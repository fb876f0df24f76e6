//! The logger both binaries install: the journal when stderr is connected to it (under
//! systemd), else plain lines on stderr with a UTC time stamp. `CROWDWALL_LOG=debug|warn`
//! changes the level on stderr; under systemd it is info.

/// Installs the logger; a second call does nothing.
pub fn init() {
    if systemd_journal_logger::connected_to_journal() {
        if let Ok(l) = systemd_journal_logger::JournalLog::new() {
            if l.install().is_ok() {
                log::set_max_level(log::LevelFilter::Info);
                return;
            }
        }
    }
    static STDERR: StderrLog = StderrLog;
    if log::set_logger(&STDERR).is_ok() {
        log::set_max_level(match std::env::var("CROWDWALL_LOG").as_deref() {
            Ok("debug") => log::LevelFilter::Debug,
            Ok("warn") => log::LevelFilter::Warn,
            _ => log::LevelFilter::Info,
        });
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
