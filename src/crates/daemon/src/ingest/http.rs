//! The HTTP client shared by the CrowdSec follower and the feeds: rustls, timeouts, and
//! bodies read with a size cap (a hostile or broken server cannot fill memory).

use std::time::Duration;

use super::IngestError;

pub fn client() -> Result<reqwest::Client, IngestError> {
    reqwest::Client::builder()
        .user_agent(concat!("crowdwall/", env!("CARGO_PKG_VERSION")))
        .connect_timeout(Duration::from_secs(10))
        .timeout(Duration::from_secs(60))
        .build()
        .map_err(|e| IngestError::Fetch {
            what: "HTTP client".into(),
            message: e.to_string(),
        })
}

/// Why a body was not read.
#[derive(Debug)]
pub enum BodyError {
    TooLarge(u64),
    Http(reqwest::Error),
}

/// Reads the body, refusing it as soon as it passes `max` bytes.
pub async fn body_capped(mut resp: reqwest::Response, max: u64) -> Result<Vec<u8>, BodyError> {
    if let Some(len) = resp.content_length() {
        if len > max {
            return Err(BodyError::TooLarge(len));
        }
    }
    let mut out = Vec::new();
    while let Some(chunk) = resp.chunk().await.map_err(BodyError::Http)? {
        if out.len() as u64 + chunk.len() as u64 > max {
            return Err(BodyError::TooLarge(out.len() as u64 + chunk.len() as u64));
        }
        out.extend_from_slice(&chunk);
    }
    Ok(out)
}
