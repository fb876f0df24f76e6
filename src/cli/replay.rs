//! `crowdwall replay` and `crowdwall explain`: the engine's pipeline on files and lines.

use std::io::{BufReader, Write};
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};

use crowdwall_base::{clock, time};
use crowdwall_engine::parse::{Parsed, Parsers};
use crowdwall_engine::text::{parse_line, SyslogContext, TextReader};
use crowdwall_engine::LogEntry;

use super::{load_config, ui};

fn this_year() -> i32 {
    crowdwall_engine::text::year_of(clock::now())
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
        if let Some(t) = crowdwall_engine::parse::time::line_time(&line) {
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

pub fn replay(
    config: &Path,
    events: bool,
    year: Option<i32>,
    parser: Option<&str>,
    files: &[PathBuf],
) -> Result<()> {
    let cfg = load_config(config)?;
    let mut r = cfg.replay()?;
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
        let mut progress = ui::Progress::new(format!("{}", f.display()), size);
        let counting = ui::Counting {
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
            // Events are always collected, so the summary counts them with or without
            // --events; they are printed only with it.
            let res = r.feed(&entry, Some(&mut evs), &mut decisions);
            if matches!(res, Some((_, Parsed::Matched(_)))) {
                matched += 1;
            }
            n_events += evs.len() as u64;
            if events {
                for e in &evs {
                    serde_json::to_writer(&mut out, e)?;
                    out.write_all(b"\n")?;
                }
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
        "replayed {lines} lines in {secs:.2}s ({:.0} lines/s): {bad} unreadable, {matched} matched, {n_events} events, {n_decisions} decisions, {} refused (allowlisted)",
        lines as f64 / secs.max(1e-9),
        r.refused.len()
    );
    Ok(())
}

pub fn explain(config: &Path, line: &str, parser: Option<&str>, json: bool) -> Result<()> {
    let cfg = load_config(config)?;
    let mut parsers = cfg.parsers()?;
    let names = parsers.names();
    let raw = |p: &str| LogEntry {
        time: crowdwall_engine::parse::time::line_time(line).unwrap_or_else(clock::now),
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
            cfg.parsers.0.keys().cloned().collect::<Vec<_>>().join(", ")
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
