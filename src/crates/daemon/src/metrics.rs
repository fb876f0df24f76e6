//! Metrics: one [`Snapshot`] of the daemon's counters, rendered two ways from the same data:
//! Prometheus text for the optional HTTP endpoint ([`render_prometheus`], [`serve`]) and
//! readable tables for `crowdwall metrics` ([`render_tables`]).
//!
//! The daemon builds the snapshot (`Core::metrics`) on its own thread when asked, either over
//! the control socket or by the HTTP task through a channel, so no counter is shared between
//! threads and nothing here touches the daemon's state.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::net::SocketAddr;

/// `[metrics]`: the optional Prometheus endpoint.
#[derive(Debug, Clone, PartialEq, Eq, serde::Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct MetricsSection {
    pub enabled: bool,
    pub listen: std::net::SocketAddr,
}

impl Default for MetricsSection {
    fn default() -> Self {
        MetricsSection {
            enabled: false,
            listen: std::net::SocketAddr::from(([127, 0, 0, 1], 9818)),
        }
    }
}

impl crowdwall_base::Section for MetricsSection {
    const NAME: &'static str = "metrics";
    fn check(&self) -> Result<(), crowdwall_base::SectionError> {
        Ok(())
    }
}

use serde::{Deserialize, Serialize};

/// Upper bounds (seconds) of the netlink transaction duration histogram. A transaction is one
/// sendmsg and its acks: around a millisecond for a few elements, tens for a full reload.
pub const DURATION_BOUNDS: [f64; 9] = [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 1.0];

/// A cumulative-on-render histogram of durations.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Histogram {
    /// Observations per bucket of [`DURATION_BOUNDS`], plus one for "larger".
    pub buckets: Vec<u64>,
    pub sum_s: f64,
    pub count: u64,
}

impl Histogram {
    pub fn observe(&mut self, d: std::time::Duration) {
        if self.buckets.len() != DURATION_BOUNDS.len() + 1 {
            self.buckets = vec![0; DURATION_BOUNDS.len() + 1];
        }
        let s = d.as_secs_f64();
        let i = DURATION_BOUNDS
            .iter()
            .position(|b| s <= *b)
            .unwrap_or(DURATION_BOUNDS.len());
        self.buckets[i] += 1;
        self.sum_s += s;
        self.count += 1;
    }

