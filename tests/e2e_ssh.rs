//! End to end on real parts: a real journald, a real OpenSSH server in a server namespace, an
//! attacker and a bystander namespace joined to it by veth pairs, and the crowdwall daemon
//! enforcing in the server namespace's kernel.

mod common;

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use common::{must, prerequisites, tag, veth, wait_until, Daemon, Netns, Proc};

const SRV_ATK: &str = "198.51.100.1";
const ATK: &str = "198.51.100.2";
const SRV_BY: &str = "203.0.113.1";
const BY: &str = "203.0.113.2";

/// The lab's addresses: server side and client of the attacker link, then of the bystander
/// link. Tests running at once share the journal, and every daemon reads every sshd line:
/// each test attacks from its own addresses so that one test's attack is never another's
/// evidence.
struct Addrs {
    srv_atk: &'static str,
    atk: &'static str,
    srv_by: &'static str,
    by: &'static str,
}

const MAIN: Addrs = Addrs {
    srv_atk: SRV_ATK,
    atk: ATK,
    srv_by: SRV_BY,
    by: BY,
};
const SANDBOX: Addrs = Addrs {
    srv_atk: "10.88.1.1",
    atk: "10.88.1.2",
    srv_by: "10.88.2.1",
    by: "10.88.2.2",
};
/// The plain TCP port reachability is checked on.
const PORT: u16 = 8080;

