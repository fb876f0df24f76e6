//! `crowdwall log [-f]`: the daemon's kept log lines, then (with -f) new ones as they come.
//! Polls the control socket: the daemon keeps its lines numbered, so a poll asks for what
//! follows the last line printed and nothing is shown twice or skipped unsaid.

use std::path::Path;
use std::time::Duration;

use anyhow::{Context, Result};
use crowdwall_base::logging::LogLine;
use crowdwall_daemon::control::Request;

/// How often -f asks for new lines: often enough to read as live, cheap for the daemon.
const POLL: Duration = Duration::from_millis(300);

/// One poll: the lines after `after`, the number the next line gets, and the daemon's pid
/// (a restarted daemon numbers from 1 again).
fn fetch(socket: &Path, after: u64, max: usize) -> Result<(Vec<LogLine>, u64, u64)> {
    let v = super::call(socket, Request::Log { after, max })?;
    let lines: Vec<LogLine> = serde_json::from_value(v["lines"].clone()).context(
        "the daemon's log lines do not parse (is the daemon the same version as this CLI?)",
    )?;
    Ok((
        lines,
        v["next"].as_u64().unwrap_or(0),
        v["pid"].as_u64().unwrap_or(0),
    ))
}

fn print(l: &LogLine) {
    println!("{} {:<5} {}", l.time, l.level, l.message);
}

pub fn show(socket: &Path, lines: usize, follow: bool) -> Result<()> {
    let (first, next, mut pid) = fetch(socket, 0, lines)?;
    first.iter().for_each(print);
    if !follow {
        return Ok(());
    }
    // Every line numbered up to `last` is shown, or was older than asked for.
    let mut last = next.saturating_sub(1);
    let mut unreachable = false;
    loop {
        std::thread::sleep(POLL);
        let polled = fetch(socket, last, 1000).and_then(|(got, next, p)| {
            if p == pid {
                return Ok((got, next, false));
            }
            // Another daemon: its lines are all new to us.
            eprintln!("(the daemon restarted)");
            pid = p;
            let (got, next, _) = fetch(socket, 0, lines)?;
            Ok((got, next, true))
        });
        match polled {
            Ok((got, next, restarted)) => {
                if unreachable {
                    eprintln!("(the daemon answers again)");
                    unreachable = false;
                }
                if let Some(l) = got.first() {
                    if !restarted && l.seq > last + 1 {
                        eprintln!("({} line(s) went by too fast to show)", l.seq - last - 1);
                    }
                }
                got.iter().for_each(print);
                last = got.last().map_or(next.saturating_sub(1), |l| l.seq);
            }
            Err(e) => {
                if !unreachable {
                    eprintln!("(cannot reach the daemon: {e:#}; waiting for it)");
                    unreachable = true;
                }
            }
        }
    }
}
