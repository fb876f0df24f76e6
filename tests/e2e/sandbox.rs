//! The daemon under the unit's sandbox, end to end on real parts (journald, sshd, the kernel
//! in network namespaces): it still bans, its metrics move, its lockout guard speaks. Its lab
//! holds `ssh_lab::exclusive`, so it never runs beside the ssh test's attack.

use std::io::Write;
use std::time::Duration;

use crate::common::daemon::SANDBOX_SH;
use crate::common::netns::{assert_only_attacker_dropped, Addrs};
use crate::common::ssh_lab::{attack, lab, PORT};
use crate::common::{Daemon, Netns};

const SANDBOX: Addrs = Addrs {
    srv_atk: "10.88.1.1",
    atk: "10.88.1.2",
    srv_by: "10.88.2.1",
    by: "10.88.2.2",
};

/// `GET /metrics` on the namespace's own loopback (the endpoint is loopback-only).
fn scrape(ns: &Netns, port: u16) -> String {
    use std::io::Read;
    ns.enter(|| {
        let mut c = std::net::TcpStream::connect(("127.0.0.1", port)).expect("connect");
        c.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        write!(
            c,
            "GET /metrics HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n"
        )
        .unwrap();
        let mut out = String::new();
        c.read_to_string(&mut out).expect("read");
        out
    })
}

/// The value of one sample (`name{labels}`), or -1 when absent.
fn metric(text: &str, key: &str) -> f64 {
    text.lines()
        .find_map(|l| l.strip_prefix(key)?.strip_prefix(' ')?.trim().parse().ok())
        .unwrap_or(-1.0)
}

/// The daemon under the unit's sandbox (read-only system, only its state and runtime
/// directories writable, CAP_NET_ADMIN alone, no new privileges: tests/lab/sandbox.sh) still
/// reads the journal and bans a real attacker; its Prometheus counters move with the attack;
/// the lockout guard names a logged-in admin whose address is not allowlisted.
#[test]
fn sandboxed_daemon_bans_an_attacker_and_its_metrics_move() {
    let Some(lab) = lab("cwsh", &SANDBOX) else {
        return;
    };
    let (srv, atk, by) = (&lab.srv, &lab.atk, &lab.by);
    let a = &SANDBOX;
    let dir = lab.dir.path();
    // A logged-in SSH admin on the bystander's address (our own pid keeps the record live).
    std::fs::write(
        dir.join("utmp"),
        crowdwall_daemon::lockout::record(
            "admin",
            "pts/7",
            a.by.parse().unwrap(),
            std::process::id() as i32,
            1_700_000_000,
        ),
    )
    .unwrap();
    // The package's drop-in directory: read at load, lands in the allowlist.
    std::fs::create_dir_all(dir.join("allow.d")).unwrap();
    std::fs::write(
        dir.join("allow.d/installer.list"),
        "# installer\n192.0.2.250\n",
    )
    .unwrap();
    let port = 9818;
    let config = format!(
        "[journal]\nmatches = [\"SYSLOG_IDENTIFIER=sshd\", \"SYSLOG_IDENTIFIER=sshd-session\"]\n\
         [metrics]\nenabled = true\nlisten = \"127.0.0.1:{port}\"\n\
         [lockout]\nutmp = \"{}\"\n\
         [allowlist]\ndir = \"{}\"\n",
        dir.join("utmp").display(),
        dir.join("allow.d").display()
    );
    let mut d = Daemon::new(&srv.name, dir, &config).sandboxed();
    d.start();

    // Really confined: one capability, no new privileges, and nothing but state/run writable.
    let pid = d.pid().expect("pid");
    let st = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    assert!(st.contains("CapEff:\t0000000000001000"), "{st}");
    assert!(st.contains("NoNewPrivs:\t1"), "{st}");
    let sandbox = SANDBOX_SH;
    let (state, run) = (dir.join("state"), dir.join("run"));
    let (state, run) = (state.to_str().unwrap(), run.to_str().unwrap());
    let escape = dir.join("escape");
    let o = srv.exec(&[sandbox, state, run, "--", "touch", escape.to_str().unwrap()]);
    assert!(
        !o.status.success(),
        "the sandbox let a write outside state/run through"
    );
    let o = srv.exec(&[
        sandbox,
        state,
        run,
        "--",
        "touch",
        &format!("{state}/probe"),
    ]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));

    // Lockout guard: the admin's address is named in status and in the log.
    let v = d.status();
    let un = v["lockout"]["unprotected_sessions"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    assert_eq!(un.len(), 1, "{v}");
    assert_eq!(un[0]["address"], a.by, "{v}");
    assert!(
        v["allowlist"]["from_dir"]
            .to_string()
            .contains("192.0.2.250/32"),
        "{v}"
    );
    assert!(d.log().contains("lockout risk"), "{}", d.log());
    let (ok, out) = d.cli(&["status"]);
    assert!(ok && out.contains("WARNING lockout risk"), "{out}");

    let before = scrape(srv, port);
    assert!(before.starts_with("HTTP/1.1 200"), "{before}");
    assert_eq!(
        metric(&before, "crowdwall_lockout_unprotected_sessions"),
        1.0,
        "{before}"
    );

    attack(atk, 8, a.srv_atk);
    d.expect_in_kernel(srv, a.atk, Duration::from_secs(15));
    assert_only_attacker_dropped(atk, by, a, PORT);

    let after = scrape(srv, port);
    let moved = |key: &str| {
        let (b, a) = (metric(&before, key), metric(&after, key));
        assert!(a > b && b >= 0.0, "{key}: {b} -> {a}\n{after}");
    };
    moved("crowdwall_bans_total{origin=\"local\"}");
    moved("crowdwall_source_entries_read_total{source=\"journal\"}");
    moved("crowdwall_parser_hits_total{parser=\"sshd\"}");
    moved("crowdwall_netlink_transactions_total");
    moved("crowdwall_netlink_transaction_duration_seconds_count");
    moved("crowdwall_decisions_active{origin=\"local\"}");
    moved("crowdwall_kernel_set_elements{family=\"v4\"}");
    assert!(
        after.lines().any(
            |l| l.starts_with("crowdwall_overflows_total{scenario=\"ssh-") && !l.ends_with(" 0")
        ),
        "{after}"
    );

    // `crowdwall metrics`: the same numbers as tables, and as JSON.
    let (ok, out) = d.cli(&["metrics"]);
    assert!(
        ok && out.contains("ssh-bruteforce") && out.contains("Parsers"),
        "{out}"
    );
    let (ok, out) = d.cli(&["metrics", "--json"]);
    assert!(ok, "{out}");
    let m: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert!(m["bans_local"].as_u64() >= Some(1), "{m}");
    // The cursor was written in the (only writable) state directory.
    assert!(dir.join("state/journal.cursor").exists());
}
