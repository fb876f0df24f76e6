//! The Core against the in-memory firewall: requests, offences, the allowlist, retries.

use super::*;
use crate::config::Config;
use crate::control::{Request, Response};
use crate::store::Store;
use crate::time::{self, Micros, SECOND};
use crowdwall_engine::decide::{Decision, Origin};
use crowdwall_engine::enforce::memory::MemoryFirewall;
use crowdwall_engine::enforce::Firewall;
use crowdwall_engine::LogEntry;

fn core() -> Core<MemoryFirewall> {
    let cfg = Config::embedded().unwrap();
    let mut c = Core::new(
        cfg,
        Store::in_memory().unwrap(),
        MemoryFirewall::new().with_clock(crate::time::now),
    )
    .unwrap();
    c.reconcile().unwrap();
    c
}

fn add(c: &mut Core<MemoryFirewall>, v: &str, dur: &str) -> Response {
    c.handle_request(
        Request::Add {
            value: v.into(),
            duration: Some(dur.into()),
            reason: None,
            ports: None,
        },
        &StatusExtra::default(),
    )
}

#[test]
fn manual_add_and_delete_reach_the_firewall() {
    let mut c = core();
    assert!(matches!(add(&mut c, "192.0.2.7", "1h"), Response::Ok(_)));
    assert!(matches!(
        add(&mut c, "198.51.100.0/24", "2h"),
        Response::Ok(_)
    ));
    assert_eq!(c.firewall().elements.len(), 2);
    // An address goes to the hash set and leaves the range alone; a nested range with a
    // longer ban splits the interval set's element, all without a full reload.
    let loads = c.stats.full_loads;
    assert!(matches!(add(&mut c, "198.51.100.9", "5h"), Response::Ok(_)));
    assert_eq!(c.firewall().elements.len(), 3);
    assert!(matches!(
        add(&mut c, "198.51.100.0/25", "5h"),
        Response::Ok(_)
    ));
    let ranges: Vec<String> = c
        .firewall()
        .ranges()
        .iter()
        .map(|r| r.to_string())
        .collect();
    assert_eq!(
        ranges,
        [
            "192.0.2.7",
            "198.51.100.0-198.51.100.127",
            "198.51.100.9",
            "198.51.100.128-198.51.100.255"
        ]
    );
    assert_eq!(c.stats.full_loads, loads);
    let r = c.handle_request(
        Request::Delete {
            value: "192.0.2.7".into(),
        },
        &StatusExtra::default(),
    );
    assert!(matches!(r, Response::Ok(_)), "{r:?}");
    assert_eq!(c.firewall().elements.len(), 3);
    assert!(!c
        .firewall()
        .ranges()
        .iter()
        .any(|r| r.to_string() == "192.0.2.7"));
    let r = c.handle_request(
        Request::Delete {
            value: "192.0.2.7".into(),
        },
        &StatusExtra::default(),
    );
    assert!(
        matches!(r, Response::Error(ref m) if m.contains("no active decision")),
        "{r:?}"
    );
}

#[test]
fn allowlisted_manual_ban_is_refused_clearly() {
    let mut c = core();
    c.set_own_addresses(vec!["203.0.113.5".parse().unwrap()]);
    for v in ["127.0.0.1", "203.0.113.5", "203.0.113.0/24"] {
        match add(&mut c, v, "1h") {
            Response::Error(m) => assert!(m.contains("allowlisted"), "{m}"),
            r => panic!("{v}: {r:?}"),
        }
    }
    assert!(c.firewall().elements.is_empty());
    match add(&mut c, "10.0.0.1/8", "1h") {
        Response::Error(m) => assert!(m.contains("host bits"), "{m}"),
        r => panic!("{r:?}"),
    }
}

#[test]
fn heal_restores_a_removed_table() {
    let mut c = core();
    add(&mut c, "192.0.2.7", "1h");
    c.firewall().remove().unwrap();
    assert!(c.heal().unwrap());
    assert_eq!(c.firewall().elements.len(), 1);
    assert!(!c.heal().unwrap());
}

#[test]
fn drift_falls_back_to_a_full_load() {
    let mut c = core();
    add(&mut c, "192.0.2.7", "1h");
    // someone deleted our element behind our back: the delete in the next delta fails.
    c.firewall().elements.clear();
    let r = c.handle_request(
        Request::Delete {
            value: "192.0.2.7".into(),
        },
        &StatusExtra::default(),
    );
    assert!(matches!(r, Response::Ok(_)), "{r:?}");
    assert_eq!(c.stats.transaction_failures, 1);
    assert!(c.firewall().elements.is_empty());
}

fn sshd(pid: u32, msg: &str) -> LogEntry {
    LogEntry {
        time: time::now(),
        identifier: "sshd".into(),
        pid: Some(pid),
        message: msg.into(),
    }
}

