//! The real system journal: a running journald (started standalone when systemd is not PID
//! 1), writing entries to it and waiting until they are readable.
//!
//! Every test of a binary shares this one journal, and a daemon reads every entry its matches
//! select: a test writes under an identifier of its own ([`unique_ident`]) unless it plays a
//! real service, and then attacks from addresses of its own.

use std::io::Write;
use std::os::unix::net::UnixDatagram;
use std::os::unix::process::CommandExt;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use super::{have, require_root};
use crowdwall_engine::LogEntry;
use std::path::Path;

pub const JOURNALD: &str = "/lib/systemd/systemd-journald";
pub const SOCKET: &str = "/run/systemd/journal/socket";

/// Whether something answers on journald's native socket.
pub fn alive() -> bool {
    UnixDatagram::unbound()
        .and_then(|s| s.connect(SOCKET))
        .is_ok()
}

/// Whether a write through `systemd-cat` succeeds (a stale socket file outlives a killed
/// journald: only a write proves it runs).
pub fn writable() -> bool {
    Command::new("systemd-cat")
        .args(["-t", "crowdwall-test", "true"])
        .status()
        .map(|s| s.success())
        .unwrap_or(false)
}

/// Makes sure a system journald is running: starts `/lib/systemd/systemd-journald` standalone
/// (it stays in the foreground; it is left running for the following tests) when nothing
/// answers on its socket. Idempotent; a lock file serializes tests running in parallel, in
/// this process and in others. Err: why it cannot (not root, not installed).
pub fn ensure() -> Result<(), String> {
    require_root()?;
    have(JOURNALD)?;
    have("/usr/bin/systemd-cat")?;
    have("/usr/bin/journalctl")?;
    if alive() {
        return Ok(());
    }
    let lock = std::fs::File::create("/run/crowdwall-test-journald.lock")
        .map_err(|e| format!("lock file: {e}"))?;
    let _lock = nix::fcntl::Flock::lock(lock, nix::fcntl::FlockArg::LockExclusive)
        .map_err(|(_, e)| format!("flock: {e}"))?;
    if alive() {
        return Ok(());
    }
    std::fs::create_dir_all("/run/systemd/journal")
        .map_err(|e| format!("mkdir /run/systemd/journal: {e}"))?;
    Command::new(JOURNALD)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        // Its own process group: a Ctrl-C on the test run does not take it down mid-write.
        .process_group(0)
        .spawn()
        .map_err(|e| format!("cannot start {JOURNALD}: {e}"))?;
    let start = Instant::now();
    while !alive() {
        if start.elapsed() > Duration::from_secs(10) {
            return Err(format!("{JOURNALD} started but {SOCKET} does not answer"));
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    Ok(())
}

/// A SYSLOG_IDENTIFIER no other test (of this process or another) writes under.
pub fn unique_ident() -> String {
    static N: AtomicUsize = AtomicUsize::new(0);
    format!(
        "cwtest-{}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    )
}

/// Writes `lines` as entries of `ident` with `systemd-cat -t`.
pub fn systemd_cat(ident: &str, lines: &[impl AsRef<str>]) {
    let mut child = Command::new("systemd-cat")
        .arg("-t")
        .arg(ident)
        .stdin(Stdio::piped())
        .spawn()
        .expect("systemd-cat");
    let mut stdin = child.stdin.take().expect("stdin is piped");
    for l in lines {
        writeln!(stdin, "{}", l.as_ref()).expect("write to systemd-cat");
    }
    drop(stdin);
    assert!(child.wait().expect("systemd-cat").success());
}

/// Waits until journalctl shows `n` entries of `ident`, so that they are in the journal files
/// (systemd-cat returns before journald has processed its stream).
pub fn wait_visible(ident: &str, n: usize) {
    let start = Instant::now();
    loop {
        let out = Command::new("journalctl")
            .args(["--no-pager", "-o", "cat", "-t", ident])
            .output()
            .expect("journalctl");
        if String::from_utf8_lossy(&out.stdout).lines().count() >= n {
            return;
        }
        assert!(
            start.elapsed() < Duration::from_secs(20),
            "journalctl never showed {n} entries of {ident}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Monotonic timestamps of generated entries count from this realtime (any fixed point
/// before them keeps them ordered like their times).
const MONO_BASE: i64 = 1_600_000_000_000_000;

pub const JOURNAL_REMOTE: &str = "/lib/systemd/systemd-journal-remote";
const BOOT_ID: &str = "0123456789abcdef0123456789abcdef";

/// One entry of a generated journal.
#[derive(Clone)]
pub struct Gen {
    pub time: i64,
    pub ident: &'static str,
    pub pid: u32,
    /// None: the entry has no MESSAGE field.
    pub message: Option<Vec<u8>>,
}

impl Gen {
    pub fn expected(&self) -> LogEntry {
        LogEntry {
            time: self.time,
            identifier: self.ident.to_string(),
            pid: Some(self.pid),
            message: String::from_utf8_lossy(self.message.as_deref().unwrap_or_default())
                .into_owned(),
        }
    }
}

/// Journal export format: `NAME=value` lines; binary values (not UTF-8, or with a newline) as
/// `NAME\n`, a little-endian u64 length, the bytes, `\n`; a blank line ends an entry.
pub fn export(entries: &[Gen]) -> Vec<u8> {
    let mut out = Vec::new();
    for e in entries {
        // journal-remote fills in missing __MONOTONIC_TIMESTAMP/_BOOT_ID with zeros; real
        // values make cursor comparisons across files meaningful.
        let mono = e.time - MONO_BASE;
        write!(
            out,
            "__REALTIME_TIMESTAMP={}\n__MONOTONIC_TIMESTAMP={mono}\n_BOOT_ID={BOOT_ID}\n\
             SYSLOG_IDENTIFIER={}\n_PID={}\n",
            e.time, e.ident, e.pid
        )
        .unwrap();
        if let Some(m) = &e.message {
            if std::str::from_utf8(m).is_ok() && !m.contains(&b'\n') {
                out.extend_from_slice(b"MESSAGE=");
                out.extend_from_slice(m);
                out.push(b'\n');
            } else {
                out.extend_from_slice(b"MESSAGE\n");
                out.extend_from_slice(&(m.len() as u64).to_le_bytes());
                out.extend_from_slice(m);
                out.push(b'\n');
            }
        }
        out.push(b'\n');
    }
    out
}

/// Writes `entries` into `dir/remote.journal` with systemd-journal-remote.
pub fn make_journal(dir: &Path, entries: &[Gen]) -> Result<(), String> {
    have(JOURNAL_REMOTE)?;
    let mut child = Command::new(JOURNAL_REMOTE)
        .arg("-o")
        .arg(dir.join("remote.journal"))
        .arg("-")
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| format!("cannot run {JOURNAL_REMOTE}: {e}"))?;
    let data = export(entries);
    child
        .stdin
        .take()
        .expect("stdin is piped")
        .write_all(&data)
        .map_err(|e| format!("writing to {JOURNAL_REMOTE}: {e}"))?;
    let out = child.wait_with_output().map_err(|e| e.to_string())?;
    if !out.status.success() {
        // A failure here is a broken fixture, not a missing tool: fail loudly.
        panic!(
            "{JOURNAL_REMOTE} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    Ok(())
}
