//! The systemd journal through sd-journal, on a thread of its own.
//!
//! `sd_journal` handles are not `Send`, so [`spawn`] opens the journal on a dedicated thread
//! that loops `next()`/`wait()` and hands [`JournalBatch`]es to the async side through a
//! bounded tokio channel (`blocking_send`: a slow consumer slows the reader down instead of
//! growing memory).
//!
//! # Cursor contract (exactly-once across restarts)
//!
//! The journal thread **never** writes the cursor file. Each batch carries the cursor of its
//! last entry; the consumer stores [`JournalBatch::cursor`] (with
//! [`super::cursor::CursorFile::store`]) only **after** it has fully processed the batch, and
//! passes the loaded cursor back as [`JournalConfig::cursor`] on the next start. Reading then
//! resumes at the entry after that cursor: an entry is neither processed twice nor skipped
//! (except a crash between processing and storing, which repeats at most that one batch).
//!
//! If the saved entry no longer exists (vacuumed, journal files removed), sd-journal lands on
//! the oldest entry after the saved position; the first batch then has `gap = true` and
//! [`JournalStats::gaps`] is incremented: entries in between may have been lost.
//!
//! Without a cursor (first start) reading starts at the tail: only entries written after
//! [`spawn`] returned are read (or from the head, with [`JournalConfig::start_at_head`]).

use std::ffi::{CStr, CString};
use std::os::unix::ffi::OsStrExt;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use systemd::journal::{Journal, OpenDirectoryOptions, OpenOptions};
use tokio::sync::mpsc::Sender;

use super::{LogEntry, SourceError};
use crate::time::{self, Micros};

/// At most this many entries per batch.
pub const BATCH_MAX: usize = 1024;

/// How long one `sd_journal_wait` blocks when caught up and idle; also the heartbeat period
/// and the worst-case reaction time to `stop`.
pub const WAIT: Duration = Duration::from_millis(500);

/// How long one wait blocks while entries keep coming. journald tells readers about new
/// entries through inotify only after a coalescing timer (300-500 ms measured here, even for
/// `journalctl -f`), but the entries are in its shared mapping at once: polling `next()` this
/// often during an attack cuts the log-to-ban latency from about half a second to a few ms.
pub const WAIT_BUSY: Duration = Duration::from_millis(5);

/// After the last entry, keep polling at [`WAIT_BUSY`] for this long before idling at
/// [`WAIT`]: attacks come in bursts, so the line that overflows a bucket usually arrives
/// while the poll is fast, and an idle host wakes only twice a second.
pub const BUSY_FOR: Duration = Duration::from_secs(10);

/// What to read and where to start.
#[derive(Debug, Clone, Default)]
pub struct JournalConfig {
    /// `(FIELD, value)` matches. Values of the same field are OR-ed, different fields AND-ed
    /// (e.g. `SYSLOG_IDENTIFIER=sshd`, `SYSLOG_IDENTIFIER=sshd-session`); a `("+", "")` pair
    /// ORs the terms before and after it (journalctl's `+`). Empty: every entry.
    pub matches: Vec<(String, String)>,
    /// Read the journal files of this directory instead of the local system journal.
    pub directory: Option<PathBuf>,
    /// Resume point loaded by the caller (see the module's cursor contract).
    pub cursor: Option<String>,
    /// Without a cursor: start at the oldest entry instead of the tail. For tests and
    /// backfills; the daemon's first start uses the tail.
    pub start_at_head: bool,
    /// With a cursor: first read again the entries of this long before it, as `warm`
    /// batches, so that the buckets a restart emptied are filled as they were (0: not).
    pub warm_window: Micros,
}

/// Entries read in one go, in journal order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JournalBatch {
    /// May be empty when every entry moved over was skipped (unreadable); the cursor still
    /// advances so that skipped entries are not read again.
    pub entries: Vec<LogEntry>,
    /// Cursor of the last entry moved over: store it after processing `entries`.
    pub cursor: String,
    /// The resume cursor was not found: entries between it and this batch may have been
    /// vacuumed.
    pub gap: bool,
    /// Entries at or before the resume cursor, read again to rebuild detection state: they
    /// were decided on before the restart and must decide nothing now; `cursor` is not to
    /// be stored.
    pub warm: bool,
}

