//! Log sources: where [`LogEntry`]s come from, behind one [`Sources`] type.
//!
//! - [`journal`]: the systemd journal through sd-journal, on a thread of its own, with a
//!   persisted cursor (feature `journald`).
//! - [`file`]: log files followed with inotify through rotation, positions persisted.
//! - [`syslog`]: a syslog listener (unix datagram socket, UDP), RFC 3164, 3339 and 5424.
//! - [`nflog`]: packets the admin's firewall rules log to an NFLOG group, as kernel log lines.
//! - [`cursor`]: atomic persistence of a source's position in the state directory.
//!
//! Every source hands [`Batch`]es to the daemon through [`Sources::recv`]; the daemon runs a
//! batch's commit (cursor, file positions) only once the batch's decisions are stored and in
//! the kernel, so a crash never skips entries. Line formats (syslog headers, journal JSON)
//! are the engine's (`crowdwall_engine::text`).

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;

use serde::{Deserialize, Serialize};
use tokio::sync::mpsc;

use crate::time::Micros;
#[cfg(feature = "journald")]
use crate::time::{self, SECOND};

pub mod cursor;
pub mod file;
#[cfg(feature = "journald")]
pub mod journal;
pub mod nflog;
pub mod syslog;

/// Entries from a source, and what to persist once they are processed.
pub struct Batch {
    /// Which source (`journal`, `files`, `syslog`, `nflog`), for messages.
    pub source: &'static str,
    pub entries: Vec<LogEntry>,
    /// Entries read again from before the saved position to rebuild detection state after
    /// a restart: they feed the buckets and decide nothing (no commit either).
    pub warm: bool,
    /// Stores the source's position after these entries. The daemon runs it only after the
    /// batch's decisions are stored and in the kernel.
    pub commit: Option<Box<dyn FnOnce() -> Result<(), SourceError> + Send>>,
}

pub use crowdwall_engine::LogEntry;

/// `[journal]`: the systemd journal source.
#[derive(Debug, Clone, PartialEq, Eq, serde::Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct JournalSection {
    pub enabled: bool,
    pub matches: Vec<String>,
    pub directory: Option<PathBuf>,
}

impl Default for JournalSection {
    fn default() -> Self {
        JournalSection {
            enabled: true,
            matches: vec![
                "SYSLOG_IDENTIFIER=sshd".into(),
                "SYSLOG_IDENTIFIER=sshd-session".into(),
            ],
            directory: None,
        }
    }
}

impl JournalSection {
    /// The matches as (field, value) pairs; validated at load. `+` becomes `("+", "")`.
    pub fn match_pairs(&self) -> Vec<(String, String)> {
        self.matches
            .iter()
            .filter_map(|m| {
                if m == "+" {
                    Some(("+", ""))
                } else {
                    m.split_once('=')
                }
            })
            .map(|(f, v)| (f.to_string(), v.to_string()))
            .collect()
    }
}

impl crowdwall_base::Section for JournalSection {
    const NAME: &'static str = "journal";

    /// Every match is `FIELD=value`, or `+` between two groups.
    fn check(&self) -> Result<(), crowdwall_base::SectionError> {
        use crowdwall_base::SectionError;
        for (i, m) in self.matches.iter().enumerate() {
            if m == "+" {
                // journalctl's disjunction: one service's matches OR another's.
                let n = self.matches.len();
                if i == 0 || i + 1 == n || self.matches[i - 1] == "+" {
                    return Err(SectionError::new(
                        "matches",
                        "'+' must stand between two groups of FIELD=value matches",
                    ));
                }
                continue;
            }
            match m.split_once('=') {
                Some((f, v))
                    if !f.is_empty()
                        && !v.is_empty()
                        && f.bytes()
                            .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit() || b == b'_') => {
                }
                _ => {
                    return Err(SectionError::new(
                        "matches",
                        format!("'{m}' is not FIELD=value with an upper-case journal field name"),
                    ))
                }
            }
        }
        Ok(())
    }
}

