//! The commands around the service parsers as an admin uses them: `replay --parser` on a web
//! server's own log, `explain` on every kind of line, a user-defined parser refused at its
//! line, and `import-fail2ban` on a fail2ban directory.

use crate::common::cli::{crowdwall, CONFIG};
use crate::common::proc::text;

#[test]
fn replay_an_nginx_access_log_bans_the_prober_only() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("access.log");
    let mut s = String::new();
    for i in 0..12 {
        s.push_str(&format!(
            "203.0.113.66 - - [28/Nov/2026:10:00:{:02} +0100] \"GET /probe{i}.php HTTP/1.1\" 404 153 \"-\" \"Mozilla/5.0\"\n",
            i
        ));
        s.push_str(&format!(
            "198.51.100.7 - - [28/Nov/2026:10:00:{:02} +0100] \"GET /missing.png HTTP/1.1\" 404 153 \"-\" \"Mozilla/5.0\"\n",
            i
        ));
    }
    std::fs::write(&log, s).unwrap();
    let o = crowdwall(&[
        "--config",
        CONFIG,
        "replay",
        "--parser",
        "nginx",
        log.to_str().unwrap(),
    ]);
    let t = text(&o);
    assert!(o.status.success(), "{t}");
    let decisions: Vec<serde_json::Value> = String::from_utf8_lossy(&o.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(decisions.len(), 1, "{t}");
    assert_eq!(decisions[0]["value"], "203.0.113.66");
    assert_eq!(decisions[0]["scenario"], "http-probing");
    // one new path a second, leaking 0.1 a second: the bucket of ten overflows about 10 s
    // after the first path (times come from the lines, with their zone applied)
    let created = decisions[0]["created"].as_str().unwrap();
    assert!(created.starts_with("2026-11-28T09:00:1"), "{t}");

    let o = crowdwall(&[
        "--config",
        CONFIG,
        "replay",
        "--parser",
        "nope",
        log.to_str().unwrap(),
    ]);
    assert!(!o.status.success());
    assert!(text(&o).contains("unknown parser 'nope'"), "{}", text(&o));
}

#[test]
fn explain_covers_every_parser() {
    let cases = [
        ("Nov 28 10:00:00 web nginx: 2026/11/28 10:00:00 [error] 7#7: *1 user \"bob\": password mismatch, client: 203.0.113.1, server: x, request: \"GET / HTTP/1.1\", host: \"x\"", "auth_fail"),
        ("[Sat Nov 28 10:00:00.1 2026] [auth_basic:error] [pid 1] [client 203.0.113.2:5] AH01618: user bob not found: /", "auth_fail"),
        ("Nov 28 10:00:00 mx postfix/smtpd[1]: NOQUEUE: reject: RCPT from unknown[203.0.113.3]: 554 5.7.1 <a@b>: Relay access denied; from=<x@y> to=<a@b> proto=ESMTP helo=<h>", "probe"),
        ("Nov 28 10:00:00 mx dovecot[1]: imap-login: Disconnected (auth failed, 2 attempts in 4 secs): user=<a>, method=PLAIN, rip=203.0.113.4, lip=10.0.0.1", "auth_fail"),
        ("Nov 28 10:00:00 ftp vsftpd[1]: [pid 2] [bob] FAIL LOGIN: Client \"203.0.113.5\"", "auth_fail"),
        ("Nov 28 10:00:00 ftp proftpd[1]: srv (h[203.0.113.6]) - USER bob (Login failed): Incorrect password.", "auth_fail"),
        ("Nov 28 10:00:00 ftp pure-ftpd: (?@203.0.113.7) [WARNING] Authentication failed for user [bob]", "auth_fail"),
        ("Nov 28 10:00:00 gw kernel: [ 1.0] drop IN=eth0 OUT= MAC=00 SRC=203.0.113.8 DST=10.0.0.1 LEN=40 PROTO=TCP SPT=1 DPT=3389 WINDOW=1 RES=0x00 SYN URGP=0", "port_probe"),
    ];
    for (line, kind) in cases {
        let o = crowdwall(&["--config", CONFIG, "explain", "--json", line]);
        let v: serde_json::Value =
            serde_json::from_slice(&o.stdout).unwrap_or_else(|e| panic!("{e}: {}", text(&o)));
        let evs = v["events"].as_array().unwrap();
        assert!(
            evs.iter()
                .any(|e| e["kind"] == kind && e["ip"].as_str().unwrap().starts_with("203.0.113.")),
            "{line}: {v}"
        );
    }
}