/// Counters shared with the rest of the daemon (metrics, watchdog).
#[derive(Debug, Default)]
pub struct JournalStats {
    /// Entries converted and sent.
    pub entries: AtomicU64,
    /// Entries skipped because their MESSAGE could not be read (missing, corrupt).
    pub skipped: AtomicU64,
    /// Wall clock (µs) of the last loop iteration, idle waits included: a watchdog heartbeat.
    /// It stops moving while the thread is blocked on a full channel (a stalled consumer).
    pub last_progress: AtomicI64,
    /// `__REALTIME_TIMESTAMP` (µs) of the newest entry read.
    pub newest_entry: AtomicI64,
    /// True once everything available has been read; false while a backlog is drained.
    pub caught_up: AtomicBool,
    /// Times the resume cursor was not found (possible loss).
    pub gaps: AtomicU64,
    /// Entries written after the saved cursor when the thread started (what a resume has to
    /// catch up on; 0 on a first start), counted once, up to [`BACKLOG_COUNT_MAX`].
    pub backlog: AtomicU64,
}

/// Counting the backlog walks it once more before reading starts (about 0.5 s per 250k
/// entries here); past this many entries the count stops and the message says "more than".
pub const BACKLOG_COUNT_MAX: u64 = 250_000;

/// At most this many entries are read again to rebuild the buckets (a flood in the last
/// window must not delay the start by minutes; the newest part of the window counts most,
/// but reading is forward, so a cut-off warm-up starts late rather than ends early).
pub const WARM_MAX: u64 = 1_000_000;

impl JournalStats {
    pub fn new() -> Arc<Self> {
        Arc::new(Self::default())
    }
}

fn jerr(what: impl Into<String>) -> impl FnOnce(systemd::Error) -> SourceError {
    let what = what.into();
    move |source| SourceError::Journal { what, source }
}

/// Starts the journal thread. Returns once the journal is open, the matches are set and the
/// read position is established, so that with no cursor (tail) every entry written after this
/// returns will be read. Opening errors are returned here; later read errors end the thread
/// with an error (the channel closes; join the handle to see why).
///
/// The thread stops when `stop` is set (within [`WAIT`]) or the receiver is dropped. While it
/// is blocked handing a batch to a full channel it only notices the receiver being dropped:
/// keep receiving until the channel closes, or drop the receiver, after setting `stop`.
pub fn spawn(
    cfg: JournalConfig,
    tx: Sender<JournalBatch>,
    stop: Arc<AtomicBool>,
    stats: Arc<JournalStats>,
) -> Result<JoinHandle<Result<(), SourceError>>, SourceError> {
    let (ready_tx, ready_rx) = std::sync::mpsc::sync_channel::<Result<(), SourceError>>(1);
    let handle = std::thread::Builder::new()
        .name("crowdwall-journal".into())
        .spawn(move || {
            let mut reader = match Reader::open(&cfg, &stats) {
                Ok(r) => r,
                Err(e) => {
                    // The error goes to `spawn`'s caller; the thread itself ends quietly.
                    let _ = ready_tx.send(Err(e));
                    return Ok(());
                }
            };
            let _ = ready_tx.send(Ok(()));
            drop(ready_tx);
            if cfg.cursor.is_none() && !cfg.start_at_head {
                // Saved at once (an empty batch is committed like any): a restart before
                // the first entry resumes here instead of at a later tail.
                let first = JournalBatch {
                    entries: Vec::new(),
                    cursor: reader.first_position()?,
                    gap: false,
                    warm: false,
                };
                if tx.blocking_send(first).is_err() {
                    return Ok(());
                }
            }
            if let Some(cursor) = &cfg.cursor {
                if cfg.warm_window > 0 && !reader.warm_up(cursor, cfg.warm_window, &tx)? {
                    return Ok(()); // receiver gone
                }
                reader.announce_backlog(cursor)?;
            }
            reader.run(&tx, &stop)
        })
        .map_err(|e| SourceError::Thread(format!("cannot start: {e}")))?;
    match ready_rx.recv() {
        Ok(Ok(())) => Ok(handle),
        Ok(Err(e)) => {
            let _ = handle.join();
            Err(e)
        }
        // The thread ended without reporting: it panicked while opening.
        Err(_) => match handle.join() {
            Ok(Err(e)) => Err(e),
            _ => Err(SourceError::Thread(
                "ended while opening the journal".into(),
            )),
        },
    }
}

