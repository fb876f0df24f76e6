//! fail2ban jails run by crowdwall as they are (`[fail2ban] dir`, `jails`): five jails of
//! services crowdwall has no parser of its own for (asterisk, grafana, mysqld-auth,
//! named-refused, squid) and a custom filter (`filter.d/myapp.local`), enabled in a
//! jail.local over a copy of Debian's /etc/fail2ban. The config passes `check-config`;
//! `replay --parser f2b:JAIL` over each service's own sample log bans, and only addresses the
//! log's annotations name as attackers; `explain` says which filter line matched; a jail
//! whose filter cannot run linear-time is refused with file, line and construct.

use std::collections::BTreeSet;
use std::path::Path;

use crate::common::cli::crowdwall;
use crate::common::f2b_samples::{self, Item};
use crate::common::proc::text;
use crate::common::skip;

const JAILS: &[&str] = &[
    "asterisk",
    "grafana",
    "mysqld-auth",
    "named-refused",
    "squid",
];

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap().flatten() {
        let p = e.path();
        if p.is_file() {
            std::fs::copy(&p, to.join(e.file_name())).unwrap();
        }
    }
}

/// The addresses a sample log annotates as matching (default filter options only).
fn attackers(dir: &str, name: &str) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    let mut default_block = true;
    for item in f2b_samples::read(dir, name).unwrap_or_default() {
        match item {
            Item::Options(o) => {
                default_block = o
                    .iter()
                    .any(|m| m.keys().all(|k| k.starts_with("test.")) || m.get("logtype").is_some())
            }
            Item::Sample(s) if default_block && s.must_match() => {
                if let Some(h) = s.host() {
                    out.insert(h.to_string());
                }
            }
            _ => {}
        }
    }
    out
}

fn decided(out: &str) -> Vec<String> {
    out.lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter_map(|v| {
            v["value"]
                .as_str()
                .map(|s| s.split('/').next().unwrap_or(s).to_string())
        })
        .collect()
}

/// A copy of /etc/fail2ban under `dir`, plus a filter of the admin's own as a .local only
/// (`filter.d/myapp.local`).
fn fail2ban_copy_with_myapp(dir: &Path) -> std::path::PathBuf {
    let f2b = dir.join("fail2ban");
    copy_dir(Path::new("/etc/fail2ban"), &f2b);
    copy_dir(Path::new("/etc/fail2ban/filter.d"), &f2b.join("filter.d"));
    std::fs::write(
        f2b.join("filter.d/myapp.local"),
        "[INCLUDES]\nbefore = common.conf\n\n[Definition]\n_daemon = myapp\nfailregex = ^%(__prefix_line)slogin failed for <F-USER>\\S+</F-USER> from <HOST>$\nignoreregex =\n",
    )
    .unwrap();
    f2b
}

