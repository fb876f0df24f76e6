//! Integration tests of the sd-journal source.
//!
//! - Journal files built with `systemd-journal-remote` from generated export format, read with
//!   `JournalConfig::directory`.
//! - The real system journald (started standalone when no journald is running), written to
//!   with `systemd-cat`.
//!
//! Missing tools or no root: the test prints "skipped: <reason>" and passes, unless
//! `CROWDWALL_REQUIRE_ROOT_TESTS=1`, then it fails with the reason.
#![cfg(feature = "journald")]

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crowdwall_daemon::source::journal::{
    self, JournalBatch, JournalConfig, JournalStats, BATCH_MAX,
};
use crowdwall_daemon::source::SourceError;
use crowdwall_engine::LogEntry;
use tokio::sync::mpsc;

use crate::common::journald::{
    self, make_journal, systemd_cat, unique_ident, wait_visible, Gen, JOURNAL_REMOTE,
};
use crate::common::{available, have};

const T0: i64 = 1_700_000_000_000_000;

/// sshd / cron / sshd-session interleaved, plus one non-UTF-8 message and one entry without
/// MESSAGE (an sshd one, so it passes the match and must be skipped by the source).
fn fixture(n: usize) -> Vec<Gen> {
    (0..n)
        .map(|i| {
            let ident = match i % 3 {
                0 => "sshd",
                1 => "cron",
                _ => "sshd-session",
            };
            let message = match i {
                3 => Some(b"Invalid user \xff\xfe from 203.0.113.9".to_vec()),
                6 => None,
                _ => Some(format!("{ident} message {i}").into_bytes()),
            };
            Gen {
                time: T0 + i as i64 * 1000,
                ident,
                pid: 1000 + i as u32,
                message,
            }
        })
        .collect()
}

fn sshd_matches() -> Vec<(String, String)> {
    vec![
        ("SYSLOG_IDENTIFIER".into(), "sshd".into()),
        ("SYSLOG_IDENTIFIER".into(), "sshd-session".into()),
    ]
}

fn expected_sshd(entries: &[Gen]) -> Vec<LogEntry> {
    entries
        .iter()
        .filter(|e| e.ident != "cron" && e.message.is_some())
        .map(Gen::expected)
        .collect()
}

/// A running source and what it produced.
struct Run {
    rx: mpsc::Receiver<JournalBatch>,
    stop: Arc<AtomicBool>,
    stats: Arc<JournalStats>,
    handle: Option<JoinHandle<Result<(), SourceError>>>,
    batches: Vec<JournalBatch>,
}

impl Run {
    fn start(cfg: JournalConfig) -> Run {
        let (tx, rx) = mpsc::channel(4);
        let stop = Arc::new(AtomicBool::new(false));
        let stats = JournalStats::new();
        let handle = journal::spawn(cfg, tx, stop.clone(), stats.clone()).expect("spawn");
        Run {
            rx,
            stop,
            stats,
            handle: Some(handle),
            batches: Vec::new(),
        }
    }

    fn entries(&self) -> Vec<LogEntry> {
        self.batches
            .iter()
            .flat_map(|b| b.entries.iter().cloned())
            .collect()
    }

    /// Receives until `n` entries arrived (or the timeout: the caller's assertion then shows
    /// what is missing), then keeps listening for `settle` to catch extra entries.
    fn collect(&mut self, n: usize, timeout: Duration, settle: Duration) {
        let start = Instant::now();
        let mut enough_at: Option<Instant> = None;
        loop {
            match self.rx.try_recv() {
                Ok(b) => {
                    self.batches.push(b);
                    continue;
                }
                Err(mpsc::error::TryRecvError::Disconnected) => break,
                Err(mpsc::error::TryRecvError::Empty) => {}
            }
            let have = self.batches.iter().map(|b| b.entries.len()).sum::<usize>();
            if have >= n && enough_at.is_none() {
                enough_at = Some(Instant::now());
            }
            match enough_at {
                Some(t) if t.elapsed() >= settle => break,
                None if start.elapsed() >= timeout => break,
                _ => std::thread::sleep(Duration::from_millis(10)),
            }
        }
    }

