//! The command line: every subcommand and option, as clap definitions (`--help`, the man
//! page and the completions all come from here).

use std::path::PathBuf;

use clap::{Parser, Subcommand};

use crowdwall_daemon::config::DEFAULT_PATH;

/// Exit code when the daemon cannot be reached.
pub const EXIT_UNREACHABLE: u8 = 3;

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
pub struct Cli {
    /// Configuration file (the embedded default is used when the default path is missing).
    #[arg(long, global = true, default_value = DEFAULT_PATH)]
    pub config: PathBuf,
    /// Control socket of the daemon (default: from the config).
    #[arg(long, global = true)]
    pub socket: Option<PathBuf>,
    #[command(subcommand)]
    pub cmd: Cmd,
}

#[derive(Subcommand)]
pub enum Cmd {
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
        /// Print the result as JSON (file, scenarios, allowlist).
        #[arg(long)]
        json: bool,
    },
    /// List, add or delete decisions (bans).
    #[command(subcommand)]
    Decisions(DecisionsCmd),
    /// Make the running daemon read its configuration file again (as SIGHUP does). A broken
    /// file is refused with file:line and the running configuration stays.
    Reload,
    /// The daemon's state: sources, parsers, buckets, decisions, kernel sets, packets
    /// dropped per origin, the allowlist.
    Status {
        /// Print the whole status as JSON (stable keys, for scripts).
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
        /// Log files: syslog text (auth.log) or `journalctl -o json` output.
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
        /// Print the answer as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Manage crowdwall's nftables table.
    #[command(subcommand)]
    Firewall(FirewallCmd),
    /// The daemon's recent log lines (it keeps the last 2000, whether it logs to the journal
    /// or to stderr); with --follow, new lines as they come, like `tail -f`.
    Log {
        /// Keep printing new lines until interrupted (a daemon restart is waited for).
        #[arg(short, long)]
        follow: bool,
        /// How many of the newest lines to print first.
        #[arg(short = 'n', long, default_value_t = 20)]
        lines: usize,
    },
    /// Counters as tables: sources, parsers, scenarios, decisions, netlink (the same numbers
    /// as the Prometheus endpoint).
    Metrics {
        /// Print the counters as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Write the man pages (crowdwall.1 and one per subcommand) and shell completions for
    /// bash, zsh and fish into a directory (the package build does).
    Generate {
        /// Directory to write the man pages and completions into.
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
}

#[derive(Subcommand)]
pub enum BouncersCmd {
    /// Register a bouncer; prints its key once (only its SHA-256 is stored).
    Add {
        /// A name for the bouncer (letters, digits, '-', '_').
        name: String,
    },
    /// Registered bouncers and when they last pulled.
    List {
        /// Print the list as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Revoke a bouncer's key.
    Delete {
        /// The bouncer's name, as `bouncers list` shows it.
        name: String,
    },
}

#[derive(Subcommand)]
pub enum CommunityCmd {
    /// Enrol this host with a hub; writes the credentials file (root only).
    Register {
        /// The hub's URL, e.g. https://hub.example.org
        #[arg(long)]
        hub: String,
        /// A name for this agent shown to the hub's administrator (default: none).
        #[arg(long)]
        name: Option<String>,
        /// The hub's enrolment token, when it requires one.
        #[arg(long)]
        token: Option<String>,
        /// State directory (default: [daemon] state_dir).
        #[arg(long)]
        state_dir: Option<PathBuf>,
    },
}

#[derive(Subcommand)]
pub enum DecisionsCmd {
    /// Active decisions, with a count per scenario (the filters combine, as fail2ban-client
    /// status JAIL shows one jail).
    List {
        /// Print the decisions as a JSON array.
        #[arg(long)]
        json: bool,
        /// Only decisions of this scenario (ssh-bruteforce, a feed's name...).
        #[arg(long)]
        scenario: Option<String>,
        /// Only decisions of this origin (local, manual, community, crowdsec, lists).
        #[arg(long)]
        origin: Option<String>,
        /// Only decisions that cover this address (the address itself or a range holding it).
        #[arg(long)]
        ip: Option<String>,
        /// Only decisions inside this CIDR range (its addresses and sub-ranges).
        #[arg(long)]
        range: Option<String>,
    },
    /// Ban an address or CIDR range.
    Add {
        /// An address (203.0.113.7, 2001:db8::1) or a CIDR range (198.51.100.0/24).
        value: String,
        /// How long (90s, 10m, 4h, 7d); default: [ban] duration.
        #[arg(long)]
        duration: Option<String>,
        /// Why, shown by `decisions list`.
        #[arg(long)]
        reason: Option<String>,
        /// Drop only TCP and UDP to these ports (22 or 22,2222) instead of every port. The
        /// list must be one the config names (a scenario's `ports`, or `[ban.ports]`): each
        /// has its own sets in the table.
        #[arg(long, value_name = "PORTS")]
        ports: Option<String>,
    },
    /// Lift decisions: every one on exactly VALUE, everything inside --range, or --all.
    #[command(group(clap::ArgGroup::new("what").required(true).args(["value", "range", "all"])))]
    Delete {
        /// The address or range whose decisions end (exactly this value).
        value: Option<String>,
        /// End every decision inside this CIDR range: its addresses and sub-ranges.
        #[arg(long)]
        range: Option<String>,
        /// End every active decision (unban everything).
        #[arg(long)]
        all: bool,
    },
    /// Forget an address's offence history, so its next ban is a first offence again
    /// (escalation starts over at [ban] duration).
    Forget {
        /// The address or range (as its decisions name it).
        value: String,
    },
}

#[derive(Subcommand)]
pub enum FirewallCmd {
    /// Delete the table and every ban in it (the daemon re-creates it when it runs).
    Remove,
}
