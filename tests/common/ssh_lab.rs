//! An ssh lab on real parts for end-to-end tests: a server namespace running a real OpenSSH
//! server and a plain TCP listener, an attacker and a bystander namespace joined to it by veth
//! pairs, and a password-guessing attack with sshpass.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use super::{must, prerequisites, tag, veth, wait_until, Netns, Proc};

/// The plain TCP port reachability is checked on.
pub const PORT: u16 = 8080;

/// The lab's addresses: server side and client of the attacker link, then of the bystander
/// link. Tests share the journal and every daemon reads every sshd line, so each lab attacks
/// from its own addresses: one test's attack is never another's evidence.
pub struct Addrs {
    pub srv_atk: &'static str,
    pub atk: &'static str,
    pub srv_by: &'static str,
    pub by: &'static str,
}

/// What crowdwall's table holds in the server namespace, read with the nft CLI (an
/// independent check of what the daemon's netlink code wrote). The whole table, so the check
/// holds whatever the set layout (one set per family, or per origin and family).
pub fn kernel_v4(ns: &Netns) -> String {
    let o = ns.exec(&["nft", "list", "table", "inet", "crowdwall"]);
    String::from_utf8_lossy(&o.stdout).into_owned()
}

pub fn write_sshd_config(dir: &Path, a: &Addrs) -> PathBuf {
    let conf = dir.join("sshd_config");
    let mut f = std::fs::File::create(&conf).unwrap();
    write!(
        f,
        "Port 22\nListenAddress {}\nListenAddress {}\n\
         HostKey /etc/ssh/ssh_host_ed25519_key\nHostKey /etc/ssh/ssh_host_rsa_key\n\
         PidFile {}\nSyslogFacility AUTH\nLogLevel INFO\nUsePAM yes\n\
         PasswordAuthentication yes\nKbdInteractiveAuthentication no\nPermitRootLogin no\n\
         MaxAuthTries 6\nMaxStartups 100\n",
        a.srv_atk,
        a.srv_by,
        dir.join("sshd.pid").display()
    )
    .unwrap();
    conf
}

/// Failed password logins from the attacker: `conns` parallel connections. sshpass answers
/// one password prompt per connection and gives up at the second, so each connection is one
/// failed attempt (and several log lines: the parser must count it once).
pub fn attack(atk: &Netns, conns: usize, target: &str) {
    let mut kids = Vec::new();
    for i in 0..conns {
        let user = format!("nosuchuser{i}");
        kids.push(
            Command::new("ip")
                .args([
                    "netns",
                    "exec",
                    &atk.name,
                    "sshpass",
                    "-p",
                    "wrong",
                    "ssh",
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
                .arg(format!("{user}@{target}"))
                .arg("true")
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .expect("sshpass"),
        );
    }
    // The ban lands mid-attack: connections still open then hang on dropped packets, so
    // give them a bounded time and kill the rest.
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    for mut k in kids {
        while std::time::Instant::now() < deadline {
            if let Ok(Some(_)) = k.try_wait() {
                break;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        let _ = k.kill();
        let _ = k.wait();
    }
}

/// The lab: a server namespace running a real sshd and a plain TCP listener, an attacker and
/// a bystander namespace joined to it; everything is torn down on drop.
pub struct Lab {
    pub srv: Netns,
    pub atk: Netns,
    pub by: Netns,
    pub dir: tempfile::TempDir,
    pub _sshd: Proc,
    pub _tcp: Proc,
}

/// `prefix` keeps namespace names apart between tests (and from other suites).
pub fn lab(prefix: &str, a: &Addrs) -> Option<Lab> {
    if !prerequisites(&["ip", "nft", "sshpass", "ssh", "nc", "systemd-cat"], true) {
        return None;
    }
    assert!(Path::new("/usr/sbin/sshd").exists(), "needs openssh-server");
    let t = tag();
    let srv = Netns::new(format!("{prefix}{t}s"));
    let atk = Netns::new(format!("{prefix}{t}a"));
    let by = Netns::new(format!("{prefix}{t}b"));
    veth(
        &srv,
        &format!("{}/24", a.srv_atk),
        &atk,
        &format!("{}/24", a.atk),
    );
    veth(
        &srv,
        &format!("{}/24", a.srv_by),
        &by,
        &format!("{}/24", a.by),
    );

    let dir = tempfile::tempdir().unwrap();
    let sshd_conf = write_sshd_config(dir.path(), a);
    must(&["/usr/sbin/sshd", "-t", "-f", sshd_conf.to_str().unwrap()]);
    let sshd = Proc(
        Command::new("ip")
            .args(["netns", "exec", &srv.name, "/usr/sbin/sshd", "-D", "-f"])
            .arg(&sshd_conf)
            .spawn()
            .expect("sshd"),
    );
    // Reachability is checked on a plain TCP listener beside sshd: the ban drops every
    // packet of the source, and bare connects to sshd would themselves count as probes
    // (kex_exchange_identification errors) and get the checker banned by ssh-probing.
    let tcp = Proc(
        Command::new("ip")
            .args(["netns", "exec", &srv.name, "nc", "-lk", &PORT.to_string()])
            .stdout(Stdio::null())
            .spawn()
            .expect("nc listener"),
    );
    assert!(
        wait_until(Duration::from_secs(10), || by.can_connect(a.srv_by, 22)),
        "sshd not reachable from the bystander"
    );
    assert!(
        wait_until(Duration::from_secs(10), || atk.can_connect(a.srv_atk, PORT)),
        "attacker reaches the server before any ban"
    );
    Some(Lab {
        srv,
        atk,
        by,
        dir,
        _sshd: sshd,
        _tcp: tcp,
    })
}
