//! The `crowdwall` command as an admin uses it: config checks, replay, explain, and (as root,
//! in a network namespace) refusal of a broken config and the table's life cycle.

use std::process::{Command, Output};

use crate::common::cli::{crowdwall, fixture, BIN, CONFIG};
use crate::common::proc::text;
use crate::common::{prerequisites, Daemon, Netns};

#[test]
fn check_config_accepts_the_default_and_names_line_of_a_broken_one() {
    let o = crowdwall(&["check-config", CONFIG]);
    assert!(o.status.success(), "{}", text(&o));
    assert!(text(&o).contains("ok (17 scenario(s)"), "{}", text(&o));

    let dir = tempfile::tempdir().unwrap();
    let bad = dir.path().join("bad.toml");
    std::fs::write(
        &bad,
        "[ban]\nduration = \"4h\"\n\n[scenarios.ssh-bruteforce]\nleak = \"ten seconds\"\n",
    )
    .unwrap();
    let o = crowdwall(&["check-config", bad.to_str().unwrap()]);
    assert!(!o.status.success());
    let msg = text(&o);
    assert!(msg.contains(&format!("{}:5:", bad.display())), "{msg}");
    assert!(msg.contains("duration"), "{msg}");

    std::fs::write(&bad, "[firewall]\ntabel = \"x\"\n").unwrap();
    let o = crowdwall(&["check-config", bad.to_str().unwrap()]);
    assert!(!o.status.success());
    assert!(text(&o).contains("tabel"), "{}", text(&o));

    let o = crowdwall(&["check-config", "/nonexistent/crowdwall.toml"]);
    assert!(!o.status.success());
    assert!(text(&o).contains("cannot read"), "{}", text(&o));
}

fn decided_values(o: &Output) -> Vec<String> {
    String::from_utf8_lossy(&o.stdout)
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).expect("JSON line"))
        .map(|v| v["value"].as_str().unwrap_or("").to_string())
        .collect()
}

#[test]
fn replay_bans_the_brute_forcer_not_the_prober_from_syslog_and_json() {
    for f in ["sshd-burst.log", "sshd-burst.json"] {
        let o = crowdwall(&["--config", CONFIG, "replay", &fixture(f)]);
        assert!(o.status.success(), "{f}: {}", text(&o));
        // 203.0.113.50: 3 attempts on one connection (10 lines) + 3 more = 6 -> banned.
        // 198.51.100.60: one attempt written as 5 lines -> not banned.
        assert_eq!(
            decided_values(&o),
            vec!["203.0.113.50"],
            "{f}: {}",
            text(&o)
        );
    }
}

#[test]
fn replay_events_never_carry_an_injected_address() {
    let o = crowdwall(&[
        "--config",
        CONFIG,
        "replay",
        "--events",
        &fixture("sshd-burst.log"),
    ]);
    assert!(o.status.success(), "{}", text(&o));
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(!out.contains("\"ip\":\"6.6.6.6\""), "{out}");
    assert!(out.contains("\"ip\":\"192.0.2.44\""), "{out}");
    // attempts, not lines: the prober's single attempt is one auth_fail event.
    let prober_fails = out
        .lines()
        .filter(|l| l.contains("198.51.100.60") && l.contains("auth_fail"))
        .count();
    assert_eq!(prober_fails, 1, "{out}");
}

#[test]
fn replay_counts_and_skips_unreadable_lines() {
    let dir = tempfile::tempdir().unwrap();
    let f = dir.path().join("mixed.log");
    let mut body = std::fs::read_to_string(fixture("sshd-burst.log")).unwrap();
    body.insert_str(0, "this is not syslog\n{\"broken json\n");
    std::fs::write(&f, body).unwrap();
    let o = crowdwall(&["--config", CONFIG, "replay", f.to_str().unwrap()]);
    assert!(o.status.success(), "{}", text(&o));
    assert!(text(&o).contains("2 unreadable"), "{}", text(&o));
    assert_eq!(decided_values(&o), vec!["203.0.113.50"]);
}

