//! The toolbox of every integration test binary (`netlink`, `suite`, `e2e`) and of
//! benches/latency.rs: each helper once, in small modules.
//!
//! - [`proc`]: running commands, children killed on drop, polling for a condition;
//! - [`netns`]: network namespaces, veth links, commands and threads inside a namespace,
//!   the server/attacker/bystander site;
//! - [`nft`]: what the kernel's tables and sets hold, read back with the nft CLI;
//! - [`journald`]: the real system journal (started when needed), writing to it;
//! - [`cli`]: the binaries under test, the shipped configs, fixtures;
//! - [`daemon`]: `crowdwall run` in a namespace and the CLI against its socket;
//! - [`ssh_lab`]: a real sshd, an attacker and a bystander, a password-guessing attack;
//! - [`hub`]: the community hub as a library on loopback, agents enrolled to it.
//!
//! Tests that need root or tools skip with a message, unless CROWDWALL_REQUIRE_ROOT_TESTS=1
//! (CI), where a missing prerequisite is a failure ([`prerequisites`], [`available`]).
//!
//! Tests of one binary run two at a time (`--test-threads=2`): names they make (namespaces,
//! veths) carry a [`tag`], daemons live in directories of their own, addresses and ports
//! are per namespace, and what all share (the journal, sysctls) is said where it matters.
#![allow(dead_code)]

pub mod cli;
pub mod daemon;
pub mod f2b_samples;
pub mod hub;
pub mod journald;
pub mod netns;
pub mod nft;
pub mod proc;
pub mod ssh_lab;

// The names most tests (and benches/latency.rs) use, at the top; not every binary uses each.
#[allow(unused_imports)]
pub use cli::hub_bin;
#[allow(unused_imports)]
pub use daemon::Daemon;
#[allow(unused_imports)]
pub use netns::{tag, veth, Netns};
#[allow(unused_imports)]
pub use proc::{must, run, wait_until, Proc};

use std::path::Path;
use std::process::Command;

/// Whether CI asked for every test to run (CROWDWALL_REQUIRE_ROOT_TESTS=1).
pub fn required() -> bool {
    std::env::var("CROWDWALL_REQUIRE_ROOT_TESTS").as_deref() == Ok("1")
}

/// A test cannot run here: panics with `reason` when tests are [`required`], else prints
/// "skipped: REASON" and returns false (the caller returns: the test passes).
pub fn skip(reason: &str) -> bool {
    if required() {
        panic!("{reason}");
    }
    eprintln!("skipped: {reason}");
    false
}

/// True when `check` found everything there; else as [`skip`] with its reason.
pub fn available(check: Result<(), String>) -> bool {
    match check {
        Ok(()) => true,
        Err(reason) => skip(&reason),
    }
}

/// Ok as root.
pub fn require_root() -> Result<(), String> {
    // SAFETY: geteuid has no preconditions and cannot fail.
    if unsafe { libc::geteuid() } != 0 {
        return Err("not root".into());
    }
    Ok(())
}

/// Ok when `path` exists.
pub fn have(path: &str) -> Result<(), String> {
    if Path::new(path).exists() {
        Ok(())
    } else {
        Err(format!("{path} not installed"))
    }
}

/// Root, the `tools` on PATH, and (if `journald`) a journald that takes writes: true when
/// all are there; else as [`skip`], naming everything missing.
pub fn prerequisites(tools: &[&str], journald: bool) -> bool {
    let mut missing = Vec::new();
    if require_root().is_err() {
        missing.push("root".to_string());
    }
    for t in tools {
        if !Command::new("sh")
            .args(["-c", &format!("command -v {t}")])
            .output()
            .map(|o| o.status.success())
            .unwrap_or(false)
        {
            missing.push(format!("tool {t}"));
        }
    }
    if journald && !journald::writable() {
        missing.push("a running journald (tests/lab/deps.sh starts one)".into());
    }
    if missing.is_empty() {
        return true;
    }
    skip(&format!("needs {}", missing.join(", ")))
}