    /// Waits until the source has read everything available.
    fn wait_caught_up(&mut self, timeout: Duration) {
        let start = Instant::now();
        while !self.stats.caught_up.load(Ordering::Relaxed) && start.elapsed() < timeout {
            while let Ok(b) = self.rx.try_recv() {
                self.batches.push(b);
            }
            std::thread::sleep(Duration::from_millis(5));
        }
        // Batches sent just before caught_up was set.
        std::thread::sleep(Duration::from_millis(50));
        while let Ok(b) = self.rx.try_recv() {
            self.batches.push(b);
        }
    }

    fn stop(mut self) -> Vec<JournalBatch> {
        self.stop.store(true, Ordering::Relaxed);
        // Keep draining so a thread blocked on a full channel can finish.
        let handle = self.handle.take().expect("handle");
        while !handle.is_finished() {
            while let Ok(b) = self.rx.try_recv() {
                self.batches.push(b);
            }
            std::thread::sleep(Duration::from_millis(5));
        }
        handle
            .join()
            .expect("journal thread panicked")
            .expect("journal thread error");
        while let Ok(b) = self.rx.try_recv() {
            self.batches.push(b);
        }
        std::mem::take(&mut self.batches)
    }
}

fn dir_cfg(dir: &Path, cursor: Option<String>) -> JournalConfig {
    JournalConfig {
        matches: sshd_matches(),
        directory: Some(dir.to_path_buf()),
        cursor,
        start_at_head: true,
        ..Default::default()
    }
}

fn read_all(dir: &Path, cursor: Option<String>) -> (Vec<JournalBatch>, Arc<JournalStats>) {
    let mut run = Run::start(dir_cfg(dir, cursor));
    run.wait_caught_up(Duration::from_secs(30));
    let stats = run.stats.clone();
    (run.stop(), stats)
}

fn flatten(batches: &[JournalBatch]) -> Vec<LogEntry> {
    batches
        .iter()
        .flat_map(|b| b.entries.iter().cloned())
        .collect()
}

#[test]
fn directory_from_head_filters_orders_and_converts() {
    let dir = tempfile::tempdir().unwrap();
    let gen = fixture(3000);
    if !available(make_journal(dir.path(), &gen)) {
        return;
    }
    let (batches, stats) = read_all(dir.path(), None);
    let got = flatten(&batches);
    let want = expected_sshd(&gen);
    assert_eq!(got.len(), want.len());
    assert_eq!(got, want);
    // The non-UTF-8 message came through lossily, the entry without MESSAGE was skipped.
    assert_eq!(
        got[2].message,
        "Invalid user \u{fffd}\u{fffd} from 203.0.113.9"
    );
    assert_eq!(stats.skipped.load(Ordering::Relaxed), 1);
    assert_eq!(stats.entries.load(Ordering::Relaxed), want.len() as u64);
    assert_eq!(stats.gaps.load(Ordering::Relaxed), 0);
    assert_eq!(
        stats.newest_entry.load(Ordering::Relaxed),
        gen.iter()
            .filter(|e| e.ident != "cron")
            .map(|e| e.time)
            .max()
            .unwrap()
    );
    assert!(stats.caught_up.load(Ordering::Relaxed));
    assert!(
        batches.len() >= 2,
        "2000 matching entries need several batches"
    );
    assert!(batches
        .iter()
        .all(|b| b.entries.len() <= BATCH_MAX && !b.gap));
}

#[test]
fn plus_separates_per_service_match_groups() {
    // (cron AND _PID=1004) OR sshd-session: without the disjunction the fields would be
    // AND-ed and only an entry that is both would pass.
    let dir = tempfile::tempdir().unwrap();
    let gen = fixture(30);
    if !available(make_journal(dir.path(), &gen)) {
        return;
    }
    let mut cfg = dir_cfg(dir.path(), None);
    cfg.matches = vec![
        ("SYSLOG_IDENTIFIER".into(), "cron".into()),
        ("_PID".into(), "1004".into()),
        ("+".into(), String::new()),
        ("SYSLOG_IDENTIFIER".into(), "sshd-session".into()),
    ];
    let mut run = Run::start(cfg);
    run.wait_caught_up(Duration::from_secs(30));
    let got = flatten(&run.stop());
    let want: Vec<LogEntry> = gen
        .iter()
        .filter(|e| (e.ident == "cron" && e.pid == 1004) || e.ident == "sshd-session")
        .filter(|e| e.message.is_some())
        .map(Gen::expected)
        .collect();
    assert_eq!(got, want);
    assert!(got.iter().any(|e| e.identifier == "cron"));
}

