//! The community hub over HTTP on loopback, against SQLite and a real PostgreSQL: enrolment,
//! pushes, consensus, deltas, reputation, bad input, the poisoning attempt, and two hub
//! instances over one PostgreSQL.
//!
//! Agents connect from their own loopback source addresses (127.0.N.x), so the hub sees
//! them in distinct /24 networks, or in one, as each test needs.

use std::net::IpAddr;

use crowdwall_daemon::community::client::HubClient;
use crowdwall_hub::store::HubStore;
use crowdwall_proto::{BlocklistResponse, Signal};
use serde_json::Value;

use crate::common::cli::{hub_bin, BIN, CONFIG, HUB_CONFIG};
use crate::common::hub::{cfg, enrol, now_s, TestHub};
use crate::common::proc::text;
use crate::common::skip;

async fn blocklist(hub: &TestHub, since: Option<i64>) -> BlocklistResponse {
    HubClient::new(&hub.url(), None)
        .unwrap()
        .blocklist(since)
        .await
        .expect("blocklist")
}

async fn get(url: &str) -> (u16, Value) {
    let r = reqwest::get(url).await.expect("get");
    let status = r.status().as_u16();
    let text = r.text().await.unwrap();
    (
        status,
        serde_json::from_str(&text).unwrap_or(Value::String(text)),
    )
}

async fn post(url: &str, auth: Option<&str>, body: Vec<u8>) -> (u16, Value) {
    let mut r = reqwest::Client::new()
        .post(url)
        .header("content-type", "application/json")
        .body(body);
    if let Some(a) = auth {
        r = r.header("authorization", a);
    }
    let r = r.send().await.expect("post");
    let status = r.status().as_u16();
    let text = r.text().await.unwrap();
    (
        status,
        serde_json::from_str(&text).unwrap_or(Value::String(text)),
    )
}

fn listed(b: &BlocklistResponse) -> Vec<String> {
    let mut v: Vec<String> = b.new.iter().map(|e| e.value.clone()).collect();
    v.sort();
    v
}

// ---- backends ----

/// A fresh database for one test: a SQLite file, or a new PostgreSQL database.
struct Db {
    url: String,
    _dir: Option<tempfile::TempDir>,
    pg_drop: Option<String>,
}

fn sqlite_db() -> Db {
    let dir = tempfile::tempdir().unwrap();
    Db {
        url: format!("sqlite:{}", dir.path().join("hub.db").display()),
        _dir: Some(dir),
        pg_drop: None,
    }
}

/// Where the PostgreSQL that tests/lab/deps.sh starts is (a role allowed to create
/// databases).
fn pg_admin_url() -> String {
    std::env::var("CROWDWALL_TEST_PG")
        .unwrap_or_else(|_| "postgres://crowdwall:crowdwall@127.0.0.1:5432/postgres".into())
}

async fn pg_db(name: &str) -> Option<Db> {
    let admin = pg_admin_url();
    let conn = tokio_postgres::connect(&admin, tokio_postgres::NoTls).await;
    let (client, c) = match conn {
        Ok(x) => x,
        Err(e) => {
            skip(&format!(
                "needs PostgreSQL at {admin} (tests/lab/deps.sh starts it): {e}"
            ));
            return None;
        }
    };
    tokio::spawn(c);
    let db = format!("cwhub_{name}_{}", std::process::id());
    let _ = client
        .batch_execute(&format!("DROP DATABASE IF EXISTS {db}"))
        .await;
    client
        .batch_execute(&format!("CREATE DATABASE {db}"))
        .await
        .expect("create test database");
    let base = admin.rsplit_once('/').map(|x| x.0).unwrap_or(&admin);
    Some(Db {
        url: format!("{base}/{db}"),
        _dir: None,
        pg_drop: Some(db),
    })
}