#[test]
fn one_attack_overflowing_two_scenarios_is_one_offence() {
    let mut c = core();
    // eight invalid users, one failed password each: ssh-bruteforce and ssh-user-enum
    // both overflow on the same attack.
    let mut batch = Vec::new();
    for i in 0..8u32 {
        batch.push(sshd(
            1000 + i,
            &format!("Invalid user u{i} from 198.51.100.2 port {}", 5000 + i),
        ));
        batch.push(sshd(
            1000 + i,
            &format!(
                "Failed password for invalid user u{i} from 198.51.100.2 port {} ssh2",
                5000 + i
            ),
        ));
    }
    let new = c.handle_entries(&batch).unwrap();
    assert_eq!(new.len(), 1, "{new:?}");
    assert_eq!(
        new[0].until - new[0].created,
        4 * 3600 * SECOND,
        "first offence: no escalation"
    );
    assert!(c.stats.already_banned >= 1);
    assert_eq!(c.firewall().elements.len(), 1);
}

fn ext(v: &str, origin: Origin, list: &str, until: Micros) -> Decision {
    Decision {
        id: 0,
        value: v.parse().unwrap(),
        origin,
        scenario: list.into(),
        reason: String::new(),
        created: time::now(),
        until,
        ports: Default::default(),
    }
}

#[test]
fn external_replace_swaps_one_list_and_the_allowlist_still_wins() {
    let mut c = core();
    let until = time::now() + 3600 * SECOND;
    let first = vec![
        ext("203.0.113.0/24", Origin::Lists, "drop", until),
        ext("127.0.0.0/8", Origin::Lists, "drop", until),
    ];
    let r = c
        .apply_external(ExternalUpdate::Replace {
            origin: Origin::Lists,
            list: Some("drop".into()),
            decisions: first,
        })
        .unwrap();
    assert_eq!((r.inserted, r.refused_allowlisted), (1, 1));
    c.apply_external(ExternalUpdate::Replace {
        origin: Origin::Lists,
        list: Some("other".into()),
        decisions: vec![ext("198.51.100.7/32", Origin::Lists, "other", until)],
    })
    .unwrap();
    // Replacing "drop" leaves "other" alone.
    let r = c
        .apply_external(ExternalUpdate::Replace {
            origin: Origin::Lists,
            list: Some("drop".into()),
            decisions: vec![ext("192.0.2.0/24", Origin::Lists, "drop", until)],
        })
        .unwrap();
    assert_eq!((r.inserted, r.deleted), (1, 1));
    let ranges: Vec<String> = c
        .firewall()
        .elements
        .keys()
        .map(|(_, i)| i.to_string())
        .collect();
    assert_eq!(ranges.len(), 2, "{ranges:?}");
    let r = c
        .apply_external(ExternalUpdate::Delta {
            origin: Origin::Lists,
            add: vec![],
            remove: vec!["198.51.100.7/32".parse().unwrap()],
        })
        .unwrap();
    assert_eq!(r.deleted, 1);
    assert_eq!(c.firewall().elements.len(), 1);
}

#[test]
fn allowlisted_attacker_is_never_banned() {
    let cfg = Config::parse(
        "[allowlist]\ncidrs = [\"198.51.100.0/24\"]\n",
        std::path::Path::new("t.toml"),
    )
    .unwrap();
    let mut c = Core::new(
        cfg,
        Store::in_memory().unwrap(),
        MemoryFirewall::new().with_clock(crate::time::now),
    )
    .unwrap();
    c.reconcile().unwrap();
    let batch: Vec<_> = (0..10u32)
        .map(|i| {
            sshd(
                2000 + i,
                "Failed password for root from 198.51.100.2 port 22 ssh2",
            )
        })
        .collect();
    assert!(c.handle_entries(&batch).unwrap().is_empty());
    assert!(c.stats.refused_allowlisted >= 1);
    assert!(c.firewall().elements.is_empty());
}

#[test]
fn a_refused_transaction_is_retried_until_the_kernel_holds_the_ban() {
    let mut c = core();
    // the delta and the full-reload fallback are both refused
    c.firewall().fail_next = 2;
    match add(&mut c, "192.0.2.7", "1h") {
        Response::Error(m) => assert!(m.contains("kernel refused"), "{m}"),
        r => panic!("{r:?}"),
    }
    assert!(c.firewall().elements.is_empty());
    assert!(c.retry_at.is_some());
    // not before the back-off
    assert!(!c.heal().unwrap());
    assert!(c.firewall().elements.is_empty());
    c.retry_at = Some(0);
    assert!(c.heal().unwrap());
    assert_eq!(
        c.firewall().elements.len(),
        1,
        "the stored ban reached the kernel"
    );
    assert!(c.retry_at.is_none());
}

