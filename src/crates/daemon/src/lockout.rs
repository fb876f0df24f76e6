//! Lockout guard: finds the logged-in SSH sessions whose address the allowlist does not
//! cover, so the admin hears about it before a typo on a second terminal bans their own box.
//!
//! Sessions come from utmp (`/var/run/utmp`), read directly as glibc's `struct utmpx`
//! records: no `who` child, no shell. sshd writes a USER_PROCESS record with the client address
//! for every login that gets a terminal. Records whose process is gone (a crash leaves them
//! behind) are dropped by a `kill(pid, 0)` probe, which works without reading /proc (the unit
//! hides other users' processes).

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::path::{Path, PathBuf};

/// `[lockout]`: warn about logged-in SSH sessions the allowlist does not cover.
#[derive(Debug, Clone, PartialEq, Eq, serde::Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LockoutSection {
    pub enabled: bool,
    pub utmp: PathBuf,
}

impl Default for LockoutSection {
    fn default() -> Self {
        LockoutSection {
            enabled: true,
            utmp: "/var/run/utmp".into(),
        }
    }
}

impl crowdwall_base::Section for LockoutSection {
    const NAME: &'static str = "lockout";
    fn check(&self) -> Result<(), crowdwall_base::SectionError> {
        Ok(())
    }
}

use ipnet::IpNet;
use serde::Serialize;

use crowdwall_engine::decide::Allowlist;

#[derive(Debug, thiserror::Error)]
pub enum LockoutError {
    #[error(
        "{path}: cannot read the login records: {source} (set [lockout] utmp, or enabled = false)"
    )]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

/// The guard as `crowdwall status` shows it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, serde::Deserialize)]
pub struct LockoutStatus {
    pub enabled: bool,
    pub utmp: std::path::PathBuf,
    pub unprotected_sessions: Vec<Session>,
    pub error: Option<String>,
    pub checked_at: Option<String>,
}

/// One logged-in remote session.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, serde::Deserialize)]
pub struct Session {
    pub user: String,
    /// Terminal (`pts/0`).
    pub line: String,
    pub address: IpAddr,
    pub pid: i32,
    /// Login time, seconds since the epoch.
    pub since: i64,
}

const RECORD: usize = std::mem::size_of::<libc::utmpx>();

fn c_str(bytes: &[libc::c_char]) -> String {
    let b: Vec<u8> = bytes
        .iter()
        .take_while(|c| **c != 0)
        .map(|c| *c as u8)
        .collect();
    String::from_utf8_lossy(&b).into_owned()
}

/// The address of a record: `ut_addr_v6` holds an IPv4 address in its first word (network
/// order) with the rest zero, or a whole IPv6 address; when it is empty, `ut_host` may still
/// hold a literal address.
fn record_address(r: &libc::utmpx) -> Option<IpAddr> {
    let w = r.ut_addr_v6;
    let mut bytes = [0u8; 16];
    for (i, word) in w.iter().enumerate() {
        bytes[i * 4..i * 4 + 4].copy_from_slice(&word.to_ne_bytes());
    }
    let ip = if w[1] == 0 && w[2] == 0 && w[3] == 0 {
        if w[0] == 0 {
            None
        } else {
            Some(IpAddr::V4(Ipv4Addr::new(
                bytes[0], bytes[1], bytes[2], bytes[3],
            )))
        }
    } else {
        Some(IpAddr::V6(Ipv6Addr::from(bytes)))
    };
    ip.or_else(|| c_str(&r.ut_host).parse::<IpAddr>().ok())
        .map(crowdwall_base::canonical_ip)
}

/// Remote login sessions in a utmp file's bytes. Pure: a trailing partial record is ignored,
/// local logins (no address) are skipped.
pub fn parse_utmp(data: &[u8]) -> Vec<Session> {
    let mut out = Vec::new();
    for chunk in data.chunks_exact(RECORD) {
        // SAFETY: utmpx is plain old data (integers and byte arrays), every bit pattern is a
        // valid value, and read_unaligned copes with the Vec's alignment.
        let r: libc::utmpx = unsafe { std::ptr::read_unaligned(chunk.as_ptr().cast()) };
        if r.ut_type != libc::USER_PROCESS {
            continue;
        }
        if let Some(address) = record_address(&r) {
            out.push(Session {
                user: c_str(&r.ut_user),
                line: c_str(&r.ut_line),
                address,
                pid: r.ut_pid,
                since: r.ut_tv.tv_sec as i64,
            });
        }
    }
    out
}

