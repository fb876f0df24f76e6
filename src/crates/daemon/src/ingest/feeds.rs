//! Blocklist feeds: plain-text lists (one address or CIDR per line, `#` and `;` comments:
//! Spamhaus DROP, FireHOL netsets, CrowdSec blocklist links) from http(s) or local files,
//! fetched on a schedule with ETag / If-Modified-Since and a size cap. A version is checked
//! as a whole before anything changes: one that would ban an allowlisted or absurd range is
//! refused with a log line and the previous version stays. Each list is its own origin
//! (`lists`, scenario = the list's name) and an update replaces its entries in one
//! transaction.

use crowdwall_base::{Section, SectionError};
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::{Duration, SystemTime};

use ipnet::IpNet;
use serde::Deserialize;
use tokio::sync::mpsc;

use super::http::{body_capped, client, BodyError};
use super::{ask, IngestError, IngestMsg};
use crate::time::{self, from_duration, Micros};
use crowdwall_base::Dur;

/// `[feeds]`: limits shared by every list, and the lists.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct FeedsSection {
    /// Shortest IPv4 / IPv6 prefix a list may ban; a shorter one refuses the whole version.
    pub min_prefix_v4: u8,
    pub min_prefix_v6: u8,
    /// Largest list read, in bytes; a larger one is refused.
    pub max_bytes: u64,
    /// Most entries in one list.
    pub max_entries: usize,
    pub lists: BTreeMap<String, FeedList>,
}

impl Default for FeedsSection {
    fn default() -> Self {
        FeedsSection {
            min_prefix_v4: 8,
            min_prefix_v6: 19,
            max_bytes: 16 << 20,
            max_entries: 500_000,
            lists: BTreeMap::new(),
        }
    }
}

/// `[feeds.lists.NAME]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct FeedList {
    pub enabled: bool,
    /// http(s) URL of the list ...
    pub url: Option<String>,
    /// ... or a local file.
    pub path: Option<PathBuf>,
    /// How often it is fetched (a file: how often its modification time is checked).
    pub interval: Dur,
    /// How long its bans last without a successful refresh (default: 4 intervals, at least
    /// a day), so a list whose server vanished stops banning eventually.
    pub keep: Option<Dur>,
}

impl Default for FeedList {
    fn default() -> Self {
        FeedList {
            enabled: true,
            url: None,
            path: None,
            interval: Dur(Duration::from_secs(3600)),
            keep: None,
        }
    }
}

impl FeedList {
    pub fn keep(&self) -> Duration {
        self.keep
            .map(|k| k.0)
            .unwrap_or_else(|| (self.interval.0 * 4).max(Duration::from_secs(86_400)))
    }
}

impl Section for FeedsSection {
    const NAME: &'static str = "feeds";

    fn check(&self) -> Result<(), SectionError> {
        if self.min_prefix_v4 > 32 || self.min_prefix_v6 > 128 {
            return Err(SectionError::new(
                "min_prefix_v4",
                "prefixes are at most 32 (IPv4) and 128 (IPv6)",
            ));
        }
        for (name, l) in &self.lists {
            let key = |k: &str| format!("lists.{name}.{k}");
            if name.is_empty()
                || name.len() > 64
                || !name
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
            {
                return Err(SectionError::new(
                    format!("lists.{name}"),
                    "a list name is 1-64 letters, digits, '-', '_', '.'",
                ));
            }
            match (&l.url, &l.path) {
                (Some(u), None) => {
                    if !(u.starts_with("http://") || u.starts_with("https://")) {
                        return Err(SectionError::new(key("url"), format!("'{u}' must start with http:// or https:// (a local file is `path`)")));
                    }
                }
                (None, Some(p)) => {
                    if !p.is_absolute() {
                        return Err(SectionError::new(
                            key("path"),
                            format!("'{}' must be an absolute path", p.display()),
                        ));
                    }
                }
                _ => {
                    return Err(SectionError::new(
                        key("url"),
                        "set exactly one of url and path",
                    ))
                }
            }
            if l.interval.0 < Duration::from_secs(1) {
                return Err(SectionError::new(key("interval"), "must be at least 1s"));
            }
            if l.keep() < l.interval.0 {
                return Err(SectionError::new(
                    key("keep"),
                    "must be at least the interval",
                ));
            }
        }
        Ok(())
    }
}

