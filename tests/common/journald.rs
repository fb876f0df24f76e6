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
