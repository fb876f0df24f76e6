//! The hub's HTTP endpoints: enrolment, pushes, the blocklist, reputation look-ups, stats.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{ConnectInfo, Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Deserialize;
use serde_json::json;

use crowdwall_base::clock::now;
use crowdwall_base::hash::{random_hex, sha256_hex};
use crowdwall_base::time::{format_rfc3339, from_duration, Micros, SECOND};
use crowdwall_proto::duration::crowdsec_duration;
use crowdwall_proto::{
    valid_scenario, BlockEntry, BlocklistResponse, EnrollRequest, EnrollResponse, PushRequest,
    PushResponse, Refusal, Signal,
};

use crate::consensus::{reporter_network, reputation, score_at};
use crate::store::{EnrolCap, Enrolled, ValidSignal};
use crate::{error, internal, json_body, parse_ip, Hub, Shared};

pub(crate) fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

pub(crate) async fn enroll(
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
    // The network the agent's reports will count as (the same /24 or /48 rule), so one party
    // cannot hold more than its share of live agents in it.
    let net = reporter_network(peer).to_string();
    let t = now();
    let cap = (hub.cfg.max_agents_per_network > 0).then(|| EnrolCap {
        max: i64::try_from(hub.cfg.max_agents_per_network).unwrap_or(i64::MAX),
        live_since: t - from_duration(hub.cfg.agent_live_window.0),
    });
    match hub
        .store
        .enroll(&id, &sha256_hex(&secret), &name, &from, &net, cap, t)
        .await
    {
        Ok(Enrolled::NetworkFull { live }) => {
            hub.tally("refused_enrolment_network_cap", 1);
            log::info!("enrolment from {from} refused: {net} holds {live} live agent(s)");
            error(
                StatusCode::FORBIDDEN,
                format!(
                    "{net} already has {live} live agent(s) enrolled, the most this hub takes \
                     from one network (max_agents_per_network = {}); an agent stops counting {} \
                     after its enrolment or last push",
                    hub.cfg.max_agents_per_network,
                    crowdwall_base::time::format_duration(hub.cfg.agent_live_window.0)
                ),
            )
        }
        Ok(Enrolled::Yes) => {
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
pub(crate) enum Bad {
    Malformed(String),
    Refused(&'static str, String),
}

pub(crate) fn check_signal(
    hub: &Hub,
    index: usize,
    s: &Signal,
    now: Micros,
) -> Result<ValidSignal, Bad> {
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

pub(crate) async fn push(
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
pub(crate) struct SinceQuery {
    since: Option<String>,
}

pub(crate) async fn blocklist(
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
    /// Distinct agents that reported the address.
    distinct_reporters: i64,
    /// Distinct reporter networks (/24, /48) in the consensus window: what the score and the
    /// listing count. Many reporters in one network are one voice.
    distinct_networks: i64,
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
pub(crate) struct History {
    first_seen: Option<String>,
    last_seen: Option<String>,
}

#[derive(Debug, serde::Serialize)]
pub(crate) struct Behavior {
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
            distinct_networks: 0,
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
        let nets = usize::try_from(info.networks).unwrap_or(0);
        score_at(info.weight, nets, info.last_seen, t, &hub.params).max(if listed { 75 } else { 0 })
    };
    let last = format_rfc3339(info.last_seen);
    Ok(Some(Reputation {
        ip: ip.to_string(),
        reputation: reputation(listed, never.is_some(), score),
        score,
        reports: info.reports,
        distinct_reporters: info.reporters,
        distinct_networks: info.networks,
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

pub(crate) async fn lookup(
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

pub(crate) async fn stats(
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