/// What a version of a list holds.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Parsed {
    pub entries: Vec<IpNet>,
    pub malformed: usize,
    /// The first malformed line, for the log.
    pub first_malformed: Option<(usize, String)>,
}

/// Reads a list: the first word of each line, after removing `#` and `;` comments. Lines that
/// are not an address or a CIDR without host bits are counted and skipped. Pure.
pub fn parse_list(text: &str) -> Parsed {
    let mut p = Parsed::default();
    for (i, line) in text.lines().enumerate() {
        let line = line.split(['#', ';']).next().unwrap_or("").trim();
        let Some(word) = line.split_whitespace().next() else {
            continue;
        };
        match crowdwall_base::parse_net(word) {
            Ok(n) => p.entries.push(n),
            Err(_) => {
                p.malformed += 1;
                if p.first_malformed.is_none() {
                    p.first_malformed = Some((i + 1, word.chars().take(80).collect()));
                }
            }
        }
    }
    p.entries.sort();
    p.entries.dedup();
    p
}

/// Checks a version as a whole (the allowlist check follows in the Core). Pure.
pub(crate) fn check_list(p: &Parsed, cfg: &FeedsSection) -> Result<(), String> {
    if p.entries.is_empty() {
        return Err(if p.malformed > 0 {
            format!(
                "no address in it ({} malformed line(s), the first at line {}: '{}'); not a list?",
                p.malformed,
                p.first_malformed.as_ref().map(|m| m.0).unwrap_or(0),
                p.first_malformed
                    .as_ref()
                    .map(|m| m.1.as_str())
                    .unwrap_or("")
            )
        } else {
            "it is empty".into()
        });
    }
    if p.malformed > p.entries.len() {
        return Err(format!(
            "{} malformed line(s) against {} entries (the first at line {}: '{}'); not a list?",
            p.malformed,
            p.entries.len(),
            p.first_malformed.as_ref().map(|m| m.0).unwrap_or(0),
            p.first_malformed
                .as_ref()
                .map(|m| m.1.as_str())
                .unwrap_or("")
        ));
    }
    if p.entries.len() > cfg.max_entries {
        return Err(format!(
            "{} entries is over feeds.max_entries ({})",
            p.entries.len(),
            cfg.max_entries
        ));
    }
    for n in &p.entries {
        let min = match n {
            IpNet::V4(_) => cfg.min_prefix_v4,
            IpNet::V6(_) => cfg.min_prefix_v6,
        };
        if n.prefix_len() < min {
            return Err(format!(
                "it would ban {n}, wider than the shortest prefix allowed (/{min}: feeds.min_prefix_v{})",
                if matches!(n, IpNet::V4(_)) { 4 } else { 6 }
            ));
        }
    }
    Ok(())
}

/// What one fetch found.
enum Fetched {
    Unchanged,
    New {
        body: Vec<u8>,
        etag: Option<String>,
        modified: Option<String>,
        mtime: Option<SystemTime>,
    },
}

/// One list and what is known of its last accepted version.
pub struct Feed {
    name: String,
    url: Option<String>,
    path: Option<PathBuf>,
    interval: Duration,
    keep: Micros,
    limits: FeedsSection,
    http: Option<reqwest::Client>,
    etag: Option<String>,
    modified: Option<String>,
    mtime: Option<SystemTime>,
    /// The accepted version and when it was last applied (refreshed on 304 before it lapses).
    accepted: Option<(Vec<IpNet>, Micros)>,
}

impl Feed {
    pub fn new(name: &str, l: &FeedList, limits: &FeedsSection) -> Result<Feed, IngestError> {
        Ok(Feed {
            name: name.to_string(),
            url: l.url.clone(),
            path: l.path.clone(),
            interval: l.interval.0,
            keep: from_duration(l.keep()),
            limits: FeedsSection {
                lists: BTreeMap::new(),
                ..limits.clone()
            },
            http: if l.url.is_some() {
                Some(client()?)
            } else {
                None
            },
            etag: None,
            modified: None,
            mtime: None,
            accepted: None,
        })
    }

