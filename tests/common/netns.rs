//! Network namespaces: creation and teardown, veth links between them, commands and threads
//! inside them, and the three-namespace site most end-to-end tests stand on.

use std::ffi::OsStr;
use std::process::{Command, Output, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};

use super::proc::{must, run, spawn, Proc};

static SEQ: AtomicU32 = AtomicU32::new(0);

/// A short tag, unique in this process, for names (namespaces, veths: at most 15 characters
/// with their prefix). Tests of one binary run at the same time: every name they make holds
/// a tag.
pub fn tag() -> String {
    format!(
        "{}{}",
        std::process::id() % 100_000,
        SEQ.fetch_add(1, Ordering::Relaxed)
    )
}

/// A network namespace, deleted on drop (also when the test panics).
pub struct Netns {
    pub name: String,
}

impl Netns {
    /// A fresh namespace (one left over under that name is deleted first) with `lo` up.
    pub fn new(name: String) -> Netns {
        let _ = run(&["ip", "netns", "del", &name]);
        must(&["ip", "netns", "add", &name]);
        must(&["ip", "-n", &name, "link", "set", "lo", "up"]);
        Netns { name }
    }

    /// A fresh namespace named `<prefix><tag>`.
    pub fn tagged(prefix: &str) -> Netns {
        Netns::new(format!("{prefix}{}", tag()))
    }

    /// `ip netns exec NAME program`: a command to add arguments to, run or spawn.
    pub fn command(&self, program: impl AsRef<OsStr>) -> Command {
        let mut c = Command::new("ip");
        c.args(["netns", "exec", &self.name]).arg(program);
        c
    }

    /// Runs a command inside the namespace (never panics on failure exit).
    pub fn exec(&self, args: &[&str]) -> Output {
        let mut v = vec!["ip", "netns", "exec", &self.name];
        v.extend_from_slice(args);
        run(&v)
    }

    /// Runs a command inside the namespace and panics if it fails; its stdout otherwise.
    pub fn must(&self, args: &[&str]) -> String {
        let mut v = vec!["ip", "netns", "exec", &self.name];
        v.extend_from_slice(args);
        must(&v)
    }

    /// A plain TCP listener (`nc -lk PORT`) in the namespace, on every address.
    /// Returns once the socket listens: a connection tried right after must not race the
    /// listener's start (it did, once in CI).
    pub fn listen(&self, port: u16) -> Proc {
        let p = spawn(
            self.command("nc")
                .args(["-lk", &port.to_string()])
                .stdout(Stdio::null()),
            "nc listener",
        );
        self.wait_listening(port);
        p
    }

    /// A plain TCP listener on one address of the namespace.
    pub fn listen_at(&self, addr: &str, port: u16) -> Proc {
        let p = spawn(
            self.command("nc")
                .args(["-lk", addr, &port.to_string()])
                .stdout(Stdio::null()),
            "nc listener",
        );
        self.wait_listening(port);
        p
    }

    /// Waits (10 s at most) until a TCP socket in the namespace listens on `port`, as `ss`
    /// sees it; panics otherwise, since every test after would fail for the wrong reason.
    pub fn wait_listening(&self, port: u16) {
        let filter = format!("sport = :{port}");
        let up = super::proc::wait_until(std::time::Duration::from_secs(10), || {
            !self.exec(&["ss", "-Hltn", &filter]).stdout.is_empty()
        });
        assert!(up, "nothing listens on port {port} in {}", self.name);
    }

    /// Whether a TCP connection to addr:port succeeds within 2 s.
    pub fn can_connect(&self, addr: &str, port: u16) -> bool {
        self.exec(&["nc", "-z", "-w", "2", addr, &port.to_string()])
            .status
            .success()
    }

