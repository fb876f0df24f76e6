//! crowdwall: reads service logs, detects abuse with leaky buckets, and bans the sources in
//! nftables through netlink.
//!
//! # Layout
//!
//! The modules follow the data flow of one log entry:
//!
//! - [`source`]: where entries come from (the systemd journal through sd-journal, text files
//!   and `journalctl -o json` exports for replay). Produces [`source::LogEntry`].
//! - [`parse`]: turns an entry into zero or more [`parse::Event`]s (sshd first). Pure.
//! - [`detect`]: leaky-bucket scenarios over events, driven by the events' own timestamps.
//!   Produces [`detect::Overflow`]s. Pure.
//! - [`decide`]: turns overflows and manual requests into [`decide::Decision`]s (duration,
//!   escalation, allowlist). Pure.
//! - [`store`]: the embedded SQLite that keeps decisions and offence history.
//! - [`enforce`]: the [`enforce::Firewall`] trait, the plan that turns decisions into disjoint
//!   kernel intervals, and the nftables netlink backend.
//! - [`daemon`]: wires the above together for `crowdwall run`.
//! - [`control`]: the unix-socket protocol between the daemon and the CLI.
//! - [`replay`]: the same pure pipeline fed from files, for `replay`, `explain` and benchmarks.
//! - [`config`]: the TOML configuration, its defaults and validation.
//! - [`api`]: the CrowdSec-compatible bouncer API (existing bouncers pull our decisions).
//! - [`ingest`]: decisions pulled in: a CrowdSec Local API followed as a bouncer, blocklist
//!   feeds.
//! - [`community`]: at the edge: signals to a hub, the community blocklist back, and
//!   `crowdwall hub` itself.
//! - [`metrics`]: the counters snapshot, as Prometheus text (optional endpoint) and tables.
//! - [`ui`]: colour and progress for the CLI, only on a terminal.
//! - [`lockout`]: warns when a logged-in SSH session's address is not allowlisted.

pub mod api;
pub mod community;
pub mod config;
pub mod control;
pub mod daemon;
pub mod decide;
pub mod detect;
pub mod enforce;
pub mod fail2ban;
pub mod ingest;
pub mod lockout;
pub mod metrics;
pub mod parse;
pub mod replay;
pub mod source;
pub mod store;
pub mod time;
pub mod ui;