/// Where a resume lands (see [`Reader::seek_resume`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Resume {
    /// ON the saved entry, read already.
    Found,
    /// The saved entry is gone; ON the first entry after it, not read yet.
    GoneBefore,
    /// Gone, and nothing after it yet.
    GoneAtEnd,
    /// A [`SINCE`] position: ON the first entry at or after its time (not read yet), or
    /// at the end.
    Since { on_entry: bool },
}

/// A position that is a time, not an entry: what a first start saves when the journal has
/// no entry for the matches yet (sd-journal has no cursor without an entry), so that a
/// restart reads what was written meanwhile instead of starting at the tail again.
pub const SINCE: &str = "crowdwall-since=";

/// The position of a first start at `now` with no entry to point at.
pub fn since_cursor(now: Micros) -> String {
    format!("{SINCE}{now}")
}

/// When a saved position's entry was written: the `t=` (realtime, µs, hex) part of a
/// journal cursor, or the time of a [`SINCE`] position.
pub fn cursor_realtime(cursor: &str) -> Option<Micros> {
    if let Some(t) = cursor.strip_prefix(SINCE) {
        return t.parse().ok();
    }
    cursor
        .split(';')
        .find_map(|kv| kv.strip_prefix("t="))
        .and_then(|hex| i64::from_str_radix(hex, 16).ok())
}

struct Reader {
    j: Journal,
    stats: Arc<JournalStats>,
    /// The journal is positioned ON an entry that has not been read yet (the resume cursor
    /// was vacuumed and `next()` landed on the oldest remaining entry).
    pending_current: bool,
    gap: bool,
    /// When the last batch was read, to choose between [`WAIT_BUSY`] and [`WAIT`].
    last_entry_at: Option<std::time::Instant>,
    /// A first start found no entry for the matches (and reads from the head).
    tail_empty: bool,
}

impl Reader {
    fn open(cfg: &JournalConfig, stats: &Arc<JournalStats>) -> Result<Reader, SourceError> {
        let mut j = match &cfg.directory {
            Some(dir) => {
                let what = || format!("open directory {}", dir.display());
                let c_dir =
                    CString::new(dir.as_os_str().as_bytes()).map_err(|e| jerr(what())(e.into()))?;
                OpenDirectoryOptions::default()
                    .open_directory(c_dir.as_c_str())
                    .map_err(jerr(what()))?
            }
            None => OpenOptions::default()
                .system(true)
                .local_only(true)
                .open()
                .map_err(jerr("open the system journal"))?,
        };
        for (field, value) in &cfg.matches {
            // sd-journal ORs values of a field and ANDs fields on its own (within one
            // conjunction term); `+` (as in journalctl) starts another term, so each service
            // can have its own matches (`SYSLOG_IDENTIFIER=sshd + _TRANSPORT=kernel`).
            if field == "+" {
                j.match_or().map_err(jerr("match disjunction '+'"))?;
                continue;
            }
            j.match_add(field, value.as_bytes().to_vec())
                .map_err(jerr(format!("match {field}={value}")))?;
        }
        let mut r = Reader {
            j,
            stats: stats.clone(),
            pending_current: false,
            last_entry_at: None,
            gap: false,
            tail_empty: false,
        };
        r.position(cfg)?;
        stats.last_progress.store(time::now(), Ordering::Relaxed);
        Ok(r)
    }