impl Drop for Db {
    fn drop(&mut self) {
        if let Some(db) = self.pg_drop.take() {
            let admin = pg_admin_url();
            // best effort, outside any runtime
            let _ = std::thread::spawn(move || {
                let rt = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .unwrap();
                rt.block_on(async {
                    if let Ok((c, conn)) =
                        tokio_postgres::connect(&admin, tokio_postgres::NoTls).await
                    {
                        tokio::spawn(conn);
                        let _ = c
                            .batch_execute(&format!("DROP DATABASE IF EXISTS {db} WITH (FORCE)"))
                            .await;
                    }
                });
            })
            .join();
        }
    }
}

// ---- scenarios, run on each backend ----

async fn enrol_push_consensus_deltas_reputation(db: &Db) {
    let hub = TestHub::start(&db.url, cfg()).await;
    let snap = blocklist(&hub, None).await;
    assert!(snap.snapshot);
    assert!(snap.new.is_empty());
    let v0 = snap.version;

    let mut a = enrol(&hub, "127.0.1.1").await;
    let mut b = enrol(&hub, "127.0.2.1").await;
    let mut c = enrol(&hub, "127.0.3.1").await;
    let attacker = "45.1.2.3";

    // never reported yet; the answer is kept for look-ups (lookup_cache) but a push to this
    // instance replaces it at once, as the 404 turning into 200 below shows
    let (st, _) = get(&format!("{}/v1/ip/{attacker}", hub.url())).await;
    assert_eq!(st, 404);

    // one report: stored, idempotent on re-delivery, not listed, and no score yet: one
    // network's word is not corroborated (a second network's is, below)
    let s = a.signal(attacker);
    let r = a.client.push(std::slice::from_ref(&s)).await.unwrap();
    assert_eq!((r.accepted, r.duplicates), (1, 0), "{r:?}");
    let r = a.client.push(std::slice::from_ref(&s)).await.unwrap();
    assert_eq!(
        (r.accepted, r.duplicates),
        (0, 1),
        "a re-sent signal counts once"
    );
    let (st, rep) = get(&format!("{}/v1/ip/{attacker}", hub.url())).await;
    assert_eq!(st, 200, "{rep}");
    assert_eq!(rep["reports"], 1);
    assert_eq!(rep["distinct_reporters"], 1);
    assert_eq!(rep["distinct_networks"], 1);
    assert_eq!(rep["reputation"], "unknown", "{rep}");
    assert_eq!(rep["score"], 0, "{rep}");
    assert_eq!(rep["blocklisted"], false);

    b.report(attacker).await;
    let d = blocklist(&hub, Some(v0)).await;
    assert!(!d.snapshot);
    assert!(d.new.is_empty(), "two agents are not a consensus: {d:?}");
    let (_, rep) = get(&format!("{}/v1/ip/{attacker}", hub.url())).await;
    assert_eq!(rep["distinct_networks"], 2, "{rep}");
    assert_eq!(rep["reputation"], "suspicious", "{rep}");
    assert_eq!(rep["score"], 50, "two new agents in two networks: {rep}");

    c.report(attacker).await;
    let d = blocklist(&hub, Some(v0)).await;
    assert!(!d.snapshot);
    assert_eq!(listed(&d), vec![attacker]);
    let e = &d.new[0];
    assert!(
        e.duration_s > 23 * 3600 && e.duration_s <= 24 * 3600,
        "{e:?}"
    );
    assert!(e.duration.ends_with('s') && e.duration.contains('h') && e.duration.contains('m'));
    assert_eq!(e.scenario, "ssh-bruteforce");
    let v1 = d.version;
    assert!(v1 > v0);
    assert!(
        blocklist(&hub, Some(v1)).await.new.is_empty(),
        "nothing new since v1"
    );
    assert_eq!(listed(&blocklist(&hub, None).await), vec![attacker]);

    let (st, rep) = get(&format!("{}/v1/ip/{attacker}", hub.url())).await;
    assert_eq!(st, 200);
    assert_eq!(rep["reputation"], "malicious");
    assert_eq!(rep["blocklisted"], true);
    assert_eq!(rep["reports"], 3);
    assert_eq!(rep["distinct_reporters"], 3);
    assert_eq!(rep["distinct_networks"], 3);
    assert_eq!(rep["numDistinctUsers"], 3);
    assert_eq!(rep["totalReports"], 3);
    assert!(rep["score"].as_u64().unwrap() >= 75, "{rep}");
    assert_eq!(rep["behaviors"][0]["name"], "ssh-bruteforce");
    assert_eq!(rep["behaviors"][0]["count"], 3);
    assert!(rep["history"]["first_seen"]
        .as_str()
        .unwrap()
        .ends_with('Z'));
    assert_eq!(rep["never_list"], Value::Null);

    // never reported: 404; not an address: 400; a public resolver: safe
    let (st, _) = get(&format!("{}/v1/ip/45.9.9.9", hub.url())).await;
    assert_eq!(st, 404);
    let (st, body) = get(&format!("{}/v1/ip/not-an-ip", hub.url())).await;
    assert_eq!(st, 400);
    assert!(body["message"]
        .as_str()
        .unwrap()
        .contains("not an IP address"));
    let (st, rep) = get(&format!("{}/v1/ip/8.8.8.8", hub.url())).await;
    assert_eq!(st, 200);
    assert_eq!(rep["reputation"], "safe");
    assert_eq!(rep["isWhitelisted"], true);
    // The page says what it is, not a green "safe" (hosts may well ban it).
    let (st, page) = get(&format!("{}/?ip=8.8.8.8", hub.url())).await;
    assert_eq!(st, 200);
    let page = page.as_str().unwrap_or("").to_string();
    assert!(page.contains("class=\"never-list\""), "{page}");
    assert!(!page.contains("class=\"safe\""), "{page}");
    assert!(
        page.contains("<td id=\"reputation\">never-list</td>"),
        "{page}"
    );

    // an administrator delists it: the delta says deleted, and old reports no longer count
    let store = HubStore::open(&db.url).await.unwrap();
    assert!(store
        .delist(attacker, crowdwall_base::clock::now())
        .await
        .unwrap());
    let d = blocklist(&hub, Some(v1)).await;
    assert_eq!(d.deleted, vec![attacker.to_string()]);
    assert!(d.new.is_empty());
    a.report(attacker).await;
    assert!(
        blocklist(&hub, None).await.new.is_empty(),
        "one fresh report after a delisting is not a consensus"
    );
    b.report(attacker).await;
    c.report(attacker).await;
    assert_eq!(listed(&blocklist(&hub, None).await), vec![attacker]);

    // credentials: none, or a wrong secret, are refused; the community page and stats
    let (st, _) = post(
        &format!("{}/v1/signals", hub.url()),
        None,
        b"{\"signals\":[]}".to_vec(),
    )
    .await;
    assert_eq!(st, 401);
    let (st, _) = post(
        &format!("{}/v1/signals", hub.url()),
        Some("Bearer nosuchagent:secret"),
        b"{\"signals\":[]}".to_vec(),
    )
    .await;
    assert_eq!(st, 401);
    let (st, stats) = get(&format!("{}/v1/stats", hub.url())).await;
    assert_eq!(st, 200);
    assert_eq!(stats["agents"], 3);
    assert_eq!(stats["blocklist_size"], 1);
    assert_eq!(stats["top_scenarios"][0]["name"], "ssh-bruteforce");
    assert_eq!(stats["counters"]["refused_unauthenticated"], 2);
}

