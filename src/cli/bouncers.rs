//! `crowdwall bouncers`: keys of the CrowdSec-compatible bouncer API.

use std::path::Path;

use anyhow::Result;

use crowdwall_daemon::control::Request;

use super::args::BouncersCmd;
use super::call;

pub fn bouncers(socket: &Path, cmd: BouncersCmd) -> Result<()> {
    match cmd {
        BouncersCmd::Add { name } => {
            crowdwall_daemon::api::check_name(&name)?;
            let (key, key_sha256) = crowdwall_daemon::api::new_key()?;
            call(
                socket,
                Request::BouncerAdd {
                    name: name.clone(),
                    key_sha256,
                },
            )?;
            println!("API key for bouncer '{name}' (shown once; crowdwall keeps only its hash):\n\n    {key}\n");
            println!("Give it to the bouncer as its api_key, with crowdwall's [api] listen address as api_url.");
        }
        BouncersCmd::List { json } => {
            let v = call(socket, Request::BouncerList)?;
            if json {
                println!("{}", serde_json::to_string_pretty(&v)?);
            } else {
                let rows = v.as_array().cloned().unwrap_or_default();
                if rows.is_empty() {
                    println!("no bouncers (add one with `crowdwall bouncers add NAME`)");
                }
                for r in rows {
                    let s = |k: &str| r[k].as_str().unwrap_or("never").to_string();
                    println!(
                        "{:<24} created {}  last pull {}  {}",
                        s("name"),
                        s("created"),
                        s("last_pull"),
                        r["user_agent"].as_str().unwrap_or("")
                    );
                }
            }
        }
        BouncersCmd::Delete { name } => {
            call(socket, Request::BouncerDelete { name: name.clone() })?;
            println!("bouncer '{name}' deleted: its key is refused from now on");
        }
    }
    Ok(())
}
