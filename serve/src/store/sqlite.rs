//! The SQLite store: one writer connection behind a lock, read-only connections for queries,
//! WAL so reads never wait for the writer.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Mutex, RwLock};

use rusqlite::{params, params_from_iter, Connection, OpenFlags, OptionalExtension, ToSql};
use serde_json::Value;

use super::facets::{FacetRow, Facets};
use super::outcomes::{self, KeptDecisions, OutcomeFilter, OutcomeKind, OutcomePage, OutcomeRetention};
use super::{
    Added, AggregateColumn, AggregateQuery, AlertFilter, AlertPage, AnomalyBucket, AnomalyFilter, AnomalyPage, Applied,
    Cursor, GroupBy, KeySeries, PageAt, Since, Statistics, Store, StoredAggregate,
};
use crate::api::wall_clock_ms;
use crate::lifecycle::{check, Change, LifecycleEvent, Status};
use sentinel_dataflows::act::AlertRecord;
use sentinel_dataflows::hash::stable_id;
use sentinel_dataflows::model::Anomaly;
use sentinel_dataflows::time::{format_rfc3339_ms, parse_rfc3339_ms};
use sentinel_dataflows::window::AggregateRecord;

/// Where and how much the store keeps.
#[derive(Clone, Debug)]
pub struct StoreOptions {
    /// The database file (created if missing).
    pub path: PathBuf,
    /// Read-only connections for queries.
    pub readers: usize,
    /// Anomalies older than this (ms, by detection time, against the newest stored) are dropped.
    pub retain_ms: Option<u64>,
    /// At most this many anomalies are kept, and as many of each other kind of record; the
    /// oldest go first.
    pub retain_count: Option<u64>,
    /// Which decisions are kept.
    pub decisions: KeptDecisions,
}

