//! `crowdwall status` and `crowdwall decisions list` as text.

use crowdwall_daemon::control::Status;

use super::ui;

/// Which decisions `decisions list` shows.
#[derive(Debug, Default)]
pub struct Filter {
    pub scenario: Option<String>,
    pub origin: Option<String>,
    /// Decisions covering this address.
    pub ip: Option<std::net::IpAddr>,
    /// Decisions inside this range.
    pub range: Option<ipnet::IpNet>,
}

impl Filter {
    pub fn keeps(&self, r: &serde_json::Value) -> bool {
        let s = |k: &str| r[k].as_str().unwrap_or("");
        let value: Option<ipnet::IpNet> = crowdwall_base::parse_net(s("value")).ok();
        self.scenario.as_deref().is_none_or(|x| s("scenario") == x)
            && self.origin.as_deref().is_none_or(|x| s("origin") == x)
            && self
                .ip
                .is_none_or(|ip| value.is_some_and(|v| v.contains(&ip)))
            && self
                .range
                .is_none_or(|c| value.is_some_and(|v| c.contains(&v)))
    }
}

/// The decisions as an aligned table (every column padded to its widest cell) and a count
/// per scenario, like `fail2ban-client status JAIL`.
pub fn decisions_table(rows: &[serde_json::Value]) -> String {
    if rows.is_empty() {
        return "no active decisions\n".into();
    }
    let cols = [
        "id",
        "value",
        "origin",
        "scenario",
        "ports",
        "remaining",
        "reason",
    ];
    let cell = |r: &serde_json::Value, k: &str| match &r[k] {
        serde_json::Value::String(s) => s.clone(),
        serde_json::Value::Null => String::new(),
        v => v.to_string(),
    };
    let table: Vec<Vec<String>> = rows
        .iter()
        .map(|r| cols.iter().map(|k| cell(r, k)).collect())
        .collect();
    let mut widths: Vec<usize> = cols.iter().map(|c| c.len()).collect();
    for row in &table {
        for (w, c) in widths.iter_mut().zip(row) {
            *w = (*w).max(c.chars().count());
        }
    }
    let line = |cells: Vec<String>| {
        let mut l = String::new();
        for (i, c) in cells.iter().enumerate() {
            if i + 1 == cells.len() {
                l.push_str(c);
            } else {
                l.push_str(&format!("{c:<w$}  ", w = widths[i]));
            }
        }
        l.trim_end().to_string() + "\n"
    };
    let mut out = line(cols.iter().map(|c| c.to_uppercase()).collect());
    for row in table {
        out.push_str(&line(row));
    }
    let mut per: std::collections::BTreeMap<String, usize> = Default::default();
    for r in rows {
        let key = match r["scenario"].as_str() {
            Some(s) if !s.is_empty() => s.to_string(),
            _ => format!("({})", r["origin"].as_str().unwrap_or("?")),
        };
        *per.entry(key).or_default() += 1;
    }
    out.push_str(&format!(
        "{} decision(s): {}\n",
        rows.len(),
        per.iter()
            .map(|(k, n)| format!("{k} {n}"))
            .collect::<Vec<_>>()
            .join(", ")
    ));
    out
}

/// A file, syslog or NFLOG source's counters in words, as the journal's line reads (the raw
/// keys stay in `--json`).
fn source_line(s: &crowdwall_daemon::source::SourceStatus) -> String {
    let n = |k: &str| s.details.get(k).and_then(|v| v.as_u64());
    let mut parts = Vec::new();
    for (k, what) in [
        ("files_followed", "file(s) followed"),
        ("datagrams", "datagram(s)"),
        ("packets", "packet(s)"),
        ("lines", "lines"),
    ] {
        if let Some(v) = n(k) {
            parts.push(format!("{v} {what}"));
        }
    }
    parts.push(format!("{} entries read", s.entries_read));
    let why: Vec<String> = [
        ("skipped_too_long", "too long"),
        ("skipped_invalid_utf8", "not UTF-8"),
        ("skipped_malformed", "malformed"),
    ]
    .iter()
    .filter_map(|(k, what)| n(k).filter(|&v| v > 0).map(|v| format!("{v} {what}")))
    .collect();
    if why.is_empty() {
        parts.push(format!("{} skipped", s.skipped));
    } else {
        parts.push(format!("{} skipped ({})", s.skipped, why.join(", ")));
    }
    for (k, what) in [
        ("rotations", "rotation(s)"),
        ("truncations", "truncation(s)"),
        ("overruns", "overrun(s)"),
    ] {
        if let Some(v) = n(k) {
            parts.push(format!("{v} {what}"));
        }
    }
    if let Some(g) = s.details.get("group").and_then(|v| v.as_u64()) {
        parts.push(format!("group {g}"));
    }
    // Anything a newer daemon counts that this CLI does not know yet, as it is.
    let known = [
        "files_followed",
        "datagrams",
        "packets",
        "lines",
        "skipped_too_long",
        "skipped_invalid_utf8",
        "skipped_malformed",
        "rotations",
        "truncations",
        "overruns",
        "group",
    ];
    for (k, v) in &s.details {
        if !known.contains(&k.as_str()) {
            parts.push(format!("{k} {v}"));
        }
    }
    format!("source {}: {}", s.name, parts.join(", "))
}

/// Bytes for people: 1.5 KiB, 3.2 MiB.
fn bytes(n: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut v = n as f64;
    let mut u = 0;
    while v >= 1024.0 && u + 1 < UNITS.len() {
        v /= 1024.0;
        u += 1;
    }
    if u == 0 {
        format!("{n} B")
    } else {
        format!("{v:.1} {}", UNITS[u])
    }
}

