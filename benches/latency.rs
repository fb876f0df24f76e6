//! Log-to-kernel latency: writes six failed sshd logins for a fresh address into the real
//! journal and times until that address is an element of the kernel set, over many bans; also
//! the daemon's idle RSS. Needs root, a running journald, `ip` and `nft`. Prints `key=value`
//! lines that benches/bench.sh turns into the README table.

#[path = "../tests/common/mod.rs"]
mod common;

use std::net::Ipv4Addr;
use std::time::{Duration, Instant};

use crowdwall_engine::enforce::{Firewall, Interval};
use crowdwall_nft::FirewallSpec;
use crowdwall_nft::NftFirewall;

fn rss_kib(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_default()
        .lines()
        .find(|l| l.starts_with("VmRSS:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let idx = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[idx.min(sorted.len() - 1)]
}

fn main() {
    if std::env::args().any(|a| a == "--list") {
        return; // cargo bench/test probing
    }
    if !common::prerequisites(&["ip", "nft"], true) {
        return;
    }
    let bans: usize = std::env::var("CW_BANS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(250);
    let ns = common::Netns::new(format!("cwlat{}", common::tag()));
    let dir = tempfile::tempdir().expect("tempdir");
    let mut daemon = common::Daemon::new(
        &ns.name,
        dir.path(),
        "[journal]\nmatches = [\"SYSLOG_IDENTIFIER=sshd\"]\n",
    );
    daemon.start();
    let pid = daemon.pid().expect("daemon pid");
    std::thread::sleep(Duration::from_secs(3));
    let idle = rss_kib(pid);

    // Read the kernel from inside the namespace: setns this (only) thread.
    let f = std::fs::File::open(format!("/run/netns/{}", ns.name)).expect("netns");
    nix::sched::setns(f, nix::sched::CloneFlags::CLONE_NEWNET).expect("setns");
    let mut fw = NftFirewall::open(FirewallSpec::default()).expect("netlink");

    let mut lat_ms = Vec::with_capacity(bans);
    let mut timeouts = 0;
    for i in 0..bans {
        // 198.18.0.0/15: benchmarking addresses, never allowlisted, never routed.
        let ip = Ipv4Addr::new(198, 18, (i / 250) as u8, (i % 250 + 1) as u8);
        let iv = Interval::single(ip.into());
        for k in 0..5 {
            let msg = format!(
                "MESSAGE=Failed password for invalid user bench{k} from {ip} port {} ssh2",
                40000 + k
            );
            systemd::journal::send(&[&msg, "SYSLOG_IDENTIFIER=sshd", "PRIORITY=5"])
                .expect("journal send");
        }
        let t0 = Instant::now();
        let set = fw.layout().index_of("local_v4").expect("local_v4 set");
        loop {
            if fw
                .list(set)
                .map(|els| els.iter().any(|e| e.range == iv))
                .unwrap_or(false)
            {
                lat_ms.push(t0.elapsed().as_secs_f64() * 1000.0);
                break;
            }
            if t0.elapsed() > Duration::from_secs(5) {
                eprintln!("timeout: {ip} (ban #{i}) not in the kernel set after 5 s");
                timeouts += 1;
                break;
            }
            std::thread::sleep(Duration::from_micros(100));
        }
    }
    let loaded = rss_kib(pid);
    daemon.kill9();
    lat_ms.sort_by(|a, b| a.total_cmp(b));
    println!("bans={}", lat_ms.len());
    println!("timeouts={timeouts}");
    println!("latency_p50_ms={:.2}", percentile(&lat_ms, 0.50));
    println!("latency_p99_ms={:.2}", percentile(&lat_ms, 0.99));
    println!(
        "latency_max_ms={:.2}",
        lat_ms.last().copied().unwrap_or(f64::NAN)
    );
    println!("idle_rss_kib={idle}");
    println!("rss_after_bans_kib={loaded}");
}
