//! Paths with a glob in their last component: what a `[[files]]` entry may name.

#[allow(unused_imports)]
use super::*;

pub(super) fn glob_chars(b: &[u8]) -> bool {
    b.iter().any(|c| *c == b'*' || *c == b'?')
}

/// `/var/log/nginx/*.log` -> (`/var/log/nginx`, `*.log`).
pub(super) fn split_glob(p: &Path) -> Result<(PathBuf, Vec<u8>), String> {
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
