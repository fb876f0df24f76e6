//! What a fail2ban user reaches for first, end to end in a network namespace: unban a range
//! or everything (`decisions delete --range`, `--all`) and see the kernel let the addresses
//! through again; forget an address's offences so its next ban starts over; the per-service
//! view (`decisions list --scenario`, counts per scenario, aligned columns); `status` in words
//! (file source, dropped packets per origin, allowlist); parser counters across a reload; a
//! refused reload in the daemon's log.

use std::io::Write;
use std::path::Path;
use std::time::Duration;

use crate::common::netns::{site, DOC};
use crate::common::nft::crowdwall_table;
use crate::common::{prerequisites, wait_until, Daemon, Netns};

const PORT: u16 = 2222;

#[test]
fn delete_range_and_all_lift_what_they_cover_in_the_kernel() {
    if !prerequisites(&["ip", "nft", "nc"], false) {
        return;
    }
    let s = site("cwdr", &DOC);
    let dir = tempfile::tempdir().unwrap();
    let d = Daemon::started(&s.srv.name, dir.path(), "[journal]\nenabled = false\n");
    let _l = s.srv.listen(PORT);
    assert!(
        s.atk.can_connect(DOC.srv_atk, PORT),
        "no connection before any ban"
    );

    // The attacker's address, a range around it, and the bystander: two inside
    // 198.51.100.0/24, one outside.
    for v in [DOC.atk, "198.51.100.64/26", DOC.by] {
        let (ok, out) = d.cli(&["decisions", "add", v, "--duration", "1h"]);
        assert!(ok, "{v}: {out}");
    }
    assert!(
        !s.atk.can_connect(DOC.srv_atk, PORT),
        "attacker not dropped"
    );
    assert!(!s.by.can_connect(DOC.srv_by, PORT), "bystander not dropped");

    // The old rule: an exact CIDR only. A /24 holding two decisions is not one of them.
    let (ok, out) = d.cli(&["decisions", "delete", "198.51.100.0/24"]);
    assert!(!ok, "{out}");
    assert!(out.contains("--range"), "the refusal names the way: {out}");

    let (ok, out) = d.cli(&["decisions", "delete", "--range", "198.51.100.0/24"]);
    assert!(ok, "{out}");
    assert!(
        out.contains("2 decision(s)") && out.contains(DOC.atk) && out.contains("198.51.100.64/26"),
        "{out}"
    );
    let left: Vec<String> = d
        .decisions()
        .iter()
        .map(|x| x["value"].as_str().unwrap_or("").to_string())
        .collect();
    assert_eq!(left, vec![DOC.by.to_string()]);
    let table = crowdwall_table(&s.srv);
    assert!(
        !table.contains(DOC.atk) && !table.contains("198.51.100.64"),
        "{table}"
    );
    assert!(
        wait_until(Duration::from_secs(5), || s
            .atk
            .can_connect(DOC.srv_atk, PORT)),
        "the attacker's address is still dropped after delete --range:\n{}",
        crowdwall_table(&s.srv)
    );
    assert!(
        !s.by.can_connect(DOC.srv_by, PORT),
        "outside the range: still banned"
    );

    // A range with nothing inside: said, exit 0, nothing changes.
    let (ok, out) = d.cli(&["decisions", "delete", "--range", "192.0.2.0/24"]);
    assert!(ok && out.contains("unbanned nothing"), "{out}");
    assert_eq!(d.decisions().len(), 1);

    let (ok, out) = d.cli(&["decisions", "delete", "--all"]);
    assert!(ok && out.contains("1 decision(s)"), "{out}");
    assert!(d.decisions().is_empty());
    assert!(
        wait_until(Duration::from_secs(5), || s
            .by
            .can_connect(DOC.srv_by, PORT)),
        "the bystander is still dropped after delete --all"
    );
    // Neither a value nor a flag: a usage error, not "unban everything".
    let (ok, out) = d.cli(&["decisions", "delete"]);
    assert!(!ok, "{out}");

    // The daemon's own log, through the CLI: what it did, as it said it (daemon.log is the
    // same lines on stderr, which a sysadmin without systemd may never see).
    let (ok, out) = d.cli(&["log", "-n", "200"]);
    assert!(ok, "{out}");
    assert!(
        out.contains(&format!("manual ban {}", DOC.atk)) && out.contains("unban all"),
        "{out}"
    );
    let (ok, out) = d.cli(&["log", "-n", "1"]);
    assert!(ok && out.lines().count() == 1, "{out}");
    // --follow prints what happens after it started.
    let mut follow = d
        .cli_command(&["log", "-f", "-n", "0"])
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("log -f");
    let stdout = follow.stdout.take().expect("stdout");
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        use std::io::BufRead;
        for l in std::io::BufReader::new(stdout)
            .lines()
            .map_while(Result::ok)
        {
            if tx.send(l).is_err() {
                break;
            }
        }
    });
    std::thread::sleep(Duration::from_millis(500));
    let (ok, out) = d.cli(&["decisions", "add", "192.0.2.200", "--reason", "follow me"]);
    assert!(ok, "{out}");
    let seen = (0..50).find_map(|_| {
        rx.recv_timeout(Duration::from_millis(200))
            .ok()
            .filter(|l| l.contains("manual ban 192.0.2.200"))
    });
    let _ = follow.kill();
    let _ = follow.wait();
    assert!(seen.is_some(), "log -f did not show the new ban");
}

