//! The hub's SQLite store: one writer connection, a few readers (WAL lets them read while it
//! writes), all used from blocking threads.

use std::collections::BTreeSet;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use rusqlite::{params, Connection, OptionalExtension, TransactionBehavior};

use super::store::{
    AddressInfo, BlockRow, Changes, EnrolCap, Enrolled, HubStats, HubStoreError, IngestOutcome,
    ValidSignal, STATS_SPAN, TOMBSTONE_KEEP,
};
use crate::consensus::{evaluate, reporter_network, Params, Report};
use crowdwall_base::time::{Micros, SECOND};

const SCHEMA_VERSION: i64 = 2;
const READERS: usize = 4;

pub struct SqliteStore {
    writer: Arc<Mutex<Connection>>,
    readers: Arc<Vec<Mutex<Connection>>>,
    next: AtomicUsize,
}

fn open_conn(path: &str) -> Result<Connection, HubStoreError> {
    let c = Connection::open(path).map_err(|e| HubStoreError::Open {
        url: path.into(),
        message: e.to_string(),
    })?;
    c.pragma_update(None, "journal_mode", "WAL")?;
    c.pragma_update(None, "synchronous", "NORMAL")?;
    c.busy_timeout(std::time::Duration::from_secs(10))?;
    // Pages through a shared mapping rather than a pread() per page: a look-up touches a
    // dozen pages, and the system calls, not SQLite, were most of its cost. The mapping is
    // address space, not memory; the page cache still decides what stays resident.
    c.pragma_update(None, "mmap_size", 1i64 << 30)?;
    c.pragma_update(None, "cache_size", -16_000)?;
    Ok(c)
}

impl SqliteStore {
    pub fn open(path: &str) -> Result<SqliteStore, HubStoreError> {
        if let Some(dir) = std::path::Path::new(path).parent() {
            if !dir.as_os_str().is_empty() {
                std::fs::create_dir_all(dir).map_err(|e| HubStoreError::Open {
                    url: path.into(),
                    message: e.to_string(),
                })?;
            }
        }
        let w = open_conn(path)?;
        migrate(&w)?;
        let mut readers = Vec::new();
        for _ in 0..READERS {
            readers.push(Mutex::new(open_conn(path)?));
        }
        Ok(SqliteStore {
            writer: Arc::new(Mutex::new(w)),
            readers: Arc::new(readers),
            next: AtomicUsize::new(0),
        })
    }

