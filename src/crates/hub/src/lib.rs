//! crowdwall-hub: where agents enrol, push signals and pull the consensus blocklist, and
//! where anyone can look up an address's reputation (JSON API and a page without
//! JavaScript).
//!
//! An instance keeps nothing another instance needs: agents, signals, consensus, versions
//! and counters live in the store, so several instances can serve one PostgreSQL. The one
//! in-process state is the per-client rate limiter, which is per instance (a client spread
//! over N instances gets up to N times the rate).

// Handlers pass ready HTTP responses up as their error; boxing them would buy nothing.
#![allow(clippy::result_large_err)]

pub mod config;
pub mod consensus;
mod page;
pub mod postgres;
pub mod sqlite;
pub mod store;

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{ConnectInfo, Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::json;

use crowdwall_base::canonical_ip;
use crowdwall_base::clock::now;
use crowdwall_base::hash::{random_hex, sha256_hex};
use crowdwall_base::time::{format_rfc3339, from_duration, Micros, SECOND};
use crowdwall_proto::duration::crowdsec_duration;
use crowdwall_proto::{
    valid_scenario, BlockEntry, BlocklistResponse, EnrollRequest, EnrollResponse, PushRequest,
    PushResponse, Refusal, Signal,
};

use consensus::{reporter_network, reputation, score_at, NeverList, Params};
use store::{HubStore, ValidSignal};

pub use config::HubSection;

#[derive(Debug, thiserror::Error)]
pub enum HubError {
    #[error(transparent)]
    Store(#[from] store::HubStoreError),
    #[error("{what}: {source}")]
    Io {
        what: String,
        #[source]
        source: std::io::Error,
    },
    #[error("{0}")]
    NeverList(String),
}

/// Shared by the handlers of one instance.
pub struct Hub {
    pub store: HubStore,
    cfg: HubSection,
    params: Params,
    never: NeverList,
    limiter: Limiter,
    cache: LookupCache,
    pending: Mutex<HashMap<&'static str, i64>>,
}

impl Hub {
    /// Loads the never-list files: a broken one stops the hub before it serves.
    pub fn new(cfg: HubSection, store: HubStore) -> Result<Hub, HubError> {
        let mut never = NeverList::builtin();
        for f in &cfg.never_list_files {
            let text = std::fs::read_to_string(f).map_err(|source| HubError::Io {
                what: format!("never-list {}", f.display()),
                source,
            })?;
            let n = never
                .add_text(&text, &f.display().to_string())
                .map_err(HubError::NeverList)?;
            log::info!("never-list {}: {n} range(s)", f.display());
        }
        Ok(Hub {
            params: cfg.consensus.params(),
            limiter: Limiter::new(cfg.rate_limit, cfg.rate_burst),
            cache: LookupCache::new(cfg.lookup_cache.0, 200_000),
            pending: Mutex::new(HashMap::new()),
            store,
            cfg,
            never,
        })
    }
}

type Shared = Arc<Hub>;

pub fn router(hub: Shared) -> Router {
    Router::new()
        .route("/", get(page::index))
        .route("/v1/agents", post(enroll))
        .route("/v1/signals", post(push))
        .route("/v1/blocklist", get(blocklist))
        .route("/v1/ip/{ip}", get(lookup))
        .route("/v1/stats", get(stats))
        .layer(axum::extract::DefaultBodyLimit::max(hub.cfg.max_body))
        .with_state(hub)
}

/// Serves on `listener` until `shutdown` resolves; sweeps expired listings every minute.
pub async fn serve(
    listener: tokio::net::TcpListener,
    hub: Hub,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> Result<(), HubError> {
    let hub = Arc::new(hub);
    let flusher = {
        let hub = hub.clone();
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_secs(1));
            loop {
                tick.tick().await;
                hub.flush_counts().await;
            }
        })
    };
    let sweeper = {
        let hub = hub.clone();
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_secs(60));
            loop {
                tick.tick().await;
                let retention = from_duration(hub.cfg.retention.0);
                match hub.store.sweep(now(), retention).await {
                    Ok(0) => {}
                    Ok(n) => log::info!("{n} listing(s) expired"),
                    Err(e) => log::error!("sweep: {e}"),
                }
            }
        })
    };
    let app = router(hub.clone()).into_make_service_with_connect_info::<SocketAddr>();
    let r = axum::serve(listener, app)
        .with_graceful_shutdown(shutdown)
        .await
        .map_err(|source| HubError::Io {
            what: "serving".into(),
            source,
        });
    sweeper.abort();
    flusher.abort();
    // the last second's counts
    hub.flush_counts().await;
    r
}

