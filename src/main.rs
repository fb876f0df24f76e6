//! The `crowdwall` command: the daemon (`run`) and the tools around it.

use std::io::{BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{bail, Context, Result};
use clap::{CommandFactory, Parser, Subcommand};

use crowdwall::config::{Config, DEFAULT_PATH};
use crowdwall::control::{self, ControlError, Request, Response};
use crowdwall::enforce::Firewall;
use crowdwall::parse::{Parsed, Parsers};
use crowdwall::replay::Replay;
use crowdwall::source::text::{parse_line, SyslogContext, TextReader};
use crowdwall::source::LogEntry;
use crowdwall::time;

/// Exit code when the daemon cannot be reached.
const EXIT_UNREACHABLE: u8 = 3;

/// Shown at the end of `--help` and in the man page.
const EXIT_CODES: &str = "\
Exit codes:
  0  success
  1  failure: the message names the thing (file:line, address, socket) and the fix
  2  usage error (unknown option, missing argument)
  3  the daemon is not reachable on its control socket (is it running?)

Files:
  /etc/crowdwall/crowdwall.toml      configuration (the embedded default when missing)
  /etc/crowdwall/allowlist.d/*.list  extra allowlisted addresses, one a line
  /var/lib/crowdwall/                decisions (SQLite) and the journal cursor
  /run/crowdwall/crowdwall.sock      control socket (root only)";

#[derive(Parser)]
#[command(
    name = "crowdwall",
    version,
    about = "Crowd-powered intrusion prevention: journal -> scenarios -> nftables bans",
    after_help = EXIT_CODES
)]
struct Cli {
    /// Configuration file (the embedded default is used when the default path is missing).
    #[arg(long, global = true, default_value = DEFAULT_PATH)]
    config: PathBuf,
    /// Control socket of the daemon (default: from the config).
    #[arg(long, global = true)]
    socket: Option<PathBuf>,
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Run the daemon.
    Run {
        /// Read this journal directory instead of the system journal.
        #[arg(long)]
        journal_dir: Option<PathBuf>,
        /// State directory (store, cursor) instead of the config's.
        #[arg(long)]
        state_dir: Option<PathBuf>,
    },
    /// Check a configuration file and exit non-zero, naming file, line and problem, if it is broken.
    CheckConfig {
        /// The file to check (default: --config).
        file: Option<PathBuf>,
        #[arg(long)]
        json: bool,
    },
    /// List, add or delete decisions (bans).
    #[command(subcommand)]
    Decisions(DecisionsCmd),
    /// Make the running daemon read its configuration file again (as SIGHUP does). A broken
    /// file is refused with file:line and the running configuration stays.
    Reload,
    /// The daemon's state: sources, parsers, buckets, decisions, kernel sets.
    Status {
        #[arg(long)]
        json: bool,
    },
    /// Run the detection pipeline on log files (syslog text or `journalctl -o json`) without
    /// the kernel; prints decisions (or events) as JSON lines.
    Replay {
        /// Print parsed events instead of decisions.
        #[arg(long)]
        events: bool,
        /// Year of RFC 3164 timestamps, which carry none (default: this year).
        #[arg(long)]
        year: Option<i32>,
        /// Feed every line as is to this parser, as a file source naming it would (web
        /// servers' own logs: `--parser nginx`); times come from the lines.
        #[arg(long)]
        parser: Option<String>,
        #[arg(required = true)]
        files: Vec<PathBuf>,
    },
    /// Show which parser and event a log line yields, or why none.
    Explain {
        /// A syslog line, a `journalctl -o json` line, or a bare message of any parser.
        line: String,
        /// Give the line as is to this parser (as a file source naming it would).
        #[arg(long)]
        parser: Option<String>,
        #[arg(long)]
        json: bool,
    },
    /// Manage crowdwall's nftables table.
    #[command(subcommand)]
    Firewall(FirewallCmd),
    /// Counters as tables: sources, parsers, scenarios, decisions, netlink (the same numbers
    /// as the Prometheus endpoint).
    Metrics {
        #[arg(long)]
        json: bool,
    },
    /// Write the man page and shell completions (used when building packages).
    #[command(hide = true)]
    Generate {
        /// Directory to write crowdwall.1 and completions for bash, zsh and fish into.
        out: PathBuf,
    },
    /// Print the address of the SSH session running this command, if any (used by the
    /// package's postinst to allowlist the installing admin).
    #[command(hide = true)]
    InstallerAddress,
    /// Convert a fail2ban set-up (enabled jails, ignoreip, bantime.increment) into crowdwall
    /// configuration on stdout; what could not be converted is listed on stderr.
    #[command(name = "import-fail2ban")]
    ImportFail2ban {
        /// fail2ban's configuration directory.
        #[arg(default_value = "/etc/fail2ban")]
        dir: PathBuf,
    },
    /// Keys of the CrowdSec-compatible bouncer API ([api] in the config).
    #[command(subcommand)]
    Bouncers(BouncersCmd),
    /// This host as an agent of a community hub.
    #[command(subcommand)]
    Community(CommunityCmd),
    /// Run the community hub server (config section [hub]), or administer its database.
    Hub {
        /// Listen address (default: [hub] listen).
        #[arg(long)]
        listen: Option<String>,
        /// sqlite:PATH or postgres://... (default: [hub] database).
        #[arg(long)]
        database: Option<String>,
        #[command(subcommand)]
        cmd: Option<HubCmd>,
    },
}

#[derive(Subcommand)]
enum BouncersCmd {
    /// Register a bouncer; prints its key once (only its SHA-256 is stored).
    Add { name: String },
    /// Registered bouncers and when they last pulled.
    List {
        #[arg(long)]
        json: bool,
    },
    /// Revoke a bouncer's key.
    Delete { name: String },
}

#[derive(Subcommand)]
enum CommunityCmd {
    /// Enrol this host with a hub; writes the credentials file (root only).
    Register {
        /// The hub's URL, e.g. https://hub.example.org
        #[arg(long)]
        hub: String,
        /// A name for this agent shown to the hub's administrator (default: none).
        #[arg(long, default_value = "")]
        name: String,
        /// The hub's enrolment token, when it requires one.
        #[arg(long)]
        token: Option<String>,
        /// State directory (default: [daemon] state_dir).
        #[arg(long)]
        state_dir: Option<PathBuf>,
    },
}

#[derive(Subcommand)]
enum HubCmd {
    /// Take an address off the blocklist; reports up to now no longer count.
    Delist { ip: String },
}

#[derive(Subcommand)]
enum DecisionsCmd {
    /// Active decisions.
    List {
        #[arg(long)]
        json: bool,
    },
    /// Ban an address or CIDR range.
    Add {
        value: String,
        /// How long (90s, 10m, 4h, 7d); default: [ban] duration.
        #[arg(long)]
        duration: Option<String>,
        #[arg(long)]
        reason: Option<String>,
    },
    /// Lift every decision on exactly this address or range.
    Delete { value: String },
}

#[derive(Subcommand)]
enum FirewallCmd {
    /// Delete the table and every ban in it (the daemon re-creates it when it runs).
    Remove,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    if !matches!(cli.cmd, Cmd::Run { .. }) {
        // A CLI whose reader went away (`crowdwall decisions list | head`) ends quietly, as
        // other Unix tools do, instead of panicking on EPIPE. The daemon keeps Rust's
        // ignored SIGPIPE: a client hanging up must never kill it.
        // SAFETY: restoring the default disposition before any thread starts.
        unsafe { libc::signal(libc::SIGPIPE, libc::SIG_DFL) };
    }
    init_logging();
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

fn init_logging() {
    if systemd_journal_logger::connected_to_journal() {
        if let Ok(l) = systemd_journal_logger::JournalLog::new() {
            if l.install().is_ok() {
                log::set_max_level(log::LevelFilter::Info);
                return;
            }
        }
    }
    static STDERR: StderrLog = StderrLog;
    if log::set_logger(&STDERR).is_ok() {
        log::set_max_level(match std::env::var("CROWDWALL_LOG").as_deref() {
            Ok("debug") => log::LevelFilter::Debug,
            Ok("warn") => log::LevelFilter::Warn,
            _ => log::LevelFilter::Info,
        });
    }
}

/// Plain stderr logging when not under systemd.
struct StderrLog;

impl log::Log for StderrLog {
    fn enabled(&self, _: &log::Metadata) -> bool {
        true
    }
    fn log(&self, r: &log::Record) {
        if self.enabled(r.metadata()) {
            eprintln!(
                "{} {:<5} {}",
                time::format_rfc3339(time::now()),
                r.level(),
                r.args()
            );
        }
    }
    fn flush(&self) {}
}

fn load_config(path: &Path) -> Result<Config> {
    Ok(Config::load(path)?)
}

fn socket_of(cli_socket: &Option<PathBuf>, config: &Path) -> Result<PathBuf> {
    if let Some(s) = cli_socket {
        return Ok(s.clone());
    }
    Ok(load_config(config)?.daemon.socket)
}

fn call(socket: &Path, req: Request) -> Result<serde_json::Value> {
    match control::call(socket, &req)? {
        Response::Ok(v) => Ok(v),
        Response::Error(m) => bail!("{m}"),
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
            crowdwall::daemon::run(
                cfg,
                crowdwall::daemon::RunOptions {
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
            if json {
                println!(
                    "{}",
                    serde_json::json!({
                        "file": cfg.origin,
                        "ok": true,
                        "scenarios": names,
                        "allowlist": cfg.allowlist_nets().iter().map(|n| n.to_string()).collect::<Vec<_>>(),
                    })
                );
                return Ok(ExitCode::SUCCESS);
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
                DecisionsCmd::List { json } => {
                    let v = call(&socket, Request::List)?;
                    if json {
                        println!("{}", serde_json::to_string_pretty(&v)?);
                    } else {
                        print_decisions(&v);
                    }
                }
                DecisionsCmd::Add {
                    value,
                    duration,
                    reason,
                } => {
                    let v = call(
                        &socket,
                        Request::Add {
                            value,
                            duration,
                            reason,
                        },
                    )?;
                    println!(
                        "banned {} until {}",
                        v["value"].as_str().unwrap_or("?"),
                        v["until"].as_str().unwrap_or("?")
                    );
                }
                DecisionsCmd::Delete { value } => {
                    let v = call(&socket, Request::Delete { value })?;
                    println!(
                        "unbanned {} ({} decision(s))",
                        v["value"].as_str().unwrap_or("?"),
                        v["deleted"]
                    );
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
        Cmd::Bouncers(b) => bouncers(&socket_of(&cli.socket, &cli.config)?, b)?,
        Cmd::Status { json } => {
            let socket = socket_of(&cli.socket, &cli.config)?;
            let v = call(&socket, Request::Status)?;
            if json {
                println!("{}", serde_json::to_string_pretty(&v)?);
            } else {
                print_status(&v);
            }
        }
        Cmd::Replay {
            events,
            year,
            parser,
            files,
        } => replay(&cli.config, events, year, parser.as_deref(), &files)?,
        Cmd::Explain { line, parser, json } => {
            explain(&cli.config, &line, parser.as_deref(), json)?
        }
        Cmd::Metrics { json } => {
            let socket = socket_of(&cli.socket, &cli.config)?;
            let v = call(&socket, Request::Metrics)?;
            if json {
                println!("{}", serde_json::to_string_pretty(&v)?);
            } else {
                let snap: crowdwall::metrics::Snapshot = serde_json::from_value(v)
                    .context("the daemon's metrics do not parse (is the daemon the same version as this CLI?)")?;
                print!("{}", crowdwall::metrics::render_tables(&snap));
            }
        }
        Cmd::Generate { out } => generate(&out)?,
        Cmd::InstallerAddress => {
            let cfg = load_config(&cli.config).unwrap_or_default();
            let utmp = if cfg.lockout.utmp.as_os_str().is_empty() {
                PathBuf::from("/var/run/utmp")
            } else {
                cfg.lockout.utmp
            };
            match crowdwall::lockout::installer_address(&utmp) {
                Some(ip) => println!("{ip}"),
                None => return Ok(ExitCode::FAILURE),
            }
        }
        Cmd::ImportFail2ban { dir } => import_fail2ban(&dir)?,
        Cmd::Community(CommunityCmd::Register {
            hub,
            name,
            token,
            state_dir,
        }) => {
            let cfg = load_config(&cli.config)?;
            let dir = state_dir.unwrap_or(cfg.daemon.state_dir.clone());
            let path = crowdwall::community::agent::credentials_path(&cfg.community, &dir);
            let c = crowdwall::community::client::register(&hub, &name, token, &path)?;
            println!(
                "registered with {} as agent {}; credentials in {} (mode 0600). The daemon uses them at its next start.",
                c.hub,
                c.agent_id,
                path.display()
            );
        }
        Cmd::Hub {
            listen,
            database,
            cmd,
        } => {
            let mut cfg = load_config(&cli.config)
                .context("refusing to start with a broken configuration")?
                .hub;
            if let Some(l) = listen {
                cfg.listen = l;
            }
            if let Some(d) = database {
                cfg.database = d;
            }
            match cmd {
                None => crowdwall::community::hub::run(cfg)?,
                Some(HubCmd::Delist { ip }) => {
                    if crowdwall::community::hub::delist(&cfg, &ip)? {
                        println!("{ip} delisted; reports up to now no longer count");
                    } else {
                        println!(
                            "{ip} was not on the blocklist; reports up to now no longer count"
                        );
                    }
                }
            }
        }
        Cmd::Firewall(FirewallCmd::Remove) => {
            let cfg = load_config(&cli.config)?;
            let mut fw = crowdwall::enforce::netlink::NftFirewall::open(cfg.firewall.spec())?;
            fw.remove()?;
            match cfg.firewall.mode {
                crowdwall::config::FirewallMode::Table => println!(
                    "table inet {} removed (a running daemon re-creates it at once: stop it first to keep it gone)",
                    cfg.firewall.table
                ),
                crowdwall::config::FirewallMode::Sets => println!(
                    "crowdwall's sets in table {} emptied; your rules are untouched",
                    cfg.firewall.table
                ),
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn bouncers(socket: &Path, cmd: BouncersCmd) -> Result<()> {
    match cmd {
        BouncersCmd::Add { name } => {
            crowdwall::api::check_name(&name).map_err(anyhow::Error::msg)?;
            let (key, key_sha256) = crowdwall::api::new_key()?;
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

/// Man page and completions from the same clap definitions as `--help`.
fn generate(out: &Path) -> Result<()> {
    std::fs::create_dir_all(out).with_context(|| format!("creating {}", out.display()))?;
    let cmd = Cli::command();
    let mut page = Vec::new();
    clap_mangen::Man::new(cmd.clone())
        .render(&mut page)
        .context("rendering the man page")?;
    let man = out.join("crowdwall.1");
    std::fs::write(&man, page).with_context(|| format!("writing {}", man.display()))?;
    for shell in [
        clap_complete::Shell::Bash,
        clap_complete::Shell::Zsh,
        clap_complete::Shell::Fish,
    ] {
        let path = clap_complete::generate_to(shell, &mut cmd.clone(), "crowdwall", out)
            .with_context(|| format!("writing {shell} completions into {}", out.display()))?;
        println!("{}", path.display());
    }
    println!("{}", man.display());
    Ok(())
}

fn print_decisions(v: &serde_json::Value) {
    let rows = v.as_array().cloned().unwrap_or_default();
    if rows.is_empty() {
        println!("no active decisions");
        return;
    }
    println!(
        "{:<6} {:<40} {:<7} {:<22} {:<10} REASON",
        "ID", "VALUE", "ORIGIN", "SCENARIO", "REMAINING"
    );
    for r in rows {
        let s = |k: &str| r[k].as_str().unwrap_or("").to_string();
        println!(
            "{:<6} {:<40} {:<7} {:<22} {:<10} {}",
            r["id"],
            s("value"),
            s("origin"),
            s("scenario"),
            s("remaining"),
            s("reason")
        );
    }
}

fn print_status(v: &serde_json::Value) {
    println!(
        "crowdwall {} up {}s",
        v["version"].as_str().unwrap_or("?"),
        v["uptime_s"]
    );
    for s in v["sources"].as_array().cloned().unwrap_or_default() {
        if s["name"] != "journal" {
            // files, syslog, nflog: their counters as they are
            let fields: Vec<String> = s
                .as_object()
                .map(|o| {
                    o.iter()
                        .filter(|(k, _)| *k != "name")
                        .map(|(k, v)| format!("{k} {v}"))
                        .collect()
                })
                .unwrap_or_default();
            println!(
                "source {}: {}",
                s["name"].as_str().unwrap_or("?"),
                fields.join(", ")
            );
            continue;
        }
        println!(
            "source {}: {} entries read, {} skipped, lag {}s{}",
            s["name"].as_str().unwrap_or("?"),
            s["entries_read"],
            s["skipped"],
            s["lag_s"],
            if s["caught_up"].as_bool() == Some(true) {
                ", caught up"
            } else {
                ""
            }
        );
    }
    // Parsers that saw no line are left out, except sshd (the default source).
    for (name, p) in v["parsers"].as_object().cloned().unwrap_or_default() {
        if name != "sshd" && p["lines"].as_u64() == Some(0) {
            continue;
        }
        println!(
            "parser {name}: {} lines, {} matched, {} unmatched, {} rejected, {} events",
            p["lines"], p["matched"], p["unmatched"], p["rejected"], p["events"]
        );
    }
    let b = &v["buckets"];
    println!(
        "buckets: {} live, {} overflows, {} evicted idle, {} evicted by cap",
        b["live_buckets"], b["overflows"], b["evicted_idle"], b["evicted_cap"]
    );
    println!(
        "decisions: {}",
        v["decisions"]
            .as_object()
            .map(|m| m
                .iter()
                .map(|(k, n)| format!("{k} {n}"))
                .collect::<Vec<_>>()
                .join(", "))
            .unwrap_or_default()
    );
    let lk = &v["lockout"];
    let warn = crowdwall::ui::colour();
    for s in lk["unprotected_sessions"]
        .as_array()
        .cloned()
        .unwrap_or_default()
    {
        println!(
            "{} {} is logged in over SSH from {} ({}), not allowlisted: add it to [allowlist] cidrs or /etc/crowdwall/allowlist.d/admin.list",
            crowdwall::ui::paint(warn, "1;33", "WARNING lockout risk:"),
            s["user"].as_str().unwrap_or("?"),
            s["address"].as_str().unwrap_or("?"),
            s["line"].as_str().unwrap_or("?"),
        );
    }
    if let Some(e) = lk["error"].as_str() {
        println!("lockout guard: {e}");
    }
    let f = &v["firewall"];
    match f["sets"].as_object() {
        Some(s) => println!(
            "firewall {}: v4 {} element(s), v6 {}; {} transaction(s), {} failed, {} heal(s)",
            f["table"].as_str().unwrap_or("?"),
            s["v4"],
            s["v6"],
            f["stats"]["transactions"],
            f["stats"]["transaction_failures"],
            f["stats"]["heals"]
        ),
        None => println!("firewall: {}", f["error"].as_str().unwrap_or("unknown")),
    }
    let c = &v["community"];
    if c.is_object() {
        println!(
            "community {}: {} signal(s) delivered, {} in the outbox, {} push failure(s); {} blocklist entries, {} pull(s), {} failed",
            c["hub"].as_str().unwrap_or("?"),
            c["signals_delivered"],
            c["outbox"],
            c["push_failures"],
            c["blocklist_entries"],
            c["pulls"],
            c["pull_failures"]
        );
    }
    if f["behind_store"].as_bool() == Some(true) {
        println!(
            "firewall: the kernel refused the last change; retrying with back-off (see the log)"
        );
    }
    for (what, s) in v["ingest"].as_object().cloned().unwrap_or_default() {
        let at = |k: &str| s[k].as_str().unwrap_or("never").to_string();
        match s["error"].as_str() {
            Some(e) => println!(
                "{what}: last ok {}; failing since {}: {e}",
                at("last_ok"),
                at("last_error_at")
            ),
            None => println!(
                "{what}: ok at {}: {}",
                at("last_ok"),
                s["last_result"].as_str().unwrap_or("")
            ),
        }
    }
}

fn import_fail2ban(dir: &Path) -> Result<()> {
    // fail2ban's reading order: jail.conf, jail.d/*.conf, jail.local, jail.d/*.local.
    let mut paths = Vec::new();
    let sorted = |ext: &str| -> Vec<PathBuf> {
        let mut v: Vec<PathBuf> = std::fs::read_dir(dir.join("jail.d"))
            .map(|rd| {
                rd.filter_map(|e| e.ok().map(|e| e.path()))
                    .filter(|p| p.extension().is_some_and(|x| x == ext))
                    .collect()
            })
            .unwrap_or_default();
        v.sort();
        v
    };
    paths.push(dir.join("jail.conf"));
    paths.extend(sorted("conf"));
    paths.push(dir.join("jail.local"));
    paths.extend(sorted("local"));
    let mut files = Vec::new();
    for p in paths {
        match std::fs::read_to_string(&p) {
            Ok(t) => files.push((p.display().to_string(), t)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => bail!("{}: {e}", p.display()),
        }
    }
    if files.is_empty() {
        bail!(
            "{}: no jail.conf, jail.local or jail.d/*.conf|local: is this fail2ban's configuration directory?",
            dir.display()
        );
    }
    let c = crowdwall::fail2ban::convert(&files);
    // The output must be a configuration crowdwall accepts.
    Config::parse(&c.toml, Path::new("<converted>")).context(
        "the converted configuration does not validate (a crowdwall bug: please report it)",
    )?;
    print!("{}", c.toml);
    eprintln!(
        "read {} file(s); converted {} jail(s): {}",
        files.len(),
        c.converted_jails.len(),
        c.converted_jails
            .iter()
            .map(|(j, s)| format!("{j} -> {s}"))
            .collect::<Vec<_>>()
            .join(", ")
    );
    for n in &c.notes {
        eprintln!("not converted: {n}");
    }
    Ok(())
}

fn this_year() -> i32 {
    crowdwall::source::text::year_of(time::now())
}

/// Lines of a file bound to one parser: each line is an entry for it, timed by the line.
struct RawLines<R> {
    lines: std::io::Lines<R>,
    parser: String,
    last: i64,
}

impl<R: std::io::BufRead> Iterator for RawLines<R> {
    type Item = Result<LogEntry, String>;
    fn next(&mut self) -> Option<Self::Item> {
        let line = match self.lines.next()? {
            Ok(l) => l,
            Err(e) => return Some(Err(format!("read error: {e}"))),
        };
        if let Some(t) = crowdwall::parse::time::line_time(&line) {
            self.last = t;
        }
        Some(Ok(LogEntry {
            time: self.last,
            identifier: self.parser.clone(),
            pid: None,
            message: line,
        }))
    }
}

fn replay(
    config: &Path,
    events: bool,
    year: Option<i32>,
    parser: Option<&str>,
    files: &[PathBuf],
) -> Result<()> {
    let cfg = load_config(config)?;
    let mut r = Replay::new(&cfg)?;
    if let Some(p) = parser {
        let names = r.detector.parsers.names();
        if !names.contains(&p) {
            bail!("unknown parser '{p}' (known: {})", names.join(", "));
        }
    }
    let stdout = std::io::stdout();
    let mut out = std::io::BufWriter::new(stdout.lock());
    let (mut lines, mut bad, mut matched, mut n_events, mut n_decisions) =
        (0u64, 0u64, 0u64, 0u64, 0u64);
    let started = std::time::Instant::now();
    let mut evs = Vec::new();
    let mut decisions = Vec::new();
    for f in files {
        let file = std::fs::File::open(f).with_context(|| {
            format!(
                "opening {} (check the path and that you may read it)",
                f.display()
            )
        })?;
        let size = file.metadata().map(|m| m.len()).unwrap_or(0);
        let read = std::rc::Rc::new(std::cell::Cell::new(0u64));
        let mut progress = crowdwall::ui::Progress::new(format!("{}", f.display()), size);
        let counting = crowdwall::ui::Counting {
            inner: file,
            count: read.clone(),
        };
        let ctx = SyslogContext::with_year(year.unwrap_or_else(this_year));
        let buf = BufReader::with_capacity(1 << 20, counting);
        let reader: Box<dyn Iterator<Item = Result<LogEntry, String>>> = match parser {
            Some(p) => Box::new(RawLines {
                lines: std::io::BufRead::lines(buf),
                parser: p.to_string(),
                last: 0,
            }),
            None => {
                Box::new(TextReader::with_context(buf, ctx).map(|r| r.map_err(|e| e.to_string())))
            }
        };
        for item in reader {
            lines += 1;
            if lines % 4096 == 0 {
                progress.update(
                    read.get(),
                    &format!("{lines} lines, {n_decisions} decisions"),
                );
            }
            let entry = match item {
                Ok(e) => e,
                Err(e) => {
                    bad += 1;
                    if bad <= 10 {
                        eprintln!("{}: {e} (skipped)", f.display());
                    }
                    continue;
                }
            };
            evs.clear();
            decisions.clear();
            let res = r.feed(&entry, events.then_some(&mut evs), &mut decisions);
            if matches!(res, Some((_, Parsed::Matched(_)))) {
                matched += 1;
            }
            for e in &evs {
                n_events += 1;
                serde_json::to_writer(&mut out, e)?;
                out.write_all(b"\n")?;
            }
            for d in &decisions {
                n_decisions += 1;
                if !events {
                    serde_json::to_writer(
                        &mut out,
                        &serde_json::json!({
                            "value": d.value_text(),
                            "origin": d.origin,
                            "scenario": d.scenario,
                            "reason": d.reason,
                            "created": time::format_rfc3339(d.created),
                            "until": time::format_rfc3339(d.until),
                            "duration": time::format_duration(time::to_duration(d.until - d.created)),
                        }),
                    )?;
                    out.write_all(b"\n")?;
                }
            }
        }
    }
    out.flush()?;
    let secs = started.elapsed().as_secs_f64();
    eprintln!(
        "replayed {lines} lines in {secs:.2}s ({:.0} lines/s): {bad} unreadable, {matched} matched, {} events, {n_decisions} decisions, {} refused (allowlisted)",
        lines as f64 / secs.max(1e-9),
        if events { n_events.to_string() } else { "-".into() },
        r.refused.len()
    );
    eprintln!("matched={matched}");
    Ok(())
}

fn explain(config: &Path, line: &str, parser: Option<&str>, json: bool) -> Result<()> {
    let cfg = load_config(config)?;
    let mut parsers = Parsers::with_user(cfg.user_parsers()?);
    let names = parsers.names();
    let raw = |p: &str| LogEntry {
        time: crowdwall::parse::time::line_time(line).unwrap_or_else(time::now),
        identifier: p.to_string(),
        pid: Some(1),
        message: line.to_string(),
    };
    let mut events = Vec::new();
    let (entry, how, res) = if let Some(p) = parser {
        if !names.contains(&p) {
            bail!("unknown parser '{p}' (known: {})", names.join(", "));
        }
        let e = raw(p);
        let res = parsers.parse(&e, &mut events);
        (e, "line given to the named parser", res)
    } else {
        let mut ctx = SyslogContext::with_year(this_year());
        match parse_line(line, &mut ctx) {
            Ok(e) => {
                let res = parsers.parse(&e, &mut events);
                (e, "log line", res)
            }
            Err(_) => {
                // No header: the first parser that recognises the bare message, as if a file
                // source named it; sshd first, as before.
                let mut found = None;
                for p in &names {
                    let e = raw(p);
                    let mut evs = Vec::new();
                    let res = parsers.parse(&e, &mut evs);
                    if matches!(res, Some((_, Parsed::Matched(_)))) {
                        found = Some((e, res, evs));
                        break;
                    }
                }
                match found {
                    Some((e, res, evs)) => {
                        events = evs;
                        (
                            e,
                            "bare message (no syslog header), recognised by this parser",
                            res,
                        )
                    }
                    None => {
                        let e = raw("sshd");
                        let res = parsers.parse(&e, &mut events);
                        (e, "bare message (no syslog header)", res)
                    }
                }
            }
        }
    };
    let verdict = match res {
        None => format!(
            "no parser for identifier '{}' (parsers take: {}; user-defined: {})",
            entry.identifier,
            Parsers::identifiers().join(", "),
            cfg.parsers.keys().cloned().collect::<Vec<_>>().join(", ")
        ),
        Some((p, Parsed::Matched(pat))) => format!("parser {p}: pattern '{pat}' matched"),
        Some((p, Parsed::Unmatched)) if how.starts_with("bare") => format!(
            "no pattern matched in any parser (tried {}; as {p}: not a security event, or a wording crowdwall does not know yet)",
            names.join(", ")
        ),
        Some((p, Parsed::Unmatched)) => format!("parser {p}: no pattern matched (not a security event, or a wording crowdwall does not know yet)"),
        Some((p, Parsed::Rejected(why))) => format!("parser {p}: line rejected before matching: {why}"),
    };
    if json {
        println!(
            "{}",
            serde_json::to_string_pretty(&serde_json::json!({
                "input": how,
                "identifier": entry.identifier,
                "pid": entry.pid,
                "message": entry.message,
                "verdict": verdict,
                "events": events,
            }))?
        );
        return Ok(());
    }
    println!("input:      {how}");
    println!(
        "identifier: {}  pid: {}",
        entry.identifier,
        entry.pid.map(|p| p.to_string()).unwrap_or("-".into())
    );
    println!("message:    {}", entry.message);
    println!("verdict:    {verdict}");
    if events.is_empty() {
        println!("events:     none");
    }
    for e in &events {
        println!(
            "event:      {} {} from {}{}{}{}",
            e.kind,
            if e.count > 1 {
                format!("x{}", e.count)
            } else {
                String::new()
            },
            e.ip,
            e.user
                .as_ref()
                .map(|u| format!(" user={u:?}"))
                .unwrap_or_default(),
            e.path
                .as_ref()
                .map(|p| format!(" path={p:?}"))
                .unwrap_or_default(),
            e.port.map(|p| format!(" port={p}")).unwrap_or_default(),
        );
    }
    Ok(())
}