    pub async fn write<T: Send + 'static>(
        &self,
        f: impl FnOnce(&mut Connection) -> Result<T, HubStoreError> + Send + 'static,
    ) -> Result<T, HubStoreError> {
        let w = self.writer.clone();
        tokio::task::spawn_blocking(move || {
            let mut c = w.lock().unwrap_or_else(|p| p.into_inner());
            f(&mut c)
        })
        .await
        .map_err(|e| HubStoreError::Join(e.to_string()))?
    }

    pub async fn read<T: Send + 'static>(
        &self,
        f: impl FnOnce(&Connection) -> Result<T, HubStoreError> + Send + 'static,
    ) -> Result<T, HubStoreError> {
        let rs = self.readers.clone();
        let i = self.next.fetch_add(1, Ordering::Relaxed) % rs.len();
        // A free reader answers on this thread: a look-up is a few index reads (tens of
        // microseconds), cheaper than a hand-off to a blocking thread. When all are busy
        // (long statistics queries), wait on a blocking thread instead.
        for k in 0..rs.len() {
            if let Ok(c) = rs[(i + k) % rs.len()].try_lock() {
                return f(&c);
            }
        }
        tokio::task::spawn_blocking(move || {
            let c = rs[i].lock().unwrap_or_else(|p| p.into_inner());
            f(&c)
        })
        .await
        .map_err(|e| HubStoreError::Join(e.to_string()))?
    }

    #[allow(clippy::too_many_arguments)]
    pub fn enroll(
        c: &mut Connection,
        id: &str,
        hash: &str,
        name: &str,
        from: &str,
        net: &str,
        cap: Option<EnrolCap>,
        now: Micros,
    ) -> Result<Enrolled, HubStoreError> {
        // IMMEDIATE: the write lock is taken before the count, so two enrolments cannot both
        // see room for one more.
        let tx = c.transaction_with_behavior(TransactionBehavior::Immediate)?;
        if let Some(cap) = cap {
            let live: i64 = tx
                .prepare_cached(LIVE_AGENTS_SQLITE)?
                .query_row(params![net, cap.live_since], |r| r.get(0))?;
            if live >= cap.max {
                return Ok(Enrolled::NetworkFull { live });
            }
        }
        tx.execute(
            "INSERT INTO agents (id, secret_sha256, name, enrolled_from, enrolled_net, created)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
            params![id, hash, name, from, net, now],
        )?;
        tx.commit()?;
        Ok(Enrolled::Yes)
    }

    pub fn agent_secret(c: &Connection, id: &str) -> Result<Option<String>, HubStoreError> {
        Ok(
            c.prepare_cached("SELECT secret_sha256 FROM agents WHERE id = ?1 AND revoked = 0")?
                .query_row([id], |r| r.get(0))
                .optional()?,
        )
    }

    pub fn ingest(
        c: &mut Connection,
        agent: &str,
        net: &str,
        signals: &[ValidSignal],
        now: Micros,
        p: &Params,
    ) -> Result<IngestOutcome, HubStoreError> {
        let tx = c.transaction_with_behavior(TransactionBehavior::Immediate)?;
        let mut out = IngestOutcome::default();
        let used: i64 = tx
            .prepare_cached("SELECT COUNT(*) FROM signals WHERE agent_id = ?1 AND received > ?2")?
            .query_row(params![agent, now - 3600 * SECOND], |r| r.get(0))?;
        let mut room = (p.agent_hourly_cap as i64 - used).max(0);
        let mut touched = BTreeSet::new();
        {
            let mut exists =
                tx.prepare_cached("SELECT 1 FROM signals WHERE agent_id = ?1 AND uid = ?2")?;
            let mut ins = tx.prepare_cached(
                "INSERT INTO signals (agent_id, uid, ip, scenario, first_seen, last_seen, events, net, received)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
            )?;
            let mut addr = tx.prepare_cached(
                "INSERT INTO addresses (ip, first_seen, last_seen, reports, reporters, scenarios)
                 VALUES (?1, ?2, ?3, 1, 0, json_object(?4, 1))
                 ON CONFLICT(ip) DO UPDATE SET
                   first_seen = min(first_seen, excluded.first_seen),
                   last_seen = max(last_seen, excluded.last_seen),
                   reports = reports + 1,
                   scenarios = json_set(scenarios, '$.\"' || ?4 || '\"',
                       coalesce(json_extract(scenarios, '$.\"' || ?4 || '\"'), 0) + 1)",
            )?;
            let mut reporter = tx.prepare_cached(
                "INSERT INTO reporters (ip, agent_id) VALUES (?1, ?2) ON CONFLICT DO NOTHING",
            )?;
            let mut reporters_up =
                tx.prepare_cached("UPDATE addresses SET reporters = reporters + 1 WHERE ip = ?1")?;
            for s in signals {
                if exists.exists(params![agent, s.uid])? {
                    out.duplicates += 1;
                    continue;
                }
                if room == 0 {
                    out.capped.push(s.index);
                    continue;
                }
                room -= 1;
                ins.execute(params![
                    agent,
                    s.uid,
                    s.ip,
                    s.scenario,
                    s.first_seen,
                    s.last_seen,
                    s.events,
                    net,
                    now
                ])?;
                addr.execute(params![s.ip, s.first_seen, s.last_seen, s.scenario])?;
                if reporter.execute(params![s.ip, agent])? == 1 {
                    reporters_up.execute([&s.ip])?;
                }
                out.accepted += 1;
                touched.insert(s.ip.clone());
            }
        }
        for ip in &touched {
            if consider(&tx, ip, now, p)? {
                out.listed.push(ip.clone());
            }
        }
        tx.commit()?;
        Ok(out)
    }

    pub fn changes(
        c: &Connection,
        since: Option<i64>,
        now: Micros,
    ) -> Result<Changes, HubStoreError> {
        let pruned = meta(c, "pruned_version")?;
        let current = meta(c, "version")?;
        let snapshot = match since {
            None => true,
            Some(v) => v < pruned || v > current,
        };
        let mut st = if snapshot {
            c.prepare_cached(
                "SELECT ip, scenario, score, until, version, active FROM blocklist
                 WHERE active = 1 AND until > ?1 AND ?2 >= 0",
            )?
        } else {
            c.prepare_cached(
                "SELECT ip, scenario, score, until, version, active FROM blocklist
                 WHERE version > ?2 AND ?1 = ?1",
            )?
        };
        let rows = st
            .query_map(params![now, since.unwrap_or(0)], |r| {
                Ok(BlockRow {
                    ip: r.get(0)?,
                    scenario: r.get(1)?,
                    score: r.get::<_, i64>(2)?.clamp(0, 100) as u8,
                    until: r.get(3)?,
                    version: r.get(4)?,
                    active: r.get::<_, i64>(5)? != 0,
                })
            })?
            .collect::<Result<Vec<_>, _>>()?;
        // `version` read after the rows could be newer than they are; both were read in
        // the same implicit read transaction of this statement sequence only if nothing
        // committed between them, so take the larger of the rows' own versions and the
        // counter read before them.
        let version = rows
            .iter()
            .map(|r| r.version)
            .max()
            .unwrap_or(0)
            .max(current);
        Ok(Changes {
            version,
            snapshot,
            rows,
        })
    }

    pub fn lookup(c: &Connection, ip: &str) -> Result<Option<AddressInfo>, HubStoreError> {
        let row = c
            .prepare_cached(
                "SELECT a.first_seen, a.last_seen, a.reports, a.reporters, a.weight, a.scenarios,
                        CASE WHEN b.active = 1 THEN b.until END, a.networks
                 FROM addresses a LEFT JOIN blocklist b ON b.ip = a.ip WHERE a.ip = ?1",
            )?
            .query_row([ip], |r| {
                Ok((
                    r.get::<_, i64>(0)?,
                    r.get::<_, i64>(1)?,
                    r.get::<_, i64>(2)?,
                    r.get::<_, i64>(3)?,
                    r.get::<_, f64>(4)?,
                    r.get::<_, String>(5)?,
                    r.get::<_, Option<i64>>(6)?,
                    r.get::<_, i64>(7)?,
                ))
            })
            .optional()?;
        Ok(row.map(|(f, l, n, who, w, sc, until, nets)| AddressInfo {
            first_seen: f,
            last_seen: l,
            reports: n,
            reporters: who,
            networks: nets,
            weight: w,
            scenarios: scenarios_of(&sc),
            listed_until: until,
        }))
    }

    pub fn stats(c: &Connection, now: Micros) -> Result<HubStats, HubStoreError> {
        let since = now - STATS_SPAN;
        let hour = 3600 * SECOND;
        let per_hour = c
            .prepare_cached(
                "SELECT received / ?2 * ?2 AS h, COUNT(*) FROM signals WHERE received > ?1
                 GROUP BY h ORDER BY h",
            )?
            .query_map(params![since, hour], |r| Ok((r.get(0)?, r.get(1)?)))?
            .collect::<Result<Vec<_>, _>>()?;
        let top_scenarios = c
            .prepare_cached(
                "SELECT scenario, COUNT(*) AS n FROM signals WHERE received > ?1
                 GROUP BY scenario ORDER BY n DESC, scenario LIMIT 10",
            )?
            .query_map([since], |r| Ok((r.get(0)?, r.get(1)?)))?
            .collect::<Result<Vec<_>, _>>()?;
        let listed = c.query_row(
            "SELECT COUNT(*) FROM blocklist WHERE active = 1 AND until > ?1",
            [now],
            |r| r.get(0),
        )?;
        let agents = c.query_row("SELECT COUNT(*) FROM agents WHERE revoked = 0", [], |r| {
            r.get(0)
        })?;
        let counters = c
            .prepare_cached("SELECT name, n FROM counters ORDER BY name")?
            .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?
            .collect::<Result<Vec<_>, _>>()?;
        Ok(HubStats {
            per_hour,
            top_scenarios,
            listed,
            agents,
            counters,
        })
    }

    pub fn count(c: &mut Connection, counts: &[(String, i64)]) -> Result<(), HubStoreError> {
        let tx = c.transaction()?;
        {
            let mut st = tx.prepare_cached(
                "INSERT INTO counters (name, n) VALUES (?1, ?2)
                 ON CONFLICT(name) DO UPDATE SET n = n + excluded.n",
            )?;
            for (k, n) in counts {
                st.execute(params![k, n])?;
            }
        }
        tx.commit()?;
        Ok(())
    }

    pub fn sweep(
        c: &mut Connection,
        now: Micros,
        retention: Micros,
    ) -> Result<usize, HubStoreError> {
        let tx = c.transaction_with_behavior(TransactionBehavior::Immediate)?;
        let expired: i64 = tx.query_row(
            "SELECT COUNT(*) FROM blocklist WHERE active = 1 AND until <= ?1",
            [now],
            |r| r.get(0),
        )?;
        if expired > 0 {
            let v = bump(&tx)?;
            tx.execute(
                "UPDATE blocklist SET active = 0, version = ?2, ended = ?1 WHERE active = 1 AND until <= ?1",
                params![now, v],
            )?;
        }
        let old: Option<i64> = tx.query_row(
            "SELECT max(version) FROM blocklist WHERE active = 0 AND ended < ?1",
            [now - TOMBSTONE_KEEP],
            |r| r.get(0),
        )?;
        if let Some(v) = old {
            tx.execute(
                "DELETE FROM blocklist WHERE active = 0 AND ended < ?1",
                [now - TOMBSTONE_KEEP],
            )?;
            tx.execute(
                "UPDATE meta SET value = max(value, ?1) WHERE key = 'pruned_version'",
                [v],
            )?;
        }
        tx.execute("DELETE FROM signals WHERE received < ?1", [now - retention])?;
        tx.commit()?;
        Ok(expired as usize)
    }

    pub fn delist(c: &mut Connection, ip: &str, now: Micros) -> Result<bool, HubStoreError> {
        let tx = c.transaction_with_behavior(TransactionBehavior::Immediate)?;
        tx.execute(
            "UPDATE addresses SET delisted_at = ?2, weight = 0 WHERE ip = ?1",
            params![ip, now],
        )?;
        let active: bool = tx
            .query_row("SELECT active FROM blocklist WHERE ip = ?1", [ip], |r| {
                r.get::<_, i64>(0)
            })
            .optional()?
            .is_some_and(|a| a != 0);
        if active {
            let v = bump(&tx)?;
            tx.execute(
                "UPDATE blocklist SET active = 0, version = ?2, ended = ?3 WHERE ip = ?1",
                params![ip, v, now],
            )?;
        }
        tx.commit()?;
        Ok(active)
    }
}

