//! Atomic persistence of a source's position (journal cursor, file offset) in the state
//! directory.
//!
//! The file holds one line: the cursor text. [`CursorFile::store`] replaces it atomically
//! (write `NAME.tmp` beside it, fsync, rename over, fsync the directory), so after a crash the
//! file holds either the old or the new cursor, never a mix or nothing.

use std::fs;
use std::io::ErrorKind;
use std::path::{Path, PathBuf};

use crowdwall_base::fsutil::write_atomic;

use super::SourceError;

/// Longest cursor accepted. sd-journal cursors are about 140 bytes; anything much longer is not
/// a cursor but a corrupted or foreign file.
pub const MAX_CURSOR_LEN: usize = 4096;

/// A file that keeps one cursor string.
#[derive(Debug, Clone)]
pub struct CursorFile {
    path: PathBuf,
}

impl CursorFile {
    pub fn new(path: impl Into<PathBuf>) -> Self {
        CursorFile { path: path.into() }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The saved cursor, or `None` when the file does not exist (first start).
    ///
    /// An empty or garbage file is an error naming the path, not `None`: silently starting over
    /// would skip (tail) or repeat (head) entries, and the operator should decide.
    pub fn load(&self) -> Result<Option<String>, SourceError> {
        let bytes = match fs::read(&self.path) {
            Ok(b) => b,
            Err(e) if e.kind() == ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(self.io_err(e)),
        };
        if bytes.len() > MAX_CURSOR_LEN + 1 {
            return Err(self.invalid(format!(
                "{} bytes, longer than any cursor ({MAX_CURSOR_LEN} max)",
                bytes.len()
            )));
        }
        let text =
            std::str::from_utf8(&bytes).map_err(|_| self.invalid("not UTF-8 text".to_string()))?;
        let cursor = text.strip_suffix('\n').unwrap_or(text);
        validate(cursor).map_err(|reason| self.invalid(reason))?;
        Ok(Some(cursor.to_string()))
    }

    /// Replaces the saved cursor atomically and durably.
    pub fn store(&self, cursor: &str) -> Result<(), SourceError> {
        // Refuse what `load` would refuse, so a stored cursor always loads back.
        validate(cursor).map_err(|reason| self.invalid(format!("refusing to store: {reason}")))?;
        let mut text = Vec::with_capacity(cursor.len() + 1);
        text.extend_from_slice(cursor.as_bytes());
        text.push(b'\n');
        write_atomic(&self.path, &text).map_err(|e| SourceError::CursorIo {
            path: e.path,
            source: e.source,
        })
    }

    fn io_err(&self, e: std::io::Error) -> SourceError {
        SourceError::CursorIo {
            path: self.path.clone(),
            source: e,
        }
    }

    fn invalid(&self, reason: String) -> SourceError {
        SourceError::CursorInvalid {
            path: self.path.clone(),
            reason,
        }
    }
}

/// A cursor is non-empty printable ASCII without whitespace (sd-journal cursors are
/// `s=...;i=...;b=...;m=...;t=...;x=...`; file offsets are digits).
fn validate(cursor: &str) -> Result<(), String> {
    if cursor.is_empty() {
        return Err("empty, no cursor in it".into());
    }
    if cursor.len() > MAX_CURSOR_LEN {
        return Err(format!("cursor longer than {MAX_CURSOR_LEN} bytes"));
    }
    if let Some(c) = cursor.chars().find(|c| !c.is_ascii_graphic()) {
        return Err(format!(
            "not a cursor: contains {c:?} (only printable ASCII without spaces is valid)"
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const CUR: &str = "s=82e4700755564d5f95864acad5d987b9;i=1;b=00000000000000000000000000000000;m=0;t=60a24181e4000;x=17673392a68133d";

    #[test]
    fn missing_file_is_none() {
        let dir = tempfile::tempdir().unwrap();
        let f = CursorFile::new(dir.path().join("journal.cursor"));
        assert!(f.load().unwrap().is_none());
    }

    #[test]
    fn store_then_load_round_trips_and_replaces() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("journal.cursor");
        let f = CursorFile::new(&path);
        f.store(CUR).unwrap();
        assert_eq!(f.load().unwrap().as_deref(), Some(CUR));
        f.store("s=1;i=2").unwrap();
        assert_eq!(f.load().unwrap().as_deref(), Some("s=1;i=2"));
        assert_eq!(fs::read_to_string(&path).unwrap(), "s=1;i=2\n");
        // No temporary file left behind.
        let names: Vec<_> = fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names, vec![std::ffi::OsString::from("journal.cursor")]);
    }

    #[test]
    fn stale_tmp_file_is_overwritten() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("c");
        fs::write(
            dir.path().join("c.tmp"),
            "garbage from a crash that is much longer",
        )
        .unwrap();
        let f = CursorFile::new(&path);
        f.store("abc").unwrap();
        assert_eq!(f.load().unwrap().as_deref(), Some("abc"));
        assert!(!dir.path().join("c.tmp").exists());
    }

    #[test]
    fn empty_and_garbage_files_are_errors_naming_the_path() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("journal.cursor");
        let f = CursorFile::new(&path);
        for content in [&b""[..], b"\n", b"two words\n", b"\xff\xfe\x00", b"a\nb\n"] {
            fs::write(&path, content).unwrap();
            let e = f.load().unwrap_err();
            assert!(
                matches!(e, SourceError::CursorInvalid { .. }),
                "{content:?}"
            );
            assert!(
                e.to_string().contains(path.to_str().unwrap()),
                "{e} should name the path"
            );
        }
        fs::write(&path, vec![b'a'; MAX_CURSOR_LEN + 10]).unwrap();
        assert!(f.load().is_err());
    }

    #[test]
    fn store_refuses_what_load_would_refuse() {
        let dir = tempfile::tempdir().unwrap();
        let f = CursorFile::new(dir.path().join("c"));
        assert!(f.store("").is_err());
        assert!(f.store("a\nb").is_err());
        assert!(f.load().unwrap().is_none());
    }

    #[test]
    fn unwritable_directory_is_an_io_error() {
        let f = CursorFile::new("/nonexistent-dir-crowdwall/c");
        let e = f.store("abc").unwrap_err();
        assert!(matches!(e, SourceError::CursorIo { .. }));
        assert!(e.to_string().contains("/nonexistent-dir-crowdwall/c.tmp"));
    }
}