/// Builds a utmp record; for tests and the lab (there is no other writer of our own).
pub fn record(user: &str, line: &str, address: IpAddr, pid: i32, since: i64) -> Vec<u8> {
    // SAFETY: all-zero is a valid utmpx.
    let mut r: libc::utmpx = unsafe { std::mem::zeroed() };
    r.ut_type = libc::USER_PROCESS;
    r.ut_pid = pid;
    for (d, s) in r.ut_user.iter_mut().zip(user.bytes()) {
        *d = s as libc::c_char;
    }
    for (d, s) in r.ut_line.iter_mut().zip(line.bytes()) {
        *d = s as libc::c_char;
    }
    let host = address.to_string();
    for (d, s) in r.ut_host.iter_mut().zip(host.bytes()) {
        *d = s as libc::c_char;
    }
    match address {
        IpAddr::V4(v4) => r.ut_addr_v6[0] = i32::from_ne_bytes(v4.octets()),
        IpAddr::V6(v6) => {
            for (i, c) in v6.octets().chunks(4).enumerate() {
                r.ut_addr_v6[i] = i32::from_ne_bytes([c[0], c[1], c[2], c[3]]);
            }
        }
    }
    r.ut_tv.tv_sec = since as _;
    // SAFETY: reading the bytes of a plain-old-data value.
    unsafe { std::slice::from_raw_parts((&r as *const libc::utmpx).cast::<u8>(), RECORD) }.to_vec()
}

fn alive(pid: i32) -> bool {
    if pid <= 0 {
        return false;
    }
    // SAFETY: signal 0 only checks that the process exists.
    let r = unsafe { libc::kill(pid, 0) };
    r == 0 || std::io::Error::last_os_error().raw_os_error() == Some(libc::EPERM)
}

/// The live remote sessions in `path`. A missing file means no login was ever recorded
/// (containers, minimal routers): no sessions, not an error.
pub fn sessions(path: &Path) -> Result<Vec<Session>, LockoutError> {
    let data = match std::fs::read(path) {
        Ok(d) => d,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(source) => {
            return Err(LockoutError::Read {
                path: path.to_path_buf(),
                source,
            })
        }
    };
    Ok(parse_utmp(&data)
        .into_iter()
        .filter(|s| alive(s.pid))
        .collect())
}

/// The sessions the allowlist does not cover: a ban on any of them locks that admin out.
pub fn unprotected(sessions: Vec<Session>, allow: &Allowlist) -> Vec<Session> {
    sessions
        .into_iter()
        .filter(|s| allow.check(&IpNet::from(s.address)).is_none())
        .collect()
}

/// The address of the SSH session running this process, for the package's postinst: from
/// `SSH_CONNECTION` or `SSH_CLIENT` (client address first), else from the utmp record of the
/// terminal on stdin/stdout/stderr (sudo drops the environment, not the terminal).
pub fn installer_address(utmp: &Path) -> Option<IpAddr> {
    for var in ["SSH_CONNECTION", "SSH_CLIENT"] {
        if let Ok(v) = std::env::var(var) {
            if let Some(ip) = v
                .split_whitespace()
                .next()
                .and_then(|a| a.parse::<IpAddr>().ok())
            {
                return Some(crowdwall_base::canonical_ip(ip));
            }
        }
    }
    let all = sessions(utmp).ok()?;
    for fd in 0..3 {
        if let Ok(tty) = std::fs::read_link(format!("/proc/self/fd/{fd}")) {
            if let Ok(line) = tty.strip_prefix("/dev") {
                let line = line.to_string_lossy().to_string();
                if let Some(s) = all.iter().find(|s| s.line == line) {
                    return Some(s.address);
                }
            }
        }
    }
    None
}

