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
mod limits;
mod page;
pub mod postgres;
mod routes;
pub mod sqlite;
pub mod store;

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde_json::json;

use crowdwall_base::canonical_ip;
use crowdwall_base::clock::now;
use crowdwall_base::hash::sha256_hex;
use crowdwall_base::time::from_duration;

use consensus::{NeverList, Params};
use limits::{Limiter, LookupCache};
use routes::constant_time_eq;
use store::HubStore;

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

pub(crate) type Shared = Arc<Hub>;

pub fn router(hub: Shared) -> Router {
    Router::new()
        .route("/", get(page::index))
        .route("/v1/agents", post(routes::enroll))
        .route("/v1/signals", post(routes::push))
        .route("/v1/blocklist", get(routes::blocklist))
        .route("/v1/ip/{ip}", get(routes::lookup))
        .route("/v1/stats", get(routes::stats))
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
pub(crate) fn parse_ip(s: &str) -> Result<IpAddr, String> {
    s.trim().parse::<IpAddr>().map(canonical_ip).map_err(|_| {
        format!(
            "'{}' is not an IP address",
            s.chars().take(64).collect::<String>()
        )
    })
}

pub(crate) fn error(status: StatusCode, message: impl Into<String>) -> Response {
    (status, Json(json!({ "message": message.into() }))).into_response()
}

pub(crate) fn internal(e: impl std::fmt::Display) -> Response {
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
    pub(crate) fn tally(&self, what: &'static str, n: i64) {
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
pub(crate) async fn json_body<T: serde::de::DeserializeOwned>(
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
    pub(crate) fn client(&self, peer: SocketAddr, headers: &HeaderMap) -> IpAddr {
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::limits::*;

    fn info(reports: i64) -> store::AddressInfo {
        store::AddressInfo {
            first_seen: 0,
            last_seen: 0,
            reports,
            reporters: 1,
            networks: 1,
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