fn scenarios_of(json: &str) -> Vec<(String, i64)> {
    let mut v: Vec<(String, i64)> =
        serde_json::from_str::<serde_json::Map<String, serde_json::Value>>(json)
            .map(|m| {
                m.into_iter()
                    .map(|(k, n)| (k, n.as_i64().unwrap_or(0)))
                    .collect()
            })
            .unwrap_or_default();
    v.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
    v
}

pub(super) fn scenarios_from_json(json: &str) -> Vec<(String, i64)> {
    scenarios_of(json)
}

fn meta(c: &Connection, key: &str) -> Result<i64, HubStoreError> {
    Ok(c.prepare_cached("SELECT value FROM meta WHERE key = ?1")?
        .query_row([key], |r| r.get(0))
        .optional()?
        .unwrap_or(0))
}

/// The next blocklist version. Called inside a write transaction: SQLite's single writer
/// makes versions commit in order.
fn bump(c: &Connection) -> Result<i64, HubStoreError> {
    Ok(c.query_row(
        "UPDATE meta SET value = value + 1 WHERE key = 'version' RETURNING value",
        [],
        |r| r.get(0),
    )?)
}

/// Re-evaluates one address after new reports; lists it (or extends its listing) when the
/// consensus says so. Returns whether it newly entered the list.
fn consider(c: &Connection, ip: &str, now: Micros, p: &Params) -> Result<bool, HubStoreError> {
    let delisted: Option<i64> = c
        .prepare_cached("SELECT delisted_at FROM addresses WHERE ip = ?1")?
        .query_row([ip], |r| r.get(0))
        .optional()?
        .flatten();
    let reports = c
        .prepare_cached(
            "SELECT s.agent_id, s.net, a.corroborated, s.last_seen, s.received FROM signals s
             JOIN agents a ON a.id = s.agent_id
             WHERE s.ip = ?1 AND s.last_seen > ?2 AND a.revoked = 0",
        )?
        .query_map(params![ip, now - p.window], |r| {
            Ok(Report {
                agent: r.get(0)?,
                net: r.get(1)?,
                corroborated: r.get::<_, i64>(2)?.clamp(0, u32::MAX as i64) as u32,
                last_seen: r.get(3)?,
                received: r.get(4)?,
            })
        })?
        .collect::<Result<Vec<_>, _>>()?;
    let v = evaluate(&reports, delisted, now, p);
    c.prepare_cached("UPDATE addresses SET weight = ?2, networks = ?3 WHERE ip = ?1")?
        .execute(params![ip, v.weight, v.networks as i64])?;
    if !v.listed {
        return Ok(false);
    }
    let cur: Option<(i64, i64)> = c
        .prepare_cached("SELECT active, until FROM blocklist WHERE ip = ?1")?
        .query_row([ip], |r| Ok((r.get(0)?, r.get(1)?)))
        .optional()?;
    let scenario: String = c
        .prepare_cached(
            "SELECT scenario FROM signals WHERE ip = ?1 GROUP BY scenario ORDER BY COUNT(*) DESC, scenario LIMIT 1",
        )?
        .query_row([ip], |r| r.get(0))?;
    match cur {
        Some((1, until)) if v.until <= until + p.ttl / 4 => Ok(false),
        Some((1, until)) => {
            let ver = bump(c)?;
            c.execute(
                "UPDATE blocklist SET until = ?2, version = ?3, score = ?4, scenario = ?5 WHERE ip = ?1",
                params![ip, v.until.max(until), ver, v.score, scenario],
            )?;
            Ok(false)
        }
        _ => {
            let ver = bump(c)?;
            c.execute(
                "INSERT INTO blocklist (ip, scenario, score, listed_at, until, version, active)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, 1)
                 ON CONFLICT(ip) DO UPDATE SET scenario = excluded.scenario, score = excluded.score,
                   listed_at = excluded.listed_at, until = excluded.until, version = excluded.version,
                   active = 1, ended = NULL",
                params![ip, scenario, v.score, now, v.until, ver],
            )?;
            // The reporters were right: their later reports weigh more.
            let agents: BTreeSet<&str> = reports.iter().map(|r| r.agent.as_str()).collect();
            let mut up = c.prepare_cached(
                "UPDATE agents SET corroborated = corroborated + 1 WHERE id = ?1",
            )?;
            for a in agents {
                up.execute([a])?;
            }
            Ok(true)
        }
    }
}

