//! An ssh lab on real parts for end-to-end tests: a server namespace running a real OpenSSH
//! server and a plain TCP listener, an attacker and a bystander namespace joined to it by veth
//! pairs, and a password-guessing attack with sshpass.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

use super::netns::{site, Addrs, Netns};
use super::prerequisites;
use super::proc::{must, spawn, wait_until, Proc};

/// The plain TCP port reachability is checked on.
pub const PORT: u16 = 8080;

/// Held by every test that runs a real sshd attack, for as long as it runs: those tests
/// never run at the same time, in one test binary as when each had its own. Every sshd logs
/// to the one journal and a daemon matching `SYSLOG_IDENTIFIER=sshd` reads every attack
/// (each test attacks from addresses of its own, so one test's attack is never another's
/// evidence), and the attacks (parallel ssh connections, PAM delays) are the heaviest load
/// of the suite: the 1 s bounds of the ssh test stay its own.
pub fn exclusive() -> MutexGuard<'static, ()> {
    static ATTACKS: Mutex<()> = Mutex::new(());
    // A test that failed while holding it poisons nothing that the next one relies on.
    ATTACKS.lock().unwrap_or_else(|e| e.into_inner())
}

/// Root, the tools of an attack, a writable journald and openssh-server (skip or fail as
/// [`prerequisites`] does).
pub fn ready() -> bool {
    if !prerequisites(&["ip", "nft", "sshpass", "ssh", "nc", "systemd-cat"], true) {
        return false;
    }
    assert!(Path::new("/usr/sbin/sshd").exists(), "needs openssh-server");
    true
}

/// Writes `dir/sshd_config`: password logins on port 22 of the `listen` addresses, logging
/// with syslog facility `facility` (AUTH, LOCAL1, ...), its pid file in `dir`.
pub fn write_sshd_config(dir: &Path, listen: &[&str], facility: &str) -> PathBuf {
    let conf = dir.join("sshd_config");
    let mut f = std::fs::File::create(&conf).unwrap();
    writeln!(f, "Port 22").unwrap();
    for a in listen {
        writeln!(f, "ListenAddress {a}").unwrap();
    }
    write!(
        f,
        "HostKey /etc/ssh/ssh_host_ed25519_key\nHostKey /etc/ssh/ssh_host_rsa_key\n\
         PidFile {}\nSyslogFacility {facility}\nLogLevel INFO\nUsePAM yes\n\
         PasswordAuthentication yes\nKbdInteractiveAuthentication no\nPermitRootLogin no\n\
         MaxAuthTries 6\nMaxStartups 100\n",
        dir.join("sshd.pid").display()
    )
    .unwrap();
    conf
}

/// A real sshd in `ns` (config in `dir`, checked with `sshd -t` first), in the foreground
/// under the returned `Proc`.
pub fn sshd(ns: &Netns, dir: &Path, listen: &[&str], facility: &str) -> Proc {
    let conf = write_sshd_config(dir, listen, facility);
    must(&["/usr/sbin/sshd", "-t", "-f", conf.to_str().unwrap()]);
    spawn(
        ns.command("/usr/sbin/sshd").arg("-D").arg("-f").arg(&conf),
        "sshd",
    )
}

/// `sshpass -p PASS ssh ... DEST` in `ns`, from the source address `bind` when given: one
/// password prompt, password authentication only, no host key checks (the lab's keys are
/// throwaway), output discarded; the caller adds the remote command.
pub fn sshpass(ns: &Netns, pass: &str, bind: Option<&str>, dest: &str) -> std::process::Command {
    let mut c = ns.command("sshpass");
    c.args(["-p", pass, "ssh"]);
    if let Some(b) = bind {
        c.args(["-b", b]);
    }
    c.args([
        "-o",
        "StrictHostKeyChecking=no",
        "-o",
        "UserKnownHostsFile=/dev/null",
        "-o",
        "PreferredAuthentications=password",
        "-o",
        "PubkeyAuthentication=no",
        "-o",
        "NumberOfPasswordPrompts=1",
        "-o",
        "ConnectTimeout=5",
        "-o",
        "BatchMode=no",
    ])
    .arg(dest)
    .stdin(Stdio::null())
    .stdout(Stdio::null())
    .stderr(Stdio::null());
    c
}

/// Failed password logins from the attacker: `conns` parallel connections. sshpass answers
/// one password prompt per connection and gives up at the second, so each connection is one
/// failed attempt (and several log lines: the parser must count it once).
pub fn attack(atk: &Netns, conns: usize, target: &str) {
    let mut kids = Vec::new();
    for i in 0..conns {
        let user = format!("nosuchuser{i}");
        kids.push(
            sshpass(atk, "wrong", None, &format!("{user}@{target}"))
                .arg("true")
                .spawn()
                .expect("sshpass"),
        );
    }
    // The ban lands mid-attack: connections still open then hang on dropped packets, so
    // give them a bounded time and kill the rest.
    let deadline = Instant::now() + Duration::from_secs(20);
    for mut k in kids {
        while Instant::now() < deadline {
            if let Ok(Some(_)) = k.try_wait() {
                break;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        let _ = k.kill();
        let _ = k.wait();
    }
}

/// The lab: a server namespace running a real sshd (facility AUTH) on both its addresses
/// and a plain TCP listener on [`PORT`], an attacker and a bystander namespace joined to it;
/// everything is torn down on drop, then the [`exclusive`] hold is released.
pub struct Lab {
    pub srv: Netns,
    pub atk: Netns,
    pub by: Netns,
    pub dir: tempfile::TempDir,
    pub _sshd: Proc,
    pub _tcp: Proc,
    _exclusive: MutexGuard<'static, ()>,
}

/// `prefix` keeps namespace names apart between tests (and from other suites).
pub fn lab(prefix: &str, a: &Addrs) -> Option<Lab> {
    if !ready() {
        return None;
    }
    let exclusive = exclusive();
    let s = site(prefix, a);
    let dir = tempfile::tempdir().unwrap();
    let sshd = sshd(&s.srv, dir.path(), &[a.srv_atk, a.srv_by], "AUTH");
    // Reachability is checked on a plain TCP listener beside sshd: the ban drops every
    // packet of the source, and bare connects to sshd would themselves count as probes
    // (kex_exchange_identification errors) and get the checker banned by ssh-probing.
    let tcp = s.srv.listen(PORT);
    assert!(
        wait_until(Duration::from_secs(10), || s.by.can_connect(a.srv_by, 22)),
        "sshd not reachable from the bystander"
    );
    assert!(
        wait_until(Duration::from_secs(10), || s
            .atk
            .can_connect(a.srv_atk, PORT)),
        "attacker reaches the server before any ban"
    );
    Some(Lab {
        srv: s.srv,
        atk: s.atk,
        by: s.by,
        dir,
        _sshd: sshd,
        _tcp: tcp,
        _exclusive: exclusive,
    })
}
