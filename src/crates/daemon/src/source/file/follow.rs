//! The follower: which files are open, rotation (rename, copytruncate), the initial
//! positions, and the loop that reads new lines into batches.

#[allow(unused_imports)]
use super::*;

/// One file being followed.
pub(super) struct Followed {
    pub(super) path: PathBuf,
    pub(super) file: File,
    pub(super) dev: u64,
    pub(super) ino: u64,
    /// Offset just after the last complete line handed out (or skipped).
    pub(super) offset: u64,
    /// Bytes after `offset` read so far without a newline.
    pub(super) partial: Vec<u8>,
    /// Inside a line longer than MAX_LINE: discard up to the next newline.
    pub(super) skipping: bool,
    /// `offset` was set just after a newline this follower read (not a tail or resume
    /// position, not the middle of a skipped line): the byte before it must be that newline.
    pub(super) after_newline: bool,
    pub(super) spec: usize,
}

pub(super) struct Follower {
    pub(super) lines: Lines,
    pub(super) followed: Vec<Followed>,
    pub(super) inotify: Option<Inotify>,
    /// Old inodes of renamed files, read until they stop growing (the writer may still hold
    /// them until it reopens its log).
    pub(super) finishing: Vec<(Followed, Micros)>,
}

/// A renamed file is dropped once it has not grown for this long.
pub(super) const FINISH_IDLE: Micros = 5 * SECOND;

pub(super) fn stat_path(p: &Path) -> Option<(u64, u64, u64)> {
    let m = std::fs::metadata(p).ok()?;
    m.is_file().then(|| (m.dev(), m.ino(), m.len()))
}

pub(super) fn open(path: &Path, spec: usize, offset: u64) -> Option<Followed> {
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
pub(super) struct Out<'a> {
    pub(super) entries: Vec<LogEntry>,
    pub(super) positions: &'a Arc<PositionFile>,
    pub(super) tx: &'a Sender<Batch>,
}

impl Follower {
    pub(super) fn new(specs: Vec<FileSpec>, stats: Arc<FileStats>, ctx: SyslogContext) -> Follower {
        Follower {
            lines: Lines { specs, stats, ctx },
            followed: Vec::new(),
            inotify: None,
            finishing: Vec::new(),
        }
    }

    pub(super) fn dirs(&self) -> Vec<(PathBuf, Vec<u8>, usize)> {
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

    pub(super) fn watch_dirs(&mut self) {
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
    pub(super) fn matching(&self) -> Vec<(PathBuf, usize)> {
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

    pub(super) fn initial(&mut self, saved: &[Position]) {
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

    pub(super) fn run(
        mut self,
        positions: Arc<PositionFile>,
        tx: Sender<Batch>,
        stop: Arc<AtomicBool>,
    ) {
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

    pub(super) fn snapshot(&self) -> Vec<Position> {
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
    pub(super) fn send(&self, out: &mut Out<'_>) -> bool {
        if out.entries.is_empty() {
            return true;
        }
        let snapshot = self.snapshot();
        let pf = out.positions.clone();
        let batch = Batch {
            source: "files",
            warm: false,
            entries: std::mem::take(&mut out.entries),
            commit: Some(Box::new(move || pf.store(&snapshot))),
        };
        out.tx.blocking_send(batch).is_ok()
    }

    /// Reads the file at `idx` (in `finishing` when `fin`) to its end, sending full batches
    /// on the way.
    pub(super) fn drain(&mut self, fin: bool, idx: usize, last: bool, out: &mut Out<'_>) -> bool {
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
    pub(super) fn look(&mut self, out: &mut Out<'_>) -> bool {
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
pub(super) fn truncated(f: &Followed) -> bool {
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

/// Another name of inode (dev, ino) in `path`'s directory (`auth.log.1` after a rename).
pub(super) fn find_inode(path: &Path, dev: u64, ino: u64) -> Option<PathBuf> {
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
