//! The embedded store: decisions and offence history in SQLite (WAL). The source of truth the
//! kernel is reconciled against.

use std::path::Path;

use ipnet::IpNet;
use rusqlite::{params, Connection, OptionalExtension};

use crate::decide::{Decision, Origin};
use crate::time::Micros;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("store {path}: {source}")]
    Open {
        path: String,
        #[source]
        source: rusqlite::Error,
    },
    #[error("store: {0}")]
    Sql(#[from] rusqlite::Error),
    /// The database was written by a newer crowdwall.
    #[error("store schema version {found} is newer than this crowdwall knows ({known}): refusing to downgrade it")]
    Schema { found: i64, known: i64 },
    /// A row that does not read back (hand-edited database?).
    #[error("store: row {id}: {message}")]
    BadRow { id: i64, message: String },
}

pub struct Store {
    conn: Connection,
}

const SCHEMA_VERSION: i64 = 1;

impl Store {
    pub fn open(path: &Path) -> Result<Store, StoreError> {
        let conn = Connection::open(path).map_err(|source| StoreError::Open {
            path: path.display().to_string(),
            source,
        })?;
        Store::init(conn)
    }

    /// A private in-memory store, for tests and replay.
    pub fn in_memory() -> Result<Store, StoreError> {
        Store::init(Connection::open_in_memory()?)
    }

    fn init(conn: Connection) -> Result<Store, StoreError> {
        // WAL: readers never block the writer; NORMAL sync is durable across a daemon crash
        // (not a power cut, where the kernel state is lost anyway).
        conn.pragma_update(None, "journal_mode", "WAL")?;
        conn.pragma_update(None, "synchronous", "NORMAL")?;
        conn.busy_timeout(std::time::Duration::from_secs(5))?;
        let version: i64 = conn.pragma_query_value(None, "user_version", |r| r.get(0))?;
        if version > SCHEMA_VERSION {
            return Err(StoreError::Schema {
                found: version,
                known: SCHEMA_VERSION,
            });
        }
        if version < 1 {
            conn.execute_batch(
                "BEGIN;
                 CREATE TABLE IF NOT EXISTS decisions (
                     id INTEGER PRIMARY KEY,
                     value TEXT NOT NULL,
                     origin TEXT NOT NULL,
                     scenario TEXT NOT NULL,
                     reason TEXT NOT NULL DEFAULT '',
                     created INTEGER NOT NULL,
                     until INTEGER NOT NULL
                 );
                 CREATE INDEX IF NOT EXISTS decisions_until ON decisions(until);
                 CREATE INDEX IF NOT EXISTS decisions_value ON decisions(value);
                 CREATE TABLE IF NOT EXISTS offences (
                     value TEXT PRIMARY KEY,
                     count INTEGER NOT NULL,
                     last INTEGER NOT NULL
                 );
                 PRAGMA user_version = 1;
                 COMMIT;",
            )?;
        }
        Ok(Store { conn })
    }

    /// Stores a decision and sets its id.
    pub fn insert(&mut self, d: &mut Decision) -> Result<(), StoreError> {
        self.conn.execute(
            "INSERT INTO decisions (value, origin, scenario, reason, created, until)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
            params![
                d.value.to_string(),
                d.origin.as_str(),
                d.scenario,
                d.reason,
                d.created,
                d.until
            ],
        )?;
        d.id = self.conn.last_insert_rowid();
        Ok(())
    }

    /// Decisions still in force at `now`, oldest first.
    pub fn active(&self, now: Micros) -> Result<Vec<Decision>, StoreError> {
        let mut st = self.conn.prepare_cached(
            "SELECT id, value, origin, scenario, reason, created, until
             FROM decisions WHERE until > ?1 ORDER BY id",
        )?;
        let rows = st.query_map([now], |r| {
            Ok((
                r.get::<_, i64>(0)?,
                r.get::<_, String>(1)?,
                r.get::<_, String>(2)?,
                r.get::<_, String>(3)?,
                r.get::<_, String>(4)?,
                r.get::<_, i64>(5)?,
                r.get::<_, i64>(6)?,
            ))
        })?;
        let mut out = Vec::new();
        for row in rows {
            let (id, value, origin, scenario, reason, created, until) = row?;
            let value: IpNet = value.parse().map_err(|_| StoreError::BadRow {
                id,
                message: format!("value '{value}' is not a CIDR"),
            })?;
            let origin: Origin = origin
                .parse()
                .map_err(|message| StoreError::BadRow { id, message })?;
            out.push(Decision {
                id,
                value,
                origin,
                scenario,
                reason,
                created,
                until,
            });
        }
        Ok(out)
    }