#[test]
fn user_defined_parser_is_explained_and_a_bad_pattern_refused_at_its_line() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("c.toml");
    std::fs::write(
        &cfg,
        "[parsers.gitea]\nidentifiers = [\"gitea\"]\n[[parsers.gitea.rules]]\nname = \"failed\"\nkind = \"auth_fail\"\npattern = 'Failed authentication attempt for <user> from <ip>:<port>'\n",
    )
    .unwrap();
    let c = cfg.to_str().unwrap();
    let o = crowdwall(&[
        "--config",
        c,
        "explain",
        "Nov 28 10:00:00 git gitea[3]: Failed authentication attempt for bob from 203.0.113.9:5000",
    ]);
    let t = text(&o);
    assert!(
        t.contains("parser gitea: pattern 'failed' matched") && t.contains("203.0.113.9"),
        "{t}"
    );
    let o = crowdwall(&[
        "--config",
        c,
        "explain",
        "--parser",
        "gitea",
        "Failed authentication attempt for bob from 203.0.113.9:5000",
    ]);
    assert!(text(&o).contains("auth_fail"), "{}", text(&o));

    std::fs::write(
        &cfg,
        "[parsers.gitea]\nidentifiers = [\"gitea\"]\n[[parsers.gitea.rules]]\nkind = \"auth_fail\"\npattern = 'Failed authentication attempt for <user> from (<ip>'\n",
    )
    .unwrap();
    let o = crowdwall(&["check-config", c]);
    assert!(!o.status.success());
    assert!(text(&o).contains("c.toml:5:"), "{}", text(&o));
}

#[test]
fn import_fail2ban_converts_and_reports() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("jail.d")).unwrap();
    std::fs::write(
        dir.path().join("jail.conf"),
        "[DEFAULT]\nbantime = 10m\nfindtime = 10m\nmaxretry = 5\nignoreip = 127.0.0.1/8 ::1\n\n[sshd]\nport = ssh\n\n[postfix]\nenabled = false\n",
    )
    .unwrap();
    std::fs::write(
        dir.path().join("jail.d/custom.local"),
        "[DEFAULT]\nbantime.increment = true\n[sshd]\nenabled = true\nmaxretry = 3\n[myapp]\nenabled = true\naction = mail-whois\n",
    )
    .unwrap();
    let o = crowdwall(&["import-fail2ban", dir.path().to_str().unwrap()]);
    let t = text(&o);
    assert!(o.status.success(), "{t}");
    let out = String::from_utf8_lossy(&o.stdout).to_string();
    assert!(
        out.contains("[scenarios.ssh-bruteforce]\ncapacity = 2\nleak = \"20m\""),
        "{out}"
    );
    assert!(out.contains("escalate = true"), "{out}");
    assert!(out.contains("\"127.0.0.0/8\""), "{out}");
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("[myapp]"), "{err}");
    // the output is a valid configuration
    let f = dir.path().join("out.toml");
    std::fs::write(&f, &out).unwrap();
    let o = crowdwall(&["check-config", f.to_str().unwrap()]);
    assert!(o.status.success(), "{}", text(&o));

    let o = crowdwall(&["import-fail2ban", "/nonexistent"]);
    assert!(!o.status.success());
}
