//! The daemon harness: `crowdwall run` in a network namespace with its config, socket, state
//! and log in a directory of the test's, the CLI against its socket, and the checks tests make
//! on it (status, decisions, bans in the kernel).

use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus, Stdio};
use std::time::Duration;

use serde_json::Value;

use super::cli::BIN;
use super::netns::Netns;
use super::nft;
use super::proc::{run, text, wait_until, Proc};

/// tests/lab/sandbox.sh: runs a command under the systemd unit's sandbox settings.
pub const SANDBOX_SH: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/lab/sandbox.sh");

/// The crowdwall daemon running in a namespace, with its config, socket, state and log in
/// `dir`. Killed on drop.
pub struct Daemon {
    pub ns: String,
    pub dir: PathBuf,
    proc: Option<Proc>,
    /// Run under the unit's sandbox (tests/lab/sandbox.sh): read-only system, only
    /// `dir/state` and `dir/run` writable, CAP_NET_ADMIN alone, no new privileges.
    sandbox: bool,
}

impl Daemon {
    pub fn bin() -> &'static str {
        BIN
    }

    /// Writes `config` to `dir/crowdwall.toml`; `start` runs the daemon on it.
    pub fn new(ns: &str, dir: &Path, config: &str) -> Daemon {
        std::fs::write(dir.join("crowdwall.toml"), config).expect("write daemon config");
        Daemon {
            ns: ns.to_string(),
            dir: dir.to_path_buf(),
            proc: None,
            sandbox: false,
        }
    }

    /// `new`, then `start`.
    pub fn started(ns: &str, dir: &Path, config: &str) -> Daemon {
        let mut d = Daemon::new(ns, dir, config);
        d.start();
        d
    }

    /// The same daemon, started under the unit's sandbox settings.
    pub fn sandboxed(mut self) -> Daemon {
        self.sandbox = true;
        self
    }

    /// The config file `new` wrote.
    pub fn config(&self) -> PathBuf {
        self.dir.join("crowdwall.toml")
    }

    /// The control socket: in the runtime directory when sandboxed (the only other
    /// writable place, like RuntimeDirectory=).
    pub fn socket(&self) -> PathBuf {
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
            cmd.arg(SANDBOX_SH)
                .arg(self.dir.join("state"))
                .arg(self.dir.join("run"))
                .arg("--");
        }
        let child = cmd
            .arg(BIN)
            .arg("--config")
            .arg(self.config())
            .arg("--socket")
            .arg(self.socket())
            .arg("run")
            .arg("--state-dir")
            .arg(self.dir.join("state"))
            .stdout(Stdio::null())
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
    pub fn terminate(&mut self) -> Option<ExitStatus> {
        let mut p = self.proc.take()?;
        let _ = run(&["kill", "-TERM", &p.0.id().to_string()]);
        p.0.wait().ok()
    }

    /// Runs the CLI against this daemon: success and stdout+stderr.
    pub fn cli(&self, args: &[&str]) -> (bool, String) {
        let o = self.cli_command(args).output().expect("run cli");
        (o.status.success(), text(&o))
    }

    /// The CLI command `cli` runs, to spawn one that keeps running (`log -f`).
    pub fn cli_command(&self, args: &[&str]) -> Command {
        let mut c = Command::new(BIN);
        c.arg("--config")
            .arg(self.config())
            .arg("--socket")
            .arg(self.socket())
            .args(args);
        c
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("daemon.log")).unwrap_or_default()
    }

    /// `status --json`, parsed; panics when the CLI fails.
    pub fn status(&self) -> Value {
        let (ok, out) = self.cli(&["status", "--json"]);
        assert!(ok, "{out}");
        serde_json::from_str(&out).unwrap_or_else(|e| panic!("{e}: {out}"))
    }

    /// `decisions list --json`, parsed; panics when the CLI fails.
    pub fn decisions(&self) -> Vec<Value> {
        let (ok, out) = self.cli(&["decisions", "list", "--json"]);
        assert!(ok, "{out}");
        serde_json::from_str::<Value>(&out)
            .unwrap_or_else(|e| panic!("{e}: {out}"))
            .as_array()
            .cloned()
            .unwrap_or_default()
    }

    /// The decisions whose value is `value` (an address or a range).
    pub fn decisions_on(&self, value: &str) -> Vec<Value> {
        self.decisions()
            .into_iter()
            .filter(|x| x["value"] == value)
            .collect()
    }

    /// The one decision on `value`; panics (listing every decision) unless there is exactly
    /// one.
    pub fn one_decision_on(&self, value: &str) -> Value {
        let all = self.decisions();
        let on: Vec<&Value> = all.iter().filter(|x| x["value"] == value).collect();
        assert_eq!(on.len(), 1, "decisions on {value}: {all:?}");
        on[0].clone()
    }

    /// Whether some decision is on `value`.
    pub fn has_decision(&self, value: &str) -> bool {
        self.decisions().iter().any(|x| x["value"] == value)
    }

    /// Waits up to `limit` until `ip` is in crowdwall's table in `ns` (this daemon's
    /// namespace); panics with the table and the daemon's log when it is not.
    pub fn expect_in_kernel(&self, ns: &Netns, ip: &str, limit: Duration) {
        let ok = wait_until(limit, || nft::crowdwall_table(ns).contains(ip));
        assert!(
            ok,
            "{ip} not in the kernel set within {limit:?}:\n{}\n{}",
            nft::crowdwall_table(ns),
            self.log()
        );
    }

    /// Waits (20 s at most) until `ip` is a decision and in crowdwall's table in `ns`; panics
    /// with decisions, table, status and log when it is not.
    pub fn expect_banned(&self, ns: &Netns, ip: &str) {
        let ok = wait_until(Duration::from_secs(20), || {
            self.has_decision(ip) && nft::crowdwall_table(ns).contains(ip)
        });
        assert!(
            ok,
            "{ip} not banned; decisions {:?}; kernel {}; status {}\n{}",
            self.decisions(),
            nft::crowdwall_table(ns),
            self.status(),
            self.log()
        );
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        self.kill9();
    }
}
