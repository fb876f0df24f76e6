//! The `crowdwall` command: the daemon (`run`) and the tools around it. The pieces live in
//! [`cli`]; this file parses the arguments and dispatches.

mod cli;

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{bail, Context, Result};
use clap::Parser;

use cli::args::{Cli, Cmd, CommunityCmd, DecisionsCmd, FirewallCmd, EXIT_UNREACHABLE};
use cli::{call, load_config, socket_of};
use crowdwall_daemon::control::{ControlError, Request, Status};
use crowdwall_engine::enforce::Firewall;

fn main() -> ExitCode {
    let cli = Cli::parse();
    if !matches!(cli.cmd, Cmd::Run { .. }) {
        // A CLI whose reader went away (`crowdwall decisions list | head`) ends quietly, as
        // other Unix tools do, instead of panicking on EPIPE. The daemon keeps Rust's
        // ignored SIGPIPE: a client hanging up must never kill it.
        // SAFETY: restoring the default disposition before any thread starts.
        unsafe { libc::signal(libc::SIGPIPE, libc::SIG_DFL) };
    }
    crowdwall_base::logging::init();
    match real_main(cli) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("crowdwall: {e:#}");
            if e.downcast_ref::<ControlError>()
                .is_some_and(|c| matches!(c, ControlError::Connect { .. }))
            {
                ExitCode::from(EXIT_UNREACHABLE)
            } else {
                ExitCode::FAILURE
            }
        }
    }
}

