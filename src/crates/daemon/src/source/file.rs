//! Log files, followed with inotify through rotation, on a thread of their own.
//!
//! Each `[[files]]` entry names paths; the last component may be a glob (`*`, `?`), so a
//! directory is watched for files appearing under matching names. The thread waits on one
//! inotify descriptor (directory events: create, move, modify, delete) with a timeout and then
//! re-checks every file it follows, so a missed or overflowed event costs at most
//! [`POLL`] of delay, never a line.
//!
//! # Rotation
//!
//! - **rename** (logrotate's default, `create`): the path now names another inode. The old
//!   descriptor is read to its end first (the writer may still have appended to it), then the
//!   new file is read from offset 0.
//! - **copytruncate**: same inode, but the file is shorter than the read position or the byte
//!   before it is no longer the newline that ended the last line read: reading restarts at 0.
//!   Checking that byte, not only the size,
//!   catches a file truncated and refilled past the old position between two looks. (Lines
//!   written between logrotate's copy and its truncate are lost for every reader: that is
//!   copytruncate's own gap.)
//!
//! # Positions (same contract as the journal cursor)
//!
//! The thread never writes the position file. Each [`super::Batch`] carries a snapshot of the
//! positions after its lines, and a commit that stores it; the daemon runs the commit only
//! after the batch's decisions are stored and in the kernel. Positions are keyed by device,
//! inode and path; on start a file whose saved inode now lives under another name in the same
//! directory (rotated while the daemon was down) is finished from the saved offset first.
//! A file seen for the first time is read from its end (as the journal from its tail); a file
//! that appears while running is read from its start.
//!
//! # Bad input
//!
//! A line longer than [`MAX_LINE`] is skipped without being held in memory; a line that is not
//! UTF-8 or (for syslog-format files) has no parsable header is skipped; all three are counted
//! per source. None of them stops the file.

use std::collections::HashSet;
use std::ffi::CString;
use std::fs::File;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{FileExt, MetadataExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use tokio::sync::mpsc::Sender;

use super::{Batch, LogEntry, SourceError};
use crate::time::{self, Micros, SECOND};
use crowdwall_base::fsutil::write_atomic;
use crowdwall_engine::text::{parse_syslog_line, year_of, SyslogContext};

/// Longest line accepted; longer ones are counted and skipped.
pub const MAX_LINE: usize = crowdwall_engine::text::MAX_LINE;
/// At most this many entries per batch.
pub const BATCH_MAX: usize = 1024;
/// Longest wait between two looks at the files (inotify wakes the thread earlier).
pub const POLL: Duration = Duration::from_millis(500);
/// Read size.
const CHUNK: usize = 64 * 1024;

/// `[[files]]`: the log files to follow (none by default).
#[derive(Debug, Clone, PartialEq, Eq, Default, Deserialize)]
#[serde(transparent)]
pub struct FilesSection(pub Vec<FileSpec>);

impl crowdwall_base::Section for FilesSection {
    const NAME: &'static str = "files";
    fn check(&self) -> Result<(), crowdwall_base::SectionError> {
        for (i, f) in self.0.iter().enumerate() {
            f.validate()
                .map_err(|m| crowdwall_base::SectionError::new(format!("[{i}]"), m))?;
        }
        Ok(())
    }
}

/// One `[[files]]` table.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileSpec {
    /// Absolute paths; the file name (last component) may contain `*` and `?`.
    pub paths: Vec<PathBuf>,
    /// Lines are handed whole to this parser (the entry's identifier), timed when read. Without
    /// it lines are syslog lines (RFC 3339 or RFC 3164 header) dispatched by their tag.
    #[serde(default)]
    pub parser: Option<String>,
}

impl FileSpec {
    /// Checks the paths and parser name; the message names the offending value.
    fn validate(&self) -> Result<(), String> {
        if self.paths.is_empty() {
            return Err("paths must list at least one file".into());
        }
        for p in &self.paths {
            let (dir, name) = split_glob(p)?;
            if glob_chars(dir.as_os_str().as_bytes()) {
                return Err(format!(
                    "{}: only the file name may contain * or ?, not the directory",
                    p.display()
                ));
            }
            if name.is_empty() {
                return Err(format!("{}: no file name", p.display()));
            }
        }
        if let Some(parser) = &self.parser {
            if parser.is_empty()
                || !parser
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"-_/.".contains(&b))
            {
                return Err(format!(
                    "parser '{parser}' must be letters, digits, '-', '_', '/' or '.'"
                ));
            }
        }
        Ok(())
    }
}