/// Opens the store (migrating it), binds, serves until `shutdown` resolves.
pub async fn run(
    cfg: HubSection,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> Result<(), HubError> {
    let store = HubStore::open(&cfg.database).await?;
    let backend = store.backend();
    let listen = cfg.listen.clone();
    let hub = Hub::new(cfg, store)?;
    let listener = tokio::net::TcpListener::bind(&listen)
        .await
        .map_err(|source| HubError::Io {
            what: format!("listening on {listen}"),
            source,
        })?;
    log::info!(
        "crowdwall-hub {} listening on {} ({backend})",
        env!("CARGO_PKG_VERSION"),
        listener
            .local_addr()
            .map(|a| a.to_string())
            .unwrap_or(listen)
    );
    serve(listener, hub, shutdown).await
}

/// `crowdwall-hub delist IP`: on the store directly, so it needs the database, not a key.
pub async fn delist(cfg: &HubSection, ip: &str) -> Result<bool, HubError> {
    let ip = parse_ip(ip).map_err(HubError::NeverList)?;
    let store = HubStore::open(&cfg.database).await?;
    Ok(store.delist(&ip.to_string(), now()).await?)
}

/// A single address, canonical (IPv4-mapped IPv6 becomes IPv4).
fn parse_ip(s: &str) -> Result<IpAddr, String> {
    s.trim().parse::<IpAddr>().map(canonical_ip).map_err(|_| {
        format!(
            "'{}' is not an IP address",
            s.chars().take(64).collect::<String>()
        )
    })
}

fn error(status: StatusCode, message: impl Into<String>) -> Response {
    (status, Json(json!({ "message": message.into() }))).into_response()
}

fn internal(e: impl std::fmt::Display) -> Response {
    log::error!("{e}");
    error(
        StatusCode::SERVICE_UNAVAILABLE,
        "the hub's database is unavailable; retry later",
    )
}

impl Hub {
    /// Counts `n` more of `what` (refusals by reason, signals accepted). Kept in memory and
    /// written by `flush_counts` every second rather than per request: every push adding
    /// to the same counter row would make concurrent pushes queue on that row's lock until
    /// each one's commit reached the disk.
    fn tally(&self, what: &'static str, n: i64) {
        if n > 0 {
            *self
                .pending
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .entry(what)
                .or_default() += n;
        }
    }

    /// Writes the tallies to the store, where every instance's are summed. A failed write
    /// keeps them for the next try.
    async fn flush_counts(&self) {
        let taken: Vec<(&'static str, i64)> = self
            .pending
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .drain()
            .collect();
        if taken.is_empty() {
            return;
        }
        let rows = taken.iter().map(|(k, n)| (k.to_string(), *n)).collect();
        if let Err(e) = self.store.count(rows).await {
            log::warn!("writing counters: {e}");
            for (k, n) in taken {
                self.tally(k, n);
            }
        }
    }
}

/// Reads a JSON body, turning the body-limit rejection into a counted 413 and bad JSON into
/// a counted 400 that says what is wrong and where.
async fn json_body<T: serde::de::DeserializeOwned>(
    hub: &Hub,
    body: Result<Bytes, BytesRejection>,
) -> Result<T, Response> {
    let bytes = match body {
        Ok(b) => b,
        Err(BytesRejection::FailedToBufferBody(_)) => {
            hub.tally("refused_oversized", 1);
            return Err(error(
                StatusCode::PAYLOAD_TOO_LARGE,
                format!("body larger than {} bytes", hub.cfg.max_body),
            ));
        }
        Err(e) => {
            hub.tally("refused_malformed", 1);
            return Err(error(StatusCode::BAD_REQUEST, e.body_text()));
        }
    };
    match serde_json::from_slice(&bytes) {
        Ok(v) => Ok(v),
        Err(e) => {
            hub.tally("refused_malformed", 1);
            Err(error(
                StatusCode::BAD_REQUEST,
                format!("malformed JSON: {e}"),
            ))
        }
    }
}

impl Hub {
    /// The client's address: the peer, or what a trusted proxy says the peer was.
    fn client(&self, peer: SocketAddr, headers: &HeaderMap) -> IpAddr {
        let ip = canonical_ip(peer.ip());
        if !self.cfg.trusted_proxies.iter().any(|n| n.0.contains(&ip)) {
            return ip;
        }
        headers
            .get_all("x-forwarded-for")
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .last()
            .and_then(|a| a.trim().parse::<IpAddr>().ok())
            .map(canonical_ip)
            .unwrap_or(ip)
    }

    fn key_ok(&self, headers: &HeaderMap) -> bool {
        if self.cfg.api_keys_sha256.is_empty() {
            return false;
        }
        ["x-api-key", "key"].iter().any(|h| {
            headers
                .get(*h)
                .and_then(|v| v.to_str().ok())
                .is_some_and(|k| {
                    let h = sha256_hex(k);
                    self.cfg
                        .api_keys_sha256
                        .iter()
                        .any(|x| x.eq_ignore_ascii_case(&h))
                })
        })
    }

    /// `Err(429)` when the client is over its rate (and has no valid API key).
    fn limit(&self, peer: IpAddr, headers: &HeaderMap) -> Result<(), Response> {
        if self.key_ok(headers) || self.limiter.allow(peer) {
            Ok(())
        } else {
            Err(error(
                StatusCode::TOO_MANY_REQUESTS,
                "rate limit exceeded; slow down or use an API key",
            ))
        }
    }

    /// The agent id when the `Authorization: Bearer ID:SECRET` header is right.
    async fn agent(&self, headers: &HeaderMap) -> Result<String, Response> {
        let denied = || {
            error(
                StatusCode::UNAUTHORIZED,
                "missing or bad agent credentials (Authorization: Bearer AGENT_ID:SECRET)",
            )
        };
        let Some((id, secret)) = headers
            .get("authorization")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
            .and_then(|v| v.split_once(':'))
        else {
            self.tally("refused_unauthenticated", 1);
            return Err(denied());
        };
        if id.len() > 64 || secret.len() > 128 {
            self.tally("refused_unauthenticated", 1);
            return Err(denied());
        }
        match self.store.agent_secret(id).await {
            Ok(Some(h)) if constant_time_eq(h.as_bytes(), sha256_hex(secret).as_bytes()) => {
                Ok(id.to_string())
            }
            Ok(_) => {
                self.tally("refused_unauthenticated", 1);
                Err(denied())
            }
            Err(e) => Err(internal(e)),
        }
    }
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

async fn enroll(
    State(hub): State<Shared>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    let peer = hub.client(peer, &headers);
    if let Err(r) = hub.limit(peer, &headers) {
        return r;
    }
    let req: EnrollRequest = match json_body(&hub, body).await {
        Ok(r) => r,
        Err(r) => return r,
    };
    if let Some(want) = &hub.cfg.enroll_token_sha256 {
        let ok = req.token.as_deref().is_some_and(|t| {
            constant_time_eq(
                sha256_hex(t).as_bytes(),
                want.to_ascii_lowercase().as_bytes(),
            )
        });
        if !ok {
            hub.tally("refused_enrolment", 1);
            return error(StatusCode::FORBIDDEN, "this hub needs an enrolment token");
        }
    }
    let name: String = req
        .name
        .chars()
        .filter(|c| !c.is_control())
        .take(64)
        .collect();
    let (id, secret) = match (random_hex(16), random_hex(32)) {
        (Ok(i), Ok(s)) => (i, s),
        (Err(e), _) | (_, Err(e)) => return internal(e),
    };
    let from = peer.to_string();
    match hub
        .store
        .enroll(&id, &sha256_hex(&secret), &name, &from, now())
        .await
    {
        Ok(()) => {
            log::info!("agent {id} ({name}) enrolled from {from}");
            (
                StatusCode::CREATED,
                Json(EnrollResponse {
                    agent_id: id,
                    secret,
                }),
            )
                .into_response()
        }
        Err(e) => internal(e),
    }
}

/// Checks one signal; `Err` is the reason for refusing it. `Malformed` ones fail the batch.
enum Bad {
    Malformed(String),
    Refused(&'static str, String),
}

fn check_signal(hub: &Hub, index: usize, s: &Signal, now: Micros) -> Result<ValidSignal, Bad> {
    let at = |m: String| Bad::Malformed(format!("signals[{index}]: {m}"));
    if s.uid.is_empty()
        || s.uid.len() > 64
        || !s
            .uid
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
    {
        return Err(at("uid must be 1-64 letters, digits, '-' or '_'".into()));
    }
    let ip = parse_ip(&s.ip).map_err(|m| at(format!("ip: {m}")))?;
    if !valid_scenario(&s.scenario) {
        return Err(at(
            "scenario must be 1-64 letters, digits, '-', '_', '/' or '.'".into(),
        ));
    }
    if s.first_seen > s.last_seen {
        return Err(at("first_seen is after last_seen".into()));
    }
    if s.events > 1_000_000_000 {
        return Err(at("events out of range".into()));
    }
    if let Some(why) = hub.never.check(ip) {
        return Err(Bad::Refused(
            "refused_never_list",
            format!("{ip} is never listed ({why})"),
        ));
    }
    let (first, last) = (
        s.first_seen.saturating_mul(SECOND),
        s.last_seen.saturating_mul(SECOND),
    );
    if last > now + 300 * SECOND {
        return Err(Bad::Refused(
            "refused_future",
            "last_seen is in the future (check the agent's clock)".into(),
        ));
    }
    if last < now - from_duration(hub.cfg.max_signal_age.0) {
        return Err(Bad::Refused(
            "refused_too_old",
            format!(
                "last_seen is older than {}",
                crowdwall_base::time::format_duration(hub.cfg.max_signal_age.0)
            ),
        ));
    }
    Ok(ValidSignal {
        index,
        uid: s.uid.clone(),
        ip: ip.to_string(),
        scenario: s.scenario.clone(),
        first_seen: first,
        last_seen: last,
        events: s.events.min(i64::MAX as u64) as i64,
    })
}

async fn push(
    State(hub): State<Shared>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    let agent = match hub.agent(&headers).await {
        Ok(a) => a,
        Err(r) => return r,
    };
    let req: PushRequest = match json_body(&hub, body).await {
        Ok(r) => r,
        Err(r) => return r,
    };
    if req.signals.len() > hub.cfg.max_batch {
        hub.tally("refused_oversized", 1);
        return error(
            StatusCode::PAYLOAD_TOO_LARGE,
            format!(
                "{} signals in one push; at most {}",
                req.signals.len(),
                hub.cfg.max_batch
            ),
        );
    }
    let t = now();
    let mut valid = Vec::with_capacity(req.signals.len());
    let mut resp = PushResponse::default();
    let mut counts: HashMap<&'static str, i64> = HashMap::new();
    for (i, s) in req.signals.iter().enumerate() {
        match check_signal(&hub, i, s, t) {
            Ok(v) => valid.push(v),
            Err(Bad::Malformed(m)) => {
                hub.tally("refused_malformed", 1);
                return error(StatusCode::BAD_REQUEST, format!("{m}; nothing was stored"));
            }
            Err(Bad::Refused(what, reason)) => {
                *counts.entry(what).or_default() += 1;
                resp.refused.push(Refusal { index: i, reason });
            }
        }
    }
    let net = reporter_network(hub.client(peer, &headers)).to_string();
    let touched: Vec<String> = valid.iter().map(|v| v.ip.clone()).collect();
    let stored = hub.store.ingest(&agent, &net, valid, t, hub.params).await;
    // Even after an error: part of it may have been written before the failure was seen.
    hub.cache
        .forget(touched.iter().filter_map(|ip| ip.parse().ok()));
    match stored {
        Ok(out) => {
            resp.accepted = out.accepted;
            resp.duplicates = out.duplicates;
            if !out.capped.is_empty() {
                counts.insert("refused_agent_cap", out.capped.len() as i64);
            }
            for i in out.capped {
                resp.refused.push(Refusal {
                    index: i,
                    reason: "the agent's hourly cap of new signals is reached".into(),
                });
            }
            resp.refused.sort_by_key(|r| r.index);
            for ip in &out.listed {
                log::info!("{ip} enters the community blocklist");
            }
            counts.insert("signals_accepted", out.accepted as i64);
            for (k, n) in counts {
                hub.tally(k, n);
            }
            Json(resp).into_response()
        }
        Err(e) => internal(e),
    }
}

#[derive(Deserialize)]
struct SinceQuery {
    since: Option<String>,
}

async fn blocklist(
    State(hub): State<Shared>,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    let q = SinceQuery {
        since: q.get("since").cloned(),
    };
    let since = match q.since.as_deref().map(str::parse::<i64>) {
        None => None,
        Some(Ok(v)) if v >= 0 => Some(v),
        Some(_) => {
            hub.tally("refused_malformed", 1);
            return error(
                StatusCode::BAD_REQUEST,
                "since must be a version number from an earlier answer",
            );
        }
    };
    let t = now();
    match hub.store.changes(since, t).await {
        Ok(ch) => {
            let mut resp = BlocklistResponse {
                version: ch.version,
                snapshot: ch.snapshot,
                ..Default::default()
            };
            for r in ch.rows {
                if r.active && r.until > t {
                    let secs = (r.until - t) / SECOND;
                    resp.new.push(BlockEntry {
                        value: r.ip,
                        scenario: r.scenario,
                        duration_s: secs,
                        duration: crowdsec_duration(secs * SECOND),
                        score: r.score,
                    });
                } else if !ch.snapshot {
                    resp.deleted.push(r.ip);
                }
            }
            Json(resp).into_response()
        }
        Err(e) => internal(e),
    }
}

/// One address's reputation as `GET /v1/ip/{ip}` answers it. Field names follow CrowdSec's
/// smoke API (`reputation`, `behaviors`, `history`) with AbuseIPDB's alongside
/// (`abuseConfidenceScore`, `totalReports`...), so existing clients find what they expect.
/// A struct rather than a `json!` tree: the look-up is the hub's hottest path, and serde
/// writes a struct straight to the body without building and freeing a map per request.
#[derive(Debug, serde::Serialize)]
pub(crate) struct Reputation {
    ip: String,
    reputation: &'static str,
    score: u8,
    reports: i64,
    distinct_reporters: i64,
    history: History,
    behaviors: Vec<Behavior>,
    scenarios: Vec<String>,
    blocklisted: bool,
    blocklist_until: Option<String>,
    never_list: Option<String>,
    #[serde(rename = "abuseConfidenceScore")]
    abuse_confidence_score: u8,
    #[serde(rename = "totalReports")]
    total_reports: i64,
    #[serde(rename = "numDistinctUsers")]
    num_distinct_users: i64,
    #[serde(rename = "lastReportedAt")]
    last_reported_at: Option<String>,
    #[serde(rename = "isWhitelisted")]
    is_whitelisted: bool,
}

#[derive(Debug, serde::Serialize)]
struct History {
    first_seen: Option<String>,
    last_seen: Option<String>,
}

#[derive(Debug, serde::Serialize)]
struct Behavior {
    name: String,
    count: i64,
}

/// The reputation of one address (also used by the page); `None` when it was never reported
/// and is on no never-list.
pub(crate) async fn reputation_of(hub: &Hub, ip: IpAddr) -> Result<Option<Reputation>, Response> {
    let never = hub.never.check(ip).map(str::to_string);
    let info = match hub.cache.get(ip) {
        Some(info) => info,
        None => {
            let info = hub.store.lookup(&ip.to_string()).await.map_err(internal)?;
            hub.cache.put(ip, info.clone());
            info
        }
    };
    let t = now();
    let Some(info) = info else {
        return Ok(never.map(|why| Reputation {
            ip: ip.to_string(),
            reputation: "safe",
            score: 0,
            reports: 0,
            distinct_reporters: 0,
            history: History {
                first_seen: None,
                last_seen: None,
            },
            behaviors: Vec::new(),
            scenarios: Vec::new(),
            blocklisted: false,
            blocklist_until: None,
            never_list: Some(why),
            abuse_confidence_score: 0,
            total_reports: 0,
            num_distinct_users: 0,
            last_reported_at: None,
            is_whitelisted: true,
        }));
    };
    let listed = info.listed_until.is_some_and(|u| u > t);
    let score = if never.is_some() {
        0
    } else {
        score_at(info.weight, info.last_seen, t, &hub.params).max(if listed { 75 } else { 0 })
    };
    let last = format_rfc3339(info.last_seen);
    Ok(Some(Reputation {
        ip: ip.to_string(),
        reputation: reputation(listed, never.is_some(), score),
        score,
        reports: info.reports,
        distinct_reporters: info.reporters,
        history: History {
            first_seen: Some(format_rfc3339(info.first_seen)),
            last_seen: Some(last.clone()),
        },
        scenarios: info.scenarios.iter().map(|(n, _)| n.clone()).collect(),
        behaviors: info
            .scenarios
            .into_iter()
            .map(|(name, count)| Behavior { name, count })
            .collect(),
        blocklisted: listed,
        blocklist_until: info.listed_until.filter(|_| listed).map(format_rfc3339),
        is_whitelisted: never.is_some(),
        never_list: never,
        abuse_confidence_score: score,
        total_reports: info.reports,
        num_distinct_users: info.reporters,
        last_reported_at: Some(last),
    }))
}

async fn lookup(
    State(hub): State<Shared>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    Path(ip): Path<String>,
) -> Response {
    if let Err(r) = hub.limit(hub.client(peer, &headers), &headers) {
        return r;
    }
    let ip = match parse_ip(&ip) {
        Ok(ip) => ip,
        Err(m) => {
            hub.tally("refused_malformed", 1);
            return error(StatusCode::BAD_REQUEST, m);
        }
    };
    match reputation_of(&hub, ip).await {
        Ok(Some(v)) => Json(v).into_response(),
        Ok(None) => error(
            StatusCode::NOT_FOUND,
            format!("{ip} was never reported to this hub"),
        ),
        Err(r) => r,
    }
}

pub(crate) async fn stats_json(hub: &Hub) -> Result<serde_json::Value, Response> {
    // this instance's own latest counts, not a second old
    hub.flush_counts().await;
    let s = hub.store.stats(now()).await.map_err(internal)?;
    Ok(json!({
        "backend": hub.store.backend(),
        "agents": s.agents,
        "blocklist_size": s.listed,
        "signals_per_hour": s.per_hour.iter().map(|(h, n)| json!({"hour": format_rfc3339(*h), "signals": n})).collect::<Vec<_>>(),
        "top_scenarios": s.top_scenarios.iter().map(|(n, c)| json!({"name": n, "signals": c})).collect::<Vec<_>>(),
        "counters": s.counters.into_iter().map(|(k, n)| (k, json!(n))).collect::<serde_json::Map<String, serde_json::Value>>(),
    }))
}

async fn stats(
    State(hub): State<Shared>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
) -> Response {
    if let Err(r) = hub.limit(hub.client(peer, &headers), &headers) {
        return r;
    }
    match stats_json(&hub).await {
        Ok(v) => Json(v).into_response(),
        Err(r) => r,
    }
}

/// Token bucket per client (address, or /64 for IPv6), in this instance's memory.
struct Limiter {
    rate: f64,
    burst: f64,
    buckets: Mutex<HashMap<IpAddr, (f64, Instant)>>,
}

impl Limiter {
    fn new(rate: u32, burst: u32) -> Limiter {
        Limiter {
            rate: rate as f64,
            burst: burst.max(rate).max(1) as f64,
            buckets: Mutex::new(HashMap::new()),
        }
    }

    fn allow(&self, ip: IpAddr) -> bool {
        if self.rate == 0.0 {
            return true;
        }
        let key = match canonical_ip(ip) {
            IpAddr::V6(v6) => {
                let s = v6.segments();
                IpAddr::V6(std::net::Ipv6Addr::new(s[0], s[1], s[2], s[3], 0, 0, 0, 0))
            }
            v4 => v4,
        };
        let t = Instant::now();
        let mut m = self.buckets.lock().unwrap_or_else(|p| p.into_inner());
        if m.len() > 100_000 {
            // bounded memory: forget clients whose bucket has refilled
            let full = Duration::from_secs_f64(self.burst / self.rate);
            m.retain(|_, (_, at)| t.duration_since(*at) < full);
        }
        let e = m.entry(key).or_insert((self.burst, t));
        e.0 = (e.0 + t.duration_since(e.1).as_secs_f64() * self.rate).min(self.burst);
        e.1 = t;
        if e.0 >= 1.0 {
            e.0 -= 1.0;
            true
        } else {
            false
        }
    }
}

/// What the store said of recently looked-up addresses (including "never reported"), for
/// `lookup_cache`. Reputation look-ups repeat the same addresses (a bouncer asking about the
/// attacker that keeps knocking, a page reloaded), and a store round trip costs far more than
/// the answer. Only the stored facts are kept: the score, which decays, and whether a listing
/// has run out are computed at every request. Sharded so that look-ups on different worker
/// threads rarely meet on a lock; bounded, and a full shard forgets its stale entries first
/// and everything if that is not enough.
struct LookupCache {
    ttl: Duration,
    per_shard: usize,
    shards: Vec<Mutex<Shard>>,
}

/// Address -> (when the store answered, what it said).
type Shard = HashMap<IpAddr, (Instant, Option<store::AddressInfo>)>;

const CACHE_SHARDS: usize = 16;

impl LookupCache {
    fn new(ttl: Duration, capacity: usize) -> LookupCache {
        LookupCache {
            ttl,
            per_shard: (capacity / CACHE_SHARDS).max(1),
            shards: (0..CACHE_SHARDS)
                .map(|_| Mutex::new(HashMap::new()))
                .collect(),
        }
    }

    fn shard(&self, ip: IpAddr) -> &Mutex<Shard> {
        let h = match ip {
            IpAddr::V4(a) => u32::from(a) as u64,
            IpAddr::V6(a) => {
                let v = u128::from(a);
                (v as u64) ^ ((v >> 64) as u64)
            }
        };
        // the low bits of an address vary the most between neighbours
        &self.shards[(h.wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 60) as usize % CACHE_SHARDS]
    }

    /// `Some(answer)` while a fresh one is kept.
    fn get(&self, ip: IpAddr) -> Option<Option<store::AddressInfo>> {
        if self.ttl.is_zero() {
            return None;
        }
        let m = self.shard(ip).lock().unwrap_or_else(|p| p.into_inner());
        match m.get(&ip) {
            Some((at, info)) if at.elapsed() < self.ttl => Some(info.clone()),
            _ => None,
        }
    }

    fn put(&self, ip: IpAddr, info: Option<store::AddressInfo>) {
        if self.ttl.is_zero() {
            return;
        }
        let now = Instant::now();
        let mut m = self.shard(ip).lock().unwrap_or_else(|p| p.into_inner());
        if m.len() >= self.per_shard && !m.contains_key(&ip) {
            let ttl = self.ttl;
            m.retain(|_, (at, _)| now.duration_since(*at) < ttl);
            if m.len() >= self.per_shard {
                m.clear();
            }
        }
        m.insert(ip, (now, info));
    }

    fn forget(&self, ips: impl Iterator<Item = IpAddr>) {
        if self.ttl.is_zero() {
            return;
        }
        for ip in ips {
            self.shard(ip)
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .remove(&ip);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn info(reports: i64) -> store::AddressInfo {
        store::AddressInfo {
            first_seen: 0,
            last_seen: 0,
            reports,
            reporters: 1,
            weight: 1.0,
            scenarios: Vec::new(),
            listed_until: None,
        }
    }

    #[test]
    fn cache_keeps_answers_until_forgotten_or_stale() {
        let c = LookupCache::new(Duration::from_secs(600), 64);
        let a: IpAddr = "45.1.1.1".parse().unwrap();
        let b: IpAddr = "2001:db8::1".parse().unwrap();
        assert_eq!(c.get(a), None);
        c.put(a, Some(info(3)));
        c.put(b, None);
        assert_eq!(c.get(a), Some(Some(info(3))));
        // "never reported" is an answer too
        assert_eq!(c.get(b), Some(None));
        c.forget([a].into_iter());
        assert_eq!(c.get(a), None);
        assert_eq!(c.get(b), Some(None));
        let short = LookupCache::new(Duration::from_millis(10), 64);
        short.put(b, None);
        std::thread::sleep(Duration::from_millis(30));
        assert_eq!(short.get(b), None, "stale answers are not served");
    }

    #[test]
    fn cache_is_bounded_and_can_be_off() {
        let c = LookupCache::new(Duration::from_secs(60), CACHE_SHARDS * 4);
        for i in 0..10_000u32 {
            c.put(IpAddr::V4(i.into()), Some(info(1)));
        }
        let held: usize = c.shards.iter().map(|s| s.lock().unwrap().len()).sum();
        assert!(held <= CACHE_SHARDS * 4, "{held} entries held");
        let off = LookupCache::new(Duration::ZERO, 64);
        let a: IpAddr = "45.1.1.1".parse().unwrap();
        off.put(a, Some(info(1)));
        assert_eq!(off.get(a), None);
    }
}