fn real_main(cli: Cli) -> Result<ExitCode> {
    match cli.cmd {
        Cmd::Run {
            journal_dir,
            state_dir,
        } => {
            let cfg = load_config(&cli.config)
                .context("refusing to start with a broken configuration; nothing was changed")?;
            crowdwall_daemon::daemon::run(
                cfg,
                crowdwall_daemon::daemon::RunOptions {
                    journal_dir,
                    state_dir,
                    socket: cli.socket,
                    config_path: Some(cli.config),
                },
            )?;
        }
        Cmd::CheckConfig { file, json } => {
            let path = file.unwrap_or(cli.config);
            let cfg = load_config(&path)?;
            let specs = cfg.scenario_specs()?;
            let names: Vec<&str> = specs.iter().map(|s| s.name.as_str()).collect();
            let warnings = cfg.warnings();
            if json {
                println!(
                    "{}",
                    serde_json::json!({
                        "file": cfg.origin,
                        "ok": true,
                        "warnings": warnings,
                        "scenarios": names,
                        "allowlist": cfg.allowlist_nets().iter().map(|n| n.to_string()).collect::<Vec<_>>(),
                    })
                );
                return Ok(ExitCode::SUCCESS);
            }
            for w in &warnings {
                eprintln!("warning: {w}");
            }
            println!(
                "{}: ok ({} scenario(s): {})",
                cfg.origin.display(),
                names.len(),
                names.join(", ")
            );
        }
        Cmd::Decisions(d) => {
            let socket = socket_of(&cli.socket, &cli.config)?;
            match d {
                DecisionsCmd::List {
                    json,
                    scenario,
                    origin,
                    ip,
                    range,
                } => {
                    let filter = cli::status::Filter {
                        scenario,
                        origin,
                        ip: ip
                            .map(|a| {
                                crowdwall_base::parse_ip(&a)
                                    .with_context(|| format!("--ip: '{a}' is not an IP address"))
                            })
                            .transpose()?,
                        range: range
                            .map(|r| crowdwall_base::parse_net(&r).context("--range"))
                            .transpose()?,
                    };
                    let v = call(&socket, Request::List)?;
                    let rows: Vec<serde_json::Value> = v
                        .as_array()
                        .map(|a| a.iter().filter(|r| filter.keeps(r)).cloned().collect())
                        .unwrap_or_default();
                    if json {
                        println!("{}", serde_json::to_string_pretty(&rows)?);
                    } else {
                        print!("{}", cli::status::decisions_table(&rows));
                    }
                }
                DecisionsCmd::Add {
                    value,
                    duration,
                    reason,
                    ports,
                } => {
                    let v = call(
                        &socket,
                        Request::Add {
                            value,
                            duration,
                            reason,
                            ports,
                        },
                    )?;
                    println!(
                        "banned {} until {} ({})",
                        v["value"].as_str().unwrap_or("?"),
                        v["until"].as_str().unwrap_or("?"),
                        match v["ports"].as_str() {
                            Some("all") | None => "all ports".to_string(),
                            Some(p) => format!("port {p} only"),
                        }
                    );
                }
                DecisionsCmd::Delete {
                    value: Some(value),
                    range: None,
                    all: false,
                } => {
                    let v = call(&socket, Request::Delete { value })?;
                    println!(
                        "unbanned {} ({} decision(s))",
                        v["value"].as_str().unwrap_or("?"),
                        v["deleted"]
                    );
                }
                DecisionsCmd::Delete {
                    value: None,
                    range,
                    all,
                } if range.is_some() != all => {
                    let v = call(&socket, Request::DeleteCovered { range })?;
                    let values: Vec<&str> = v["values"]
                        .as_array()
                        .map(|a| a.iter().filter_map(|x| x.as_str()).collect())
                        .unwrap_or_default();
                    let scope = match v["range"].as_str() {
                        Some(r) => format!("inside {r}"),
                        None => "everything".into(),
                    };
                    if values.is_empty() {
                        println!("unbanned nothing {scope}: no active decision");
                    } else {
                        println!(
                            "unbanned {scope}: {} decision(s) on {}",
                            v["deleted"],
                            values.join(", ")
                        );
                    }
                }
                DecisionsCmd::Delete { .. } => {
                    bail!("give one of VALUE, --range CIDR or --all (see `crowdwall decisions delete --help`)")
                }
                DecisionsCmd::Forget { value } => {
                    let v = call(&socket, Request::Forget { value })?;
                    let value = v["value"].as_str().unwrap_or("?");
                    if v["forgotten"] == true {
                        println!("forgot the offence history of {value}: its next ban is a first offence");
                    } else {
                        println!("{value} has no offence history: nothing to forget");
                    }
                }
            }
        }
        Cmd::Reload => {
            let socket = socket_of(&cli.socket, &cli.config)?;
            let v = call(&socket, Request::Reload)?;
            let changed: Vec<&str> = v["changed"]
                .as_array()
                .map(|a| a.iter().filter_map(|c| c.as_str()).collect())
                .unwrap_or_default();
            println!(
                "reloaded {}; changed: {}",
                v["config"].as_str().unwrap_or("?"),
                if changed.is_empty() {
                    "nothing".to_string()
                } else {
                    changed.join(", ")
                }
            );
        }
        Cmd::Bouncers(b) => cli::bouncers::bouncers(&socket_of(&cli.socket, &cli.config)?, b)?,
        Cmd::Status { json } => {
            let socket = socket_of(&cli.socket, &cli.config)?;
            let v = call(&socket, Request::Status)?;
            if json {
                println!("{}", serde_json::to_string_pretty(&v)?);
            } else {
                let status: Status = serde_json::from_value(v).context(
                    "the daemon's status does not parse (is the daemon the same version as this CLI?)",
                )?;
                cli::status::print_status(&status);
            }
        }
        Cmd::Replay {
            events,
            year,
            parser,
            files,
        } => cli::replay::replay(&cli.config, events, year, parser.as_deref(), &files)?,
        Cmd::Explain { line, parser, json } => {
            cli::replay::explain(&cli.config, &line, parser.as_deref(), json)?
        }
        Cmd::Log { follow, lines } => {
            let socket = socket_of(&cli.socket, &cli.config)?;
            cli::log::show(&socket, lines, follow)?;
        }
        Cmd::Metrics { json } => {
            let socket = socket_of(&cli.socket, &cli.config)?;
            let v = call(&socket, Request::Metrics)?;
            if json {
                println!("{}", serde_json::to_string_pretty(&v)?);
            } else {
                let snap: crowdwall_daemon::metrics::Snapshot = serde_json::from_value(v)
                    .context("the daemon's metrics do not parse (is the daemon the same version as this CLI?)")?;
                print!("{}", crowdwall_daemon::metrics::render_tables(&snap));
            }
        }
        Cmd::Generate { out } => cli::generate(&out)?,
        Cmd::InstallerAddress => {
            let cfg = load_config(&cli.config).unwrap_or_default();
            let utmp = if cfg.lockout.utmp.as_os_str().is_empty() {
                PathBuf::from("/var/run/utmp")
            } else {
                cfg.lockout.utmp
            };
            match crowdwall_daemon::lockout::installer_address(&utmp) {
                Some(ip) => println!("{ip}"),
                None => return Ok(ExitCode::FAILURE),
            }
        }
        Cmd::ImportFail2ban { dir } => cli::import_fail2ban(&dir)?,
        Cmd::Community(CommunityCmd::Register {
            hub,
            name,
            token,
            state_dir,
        }) => cli::community::register(
            &cli.config,
            &hub,
            name.as_deref().unwrap_or(""),
            token,
            state_dir,
        )?,
        Cmd::Firewall(FirewallCmd::Remove) => {
            let cfg = load_config(&cli.config)?;
            let mut fw = crowdwall_nft::NftFirewall::open(cfg.firewall_spec())?;
            fw.remove()?;
            match cfg.firewall.mode {
                crowdwall_nft::Mode::Table => println!(
                    "table inet {} removed (a running daemon re-creates it at once: stop it first to keep it gone)",
                    cfg.firewall.table
                ),
                crowdwall_nft::Mode::Sets => println!(
                    "crowdwall's sets in table {} emptied; your rules are untouched",
                    cfg.firewall.table
                ),
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}
