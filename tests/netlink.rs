//! The nftables backend against the real kernel, each test in network namespaces of its own.
//!
//! Needs root, `ip` and `nft` (and `ping` for the packet test). Without them the tests print
//! "skipped: <reason>" and pass, unless CROWDWALL_REQUIRE_ROOT_TESTS=1 makes them fail.

use std::fs::File;
use std::net::IpAddr;
use std::process::Command;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::thread;
use std::time::{Duration, Instant};

use crowdwall::enforce::netlink::NftFirewall;
use crowdwall::enforce::{
    Element, EnforceError, Family, Firewall, FirewallSpec, Interval, KernelElement,
};
use crowdwall::time::{self, SECOND};
use nix::sched::{setns, CloneFlags};
use serde_json::Value;

const TABLE: &str = "cwtest";

// ---------------------------------------------------------------------------------------------
// Harness

fn tool_works(cmd: &str, arg: &str) -> bool {
    Command::new(cmd)
        .arg(arg)
        .output()
        .map(|o| o.status.success())
        .unwrap_or(false)
}

/// Whether the kernel tests can run here; otherwise skip (or fail when required).
fn can_run(need_ping: bool) -> bool {
    let reason = if !nix::unistd::geteuid().is_root() {
        Some("not root")
    } else if !tool_works("ip", "-V") {
        Some("`ip` missing")
    } else if !tool_works("nft", "--version") {
        Some("`nft` missing")
    } else if need_ping && !tool_works("ping", "-V") {
        Some("`ping` missing")
    } else {
        None
    };
    match reason {
        None => true,
        Some(r) if std::env::var("CROWDWALL_REQUIRE_ROOT_TESTS").as_deref() == Ok("1") => {
            panic!("kernel tests required but cannot run: {r}")
        }
        Some(r) => {
            eprintln!("skipped: {r}");
            false
        }
    }
}

fn run(args: &[&str]) -> std::process::Output {
    let out = Command::new(args[0])
        .args(&args[1..])
        .output()
        .unwrap_or_else(|e| panic!("{args:?}: {e}"));
    out
}