#[test]
fn no_matches_reads_everything() {
    let dir = tempfile::tempdir().unwrap();
    let gen = fixture(10);
    if !available(make_journal(dir.path(), &gen)) {
        return;
    }
    let mut cfg = dir_cfg(dir.path(), None);
    cfg.matches.clear();
    let mut run = Run::start(cfg);
    run.wait_caught_up(Duration::from_secs(10));
    let got = flatten(&run.stop());
    let want: Vec<_> = gen
        .iter()
        .filter(|e| e.message.is_some())
        .map(Gen::expected)
        .collect();
    assert_eq!(got, want);
}

#[test]
fn resume_from_every_batch_cursor_is_exact() {
    let dir = tempfile::tempdir().unwrap();
    let gen = fixture(3500);
    if !available(make_journal(dir.path(), &gen)) {
        return;
    }
    let want = expected_sshd(&gen);
    let (batches, _) = read_all(dir.path(), None);
    assert_eq!(flatten(&batches), want);
    // What a consumer would have processed up to each stored cursor, then a restart.
    let mut done = 0;
    for b in &batches {
        done += b.entries.len();
        let (rest, stats) = read_all(dir.path(), Some(b.cursor.clone()));
        assert_eq!(
            flatten(&rest),
            want[done..],
            "resuming after {done} entries"
        );
        assert!(rest.iter().all(|b| !b.gap));
        assert_eq!(stats.gaps.load(Ordering::Relaxed), 0);
        // The backlog counted at the start is what the resume then moved over: every
        // entry it read and every one it skipped.
        assert_eq!(
            stats.backlog.load(Ordering::Relaxed),
            (want.len() - done) as u64 + stats.skipped.load(Ordering::Relaxed),
            "backlog after {done} entries"
        );
    }
    assert_eq!(done, want.len());
}

#[test]
fn resume_at_the_end_then_new_entries_follow() {
    // Restarting on the last entry's cursor reads nothing; entries appended later (a second
    // journal file in the directory, as after rotation) are read exactly once.
    let dir = tempfile::tempdir().unwrap();
    let gen = fixture(9);
    if !available(make_journal(dir.path(), &gen)) {
        return;
    }
    let (batches, _) = read_all(dir.path(), None);
    let cursor = batches.last().expect("a batch").cursor.clone();

    let mut run = Run::start(dir_cfg(dir.path(), Some(cursor)));
    run.wait_caught_up(Duration::from_secs(10));
    assert!(run.entries().is_empty());
    let later: Vec<Gen> = (0..4)
        .map(|i| Gen {
            time: T0 + 1_000_000_000 + i * 1000,
            ident: "sshd",
            pid: 7,
            message: Some(format!("later {i}").into_bytes()),
        })
        .collect();
    let sub = dir.path().join("later");
    std::fs::create_dir(&sub).unwrap();
    make_journal(&sub, &later).unwrap();
    std::fs::rename(sub.join("remote.journal"), dir.path().join("later.journal")).unwrap();
    run.collect(4, Duration::from_secs(10), Duration::from_millis(700));
    let want: Vec<_> = later.iter().map(Gen::expected).collect();
    assert_eq!(run.entries(), want);
    run.stop();
}

#[test]
fn vacuumed_cursor_lands_on_oldest_and_reports_a_gap() {
    let gen = fixture(30);
    let old = tempfile::tempdir().unwrap();
    if !available(make_journal(old.path(), &gen[..12])) {
        return;
    }
    let (batches, _) = read_all(old.path(), None);
    let cursor = batches.last().expect("a batch").cursor.clone();

    // The "vacuumed" journal: only entries from 20 on are left.
    let new = tempfile::tempdir().unwrap();
    make_journal(new.path(), &gen[20..]).unwrap();
    let (rest, stats) = read_all(new.path(), Some(cursor));
    assert_eq!(flatten(&rest), expected_sshd(&gen[20..]));
    assert!(rest[0].gap, "first batch after a lost cursor is marked");
    assert!(rest[1..].iter().all(|b| !b.gap));
    assert_eq!(stats.gaps.load(Ordering::Relaxed), 1);
}

