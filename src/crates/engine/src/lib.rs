//! crowdwall's pure engine: everything between a log line and a kernel set, with no I/O.
//!
//! It has no tokio, no SQLite, no netlink and no clock (it depends on `crowdwall-base`
//! without the `clock` feature): every time comes from the log entry or from the caller, so
//! the daemon, `replay`, `explain`, the benchmarks and the tests run the same code and get
//! the same answers.
//!
//! The modules follow one entry's way:
//!
//! - [`entry`] and [`text`]: a [`LogEntry`], and the text formats entries arrive in (syslog
//!   RFC 3164/3339/5424 lines, `journalctl -o json` lines).
//! - [`parse`]: every service parser, entry in, [`parse::Event`]s out.
//! - [`detect`]: the leaky-bucket engine and every built-in scenario; `[scenarios.*]` and
//!   `[detect]` are its sections.
//! - [`decide`]: overflows and manual requests to [`decide::Decision`]s (duration,
//!   escalation, the allowlist that always wins); `[ban]` and `[allowlist]`.
//! - [`enforce`]: the [`enforce::Firewall`] trait, the kernel layout and the incremental plan
//!   that turns decisions into set elements, and the in-memory firewall for tests.
//! - [`replay`]: parse + detect (+ decide) as one pipeline.
//! - [`fail2ban`]: fail2ban jails converted to crowdwall configuration (text in, text out).

use crowdwall_base::time;

pub mod decide;
pub mod detect;
pub mod enforce;
pub mod entry;
pub mod fail2ban;
pub mod parse;
pub mod replay;
pub mod text;

pub use entry::LogEntry;
