//! The agent's HTTP client for a hub, and its credentials file.

use std::path::Path;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::{
    BlocklistResponse, CommunityError, EnrollRequest, EnrollResponse, PushRequest, PushResponse,
    Signal,
};

/// What `crowdwall community register` writes (mode 0600): the hub and this agent's secret.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Credentials {
    pub hub: String,
    pub agent_id: String,
    pub secret: String,
}

impl Credentials {
    /// `Ok(None)` when the file does not exist (not registered).
    pub fn load(path: &Path) -> Result<Option<Credentials>, CommunityError> {
        let text = match std::fs::read_to_string(path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(source) => {
                return Err(CommunityError::Io {
                    what: format!("credentials {}", path.display()),
                    source,
                })
            }
        };
        serde_json::from_str(&text)
            .map(Some)
            .map_err(|e| CommunityError::BadFile {
                path: path.display().to_string(),
                message: format!("{e} (run `crowdwall community register` again)"),
            })
    }

    /// Writes the file atomically and durably, readable by root only.
    pub fn save(&self, path: &Path) -> Result<(), CommunityError> {
        let io = |what: String| move |source| CommunityError::Io { what, source };
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).map_err(io(format!("directory {}", dir.display())))?;
        }
        let text = serde_json::to_string_pretty(self).unwrap_or_default();
        crowdwall_base::fsutil::write_atomic(path, text.as_bytes())
            .map_err(|e| io(format!("credentials {}", e.path.display()))(e.source))
    }
}

pub struct HubClient {
    http: reqwest::Client,
    base: String,
    auth: Option<String>,
}

impl HubClient {
    pub fn new(base: &str, creds: Option<&Credentials>) -> Result<HubClient, CommunityError> {
        Self::with_local_address(base, creds, None)
    }

    /// `local`: the source address to connect from (tests give each agent its own network).
    pub fn with_local_address(
        base: &str,
        creds: Option<&Credentials>,
        local: Option<std::net::IpAddr>,
    ) -> Result<HubClient, CommunityError> {
        let mut b = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(10))
            .timeout(Duration::from_secs(30))
            .user_agent(concat!("crowdwall/", env!("CARGO_PKG_VERSION")));
        if local.is_some() {
            b = b.local_address(local);
        }
        let http = b.build().map_err(|e| CommunityError::Unreachable {
            url: base.into(),
            message: e.to_string(),
        })?;
        Ok(HubClient {
            http,
            base: base.trim_end_matches('/').to_string(),
            auth: creds.map(|c| format!("Bearer {}:{}", c.agent_id, c.secret)),
        })
    }

    async fn send<T: serde::de::DeserializeOwned>(
        &self,
        req: reqwest::RequestBuilder,
        url: &str,
    ) -> Result<T, CommunityError> {
        let req = match &self.auth {
            Some(a) => req.header("authorization", a),
            None => req,
        };
        let resp = req.send().await.map_err(|e| CommunityError::Unreachable {
            url: url.into(),
            message: e.to_string(),
        })?;
        let status = resp.status();
        if status.is_success() {
            return resp.json().await.map_err(|e| CommunityError::Unreachable {
                url: url.into(),
                message: format!("unreadable answer: {e}"),
            });
        }
        if status.as_u16() == 429 || status.is_server_error() {
            return Err(CommunityError::Busy {
                url: url.into(),
                status: status.as_u16(),
            });
        }
        let body = resp.text().await.unwrap_or_default();
        Err(CommunityError::Refused {
            url: url.into(),
            status: status.as_u16(),
            body: body.chars().take(300).collect(),
        })
    }

    pub async fn enroll(
        &self,
        name: &str,
        token: Option<String>,
    ) -> Result<EnrollResponse, CommunityError> {
        let url = format!("{}/v1/agents", self.base);
        self.send(
            self.http.post(&url).json(&EnrollRequest {
                name: name.into(),
                token,
            }),
            &url,
        )
        .await
    }

    pub async fn push(&self, signals: &[Signal]) -> Result<PushResponse, CommunityError> {
        let url = format!("{}/v1/signals", self.base);
        self.send(
            self.http.post(&url).json(&PushRequest {
                signals: signals.to_vec(),
            }),
            &url,
        )
        .await
    }

    pub async fn blocklist(&self, since: Option<i64>) -> Result<BlocklistResponse, CommunityError> {
        let url = match since {
            Some(v) => format!("{}/v1/blocklist?since={v}", self.base),
            None => format!("{}/v1/blocklist", self.base),
        };
        self.send(self.http.get(&url), &url).await
    }
}

/// `crowdwall community register`: enrols with the hub and writes the credentials file.
pub fn register(
    hub: &str,
    name: &str,
    token: Option<String>,
    path: &Path,
) -> Result<Credentials, CommunityError> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|source| CommunityError::Io {
            what: "tokio runtime".into(),
            source,
        })?;
    let r = rt.block_on(HubClient::new(hub, None)?.enroll(name, token))?;
    let creds = Credentials {
        hub: hub.trim_end_matches('/').to_string(),
        agent_id: r.agent_id,
        secret: r.secret,
    };
    creds.save(path)?;
    Ok(creds)
}
