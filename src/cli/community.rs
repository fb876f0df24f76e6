//! `crowdwall community register`: enrolment of this host with a community hub. The hub
//! itself is its own program (`crowdwall-hub`, package crowdwall-hub).

use std::path::{Path, PathBuf};

use anyhow::Result;

use super::load_config;

/// Enrols with the hub at `hub` and writes the credentials file (root only).
pub fn register(
    config: &Path,
    hub: &str,
    name: &str,
    token: Option<String>,
    state_dir: Option<PathBuf>,
) -> Result<()> {
    let cfg = load_config(config)?;
    let dir = state_dir.unwrap_or(cfg.daemon.state_dir.clone());
    let path = crowdwall_daemon::community::agent::credentials_path(&cfg.community, &dir);
    let c = crowdwall_daemon::community::client::register(hub, name, token, &path)?;
    println!(
        "registered with {} as agent {}; credentials in {} (mode 0600). Run `crowdwall reload` (or restart the daemon) to start sharing and pulling.",
        c.hub,
        c.agent_id,
        path.display()
    );
    Ok(())
}
