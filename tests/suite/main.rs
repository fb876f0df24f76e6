//! The test binary `suite`: everything that is not a daemon end to end. The parsers and
//! scenarios through the pure pipeline (sshd parser, hostile input, fail2ban's corpus), the
//! CLI as an admin uses it, the journal source (journal files and the real journald), the
//! community hub over loopback (SQLite, PostgreSQL, its page in headless Chromium).
//!
//! One binary (one link) for all of them, run two at a time (`--test-threads=2`): they share
//! nothing a test could trip over (temporary directories, free or ephemeral loopback ports,
//! a hub instance and a database of their own, journal identifiers of their own; the one
//! namespace test names its namespace with a tag).

#[path = "../common/mod.rs"]
mod common;

mod cli;
mod cli_parsers;
mod conformance;
mod f2b_filters;
mod f2b_hostile;
mod f2b_jails;
mod hub;
mod hub_page;
mod journal;
mod parsers_hostile;
mod scenarios;
mod sshd_parser;
