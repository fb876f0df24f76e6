//! The web, mail, FTP and port-scan scenarios end to end through the pure pipeline
//! (parse -> detect -> decide, as `crowdwall replay` and the daemon run it): what gets an
//! address banned, what does not, and user-defined parsers and overrides from the config.

use std::path::Path;

use crowdwall_base::time::SECOND;
use crowdwall_daemon::config::Config;
use crowdwall_engine::decide::Decision;
use crowdwall_engine::LogEntry;

fn cfg(extra: &str) -> Config {
    let base = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/config/crowdwall.toml"
    ))
    .unwrap();
    Config::parse(&format!("{base}\n{extra}"), Path::new("test.toml")).unwrap()
}

/// Feeds (seconds, identifier, message) and returns (scenario, address) of every decision.
fn run(cfg: &Config, lines: &[(f64, &str, String)]) -> Vec<(String, String)> {
    let mut r = cfg.replay().unwrap();
    let mut ds: Vec<Decision> = Vec::new();
    for (i, (t, id, msg)) in lines.iter().enumerate() {
        let e = LogEntry {
            time: 1_700_000_000 * SECOND + (t * SECOND as f64) as i64,
            identifier: id.to_string(),
            pid: Some(1000 + i as u32),
            message: msg.clone(),
        };
        r.feed(&e, None, &mut ds);
    }
    ds.iter()
        .map(|d| (d.scenario.clone(), d.value_text()))
        .collect()
}

fn access(ip: &str, method: &str, path: &str, status: u16, agent: &str) -> String {
    format!(
        r#"{ip} - - [14/Nov/2023:22:13:20 +0000] "{method} {path} HTTP/1.1" {status} 153 "-" "{agent}""#
    )
}

fn scenarios(d: &[(String, String)], ip: &str) -> Vec<String> {
    d.iter()
        .filter(|x| x.1 == ip)
        .map(|x| x.0.clone())
        .collect()
}

#[test]
fn web_probing_sensitive_traversal_admin_and_agents() {
    let c = cfg("");
    let mut lines = Vec::new();
    // a prober: 11 distinct missing pages in 5 s
    for i in 0..11 {
        lines.push((
            i as f64 * 0.5,
            "nginx",
            access(
                "198.51.100.1",
                "GET",
                &format!("/old/page{i}.php"),
                404,
                "Mozilla/5.0",
            ),
        ));
    }
    // a visitor clicking the same broken link 50 times, and missing images
    for i in 0..50 {
        lines.push((
            i as f64 * 0.1,
            "nginx",
            access("198.51.100.2", "GET", "/broken-link", 404, "Mozilla/5.0"),
        ));
        lines.push((
            i as f64 * 0.1,
            "nginx",
            access(
                "198.51.100.2",
                "GET",
                &format!("/img/{i}.png"),
                404,
                "Mozilla/5.0",
            ),
        ));
    }
    for (i, p) in [
        "/.env",
        "/.git/config",
        "/backup.sql",
        "/wp-config.php.bak",
        "/id_rsa",
    ]
    .iter()
    .enumerate()
    {
        lines.push((
            i as f64 * 0.5,
            "nginx",
            access("198.51.100.3", "GET", p, 404, "curl/8"),
        ));
    }
    for i in 0..4 {
        lines.push((
            i as f64,
            "nginx",
            access(
                "198.51.100.4",
                "GET",
                &format!("/static/..%2f..%2f{i}/etc/hosts"),
                400,
                "curl/8",
            ),
        ));
    }
    for (i, p) in ["/phpmyadmin/", "/pma/", "/wp-login.php"]
        .iter()
        .enumerate()
    {
        lines.push((
            i as f64,
            "apache2",
            access("198.51.100.5", "GET", p, 404, "Mozilla/5.0"),
        ));
    }
    for i in 0..2 {
        lines.push((
            i as f64,
            "nginx",
            access(
                "198.51.100.6",
                "GET",
                "/",
                200,
                "sqlmap/1.7.2#stable (https://sqlmap.org)",
            ),
        ));
    }
    let d = run(&c, &lines);
    assert_eq!(scenarios(&d, "198.51.100.1"), ["http-probing"], "{d:?}");
    assert!(scenarios(&d, "198.51.100.2").is_empty(), "{d:?}");
    assert_eq!(
        scenarios(&d, "198.51.100.3"),
        ["http-sensitive-files"],
        "{d:?}"
    );
    assert_eq!(
        scenarios(&d, "198.51.100.4"),
        ["http-path-traversal"],
        "{d:?}"
    );
    assert_eq!(
        scenarios(&d, "198.51.100.5"),
        ["http-admin-probing"],
        "{d:?}"
    );
    assert_eq!(
        scenarios(&d, "198.51.100.6"),
        ["http-bad-user-agent"],
        "{d:?}"
    );
}

