//! End to end on real parts: the admin's own nftables rule in a server namespace logs the
//! packets it drops (`log prefix "..."`, kernel log -> journald, transport kernel); a port
//! scan from an attacker namespace gets the scanner dropped by crowdwall, a bystander
//! knocking on a few closed ports does not.

use std::process::{Command, Stdio};
use std::time::Duration;

use crate::common::netns::{assert_only_attacker_dropped, site, DOC};
use crate::common::nft::assert_not_in_table;
use crate::common::{must, prerequisites, wait_until, Daemon, Netns};

const SRV_ATK: &str = DOC.srv_atk;
const ATK: &str = DOC.atk;
const SRV_BY: &str = DOC.srv_by;
const BY: &str = DOC.by;
const OPEN: u16 = 8080;

/// The kernel logs packets of other network namespaces only with this sysctl; restored on
/// drop. Global, and this is the one test that sets it: the other tests' rules log to NFLOG
/// groups (`log group N`), which it does not govern, and no other daemon reads kernel lines.
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
            ns.command("nc")
                .args(["-z", "-w", "2", host, &p.to_string()])
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
    let site = site("cwps", &DOC);
    let (srv, atk, by) = (&site.srv, &site.atk, &site.by);
    let _log = LogAllNetns::enable();

    // The admin's ruleset: everything but the open port is logged and dropped.
    let prefix = format!("{}-drop: ", srv.name);
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
    let _tcp = srv.listen(OPEN);
    assert!(wait_until(Duration::from_secs(10), || atk.can_connect(SRV_ATK, OPEN)));

    let dir = tempfile::tempdir().unwrap();
    let d = Daemon::started(
        &srv.name,
        dir.path(),
        "[journal]\nmatches = [\"SYSLOG_IDENTIFIER=kernel\"]\n",
    );

    // A bystander trying three closed ports, twice: not a scan.
    knock(by, SRV_BY, [22, 25, 443].into_iter());
    knock(by, SRV_BY, [22, 25, 443].into_iter());
    // The scanner: 40 ports at once.
    knock(atk, SRV_ATK, 1000..1040);
    d.expect_in_kernel(srv, ATK, Duration::from_secs(15));
    assert_only_attacker_dropped(atk, by, &DOC, OPEN);
    assert_not_in_table(srv, BY);
    let mine = d.one_decision_on(ATK);
    assert_eq!(mine["scenario"], "port-scan", "{mine}");
}
