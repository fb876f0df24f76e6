//! The embedded store: decisions and offence history in SQLite (WAL). The source of truth the
//! kernel is reconciled against.

use std::path::Path;

use ipnet::IpNet;
use rusqlite::{params, Connection, OptionalExtension};

use crate::time::Micros;
use crowdwall_engine::decide::{Decision, Origin};
use crowdwall_engine::enforce::Ports;

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
    /// The file opened but does not read as this store (truncated, overwritten, corrupt).
    #[error(
        "store {path}: {source}; nothing was changed and the kernel keeps its bans. \
         Move the file aside (mv {path} {path}.broken) to start with a new store: the daemon \
         then adopts the bans the kernel holds"
    )]
    Damaged {
        path: String,
        #[source]
        source: rusqlite::Error,
    },
}

pub struct Store {
    conn: Connection,
    /// The schema was created by this open: the file was missing, empty, or not yet a store.
    /// A fresh store next to a table that holds bans means the store lost its memory.
    fresh: bool,
}

const SCHEMA_VERSION: i64 = 3;

impl Store {
    pub fn open(path: &Path) -> Result<Store, StoreError> {
        let conn = Connection::open(path).map_err(|source| StoreError::Open {
            path: path.display().to_string(),
            source,
        })?;
        Store::init(conn).map_err(|e| match e {
            StoreError::Sql(source) => StoreError::Damaged {
                path: path.display().to_string(),
                source,
            },
            e => e,
        })
    }

    /// Makes writes fail (as on a full disk) or work again, for tests of the outage path.
    #[cfg(test)]
    pub(crate) fn refuse_writes(&self, refuse: bool) {
        let _ = self.conn.pragma_update(None, "query_only", refuse);
    }

    /// Whether this open created the schema (see [`Store::fresh`]'s field).
    pub fn is_fresh(&self) -> bool {
        self.fresh
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
        let tables: i64 = conn.query_row(
            "SELECT count(*) FROM sqlite_master WHERE type = 'table' AND name = 'decisions'",
            [],
            |r| r.get(0),
        )?;
        let fresh = version == 0 && tables == 0;
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
        if version < 2 {
            conn.execute_batch(MIGRATION_2)?;
        }
        if version < 3 {
            conn.execute_batch(MIGRATION_3)?;
        }
        // A file cut short with its first page (the schema) intact opens fine and fails
        // only at the first read of a lost page, deep in the start; quick_check reads every
        // page once (a fraction of a second for a store of a million decisions).
        let check: String = conn.query_row("PRAGMA quick_check(1)", [], |r| r.get(0))?;
        if check != "ok" {
            return Err(StoreError::Sql(rusqlite::Error::SqliteFailure(
                rusqlite::ffi::Error::new(rusqlite::ffi::SQLITE_CORRUPT),
                Some(format!("database disk image is malformed ({check})")),
            )));
        }
        Ok(Store { conn, fresh })
    }

    /// Stores a decision and sets its id.
    pub fn insert(&mut self, d: &mut Decision) -> Result<(), StoreError> {
        self.conn.execute(
            "INSERT INTO decisions (value, origin, scenario, reason, created, until, ports)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
            params![
                d.value.to_string(),
                d.origin.as_str(),
                d.scenario,
                d.reason,
                d.created,
                d.until,
                d.ports.to_list()
            ],
        )?;
        d.id = self.conn.last_insert_rowid();
        Ok(())
    }

