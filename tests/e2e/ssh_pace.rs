//! The sshd defaults against a real sshd at the paces attackers really use: sshd answers each
//! wrong password after 2-4 s, so nobody bursts; a guesser without pause, one every 30 s and
//! one a minute must each be dropped by their 5th failed attempt (README "sshd defaults").
//! A user who mistypes twice and then logs in, three times over, is never banned: their
//! successes empty the buckets their six typos filled.

use std::process::Stdio;
use std::time::{Duration, Instant};

use crate::common::netns::{addr, Netns, DOC};
use crate::common::nft::crowdwall_table;
use crate::common::ssh_lab::{lab, sshpass, PORT};
use crate::common::Daemon;
use crate::common::{must, wait_until};

/// Attacker source addresses, added beside DOC.atk on the attacker's link, one per pace.
const PACES: &[(&str, u64)] = &[
    ("198.51.100.71", 0),
    ("198.51.100.72", 30),
    ("198.51.100.73", 60),
];
const TYPO_USER: &str = "cwtypo";
const TYPO_PASS: &str = "Correct-Horse-7";

/// One ssh connection from `src` with one password; true when it logged in.
fn ssh_once(ns: &Netns, src: &str, user: &str, pass: &str, target: &str) -> bool {
    sshpass(ns, pass, Some(src), &format!("{user}@{target}"))
        .arg("true")
        .status()
        .is_ok_and(|s| s.success())
}

/// Whether `src` (an address of `ns`) still reaches the server's plain TCP port.
fn reaches(ns: &Netns, src: &str, target: &str) -> bool {
    ns.exec(&["nc", "-z", "-w", "2", "-s", src, target, &PORT.to_string()])
        .status
        .success()
}

/// A local account for the typing user, removed on drop.
struct Account;

impl Account {
    fn create() -> Account {
        let _ = std::process::Command::new("userdel")
            .arg(TYPO_USER)
            .output();
        must(&[
            "useradd",
            "--no-create-home",
            "--shell",
            "/bin/sh",
            TYPO_USER,
        ]);
        let mut c = std::process::Command::new("chpasswd")
            .stdin(Stdio::piped())
            .spawn()
            .expect("chpasswd");
        use std::io::Write;
        c.stdin
            .take()
            .expect("stdin")
            .write_all(format!("{TYPO_USER}:{TYPO_PASS}\n").as_bytes())
            .expect("chpasswd input");
        assert!(c.wait().expect("chpasswd").success(), "chpasswd failed");
        Account
    }
}

impl Drop for Account {
    fn drop(&mut self) {
        let _ = std::process::Command::new("userdel")
            .arg(TYPO_USER)
            .output();
    }
}

/// (source address, pause between guesses in s, (attempts, seconds) when it was banned).
type PaceResult = (String, u64, Option<(u32, f64)>);

#[test]
fn real_sshd_guessers_are_dropped_by_their_fifth_attempt_at_any_pace() {
    let Some(lab) = lab("cwp", &DOC) else {
        return;
    };
    let (srv, atk, by) = (&lab.srv, &lab.atk, &lab.by);
    let dev = atk
        .must(&["ip", "-o", "link", "show", "type", "veth"])
        .split(':')
        .nth(1)
        .map(|s| s.trim().split('@').next().unwrap_or("").to_string())
        .expect("attacker veth");
    for (a, _) in PACES {
        addr(atk, &dev, &format!("{a}/24"));
    }
    let _account = Account::create();
    let d = Daemon::started(
        &srv.name,
        lab.dir.path(),
        "[journal]\nmatches = [\"SYSLOG_IDENTIFIER=sshd\", \"SYSLOG_IDENTIFIER=sshd-session\"]\n",
    );
    for (a, _) in PACES {
        assert!(
            reaches(atk, a, DOC.srv_atk),
            "{a} cannot reach the server before any ban"
        );
    }

    // Each pace in a thread of its own; each returns its source, its pause and, once banned,
    // the attempts made and the seconds since its first.
    let results: Vec<PaceResult> = std::thread::scope(|s| {
        let mut handles = Vec::new();
        for &(src, pause) in PACES {
            handles.push(s.spawn(move || {
                let start = Instant::now();
                for attempt in 1..=8u32 {
                    ssh_once(atk, src, "admin", "wrong-guess", DOC.srv_atk);
                    // The ban follows the attempt's log lines within well under a second.
                    if wait_until(Duration::from_secs(1), || {
                        crowdwall_table(srv).contains(src)
                    }) {
                        return (
                            src.to_string(),
                            pause,
                            Some((attempt, start.elapsed().as_secs_f64())),
                        );
                    }
                    std::thread::sleep(Duration::from_secs(pause));
                }
                (src.to_string(), pause, None)
            }));
        }
        // Meanwhile the user: two typos, then the right password, three times.
        let user = s.spawn(|| {
            let mut logins = 0;
            for _ in 0..3 {
                assert!(!ssh_once(by, DOC.by, TYPO_USER, "typo-1", DOC.srv_by));
                assert!(!ssh_once(by, DOC.by, TYPO_USER, "typo-2", DOC.srv_by));
                if ssh_once(by, DOC.by, TYPO_USER, TYPO_PASS, DOC.srv_by) {
                    logins += 1;
                }
            }
            logins
        });
        let r = handles
            .into_iter()
            .map(|h| h.join().expect("attacker thread"))
            .collect();
        assert_eq!(
            user.join().expect("user thread"),
            3,
            "the user's logins must succeed"
        );
        r
    });

    for (src, pause, got) in &results {
        match got {
            Some((n, secs)) => eprintln!(
                "pace {pause:>2} s between guesses: {src} dropped after failed attempt {n}, {secs:.0} s after its first"
            ),
            None => eprintln!("pace {pause:>2} s: {src} never banned in 8 attempts"),
        }
    }
    for (src, pause, got) in &results {
        let Some((n, _)) = got else {
            panic!(
                "{src} (a guess every {pause} s) was not banned:\n{}",
                d.log()
            );
        };
        assert!(
            *n <= 5,
            "{src} (a guess every {pause} s) banned only after attempt {n}"
        );
        assert!(
            !reaches(atk, src, DOC.srv_atk),
            "{src} still connects while banned"
        );
        let dec = d.one_decision_on(src);
        let scenario = dec["scenario"].as_str().unwrap_or("");
        assert!(
            scenario.starts_with("ssh-") && scenario.contains("bruteforce"),
            "{dec}"
        );
    }
    // Six typos in all, each pair forgiven by the login that followed.
    std::thread::sleep(Duration::from_secs(1));
    assert!(
        !crowdwall_table(srv).contains(DOC.by),
        "the user who mistyped was banned:\n{}",
        d.log()
    );
    assert!(by.can_connect(DOC.srv_by, PORT), "the user is dropped");
    assert!(
        d.decisions_on(DOC.by).is_empty(),
        "{:?}",
        d.decisions_on(DOC.by)
    );
}
