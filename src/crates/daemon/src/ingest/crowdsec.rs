//! crowdwall as a bouncer of an existing CrowdSec Local API: pulls `/v1/decisions/stream`
//! (startup, then deltas) and applies the bans as origin `crowdsec`, removing them when
//! CrowdSec does.

use crowdwall_base::{Section, SectionError};
use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::time::Duration;

use ipnet::IpNet;
use serde::Deserialize;
use tokio::sync::mpsc;

use super::http::{body_capped, client, BodyError};
use super::{ask, IngestError, IngestMsg};
use crate::external::ExternalUpdate;
use crate::time::{self, Micros};
use crowdwall_base::Dur;
use crowdwall_engine::decide::{Decision, Origin};

/// `[crowdsec]`: the Local API to follow.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct CrowdsecSection {
    pub enabled: bool,
    /// Base URL of the Local API (`cscli bouncers add NAME` gives the key).
    pub url: String,
    pub api_key: Option<String>,
    /// A file holding the key (first line), so the config file can stay world-readable.
    pub api_key_file: Option<PathBuf>,
    pub interval: Dur,
    pub scopes: Vec<String>,
    pub origins: Vec<String>,
    pub scenarios_containing: Vec<String>,
    pub scenarios_not_containing: Vec<String>,
    /// Largest answer read (a startup with the community blocklist is a few MiB).
    pub max_bytes: u64,
}

impl Default for CrowdsecSection {
    fn default() -> Self {
        CrowdsecSection {
            enabled: false,
            url: "http://127.0.0.1:8080/".into(),
            api_key: None,
            api_key_file: None,
            interval: Dur(Duration::from_secs(10)),
            scopes: vec!["ip".into(), "range".into()],
            origins: Vec::new(),
            scenarios_containing: Vec::new(),
            scenarios_not_containing: Vec::new(),
            max_bytes: 64 << 20,
        }
    }
}

impl Section for CrowdsecSection {
    const NAME: &'static str = "crowdsec";

    fn check(&self) -> Result<(), SectionError> {
        if !self.enabled {
            return Ok(());
        }
        if !(self.url.starts_with("http://") || self.url.starts_with("https://")) {
            return Err(SectionError::new(
                "url",
                format!("'{}' must start with http:// or https://", self.url),
            ));
        }
        if self.api_key.is_some() == self.api_key_file.is_some() {
            return Err(SectionError::new("api_key", "set exactly one of api_key and api_key_file (`cscli bouncers add crowdwall` prints a key)"));
        }
        if self.interval.0 < Duration::from_secs(1) {
            return Err(SectionError::new("interval", "must be at least 1s"));
        }
        Ok(())
    }
}

/// A decision as the Local API sends it.
#[derive(Debug, Clone, Deserialize)]
pub struct LapiDecision {
    #[serde(default)]
    pub id: Option<i64>,
    #[serde(default)]
    pub duration: Option<String>,
    #[serde(default)]
    pub origin: Option<String>,
    #[serde(default)]
    pub scenario: Option<String>,
    pub scope: String,
    #[serde(rename = "type")]
    pub kind: String,
    pub value: String,
}

#[derive(Debug, Deserialize)]
pub struct StreamAnswer {
    #[serde(default)]
    pub new: Option<Vec<LapiDecision>>,
    #[serde(default)]
    pub deleted: Option<Vec<LapiDecision>>,
}

/// Why a decision from the Local API is not applied (counted, logged once per pull).
#[derive(Debug, PartialEq, Eq)]
pub enum Skip {
    NotBan,
    Scope,
    Value,
    Expired,
}

/// The crowdwall decision for a Local API one.
pub fn convert(d: &LapiDecision, now: Micros) -> Result<Decision, Skip> {
    if !d.kind.eq_ignore_ascii_case("ban") {
        return Err(Skip::NotBan);
    }
    let value: IpNet = match d.scope.to_ascii_lowercase().as_str() {
        "ip" | "range" => crowdwall_base::parse_net(&d.value).map_err(|_| Skip::Value)?,
        _ => return Err(Skip::Scope),
    };
    let dur = d
        .duration
        .as_deref()
        .and_then(crowdwall_proto::duration::parse_go_duration)
        .ok_or(Skip::Value)?;
    if dur <= 0 {
        return Err(Skip::Expired);
    }
    let origin = d.origin.as_deref().unwrap_or("crowdsec");
    Ok(Decision {
        id: 0,
        value,
        origin: Origin::Crowdsec,
        scenario: d.scenario.clone().unwrap_or_else(|| origin.to_string()),
        reason: match d.id {
            Some(id) => format!("CrowdSec decision #{id} ({origin})"),
            None => format!("CrowdSec ({origin})"),
        },
        created: now,
        until: now.saturating_add(dur),
        ports: Default::default(),
    })
}

/// What the follower believes the Local API holds: per value, its decision ids and ends.
/// A value is removed locally only when its last decision there ends, since CrowdSec may
/// hold several decisions on one value and report the end of each.
#[derive(Debug, Default)]
pub struct Mirror {
    values: BTreeMap<IpNet, HashMap<i64, Micros>>,
}

