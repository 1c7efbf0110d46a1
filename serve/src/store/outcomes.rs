//! The job's other outcomes, kept beside the anomalies so that one anomaly can be shown with
//! what was done about it, and one request with why it was let through or stopped: Shield
//! actions, incident requests, decisions and judge verdicts. One table holds them all, one row
//! per record, with the fields each kind is looked up by pulled out into columns.

use rusqlite::{params, Connection, ToSql};
use serde_json::Value;

use sentinel_dataflows::act::{IncidentOp, IncidentRecord, ShieldRecord};
use sentinel_dataflows::model::{Decision, JudgementRecord, Tier};
use sentinel_dataflows::time::parse_rfc3339_ms;

/// What an outcome record is: which of the job's streams it came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum OutcomeKind {
    /// `sentinel.actions`: a Shield block, rate limit or unblock.
    Action,
    /// `sentinel.incidents`: an incident create, comment or resolve request.
    Incident,
    /// `sentinel.decisions`: the verdict on one request.
    Decision,
    /// `sentinel.judgements`: one judge's analysis of an escalated request.
    Judgement,
}

impl OutcomeKind {
    /// Every kind.
    pub const ALL: [OutcomeKind; 4] = [
        OutcomeKind::Action,
        OutcomeKind::Incident,
        OutcomeKind::Decision,
        OutcomeKind::Judgement,
    ];

    /// The name stored in the table.
    pub fn as_str(self) -> &'static str {
        match self {
            OutcomeKind::Action => "action",
            OutcomeKind::Incident => "incident",
            OutcomeKind::Decision => "decision",
            OutcomeKind::Judgement => "judgement",
        }
    }

    /// The plural an API lists them under (`actions`, ...).
    pub fn plural(self) -> &'static str {
        match self {
            OutcomeKind::Action => "actions",
            OutcomeKind::Incident => "incidents",
            OutcomeKind::Decision => "decisions",
            OutcomeKind::Judgement => "judgements",
        }
    }

    /// The query parameter that filters by the kind's label, and the values it takes:
    /// an action's `type`, an incident request's `op`, a decision's `tier`, a judgement's `agent`.
    pub fn label(self) -> (&'static str, &'static [&'static str]) {
        match self {
            OutcomeKind::Action => ("type", &["block", "rate_limit", "unblock"]),
            OutcomeKind::Incident => ("op", &["create", "comment", "resolve"]),
            OutcomeKind::Decision => ("tier", &["allow", "warn", "escalate", "block"]),
            OutcomeKind::Judgement => ("agent", &["shadow_input", "shadow_state", "shadow_output"]),
        }
    }

    /// What a record of the kind is about, as the query parameter and the column that find it:
    /// the anomaly behind an action or incident request, the event of a decision or judgement.
    pub fn about(self) -> &'static str {
        match self {
            OutcomeKind::Action | OutcomeKind::Incident => "anomaly_id",
            OutcomeKind::Decision | OutcomeKind::Judgement => "event_id",
        }
    }

    /// The query parameter that filters by the kind's subject, if it has one: an action's
    /// `target` entity, an incident's `entity` (both `type:id`), a decision's `application_id`.
    pub fn subject(self) -> Option<&'static str> {
        match self {
            OutcomeKind::Action => Some("target"),
            OutcomeKind::Incident => Some("entity"),
            OutcomeKind::Decision => Some("application_id"),
            OutcomeKind::Judgement => None,
        }
    }
}

/// Which decisions the store keeps. There is one decision per request, far more than a
/// single SQLite writer takes at the job's rate, and those that let a request through
/// unflagged say little: by default only the others are kept.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum KeptDecisions {
    /// Decisions at the warn, escalate or block tier.
    #[default]
    Flagged,
    /// Every decision.
    All,
    /// None.
    None,
}

impl KeptDecisions {
    /// Whether a decision at `tier` is kept.
    pub fn keeps(self, tier: Tier) -> bool {
        match self {
            KeptDecisions::Flagged => tier != Tier::Allow,
            KeptDecisions::All => true,
            KeptDecisions::None => false,
        }
    }
}

