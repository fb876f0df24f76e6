//! The bouncer API's answers, computed inside the daemon's Core (which owns the store):
//! authentication by key hash, the stream (startup and per-bouncer deltas from the store's
//! change log), look-ups, and the `crowdwall bouncers` control requests.

use std::collections::BTreeMap;
use std::net::IpAddr;

use ipnet::IpNet;
use serde::Serialize;

use super::{ApiReply, ApiRequest};
use crate::control::Request;
use crate::store::{Store, StoreError};
use crate::time::{self, format_rfc3339, Micros};
use crowdwall_engine::decide::{value_text, Origin};

/// The origin as CrowdSec names it, so that bouncers' `origins=` filters written for
/// CrowdSec keep working: a local scenario is `crowdsec`, an admin's ban `cscli`, the
/// community blocklist `CAPI`, a feed `lists`.
pub fn api_origin(o: Origin) -> &'static str {
    match o {
        Origin::Local | Origin::Crowdsec => "crowdsec",
        Origin::Manual => "cscli",
        Origin::Community => "CAPI",
        Origin::Lists => "lists",
    }
}

/// One decision as bouncers read it.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct ApiDecision {
    pub id: i64,
    pub origin: &'static str,
    #[serde(rename = "type")]
    pub kind: &'static str,
    pub scope: &'static str,
    pub value: String,
    pub duration: String,
    pub until: String,
    pub scenario: String,
    pub simulated: bool,
}

fn api_decision(
    id: i64,
    value: &IpNet,
    origin: Origin,
    scenario: &str,
    until: Micros,
    now: Micros,
) -> ApiDecision {
    ApiDecision {
        id,
        origin: api_origin(origin),
        kind: "ban",
        scope: if is_host(value) { "Ip" } else { "Range" },
        value: value_text(value),
        duration: crowdwall_proto::duration::crowdsec_duration(until - now),
        until: format_rfc3339(until),
        scenario: scenario.to_string(),
        simulated: false,
    }
}

fn is_host(n: &IpNet) -> bool {
    n.prefix_len() == n.max_prefix_len()
}

/// The filters bouncers send: `scopes`, `origins`, `scenarios_containing`,
/// `scenarios_not_containing` (comma-separated, case-insensitive; empty means no filter).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Filters {
    pub ip: bool,
    pub range: bool,
    pub origins: Vec<String>,
    pub containing: Vec<String>,
    pub not_containing: Vec<String>,
    /// `type=` other than ban: crowdwall only bans, so nothing matches.
    pub no_ban: bool,
}

fn list(v: &str) -> Vec<String> {
    v.split(',')
        .map(|s| s.trim().to_ascii_lowercase())
        .filter(|s| !s.is_empty())
        .collect()
}

impl Filters {
    pub(crate) fn from_query(q: &[(String, String)]) -> Result<Filters, String> {
        let mut f = Filters {
            ip: true,
            range: true,
            ..Default::default()
        };
        for (k, v) in q {
            match k.as_str() {
                "scopes" | "scope" => {
                    let s = list(v);
                    if !s.is_empty() {
                        f.ip = s.iter().any(|x| x == "ip");
                        f.range = s.iter().any(|x| x == "range");
                    }
                }
                "origins" => f.origins = list(v),
                "scenarios_containing" => f.containing = list(v),
                "scenarios_not_containing" => f.not_containing = list(v),
                "type" => f.no_ban = !v.is_empty() && !v.eq_ignore_ascii_case("ban"),
                _ => {}
            }
        }
        Ok(f)
    }

    pub fn matches(&self, value: &IpNet, origin: Origin, scenario: &str) -> bool {
        if self.no_ban {
            return false;
        }
        if if is_host(value) {
            !self.ip
        } else {
            !self.range
        } {
            return false;
        }
        if !self.origins.is_empty() {
            let api = api_origin(origin).to_ascii_lowercase();
            if !self
                .origins
                .iter()
                .any(|o| *o == api || o == origin.as_str())
            {
                return false;
            }
        }
        let sc = scenario.to_ascii_lowercase();
        if !self.containing.is_empty() && !self.containing.iter().any(|c| sc.contains(c)) {
            return false;
        }
        !self.not_containing.iter().any(|c| sc.contains(c))
    }
}

