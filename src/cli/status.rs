//! `crowdwall status` and `crowdwall decisions list` as text.

use crowdwall_daemon::control::Status;

use super::ui;

pub fn print_decisions(v: &serde_json::Value) {
    let rows = v.as_array().cloned().unwrap_or_default();
    if rows.is_empty() {
        println!("no active decisions");
        return;
    }
    println!(
        "{:<6} {:<40} {:<7} {:<22} {:<10} REASON",
        "ID", "VALUE", "ORIGIN", "SCENARIO", "REMAINING"
    );
    for r in rows {
        let s = |k: &str| r[k].as_str().unwrap_or("").to_string();
        println!(
            "{:<6} {:<40} {:<7} {:<22} {:<10} {}",
            r["id"],
            s("value"),
            s("origin"),
            s("scenario"),
            s("remaining"),
            s("reason")
        );
    }
}

pub fn print_status(v: &Status) {
    println!("crowdwall {} up {}s", v.version, v.uptime_s);
    for s in &v.sources {
        if s.name != "journal" {
            // files, syslog, nflog: their counters as they are
            let mut fields = vec![format!("entries_read {}", s.entries_read)];
            fields.extend(s.details.iter().map(|(k, v)| format!("{k} {v}")));
            println!("source {}: {}", s.name, fields.join(", "));
            continue;
        }
        println!(
            "source {}: {} entries read, {} skipped, lag {}s{}",
            s.name,
            s.entries_read,
            s.skipped,
            s.lag_s,
            if s.details.get("caught_up").and_then(|c| c.as_bool()) == Some(true) {
                ", caught up"
            } else {
                ""
            }
        );
    }
    // Parsers that saw no line are left out, except sshd (the default source).
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
    if let Some(e) = &f.error {
        println!("firewall counters: {e}");
    }
    if let Some(c) = &v.community {
        println!(
            "community {}: {} signal(s) delivered, {} in the outbox, {} push failure(s); {} blocklist entries, {} pull(s), {} failed",
            c["hub"].as_str().unwrap_or("?"),
            c["signals_delivered"],
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