    fn position(&mut self, cfg: &JournalConfig) -> Result<(), SourceError> {
        match &cfg.cursor {
            Some(cursor) => {
                let resume = self.seek_resume(cursor)?;
                if let Resume::Since { on_entry } = resume {
                    self.pending_current = on_entry;
                } else if resume != Resume::Found {
                    // Vacuumed (or the files removed): say from when, and count it.
                    self.pending_current = resume == Resume::GoneBefore;
                    self.mark_gap();
                    let at = cursor_realtime(cursor)
                        .map(|t| format!(" from {}", time::format_rfc3339(t)))
                        .unwrap_or_default();
                    log::warn!(
                        "journal: the saved cursor{at} is gone, likely vacuumed (journald's SystemMaxUse= or MaxRetentionSec=); resuming at the oldest entry after it: entries written in between are lost to crowdwall"
                    );
                }
            }
            None if cfg.start_at_head => {
                self.j.seek_head().map_err(jerr("seek to the head"))?;
            }
            None => {
                // seek_tail alone is not on an entry; previous() moves onto the last one, so
                // the following next() returns only newer entries.
                self.j.seek_tail().map_err(jerr("seek to the tail"))?;
                if self.j.previous().map_err(jerr("read the last entry"))? == 0 {
                    // No entry for the matches at all: after a previous() that found none,
                    // next() never returns the entries that come later, so start at the
                    // head, which is the same place (nothing is before it).
                    self.j.seek_head().map_err(jerr("seek to the head"))?;
                    self.tail_empty = true;
                }
            }
        }
        Ok(())
    }

    /// The position of a first start (at the tail), for the caller to save at once: the
    /// last entry's cursor, or the start time when there is none.
    fn first_position(&mut self) -> Result<String, SourceError> {
        if self.tail_empty {
            return Ok(since_cursor(time::now()));
        }
        self.j.cursor().map_err(jerr("cursor"))
    }

    /// Puts the journal where reading resumes. `Found`: ON the saved entry (read already).
    /// `GoneBefore`: the saved entry is gone and the journal is ON the first entry after it
    /// (not read yet), by sd-journal's placement but never at an entry older than the
    /// cursor's time. `GoneAtEnd`: gone, and nothing follows yet.
    fn seek_resume(&mut self, cursor: &str) -> Result<Resume, SourceError> {
        if cursor.starts_with(SINCE) {
            let t = cursor_realtime(cursor).unwrap_or(0).max(0);
            self.j
                .seek_realtime_usec(t as u64)
                .map_err(jerr("seek to the saved time"))?;
            let on_entry = self.j.next().map_err(jerr("read after seek"))? > 0;
            return Ok(Resume::Since { on_entry });
        }
        self.j
            .seek_cursor(cursor)
            .map_err(jerr("seek to the saved cursor"))?;
        // After seek_cursor, next() lands ON the saved entry if it still exists.
        if self.j.next().map_err(jerr("read after seek"))? == 0 {
            // Nothing at or after the saved position: the journal (for our matches) ends
            // before it, so the entry is gone; new entries follow from here.
            return Ok(Resume::GoneAtEnd);
        }
        if self.j.test_cursor(cursor).map_err(jerr("test cursor"))? {
            return Ok(Resume::Found);
        }
        // Gone. Where sd-journal lands then depends on which files remain (by sequence
        // number in the same file series, by time across them): never resume before the
        // cursor's time, which would count entries the previous run decided on.
        if let Some(t) = cursor_realtime(cursor) {
            let at = self
                .j
                .timestamp_usec()
                .map_err(jerr("realtime timestamp"))? as Micros;
            if at < t {
                self.j
                    .seek_realtime_usec(t as u64)
                    .map_err(jerr("seek to the cursor's time"))?;
                if self.j.next().map_err(jerr("read after seek"))? == 0 {
                    return Ok(Resume::GoneAtEnd);
                }
            }
        }
        Ok(Resume::GoneBefore)
    }