pub fn print_status(v: &Status) {
    println!("crowdwall {} up {}s", v.version, v.uptime_s);
    for s in &v.sources {
        if s.name != "journal" {
            println!("{}", source_line(s));
            continue;
        }
        let caught_up = s.details.get("caught_up").and_then(|c| c.as_bool()) == Some(true);
        // While a resume drains its backlog: how far it is (entries read of those the
        // cursor left behind) and the time of the entry it is at.
        let backlog = s
            .details
            .get("backlog")
            .and_then(|c| c.as_u64())
            .unwrap_or(0);
        let at = s.details.get("newest_entry").and_then(|c| c.as_str());
        let catching_up = match (caught_up, backlog, at) {
            (true, _, _) => String::new(),
            (false, 0, Some(t)) => format!(", catching up (at {t})"),
            (false, 0, None) => String::new(),
            (false, n, t) => {
                let capped =
                    s.details.get("backlog_capped").and_then(|c| c.as_bool()) == Some(true);
                let read = s.entries_read + s.skipped;
                format!(
                    ", catching up: {} of {}{n} entries read{}",
                    if capped { read } else { read.min(n) },
                    if capped { "more than " } else { "" },
                    t.map(|t| format!(" (at {t})")).unwrap_or_default()
                )
            }
        };
        // A gap: the saved cursor was gone at start (vacuumed); the log says from when.
        let gaps = match s.gaps {
            0 => String::new(),
            n => format!(", {n} gap(s): the saved cursor was vacuumed, entries in between lost"),
        };
        println!(
            "source {}: {} entries read, {} skipped, lag {}s{}{}{}",
            s.name,
            s.entries_read,
            s.skipped,
            s.lag_s,
            if caught_up { ", caught up" } else { "" },
            catching_up,
            gaps
        );
    }
    let st = &v.store;
    if let Some(e) = &st.error {
        println!(
            "{} {e} (since {}): {} decision(s) enforced and waiting to be written; positions held back until then",
            ui::paint(ui::colour(), "1;31", "store refuses writes:"),
            st.failing_since.as_deref().unwrap_or("?"),
            st.pending
        );
    }
    let fs = &v.firewall.stats;
    if fs.warmed > 0 || fs.recovered > 0 {
        println!(
            "at start: {} journal entries read again to rebuild the buckets; {} ban(s) adopted from the kernel (new store)",
            fs.warmed, fs.recovered
        );
    }
    // Parsers that saw no line are left out, except sshd (the default source). Counted since
    // the daemon started; a reload keeps them.
    for (name, p) in &v.parsers {
        if name != "sshd" && p.lines == 0 {
            continue;
        }
        println!(
            "parser {name}: {} lines, {} matched, {} unmatched, {} rejected, {} events",
            p.lines, p.matched, p.unmatched, p.rejected, p.events
        );
    }
    let b = &v.buckets;
    println!(
        "buckets: {} live, {} overflows, {} evicted idle, {} evicted by cap",
        b.live_buckets, b.overflows, b.evicted_idle, b.evicted_cap
    );
    println!(
        "decisions: {}",
        v.decisions
            .iter()
            .map(|(k, n)| format!("{k} {n}"))
            .collect::<Vec<_>>()
            .join(", ")
    );
    let warn = ui::colour();
    for s in &v.lockout.unprotected_sessions {
        println!(
            "{} {} is logged in over SSH from {} ({}), not allowlisted: add it to [allowlist] cidrs or /etc/crowdwall/allowlist.d/admin.list",
            ui::paint(warn, "1;33", "WARNING lockout risk:"),
            s.user,
            s.address,
            s.line,
        );
    }
    if let Some(e) = &v.lockout.error {
        println!("lockout guard: {e}");
    }
    let f = &v.firewall;
    println!(
        "firewall {}: v4 {} element(s), v6 {}; {} transaction(s), {} failed, {} heal(s)",
        f.table,
        f.sets.v4,
        f.sets.v6,
        f.stats.transactions,
        f.stats.transaction_failures,
        f.stats.heals
    );
    if !f.dropped.is_empty() {
        println!(
            "dropped: {}",
            f.dropped
                .iter()
                .map(|d| format!("{} {} packet(s), {}", d.origin, d.packets, bytes(d.bytes)))
                .collect::<Vec<_>>()
                .join("; ")
        );
    }
    if let Some(e) = &f.error {
        println!("firewall counters: {e}");
    }
    let a = &v.allowlist;
    let list = |v: &[String]| {
        if v.is_empty() {
            "none".to_string()
        } else {
            v.join(", ")
        }
    };
    println!(
        "allowlist: loopback and link-local always; configured {}; allowlist.d {}; own addresses {}",
        list(&a.configured),
        list(&a.from_dir),
        list(&a.own_addresses)
    );
    if let Some(c) = &v.community {
        println!(
            "community {}: {} signal(s) delivered, {} refused by the hub, {} in the outbox, {} push failure(s); {} blocklist entries, {} pull(s), {} failed",
            c["hub"].as_str().unwrap_or("?"),
            c["signals_delivered"],
            c["signals_refused"],
            c["outbox"],
            c["push_failures"],
            c["blocklist_entries"],
            c["pulls"],
            c["pull_failures"]
        );
    }
    if f.behind_store {
        println!(
            "firewall: the kernel refused the last change; retrying with back-off (see the log)"
        );
    }
    for (what, s) in v.ingest.as_object().cloned().unwrap_or_default() {
        let at = |k: &str| s[k].as_str().unwrap_or("never").to_string();
        match s["error"].as_str() {
            Some(e) => println!(
                "{what}: last ok {}; failing since {}: {e}",
                at("last_ok"),
                at("last_error_at")
            ),
            None => println!(
                "{what}: ok at {}: {}",
                at("last_ok"),
                s["last_result"].as_str().unwrap_or("")
            ),
        }
    }
}
