//! The public page at `/`: a form that looks an address up (a plain GET, so it works
//! without JavaScript) and the community's statistics. Every value shown is HTML-escaped.

use std::collections::HashMap;
use std::net::SocketAddr;

use axum::extract::{ConnectInfo, Query, State};
use axum::http::HeaderMap;
use axum::response::{Html, IntoResponse, Response};

use crate::routes::{reputation_of, stats_json};
use crate::{parse_ip, Shared};

fn esc(s: &str) -> String {
    let mut o = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => o.push_str("&amp;"),
            '<' => o.push_str("&lt;"),
            '>' => o.push_str("&gt;"),
            '"' => o.push_str("&quot;"),
            '\'' => o.push_str("&#39;"),
            c => o.push(c),
        }
    }
    o
}

fn text(v: &serde_json::Value) -> String {
    match v {
        serde_json::Value::String(s) => s.clone(),
        serde_json::Value::Null => "-".into(),
        other => other.to_string(),
    }
}

pub(super) async fn index(
    State(hub): State<Shared>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    if let Err(r) = hub.limit(hub.client(peer, &headers), &headers) {
        return r;
    }
    let asked = q
        .get("ip")
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty());
    let mut result = String::new();
    if let Some(a) = &asked {
        match parse_ip(a) {
            Err(m) => result = format!("<p id=\"result\" class=\"bad\">{}</p>", esc(&m)),
            Ok(ip) => match reputation_of(&hub, ip).await {
                Err(r) => return r,
                Ok(None) => {
                    result = format!(
                        "<p id=\"result\" class=\"unknown\"><strong>{}</strong>: never reported to this hub.</p>",
                        esc(&ip.to_string())
                    )
                }
                Ok(Some(rep)) => {
                    let v = serde_json::to_value(&rep).unwrap_or_default();
                    let behaviors: Vec<String> = v["behaviors"]
                        .as_array()
                        .cloned()
                        .unwrap_or_default()
                        .iter()
                        .map(|b| format!("{} ({})", esc(&text(&b["name"])), esc(&text(&b["count"]))))
                        .collect();
                    result = format!(
                        "<table id=\"result\" class=\"{rep}\">\
                         <tr><th>address</th><td>{ip}</td></tr>\
                         <tr><th>reputation</th><td id=\"reputation\">{rep}</td></tr>\
                         <tr><th>score (0-100)</th><td>{score}</td></tr>\
                         <tr><th>reports</th><td>{reports}</td></tr>\
                         <tr><th>distinct reporter networks</th><td id=\"networks\">{nets}</td></tr>\
                         <tr><th>distinct reporters</th><td>{who}</td></tr>\
                         <tr><th>first seen</th><td>{first}</td></tr>\
                         <tr><th>last seen</th><td>{last}</td></tr>\
                         <tr><th>scenarios</th><td>{beh}</td></tr>\
                         <tr><th>on the blocklist</th><td>{listed}</td></tr>\
                         <tr><th>never-list</th><td>{never}</td></tr></table>",
                        ip = esc(&text(&v["ip"])),
                        // The API says `safe` for never-listed ranges, as CrowdSec's smoke
                        // API does; on the page that read as "this address is harmless"
                        // for addresses hosts had just banned. It says what it is.
                        rep = if v["never_list"].is_null() {
                            esc(&text(&v["reputation"]))
                        } else {
                            "never-list".to_string()
                        },
                        score = esc(&text(&v["score"])),
                        reports = esc(&text(&v["reports"])),
                        // networks first: they are what the score counts
                        nets = esc(&text(&v["distinct_networks"])),
                        who = esc(&text(&v["distinct_reporters"])),
                        first = esc(&text(&v["history"]["first_seen"])),
                        last = esc(&text(&v["history"]["last_seen"])),
                        beh = if behaviors.is_empty() { "-".into() } else { behaviors.join(", ") },
                        listed = if v["blocklisted"] == serde_json::Value::Bool(true) {
                            format!("yes, until {}", esc(&text(&v["blocklist_until"])))
                        } else {
                            "no".into()
                        },
                        never = esc(&text(&v["never_list"])),
                    );
                }
            },
        }
    }
    let stats = match stats_json(&hub).await {
        Ok(s) => s,
        Err(r) => return r,
    };
    let hours = stats["signals_per_hour"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    let max = hours
        .iter()
        .filter_map(|h| h["signals"].as_i64())
        .max()
        .unwrap_or(0)
        .max(1);
    let mut rows = String::new();
    for h in &hours {
        let n = h["signals"].as_i64().unwrap_or(0);
        rows.push_str(&format!(
            "<tr><td>{}</td><td>{n}</td><td><span class=\"bar\" style=\"width:{}px\"></span></td></tr>",
            esc(&text(&h["hour"])),
            n * 200 / max
        ));
    }
    if rows.is_empty() {
        rows = "<tr><td colspan=\"3\">no signals in the last 24 hours</td></tr>".into();
    }
    let mut top = String::new();
    for s in stats["top_scenarios"]
        .as_array()
        .cloned()
        .unwrap_or_default()
    {
        top.push_str(&format!(
            "<li>{} ({})</li>",
            esc(&text(&s["name"])),
            esc(&text(&s["signals"]))
        ));
    }
    if top.is_empty() {
        top = "<li>none yet</li>".into();
    }
    let value = asked.as_deref().map(esc).unwrap_or_default();
    Html(format!(
        "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
         <title>crowdwall community hub</title><style>\
         body{{font-family:sans-serif;max-width:48em;margin:2em auto;padding:0 1em}}\
         th{{text-align:left;padding-right:1em}} .bar{{display:inline-block;height:.8em;background:#c33}}\
         .malicious td#reputation{{color:#b00;font-weight:bold}} .safe td#reputation{{color:#070}} .never-list td#reputation{{color:#555}}\
         </style></head><body>\
         <h1>crowdwall community hub</h1>\
         <form method=\"get\" action=\"/\"><label for=\"ip\">IP address</label> \
         <input id=\"ip\" name=\"ip\" value=\"{value}\" placeholder=\"203.0.113.7 or 2001:db8::1\" required> \
         <button type=\"submit\">Look up</button></form>\
         {result}\
         <h2>Community</h2><p>{agents} agents; {listed} addresses on the blocklist.</p>\
         <h3>Signals per hour (last 24 hours, UTC)</h3><table id=\"hours\">{rows}</table>\
         <h3>Top scenarios (last 24 hours)</h3><ol id=\"scenarios\">{top}</ol>\
         <p>JSON: <code>GET /v1/ip/ADDRESS</code>, <code>GET /v1/stats</code>.</p>\
         </body></html>\n",
        agents = esc(&text(&stats["agents"])),
        listed = esc(&text(&stats["blocklist_size"])),
    ))
    .into_response()
}
