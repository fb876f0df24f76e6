//! Hub load benchmark on loopback: a load generator (its own runtime) against a hub (its own
//! runtime) over real HTTP, for SQLite and, when reachable, PostgreSQL. Prints a markdown
//! table: signals ingested per second (batches of 100 from 40 agents in 40 /24s, 8 pushes in
//! flight), reputation look-ups per second (32 in flight, over the 20,000 reported addresses
//! and 2,000 never reported, uniformly at random) and their p50/p99 latency: from wrk (a
//! separate process, when installed) and from reqwest in this process, against the hub as
//! configured by default (`lookup_cache = "5s"`), and from wrk against a second instance on
//! the same database that asks the store on every look-up.
//!
//!     cargo bench --bench hub            # HUB_BENCH_SIGNALS (100000), HUB_BENCH_SECS (10),
//!                                        # HUB_BENCH_STORES (sqlite,postgres)
//!
//! PostgreSQL: CROWDWALL_TEST_PG (default postgres://crowdwall:crowdwall@127.0.0.1:5432/postgres,
//! the role tests/lab/deps.sh creates). Timing is reported, never asserted.

use std::net::IpAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use crowdwall_daemon::community::client::{Credentials, HubClient};
use crowdwall_hub::store::HubStore;
use crowdwall_hub::{serve, Hub, HubSection};
use crowdwall_proto::Signal;

const AGENTS: usize = 40;
const BATCH: usize = 100;
const PUSHERS: usize = 8;
const LOOKERS: usize = 32;
const POOL: u32 = 20_000;
const SCENARIOS: [&str; 4] = [
    "ssh-bruteforce",
    "ssh-slow-bruteforce",
    "ssh-user-enum",
    "ssh-probing",
];

/// Small deterministic PRNG (xorshift): the same addresses every run.
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
}

fn target(i: u32) -> String {
    format!("45.{}.{}.{}", 1 + (i >> 16) % 200, (i >> 8) & 255, i & 255)
}

struct Row {
    backend: &'static str,
    signals_per_s: f64,
    push_p99_ms: f64,
    listed: usize,
    lookups_per_s: f64,
    p50_ms: f64,
    p99_ms: f64,
    /// The same look-ups from wrk (a separate C process), when installed.
    wrk: Option<(f64, f64, f64)>,
    /// wrk against a second instance on the same database with `lookup_cache = "0s"`.
    wrk_uncached: Option<(f64, f64, f64)>,
}

/// Look-ups from wrk: (requests/s, p50 ms, p99 ms).
fn wrk(url: &str, secs: u64) -> Option<(f64, f64, f64)> {
    let dir = tempfile::tempdir().ok()?;
    let script = dir.path().join("lookup.lua");
    std::fs::write(
        &script,
        format!(
            "math.randomseed(42)\nrequest = function()\n  local i = math.random(0, {})\n  \
             return wrk.format(\"GET\", string.format(\"/v1/ip/45.%d.%d.%d\", 1 + math.floor(i / 65536) % 200, math.floor(i / 256) % 256, i % 256))\nend\n",
            POOL + POOL / 10 - 1
        ),
    )
    .ok()?;
    let out = std::process::Command::new("wrk")
        .args([
            "-t1",
            &format!("-c{LOOKERS}"),
            &format!("-d{secs}s"),
            "--latency",
            "-s",
        ])
        .arg(&script)
        .arg(url)
        .output()
        .ok()?;
    let text = String::from_utf8_lossy(&out.stdout);
    let ms = |v: &str| -> Option<f64> {
        let v = v.trim();
        if let Some(x) = v.strip_suffix("us") {
            x.parse::<f64>().ok().map(|x| x / 1000.0)
        } else if let Some(x) = v.strip_suffix("ms") {
            x.parse().ok()
        } else {
            v.strip_suffix('s')?.parse::<f64>().ok().map(|x| x * 1000.0)
        }
    };
    let mut rps = None;
    let (mut p50, mut p99) = (None, None);
    for l in text.lines() {
        let l = l.trim();
        if let Some(v) = l.strip_prefix("Requests/sec:") {
            rps = v.trim().parse().ok();
        } else if let Some(v) = l.strip_prefix("50%") {
            p50 = ms(v);
        } else if let Some(v) = l.strip_prefix("99%") {
            p99 = ms(v);
        }
    }
    if text.contains("Non-2xx") {
        // 404s for the tenth of addresses never reported are expected; anything else is not
        eprintln!(
            "wrk: {}",
            text.lines().find(|l| l.contains("Non-2xx")).unwrap_or("")
        );
    }
    Some((rps?, p50?, p99?))
}