    pub fn mean_ms(&self) -> f64 {
        if self.count == 0 {
            0.0
        } else {
            self.sum_s * 1000.0 / self.count as f64
        }
    }
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct SourceMetrics {
    pub name: String,
    pub entries_read: u64,
    pub skipped: u64,
    pub gaps: u64,
    /// How far the cursor is behind the newest entry, in seconds (0 when caught up).
    pub lag_s: u64,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ParserMetrics {
    pub name: String,
    pub lines: u64,
    /// Lines a pattern matched.
    pub hits: u64,
    /// Lines no pattern matched.
    pub misses: u64,
    /// Lines refused before matching (control characters, oversize).
    pub rejected: u64,
    pub events: u64,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct NetlinkMetrics {
    pub transactions: u64,
    pub errors: u64,
    pub full_loads: u64,
    pub heals: u64,
    pub duration: Histogram,
}

/// Dropped traffic of one origin: the engine's type, as the firewall reports it.
pub use crowdwall_engine::enforce::DropCounter;

/// Everything `crowdwall metrics` and the Prometheus endpoint show.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Snapshot {
    pub version: String,
    pub uptime_s: u64,
    pub sources: Vec<SourceMetrics>,
    pub parsers: Vec<ParserMetrics>,
    pub live_buckets: u64,
    pub evicted_idle: u64,
    pub evicted_cap: u64,
    /// Overflows per scenario since start.
    pub overflows: BTreeMap<String, u64>,
    /// Overflows not turned into a ban: allowlisted, or the address was already banned.
    pub refused_allowlisted: u64,
    pub already_banned: u64,
    /// Local (scenario) bans made since start.
    pub bans_local: u64,
    /// Active decisions in the store, per origin.
    pub decisions_active: BTreeMap<String, u64>,
    /// Elements in the kernel sets, per family (absent when the table cannot be read).
    pub kernel_elements: Option<BTreeMap<String, u64>>,
    pub netlink: NetlinkMetrics,
    /// Dropped packets/bytes per origin. Empty until the enforce layer counts drops per origin
    /// (`Core::drop_counters`, the one place to wire them).
    pub drops: Vec<DropCounter>,
    /// Logged-in SSH sessions whose address is not allowlisted (lockout guard).
    pub unprotected_sessions: u64,
    /// 1 while the store refuses writes (a full disk), and the decisions waiting meanwhile.
    #[serde(default)]
    pub store_failing: u64,
    #[serde(default)]
    pub store_pending: u64,
}

/// Escapes a Prometheus label value.
fn label(v: &str) -> String {
    let mut s = String::with_capacity(v.len());
    for c in v.chars() {
        match c {
            '\\' => s.push_str("\\\\"),
            '"' => s.push_str("\\\""),
            '\n' => s.push_str("\\n"),
            c => s.push(c),
        }
    }
    s
}

/// The Prometheus text exposition format (version 0.0.4).
pub fn render_prometheus(s: &Snapshot) -> String {
    let mut o = String::new();
    let head = |o: &mut String, name: &str, kind: &str, help: &str| {
        let _ = writeln!(
            o,
            "# HELP crowdwall_{name} {help}\n# TYPE crowdwall_{name} {kind}"
        );
    };
    head(
        &mut o,
        "build_info",
        "gauge",
        "Version of the running daemon.",
    );
    let _ = writeln!(
        o,
        "crowdwall_build_info{{version=\"{}\"}} 1",
        label(&s.version)
    );
    head(
        &mut o,
        "uptime_seconds",
        "gauge",
        "Seconds since the daemon started.",
    );
    let _ = writeln!(o, "crowdwall_uptime_seconds {}", s.uptime_s);

    head(
        &mut o,
        "source_entries_read_total",
        "counter",
        "Log entries read per source.",
    );
    for x in &s.sources {
        let _ = writeln!(
            o,
            "crowdwall_source_entries_read_total{{source=\"{}\"}} {}",
            label(&x.name),
            x.entries_read
        );
    }
    head(
        &mut o,
        "source_entries_skipped_total",
        "counter",
        "Entries a source could not use (no message, unreadable).",
    );
    for x in &s.sources {
        let _ = writeln!(
            o,
            "crowdwall_source_entries_skipped_total{{source=\"{}\"}} {}",
            label(&x.name),
            x.skipped
        );
    }
    head(
        &mut o,
        "source_lag_seconds",
        "gauge",
        "How far the source's cursor is behind its newest entry.",
    );
    for x in &s.sources {
        let _ = writeln!(
            o,
            "crowdwall_source_lag_seconds{{source=\"{}\"}} {}",
            label(&x.name),
            x.lag_s
        );
    }

    for (metric, help, get) in [
        (
            "parser_lines_total",
            "Lines given to a parser.",
            (|p: &ParserMetrics| p.lines) as fn(&ParserMetrics) -> u64,
        ),
        (
            "parser_hits_total",
            "Lines a parser's patterns matched.",
            |p| p.hits,
        ),
        (
            "parser_misses_total",
            "Lines no pattern of the parser matched.",
            |p| p.misses,
        ),
        (
            "parser_rejected_total",
            "Lines refused before matching (control characters, oversize).",
            |p| p.rejected,
        ),
        ("parser_events_total", "Events the parser produced.", |p| {
            p.events
        }),
    ] {
        head(&mut o, metric, "counter", help);
        for p in &s.parsers {
            let _ = writeln!(
                o,
                "crowdwall_{metric}{{parser=\"{}\"}} {}",
                label(&p.name),
                get(p)
            );
        }
    }

    head(
        &mut o,
        "buckets_live",
        "gauge",
        "Leaky buckets currently held.",
    );
    let _ = writeln!(o, "crowdwall_buckets_live {}", s.live_buckets);
    head(
        &mut o,
        "buckets_evicted_total",
        "counter",
        "Buckets evicted, by reason (idle: empty; cap: pushed out by [detect] max_buckets).",
    );
    let _ = writeln!(
        o,
        "crowdwall_buckets_evicted_total{{reason=\"idle\"}} {}",
        s.evicted_idle
    );
    let _ = writeln!(
        o,
        "crowdwall_buckets_evicted_total{{reason=\"cap\"}} {}",
        s.evicted_cap
    );
    head(
        &mut o,
        "overflows_total",
        "counter",
        "Bucket overflows per scenario.",
    );
    for (k, v) in &s.overflows {
        let _ = writeln!(
            o,
            "crowdwall_overflows_total{{scenario=\"{}\"}} {v}",
            label(k)
        );
    }
    head(
        &mut o,
        "overflows_not_banned_total",
        "counter",
        "Overflows that made no ban, by reason.",
    );
    let _ = writeln!(
        o,
        "crowdwall_overflows_not_banned_total{{reason=\"allowlisted\"}} {}",
        s.refused_allowlisted
    );
    let _ = writeln!(
        o,
        "crowdwall_overflows_not_banned_total{{reason=\"already_banned\"}} {}",
        s.already_banned
    );
    head(
        &mut o,
        "bans_total",
        "counter",
        "Bans made by local scenarios since start.",
    );
    let _ = writeln!(
        o,
        "crowdwall_bans_total{{origin=\"local\"}} {}",
        s.bans_local
    );
    head(
        &mut o,
        "decisions_active",
        "gauge",
        "Active decisions in the store, per origin.",
    );
    for (k, v) in &s.decisions_active {
        let _ = writeln!(
            o,
            "crowdwall_decisions_active{{origin=\"{}\"}} {v}",
            label(k)
        );
    }
    if let Some(k) = &s.kernel_elements {
        head(
            &mut o,
            "kernel_set_elements",
            "gauge",
            "Elements in the kernel sets, per family.",
        );
        for (f, v) in k {
            let _ = writeln!(
                o,
                "crowdwall_kernel_set_elements{{family=\"{}\"}} {v}",
                label(f)
            );
        }
    }

    let n = &s.netlink;
    head(
        &mut o,
        "netlink_transactions_total",
        "counter",
        "nftables transactions sent.",
    );
    let _ = writeln!(o, "crowdwall_netlink_transactions_total {}", n.transactions);
    head(
        &mut o,
        "netlink_transaction_errors_total",
        "counter",
        "Transactions the kernel refused or that failed on the socket.",
    );
    let _ = writeln!(o, "crowdwall_netlink_transaction_errors_total {}", n.errors);
    head(
        &mut o,
        "netlink_full_loads_total",
        "counter",
        "Whole-table reloads (start, drift, heal).",
    );
    let _ = writeln!(o, "crowdwall_netlink_full_loads_total {}", n.full_loads);
    head(
        &mut o,
        "table_heals_total",
        "counter",
        "Times the table was found missing and restored.",
    );
    let _ = writeln!(o, "crowdwall_table_heals_total {}", n.heals);
    head(
        &mut o,
        "netlink_transaction_duration_seconds",
        "histogram",
        "Duration of nftables transactions, send to last ack.",
    );
    let mut cum = 0u64;
    for (i, b) in DURATION_BOUNDS.iter().enumerate() {
        cum += n.duration.buckets.get(i).copied().unwrap_or(0);
        let _ = writeln!(
            o,
            "crowdwall_netlink_transaction_duration_seconds_bucket{{le=\"{b}\"}} {cum}"
        );
    }
    let _ = writeln!(
        o,
        "crowdwall_netlink_transaction_duration_seconds_bucket{{le=\"+Inf\"}} {}",
        n.duration.count
    );
    let _ = writeln!(
        o,
        "crowdwall_netlink_transaction_duration_seconds_sum {}",
        n.duration.sum_s
    );
    let _ = writeln!(
        o,
        "crowdwall_netlink_transaction_duration_seconds_count {}",
        n.duration.count
    );

    head(
        &mut o,
        "dropped_packets_total",
        "counter",
        "Packets dropped by the ban rules, per origin.",
    );
    for d in &s.drops {
        let _ = writeln!(
            o,
            "crowdwall_dropped_packets_total{{origin=\"{}\"}} {}",
            label(&d.origin),
            d.packets
        );
    }
    head(
        &mut o,
        "dropped_bytes_total",
        "counter",
        "Bytes dropped by the ban rules, per origin.",
    );
    for d in &s.drops {
        let _ = writeln!(
            o,
            "crowdwall_dropped_bytes_total{{origin=\"{}\"}} {}",
            label(&d.origin),
            d.bytes
        );
    }
    head(
        &mut o,
        "lockout_unprotected_sessions",
        "gauge",
        "Logged-in SSH sessions whose address is not allowlisted.",
    );
    let _ = writeln!(
        o,
        "crowdwall_lockout_unprotected_sessions {}",
        s.unprotected_sessions
    );
    head(
        &mut o,
        "store_failing",
        "gauge",
        "1 while the store refuses writes (bans still reach the kernel).",
    );
    let _ = writeln!(o, "crowdwall_store_failing {}", s.store_failing);
    head(
        &mut o,
        "store_pending_decisions",
        "gauge",
        "Decisions enforced but waiting to be written to the store.",
    );
    let _ = writeln!(o, "crowdwall_store_pending_decisions {}", s.store_pending);
    o
}

/// A plain text table: a header row and aligned columns (numbers right-aligned).
fn table(out: &mut String, title: &str, header: &[&str], rows: &[Vec<String>]) {
    let _ = writeln!(out, "{title}");
    if rows.is_empty() {
        let _ = writeln!(out, "  (none)\n");
        return;
    }
    let mut w: Vec<usize> = header.iter().map(|h| h.len()).collect();
    for r in rows {
        for (i, c) in r.iter().enumerate() {
            w[i] = w[i].max(c.len());
        }
    }
    let line = |out: &mut String, cells: &[&str]| {
        let mut s = String::from(" ");
        for (i, c) in cells.iter().enumerate() {
            if i == 0 {
                let _ = write!(s, " {c:<width$}", width = w[i]);
            } else {
                let _ = write!(s, "  {c:>width$}", width = w[i]);
            }
        }
        let _ = writeln!(out, "{}", s.trim_end());
    };
    line(out, header);
    for r in rows {
        line(out, &r.iter().map(String::as_str).collect::<Vec<_>>());
    }
    out.push('\n');
}

/// The same snapshot as tables for a person (`crowdwall metrics`).
pub fn render_tables(s: &Snapshot) -> String {
    let mut o = String::new();
    let _ = writeln!(o, "crowdwall {} up {}s\n", s.version, s.uptime_s);
    let rows: Vec<Vec<String>> = s
        .sources
        .iter()
        .map(|x| {
            vec![
                x.name.clone(),
                x.entries_read.to_string(),
                x.skipped.to_string(),
                x.gaps.to_string(),
                x.lag_s.to_string(),
            ]
        })
        .collect();
    table(
        &mut o,
        "Sources",
        &["SOURCE", "READ", "SKIPPED", "GAPS", "LAG(s)"],
        &rows,
    );
    let rows: Vec<Vec<String>> = s
        .parsers
        .iter()
        .map(|p| {
            vec![
                p.name.clone(),
                p.lines.to_string(),
                p.hits.to_string(),
                p.misses.to_string(),
                p.rejected.to_string(),
                p.events.to_string(),
            ]
        })
        .collect();
    table(
        &mut o,
        "Parsers",
        &["PARSER", "LINES", "HITS", "MISSES", "REJECTED", "EVENTS"],
        &rows,
    );
    let rows: Vec<Vec<String>> = s
        .overflows
        .iter()
        .map(|(k, v)| vec![k.clone(), v.to_string()])
        .collect();
    table(&mut o, "Scenarios", &["SCENARIO", "OVERFLOWS"], &rows);
    let rows = vec![
        vec!["live".into(), s.live_buckets.to_string()],
        vec!["evicted idle".into(), s.evicted_idle.to_string()],
        vec!["evicted by cap".into(), s.evicted_cap.to_string()],
        vec![
            "overflows allowlisted".into(),
            s.refused_allowlisted.to_string(),
        ],
        vec![
            "overflows already banned".into(),
            s.already_banned.to_string(),
        ],
        vec!["local bans made".into(), s.bans_local.to_string()],
    ];
    table(&mut o, "Buckets", &["WHAT", "COUNT"], &rows);
    let rows: Vec<Vec<String>> = s
        .decisions_active
        .iter()
        .map(|(k, v)| vec![k.clone(), v.to_string()])
        .collect();
    table(&mut o, "Active decisions", &["ORIGIN", "ACTIVE"], &rows);
    let mut rows: Vec<Vec<String>> = s
        .drops
        .iter()
        .map(|d| vec![d.origin.clone(), d.packets.to_string(), d.bytes.to_string()])
        .collect();
    if rows.is_empty() {
        rows.push(vec!["(not counted yet)".into(), "-".into(), "-".into()]);
    }
    table(&mut o, "Dropped", &["ORIGIN", "PACKETS", "BYTES"], &rows);
    let n = &s.netlink;
    let mut rows = vec![
        vec!["transactions".into(), n.transactions.to_string()],
        vec!["errors".into(), n.errors.to_string()],
        vec!["full reloads".into(), n.full_loads.to_string()],
        vec!["heals".into(), n.heals.to_string()],
        vec![
            "mean duration (ms)".into(),
            format!("{:.3}", n.duration.mean_ms()),
        ],
    ];
    if let Some(k) = &s.kernel_elements {
        for (f, v) in k {
            rows.push(vec![format!("{f} elements"), v.to_string()]);
        }
    }
    table(&mut o, "Firewall (netlink)", &["WHAT", "VALUE"], &rows);
    if s.unprotected_sessions > 0 {
        let _ = writeln!(
            o,
            "WARNING: {} logged-in SSH session(s) not allowlisted (see `crowdwall status`)",
            s.unprotected_sessions
        );
    }
    if s.store_failing > 0 {
        let _ = writeln!(
            o,
            "WARNING: the store refuses writes; {} decision(s) enforced and waiting to be written (see `crowdwall status`)",
            s.store_pending
        );
    }
    o
}

/// A request for a snapshot, answered by the daemon's loop.
pub type SnapshotRequest = tokio::sync::oneshot::Sender<Snapshot>;

/// Serves `GET /metrics` on `listener` until the runtime stops; each scrape asks the daemon's
/// loop for a fresh snapshot through `tx`.
pub async fn serve(
    listener: tokio::net::TcpListener,
    tx: tokio::sync::mpsc::Sender<SnapshotRequest>,
) {
    use axum::{http::header, response::IntoResponse, routing::get, Router};
    let handler = move || {
        let tx = tx.clone();
        async move {
            let (otx, orx) = tokio::sync::oneshot::channel();
            if tx.send(otx).await.is_err() {
                return (
                    axum::http::StatusCode::SERVICE_UNAVAILABLE,
                    "daemon is shutting down\n",
                )
                    .into_response();
            }
            match orx.await {
                Ok(s) => (
                    [(
                        header::CONTENT_TYPE,
                        "text/plain; version=0.0.4; charset=utf-8",
                    )],
                    render_prometheus(&s),
                )
                    .into_response(),
                Err(_) => (
                    axum::http::StatusCode::SERVICE_UNAVAILABLE,
                    "daemon is shutting down\n",
                )
                    .into_response(),
            }
        }
    };
    let app = Router::new().route("/metrics", get(handler));
    if let Err(e) = axum::serve(listener, app).await {
        log::error!("metrics endpoint stopped: {e}");
    }
}

/// Binds the endpoint's listener; a non-loopback address is allowed but logged, since the
/// metrics name attackers' counts and the host's state.
pub fn bind(addr: SocketAddr) -> std::io::Result<tokio::net::TcpListener> {
    if !addr.ip().is_loopback() {
        log::warn!("metrics endpoint listens on {addr}, which is not loopback: anyone who reaches it reads the counters");
    }
    let l = std::net::TcpListener::bind(addr)?;
    l.set_nonblocking(true)?;
    tokio::net::TcpListener::from_std(l)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Snapshot {
        let mut s = Snapshot {
            version: "0.1.0".into(),
            sources: vec![SourceMetrics {
                name: "journal".into(),
                entries_read: 12,
                lag_s: 3,
                ..Default::default()
            }],
            parsers: vec![ParserMetrics {
                name: "sshd".into(),
                lines: 12,
                hits: 10,
                misses: 2,
                ..Default::default()
            }],
            ..Default::default()
        };
        s.overflows.insert("ssh-bruteforce".into(), 1);
        s.decisions_active.insert("local".into(), 1);
        s.store_failing = 1;
        s.store_pending = 3;
        s.netlink
            .duration
            .observe(std::time::Duration::from_micros(700));
        s.netlink
            .duration
            .observe(std::time::Duration::from_secs(3));
        s
    }

    #[test]
    fn prometheus_text_has_labels_and_a_cumulative_histogram() {
        let t = render_prometheus(&sample());
        assert!(
            t.contains("crowdwall_source_entries_read_total{source=\"journal\"} 12\n"),
            "{t}"
        );
        assert!(
            t.contains("crowdwall_parser_misses_total{parser=\"sshd\"} 2\n"),
            "{t}"
        );
        assert!(t.contains("crowdwall_store_failing 1\n"), "{t}");
        assert!(t.contains("crowdwall_store_pending_decisions 3\n"), "{t}");
        assert!(
            t.contains("crowdwall_overflows_total{scenario=\"ssh-bruteforce\"} 1\n"),
            "{t}"
        );
        assert!(
            t.contains("crowdwall_netlink_transaction_duration_seconds_bucket{le=\"0.0005\"} 0\n"),
            "{t}"
        );
        assert!(
            t.contains("crowdwall_netlink_transaction_duration_seconds_bucket{le=\"0.001\"} 1\n"),
            "{t}"
        );
        assert!(
            t.contains("crowdwall_netlink_transaction_duration_seconds_bucket{le=\"1\"} 1\n"),
            "{t}"
        );
        assert!(
            t.contains("crowdwall_netlink_transaction_duration_seconds_bucket{le=\"+Inf\"} 2\n"),
            "{t}"
        );
        // every sample line belongs to a declared metric
        for l in t.lines().filter(|l| !l.starts_with('#')) {
            let name = l.split(['{', ' ']).next().unwrap_or("");
            let base = name
                .trim_end_matches("_bucket")
                .trim_end_matches("_sum")
                .trim_end_matches("_count");
            assert!(t.contains(&format!("# TYPE {base} ")), "undeclared {name}");
        }
    }

    #[test]
    fn label_values_are_escaped() {
        let mut s = sample();
        s.overflows.insert("a\"b\\c\nd".into(), 2);
        let t = render_prometheus(&s);
        assert!(t.contains("scenario=\"a\\\"b\\\\c\\nd\"} 2"), "{t}");
    }

    #[test]
    fn tables_show_the_same_numbers() {
        let t = render_tables(&sample());
        assert!(t.contains("journal"), "{t}");
        assert!(t.contains("ssh-bruteforce"), "{t}");
        assert!(t.contains("(not counted yet)"), "{t}");
    }
}
