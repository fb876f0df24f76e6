//! The hub's PostgreSQL store, for several hub instances over one database. Set-based
//! statements (arrays through `unnest`) keep a batch to a handful of round trips.
//!
//! Consistency between instances: signals are keyed by (agent, uid), so a batch delivered to
//! two instances is stored once; counters are upserts; every change to the blocklist takes
//! one transaction-scoped advisory lock before drawing its version from a sequence, so
//! versions commit in order.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::atomic::{AtomicUsize, Ordering};

use std::sync::Arc;

use tokio::sync::{mpsc, oneshot, Mutex};
use tokio_postgres::{Client, IsolationLevel, NoTls, Statement, Transaction};

use super::sqlite::{enrolled_net, scenarios_from_json};
use super::store::{
    AddressInfo, BlockRow, Changes, EnrolCap, Enrolled, HubStats, HubStoreError, IngestOutcome,
    ValidSignal, STATS_SPAN, TOMBSTONE_KEEP,
};
use crate::consensus::{evaluate, Params, Report};
use crowdwall_base::time::{Micros, SECOND};

const SCHEMA_VERSION: i32 = 2;
/// Connections per hub instance.
const POOL: usize = 8;
/// Shared connections for single statements: tokio-postgres pipelines concurrent queries on
/// one connection, so look-ups need no lock.
const READERS: usize = 4;
/// Advisory lock key serialising blocklist versions ("cwhub").
const VERSION_LOCK: i64 = 0x0063_7768_7562;
/// First key of the two-key advisory locks serialising enrolments per network ("cw"; the
/// second is the network's hash). Two-key locks never conflict with one-key ones.
const ENROL_LOCK: i32 = 0x6377;

/// Per address in one batch: first seen, last seen, reports, reports per scenario.
type PerIp<'a> = (i64, i64, i64, BTreeMap<&'a str, i64>);

pub struct PgStore {
    /// For transactions (need `&mut Client`), each with its prepared statements.
    clients: Vec<Mutex<Conn>>,
    /// (connection, look-up statement, agent secret statement)
    readers: Vec<Arc<(Client, Statement, Statement)>>,
    next: AtomicUsize,
    /// Look-ups waiting for a batch (see `batch_lookups`).
    asks: mpsc::Sender<Ask>,
}

/// One address to look up and where its answer goes.
type Ask = (String, oneshot::Sender<Result<Option<AddressInfo>, String>>);

/// Most addresses in one batched look-up.
const LOOKUP_BATCH: usize = 256;

/// A connection and the statements prepared on it: a prepared statement saves a round trip
/// and the server's planning on every use.
struct Conn {
    client: Client,
    cache: HashMap<&'static str, Statement>,
}

async fn st(
    cache: &mut HashMap<&'static str, Statement>,
    tx: &Transaction<'_>,
    sql: &'static str,
) -> Result<Statement, tokio_postgres::Error> {
    if let Some(s) = cache.get(sql) {
        return Ok(s.clone());
    }
    let s = tx.prepare(sql).await?;
    cache.insert(sql, s.clone());
    Ok(s)
}

const LOOKUP: &str =
    "SELECT a.first_seen, a.last_seen, a.reports, a.reporters, a.weight, a.scenarios::text,
            CASE WHEN b.active THEN b.until END, a.ip, a.networks
     FROM addresses a LEFT JOIN blocklist b ON b.ip = a.ip WHERE a.ip = ANY($1)";
const SECRET: &str = "SELECT secret_sha256 FROM agents WHERE id = $1 AND NOT revoked";