#[test]
fn explain_shows_pattern_event_or_why_none() {
    let o = crowdwall(&[
        "explain",
        "Failed password for root from 203.0.113.7 port 4242 ssh2",
    ]);
    let t = text(&o);
    assert!(o.status.success(), "{t}");
    assert!(
        t.contains("matched") && t.contains("auth_fail") && t.contains("203.0.113.7"),
        "{t}"
    );

    let o = crowdwall(&[
        "explain",
        "--json",
        "Nov 28 10:00:00 host sshd[7]: Invalid user x from 6.6.6.6 port 22 from 192.0.2.8 port 5",
    ]);
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    let ips: Vec<&str> = v["events"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|e| e["ip"].as_str())
        .collect();
    assert_eq!(ips, vec!["192.0.2.8"], "{v}");

    let o = crowdwall(&["explain", "Nov 28 10:00:00 host CRON[7]: (root) CMD (true)"]);
    assert!(
        text(&o).contains("no parser for identifier 'CRON'"),
        "{}",
        text(&o)
    );
    let o = crowdwall(&[
        "explain",
        "Accepted publickey for bob from 192.0.2.1 port 22 ssh2: ED25519 SHA256:x",
    ]);
    assert!(text(&o).contains("success"), "{}", text(&o));
    let o = crowdwall(&["explain", "Server listening on 0.0.0.0 port 22."]);
    assert!(text(&o).contains("no pattern matched"), "{}", text(&o));
}

#[test]
fn cli_without_daemon_says_so_with_exit_code_3() {
    let o = crowdwall(&["--socket", "/nonexistent/ctl.sock", "decisions", "list"]);
    assert_eq!(o.status.code(), Some(3), "{}", text(&o));
    let t = text(&o);
    assert!(t.contains("is it running"), "{t}");
    // The cause once, not twice (anyhow's chain used to repeat it).
    assert_eq!(t.matches("No such file or directory").count(), 1, "{t}");
    // A hint that applies on this host.
    if std::path::Path::new("/run/systemd/system").is_dir() {
        assert!(t.contains("systemctl status crowdwall"), "{t}");
    } else {
        assert!(!t.contains("systemctl"), "{t}");
        assert!(t.contains("crowdwall run"), "{t}");
    }
}

/// Every subcommand's path (`decisions list`), from the `Commands:` sections of --help.
fn subcommands(path: &[String]) -> Vec<Vec<String>> {
    let mut args: Vec<&str> = path.iter().map(|s| s.as_str()).collect();
    args.push("--help");
    let o = crowdwall(&args);
    assert!(o.status.success(), "{args:?}: {}", text(&o));
    let help = String::from_utf8_lossy(&o.stdout).to_string();
    let mut out = vec![path.to_vec()];
    let mut in_commands = false;
    for line in help.lines() {
        if line.starts_with("Commands:") {
            in_commands = true;
            continue;
        }
        if in_commands {
            if line.trim().is_empty() || !line.starts_with("  ") {
                in_commands = false;
                continue;
            }
            let name = line.split_whitespace().next().unwrap_or("");
            if name != "help" {
                let mut p = path.to_vec();
                p.push(name.to_string());
                out.extend(subcommands(&p));
            }
        }
    }
    out
}