#[test]
fn warm_up_reads_the_window_before_the_cursor_once_then_resumes_after_it() {
    let dir = tempfile::tempdir().unwrap();
    let gen = fixture(30);
    if !available(make_journal(dir.path(), &gen[..16])) {
        return;
    }
    let (batches, _) = read_all(dir.path(), None);
    let cursor = batches.last().expect("a batch").cursor.clone();
    let sub = dir.path().join("later");
    std::fs::create_dir(&sub).unwrap();
    make_journal(&sub, &gen[16..]).unwrap();
    std::fs::rename(sub.join("remote.journal"), dir.path().join("later.journal")).unwrap();

    // A window of 8 entries' time (1 ms apart) before the cursor's entry (gen[15]).
    let cfg = JournalConfig {
        warm_window: 8 * 1000,
        ..dir_cfg(dir.path(), Some(cursor.clone()))
    };
    let mut run = Run::start(cfg);
    run.collect(
        expected_sshd(&gen[7..]).len(),
        Duration::from_secs(10),
        Duration::from_millis(500),
    );
    let got = run.stop();
    let warm: Vec<LogEntry> = got
        .iter()
        .filter(|b| b.warm)
        .flat_map(|b| b.entries.clone())
        .collect();
    let live: Vec<LogEntry> = got
        .iter()
        .filter(|b| !b.warm)
        .flat_map(|b| b.entries.clone())
        .collect();
    assert_eq!(
        warm,
        expected_sshd(&gen[7..16]),
        "the window, the saved entry included"
    );
    assert_eq!(
        live,
        expected_sshd(&gen[16..]),
        "then after the cursor, nothing twice"
    );
    assert!(got.iter().filter(|b| b.warm).all(|b| b.cursor == cursor));
}

#[test]
fn opening_errors_are_returned_by_spawn() {
    if !available(have(JOURNAL_REMOTE)) {
        return;
    }
    let (tx, _rx) = mpsc::channel(1);
    let stop = Arc::new(AtomicBool::new(false));
    let bad_dir = JournalConfig {
        directory: Some(PathBuf::from("/nonexistent/crowdwall-journal")),
        ..Default::default()
    };
    let e = journal::spawn(bad_dir, tx.clone(), stop.clone(), JournalStats::new()).unwrap_err();
    assert!(
        e.to_string().contains("/nonexistent/crowdwall-journal"),
        "{e}"
    );

    let dir = tempfile::tempdir().unwrap();
    make_journal(dir.path(), &fixture(3)).unwrap();
    let bad_match = JournalConfig {
        matches: vec![("not a field".into(), "x".into())],
        directory: Some(dir.path().to_path_buf()),
        ..Default::default()
    };
    let e = journal::spawn(bad_match, tx, stop, JournalStats::new()).unwrap_err();
    assert!(e.to_string().contains("not a field"), "{e}");
}

