//! The binaries under test and the CLI run on its own (no daemon): paths, the shipped
//! configs, fixtures.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// The host's binary, `crowdwall` (CLI and `crowdwall run`).
pub const BIN: &str = env!("CARGO_BIN_EXE_crowdwall");

/// The shipped host configuration.
pub const CONFIG: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/config/crowdwall.toml");

/// The shipped hub configuration.
pub const HUB_CONFIG: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/config/hub.toml");

/// Runs `crowdwall ARGS...` (no daemon, no namespace): its output.
pub fn crowdwall(args: &[&str]) -> Output {
    Command::new(BIN)
        .args(args)
        .output()
        .expect("run crowdwall")
}

/// The path of tests/fixtures/NAME.
pub fn fixture(name: &str) -> String {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name)
        .display()
        .to_string()
}

/// The hub's binary, `crowdwall-hub`: another package of the workspace, so cargo builds it
/// beside the host's binary (`cargo build --workspace`, as tests/run.sh does) but gives the
/// host's tests no `CARGO_BIN_EXE_` for it.
pub fn hub_bin() -> PathBuf {
    let p = Path::new(BIN).with_file_name("crowdwall-hub");
    assert!(
        p.exists(),
        "{} is missing: build the workspace first (cargo build --workspace, with the same profile)",
        p.display()
    );
    p
}