    fn source(&self) -> String {
        match (&self.url, &self.path) {
            (Some(u), _) => u.clone(),
            (_, Some(p)) => p.display().to_string(),
            _ => String::new(),
        }
    }

    async fn fetch(&self) -> Result<Fetched, String> {
        let max = self.limits.max_bytes;
        let too_large = |n: u64| {
            format!("new version refused: {n} bytes or more is over feeds.max_bytes ({max})")
        };
        // A local file is read in place: small, and the loop's thread is not held long.
        if let Some(p) = &self.path {
            let meta = std::fs::metadata(p).map_err(|e| e.to_string())?;
            let mtime = meta.modified().ok();
            if mtime.is_some() && mtime == self.mtime && self.accepted.is_some() {
                return Ok(Fetched::Unchanged);
            }
            if meta.len() > max {
                return Err(too_large(meta.len()));
            }
            let body = std::fs::read(p).map_err(|e| e.to_string())?;
            if body.len() as u64 > max {
                return Err(too_large(body.len() as u64));
            }
            return Ok(Fetched::New {
                body,
                etag: None,
                modified: None,
                mtime,
            });
        }
        let (Some(http), Some(url)) = (&self.http, &self.url) else {
            return Err("no url or path".into());
        };
        let mut req = http.get(url);
        // Validators only once a version was accepted: a refused one is fetched whole again.
        if self.accepted.is_some() {
            if let Some(e) = &self.etag {
                req = req.header("If-None-Match", e);
            }
            if let Some(m) = &self.modified {
                req = req.header("If-Modified-Since", m);
            }
        }
        let resp = req.send().await.map_err(|e| e.to_string())?;
        let status = resp.status();
        if status == reqwest::StatusCode::NOT_MODIFIED {
            return Ok(Fetched::Unchanged);
        }
        if !status.is_success() {
            return Err(format!("HTTP {status}"));
        }
        let header = |h: &str| {
            resp.headers()
                .get(h)
                .and_then(|v| v.to_str().ok())
                .map(str::to_string)
        };
        let (etag, modified) = (header("etag"), header("last-modified"));
        let body = body_capped(resp, max).await.map_err(|e| match e {
            BodyError::TooLarge(n) => too_large(n),
            BodyError::Http(e) => e.to_string(),
        })?;
        Ok(Fetched::New {
            body,
            etag,
            modified,
            mtime: None,
        })
    }

    /// One round: fetch, check, apply. Returns what happened, for the log and the tests.
    pub async fn round(&mut self, tx: &mpsc::Sender<IngestMsg>) -> Result<String, IngestError> {
        let src = self.source();
        let name = self.name.clone();
        let refused = |why: String| {
            IngestError::Refused(format!(
                "feed {name} ({src}): new version refused: {why}; the previous version stays"
            ))
        };
        let fetched = self.fetch().await.map_err(|m| IngestError::Fetch {
            what: format!("feed {} ({src})", self.name),
            message: format!("{m}; the previous version stays"),
        })?;
        let now = time::now();
        match fetched {
            Fetched::Unchanged => {
                let Some((entries, at)) = &self.accepted else {
                    return Ok("unchanged".into());
                };
                // Re-apply with a fresh end before the bans would lapse.
                if now - at < self.keep / 4 {
                    return Ok("unchanged".into());
                }
                let entries = entries.clone();
                self.apply(tx, entries, now).await.map_err(|e| match e {
                    IngestError::Refused(m) => refused(m),
                    e => e,
                })?;
                Ok("unchanged, refreshed".into())
            }
            Fetched::New {
                body,
                etag,
                modified,
                mtime,
            } => {
                let parsed = parse_list(&String::from_utf8_lossy(&body));
                check_list(&parsed, &self.limits).map_err(refused)?;
                let n = parsed.entries.len();
                let r = self
                    .apply(tx, parsed.entries, now)
                    .await
                    .map_err(|e| match e {
                        IngestError::Refused(m) => refused(m),
                        e => e,
                    })?;
                self.etag = etag;
                self.modified = modified;
                self.mtime = mtime;
                Ok(format!(
                    "{n} entries ({} malformed line(s) skipped): {} in, {} out",
                    parsed.malformed, r.inserted, r.deleted
                ))
            }
        }
    }