fn glob_chars(b: &[u8]) -> bool {
    b.iter().any(|c| *c == b'*' || *c == b'?')
}

/// `/var/log/nginx/*.log` -> (`/var/log/nginx`, `*.log`).
fn split_glob(p: &Path) -> Result<(PathBuf, Vec<u8>), String> {
    if !p.is_absolute() {
        return Err(format!("{}: must be an absolute path", p.display()));
    }
    let name = p
        .file_name()
        .ok_or_else(|| format!("{}: no file name", p.display()))?;
    let dir = p
        .parent()
        .ok_or_else(|| format!("{}: no directory", p.display()))?;
    Ok((dir.to_path_buf(), name.as_bytes().to_vec()))
}

/// Shell-style match of one file name: `*` any run, `?` one byte. Iterative with one
/// backtrack point, so linear in practice and never exponential.
pub fn glob_match(pat: &[u8], name: &[u8]) -> bool {
    let (mut p, mut n) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while n < name.len() {
        if p < pat.len() && (pat[p] == b'?' || pat[p] == name[n]) {
            p += 1;
            n += 1;
        } else if p < pat.len() && pat[p] == b'*' {
            star = Some((p, n));
            p += 1;
        } else if let Some((sp, sn)) = star {
            p = sp + 1;
            n = sn + 1;
            star = Some((sp, sn + 1));
        } else {
            return false;
        }
    }
    pat[p..].iter().all(|c| *c == b'*')
}

/// Counters shared with the daemon (status, watchdog).
#[derive(Debug, Default)]
pub struct FileStats {
    pub lines: AtomicU64,
    pub entries: AtomicU64,
    pub too_long: AtomicU64,
    pub invalid_utf8: AtomicU64,
    pub malformed: AtomicU64,
    pub rotations: AtomicU64,
    pub truncations: AtomicU64,
    pub files: AtomicU64,
    pub last_progress: AtomicI64,
}

impl FileStats {
    pub fn json(&self) -> serde_json::Value {
        let g = |a: &AtomicU64| a.load(Ordering::Relaxed);
        serde_json::json!({
            "name": "files",
            "files_followed": g(&self.files),
            "lines": g(&self.lines),
            "entries_read": g(&self.entries),
            "skipped_too_long": g(&self.too_long),
            "skipped_invalid_utf8": g(&self.invalid_utf8),
            "skipped_malformed": g(&self.malformed),
            "rotations": g(&self.rotations),
            "truncations": g(&self.truncations),
        })
    }
}

/// Where reading of one file stands.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Position {
    pub path: PathBuf,
    pub dev: u64,
    pub ino: u64,
    pub offset: u64,
}

#[derive(Debug, Default, Serialize, Deserialize)]
struct PositionDoc {
    files: Vec<Position>,
}

/// The position file in the state directory (JSON, replaced atomically).
#[derive(Debug, Clone)]
pub struct PositionFile {
    path: PathBuf,
}

impl PositionFile {
    pub fn new(path: impl Into<PathBuf>) -> Self {
        PositionFile { path: path.into() }
    }

    /// Saved positions; none when the file does not exist. A corrupt file is an error naming
    /// it (the operator decides; starting over would re-read or skip lines).
    pub fn load(&self) -> Result<Vec<Position>, SourceError> {
        let bytes = match std::fs::read(&self.path) {
            Ok(b) => b,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(source) => {
                return Err(SourceError::CursorIo {
                    path: self.path.clone(),
                    source,
                })
            }
        };
        let doc: PositionDoc =
            serde_json::from_slice(&bytes).map_err(|e| SourceError::CursorInvalid {
                path: self.path.clone(),
                reason: format!("not a position file: {e}"),
            })?;
        Ok(doc.files)
    }

    pub fn store(&self, files: &[Position]) -> Result<(), SourceError> {
        let doc = PositionDoc {
            files: files.to_vec(),
        };
        let mut text = serde_json::to_vec(&doc).map_err(|e| SourceError::CursorInvalid {
            path: self.path.clone(),
            reason: e.to_string(),
        })?;
        text.push(b'\n');
        Ok(write_atomic(&self.path, &text)?)
    }
}

/// One file being followed.
struct Followed {
    path: PathBuf,
    file: File,
    dev: u64,
    ino: u64,
    /// Offset just after the last complete line handed out (or skipped).
    offset: u64,
    /// Bytes after `offset` read so far without a newline.
    partial: Vec<u8>,
    /// Inside a line longer than MAX_LINE: discard up to the next newline.
    skipping: bool,
    /// `offset` was set just after a newline this follower read (not a tail or resume
    /// position, not the middle of a skipped line): the byte before it must be that newline.
    after_newline: bool,
    spec: usize,
}

