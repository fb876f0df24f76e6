//! Hostile input over every fail2ban filter crowdwall loads: each sample failure of a
//! filter's own log (default options) that the filter matches with the right address is
//! replayed with its user field (what `<F-USER>` captured; for a filter without one, the
//! path of an HTTP request line) replaced by text an attacker chooses: another address alone, `from ADDR`, `[ADDR]`, `(ADDR)`,
//! `rhost=ADDR`, a newline before `from ADDR` (which a file source reads as two lines), and
//! 64 KiB. A line the pipeline refuses before any filter sees it (control characters, over
//! 16 KiB, `crowdwall_engine::parse::precheck`) counts as refused.
//!
//! What must hold: no match names an address other than the sample's real one, except on
//! the filters listed in [`STEERABLE`], which are fail2ban's own regexes letting the user
//! name choose the address; those are listed (here, in `target/f2b-hostile.md` and in
//! README), not hidden. A filter newly steerable fails the test.

use std::collections::BTreeMap;
use std::net::IpAddr;

use crowdwall_engine::fail2ban::filter::{self, Host};
use crowdwall_engine::parse::{canonical_ip, precheck};

use crate::common::f2b_samples::{self, Item};

const FILTER_DIR: &str = "/etc/fail2ban";
const EVIL: &str = "6.6.6.6";

/// Filters whose failregex lets the user field pick the address, found by this test and
/// kept as fail2ban ships them (with the payload shape that does it).
const STEERABLE: &[(&str, &str)] = &[];

fn payloads() -> Vec<(&'static str, String)> {
    vec![
        ("address", EVIL.to_string()),
        ("from address", format!("from {EVIL}")),
        ("from address port", format!("x from {EVIL} port 22")),
        ("[address]", format!("[{EVIL}]")),
        ("(address)", format!("({EVIL})")),
        ("rhost=address", format!("x rhost={EVIL}")),
        ("newline from address", format!("x\n from {EVIL} port 22")),
        ("64 KiB", format!("{} from {EVIL}", "a".repeat(64 * 1024))),
    ]
}

/// The path of an HTTP request line in a log line (`"GET /x HTTP/1.1"`), if any.
fn request_path(line: &str) -> Option<&str> {
    for m in ["GET ", "POST ", "HEAD ", "PUT "] {
        if let Some(i) = line.find(m) {
            let rest = &line[i + m.len()..];
            let end = rest.find(' ').unwrap_or(rest.len());
            let p = &rest[..end];
            if p.starts_with('/') && p.len() > 1 {
                return Some(p);
            }
        }
    }
    None
}

/// Whether the options of a block are the filter's defaults.
fn default_opts(o: &serde_json::Map<String, serde_json::Value>) -> bool {
    o.keys().all(|k| k.starts_with("test."))
}

#[derive(Default)]
struct Row {
    exercised: u32,
    /// Of those, request paths (the filter has no user field).
    urls: u32,
    variants: u32,
    refused: u32,
    steered: BTreeMap<&'static str, String>,
}

#[test]
fn user_fields_do_not_pick_the_address() {
    let Some((dir, names)) = crate::f2b_filters::debian_filters() else {
        return;
    };
    let source = |p: &str| std::fs::read_to_string(format!("{FILTER_DIR}/{p}")).ok();
    let evil: IpAddr = EVIL.parse().unwrap();
    let mut rows: BTreeMap<String, Row> = BTreeMap::new();
    let mut no_user: Vec<String> = Vec::new();
    for name in &names {
        let Ok(mut f) = filter::load(&source, name, &BTreeMap::new()) else {
            continue;
        };
        let Some(items) = f2b_samples::read(dir, name) else {
            continue;
        };
        let mut row = Row::default();
        let mut default_block = true;
        for item in items {
            let smp = match item {
                Item::Options(list) => {
                    default_block = list.iter().any(default_opts);
                    continue;
                }
                Item::Sample(s) => s,
            };
            if !default_block || !smp.must_match() {
                continue;
            }
            let Some(want) = smp.host().and_then(|h| h.parse::<IpAddr>().ok()) else {
                continue;
            };
            let want = canonical_ip(want);
            f.reset();
            let got = f.process(&smp.line, false);
            let Some(fail) = got.first() else { continue };
            if fail.host != Host::Addr(want) {
                continue;
            }
            // The field an attacker writes: the user name the filter captured, else the
            // request path of an HTTP request line. Only where it occurs once in the line
            // and is not the address itself (drupal-auth logs "failed from ADDR" with the
            // address as user).
            let user = fail.user.clone().filter(|u| !u.is_empty());
            let (field, url) = match user {
                Some(u) => (u, false),
                None => match request_path(&smp.line) {
                    Some(p) => (p.to_string(), true),
                    None => continue,
                },
            };
            if smp.line.matches(field.as_str()).count() != 1 || field.parse::<IpAddr>().is_ok() {
                continue;
            }
            let Some(at) = smp.line.find(&field) else {
                continue;
            };
            row.exercised += 1;
            if url {
                row.urls += 1;
            }
            for (what, p) in payloads() {
                row.variants += 1;
                let p = if url { format!("/{p}") } else { p };
                let hostile = format!("{}{p}{}", &smp.line[..at], &smp.line[at + field.len()..]);
                f.reset();
                // A file source hands the text over line by line.
                for line in hostile.split('\n') {
                    if precheck(line, 16 * 1024).is_some() {
                        row.refused += 1;
                        continue;
                    }
                    for fail in f.process(line, false) {
                        if let Host::Addr(a) = fail.host {
                            if a != want {
                                assert_eq!(a, evil, "{name}: {what}: {a} from nowhere");
                                row.steered.entry(what).or_insert_with(|| smp.at.clone());
                            }
                        }
                    }
                }
            }
        }
        if row.exercised == 0 {
            no_user.push(name.clone());
        } else {
            rows.insert(name.clone(), row);
        }
    }
    let mut table = String::from(
        "| filter | samples exercised (of which request paths) | hostile lines | refused before the filter | attacker text that picks the address |\n|---|---:|---:|---:|---|\n",
    );
    for (name, r) in &rows {
        let steered: Vec<String> = r
            .steered
            .iter()
            .map(|(w, at)| format!("{w} (e.g. {at})"))
            .collect();
        table.push_str(&format!(
            "| {name} | {} ({}) | {} | {} | {} |\n",
            r.exercised,
            r.urls,
            r.variants,
            r.refused,
            if steered.is_empty() {
                "none".to_string()
            } else {
                steered.join("; ")
            }
        ));
    }
    table.push_str(&format!(
        "\n{} filters exercised; {} loaded filters have neither a user field nor a request path in their matched samples: {}.\n",
        rows.len(),
        no_user.len(),
        no_user.join(", ")
    ));
    println!("{table}");
    let _ = std::fs::create_dir_all("target");
    let _ = std::fs::write("target/f2b-hostile.md", &table);
    assert!(rows.len() >= 24, "only {} filters exercised", rows.len());
    let steerable: Vec<(&str, Vec<&str>)> = rows
        .iter()
        .filter(|(_, r)| !r.steered.is_empty())
        .map(|(n, r)| (n.as_str(), r.steered.keys().copied().collect()))
        .collect();
    for (n, what) in &steerable {
        assert!(
            STEERABLE.iter().any(|(s, _)| s == n),
            "{n}: the user field picks the address ({what:?}); list it in STEERABLE and README if that is fail2ban's own regex"
        );
    }
}
