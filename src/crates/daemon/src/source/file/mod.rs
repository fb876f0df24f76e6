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

mod follow;
mod glob;
mod inotify;
mod lines;
mod position;

use follow::{Followed, Follower};
pub use glob::glob_match;
use glob::{glob_chars, split_glob};
use inotify::Inotify;
use lines::Lines;
pub use lines::{is_rfc3164, local_offset_secs};
pub use position::{Position, PositionFile};

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
                    .all(|b| b.is_ascii_alphanumeric() || b"-_/.:".contains(&b))
            {
                return Err(format!(
                    "parser '{parser}' must be letters, digits, '-', '_', '/', '.' or ':'"
                ));
            }
        }
        Ok(())
    }
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

#[cfg(test)]
mod tests {
    use super::*;
    use follow::Out;
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