impl Mirror {
    /// A startup answer: the whole state.
    pub fn startup(&mut self, ans: &StreamAnswer, now: Micros) -> (Vec<Decision>, usize) {
        self.values.clear();
        let (add, skipped) = self.add(ans.new.as_deref().unwrap_or_default(), now);
        (add, skipped)
    }

    fn add(&mut self, new: &[LapiDecision], now: Micros) -> (Vec<Decision>, usize) {
        let mut out = Vec::new();
        let mut skipped = 0;
        for (i, d) in new.iter().enumerate() {
            match convert(d, now) {
                Ok(c) => {
                    // Without an id, the position stands in (deletions then match by value).
                    let id = d.id.unwrap_or(-(i as i64) - 1);
                    self.values.entry(c.value).or_default().insert(id, c.until);
                    out.push(c);
                }
                Err(_) => skipped += 1,
            }
        }
        (out, skipped)
    }

    /// A delta: the decisions to add and the values whose last decision ended.
    pub fn delta(&mut self, ans: &StreamAnswer, now: Micros) -> (Vec<Decision>, Vec<IpNet>, usize) {
        let mut touched = Vec::new();
        for d in ans.deleted.as_deref().unwrap_or_default() {
            let Ok(v) = crowdwall_base::parse_net(&d.value) else {
                continue;
            };
            if let Some(ids) = self.values.get_mut(&v) {
                match d.id {
                    Some(id) if ids.contains_key(&id) => {
                        ids.remove(&id);
                    }
                    _ => ids.clear(),
                }
                touched.push(v);
            }
        }
        let (add, skipped) = self.add(ans.new.as_deref().unwrap_or_default(), now);
        let mut remove = Vec::new();
        for v in touched {
            if let Some(ids) = self.values.get_mut(&v) {
                ids.retain(|_, until| *until > now);
                if ids.is_empty() {
                    self.values.remove(&v);
                    remove.push(v);
                }
            }
        }
        remove.sort();
        remove.dedup();
        // Forget what ended by itself, so the mirror does not grow.
        self.values.retain(|_, ids| {
            ids.retain(|_, until| *until > now);
            !ids.is_empty()
        });
        (add, remove, skipped)
    }

    pub fn len(&self) -> usize {
        self.values.len()
    }

    pub fn is_empty(&self) -> bool {
        self.values.is_empty()
    }
}

pub struct Follower {
    url: String,
    key: String,
    query: Vec<(&'static str, String)>,
    interval: Duration,
    max_bytes: u64,
    http: reqwest::Client,
}

impl Follower {
    pub fn new(cfg: &CrowdsecSection) -> Result<Follower, IngestError> {
        let key = match (&cfg.api_key, &cfg.api_key_file) {
            (Some(k), _) => k.trim().to_string(),
            (None, Some(f)) => std::fs::read_to_string(f)
                .map_err(|e| IngestError::Fetch {
                    what: format!("crowdsec.api_key_file {}", f.display()),
                    message: e.to_string(),
                })?
                .lines()
                .next()
                .unwrap_or("")
                .trim()
                .to_string(),
            (None, None) => String::new(),
        };
        let mut query = vec![("scopes", cfg.scopes.join(","))];
        for (k, v) in [
            ("origins", &cfg.origins),
            ("scenarios_containing", &cfg.scenarios_containing),
            ("scenarios_not_containing", &cfg.scenarios_not_containing),
        ] {
            if !v.is_empty() {
                query.push((k, v.join(",")));
            }
        }
        Ok(Follower {
            url: format!("{}/v1/decisions/stream", cfg.url.trim_end_matches('/')),
            key,
            query,
            interval: cfg.interval.0,
            max_bytes: cfg.max_bytes,
            http: client()?,
        })
    }

    async fn pull(&self, startup: bool) -> Result<StreamAnswer, IngestError> {
        let err = |m: String| IngestError::Fetch {
            what: format!("CrowdSec Local API {}", self.url),
            message: m,
        };
        let resp = self
            .http
            .get(&self.url)
            .header("X-Api-Key", &self.key)
            .query(&[("startup", if startup { "true" } else { "false" })])
            .query(&self.query)
            .send()
            .await
            .map_err(|e| err(e.to_string()))?;
        let status = resp.status();
        if status == reqwest::StatusCode::FORBIDDEN {
            return Err(err(
                "403: the key is refused (`cscli bouncers add` gives one)".into(),
            ));
        }
        if !status.is_success() {
            return Err(err(format!("HTTP {status}")));
        }
        let body = body_capped(resp, self.max_bytes)
            .await
            .map_err(|e| match e {
                BodyError::TooLarge(n) => err(format!(
                    "answer of {n} bytes or more is over crowdsec.max_bytes ({})",
                    self.max_bytes
                )),
                BodyError::Http(e) => err(e.to_string()),
            })?;
        serde_json::from_slice(&body).map_err(|e| err(format!("answer does not parse: {e}")))
    }