impl StoreOptions {
    /// A store at `path` with four readers and no retention limit.
    pub fn at(path: impl AsRef<Path>) -> StoreOptions {
        StoreOptions {
            path: path.as_ref().to_owned(),
            readers: 4,
            retain_ms: None,
            retain_count: None,
            decisions: KeptDecisions::default(),
        }
    }
}

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS anomalies (
    id TEXT PRIMARY KEY,
    ts_ms INTEGER NOT NULL,
    detector_id TEXT NOT NULL,
    detector_type TEXT NOT NULL,
    severity TEXT NOT NULL,
    score REAL NOT NULL,
    status TEXT NOT NULL,
    application_id TEXT,
    entity TEXT NOT NULL,
    acknowledged_by TEXT,
    acknowledged_at_ms INTEGER,
    note TEXT,
    resolved_at_ms INTEGER,
    record TEXT NOT NULL,
    seq INTEGER NOT NULL DEFAULT 0,
    stored_at_ms INTEGER
);
CREATE INDEX IF NOT EXISTS anomalies_ts ON anomalies (ts_ms, id);
CREATE INDEX IF NOT EXISTS anomalies_severity ON anomalies (severity, ts_ms);
CREATE INDEX IF NOT EXISTS anomalies_status ON anomalies (status, ts_ms);
CREATE INDEX IF NOT EXISTS anomalies_application ON anomalies (application_id, ts_ms);
CREATE INDEX IF NOT EXISTS anomalies_detector ON anomalies (detector_id, ts_ms);
CREATE INDEX IF NOT EXISTS anomalies_score ON anomalies (score);
CREATE INDEX IF NOT EXISTS anomalies_resolved ON anomalies (ts_ms, resolved_at_ms) WHERE resolved_at_ms IS NOT NULL;
CREATE TABLE IF NOT EXISTS aggregates (
    id TEXT PRIMARY KEY,
    dimension TEXT NOT NULL,
    key TEXT NOT NULL,
    width_ms INTEGER NOT NULL,
    end_ms INTEGER NOT NULL,
    requests INTEGER NOT NULL,
    errors INTEGER NOT NULL,
    prompt_tokens INTEGER NOT NULL,
    completion_tokens INTEGER NOT NULL,
    total_tokens INTEGER NOT NULL,
    cost REAL NOT NULL,
    latency_mean_ms REAL,
    latency_p95_ms REAL,
    latency_p99_ms REAL
);
CREATE INDEX IF NOT EXISTS aggregates_time ON aggregates (dimension, width_ms, end_ms);
CREATE TABLE IF NOT EXISTS alerts (
    id TEXT PRIMARY KEY,
    ts_ms INTEGER NOT NULL,
    status TEXT NOT NULL,
    severity TEXT NOT NULL,
    detector_id TEXT NOT NULL,
    receivers TEXT NOT NULL,
    record TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS alerts_ts ON alerts (ts_ms, id);
CREATE TABLE IF NOT EXISTS audit (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    id TEXT NOT NULL UNIQUE,
    anomaly_id TEXT NOT NULL,
    event TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS audit_anomaly ON audit (anomaly_id, seq);
CREATE TABLE IF NOT EXISTS applied_events (id TEXT PRIMARY KEY);
CREATE TABLE IF NOT EXISTS waiting_events (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    id TEXT NOT NULL UNIQUE,
    anomaly_id TEXT NOT NULL,
    event TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS waiting_anomaly ON waiting_events (anomaly_id);
CREATE TABLE IF NOT EXISTS positions (
    topic TEXT NOT NULL,
    partition INTEGER NOT NULL,
    next_offset INTEGER NOT NULL,
    PRIMARY KEY (topic, partition)
);
CREATE TRIGGER IF NOT EXISTS audit_no_update BEFORE UPDATE ON audit
    BEGIN SELECT RAISE(ABORT, 'the audit table is append-only'); END;
CREATE TRIGGER IF NOT EXISTS audit_no_delete BEFORE DELETE ON audit
    BEGIN SELECT RAISE(ABORT, 'the audit table is append-only'); END;
";

/// Columns added since the first release, `(table, column, how a store made before gets it)`.
const ADDED_COLUMNS: [(&str, &str, &str); 3] = [
    (
        "anomalies",
        "seq",
        "ALTER TABLE anomalies ADD COLUMN seq INTEGER NOT NULL DEFAULT 0; UPDATE anomalies SET seq = rowid;",
    ),
    (
        "anomalies",
        "stored_at_ms",
        "ALTER TABLE anomalies ADD COLUMN stored_at_ms INTEGER;",
    ),
    (
        "aggregates",
        "seq",
        "ALTER TABLE aggregates ADD COLUMN seq INTEGER NOT NULL DEFAULT 0; UPDATE aggregates SET seq = rowid;",
    ),
];

const SEQ_INDEXES: &str = "CREATE INDEX IF NOT EXISTS anomalies_seq ON anomalies (seq);
CREATE INDEX IF NOT EXISTS aggregates_seq ON aggregates (seq);";

/// The columns an anomaly is returned from.
const ROW: &str = "record, status, acknowledged_by, acknowledged_at_ms, note, resolved_at_ms";

/// An anomaly store in one SQLite file.
///
/// ```
/// use sentinel_serve::store::{SqliteStore, Store, StoreOptions};
/// let dir = tempfile::tempdir().unwrap();
/// let store = SqliteStore::open(StoreOptions::at(dir.path().join("s.db"))).unwrap();
/// assert!(store.anomaly("nope").unwrap().is_none());
/// ```
pub struct SqliteStore {
    writer: Mutex<Connection>,
    /// What `statistics` reads, kept beside the table by the writer.
    facets: RwLock<Facets>,
    readers: Vec<Mutex<Connection>>,
    next_reader: AtomicUsize,
    /// The newest anomaly's `seq`: arrival order, which subscribers follow.
    last_seq: AtomicU64,
    /// The newest aggregate's `seq`, which `metricsUpdated` subscribers follow.
    last_aggregate_seq: AtomicU64,
    /// Lifecycle events waiting for their anomaly: while there are none, a new anomaly costs
    /// no lookup.
    waiting: AtomicU64,
    options: StoreOptions,
}

/// Lifecycle events kept at most for anomalies that have not arrived; the oldest go first.
const MAX_WAITING: i64 = 100_000;

fn sql(e: rusqlite::Error) -> String {
    format!("store: {e}")
}

impl SqliteStore {
    /// Opens (or creates) the store.
    pub fn open(options: StoreOptions) -> Result<SqliteStore, String> {
        let writer = Connection::open(&options.path).map_err(|e| format!("{}: {e}", options.path.display()))?;
        writer
            .execute_batch("PRAGMA journal_mode = WAL; PRAGMA synchronous = NORMAL; PRAGMA busy_timeout = 5000;")
            .map_err(sql)?;
        writer.execute_batch(SCHEMA).map_err(sql)?;
        writer.execute_batch(outcomes::SCHEMA).map_err(sql)?;
        for (table, column, add) in ADDED_COLUMNS {
            if writer
                .prepare(&format!("SELECT {column} FROM {table} LIMIT 0"))
                .is_err()
            {
                writer.execute_batch(add).map_err(sql)?;
            }
        }
        writer.execute_batch(SEQ_INDEXES).map_err(sql)?;
        let last_seq: i64 = writer
            .query_row("SELECT COALESCE(MAX(seq), 0) FROM anomalies", [], |r| r.get(0))
            .map_err(sql)?;
        let last_aggregate_seq: i64 = writer
            .query_row("SELECT COALESCE(MAX(seq), 0) FROM aggregates", [], |r| r.get(0))
            .map_err(sql)?;
        let facets = load_facets(&writer).map_err(sql)?;
        let waiting: i64 = writer
            .query_row("SELECT COUNT(*) FROM waiting_events", [], |r| r.get(0))
            .map_err(sql)?;
        let readers = (0..options.readers.max(1))
            .map(|_| {
                let c = Connection::open_with_flags(
                    &options.path,
                    OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
                )
                .map_err(sql)?;
                c.execute_batch("PRAGMA busy_timeout = 5000;").map_err(sql)?;
                Ok(Mutex::new(c))
            })
            .collect::<Result<Vec<_>, String>>()?;
        Ok(SqliteStore {
            writer: Mutex::new(writer),
            facets: RwLock::new(facets),
            readers,
            next_reader: AtomicUsize::new(0),
            last_seq: AtomicU64::new(last_seq as u64),
            last_aggregate_seq: AtomicU64::new(last_aggregate_seq as u64),
            waiting: AtomicU64::new(waiting as u64),
            options,
        })
    }

    fn read<T>(&self, f: impl FnOnce(&Connection) -> rusqlite::Result<T>) -> Result<T, String> {
        let i = self.next_reader.fetch_add(1, Ordering::Relaxed) % self.readers.len();
        let conn = self.readers[i]
            .lock()
            .map_err(|_| "store: a reader panicked".to_owned())?;
        f(&conn).map_err(sql)
    }

    fn write<T>(&self, f: impl FnOnce(&mut Connection) -> rusqlite::Result<T>) -> Result<T, String> {
        let mut conn = self
            .writer
            .lock()
            .map_err(|_| "store: the writer panicked".to_owned())?;
        f(&mut conn).map_err(sql)
    }

    /// Drops what retention no longer keeps from the table; returns the age cutoff, for the
    /// facets once the transaction commits.
    fn retain(&self, conn: &Connection) -> rusqlite::Result<Option<u64>> {
        let mut cutoff = None;
        if let Some(age) = self.options.retain_ms {
            let newest: Option<i64> = conn.query_row("SELECT MAX(ts_ms) FROM anomalies", [], |r| r.get(0))?;
            if let Some(c) = newest.map(|n| n - age as i64) {
                conn.execute("DELETE FROM anomalies WHERE ts_ms < ?1", params![c])?;
                cutoff = Some(c.max(0) as u64);
            }
        }
        if let Some(count) = self.options.retain_count {
            conn.execute(
                "DELETE FROM anomalies WHERE id IN (SELECT id FROM anomalies ORDER BY ts_ms DESC, id DESC LIMIT -1 OFFSET ?1)",
                params![count as i64],
            )?;
        }
        Ok(cutoff)
    }
}

/// Where the next read of arrivals starts: a full page may stop short of `upto_seq`; a short
/// one read every row up to it.
fn read_to<T>(records: &[(u64, T)], limit: u32, upto_seq: u64) -> u64 {
    match records.last() {
        Some((seq, _)) if records.len() == limit as usize => *seq,
        _ => upto_seq,
    }
}

/// How many rows of `table` match `clause` (with `args`), and a page of their `record`s,
/// newest first (`ts_ms`, then `id`), skipping `offset`: the alert and outcome lists.
pub(super) fn newest_records(
    conn: &Connection,
    table: &str,
    clause: &str,
    mut args: Vec<Box<dyn ToSql>>,
    offset: u64,
    limit: u32,
) -> rusqlite::Result<(u64, Vec<Value>)> {
    let total: i64 = conn.query_row(
        &format!("SELECT COUNT(*) FROM {table} WHERE {clause}"),
        params_from_iter(args.iter()),
        |r| r.get(0),
    )?;
    args.push(Box::new(i64::from(limit)));
    args.push(Box::new(offset.min(i64::MAX as u64) as i64));
    let records = conn
        .prepare(&format!(
            "SELECT record FROM {table} WHERE {clause} ORDER BY ts_ms DESC, id DESC LIMIT ? OFFSET ?"
        ))?
        .query_map(params_from_iter(args.iter()), |r| r.get::<_, String>(0))?
        .map(|text| text.map(|t| serde_json::from_str(&t).unwrap_or(Value::Null)))
        .collect::<rusqlite::Result<Vec<Value>>>()?;
    Ok((total as u64, records))
}

/// The facets of every stored anomaly, read at open.
fn load_facets(conn: &Connection) -> rusqlite::Result<Facets> {
    let mut facets = Facets::default();
    let mut stmt = conn.prepare(
        "SELECT ts_ms, score, detector_id, severity, COALESCE(application_id, ''), detector_type, entity
         FROM anomalies ORDER BY ts_ms",
    )?;
    let mut rows = stmt.query([])?;
    while let Some(r) = rows.next()? {
        let (detector, severity, application, detector_type, entity): (String, String, String, String, String) =
            (r.get(2)?, r.get(3)?, r.get(4)?, r.get(5)?, r.get(6)?);
        facets.add(FacetRow {
            ts_ms: r.get::<_, i64>(0)? as u64,
            score: r.get(1)?,
            detector: &detector,
            severity: &severity,
            application: &application,
            detector_type: &detector_type,
            entity: &entity,
        });
    }
    Ok(facets)
}

/// An anomaly's row, as the APIs return it: the record with its lifecycle fields.
fn row_to_value(row: &rusqlite::Row<'_>) -> rusqlite::Result<Value> {
    let record: String = row.get(0)?;
    let mut value: Value = serde_json::from_str(&record).unwrap_or(Value::Null);
    if let Value::Object(map) = &mut value {
        map.insert("status".into(), Value::String(row.get(1)?));
        let acknowledged_by: Option<String> = row.get(2)?;
        map.insert(
            "acknowledged_by".into(),
            acknowledged_by.map_or(Value::Null, Value::String),
        );
        let at: Option<i64> = row.get(3)?;
        map.insert(
            "acknowledged_at".into(),
            at.map_or(Value::Null, |ms| Value::String(format_rfc3339_ms(ms as u64))),
        );
        let note: Option<String> = row.get(4)?;
        map.insert("note".into(), note.map_or(Value::Null, Value::String));
        let resolved: Option<i64> = row.get(5)?;
        map.insert(
            "resolved_at".into(),
            resolved.map_or(Value::Null, |ms| Value::String(format_rfc3339_ms(ms as u64))),
        );
    }
    Ok(value)
}

/// The `q` quantile (nearest rank) of `values`, which it sorts.
fn percentile(values: &mut [u64], q: f64) -> Option<f64> {
    if values.is_empty() {
        return None;
    }
    values.sort_unstable();
    let rank = ((q * values.len() as f64).ceil() as usize).clamp(1, values.len());
    Some(values[rank - 1] as f64)
}

/// The WHERE clause and its parameters for `filter`.
fn where_clause(filter: &AnomalyFilter) -> (String, Vec<Box<dyn ToSql>>) {
    let mut clauses = vec!["ts_ms >= ?".to_owned(), "ts_ms < ?".to_owned()];
    let mut args: Vec<Box<dyn ToSql>> = vec![Box::new(filter.start_ms as i64), Box::new(filter.end_ms as i64)];
    let mut any_of = |column: &str, values: Vec<String>, args: &mut Vec<Box<dyn ToSql>>| {
        if values.is_empty() {
            return;
        }
        // One value: the column's (value, time) index yields rows in time order. Several:
        // that index would need a sort of every match, so walk the time index instead (`+`
        // keeps the planner off the column's index) and stop at the page's end.
        let unindexed = if values.len() > 1 { "+" } else { "" };
        clauses.push(format!(
            "{unindexed}{column} IN ({})",
            vec!["?"; values.len()].join(", ")
        ));
        args.extend(values.into_iter().map(|v| Box::new(v) as Box<dyn ToSql>));
    };
    any_of("severity", filter.severities.clone(), &mut args);
    any_of(
        "status",
        filter.statuses.iter().map(|s| s.as_str().to_owned()).collect(),
        &mut args,
    );
    any_of("application_id", filter.applications.clone(), &mut args);
    any_of("detector_id", filter.detectors.clone(), &mut args);
    if let Some(min) = filter.score_min {
        clauses.push("score >= ?".into());
        args.push(Box::new(min));
    }
    if let Some(max) = filter.score_max {
        clauses.push("score <= ?".into());
        args.push(Box::new(max));
    }
    (clauses.join(" AND "), args)
}

/// Sets an anomaly's status as `change` asks.
fn set_status(tx: &Connection, anomaly_id: &str, event: &LifecycleEvent) -> rusqlite::Result<()> {
    let (to, by, note, at) = (event.to.as_str(), &event.by, &event.note, event.at_ms as i64);
    match event.change {
        Change::Acknowledge => tx.execute(
            "UPDATE anomalies SET status = ?2, acknowledged_by = ?3, acknowledged_at_ms = ?4, note = COALESCE(?5, note) WHERE id = ?1",
            params![anomaly_id, to, by, at, note],
        )?,
        Change::Resolve => tx.execute(
            "UPDATE anomalies SET status = ?2, resolved_at_ms = ?3, note = COALESCE(?4, note) WHERE id = ?1",
            params![anomaly_id, to, at, note],
        )?,
    };
    Ok(())
}

fn audit_row(tx: &Connection, id: &str, event: &LifecycleEvent) -> rusqlite::Result<()> {
    tx.prepare_cached("INSERT INTO audit (id, anomaly_id, event) VALUES (?1, ?2, ?3) ON CONFLICT (id) DO NOTHING")?
        .execute(params![
            id,
            event.anomaly_id,
            serde_json::to_string(event).unwrap_or_default()
        ])?;
    Ok(())
}

fn status_of(tx: &Connection, anomaly_id: &str) -> rusqlite::Result<Option<Status>> {
    let status: Option<String> = tx
        .prepare_cached("SELECT status FROM anomalies WHERE id = ?1")?
        .query_row(params![anomaly_id], |r| r.get(0))
        .optional()?;
    Ok(status.map(|s| Status::parse(&s).unwrap_or(Status::Active)))
}

/// Applies one event inside the writer's transaction; `waiting` counts events parked.
fn apply_one(tx: &Connection, event: &LifecycleEvent, waiting: &mut i64) -> rusqlite::Result<Applied> {
    let seen: bool = tx
        .prepare_cached("SELECT EXISTS (SELECT 1 FROM applied_events WHERE id = ?1)")?
        .query_row(params![event.id], |r| r.get(0))?;
    if seen {
        return Ok(Applied::Duplicate);
    }
    let Some(from) = status_of(tx, &event.anomaly_id)? else {
        let parked = tx
            .prepare_cached(
                "INSERT INTO waiting_events (id, anomaly_id, event) VALUES (?1, ?2, ?3) ON CONFLICT (id) DO NOTHING",
            )?
            .execute(params![
                event.id,
                event.anomaly_id,
                serde_json::to_string(event).unwrap_or_default()
            ])?;
        *waiting += parked as i64;
        return Ok(Applied::Waiting);
    };
    tx.prepare_cached("INSERT INTO applied_events (id) VALUES (?1)")?
        .execute(params![event.id])?;
    let outcome = match check(from, &event.change) {
        Ok(_) => {
            let applied = event.applied_from(from);
            set_status(tx, &event.anomaly_id, &applied)?;
            audit_row(tx, &event.id, &applied)?;
            Applied::Changed(applied)
        }
        Err(refused) => Applied::Refused(refused),
    };
    if let Some(scope) = &event.condition {
        // The condition's other anomalies end with it.
        let others: Vec<(String, String)> = tx
            .prepare_cached(
                "SELECT id, status FROM anomalies WHERE detector_id = ?1 AND entity = ?2 AND ts_ms >= ?3 AND ts_ms <= ?4
                 AND status != 'resolved' AND id != ?5",
            )?
            .query_map(
                params![
                    scope.detector_id,
                    scope.entity,
                    scope.from_ms as i64,
                    scope.through_ms as i64,
                    event.anomaly_id
                ],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )?
            .collect::<rusqlite::Result<_>>()?;
        for (id, status) in others {
            let copy = LifecycleEvent {
                anomaly_id: id.clone(),
                ..event.applied_from(Status::parse(&status).unwrap_or(Status::Active))
            };
            set_status(tx, &id, &copy)?;
            audit_row(tx, &stable_id(&[event.id.as_bytes(), id.as_bytes()]), &copy)?;
        }
    }
    Ok(outcome)
}

/// Applies the events that waited for `ids`, which have just arrived, in the order they came.
fn apply_waiting(tx: &Connection, ids: &[String], waiting: &mut i64) -> rusqlite::Result<()> {
    let mut events = Vec::new();
    {
        let mut find = tx.prepare_cached("SELECT seq, event FROM waiting_events WHERE anomaly_id = ?1")?;
        for id in ids {
            let rows = find
                .query_map(params![id], |r| Ok((r.get::<_, i64>(0)?, r.get::<_, String>(1)?)))?
                .collect::<rusqlite::Result<Vec<_>>>()?;
            events.extend(rows);
        }
    }
    if events.is_empty() {
        return Ok(());
    }
    events.sort_by_key(|(seq, _)| *seq);
    for (seq, text) in events {
        tx.prepare_cached("DELETE FROM waiting_events WHERE seq = ?1")?
            .execute(params![seq])?;
        *waiting -= 1;
        if let Ok(event) = serde_json::from_str::<LifecycleEvent>(&text) {
            apply_one(tx, &event, waiting)?;
        }
    }
    Ok(())
}

impl Store for SqliteStore {
    fn add_anomalies(&self, records: Vec<Vec<u8>>) -> Result<Added, String> {
        self.write(|conn| {
            let tx = conn.transaction()?;
            let mut added = 0u64;
            // Only the writer moves it, under the writer's lock.
            let mut seq = self.last_seq.load(Ordering::Acquire);
            let now_ms = wall_clock_ms();
            // The new anomalies' facets: ts, score, detector, severity, application, kind, entity.
            let mut new: Vec<(u64, f64, String, &'static str, String, String, String)> = Vec::new();
            let mut waiting = self.waiting.load(Ordering::Acquire) as i64;
            let mut arrived = Vec::new();
            {
                let mut insert = tx.prepare_cached(
                    "INSERT INTO anomalies (id, ts_ms, detector_id, detector_type, severity, score, status, application_id, entity, record, seq, stored_at_ms)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12)
                     ON CONFLICT (id) DO NOTHING",
                )?;
                // A copy (at-least-once) refreshes the record and keeps the lifecycle.
                let mut refresh = tx.prepare_cached("UPDATE anomalies SET record = ?2 WHERE id = ?1")?;
                for bytes in &records {
                    let Ok(anomaly) = serde_json::from_slice::<Anomaly>(bytes) else {
                        tracing::warn!("store: skipping a record that is not an anomaly");
                        continue;
                    };
                    let ts = parse_rfc3339_ms(&anomaly.timestamp).unwrap_or(0);
                    let entity = &anomaly.affected_entity;
                    let application = (entity.entity_type == "application").then_some(entity.id.as_str());
                    let status = Status::parse(&anomaly.status).unwrap_or(Status::Active);
                    let record = std::str::from_utf8(bytes).unwrap_or_default();
                    let detector_type = anomaly.detector_type.as_str();
                    let entity_key = format!("{}:{}", entity.entity_type, entity.id);
                    let inserted = insert.execute(params![
                        anomaly.id,
                        ts as i64,
                        anomaly.detector_id,
                        detector_type,
                        anomaly.severity.as_str(),
                        anomaly.score,
                        status.as_str(),
                        application,
                        entity_key,
                        record,
                        (seq + 1) as i64,
                        now_ms as i64,
                    ])?;
                    if inserted == 0 {
                        refresh.execute(params![anomaly.id, record])?;
                    } else {
                        seq += 1;
                        if waiting > 0 {
                            arrived.push(anomaly.id.clone());
                        }
                        new.push((
                            ts,
                            anomaly.score,
                            anomaly.detector_id.clone(),
                            anomaly.severity.as_str(),
                            application.unwrap_or_default().to_owned(),
                            detector_type.to_owned(),
                            entity_key.clone(),
                        ));
                    }
                    added += inserted as u64;
                }
            }
            apply_waiting(&tx, &arrived, &mut waiting)?;
            let cutoff = self.retain(&tx)?;
            tx.commit()?;
            self.last_seq.store(seq, Ordering::Release);
            self.waiting.store(waiting.max(0) as u64, Ordering::Release);
            let mut facets = self.facets.write().unwrap_or_else(|p| p.into_inner());
            for (ts_ms, score, detector, severity, application, detector_type, entity) in &new {
                facets.add(FacetRow {
                    ts_ms: *ts_ms,
                    score: *score,
                    detector,
                    severity,
                    application,
                    detector_type,
                    entity,
                });
            }
            if let Some(c) = cutoff {
                facets.drop_before(c);
            }
            if let Some(count) = self.options.retain_count {
                facets.keep_newest(count as usize);
            }
            Ok(Added {
                new: added,
                last_seq: seq,
            })
        })
    }

    fn anomaly(&self, id: &str) -> Result<Option<Value>, String> {
        self.read(|conn| {
            conn.prepare_cached(&format!("SELECT {ROW} FROM anomalies WHERE id = ?1"))?
                .query_row(params![id], row_to_value)
                .optional()
        })
    }

    fn anomalies(&self, filter: &AnomalyFilter, at: &PageAt, limit: u32) -> Result<AnomalyPage, String> {
        let (clause, mut args) = where_clause(filter);
        self.read(|conn| {
            let total: i64 = conn
                .prepare_cached(&format!("SELECT COUNT(*) FROM anomalies WHERE {clause}"))?
                .query_row(params_from_iter(args.iter().map(|a| a.as_ref())), |r| r.get(0))?;
            let mut sql = format!("SELECT {ROW}, ts_ms, id FROM anomalies WHERE {clause}");
            let offset = match at {
                PageAt::Offset(n) => *n,
                PageAt::After(cursor) => {
                    sql.push_str(" AND (ts_ms < ? OR (ts_ms = ? AND id < ?))");
                    args.push(Box::new(cursor.ts_ms as i64));
                    args.push(Box::new(cursor.ts_ms as i64));
                    args.push(Box::new(cursor.id.clone()));
                    0
                }
            };
            sql.push_str(" ORDER BY ts_ms DESC, id DESC LIMIT ? OFFSET ?");
            // One more than asked, to know whether a next page exists.
            args.push(Box::new(i64::from(limit) + 1));
            args.push(Box::new(offset as i64));
            let mut stmt = conn.prepare_cached(&sql)?;
            let mut rows = stmt.query(params_from_iter(args.iter().map(|a| a.as_ref())))?;
            let mut anomalies = Vec::new();
            let mut last = None;
            let mut more = false;
            while let Some(row) = rows.next()? {
                if anomalies.len() == limit as usize {
                    more = true;
                    break;
                }
                anomalies.push(row_to_value(row)?);
                let ts: i64 = row.get(6)?;
                let id: String = row.get(7)?;
                last = Some(Cursor { ts_ms: ts as u64, id });
            }
            Ok(AnomalyPage {
                anomalies,
                total: total as u64,
                next_cursor: if more { last } else { None },
            })
        })
    }

    fn last_seq(&self) -> u64 {
        self.last_seq.load(Ordering::Acquire)
    }

    fn since(&self, after_seq: u64, upto_seq: u64, filter: &AnomalyFilter, limit: u32) -> Result<Since<Value>, String> {
        let (clause, mut args) = where_clause(filter);
        args.push(Box::new(after_seq as i64));
        args.push(Box::new(upto_seq as i64));
        args.push(Box::new(i64::from(limit)));
        self.read(|conn| {
            let mut stmt = conn.prepare_cached(&format!(
                "SELECT {ROW}, seq FROM anomalies WHERE {clause} AND seq > ? AND seq <= ? ORDER BY seq LIMIT ?"
            ))?;
            let mut rows = stmt.query(params_from_iter(args.iter().map(|a| a.as_ref())))?;
            let mut anomalies = Vec::new();
            while let Some(row) = rows.next()? {
                anomalies.push((row.get::<_, i64>(6)? as u64, row_to_value(row)?));
            }
            Ok(Since {
                read_to: read_to(&anomalies, limit, upto_seq),
                records: anomalies,
            })
        })
    }

    fn last_aggregate_seq(&self) -> u64 {
        self.last_aggregate_seq.load(Ordering::Acquire)
    }

    fn aggregates_since(&self, after_seq: u64, upto_seq: u64, limit: u32) -> Result<Since<StoredAggregate>, String> {
        self.read(|conn| {
            let mut stmt = conn.prepare_cached(
                "SELECT seq, dimension, key, width_ms, end_ms, requests, errors, prompt_tokens, completion_tokens,
                        total_tokens, cost, latency_mean_ms, latency_p95_ms, latency_p99_ms
                 FROM aggregates WHERE seq > ?1 AND seq <= ?2 ORDER BY seq LIMIT ?3",
            )?;
            let records = stmt
                .query_map(params![after_seq as i64, upto_seq as i64, i64::from(limit)], |r| {
                    Ok((
                        r.get::<_, i64>(0)? as u64,
                        StoredAggregate {
                            dimension: r.get(1)?,
                            key: r.get(2)?,
                            width_ms: r.get::<_, i64>(3)? as u64,
                            end_ms: r.get::<_, i64>(4)? as u64,
                            requests: r.get::<_, i64>(5)? as u64,
                            errors: r.get::<_, i64>(6)? as u64,
                            prompt_tokens: r.get::<_, i64>(7)? as u64,
                            completion_tokens: r.get::<_, i64>(8)? as u64,
                            total_tokens: r.get::<_, i64>(9)? as u64,
                            cost: r.get(10)?,
                            latency_mean_ms: r.get(11)?,
                            latency_p95_ms: r.get(12)?,
                            latency_p99_ms: r.get(13)?,
                        },
                    ))
                })?
                .collect::<rusqlite::Result<Vec<_>>>()?;
            Ok(Since {
                read_to: read_to(&records, limit, upto_seq),
                records,
            })
        })
    }

    fn add_aggregates(&self, records: Vec<Vec<u8>>) -> Result<Added, String> {
        self.write(|conn| {
            let tx = conn.transaction()?;
            let mut kept = 0;
            // Only the writer moves it, under the writer's lock.
            let mut seq = self.last_aggregate_seq.load(Ordering::Acquire);
            {
                let mut insert = tx.prepare_cached(
                    "INSERT OR REPLACE INTO aggregates (id, dimension, key, width_ms, end_ms, requests, errors, prompt_tokens,
                         completion_tokens, total_tokens, cost, latency_mean_ms, latency_p95_ms, latency_p99_ms, seq)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15)",
                )?;
                for bytes in &records {
                    let Ok(a) = serde_json::from_slice::<AggregateRecord>(bytes) else {
                        tracing::warn!("store: skipping a record that is not an aggregate");
                        continue;
                    };
                    if a.dimension == sentinel_dataflows::window::Dimension::User {
                        continue;
                    }
                    let end = parse_rfc3339_ms(&a.window_end).unwrap_or(0);
                    insert.execute(params![
                        a.id,
                        a.dimension.as_str(),
                        a.key,
                        a.width_ms as i64,
                        end as i64,
                        a.requests,
                        a.errors,
                        a.prompt_tokens as i64,
                        a.completion_tokens as i64,
                        a.total_tokens as i64,
                        a.cost,
                        a.latency_mean_ms,
                        a.latency_p95_ms,
                        a.latency_p99_ms,
                        (seq + 1) as i64,
                    ])?;
                    seq += 1;
                    kept += 1;
                }
            }
            // Aggregates follow the anomalies' retention by age.
            if let Some(age) = self.options.retain_ms {
                tx.execute(
                    "DELETE FROM aggregates WHERE end_ms < (SELECT MAX(end_ms) FROM aggregates) - ?1",
                    params![age as i64],
                )?;
            }
            tx.commit()?;
            self.last_aggregate_seq.store(seq, Ordering::Release);
            Ok(Added {
                new: kept,
                last_seq: seq,
            })
        })
    }

    fn aggregate_series(&self, q: &AggregateQuery) -> Result<Vec<KeySeries>, String> {
        use crate::metrics::Aggregation;
        let column = match q.column {
            AggregateColumn::Cost => "cost",
            AggregateColumn::Requests => "requests",
            AggregateColumn::Errors => "errors",
            AggregateColumn::ErrorRate => "errors",
            AggregateColumn::Tokens => "total_tokens",
            AggregateColumn::PromptTokens => "prompt_tokens",
            AggregateColumn::CompletionTokens => "completion_tokens",
            AggregateColumn::LatencyMean => "latency_mean_ms",
            AggregateColumn::LatencyP95 => "latency_p95_ms",
            AggregateColumn::LatencyP99 => "latency_p99_ms",
        };
        let value = match (q.column, q.aggregation) {
            (AggregateColumn::ErrorRate, _) => "CAST(SUM(errors) AS REAL) / NULLIF(SUM(requests), 0)".to_owned(),
            (_, Aggregation::Avg) => format!("AVG({column})"),
            (_, Aggregation::Sum) => format!("SUM({column})"),
            (_, Aggregation::Min) => format!("MIN({column})"),
            (_, Aggregation::Max) => format!("MAX({column})"),
            (_, Aggregation::Count) => format!("CAST(COUNT({column}) AS REAL)"),
        };
        let bucket_ms = q.bucket_ms.max(1) as i64;
        self.read(|conn| {
            let width: Option<i64> = conn
                .prepare_cached("SELECT MIN(width_ms) FROM aggregates WHERE dimension = ?1")?
                .query_row(params![q.dimension], |r| r.get(0))?;
            let Some(width) = width else {
                return Ok(Vec::new());
            };
            let mut sql = format!(
                "SELECT key, (end_ms - 1 - ?1) / ?2 AS bucket, {value} FROM aggregates
                 WHERE dimension = ?3 AND width_ms = ?4 AND end_ms > ?1 AND end_ms <= ?5"
            );
            let mut args: Vec<Box<dyn ToSql>> = vec![
                Box::new(q.start_ms as i64),
                Box::new(bucket_ms),
                Box::new(q.dimension.clone()),
                Box::new(width),
                Box::new(q.end_ms as i64),
            ];
            if !q.keys.is_empty() {
                sql.push_str(&format!(" AND key IN ({})", vec!["?"; q.keys.len()].join(", ")));
                args.extend(q.keys.iter().map(|k| Box::new(k.clone()) as Box<dyn ToSql>));
            }
            sql.push_str(" GROUP BY key, bucket ORDER BY key, bucket");
            let mut stmt = conn.prepare_cached(&sql)?;
            let mut rows = stmt.query(params_from_iter(args.iter().map(|a| a.as_ref())))?;
            let mut series: Vec<KeySeries> = Vec::new();
            while let Some(r) = rows.next()? {
                let key: String = r.get(0)?;
                let bucket: i64 = r.get(1)?;
                let Some(value) = r.get::<_, Option<f64>>(2)? else {
                    continue;
                };
                if series.last().is_none_or(|s| s.key != key) {
                    series.push(KeySeries {
                        key,
                        points: Vec::new(),
                    });
                }
                let at = q.start_ms + (bucket.max(0) as u64) * bucket_ms as u64;
                series.last_mut().expect("pushed above").points.push((at, value));
            }
            Ok(series)
        })
    }

    fn anomaly_buckets(&self, start_ms: u64, end_ms: u64, bucket_ms: u64) -> Result<Vec<AnomalyBucket>, String> {
        let bucket_ms = bucket_ms.max(1);
        let rows: Vec<(u64, Option<u64>)> = self.read(|conn| {
            let mut stmt = conn.prepare_cached(
                "SELECT ts_ms, stored_at_ms - ts_ms FROM anomalies WHERE ts_ms >= ?1 AND ts_ms < ?2 ORDER BY ts_ms",
            )?;
            let rows = stmt
                .query_map(params![start_ms as i64, end_ms as i64], |r| {
                    Ok((
                        r.get::<_, i64>(0)? as u64,
                        r.get::<_, Option<i64>>(1)?.map(|l| l.max(0) as u64),
                    ))
                })?
                .collect::<rusqlite::Result<Vec<_>>>()?;
            Ok(rows)
        })?;
        let mut buckets: Vec<AnomalyBucket> = Vec::new();
        let mut latencies: Vec<u64> = Vec::new();
        let close = |bucket: &mut AnomalyBucket, latencies: &mut Vec<u64>| {
            bucket.detection_latency_p99_ms = percentile(latencies, 0.99);
            latencies.clear();
        };
        for (ts, latency) in rows {
            let start = start_ms + (ts - start_ms) / bucket_ms * bucket_ms;
            if buckets.last().is_none_or(|b| b.start_ms != start) {
                if let Some(b) = buckets.last_mut() {
                    close(b, &mut latencies);
                }
                buckets.push(AnomalyBucket {
                    start_ms: start,
                    count: 0,
                    detection_latency_p99_ms: None,
                });
            }
            let b = buckets.last_mut().expect("pushed above");
            b.count += 1;
            latencies.extend(latency);
        }
        if let Some(b) = buckets.last_mut() {
            close(b, &mut latencies);
        }
        Ok(buckets)
    }

    fn statistics(&self, start_ms: u64, end_ms: u64, group_by: &[GroupBy]) -> Result<Statistics, String> {
        let summary = self
            .facets
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .summary(start_ms, end_ms, group_by);
        // Resolved anomalies are few: a partial index holds them.
        let mttr: Option<f64> = self.read(|conn| {
            conn.prepare_cached(
                "SELECT AVG(resolved_at_ms - ts_ms) / 1000.0 FROM anomalies
                 WHERE ts_ms >= ?1 AND ts_ms < ?2 AND resolved_at_ms IS NOT NULL",
            )?
            .query_row(params![start_ms as i64, end_ms as i64], |r| r.get(0))
        })?;
        Ok(Statistics {
            total_anomalies: summary.total,
            average_score: summary.average_score,
            groups: summary.groups,
            mttr_seconds: mttr,
            top_entities: summary.top_entities,
        })
    }

    fn add_alerts(&self, records: Vec<Vec<u8>>) -> Result<u64, String> {
        self.write(|conn| {
            let tx = conn.transaction()?;
            let mut kept = 0;
            {
                let mut insert = tx.prepare_cached(
                    "INSERT OR REPLACE INTO alerts (id, ts_ms, status, severity, detector_id, receivers, record)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
                )?;
                for bytes in &records {
                    let Ok(alert) = serde_json::from_slice::<AlertRecord>(bytes) else {
                        tracing::warn!("store: skipping a record that is not an alert");
                        continue;
                    };
                    let status = match alert.status {
                        sentinel_dataflows::act::AlertStatus::Firing => "firing",
                        sentinel_dataflows::act::AlertStatus::Resolved => "resolved",
                    };
                    // Receivers between commas, so one is found by `LIKE '%,name,%'`.
                    let receivers = format!(",{},", alert.receivers.join(","));
                    insert.execute(params![
                        alert.id.to_string(),
                        parse_rfc3339_ms(&alert.timestamp).unwrap_or(0) as i64,
                        status,
                        alert.severity.as_str(),
                        alert.detector_id,
                        receivers,
                        String::from_utf8_lossy(bytes),
                    ])?;
                    kept += 1;
                }
            }
            // Alerts follow the anomalies' retention by age.
            if let Some(age) = self.options.retain_ms {
                tx.execute(
                    "DELETE FROM alerts WHERE ts_ms < (SELECT MAX(ts_ms) FROM alerts) - ?1",
                    params![age as i64],
                )?;
            }
            tx.commit()?;
            Ok(kept)
        })
    }

    fn alerts(&self, filter: &AlertFilter, offset: u64, limit: u32) -> Result<AlertPage, String> {
        let mut clause = String::from("ts_ms >= ? AND ts_ms < ?");
        let mut args: Vec<Box<dyn ToSql>> = vec![Box::new(filter.start_ms as i64), Box::new(filter.end_ms as i64)];
        for (column, values) in [
            ("status", &filter.statuses),
            ("severity", &filter.severities),
            ("detector_id", &filter.detectors),
        ] {
            if !values.is_empty() {
                clause.push_str(&format!(" AND {column} IN ({})", vec!["?"; values.len()].join(", ")));
                args.extend(values.iter().map(|v| Box::new(v.clone()) as Box<dyn ToSql>));
            }
        }
        if !filter.receivers.is_empty() {
            let any: Vec<&str> = filter
                .receivers
                .iter()
                .map(|_| "receivers LIKE ? ESCAPE '\\'")
                .collect();
            clause.push_str(&format!(" AND ({})", any.join(" OR ")));
            args.extend(filter.receivers.iter().map(|r| {
                let escaped = r.replace('\\', "\\\\").replace('%', "\\%").replace('_', "\\_");
                Box::new(format!("%,{escaped},%")) as Box<dyn ToSql>
            }));
        }
        self.read(|conn| {
            let (total, alerts) = newest_records(conn, "alerts", &clause, args, offset, limit)?;
            Ok(AlertPage { alerts, total })
        })
    }

    fn add_outcomes(&self, kind: OutcomeKind, records: Vec<Vec<u8>>) -> Result<u64, String> {
        let keep = OutcomeRetention {
            age_ms: self.options.retain_ms,
            count: self.options.retain_count,
            decisions: self.options.decisions,
        };
        self.write(|conn| {
            let tx = conn.transaction()?;
            let kept = outcomes::add(&tx, kind, &records, keep, wall_clock_ms())?;
            tx.commit()?;
            Ok(kept)
        })
    }

    fn outcomes(
        &self,
        kind: OutcomeKind,
        filter: &OutcomeFilter,
        offset: u64,
        limit: u32,
    ) -> Result<OutcomePage, String> {
        self.read(|conn| outcomes::page(conn, kind, filter, offset, limit))
    }

    fn status(&self, anomaly_id: &str) -> Result<Option<Status>, String> {
        self.read(|conn| status_of(conn, anomaly_id))
    }

    fn apply(&self, events: &[LifecycleEvent]) -> Result<Vec<Applied>, String> {
        self.write(|conn| {
            let tx = conn.transaction()?;
            let mut waiting = self.waiting.load(Ordering::Acquire) as i64;
            let outcomes = events
                .iter()
                .map(|e| apply_one(&tx, e, &mut waiting))
                .collect::<rusqlite::Result<Vec<_>>>()?;
            if waiting > MAX_WAITING {
                waiting -= tx.execute(
                    "DELETE FROM waiting_events WHERE seq IN (SELECT seq FROM waiting_events ORDER BY seq DESC LIMIT -1 OFFSET ?1)",
                    params![MAX_WAITING],
                )? as i64;
            }
            tx.commit()?;
            self.waiting.store(waiting.max(0) as u64, Ordering::Release);
            Ok(outcomes)
        })
    }

    fn positions(&self) -> Result<Vec<(String, i32, i64)>, String> {
        self.read(|conn| {
            conn.prepare_cached("SELECT topic, partition, next_offset FROM positions ORDER BY topic, partition")?
                .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?
                .collect()
        })
    }

    fn save_positions(&self, positions: &[(String, i32, i64)]) -> Result<(), String> {
        self.write(|conn| {
            let tx = conn.transaction()?;
            {
                let mut upsert = tx.prepare_cached(
                    "INSERT INTO positions (topic, partition, next_offset) VALUES (?1, ?2, ?3)
                     ON CONFLICT (topic, partition) DO UPDATE SET next_offset = MAX(next_offset, excluded.next_offset)",
                )?;
                for (topic, partition, next) in positions {
                    upsert.execute(params![topic, partition, next])?;
                }
            }
            tx.commit()
        })
    }

    fn audit(&self, anomaly_id: &str) -> Result<Vec<LifecycleEvent>, String> {
        self.read(|conn| {
            let mut stmt = conn.prepare_cached("SELECT event FROM audit WHERE anomaly_id = ?1 ORDER BY seq")?;
            let rows = stmt
                .query_map(params![anomaly_id], |r| r.get::<_, String>(0))?
                .collect::<rusqlite::Result<Vec<_>>>()?;
            Ok(rows.iter().filter_map(|e| serde_json::from_str(e).ok()).collect())
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use sentinel_dataflows::model::Severity;

    const T0: u64 = 1_717_200_000_000;

    fn anomaly(i: u64, detector: &str, severity: Severity, app: &str) -> Vec<u8> {
        let score = 0.5 + (i % 5) as f64 / 10.0;
        let id: &[&[u8]] = &[detector.as_bytes(), app.as_bytes(), &i.to_le_bytes()];
        serde_json::to_vec(&Anomaly::sample(id, detector, severity, score, app, T0 + i * 60_000)).unwrap()
    }

    fn store(dir: &tempfile::TempDir) -> SqliteStore {
        SqliteStore::open(StoreOptions::at(dir.path().join("store.db"))).unwrap()
    }

    fn filter() -> AnomalyFilter {
        AnomalyFilter {
            end_ms: u64::MAX >> 1,
            ..AnomalyFilter::default()
        }
    }

    fn alert(i: u64, status: sentinel_dataflows::act::AlertStatus, receivers: &[&str]) -> Vec<u8> {
        use sentinel_dataflows::act::{AlertRecord, NotifyReason};
        use sentinel_dataflows::hash::StableId;
        serde_json::to_vec(&AlertRecord {
            id: StableId::of(&[b"alert", &i.to_le_bytes()]),
            group_key: format!("group-{}", i % 2),
            sequence: i as u32,
            reason: NotifyReason::New,
            status,
            severity: if i.is_multiple_of(2) {
                Severity::Critical
            } else {
                Severity::Warning
            },
            title: format!("alert {i}"),
            receivers: receivers.iter().map(|r| (*r).to_owned()).collect(),
            detector_id: "cost-spike".into(),
            entities: Vec::new(),
            firing: vec![format!("an-{i}")],
            resolved: Vec::new(),
            timestamp: format_rfc3339_ms(T0 + i * 60_000),
        })
        .unwrap()
    }

    #[test]
    fn alerts_are_kept_once_each_and_filtered_by_time_status_severity_and_receiver() {
        use sentinel_dataflows::act::AlertStatus::{Firing, Resolved};
        let dir = tempfile::tempdir().unwrap();
        let s = store(&dir);
        let records: Vec<Vec<u8>> = (0..10u64)
            .map(|i| {
                let status = if i < 8 { Firing } else { Resolved };
                let receivers: &[&str] = if i.is_multiple_of(3) {
                    &["ops", "sec_team"]
                } else {
                    &["ops"]
                };
                alert(i, status, receivers)
            })
            .collect();
        assert_eq!(s.add_alerts(records.clone()).unwrap(), 10);
        // A copy (a re-read topic) replaces its row.
        assert_eq!(s.add_alerts(records[..3].to_vec()).unwrap(), 3);
        let all = AlertFilter {
            end_ms: u64::MAX >> 1,
            ..AlertFilter::default()
        };
        let page = s.alerts(&all, 0, 4).unwrap();
        assert_eq!(page.total, 10);
        let titles: Vec<&str> = page.alerts.iter().map(|a| a["title"].as_str().unwrap()).collect();
        assert_eq!(titles, ["alert 9", "alert 8", "alert 7", "alert 6"], "newest first");
        assert_eq!(s.alerts(&all, 8, 4).unwrap().alerts.len(), 2, "the last page");
        let count = |f: AlertFilter| s.alerts(&f, 0, 100).unwrap().total;
        assert_eq!(
            count(AlertFilter {
                statuses: vec!["resolved".into()],
                ..all.clone()
            }),
            2
        );
        assert_eq!(
            count(AlertFilter {
                severities: vec!["critical".into()],
                ..all.clone()
            }),
            5
        );
        assert_eq!(
            count(AlertFilter {
                receivers: vec!["sec_team".into()],
                ..all.clone()
            }),
            4,
            "0, 3, 6, 9"
        );
        // `_` is a receiver's character, not a wildcard.
        assert_eq!(
            count(AlertFilter {
                receivers: vec!["sec_tea_".into()],
                ..all.clone()
            }),
            0
        );
        assert_eq!(
            count(AlertFilter {
                start_ms: T0 + 2 * 60_000,
                end_ms: T0 + 5 * 60_000,
                ..all.clone()
            }),
            3,
            "minutes 2, 3 and 4"
        );
        assert_eq!(s.add_alerts(vec![b"not an alert".to_vec()]).unwrap(), 0);
    }

    #[test]
    fn copies_are_stored_once_and_pages_cover_every_match_once() {
        let dir = tempfile::tempdir().unwrap();
        let s = store(&dir);
        let records: Vec<Vec<u8>> = (0..50u64)
            .map(|i| {
                let (det, sev) = if i.is_multiple_of(3) {
                    ("cost-spike", Severity::Critical)
                } else {
                    ("error-burst", Severity::Warning)
                };
                anomaly(i, det, sev, if i.is_multiple_of(2) { "chat" } else { "search" })
            })
            .collect();
        assert_eq!(
            s.add_anomalies(records.clone()).unwrap(),
            Added { new: 50, last_seq: 50 }
        );
        assert_eq!(
            s.add_anomalies(records[..10].to_vec()).unwrap(),
            Added { new: 0, last_seq: 50 },
            "copies add nothing and take no arrival number"
        );

        let mut f = filter();
        f.severities = vec!["critical".into()];
        let mut seen = Vec::new();
        let mut at = PageAt::Offset(0);
        loop {
            let page = s.anomalies(&f, &at, 7).unwrap();
            assert_eq!(page.total, 17);
            seen.extend(page.anomalies.iter().map(|a| a["id"].as_str().unwrap().to_owned()));
            match page.next_cursor {
                Some(c) => at = PageAt::After(c),
                None => break,
            }
        }
        assert_eq!(seen.len(), 17);
        let distinct: std::collections::BTreeSet<_> = seen.iter().collect();
        assert_eq!(distinct.len(), 17, "no anomaly on two pages");

        // In arrival order, page by page, as a subscriber reads: every match once, in order.
        let mut arrived = Vec::new();
        let mut after = 0;
        while after < s.last_seq() {
            let since = s.since(after, s.last_seq(), &f, 5).unwrap();
            assert!(since.read_to > after, "each read moves on");
            arrived.extend(
                since
                    .records
                    .iter()
                    .map(|(seq, a)| (*seq, a["id"].as_str().unwrap().to_owned())),
            );
            after = since.read_to;
        }
        assert_eq!(arrived.len(), 17);
        assert!(arrived.windows(2).all(|w| w[0].0 < w[1].0), "oldest first");
        let arrived_ids: std::collections::BTreeSet<_> = arrived.iter().map(|(_, id)| id).collect();
        assert_eq!(arrived_ids, distinct, "the same anomalies as the pages");
        let one = s.since(0, 1, &filter(), 10).unwrap();
        assert_eq!((one.records.len(), one.read_to), (1, 1), "bounded above by upto_seq");

        f.applications = vec!["chat".into()];
        f.start_ms = T0 + 10 * 60_000;
        f.end_ms = T0 + 20 * 60_000;
        let page = s.anomalies(&f, &PageAt::Offset(0), 100).unwrap();
        // i in 10..20, i % 3 == 0 and even: 12, 18.
        assert_eq!(page.total, 2);
        assert!(page.anomalies[0]["timestamp"].as_str().unwrap() > page.anomalies[1]["timestamp"].as_str().unwrap());
    }

    fn first_id(s: &SqliteStore) -> String {
        s.anomalies(&filter(), &PageAt::Offset(0), 1).unwrap().anomalies[0]["id"]
            .as_str()
            .unwrap()
            .to_owned()
    }

    fn person(id: &str, change: Change, by: &str, note: Option<&str>, at_ms: u64) -> LifecycleEvent {
        LifecycleEvent::by_person(id, change, Status::Active, by, note.map(str::to_owned), at_ms)
    }

    #[test]
    fn lifecycle_events_are_checked_audited_once_and_counted_in_mttr() {
        let dir = tempfile::tempdir().unwrap();
        let s = store(&dir);
        s.add_anomalies(vec![anomaly(1, "cost-spike", Severity::Critical, "chat")])
            .unwrap();
        let id = first_id(&s);
        let detected = T0 + 60_000;
        let ack = person(&id, Change::Acknowledge, "ana", Some("looking"), detected + 30_000);
        let late_ack = person(&id, Change::Acknowledge, "bo", None, detected + 40_000);
        let resolve = person(&id, Change::Resolve, "bo", None, detected + 120_000);
        let outcomes = s.apply(&[ack.clone(), late_ack, resolve.clone(), ack.clone()]).unwrap();
        assert_eq!(outcomes[0], Applied::Changed(ack.clone()));
        assert_eq!(
            outcomes[1],
            Applied::Refused(crate::lifecycle::Refused::Transition {
                from: Status::Acknowledged,
                to: Status::Acknowledged
            })
        );
        // Resolved from acknowledged, whatever the writer saw.
        assert_eq!(
            outcomes[2],
            Applied::Changed(resolve.applied_from(Status::Acknowledged))
        );
        assert_eq!(outcomes[3], Applied::Duplicate, "an event read twice applies once");
        let stored = s.anomaly(&id).unwrap().unwrap();
        assert_eq!(stored["status"], "resolved");
        assert_eq!(stored["acknowledged_by"], "ana");
        assert_eq!(stored["note"], "looking");
        // A copy from the stream keeps the lifecycle.
        s.add_anomalies(vec![anomaly(1, "cost-spike", Severity::Critical, "chat")])
            .unwrap();
        assert_eq!(s.anomaly(&id).unwrap().unwrap()["status"], "resolved");
        let trail = s.audit(&id).unwrap();
        assert_eq!(trail.len(), 2);
        assert_eq!((trail[1].from, trail[1].to), (Status::Acknowledged, Status::Resolved));
        let stats = s.statistics(0, u64::MAX >> 1, &[GroupBy::Detector]).unwrap();
        assert_eq!(stats.mttr_seconds, Some(120.0));
        // The audit table refuses edits.
        let w = s.writer.lock().unwrap();
        assert!(w.execute("DELETE FROM audit", []).is_err());
    }

    #[test]
    fn an_event_read_before_its_anomaly_waits_for_it_across_a_reopen() {
        let dir = tempfile::tempdir().unwrap();
        let record = anomaly(1, "cost-spike", Severity::Critical, "chat");
        let id = serde_json::from_slice::<Anomaly>(&record).unwrap().id;
        let ack = person(&id, Change::Acknowledge, "ana", None, T0 + 90_000);
        {
            let s = store(&dir);
            assert_eq!(s.apply(std::slice::from_ref(&ack)).unwrap(), [Applied::Waiting]);
            assert_eq!(s.status(&id).unwrap(), None);
        }
        let s = store(&dir);
        s.add_anomalies(vec![record]).unwrap();
        assert_eq!(s.status(&id).unwrap(), Some(Status::Acknowledged));
        assert_eq!(s.apply(&[ack]).unwrap(), [Applied::Duplicate]);
        assert_eq!(s.audit(&id).unwrap().len(), 1);
    }

    #[test]
    fn a_job_resolution_ends_every_anomaly_of_its_condition() {
        let dir = tempfile::tempdir().unwrap();
        let s = store(&dir);
        // 0, 2, 4 are cost-spike on chat; 1 is on search; 6 is after the condition.
        let records: Vec<Vec<u8>> = [0u64, 1, 2, 4, 6]
            .iter()
            .map(|&i| {
                anomaly(
                    i,
                    "cost-spike",
                    Severity::Critical,
                    if i == 1 { "search" } else { "chat" },
                )
            })
            .collect();
        let ids: Vec<String> = records
            .iter()
            .map(|r| serde_json::from_slice::<Anomaly>(r).unwrap().id)
            .collect();
        s.add_anomalies(records).unwrap();
        s.apply(&[person(&ids[2], Change::Acknowledge, "ana", None, T0)])
            .unwrap();
        let scope = crate::lifecycle::ConditionScope {
            detector_id: "cost-spike".into(),
            entity: "application:chat".into(),
            from_ms: T0,
            through_ms: T0 + 4 * 60_000,
        };
        let resolution = LifecycleEvent::resolved_by_job(&ids[0], scope, T0 + 10 * 60_000);
        assert!(matches!(s.apply(&[resolution]).unwrap()[..], [Applied::Changed(_)]));
        let status = |i: usize| s.status(&ids[i]).unwrap().unwrap();
        assert_eq!(
            [status(0), status(1), status(2), status(3), status(4)],
            [
                Status::Resolved,
                Status::Active,
                Status::Resolved,
                Status::Resolved,
                Status::Active
            ]
        );
        let trail = s.audit(&ids[2]).unwrap();
        assert_eq!(trail.len(), 2);
        assert_eq!(
            (trail[1].from, trail[1].by.as_str()),
            (Status::Acknowledged, "sentinel")
        );
    }

    #[test]
    fn positions_only_move_forward() {
        let dir = tempfile::tempdir().unwrap();
        let s = store(&dir);
        s.save_positions(&[("t".into(), 0, 10), ("t".into(), 1, 4)]).unwrap();
        s.save_positions(&[("t".into(), 0, 7)]).unwrap();
        assert_eq!(s.positions().unwrap(), [("t".into(), 0, 10), ("t".into(), 1, 4)]);
    }

    #[test]
    fn statistics_group_and_retention_keeps_the_newest() {
        let dir = tempfile::tempdir().unwrap();
        let mut options = StoreOptions::at(dir.path().join("store.db"));
        options.retain_count = Some(30);
        let s = SqliteStore::open(options).unwrap();
        let records: Vec<Vec<u8>> = (0..40u64)
            .map(|i| {
                let sev = if i.is_multiple_of(4) {
                    Severity::Critical
                } else {
                    Severity::Warning
                };
                anomaly(i, "cost-spike", sev, "chat")
            })
            .collect();
        s.add_anomalies(records).unwrap();
        let stats = s
            .statistics(0, u64::MAX >> 1, &[GroupBy::Detector, GroupBy::Severity])
            .unwrap();
        assert_eq!(stats.total_anomalies, 30, "the 10 oldest are gone");
        let counts: Vec<(Vec<String>, u64)> = stats.groups.iter().map(|g| (g.key.clone(), g.count)).collect();
        // i in 10..40: critical when i % 4 == 0 (12, 16, ..., 36: 7 of them).
        assert_eq!(
            counts,
            [
                (vec!["cost-spike".to_owned(), "warning".to_owned()], 23),
                (vec!["cost-spike".to_owned(), "critical".to_owned()], 7)
            ]
        );
        assert_eq!(stats.top_entities, [("application:chat".to_owned(), 30)]);
        // Reopened, the store reads its facets back from the table.
        drop(s);
        let reopened = SqliteStore::open(StoreOptions::at(dir.path().join("store.db"))).unwrap();
        let again = reopened
            .statistics(0, u64::MAX >> 1, &[GroupBy::Detector, GroupBy::Severity])
            .unwrap();
        assert_eq!(again, stats);
    }
}