/// Filters of an outcome query. Empty lists and `None` match everything.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct OutcomeFilter {
    /// Record time from (inclusive), ms.
    pub start_ms: u64,
    /// Record time to (exclusive), ms.
    pub end_ms: u64,
    /// Only those about this anomaly or event (see [`OutcomeKind::about`]).
    pub about: Option<String>,
    /// Subjects (see [`OutcomeKind::subject`]).
    pub subjects: Vec<String>,
    /// Labels (see [`OutcomeKind::label`]).
    pub labels: Vec<String>,
}

/// One page of outcome records, newest first.
#[derive(Clone, Debug, PartialEq)]
pub struct OutcomePage {
    /// The records as the job wrote them.
    pub records: Vec<Value>,
    /// How many match in all.
    pub total: u64,
}

/// The columns one record is found by.
#[derive(Clone, Debug, PartialEq)]
pub(super) struct OutcomeRow {
    id: String,
    ts_ms: u64,
    anomaly_id: Option<String>,
    event_id: Option<String>,
    subject: Option<String>,
    label: &'static str,
}

impl OutcomeRow {
    /// Reads a record of `kind`. A judgement carries no time of its own: it is stamped
    /// `now_ms`, when it was stored.
    pub(super) fn of(kind: OutcomeKind, bytes: &[u8], now_ms: u64) -> Result<(OutcomeRow, Option<Tier>), String> {
        let time = |text: &str| parse_rfc3339_ms(text).ok_or_else(|| format!("`{text}` is not an RFC 3339 time"));
        let not_a = |e: serde_json::Error| format!("not a {} record: {e}", kind.as_str());
        Ok(match kind {
            OutcomeKind::Action => {
                let r: ShieldRecord = serde_json::from_slice(bytes).map_err(not_a)?;
                let row = OutcomeRow {
                    id: r.delivery_id.to_string(),
                    ts_ms: time(&r.timestamp)?,
                    anomaly_id: Some(r.anomaly_id),
                    event_id: None,
                    subject: Some(r.target_entity),
                    label: r.action.as_str(),
                };
                (row, None)
            }
            OutcomeKind::Incident => {
                let r: IncidentRecord = serde_json::from_slice(bytes).map_err(not_a)?;
                let label = match r.op {
                    IncidentOp::Create { .. } => "create",
                    IncidentOp::Comment { .. } => "comment",
                    IncidentOp::Resolve { .. } => "resolve",
                };
                let row = OutcomeRow {
                    id: r.id.to_string(),
                    ts_ms: time(&r.timestamp)?,
                    anomaly_id: Some(r.anomaly_id),
                    event_id: None,
                    subject: Some(r.entity),
                    label,
                };
                (row, None)
            }
            OutcomeKind::Decision => {
                let d: Decision = serde_json::from_slice(bytes).map_err(not_a)?;
                let row = OutcomeRow {
                    id: d.id.to_string(),
                    ts_ms: d.timestamp_ms,
                    anomaly_id: None,
                    event_id: Some(d.event_id().to_owned()),
                    subject: Some(d.application_id().to_owned()),
                    label: d.tier.as_str(),
                };
                (row, Some(d.tier))
            }
            OutcomeKind::Judgement => {
                let j: JudgementRecord = serde_json::from_slice(bytes).map_err(not_a)?;
                let row = OutcomeRow {
                    id: j.key,
                    ts_ms: now_ms,
                    anomaly_id: None,
                    event_id: Some(j.event_id),
                    subject: None,
                    label: j.analysis.agent_type.as_str(),
                };
                (row, None)
            }
        })
    }
}

/// The table, created with the store's schema.
pub(super) const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS outcomes (
    kind TEXT NOT NULL,
    id TEXT NOT NULL,
    ts_ms INTEGER NOT NULL,
    anomaly_id TEXT,
    event_id TEXT,
    subject TEXT,
    label TEXT NOT NULL,
    record TEXT NOT NULL,
    PRIMARY KEY (kind, id)
);
CREATE INDEX IF NOT EXISTS outcomes_ts ON outcomes (kind, ts_ms, id);
CREATE INDEX IF NOT EXISTS outcomes_anomaly ON outcomes (anomaly_id, kind) WHERE anomaly_id IS NOT NULL;
CREATE INDEX IF NOT EXISTS outcomes_event ON outcomes (event_id, kind) WHERE event_id IS NOT NULL;
";