fn run_ok(args: &[&str]) -> String {
    let out = run(args);
    assert!(
        out.status.success(),
        "{args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// A network namespace, deleted on drop (also when the test panics).
struct Netns {
    name: String,
}

impl Netns {
    fn new() -> Netns {
        static N: AtomicUsize = AtomicUsize::new(0);
        let name = format!(
            "cwnl-{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::SeqCst)
        );
        run_ok(&["ip", "netns", "add", &name]);
        run_ok(&["ip", "-n", &name, "link", "set", "lo", "up"]);
        Netns { name }
    }

    /// Runs `f` in a thread that has entered this namespace (namespaces are per thread).
    fn run<T: Send>(&self, f: impl FnOnce() -> T + Send) -> T {
        let path = format!("/run/netns/{}", self.name);
        thread::scope(|s| {
            s.spawn(|| {
                let fd = File::open(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
                setns(fd, CloneFlags::CLONE_NEWNET).expect("setns");
                f()
            })
            .join()
            .unwrap_or_else(|p| std::panic::resume_unwind(p))
        })
    }

    /// Opens a firewall in the namespace and hands it to `f`.
    fn with_fw<T: Send>(
        &self,
        spec: FirewallSpec,
        f: impl FnOnce(&mut NftFirewall) -> T + Send,
    ) -> T {
        self.run(|| {
            let mut fw = NftFirewall::open(spec).expect("open");
            f(&mut fw)
        })
    }

    fn nft_json(&self, args: &[&str]) -> Value {
        let mut cmd = vec!["ip", "netns", "exec", &self.name, "nft", "-j"];
        cmd.extend_from_slice(args);
        let out = run_ok(&cmd);
        serde_json::from_str(&out).unwrap_or_else(|e| panic!("nft -j {args:?}: {e}: {out}"))
    }

    fn nft(&self, args: &[&str]) -> std::process::Output {
        let mut cmd = vec!["ip", "netns", "exec", &self.name, "nft"];
        cmd.extend_from_slice(args);
        run(&cmd)
    }

    /// The objects of one kind ("table", "chain", "set", "rule") in `nft -j list ruleset`.
    fn objects(&self, kind: &str) -> Vec<Value> {
        let v = self.nft_json(&["list", "ruleset"]);
        v["nftables"]
            .as_array()
            .map(|a| a.iter().filter_map(|o| o.get(kind).cloned()).collect())
            .unwrap_or_default()
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        let _ = Command::new("ip")
            .args(["netns", "del", &self.name])
            .status();
    }
}

fn spec(priority: i32) -> FirewallSpec {
    FirewallSpec {
        table: TABLE.into(),
        priority,
    }
}

fn ip(s: &str) -> IpAddr {
    s.parse().expect("address")
}

fn net(s: &str) -> Interval {
    Interval::from_net(&s.parse().expect("cidr"))
}

fn elem(range: Interval, secs: i64) -> Element {
    Element {
        range,
        expires: time::now() + secs * SECOND,
    }
}

fn ranges(list: &[KernelElement]) -> Vec<Interval> {
    let mut r: Vec<_> = list.iter().map(|k| k.range).collect();
    r.sort();
    r
}

fn find(list: &[KernelElement], range: Interval) -> KernelElement {
    *list
        .iter()
        .find(|k| k.range == range)
        .unwrap_or_else(|| panic!("{range} not in {list:?}"))
}

/// Asserts the kernel timeout is what was asked (give or take the test's own latency).
fn assert_timeout(k: &KernelElement, secs: u64) {
    let t = k.timeout_ms.expect("timeout");
    let want = secs * 1000;
    assert!(
        t <= want && t + 3000 >= want,
        "{}: timeout {t} ms, want ~{want}",
        k.range
    );
    let left = k.expires_ms.expect("expiration");
    assert!(
        left <= t && left + 5000 >= t,
        "{}: expires {left} ms of {t}",
        k.range
    );
}

/// Element values of `nft -j list set`, normalised to strings: "a", "a/len", "a-b".
fn nft_elems(ns: &Netns, set: &str) -> Vec<(String, Option<u64>, Option<u64>)> {
    let v = ns.nft_json(&["list", "set", "inet", TABLE, set]);
    let set = v["nftables"]
        .as_array()
        .and_then(|a| a.iter().find_map(|o| o.get("set")))
        .cloned()
        .expect("set in nft output");
    let mut out = Vec::new();
    for e in set["elem"].as_array().cloned().unwrap_or_default() {
        let (val, timeout, expires) = match e.get("elem") {
            Some(inner) => (
                inner["val"].clone(),
                inner["timeout"].as_u64(),
                inner["expires"].as_u64(),
            ),
            None => (e.clone(), None, None),
        };
        let s = if let Some(s) = val.as_str() {
            s.to_string()
        } else if let Some(p) = val.get("prefix") {
            format!("{}/{}", p["addr"].as_str().unwrap_or("?"), p["len"])
        } else if let Some(r) = val.get("range") {
            format!(
                "{}-{}",
                r[0].as_str().unwrap_or("?"),
                r[1].as_str().unwrap_or("?")
            )
        } else {
            panic!("unexpected element {e}")
        };
        out.push((s, timeout, expires));
    }
    out.sort();
    out
}

fn is_kernel_err(r: Result<(), EnforceError>) -> (i32, String) {
    match r {
        Err(EnforceError::Kernel { what, errno, .. }) => (errno, what),
        other => panic!("expected a kernel error, got {other:?}"),
    }
}

// ---------------------------------------------------------------------------------------------
// Tests

#[test]
fn load_creates_everything_and_heals() {
    if !can_run(false) {
        return;
    }
    let ns = Netns::new();
    ns.with_fw(spec(-7), |fw| {
        assert!(!fw.is_intact().unwrap(), "empty namespace reported intact");
        fw.load(&[]).expect("first load");
        assert!(fw.is_intact().unwrap());

        let check = |label: &str| {
            let tables = ns.objects("table");
            assert_eq!(tables.len(), 1, "{label}: {tables:?}");
            assert_eq!(tables[0]["family"], "inet");
            assert_eq!(tables[0]["name"], TABLE);
            let chains = ns.objects("chain");
            assert_eq!(chains.len(), 1, "{label}: {chains:?}");
            let c = &chains[0];
            assert_eq!(c["name"], "input");
            assert_eq!(c["type"], "filter");
            assert_eq!(c["hook"], "input");
            assert_eq!(c["prio"], -7);
            assert_eq!(c["policy"], "accept");
            let sets = ns.objects("set");
            assert_eq!(sets.len(), 2, "{label}: {sets:?}");
            for (name, ty) in [("v4", "ipv4_addr"), ("v6", "ipv6_addr")] {
                let s = sets.iter().find(|s| s["name"] == name).expect("set");
                assert_eq!(s["type"], ty);
                let flags: Vec<_> = s["flags"].as_array().cloned().unwrap_or_default();
                assert!(flags.contains(&"interval".into()), "{s}");
                assert!(flags.contains(&"timeout".into()), "{s}");
            }
            // Text form of the rules: the matches and the verdicts.
            let text =
                String::from_utf8_lossy(&ns.nft(&["list", "chain", "inet", TABLE, "input"]).stdout)
                    .into_owned();
            assert!(
                text.contains("ip saddr @v4 counter packets 0 bytes 0 drop"),
                "{text}"
            );
            assert!(
                text.contains("ip6 saddr @v6 counter packets 0 bytes 0 drop"),
                "{text}"
            );
            assert_eq!(ns.objects("rule").len(), 2, "{label}");
        };
        check("first load");

        fw.load(&[elem(Interval::single(ip("192.0.2.9")), 600)])
            .expect("second load");
        check("second load");
        assert_eq!(fw.list().unwrap().len(), 1);

        let out = ns.nft(&["flush", "ruleset"]);
        assert!(out.status.success());
        assert!(!fw.is_intact().unwrap(), "intact after flush");
        fw.load(&[elem(Interval::single(ip("192.0.2.9")), 600)])
            .expect("load after flush");
        check("after flush");
        assert!(fw.is_intact().unwrap());
        assert_eq!(
            ranges(&fw.list().unwrap()),
            vec![Interval::single(ip("192.0.2.9"))]
        );
    });
    // A new priority re-creates the chain.
    ns.with_fw(spec(5), |fw| fw.load(&[]).expect("load with new priority"));
    let chains = ns.objects("chain");
    assert_eq!(chains.len(), 1);
    assert_eq!(chains[0]["prio"], 5);
}

#[test]
fn singles_and_cidrs_read_back() {
    if !can_run(false) {
        return;
    }
    let ns = Netns::new();
    let a4 = Interval::single(ip("203.0.113.7"));
    let a6 = Interval::single(ip("2001:db8::7"));
    let n4 = net("198.51.100.0/24");
    let n6 = net("2001:db8:1:2::/64");
    // Adjacent intervals share a key (end of one, start of the next).
    let lo = net("192.0.2.0/25");
    let hi = net("192.0.2.128/25");
    // The last address of each family has no end element.
    let top4 = net("255.255.255.0/24");
    let top6 = net("ffff:ffff:ffff:ffff::/64");
    let want = [
        (a4, 600),
        (a6, 1200),
        (n4, 1800),
        (n6, 2400),
        (lo, 3000),
        (hi, 3600),
        (top4, 4200),
        (top6, 4800),
    ];
    let listed = ns.with_fw(spec(-10), |fw| {
        let els: Vec<_> = want.iter().map(|&(r, s)| elem(r, s)).collect();
        fw.load(&els).expect("load");
        fw.list().expect("list")
    });
    let mut expect: Vec<_> = want.iter().map(|w| w.0).collect();
    expect.sort();
    assert_eq!(ranges(&listed), expect);
    for (r, secs) in want {
        assert_timeout(&find(&listed, r), secs as u64);
    }

    let v4 = nft_elems(&ns, "v4");
    let names: Vec<_> = v4.iter().map(|e| e.0.as_str()).collect();
    assert_eq!(
        names,
        [
            "192.0.2.0/25",
            "192.0.2.128/25",
            "198.51.100.0/24",
            "203.0.113.7",
            "255.255.255.0/24"
        ]
    );
    let v6 = nft_elems(&ns, "v6");
    let names: Vec<_> = v6.iter().map(|e| e.0.as_str()).collect();
    // (sorted as strings)
    assert_eq!(
        names,
        [
            "2001:db8:1:2::/64",
            "2001:db8::7",
            "ffff:ffff:ffff:ffff::/64"
        ]
    );
    for (name, timeout, expires) in v4.iter().chain(&v6) {
        let (t, e) = (timeout.expect("timeout"), expires.expect("expires"));
        assert!(
            t >= 590 && e <= t && e + 10 >= t,
            "{name}: timeout {t} expires {e}"
        );
    }
    let t = v4
        .iter()
        .find(|e| e.0 == "198.51.100.0/24")
        .and_then(|e| e.1);
    assert!(matches!(t, Some(1797..=1800)), "{t:?}");
}

#[test]
fn apply_removes_adds_and_refreshes() {
    if !can_run(false) {
        return;
    }
    let ns = Netns::new();
    let a = Interval::single(ip("192.0.2.1"));
    let b = net("198.51.100.0/24");
    let c = Interval::single(ip("2001:db8::c"));
    let d = net("2001:db8:d::/48");
    ns.with_fw(spec(-10), |fw| {
        fw.load(&[elem(a, 100), elem(b, 100), elem(c, 100)])
            .unwrap();

        // Remove one of each family, add one of each.
        fw.apply(&[a, c], &[elem(net("203.0.113.0/28"), 200), elem(d, 200)])
            .unwrap();
        let l = fw.list().unwrap();
        assert_eq!(ranges(&l), {
            let mut v = vec![b, net("203.0.113.0/28"), d];
            v.sort();
            v
        });
        assert_timeout(&find(&l, d), 200);

        // Refresh: the same interval in both lists gets the new, longer timeout.
        fw.apply(&[b, d], &[elem(b, 5000), elem(d, 7000)]).unwrap();
        let l = fw.list().unwrap();
        assert_eq!(l.len(), 3);
        assert_timeout(&find(&l, b), 5000);
        assert_timeout(&find(&l, d), 7000);

        // Ranges reaching the family's last address have no end element; they still delete
        // and refresh.
        let top4 = net("255.255.255.128/25");
        let top6 = net("ffff::/16");
        fw.apply(&[], &[elem(top4, 100), elem(top6, 100)]).unwrap();
        fw.apply(&[top4, top6], &[elem(top4, 900)]).unwrap();
        let l = fw.list().unwrap();
        assert_eq!(l.len(), 4, "{l:?}");
        assert_timeout(&find(&l, top4), 900);
        fw.apply(&[top4], &[]).unwrap();

        // An empty apply touches nothing.
        fw.apply(&[], &[]).unwrap();
        assert_eq!(fw.list().unwrap().len(), 3);
    });
}

#[test]
fn failed_transactions_change_nothing() {
    if !can_run(false) {
        return;
    }
    let ns = Netns::new();
    let b = net("198.51.100.0/24");
    ns.with_fw(spec(-10), |fw| {
        fw.load(&[elem(b, 100)]).unwrap();
        let before = ranges(&fw.list().unwrap());
        let ok = elem(Interval::single(ip("192.0.2.50")), 100);

        // An overlapping interval after a valid add.
        let overlap = elem(net("198.51.100.128/25"), 100);
        let (errno, what) = is_kernel_err(fw.apply(&[], &[ok, overlap]));
        assert_ne!(errno, 0);
        eprintln!("overlap: errno {errno} ({what})");
        assert!(what.contains("198.51.100.128-198.51.100.255"), "{what}");
        assert_eq!(ranges(&fw.list().unwrap()), before, "overlap half-applied");

        // Deleting an interval that is not there, after a valid add.
        let missing = Interval::single(ip("203.0.113.99"));
        let r = fw.apply(&[missing], &[ok]);
        let (errno, what) = is_kernel_err(r);
        assert_eq!(errno, libc::ENOENT, "{what}");
        assert!(what.contains("DELSETELEM v4"), "{what}");
        assert_eq!(ranges(&fw.list().unwrap()), before, "delete half-applied");

        // A failed load keeps the old table (and its bans) in force.
        let (errno, _) = is_kernel_err(fw.load(&[elem(b, 100), overlap]));
        assert_ne!(errno, 0);
        assert!(fw.is_intact().unwrap());
        assert_eq!(ranges(&fw.list().unwrap()), before, "load half-applied");

        // And the socket is still in step afterwards.
        fw.apply(&[], &[ok]).unwrap();
        assert_eq!(fw.list().unwrap().len(), 2);
    });
}

#[test]
fn short_expiry_is_enforced_by_the_kernel() {
    if !can_run(false) {
        return;
    }
    let ns = Netns::new();
    let short = Interval::single(ip("192.0.2.2"));
    let short6 = net("2001:db8:5::/64");
    let long = Interval::single(ip("192.0.2.3"));
    ns.with_fw(spec(-10), |fw| {
        fw.load(&[elem(short, 2), elem(short6, 2), elem(long, 600)])
            .unwrap();
        assert_eq!(fw.list().unwrap().len(), 3);
    });
    // The daemon's firewall is gone: only the kernel expires the element.
    thread::sleep(Duration::from_millis(3500));
    ns.with_fw(spec(-10), |fw| {
        assert_eq!(ranges(&fw.list().unwrap()), vec![long]);
    });
    let names: Vec<_> = nft_elems(&ns, "v4").into_iter().map(|e| e.0).collect();
    assert_eq!(names, ["192.0.2.3"]);
}

#[test]
fn hundred_thousand_in_one_load() {
    if !can_run(false) {
        return;
    }
    let ns = Netns::new();
    const N: u32 = 100_000;
    let base = u32::from(std::net::Ipv4Addr::new(11, 0, 0, 0));
    let els: Vec<_> = (0..N)
        .map(|i| {
            let a = (base + 2 * i) as u128;
            Element {
                range: Interval {
                    family: Family::V4,
                    first: a,
                    last: a,
                },
                expires: time::now() + 3600 * SECOND,
            }
        })
        .collect();
    ns.with_fw(spec(-10), |fw| {
        let t = Instant::now();
        fw.load(&els).expect("load 100k");
        let load = t.elapsed();
        let t = Instant::now();
        let l = fw.list().expect("list");
        let list = t.elapsed();
        println!("100k IPv4: load {load:?}, list {list:?}");
        eprintln!("100k IPv4: load {load:?}, list {list:?}");
        assert_eq!(l.len(), N as usize);
        let t = Instant::now();
        fw.load(&els).expect("reload 100k");
        eprintln!("100k IPv4: reload (replace table) {:?}", t.elapsed());
        let t = Instant::now();
        fw.apply(&[els[0].range], &[els[0]]).expect("apply");
        eprintln!("apply on a 100k set: {:?}", t.elapsed());
        assert_eq!(fw.list().expect("list").len(), N as usize);
    });
}

#[test]
fn banned_client_cannot_ping() {
    if !can_run(true) {
        return;
    }
    let server = Netns::new();
    let client = Netns::new();
    run_ok(&[
        "ip",
        "-n",
        &server.name,
        "link",
        "add",
        "cw0",
        "type",
        "veth",
        "peer",
        "name",
        "cw1",
        "netns",
        &client.name,
    ]);
    run_ok(&[
        "ip",
        "-n",
        &server.name,
        "addr",
        "add",
        "192.0.2.1/24",
        "dev",
        "cw0",
    ]);
    run_ok(&[
        "ip",
        "-n",
        &client.name,
        "addr",
        "add",
        "192.0.2.2/24",
        "dev",
        "cw1",
    ]);
    run_ok(&["ip", "-n", &server.name, "link", "set", "cw0", "up"]);
    run_ok(&["ip", "-n", &client.name, "link", "set", "cw1", "up"]);
    let ping = || {
        run(&[
            "ip",
            "netns",
            "exec",
            &client.name,
            "ping",
            "-c1",
            "-W1",
            "192.0.2.1",
        ])
        .status
        .success()
    };
    // The link may take a moment to come up.
    assert!((0..5).any(|_| ping()), "no connectivity before the ban");

    let banned = Interval::single(ip("192.0.2.2"));
    server.with_fw(spec(-10), |fw| fw.load(&[elem(banned, 600)]).unwrap());
    assert!(!ping(), "ping passed a ban");
    assert!(!ping(), "ping passed a ban");
    // The drop rule counted the echo requests.
    let text = String::from_utf8_lossy(
        &server
            .nft(&["list", "chain", "inet", TABLE, "input"])
            .stdout,
    )
    .into_owned();
    assert!(!text.contains("@v4 counter packets 0 "), "{text}");

    server.with_fw(spec(-10), |fw| fw.apply(&[banned], &[]).unwrap());
    assert!((0..3).any(|_| ping()), "ping still blocked after unban");
}

#[test]
fn remove_deletes_table_and_is_idempotent() {
    if !can_run(false) {
        return;
    }
    let ns = Netns::new();
    ns.with_fw(spec(-10), |fw| {
        fw.remove().expect("remove when absent");
        fw.load(&[elem(Interval::single(ip("192.0.2.4")), 60)])
            .unwrap();
        assert_eq!(ns.objects("table").len(), 1);
        fw.remove().expect("remove");
        assert!(ns.objects("table").is_empty());
        assert!(!fw.is_intact().unwrap());
        fw.remove().expect("second remove");
        // list() on an absent table is the kernel's ENOENT.
        match fw.list() {
            Err(EnforceError::Kernel { errno, .. }) => assert_eq!(errno, libc::ENOENT),
            other => panic!("list without table: {other:?}"),
        }
    });
}