/// The daemon's view: the last check's result, logged when it matters.
#[derive(Debug)]
pub struct Guard {
    enabled: bool,
    utmp: PathBuf,
    pub unprotected: Vec<Session>,
    pub error: Option<String>,
    pub checked_at: Option<i64>,
    before_first_ban_done: bool,
}

impl Guard {
    pub fn new(cfg: &LockoutSection) -> Guard {
        Guard {
            enabled: cfg.enabled,
            utmp: cfg.utmp.clone(),
            unprotected: Vec::new(),
            error: None,
            checked_at: None,
            before_first_ban_done: false,
        }
    }

    /// Re-reads the sessions. Warns when `always` (start, first ban) or when the set of
    /// unprotected sessions changed since the last check (the periodic one).
    pub fn check(&mut self, allow: &Allowlist, when: &str, always: bool) {
        if !self.enabled {
            return;
        }
        self.checked_at = Some(crate::time::now() / crate::time::SECOND);
        match sessions(&self.utmp) {
            Ok(all) => {
                let u = unprotected(all, allow);
                let changed = u != self.unprotected || self.error.is_some();
                self.error = None;
                if !u.is_empty() && (always || changed) {
                    for s in &u {
                        log::warn!(
                            "lockout risk ({when}): {} is logged in over SSH from {} ({}), which is not allowlisted: a few failed logins from there would ban it. Add it to [allowlist] cidrs or {}",
                            s.user,
                            s.address,
                            s.line,
                            "/etc/crowdwall/allowlist.d/*.list"
                        );
                    }
                }
                self.unprotected = u;
            }
            Err(e) => {
                if self.error.is_none() || always {
                    log::warn!("lockout guard ({when}): {e}");
                }
                self.error = Some(e.to_string());
            }
        }
    }

    /// Called before every ban; checks once per run, before the first.
    pub fn before_ban(&mut self, allow: &Allowlist) {
        if !self.before_first_ban_done {
            self.before_first_ban_done = true;
            self.check(allow, "before the first ban of this run", true);
        }
    }

    pub fn status(&self) -> LockoutStatus {
        LockoutStatus {
            enabled: self.enabled,
            utmp: self.utmp.clone(),
            unprotected_sessions: self.unprotected.clone(),
            error: self.error.clone(),
            checked_at: self
                .checked_at
                .map(|t| crate::time::format_rfc3339(t * crate::time::SECOND)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_v4_and_v6_sessions_and_skips_other_records() {
        let mut data = record(
            "alice",
            "pts/0",
            "198.51.100.7".parse().unwrap(),
            1,
            1_700_000_000,
        );
        data.extend(record(
            "bob",
            "pts/1",
            "2001:db8::5".parse().unwrap(),
            2,
            1_700_000_001,
        ));
        // a dead-process record (type 8) and a truncated tail are ignored
        let mut dead = record("carol", "pts/2", "192.0.2.1".parse().unwrap(), 3, 0);
        dead[0] = libc::DEAD_PROCESS as u8;
        data.extend(dead);
        data.extend([0u8; 17]);
        let s = parse_utmp(&data);
        assert_eq!(s.len(), 2, "{s:?}");
        assert_eq!(s[0].user, "alice");
        assert_eq!(s[0].line, "pts/0");
        assert_eq!(s[0].address, "198.51.100.7".parse::<IpAddr>().unwrap());
        assert_eq!(s[0].since, 1_700_000_000);
        assert_eq!(s[1].address, "2001:db8::5".parse::<IpAddr>().unwrap());
    }

    #[test]
    fn allowlisted_sessions_are_protected() {
        let data = [
            record("a", "pts/0", "198.51.100.7".parse().unwrap(), 1, 0),
            record("b", "pts/1", "203.0.113.9".parse().unwrap(), 1, 0),
            record("c", "pts/2", "127.0.0.1".parse().unwrap(), 1, 0),
        ]
        .concat();
        let allow = Allowlist::new(vec!["203.0.113.0/24".parse().unwrap()]);
        let u = unprotected(parse_utmp(&data), &allow);
        assert_eq!(u.len(), 1, "{u:?}");
        assert_eq!(u[0].user, "a");
    }

    #[test]
    fn a_live_process_is_alive() {
        assert!(alive(std::process::id() as i32));
        assert!(!alive(0));
    }
}