/// What the store keeps of each kind.
#[derive(Clone, Copy, Debug, Default)]
pub(super) struct OutcomeRetention {
    /// Records older than this (ms, against the kind's newest) are dropped.
    pub age_ms: Option<u64>,
    /// At most this many of each kind are kept; the oldest go first.
    pub count: Option<u64>,
    /// Which decisions are kept at all.
    pub decisions: KeptDecisions,
}

/// Stores `records` of `kind` in `conn`'s open transaction: a copy of one stored replaces it.
/// Returns how many were kept; one that is not of the kind is skipped and logged.
pub(super) fn add(
    conn: &Connection,
    kind: OutcomeKind,
    records: &[Vec<u8>],
    keep: OutcomeRetention,
    now_ms: u64,
) -> rusqlite::Result<u64> {
    let mut kept = 0;
    {
        let mut insert = conn.prepare_cached(
            "INSERT OR REPLACE INTO outcomes (kind, id, ts_ms, anomaly_id, event_id, subject, label, record)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
        )?;
        for bytes in records {
            let (row, tier) = match OutcomeRow::of(kind, bytes, now_ms) {
                Ok(read) => read,
                Err(e) => {
                    tracing::warn!(kind = kind.as_str(), error = %e, "store: skipping a record");
                    continue;
                }
            };
            if tier.is_some_and(|t| !keep.decisions.keeps(t)) {
                continue;
            }
            insert.execute(params![
                kind.as_str(),
                row.id,
                row.ts_ms.min(i64::MAX as u64) as i64,
                row.anomaly_id,
                row.event_id,
                row.subject,
                row.label,
                String::from_utf8_lossy(bytes),
            ])?;
            kept += 1;
        }
    }
    if let Some(age) = keep.age_ms {
        conn.execute(
            "DELETE FROM outcomes WHERE kind = ?1
             AND ts_ms < (SELECT MAX(ts_ms) FROM outcomes WHERE kind = ?1) - ?2",
            params![kind.as_str(), age.min(i64::MAX as u64) as i64],
        )?;
    }
    if let Some(count) = keep.count {
        conn.execute(
            "DELETE FROM outcomes WHERE kind = ?1 AND id IN
             (SELECT id FROM outcomes WHERE kind = ?1 ORDER BY ts_ms DESC, id DESC LIMIT -1 OFFSET ?2)",
            params![kind.as_str(), count.min(i64::MAX as u64) as i64],
        )?;
    }
    Ok(kept)
}