    /// Whether a decision in force at `now` covers `ip`: one on the address itself (an index
    /// look-up), or a range containing it (ranges are few; host entries are not read).
    pub fn covered(&self, ip: std::net::IpAddr, now: Micros) -> Result<bool, StoreError> {
        let exact = IpNet::from(ip).to_string();
        let mut st = self
            .conn
            .prepare_cached("SELECT 1 FROM decisions WHERE value = ?1 AND until > ?2 LIMIT 1")?;
        if st.exists(params![exact, now])? {
            return Ok(true);
        }
        let mut st = self.conn.prepare_cached(
            "SELECT value FROM decisions WHERE until > ?1
             AND value NOT LIKE '%/32' AND value NOT LIKE '%/128'",
        )?;
        let ranges = st.query_map([now], |r| r.get::<_, String>(0))?;
        for v in ranges {
            if v?.parse::<IpNet>().is_ok_and(|n| n.contains(&ip)) {
                return Ok(true);
            }
        }
        Ok(false)
    }

    /// Ends every decision on exactly this value; returns the ended ones (id, origin).
    pub fn delete_value(
        &mut self,
        value: &IpNet,
        now: Micros,
    ) -> Result<Vec<(i64, Origin)>, StoreError> {
        let mut st = self.conn.prepare_cached(
            "DELETE FROM decisions WHERE value = ?1 AND until > ?2 RETURNING id, origin",
        )?;
        let rows = st.query_map(params![value.to_string(), now], |r| {
            Ok((r.get::<_, i64>(0)?, r.get::<_, String>(1)?))
        })?;
        let mut out = Vec::new();
        for row in rows {
            let (id, origin) = row?;
            let origin: Origin = origin
                .parse()
                .map_err(|message| StoreError::BadRow { id, message })?;
            out.push((id, origin));
        }
        Ok(out)
    }

    /// Makes the decisions of `origin` (restricted to one `scenario`, e.g. one feed's name,
    /// when given) exactly `decisions`, in one SQLite transaction: a feed or blocklist update
    /// is all or nothing. Returns the deleted decisions (id, value).
    pub fn replace_origin(
        &mut self,
        origin: Origin,
        scenario: Option<&str>,
        decisions: &mut [Decision],
    ) -> Result<Vec<(i64, IpNet)>, StoreError> {
        let tx = self.conn.transaction()?;
        let deleted = {
            let mut st = tx.prepare_cached(
                "DELETE FROM decisions WHERE origin = ?1 AND (?2 IS NULL OR scenario = ?2)
                 RETURNING id, value",
            )?;
            let rows = st.query_map(params![origin.as_str(), scenario], |r| {
                Ok((r.get::<_, i64>(0)?, r.get::<_, String>(1)?))
            })?;
            let mut out = Vec::new();
            for row in rows {
                let (id, v) = row?;
                let v: IpNet = v.parse().map_err(|_| StoreError::BadRow {
                    id,
                    message: format!("value '{v}' is not a CIDR"),
                })?;
                out.push((id, v));
            }
            out
        };
        {
            let mut st = tx.prepare_cached(
                "INSERT INTO decisions (value, origin, scenario, reason, created, until)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
            )?;
            for d in decisions.iter_mut() {
                st.execute(params![
                    d.value.to_string(),
                    d.origin.as_str(),
                    d.scenario,
                    d.reason,
                    d.created,
                    d.until
                ])?;
                d.id = tx.last_insert_rowid();
            }
        }
        tx.commit()?;
        Ok(deleted)
    }

    /// Ends the decisions of `origin` on exactly these values (a delta from a stream);
    /// returns the ended ones (id, value).
    pub fn delete_origin_values(
        &mut self,
        origin: Origin,
        values: &[IpNet],
    ) -> Result<Vec<(i64, IpNet)>, StoreError> {
        let tx = self.conn.transaction()?;
        let mut out = Vec::new();
        {
            let mut st = tx.prepare_cached(
                "DELETE FROM decisions WHERE origin = ?1 AND value = ?2 RETURNING id",
            )?;
            for v in values {
                let ids = st.query_map(params![origin.as_str(), v.to_string()], |r| {
                    r.get::<_, i64>(0)
                })?;
                for id in ids {
                    out.push((id?, *v));
                }
            }
        }
        tx.commit()?;
        Ok(out)
    }

