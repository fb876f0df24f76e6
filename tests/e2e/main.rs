//! The test binary `e2e`: end to end on real parts. Each test runs the crowdwall daemon
//! (`crowdwall run`) in network namespaces of its own and drives it the way its users do:
//! real sshd, nginx, journald, kernel log, NFLOG, syslog, files, CrowdSec's Local API and
//! bouncers, the community hub's binary. Needs root and the lab of tests/lab/deps.sh; without
//! them each test prints "skipped: REASON" and passes, unless CROWDWALL_REQUIRE_ROOT_TESTS=1.
//!
//! One binary (one link) for all of them, run two at a time (`--test-threads=2`). What keeps
//! two tests from meeting (see tests/common/mod.rs): every namespace and veth name carries a
//! per-process tag under a prefix of its test's; addresses, ports, NFLOG groups and nftables
//! tables are per namespace; each daemon has its own directory (config, socket, state, log).
//! The journal is shared: the daemons that read it match the identifier of the one service
//! their test plays (sshd, kernel, nginx) and look at the addresses their test attacks from;
//! the sshd attacks, the only ones two tests make on one identifier, take turns
//! (`ssh_lab::exclusive`), as they did when each test was a binary of its own.

#[path = "../common/mod.rs"]
mod common;

mod bouncer_api;
mod community;
mod crowdsec_lapi;
mod decisions;
mod f2b_journal;
mod feeds;
mod nflog_portscan;
mod ports;
mod portscan;
mod restarts;
mod sandbox;
mod sources;
mod ssh;
mod ssh_pace;
mod web;