/// A page of `kind`'s records matching `filter`, newest first, skipping `offset`.
pub(super) fn page(
    conn: &Connection,
    kind: OutcomeKind,
    filter: &OutcomeFilter,
    offset: u64,
    limit: u32,
) -> rusqlite::Result<OutcomePage> {
    let mut clause = String::from("kind = ? AND ts_ms >= ? AND ts_ms < ?");
    let mut args: Vec<Box<dyn ToSql>> = vec![
        Box::new(kind.as_str()),
        Box::new(filter.start_ms.min(i64::MAX as u64) as i64),
        Box::new(filter.end_ms.min(i64::MAX as u64) as i64),
    ];
    if let Some(about) = &filter.about {
        clause.push_str(&format!(" AND {} = ?", kind.about()));
        args.push(Box::new(about.clone()));
    }
    for (column, values) in [("subject", &filter.subjects), ("label", &filter.labels)] {
        if !values.is_empty() {
            clause.push_str(&format!(" AND {column} IN ({})", vec!["?"; values.len()].join(", ")));
            args.extend(values.iter().map(|v| Box::new(v.clone()) as Box<dyn ToSql>));
        }
    }
    let (total, records) = super::sqlite::newest_records(conn, "outcomes", &clause, args, offset, limit)?;
    Ok(OutcomePage { records, total })
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::store::{SqliteStore, Store, StoreOptions};

    const T0: u64 = 1_717_200_000_000;

    fn at(ms: u64) -> String {
        sentinel_dataflows::time::format_rfc3339_ms(ms)
    }

    fn action(i: u64, anomaly: &str, kind: &str) -> Vec<u8> {
        serde_json::to_vec(&json!({
            "action_id": format!("{:032x}", i), "delivery_id": format!("{:032x}", 1000 + i),
            "type": kind, "target_entity": format!("application:app-{}", i % 2),
            "reason": "cost spike", "duration_seconds": 600, "parameters": {"limit": "100"},
            "anomaly_id": anomaly, "detector_id": "cost-spike", "timestamp": at(T0 + i * 60_000),
        }))
        .unwrap()
    }

    fn incident(i: u64, anomaly: &str) -> Vec<u8> {
        serde_json::to_vec(&json!({
            "id": format!("{:032x}", 2000 + i), "incident_key": format!("{:032x}", 7),
            "entity": "application:app-0", "anomaly_id": anomaly, "detector_id": "cost-spike",
            "op": {"comment": {"text": "a related anomaly joined"}}, "timestamp": at(T0 + i * 60_000),
        }))
        .unwrap()
    }

    fn decision(i: u64, tier: Tier) -> Vec<u8> {
        let d = Decision::sample(&format!("evt-{i}"), &format!("app-{}", i % 2), tier, T0 + i * 1_000);
        serde_json::to_vec(&d).unwrap()
    }

    /// A judge's verdict on `event` by `agent`, in the journal's shape.
    fn judgement(event: &str, agent: &str) -> Vec<u8> {
        let mut record: Value = serde_json::from_str(include_str!("../../tests/judgement.json")).unwrap();
        record["key"] = json!(format!("{event}|{agent}"));
        record["event_id"] = json!(event);
        record["analysis"]["agent_type"] = json!(agent);
        serde_json::to_vec(&record).unwrap()
    }

    fn store(dir: &tempfile::TempDir, change: impl FnOnce(&mut StoreOptions)) -> SqliteStore {
        let mut options = StoreOptions::at(dir.path().join("s.db"));
        change(&mut options);
        SqliteStore::open(options).unwrap()
    }

    fn everything() -> OutcomeFilter {
        OutcomeFilter {
            end_ms: u64::MAX >> 1,
            ..OutcomeFilter::default()
        }
    }

    fn ids(page: &OutcomePage, field: &str) -> Vec<String> {
        page.records
            .iter()
            .map(|r| r[field].as_str().unwrap().to_owned())
            .collect()
    }

    #[test]
    fn each_kind_is_kept_once_and_found_by_what_it_is_about() {
        let dir = tempfile::tempdir().unwrap();
        let s = store(&dir, |_| {});
        let actions: Vec<Vec<u8>> = (0..6)
            .map(|i| {
                action(
                    i,
                    if i < 4 { "anom-a" } else { "anom-b" },
                    if i == 3 { "unblock" } else { "block" },
                )
            })
            .collect();
        assert_eq!(s.add_outcomes(OutcomeKind::Action, actions.clone()).unwrap(), 6);
        // A re-read topic stores nothing twice.
        assert_eq!(s.add_outcomes(OutcomeKind::Action, actions).unwrap(), 6);
        let all = s.outcomes(OutcomeKind::Action, &everything(), 0, 100).unwrap();
        assert_eq!(all.total, 6);
        // Newest first.
        assert_eq!(all.records[0]["delivery_id"], format!("{:032x}", 1005));
        let of_a = OutcomeFilter {
            about: Some("anom-a".into()),
            ..everything()
        };
        assert_eq!(s.outcomes(OutcomeKind::Action, &of_a, 0, 100).unwrap().total, 4);
        let unblocks = OutcomeFilter {
            labels: vec!["unblock".into()],
            ..of_a.clone()
        };
        assert_eq!(
            ids(
                &s.outcomes(OutcomeKind::Action, &unblocks, 0, 100).unwrap(),
                "action_id"
            ),
            [format!("{:032x}", 3)]
        );
        let on_app_1 = OutcomeFilter {
            subjects: vec!["application:app-1".into()],
            start_ms: T0 + 2 * 60_000,
            ..everything()
        };
        assert_eq!(
            ids(
                &s.outcomes(OutcomeKind::Action, &on_app_1, 0, 100).unwrap(),
                "delivery_id"
            ),
            [format!("{:032x}", 1005), format!("{:032x}", 1003)]
        );
        // Pages by offset cover each once.
        let second = s.outcomes(OutcomeKind::Action, &everything(), 4, 4).unwrap();
        assert_eq!((second.total, second.records.len()), (6, 2));

        s.add_outcomes(
            OutcomeKind::Incident,
            vec![incident(0, "anom-a"), incident(1, "anom-b")],
        )
        .unwrap();
        assert_eq!(s.outcomes(OutcomeKind::Incident, &of_a, 0, 100).unwrap().total, 1);
        // Kinds do not mix: anom-a's incident requests are not its actions.
        assert_eq!(
            s.outcomes(OutcomeKind::Incident, &everything(), 0, 100).unwrap().total,
            2
        );

        s.add_outcomes(
            OutcomeKind::Judgement,
            vec![
                judgement("evt-1", "shadow_input"),
                judgement("evt-1", "shadow_output"),
                judgement("evt-2", "shadow_input"),
            ],
        )
        .unwrap();
        let of_evt_1 = OutcomeFilter {
            about: Some("evt-1".into()),
            ..everything()
        };
        assert_eq!(s.outcomes(OutcomeKind::Judgement, &of_evt_1, 0, 10).unwrap().total, 2);
        // A record of another kind, or not JSON at all, is skipped, and the rest kept.
        assert_eq!(
            s.add_outcomes(
                OutcomeKind::Judgement,
                vec![
                    b"{oops".to_vec(),
                    action(9, "x", "block"),
                    judgement("evt-3", "shadow_state")
                ]
            )
            .unwrap(),
            1
        );
    }

    #[test]
    fn decisions_that_let_a_request_through_are_kept_only_when_asked() {
        use Tier::{Allow, Block, Escalate, Warn};
        let tiers = [Allow, Warn, Allow, Escalate, Block, Allow];
        let records: Vec<Vec<u8>> = tiers.iter().enumerate().map(|(i, t)| decision(i as u64, *t)).collect();
        for (kept, want) in [
            (KeptDecisions::Flagged, vec!["evt-4", "evt-3", "evt-1"]),
            (
                KeptDecisions::All,
                vec!["evt-5", "evt-4", "evt-3", "evt-2", "evt-1", "evt-0"],
            ),
            (KeptDecisions::None, vec![]),
        ] {
            let dir = tempfile::tempdir().unwrap();
            let s = store(&dir, |o| o.decisions = kept);
            assert_eq!(
                s.add_outcomes(OutcomeKind::Decision, records.clone()).unwrap(),
                want.len() as u64,
                "{kept:?}"
            );
            let page = s.outcomes(OutcomeKind::Decision, &everything(), 0, 100).unwrap();
            assert_eq!(ids(&page, "event_id"), want, "{kept:?}");
        }
        let dir = tempfile::tempdir().unwrap();
        let s = store(&dir, |_| {});
        s.add_outcomes(OutcomeKind::Decision, records).unwrap();
        let blocked_on_app_0 = OutcomeFilter {
            labels: vec!["block".into(), "escalate".into()],
            subjects: vec!["app-0".into()],
            ..everything()
        };
        let page = s.outcomes(OutcomeKind::Decision, &blocked_on_app_0, 0, 100).unwrap();
        assert_eq!(ids(&page, "event_id"), ["evt-4"]);
    }

    #[test]
    fn retention_keeps_the_newest_of_each_kind() {
        let dir = tempfile::tempdir().unwrap();
        let s = store(&dir, |o| {
            o.retain_count = Some(3);
            o.retain_ms = Some(10 * 60_000);
        });
        // Twenty minutes of actions: the age limit keeps the last ten minutes' eleven, the
        // count limit the newest three.
        s.add_outcomes(OutcomeKind::Action, (0..20).map(|i| action(i, "a", "block")).collect())
            .unwrap();
        let page = s.outcomes(OutcomeKind::Action, &everything(), 0, 100).unwrap();
        assert_eq!(
            ids(&page, "delivery_id"),
            [1019, 1018, 1017].map(|i| format!("{i:032x}"))
        );
        // Another kind's limit is its own.
        s.add_outcomes(OutcomeKind::Incident, (0..2).map(|i| incident(i, "a")).collect())
            .unwrap();
        assert_eq!(
            s.outcomes(OutcomeKind::Incident, &everything(), 0, 100).unwrap().total,
            2
        );
        assert_eq!(s.outcomes(OutcomeKind::Action, &everything(), 0, 100).unwrap().total, 3);
    }
}
