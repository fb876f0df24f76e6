//! End-to-end tests of the file, syslog and NFLOG sources and of `crowdwall reload`, on real
//! parts: the daemon in a network namespace with its nftables table, real files rotated with
//! mv and copytruncate, util-linux `logger` over UDP and a unix socket, NFLOG packets from a
//! real nft rule. Bans are checked in the kernel set.
//!
//! Missing root or tools: skipped with a message, unless CROWDWALL_REQUIRE_ROOT_TESTS=1.

use std::io::Write;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use crate::common::netns::{pair, Pair};
use crate::common::{must, prerequisites, wait_until, Daemon, Netns};

fn source(d: &Daemon, name: &str) -> serde_json::Value {
    d.status()["sources"]
        .as_array()
        .and_then(|a| a.iter().find(|s| s["name"] == name).cloned())
        .unwrap_or(serde_json::Value::Null)
}

/// Entries the core has processed (the batch is handled, not only read).
fn processed(d: &Daemon) -> u64 {
    d.status()["firewall"]["stats"]["entries"]
        .as_u64()
        .unwrap_or(0)
}

// (Addresses in one test are not adjacent: the set merges adjacent bans into one range, and
// `Daemon::expect_banned` looks an address up in the table's text.)

static PID: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(40_000);

/// A syslog line (RFC 3339 header, now) of one failed sshd password from `ip`.
fn fail_line(ip: &str) -> String {
    let pid = PID.fetch_add(1, Ordering::Relaxed);
    format!(
        "{} host sshd[{pid}]: Failed password for root from {ip} port {} ssh2\n",
        rfc3339_now(),
        pid % 60_000 + 1024
    )
}

fn rfc3339_now() -> String {
    let t = crowdwall_base::clock::now();
    crowdwall_base::time::format_rfc3339(t)
}

fn append(path: &Path, text: &str) {
    let mut f = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .unwrap();
    f.write_all(text.as_bytes()).unwrap();
}

fn fails(ip: &str, n: usize) -> String {
    (0..n).map(|_| fail_line(ip)).collect()
}