/// Errors of the log sources that are not about one line of text (see `crowdwall_engine::text::TextError`).
#[derive(Debug, thiserror::Error)]
pub enum SourceError {
    /// Reading or writing a cursor file failed.
    #[error("cursor file {path}: {source}")]
    CursorIo {
        path: std::path::PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// Writing a position durably failed.
    #[error("position: {0}")]
    Write(#[from] crowdwall_base::fsutil::FsError),
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

/// A source that could not start, or that ended: which one, and why.
#[derive(Debug, thiserror::Error)]
#[error("{source_name}: {message}")]
pub struct SourcesError {
    /// `journal`, `files`, `syslog` or `nflog`.
    pub source_name: &'static str,
    pub message: String,
}

impl SourcesError {
    fn new(source_name: &'static str, message: impl std::fmt::Display) -> SourcesError {
        SourcesError {
            source_name,
            message: message.to_string(),
        }
    }
}

/// What one source reports for `crowdwall status` and the metrics endpoint (one type for
/// both, so they cannot disagree about which sources there are).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct SourceStatus {
    /// `journal`, `files`, `syslog`, `nflog`.
    pub name: String,
    pub entries_read: u64,
    /// Entries or lines skipped (unreadable, too long, not UTF-8, malformed).
    #[serde(default)]
    pub skipped: u64,
    /// Times a resume position was lost (journal cursor vacuumed).
    #[serde(default)]
    pub gaps: u64,
    /// Seconds behind the newest entry (journal).
    #[serde(default)]
    pub lag_s: u64,
    /// What this kind of source counts besides (files followed, rotations, datagrams...).
    #[serde(flatten)]
    pub details: serde_json::Map<String, serde_json::Value>,
}

impl SourceStatus {
    /// From a source's counters as JSON: the keys every source has are lifted out, the
    /// `skipped_*` counters summed.
    pub fn from_json(v: serde_json::Value) -> SourceStatus {
        let serde_json::Value::Object(mut map) = v else {
            return SourceStatus::default();
        };
        let mut take = |k: &str| map.remove(k).and_then(|v| v.as_u64()).unwrap_or(0);
        let entries_read = take("entries_read");
        let gaps = take("gaps");
        let lag_s = take("lag_s");
        let mut skipped = take("skipped");
        skipped += map
            .iter()
            .filter(|(k, _)| k.starts_with("skipped_"))
            .filter_map(|(_, v)| v.as_u64())
            .sum::<u64>();
        let name = match map.remove("name") {
            Some(serde_json::Value::String(s)) => s,
            _ => String::new(),
        };
        SourceStatus {
            name,
            entries_read,
            skipped,
            gaps,
            lag_s,
            details: map,
        }
    }
}

/// The sections the sources start from; a reload restarts only the sources whose part
/// changed.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct SourcesConfig {
    pub journal: JournalSection,
    pub files: file::FilesSection,
    pub syslog: syslog::SyslogSection,
    pub nflog: nflog::NflogSection,
    /// How far before its saved cursor the journal is read again at start to rebuild the
    /// buckets: the longest time a scenario remembers an event. Only at start: a reload
    /// keeps the live buckets.
    pub warm_window: crate::time::Micros,
}

impl SourcesConfig {
    fn live_part(
        &self,
    ) -> (
        &file::FilesSection,
        &syslog::SyslogSection,
        &nflog::NflogSection,
    ) {
        (&self.files, &self.syslog, &self.nflog)
    }
}

#[cfg(feature = "journald")]
struct JournalHandle {
    rx: mpsc::Receiver<journal::JournalBatch>,
    stop: Arc<AtomicBool>,
    stats: Arc<journal::JournalStats>,
    cursor_file: cursor::CursorFile,
    thread: Option<JoinHandle<Result<(), SourceError>>>,
    directory: Option<PathBuf>,
}

/// The threads and tasks of the files, syslog and NFLOG sources (one channel).
struct Live {
    rx: mpsc::Receiver<Batch>,
    stop: Arc<AtomicBool>,
    threads: Vec<JoinHandle<()>>,
    files: Option<Arc<file::FileStats>>,
    syslog: Option<syslog::SyslogHandle>,
    nflog: Option<Arc<nflog::NflogStats>>,
}

/// Every running source; [`Sources::stop`] stops them.
pub struct Sources {
    pub config: SourcesConfig,
    state_dir: PathBuf,
    #[cfg(feature = "journald")]
    journal: Option<JournalHandle>,
    live: Live,
}

impl Sources {
    /// Starts what `config` enables; must run inside the tokio runtime (the syslog listener
    /// is a task). The error names the source; nothing is left running on error.
    pub fn start(config: SourcesConfig, state_dir: &Path) -> Result<Sources, SourcesError> {
        #[cfg(feature = "journald")]
        let journal = start_journal(&config.journal, state_dir, config.warm_window)?;
        #[cfg(not(feature = "journald"))]
        if config.journal.enabled {
            log::warn!("built without journald support: [journal] is ignored");
        }
        let live = match start_live(&config, state_dir) {
            Ok(l) => l,
            Err(e) => {
                #[cfg(feature = "journald")]
                if let Some(j) = journal {
                    stop_journal(j);
                }
                return Err(e);
            }
        };
        Ok(Sources {
            config,
            state_dir: state_dir.to_path_buf(),
            #[cfg(feature = "journald")]
            journal,
            live,
        })
    }