    async fn apply(
        &mut self,
        tx: &mpsc::Sender<IngestMsg>,
        entries: Vec<IpNet>,
        now: Micros,
    ) -> Result<crate::external::ExternalReport, IngestError> {
        // The end is rounded up to a quarter of `keep`: versions applied within one quarter
        // share it, so entries that stay in the list keep their kernel element untouched
        // instead of being re-timed by every update.
        let quarter = (self.keep / 4).max(1);
        let until = ((now + self.keep) / quarter + 1) * quarter;
        let name = self.name.clone();
        let sent = entries.clone();
        let r = ask(tx, |reply| IngestMsg::Feed {
            name,
            entries: sent,
            until,
            reply,
        })
        .await?;
        self.accepted = Some((entries, now));
        Ok(r)
    }

    pub async fn run(mut self, tx: mpsc::Sender<IngestMsg>, board: std::sync::Arc<super::Board>) {
        let key = format!("feed {}", self.name);
        loop {
            match self.round(&tx).await {
                Ok(what) if what.starts_with("unchanged") => {
                    log::debug!("feed {}: {what}", self.name);
                    board.set(&key, Ok(what));
                }
                Ok(what) => {
                    log::info!("feed {}: {what}", self.name);
                    board.set(&key, Ok(what));
                }
                Err(IngestError::Closed) => return,
                Err(e) => {
                    log::warn!("{e}");
                    board.set(&key, Err(e.to_string()));
                }
            }
            tokio::time::sleep(self.interval).await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crowdwall_base::Section;

    #[test]
    fn parses_drop_firehol_and_plain_lists() {
        let text = "; Spamhaus DROP List 2024/01/01\n\
                    1.10.16.0/20 ; SBL256894\n\
                    # FireHOL\n\
                    \n\
                    192.0.2.7\n\
                    2001:db8::/32 # v6\n\
                    192.0.2.7\n\
                    garbage here\n\
                    10.0.0.1/8\n";
        let p = parse_list(text);
        let v: Vec<String> = p.entries.iter().map(|n| n.to_string()).collect();
        assert_eq!(v, ["1.10.16.0/20", "192.0.2.7/32", "2001:db8::/32"]);
        assert_eq!(p.malformed, 2, "garbage, and host bits set");
        assert_eq!(p.first_malformed, Some((8, "garbage".into())));
    }

    #[test]
    fn refuses_absurd_empty_and_garbage_versions() {
        let cfg = FeedsSection::default();
        assert!(check_list(&parse_list("192.0.2.0/24\n"), &cfg).is_ok());
        let e = check_list(&parse_list("192.0.2.0/24\n0.0.0.0/0\n"), &cfg).unwrap_err();
        assert!(e.contains("0.0.0.0/0") && e.contains("/8"), "{e}");
        let e = check_list(&parse_list("::/0\n"), &cfg).unwrap_err();
        assert!(e.contains("::/0"), "{e}");
        let e = check_list(&parse_list("# nothing\n"), &cfg).unwrap_err();
        assert!(e.contains("empty"), "{e}");
        let e = check_list(&parse_list("<html>\n<body>oops</body>\n"), &cfg).unwrap_err();
        assert!(e.contains("not a list"), "{e}");
        let small = FeedsSection {
            max_entries: 1,
            ..FeedsSection::default()
        };
        assert!(check_list(&parse_list("192.0.2.1\n192.0.2.2\n"), &small).is_err());
    }

    #[test]
    fn config_checks() {
        let mut f = FeedsSection::default();
        f.lists.insert(
            "drop".into(),
            FeedList {
                url: Some("https://example.invalid/drop.txt".into()),
                ..FeedList::default()
            },
        );
        assert!(f.check().is_ok());
        f.lists.insert("bad".into(), FeedList::default());
        assert!(f.check().unwrap_err().message.contains("exactly one"));
        f.lists.insert(
            "bad".into(),
            FeedList {
                path: Some("relative.txt".into()),
                ..FeedList::default()
            },
        );
        assert!(f.check().unwrap_err().message.contains("absolute"));
    }
}
