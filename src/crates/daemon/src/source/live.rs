//! The sources other than the journal, as the daemon runs them: followed files, the syslog
//! listener and NFLOG. They share one channel of [`Batch`]es; the daemon processes a batch and
//! then runs its commit (file positions), as it does with the journal cursor.

use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;

use tokio::sync::mpsc;

use super::file::{self, FileSpec, FileStats, PositionFile};
use super::nflog::{self, NflogSection, NflogStats};
use super::syslog::{self, SyslogHandle, SyslogSection};
use super::Batch;

/// The part of the configuration these sources are started from; a reload restarts them
/// only when it changed.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct LiveConfig {
    pub files: Vec<FileSpec>,
    pub syslog: SyslogSection,
    pub nflog: NflogSection,
}

impl LiveConfig {
    pub fn of(cfg: &crate::config::Config) -> LiveConfig {
        LiveConfig {
            files: cfg.files.clone(),
            syslog: cfg.syslog.clone(),
            nflog: cfg.nflog.clone(),
        }
    }
}

/// Running sources; dropping stops them.
pub struct LiveSources {
    pub config: LiveConfig,
    rx: mpsc::Receiver<Batch>,
    stop: Arc<AtomicBool>,
    threads: Vec<JoinHandle<()>>,
    files: Option<Arc<FileStats>>,
    syslog: Option<SyslogHandle>,
    nflog: Option<Arc<NflogStats>>,
}

impl LiveSources {
    /// Starts what `config` enables; must run inside the tokio runtime (the syslog listener
    /// is a task). Errors name the source and the cause; nothing is left running on error.
    pub fn start(config: LiveConfig, state_dir: &Path) -> Result<LiveSources, String> {
        let (tx, rx) = mpsc::channel(16);
        let stop = Arc::new(AtomicBool::new(false));
        let mut s = LiveSources {
            config: config.clone(),
            rx,
            stop: stop.clone(),
            threads: Vec::new(),
            files: None,
            syslog: None,
            nflog: None,
        };
        if !config.files.is_empty() {
            let stats = Arc::new(FileStats::default());
            let t = file::spawn(
                config.files.clone(),
                PositionFile::new(state_dir.join("files.positions")),
                tx.clone(),
                stop.clone(),
                stats.clone(),
            )
            .map_err(|e| format!("files: {e}"))?;
            s.threads.push(t);
            s.files = Some(stats);
        }
        if config.syslog.enabled {
            s.syslog = Some(syslog::start(&config.syslog, tx.clone())?);
        }
        if config.nflog.enabled {
            let stats = Arc::new(NflogStats::default());
            let t = nflog::spawn(config.nflog.group, tx.clone(), stop.clone(), stats.clone())
                .map_err(|e| e.to_string())?;
            s.threads.push(t);
            s.nflog = Some(stats);
        }
        Ok(s)
    }

    /// The next batch; pends forever when nothing is enabled.
    pub async fn recv(&mut self) -> Option<Batch> {
        if self.threads.is_empty() && self.syslog.is_none() {
            return std::future::pending().await;
        }
        self.rx.recv().await
    }

    pub fn describe(&self) -> Vec<String> {
        let mut v = Vec::new();
        if !self.config.files.is_empty() {
            v.push(format!("{} file pattern(s)", self.config.files.len()));
        }
        if self.syslog.is_some() {
            v.push("syslog".into());
        }
        if self.nflog.is_some() {
            v.push(format!("nflog group {}", self.config.nflog.group));
        }
        v
    }

    pub fn status(&self) -> Vec<serde_json::Value> {
        let mut v = Vec::new();
        if let Some(s) = &self.files {
            v.push(s.json());
        }
        if let Some(s) = &self.syslog {
            v.push(s.stats.json());
        }
        if let Some(s) = &self.nflog {
            v.push(s.json(self.config.nflog.group));
        }
        v
    }

    /// Stops everything and waits until sockets are closed and threads are gone, so the
    /// same addresses and group can be bound again at once (reload).
    pub async fn stop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        // Unblocks a thread waiting on a full channel; unsent batches are read again from
        // the saved positions next time.
        self.rx.close();
        while self.rx.try_recv().is_ok() {}
        if let Some(mut s) = self.syslog.take() {
            s.stop_and_wait().await;
        }
        for t in self.threads.drain(..) {
            let _ = tokio::task::spawn_blocking(move || t.join()).await;
        }
    }
}