#[test]
fn login_brute_force_on_web_mail_and_ftp() {
    let c = cfg("");
    let mut lines = Vec::new();
    for i in 0..6 {
        let t = i as f64;
        lines.push((t, "nginx", format!(r#"2023/11/14 22:13:2{i} [error] 7#7: *{i} user "admin": password mismatch, client: 198.51.100.10, server: x, request: "GET /private/ HTTP/1.1", host: "example.org""#)));
        lines.push((
            t,
            "nginx",
            access("198.51.100.11", "POST", "/login", 401, "Mozilla/5.0"),
        ));
        lines.push((
            t,
            "postfix/submission/smtpd",
            "warning: unknown[198.51.100.12]: SASL LOGIN authentication failed: UGFzc3dvcmQ6"
                .to_string(),
        ));
        lines.push((
            t,
            "vsftpd",
            format!("[pid {i}] [ftp{i}] FAIL LOGIN: Client \"198.51.100.13\""),
        ));
        lines.push((t * 5.0, "postfix/smtpd", "NOQUEUE: reject: RCPT from unknown[198.51.100.15]: 554 5.7.1 <x@example.org>: Relay access denied; from=<a@b> to=<x@example.org> proto=ESMTP helo=<b>".to_string()));
    }
    // one Dovecot connection that tried six passwords: one line, six attempts
    lines.push((0.0, "dovecot", "imap-login: Disconnected (auth failed, 6 attempts in 12 secs): user=<bob>, method=PLAIN, rip=198.51.100.14, lip=10.0.0.1, TLS".to_string()));
    // a user who mistyped twice
    for i in 0..2 {
        lines.push((i as f64, "dovecot", "imap-login: Aborted login (auth failed, 1 attempts in 2 secs): user=<me>, method=PLAIN, rip=198.51.100.16, lip=10.0.0.1".to_string()));
    }
    let d = run(&c, &lines);
    assert_eq!(scenarios(&d, "198.51.100.10"), ["http-bruteforce"], "{d:?}");
    assert_eq!(scenarios(&d, "198.51.100.11"), ["http-bruteforce"], "{d:?}");
    assert_eq!(scenarios(&d, "198.51.100.12"), ["mail-bruteforce"], "{d:?}");
    assert_eq!(scenarios(&d, "198.51.100.13"), ["ftp-bruteforce"], "{d:?}");
    assert_eq!(scenarios(&d, "198.51.100.14"), ["mail-bruteforce"], "{d:?}");
    assert_eq!(scenarios(&d, "198.51.100.15"), ["mail-probing"], "{d:?}");
    assert!(scenarios(&d, "198.51.100.16").is_empty(), "{d:?}");
}

fn kernel(src: &str, dpt: u16, flags: &str) -> String {
    format!("[ 1234.5] nft-drop: IN=eth0 OUT= MAC=52:54:00:12:34:56:52:54:00:65:43:21:08:00 SRC={src} DST=192.0.2.10 LEN=44 TOS=0x00 PREC=0x00 TTL=49 ID=54321 PROTO=TCP SPT=61000 DPT={dpt} WINDOW=1024 RES=0x00 {flags} URGP=0")
}

#[test]
fn port_scan_counts_distinct_ports_and_overrides_apply() {
    let mut lines = Vec::new();
    for p in 0..16u16 {
        lines.push((
            p as f64 * 0.1,
            "kernel",
            kernel("198.51.100.20", 1000 + p, "SYN"),
        ));
    }
    for i in 0..100 {
        lines.push((
            i as f64 * 0.01,
            "kernel",
            kernel("198.51.100.21", 443, "SYN"),
        ));
        lines.push((
            i as f64 * 0.01,
            "kernel",
            kernel("198.51.100.22", 1000 + i, "ACK"),
        ));
    }
    let d = run(&cfg(""), &lines);
    assert_eq!(scenarios(&d, "198.51.100.20"), ["port-scan"], "{d:?}");
    assert!(scenarios(&d, "198.51.100.21").is_empty(), "{d:?}");
    assert!(
        scenarios(&d, "198.51.100.22").is_empty(),
        "stray ACKs are not probes: {d:?}"
    );
    let d = run(&cfg("[scenarios.port-scan]\ncapacity = 30\n"), &lines);
    assert!(d.is_empty(), "{d:?}");
    let d = run(&cfg("[scenarios.port-scan]\nenabled = false\n"), &lines);
    assert!(d.is_empty(), "{d:?}");
}

#[test]
fn user_defined_parser_and_scenario() {
    let c = cfg(r#"
[parsers.gitea]
identifiers = ["gitea"]
[[parsers.gitea.rules]]
name = "failed"
kind = "auth_fail"
pattern = 'router: Failed authentication attempt for <user> from <ip>:<port>'

[scenarios.gitea-bruteforce]
service = "gitea"
kinds = ["auth_fail"]
capacity = 3
leak = "1m"
ban = "1h"
"#);
    let mut lines = Vec::new();
    for i in 0..4 {
        lines.push((
            i as f64,
            "gitea",
            format!(
                "router: Failed authentication attempt for x from 6.6.6.6:1 from 198.51.100.30:{}",
                4000 + i
            ),
        ));
    }
    // A file source naming the parser gives entries its name as identifier.
    for i in 0..4 {
        lines.push((
            i as f64,
            "gitea",
            format!("router: Failed authentication attempt for u{i} from 198.51.100.31:5000"),
        ));
    }
    let d = run(&c, &lines);
    assert_eq!(
        scenarios(&d, "198.51.100.30"),
        ["gitea-bruteforce"],
        "{d:?}"
    );
    assert_eq!(
        scenarios(&d, "198.51.100.31"),
        ["gitea-bruteforce"],
        "{d:?}"
    );
    assert!(scenarios(&d, "6.6.6.6").is_empty(), "{d:?}");
}