async fn bad_input_is_refused_and_counted(db: &Db) {
    let mut c = cfg();
    c.consensus.agent_hourly_cap = 5;
    c.max_body = 4096;
    let hub = TestHub::start(&db.url, c).await;
    let mut a = enrol(&hub, "127.0.4.1").await;
    let url = format!("{}/v1/signals", hub.url());

    // Read the agent's own credentials back out of its client by enrolling by hand.
    let anon = HubClient::new(&hub.url(), None).unwrap();
    let r = anon.enroll("raw", None).await.unwrap();
    let auth = format!("Bearer {}:{}", r.agent_id, r.secret);

    let (st, body) = post(&url, Some(&auth), b"{\"signals\": [".to_vec()).await;
    assert_eq!(st, 400);
    assert!(
        body["message"].as_str().unwrap().contains("malformed JSON"),
        "{body}"
    );
    let (st, body) = post(
        &url,
        Some(&auth),
        b"{\"signals\": [], \"logs\": \"x\"}".to_vec(),
    )
    .await;
    assert_eq!(st, 400, "unknown fields are refused: {body}");
    let (st, _) = post(&url, Some(&auth), vec![b' '; 10_000]).await;
    assert_eq!(st, 413);

    // a malformed address fails the whole batch: the good signal beside it is not stored
    let good = a.signal("45.2.2.2");
    let mut bad = a.signal("45.2.2.3");
    bad.ip = "45.2.2.300".into();
    let body = serde_json::to_vec(&serde_json::json!({ "signals": [good, bad] })).unwrap();
    let (st, resp) = post(&url, Some(&auth), body).await;
    assert_eq!(st, 400);
    let m = resp["message"].as_str().unwrap();
    assert!(
        m.contains("signals[1]") && m.contains("not an IP address"),
        "{m}"
    );
    let (st, _) = get(&format!("{}/v1/ip/45.2.2.2", hub.url())).await;
    assert_eq!(st, 404, "nothing half-written");

    // private, never-listed, future and far-past signals are refused one by one
    let mut sigs = Vec::new();
    for ip in [
        "10.1.2.3",
        "192.168.1.1",
        "127.0.0.1",
        "203.0.113.9",
        "1.1.1.1",
        "::1",
    ] {
        sigs.push(a.signal(ip));
    }
    let mut future = a.signal("45.3.3.3");
    future.last_seen = now_s() + 3600;
    future.first_seen = now_s() + 3000;
    let mut old = a.signal("45.3.3.4");
    old.first_seen = now_s() - 40 * 86400;
    old.last_seen = now_s() - 30 * 86400;
    sigs.push(future);
    sigs.push(old);
    sigs.push(a.signal("45.3.3.5"));
    let r = a.client.push(&sigs).await.unwrap();
    assert_eq!(r.accepted, 1, "{r:?}");
    assert_eq!(r.refused.len(), 8, "{r:?}");
    assert!(r.refused[0].reason.contains("private"), "{r:?}");
    assert!(r.refused[6].reason.contains("future"), "{r:?}");
    assert!(r.refused[7].reason.contains("older"), "{r:?}");
    let (st, _) = get(&format!("{}/v1/ip/45.3.3.3", hub.url())).await;
    assert_eq!(st, 404);

    // the hourly cap: 5 new signals per agent; one is used above
    let sigs: Vec<Signal> = (0..6).map(|i| a.signal(&format!("45.4.4.{i}"))).collect();
    let r = a.client.push(&sigs).await.unwrap();
    assert_eq!(r.accepted, 4, "{r:?}");
    assert_eq!(r.refused.len(), 2);
    assert!(r.refused[0].reason.contains("hourly cap"));

    // bad `since`
    let (st, _) = get(&format!("{}/v1/blocklist?since=-4", hub.url())).await;
    assert_eq!(st, 400);
    let (st, _) = get(&format!("{}/v1/blocklist?since=abc", hub.url())).await;
    assert_eq!(st, 400);
    // a client far ahead (hub database replaced) gets a snapshot
    let b = blocklist(&hub, Some(1_000_000)).await;
    assert!(b.snapshot);

    let (_, stats) = get(&format!("{}/v1/stats", hub.url())).await;
    let k = &stats["counters"];
    assert_eq!(k["refused_malformed"], 5, "{k}");
    assert_eq!(k["refused_oversized"], 1, "{k}");
    assert_eq!(k["refused_never_list"], 6, "{k}");
    assert_eq!(k["refused_future"], 1, "{k}");
    assert_eq!(k["refused_too_old"], 1, "{k}");
    assert_eq!(k["refused_agent_cap"], 2, "{k}");
}