#[test]
fn files_through_rename_and_copytruncate_rotation_and_a_restart_lose_no_line() {
    if !prerequisites(&["ip", "nft"], false) {
        return;
    }
    let ns = Netns::tagged("cwsr");
    let dir = tempfile::tempdir().unwrap();
    let logs = dir.path().join("logs");
    std::fs::create_dir(&logs).unwrap();
    let auth = logs.join("auth.log");
    std::fs::write(&auth, "").unwrap();
    let mut d = Daemon::started(
        &ns.name,
        dir.path(),
        &format!(
            "[journal]\nenabled = false\n[[files]]\npaths = [\"{}\"]\n",
            logs.join("auth.lo?").display()
        ),
    );
    let mut written = 0u64;
    fn put_(written: &mut u64, path: &Path, text: &str) {
        *written += text.lines().count() as u64;
        append(path, text);
    }
    macro_rules! put {
        ($p:expr, $t:expr) => {
            put_(&mut written, $p, $t)
        };
    }

    // 1. rename rotation: A has 3 failures before, 1 appended to the renamed file by a writer
    // that still holds it, 2 in the new file: 6, exactly what ssh-bruteforce (capacity 5)
    // needs. A single lost line and A is not banned.
    const A: &str = "203.0.113.10";
    put!(&auth, &fails(A, 3));
    let mut old_writer = std::fs::OpenOptions::new()
        .append(true)
        .open(&auth)
        .unwrap();
    assert!(wait_until(Duration::from_secs(10), || processed(&d) >= 3));
    std::fs::rename(&auth, logs.join("auth.log.1")).unwrap();
    let l = fail_line(A);
    old_writer.write_all(l.as_bytes()).unwrap();
    written += 1;
    put!(&auth, &fails(A, 2));
    d.expect_banned(&ns, A);

    // 2. bad lines: several megabytes, invalid UTF-8, no header. Counted, skipped, and the
    // lines after them are read.
    let mut big = vec![b'x'; 5 * 1024 * 1024];
    big.push(b'\n');
    std::fs::OpenOptions::new()
        .append(true)
        .open(&auth)
        .unwrap()
        .write_all(&big)
        .unwrap();
    put!(&auth, "garbage without a header\n");
    std::fs::OpenOptions::new()
        .append(true)
        .open(&auth)
        .unwrap()
        .write_all(b"2026-11-28T00:00:00Z host sshd[1]: \xff\xfe bad\n")
        .unwrap();
    written += 2;

    // 3. copytruncate: B's first 3 lines are read, logrotate copies and truncates, then 3
    // more lines land in the emptied file.
    const B: &str = "203.0.113.20";
    put!(&auth, &fails(B, 3));
    let before = written;
    assert!(wait_until(Duration::from_secs(10), || {
        source(&d, "files")["lines"].as_u64() == Some(before)
    }));
    std::fs::copy(&auth, logs.join("auth.log.2")).unwrap();
    std::fs::OpenOptions::new()
        .write(true)
        .truncate(true)
        .open(&auth)
        .unwrap();
    put!(&auth, &fails(B, 3));
    d.expect_banned(&ns, B);

    let s = source(&d, "files");
    assert_eq!(s["skipped_too_long"], 1, "{s}");
    assert_eq!(s["skipped_invalid_utf8"], 1, "{s}");
    assert_eq!(s["skipped_malformed"], 1, "{s}");
    assert!(s["rotations"].as_u64() >= Some(1), "{s}");
    assert_eq!(s["truncations"], 1, "{s}");

    // 4. positions survive a restart, and a rotation while the daemon is down: C's 3
    // failures written while down then rotated away, 3 in the new file. (Buckets live in
    // memory, so all six come after the stop.) Lines read before the stop are not read again.
    const C: &str = "203.0.113.30";
    let target = written;
    assert!(wait_until(Duration::from_secs(10), || {
        source(&d, "files")["lines"].as_u64() == Some(target)
    }));
    // Processed (not just read), so the positions are committed.
    assert!(wait_until(Duration::from_secs(10), || processed(&d) >= 12));
    assert!(d.terminate().is_some_and(|s| s.success()));
    put!(&auth, &fails(C, 3));
    std::fs::rename(&auth, logs.join("auth.log.1")).unwrap();
    put!(&auth, &fails(C, 3));
    d.start();
    d.expect_banned(&ns, C);
    // Exactly the lines written since the stop were read: none twice, none skipped.
    let s = source(&d, "files");
    assert_eq!(s["lines"], 6, "{s}");
    assert_eq!(s["entries_read"], 6, "{s}");
    assert_eq!(processed(&d), 6);
}

