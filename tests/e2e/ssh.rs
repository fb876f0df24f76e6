//! End to end on real parts: a real journald, a real OpenSSH server in a server namespace, an
//! attacker and a bystander namespace joined to it by veth pairs, and the crowdwall daemon
//! enforcing in the server namespace's kernel.

use std::time::{Duration, Instant};

use crate::common::netns::{assert_only_attacker_dropped, DOC};
use crate::common::nft::{self, crowdwall_table};
use crate::common::ssh_lab::{attack, lab, PORT};
use crate::common::{journald, wait_until, Daemon};

const SRV_ATK: &str = DOC.srv_atk;
const ATK: &str = DOC.atk;

#[test]
fn ssh_bruteforce_is_dropped_by_the_kernel_and_bans_survive_a_crash() {
    let Some(lab) = lab("cwe", &DOC) else {
        return;
    };
    let (srv, atk, by) = (&lab.srv, &lab.atk, &lab.by);
    let dir = lab.dir.path();

    let mut d = Daemon::started(
        &srv.name,
        dir,
        "[journal]\nmatches = [\"SYSLOG_IDENTIFIER=sshd\", \"SYSLOG_IDENTIFIER=sshd-session\"]\n",
    );

    // 1. Real failed logins get the attacker dropped; the bystander still connects.
    attack(atk, 8, SRV_ATK);
    d.expect_in_kernel(srv, ATK, Duration::from_secs(15));
    assert_only_attacker_dropped(atk, by, &DOC, PORT);
    let local = d.one_decision_on(ATK);
    assert_eq!(local["origin"], "local");
    assert!(
        local["scenario"].as_str().unwrap_or("").starts_with("ssh-"),
        "{local}"
    );

    // Someone flushes the ruleset: nftables' events tell the daemon at once, and the ban is
    // back within the second (the bound; the periodic check alone would take 2 s).
    let t = Instant::now();
    srv.must(&["nft", "flush", "ruleset"]);
    assert!(
        wait_until(Duration::from_secs(1), || crowdwall_table(srv)
            .contains(ATK)),
        "table not restored within 1 s of a flush:\n{}",
        d.log()
    );
    eprintln!("ban restored {:?} after nft flush ruleset", t.elapsed());
    // Someone deletes the element by hand: re-added at once too.
    srv.must(&[
        "nft",
        "delete",
        "element",
        "inet",
        "crowdwall",
        "local_v4",
        &format!("{{ {ATK} }}"),
    ]);
    assert!(
        wait_until(Duration::from_secs(1), || crowdwall_table(srv)
            .contains(ATK)),
        "deleted ban not re-added:\n{}",
        d.log()
    );
    assert!(
        !atk.can_connect(SRV_ATK, PORT),
        "attacker connects after the heal"
    );

    // 2. `decisions delete` restores the attacker at once.
    let (ok, out) = d.cli(&["decisions", "delete", ATK]);
    assert!(ok, "{out}");
    assert!(!crowdwall_table(srv).contains(ATK));
    assert!(
        atk.can_connect(SRV_ATK, PORT),
        "attacker should connect after delete"
    );

    // 3. A manual ban and a short one, then kill -9: the kernel keeps enforcing.
    let (ok, out) = d.cli(&[
        "decisions",
        "add",
        ATK,
        "--duration",
        "1h",
        "--reason",
        "e2e",
    ]);
    assert!(ok, "{out}");
    // A re-ban with a longer duration: the kernel element's timeout grows (delete + add in one
    // transaction, which works on Debian 12's 6.1 kernel too).
    let manual_set = || nft::list(srv, &["set", "inet", "crowdwall", "manual_v4"]);
    // (The timeout is computed at send time: 1h shows as 59m59s9xxms.)
    let has = |t: &str, alt: &str| {
        let s = manual_set();
        s.contains(&format!("timeout {t} ")) || s.contains(&format!("timeout {alt}"))
    };
    assert!(has("1h", "59m59s"), "{}", manual_set());
    let (ok, out) = d.cli(&["decisions", "add", ATK, "--duration", "5h"]);
    assert!(ok, "{out}");
    assert!(has("5h", "4h59m59s"), "{}", manual_set());
    let (ok, out) = d.cli(&["decisions", "add", "192.0.2.77", "--duration", "4s"]);
    assert!(ok, "{out}");
    assert!(crowdwall_table(srv).contains("192.0.2.77"));
    d.kill9();
    assert!(
        !atk.can_connect(SRV_ATK, PORT),
        "ban must hold while the daemon is dead"
    );
    assert!(
        wait_until(Duration::from_secs(10), || !crowdwall_table(srv)
            .contains("192.0.2.77")),
        "short ban did not expire in the kernel: {}",
        crowdwall_table(srv)
    );
    assert!(
        crowdwall_table(srv).contains(ATK),
        "the 1h ban must still be there"
    );

    // 4. Written while the daemon is down: must be read after the restart.
    let lines: Vec<String> = (0..6)
        .map(|i| {
            format!(
                "Failed password for invalid user ghost{i} from 192.0.2.99 port {} ssh2",
                40000 + i
            )
        })
        .collect();
    journald::systemd_cat("sshd", &lines);

    d.start();
    assert!(
        wait_until(Duration::from_secs(10), || crowdwall_table(srv)
            .contains("192.0.2.99")),
        "entries written while down were skipped:\n{}",
        d.log()
    );
    // 5. Old lines are not re-counted: the attack of step 1 lies before the saved cursor, so
    //    the only decision on the attacker is still the manual one (a re-read would have made a
    //    new local one), and once that is lifted the attacker stays free.
    let on_atk = d.decisions_on(ATK);
    // (Two manual decisions: the 1h ban and its 5h re-ban.)
    assert_eq!(on_atk.len(), 2, "re-counted after restart? {on_atk:?}");
    assert!(on_atk.iter().all(|x| x["origin"] == "manual"), "{on_atk:?}");
    let (ok, out) = d.cli(&["decisions", "delete", ATK]);
    assert!(ok, "{out}");
    std::thread::sleep(Duration::from_secs(2));
    assert!(
        atk.can_connect(SRV_ATK, PORT),
        "attacker should connect once the manual ban is lifted:\n{}\n{:?}\n{}",
        crowdwall_table(srv),
        d.decisions(),
        d.log()
    );
    assert!(!d.has_decision(ATK), "{:?}", d.decisions());
    let (ok, status) = d.cli(&["status"]);
    assert!(ok, "{status}");
    assert!(status.contains("firewall inet crowdwall"), "{status}");
}
