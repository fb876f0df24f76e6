//! The one durable atomic write. Cursors, file positions, the community outbox and agent
//! credentials all go through it, so after a crash each file holds either its old or its new
//! content, never a mix or nothing.

use std::fs;
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

/// A file operation that failed, with the file it was about.
#[derive(Debug, thiserror::Error)]
#[error("{}: {source}", path.display())]
pub struct FsError {
    pub path: PathBuf,
    #[source]
    pub source: std::io::Error,
}

fn at(path: &Path) -> impl FnOnce(std::io::Error) -> FsError + '_ {
    move |source| FsError {
        path: path.to_path_buf(),
        source,
    }
}

/// The temporary file beside `path` (`path.tmp`).
pub fn tmp_path(path: &Path) -> PathBuf {
    let mut name = path.as_os_str().to_owned();
    name.push(".tmp");
    PathBuf::from(name)
}

/// Replaces `path` with `bytes`, readable by the owner only (0600): writes `path.tmp`,
/// fsyncs it, renames it over `path`, then fsyncs the directory (the rename is only durable
/// once the directory entry is on disk). On error the temporary file is removed and `path`
/// is untouched.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<(), FsError> {
    let tmp = tmp_path(path);
    let r = write_then_rename(path, &tmp, bytes);
    if r.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    r
}

fn write_then_rename(path: &Path, tmp: &Path, bytes: &[u8]) -> Result<(), FsError> {
    let mut f = fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(tmp)
        .map_err(at(tmp))?;
    f.write_all(bytes).map_err(at(tmp))?;
    f.sync_all().map_err(at(tmp))?;
    drop(f);
    fs::rename(tmp, path).map_err(at(path))?;
    let dir = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    fs::File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(at(dir))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn replaces_whole_and_private() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("state");
        write_atomic(&p, b"one").unwrap();
        write_atomic(&p, b"two").unwrap();
        assert_eq!(fs::read(&p).unwrap(), b"two");
        assert_eq!(
            fs::metadata(&p).unwrap().permissions().mode() & 0o777,
            0o600
        );
        assert!(!tmp_path(&p).exists());
    }

    #[test]
    fn a_failed_write_names_the_file_and_leaves_the_old_one() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("missing-dir").join("state");
        let e = write_atomic(&p, b"x").unwrap_err();
        assert!(e.to_string().contains("missing-dir"), "{e}");
    }
}