#[test]
fn syslog_over_udp_and_a_unix_socket_in_3164_and_5424_bans() {
    if !prerequisites(&["ip", "nft", "logger", "nc"], false) {
        return;
    }
    let ns = Netns::tagged("cwsr");
    let dir = tempfile::tempdir().unwrap();
    let sock = dir.path().join("syslog.sock");
    let port = 5514;
    let d = Daemon::started(
        &ns.name,
        dir.path(),
        &format!(
            "[journal]\nenabled = false\n[syslog]\nenabled = true\nunix = \"{}\"\nudp = \"127.0.0.1:{port}\"\n\
             [nflog]\nenabled = true\ngroup = 9\n",
            sock.display()
        ),
    );
    // NFLOG through the daemon: a probe of a closed port on loopback, logged by a rule.
    ns.must(&[
        "nft",
        "add table inet cwf; \
         add chain inet cwf input { type filter hook input priority 0; }; \
         add rule inet cwf input tcp dport 9999 log group 9 drop",
    ]);
    ns.exec(&["nc", "-z", "-w", "1", "127.0.0.1", "9999"]);
    assert!(
        wait_until(Duration::from_secs(10), || source(&d, "nflog")
            ["entries_read"]
            .as_u64()
            >= Some(1)),
        "{}",
        d.status()
    );
    let msg =
        |ip: &str, i: u32| format!("Failed password for root from {ip} port {} ssh2", 2000 + i);

    // UDP with logger: RFC 3164 and RFC 5424 (util-linux's default for the network).
    const U: &str = "203.0.113.40";
    for i in 0..6u32 {
        let fmt = if i % 2 == 0 { "--rfc3164" } else { "--rfc5424" };
        ns.must(&[
            "logger",
            "--server",
            "127.0.0.1",
            "--port",
            &port.to_string(),
            "--udp",
            fmt,
            "-t",
            "sshd",
            &format!("--id={}", 3000 + i),
            &msg(U, i),
        ]);
    }
    d.expect_banned(&ns, U);

    // The unix socket with logger -u (the local form: no host name).
    const X: &str = "203.0.113.50";
    for i in 0..6u32 {
        must(&[
            "logger",
            "-u",
            sock.to_str().unwrap(),
            "-t",
            "sshd",
            &format!("--id={}", 4000 + i),
            &msg(X, i),
        ]);
    }
    d.expect_banned(&ns, X);

    // Raw datagrams: hostile ones first (too long, not UTF-8, no header), then RFC 5424 with
    // structured data. The listener counts the bad ones and goes on.
    const R: &str = "203.0.113.60";
    let datagrams: Vec<Vec<u8>> = {
        let mut v = vec![
            vec![b'a'; 60_000],
            b"<13>Nov 28 02:33:01 h sshd[1]: \xff\xfe".to_vec(),
            b"no header at all".to_vec(),
        ];
        for i in 0..6u32 {
            v.push(
                format!(
                    "<38>1 {} router sshd {} - [origin ip=\"{R}\"][x y=\"a\\]b\"] {}",
                    rfc3339_now(),
                    5000 + i,
                    msg(R, i)
                )
                .into_bytes(),
            );
        }
        v
    };
    ns.enter(move || {
        let s = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        for d in datagrams {
            s.send_to(&d, ("127.0.0.1", port)).unwrap();
        }
    });
    d.expect_banned(&ns, R);
    let s = source(&d, "syslog");
    assert_eq!(s["skipped_too_long"], 1, "{s}");
    assert_eq!(s["skipped_invalid_utf8"], 1, "{s}");
    assert_eq!(s["skipped_malformed"], 1, "{s}");
    assert_eq!(s["entries_read"], 18, "{s}");
}

#[test]
fn nflog_turns_dropped_probes_into_kernel_lines_with_source_and_port() {
    if !prerequisites(&["ip", "nft", "nc"], false) {
        return;
    }
    let Pair { srv, atk, .. } = pair("cwsr", "192.0.2.1/24", "192.0.2.66/24");
    srv.must(&[
        "nft",
        "add table inet cwf; \
         add chain inet cwf input { type filter hook input priority 0; }; \
         add rule inet cwf input tcp dport != 22 log prefix \"cw-scan: \" group 7 drop",
    ]);
    let (tx, mut rx) = tokio::sync::mpsc::channel(64);
    let stop = Arc::new(AtomicBool::new(false));
    let stats = Arc::new(crowdwall_daemon::source::nflog::NflogStats::default());
    let (st, ss) = (stop.clone(), stats.clone());
    let handle = srv.enter(move || {
        crowdwall_daemon::source::nflog::spawn(7, tx, st, ss).expect("bind nflog group 7")
    });
    // A second binding of the same group is refused with a clear reason.
    let again = srv.enter(move || {
        let (tx2, _rx2) = tokio::sync::mpsc::channel(1);
        crowdwall_daemon::source::nflog::spawn(
            7,
            tx2,
            Arc::new(AtomicBool::new(false)),
            Default::default(),
        )
        .err()
        .map(|e| e.to_string())
    });
    assert!(
        again.as_deref().is_some_and(|e| e.contains("group 7")),
        "{again:?}"
    );

    let ports = [21u16, 23, 25, 80, 443, 3306, 8080];
    for p in ports {
        // dropped: nc fails; the SYN was logged
        atk.exec(&["nc", "-z", "-w", "1", "192.0.2.1", &p.to_string()]);
    }
    let mut lines = Vec::new();
    let ok = wait_until(Duration::from_secs(10), || {
        while let Ok(b) = rx.try_recv() {
            lines.extend(b.entries);
        }
        ports.iter().all(|p| {
            lines
                .iter()
                .any(|e| e.message.contains(&format!(" DPT={p} ")))
        })
    });
    stop.store(true, Ordering::Relaxed);
    drop(rx);
    let _ = handle.join();
    assert!(ok, "got {lines:#?}");
    for e in &lines {
        assert_eq!(e.identifier, "kernel");
        assert!(e.message.starts_with("cw-scan: IN=cwa"), "{}", e.message);
        assert!(
            e.message.contains(" SRC=192.0.2.66 DST=192.0.2.1 "),
            "{}",
            e.message
        );
        assert!(e.message.contains(" PROTO=TCP "), "{}", e.message);
        assert!(e.message.contains(" SYN "), "{}", e.message);
    }
    assert_eq!(stats.malformed.load(Ordering::Relaxed), 0);
}