struct Follower {
    lines: Lines,
    followed: Vec<Followed>,
    inotify: Option<Inotify>,
    /// Old inodes of renamed files, read until they stop growing (the writer may still hold
    /// them until it reopens its log).
    finishing: Vec<(Followed, Micros)>,
}

/// Turns raw lines into entries; counts what it skips.
struct Lines {
    specs: Vec<FileSpec>,
    stats: Arc<FileStats>,
    ctx: SyslogContext,
}

/// A renamed file is dropped once it has not grown for this long.
const FINISH_IDLE: Micros = 5 * SECOND;

/// Starts the file thread. Files present now and never seen before are read from their end;
/// saved positions are resumed. Returns once the initial positions are set, so a line
/// appended after this returns is read.
pub fn spawn(
    specs: Vec<FileSpec>,
    positions: PositionFile,
    tx: Sender<Batch>,
    stop: Arc<AtomicBool>,
    stats: Arc<FileStats>,
) -> Result<JoinHandle<()>, SourceError> {
    let saved = positions.load()?;
    let mut f = Follower::new(specs, stats, SyslogContext::with_year(year_of(time::now())));
    f.inotify = Inotify::new().ok();
    f.watch_dirs();
    f.initial(&saved);
    let positions = Arc::new(positions);
    std::thread::Builder::new()
        .name("crowdwall-files".into())
        .spawn(move || f.run(positions, tx, stop))
        .map_err(|e| SourceError::Thread(e.to_string()))
}

fn stat_path(p: &Path) -> Option<(u64, u64, u64)> {
    let m = std::fs::metadata(p).ok()?;
    m.is_file().then(|| (m.dev(), m.ino(), m.len()))
}

fn open(path: &Path, spec: usize, offset: u64) -> Option<Followed> {
    let file = File::open(path).ok()?;
    let m = file.metadata().ok()?;
    if !m.is_file() {
        return None;
    }
    Some(Followed {
        path: path.to_path_buf(),
        dev: m.dev(),
        ino: m.ino(),
        offset: offset.min(m.len()),
        partial: Vec::new(),
        skipping: false,
        after_newline: false,
        file,
        spec,
    })
}

/// Where the daemon sends entries, and how a batch's commit stores positions.
struct Out<'a> {
    entries: Vec<LogEntry>,
    positions: &'a Arc<PositionFile>,
    tx: &'a Sender<Batch>,
}

impl Follower {
    fn new(specs: Vec<FileSpec>, stats: Arc<FileStats>, ctx: SyslogContext) -> Follower {
        Follower {
            lines: Lines { specs, stats, ctx },
            followed: Vec::new(),
            inotify: None,
            finishing: Vec::new(),
        }
    }

    fn dirs(&self) -> Vec<(PathBuf, Vec<u8>, usize)> {
        let mut out = Vec::new();
        for (i, s) in self.lines.specs.iter().enumerate() {
            for p in &s.paths {
                if let Ok((d, n)) = split_glob(p) {
                    out.push((d, n, i));
                }
            }
        }
        out
    }

    fn watch_dirs(&mut self) {
        let dirs: HashSet<PathBuf> = self.dirs().into_iter().map(|(d, _, _)| d).collect();
        if let Some(ino) = &self.inotify {
            for d in dirs {
                if let Err(e) = ino.watch(&d) {
                    // The periodic look still follows the files, only later.
                    log::warn!(
                        "files: cannot watch {} ({e}); polling it every {POLL:?}",
                        d.display()
                    );
                }
            }
        }
    }

    /// Paths currently matching, with their spec.
    fn matching(&self) -> Vec<(PathBuf, usize)> {
        let mut out = Vec::new();
        let mut seen = HashSet::new();
        for (dir, pat, spec) in self.dirs() {
            if !glob_chars(&pat) {
                let p = dir.join(std::ffi::OsStr::from_bytes(&pat));
                if seen.insert(p.clone()) {
                    out.push((p, spec));
                }
                continue;
            }
            let Ok(rd) = std::fs::read_dir(&dir) else {
                continue;
            };
            let mut names: Vec<_> = rd
                .filter_map(|e| e.ok())
                .map(|e| e.file_name())
                .filter(|n| glob_match(&pat, n.as_bytes()))
                .collect();
            names.sort();
            for n in names {
                let p = dir.join(n);
                if seen.insert(p.clone()) {
                    out.push((p, spec));
                }
            }
        }
        out
    }

