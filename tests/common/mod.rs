//! Helpers for tests on real parts: network namespaces, veth pairs, processes. Tests that need
//! root or tools skip with a message, unless CROWDWALL_REQUIRE_ROOT_TESTS=1 (CI), where a
//! missing prerequisite is a failure.
#![allow(dead_code)]

pub mod ssh_lab;

use std::process::{Command, Output};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

/// Returns false (after printing why) when the prerequisites are missing and skipping is
/// allowed; panics when they are required.
pub fn prerequisites(tools: &[&str], journald: bool) -> bool {
    let mut missing = Vec::new();
    if !nix_is_root() {
        missing.push("root".to_string());
    }
    for t in tools {
        if !Command::new("sh")
            .args(["-c", &format!("command -v {t}")])
            .output()
            .map(|o| o.status.success())
            .unwrap_or(false)
        {
            missing.push(format!("tool {t}"));
        }
    }
    // A stale socket file outlives a killed journald: only a write proves it runs.
    if journald
        && !Command::new("systemd-cat")
            .args(["-t", "crowdwall-test", "true"])
            .status()
            .map(|s| s.success())
            .unwrap_or(false)
    {
        missing.push("a running journald (tests/lab/deps.sh starts one)".into());
    }
    if missing.is_empty() {
        return true;
    }
    let msg = format!("needs {}", missing.join(", "));
    if std::env::var("CROWDWALL_REQUIRE_ROOT_TESTS").as_deref() == Ok("1") {
        panic!("{msg}");
    }
    eprintln!("skipped: {msg}");
    false
}

fn nix_is_root() -> bool {
    // SAFETY: geteuid has no preconditions.
    unsafe { libc::geteuid() == 0 }
}

/// Runs a command, returning its output (never panics on failure exit).
pub fn run(args: &[&str]) -> Output {
    Command::new(args[0])
        .args(&args[1..])
        .output()
        .unwrap_or_else(|e| panic!("cannot run {args:?}: {e}"))
}

