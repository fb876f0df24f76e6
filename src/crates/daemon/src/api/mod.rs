//! The CrowdSec-compatible bouncer API: existing bouncers (nginx, Traefik, HAProxy, the
//! firewall bouncer, pycrowdsec) pull crowdwall's decisions as they would a CrowdSec Local
//! API: `X-Api-Key` authentication, `/v1/decisions/stream` (startup, then deltas),
//! `/v1/decisions` look-ups (which answer `null`, not `[]`, when nothing matches), durations
//! always as `XhYmZs` (see `crowdwall_proto::duration`), and usage-metrics accepted.
//!
//! Layout: this file holds the config section, the key handling and the HTTP edge (axum,
//! optional TLS); [`decisions`] computes the answers from the store. Handlers never touch the
//! store themselves: they send an [`ApiMsg`] into the daemon's loop and await the answer
//! (the daemon's `edges` module calls [`answer`] with the Core's store), like the control
//! socket does, so the single-threaded Core stays the only owner of state and no lock exists.

pub mod decisions;
mod tls;

use crowdwall_base::{Section, SectionError};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use serde::Deserialize;
use tokio::sync::{mpsc, oneshot};

pub use decisions::answer;
pub(crate) use decisions::request as bouncer_request;

/// `[api]`: the bouncer API. Off by default: a port nobody asked for is a surprise, and
/// CrowdSec's own Local API usually holds 127.0.0.1:8080 on hosts that run it.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ApiSection {
    pub enabled: bool,
    /// Address and port; loopback unless bouncers on other hosts must reach it.
    pub listen: String,
    /// PEM certificate chain and private key: both or neither (then plain HTTP).
    pub tls_cert: Option<PathBuf>,
    pub tls_key: Option<PathBuf>,
}

impl Default for ApiSection {
    fn default() -> Self {
        ApiSection {
            enabled: false,
            listen: "127.0.0.1:8080".into(),
            tls_cert: None,
            tls_key: None,
        }
    }
}

impl Section for ApiSection {
    const NAME: &'static str = "api";

    fn check(&self) -> Result<(), SectionError> {
        if self.listen.parse::<SocketAddr>().is_err() {
            return Err(SectionError::new(
                "listen",
                format!(
                    "'{}' is not ADDRESS:PORT (e.g. 127.0.0.1:8080 or [::1]:8080)",
                    self.listen
                ),
            ));
        }
        if self.tls_cert.is_some() != self.tls_key.is_some() {
            return Err(SectionError::new(
                "tls_cert",
                "tls_cert and tls_key go together: set both for TLS, neither for plain HTTP",
            ));
        }
        Ok(())
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("bouncer API: cannot listen on {addr}: {source}")]
    Bind {
        addr: String,
        #[source]
        source: std::io::Error,
    },
    #[error("bouncer API TLS: {path}: {message}")]
    Tls { path: String, message: String },
    #[error("bouncer key: {0}")]
    Random(String),
    /// A bouncer name an admin typed that cannot be one.
    #[error("{0}")]
    Name(String),
}

/// A new bouncer key (64 hex digits from 32 random bytes) and the SHA-256 that is stored.
pub fn new_key() -> Result<(String, String), ApiError> {
    let key = crowdwall_base::hash::random_hex(32).map_err(|e| ApiError::Random(e.to_string()))?;
    let hash = key_hash(&key);
    Ok((key, hash))
}

/// The stored form of a key.
pub fn key_hash(key: &str) -> String {
    crowdwall_base::hash::sha256_hex(key)
}

/// Bouncer names: what an admin types and `list` shows.
pub fn check_name(name: &str) -> Result<(), ApiError> {
    if name.is_empty()
        || name.len() > 64
        || !name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'@'))
    {
        return Err(ApiError::Name(format!(
            "bouncer name '{name}' must be 1-64 characters of letters, digits, '-', '_', '.', '@'"
        )));
    }
    Ok(())
}