/// A hub with the per-network enrolment cap off: the listing and the score must hold
/// without it (agents enrolled over weeks as earlier ones went idle, or before the cap).
fn uncapped() -> crowdwall_hub::HubSection {
    crowdwall_hub::HubSection {
        max_agents_per_network: 0,
        ..cfg()
    }
}

async fn poisoning_from_one_network_never_lists(db: &Db) {
    let hub = TestHub::start(&db.url, uncapped()).await;
    let victim = "45.7.7.7";
    let attacker = "45.8.8.8";
    // 20 agents, all in 127.0.9.0/24, all report the victim
    for i in 1..=20 {
        let mut s = enrol(&hub, &format!("127.0.9.{i}")).await;
        let r = s.report(victim).await;
        assert_eq!(r.accepted, 1);
    }
    let (_, rep) = get(&format!("{}/v1/ip/{victim}", hub.url())).await;
    assert_eq!(rep["distinct_reporters"], 20);
    assert_eq!(rep["blocklisted"], false, "{rep}");
    assert!(blocklist(&hub, None).await.new.is_empty());
    // the same number from 20 distinct networks list the attacker
    for i in 1..=20 {
        let mut s = enrol(&hub, &format!("127.0.{}.1", 100 + i)).await;
        s.report(attacker).await;
    }
    assert_eq!(listed(&blocklist(&hub, None).await), vec![attacker]);
}

