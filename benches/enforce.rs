//! Enforcement cost against the real kernel, in a network namespace of its own: full loads of
//! 10k / 100k / 1M IPv4 and 100k IPv6 addresses in one transaction, a 1k delta applied to a
//! set of 1M, and the same full loads through `nft -f` from a file, in the same run, with the
//! ratio. Prints a markdown table (README "Enforcement figures"). Needs root, `ip` and `nft`.
//!
//!     cargo bench --bench enforce            # CW_ROUNDS=3 by default; best of the rounds
//!
//! Timing is reported, never asserted.

use std::fs::File;
use std::io::Write;
use std::net::{Ipv4Addr, Ipv6Addr};
use std::process::Command;
use std::time::{Duration, Instant};

use crowdwall_base::clock as time;
use crowdwall_base::time::SECOND;
use crowdwall_engine::decide::Origin;
use crowdwall_engine::enforce::{Element, Family, Firewall, Interval, SetChange};
use crowdwall_nft::FirewallSpec;
use crowdwall_nft::NftFirewall;
use nix::sched::{setns, CloneFlags};

fn sh(args: &[&str]) -> bool {
    Command::new(args[0])
        .args(&args[1..])
        .status()
        .map(|s| s.success())
        .unwrap_or(false)
}

fn hosts(n: u32, family: Family) -> Vec<Element> {
    let exp = time::now() + 3600 * SECOND;
    (0..n)
        .map(|i| {
            let v = match family {
                Family::V4 => u32::from(Ipv4Addr::new(11, 0, 0, 0)) as u128 + i as u128,
                Family::V6 => {
                    u128::from(Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 0)) + i as u128
                }
            };
            Element {
                range: Interval {
                    family,
                    first: v,
                    last: v,
                },
                expires: exp,
            }
        })
        .collect()
}

/// The same bans as an nft script: table, set, elements; one transaction.
fn nft_script(els: &[Element], family: Family, path: &str) {
    let mut f = std::io::BufWriter::new(File::create(path).expect("script"));
    let ty = match family {
        Family::V4 => "ipv4_addr",
        Family::V6 => "ipv6_addr",
    };
    writeln!(
        f,
        "add table inet nftbench\ndelete table inet nftbench\nadd table inet nftbench"
    )
    .unwrap();
    writeln!(f, "add set inet nftbench s {{ type {ty}; flags timeout; }}").unwrap();
    for chunk in els.chunks(10_000) {
        write!(f, "add element inet nftbench s {{ ").unwrap();
        for (i, e) in chunk.iter().enumerate() {
            let sep = if i + 1 < chunk.len() { "," } else { "" };
            write!(f, "{} timeout 3600s{sep} ", e.range.first_addr()).unwrap();
        }
        writeln!(f, "}}").unwrap();
    }
}

fn main() {
    if !nix::unistd::geteuid().is_root() || !sh(&["nft", "--version"]) {
        eprintln!("enforce bench: needs root and nft; skipped");
        return;
    }
    let rounds: usize = std::env::var("CW_ROUNDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(3);
    let ns = format!("cwbench-{}", std::process::id());
    assert!(sh(&["ip", "netns", "add", &ns]), "ip netns add");
    let path = format!("/run/netns/{ns}");
    let script = format!("/tmp/{ns}.nft");
    let best = |v: &[Duration]| v.iter().min().copied().unwrap_or_default();
    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    let mut rows = Vec::new();
    let mut delta_ms = Vec::new();
    std::thread::scope(|s| {
        s.spawn(|| {
            setns(File::open(&path).expect("netns"), CloneFlags::CLONE_NEWNET).expect("setns");
            let mut fw = NftFirewall::open(FirewallSpec::default()).expect("netlink");
            let n_sets = fw.layout().sets.len();
            for (label, n, family) in [
                ("10k IPv4", 10_000, Family::V4),
                ("100k IPv4", 100_000, Family::V4),
                ("1M IPv4", 1_000_000, Family::V4),
                ("100k IPv6", 100_000, Family::V6),
            ] {
                let els = hosts(n, family);
                let ix = fw
                    .layout()
                    .route(Origin::Community, &els[0].range)
                    .expect("route") as usize;
                let mut sets = vec![Vec::new(); n_sets];
                sets[ix] = els.clone();
                nft_script(&els, family, &script);
                let (mut ours, mut theirs) = (Vec::new(), Vec::new());
                for _ in 0..rounds {
                    let t = Instant::now();
                    fw.load(&sets).expect("load");
                    ours.push(t.elapsed());
                    let t = Instant::now();
                    assert!(sh(&["nft", "-f", &script]), "nft -f");
                    theirs.push(t.elapsed());
                    assert!(sh(&["nft", "delete", "table", "inet", "nftbench"]));
                }
                if n == 1_000_000 {
                    // 1k delta on the loaded 1M set: 500 out, 500 in.
                    for r in 0..rounds.max(5) {
                        let base = 2_000 * r;
                        let remove: Vec<Interval> =
                            els[base..base + 500].iter().map(|e| e.range).collect();
                        let add: Vec<Element> = hosts(500 + 500 * r as u32, Family::V6)
                            .into_iter()
                            .skip(500 * r)
                            .map(|mut e| {
                                e.range.family = Family::V4;
                                e.range.first = u32::from(Ipv4Addr::new(12, 0, 0, 0)) as u128
                                    + (e.range.first & 0xffff_ffff);
                                e.range.last = e.range.first;
                                e
                            })
                            .collect();
                        let change = SetChange {
                            set: ix as u16,
                            remove,
                            add,
                        };
                        let t = Instant::now();
                        fw.apply(&[change]).expect("delta");
                        delta_ms.push(t.elapsed());
                    }
                }
                rows.push((label, best(&ours), best(&theirs)));
            }
            fw.remove().expect("remove");
        });
    });
    let _ = std::fs::remove_file(&script);
    sh(&["ip", "netns", "del", &ns]);
    println!("| full load, one transaction | crowdwall (netlink) | `nft -f` | crowdwall / nft |");
    println!("|---|---:|---:|---:|");
    for (label, ours, theirs) in &rows {
        println!(
            "| {label} | {:.0} ms | {:.0} ms | {:.2} |",
            ms(*ours),
            ms(*theirs),
            ms(*ours) / ms(*theirs)
        );
    }
    delta_ms.sort();
    println!(
        "| 1k delta (500 out, 500 in) on a set of 1M | {:.2} ms (median of {}) | | |",
        ms(delta_ms[delta_ms.len() / 2]),
        delta_ms.len()
    );
    println!("\n(best of {rounds} rounds each; timeouts on every element; release build)");
}