/// What a handler asks the Core.
#[derive(Debug)]
pub enum ApiRequest {
    Stream {
        startup: bool,
        filters: decisions::Filters,
    },
    /// HEAD: authenticate, move nothing.
    Check,
    Decisions {
        query: decisions::Lookup,
        filters: decisions::Filters,
    },
    UsageMetrics,
}

/// What the Core answers.
#[derive(Debug)]
pub enum ApiReply {
    Forbidden,
    BadRequest(String),
    Json(Vec<u8>),
    Created,
    Empty,
    Internal,
}

/// One request from the HTTP edge to the Core, with the way back.
#[derive(Debug)]
pub struct ApiMsg {
    pub key_sha256: String,
    pub user_agent: String,
    pub req: ApiRequest,
    pub reply: oneshot::Sender<ApiReply>,
}

/// A bound listener, ready to serve once the daemon's loop runs.
pub struct Server {
    listener: tokio::net::TcpListener,
    tls: Option<tokio_rustls::TlsAcceptor>,
}

impl Server {
    /// Binds the address and loads TLS material; errors name the file or address. Done
    /// before the daemon reports ready, so a broken setup stops the start.
    pub async fn bind(cfg: &ApiSection) -> Result<Server, ApiError> {
        let tls = match (&cfg.tls_cert, &cfg.tls_key) {
            (Some(c), Some(k)) => Some(tls::acceptor(c, k)?),
            _ => None,
        };
        let listener = tokio::net::TcpListener::bind(&cfg.listen)
            .await
            .map_err(|source| ApiError::Bind {
                addr: cfg.listen.clone(),
                source,
            })?;
        Ok(Server { listener, tls })
    }

    pub fn local_addr(&self) -> Option<SocketAddr> {
        self.listener.local_addr().ok()
    }

    /// Serves until the task is dropped.
    pub async fn serve(self, tx: mpsc::Sender<ApiMsg>) {
        let app = router(tx);
        let r = match self.tls {
            None => axum::serve(self.listener, app).await,
            Some(acc) => axum::serve(tls::TlsListener::new(self.listener, acc), app).await,
        };
        if let Err(e) = r {
            log::error!("bouncer API stopped: {e}");
        }
    }
}

/// Starts the API if enabled: binds now, serves on a task.
pub async fn start(cfg: &ApiSection, tx: mpsc::Sender<ApiMsg>) -> Result<(), ApiError> {
    if !cfg.enabled {
        return Ok(());
    }
    let server = Server::bind(cfg).await?;
    log::info!(
        "bouncer API listening on {}{}",
        server
            .local_addr()
            .map(|a| a.to_string())
            .unwrap_or_default(),
        if server.tls.is_some() { " (TLS)" } else { "" }
    );
    tokio::spawn(server.serve(tx));
    Ok(())
}

pub fn router(tx: mpsc::Sender<ApiMsg>) -> Router {
    Router::new()
        .route("/v1/decisions/stream", get(stream).head(check))
        .route("/v1/decisions", get(lookup).head(check))
        .route("/v1/usage-metrics", post(usage))
        .with_state(tx)
}

type Params = Query<Vec<(String, String)>>;

async fn stream(
    State(tx): State<mpsc::Sender<ApiMsg>>,
    h: HeaderMap,
    Query(q): Params,
) -> Response {
    let startup = q
        .iter()
        .any(|(k, v)| k == "startup" && v.eq_ignore_ascii_case("true"));
    let filters = match decisions::Filters::from_query(&q) {
        Ok(f) => f,
        Err(m) => return call(&tx, &h, None, m).await,
    };
    call(
        &tx,
        &h,
        Some(ApiRequest::Stream { startup, filters }),
        String::new(),
    )
    .await
}

