//! A port scan from an attacker namespace against a host whose drop rule logs to NFLOG gets
//! the attacker dropped: NFLOG source -> kernel-log parser -> port-scan scenario (distinct
//! destination ports) -> ban in the kernel set. Needs the sources and the parsers work merged.

mod common;

use std::time::Duration;

use common::{prerequisites, tag, veth, wait_until, Daemon, Netns};

const ATK: &str = "198.51.100.66";

#[test]
fn nflog_port_scan_gets_the_scanner_dropped() {
    if !prerequisites(&["ip", "nft", "nc"], false) {
        return;
    }
    let t = tag();
    let srv = Netns::new(format!("cwsr{t}s"));
    let atk = Netns::new(format!("cwsr{t}a"));
    veth(&srv, "192.0.2.1/24", &atk, &format!("{ATK}/24"));
    // veth() gives each side an address in its own /24: route the two prefixes.
    let _ = srv.exec(&[
        "ip",
        "route",
        "add",
        "198.51.100.0/24",
        "dev",
        &dev_of(&srv),
    ]);
    let _ = atk.exec(&["ip", "route", "add", "192.0.2.0/24", "dev", &dev_of(&atk)]);
    srv.must(&[
        "nft",
        "add table inet host; \
         add chain inet host input { type filter hook input priority 0; }; \
         add rule inet host input tcp dport != 22 log group 5 drop",
    ]);
    let dir = tempfile::tempdir().unwrap();
    let mut d = Daemon::new(
        &srv.name,
        dir.path(),
        "[journal]\nenabled = false\n[nflog]\nenabled = true\ngroup = 5\n",
    );
    d.start();
    // Before the scan the attacker reaches the host (SSH port is not dropped by the rule;
    // nothing listens, so a refusal is the answer: the packet got through).
    for p in 1000..1030u16 {
        atk.exec(&["nc", "-z", "-w", "1", "192.0.2.1", &p.to_string()]);
        if d.decisions().iter().any(|x| x["value"] == ATK) {
            break;
        }
    }
    let ok = wait_until(Duration::from_secs(20), || {
        d.decisions().iter().any(|x| x["value"] == ATK)
            && String::from_utf8_lossy(
                &srv.exec(&["nft", "list", "set", "inet", "crowdwall", "v4"])
                    .stdout,
            )
            .contains(ATK)
    });
    assert!(ok, "not banned: {:?}\n{}", d.decisions(), d.log());
}

fn dev_of(ns: &Netns) -> String {
    let out = String::from_utf8_lossy(&ns.exec(&["ip", "-o", "link", "show"]).stdout).into_owned();
    out.lines()
        .filter_map(|l| l.split(": ").nth(1))
        .map(|n| n.split('@').next().unwrap_or(n).to_string())
        .find(|n| n.starts_with("cw"))
        .unwrap_or_default()
}