/// --help of every subcommand explains every argument and option, says each default once,
/// and lists what README names; the man pages crowdwall.1 refers to all exist.
#[test]
fn help_and_man_pages_are_complete() {
    let all = subcommands(&[]);
    let names: Vec<String> = all.iter().map(|p| p.join(" ")).collect();
    for want in [
        "decisions list",
        "decisions delete",
        "decisions forget",
        "generate",
        "reload",
    ] {
        assert!(
            names.contains(&want.to_string()),
            "{want} not in --help: {names:?}"
        );
    }
    for p in &all {
        let mut args: Vec<&str> = p.iter().map(|s| s.as_str()).collect();
        args.push("--help");
        let help = String::from_utf8_lossy(&crowdwall(&args).stdout).to_string();
        let mut section = "";
        let lines: Vec<&str> = help.lines().collect();
        for (i, line) in lines.iter().enumerate() {
            if !line.starts_with(' ') && line.ends_with(':') {
                section = line;
                continue;
            }
            if section != "Options:" && section != "Arguments:" {
                continue;
            }
            let t = line.trim_start();
            let is_item = |t: &str| t.starts_with('-') || t.starts_with('<') || t.starts_with('[');
            // An option or argument line; its description follows two spaces later, or on
            // the next line, indented further (clap's layout for long help).
            if is_item(t) {
                let indent = line.len() - t.len();
                let next_describes = lines.get(i + 1).is_some_and(|n| {
                    let nt = n.trim_start();
                    !nt.is_empty() && n.len() - nt.len() > indent && !is_item(nt)
                });
                let described =
                    t.split("  ").skip(1).any(|d| !d.trim().is_empty()) || next_describes;
                assert!(
                    described,
                    "`crowdwall {}`: no help for `{t}`:\n{help}",
                    p.join(" ")
                );
            }
            assert!(
                !(line.contains("(default:") && line.contains("[default:")),
                "`crowdwall {}`: default said twice: {line}",
                p.join(" ")
            );
        }
    }

    let dir = tempfile::tempdir().unwrap();
    let o = crowdwall(&["generate", dir.path().to_str().unwrap()]);
    assert!(o.status.success(), "{}", text(&o));
    let man = std::fs::read_to_string(dir.path().join("crowdwall.1")).unwrap();
    let mut refs = 0;
    for w in man.split(|c: char| c.is_whitespace() || c == ',') {
        let w = w.replace("\\-", "-");
        if let Some(name) = w.strip_suffix("(1)") {
            if name.starts_with("crowdwall-") {
                refs += 1;
                assert!(
                    dir.path().join(format!("{name}.1")).exists(),
                    "crowdwall.1 refers to {name}(1), which generate did not write"
                );
            }
        }
    }
    assert!(refs >= 5, "crowdwall.1 names its subcommands' pages: {man}");
    let list = std::fs::read_to_string(dir.path().join("crowdwall-decisions-list.1")).unwrap();
    assert!(list.contains("scenario"), "{list}");
}

/// README's "Using it" commands are commands of this CLI; the stale bits the first-hour walk
/// tripped over stay gone.
#[test]
fn readme_commands_exist_and_the_stale_bits_are_gone() {
    let readme =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/README.md")).unwrap();
    let mut checked = 0;
    for line in readme.lines() {
        let Some(rest) = line.strip_prefix("    crowdwall ") else {
            continue;
        };
        // The words before the first option, argument or comment: the subcommand path.
        let path: Vec<&str> = rest
            .split_whitespace()
            .take_while(|w| {
                w.chars().all(|c| c.is_ascii_lowercase() || c == '-') && !w.starts_with('-')
            })
            .collect();
        let mut args = path.clone();
        args.push("--help");
        let o = crowdwall(&args);
        assert!(
            o.status.success(),
            "README: `crowdwall {}` is no command: {}",
            path.join(" "),
            text(&o)
        );
        checked += 1;
    }
    assert!(checked >= 15, "{checked}");
    for stale in [
        "ip saddr @v4",
        "take effect when the service restarts",
        "uses it at its next start",
        "uses them at its next start",
    ] {
        assert!(!readme.contains(stale), "README still says: {stale}");
    }
    // Every heading has a blank line before it, outside code blocks.
    let mut prev = "";
    let mut code = false;
    for line in readme.lines() {
        if line.starts_with("```") {
            code = !code;
        }
        if !code && line.starts_with('#') && !line.starts_with("    ") {
            assert!(
                prev.trim().is_empty(),
                "heading without a blank line before it: {line}"
            );
        }
        prev = line;
    }
    // The Reload section is prose, not the tail of a benchmark table.
    let reload = readme.split("\n## Reload\n").nth(1).unwrap();
    let reload = reload.split("\n## ").next().unwrap();
    assert!(!reload.contains("lines/s"), "{reload}");
}

#[test]
fn replay_summary_counts_events_without_a_stray_line() {
    for args in [vec!["replay"], vec!["replay", "--events"]] {
        let mut a = vec!["--config", CONFIG];
        a.extend(args.iter().copied());
        let f = fixture("sshd-burst.log");
        a.push(&f);
        let o = crowdwall(&a);
        assert!(o.status.success(), "{}", text(&o));
        let err = String::from_utf8_lossy(&o.stderr);
        assert!(!err.contains("matched="), "{err}");
        assert!(!err.contains("- events"), "{err}");
        let events: u64 = err
            .split(" events")
            .next()
            .and_then(|s| s.rsplit(' ').next())
            .and_then(|n| n.parse().ok())
            .unwrap_or_else(|| panic!("no event count: {err}"));
        assert!(events >= 6, "{err}");
    }
}