    /// The next batch, from whichever source has one; pends forever when nothing is enabled.
    /// An error means a source ended for good (the journal thread stopped).
    pub async fn recv(&mut self) -> Result<Batch, SourcesError> {
        #[cfg(feature = "journald")]
        let journal = async {
            match &mut self.journal {
                Some(j) => j.rx.recv().await,
                None => std::future::pending().await,
            }
        };
        #[cfg(not(feature = "journald"))]
        let journal = std::future::pending::<Option<()>>();
        let live_enabled = !self.live.threads.is_empty() || self.live.syslog.is_some();
        let live = async {
            if live_enabled {
                self.live.rx.recv().await
            } else {
                std::future::pending().await
            }
        };
        tokio::select! {
            b = journal => {
                #[cfg(feature = "journald")]
                {
                    let Some(b) = b else {
                        return Err(self.journal_ended());
                    };
                    let file = self.journal.as_ref().map(|j| j.cursor_file.clone());
                    let cursor = b.cursor;
                    Ok(Batch {
                        source: "journal",
                        entries: b.entries,
                        warm: b.warm,
                        commit: file.filter(|_| !b.warm).map(|f| {
                            Box::new(move || f.store(&cursor))
                                as Box<dyn FnOnce() -> Result<(), SourceError> + Send>
                        }),
                    })
                }
                #[cfg(not(feature = "journald"))]
                {
                    let _ = b;
                    std::future::pending().await
                }
            }
            Some(b) = live => Ok(b),
        }
    }

    /// The journal thread ended: its error, if it had one. The journal is then off.
    #[cfg(feature = "journald")]
    fn journal_ended(&mut self) -> SourcesError {
        let r = self
            .journal
            .as_mut()
            .and_then(|j| j.thread.take())
            .map(|t| t.join());
        self.journal = None;
        SourcesError::new(
            "journal",
            match r {
                Some(Ok(Err(e))) => e.to_string(),
                Some(Err(_)) => "thread panicked".into(),
                _ => "thread ended".into(),
            },
        )
    }

    /// One line for the log and sd_notify: what is watched.
    pub fn describe(&self) -> Vec<String> {
        let mut v = Vec::new();
        #[cfg(feature = "journald")]
        if let Some(j) = &self.journal {
            v.push(match &j.directory {
                Some(d) => format!("journal directory {}", d.display()),
                None => "the system journal".into(),
            });
        }
        if !self.config.files.0.is_empty() {
            v.push(format!("{} file pattern(s)", self.config.files.0.len()));
        }
        if self.live.syslog.is_some() {
            v.push("syslog".into());
        }
        if self.live.nflog.is_some() {
            v.push(format!("nflog group {}", self.config.nflog.group));
        }
        if v.is_empty() {
            v.push("no log source".into());
        }
        v
    }

