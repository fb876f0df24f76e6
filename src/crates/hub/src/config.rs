//! The hub's configuration file (`/etc/crowdwall-hub/hub.toml`): one `[hub]` table, unknown
//! keys refused, errors naming file, line and key. When the default file is missing the
//! embedded default (`config/hub.toml`) is used.

use std::path::{Path, PathBuf};
use std::time::Duration;

use crowdwall_base::section::{parse_toml, read_config};
use crowdwall_base::{Dur, Section, SectionError};

use crate::consensus::ConsensusSection;

/// The commented default file.
pub const EMBEDDED: &str = include_str!("../../../../config/hub.toml");
pub const DEFAULT_PATH: &str = "/etc/crowdwall-hub/hub.toml";

pub use crowdwall_base::section::ConfigError;

#[derive(Debug, Default, serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct File {
    #[serde(default)]
    hub: HubSection,
}

/// Reads `path`; a missing file at the default path means the embedded default.
pub fn load(path: &Path) -> Result<HubSection, ConfigError> {
    let (text, origin) = read_config(path, DEFAULT_PATH, EMBEDDED)?;
    parse(&text, &origin)
}

pub fn parse(text: &str, path: &Path) -> Result<HubSection, ConfigError> {
    let f: File = parse_toml(text, path)?;
    f.hub
        .check()
        .map_err(|e| ConfigError::from_section(path, text, e.under(HubSection::NAME)))?;
    Ok(f.hub)
}

/// `[hub]`: the hub's whole configuration.
#[derive(Debug, Clone, serde::Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct HubSection {
    /// Address and port to listen on (plain HTTP: put a TLS proxy in front on the internet).
    pub listen: String,
    /// `sqlite:/path/hub.db` (default) or `postgres://user:password@host/db`.
    pub database: String,
    /// When set, enrolment needs this token; only its SHA-256 (hex) is written here.
    pub enroll_token_sha256: Option<String>,
    /// Most live agents enrolled from one reporter network (the /24 or /48 of the enrolling
    /// address, as consensus counts networks); further enrolments from it are refused
    /// (403). 0 turns the cap off.
    pub max_agents_per_network: usize,
    /// An agent is live for this long after its enrolment or its latest push; a network's
    /// idle agents stop counting against its cap after it. At most `retention` (pushes are
    /// read from the stored signals).
    pub agent_live_window: Dur,
    /// API keys (SHA-256, hex) exempt from the per-client rate limit.
    pub api_keys_sha256: Vec<String>,
    /// Reverse proxies (addresses or CIDRs) whose `X-Forwarded-For` is believed: behind one,
    /// every agent would otherwise seem to come from the proxy's network and nothing would
    /// ever reach consensus. The rightmost address the proxy appended is the client.
    pub trusted_proxies: Vec<crowdwall_base::Net>,
    /// Requests per second per client address (v4) or /64 (v6) for look-ups, the page and
    /// enrolment; 0 turns the limit off. Per instance.
    pub rate_limit: u32,
    pub rate_burst: u32,
    /// Files of ranges never listed (CDNs...): one address or CIDR per line, `#` comments.
    pub never_list_files: Vec<PathBuf>,
    /// Largest request body accepted (bytes); larger ones get 413.
    pub max_body: usize,
    /// Most signals in one push.
    pub max_batch: usize,
    /// Signals whose attack ended longer ago than this are refused; so are those ending
    /// more than 5 minutes in the future.
    pub max_signal_age: Dur,
    /// Signals are kept this long (reputation history), then forgotten.
    pub retention: Dur,
    /// How long this instance reuses what the store said of an address for look-ups; "0s"
    /// asks the store every time. Signals pushed to this instance take effect at once;
    /// those pushed to another instance over the same PostgreSQL show within this time.
    pub lookup_cache: Dur,
    pub consensus: ConsensusSection,
}