#[test]
fn fail2ban_jails_run_unconverted_and_ban_from_their_sample_logs() {
    let Some(logs) = f2b_samples::logs_dir() else {
        skip("fail2ban's test logs not found (apt-get install fail2ban)");
        return;
    };
    if !Path::new("/etc/fail2ban/jail.conf").exists() {
        skip("/etc/fail2ban not found (apt-get install fail2ban)");
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let f2b = fail2ban_copy_with_myapp(tmp.path());
    let myapp_log = tmp.path().join("myapp.log");
    let mut body = String::new();
    for i in 0..6 {
        body.push_str(&format!(
            "2024-05-01 10:00:0{i} web myapp[42]: login failed for admin from 203.0.113.9\n"
        ));
    }
    // A user name that looks like an address must not be what is banned.
    body.push_str("2024-05-01 10:00:07 web myapp[42]: login failed for 6.6.6.6 from 203.0.113.9\n");
    body.push_str("2024-05-01 10:00:08 web myapp[42]: login ok for admin from 198.51.100.7\n");
    std::fs::write(&myapp_log, body).unwrap();
    let mut local = String::from("[DEFAULT]\nmaxretry = 1\nfindtime = 1d\n\n");
    for j in JAILS {
        local.push_str(&format!("[{j}]\nenabled = true\nlogpath = {logs}/{j}\n\n"));
    }
    local.push_str(&format!(
        "[myapp]\nenabled = true\nfilter = myapp\nlogpath = {}\nmaxretry = 3\n",
        myapp_log.display()
    ));
    std::fs::write(f2b.join("jail.local"), local).unwrap();
    let mut names: Vec<&str> = JAILS.to_vec();
    names.push("myapp");
    let cfg = tmp.path().join("crowdwall.toml");
    let base = std::fs::read_to_string(crate::common::cli::CONFIG).unwrap();
    let list = names
        .iter()
        .map(|n| format!("\"{n}\""))
        .collect::<Vec<_>>()
        .join(", ");
    std::fs::write(
        &cfg,
        format!(
            "{base}\n[fail2ban]\ndir = \"{}\"\njails = [{list}]\n",
            f2b.display()
        ),
    )
    .unwrap();
    let cfg_s = cfg.to_str().unwrap();

    let o = crowdwall(&["--config", cfg_s, "check-config"]);
    assert!(o.status.success(), "check-config: {}", text(&o));

    for j in &names {
        let log = if *j == "myapp" {
            myapp_log.display().to_string()
        } else {
            format!("{logs}/{j}")
        };
        let o = crowdwall(&[
            "--config",
            cfg_s,
            "replay",
            "--parser",
            &format!("f2b:{j}"),
            &log,
        ]);
        assert!(o.status.success(), "{j}: {}", text(&o));
        let got = decided(&String::from_utf8_lossy(&o.stdout));
        assert!(!got.is_empty(), "{j}: nothing banned: {}", text(&o));
        let want = if *j == "myapp" {
            ["203.0.113.9".to_string()].into()
        } else {
            attackers(logs, j)
        };
        for g in &got {
            assert!(
                want.contains(g),
                "{j}: banned {g}, not an annotated attacker ({want:?})"
            );
        }
        println!("{j}: banned {got:?}");
    }

    let o = crowdwall(&[
        "--config",
        cfg_s,
        "explain",
        "--parser",
        "f2b:myapp",
        "2024-05-01 10:00:00 web myapp[42]: login failed for root from 192.0.2.77",
    ]);
    let out = text(&o);
    assert!(o.status.success(), "{out}");
    assert!(
        out.contains("192.0.2.77") && out.contains("myapp.local"),
        "{out}"
    );

    // A jail whose filter needs a back-reference across the lines of a multi-line buffer:
    // refused, naming file, line and construct.
    let bad = tmp.path().join("bad.toml");
    std::fs::write(
        &bad,
        format!(
            "{base}\n[fail2ban]\ndir = \"{}\"\njails = [\"mongodb-auth\"]\n",
            f2b.display()
        ),
    )
    .unwrap();
    std::fs::create_dir_all(f2b.join("jail.d")).unwrap();
    std::fs::write(
        f2b.join("jail.d/mongodb-auth.local"),
        format!("[mongodb-auth]\nlogpath = {logs}/mongodb-auth\n"),
    )
    .unwrap();
    let o = crowdwall(&["--config", bad.to_str().unwrap(), "check-config"]);
    let out = text(&o);
    assert!(!o.status.success(), "{out}");
    assert!(
        out.contains("mongodb-auth.conf:14") && out.contains("back-reference"),
        "{out}"
    );
}

/// A jail with `backend = systemd`: its `journalmatch` is added to what the journal source
/// reads, and entries of the identifier it names go to `f2b:JAIL` (a syslog line of that
/// identifier is explained by the jail's filter); `bantime.increment` is the jail's own
/// escalation. Without a journalmatch, or with the journal off, the config is refused.
#[test]
fn a_systemd_backend_jail_reads_its_service_from_the_journal() {
    if !Path::new("/etc/fail2ban/jail.conf").exists() {
        skip("/etc/fail2ban not found (apt-get install fail2ban)");
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let f2b = fail2ban_copy_with_myapp(tmp.path());
    let base = std::fs::read_to_string(crate::common::cli::CONFIG).unwrap();
    assert!(base.contains("[journal]\nenabled = true\n"));
    let write = |jail: &str, journal_off: bool| {
        std::fs::write(f2b.join("jail.local"), jail).unwrap();
        let cfg = tmp.path().join("crowdwall.toml");
        let base = if journal_off {
            base.replace(
                "[journal]\nenabled = true\n",
                "[journal]\nenabled = false\n",
            )
        } else {
            base.clone()
        };
        std::fs::write(
            &cfg,
            format!(
                "{base}\n[fail2ban]\ndir = \"{}\"\njails = [\"myapp\"]\n",
                f2b.display()
            ),
        )
        .unwrap();
        cfg.to_str().unwrap().to_string()
    };
    let jail = "[myapp]\nenabled = true\nfilter = myapp\nbackend = systemd\njournalmatch = _SYSTEMD_UNIT=myapp.service\nbantime.increment = true\n";
    let cfg = write(jail, false);
    let o = crowdwall(&["--config", &cfg, "check-config"]);
    assert!(o.status.success(), "check-config: {}", text(&o));
    let o = crowdwall(&[
        "--config",
        &cfg,
        "explain",
        "May  1 10:00:00 web myapp[42]: login failed for root from 192.0.2.77",
    ]);
    let out = text(&o);
    assert!(o.status.success(), "{out}");
    assert!(
        out.contains("f2b:myapp") && out.contains("192.0.2.77") && out.contains("myapp.local"),
        "{out}"
    );
    // No journalmatch: nothing says which entries are the jail's.
    let cfg = write(
        "[myapp]\nenabled = true\nfilter = myapp\nbackend = systemd\n",
        false,
    );
    let o = crowdwall(&["--config", &cfg, "check-config"]);
    let out = text(&o);
    assert!(!o.status.success(), "{out}");
    assert!(
        out.contains("jail myapp") && out.contains("journalmatch"),
        "{out}"
    );
    // The journal switched off.
    let cfg = write(jail, true);
    let o = crowdwall(&["--config", &cfg, "check-config"]);
    let out = text(&o);
    assert!(!o.status.success(), "{out}");
    assert!(out.contains("enabled = false"), "{out}");
}

/// `import-fail2ban` on a jail.local that enables the five non-native jails and the custom
/// filter plus sshd, nginx-http-auth and recidive with the keys issue 13 (point 11) listed:
/// the converted config passes `check-config` and bans in each sample log; `%(sshd_log)s`
/// is resolved through paths-debian.conf; the nginx logpath becomes a `[[files]]` block;
/// ignoreip with host bits is said once, as taken over; recidive points at `[ban] escalate`;
/// action, destemail and banaction are listed as not converted; a converted jail's port and
/// its own ignoreip become its scenario's `ports` and `allowlist`.
#[test]
fn import_fail2ban_converts_every_enabled_jail_and_lists_what_it_drops() {
    let Some(logs) = f2b_samples::logs_dir() else {
        skip("fail2ban's test logs not found (apt-get install fail2ban)");
        return;
    };
    if !Path::new("/etc/fail2ban/jail.conf").exists() {
        skip("/etc/fail2ban not found (apt-get install fail2ban)");
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let f2b = tmp.path().join("fail2ban");
    copy_dir(Path::new("/etc/fail2ban"), &f2b);
    copy_dir(Path::new("/etc/fail2ban/filter.d"), &f2b.join("filter.d"));
    std::fs::create_dir_all(f2b.join("jail.d")).unwrap();
    for e in std::fs::read_dir(f2b.join("jail.d")).unwrap().flatten() {
        std::fs::remove_file(e.path()).unwrap();
    }
    std::fs::write(
        f2b.join("filter.d/myapp.local"),
        "[INCLUDES]\nbefore = common.conf\n\n[Definition]\n_daemon = myapp\nfailregex = ^%(__prefix_line)slogin failed for <F-USER>\\S+</F-USER> from <HOST>$\nignoreregex =\n",
    )
    .unwrap();
    let myapp_log = tmp.path().join("myapp.log");
    let body: String = (0..4)
        .map(|i| {
            format!(
                "2024-05-01 10:00:0{i} web myapp[42]: login failed for admin from 203.0.113.9\n"
            )
        })
        .collect();
    std::fs::write(&myapp_log, body).unwrap();
    let mut local = String::from(
        "[DEFAULT]\nignoreip = 127.0.0.1/8 ::1\naction = %(action_mwl)s\ndestemail = root@example.org\nbanaction = nftables-multiport\nmaxretry = 1\nfindtime = 1d\n\n[sshd]\nenabled = true\nport = 2222\nignoreip = 192.0.2.0/24\nbackend = auto\n\n[nginx-http-auth]\nenabled = true\n\n[recidive]\nenabled = true\n\n",
    );
    for j in JAILS {
        local.push_str(&format!("[{j}]\nenabled = true\nlogpath = {logs}/{j}\n\n"));
    }
    local.push_str(&format!(
        "[myapp]\nenabled = true\nfilter = myapp\nlogpath = {}\n",
        myapp_log.display()
    ));
    std::fs::write(f2b.join("jail.local"), local).unwrap();

    let o = crowdwall(&["import-fail2ban", f2b.to_str().unwrap()]);
    let out = String::from_utf8_lossy(&o.stdout).to_string();
    let err = String::from_utf8_lossy(&o.stderr).to_string();
    assert!(o.status.success(), "{out}\n{err}");
    assert!(!out.contains("%("), "uninterpolated value: {out}");
    assert!(
        out.contains("paths = [\"/var/log/auth.log\"]"),
        "sshd logpath: {out}"
    );
    assert!(
        out.contains("paths = [\"/var/log/nginx/*error.log\"]\nparser = \"nginx\""),
        "nginx logpath as a [[files]] block: {out}"
    );
    assert!(
        err.contains("127.0.0.1/8: host bits set, taken as 127.0.0.0/8"),
        "{err}"
    );
    assert!(
        !err.contains("not converted: ignoreip 127.0.0.1/8"),
        "{err}"
    );
    assert!(
        err.contains("recidive") && err.contains("[ban] escalate"),
        "{err}"
    );
    for want in [
        "[DEFAULT] action = %(action_mwl)s: not converted",
        "[DEFAULT] destemail = root@example.org: not converted",
        "[DEFAULT] banaction = nftables-multiport: not converted",
    ] {
        assert!(err.contains(want), "missing '{want}': {err}");
    }
    // The converted sshd jail keeps its port (multiport banaction) and its own ignoreip.
    assert!(
        out.contains("ports = [2222]") && out.contains("allowlist = [\"192.0.2.0/24\"]"),
        "{out}"
    );
    assert!(
        err.contains("its bans drop TCP and UDP to port 2222 only"),
        "{err}"
    );
    let mut names: Vec<&str> = JAILS.to_vec();
    names.push("myapp");
    for j in &names {
        assert!(
            out.contains(&format!("\"{j}\"")),
            "{j} not in [fail2ban] jails: {out}"
        );
    }
    let converted = tmp.path().join("converted.toml");
    std::fs::write(&converted, &out).unwrap();
    let c = converted.to_str().unwrap();
    let o = crowdwall(&["--config", c, "check-config"]);
    assert!(
        o.status.success(),
        "check-config of the converted file: {}",
        text(&o)
    );
    for j in &names {
        let log = if *j == "myapp" {
            myapp_log.display().to_string()
        } else {
            format!("{logs}/{j}")
        };
        let o = crowdwall(&[
            "--config",
            c,
            "replay",
            "--parser",
            &format!("f2b:{j}"),
            &log,
        ]);
        assert!(o.status.success(), "{j}: {}", text(&o));
        let got = decided(&String::from_utf8_lossy(&o.stdout));
        assert!(
            !got.is_empty(),
            "{j}: nothing banned with the converted config: {}",
            text(&o)
        );
    }
}