    /// Reads the entries of the `window` before the saved cursor again and sends them as
    /// warm batches: after a restart (a crash, an upgrade) the buckets hold what they held
    /// before, so an attack that straddles it is banned as if there had been none. The
    /// entries are those up to and including the saved one (or, if it is gone, those older
    /// than its time), so none is counted twice. Leaves the journal at the resume point.
    /// False when the receiver is gone.
    fn warm_up(
        &mut self,
        cursor: &str,
        window: Micros,
        tx: &Sender<JournalBatch>,
    ) -> Result<bool, SourceError> {
        let Some(t) = cursor_realtime(cursor) else {
            return Ok(true);
        };
        self.j
            .seek_realtime_usec((t - window).max(0) as u64)
            .map_err(jerr("seek to the warm-up start"))?;
        let no_entry = self.gap || cursor.starts_with(SINCE);
        let (mut n, mut entries) = (0u64, Vec::new());
        let mut alive = true;
        while n < WARM_MAX && self.j.next().map_err(jerr("warm-up next"))? > 0 {
            let at = self
                .j
                .timestamp_usec()
                .map_err(jerr("realtime timestamp"))? as Micros;
            let saved = !cursor.starts_with(SINCE)
                && self.j.test_cursor(cursor).map_err(jerr("test cursor"))?;
            // Past where the previous run stopped. With its entry there, reading stops ON
            // it (entries of one journald stream read share a timestamp, so the time alone
            // cannot tell); without it (vacuumed, or a time position), at its time.
            if !saved && (at > t || (no_entry && at >= t)) {
                break;
            }
            n += 1;
            if let Some(e) = self.entry()? {
                entries.push(e);
            }
            if entries.len() >= BATCH_MAX || saved {
                alive &= self.send_warm(&mut entries, cursor, tx);
            }
            if saved || !alive {
                break;
            }
        }
        alive &= self.send_warm(&mut entries, cursor, tx);
        if n > 0 {
            log::info!(
                "journal: read {n} entries of the {} before the saved cursor again to rebuild the buckets (they ban nothing by themselves)",
                time::format_duration(time::to_duration(window))
            );
        }
        // Back to the resume point `position` chose.
        let resume = self.seek_resume(cursor)?;
        self.pending_current = matches!(
            resume,
            Resume::GoneBefore | Resume::Since { on_entry: true }
        );
        Ok(alive)
    }

    fn send_warm(
        &mut self,
        entries: &mut Vec<LogEntry>,
        cursor: &str,
        tx: &Sender<JournalBatch>,
    ) -> bool {
        if entries.is_empty() {
            return true;
        }
        tx.blocking_send(JournalBatch {
            entries: std::mem::take(entries),
            cursor: cursor.to_string(),
            gap: false,
            warm: true,
        })
        .is_ok()
    }

    /// Counts the entries a resume has to read and says so: a first start after a long stop
    /// bans hundreds of addresses from history in its first second, which looks like a
    /// malfunction unless the log said it would. Then returns to the resume position.
    fn announce_backlog(&mut self, cursor: &str) -> Result<(), SourceError> {
        // The saved entry's time is about when the cursor was saved.
        let saved_at = cursor_realtime(cursor);
        let mut n: u64 = u64::from(self.pending_current);
        if self.gap && !self.pending_current {
            // Gone and nothing after it: the count is 0 and `position` said so.
            self.stats.backlog.store(0, Ordering::Relaxed);
            return Ok(());
        }
        while n < BACKLOG_COUNT_MAX && self.j.next().map_err(jerr("count the backlog"))? > 0 {
            n += 1;
        }
        // Back to where reading resumes, as `position` left it.
        self.seek_resume(cursor)?;
        self.stats.backlog.store(n, Ordering::Relaxed);
        if n == 0 {
            log::info!("journal: resuming from the saved cursor, nothing written since");
            return Ok(());
        }
        let count = if n >= BACKLOG_COUNT_MAX {
            format!("more than {n}")
        } else {
            n.to_string()
        };
        let since = match saved_at {
            Some(at) if at > 0 => format!(
                " saved at {} ({} ago)",
                time::format_rfc3339(at),
                time::format_duration(time::to_duration((time::now() - at).max(0)))
            ),
            _ => String::new(),
        };
        log::warn!(
            "journal: catching up {count} entries from the cursor{since}: their attacks are banned as they are read; `crowdwall status` shows the progress"
        );
        Ok(())
    }

    fn mark_gap(&mut self) {
        self.gap = true;
        self.stats.gaps.fetch_add(1, Ordering::Relaxed);
    }