#[test]
fn dropping_the_receiver_stops_the_thread() {
    let dir = tempfile::tempdir().unwrap();
    let gen = fixture(5000);
    if !available(make_journal(dir.path(), &gen)) {
        return;
    }
    // Capacity 1 and nobody reading: the thread blocks in blocking_send until rx is dropped.
    let (tx, rx) = mpsc::channel(1);
    let stop = Arc::new(AtomicBool::new(false));
    let h = journal::spawn(dir_cfg(dir.path(), None), tx, stop, JournalStats::new()).unwrap();
    std::thread::sleep(Duration::from_millis(200));
    drop(rx);
    let start = Instant::now();
    while !h.is_finished() {
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "thread did not stop"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
    h.join().unwrap().unwrap();
}

/// Throughput of the directory source (run with `--ignored --nocapture`, ideally `--release`).
#[test]
#[ignore]
fn throughput() {
    let dir = tempfile::tempdir().unwrap();
    let gen: Vec<Gen> = (0..200_000)
        .map(|i| Gen {
            time: T0 + i as i64,
            ident: if i % 10 == 0 { "cron" } else { "sshd" },
            pid: 1000 + (i % 5000) as u32,
            message: Some(
                format!(
                    "Failed password for invalid user admin from 203.0.113.{} port {} ssh2",
                    i % 250,
                    1024 + i % 60000
                )
                .into_bytes(),
            ),
        })
        .collect();
    if !available(make_journal(dir.path(), &gen)) {
        return;
    }
    for matches in [sshd_matches(), vec![]] {
        let mut cfg = dir_cfg(dir.path(), None);
        cfg.matches = matches.clone();
        let (tx, mut rx) = mpsc::channel(16);
        let stop = Arc::new(AtomicBool::new(false));
        let stats = JournalStats::new();
        let start = Instant::now();
        let h = journal::spawn(cfg, tx, stop.clone(), stats.clone()).unwrap();
        let mut n = 0usize;
        let want = if matches.is_empty() { 200_000 } else { 180_000 };
        while n < want {
            n += rx.blocking_recv().expect("batch").entries.len();
        }
        let secs = start.elapsed().as_secs_f64();
        stop.store(true, Ordering::Relaxed);
        drop(rx);
        h.join().unwrap().unwrap();
        println!(
            "{} entries in {secs:.3}s: {:.0} entries/s (matches: {})",
            n,
            n as f64 / secs,
            if matches.is_empty() {
                "none"
            } else {
                "SYSLOG_IDENTIFIER"
            }
        );
    }
}

// ---------------------------------------------------------------------------------------------
// The real system journal.

fn messages(entries: &[LogEntry]) -> Vec<&str> {
    entries.iter().map(|e| e.message.as_str()).collect()
}

#[test]
fn system_journal_tail_then_resume_with_cursor() {
    if !available(journald::ensure()) {
        return;
    }
    let ident = unique_ident();
    let cfg = |cursor| JournalConfig {
        matches: vec![("SYSLOG_IDENTIFIER".into(), ident.clone())],
        directory: None,
        cursor,
        start_at_head: false,
        ..Default::default()
    };
    // Written before the start: the tail start must not return it.
    systemd_cat(&ident, &["before start"]);
    wait_visible(&ident, 1);

    let mut run = Run::start(cfg(None));
    systemd_cat(&ident, &["one", "two", "three"]);
    run.collect(3, Duration::from_secs(20), Duration::from_millis(700));
    let got = run.entries();
    assert_eq!(messages(&got), ["one", "two", "three"]);
    assert!(got.iter().all(|e| e.identifier == ident && e.pid.is_some()));
    assert!(run.stats.last_progress.load(Ordering::Relaxed) > 0);
    let batches = run.stop();
    let cursor = batches.last().expect("a batch").cursor.clone();
    assert!(batches.iter().all(|b| !b.gap));

    // Written while stopped: read after the restart, exactly once.
    systemd_cat(&ident, &["four", "five"]);
    wait_visible(&ident, 6);
    let mut run = Run::start(cfg(Some(cursor)));
    run.collect(2, Duration::from_secs(20), Duration::from_millis(700));
    assert_eq!(messages(&run.entries()), ["four", "five"]);
    assert_eq!(run.stats.gaps.load(Ordering::Relaxed), 0);
    run.stop();
}

#[test]
fn system_journal_heartbeat_moves_while_idle() {
    if !available(journald::ensure()) {
        return;
    }
    let run = Run::start(JournalConfig {
        matches: vec![("SYSLOG_IDENTIFIER".into(), unique_ident())],
        ..Default::default()
    });
    let first = run.stats.last_progress.load(Ordering::Relaxed);
    let start = Instant::now();
    while run.stats.last_progress.load(Ordering::Relaxed) == first {
        assert!(start.elapsed() < Duration::from_secs(10), "heartbeat stuck");
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(run.stats.caught_up.load(Ordering::Relaxed));
    run.stop();
}
