//! `crowdwall-hub`: the community hub server, and its administration.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, Result};
use clap::{Parser, Subcommand};

use crowdwall_hub::config::{self, DEFAULT_PATH};

#[derive(Parser)]
#[command(
    name = "crowdwall-hub",
    version,
    about = "crowdwall's community hub: agents report attackers, consensus makes the blocklist",
    after_help = "Exit codes: 0 success, 1 failure, 2 usage error."
)]
struct Cli {
    /// Configuration file (a [hub] table).
    #[arg(long, global = true, default_value = DEFAULT_PATH)]
    config: PathBuf,
    /// Listen address (default: [hub] listen).
    #[arg(long, global = true)]
    listen: Option<String>,
    /// sqlite:PATH or postgres://... (default: [hub] database).
    #[arg(long, global = true)]
    database: Option<String>,
    #[command(subcommand)]
    cmd: Option<Cmd>,
}

#[derive(Subcommand)]
enum Cmd {
    /// Serve (the default).
    Run,
    /// Check the configuration file and exit.
    CheckConfig,
    /// Take an address off the blocklist; reports up to now no longer count.
    Delist { ip: String },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    crowdwall_base::logging::init();
    match real_main(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("crowdwall-hub: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn real_main(cli: Cli) -> Result<()> {
    let mut cfg =
        config::load(&cli.config).context("refusing to start with a broken configuration")?;
    if let Some(l) = cli.listen {
        cfg.listen = l;
    }
    if let Some(d) = cli.database {
        cfg.database = d;
    }
    let rt = || {
        tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .build()
            .context("tokio runtime")
    };
    match cli.cmd.unwrap_or(Cmd::Run) {
        Cmd::Run => rt()?.block_on(crowdwall_hub::run(cfg, shutdown()))?,
        Cmd::CheckConfig => println!("{}: ok", cli.config.display()),
        Cmd::Delist { ip } => {
            if rt()?.block_on(crowdwall_hub::delist(&cfg, &ip))? {
                println!("{ip} delisted; reports up to now no longer count");
            } else {
                println!("{ip} was not on the blocklist; reports up to now no longer count");
            }
        }
    }
    Ok(())
}

/// SIGTERM or SIGINT.
async fn shutdown() {
    use tokio::signal::unix::{signal, SignalKind};
    let (Ok(mut t), Ok(mut i)) = (
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
    ) else {
        return std::future::pending().await;
    };
    tokio::select! {
        _ = t.recv() => {},
        _ = i.recv() => {},
    }
}