/// `GET /v1/decisions` selectors: `ip=`, `range=`, or `scope=` + `value=`, with `contains`
/// (default true: decisions covering the range; false: decisions inside it).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Lookup {
    pub net: Option<IpNet>,
    pub contains: bool,
}

impl Lookup {
    pub(crate) fn from_query(q: &[(String, String)]) -> Result<Lookup, String> {
        let mut l = Lookup {
            net: None,
            contains: true,
        };
        let parse_ip = |v: &str| -> Result<IpNet, String> {
            v.trim()
                .parse::<IpAddr>()
                .map(|ip| IpNet::from(crowdwall_base::canonical_ip(ip)))
                .map_err(|_| format!("'{v}' is not an IP address"))
        };
        let parse_range = |v: &str| -> Result<IpNet, String> {
            v.trim()
                .parse::<IpNet>()
                .map(|n| n.trunc())
                .map_err(|_| format!("'{v}' is not a CIDR range"))
        };
        let mut scope = None;
        let mut value = None;
        for (k, v) in q {
            match k.as_str() {
                "ip" => l.net = Some(parse_ip(v)?),
                "range" => l.net = Some(parse_range(v)?),
                "scope" => scope = Some(v.to_ascii_lowercase()),
                "value" => value = Some(v.clone()),
                "contains" => l.contains = !v.eq_ignore_ascii_case("false"),
                _ => {}
            }
        }
        if let Some(v) = value {
            l.net = Some(match scope.as_deref() {
                Some("range") => parse_range(&v)?,
                _ if v.contains('/') => parse_range(&v)?,
                _ => parse_ip(&v)?,
            });
        }
        Ok(l)
    }

    fn matches(&self, d: &IpNet) -> bool {
        match &self.net {
            None => true,
            Some(q) if self.contains => d.contains(q),
            Some(q) => q.contains(d),
        }
    }
}

/// The longest decision in force per value among those the filters let through.
fn best_by_value(
    store: &Store,
    filters: &Filters,
    now: Micros,
) -> Result<BTreeMap<IpNet, crowdwall_engine::decide::Decision>, StoreError> {
    let mut best: BTreeMap<IpNet, crowdwall_engine::decide::Decision> = BTreeMap::new();
    for d in store.active(now)? {
        if !filters.matches(&d.value, d.origin, &d.scenario) {
            continue;
        }
        match best.get(&d.value) {
            Some(b) if b.until >= d.until => {}
            _ => {
                best.insert(d.value, d);
            }
        }
    }
    Ok(best)
}

#[derive(Serialize)]
struct StreamBody {
    new: Vec<ApiDecision>,
    deleted: Vec<ApiDecision>,
}

/// The stream answer and the change-log position the bouncer has after it. Startup sends
/// every value in force; a delta sends values with a decision inserted since the last pull
/// (their longest decision) and values the bouncer knew whose last decision ended, by
/// deletion or expiry. A value deleted and re-inserted in between (a feed update) is only
/// in `new`, and a value still covered by another decision is not deleted: bouncers key
/// their state by value.
fn stream(
    store: &Store,
    last: Option<(i64, Micros)>,
    startup: bool,
    filters: &Filters,
    now: Micros,
) -> Result<(StreamBody, i64), StoreError> {
    let seq = store.log_seq()?;
    let as_api = |d: &crowdwall_engine::decide::Decision| {
        api_decision(d.id, &d.value, d.origin, &d.scenario, d.until, now)
    };
    let (last_seq, last_pull) = match last {
        Some(l) if !startup => l,
        _ => {
            let best = best_by_value(store, filters, now)?;
            let new = best.values().map(as_api).collect();
            return Ok((
                StreamBody {
                    new,
                    deleted: Vec::new(),
                },
                seq,
            ));
        }
    };
    let (inserted, ended) = store.log_delta(last_seq, last_pull, now)?;
    if inserted.is_empty() && ended.is_empty() {
        // The usual pull: nothing changed, and the decisions in force are not read.
        return Ok((
            StreamBody {
                new: Vec::new(),
                deleted: Vec::new(),
            },
            seq,
        ));
    }
    let best = best_by_value(store, filters, now)?;
    // What the bouncer holds, at least: a value it was sent lasts until the longest of its
    // decisions it knew of. A value re-inserted no longer than that (a feed version that
    // kept it) is not sent again.
    let mut held: BTreeMap<IpNet, Micros> = BTreeMap::new();
    for l in &ended {
        let h = held.entry(l.value).or_insert(l.until);
        *h = (*h).max(l.until);
    }
    let mut new = Vec::new();
    let mut seen = std::collections::BTreeSet::new();
    for l in &inserted {
        if !filters.matches(&l.value, l.origin, &l.scenario) || !seen.insert(l.value) {
            continue;
        }
        if let Some(d) = best.get(&l.value) {
            if held.get(&l.value).is_some_and(|h| d.until <= *h) {
                continue;
            }
            new.push(as_api(d));
        }
    }
    let mut deleted = Vec::new();
    let mut gone = std::collections::BTreeSet::new();
    for l in &ended {
        if !filters.matches(&l.value, l.origin, &l.scenario)
            || best.contains_key(&l.value)
            || !gone.insert(l.value)
        {
            continue;
        }
        deleted.push(api_decision(
            l.id,
            &l.value,
            l.origin,
            &l.scenario,
            l.until,
            now,
        ));
    }
    Ok((StreamBody { new, deleted }, seq))
}