    fn initial(&mut self, saved: &[Position]) {
        let now = time::now();
        let mut resumed: HashSet<(u64, u64)> = HashSet::new();
        for (path, spec) in self.matching() {
            let Some((dev, ino, len)) = stat_path(&path) else {
                continue;
            };
            let by_inode = saved.iter().find(|p| p.dev == dev && p.ino == ino);
            let by_path = saved.iter().any(|p| p.path == path);
            let offset = match by_inode {
                // Same file as before: resume (from 0 if it was truncated meanwhile).
                Some(p) => {
                    resumed.insert((dev, ino));
                    if p.offset > len {
                        0
                    } else {
                        p.offset
                    }
                }
                // The path was rotated while we were down: its new file is read whole.
                None if by_path => 0,
                // Never seen: from the end, as the journal from its tail.
                None => len,
            };
            if let Some(f) = open(&path, spec, offset) {
                self.followed.push(f);
            }
        }
        // Saved inodes that no followed path names any more: rotated while we were down.
        // Finish them under their new name if they are still in the directory.
        for p in saved {
            if resumed.contains(&(p.dev, p.ino)) {
                continue;
            }
            let spec = self
                .matching()
                .iter()
                .find(|(m, _)| m == &p.path)
                .map(|(_, s)| *s);
            let (Some(spec), Some(rotated)) = (spec, find_inode(&p.path, p.dev, p.ino)) else {
                continue;
            };
            if let Some(mut f) = open(&rotated, spec, p.offset) {
                log::info!(
                    "files: {} was rotated to {} while stopped; finishing it",
                    p.path.display(),
                    rotated.display()
                );
                // Keep the original path: that is how the position is found again.
                f.path = p.path.clone();
                self.finishing.push((f, now));
            }
        }
        self.lines
            .stats
            .files
            .store(self.followed.len() as u64, Ordering::Relaxed);
    }

    fn run(mut self, positions: Arc<PositionFile>, tx: Sender<Batch>, stop: Arc<AtomicBool>) {
        loop {
            if stop.load(Ordering::Relaxed) || tx.is_closed() {
                return;
            }
            self.lines
                .stats
                .last_progress
                .store(time::now(), Ordering::Relaxed);
            let mut out = Out {
                entries: Vec::new(),
                positions: &positions,
                tx: &tx,
            };
            if !self.look(&mut out) {
                return;
            }
            match &self.inotify {
                Some(i) => i.wait(POLL),
                None => std::thread::sleep(POLL),
            }
        }
    }

    fn snapshot(&self) -> Vec<Position> {
        self.finishing
            .iter()
            .map(|(f, _)| f)
            .chain(self.followed.iter())
            .map(|f| Position {
                path: f.path.clone(),
                dev: f.dev,
                ino: f.ino,
                offset: f.offset,
            })
            .collect()
    }

    /// Hands the entries read so far, with the positions after them, to the daemon. False
    /// when the daemon is gone.
    fn send(&self, out: &mut Out<'_>) -> bool {
        if out.entries.is_empty() {
            return true;
        }
        let snapshot = self.snapshot();
        let pf = out.positions.clone();
        let batch = Batch {
            source: "files",
            gap: false,
            entries: std::mem::take(&mut out.entries),
            commit: Some(Box::new(move || pf.store(&snapshot))),
        };
        out.tx.blocking_send(batch).is_ok()
    }

    /// Reads the file at `idx` (in `finishing` when `fin`) to its end, sending full batches
    /// on the way.
    fn drain(&mut self, fin: bool, idx: usize, last: bool, out: &mut Out<'_>) -> bool {
        loop {
            let f = if fin {
                &mut self.finishing[idx].0
            } else {
                &mut self.followed[idx]
            };
            let more = self.lines.read_new(f, &mut out.entries, last);
            if !more {
                return true;
            }
            if !self.send(out) {
                return false;
            }
        }
    }

