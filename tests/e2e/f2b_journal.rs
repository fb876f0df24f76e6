//! A fail2ban jail with `backend = systemd` end to end: the daemon reads the real journal
//! with the jail's `journalmatch`, hands the entries of the identifier it names to the jail's
//! filter (`f2b:JAIL`), and bans in the kernel set of its namespace. Entries of another
//! identifier with the same text, which the daemon also reads, do not count.
//!
//! Missing root, nft or journald: skipped with a message, unless
//! CROWDWALL_REQUIRE_ROOT_TESTS=1.

use std::time::Duration;

use crate::common::{journald, nft, prerequisites, wait_until, Daemon, Netns};

const COMMON: &str = "/etc/fail2ban/filter.d/common.conf";

#[test]
fn systemd_backend_jail_bans_from_its_journalmatch_only() {
    if !prerequisites(&["ip", "nft"], true) {
        return;
    }
    if !std::path::Path::new(COMMON).exists() {
        crate::common::skip(&format!("{COMMON} missing (apt-get install fail2ban)"));
        return;
    }
    let app = journald::unique_ident();
    let decoy = journald::unique_ident();
    let ns = Netns::tagged("cwfj");
    let dir = tempfile::tempdir().unwrap();
    let f2b = dir.path().join("f2b");
    std::fs::create_dir_all(f2b.join("filter.d")).unwrap();
    // fail2ban's own common.conf, so the filter's `__prefix_line` takes the `IDENT[PID]: `
    // that the journal backend puts before a message, as it does in fail2ban.
    std::fs::copy(COMMON, f2b.join("filter.d/common.conf")).unwrap();
    std::fs::write(
        f2b.join("filter.d/myapp.conf"),
        "[INCLUDES]\nbefore = common.conf\n\n[Definition]\n_daemon = myapp\n\
         failregex = ^%(__prefix_line)slogin failed for <F-USER>\\S+</F-USER> from <HOST>$\n\
         ignoreregex =\n",
    )
    .unwrap();
    std::fs::write(
        f2b.join("jail.local"),
        format!(
            "[myapp]\nenabled = true\nfilter = myapp\nbackend = systemd\n\
             journalmatch = SYSLOG_IDENTIFIER={app}\nmaxretry = 3\nfindtime = 10m\nbantime = 1h\n"
        ),
    )
    .unwrap();
    // Both services have logged before the daemon starts, as a running service has (the
    // journal source starts at the tail of what its matches select).
    journald::systemd_cat(&app, &["myapp starting"]);
    journald::systemd_cat(&decoy, &["decoy starting"]);
    journald::wait_visible(&app, 1);
    journald::wait_visible(&decoy, 1);
    // The decoy identifier is read too (the journal's own matches), so its entries reach the
    // parsers: only the routing keeps them out of the jail.
    let mut d = Daemon::started(
        &ns.name,
        dir.path(),
        &format!(
            "[journal]\nmatches = [\"SYSLOG_IDENTIFIER={decoy}\"]\n[fail2ban]\ndir = \"{}\"\njails = [\"myapp\"]\n",
            f2b.display()
        ),
    );
    const ATK: &str = "198.51.100.23";
    const DECOY_ATK: &str = "198.51.100.61";
    let fail = |ip: &str, i: usize| format!("login failed for user{i} from {ip}");

    // The decoy first and more than maxretry: written under the other identifier, read by
    // the daemon, not counted.
    let decoy_lines: Vec<String> = (0..8).map(|i| fail(DECOY_ATK, i)).collect();
    journald::systemd_cat(&decoy, &decoy_lines);
    journald::wait_visible(&decoy, decoy_lines.len() + 1);
    let parser = |d: &Daemon, k: &str| d.status()["parsers"]["f2b:myapp"][k].as_u64().unwrap_or(0);
    let read = |d: &Daemon| {
        d.status()["firewall"]["stats"]["entries"]
            .as_u64()
            .unwrap_or(0)
    };
    assert!(
        wait_until(Duration::from_secs(15), || read(&d) >= 8),
        "the daemon did not read the decoy's entries: {}\n{}",
        d.status(),
        d.log()
    );
    assert_eq!(parser(&d, "lines"), 0, "{}", d.status());
    assert!(!d.has_decision(DECOY_ATK));

    // Two failures under the jail's identifier: counted, below maxretry, no ban.
    journald::systemd_cat(&app, &[fail(ATK, 0), fail(ATK, 1)]);
    journald::wait_visible(&app, 3);
    assert!(
        wait_until(Duration::from_secs(15), || parser(&d, "matched") >= 2),
        "f2b:myapp did not match its entries: {}\n{}",
        d.status(),
        d.log()
    );
    assert_eq!(parser(&d, "matched"), 2, "{}", d.status());
    assert!(!d.has_decision(ATK), "{:?}", d.decisions());
    // The third (maxretry = 3) bans, in the kernel.
    journald::systemd_cat(&app, &[fail(ATK, 2)]);
    d.expect_banned(&ns, ATK);
    let dec = d.one_decision_on(ATK);
    assert_eq!(dec["scenario"], "f2b:myapp", "{dec}");
    let elems = nft::set_values(&ns, "inet", "crowdwall", "local_v4");
    assert!(elems.iter().any(|e| e == ATK), "{elems:?}");
    // The decoy, with more failures than maxretry, never was.
    assert!(!d.has_decision(DECOY_ATK), "{:?}", d.decisions());
    assert!(
        !nft::crowdwall_table(&ns).contains(DECOY_ATK),
        "{}",
        nft::crowdwall_table(&ns)
    );
    assert_eq!(parser(&d, "matched"), 3, "{}", d.status());
    d.terminate();
}