async fn lookup(
    State(tx): State<mpsc::Sender<ApiMsg>>,
    h: HeaderMap,
    Query(q): Params,
) -> Response {
    let parsed = decisions::Filters::from_query(&q)
        .and_then(|f| decisions::Lookup::from_query(&q).map(|l| (f, l)));
    match parsed {
        Ok((filters, query)) => {
            call(
                &tx,
                &h,
                Some(ApiRequest::Decisions { query, filters }),
                String::new(),
            )
            .await
        }
        Err(m) => call(&tx, &h, None, m).await,
    }
}

async fn check(State(tx): State<mpsc::Sender<ApiMsg>>, h: HeaderMap) -> Response {
    call(&tx, &h, Some(ApiRequest::Check), String::new()).await
}

async fn usage(State(tx): State<mpsc::Sender<ApiMsg>>, h: HeaderMap) -> Response {
    call(&tx, &h, Some(ApiRequest::UsageMetrics), String::new()).await
}

/// Authenticates and forwards to the Core. A request that does not parse (`req` None) is
/// still authenticated first: a caller without a key learns nothing, not even that its
/// query was wrong.
async fn call(
    tx: &mpsc::Sender<ApiMsg>,
    h: &HeaderMap,
    req: Option<ApiRequest>,
    bad: String,
) -> Response {
    let Some(key) = h.get("x-api-key").and_then(|v| v.to_str().ok()) else {
        return reply(ApiReply::Forbidden);
    };
    let user_agent = h
        .get("user-agent")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .chars()
        .take(200)
        .collect();
    let key_sha256 = key_hash(key.trim());
    let (req, bad) = match req {
        Some(r) => (r, None),
        None => (ApiRequest::Check, Some(bad)),
    };
    let (otx, orx) = oneshot::channel();
    let msg = ApiMsg {
        key_sha256,
        user_agent,
        req,
        reply: otx,
    };
    if tx.send(msg).await.is_err() {
        return reply(ApiReply::Internal);
    }
    let answer = match tokio::time::timeout(Duration::from_secs(30), orx).await {
        Ok(Ok(a)) => a,
        _ => ApiReply::Internal,
    };
    match (answer, bad) {
        (ApiReply::Empty, Some(m)) => reply(ApiReply::BadRequest(m)),
        (a, _) => reply(a),
    }
}

fn message(status: StatusCode, m: &str) -> Response {
    (
        status,
        [("content-type", "application/json")],
        serde_json::json!({ "message": m }).to_string(),
    )
        .into_response()
}

fn reply(a: ApiReply) -> Response {
    match a {
        ApiReply::Forbidden => message(StatusCode::FORBIDDEN, "access forbidden"),
        ApiReply::BadRequest(m) => message(StatusCode::BAD_REQUEST, &m),
        ApiReply::Internal => message(StatusCode::INTERNAL_SERVER_ERROR, "internal error"),
        ApiReply::Created => StatusCode::CREATED.into_response(),
        ApiReply::Empty => StatusCode::OK.into_response(),
        ApiReply::Json(body) => {
            (StatusCode::OK, [("content-type", "application/json")], body).into_response()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crowdwall_base::Section;

    #[test]
    fn keys_are_random_and_only_their_hash_is_kept() {
        let (k1, h1) = new_key().unwrap();
        let (k2, _) = new_key().unwrap();
        assert_eq!(k1.len(), 64);
        assert_ne!(k1, k2);
        assert_eq!(h1, key_hash(&k1));
        assert_ne!(h1, k1);
        // SHA-256 of "abc"
        assert_eq!(
            key_hash("abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }

    #[test]
    fn config_checks() {
        let mut c = ApiSection::default();
        assert!(c.check().is_ok());
        c.listen = "localhost".into();
        assert!(c.check().unwrap_err().message.contains("ADDRESS:PORT"));
        c.listen = "[::1]:8080".into();
        c.tls_cert = Some("/x.pem".into());
        assert!(c.check().unwrap_err().message.contains("together"));
        assert!(check_name("nginx-1").is_ok());
        assert!(check_name("a b").is_err());
        assert!(check_name("").is_err());
    }
}
