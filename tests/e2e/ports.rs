//! Bans limited to a service's ports (fail2ban's `nftables-multiport`), end to end in network
//! namespaces: a source banned by a scenario with `ports = [2222]` is dropped on 2222 and still
//! reaches another service; a manual ban with `--ports` likewise; the default still drops
//! every port; a list the config does not name is refused, not widened or narrowed in silence.

use std::io::Write;
use std::time::Duration;

use crate::common::netns::{site, DOC};
use crate::common::nft::crowdwall_table;
use crate::common::{prerequisites, wait_until, Daemon};

/// The limited service (sshd on a custom port, say).
use crate::decisions::fails;

const SSH: u16 = 2222;
/// Another service on the same host, which a port-limited ban leaves reachable.
const WEB: u16 = 8080;

#[test]
fn port_limited_bans_drop_their_ports_and_nothing_else() {
    if !prerequisites(&["ip", "nft", "nc"], false) {
        return;
    }
    let s = site("cwpt", &DOC);
    let dir = tempfile::tempdir().unwrap();
    let auth = dir.path().join("auth.log");
    std::fs::write(&auth, "").unwrap();
    // The sshd scenarios ban port 2222 only; the web scenario names 8080, which gives the
    // table a second list for the manual ban below.
    let config = format!(
        "[journal]\nenabled = false\n[[files]]\npaths = [\"{}\"]\n\
         [scenarios.ssh-bruteforce]\nports = [{SSH}]\n\
         [scenarios.ssh-slow-bruteforce]\nports = [{SSH}]\n\
         [scenarios.http-probing]\nports = [{WEB}]\n",
        auth.display()
    );
    let d = Daemon::started(&s.srv.name, dir.path(), &config);
    let _ssh = s.srv.listen(SSH);
    let _web = s.srv.listen(WEB);
    for port in [SSH, WEB] {
        assert!(
            s.atk.can_connect(DOC.srv_atk, port),
            "attacker cannot reach {port} before any ban"
        );
        assert!(
            s.by.can_connect(DOC.srv_by, port),
            "bystander cannot reach {port} before any ban"
        );
    }

    // A scenario's ban: dropped on its port, the other service still answers.
    std::fs::OpenOptions::new()
        .append(true)
        .open(&auth)
        .unwrap()
        .write_all(fails(DOC.atk, 6).as_bytes())
        .unwrap();
    d.expect_banned(&s.srv, DOC.atk);
    let table = crowdwall_table(&s.srv);
    assert!(
        table.contains("ports_p1") && table.contains(&format!("dport {SSH}")),
        "{table}"
    );
    assert!(
        wait_until(Duration::from_secs(5), || !s
            .atk
            .can_connect(DOC.srv_atk, SSH)),
        "the attacker still reaches {SSH}:\n{table}"
    );
    assert!(
        s.atk.can_connect(DOC.srv_atk, WEB),
        "a ban limited to {SSH} dropped {WEB}:\n{table}"
    );
    let row = d.one_decision_on(DOC.atk);
    assert_eq!(row["ports"], SSH.to_string(), "{row}");

    // A manual ban on another configured list, and one on a list the table has no sets for.
    let (ok, out) = d.cli(&["decisions", "add", DOC.by, "--ports", &WEB.to_string()]);
    assert!(ok && out.contains(&format!("port {WEB} only")), "{out}");
    assert!(
        wait_until(Duration::from_secs(5), || !s
            .by
            .can_connect(DOC.srv_by, WEB)),
        "the bystander still reaches {WEB}"
    );
    assert!(s.by.can_connect(DOC.srv_by, SSH), "{SSH} dropped too");
    let (ok, out) = d.cli(&["decisions", "add", "192.0.2.77", "--ports", "9999"]);
    assert!(!ok, "{out}");
    assert!(
        out.contains("no sets for that list") && out.contains(&SSH.to_string()),
        "the refusal names the lists it takes: {out}"
    );
    let (ok, out) = d.cli(&["decisions", "list"]);
    assert!(ok && out.contains("PORTS"), "{out}");

    // The default: a ban without ports drops every port.
    let (ok, out) = d.cli(&["decisions", "delete", DOC.by]);
    assert!(ok, "{out}");
    let (ok, out) = d.cli(&["decisions", "add", DOC.by]);
    assert!(ok && out.contains("all ports"), "{out}");
    assert!(
        wait_until(Duration::from_secs(5), || !s
            .by
            .can_connect(DOC.srv_by, SSH)
            && !s.by.can_connect(DOC.srv_by, WEB)),
        "a ban on every port let the bystander through:\n{}",
        crowdwall_table(&s.srv)
    );

    // Lifting the port-limited ban finds it in its own set.
    let (ok, out) = d.cli(&["decisions", "delete", DOC.atk]);
    assert!(ok, "{out}");
    assert!(
        wait_until(Duration::from_secs(5), || s
            .atk
            .can_connect(DOC.srv_atk, SSH)),
        "the attacker is still dropped on {SSH} after the unban:\n{}",
        crowdwall_table(&s.srv)
    );
}
