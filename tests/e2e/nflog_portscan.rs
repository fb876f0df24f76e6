//! A port scan from an attacker namespace against a host whose drop rule logs to NFLOG gets
//! the attacker dropped: NFLOG source -> kernel-log parser -> port-scan scenario (distinct
//! destination ports) -> ban in the kernel set. Needs the sources and the parsers work merged.

use std::time::Duration;

use crate::common::netns::{pair, Pair};
use crate::common::nft::crowdwall_table;
use crate::common::{prerequisites, wait_until, Daemon};

const ATK: &str = "198.51.100.66";

#[test]
fn nflog_port_scan_gets_the_scanner_dropped() {
    if !prerequisites(&["ip", "nft", "nc"], false) {
        return;
    }
    let Pair {
        srv,
        atk,
        srv_dev,
        atk_dev,
    } = pair("cwnp", "192.0.2.1/24", &format!("{ATK}/24"));
    // Each side has an address in its own /24: route the two prefixes.
    let _ = srv.exec(&["ip", "route", "add", "198.51.100.0/24", "dev", &srv_dev]);
    let _ = atk.exec(&["ip", "route", "add", "192.0.2.0/24", "dev", &atk_dev]);
    srv.must(&[
        "nft",
        "add table inet host; \
         add chain inet host input { type filter hook input priority 0; }; \
         add rule inet host input tcp dport != 22 log group 5 drop",
    ]);
    let dir = tempfile::tempdir().unwrap();
    let d = Daemon::started(
        &srv.name,
        dir.path(),
        "[journal]\nenabled = false\n[nflog]\nenabled = true\ngroup = 5\n",
    );
    // Before the scan the attacker reaches the host (SSH port is not dropped by the rule;
    // nothing listens, so a refusal is the answer: the packet got through).
    for p in 1000..1030u16 {
        atk.exec(&["nc", "-z", "-w", "1", "192.0.2.1", &p.to_string()]);
        if d.has_decision(ATK) {
            break;
        }
    }
    let ok = wait_until(Duration::from_secs(20), || {
        d.has_decision(ATK) && crowdwall_table(&srv).contains(ATK)
    });
    assert!(ok, "not banned: {:?}\n{}", d.decisions(), d.log());
}
