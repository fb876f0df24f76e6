//! The run loop: everything up to the first reconcile happens before READY=1; then one
//! `select!` over the sources, the control socket, the edges' messages, nftables events and
//! the ticks feeds the Core.

use std::net::IpAddr;
use std::time::Duration;

use crowdwall_engine::enforce::{EnforceError, Firewall};

use super::status::status_line;
use super::{Core, DaemonError, RunOptions, StatusExtra};
use crate::config::Config;
use crate::control::{Request, Response};
use crate::source::{Sources, SourcesConfig};
use crate::store::Store;
use crate::time::{self, from_duration};

/// This host's addresses, for the allowlist.
pub fn own_addresses() -> Vec<IpAddr> {
    let mut out = Vec::new();
    if let Ok(addrs) = nix::ifaddrs::getifaddrs() {
        for a in addrs {
            if let Some(sa) = a.address {
                if let Some(v4) = sa.as_sockaddr_in() {
                    out.push(IpAddr::V4(v4.ip()));
                } else if let Some(v6) = sa.as_sockaddr_in6() {
                    out.push(IpAddr::V6(v6.ip()));
                }
            }
        }
    }
    out.sort();
    out.dedup();
    out
}

/// A descriptor owned elsewhere (the firewall), for AsyncFd.
struct BorrowedRaw(std::os::fd::RawFd);

impl std::os::fd::AsRawFd for BorrowedRaw {
    fn as_raw_fd(&self) -> std::os::fd::RawFd {
        self.0
    }
}

/// A request from the control socket with the way back.
type ControlMsg = (Request, tokio::sync::oneshot::Sender<Response>);

/// How often the objects are checked for tampering: the backstop to netlink events, which
/// report tampering at once.
const HEAL_EVERY: Duration = Duration::from_secs(2);
/// How often the store is pruned and own addresses refreshed.
const HOUSEKEEPING_EVERY: Duration = Duration::from_secs(60);

/// `crowdwall run`: everything up to the first reconcile happens before READY=1, and a broken
/// config never gets here (main validates it first), so the firewall is not touched by one.
pub fn run(mut cfg: Config, opts: RunOptions) -> Result<(), DaemonError> {
    opts.apply(&mut cfg);
    for w in cfg.warnings() {
        log::warn!("{}: {w}", cfg.origin.display());
    }
    // Files the daemon creates (store, cursor, socket) are for root only.
    nix::sys::stat::umask(nix::sys::stat::Mode::from_bits_truncate(0o077));
    let io = |what: String| move |source| DaemonError::Io { what, source };
    std::fs::create_dir_all(&cfg.daemon.state_dir).map_err(io(format!(
        "state directory {}",
        cfg.daemon.state_dir.display()
    )))?;
    let store = Store::open(&cfg.daemon.state_dir.join("crowdwall.db"))?;
    let spec = cfg.firewall_spec();
    let fw = crowdwall_nft::NftFirewall::open(spec.clone())?;
    // Read-backs run on a thread with a socket of their own: dumping a big set takes the
    // kernel long (it re-walks the set for every 32 KiB part), and the loop must not wait.
    let reader: Reader = std::sync::Arc::new(move || {
        let mut fw = crowdwall_nft::NftFirewall::open_reader(spec.clone())?;
        let n = fw.layout().sets.len();
        (0..n)
            .map(|i| fw.list(i as crowdwall_engine::enforce::SetIx))
            .collect()
    });
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(io("tokio runtime".into()))?;
    rt.block_on(serve(Core::new(cfg, store, fw)?, opts, Some(reader)))
}

/// Every set as read back, indexed like the layout.
type ReadBack = Result<Vec<Vec<crowdwall_engine::enforce::KernelElement>>, EnforceError>;

/// Reads every set back, from another thread.
type Reader = std::sync::Arc<
    dyn Fn() -> Result<Vec<Vec<crowdwall_engine::enforce::KernelElement>>, EnforceError>
        + Send
        + Sync,
>;