    /// Decisions still in force at `now`, oldest first.
    pub fn active(&self, now: Micros) -> Result<Vec<Decision>, StoreError> {
        let mut st = self.conn.prepare_cached(
            "SELECT id, value, origin, scenario, reason, created, until, ports
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
                r.get::<_, String>(7)?,
            ))
        })?;
        let mut out = Vec::new();
        for row in rows {
            let (id, value, origin, scenario, reason, created, until, ports) = row?;
            let value = value_of(id, &value)?;
            let origin = origin_of(id, &origin)?;
            let ports = ports_of(id, &ports)?;
            out.push(Decision {
                id,
                value,
                origin,
                scenario,
                reason,
                created,
                until,
                ports,
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
    ) -> Result<Vec<(i64, Origin, Ports)>, StoreError> {
        let mut st = self.conn.prepare_cached(
            "DELETE FROM decisions WHERE value = ?1 AND until > ?2 RETURNING id, origin, ports",
        )?;
        let rows = st.query_map(params![value.to_string(), now], |r| {
            Ok((
                r.get::<_, i64>(0)?,
                r.get::<_, String>(1)?,
                r.get::<_, String>(2)?,
            ))
        })?;
        let mut out = Vec::new();
        for row in rows {
            let (id, origin, ports) = row?;
            out.push((id, origin_of(id, &origin)?, ports_of(id, &ports)?));
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
                out.push((id, value_of(id, &v)?));
            }
            out
        };
        {
            let mut st = tx.prepare_cached(
                "INSERT INTO decisions (value, origin, scenario, reason, created, until, ports)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
            )?;
            for d in decisions.iter_mut() {
                st.execute(params![
                    d.value.to_string(),
                    d.origin.as_str(),
                    d.scenario,
                    d.reason,
                    d.created,
                    d.until,
                    d.ports.to_list()
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

    /// Removes expired decisions and forgotten offences (and the change log rows no bouncer
    /// needs any more: see [`Store::prune_log`]).
    pub fn prune(&mut self, now: Micros, forget_before: Micros) -> Result<usize, StoreError> {
        let n = self
            .conn
            .execute("DELETE FROM decisions WHERE until <= ?1", [now])?;
        self.conn
            .execute("DELETE FROM offences WHERE last < ?1", [forget_before])?;
        self.prune_log(now)?;
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

    /// Forgets the offence history of exactly `value`; whether there was one.
    pub fn forget_offences(&mut self, value: &IpNet) -> Result<bool, StoreError> {
        let n = self
            .conn
            .execute("DELETE FROM offences WHERE value = ?1", [value.to_string()])?;
        Ok(n > 0)
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

// ---- Change log and bouncers (schema 2): what the bouncer API streams -------------------

/// Schema 2, additive: a change log of decisions (one row per insert and per delete, written
/// by triggers, so no code path that touches `decisions` can forget it) and the bouncers of
/// the CrowdSec-compatible API with their pull position. Existing decisions are logged as
/// inserted so that a first stream pull sees them.
const MIGRATION_2: &str = "BEGIN;
     CREATE TABLE IF NOT EXISTS decision_log (
         seq INTEGER PRIMARY KEY AUTOINCREMENT,
         id INTEGER NOT NULL,
         kind INTEGER NOT NULL,
         value TEXT NOT NULL,
         origin TEXT NOT NULL,
         scenario TEXT NOT NULL,
         until INTEGER NOT NULL
     );
     CREATE INDEX IF NOT EXISTS decision_log_id ON decision_log(id, kind, seq);
     CREATE INDEX IF NOT EXISTS decision_log_until ON decision_log(until);
     CREATE TRIGGER IF NOT EXISTS decisions_log_insert AFTER INSERT ON decisions BEGIN
         INSERT INTO decision_log (id, kind, value, origin, scenario, until)
         VALUES (NEW.id, 0, NEW.value, NEW.origin, NEW.scenario, NEW.until);
     END;
     CREATE TRIGGER IF NOT EXISTS decisions_log_delete AFTER DELETE ON decisions BEGIN
         INSERT INTO decision_log (id, kind, value, origin, scenario, until)
         VALUES (OLD.id, 1, OLD.value, OLD.origin, OLD.scenario, OLD.until);
     END;
     INSERT INTO decision_log (id, kind, value, origin, scenario, until)
         SELECT id, 0, value, origin, scenario, until FROM decisions ORDER BY id;
     CREATE TABLE IF NOT EXISTS bouncers (
         name TEXT PRIMARY KEY,
         key_sha256 TEXT NOT NULL UNIQUE,
         created INTEGER NOT NULL,
         last_seq INTEGER,
         last_pull INTEGER,
         last_seen INTEGER,
         user_agent TEXT NOT NULL DEFAULT ''
     );
     PRAGMA user_version = 2;
     COMMIT;";

/// Schema 3, additive: the destination ports a ban is limited to (`22,2222`; empty for
/// every port, which is what every older row means).
const MIGRATION_3: &str = "BEGIN;
     ALTER TABLE decisions ADD COLUMN ports TEXT NOT NULL DEFAULT '';
     PRAGMA user_version = 3;
     COMMIT;";

/// Change-log rows of decisions that ended longer ago than this are dropped even if some
/// bouncer has not pulled since: its own elements carry timeouts and lapse by themselves.
/// A bouncer silent for longer is no longer waited for either (the log would grow without
/// bound with a feed's updates): its next pull gets the whole state.
pub const LOG_HORIZON: Micros = 86_400 * crate::time::SECOND;

/// A decision as the change log remembers it (no reason: bouncers do not get one).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LoggedDecision {
    pub id: i64,
    pub value: IpNet,
    pub origin: Origin,
    pub scenario: String,
    pub until: Micros,
}

/// A bouncer of the API: its name, when it last pulled, and what it has seen.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Bouncer {
    pub name: String,
    pub created: Micros,
    /// The change-log position of its last successful stream pull (None: never pulled).
    pub last_seq: Option<i64>,
    pub last_pull: Option<Micros>,
    pub last_seen: Option<Micros>,
    pub user_agent: String,
}

impl Store {
    /// Registers a bouncer by the SHA-256 of its key; false if the name is taken.
    pub fn bouncer_add(
        &mut self,
        name: &str,
        key_sha256: &str,
        now: Micros,
    ) -> Result<bool, StoreError> {
        let n = self.conn.execute(
            "INSERT INTO bouncers (name, key_sha256, created) VALUES (?1, ?2, ?3)
             ON CONFLICT DO NOTHING",
            params![name, key_sha256, now],
        )?;
        Ok(n == 1)
    }

    pub fn bouncer_delete(&mut self, name: &str) -> Result<bool, StoreError> {
        Ok(self
            .conn
            .execute("DELETE FROM bouncers WHERE name = ?1", [name])?
            == 1)
    }

    const BOUNCER_COLS: &'static str =
        "name, created, last_seq, last_pull, last_seen, user_agent FROM bouncers";

    fn bouncer_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<Bouncer> {
        Ok(Bouncer {
            name: r.get(0)?,
            created: r.get(1)?,
            last_seq: r.get(2)?,
            last_pull: r.get(3)?,
            last_seen: r.get(4)?,
            user_agent: r.get(5)?,
        })
    }

    pub fn bouncers(&self) -> Result<Vec<Bouncer>, StoreError> {
        let mut st = self
            .conn
            .prepare_cached(&format!("SELECT {} ORDER BY name", Self::BOUNCER_COLS))?;
        let rows = st.query_map([], Self::bouncer_row)?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// The bouncer holding the key with this SHA-256, if any.
    pub fn bouncer_by_key(&self, key_sha256: &str) -> Result<Option<Bouncer>, StoreError> {
        let mut st = self.conn.prepare_cached(&format!(
            "SELECT {} WHERE key_sha256 = ?1",
            Self::BOUNCER_COLS
        ))?;
        Ok(st.query_row([key_sha256], Self::bouncer_row).optional()?)
    }

    /// Records a request from a bouncer; with `pulled`, the stream position it now has.
    pub fn bouncer_seen(
        &mut self,
        name: &str,
        now: Micros,
        user_agent: &str,
        pulled: Option<i64>,
    ) -> Result<(), StoreError> {
        match pulled {
            Some(seq) => self.conn.execute(
                "UPDATE bouncers SET last_seen = ?2, user_agent = ?3, last_seq = ?4, last_pull = ?2
                 WHERE name = ?1",
                params![name, now, user_agent, seq],
            )?,
            None => self.conn.execute(
                "UPDATE bouncers SET last_seen = ?2, user_agent = ?3 WHERE name = ?1",
                params![name, now, user_agent],
            )?,
        };
        Ok(())
    }

    /// The newest change-log position ever written (0 before the first). Read from
    /// AUTOINCREMENT's counter, not MAX(seq): pruning may have emptied the table.
    pub fn log_seq(&self) -> Result<i64, StoreError> {
        Ok(self.conn.query_row(
            "SELECT COALESCE((SELECT seq FROM sqlite_sequence WHERE name = 'decision_log'), 0)",
            [],
            |r| r.get(0),
        )?)
    }

    /// What changed for a bouncer that had seen the log up to `seq` and pulled at `pulled`:
    /// decisions inserted since and still in force at `now` (new), and decisions it knew that
    /// were deleted since or expired since its pull (deleted). Each incarnation of a row id
    /// is paired with the first delete of that id after its insert, so reused ids are safe.
    pub fn log_delta(
        &self,
        seq: i64,
        pulled: Micros,
        now: Micros,
    ) -> Result<(Vec<LoggedDecision>, Vec<LoggedDecision>), StoreError> {
        let mut new_st = self.conn.prepare_cached(
            "SELECT i.id, i.value, i.origin, i.scenario, i.until FROM decision_log i
             WHERE i.kind = 0 AND i.seq > ?1 AND i.until > ?2
               AND NOT EXISTS (SELECT 1 FROM decision_log d
                               WHERE d.id = i.id AND d.kind = 1 AND d.seq > i.seq)
             ORDER BY i.seq",
        )?;
        let new = Self::logged(new_st.query_map(params![seq, now], Self::logged_row)?)?;
        // Two index-driven candidates instead of a scan of every decision the bouncer knows:
        // incarnations deleted since its position (the insert paired with each delete row
        // after it), and ones whose end fell between its pull and now.
        let mut del_st = self.conn.prepare_cached(
            "SELECT i.id, i.value, i.origin, i.scenario, i.until, i.seq
             FROM decision_log d JOIN decision_log i ON i.seq = (
                 SELECT MAX(x.seq) FROM decision_log x
                 WHERE x.id = d.id AND x.kind = 0 AND x.seq < d.seq)
             WHERE d.kind = 1 AND d.seq > ?1 AND i.seq <= ?1 AND i.until > ?2
             UNION
             SELECT i.id, i.value, i.origin, i.scenario, i.until, i.seq FROM decision_log i
             WHERE i.kind = 0 AND i.until > ?2 AND i.until <= ?3 AND i.seq <= ?1
               AND NOT EXISTS (SELECT 1 FROM decision_log d
                               WHERE d.id = i.id AND d.kind = 1 AND d.seq > i.seq AND d.seq <= ?1)
             ORDER BY 6",
        )?;
        let deleted = Self::logged(del_st.query_map(params![seq, pulled, now], Self::logged_row)?)?;
        Ok((new, deleted))
    }

    #[allow(clippy::type_complexity)]
    fn logged_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<(i64, String, String, String, i64)> {
        Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?))
    }

    fn logged(
        rows: impl Iterator<Item = rusqlite::Result<(i64, String, String, String, i64)>>,
    ) -> Result<Vec<LoggedDecision>, StoreError> {
        let mut out = Vec::new();
        for row in rows {
            let (id, value, origin, scenario, until) = row?;
            let value = value_of(id, &value)?;
            let origin = origin_of(id, &origin)?;
            out.push(LoggedDecision {
                id,
                value,
                origin,
                scenario,
                until,
            });
        }
        Ok(out)
    }

    /// Drops change-log rows nobody needs: incarnations every bouncer has seen end, and rows
    /// of decisions that ended more than [`LOG_HORIZON`] ago.
    fn prune_log(&mut self, now: Micros) -> Result<(), StoreError> {
        // Bouncers that never pulled will start with a startup pull; silent ones past the
        // horizon get the whole state again: neither holds the log back.
        let seen: i64 = self.conn.query_row(
            "SELECT COALESCE((SELECT MIN(last_seq) FROM bouncers
                              WHERE last_seq IS NOT NULL AND last_pull >= ?1),
                             (SELECT COALESCE(MAX(seq), 0) FROM decision_log))",
            [now - LOG_HORIZON],
            |r| r.get(0),
        )?;
        let tx = self.conn.transaction()?;
        tx.execute(
            "DELETE FROM decision_log WHERE kind = 0 AND EXISTS (
                 SELECT 1 FROM decision_log d WHERE d.id = decision_log.id AND d.kind = 1
                 AND d.seq > decision_log.seq AND d.seq <= ?1)",
            [seen],
        )?;
        tx.execute(
            "DELETE FROM decision_log WHERE kind = 1 AND seq <= ?1",
            [seen],
        )?;
        tx.execute(
            "DELETE FROM decision_log WHERE until < ?1",
            [now - LOG_HORIZON],
        )?;
        tx.commit()?;
        Ok(())
    }
}

/// A stored value back as a network; a row that does not hold one is named, not skipped.
fn value_of(id: i64, text: &str) -> Result<IpNet, StoreError> {
    text.parse().map_err(|_| StoreError::BadRow {
        id,
        message: format!("value '{text}' is not a CIDR"),
    })
}

/// A stored port list back as [`Ports`].
fn ports_of(id: i64, text: &str) -> Result<Ports, StoreError> {
    Ports::parse(text).map_err(|e| StoreError::BadRow {
        id,
        message: format!("ports '{text}': {e}"),
    })
}

/// A stored origin back as an [`Origin`].
fn origin_of(id: i64, text: &str) -> Result<Origin, StoreError> {
    text.parse().map_err(
        |e: crowdwall_engine::decide::UnknownOrigin| StoreError::BadRow {
            id,
            message: e.to_string(),
        },
    )
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
            ports: Default::default(),
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
    fn schema_1_migrates_and_logs_existing_decisions() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("c.db");
        {
            let c = Connection::open(&path).unwrap();
            c.execute_batch(
                "CREATE TABLE decisions (id INTEGER PRIMARY KEY, value TEXT NOT NULL,
                     origin TEXT NOT NULL, scenario TEXT NOT NULL, reason TEXT NOT NULL DEFAULT '',
                     created INTEGER NOT NULL, until INTEGER NOT NULL);
                 CREATE TABLE offences (value TEXT PRIMARY KEY, count INTEGER NOT NULL, last INTEGER NOT NULL);
                 INSERT INTO decisions (value, origin, scenario, created, until)
                     VALUES ('192.0.2.1/32', 'local', 'ssh-bruteforce', 0, 100);
                 PRAGMA user_version = 1;",
            )
            .unwrap();
        }
        let mut s = Store::open(&path).unwrap();
        assert_eq!(
            s.log_seq().unwrap(),
            1,
            "the existing decision is in the log"
        );
        let (new, _) = s.log_delta(0, 0, 50).unwrap();
        assert_eq!(new.len(), 1);
        assert!(s.bouncer_add("b", &"0".repeat(64), 1).unwrap());
        assert!(
            !s.bouncer_add("b", &"1".repeat(64), 1).unwrap(),
            "name taken"
        );
        assert_eq!(
            s.bouncer_by_key(&"0".repeat(64)).unwrap().unwrap().name,
            "b"
        );
        // the log is pruned once every bouncer has seen a deletion
        s.bouncer_seen("b", 40, "t", Some(1)).unwrap();
        s.delete_value(&"192.0.2.1/32".parse().unwrap(), 50)
            .unwrap();
        s.prune(60, 0).unwrap();
        // (a bouncer at position 1 knew the decision: it still learns of the deletion)
        assert_eq!(
            s.log_delta(1, 0, 60).unwrap().1.len(),
            1,
            "b has not pulled: kept"
        );
        s.bouncer_seen("b", 60, "t", Some(s.log_seq().unwrap()))
            .unwrap();
        s.prune(60, 0).unwrap();
        assert_eq!(s.log_delta(1, 0, 60).unwrap(), (vec![], vec![]));
        // a bouncer silent past the horizon does not hold the log back
        let at = s.log_seq().unwrap();
        s.insert(&mut d("192.0.2.2/32", Origin::Manual, i64::MAX / 2))
            .unwrap();
        s.delete_value(&"192.0.2.2/32".parse().unwrap(), 70)
            .unwrap();
        s.prune(70, 0).unwrap();
        assert_eq!(
            s.log_delta(at + 1, 0, 70).unwrap().1.len(),
            1,
            "b is not past it yet"
        );
        s.prune(60 + LOG_HORIZON + 1, 0).unwrap();
        assert_eq!(s.log_delta(at + 1, 0, 70).unwrap().1.len(), 0);
        drop(s);
        let s = Store::open(&path).unwrap();
        assert_eq!(s.bouncers().unwrap().len(), 1, "reopening keeps schema 2");
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