impl PgStore {
    pub async fn open(url: &str) -> Result<PgStore, HubStoreError> {
        let mut clients = Vec::new();
        let mut readers = Vec::new();
        for i in 0..POOL + READERS {
            let (client, conn) =
                tokio_postgres::connect(url, NoTls)
                    .await
                    .map_err(|e| HubStoreError::Open {
                        url: redact(url),
                        message: e.to_string(),
                    })?;
            tokio::spawn(async move {
                if let Err(e) = conn.await {
                    log::error!("hub database connection: {e}");
                }
            });
            if i < POOL {
                clients.push(Mutex::new(Conn {
                    client,
                    cache: HashMap::new(),
                }));
            } else {
                readers.push(client);
            }
        }
        let (asks, rx) = mpsc::channel(4 * LOOKUP_BATCH);
        let mut s = PgStore {
            clients,
            readers: Vec::new(),
            next: AtomicUsize::new(0),
            asks,
        };
        s.migrate().await?;
        // statements can be prepared once the schema exists
        let rx = Arc::new(Mutex::new(rx));
        for c in readers {
            let (l, a) = (c.prepare(LOOKUP).await?, c.prepare(SECRET).await?);
            let r = Arc::new((c, l, a));
            tokio::spawn(batch_lookups(rx.clone(), r.clone()));
            s.readers.push(r);
        }
        Ok(s)
    }

    fn reader(&self) -> &Arc<(Client, Statement, Statement)> {
        &self.readers[self.next.fetch_add(1, Ordering::Relaxed) % self.readers.len()]
    }