/// Addresses in the kernel set v4 of the server namespace, read with the nft CLI (an
/// independent check of what the daemon's netlink code wrote).
fn kernel_v4(ns: &Netns) -> String {
    let o = ns.exec(&["nft", "list", "set", "inet", "crowdwall", "v4"]);
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn write_sshd_config(dir: &Path, a: &Addrs) -> PathBuf {
    let conf = dir.join("sshd_config");
    let mut f = std::fs::File::create(&conf).unwrap();
    write!(
        f,
        "Port 22\nListenAddress {}\nListenAddress {}\n\
         HostKey /etc/ssh/ssh_host_ed25519_key\nHostKey /etc/ssh/ssh_host_rsa_key\n\
         PidFile {}\nSyslogFacility AUTH\nLogLevel INFO\nUsePAM yes\n\
         PasswordAuthentication yes\nKbdInteractiveAuthentication no\nPermitRootLogin no\n\
         MaxAuthTries 6\nMaxStartups 100\n",
        a.srv_atk,
        a.srv_by,
        dir.join("sshd.pid").display()
    )
    .unwrap();
    conf
}

/// Failed password logins from the attacker: `conns` parallel connections. sshpass answers
/// one password prompt per connection and gives up at the second, so each connection is one
/// failed attempt (and several log lines: the parser must count it once).
fn attack(atk: &Netns, conns: usize, target: &str) {
    let mut kids = Vec::new();
    for i in 0..conns {
        let user = format!("nosuchuser{i}");
        kids.push(
            Command::new("ip")
                .args([
                    "netns",
                    "exec",
                    &atk.name,
                    "sshpass",
                    "-p",
                    "wrong",
                    "ssh",
                    "-o",
                    "StrictHostKeyChecking=no",
                    "-o",
                    "UserKnownHostsFile=/dev/null",
                    "-o",
                    "PreferredAuthentications=password",
                    "-o",
                    "PubkeyAuthentication=no",
                    "-o",
                    "NumberOfPasswordPrompts=1",
                    "-o",
                    "ConnectTimeout=5",
                    "-o",
                    "BatchMode=no",
                ])
                .arg(format!("{user}@{target}"))
                .arg("true")
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .expect("sshpass"),
        );
    }
    // The ban lands mid-attack: connections still open then hang on dropped packets, so
    // give them a bounded time and kill the rest.
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    for mut k in kids {
        while std::time::Instant::now() < deadline {
            if let Ok(Some(_)) = k.try_wait() {
                break;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        let _ = k.kill();
        let _ = k.wait();
    }
}

/// The lab: a server namespace running a real sshd and a plain TCP listener, an attacker and
/// a bystander namespace joined to it; everything is torn down on drop.
struct Lab {
    srv: Netns,
    atk: Netns,
    by: Netns,
    dir: tempfile::TempDir,
    _sshd: Proc,
    _tcp: Proc,
}

/// `prefix` keeps namespace names apart between tests (and from other suites).
fn lab(prefix: &str, a: &Addrs) -> Option<Lab> {
    if !prerequisites(&["ip", "nft", "sshpass", "ssh", "nc", "systemd-cat"], true) {
        return None;
    }
    assert!(Path::new("/usr/sbin/sshd").exists(), "needs openssh-server");
    let t = tag();
    let srv = Netns::new(format!("{prefix}{t}s"));
    let atk = Netns::new(format!("{prefix}{t}a"));
    let by = Netns::new(format!("{prefix}{t}b"));
    veth(
        &srv,
        &format!("{}/24", a.srv_atk),
        &atk,
        &format!("{}/24", a.atk),
    );
    veth(
        &srv,
        &format!("{}/24", a.srv_by),
        &by,
        &format!("{}/24", a.by),
    );

    let dir = tempfile::tempdir().unwrap();
    let sshd_conf = write_sshd_config(dir.path(), a);
    must(&["/usr/sbin/sshd", "-t", "-f", sshd_conf.to_str().unwrap()]);
    let sshd = Proc(
        Command::new("ip")
            .args(["netns", "exec", &srv.name, "/usr/sbin/sshd", "-D", "-f"])
            .arg(&sshd_conf)
            .spawn()
            .expect("sshd"),
    );
    // Reachability is checked on a plain TCP listener beside sshd: the ban drops every
    // packet of the source, and bare connects to sshd would themselves count as probes
    // (kex_exchange_identification errors) and get the checker banned by ssh-probing.
    let tcp = Proc(
        Command::new("ip")
            .args(["netns", "exec", &srv.name, "nc", "-lk", &PORT.to_string()])
            .stdout(Stdio::null())
            .spawn()
            .expect("nc listener"),
    );
    assert!(
        wait_until(Duration::from_secs(10), || by.can_connect(a.srv_by, 22)),
        "sshd not reachable from the bystander"
    );
    assert!(
        wait_until(Duration::from_secs(10), || atk.can_connect(a.srv_atk, PORT)),
        "attacker reaches the server before any ban"
    );
    Some(Lab {
        srv,
        atk,
        by,
        dir,
        _sshd: sshd,
        _tcp: tcp,
    })
}

#[test]
fn ssh_bruteforce_is_dropped_by_the_kernel_and_bans_survive_a_crash() {
    let Some(lab) = lab("cwe", &MAIN) else {
        return;
    };
    // Named bindings (not `_`) keep sshd and the listener alive to the end of the test.
    let Lab {
        srv,
        atk,
        by,
        dir,
        _sshd,
        _tcp,
    } = lab;

    let mut d = Daemon::new(
        &srv.name,
        dir.path(),
        "[journal]\nmatches = [\"SYSLOG_IDENTIFIER=sshd\", \"SYSLOG_IDENTIFIER=sshd-session\"]\n",
    );
    d.start();

    // 1. Real failed logins get the attacker dropped; the bystander still connects.
    attack(&atk, 8, SRV_ATK);
    let banned = wait_until(Duration::from_secs(15), || kernel_v4(&srv).contains(ATK));
    assert!(
        banned,
        "attacker not in the kernel set:\n{}\n{}",
        kernel_v4(&srv),
        d.log()
    );
    assert!(
        !atk.can_connect(SRV_ATK, PORT),
        "attacker still connects while banned"
    );
    assert!(
        by.can_connect(SRV_BY, PORT),
        "bystander must not be affected"
    );
    let ds = d.decisions();
    let local: Vec<_> = ds.iter().filter(|x| x["value"] == ATK).collect();
    assert_eq!(local.len(), 1, "{ds:?}");
    assert_eq!(local[0]["origin"], "local");
    assert!(
        local[0]["scenario"]
            .as_str()
            .unwrap_or("")
            .starts_with("ssh-"),
        "{ds:?}"
    );

    // Someone flushes the ruleset: the daemon notices and restores its table and the ban
    // (a periodic check for now; netlink events will make it immediate).
    srv.must(&["nft", "flush", "ruleset"]);
    assert!(
        wait_until(Duration::from_secs(10), || kernel_v4(&srv).contains(ATK)),
        "table not restored after a flush:\n{}",
        d.log()
    );
    assert!(
        !atk.can_connect(SRV_ATK, PORT),
        "attacker connects after the heal"
    );

    // 2. `decisions delete` restores the attacker at once.
    let (ok, out) = d.cli(&["decisions", "delete", ATK]);
    assert!(ok, "{out}");
    assert!(!kernel_v4(&srv).contains(ATK));
    assert!(
        atk.can_connect(SRV_ATK, PORT),
        "attacker should connect after delete"
    );

    // 3. A manual ban and a short one, then kill -9: the kernel keeps enforcing.
    let (ok, out) = d.cli(&[
        "decisions",
        "add",
        ATK,
        "--duration",
        "1h",
        "--reason",
        "e2e",
    ]);
    assert!(ok, "{out}");
    let (ok, out) = d.cli(&["decisions", "add", "192.0.2.77", "--duration", "4s"]);
    assert!(ok, "{out}");
    assert!(kernel_v4(&srv).contains("192.0.2.77"));
    d.kill9();
    assert!(
        !atk.can_connect(SRV_ATK, PORT),
        "ban must hold while the daemon is dead"
    );
    assert!(
        wait_until(Duration::from_secs(10), || !kernel_v4(&srv)
            .contains("192.0.2.77")),
        "short ban did not expire in the kernel: {}",
        kernel_v4(&srv)
    );
    assert!(
        kernel_v4(&srv).contains(ATK),
        "the 1h ban must still be there"
    );

    // 4. Written while the daemon is down: must be read after the restart.
    let mut cat = Command::new("systemd-cat")
        .args(["-t", "sshd"])
        .stdin(Stdio::piped())
        .spawn()
        .unwrap();
    {
        let w = cat.stdin.as_mut().unwrap();
        for i in 0..6 {
            writeln!(
                w,
                "Failed password for invalid user ghost{i} from 192.0.2.99 port {} ssh2",
                40000 + i
            )
            .unwrap();
        }
    }
    drop(cat.stdin.take());
    cat.wait().unwrap();

    d.start();
    assert!(
        wait_until(Duration::from_secs(10), || kernel_v4(&srv)
            .contains("192.0.2.99")),
        "entries written while down were skipped:\n{}",
        d.log()
    );
    // 5. Old lines are not re-counted: the attack of step 1 lies before the saved cursor, so
    //    the only decision on the attacker is still the manual one (a re-read would have made a
    //    new local one), and once that is lifted the attacker stays free.
    let on_atk: Vec<_> = d
        .decisions()
        .into_iter()
        .filter(|x| x["value"] == ATK)
        .collect();
    assert_eq!(on_atk.len(), 1, "re-counted after restart? {on_atk:?}");
    assert_eq!(on_atk[0]["origin"], "manual", "{on_atk:?}");
    let (ok, out) = d.cli(&["decisions", "delete", ATK]);
    assert!(ok, "{out}");
    std::thread::sleep(Duration::from_secs(2));
    assert!(
        atk.can_connect(SRV_ATK, PORT),
        "attacker should connect once the manual ban is lifted:\n{}\n{:?}\n{}",
        kernel_v4(&srv),
        d.decisions(),
        d.log()
    );
    assert!(
        !d.decisions().iter().any(|x| x["value"] == ATK),
        "{:?}",
        d.decisions()
    );
    let (ok, status) = d.cli(&["status"]);
    assert!(ok, "{status}");
    assert!(status.contains("firewall inet crowdwall"), "{status}");
}

/// `GET /metrics` on the namespace's own loopback (the endpoint is loopback-only).
fn scrape(ns: &Netns, port: u16) -> String {
    use std::io::Read;
    let path = format!("/run/netns/{}", ns.name);
    std::thread::scope(|s| {
        s.spawn(|| {
            let fd = std::fs::File::open(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
            nix::sched::setns(fd, nix::sched::CloneFlags::CLONE_NEWNET).expect("setns");
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
        .join()
        .unwrap_or_else(|p| std::panic::resume_unwind(p))
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
        crowdwall::lockout::record(
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
    let sandbox = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/lab/sandbox.sh");
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
    let (ok, out) = d.cli(&["status", "--json"]);
    assert!(ok, "{out}");
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
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
    assert!(
        wait_until(Duration::from_secs(15), || kernel_v4(srv).contains(a.atk)),
        "sandboxed daemon did not ban the attacker:\n{}\n{}",
        kernel_v4(srv),
        d.log()
    );
    assert!(!atk.can_connect(a.srv_atk, PORT), "attacker still connects");
    assert!(
        by.can_connect(a.srv_by, PORT),
        "bystander must not be affected"
    );

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