fn lookup(
    store: &Store,
    q: &Lookup,
    filters: &Filters,
    now: Micros,
) -> Result<Vec<ApiDecision>, StoreError> {
    Ok(store
        .active(now)?
        .iter()
        .filter(|d| q.matches(&d.value) && filters.matches(&d.value, d.origin, &d.scenario))
        .map(|d| api_decision(d.id, &d.value, d.origin, &d.scenario, d.until, now))
        .collect())
}

/// Answers one API request from the store (the daemon's loop calls it; the store is the
/// Core's).
pub fn answer(
    store: &mut Store,
    key_sha256: &str,
    user_agent: &str,
    req: ApiRequest,
) -> Result<ApiReply, StoreError> {
    let Some(b) = store.bouncer_by_key(key_sha256)? else {
        return Ok(ApiReply::Forbidden);
    };
    let now = time::now();
    Ok(match req {
        ApiRequest::Check => {
            store.bouncer_seen(&b.name, now, user_agent, None)?;
            ApiReply::Empty
        }
        ApiRequest::UsageMetrics => {
            store.bouncer_seen(&b.name, now, user_agent, None)?;
            ApiReply::Created
        }
        ApiRequest::Stream { startup, filters } => {
            // Past the log's horizon the delta may be incomplete: send the whole state.
            let last = b
                .last_seq
                .zip(b.last_pull)
                .filter(|(_, at)| *at >= now - crate::store::LOG_HORIZON);
            let (body, seq) = stream(store, last, startup, &filters, now)?;
            store.bouncer_seen(&b.name, now, user_agent, Some(seq))?;
            if startup || !body.new.is_empty() || !body.deleted.is_empty() {
                log::debug!(
                    "bouncer {}: {} new, {} deleted{}",
                    b.name,
                    body.new.len(),
                    body.deleted.len(),
                    if startup { " (startup)" } else { "" }
                );
            }
            ApiReply::Json(to_json(&body))
        }
        ApiRequest::Decisions { query, filters } => {
            store.bouncer_seen(&b.name, now, user_agent, None)?;
            let found = lookup(store, &query, &filters, now)?;
            // Clients compare the body with the literal "null" to mean "no decision".
            if found.is_empty() {
                ApiReply::Json(b"null".to_vec())
            } else {
                ApiReply::Json(to_json(&found))
            }
        }
    })
}

/// Our own types always serialise; an empty body would be answered if one did not.
fn to_json<T: Serialize>(v: &T) -> Vec<u8> {
    serde_json::to_vec(v).unwrap_or_default()
}