    /// A free connection if there is one, else the next in turn.
    async fn conn(&self) -> tokio::sync::MutexGuard<'_, Conn> {
        let start = self.next.fetch_add(1, Ordering::Relaxed);
        for i in 0..self.clients.len() {
            if let Ok(g) = self.clients[(start + i) % self.clients.len()].try_lock() {
                return g;
            }
        }
        self.clients[start % self.clients.len()].lock().await
    }

    async fn migrate(&self) -> Result<(), HubStoreError> {
        let mut g = self.conn().await;
        let tx = g.client.transaction().await?;
        // Two instances starting together: one migrates, the other waits and finds it done.
        tx.execute("SELECT pg_advisory_xact_lock($1)", &[&(VERSION_LOCK + 1)])
            .await?;
        tx.batch_execute("CREATE TABLE IF NOT EXISTS hub_schema (version INTEGER NOT NULL)")
            .await?;
        let v: Option<i32> = tx
            .query_opt("SELECT max(version) FROM hub_schema", &[])
            .await?
            .and_then(|r| r.get(0));
        let v = v.unwrap_or(0);
        if v > SCHEMA_VERSION {
            return Err(HubStoreError::Schema {
                found: v as i64,
                known: SCHEMA_VERSION as i64,
            });
        }
        if v < 1 {
            tx.batch_execute(
                "CREATE TABLE agents (
                     id TEXT PRIMARY KEY,
                     secret_sha256 TEXT NOT NULL,
                     name TEXT NOT NULL,
                     enrolled_from TEXT NOT NULL,
                     created BIGINT NOT NULL,
                     corroborated BIGINT NOT NULL DEFAULT 0,
                     revoked BOOLEAN NOT NULL DEFAULT false
                 );
                 CREATE TABLE signals (
                     agent_id TEXT NOT NULL,
                     uid TEXT NOT NULL,
                     ip TEXT NOT NULL,
                     scenario TEXT NOT NULL,
                     first_seen BIGINT NOT NULL,
                     last_seen BIGINT NOT NULL,
                     events BIGINT NOT NULL,
                     net TEXT NOT NULL,
                     received BIGINT NOT NULL,
                     PRIMARY KEY (agent_id, uid)
                 );
                 CREATE INDEX signals_ip ON signals (ip, last_seen);
                 CREATE INDEX signals_agent ON signals (agent_id, received);
                 CREATE INDEX signals_received ON signals (received);
                 CREATE TABLE addresses (
                     ip TEXT PRIMARY KEY,
                     first_seen BIGINT NOT NULL,
                     last_seen BIGINT NOT NULL,
                     reports BIGINT NOT NULL,
                     reporters BIGINT NOT NULL,
                     scenarios JSONB NOT NULL,
                     weight DOUBLE PRECISION NOT NULL DEFAULT 0,
                     delisted_at BIGINT
                 );
                 CREATE TABLE reporters (
                     ip TEXT NOT NULL,
                     agent_id TEXT NOT NULL,
                     PRIMARY KEY (ip, agent_id)
                 );
                 CREATE TABLE blocklist (
                     ip TEXT PRIMARY KEY,
                     scenario TEXT NOT NULL,
                     score INTEGER NOT NULL,
                     listed_at BIGINT NOT NULL,
                     until BIGINT NOT NULL,
                     version BIGINT NOT NULL,
                     active BOOLEAN NOT NULL,
                     ended BIGINT
                 );
                 CREATE INDEX blocklist_version ON blocklist (version);
                 CREATE SEQUENCE blocklist_versions;
                 CREATE TABLE counters (name TEXT PRIMARY KEY, n BIGINT NOT NULL);
                 CREATE TABLE meta (key TEXT PRIMARY KEY, value BIGINT NOT NULL);
                 INSERT INTO meta (key, value) VALUES ('pruned_version', 0);
                 INSERT INTO hub_schema (version) VALUES (1);",
            )
            .await?;
        }
        if v < 2 {
            // as SQLite's schema 2: enrolment networks (the per-network cap on live agents)
            // and each address's reporter networks (the score counts networks)
            tx.batch_execute(
                "ALTER TABLE agents ADD COLUMN enrolled_net TEXT;
                 CREATE INDEX agents_net ON agents (enrolled_net);
                 ALTER TABLE addresses ADD COLUMN networks BIGINT NOT NULL DEFAULT 0;
                 UPDATE addresses a SET networks =
                     (SELECT COUNT(DISTINCT s.net) FROM signals s WHERE s.ip = a.ip);",
            )
            .await?;
            let old = tx
                .query(
                    "SELECT id, enrolled_from FROM agents WHERE enrolled_net IS NULL",
                    &[],
                )
                .await?;
            for r in old {
                let (id, from): (String, String) = (r.get(0), r.get(1));
                if let Some(net) = enrolled_net(&from) {
                    tx.execute(
                        "UPDATE agents SET enrolled_net = $2 WHERE id = $1",
                        &[&id, &net],
                    )
                    .await?;
                }
            }
            tx.batch_execute("INSERT INTO hub_schema (version) VALUES (2)")
                .await?;
        }
        tx.commit().await?;
        Ok(())
    }

    #[allow(clippy::too_many_arguments)]
    pub async fn enroll(
        &self,
        id: &str,
        hash: &str,
        name: &str,
        from: &str,
        net: &str,
        cap: Option<EnrolCap>,
        now: Micros,
    ) -> Result<Enrolled, HubStoreError> {
        let mut g = self.conn().await;
        let Conn { client, cache } = &mut *g;
        let tx = client.transaction().await?;
        if let Some(cap) = cap {
            // Enrolments from one network, on any instance, take turns: without the lock
            // two could both count room for one more.
            tx.execute(
                &st(cache, &tx, "SELECT pg_advisory_xact_lock($1, hashtext($2))").await?,
                &[&ENROL_LOCK, &net],
            )
            .await?;
            let live: i64 = tx
                .query_one(
                    &st(
                        cache,
                        &tx,
                        "SELECT COUNT(*) FROM agents a
                         WHERE a.enrolled_net = $1 AND NOT a.revoked
                           AND (a.created > $2
                                OR EXISTS (SELECT 1 FROM signals s
                                           WHERE s.agent_id = a.id AND s.received > $2))",
                    )
                    .await?,
                    &[&net, &cap.live_since],
                )
                .await?
                .get(0);
            if live >= cap.max {
                tx.commit().await?;
                return Ok(Enrolled::NetworkFull { live });
            }
        }
        tx.execute(
            &st(
                cache,
                &tx,
                "INSERT INTO agents (id, secret_sha256, name, enrolled_from, enrolled_net, created)
                 VALUES ($1, $2, $3, $4, $5, $6)",
            )
            .await?,
            &[&id, &hash, &name, &from, &net, &now],
        )
        .await?;
        tx.commit().await?;
        Ok(Enrolled::Yes)
    }

    pub async fn agent_secret(&self, id: &str) -> Result<Option<String>, HubStoreError> {
        let (c, _, secret) = &**self.reader();
        Ok(c.query_opt(secret, &[&id]).await?.map(|r| r.get(0)))
    }

    pub async fn ingest(
        &self,
        agent: &str,
        net: &str,
        signals: &[ValidSignal],
        now: Micros,
        p: &Params,
    ) -> Result<IngestOutcome, HubStoreError> {
        // A deadlock between instances touching the same addresses aborts one transaction:
        // run it again (the batch is idempotent).
        let mut tries = 0;
        loop {
            match self.ingest_once(agent, net, signals, now, p).await {
                Err(HubStoreError::Postgres(e))
                    if tries < 3
                        && e.code().is_some_and(|c| {
                            *c == tokio_postgres::error::SqlState::T_R_DEADLOCK_DETECTED
                                || *c == tokio_postgres::error::SqlState::T_R_SERIALIZATION_FAILURE
                        }) =>
                {
                    tries += 1;
                }
                r => return r,
            }
        }
    }

    async fn ingest_once(
        &self,
        agent: &str,
        net: &str,
        signals: &[ValidSignal],
        now: Micros,
        p: &Params,
    ) -> Result<IngestOutcome, HubStoreError> {
        let mut out = IngestOutcome::default();
        let mut g = self.conn().await;
        let Conn { client, cache } = &mut *g;
        let tx = client.transaction().await?;
        let uids: Vec<&str> = signals.iter().map(|s| s.uid.as_str()).collect();
        // one round trip: the agent's signals this hour, and which of these it sent before
        let row = tx
            .query_one(
                &st(
                    cache,
                    &tx,
                    "SELECT (SELECT COUNT(*) FROM signals WHERE agent_id = $1 AND received > $2),
                        ARRAY(SELECT uid FROM signals WHERE agent_id = $1 AND uid = ANY($3))",
                )
                .await?,
                &[&agent, &(now - 3600 * SECOND), &uids],
            )
            .await?;
        let used: i64 = row.get(0);
        let known: BTreeSet<String> = row.get::<_, Vec<String>>(1).into_iter().collect();
        let mut room = (p.agent_hourly_cap as i64 - used).max(0);
        let mut fresh = Vec::new();
        let mut seen = BTreeSet::new();
        for s in signals {
            if known.contains(&s.uid) || !seen.insert(s.uid.as_str()) {
                out.duplicates += 1;
            } else if room == 0 {
                out.capped.push(s.index);
            } else {
                room -= 1;
                fresh.push(s);
            }
        }
        if fresh.is_empty() {
            tx.commit().await?;
            return Ok(out);
        }
        let col = |f: fn(&ValidSignal) -> String| fresh.iter().map(|s| f(s)).collect::<Vec<_>>();
        let (u, i, sc) = (
            col(|s| s.uid.clone()),
            col(|s| s.ip.clone()),
            col(|s| s.scenario.clone()),
        );
        let f: Vec<i64> = fresh.iter().map(|s| s.first_seen).collect();
        let l: Vec<i64> = fresh.iter().map(|s| s.last_seen).collect();
        let e: Vec<i64> = fresh.iter().map(|s| s.events).collect();
        let inserted: BTreeSet<String> = tx.query(
                &st(cache, &tx, "INSERT INTO signals (agent_id, uid, ip, scenario, first_seen, last_seen, events, net, received)
                 SELECT $1, u, i, s, f, l, e, $8, $9
                 FROM unnest($2::text[], $3::text[], $4::text[], $5::bigint[], $6::bigint[], $7::bigint[])
                   AS t(u, i, s, f, l, e)
                 ON CONFLICT DO NOTHING RETURNING uid").await?,
                &[&agent, &u, &i, &sc, &f, &l, &e, &net, &now],
            )
            .await?
            .iter()
            .map(|r| r.get(0))
            .collect();
        // Aggregate per address (an upsert may touch a row once per statement), sorted so
        // concurrent batches lock rows in the same order.
        let mut per_ip: BTreeMap<&str, PerIp> = BTreeMap::new();
        for s in fresh.iter().filter(|s| inserted.contains(&s.uid)) {
            let e = per_ip
                .entry(s.ip.as_str())
                .or_insert((i64::MAX, i64::MIN, 0, BTreeMap::new()));
            e.0 = e.0.min(s.first_seen);
            e.1 = e.1.max(s.last_seen);
            e.2 += 1;
            *e.3.entry(s.scenario.as_str()).or_default() += 1;
            out.accepted += 1;
        }
        out.duplicates += fresh.len() - out.accepted;
        if per_ip.is_empty() {
            tx.commit().await?;
            return Ok(out);
        }
        let ips: Vec<&str> = per_ip.keys().copied().collect();
        let firsts: Vec<i64> = per_ip.values().map(|v| v.0).collect();
        let lasts: Vec<i64> = per_ip.values().map(|v| v.1).collect();
        let counts: Vec<i64> = per_ip.values().map(|v| v.2).collect();
        let scen: Vec<String> = per_ip
            .values()
            .map(|v| serde_json::to_string(&v.3).unwrap_or_else(|_| "{}".into()))
            .collect();
        tx.execute(
                &st(cache, &tx, "INSERT INTO addresses AS a (ip, first_seen, last_seen, reports, reporters, scenarios)
             SELECT i, f, l, n, 0, sc::jsonb
             FROM unnest($1::text[], $2::bigint[], $3::bigint[], $4::bigint[], $5::text[]) AS t(i, f, l, n, sc)
             ON CONFLICT (ip) DO UPDATE SET
               first_seen = LEAST(a.first_seen, excluded.first_seen),
               last_seen = GREATEST(a.last_seen, excluded.last_seen),
               reports = a.reports + excluded.reports,
               scenarios = (SELECT jsonb_object_agg(k, COALESCE((a.scenarios->>k)::bigint, 0)
                                                      + COALESCE((excluded.scenarios->>k)::bigint, 0))
                            FROM jsonb_object_keys(a.scenarios || excluded.scenarios) AS k)").await?,
            &[&ips, &firsts, &lasts, &counts, &scen],
        )
        .await?;
        let new_reporter: Vec<String> = tx
            .query(
                &st(
                    cache,
                    &tx,
                    "INSERT INTO reporters (ip, agent_id) SELECT i, $2 FROM unnest($1::text[]) AS i
                 ON CONFLICT DO NOTHING RETURNING ip",
                )
                .await?,
                &[&ips, &agent],
            )
            .await?
            .iter()
            .map(|r| r.get(0))
            .collect();
        if !new_reporter.is_empty() {
            tx.execute(
                &st(
                    cache,
                    &tx,
                    "UPDATE addresses SET reporters = reporters + 1 WHERE ip = ANY($1)",
                )
                .await?,
                &[&new_reporter],
            )
            .await?;
        }
        // Consensus for every touched address, from one read of their reports.
        let mut delisted: HashMap<String, i64> = HashMap::new();
        let mut reports: HashMap<String, Vec<(Report, String)>> = HashMap::new();
        for r in tx.query(
                &st(cache, &tx, "SELECT s.ip, s.agent_id, s.net, a.corroborated, s.last_seen, s.scenario, s.received,
                        ad.delisted_at
                 FROM signals s JOIN agents a ON a.id = s.agent_id
                 LEFT JOIN addresses ad ON ad.ip = s.ip
                 WHERE s.ip = ANY($1) AND s.last_seen > $2 AND NOT a.revoked").await?,
                &[&ips, &(now - p.window)],
            )
            .await?
        {
            let ip: String = r.get(0);
            if let Some(d) = r.get::<_, Option<i64>>(7) {
                delisted.insert(ip.clone(), d);
            }
            reports.entry(ip).or_default().push((
                Report {
                    agent: r.get(1),
                    net: r.get(2),
                    corroborated: r.get::<_, i64>(3).clamp(0, u32::MAX as i64) as u32,
                    last_seen: r.get(4),
                    received: r.get(6),
                },
                r.get(5),
            ));
        }
        let mut weights = Vec::new();
        let mut networks: Vec<i64> = Vec::new();
        let mut listed = Vec::new();
        for ip in &ips {
            let reps = reports.remove(*ip).unwrap_or_default();
            let plain: Vec<Report> = reps.iter().map(|r| r.0.clone()).collect();
            let v = evaluate(&plain, delisted.get(*ip).copied(), now, p);
            weights.push(v.weight);
            networks.push(v.networks as i64);
            if v.listed {
                let mut by: HashMap<&str, usize> = HashMap::new();
                for (_, s) in &reps {
                    *by.entry(s.as_str()).or_default() += 1;
                }
                let top = by
                    .into_iter()
                    .max_by(|a, b| a.1.cmp(&b.1).then(b.0.cmp(a.0)))
                    .map(|x| x.0.to_string())
                    .unwrap_or_default();
                let agents: BTreeSet<String> = plain.into_iter().map(|r| r.agent).collect();
                listed.push((ip.to_string(), v, top, agents));
            }
        }
        tx.execute(
            &st(
                cache,
                &tx,
                "UPDATE addresses a SET weight = t.w, networks = t.n
             FROM unnest($1::text[], $2::float8[], $3::bigint[]) AS t(i, w, n)
             WHERE a.ip = t.i",
            )
            .await?,
            &[&ips, &weights, &networks],
        )
        .await?;
        if !listed.is_empty() {
            tx.execute(
                &st(cache, &tx, "SELECT pg_advisory_xact_lock($1)").await?,
                &[&VERSION_LOCK],
            )
            .await?;
            let names: Vec<&str> = listed.iter().map(|l| l.0.as_str()).collect();
            let cur: HashMap<String, (bool, i64)> = tx
                .query(
                    &st(
                        cache,
                        &tx,
                        "SELECT ip, active, until FROM blocklist WHERE ip = ANY($1)",
                    )
                    .await?,
                    &[&names],
                )
                .await?
                .iter()
                .map(|r| (r.get(0), (r.get(1), r.get(2))))
                .collect();
            let mut version: Option<i64> = None;
            for (ip, v, top, agents) in &listed {
                let prior = cur.get(ip).copied();
                if let Some((true, until)) = prior {
                    if v.until <= until + p.ttl / 4 {
                        continue;
                    }
                }
                let ver = match version {
                    Some(x) => x,
                    None => {
                        let x: i64 = tx
                            .query_one(
                                &st(cache, &tx, "SELECT nextval('blocklist_versions')").await?,
                                &[],
                            )
                            .await?
                            .get(0);
                        version = Some(x);
                        x
                    }
                };
                let score = v.score as i32;
                tx.execute(
                &st(cache, &tx, "INSERT INTO blocklist AS b (ip, scenario, score, listed_at, until, version, active)
                     VALUES ($1, $2, $3, $4, $5, $6, true)
                     ON CONFLICT (ip) DO UPDATE SET scenario = excluded.scenario, score = excluded.score,
                       listed_at = CASE WHEN b.active THEN b.listed_at ELSE excluded.listed_at END,
                       until = GREATEST(CASE WHEN b.active THEN b.until ELSE 0 END, excluded.until),
                       version = excluded.version, active = true, ended = NULL").await?,
                    &[ip, top, &score, &now, &v.until, &ver],
                )
                .await?;
                if !matches!(prior, Some((true, _))) {
                    let a: Vec<&String> = agents.iter().collect();
                    tx.execute(
                        &st(
                            cache,
                            &tx,
                            "UPDATE agents SET corroborated = corroborated + 1 WHERE id = ANY($1)",
                        )
                        .await?,
                        &[&a],
                    )
                    .await?;
                    out.listed.push(ip.clone());
                }
            }
        }
        tx.commit().await?;
        Ok(out)
    }

    pub async fn changes(&self, since: Option<i64>, now: Micros) -> Result<Changes, HubStoreError> {
        let mut g = self.conn().await;
        let tx = g
            .client
            .build_transaction()
            .isolation_level(IsolationLevel::RepeatableRead)
            .read_only(true)
            .start()
            .await?;
        let pruned: i64 = tx
            .query_one("SELECT value FROM meta WHERE key = 'pruned_version'", &[])
            .await?
            .get(0);
        let current: i64 = tx
            .query_one(
                "SELECT COALESCE(max(version), 0)::bigint FROM blocklist",
                &[],
            )
            .await?
            .get(0);
        let current = current.max(pruned);
        let snapshot = match since {
            None => true,
            Some(v) => v < pruned || v > current,
        };
        let rows = if snapshot {
            tx.query(
                "SELECT ip, scenario, score, until, version, active FROM blocklist
                 WHERE active AND until > $1",
                &[&now],
            )
            .await?
        } else {
            tx.query(
                "SELECT ip, scenario, score, until, version, active FROM blocklist WHERE version > $1",
                &[&since.unwrap_or(0)],
            )
            .await?
        };
        tx.commit().await?;
        Ok(Changes {
            version: current,
            snapshot,
            rows: rows
                .iter()
                .map(|r| BlockRow {
                    ip: r.get(0),
                    scenario: r.get(1),
                    score: r.get::<_, i32>(2).clamp(0, 100) as u8,
                    until: r.get(3),
                    version: r.get(4),
                    active: r.get(5),
                })
                .collect(),
        })
    }

    /// Joins the next batch of look-ups (see `batch_lookups`).
    pub async fn lookup(&self, ip: &str) -> Result<Option<AddressInfo>, HubStoreError> {
        let (tx, rx) = oneshot::channel();
        let gone = || HubStoreError::Shared("the look-up workers stopped".into());
        self.asks
            .send((ip.to_string(), tx))
            .await
            .map_err(|_| gone())?;
        rx.await.map_err(|_| gone())?.map_err(HubStoreError::Shared)
    }

    pub async fn stats(&self, now: Micros) -> Result<HubStats, HubStoreError> {
        let c = &self.reader().0;
        let since = now - STATS_SPAN;
        let hour = 3600 * SECOND;
        let per_hour = c
            .query(
                "SELECT received / $2 * $2 AS h, COUNT(*) FROM signals WHERE received > $1
                 GROUP BY h ORDER BY h",
                &[&since, &hour],
            )
            .await?
            .iter()
            .map(|r| (r.get(0), r.get(1)))
            .collect();
        let top_scenarios = c
            .query(
                "SELECT scenario, COUNT(*) AS n FROM signals WHERE received > $1
                 GROUP BY scenario ORDER BY n DESC, scenario LIMIT 10",
                &[&since],
            )
            .await?
            .iter()
            .map(|r| (r.get(0), r.get(1)))
            .collect();
        let listed = c
            .query_one(
                "SELECT COUNT(*) FROM blocklist WHERE active AND until > $1",
                &[&now],
            )
            .await?
            .get(0);
        let agents = c
            .query_one("SELECT COUNT(*) FROM agents WHERE NOT revoked", &[])
            .await?
            .get(0);
        let counters = c
            .query("SELECT name, n FROM counters ORDER BY name", &[])
            .await?
            .iter()
            .map(|r| (r.get(0), r.get(1)))
            .collect();
        Ok(HubStats {
            per_hour,
            top_scenarios,
            listed,
            agents,
            counters,
        })
    }

    pub async fn count(&self, counts: &[(String, i64)]) -> Result<(), HubStoreError> {
        let names: Vec<&str> = counts.iter().map(|c| c.0.as_str()).collect();
        let ns: Vec<i64> = counts.iter().map(|c| c.1).collect();
        self.reader()
            .0
            .execute(
                "INSERT INTO counters AS c (name, n) SELECT * FROM unnest($1::text[], $2::bigint[])
                 ON CONFLICT (name) DO UPDATE SET n = c.n + excluded.n",
                &[&names, &ns],
            )
            .await?;
        Ok(())
    }

    pub async fn sweep(&self, now: Micros, retention: Micros) -> Result<usize, HubStoreError> {
        let mut g = self.conn().await;
        let tx = g.client.transaction().await?;
        tx.execute("SELECT pg_advisory_xact_lock($1)", &[&VERSION_LOCK])
            .await?;
        let expired: i64 = tx
            .query_one(
                "SELECT COUNT(*) FROM blocklist WHERE active AND until <= $1",
                &[&now],
            )
            .await?
            .get(0);
        if expired > 0 {
            tx.execute(
                "UPDATE blocklist SET active = false, ended = $1,
                   version = (SELECT nextval('blocklist_versions'))
                 WHERE active AND until <= $1",
                &[&now],
            )
            .await?;
        }
        let cut = now - TOMBSTONE_KEEP;
        let old: Option<i64> = tx
            .query_one(
                "SELECT max(version) FROM blocklist WHERE NOT active AND ended < $1",
                &[&cut],
            )
            .await?
            .get(0);
        if let Some(v) = old {
            tx.execute(
                "DELETE FROM blocklist WHERE NOT active AND ended < $1",
                &[&cut],
            )
            .await?;
            tx.execute(
                "UPDATE meta SET value = GREATEST(value, $1) WHERE key = 'pruned_version'",
                &[&v],
            )
            .await?;
        }
        tx.execute(
            "DELETE FROM signals WHERE received < $1",
            &[&(now - retention)],
        )
        .await?;
        tx.commit().await?;
        Ok(expired as usize)
    }

    pub async fn delist(&self, ip: &str, now: Micros) -> Result<bool, HubStoreError> {
        let mut g = self.conn().await;
        let tx = g.client.transaction().await?;
        tx.execute("SELECT pg_advisory_xact_lock($1)", &[&VERSION_LOCK])
            .await?;
        tx.execute(
            "UPDATE addresses SET delisted_at = $2, weight = 0 WHERE ip = $1",
            &[&ip, &now],
        )
        .await?;
        let n = tx
            .execute(
                "UPDATE blocklist SET active = false, ended = $2,
                   version = (SELECT nextval('blocklist_versions'))
                 WHERE ip = $1 AND active",
                &[&ip, &now],
            )
            .await?;
        tx.commit().await?;
        Ok(n > 0)
    }
}

/// The URL without its password, for messages.
fn redact(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(s), Some(at)) if at > s => {
            let cred = &url[s + 3..at];
            match cred.split_once(':') {
                Some((user, _)) => format!("{}{user}:***{}", &url[..s + 3], &url[at..]),
                None => url.to_string(),
            }
        }
        _ => url.to_string(),
    }
}

/// One per reader connection: takes every look-up waiting (up to `LOOKUP_BATCH`) and answers
/// them with one statement. Under load a round trip to PostgreSQL, and the server process's
/// wake-up, then serve dozens of look-ups instead of one; when idle a look-up goes alone at
/// once, so batching adds no wait. Stops when the store is dropped.
async fn batch_lookups(
    rx: Arc<Mutex<mpsc::Receiver<Ask>>>,
    conn: Arc<(Client, Statement, Statement)>,
) {
    loop {
        let mut batch: Vec<Ask> = Vec::new();
        {
            let mut rx = rx.lock().await;
            match rx.recv().await {
                Some(a) => batch.push(a),
                None => return,
            }
            while batch.len() < LOOKUP_BATCH {
                match rx.try_recv() {
                    Ok(a) => batch.push(a),
                    Err(_) => break,
                }
            }
        }
        let ips: Vec<&str> = batch.iter().map(|a| a.0.as_str()).collect();
        match conn.0.query(&conn.1, &[&ips]).await {
            Ok(rows) => {
                let mut found: HashMap<String, AddressInfo> = HashMap::with_capacity(rows.len());
                for r in rows {
                    found.insert(
                        r.get(7),
                        AddressInfo {
                            first_seen: r.get(0),
                            last_seen: r.get(1),
                            reports: r.get(2),
                            reporters: r.get(3),
                            networks: r.get(8),
                            weight: r.get(4),
                            scenarios: scenarios_from_json(r.get::<_, &str>(5)),
                            listed_until: r.get(6),
                        },
                    );
                }
                for (ip, tx) in batch {
                    // a caller that gave up (client gone) is no error
                    let _ = tx.send(Ok(found.get(&ip).cloned()));
                }
            }
            Err(e) => {
                let m = e.to_string();
                for (_, tx) in batch {
                    let _ = tx.send(Err(m.clone()));
                }
            }
        }
    }
}