/// `check-config` on a file holding `body`: (success, output).
fn check_config(dir: &std::path::Path, body: &str) -> (bool, String) {
    let f = dir.join("c.toml");
    std::fs::write(&f, body).unwrap();
    let o = crowdwall(&["check-config", f.to_str().unwrap()]);
    (o.status.success(), text(&o))
}

#[test]
fn config_errors_name_the_line_suggest_and_speak_plainly() {
    let dir = tempfile::tempdir().unwrap();
    let f = dir.path().join("c.toml");
    let check = |body: &str| {
        let (ok, msg) = check_config(dir.path(), body);
        assert!(!ok, "{body}");
        msg
    };
    let msg = check("[ban]\nduration = \"4h\"\n\n[scenarios.ssh-bruteforse]\ncapacity = 3\n");
    assert!(msg.contains(&format!("{}:4:", f.display())), "{msg}");
    assert!(msg.contains("did you mean ssh-bruteforce?"), "{msg}");
    assert!(
        !msg.contains("http-probing"),
        "lists every built-in again: {msg}"
    );

    let msg = check("[scenarios.ssh-bruteforce]\ncapacity = \"five\"\n");
    assert!(msg.contains(":2:"), "{msg}");
    assert!(!msg.contains("u32"), "{msg}");
    assert!(msg.contains("whole number"), "{msg}");

    let msg = check("[ban]\nduration = \"4 hours\"\n");
    assert!(msg.contains(":2:"), "{msg}");
    assert!(!msg.contains("bad unit ' '"), "{msg}");
    assert!(
        msg.contains("'4 hours' is not a duration") && msg.contains("4h"),
        "{msg}"
    );
}

#[test]
fn relative_paths_huge_durations_and_an_allowlist_of_everything_are_called_out() {
    let dir = tempfile::tempdir().unwrap();
    let check = |body: &str| check_config(dir.path(), body);
    let (ok, msg) = check("[daemon]\nstate_dir = \"relative/dir\"\n");
    assert!(
        !ok && msg.contains("daemon.state_dir") && msg.contains("absolute"),
        "{msg}"
    );
    let (ok, msg) = check("[ban]\nduration = \"99999999999d\"\n");
    assert!(
        !ok && msg.contains("too large") && !msg.contains("at least"),
        "{msg}"
    );
    // Valid, but nothing could ever be banned: said, not refused.
    let (ok, msg) = check("[allowlist]\ncidrs = [\"0.0.0.0/0\"]\n");
    assert!(ok, "{msg}");
    assert!(
        msg.contains("warning:") && msg.contains("can ever be banned"),
        "{msg}"
    );
}

#[test]
fn port_lists_are_checked_where_they_are_written() {
    let dir = tempfile::tempdir().unwrap();
    let check = |body: &str| check_config(dir.path(), body);
    let (ok, msg) = check("[scenarios.ssh-bruteforce]\nports = [22, 0]\n");
    assert!(
        !ok && msg.contains(":2:") && msg.contains("port 0"),
        "{msg}"
    );
    let (ok, msg) = check("[ban.ports]\ncomunity = [22]\n");
    assert!(
        !ok && msg.contains("ban.ports.comunity") && msg.contains("not an origin"),
        "{msg}"
    );
    // The admin's sets hold addresses only: ports there would be a promise not kept.
    let (ok, msg) = check(
        "[firewall]\nmode = \"sets\"\ntable = \"filter\"\nset_v4 = \"bl\"\n\n[scenarios.ssh-bruteforce]\nports = [22]\n",
    );
    assert!(
        !ok && msg.contains("scenarios.ssh-bruteforce.ports") && msg.contains("own table"),
        "{msg}"
    );
    let (ok, msg) =
        check("[scenarios.ssh-bruteforce]\nports = [2222, 22]\n[ban.ports]\ncommunity = [22]\n");
    assert!(ok, "{msg}");
}