    /// Pulls forever. After any failure the next pull is a startup: the Local API may have
    /// moved its position for us while we did not apply the answer.
    pub async fn run(self, tx: mpsc::Sender<IngestMsg>, board: std::sync::Arc<super::Board>) {
        let mut mirror = Mirror::default();
        let mut startup = true;
        let mut failing = false;
        loop {
            let r = self.cycle(&tx, &mut mirror, startup).await;
            match r {
                Ok(()) => {
                    board.set(
                        "crowdsec",
                        Ok(format!(
                            "{} value(s) followed from {}",
                            mirror.len(),
                            self.url
                        )),
                    );
                    if failing {
                        log::info!("CrowdSec Local API {}: reachable again", self.url);
                    }
                    failing = false;
                    startup = false;
                }
                Err(IngestError::Closed) => return,
                Err(e) => {
                    board.set("crowdsec", Err(e.to_string()));
                    // One line per outage, not one per pull.
                    if !failing {
                        log::warn!(
                            "{e}; decisions from CrowdSec stay as they are, retrying every {}s",
                            self.interval.as_secs()
                        );
                    }
                    failing = true;
                    startup = true;
                }
            }
            tokio::time::sleep(self.interval).await;
        }
    }

    async fn cycle(
        &self,
        tx: &mpsc::Sender<IngestMsg>,
        mirror: &mut Mirror,
        startup: bool,
    ) -> Result<(), IngestError> {
        let ans = self.pull(startup).await?;
        let now = time::now();
        let (update, skipped) = if startup {
            let (decisions, skipped) = mirror.startup(&ans, now);
            (
                ExternalUpdate::Replace {
                    origin: Origin::Crowdsec,
                    list: None,
                    decisions,
                },
                skipped,
            )
        } else {
            let (add, remove, skipped) = mirror.delta(&ans, now);
            if add.is_empty() && remove.is_empty() {
                return Ok(());
            }
            (
                ExternalUpdate::Delta {
                    origin: Origin::Crowdsec,
                    add,
                    remove,
                },
                skipped,
            )
        };
        let r = ask(tx, |reply| IngestMsg::External { update, reply }).await?;
        log::info!(
            "CrowdSec{}: {} added, {} removed, {} allowlisted, {} skipped (not a ban on Ip/Range); {} value(s) followed",
            if startup { " startup" } else { "" },
            r.inserted,
            r.deleted,
            r.refused_allowlisted,
            skipped,
            mirror.len()
        );
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::time::SECOND;

    fn ld(id: i64, v: &str, dur: &str) -> LapiDecision {
        LapiDecision {
            id: Some(id),
            duration: Some(dur.into()),
            origin: Some("cscli".into()),
            scenario: Some("manual 'ban' from 'x'".into()),
            scope: if v.contains('/') { "Range" } else { "Ip" }.into(),
            kind: "ban".into(),
            value: v.into(),
        }
    }

    #[test]
    fn conversion_keeps_bans_on_ip_and_range_only() {
        let now = 1_000 * SECOND;
        let d = convert(&ld(7, "192.0.2.1", "1h"), now).unwrap();
        assert_eq!((d.origin, d.until), (Origin::Crowdsec, now + 3600 * SECOND));
        assert!(convert(&ld(7, "198.51.100.0/24", "1h"), now).is_ok());
        let mut c = ld(7, "192.0.2.1", "1h");
        c.kind = "captcha".into();
        assert_eq!(convert(&c, now), Err(Skip::NotBan));
        let mut c = ld(7, "FR", "1h");
        c.scope = "Country".into();
        assert_eq!(convert(&c, now), Err(Skip::Scope));
        assert_eq!(convert(&ld(7, "x;rm -rf", "1h"), now), Err(Skip::Value));
        assert_eq!(convert(&ld(7, "192.0.2.1", "-5s"), now), Err(Skip::Expired));
    }

    #[test]
    fn a_value_goes_only_when_its_last_decision_ends() {
        let now = 1_000 * SECOND;
        let mut m = Mirror::default();
        let start = StreamAnswer {
            new: Some(vec![
                ld(1, "192.0.2.1", "1h"),
                ld(2, "192.0.2.1", "4h"),
                ld(3, "192.0.2.9", "1h"),
            ]),
            deleted: None,
        };
        assert_eq!(m.startup(&start, now).0.len(), 3);
        // decision 1 ends: 192.0.2.1 is still banned by decision 2
        let d = StreamAnswer {
            new: Some(vec![]),
            deleted: Some(vec![ld(1, "192.0.2.1", "-1s")]),
        };
        let (add, remove, _) = m.delta(&d, now);
        assert!(add.is_empty() && remove.is_empty());
        let d = StreamAnswer {
            new: None,
            deleted: Some(vec![ld(2, "192.0.2.1", "0s"), ld(3, "192.0.2.9", "0s")]),
        };
        let (_, remove, _) = m.delta(&d, now);
        assert_eq!(remove.len(), 2);
        assert!(m.is_empty());
    }
}