async fn serve<F: Firewall>(
    mut core: Core<F>,
    opts: RunOptions,
    reader: Option<Reader>,
) -> Result<(), DaemonError> {
    use tokio::signal::unix::{signal, SignalKind};
    let io = |what: String| move |source| DaemonError::Io { what, source };

    let cfg = core.cfg.clone();

    let socket_path = cfg.daemon.socket.clone();
    let state_dir = cfg.daemon.state_dir.clone();
    let table = cfg.firewall.table.clone();
    if cfg.allowlist.own_addresses {
        core.set_own_addresses(own_addresses());
    }
    core.store
        .prune(time::now(), time::now() - core.forget_after)?;
    // Config changes take effect at start: this is the check "after every config change",
    // and it runs before the first ban of the run.
    core.lockout.check(&core.allow, "at start", true);
    // A store that lost its memory must not empty the kernel: adopt what it holds first.
    if core.store.is_fresh() {
        core.adopt_kernel(&state_dir.join("crowdwall.db"))?;
    }
    core.reconcile()?;
    let n = core.desired.sizes(time::now());
    let n = n.v4 + n.v6;
    log::info!("table inet {table} loaded with {n} element(s)");

    // Control socket: bound after the reconcile, so a CLI that connects sees a daemon whose
    // kernel state is already right.
    if let Some(dir) = socket_path.parent() {
        std::fs::create_dir_all(dir).map_err(io(format!("socket directory {}", dir.display())))?;
    }
    match std::fs::remove_file(&socket_path) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(io(format!("stale socket {}", socket_path.display()))(e)),
    }
    let listener = tokio::net::UnixListener::bind(&socket_path)
        .map_err(io(format!("control socket {}", socket_path.display())))?;
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&socket_path, std::fs::Permissions::from_mode(0o600))
            .map_err(io(format!("chmod {}", socket_path.display())))?;
    }
    let (ctl_tx, mut ctl_rx) = tokio::sync::mpsc::channel::<ControlMsg>(64);
    tokio::spawn(accept_loop(listener, ctl_tx));

    // Bouncer API and pulled decisions (CrowdSec, feeds): edges that talk to the Core by
    // message, answered in the loop below.
    let (api_tx, mut api_rx) = tokio::sync::mpsc::channel::<crate::api::ApiMsg>(64);
    crate::api::start(&cfg.api, api_tx.clone())
        .await
        .map_err(|e| io("starting".into())(std::io::Error::other(e.to_string())))?;
    let (ingest_tx, mut ingest_rx) = tokio::sync::mpsc::channel::<crate::ingest::IngestMsg>(16);
    let ingest_board = crate::ingest::start(&cfg.crowdsec, &cfg.feeds, ingest_tx.clone())
        .map_err(|e| io("starting".into())(std::io::Error::other(e.to_string())))?;
    // Optional Prometheus endpoint; scrapes ask this loop for a snapshot.
    let (metrics_tx, mut metrics_rx) =
        tokio::sync::mpsc::channel::<crate::metrics::SnapshotRequest>(8);
    if cfg.metrics.enabled {
        let l = crate::metrics::bind(cfg.metrics.listen).map_err(io(format!(
            "metrics endpoint {} ([metrics] listen)",
            cfg.metrics.listen
        )))?;
        log::info!("metrics endpoint on http://{}/metrics", cfg.metrics.listen);
        tokio::spawn(crate::metrics::serve(l, metrics_tx));
    } else {
        drop(metrics_tx);
    }

    // A broken credentials or outbox file must not stop the host's own protection.
    let mut community =
        crate::community::agent::start(&cfg.community, &state_dir).unwrap_or_else(|e| {
            log::error!("community sharing off: {e}");
            None
        });
    // Journal, files, syslog, NFLOG.
    let mut sources = Sources::start(
        sources_config(&cfg, core.detector.engine.memory()),
        &state_dir,
    )?;

    let mut sigterm = signal(SignalKind::terminate()).map_err(io("SIGTERM handler".into()))?;
    let mut sigint = signal(SignalKind::interrupt()).map_err(io("SIGINT handler".into()))?;
    let mut sighup = signal(SignalKind::hangup()).map_err(io("SIGHUP handler".into()))?;
    let mut heal_tick = tokio::time::interval(HEAL_EVERY);
    let mut readback_tick = tokio::time::interval(cfg.firewall.readback.0);
    readback_tick.tick().await; // the first tick is immediate; the start just loaded everything
                                // nftables events: someone else changing our objects wakes us at once.
    let events = match core.fw.event_fd() {
        // SAFETY: the descriptor belongs to the firewall inside `core`, which outlives this
        // registration (both live until this function returns; `events` is declared later
        // and so dropped first).
        Some(fd) => match unsafe {
            tokio::io::unix::AsyncFd::register_with_interest(
                BorrowedRaw(fd),
                tokio::io::Interest::READABLE,
            )
        } {
            Ok(a) => Some(a),
            Err(e) => {
                log::warn!("cannot watch nftables events ({e}); relying on the periodic check");
                None
            }
        },
        None => None,
    };
    let mut house_tick = tokio::time::interval(HOUSEKEEPING_EVERY);
    let watchdog = watchdog_interval();
    let mut dog_tick =
        tokio::time::interval(watchdog.map(|w| w / 2).unwrap_or(Duration::from_secs(3600)));

    let _ = sd_notify::notify(
        false,
        &[
            sd_notify::NotifyState::Ready,
            sd_notify::NotifyState::Status(&format!(
                "{n} ban(s) enforced; watching {}",
                sources.describe().join(", ")
            )),
        ],
    );
    log::info!(
        "crowdwall {} running; control socket {}",
        env!("CARGO_PKG_VERSION"),
        socket_path.display()
    );

    let mut audit_task: Option<tokio::task::JoinHandle<(u64, ReadBack)>> = None;
    loop {
        if core.audit_wanted && audit_task.is_none() {
            core.audit_wanted = false;
            if let Some(r) = reader.clone() {
                let generation = core.generation();
                audit_task = Some(tokio::task::spawn_blocking(move || (generation, r())));
            }
        }
        tokio::select! {
            batch = sources.recv() => {
                // A source that ended for good (the journal thread) stops the daemon:
                // systemd restarts it, and it resumes from the last cursor.
                let batch = match batch {
                    Ok(b) => b,
                    Err(e) => {
                        log::error!("source stopped: {e}");
                        sources.stop().await;
                        return Err(e.into());
                    }
                };
                if batch.warm {
                    // Entries before the saved position, read again to rebuild the buckets
                    // a restart emptied: decided on before, so they decide nothing now.
                    core.warm_up(&batch.entries);
                    continue;
                }
                match core.handle_entries(&batch.entries) {
                    Ok(new) => {
                        if !new.is_empty() {
                            let _ = sd_notify::notify(false, &[sd_notify::NotifyState::Status(&status_line(&core))]);
                        }
                    }
                    Err(e) => log::error!("processing {} entries: {e}", batch.source),
                }
                let signals = std::mem::take(&mut core.community_out);
                if let Some(c) = &community {
                    c.send(signals);
                }
                // Only now is the batch's effect durable (store written, kernel updated):
                // moving the cursor or positions earlier could skip entries after a crash.
                // While the store refuses writes, positions wait with the decisions, so a
                // restart in between reads those entries again.
                if let Some(commit) = batch.commit {
                    if core.store_failing() {
                        core.defer_commit(batch.source, commit);
                    } else if let Err(e) = commit() {
                        log::error!("saving the {} position: {e}", batch.source);
                    }
                }
            }
            Some(update) = crate::community::agent::Agent::recv(&mut community) => {
                super::edges::community(&mut core, update, community.as_ref());
            }
            Some((req, reply)) = ctl_rx.recv() => {
                let resp = if req == Request::Reload {
                    let mut r = super::reload::reload(&mut core, &mut sources, &opts).await;
                    join_community(&core, &mut community, &state_dir, &mut r);
                    // The admin who ran `crowdwall reload` saw the refusal; the log must too,
                    // for whoever reads it later.
                    if let Response::Error(e) = &r {
                        log::error!("crowdwall reload: refused: {e}");
                    }
                    r
                } else {
                    let extra = StatusExtra::of(&sources, &ingest_board, community.as_ref());
                    core.handle_request(req, &extra)
                };
                let _ = reply.send(resp);
            }
            _ = sighup.recv() => {
                let mut r = super::reload::reload(&mut core, &mut sources, &opts).await;
                join_community(&core, &mut community, &state_dir, &mut r);
                match r {
                    Response::Ok(_) => {}
                    Response::Error(e) => log::error!("SIGHUP: reload refused: {e}"),
                }
            }
            ready = async {
                match &events {
                    Some(a) => a.readable().await,
                    None => std::future::pending().await,
                }
            } => {
                if let Ok(mut guard) = ready {
                    guard.clear_ready();
                }
                match core.fw.drift() {
                    Ok(d) if !d.is_empty() => {
                        if let Err(e) = core.repair(d) {
                            log::error!("repairing the firewall: {e}");
                        }
                    }
                    Ok(_) => {}
                    Err(e) => log::error!("reading nftables events: {e}"),
                }
            }
            _ = readback_tick.tick() => {
                core.audit_wanted = true;
            }
            done = async {
                match &mut audit_task {
                    Some(t) => t.await,
                    None => std::future::pending().await,
                }
            } => {
                audit_task = None;
                match done {
                    Ok((generation, Ok(held))) => match core.audit_with(held, generation) {
                        Ok(Some((0, 0))) => log::debug!("read-back: the kernel matches the store"),
                        Ok(Some(_)) => {}
                        // Stale: try again soon.
                        Ok(None) => core.audit_wanted = true,
                        Err(e) => log::error!("read-back repair: {e}"),
                    },
                    Ok((_, Err(e))) => log::error!("read-back: {e}"),
                    Err(e) => log::error!("read-back thread: {e}"),
                }
            }
            Some(msg) = api_rx.recv() => super::edges::api(&mut core, msg),
            Some(msg) = ingest_rx.recv() => super::edges::ingest(&mut core, msg),
            Some(reply) = metrics_rx.recv() => {
                // The same sources as `crowdwall status` (all of them, not only the journal).
                let extra = StatusExtra::of(&sources, &ingest_board, community.as_ref());
                let _ = reply.send(core.metrics(&extra, time::now()));
            }
            _ = heal_tick.tick() => {
                core.flush_pending();
                if let Err(e) = core.heal() {
                    log::error!("firewall check: {e}");
                }
            }
            _ = house_tick.tick() => {
                if core.cfg.allowlist.own_addresses {
                    core.set_own_addresses(own_addresses());
                }
                core.lockout.check(&core.allow, "periodic", false);
                if let Err(e) = core.housekeeping() {
                    log::error!("housekeeping: {e}");
                }
            }
            _ = dog_tick.tick(), if watchdog.is_some() => {
                // Ping only while both ends move: the journal thread loops (it updates its
                // heartbeat even when idle) and netlink answered recently.
                let limit = from_duration(watchdog.unwrap_or_default());
                let now = time::now();
                if sources.heartbeat_age(now) < limit && now - core.last_fw_ok < limit {
                    let _ = sd_notify::notify(false, &[sd_notify::NotifyState::Watchdog]);
                } else {
                    log::error!("watchdog not fed: journal or netlink stalled");
                }
            }
            _ = sigterm.recv() => break,
            _ = sigint.recv() => break,
        }
    }
    let _ = sd_notify::notify(false, &[sd_notify::NotifyState::Stopping]);
    sources.stop().await;
    let _ = std::fs::remove_file(&socket_path);
    log::info!("stopped; table inet {table} stays in place and its bans expire by themselves");
    Ok(())
}