    /// One look at every file: rotation, truncation, new lines. False when the daemon is
    /// gone.
    fn look(&mut self, out: &mut Out<'_>) -> bool {
        let now = time::now();
        // Renamed files first: their lines are older than the new file's.
        let mut i = 0;
        while i < self.finishing.len() {
            let before = self.finishing[i].0.offset + self.finishing[i].0.partial.len() as u64;
            if !self.drain(true, i, false, out) {
                return false;
            }
            let (f, idle_since) = &mut self.finishing[i];
            if f.offset + f.partial.len() as u64 != before {
                *idle_since = now;
                i += 1;
            } else if now - *idle_since >= FINISH_IDLE {
                // Done: a last line without a newline counts now.
                if !self.drain(true, i, true, out) {
                    return false;
                }
                self.finishing.remove(i);
            } else {
                i += 1;
            }
        }
        let mut i = 0;
        while i < self.followed.len() {
            let f = &mut self.followed[i];
            match stat_path(&f.path) {
                Some((dev, ino, _)) if dev == f.dev && ino == f.ino => {
                    if truncated(f) {
                        self.lines.stats.truncations.fetch_add(1, Ordering::Relaxed);
                        log::info!(
                            "files: {} was truncated (copytruncate?): reading it from the start",
                            f.path.display()
                        );
                        f.offset = 0;
                        f.partial.clear();
                        f.skipping = false;
                        f.after_newline = false;
                    }
                    if !self.drain(false, i, false, out) {
                        return false;
                    }
                    i += 1;
                }
                _ => {
                    // Renamed or deleted: read what the writer added to the old inode, keep
                    // reading it while it grows, and follow whatever the path names now (from
                    // its start, picked up below as a new file).
                    self.lines.stats.rotations.fetch_add(1, Ordering::Relaxed);
                    if !self.drain(false, i, false, out) {
                        return false;
                    }
                    let f = self.followed.remove(i);
                    self.finishing.push((f, now));
                }
            }
        }
        // Files that appeared (a new name matching a glob, or re-created after a rename).
        let known: HashSet<PathBuf> = self.followed.iter().map(|f| f.path.clone()).collect();
        for (path, spec) in self.matching() {
            if known.contains(&path) {
                continue;
            }
            if let Some(n) = open(&path, spec, 0) {
                self.followed.push(n);
                let i = self.followed.len() - 1;
                if !self.drain(false, i, false, out) {
                    return false;
                }
            }
        }
        self.lines
            .stats
            .files
            .store(self.followed.len() as u64, Ordering::Relaxed);
        self.send(out)
    }
}

/// Whether the file no longer holds what we read: shorter than our offset, or the byte before
/// the offset (the newline that ended the last line read) is gone (truncated and refilled past
/// our offset between two looks).
fn truncated(f: &Followed) -> bool {
    let Ok(m) = f.file.metadata() else {
        return false;
    };
    let end = f.offset + f.partial.len() as u64;
    if m.len() < end {
        return true;
    }
    if f.offset == 0 || f.skipping || !f.after_newline {
        return false;
    }
    let mut b = [0u8; 1];
    match f.file.read_at(&mut b, f.offset - 1) {
        Ok(1) => b[0] != b'\n',
        _ => false,
    }
}

impl Lines {
    /// Reads from where `f` stands towards the end of the file. Returns true when it stopped
    /// because `entries` is full (call again after sending them). `last`: the file will not
    /// grow any more: a final line without a newline is taken as complete.
    fn read_new(&mut self, f: &mut Followed, entries: &mut Vec<LogEntry>, last: bool) -> bool {
        let mut buf = vec![0u8; CHUNK];
        loop {
            if entries.len() >= BATCH_MAX {
                return true;
            }
            let at = f.offset + f.partial.len() as u64;
            let n = match f.file.read_at(&mut buf, at) {
                Ok(0) => break,
                Ok(n) => n,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(e) => {
                    log::warn!("files: reading {}: {e}", f.path.display());
                    break;
                }
            };
            let mut used = 0;
            while let Some(i) = buf[used..n].iter().position(|b| *b == b'\n') {
                let piece = &buf[used..used + i];
                let line_len = f.partial.len() + piece.len();
                if f.skipping || line_len > MAX_LINE {
                    self.stats.lines.fetch_add(1, Ordering::Relaxed);
                    self.stats.too_long.fetch_add(1, Ordering::Relaxed);
                    f.skipping = false;
                    f.partial.clear();
                } else {
                    f.partial.extend_from_slice(piece);
                    let line = std::mem::take(&mut f.partial);
                    self.line(&line, f.spec, entries);
                }
                used += i + 1;
                f.offset = at + used as u64;
                f.after_newline = true;
                if entries.len() >= BATCH_MAX {
                    // The rest of this read is read again next time, from f.offset.
                    return true;
                }
            }
            let rest = &buf[used..n];
            if !rest.is_empty() {
                if f.skipping || f.partial.len() + rest.len() > MAX_LINE {
                    // Too long already: drop what we have and skip to the next newline; the
                    // offset moves past the dropped bytes.
                    f.skipping = true;
                    f.after_newline = false;
                    f.offset += (f.partial.len() + rest.len()) as u64;
                    f.partial.clear();
                } else {
                    f.partial.extend_from_slice(rest);
                }
            }
        }
        if last && (!f.partial.is_empty() || f.skipping) {
            let line = std::mem::take(&mut f.partial);
            if f.skipping {
                self.stats.lines.fetch_add(1, Ordering::Relaxed);
                self.stats.too_long.fetch_add(1, Ordering::Relaxed);
            } else {
                self.line(&line, f.spec, entries);
            }
            f.offset += line.len() as u64;
            f.skipping = false;
            f.after_newline = false;
        }
        false
    }

