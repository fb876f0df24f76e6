//! Raw lines to entries: syslog headers or a named parser, and what is skipped.

#[allow(unused_imports)]
use super::*;

/// Turns raw lines into entries; counts what it skips.
pub(super) struct Lines {
    pub(super) specs: Vec<FileSpec>,
    pub(super) stats: Arc<FileStats>,
    pub(super) ctx: SyslogContext,
}

impl Lines {
    /// Reads from where `f` stands towards the end of the file. Returns true when it stopped
    /// because `entries` is full (call again after sending them). `last`: the file will not
    /// grow any more: a final line without a newline is taken as complete.
    pub(super) fn read_new(
        &mut self,
        f: &mut Followed,
        entries: &mut Vec<LogEntry>,
        last: bool,
    ) -> bool {
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
    pub(super) fn line(&mut self, raw: &[u8], spec: usize, entries: &mut Vec<LogEntry>) {
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