fn failures(ip: &str, n: u32) -> Vec<LogEntry> {
    (0..n)
        .map(|i| {
            sshd(
                4000 + i,
                &format!("Failed password for root from {ip} port {} ssh2", 6000 + i),
            )
        })
        .collect()
}

#[test]
fn a_store_that_refuses_writes_still_bans_and_is_written_later() {
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::Arc;
    let mut c = core();
    c.store.refuse_writes(true);
    let new = c.handle_entries(&failures("198.51.100.20", 6)).unwrap();
    assert_eq!(new.len(), 1, "{new:?}");
    assert!(new[0].id < 0, "a provisional id: {new:?}");
    assert!(c.store_failing());
    assert_eq!(c.firewall().elements.len(), 1, "in the kernel at once");
    assert!(c.store.active(time::now()).unwrap().is_empty());
    // The same attacker again is already banned (by the waiting decision), another is new.
    assert!(c
        .handle_entries(&failures("198.51.100.20", 6))
        .unwrap()
        .is_empty());
    assert_eq!(
        c.handle_entries(&failures("198.51.100.21", 6))
            .unwrap()
            .len(),
        1
    );
    assert_eq!(c.firewall().elements.len(), 2);
    let saved = Arc::new(AtomicBool::new(false));
    let s = saved.clone();
    c.defer_commit(
        "journal",
        Box::new(move || {
            s.store(true, Ordering::SeqCst);
            Ok(())
        }),
    );
    let status = c.status(&StatusExtra::default(), time::now());
    assert_eq!(status.store.pending, 2);
    assert!(status.store.error.is_some());
    // Still refusing: nothing moves.
    c.flush_pending();
    assert!(!saved.load(Ordering::SeqCst));
    c.store.refuse_writes(false);
    c.flush_pending();
    assert!(!c.store_failing());
    assert!(
        saved.load(Ordering::SeqCst),
        "the held-back position is stored"
    );
    let stored = c.store.active(time::now()).unwrap();
    assert_eq!(stored.len(), 2);
    assert!(stored.iter().all(|d| d.id > 0));
    assert_eq!(c.firewall().elements.len(), 2, "the kernel kept both");
    // The offences were recorded too: the next ban of the first address escalates.
    let v: ipnet::IpNet = "198.51.100.20/32".parse().unwrap();
    assert_eq!(c.store.offences(&v, 0).unwrap(), 1);
}

#[test]
fn a_new_store_adopts_the_bans_the_kernel_holds() {
    let mut c = core();
    add(&mut c, "192.0.2.7", "1h");
    add(&mut c, "198.51.100.0/24", "2h");
    let fw = std::mem::replace(&mut c.fw, MemoryFirewall::new());
    // The same kernel, a store that lost its memory.
    let mut c = Core::new(Config::embedded().unwrap(), Store::in_memory().unwrap(), fw).unwrap();
    let n = c.adopt_kernel(std::path::Path::new("/nonexistent/crowdwall.db"));
    assert_eq!(n.unwrap(), 2);
    c.reconcile().unwrap();
    assert_eq!(c.firewall().elements.len(), 2, "nothing flushed");
    let mut got: Vec<(String, String)> = c
        .store
        .active(time::now())
        .unwrap()
        .iter()
        .map(|d| (d.value_text(), d.scenario.clone()))
        .collect();
    got.sort();
    assert_eq!(
        got,
        [
            ("192.0.2.7".to_string(), "recovered".to_string()),
            ("198.51.100.0/24".to_string(), "recovered".to_string())
        ]
    );
    let d = &c.store.active(time::now()).unwrap()[0];
    assert_eq!(d.origin, Origin::Manual);
    assert!(d.until - d.created > 3500 * SECOND, "the time it had left");
}

#[test]
fn warm_entries_fill_the_buckets_and_ban_nothing() {
    let mut c = core();
    // Before the restart: three failures (decided on then, nothing to ban).
    c.warm_up(&failures("198.51.100.30", 3));
    // A warm-up that overflows bans nothing either: it was decided before.
    c.warm_up(&failures("198.51.100.31", 6));
    assert!(c.firewall().elements.is_empty());
    assert_eq!(c.stats.entries, 0);
    assert_eq!(c.stats.warmed, 9);
    assert_eq!(c.detector.parsers.stats_of("sshd").unwrap().lines, 0);
    // After it: two more, and the 5th failure overflows as if there had been no restart.
    let new = c.handle_entries(&failures("198.51.100.30", 2)).unwrap();
    assert_eq!(new.len(), 1, "{new:?}");
    assert_eq!(new[0].value_text(), "198.51.100.30");
}