    /// Every running source's counters.
    pub fn status(&self) -> Vec<SourceStatus> {
        let mut v = Vec::new();
        #[cfg(feature = "journald")]
        if let Some(j) = &self.journal {
            use std::sync::atomic::Ordering::Relaxed;
            let caught_up = j.stats.caught_up.load(Relaxed);
            let newest = j.stats.newest_entry.load(Relaxed);
            let lag = if caught_up || newest == 0 {
                0
            } else {
                (time::now() - newest).max(0) / SECOND
            };
            let mut details = serde_json::Map::new();
            details.insert("directory".into(), serde_json::json!(j.directory));
            details.insert("caught_up".into(), caught_up.into());
            let backlog = j.stats.backlog.load(Relaxed);
            details.insert("backlog".into(), backlog.into());
            // The count stops at the cap: "more than" it.
            details.insert(
                "backlog_capped".into(),
                (backlog >= journal::BACKLOG_COUNT_MAX).into(),
            );
            details.insert(
                "newest_entry".into(),
                match newest > 0 {
                    true => time::format_rfc3339(newest).into(),
                    false => serde_json::Value::Null,
                },
            );
            v.push(SourceStatus {
                name: "journal".into(),
                entries_read: j.stats.entries.load(Relaxed),
                skipped: j.stats.skipped.load(Relaxed),
                gaps: j.stats.gaps.load(Relaxed),
                lag_s: lag as u64,
                details,
            });
        }
        if let Some(s) = &self.live.files {
            v.push(SourceStatus::from_json(s.json()));
        }
        if let Some(s) = &self.live.syslog {
            v.push(SourceStatus::from_json(s.stats.json()));
        }
        if let Some(s) = &self.live.nflog {
            v.push(SourceStatus::from_json(s.json(self.config.nflog.group)));
        }
        v
    }

    /// How long since the journal thread last looped (it loops even when idle): the
    /// watchdog's view of a stalled source. 0 without a journal.
    pub fn heartbeat_age(&self, now: Micros) -> Micros {
        #[cfg(feature = "journald")]
        if let Some(j) = &self.journal {
            return now - j.stats.last_progress.load(Ordering::Relaxed);
        }
        let _ = now;
        0
    }

    /// Restarts the sources whose part of `new` differs; returns which parts changed. When
    /// a new source cannot start, the old ones are started again and the error returned.
    /// The journal resumes from the cursor of the last batch processed, so nothing is
    /// skipped or read twice.
    pub async fn reload(&mut self, new: SourcesConfig) -> Result<Vec<&'static str>, SourcesError> {
        let mut changed = Vec::new();
        let journal_changed = new.journal != self.config.journal;
        let live_changed = new.live_part() != self.config.live_part();
        let old = self.config.clone();
        if journal_changed {
            #[cfg(feature = "journald")]
            {
                if let Some(j) = self.journal.take() {
                    stop_journal(j);
                }
                match start_journal(&new.journal, &self.state_dir, 0) {
                    Ok(j) => self.journal = j,
                    Err(e) => {
                        self.journal =
                            start_journal(&old.journal, &self.state_dir, 0).unwrap_or(None);
                        return Err(e);
                    }
                }
            }
            self.config.journal = new.journal.clone();
            changed.push("journal");
        }
        if live_changed {
            self.live.stop().await;
            match start_live(&new, &self.state_dir) {
                Ok(l) => self.live = l,
                Err(e) => {
                    match start_live(&old, &self.state_dir) {
                        Ok(l) => self.live = l,
                        Err(e2) => log::error!("restarting the previous sources: {e2}"),
                    }
                    #[cfg(feature = "journald")]
                    if journal_changed {
                        if let Some(j) = self.journal.take() {
                            stop_journal(j);
                        }
                        self.journal =
                            start_journal(&old.journal, &self.state_dir, 0).unwrap_or(None);
                    }
                    self.config = old;
                    return Err(e);
                }
            }
            changed.push("sources");
        }
        self.config = new;
        Ok(changed)
    }