/// Live agents enrolled from network ?1: not revoked, and enrolled or pushed after ?2.
/// Pushes are read from `signals` (index `signals_agent`) rather than kept on the agent row:
/// a write to `agents` on every push would be one more row every push locks.
const LIVE_AGENTS_SQLITE: &str = "SELECT COUNT(*) FROM agents a
     WHERE a.enrolled_net = ?1 AND a.revoked = 0
       AND (a.created > ?2
            OR EXISTS (SELECT 1 FROM signals s WHERE s.agent_id = a.id AND s.received > ?2))";

/// The reporter network of an agent's enrolment address, for agents enrolled before it was
/// stored (schema 1). `None` for text that is no address (never written by this hub).
pub(crate) fn enrolled_net(from: &str) -> Option<String> {
    from.parse().ok().map(|ip| reporter_network(ip).to_string())
}

fn migrate(c: &Connection) -> Result<(), HubStoreError> {
    let version: i64 = c.pragma_query_value(None, "user_version", |r| r.get(0))?;
    if version > SCHEMA_VERSION {
        return Err(HubStoreError::Schema {
            found: version,
            known: SCHEMA_VERSION,
        });
    }
    if version < 1 {
        c.execute_batch(
            "BEGIN IMMEDIATE;
             CREATE TABLE IF NOT EXISTS agents (
                 id TEXT PRIMARY KEY,
                 secret_sha256 TEXT NOT NULL,
                 name TEXT NOT NULL,
                 enrolled_from TEXT NOT NULL,
                 created INTEGER NOT NULL,
                 corroborated INTEGER NOT NULL DEFAULT 0,
                 revoked INTEGER NOT NULL DEFAULT 0
             );
             CREATE TABLE IF NOT EXISTS signals (
                 agent_id TEXT NOT NULL,
                 uid TEXT NOT NULL,
                 ip TEXT NOT NULL,
                 scenario TEXT NOT NULL,
                 first_seen INTEGER NOT NULL,
                 last_seen INTEGER NOT NULL,
                 events INTEGER NOT NULL,
                 net TEXT NOT NULL,
                 received INTEGER NOT NULL,
                 PRIMARY KEY (agent_id, uid)
             );
             CREATE INDEX IF NOT EXISTS signals_ip ON signals (ip, last_seen);
             CREATE INDEX IF NOT EXISTS signals_agent ON signals (agent_id, received);
             CREATE INDEX IF NOT EXISTS signals_received ON signals (received);
             CREATE TABLE IF NOT EXISTS addresses (
                 ip TEXT PRIMARY KEY,
                 first_seen INTEGER NOT NULL,
                 last_seen INTEGER NOT NULL,
                 reports INTEGER NOT NULL,
                 reporters INTEGER NOT NULL,
                 scenarios TEXT NOT NULL,
                 weight REAL NOT NULL DEFAULT 0,
                 delisted_at INTEGER
             );
             CREATE TABLE IF NOT EXISTS reporters (
                 ip TEXT NOT NULL,
                 agent_id TEXT NOT NULL,
                 PRIMARY KEY (ip, agent_id)
             );
             CREATE TABLE IF NOT EXISTS blocklist (
                 ip TEXT PRIMARY KEY,
                 scenario TEXT NOT NULL,
                 score INTEGER NOT NULL,
                 listed_at INTEGER NOT NULL,
                 until INTEGER NOT NULL,
                 version INTEGER NOT NULL,
                 active INTEGER NOT NULL,
                 ended INTEGER
             );
             CREATE INDEX IF NOT EXISTS blocklist_version ON blocklist (version);
             CREATE TABLE IF NOT EXISTS counters (name TEXT PRIMARY KEY, n INTEGER NOT NULL);
             CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value INTEGER NOT NULL);
             INSERT OR IGNORE INTO meta (key, value) VALUES ('version', 0), ('pruned_version', 0);
             PRAGMA user_version = 1;
             COMMIT;",
        )?;
    }
    if version < 2 {
        c.execute_batch("BEGIN IMMEDIATE")?;
        let r = migrate_2(c).and_then(|()| Ok(c.execute_batch("COMMIT")?));
        if r.is_err() {
            let _ = c.execute_batch("ROLLBACK");
        }
        r?;
    }
    Ok(())
}

