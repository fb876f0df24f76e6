//! Signals not yet delivered to the hub, on disk: a JSON-lines file appended (and synced)
//! as signals are made and rewritten without the delivered ones after each acknowledged push.
//! A crash or a hub outage loses nothing; a signal delivered twice (crash between the push
//! and the rewrite) is counted once by the hub, which keys signals by their uid.

use std::collections::VecDeque;
use std::io::Write;
use std::path::{Path, PathBuf};

use super::{CommunityError, Signal};

pub struct Outbox {
    path: PathBuf,
    queue: VecDeque<Signal>,
    cap: usize,
    /// Signals dropped because the outbox was full (oldest first).
    pub dropped: u64,
    /// Lines of the file that did not read back (skipped).
    pub unreadable: u64,
}

impl Outbox {
    pub fn open(path: &Path, cap: usize) -> Result<Outbox, CommunityError> {
        let mut ob = Outbox {
            path: path.to_path_buf(),
            queue: VecDeque::new(),
            cap: cap.max(1),
            dropped: 0,
            unreadable: 0,
        };
        match std::fs::read_to_string(path) {
            Ok(text) => {
                for line in text.lines().filter(|l| !l.trim().is_empty()) {
                    match serde_json::from_str::<Signal>(line) {
                        Ok(s) => ob.queue.push_back(s),
                        // a torn last line after a crash mid-append
                        Err(_) => ob.unreadable += 1,
                    }
                }
                if ob.unreadable > 0 {
                    log::warn!(
                        "outbox {}: {} unreadable line(s) skipped",
                        path.display(),
                        ob.unreadable
                    );
                }
                ob.trim();
                if ob.unreadable > 0 || ob.dropped > 0 {
                    ob.rewrite()?;
                }
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(source) => {
                return Err(CommunityError::Io {
                    what: format!("outbox {}", path.display()),
                    source,
                })
            }
        }
        Ok(ob)
    }

    pub fn len(&self) -> usize {
        self.queue.len()
    }

    pub fn is_empty(&self) -> bool {
        self.queue.is_empty()
    }

    fn trim(&mut self) -> bool {
        let mut trimmed = false;
        while self.queue.len() > self.cap {
            self.queue.pop_front();
            self.dropped += 1;
            trimmed = true;
        }
        trimmed
    }

    /// Adds signals durably (appended and synced before this returns).
    pub fn add(&mut self, signals: Vec<Signal>) -> Result<(), CommunityError> {
        if signals.is_empty() {
            return Ok(());
        }
        let mut text = String::new();
        for s in &signals {
            if let Ok(l) = serde_json::to_string(s) {
                text.push_str(&l);
                text.push('\n');
            }
        }
        self.queue.extend(signals);
        if self.trim() {
            log::warn!("outbox full ({} signals): the oldest are dropped", self.cap);
            return self.rewrite();
        }
        use std::os::unix::fs::OpenOptionsExt;
        let mut f = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .mode(0o600)
            .open(&self.path)
            .map_err(|source| self.io(source))?;
        f.write_all(text.as_bytes())
            .and_then(|_| f.sync_data())
            .map_err(|source| self.io(source))
    }

    /// The oldest signals, at most `n`.
    pub fn peek(&self, n: usize) -> Vec<Signal> {
        self.queue.iter().take(n).cloned().collect()
    }

    /// Forgets the `n` oldest signals (delivered) and rewrites the file.
    pub fn ack(&mut self, n: usize) -> Result<(), CommunityError> {
        let n = n.min(self.queue.len());
        self.queue.drain(..n);
        self.rewrite()
    }

    fn io(&self, source: std::io::Error) -> CommunityError {
        CommunityError::Io {
            what: format!("outbox {}", self.path.display()),
            source,
        }
    }

    fn rewrite(&self) -> Result<(), CommunityError> {
        let mut text = String::new();
        for s in &self.queue {
            if let Ok(l) = serde_json::to_string(s) {
                text.push_str(&l);
                text.push('\n');
            }
        }
        // Durable like the cursor: after a crash the outbox is the old or the new one.
        crowdwall_base::fsutil::write_atomic(&self.path, text.as_bytes())
            .map_err(|e| self.io(e.source))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sig(i: u32) -> Signal {
        Signal {
            uid: format!("u{i}"),
            ip: "45.0.0.1".into(),
            scenario: "ssh-bruteforce".into(),
            first_seen: 1,
            last_seen: 2,
            events: 6,
        }
    }

    #[test]
    fn survives_reopen_and_acks_persist() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("outbox.jsonl");
        let mut ob = Outbox::open(&p, 100).unwrap();
        ob.add(vec![sig(1), sig(2), sig(3)]).unwrap();
        drop(ob);
        let mut ob = Outbox::open(&p, 100).unwrap();
        assert_eq!(ob.len(), 3);
        assert_eq!(ob.peek(2), vec![sig(1), sig(2)]);
        ob.ack(2).unwrap();
        ob.add(vec![sig(4)]).unwrap();
        let ob = Outbox::open(&p, 100).unwrap();
        assert_eq!(ob.peek(10), vec![sig(3), sig(4)]);
    }

    #[test]
    fn torn_line_is_skipped_and_cap_drops_the_oldest() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("outbox.jsonl");
        let mut ob = Outbox::open(&p, 2).unwrap();
        ob.add(vec![sig(1), sig(2), sig(3)]).unwrap();
        assert_eq!(ob.dropped, 1);
        assert_eq!(ob.peek(10), vec![sig(2), sig(3)]);
        let mut f = std::fs::OpenOptions::new().append(true).open(&p).unwrap();
        f.write_all(b"{\"uid\":\"u9\",\"ip\"").unwrap();
        let ob = Outbox::open(&p, 10).unwrap();
        assert_eq!(ob.unreadable, 1);
        assert_eq!(ob.len(), 2);
    }
}