fn pct(sorted: &[u32], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let i = ((sorted.len() as f64 * p).ceil() as usize).clamp(1, sorted.len()) - 1;
    sorted[i] as f64 / 1000.0
}

fn run(backend: &'static str, database: &str, signals: usize, secs: u64) -> Row {
    let server = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let cfg = HubSection {
        rate_limit: 0,
        consensus: crowdwall_hub::consensus::ConsensusSection {
            agent_hourly_cap: u64::MAX / 2,
            ..Default::default()
        },
        ..HubSection::default()
    };
    let db = database.to_string();
    // Two instances on one database: the default, and one that asks the store every time.
    let (addr, uncached) = server.block_on(async move {
        let mut addrs = Vec::new();
        for ttl in [cfg.lookup_cache.0, Duration::ZERO] {
            let store = HubStore::open(&db).await.expect("hub store");
            let hub = Hub::new(
                HubSection {
                    lookup_cache: crowdwall_base::Dur(ttl),
                    ..cfg.clone()
                },
                store,
            )
            .unwrap();
            let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
            addrs.push(l.local_addr().unwrap());
            tokio::spawn(async move { serve(l, hub, std::future::pending()).await });
        }
        (addrs[0], addrs[1])
    });
    let url = format!("http://{addr}");
    let url_uncached = format!("http://{uncached}");
    let client = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    client.block_on(async move {
        // agents, each from its own /24
        let mut agents = Vec::new();
        for n in 0..AGENTS {
            let local: IpAddr = format!("127.1.{n}.1").parse().unwrap();
            let anon = HubClient::with_local_address(&url, None, Some(local)).unwrap();
            let r = anon.enroll("bench", None).await.expect("enrol");
            let creds = Credentials {
                hub: url.clone(),
                agent_id: r.agent_id,
                secret: r.secret,
            };
            agents.push(Arc::new(
                HubClient::with_local_address(&url, Some(&creds), Some(local)).unwrap(),
            ));
        }
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .as_secs() as i64;
        // ingestion: batches handed out by a shared counter to PUSHERS tasks
        let batches = signals.div_ceil(BATCH);
        let next = Arc::new(AtomicU64::new(0));
        let t0 = Instant::now();
        let mut tasks = Vec::new();
        for w in 0..PUSHERS {
            let agents = agents.clone();
            let next = next.clone();
            tasks.push(tokio::spawn(async move {
                let mut lat = Vec::new();
                let mut rng = Rng(0x9E37_79B9_7F4A_7C15 ^ (w as u64 + 1));
                loop {
                    let b = next.fetch_add(1, Ordering::Relaxed) as usize;
                    if b >= batches {
                        break;
                    }
                    let agent = &agents[b % AGENTS];
                    let sigs: Vec<Signal> = (0..BATCH)
                        .map(|i| {
                            let r = rng.next();
                            Signal {
                                uid: format!("b{b}s{i}"),
                                ip: target((r % POOL as u64) as u32),
                                scenario: SCENARIOS[(r >> 32) as usize % 4].into(),
                                first_seen: now - 120,
                                last_seen: now - 60,
                                events: 6,
                            }
                        })
                        .collect();
                    let t = Instant::now();
                    agent.push(&sigs).await.expect("push");
                    lat.push(t.elapsed().as_micros() as u32);
                }
                lat
            }));
        }
        let mut push_lat = Vec::new();
        for t in tasks {
            push_lat.extend(t.await.unwrap());
        }
        let ingest_s = t0.elapsed().as_secs_f64();
        push_lat.sort_unstable();
        let listed = HubClient::new(&url, None)
            .unwrap()
            .blocklist(None)
            .await
            .unwrap()
            .new
            .len();

        // look-ups for SECS seconds
        let http = reqwest::Client::builder()
            .pool_max_idle_per_host(LOOKERS)
            .build()
            .unwrap();
        let stop = Instant::now() + Duration::from_secs(secs);
        let t0 = Instant::now();
        let mut tasks = Vec::new();
        for w in 0..LOOKERS {
            let http = http.clone();
            let url = url.clone();
            tasks.push(tokio::spawn(async move {
                let mut lat = Vec::new();
                let mut rng = Rng(0xD1B5_4A32_D192_ED03 ^ (w as u64 + 7));
                while Instant::now() < stop {
                    let ip = target((rng.next() % (POOL as u64 + POOL as u64 / 10)) as u32);
                    let t = Instant::now();
                    let r = http
                        .get(format!("{url}/v1/ip/{ip}"))
                        .send()
                        .await
                        .expect("lookup");
                    let code = r.status().as_u16();
                    let _ = r.bytes().await;
                    assert!(code == 200 || code == 404, "look-up answered {code}");
                    lat.push(t.elapsed().as_micros() as u32);
                }
                lat
            }));
        }
        let mut look_lat = Vec::new();
        for t in tasks {
            look_lat.extend(t.await.unwrap());
        }
        let look_s = t0.elapsed().as_secs_f64();
        look_lat.sort_unstable();
        let u = url.clone();
        let wrk_cached = tokio::task::spawn_blocking(move || wrk(&u, secs))
            .await
            .ok()
            .flatten();
        let wrk_uncached = tokio::task::spawn_blocking(move || wrk(&url_uncached, secs))
            .await
            .ok()
            .flatten();
        Row {
            backend,
            signals_per_s: (batches * BATCH) as f64 / ingest_s,
            push_p99_ms: pct(&push_lat, 0.99),
            listed,
            lookups_per_s: look_lat.len() as f64 / look_s,
            p50_ms: pct(&look_lat, 0.50),
            p99_ms: pct(&look_lat, 0.99),
            wrk: wrk_cached,
            wrk_uncached,
        }
    })
}