    /// One complete line (without its newline).
    fn line(&mut self, raw: &[u8], spec: usize, entries: &mut Vec<LogEntry>) {
        self.stats.lines.fetch_add(1, Ordering::Relaxed);
        let raw = raw.strip_suffix(b"\r").unwrap_or(raw);
        if raw.is_empty() {
            return;
        }
        let Ok(text) = std::str::from_utf8(raw) else {
            self.stats.invalid_utf8.fetch_add(1, Ordering::Relaxed);
            return;
        };
        let entry = match &self.specs[spec].parser {
            Some(p) => LogEntry {
                time: time::now(),
                identifier: p.clone(),
                pid: None,
                message: text.to_string(),
            },
            None => match parse_syslog_line(text, &mut self.ctx) {
                Ok(mut e) => {
                    if is_rfc3164(text) {
                        // RFC 3164 carries local time without a zone: this host's zone.
                        e.time -= local_offset_secs() * SECOND;
                    }
                    e
                }
                Err(_) => {
                    self.stats.malformed.fetch_add(1, Ordering::Relaxed);
                    return;
                }
            },
        };
        self.stats.entries.fetch_add(1, Ordering::Relaxed);
        entries.push(entry);
    }
}

/// Another name of inode (dev, ino) in `path`'s directory (`auth.log.1` after a rename).
fn find_inode(path: &Path, dev: u64, ino: u64) -> Option<PathBuf> {
    let dir = path.parent()?;
    std::fs::read_dir(dir)
        .ok()?
        .filter_map(|e| e.ok())
        .map(|e| e.path())
        .find(|p| {
            p != path
                && std::fs::metadata(p)
                    .map(|m| m.is_file() && m.dev() == dev && m.ino() == ino)
                    .unwrap_or(false)
        })
}

/// Whether a syslog line has a RFC 3164 header (month name, no year, no zone).
pub fn is_rfc3164(line: &str) -> bool {
    let l = match line.strip_prefix('<') {
        Some(r) => r.split_once('>').map(|(_, r)| r).unwrap_or(line),
        None => line,
    };
    l.as_bytes()
        .first()
        .is_some_and(|b| b.is_ascii_alphabetic())
}

/// This host's offset from UTC now, in seconds (east positive), from the C library's zone.
pub fn local_offset_secs() -> i64 {
    let now = (time::now() / SECOND) as libc::time_t;
    // SAFETY: localtime_r writes into the tm we own; a zeroed tm is a valid out-parameter.
    unsafe {
        let mut tm: libc::tm = std::mem::zeroed();
        if libc::localtime_r(&now, &mut tm).is_null() {
            return 0;
        }
        tm.tm_gmtoff
    }
}

/// A minimal inotify handle on directories (libc; no extra crate for four calls).
struct Inotify {
    fd: std::os::fd::OwnedFd,
}

impl Inotify {
    fn new() -> std::io::Result<Self> {
        use std::os::fd::FromRawFd;
        // SAFETY: plain syscall; the returned descriptor is owned here.
        let fd = unsafe { libc::inotify_init1(libc::IN_NONBLOCK | libc::IN_CLOEXEC) };
        if fd < 0 {
            return Err(std::io::Error::last_os_error());
        }
        // SAFETY: fd is a fresh descriptor nobody else owns.
        Ok(Inotify {
            fd: unsafe { std::os::fd::OwnedFd::from_raw_fd(fd) },
        })
    }

    fn watch(&self, dir: &Path) -> std::io::Result<()> {
        use std::os::fd::AsRawFd;
        let c = CString::new(dir.as_os_str().as_bytes())
            .map_err(|_| std::io::Error::from(std::io::ErrorKind::InvalidInput))?;
        let mask = libc::IN_MODIFY
            | libc::IN_CREATE
            | libc::IN_MOVED_FROM
            | libc::IN_MOVED_TO
            | libc::IN_DELETE
            | libc::IN_CLOSE_WRITE
            | libc::IN_ATTRIB;
        // SAFETY: c is a valid NUL-terminated path; the fd is ours.
        let wd = unsafe { libc::inotify_add_watch(self.fd.as_raw_fd(), c.as_ptr(), mask) };
        if wd < 0 {
            return Err(std::io::Error::last_os_error());
        }
        Ok(())
    }