fn watchdog_interval() -> Option<Duration> {
    let mut usec = 0u64;
    if sd_notify::watchdog_enabled(false, &mut usec) && usec > 0 {
        Some(Duration::from_micros(usec))
    } else {
        None
    }
}

async fn accept_loop(
    listener: tokio::net::UnixListener,
    tx: tokio::sync::mpsc::Sender<ControlMsg>,
) {
    loop {
        match listener.accept().await {
            Ok((stream, _)) => {
                tokio::spawn(serve_client(stream, tx.clone()));
            }
            Err(e) => {
                log::warn!("control socket accept: {e}");
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    }
}

async fn serve_client(stream: tokio::net::UnixStream, tx: tokio::sync::mpsc::Sender<ControlMsg>) {
    use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
    let (rd, mut wr) = stream.into_split();
    let mut line = String::new();
    let mut limited = BufReader::new(rd.take(crate::control::MAX_REQUEST as u64));
    let resp =
        match tokio::time::timeout(Duration::from_secs(10), limited.read_line(&mut line)).await {
            Ok(Ok(n)) if n > 0 && line.ends_with('\n') => {
                match serde_json::from_str::<Request>(&line) {
                    Ok(req) => {
                        let (otx, orx) = tokio::sync::oneshot::channel();
                        if tx.send((req, otx)).await.is_err() {
                            Response::Error("daemon is shutting down".into())
                        } else {
                            orx.await
                                .unwrap_or(Response::Error("daemon is shutting down".into()))
                        }
                    }
                    Err(e) => Response::Error(format!("bad request: {e}")),
                }
            }
            Ok(Ok(_)) => Response::Error("request too long or not terminated by a newline".into()),
            Ok(Err(e)) => Response::Error(format!("reading request: {e}")),
            Err(_) => Response::Error("request timed out".into()),
        };
    if let Ok(mut out) = serde_json::to_vec(&resp) {
        out.push(b'\n');
        let _ = wr.write_all(&out).await;
    }
}

/// The sources' part of the configuration.
/// After a successful reload: a host registered since the start (`crowdwall community
/// register`) starts its community agent now, so registering needs no restart. The reload's
/// answer then lists `community` among what changed.
fn join_community<F: Firewall>(
    core: &Core<F>,
    community: &mut Option<crate::community::agent::Agent>,
    state_dir: &std::path::Path,
    resp: &mut Response,
) {
    let Response::Ok(v) = resp else { return };
    if community.is_some() {
        return;
    }
    match crate::community::agent::start(&core.cfg.community, state_dir) {
        Ok(Some(agent)) => {
            *community = Some(agent);
            if let Some(changed) = v["changed"].as_array_mut() {
                changed.push("community".into());
            }
            log::info!("community agent started by a reload");
        }
        Ok(None) => {}
        Err(e) => log::error!("community sharing off: {e}"),
    }
}

/// `warm_window`: how much journal history to read again before the cursor (at start).
pub(super) fn sources_config(cfg: &Config, warm_window: crate::time::Micros) -> SourcesConfig {
    SourcesConfig {
        journal: cfg.journal.clone(),
        files: cfg.files.clone(),
        syslog: cfg.syslog.clone(),
        nflog: cfg.nflog.clone(),
        warm_window,
    }
}
