//! What crosses the wire between crowdwall agents and the community hub, and CrowdSec's
//! duration format, which both the bouncer API and the hub speak.
//!
//! What leaves a host about an attack is exactly a [`Signal`]: no log line, user name or path.

use serde::{Deserialize, Serialize};

use crowdwall_base::{Micros, SECOND};

/// One report of an attacking address, as it travels from an agent to the hub. This is all
/// an agent ever sends about an attack.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Signal {
    /// Unique per signal, chosen by the agent: a re-sent signal is recognised and counted
    /// once (pushes are idempotent).
    pub uid: String,
    /// The attacking address (a single address, never a range).
    pub ip: String,
    /// The scenario that fired (`ssh-bruteforce`...).
    pub scenario: String,
    /// First and last event of the attack, Unix seconds.
    pub first_seen: i64,
    pub last_seen: i64,
    /// How many events the scenario counted.
    pub events: u64,
}

/// `POST /v1/signals` body.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PushRequest {
    pub signals: Vec<Signal>,
}

/// Why the hub refused one signal of a batch.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Refusal {
    pub index: usize,
    pub reason: String,
}

/// `POST /v1/signals` answer: the batch is processed in one transaction.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PushResponse {
    /// New signals stored.
    pub accepted: usize,
    /// Signals already delivered before (same agent and uid).
    pub duplicates: usize,
    /// Signals refused (bad address, never-listed, bad times, over the hourly cap).
    pub refused: Vec<Refusal>,
}

/// `POST /v1/agents` body.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EnrollRequest {
    #[serde(default)]
    pub name: String,
    /// The hub's enrolment token, when it requires one.
    #[serde(default)]
    pub token: Option<String>,
}

/// `POST /v1/agents` answer. The secret is shown once; the hub keeps only its SHA-256.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct EnrollResponse {
    pub agent_id: String,
    pub secret: String,
}

/// One blocklist entry as served.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BlockEntry {
    /// Address (bare) as listed.
    pub value: String,
    pub scenario: String,
    /// Remaining seconds: relative, so the agent's clock need not agree with the hub's.
    pub duration_s: i64,
    /// The same in CrowdSec's always-h-m-s form (`3h59m57s`).
    pub duration: String,
    pub score: u8,
}

/// `GET /v1/blocklist[?since=V]` answer.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct BlocklistResponse {
    /// Pass back as `since` for the next delta.
    pub version: i64,
    /// True when this is the whole list (no `since`, or `since` too old or unknown): the
    /// client replaces what it holds.
    pub snapshot: bool,
    pub new: Vec<BlockEntry>,
    /// Values no longer listed (expired or delisted). Empty in a snapshot.
    pub deleted: Vec<String>,
}

/// Scenario names on the wire: short, and safe to embed in JSON paths and HTML.
pub fn valid_scenario(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 64
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_' || b == b'/' || b == b'.')
}

/// CrowdSec's duration format, as bouncers and the Local API use it.
pub mod duration {
    use super::{Micros, SECOND};

    /// Durations as `XhYmZs` with all three parts: the nginx bouncer reads `(\d+h)?(\d+m)?(\d+)`
    /// (so "4h" would be 4 seconds) and a Node client rejects a bare "45s". Rounded up, so a
    /// decision still in force never reads as 0 (a permanent element for some bouncers).
    pub fn crowdsec_duration(remaining: Micros) -> String {
        let neg = remaining < 0;
        let abs = remaining.unsigned_abs();
        let s = abs.div_ceil(SECOND as u64);
        format!(
            "{}{}h{}m{}s",
            if neg { "-" } else { "" },
            s / 3600,
            (s % 3600) / 60,
            s % 60
        )
    }

    /// Parses Go's duration syntax (`3h59m57.5s`, `-1m2s`, `150ms`): what the Local API sends.
    pub fn parse_go_duration(s: &str) -> Option<Micros> {
        let (neg, mut rest) = match s.strip_prefix('-') {
            Some(r) => (true, r),
            None => (false, s.strip_prefix('+').unwrap_or(s)),
        };
        if rest == "0" {
            return Some(0);
        }
        if rest.is_empty() {
            return None;
        }
        let mut total: f64 = 0.0;
        while !rest.is_empty() {
            let n = rest
                .find(|c: char| !(c.is_ascii_digit() || c == '.'))
                .unwrap_or(rest.len());
            let num: f64 = rest[..n].parse().ok()?;
            rest = &rest[n..];
            let u = rest
                .find(|c: char| c.is_ascii_digit() || c == '.')
                .unwrap_or(rest.len());
            let unit = match &rest[..u] {
                "h" => 3600e6,
                "m" => 60e6,
                "s" => 1e6,
                "ms" => 1e3,
                "us" | "µs" | "μs" => 1.0,
                "ns" => 1e-3,
                _ => return None,
            };
            rest = &rest[u..];
            total += num * unit;
        }
        let v = total.min(i64::MAX as f64) as Micros;
        Some(if neg { -v } else { v })
    }

    #[cfg(test)]
    mod tests {
        use super::*;

        const H: Micros = 3600 * SECOND;

        #[test]
        fn durations_always_have_hours_minutes_seconds() {
            assert_eq!(crowdsec_duration(4 * H), "4h0m0s");
            assert_eq!(crowdsec_duration(45 * SECOND), "0h0m45s");
            assert_eq!(crowdsec_duration(1), "0h0m1s", "in force never reads as 0");
            assert_eq!(crowdsec_duration(-(3 * SECOND)), "-0h0m3s");
            assert_eq!(crowdsec_duration(26 * H + 61 * SECOND), "26h1m1s");
        }

        #[test]
        fn go_durations() {
            assert_eq!(
                parse_go_duration("3h59m57s"),
                Some((3 * 3600 + 59 * 60 + 57) * SECOND)
            );
            assert_eq!(parse_go_duration("1m0.5s"), Some(60_500_000));
            assert_eq!(parse_go_duration("-2m"), Some(-120 * SECOND));
            assert_eq!(parse_go_duration("150ms"), Some(150_000));
            assert_eq!(parse_go_duration("0"), Some(0));
            assert_eq!(parse_go_duration("4x"), None);
            assert_eq!(parse_go_duration(""), None);
            assert_eq!(parse_go_duration("h"), None);
        }

        #[test]
        fn formatted_durations_parse_back() {
            for m in [SECOND, 45 * SECOND, 4 * H, 26 * H + 61 * SECOND] {
                assert_eq!(parse_go_duration(&crowdsec_duration(m)), Some(m));
            }
        }
    }
}