    /// Waits until something happens in a watched directory or `limit` passes, then drains
    /// the queue (the events themselves are not needed: every file is looked at).
    fn wait(&self, limit: Duration) {
        use std::os::fd::AsRawFd;
        let mut pfd = libc::pollfd {
            fd: self.fd.as_raw_fd(),
            events: libc::POLLIN,
            revents: 0,
        };
        // SAFETY: one valid pollfd.
        let _ = unsafe { libc::poll(&mut pfd, 1, limit.as_millis() as libc::c_int) };
        let mut buf = [0u8; 4096];
        loop {
            // SAFETY: buf is valid for its length; the fd is non-blocking.
            let n = unsafe {
                libc::read(
                    self.fd.as_raw_fd(),
                    buf.as_mut_ptr() as *mut libc::c_void,
                    buf.len(),
                )
            };
            if n <= 0 {
                break;
            }
        }
        // Writers append in bursts: a short pause lets one look take a whole burst.
        std::thread::sleep(Duration::from_millis(2));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    #[test]
    fn globs() {
        assert!(glob_match(b"*.log", b"access.log"));
        assert!(glob_match(b"access.log*", b"access.log.1"));
        assert!(!glob_match(b"*.log", b"access.log.1"));
        assert!(glob_match(b"a?c", b"abc"));
        assert!(glob_match(b"*", b""));
        assert!(!glob_match(b"a", b"ab"));
        assert!(glob_match(b"*a*b*c", b"xxaxxbxxc"));
        // no exponential blow-up on hostile names
        let name = vec![b'a'; 10_000];
        assert!(!glob_match(b"*a*a*a*a*a*a*b", &name));
    }

    #[test]
    fn spec_validation_names_the_path() {
        let s = |p: &str| FileSpec {
            paths: vec![p.into()],
            parser: None,
        };
        assert!(s("/var/log/*.log").validate().is_ok());
        assert!(s("var/log/x").validate().unwrap_err().contains("absolute"));
        assert!(s("/var/*/x.log").validate().unwrap_err().contains("/var/*"));
        let mut bad = s("/x");
        bad.parser = Some("a b".into());
        assert!(bad.validate().is_err());
    }

    #[test]
    fn positions_round_trip_and_corrupt_file_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        let pf = PositionFile::new(dir.path().join("files.positions"));
        assert!(pf.load().unwrap().is_empty());
        let p = vec![Position {
            path: "/var/log/a b.log".into(),
            dev: 1,
            ino: 2,
            offset: 3,
        }];
        pf.store(&p).unwrap();
        assert_eq!(pf.load().unwrap(), p);
        std::fs::write(dir.path().join("files.positions"), "garbage").unwrap();
        assert!(pf
            .load()
            .unwrap_err()
            .to_string()
            .contains("files.positions"));
    }

    fn follower(dir: &Path, parser: Option<&str>) -> Follower {
        Follower::new(
            vec![FileSpec {
                paths: vec![dir.join("*.log")],
                parser: parser.map(String::from),
            }],
            Arc::new(FileStats::default()),
            SyslogContext::with_year(2026),
        )
    }

    fn look(f: &mut Follower) -> Vec<LogEntry> {
        let (tx, mut rx) = tokio::sync::mpsc::channel(1024);
        let pf = Arc::new(PositionFile::new("/nonexistent/p"));
        let mut out = Out {
            entries: Vec::new(),
            positions: &pf,
            tx: &tx,
        };
        assert!(f.look(&mut out));
        drop(tx);
        let mut got = Vec::new();
        while let Ok(b) = rx.try_recv() {
            got.extend(b.entries);
        }
        got
    }

