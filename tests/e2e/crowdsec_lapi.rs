//! crowdwall as a bouncer of a real CrowdSec Local API: Debian's crowdsec, offline (Local
//! API only: no agent, no central API), in a network namespace with the daemon. A decision
//! added with `cscli decisions add` reaches crowdwall's kernel set as origin `crowdsec`;
//! `cscli decisions delete` takes it out; the allowlist still wins.

use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

use crate::common::nft::crowdwall_table;
use crate::common::proc::spawn;
use crate::common::{prerequisites, wait_until, Daemon, Netns};

const LAPI: &str = "127.0.0.1:18080";

fn crowdsec_config(dir: &Path) -> String {
    let d = dir.display();
    format!(
        "common:\n  daemonize: false\n  log_media: stdout\n  log_level: info\n  working_dir: .\n\
         config_paths:\n  config_dir: /etc/crowdsec/\n  data_dir: {d}/data/\n\
         \x20 simulation_path: /etc/crowdsec/simulation.yaml\n  hub_dir: /var/lib/crowdsec/hub/\n\
         \x20 index_path: /var/lib/crowdsec/hub/.index.json\n\
         \x20 notification_dir: /etc/crowdsec/notifications/\n  plugin_dir: /usr/lib/crowdsec/plugins/\n\
         crowdsec_service:\n  acquisition_path: /etc/crowdsec/acquis.yaml\n\
         cscli:\n  output: human\n\
         db_config:\n  log_level: info\n  type: sqlite\n  db_path: {d}/data/crowdsec.db\n  use_wal: true\n\
         api:\n  client:\n    insecure_skip_verify: false\n    credentials_path: {d}/lapi-credentials.yaml\n\
         \x20 server:\n    log_level: info\n    listen_uri: {LAPI}\n\
         \x20   profiles_path: /etc/crowdsec/profiles.yaml\n    trusted_ips:\n      - 127.0.0.1\n\
         prometheus:\n  enabled: false\n"
    )
}

fn cscli(ns: &Netns, cfg: &Path, args: &[&str]) -> String {
    let mut v = vec!["cscli", "-c", cfg.to_str().unwrap()];
    v.extend_from_slice(args);
    ns.must(&v)
}

#[test]
fn cscli_decisions_reach_and_leave_the_kernel_set() {
    if !prerequisites(&["ip", "nft", "crowdsec", "cscli"], false) {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path().join("data")).unwrap();
    let cfg = dir.path().join("crowdsec.yaml");
    std::fs::write(&cfg, crowdsec_config(dir.path())).unwrap();
    let ns = Netns::tagged("cs");
    // A machine for cscli (its credentials file), then the Local API alone.
    cscli(
        &ns,
        &cfg,
        &["machines", "add", "crowdwall-test", "--auto", "--force"],
    );
    let cs_log = dir.path().join("crowdsec.log");
    let _crowdsec = spawn(
        ns.command("crowdsec")
            .arg("-c")
            .arg(&cfg)
            .args(["-no-cs", "-no-capi"])
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&cs_log).unwrap()),
        "crowdsec",
    );
    let log = || std::fs::read_to_string(&cs_log).unwrap_or_default();
    assert!(
        wait_until(Duration::from_secs(30), || log()
            .contains("Local API listening")),
        "crowdsec did not start:\n{}",
        log()
    );
    let key = cscli(&ns, &cfg, &["bouncers", "add", "crowdwall", "-o", "raw"]);
    let key = key.trim();
    assert!(!key.is_empty());

    let d = Daemon::started(
        &ns.name,
        dir.path(),
        &format!(
            "[journal]\nenabled = false\n\n[allowlist]\ncidrs = [\"203.0.113.0/24\"]\n\n\
             [crowdsec]\nenabled = true\nurl = \"http://{LAPI}/\"\napi_key = \"{key}\"\ninterval = \"1s\"\n"
        ),
    );
    let set = || crowdwall_table(&ns);

    // Present before crowdwall's first pull: arrives by the startup pull.
    cscli(
        &ns,
        &cfg,
        &["decisions", "add", "-i", "192.0.2.77", "-d", "1h"],
    );
    cscli(
        &ns,
        &cfg,
        &["decisions", "add", "-i", "203.0.113.5", "-d", "1h"],
    );
    assert!(
        wait_until(Duration::from_secs(30), || set().contains("192.0.2.77")),
        "the CrowdSec decision did not reach the kernel set: {}\n{}",
        set(),
        d.log()
    );
    // Added later: arrives by a delta; a range too.
    cscli(
        &ns,
        &cfg,
        &["decisions", "add", "-r", "198.51.100.0/24", "-d", "2h"],
    );
    assert!(
        wait_until(Duration::from_secs(30), || set()
            .contains("198.51.100.0/24")),
        "{}\n{}",
        set(),
        d.log()
    );
    let decisions = d.decisions();
    let ours: Vec<_> = decisions
        .iter()
        .filter(|x| x["origin"] == "crowdsec")
        .collect();
    assert_eq!(ours.len(), 2, "{decisions:?}");
    assert!(
        !set().contains("203.0.113.5"),
        "an allowlisted address was banned"
    );
    assert!(
        d.log().contains("203.0.113.5"),
        "the allowlisted decision is not logged"
    );

    cscli(&ns, &cfg, &["decisions", "delete", "-i", "192.0.2.77"]);
    assert!(
        wait_until(Duration::from_secs(30), || !set().contains("192.0.2.77")),
        "cscli decisions delete did not take it out: {}",
        set()
    );
    assert!(
        set().contains("198.51.100.0/24"),
        "the other decision went too"
    );
    assert!(d.decisions().iter().all(|x| x["value"] != "192.0.2.77"));
    let (ok, out) = d.cli(&["status"]);
    assert!(ok && out.contains("crowdsec: ok at"), "{out}");
}