/// Issue 12.5: 20 agents from one /24 reporting a public address made `GET /v1/ip` answer
/// "suspicious", score 29, for anyone holding one network. One network is one voice: the
/// score needs a second network, and the answer says how many networks reported.
async fn one_network_cannot_make_an_address_suspicious(db: &Db) {
    let hub = TestHub::start(&db.url, uncapped()).await;
    let victim = "45.7.7.7";
    for i in 1..=20 {
        let mut s = enrol(&hub, &format!("127.0.9.{i}")).await;
        assert_eq!(s.report(victim).await.accepted, 1);
    }
    let (st, rep) = get(&format!("{}/v1/ip/{victim}", hub.url())).await;
    assert_eq!(st, 200, "{rep}");
    assert_eq!(rep["reports"], 20, "{rep}");
    assert_eq!(rep["distinct_reporters"], 20, "{rep}");
    assert_eq!(rep["distinct_networks"], 1, "{rep}");
    assert_eq!(rep["reputation"], "unknown", "{rep}");
    assert_eq!(rep["score"], 0, "{rep}");
    assert_eq!(rep["abuseConfidenceScore"], 0, "{rep}");
    assert_eq!(rep["blocklisted"], false, "{rep}");
    // no more than one agent alone gets
    let mut lone = enrol(&hub, "127.0.10.1").await;
    lone.report("45.7.7.8").await;
    let (_, one) = get(&format!("{}/v1/ip/45.7.7.8", hub.url())).await;
    assert_eq!(one["score"], rep["score"], "{one}");
    assert_eq!(one["reputation"], rep["reputation"], "{one}");
    // the page shows the networks beside the reporters
    let (_, page) = get(&format!("{}/?ip={victim}", hub.url())).await;
    let page = page.as_str().unwrap_or("").to_string();
    assert!(page.contains("<td id=\"networks\">1</td>"), "{page}");

    // positive control: agents from other networks do raise it, counted once each
    let mut second = enrol(&hub, "127.0.11.1").await;
    second.report(victim).await;
    let (_, rep) = get(&format!("{}/v1/ip/{victim}", hub.url())).await;
    assert_eq!(rep["distinct_networks"], 2, "{rep}");
    assert_eq!(rep["reputation"], "suspicious", "{rep}");
    let two = rep["score"].as_u64().unwrap();
    assert!(two >= 10, "{rep}");
    let mut third = enrol(&hub, "127.0.12.1").await;
    third.report(victim).await;
    let (_, rep) = get(&format!("{}/v1/ip/{victim}", hub.url())).await;
    assert_eq!(rep["distinct_networks"], 3, "{rep}");
    assert_eq!(rep["distinct_reporters"], 22, "{rep}");
    assert_eq!(rep["reputation"], "malicious", "{rep}");
    assert!(rep["score"].as_u64().unwrap() > two, "{rep}");
    assert_eq!(listed(&blocklist(&hub, None).await), vec![victim]);
}