    /// Removes expired decisions and forgotten offences.
    pub fn prune(&mut self, now: Micros, forget_before: Micros) -> Result<usize, StoreError> {
        let n = self
            .conn
            .execute("DELETE FROM decisions WHERE until <= ?1", [now])?;
        self.conn
            .execute("DELETE FROM offences WHERE last < ?1", [forget_before])?;
        Ok(n)
    }

    /// How often `value` was banned by a local scenario since `since`.
    pub fn offences(&self, value: &IpNet, since: Micros) -> Result<u32, StoreError> {
        let n: Option<i64> = self
            .conn
            .query_row(
                "SELECT count FROM offences WHERE value = ?1 AND last >= ?2",
                params![value.to_string(), since],
                |r| r.get(0),
            )
            .optional()?;
        Ok(n.unwrap_or(0).clamp(0, u32::MAX as i64) as u32)
    }

    pub fn record_offence(&mut self, value: &IpNet, at: Micros) -> Result<(), StoreError> {
        self.conn.execute(
            "INSERT INTO offences (value, count, last) VALUES (?1, 1, ?2)
             ON CONFLICT(value) DO UPDATE SET count = count + 1, last = excluded.last",
            params![value.to_string(), at],
        )?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(v: &str, origin: Origin, until: Micros) -> Decision {
        Decision {
            id: 0,
            value: v.parse().unwrap(),
            origin,
            scenario: "s".into(),
            reason: "r".into(),
            created: 0,
            until,
        }
    }

    #[test]
    fn insert_list_delete_prune() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("c.db");
        {
            let mut s = Store::open(&path).unwrap();
            let mut a = d("192.0.2.1/32", Origin::Local, 100);
            s.insert(&mut a).unwrap();
            assert!(a.id > 0);
            s.insert(&mut d("2001:db8::/64", Origin::Manual, 200))
                .unwrap();
            s.insert(&mut d("192.0.2.9/32", Origin::Local, 10)).unwrap();
        }
        // survives reopening
        let mut s = Store::open(&path).unwrap();
        let act = s.active(50).unwrap();
        assert_eq!(act.len(), 2);
        assert_eq!(act[1].origin, Origin::Manual);
        assert_eq!(
            s.delete_value(&"192.0.2.1/32".parse().unwrap(), 50)
                .unwrap()
                .len(),
            1
        );
        assert_eq!(s.active(50).unwrap().len(), 1);
        assert_eq!(s.prune(150, 0).unwrap(), 1, "the expired 192.0.2.9 row");
    }

    #[test]
    fn covered_by_address_or_range_in_force() {
        let mut s = Store::in_memory().unwrap();
        s.insert(&mut d("192.0.2.1/32", Origin::Local, 100))
            .unwrap();
        s.insert(&mut d("198.51.100.0/24", Origin::Manual, 100))
            .unwrap();
        s.insert(&mut d("2001:db8::/64", Origin::Manual, 100))
            .unwrap();
        let ip = |x: &str| x.parse::<std::net::IpAddr>().unwrap();
        assert!(s.covered(ip("192.0.2.1"), 50).unwrap());
        assert!(s.covered(ip("198.51.100.77"), 50).unwrap());
        assert!(s.covered(ip("2001:db8::5"), 50).unwrap());
        assert!(!s.covered(ip("192.0.2.2"), 50).unwrap());
        assert!(!s.covered(ip("2001:db8:1::5"), 50).unwrap());
        assert!(!s.covered(ip("192.0.2.1"), 100).unwrap(), "expired at 100");
    }

    #[test]
    fn offences_count_and_forget() {
        let mut s = Store::in_memory().unwrap();
        let v: IpNet = "192.0.2.1/32".parse().unwrap();
        assert_eq!(s.offences(&v, 0).unwrap(), 0);
        s.record_offence(&v, 10).unwrap();
        s.record_offence(&v, 20).unwrap();
        assert_eq!(s.offences(&v, 0).unwrap(), 2);
        assert_eq!(s.offences(&v, 21).unwrap(), 0, "older than the window");
        s.prune(0, 30).unwrap();
        assert_eq!(s.offences(&v, 0).unwrap(), 0);
    }
}