static PID: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(20_000);

/// `n` failed sshd passwords from `ip`, as syslog lines (RFC 3339 header, now), each from
/// a pid of its own.
pub(crate) fn fails(ip: &str, n: usize) -> String {
    let now = crowdwall_base::time::format_rfc3339(crowdwall_base::clock::now());
    (0..n)
        .map(|_| {
            let pid = PID.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            format!(
                "{now} host sshd[{pid}]: Failed password for root from {ip} port {} ssh2\n",
                pid % 60_000 + 1024
            )
        })
        .collect()
}

fn append(path: &Path, text: &str) {
    std::fs::OpenOptions::new()
        .append(true)
        .open(path)
        .unwrap()
        .write_all(text.as_bytes())
        .unwrap();
}

/// The one decision's reason once `ip` is banned.
fn banned_reason(d: &Daemon, ns: &Netns, ip: &str) -> String {
    d.expect_banned(ns, ip);
    d.one_decision_on(ip)["reason"]
        .as_str()
        .unwrap_or("")
        .to_string()
}

#[test]
fn forget_resets_escalation_and_the_views_read_in_words() {
    if !prerequisites(&["ip", "nft"], false) {
        return;
    }
    let ns = Netns::tagged("cwdf");
    let dir = tempfile::tempdir().unwrap();
    let auth = dir.path().join("auth.log");
    std::fs::write(&auth, "").unwrap();
    // A 1 s blackhole: the same address may fire again a moment after its unban.
    let config = format!(
        "[journal]\nenabled = false\n[[files]]\npaths = [\"{}\"]\n[scenarios.ssh-bruteforce]\nblackhole = \"1s\"\n",
        auth.display()
    );
    let mut d = Daemon::started(&ns.name, dir.path(), &config);
    const A: &str = "203.0.113.77";

    append(&auth, &fails(A, 6));
    let first = banned_reason(&d, &ns, A);
    assert!(!first.contains("offence #"), "{first}");

    // The per-service view: filters, a count per scenario, columns under their header.
    let (ok, _) = d.cli(&["decisions", "add", "192.0.2.9", "--reason", "by hand"]);
    assert!(ok);
    let (ok, out) = d.cli(&["decisions", "list", "--scenario", "ssh-bruteforce"]);
    assert!(ok, "{out}");
    assert!(out.contains(A) && !out.contains("192.0.2.9"), "{out}");
    assert!(out.contains("1 decision(s): ssh-bruteforce 1"), "{out}");
    let (ok, out) = d.cli(&["decisions", "list"]);
    assert!(ok, "{out}");
    let lines: Vec<&str> = out.lines().collect();
    let col = |l: &str, name: &str| l.find(name);
    let header = lines[0];
    for row in &lines[1..3] {
        // Each row's value starts under VALUE and its origin under ORIGIN.
        let value_at = col(header, "VALUE").unwrap();
        let origin_at = col(header, "ORIGIN").unwrap();
        assert_eq!(&row[value_at - 2..value_at], "  ", "{out}");
        assert!(
            row[value_at..].starts_with(A) || row[value_at..].starts_with("192.0.2.9"),
            "{out}"
        );
        assert!(
            row[origin_at..].starts_with("local") || row[origin_at..].starts_with("manual"),
            "{out}"
        );
    }
    assert!(out.contains("2 decision(s):"), "{out}");
    let (ok, out) = d.cli(&["decisions", "list", "--ip", "192.0.2.9", "--json"]);
    assert!(ok, "{out}");
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v.as_array().map(|a| a.len()), Some(1), "{v}");

    // Unban and attack again: escalation, offence #2.
    let (ok, out) = d.cli(&["decisions", "delete", A]);
    assert!(ok, "{out}");
    std::thread::sleep(Duration::from_millis(1500));
    append(&auth, &fails(A, 6));
    let second = banned_reason(&d, &ns, A);
    assert!(second.contains("offence #2"), "{second}");

    // Forget: the next ban is a first offence again.
    let (ok, out) = d.cli(&["decisions", "delete", A]);
    assert!(ok, "{out}");
    let (ok, out) = d.cli(&["decisions", "forget", A]);
    assert!(ok && out.contains("forgot"), "{out}");
    let (ok, out) = d.cli(&["decisions", "forget", A]);
    assert!(ok && out.contains("nothing to forget"), "{out}");
    std::thread::sleep(Duration::from_millis(1500));
    append(&auth, &fails(A, 6));
    let third = banned_reason(&d, &ns, A);
    assert!(!third.contains("offence #"), "forgotten, yet: {third}");
    assert!(
        d.log()
            .contains("offence history of 203.0.113.77 forgotten"),
        "{}",
        d.log()
    );

    // status in words: the file source like the journal's line, drops and the allowlist.
    let (ok, out) = d.cli(&["status"]);
    assert!(ok, "{out}");
    assert!(
        out.contains("source files: 1 file(s) followed, 18 lines, 18 entries read, 0 skipped"),
        "{out}"
    );
    assert!(!out.contains("skipped_invalid_utf8"), "{out}");
    assert!(out.contains("dropped: local 0 packet(s)"), "{out}");
    assert!(
        out.contains("allowlist: loopback and link-local always"),
        "{out}"
    );

    // A reload that rebuilds the parsers keeps their counters.
    let sshd_lines = |d: &Daemon| d.status()["parsers"]["sshd"]["lines"].as_u64().unwrap_or(0);
    assert_eq!(sshd_lines(&d), 18);
    std::fs::write(d.config(), format!("{config}capacity = 6\n")).unwrap();
    let (ok, out) = d.cli(&["reload"]);
    assert!(ok && out.contains("scenarios"), "{out}");
    assert_eq!(sshd_lines(&d), 18, "parser counters reset by a reload");

    // A refused reload: the CLI says why, and so does the daemon's log.
    std::fs::write(d.config(), format!("{config}capacity = \"six\"\n")).unwrap();
    let (ok, out) = d.cli(&["reload"]);
    assert!(!ok, "{out}");
    assert!(
        wait_until(Duration::from_secs(5), || d
            .log()
            .contains("crowdwall reload: refused")),
        "no log line for a refused reload:\n{}",
        d.log()
    );
    d.terminate();
}