/// Schema 2: the reporter network of each agent's enrolment (the per-network cap on live
/// agents) and of each address's reports (the score counts networks).
fn migrate_2(c: &Connection) -> Result<(), HubStoreError> {
    c.execute_batch(
        "ALTER TABLE agents ADD COLUMN enrolled_net TEXT;
         CREATE INDEX IF NOT EXISTS agents_net ON agents (enrolled_net);
         ALTER TABLE addresses ADD COLUMN networks INTEGER NOT NULL DEFAULT 0;
         -- all the stored reports' networks, not only the window's: the next report of the
         -- address recomputes it from the window, as consensus does
         UPDATE addresses SET networks =
             (SELECT COUNT(DISTINCT s.net) FROM signals s WHERE s.ip = addresses.ip);",
    )?;
    let old: Vec<(String, String)> = c
        .prepare("SELECT id, enrolled_from FROM agents WHERE enrolled_net IS NULL")?
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?
        .collect::<Result<_, _>>()?;
    let mut up = c.prepare("UPDATE agents SET enrolled_net = ?2 WHERE id = ?1")?;
    for (id, from) in old {
        if let Some(net) = enrolled_net(&from) {
            up.execute(params![id, net])?;
        }
    }
    c.execute_batch("PRAGMA user_version = 2")?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A schema-1 database (as hubs before the per-network cap wrote it) gains the enrolment
    /// networks of its agents and the report networks of its addresses, and then counts them.
    #[test]
    fn schema_1_is_migrated_with_its_networks() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("hub.db").display().to_string();
        {
            // the current schema taken back to 1, with rows written the old way
            let c = open_conn(&path).unwrap();
            migrate(&c).unwrap();
            c.execute_batch(
                "DROP INDEX agents_net;
                 ALTER TABLE agents DROP COLUMN enrolled_net;
                 ALTER TABLE addresses DROP COLUMN networks;
                 PRAGMA user_version = 1;
                 INSERT INTO agents (id, secret_sha256, name, enrolled_from, created)
                   VALUES ('a', 'h', 'x', '20.1.2.3', 1), ('b', 'h', 'x', '2001:db8:1:2::5', 1);
                 INSERT INTO signals VALUES ('a', 'u1', '45.1.1.1', 's', 1, 2, 1, '20.1.2.0/24', 3),
                                            ('b', 'u1', '45.1.1.1', 's', 1, 2, 1, '2001:db8:1::/48', 3),
                                            ('b', 'u2', '45.1.1.2', 's', 1, 2, 1, '2001:db8:1::/48', 3);
                 INSERT INTO addresses (ip, first_seen, last_seen, reports, reporters, scenarios)
                   VALUES ('45.1.1.1', 1, 2, 2, 2, '{}'), ('45.1.1.2', 1, 2, 1, 1, '{}');",
            )
            .unwrap();
        }
        let s = SqliteStore::open(&path).unwrap();
        let mut w = s.writer.lock().unwrap();
        let v: i64 = w
            .pragma_query_value(None, "user_version", |r| r.get(0))
            .unwrap();
        assert_eq!(v, SCHEMA_VERSION);
        let nets: Vec<String> = w
            .prepare("SELECT enrolled_net FROM agents ORDER BY id")
            .unwrap()
            .query_map([], |r| r.get(0))
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap();
        assert_eq!(nets, ["20.1.2.0/24", "2001:db8:1::/48"]);
        let a = SqliteStore::lookup(&w, "45.1.1.1").unwrap().unwrap();
        let b = SqliteStore::lookup(&w, "45.1.1.2").unwrap().unwrap();
        assert_eq!((a.networks, b.networks), (2, 1));
        // the migrated agents count against their network's cap
        let cap = Some(EnrolCap {
            max: 1,
            live_since: 0,
        });
        let r = SqliteStore::enroll(&mut w, "c", "h", "x", "20.1.2.9", "20.1.2.0/24", cap, 5);
        assert_eq!(r.unwrap(), Enrolled::NetworkFull { live: 1 });
        let r = SqliteStore::enroll(&mut w, "d", "h", "x", "20.1.3.9", "20.1.3.0/24", cap, 5);
        assert_eq!(r.unwrap(), Enrolled::Yes);
    }
}
