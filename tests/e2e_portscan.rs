//! End to end on real parts: the admin's own nftables rule in a server namespace logs the
//! packets it drops (`log prefix "..."`, kernel log -> journald, transport kernel); a port
//! scan from an attacker namespace gets the scanner dropped by crowdwall, a bystander
//! knocking on a few closed ports does not.

mod common;

use std::process::{Command, Stdio};
use std::time::Duration;

use common::{must, prerequisites, tag, veth, wait_until, Daemon, Netns, Proc};

const SRV_ATK: &str = "198.51.100.1";
const ATK: &str = "198.51.100.2";
const SRV_BY: &str = "203.0.113.1";
const BY: &str = "203.0.113.2";
const OPEN: u16 = 8080;

fn kernel_v4(ns: &Netns) -> String {
    let o = ns.exec(&["nft", "list", "set", "inet", "crowdwall", "v4"]);
    String::from_utf8_lossy(&o.stdout).into_owned()
}

/// The kernel logs packets of other network namespaces only with this sysctl; restored on
/// drop.
struct LogAllNetns(String);

impl LogAllNetns {
    fn enable() -> LogAllNetns {
        let old = std::fs::read_to_string("/proc/sys/net/netfilter/nf_log_all_netns")
            .unwrap_or_else(|_| "0".into());
        must(&["sysctl", "-q", "-w", "net.netfilter.nf_log_all_netns=1"]);
        LogAllNetns(old.trim().to_string())
    }
}

impl Drop for LogAllNetns {
    fn drop(&mut self) {
        let _ = Command::new("sysctl")
            .args([
                "-q",
                "-w",
                &format!("net.netfilter.nf_log_all_netns={}", self.0),
            ])
            .status();
    }
}

/// SYNs to `ports` at once (connections to closed, logged-and-dropped ports hang: bounded).
fn knock(ns: &Netns, host: &str, ports: impl Iterator<Item = u16>) {
    let kids: Vec<_> = ports
        .map(|p| {
            Command::new("ip")
                .args([
                    "netns",
                    "exec",
                    &ns.name,
                    "nc",
                    "-z",
                    "-w",
                    "2",
                    host,
                    &p.to_string(),
                ])
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .expect("nc")
        })
        .collect();
    for mut k in kids {
        let _ = k.wait();
    }
}

#[test]
fn port_scan_logged_by_the_admins_rule_gets_the_scanner_dropped() {
    if !prerequisites(&["ip", "nft", "nc", "sysctl", "systemd-cat"], true) {
        return;
    }
    let t = tag();
    let srv = Netns::new(format!("cwpa{t}s"));
    let atk = Netns::new(format!("cwpa{t}a"));
    let by = Netns::new(format!("cwpa{t}b"));
    veth(&srv, &format!("{SRV_ATK}/24"), &atk, &format!("{ATK}/24"));
    veth(&srv, &format!("{SRV_BY}/24"), &by, &format!("{BY}/24"));
    let _log = LogAllNetns::enable();

    // The admin's ruleset: everything but the open port is logged and dropped.
    let prefix = format!("cwpa{t}-drop: ");
    srv.must(&["nft", "add", "table", "inet", "admin"]);
    srv.must(&[
        "nft",
        "add",
        "chain",
        "inet",
        "admin",
        "input",
        "{ type filter hook input priority 0; policy accept; }",
    ]);
    srv.must(&[
        "nft",
        "add",
        "rule",
        "inet",
        "admin",
        "input",
        "iifname",
        "!=",
        "lo",
        "tcp",
        "dport",
        "!=",
        &OPEN.to_string(),
        "log",
        "prefix",
        &format!("\"{prefix}\""),
        "drop",
    ]);
    let _tcp = Proc(
        Command::new("ip")
            .args(["netns", "exec", &srv.name, "nc", "-lk", &OPEN.to_string()])
            .stdout(Stdio::null())
            .spawn()
            .expect("nc listener"),
    );
    assert!(wait_until(Duration::from_secs(10), || atk.can_connect(SRV_ATK, OPEN)));

    let dir = tempfile::tempdir().unwrap();
    let mut d = Daemon::new(
        &srv.name,
        dir.path(),
        "[journal]\nmatches = [\"SYSLOG_IDENTIFIER=kernel\"]\n",
    );
    d.start();

    // A bystander trying three closed ports, twice: not a scan.
    knock(&by, SRV_BY, [22, 25, 443].into_iter());
    knock(&by, SRV_BY, [22, 25, 443].into_iter());
    // The scanner: 40 ports at once.
    knock(&atk, SRV_ATK, 1000..1040);
    let banned = wait_until(Duration::from_secs(15), || kernel_v4(&srv).contains(ATK));
    assert!(
        banned,
        "scanner not in the kernel set:\n{}\n{}",
        kernel_v4(&srv),
        d.log()
    );
    assert!(
        !atk.can_connect(SRV_ATK, OPEN),
        "scanner still connects while banned"
    );
    assert!(
        by.can_connect(SRV_BY, OPEN),
        "bystander must not be affected"
    );
    assert!(!kernel_v4(&srv).contains(BY), "{}", kernel_v4(&srv));
    let ds = d.decisions();
    let mine: Vec<_> = ds.iter().filter(|x| x["value"] == ATK).collect();
    assert_eq!(mine.len(), 1, "{ds:?}");
    assert_eq!(mine[0]["scenario"], "port-scan", "{ds:?}");
}