/// Root only: a broken config leaves the kernel untouched; a stopped daemon leaves its table
/// (bans keep being enforced); `firewall remove` takes it out.
#[test]
fn broken_config_touches_nothing_and_table_outlives_the_daemon() {
    if !prerequisites(&["ip", "nft"], false) {
        return;
    }
    let ns = Netns::tagged("cwc");
    let dir = tempfile::tempdir().unwrap();
    let bad = dir.path().join("bad.toml");
    std::fs::write(
        &bad,
        "[journal]\nenabled = false\n[ban]\nduration = \"0s\"\n",
    )
    .unwrap();
    let bin = BIN;
    let state = dir.path().join("state");
    let sock = dir.path().join("ctl.sock");
    let o = ns.exec(&[
        bin,
        "--config",
        bad.to_str().unwrap(),
        "--socket",
        sock.to_str().unwrap(),
        "run",
        "--state-dir",
        state.to_str().unwrap(),
    ]);
    assert!(!o.status.success());
    assert!(text(&o).contains("ban.duration"), "{}", text(&o));
    assert_eq!(
        ns.must(&["nft", "list", "tables"]).trim(),
        "",
        "kernel touched"
    );
    assert!(
        !state.exists(),
        "state directory created by a refused start"
    );

    let mut d = Daemon::started(&ns.name, dir.path(), "[journal]\nenabled = false\n");
    let (ok, out) = d.cli(&["decisions", "add", "2001:db8:77::/48", "--duration", "1h"]);
    assert!(ok, "{out}");
    let (ok, out) = d.cli(&["decisions", "add", "127.0.0.1"]);
    assert!(!ok);
    assert!(out.contains("allowlisted"), "{out}");
    let v = d.status();
    assert_eq!(v["firewall"]["sets"]["v6"], 1, "{v}");
    assert_eq!(v["decisions"]["manual"], 1, "{v}");

    // SIGTERM: clean stop, table and ban stay.
    let st = d.terminate().expect("daemon was running");
    assert!(st.success(), "daemon exit {st:?}");
    let set = ns.must(&["nft", "list", "set", "inet", "crowdwall", "manual_v6_net"]);
    assert!(set.contains("2001:db8:77::/48"), "{set}");

    let good = dir.path().join("crowdwall.toml");
    let o = ns.exec(&[
        bin,
        "--config",
        good.to_str().unwrap(),
        "firewall",
        "remove",
    ]);
    assert!(o.status.success(), "{}", text(&o));
    assert_eq!(ns.must(&["nft", "list", "tables"]).trim(), "");
}

/// Man page and completions come from the same clap definitions as --help (the package build
/// runs this); exit codes are documented in both; output to a pipe carries no colour codes.
#[test]
fn man_page_completions_and_exit_codes_from_the_clap_definitions() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().to_str().unwrap();
    let o = crowdwall(&["generate", out]);
    assert!(o.status.success(), "{}", text(&o));
    let man = std::fs::read_to_string(dir.path().join("crowdwall.1")).unwrap();
    assert!(man.contains(".TH crowdwall 1"), "{man}");
    assert!(
        man.contains("Exit codes") && man.contains("daemon is not reachable"),
        "{man}"
    );
    assert!(man.contains("decisions"), "{man}");
    for (f, needle) in [
        ("crowdwall.bash", "decisions"),
        ("_crowdwall", "#compdef crowdwall"),
        ("crowdwall.fish", "complete -c crowdwall"),
    ] {
        let t = std::fs::read_to_string(dir.path().join(f)).unwrap();
        assert!(t.contains(needle), "{f}: {needle} missing");
        assert!(t.contains("metrics"), "{f}: subcommand metrics missing");
    }
    let o = crowdwall(&["--help"]);
    assert!(
        text(&o).contains("3  the daemon is not reachable"),
        "{}",
        text(&o)
    );
    // hidden helpers stay out of --help
    assert!(!text(&o).contains("installer-address"), "{}", text(&o));

    let o = crowdwall(&["check-config", CONFIG, "--json"]);
    assert!(o.status.success(), "{}", text(&o));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).expect("check-config --json");
    assert_eq!(v["ok"], true);
    assert!(
        v["scenarios"].to_string().contains("\"ssh-bruteforce\""),
        "{v}"
    );

    // stdout is a pipe here: no ANSI escapes anywhere, replay included (no progress bar).
    let o = crowdwall(&["--config", CONFIG, "replay", &fixture("sshd-burst.log")]);
    assert!(o.status.success(), "{}", text(&o));
    assert!(!text(&o).contains('\x1b'), "{}", text(&o));
}

