//! Processes: running a command for its output, keeping a child for the length of a test,
//! polling for a condition.

use std::process::{Child, Command, Output};
use std::time::{Duration, Instant};

/// Runs a command, returning its output (never panics on failure exit).
pub fn run(args: &[&str]) -> Output {
    Command::new(args[0])
        .args(&args[1..])
        .output()
        .unwrap_or_else(|e| panic!("cannot run {args:?}: {e}"))
}

/// Runs a command and panics with its output if it fails; its stdout otherwise.
pub fn must(args: &[&str]) -> String {
    let o = run(args);
    assert!(
        o.status.success(),
        "{args:?} failed: {}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
    String::from_utf8_lossy(&o.stdout).into_owned()
}

/// A command's stdout then stderr, as text.
pub fn text(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

/// A child process killed (and reaped) on drop.
pub struct Proc(pub Child);

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Spawns `cmd`, to be killed when the returned `Proc` goes; `what` names it in the panic
/// when it cannot start.
pub fn spawn(cmd: &mut Command, what: &str) -> Proc {
    Proc(
        cmd.spawn()
            .unwrap_or_else(|e| panic!("cannot start {what}: {e}")),
    )
}

/// Polls `f` until it is true or `limit` passes. Not a timing assertion: limits are generous
/// and only bound how long a failing test hangs.
pub fn wait_until(limit: Duration, mut f: impl FnMut() -> bool) -> bool {
    let start = Instant::now();
    while start.elapsed() < limit {
        if f() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    f()
}
