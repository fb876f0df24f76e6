//! One test per bug that the old one-crate layout caused, named after the bug (ripgrep's
//! `regression.rs`). Real sources on loopback and a temporary file; the in-memory firewall.

use std::net::UdpSocket;

use crowdwall_daemon::config::Config;
use crowdwall_daemon::daemon::{Core, DaemonError, StatusExtra};
use crowdwall_daemon::ingest::Board;
use crowdwall_daemon::metrics::render_prometheus;
use crowdwall_daemon::source::file::{FileSpec, FilesSection};
use crowdwall_daemon::source::syslog::SyslogSection;
use crowdwall_daemon::source::{JournalSection, Sources, SourcesConfig};
use crowdwall_daemon::store::Store;
use crowdwall_engine::enforce::memory::MemoryFirewall;

fn rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

fn no_journal() -> JournalSection {
    JournalSection {
        enabled: false,
        ..JournalSection::default()
    }
}

/// The Prometheus endpoint reported only the journal among the sources (it built its
/// source list from the journal alone while `status` also merged files, syslog and NFLOG).
#[test]
fn metrics_endpoint_reports_every_source_not_only_the_journal() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("auth.log");
    std::fs::write(&log, "").unwrap();
    rt().block_on(async {
        let cfg = SourcesConfig {
            journal: no_journal(),
            files: FilesSection(vec![FileSpec {
                paths: vec![log.clone()],
                parser: None,
            }]),
            syslog: SyslogSection {
                enabled: true,
                unix: None,
                udp: Some("127.0.0.1:0".into()),
            },
            ..SourcesConfig::default()
        };
        let mut sources = Sources::start(cfg, dir.path()).expect("start files and syslog");
        let extra = StatusExtra::of(&sources, &Board::default(), None);
        let mut core = Core::new(
            Config::embedded().unwrap(),
            Store::in_memory().unwrap(),
            MemoryFirewall::new(),
        )
        .unwrap();
        let now = crowdwall_base::clock::now();
        let text = render_prometheus(&core.metrics(&extra, now));
        for name in ["files", "syslog"] {
            assert!(
                text.contains(&format!(
                    "crowdwall_source_entries_read_total{{source=\"{name}\"}}"
                )),
                "{name} missing from the metrics:\n{text}"
            );
        }
        let names: Vec<String> = extra.sources.iter().map(|s| s.name.clone()).collect();
        assert_eq!(names, ["files", "syslog"]);
        sources.stop().await;
    });
}

/// `DaemonError::Source` labelled every source's error "journal:", so a syslog listener
/// that could not bind read as a journal failure.
#[test]
fn a_source_error_names_the_source_that_failed() {
    let dir = tempfile::tempdir().unwrap();
    // The address is taken: the syslog listener cannot bind it.
    let taken = UdpSocket::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap();
    rt().block_on(async {
        let cfg = SourcesConfig {
            journal: no_journal(),
            syslog: SyslogSection {
                enabled: true,
                unix: None,
                udp: Some(addr.to_string()),
            },
            ..SourcesConfig::default()
        };
        let e = match Sources::start(cfg, dir.path()) {
            Ok(_) => panic!("{addr} is taken, the listener cannot have started"),
            Err(e) => DaemonError::from(e).to_string(),
        };
        assert!(e.starts_with("syslog: "), "{e}");
        assert!(!e.contains("journal"), "{e}");
        assert!(
            e.contains(&addr.to_string()),
            "the error names the address: {e}"
        );
    });
}