/// Runs a command and panics with its stderr if it fails.
pub fn must(args: &[&str]) -> String {
    let o = run(args);
    assert!(
        o.status.success(),
        "{args:?} failed: {}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
    String::from_utf8_lossy(&o.stdout).into_owned()
}

/// Polls `f` until it is true or `limit` passes. Not a timing assertion: limits are generous
/// and only bound how long a failing test hangs.
pub fn wait_until(limit: Duration, mut f: impl FnMut() -> bool) -> bool {
    let start = Instant::now();
    while start.elapsed() < limit {
        if f() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    f()
}

static SEQ: AtomicU32 = AtomicU32::new(0);

/// A unique short tag for names (namespaces, veths: at most 15 characters).
pub fn tag() -> String {
    format!(
        "{}{}",
        std::process::id() % 100_000,
        SEQ.fetch_add(1, Ordering::Relaxed)
    )
}

/// A network namespace, deleted on drop.
pub struct Netns {
    pub name: String,
}

impl Netns {
    pub fn new(name: String) -> Netns {
        let _ = run(&["ip", "netns", "del", &name]);
        must(&["ip", "netns", "add", &name]);
        must(&["ip", "-n", &name, "link", "set", "lo", "up"]);
        Netns { name }
    }

    /// Runs a command inside the namespace.
    pub fn exec(&self, args: &[&str]) -> Output {
        let mut v = vec!["ip", "netns", "exec", &self.name];
        v.extend_from_slice(args);
        run(&v)
    }

    pub fn must(&self, args: &[&str]) -> String {
        let mut v = vec!["ip", "netns", "exec", &self.name];
        v.extend_from_slice(args);
        must(&v)
    }

    /// Whether a TCP connection to addr:port succeeds within 2 s.
    pub fn can_connect(&self, addr: &str, port: u16) -> bool {
        self.exec(&["nc", "-z", "-w", "2", addr, &port.to_string()])
            .status
            .success()
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        let _ = run(&["ip", "netns", "del", &self.name]);
    }
}

/// Joins two namespaces with a veth pair: `a_addr` and `b_addr` are CIDR-suffixed addresses.
pub fn veth(a: &Netns, a_addr: &str, b: &Netns, b_addr: &str) {
    let t = tag();
    let (ea, eb) = (format!("cwa{t}"), format!("cwb{t}"));
    must(&[
        "ip", "link", "add", &ea, "netns", &a.name, "type", "veth", "peer", "name", &eb, "netns",
        &b.name,
    ]);
    must(&["ip", "-n", &a.name, "addr", "add", a_addr, "dev", &ea]);
    must(&["ip", "-n", &b.name, "addr", "add", b_addr, "dev", &eb]);
    must(&["ip", "-n", &a.name, "link", "set", &ea, "up"]);
    must(&["ip", "-n", &b.name, "link", "set", &eb, "up"]);
}

/// A child process killed (and reaped) on drop.
pub struct Proc(pub std::process::Child);

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// The hub's binary, `crowdwall-hub`: another package of the workspace, so cargo builds it
/// beside the host's binary (`cargo build --workspace`, as tests/run.sh does) but gives the
/// host's tests no `CARGO_BIN_EXE_` for it.
#[allow(dead_code)]
pub fn hub_bin() -> std::path::PathBuf {
    let p = std::path::Path::new(env!("CARGO_BIN_EXE_crowdwall")).with_file_name("crowdwall-hub");
    assert!(
        p.exists(),
        "{} is missing: build the workspace first (cargo build --workspace, with the same profile)",
        p.display()
    );
    p
}

/// The crowdwall daemon running in a namespace, with its config, socket, state and log in
/// `dir`. Killed on drop.
pub struct Daemon {
    pub ns: String,
    pub dir: std::path::PathBuf,
    proc: Option<Proc>,
    /// Run under the unit's sandbox (tests/lab/sandbox.sh): read-only system, only
    /// `dir/state` and `dir/run` writable, CAP_NET_ADMIN alone, no new privileges.
    sandbox: bool,
}

impl Daemon {
    pub fn bin() -> &'static str {
        env!("CARGO_BIN_EXE_crowdwall")
    }

    /// Writes `config` to `dir/crowdwall.toml`; `start` runs the daemon on it.
    pub fn new(ns: &str, dir: &std::path::Path, config: &str) -> Daemon {
        std::fs::write(dir.join("crowdwall.toml"), config).expect("write daemon config");
        Daemon {
            ns: ns.to_string(),
            dir: dir.to_path_buf(),
            proc: None,
            sandbox: false,
        }
    }

    /// The same daemon, started under the unit's sandbox settings.
    pub fn sandboxed(mut self) -> Daemon {
        self.sandbox = true;
        self
    }

    /// The control socket: in the runtime directory when sandboxed (the only other
    /// writable place, like RuntimeDirectory=).
    pub fn socket(&self) -> std::path::PathBuf {
        if self.sandbox {
            self.dir.join("run").join("ctl.sock")
        } else {
            self.dir.join("ctl.sock")
        }
    }

    /// Starts the daemon and waits until it answers `status`.
    pub fn start(&mut self) {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.dir.join("daemon.log"))
            .expect("daemon log");
        let mut cmd = Command::new("ip");
        cmd.args(["netns", "exec", &self.ns]);
        if self.sandbox {
            cmd.arg(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/lab/sandbox.sh"))
                .arg(self.dir.join("state"))
                .arg(self.dir.join("run"))
                .arg("--");
        }
        let child = cmd
            .arg(Self::bin())
            .arg("--config")
            .arg(self.dir.join("crowdwall.toml"))
            .arg("--socket")
            .arg(self.socket())
            .arg("run")
            .arg("--state-dir")
            .arg(self.dir.join("state"))
            .stdout(std::process::Stdio::null())
            .stderr(log)
            .spawn()
            .expect("spawn daemon");
        self.proc = Some(Proc(child));
        let ok = wait_until(Duration::from_secs(20), || self.cli(&["status"]).0);
        assert!(ok, "daemon did not come up:\n{}", self.log());
    }

    /// The daemon's own pid (`ip netns exec` execs it).
    pub fn pid(&self) -> Option<u32> {
        self.proc.as_ref().map(|p| p.0.id())
    }

    pub fn kill9(&mut self) {
        if let Some(mut p) = self.proc.take() {
            let _ = run(&["kill", "-9", &p.0.id().to_string()]);
            let _ = p.0.wait();
        }
    }

    /// SIGTERM and wait: the daemon's exit status.
    pub fn terminate(&mut self) -> Option<std::process::ExitStatus> {
        let mut p = self.proc.take()?;
        let _ = run(&["kill", "-TERM", &p.0.id().to_string()]);
        p.0.wait().ok()
    }

    /// Runs the CLI against this daemon: success and stdout+stderr.
    pub fn cli(&self, args: &[&str]) -> (bool, String) {
        let o = Command::new(Self::bin())
            .arg("--config")
            .arg(self.dir.join("crowdwall.toml"))
            .arg("--socket")
            .arg(self.socket())
            .args(args)
            .output()
            .expect("run cli");
        (
            o.status.success(),
            format!(
                "{}{}",
                String::from_utf8_lossy(&o.stdout),
                String::from_utf8_lossy(&o.stderr)
            ),
        )
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("daemon.log")).unwrap_or_default()
    }

    pub fn decisions(&self) -> Vec<serde_json::Value> {
        let (ok, out) = self.cli(&["decisions", "list", "--json"]);
        assert!(ok, "{out}");
        serde_json::from_str::<serde_json::Value>(&out)
            .unwrap_or_else(|e| panic!("{e}: {out}"))
            .as_array()
            .cloned()
            .unwrap_or_default()
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        self.kill9();
    }
}