/// The `crowdwall bouncers` control requests.
pub(crate) fn request(
    store: &mut Store,
    req: Request,
    now: Micros,
) -> Result<serde_json::Value, String> {
    match req {
        Request::BouncerAdd { name, key_sha256 } => {
            super::check_name(&name).map_err(|e| e.to_string())?;
            if key_sha256.len() != 64 || !key_sha256.bytes().all(|b| b.is_ascii_hexdigit()) {
                return Err("the key hash must be 64 hex digits (SHA-256)".into());
            }
            if !store
                .bouncer_add(&name, &key_sha256.to_ascii_lowercase(), now)
                .map_err(|e| e.to_string())?
            {
                return Err(format!(
                    "a bouncer named '{name}' exists already (delete it first to issue a new key)"
                ));
            }
            log::info!("bouncer {name} added");
            Ok(serde_json::json!({ "name": name }))
        }
        Request::BouncerDelete { name } => {
            if !store.bouncer_delete(&name).map_err(|e| e.to_string())? {
                return Err(format!(
                    "no bouncer named '{name}' (see `crowdwall bouncers list`)"
                ));
            }
            log::info!("bouncer {name} deleted");
            Ok(serde_json::json!({ "deleted": name }))
        }
        Request::BouncerList => {
            let list = store.bouncers().map_err(|e| e.to_string())?;
            let opt = |t: Option<Micros>| t.map(format_rfc3339);
            Ok(serde_json::Value::Array(
                list.iter()
                    .map(|b| {
                        serde_json::json!({
                            "name": b.name,
                            "created": format_rfc3339(b.created),
                            "last_pull": opt(b.last_pull),
                            "last_seen": opt(b.last_seen),
                            "user_agent": b.user_agent,
                        })
                    })
                    .collect(),
            ))
        }
        other => Err(format!("not a bouncer request: {other:?}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::time::SECOND;
    use crowdwall_engine::decide::Decision;

    const H: Micros = 3600 * SECOND;

    fn d(v: &str, origin: Origin, scenario: &str, until: Micros) -> Decision {
        Decision {
            id: 0,
            value: crowdwall_base::parse_net(v).unwrap(),
            origin,
            scenario: scenario.into(),
            reason: String::new(),
            created: 0,
            until,
            ports: Default::default(),
        }
    }

    fn q(s: &str) -> Vec<(String, String)> {
        s.split('&')
            .filter_map(|kv| kv.split_once('='))
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    fn values(v: &[ApiDecision]) -> Vec<&str> {
        v.iter().map(|d| d.value.as_str()).collect()
    }

    #[test]
    fn filters_scopes_origins_scenarios() {
        let f = Filters::from_query(&q("scopes=ip")).unwrap();
        let host: IpNet = "192.0.2.1/32".parse().unwrap();
        let range: IpNet = "192.0.2.0/24".parse().unwrap();
        assert!(f.matches(&host, Origin::Local, "ssh-bruteforce"));
        assert!(!f.matches(&range, Origin::Local, "ssh-bruteforce"));
        let f = Filters::from_query(&q("origins=cscli,lists")).unwrap();
        assert!(f.matches(&host, Origin::Manual, "manual"));
        assert!(f.matches(&range, Origin::Lists, "drop"));
        assert!(!f.matches(&host, Origin::Local, "ssh-bruteforce"));
        let f = Filters::from_query(&q("scenarios_containing=SSH&scenarios_not_containing=slow"))
            .unwrap();
        assert!(f.matches(&host, Origin::Local, "ssh-bruteforce"));
        assert!(!f.matches(&host, Origin::Local, "ssh-slow-bruteforce"));
        assert!(!f.matches(&host, Origin::Lists, "drop"));
        assert!(!Filters::from_query(&q("type=captcha")).unwrap().matches(
            &host,
            Origin::Local,
            "x"
        ));
    }

    #[test]
    fn stream_startup_then_deltas_with_deletions_and_expiry() {
        let mut s = Store::in_memory().unwrap();
        let f = Filters::from_query(&[]).unwrap();
        let t0 = 1_000 * H;
        s.insert(&mut d("192.0.2.1", Origin::Local, "ssh-bruteforce", t0 + H))
            .unwrap();
        s.insert(&mut d(
            "192.0.2.2",
            Origin::Manual,
            "manual",
            t0 + 10 * SECOND,
        ))
        .unwrap();
        let (b, seq) = stream(&s, None, true, &f, t0).unwrap();
        assert_eq!(values(&b.new), ["192.0.2.1", "192.0.2.2"]);
        assert_eq!(b.new[1].duration, "0h0m10s");
        assert_eq!(b.new[1].origin, "cscli");
        // nothing happened: an empty delta
        let (b, seq) = stream(&s, Some((seq, t0)), false, &f, t0 + SECOND).unwrap();
        assert!(b.new.is_empty() && b.deleted.is_empty());
        // a new range, a deletion, an expiry
        s.insert(&mut d("198.51.100.0/24", Origin::Lists, "drop", t0 + H))
            .unwrap();
        s.delete_value(&"192.0.2.1/32".parse().unwrap(), t0)
            .unwrap();
        let t1 = t0 + 20 * SECOND;
        let (b, seq) = stream(&s, Some((seq, t0 + SECOND)), false, &f, t1).unwrap();
        assert_eq!(values(&b.new), ["198.51.100.0/24"]);
        assert_eq!(b.new[0].scope, "Range");
        assert_eq!(values(&b.deleted), ["192.0.2.1", "192.0.2.2"]);
        assert!(b.deleted[1].duration.starts_with('-'), "expired: negative");
        // pruning the expired row does not report it again
        s.prune(t1, 0).unwrap();
        let (b, seq) = stream(&s, Some((seq, t1)), false, &f, t1 + SECOND).unwrap();
        assert!(b.new.is_empty() && b.deleted.is_empty(), "{:?}", b.deleted);
        // a feed update that keeps a value: only `new`, no deletion of it
        let mut l = vec![
            d("198.51.100.0/24", Origin::Lists, "drop", t1 + 2 * H),
            d("203.0.113.0/24", Origin::Lists, "drop", t1 + 2 * H),
        ];
        s.replace_origin(Origin::Lists, Some("drop"), &mut l)
            .unwrap();
        let (b, seq) = stream(&s, Some((seq, t1 + SECOND)), false, &f, t1 + 2 * SECOND).unwrap();
        assert_eq!(values(&b.new), ["198.51.100.0/24", "203.0.113.0/24"]);
        assert!(b.deleted.is_empty(), "{:?}", b.deleted);
        // the same version again (same end): nothing to send
        s.replace_origin(Origin::Lists, Some("drop"), &mut l)
            .unwrap();
        let (b, _) = stream(&s, Some((seq, t1 + 2 * SECOND)), false, &f, t1 + 3 * SECOND).unwrap();
        assert!(b.new.is_empty() && b.deleted.is_empty(), "{:?}", b.new);
    }

    #[test]
    fn a_value_still_covered_by_another_decision_is_not_deleted() {
        let mut s = Store::in_memory().unwrap();
        let f = Filters::from_query(&[]).unwrap();
        let t0 = 1_000 * H;
        s.insert(&mut d("192.0.2.1", Origin::Local, "ssh-bruteforce", t0 + H))
            .unwrap();
        s.insert(&mut d("192.0.2.1", Origin::Lists, "drop", t0 + 2 * H))
            .unwrap();
        let (b, seq) = stream(&s, None, true, &f, t0).unwrap();
        assert_eq!(values(&b.new), ["192.0.2.1"], "one entry per value");
        assert_eq!(b.new[0].duration, "2h0m0s", "the longest");
        s.delete_origin_values(Origin::Lists, &["192.0.2.1/32".parse().unwrap()])
            .unwrap();
        let (b, _) = stream(&s, Some((seq, t0)), false, &f, t0 + SECOND).unwrap();
        assert!(b.deleted.is_empty(), "still banned by the local decision");
    }

    #[test]
    fn lookup_by_ip_and_range() {
        let mut s = Store::in_memory().unwrap();
        let t0 = 1_000 * H;
        s.insert(&mut d("198.51.100.0/24", Origin::Lists, "drop", t0 + H))
            .unwrap();
        s.insert(&mut d("192.0.2.1", Origin::Local, "ssh-bruteforce", t0 + H))
            .unwrap();
        let f = Filters::from_query(&[]).unwrap();
        let l = Lookup::from_query(&q("ip=198.51.100.7")).unwrap();
        assert_eq!(
            values(&lookup(&s, &l, &f, t0).unwrap()),
            ["198.51.100.0/24"]
        );
        let l = Lookup::from_query(&q("ip=203.0.113.1")).unwrap();
        assert!(lookup(&s, &l, &f, t0).unwrap().is_empty());
        let l = Lookup::from_query(&q("range=192.0.2.0/24&contains=false")).unwrap();
        assert_eq!(values(&lookup(&s, &l, &f, t0).unwrap()), ["192.0.2.1"]);
        let l = Lookup::from_query(&q("scope=ip&value=192.0.2.1")).unwrap();
        assert_eq!(values(&lookup(&s, &l, &f, t0).unwrap()), ["192.0.2.1"]);
        assert!(Lookup::from_query(&q("ip=not-an-ip")).is_err());
    }
}
