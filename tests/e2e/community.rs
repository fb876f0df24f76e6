//! End to end on real parts: a hub in its own network namespace, four hosts each running a
//! crowdwall daemon in theirs (each reaching the hub from its own /24), three of them with a
//! real OpenSSH server, and an attacker on a bridge that reaches all four. The attacker
//! brute-forces hosts 1-3 while the hub is down; the signals wait in the daemons' outboxes,
//! reach the hub when it is back, the consensus lists the attacker, and host 4's kernel drops
//! it before it ever attacked host 4. A fifth host, with `share = false`, is attacked too:
//! it bans on its own, and nothing of its attack reaches the hub.
//!
//! Every host's daemon reads the one system journal; each sshd logs with its own syslog
//! facility (LOCAL1..LOCAL3, LOCAL5) and each daemon matches only its own, so a host sees only the
//! attacks on itself.

use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

use crate::common::netns::{addr, link};
use crate::common::nft::crowdwall_table;
use crate::common::proc::spawn;
use crate::common::ssh_lab::{self, attack, sshd};
use crate::common::{hub_bin, tag, veth, wait_until, Daemon, Netns, Proc};

const ATK: &str = "45.0.0.66";
const PORT: u16 = 8080;
const HUB_PORT: u16 = 8441;

/// The hosts the attacker brute-forces (all but host 4); host 5 does not share.
const ATTACKED: [usize; 4] = [1, 2, 3, 5];
const QUIET: usize = 5;

fn host_addr(i: usize) -> String {
    format!("45.0.0.{i}")
}

fn start_hub(ns: &Netns, dir: &Path) -> Proc {
    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(dir.join("hub.log"))
        .unwrap();
    spawn(
        ns.command(hub_bin())
            .arg("--config")
            .arg(dir.join("hub.toml"))
            .arg("--database")
            .arg(format!("sqlite:{}", dir.join("hub.db").display()))
            .stdout(Stdio::null())
            .stderr(log),
        "hub",
    )
}