    /// Stops everything and waits until sockets are closed and threads are gone.
    pub async fn stop(&mut self) {
        #[cfg(feature = "journald")]
        if let Some(j) = self.journal.take() {
            stop_journal(j);
        }
        self.live.stop().await;
    }
}

#[cfg(feature = "journald")]
fn start_journal(
    cfg: &JournalSection,
    state_dir: &Path,
    warm_window: crate::time::Micros,
) -> Result<Option<JournalHandle>, SourcesError> {
    use cursor::CursorFile;
    if !cfg.enabled {
        return Ok(None);
    }
    let err = |e: SourceError| SourcesError::new("journal", e);
    let cursor_file = CursorFile::new(state_dir.join("journal.cursor"));
    let cursor = cursor_file.load().map_err(err)?;
    match &cursor {
        // A first start after an earlier run may have hours of history to read: say so, or
        // a burst of bans from old entries in the first second looks like a malfunction.
        // The journal thread counts what is to catch up on and says so.
        Some(_) => log::info!(
            "journal: resuming from the cursor saved in {}",
            cursor_file.path().display()
        ),
        None => log::info!("journal: first start, reading from the tail"),
    }
    let (tx, rx) = mpsc::channel(16);
    let stop = Arc::new(AtomicBool::new(false));
    let stats = journal::JournalStats::new();
    let thread = journal::spawn(
        journal::JournalConfig {
            matches: cfg.match_pairs(),
            directory: cfg.directory.clone(),
            cursor,
            start_at_head: false,
            warm_window,
        },
        tx,
        stop.clone(),
        stats.clone(),
    )
    .map_err(err)?;
    Ok(Some(JournalHandle {
        rx,
        stop,
        stats,
        cursor_file,
        thread: Some(thread),
        directory: cfg.directory.clone(),
    }))
}

#[cfg(feature = "journald")]
fn stop_journal(mut j: JournalHandle) {
    j.stop.store(true, Ordering::Relaxed);
    j.rx.close();
    if let Some(t) = j.thread.take() {
        let _ = t.join();
    }
}

fn start_live(config: &SourcesConfig, state_dir: &Path) -> Result<Live, SourcesError> {
    let (tx, rx) = mpsc::channel(16);
    let stop = Arc::new(AtomicBool::new(false));
    let mut s = Live {
        rx,
        stop: stop.clone(),
        threads: Vec::new(),
        files: None,
        syslog: None,
        nflog: None,
    };
    if !config.files.0.is_empty() {
        let stats = Arc::new(file::FileStats::default());
        let t = file::spawn(
            config.files.0.clone(),
            file::PositionFile::new(state_dir.join("files.positions")),
            tx.clone(),
            stop.clone(),
            stats.clone(),
        )
        .map_err(|e| SourcesError::new("files", e))?;
        s.threads.push(t);
        s.files = Some(stats);
    }
    if config.syslog.enabled {
        match syslog::start(&config.syslog, tx.clone()) {
            Ok(h) => s.syslog = Some(h),
            Err(e) => {
                stop.store(true, Ordering::Relaxed);
                return Err(SourcesError::new("syslog", e));
            }
        }
    }
    if config.nflog.enabled {
        let stats = Arc::new(nflog::NflogStats::default());
        match nflog::spawn(config.nflog.group, tx.clone(), stop.clone(), stats.clone()) {
            Ok(t) => {
                s.threads.push(t);
                s.nflog = Some(stats);
            }
            Err(e) => {
                stop.store(true, Ordering::Relaxed);
                return Err(SourcesError::new("nflog", e));
            }
        }
    }
    Ok(s)
}

impl Live {
    /// Stops everything and waits until sockets are closed and threads are gone, so the
    /// same addresses and group can be bound again at once (reload).
    async fn stop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        // Unblocks a thread waiting on a full channel; unsent batches are read again from
        // the saved positions next time.
        self.rx.close();
        while self.rx.try_recv().is_ok() {}
        if let Some(mut s) = self.syslog.take() {
            s.stop_and_wait().await;
        }
        for t in self.threads.drain(..) {
            let _ = tokio::task::spawn_blocking(move || t.join()).await;
        }
    }
}