/// An enrolment from address `from`: (status, body).
async fn enrol_raw(hub: &TestHub, from: &str) -> (u16, Value) {
    let r = reqwest::Client::builder()
        .local_address(from.parse::<IpAddr>().unwrap())
        .build()
        .unwrap()
        .post(format!("{}/v1/agents", hub.url()))
        .json(&serde_json::json!({"name": "cap"}))
        .send()
        .await
        .expect("enrol");
    let status = r.status().as_u16();
    (status, r.json().await.unwrap_or(Value::Null))
}

/// One network holds at most `max_agents_per_network` live agents: a further enrolment from
/// it is refused (403, saying why) and counted; other networks are not affected; an agent
/// idle for `agent_live_window` (no enrolment, no push) frees its place, one that pushes
/// keeps it.
async fn enrolment_is_capped_per_network(db: &Db) {
    let mut c = cfg();
    c.max_agents_per_network = 3;
    c.agent_live_window = crowdwall_base::Dur(std::time::Duration::from_secs(4));
    let hub = TestHub::start(&db.url, c).await;
    let mut first = enrol(&hub, "127.0.30.1").await;
    for i in 2..=3 {
        assert_eq!(enrol_raw(&hub, &format!("127.0.30.{i}")).await.0, 201);
    }
    let (st, body) = enrol_raw(&hub, "127.0.30.4").await;
    assert_eq!(st, 403, "{body}");
    let m = body["message"].as_str().unwrap_or_default();
    assert!(
        m.contains("127.0.30.0/24")
            && m.contains("3 live agent(s)")
            && m.contains("max_agents_per_network"),
        "{m}"
    );
    assert_eq!(enrol_raw(&hub, "127.0.31.1").await.0, 201, "another /24");
    // past the live window: the first agent pushes and stays live, the two idle ones free
    // their places
    tokio::time::sleep(std::time::Duration::from_millis(4500)).await;
    assert_eq!(first.report("45.30.0.1").await.accepted, 1);
    assert_eq!(enrol_raw(&hub, "127.0.30.5").await.0, 201);
    assert_eq!(enrol_raw(&hub, "127.0.30.6").await.0, 201);
    let (st, body) = enrol_raw(&hub, "127.0.30.7").await;
    assert_eq!(st, 403, "the pushing agent and the two new ones: {body}");
    let (_, stats) = get(&format!("{}/v1/stats", hub.url())).await;
    assert_eq!(
        stats["counters"]["refused_enrolment_network_cap"], 2,
        "{stats}"
    );
    assert_eq!(stats["agents"], 6, "{stats}");
}

async fn rate_limit_and_api_keys(db: &Db) {
    let mut c = cfg();
    c.rate_limit = 1;
    c.rate_burst = 3;
    c.api_keys_sha256 = vec![crowdwall_base::hash::sha256_hex("letmein")];
    let hub = TestHub::start(&db.url, c).await;
    let url = format!("{}/v1/ip/45.9.9.9", hub.url());
    let mut codes = Vec::new();
    for _ in 0..10 {
        codes.push(get(&url).await.0);
    }
    assert_eq!(codes[..3], [404, 404, 404]);
    assert!(codes[3..].contains(&429), "{codes:?}");
    let r = reqwest::Client::new()
        .get(&url)
        .header("x-api-key", "letmein")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 404, "an API key is not rate limited");
}

