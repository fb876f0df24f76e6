//! Terminal niceties for the CLI: colour and progress only when a person is watching.
//!
//! Colour is used when stdout is a terminal and `NO_COLOR` is unset (no-color.org); progress
//! lines go to stderr only when stderr is a terminal, so pipes, files, CI logs and `--json`
//! consumers get plain text and nothing else.

use std::io::{IsTerminal, Read, Write};
use std::time::{Duration, Instant};

/// Whether stdout gets ANSI colour.
pub fn colour() -> bool {
    std::env::var_os("NO_COLOR").is_none() && std::io::stdout().is_terminal()
}

/// Wraps `text` in an ANSI style (`"1"` bold, `"33"` yellow, `"31"` red) when `on`.
pub fn paint(on: bool, style: &str, text: &str) -> String {
    if on {
        format!("\x1b[{style}m{text}\x1b[0m")
    } else {
        text.to_string()
    }
}

/// A progress line on stderr, redrawn at most every 200 ms; silent when stderr is not a
/// terminal.
pub struct Progress {
    enabled: bool,
    label: String,
    total: u64,
    last: Instant,
    drawn: bool,
}

impl Progress {
    pub fn new(label: impl Into<String>, total: u64) -> Progress {
        Progress {
            enabled: std::io::stderr().is_terminal(),
            label: label.into(),
            total,
            last: Instant::now(),
            drawn: false,
        }
    }

    /// Redraws with `done` of `total` (bytes, entries...) and a short note.
    pub fn update(&mut self, done: u64, note: &str) {
        if !self.enabled || self.last.elapsed() < Duration::from_millis(200) {
            return;
        }
        self.last = Instant::now();
        let width = 30usize;
        let frac = if self.total == 0 {
            0.0
        } else {
            (done as f64 / self.total as f64).clamp(0.0, 1.0)
        };
        let fill = (frac * width as f64) as usize;
        let mut e = std::io::stderr().lock();
        let _ = write!(
            e,
            "\r{} [{}{}] {:>3.0}% {note}\x1b[K",
            self.label,
            "#".repeat(fill),
            " ".repeat(width - fill),
            frac * 100.0
        );
        let _ = e.flush();
        self.drawn = true;
    }

    /// Clears the line so the summary that follows starts clean.
    pub fn finish(&mut self) {
        if self.drawn {
            let mut e = std::io::stderr().lock();
            let _ = write!(e, "\r\x1b[K");
            let _ = e.flush();
            self.drawn = false;
        }
    }
}

impl Drop for Progress {
    fn drop(&mut self) {
        self.finish();
    }
}

/// A reader that counts the bytes read through it, for progress over a file.
pub struct Counting<R> {
    pub inner: R,
    pub count: std::rc::Rc<std::cell::Cell<u64>>,
}

impl<R: Read> Read for Counting<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.count.set(self.count.get() + n as u64);
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paint_is_plain_when_off() {
        assert_eq!(paint(false, "33", "x"), "x");
        assert_eq!(paint(true, "33", "x"), "\x1b[33mx\x1b[0m");
    }

    #[test]
    fn counting_reader_counts() {
        let count = std::rc::Rc::new(std::cell::Cell::new(0));
        let mut r = Counting {
            inner: &b"hello world"[..],
            count: count.clone(),
        };
        let mut s = String::new();
        r.read_to_string(&mut s).unwrap();
        assert_eq!(count.get(), 11);
    }
}