    #[test]
    fn bad_lines_are_counted_and_skipped_and_partial_lines_wait() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("app.log");
        std::fs::write(&path, "").unwrap();
        let mut f = follower(dir.path(), Some("myapp"));
        f.initial(&[]);
        let mut w = std::fs::OpenOptions::new()
            .append(true)
            .open(&path)
            .unwrap();
        w.write_all(b"one\n").unwrap();
        w.write_all(&vec![b'x'; 3 * 1024 * 1024]).unwrap();
        w.write_all(b"\nbad \xff\xfe utf8\ntwo\nthr").unwrap();
        let got = look(&mut f);
        let msgs: Vec<&str> = got.iter().map(|e| e.message.as_str()).collect();
        assert_eq!(msgs, ["one", "two"]);
        assert!(got.iter().all(|e| e.identifier == "myapp"));
        assert_eq!(f.lines.stats.too_long.load(Ordering::Relaxed), 1);
        assert_eq!(f.lines.stats.invalid_utf8.load(Ordering::Relaxed), 1);
        w.write_all(b"ee\n").unwrap();
        let got = look(&mut f);
        assert_eq!(got.len(), 1);
        assert_eq!(got[0].message, "three");
        // the position is right after the last newline
        assert_eq!(
            f.followed[0].offset,
            std::fs::metadata(&path).unwrap().len()
        );
    }

    #[test]
    fn syslog_lines_keep_their_tag_and_malformed_are_counted() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("auth.log");
        std::fs::write(&path, "").unwrap();
        let mut f = follower(dir.path(), None);
        f.initial(&[]);
        std::fs::write(
            &path,
            "2026-11-28T02:33:01.000000+00:00 host sshd[12]: Failed password for root from 203.0.113.5 port 22 ssh2\nno header here\n",
        )
        .unwrap();
        let got = look(&mut f);
        assert_eq!(got.len(), 1);
        assert_eq!(got[0].identifier, "sshd");
        assert_eq!(got[0].pid, Some(12));
        assert_eq!(f.lines.stats.malformed.load(Ordering::Relaxed), 1);
    }

    #[test]
    fn rename_rotation_finishes_the_old_file_then_reads_the_new() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("a.log");
        std::fs::write(&path, "old0\n").unwrap();
        let mut f = follower(dir.path(), Some("p"));
        f.initial(&[]); // tail: old0 is not read
        let mut w = std::fs::OpenOptions::new()
            .append(true)
            .open(&path)
            .unwrap();
        w.write_all(b"old1\n").unwrap();
        std::fs::rename(&path, dir.path().join("a.log.1")).unwrap();
        // the writer still holds the old file
        w.write_all(b"old2\n").unwrap();
        std::fs::write(&path, "new1\n").unwrap();
        let got: Vec<String> = look(&mut f).into_iter().map(|e| e.message).collect();
        assert_eq!(got, ["old1", "old2", "new1"]);
        assert_eq!(f.lines.stats.rotations.load(Ordering::Relaxed), 1);
        // a.log.1 does not match *.log: followed is just the new a.log; the old inode is
        // still read while the writer may append to it
        assert_eq!(f.followed.len(), 1);
        assert_eq!(f.finishing.len(), 1);
        w.write_all(b"old3\n").unwrap();
        let got: Vec<String> = look(&mut f).into_iter().map(|e| e.message).collect();
        assert_eq!(got, ["old3"]);
    }

    #[test]
    fn copytruncate_is_detected_even_when_refilled_past_the_offset() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("a.log");
        std::fs::write(&path, "").unwrap();
        let mut f = follower(dir.path(), Some("p"));
        f.initial(&[]);
        std::fs::write(&path, "l1\nl2\n").unwrap();
        assert_eq!(look(&mut f).len(), 2);
        // truncate and refill with more than before before the follower looks again
        std::fs::OpenOptions::new()
            .write(true)
            .truncate(true)
            .open(&path)
            .unwrap()
            .write_all(b"n1-longer\nn2\n")
            .unwrap();
        let got: Vec<String> = look(&mut f).into_iter().map(|e| e.message).collect();
        assert_eq!(got, ["n1-longer", "n2"]);
        assert_eq!(f.lines.stats.truncations.load(Ordering::Relaxed), 1);
    }

    #[test]
    fn resume_from_saved_positions_including_a_file_rotated_while_down() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("a.log");
        std::fs::write(&path, "seen\nunseen1\n").unwrap();
        let m = std::fs::metadata(&path).unwrap();
        let saved = vec![Position {
            path: path.clone(),
            dev: m.dev(),
            ino: m.ino(),
            offset: 5,
        }];
        // rotated while down
        std::fs::rename(&path, dir.path().join("a.log.1")).unwrap();
        std::fs::write(&path, "fresh\n").unwrap();
        let mut f = follower(dir.path(), Some("p"));
        f.initial(&saved);
        let got: Vec<String> = look(&mut f).into_iter().map(|e| e.message).collect();
        assert_eq!(got, ["unseen1", "fresh"]);
    }
}