// ---- tests ----

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_enrol_push_consensus_deltas_reputation() {
    enrol_push_consensus_deltas_reputation(&sqlite_db()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_bad_input() {
    bad_input_is_refused_and_counted(&sqlite_db()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_poisoning() {
    poisoning_from_one_network_never_lists(&sqlite_db()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_one_network_cannot_make_an_address_suspicious() {
    one_network_cannot_make_an_address_suspicious(&sqlite_db()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_enrolment_is_capped_per_network() {
    enrolment_is_capped_per_network(&sqlite_db()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_one_network_cannot_make_an_address_suspicious() {
    let Some(db) = pg_db("onenet").await else {
        return;
    };
    one_network_cannot_make_an_address_suspicious(&db).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_enrolment_is_capped_per_network() {
    let Some(db) = pg_db("enrolcap").await else {
        return;
    };
    enrolment_is_capped_per_network(&db).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_rate_limit() {
    rate_limit_and_api_keys(&sqlite_db()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_enrol_push_consensus_deltas_reputation() {
    let Some(db) = pg_db("flow").await else {
        return;
    };
    enrol_push_consensus_deltas_reputation(&db).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_bad_input() {
    let Some(db) = pg_db("bad").await else { return };
    bad_input_is_refused_and_counted(&db).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_poisoning() {
    let Some(db) = pg_db("poison").await else {
        return;
    };
    poisoning_from_one_network_never_lists(&db).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_rate_limit() {
    let Some(db) = pg_db("rate").await else {
        return;
    };
    rate_limit_and_api_keys(&db).await;
}

/// Two instances over one PostgreSQL: agents report through either, each instance sees the
/// other's signals, and both serve the same list, versions and deltas.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_two_instances_stay_consistent() {
    let Some(db) = pg_db("two").await else { return };
    let h1 = TestHub::start(&db.url, cfg()).await;
    let h2 = TestHub::start(&db.url, cfg()).await;
    let v0 = blocklist(&h1, None).await.version;
    assert_eq!(v0, blocklist(&h2, None).await.version);

    // enrolled on one instance, accepted by the other
    let mut a = enrol(&h1, "127.0.11.1").await;
    let mut b = enrol(&h2, "127.0.12.1").await;
    let mut c = enrol(&h1, "127.0.13.1").await;
    // the same signal through both instances is stored once
    let s = a.signal("45.5.5.5");
    let r1 = a.client.push(std::slice::from_ref(&s)).await.unwrap();
    let a_on_h2 = a.on(&h2);
    let r2 = a_on_h2.push(std::slice::from_ref(&s)).await.unwrap();
    assert_eq!((r1.accepted, r2.accepted, r2.duplicates), (1, 0, 1));
    b.report("45.5.5.5").await;
    // the third report goes to instance 1; both instances list it
    c.report("45.5.5.5").await;
    let l1 = blocklist(&h1, Some(v0)).await;
    let l2 = blocklist(&h2, Some(v0)).await;
    assert_eq!(listed(&l1), vec!["45.5.5.5"]);
    assert_eq!(l1.version, l2.version);
    assert_eq!(listed(&l1), listed(&l2));
    let (_, r1) = get(&format!("{}/v1/ip/45.5.5.5", h1.url())).await;
    let (_, r2) = get(&format!("{}/v1/ip/45.5.5.5", h2.url())).await;
    assert_eq!(r1["reports"], 3);
    assert_eq!(r1["reports"], r2["reports"]);
    assert_eq!(r1["distinct_reporters"], r2["distinct_reporters"]);

    // concurrent pushes of many addresses through both instances at once
    let mut agents = Vec::new();
    for i in 0..6 {
        let hub = if i % 2 == 0 { &h1 } else { &h2 };
        agents.push(enrol(hub, &format!("127.0.{}.1", 20 + i)).await);
    }
    let mut tasks = Vec::new();
    for mut ag in agents {
        tasks.push(tokio::spawn(async move {
            let sigs: Vec<Signal> = (0..50).map(|j| ag.signal(&format!("45.6.0.{j}"))).collect();
            ag.client.push(&sigs).await.map(|r| r.accepted)
        }));
    }
    for t in tasks {
        assert_eq!(t.await.unwrap().unwrap(), 50);
    }
    let l1 = blocklist(&h1, Some(v0)).await;
    let l2 = blocklist(&h2, Some(v0)).await;
    assert_eq!(l1.new.len(), 51, "all 50 plus 45.5.5.5");
    assert_eq!(listed(&l1), listed(&l2));
    assert_eq!(l1.version, l2.version);
    // a delta from either instance since the other's version is empty
    assert!(blocklist(&h2, Some(l1.version)).await.new.is_empty());
}

/// Behind a trusted reverse proxy the agents' networks come from X-Forwarded-For; from
/// anyone else the header is ignored (it cannot be used to fake networks).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_trusted_proxy_forwards_networks() {
    let db = sqlite_db();
    let mut c = cfg();
    c.trusted_proxies = vec![crowdwall_base::Net(
        crowdwall_base::parse_net("127.0.77.0/24").unwrap(),
    )];
    let hub = TestHub::start(&db.url, c).await;
    let now = now_s();
    let push_as = |ip: &'static str, proxy: &'static str, xff: &'static str| {
        let url = hub.url();
        async move {
            let local: IpAddr = proxy.parse().unwrap();
            let anon = HubClient::with_local_address(&url, None, Some(local)).unwrap();
            let r = anon.enroll("p", None).await.unwrap();
            let body = serde_json::json!({"signals": [{"uid": "x", "ip": ip, "scenario": "ssh-bruteforce",
                "first_seen": now - 60, "last_seen": now - 30, "events": 6}]});
            let resp = reqwest::Client::builder()
                .local_address(local)
                .build()
                .unwrap()
                .post(format!("{url}/v1/signals"))
                .header(
                    "authorization",
                    format!("Bearer {}:{}", r.agent_id, r.secret),
                )
                .header("x-forwarded-for", xff)
                .json(&body)
                .send()
                .await
                .unwrap();
            assert_eq!(resp.status().as_u16(), 200);
        }
    };
    // through the proxy, three forwarded networks: listed
    push_as("45.20.0.1", "127.0.77.1", "20.1.1.5").await;
    push_as("45.20.0.1", "127.0.77.1", "9.9.9.9, 20.1.2.5").await;
    push_as("45.20.0.1", "127.0.77.1", "20.1.3.5").await;
    // not through the proxy: the same header from one network is ignored
    push_as("45.20.0.2", "127.0.78.1", "20.1.1.5").await;
    push_as("45.20.0.2", "127.0.78.2", "20.1.2.5").await;
    push_as("45.20.0.2", "127.0.78.3", "20.1.3.5").await;
    assert_eq!(listed(&blocklist(&hub, None).await), vec!["45.20.0.1"]);
}

fn cli(args: &[&str]) -> (bool, String) {
    // `hub ...` is the hub's own binary now; everything else is the host's CLI.
    let (bin, config, args) = match args.split_first() {
        Some((&"hub", rest)) => (hub_bin(), HUB_CONFIG, rest),
        _ => (std::path::PathBuf::from(BIN), CONFIG, args),
    };
    let o = std::process::Command::new(bin)
        .arg("--config")
        .arg(config)
        .args(args)
        .output()
        .expect("run crowdwall");
    (o.status.success(), text(&o))
}

/// The administrator's commands: `hub delist` on the database, and `community register`
/// against a hub that is not there (an error, and no credentials file).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_cli_delist_and_register_errors() {
    let db = sqlite_db();
    let hub = TestHub::start(&db.url, cfg()).await;
    for n in 1..=3 {
        enrol(&hub, &format!("127.0.{}.1", 60 + n))
            .await
            .report("45.30.0.1")
            .await;
    }
    assert_eq!(listed(&blocklist(&hub, None).await), vec!["45.30.0.1"]);
    let url = db.url.clone();
    let (ok, out) = tokio::task::spawn_blocking(move || {
        cli(&["hub", "--database", &url, "delist", "45.30.0.1"])
    })
    .await
    .unwrap();
    assert!(ok && out.contains("45.30.0.1 delisted"), "{out}");
    assert!(blocklist(&hub, None).await.new.is_empty());
    let url = db.url.clone();
    let (ok, out) =
        tokio::task::spawn_blocking(move || cli(&["hub", "--database", &url, "delist", "nope"]))
            .await
            .unwrap();
    assert!(!ok && out.contains("not an IP address"), "{out}");

    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().to_str().unwrap().to_string();
    let (ok, out) = tokio::task::spawn_blocking(move || {
        cli(&[
            "community",
            "register",
            "--hub",
            "http://127.0.0.1:9",
            "--state-dir",
            &state,
        ])
    })
    .await
    .unwrap();
    assert!(!ok && out.contains("unreachable"), "{out}");
    assert!(!dir.path().join("community.json").exists());
}