    /// Runs `f` in a thread that has entered this namespace (namespaces are per thread:
    /// sockets `f` opens belong to this namespace). A panic in `f` is the caller's.
    pub fn enter<T: Send>(&self, f: impl FnOnce() -> T + Send) -> T {
        let path = format!("/run/netns/{}", self.name);
        std::thread::scope(|s| {
            s.spawn(|| {
                let fd = std::fs::File::open(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
                nix::sched::setns(fd, nix::sched::CloneFlags::CLONE_NEWNET).expect("setns");
                f()
            })
            .join()
            .unwrap_or_else(|p| std::panic::resume_unwind(p))
        })
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        let _ = run(&["ip", "netns", "del", &self.name]);
    }
}

/// A veth pair named `a_if` in `a` and `b_if` in `b`, both ends up, no addresses.
pub fn link(a: &Netns, a_if: &str, b: &Netns, b_if: &str) {
    must(&[
        "ip", "-n", &a.name, "link", "add", a_if, "type", "veth", "peer", "name", b_if, "netns",
        &b.name,
    ]);
    must(&["ip", "-n", &a.name, "link", "set", a_if, "up"]);
    must(&["ip", "-n", &b.name, "link", "set", b_if, "up"]);
}

/// Adds a CIDR-suffixed address (IPv4 or IPv6, without duplicate address detection) to `dev`.
pub fn addr(ns: &Netns, dev: &str, cidr: &str) {
    let fam = if cidr.contains(':') { "-6" } else { "-4" };
    must(&[
        "ip", "-n", &ns.name, fam, "addr", "add", cidr, "dev", dev, "nodad",
    ]);
}

/// Joins two namespaces with a veth pair (`cwa<tag>` in `a`, `cwb<tag>` in `b`): `a_addr`
/// and `b_addr` are CIDR-suffixed addresses. Returns the two interface names.
pub fn veth(a: &Netns, a_addr: &str, b: &Netns, b_addr: &str) -> (String, String) {
    let t = tag();
    let (ea, eb) = (format!("cwa{t}"), format!("cwb{t}"));
    link(a, &ea, b, &eb);
    addr(a, &ea, a_addr);
    addr(b, &eb, b_addr);
    (ea, eb)
}

/// The addresses of a [`Site`]: the server's side and the client's of the attacker's link,
/// then of the bystander's link (each link a /24).
pub struct Addrs {
    pub srv_atk: &'static str,
    pub atk: &'static str,
    pub srv_by: &'static str,
    pub by: &'static str,
}

/// Documentation addresses (not private: a default allowlist of private ranges cannot hide
/// a failing test). Several tests use them at once, each in namespaces of its own; what
/// keeps one test's attack from being another's evidence is what their daemons read from
/// the shared journal (a different SYSLOG_IDENTIFIER each).
pub const DOC: Addrs = Addrs {
    srv_atk: "198.51.100.1",
    atk: "198.51.100.2",
    srv_by: "203.0.113.1",
    by: "203.0.113.2",
};

/// A server and an attacker namespace on one veth pair.
pub struct Pair {
    pub srv: Netns,
    pub atk: Netns,
    /// The pair's interface in each.
    pub srv_dev: String,
    pub atk_dev: String,
}

/// The namespaces `<prefix><tag>s` and `<prefix><tag>a`, linked, with the CIDR-suffixed
/// addresses `srv_cidr` and `atk_cidr`.
pub fn pair(prefix: &str, srv_cidr: &str, atk_cidr: &str) -> Pair {
    pair_tagged(&format!("{prefix}{}", tag()), srv_cidr, atk_cidr)
}

fn pair_tagged(name: &str, srv_cidr: &str, atk_cidr: &str) -> Pair {
    let srv = Netns::new(format!("{name}s"));
    let atk = Netns::new(format!("{name}a"));
    let (srv_dev, atk_dev) = veth(&srv, srv_cidr, &atk, atk_cidr);
    Pair {
        srv,
        atk,
        srv_dev,
        atk_dev,
    }
}

/// A server namespace with two clients, each on a link of its own: an attacker and a
/// bystander. Everything is deleted on drop.
pub struct Site {
    pub srv: Netns,
    pub atk: Netns,
    pub by: Netns,
}

/// The namespaces `<prefix><tag>s`, `<prefix><tag>a` and `<prefix><tag>b`, linked.
pub fn site(prefix: &str, a: &Addrs) -> Site {
    let name = format!("{prefix}{}", tag());
    let p = pair_tagged(
        &name,
        &format!("{}/24", a.srv_atk),
        &format!("{}/24", a.atk),
    );
    let by = Netns::new(format!("{name}b"));
    veth(
        &p.srv,
        &format!("{}/24", a.srv_by),
        &by,
        &format!("{}/24", a.by),
    );
    Site {
        srv: p.srv,
        atk: p.atk,
        by,
    }
}

/// Once the attacker is banned: its connections to `port` on the server are dropped, the
/// bystander's go through.
pub fn assert_only_attacker_dropped(atk: &Netns, by: &Netns, a: &Addrs, port: u16) {
    assert!(
        !atk.can_connect(a.srv_atk, port),
        "attacker still connects while banned"
    );
    assert!(
        by.can_connect(a.srv_by, port),
        "bystander must not be affected"
    );
}