    fn run(&mut self, tx: &Sender<JournalBatch>, stop: &AtomicBool) -> Result<(), SourceError> {
        loop {
            self.stats
                .last_progress
                .store(time::now(), Ordering::Relaxed);
            if stop.load(Ordering::Relaxed) || tx.is_closed() {
                return Ok(());
            }
            let (batch, more) = self.read_batch()?;
            if let Some(batch) = batch {
                self.last_entry_at = Some(std::time::Instant::now());
                if tx.blocking_send(batch).is_err() {
                    return Ok(()); // receiver gone: nobody to read for
                }
            }
            if !more {
                self.stats.caught_up.store(true, Ordering::Relaxed);
                // APPEND, INVALIDATE (rotation, vacuum) and timeouts all mean "try next()
                // again"; sd-journal follows rotated files by itself.
                let busy = self.last_entry_at.is_some_and(|t| t.elapsed() < BUSY_FOR);
                let wait = if busy { WAIT_BUSY } else { WAIT };
                self.j.wait(Some(wait)).map_err(jerr("wait"))?;
            } else {
                self.stats.caught_up.store(false, Ordering::Relaxed);
            }
        }
    }

    /// Reads up to [`BATCH_MAX`] entries. Returns the batch (None if no entry was moved over)
    /// and whether more entries may be waiting (the batch is full).
    fn read_batch(&mut self) -> Result<(Option<JournalBatch>, bool), SourceError> {
        let mut entries = Vec::new();
        let mut moved = 0usize;
        let mut full = false;
        loop {
            if self.pending_current {
                self.pending_current = false;
            } else if self.j.next().map_err(jerr("next"))? == 0 {
                break;
            }
            moved += 1;
            if let Some(e) = self.entry()? {
                entries.push(e);
            }
            if moved >= BATCH_MAX {
                full = true;
                break;
            }
        }
        if moved == 0 {
            return Ok((None, false));
        }
        // After next() returned 0 the journal stays on the last entry it was on, so this is
        // the cursor of the last entry moved over either way.
        let cursor = self.j.cursor().map_err(jerr("cursor"))?;
        self.stats
            .entries
            .fetch_add(entries.len() as u64, Ordering::Relaxed);
        let gap = std::mem::take(&mut self.gap);
        Ok((
            Some(JournalBatch {
                entries,
                cursor,
                gap,
                warm: false,
            }),
            full,
        ))
    }

    /// Converts the current entry. `None`: MESSAGE missing or unreadable (counted, skipped).
    fn entry(&mut self) -> Result<Option<LogEntry>, SourceError> {
        let time = self
            .j
            .timestamp_usec()
            .map_err(jerr("realtime timestamp"))?;
        let time = Micros::try_from(time).unwrap_or(Micros::MAX);
        self.stats.newest_entry.fetch_max(time, Ordering::Relaxed);

        let message = match self.j.get_data(c"MESSAGE") {
            Ok(Some(f)) => match f.value() {
                Some(v) => String::from_utf8_lossy(v).into_owned(),
                None => String::new(),
            },
            // Missing, or an error reading this entry's data (corrupt object, too large):
            // skip it rather than stall the source on it.
            Ok(None) | Err(_) => {
                self.stats.skipped.fetch_add(1, Ordering::Relaxed);
                return Ok(None);
            }
        };
        let identifier = self.identifier();
        let pid = self
            .field_u32(c"_PID")
            .or_else(|| self.field_u32(c"SYSLOG_PID"));
        Ok(Some(LogEntry {
            time,
            identifier,
            pid,
            message,
        }))
    }

    /// SYSLOG_IDENTIFIER, else _COMM, else empty.
    fn identifier(&mut self) -> String {
        for field in [c"SYSLOG_IDENTIFIER", c"_COMM"] {
            if let Ok(Some(f)) = self.j.get_data(field) {
                if let Some(v) = f.value() {
                    return String::from_utf8_lossy(v).into_owned();
                }
            }
        }
        String::new()
    }

    fn field_u32(&mut self, field: &CStr) -> Option<u32> {
        match self.j.get_data(field) {
            Ok(Some(f)) => f
                .value()
                .and_then(|v| std::str::from_utf8(v).ok())
                .and_then(|s| s.parse().ok()),
            _ => None,
        }
    }
}