#[test]
fn three_hosts_share_an_attack_and_a_fourth_drops_it_first_hub_outage_loses_nothing() {
    if !ssh_lab::ready() {
        return;
    }
    // Its attack is an sshd attack like the others: never beside theirs.
    let _attacks = ssh_lab::exclusive();
    let t = tag();
    let hub_ns = Netns::new(format!("hb{t}h"));
    let atk = Netns::new(format!("hb{t}x"));
    atk.must(&["ip", "link", "add", "br0", "type", "bridge"]);
    atk.must(&["ip", "addr", "add", &format!("{ATK}/24"), "dev", "br0"]);
    atk.must(&["ip", "link", "set", "br0", "up"]);

    let top = tempfile::tempdir().unwrap();
    std::fs::write(
        top.path().join("hub.toml"),
        format!("[hub]\nlisten = \"0.0.0.0:{HUB_PORT}\"\n"),
    )
    .unwrap();

    let mut hosts = Vec::new();
    for i in 1..=5usize {
        let ns = Netns::new(format!("hb{t}{i}"));
        // its own link to the hub, in its own /24
        veth(
            &hub_ns,
            &format!("20.0.{i}.1/24"),
            &ns,
            &format!("20.0.{i}.2/24"),
        );
        // and a port on the attacker's bridge
        let (a, b) = (format!("hbxa{t}{i}"), format!("hbxb{t}{i}"));
        link(&atk, &a, &ns, &b);
        atk.must(&["ip", "link", "set", &a, "master", "br0", "up"]);
        addr(&ns, &b, &format!("{}/24", host_addr(i)));
        let dir = top.path().join(format!("host{i}"));
        std::fs::create_dir_all(&dir).unwrap();
        hosts.push((ns, dir));
    }

    let mut hub = Some(start_hub(&hub_ns, top.path()));
    let hub_log = || std::fs::read_to_string(top.path().join("hub.log")).unwrap_or_default();
    assert!(
        wait_until(Duration::from_secs(15), || hosts[0]
            .0
            .can_connect("20.0.1.1", HUB_PORT)),
        "hub did not come up:\n{}",
        hub_log()
    );

    let mut keep = Vec::new();
    let mut daemons = Vec::new();
    for (i, (ns, dir)) in hosts.iter().enumerate() {
        let n = i + 1;
        // hosts 1-3 and 5 run sshd logging with facility LOCAL<n>; host 4 has a plain TCP port
        if ATTACKED.contains(&n) {
            keep.push(sshd(ns, dir, &[&host_addr(n)], &format!("LOCAL{n}")));
        }
        keep.push(ns.listen(PORT));
        let config = format!(
            "[daemon]\nstate_dir = \"{state}\"\n\
             [journal]\nmatches = [\"SYSLOG_IDENTIFIER=sshd\", \"SYSLOG_IDENTIFIER=sshd-session\", \"SYSLOG_FACILITY={fac}\"]\n\
             [community]\npull_every = \"1s\"\npush_every = \"1s\"\nshare = {share}\n",
            state = dir.join("state").display(),
            fac = 16 + n,
            share = n != QUIET,
        );
        let d = Daemon::new(&ns.name, dir, &config);
        let out = ns.must(&[
            Daemon::bin(),
            "--config",
            dir.join("crowdwall.toml").to_str().unwrap(),
            "community",
            "register",
            "--hub",
            &format!("http://20.0.{n}.1:{HUB_PORT}"),
            "--name",
            &format!("host{n}"),
        ]);
        assert!(out.contains("registered"), "{out}");
        let creds = dir.join("state/community.json");
        let mode = std::fs::metadata(&creds).unwrap().permissions();
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(mode.mode() & 0o777, 0o600, "credentials must be root-only");
        daemons.push(d);
    }
    for d in &mut daemons {
        d.start();
        assert!(d.status()["community"]["hub"].is_string(), "{}", d.log());
    }
    // host 4 pulled its first (empty) snapshot
    assert!(
        wait_until(Duration::from_secs(10), || daemons[3].status()["community"]
            ["pulls"]
            .as_u64()
            .unwrap_or(0)
            >= 1),
        "{}",
        daemons[3].log()
    );
    for n in ATTACKED {
        assert!(
            wait_until(Duration::from_secs(10), || atk
                .can_connect(&host_addr(n), 22)),
            "sshd {n} not reachable"
        );
    }
    assert!(atk.can_connect(&host_addr(4), PORT), "host 4 open before");

    // The hub goes down; then the attack on hosts 1-3.
    drop(hub.take());
    assert!(
        !hosts[0].0.can_connect("20.0.1.1", HUB_PORT),
        "hub still up"
    );
    std::thread::scope(|s| {
        for n in ATTACKED {
            let atk = &atk;
            s.spawn(move || attack(atk, 8, &host_addr(n)));
        }
    });
    for n in ATTACKED {
        // (host n did not ban the attacker, if this panics)
        daemons[n - 1].expect_in_kernel(&hosts[n - 1].0, ATK, Duration::from_secs(15));
    }
    // the signals wait in the outboxes while pushes fail
    for d in daemons.iter().take(3) {
        assert!(
            wait_until(Duration::from_secs(10), || {
                let c = &d.status()["community"];
                c["outbox"].as_u64().unwrap_or(0) >= 1
                    && c["push_failures"].as_u64().unwrap_or(0) >= 1
            }),
            "{}\n{}",
            d.status(),
            d.log()
        );
    }
    assert!(
        !crowdwall_table(&hosts[3].0).contains(ATK),
        "host 4 cannot know yet"
    );
    // a while down: a few failed pushes and pulls
    std::thread::sleep(Duration::from_secs(3));

    // The hub is back (same database): the outboxes drain, the consensus lists the
    // attacker, host 4 pulls the delta and its kernel drops the attacker.
    let _hub = start_hub(&hub_ns, top.path());
    let listed = wait_until(Duration::from_secs(45), || {
        crowdwall_table(&hosts[3].0).contains(ATK)
    });
    assert!(
        listed,
        "host 4 never got the community ban:\n{}\n--- host 4\n{}\n--- host 1\n{}\n--- hub\n{}",
        crowdwall_table(&hosts[3].0),
        daemons[3].log(),
        daemons[0].log(),
        hub_log()
    );
    assert!(
        !atk.can_connect(&host_addr(4), PORT),
        "attacker still reaches host 4"
    );
    let on_atk = daemons[3].one_decision_on(ATK);
    assert_eq!(on_atk["origin"], "community");
    assert_eq!(
        on_atk["scenario"].as_str().map(|s| s.starts_with("ssh-")),
        Some(true)
    );
    for d in daemons.iter().take(3) {
        assert!(
            wait_until(Duration::from_secs(15), || d.status()["community"]
                ["outbox"]
                == 0),
            "outbox not drained: {}",
            d.status()
        );
    }
    // Host 5 banned on its own evidence and kept it to itself: nothing queued, no outbox.
    let quiet = daemons[QUIET - 1].status();
    assert_eq!(quiet["community"]["signals_queued"], 0, "{quiet}");
    assert_eq!(quiet["community"]["signals_delivered"], 0, "{quiet}");
    assert!(
        !hosts[QUIET - 1]
            .1
            .join("state/community-outbox.jsonl")
            .exists(),
        "share = false must not even keep an outbox"
    );
    // No signal was lost, and none came from host 5: the hub holds one report from each of
    // hosts 1-3 (host 5 sharing would make it four).
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let info = rt.block_on(async {
        let store = crowdwall_hub::store::HubStore::open(&format!(
            "sqlite:{}",
            top.path().join("hub.db").display()
        ))
        .await
        .unwrap();
        store.lookup(ATK).await.unwrap()
    });
    let info = info.expect("attacker known to the hub");
    assert_eq!(info.reporters, 3, "{info:?}");
    assert_eq!(info.reports, 3, "{info:?}");
    assert!(info.listed_until.is_some());
}