#[test]
fn reload_refuses_a_broken_config_keeps_the_running_one_and_applies_a_good_one() {
    if !prerequisites(&["ip", "nft"], false) {
        return;
    }
    let ns = Netns::tagged("cwsr");
    let dir = tempfile::tempdir().unwrap();
    let auth = dir.path().join("auth.log");
    std::fs::write(&auth, "").unwrap();
    let base = format!(
        "[journal]\nenabled = false\n[[files]]\npaths = [\"{}\"]\n",
        auth.display()
    );
    let d = Daemon::started(&ns.name, dir.path(), &base);
    let conf = dir.path().join("crowdwall.toml");

    // Broken (line 6): refused with file:line, nothing changes.
    std::fs::write(&conf, format!("{base}[ban]\nduration = \"4x\"\n")).unwrap();
    let (ok, out) = d.cli(&["reload"]);
    assert!(!ok, "{out}");
    assert!(out.contains("crowdwall.toml:6:"), "{out}");
    assert!(out.contains("running configuration stays"), "{out}");
    // A key that needs a restart is refused too.
    std::fs::write(&conf, format!("{base}[firewall]\ntable = \"other\"\n")).unwrap();
    let (ok, out) = d.cli(&["reload"]);
    assert!(
        !ok && out.contains("firewall") && out.contains("restart"),
        "{out}"
    );

    // The old scenarios still run: 3 failures do not ban (capacity 5).
    const G: &str = "203.0.113.30";
    append(&auth, &fails(G, 3));
    assert!(wait_until(Duration::from_secs(10), || processed(&d) >= 3));
    assert!(!d.has_decision(G));

    // Good: capacity 2 and a syslog listener. Applied, and the source is restarted.
    std::fs::write(
        &conf,
        format!(
            "{base}[scenarios.ssh-bruteforce]\ncapacity = 2\n[syslog]\nenabled = true\nudp = \"127.0.0.1:5515\"\n"
        ),
    )
    .unwrap();
    let (ok, out) = d.cli(&["reload"]);
    assert!(ok, "{out}");
    assert!(
        out.contains("scenarios") && out.contains("sources"),
        "{out}"
    );
    const H: &str = "203.0.113.31";
    append(&auth, &fails(H, 3));
    d.expect_banned(&ns, H);
    assert!(!source(&d, "syslog").is_null(), "{}", d.status());
    // The file was not re-read from the start by the source restart.
    assert_eq!(processed(&d), 6);

    // SIGHUP: allowlist 203.0.113.0/24. The next attacker overflows but is refused.
    std::fs::write(
        &conf,
        format!("{base}[scenarios.ssh-bruteforce]\ncapacity = 2\n[allowlist]\ncidrs = [\"203.0.113.0/24\"]\n"),
    )
    .unwrap();
    let pid = d.pid().unwrap().to_string();
    must(&["kill", "-HUP", &pid]);
    assert!(wait_until(Duration::from_secs(10), || d
        .log()
        .contains("changed: sources, allowlist")));
    const K: &str = "203.0.113.32";
    append(&auth, &fails(K, 3));
    assert!(wait_until(Duration::from_secs(10), || {
        d.status()["firewall"]["stats"]["refused_allowlisted"].as_u64() >= Some(1)
    }));
    assert!(!d.has_decision(K));
    // a broken SIGHUP is logged and changes nothing
    std::fs::write(&conf, "[[files]\n").unwrap();
    must(&["kill", "-HUP", &pid]);
    assert!(wait_until(Duration::from_secs(10), || d
        .log()
        .contains("SIGHUP: reload refused")));
    let (ok, out) = d.cli(&["status"]);
    assert!(ok, "{out}");
}