impl Default for HubSection {
    fn default() -> Self {
        HubSection {
            listen: "0.0.0.0:8080".into(),
            database: "sqlite:/var/lib/crowdwall-hub/hub.db".into(),
            enroll_token_sha256: None,
            max_agents_per_network: 10,
            agent_live_window: Dur(Duration::from_secs(7 * 86400)),
            api_keys_sha256: Vec::new(),
            trusted_proxies: Vec::new(),
            rate_limit: 20,
            rate_burst: 60,
            never_list_files: Vec::new(),
            max_body: 1 << 20,
            max_batch: 1000,
            max_signal_age: Dur(Duration::from_secs(7 * 86400)),
            retention: Dur(Duration::from_secs(30 * 86400)),
            lookup_cache: Dur(Duration::from_secs(5)),
            consensus: ConsensusSection::default(),
        }
    }
}

impl Section for HubSection {
    const NAME: &'static str = "hub";
    fn check(&self) -> Result<(), SectionError> {
        self.validate()
    }
}

impl HubSection {
    fn validate(&self) -> Result<(), SectionError> {
        self.consensus
            .validate()
            .map_err(|m| SectionError::new("consensus", m))?;
        if self.max_batch == 0 || self.max_body < 1024 {
            return Err(SectionError::new(
                "",
                "max_batch must be at least 1 and max_body at least 1024",
            ));
        }
        if self.max_agents_per_network > 0
            && (self.agent_live_window.0.is_zero() || self.agent_live_window.0 > self.retention.0)
        {
            return Err(SectionError::new(
                "agent_live_window",
                format!(
                    "must be more than 0s and at most retention ({}): an agent's pushes are \
                     read from the signals kept, so a longer window would count only part of them",
                    crowdwall_base::time::format_duration(self.retention.0)
                ),
            ));
        }
        for h in self
            .api_keys_sha256
            .iter()
            .chain(self.enroll_token_sha256.iter())
        {
            if !crowdwall_base::hash::is_sha256_hex(h) {
                return Err(SectionError::new(
                    "",
                    format!("'{h}' is not a SHA-256 in hex (64 hex digits): store the hash, never the key"),
                ));
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn embedded_default_parses() {
        let h = parse(EMBEDDED, Path::new("hub.toml")).unwrap();
        assert_eq!(h.listen, "0.0.0.0:8080");
        assert!(h.database.starts_with("sqlite:"));
    }

    #[test]
    fn errors_name_line_and_key() {
        let e = parse("[hub]\nlisten = \"x\"\nbogus = 1\n", Path::new("h.toml")).unwrap_err();
        assert!(e.to_string().starts_with("h.toml:3:"), "{e}");
        let e = parse(
            "[hub]\napi_keys_sha256 = [\"letmein\"]\n",
            Path::new("h.toml"),
        )
        .unwrap_err();
        assert!(
            e.to_string().starts_with("h.toml:") && e.to_string().contains(": hub: "),
            "{e}"
        );
        assert!(e.to_string().contains("never the key"), "{e}");
    }

    #[test]
    fn the_agent_cap_window_is_checked() {
        let h = parse(EMBEDDED, Path::new("hub.toml")).unwrap();
        assert_eq!(h.max_agents_per_network, 10);
        assert_eq!(h.agent_live_window.0, Duration::from_secs(7 * 86400));
        let e = parse(
            "[hub]\nretention = \"1d\"\nagent_live_window = \"2d\"\n",
            Path::new("h.toml"),
        )
        .unwrap_err()
        .to_string();
        assert!(e.starts_with("h.toml:"), "{e}");
        assert!(
            e.contains("agent_live_window") && e.contains("at most retention"),
            "{e}"
        );
        let e = parse("[hub]\nagent_live_window = \"0s\"\n", Path::new("h.toml"))
            .unwrap_err()
            .to_string();
        assert!(e.contains("agent_live_window"), "{e}");
        // no cap, no window to check
        let h = parse(
            "[hub]\nmax_agents_per_network = 0\nagent_live_window = \"0s\"\n",
            Path::new("h.toml"),
        )
        .unwrap();
        assert_eq!(h.max_agents_per_network, 0);
    }
}