async fn pg_database() -> Option<String> {
    let admin = std::env::var("CROWDWALL_TEST_PG")
        .unwrap_or_else(|_| "postgres://crowdwall:crowdwall@127.0.0.1:5432/postgres".into());
    let (c, conn) = match tokio_postgres::connect(&admin, tokio_postgres::NoTls).await {
        Ok(x) => x,
        Err(e) => {
            eprintln!("PostgreSQL at {admin} not reachable ({e}): skipped");
            return None;
        }
    };
    tokio::spawn(conn);
    c.batch_execute("DROP DATABASE IF EXISTS cwhub_bench WITH (FORCE)")
        .await
        .ok()?;
    c.batch_execute("CREATE DATABASE cwhub_bench").await.ok()?;
    let base = admin.rsplit_once('/').map(|x| x.0).unwrap_or(&admin);
    Some(format!("{base}/cwhub_bench"))
}

fn main() {
    let signals: usize = std::env::var("HUB_BENCH_SIGNALS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(100_000);
    let secs: u64 = std::env::var("HUB_BENCH_SECS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(10);
    // HUB_BENCH_STORES=postgres (or sqlite) runs one only
    let stores = std::env::var("HUB_BENCH_STORES").unwrap_or_else(|_| "sqlite,postgres".into());
    let dir = tempfile::tempdir().unwrap();
    let mut rows = Vec::new();
    if stores.contains("sqlite") {
        rows.push(run(
            "SQLite",
            &format!("sqlite:{}", dir.path().join("hub.db").display()),
            signals,
            secs,
        ));
    }
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    if stores.contains("postgres") {
        if let Some(pg) = rt.block_on(pg_database()) {
            rows.push(run("PostgreSQL", &pg, signals, secs));
        }
    }
    println!(
        "Hub on loopback, {} cores: {signals} signals in batches of {BATCH} from {AGENTS} agents ({PUSHERS} pushes in flight) over {POOL} addresses; look-ups for {secs}s, {LOOKERS} in flight.\n",
        std::thread::available_parallelism().map(|n| n.get()).unwrap_or(0)
    );
    println!("| store | signals ingested/s | push p99 (ms, 100 signals) | listed | look-ups/s (wrk) | p50 / p99 (ms) | look-ups/s (reqwest) | p50 / p99 (ms) | look-ups/s (wrk, no cache) | p50 / p99 (ms) |");
    println!("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|");
    let cell = |w: Option<(f64, f64, f64)>| match w {
        Some((rps, p50, p99)) => (format!("{rps:.0}"), format!("{p50:.2} / {p99:.2}")),
        None => ("-".into(), "-".into()),
    };
    for r in rows {
        let (w, wl) = cell(r.wrk);
        let (u, ul) = cell(r.wrk_uncached);
        println!(
            "| {} | {:.0} | {:.1} | {} | {w} | {wl} | {:.0} | {:.2} / {:.2} | {u} | {ul} |",
            r.backend,
            r.signals_per_s,
            r.push_p99_ms,
            r.listed,
            r.lookups_per_s,
            r.p50_ms,
            r.p99_ms
        );
    }
}