#[test]
fn installer_address_comes_from_the_ssh_environment() {
    let o = Command::new(BIN)
        .args(["--config", CONFIG, "installer-address"])
        .env("SSH_CONNECTION", "198.51.100.23 50022 192.0.2.1 22")
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", text(&o));
    assert_eq!(String::from_utf8_lossy(&o.stdout).trim(), "198.51.100.23");
    // a hostile value is not an address: nothing printed, non-zero
    let o = Command::new(BIN)
        .args(["--config", CONFIG, "installer-address"])
        .env("SSH_CONNECTION", "$(reboot) 1 2 3")
        .env_remove("SSH_CLIENT")
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .output()
        .unwrap();
    assert!(o.stdout.is_empty(), "{}", text(&o));
}

/// fail2ban's per-jail `ignoreip`: `[scenarios.NAME] allowlist` spares an address from that
/// scenario only, and the refusal names the rule.
#[test]
fn a_scenario_allowlist_spares_the_address_from_that_scenario_only() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("c.toml");
    std::fs::write(
        &cfg,
        "[scenarios.ssh-bruteforce]\nallowlist = [\"203.0.113.48/29\"]\n\
         [scenarios.ssh-slow-bruteforce]\nallowlist = [\"203.0.113.48/29\"]\n",
    )
    .unwrap();
    let o = crowdwall(&[
        "--config",
        cfg.to_str().unwrap(),
        "replay",
        &fixture("sshd-burst.log"),
    ]);
    assert!(o.status.success(), "{}", text(&o));
    assert!(decided_values(&o).is_empty(), "{}", text(&o));
    assert!(text(&o).contains("2 refused (allowlisted)"), "{}", text(&o));
    // One brute-force scenario's list leaves the other free to ban.
    std::fs::write(
        &cfg,
        "[scenarios.ssh-bruteforce]\nallowlist = [\"203.0.113.48/29\"]\n",
    )
    .unwrap();
    let o = crowdwall(&[
        "--config",
        cfg.to_str().unwrap(),
        "replay",
        &fixture("sshd-burst.log"),
    ]);
    assert!(
        text(&o).contains("\"scenario\":\"ssh-slow-bruteforce\""),
        "{}",
        text(&o)
    );
    // Another scenario's list does not cover it.
    std::fs::write(
        &cfg,
        "[scenarios.ssh-probing]\nallowlist = [\"203.0.113.48/29\"]\n",
    )
    .unwrap();
    let o = crowdwall(&[
        "--config",
        cfg.to_str().unwrap(),
        "replay",
        &fixture("sshd-burst.log"),
    ]);
    assert_eq!(decided_values(&o), vec!["203.0.113.50"], "{}", text(&o));
    // A bad entry is refused with its line.
    std::fs::write(
        &cfg,
        "[scenarios.ssh-bruteforce]\nallowlist = [\"10.0.0.1/8\"]\n",
    )
    .unwrap();
    let o = crowdwall(&["check-config", cfg.to_str().unwrap()]);
    assert!(!o.status.success());
    assert!(
        text(&o).contains(":2:") && text(&o).contains("did you mean 10.0.0.0/8"),
        "{}",
        text(&o)
    );
}

/// A broken file must not keep the CLI from the daemon: `crowdwall reload` of it is refused
/// by the daemon (and logged there), not by the CLI before it connects.
#[test]
fn a_broken_config_still_names_the_socket_to_reach() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("c.toml");
    let sock = dir.path().join("elsewhere.sock");
    std::fs::write(
        &cfg,
        format!(
            "[daemon]\nsocket = \"{}\"\n[scenarios.ssh-bruteforse]\ncapacity = 3\n",
            sock.display()
        ),
    )
    .unwrap();
    for cmd in [&["reload"][..], &["decisions", "list"][..]] {
        let mut args = vec!["--config", cfg.to_str().unwrap()];
        args.extend(cmd);
        let o = crowdwall(&args);
        assert_eq!(o.status.code(), Some(3), "{cmd:?}: {}", text(&o));
        assert!(
            text(&o).contains(&sock.display().to_string()),
            "{}",
            text(&o)
        );
    }
}
