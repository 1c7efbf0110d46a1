//! The anomaly record written to `sentinel.anomalies`. Field names follow the integration seed.

use serde::{Deserialize, Serialize};

use crate::hash::stable_id;
use crate::time::format_rfc3339_ms;

/// Kind of detector that raised an anomaly.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DetectorType {
    /// Baseline deviation on a windowed metric.
    Statistical,
    /// A pattern or threshold rule.
    Rule,
    /// A learned model.
    Ml,
    /// Per-session or per-user behaviour.
    Behavioral,
}

impl DetectorType {
    /// The name in records (`statistical`).
    pub fn as_str(self) -> &'static str {
        match self {
            DetectorType::Statistical => "statistical",
            DetectorType::Rule => "rule",
            DetectorType::Ml => "ml",
            DetectorType::Behavioral => "behavioral",
        }
    }
}

/// How urgent an anomaly is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Severity {
    /// Worth recording.
    Info,
    /// Worth a look.
    Warning,
    /// Act now.
    Critical,
}

impl Severity {
    /// Wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            Severity::Info => "info",
            Severity::Warning => "warning",
            Severity::Critical => "critical",
        }
    }
}

/// The entity an anomaly is about.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AffectedEntity {
    /// `application`, `model`, `tenant` or `user`.
    #[serde(rename = "type")]
    pub entity_type: String,
    /// Entity id.
    pub id: String,
    /// Display name (the id, until an entity table exists).
    pub name: String,
}

/// What was measured against what.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct AnomalyMetrics {
    /// Baseline centre (mean or median).
    pub baseline_value: f64,
    /// Value in this window.
    pub observed_value: f64,
    /// Deviation in baseline units (σ, or scaled MAD).
    pub deviation: f64,
    /// Configured deviation threshold.
    pub threshold: f64,
}

/// The window and events behind an anomaly.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct AnomalyContext {
    /// Window start, RFC 3339.
    pub window_start: String,
    /// Window end (exclusive), RFC 3339.
    pub window_end: String,
    /// A few event ids from the window, earliest first.
    pub sample_events: Vec<String>,
}

/// One detected anomaly. `id` is a hash of detector, entity and window, so replays re-emit the same id.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Anomaly {
    /// Deterministic id.
    pub id: String,
    /// Event time of the detection (the window end), RFC 3339.
    pub timestamp: String,
    /// Configured detector id.
    pub detector_id: String,
    /// Detector kind.
    pub detector_type: DetectorType,
    /// Severity from the configured bands.
    pub severity: Severity,
    /// Confidence in 0..1.
    pub score: f64,
    /// Lifecycle status; Sentinel emits `active`.
    pub status: String,
    /// One-line summary.
    pub title: String,
    /// Longer explanation with the figures.
    pub description: String,
    /// What the anomaly is about.
    pub affected_entity: AffectedEntity,
    /// Baseline against observation.
    pub metrics: AnomalyMetrics,
    /// Window and samples.
    pub context: AnomalyContext,
    /// Actions the planner took, each with its status (filled by the actions stage).
    pub actions_taken: Vec<ActionTaken>,
    /// Ids of anomalies on the same entity close in time (filled by the actions stage).
    pub related_anomalies: Vec<String>,
    /// The incident this anomaly belongs to: Sentinel's incident key, which the incident
    /// manager's own id is mapped to in the action statuses.
    #[serde(default)]
    pub incident_id: Option<String>,
}

/// The kinds of action, as written in `actions_taken` and the action statuses.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum ActionKind {
    /// Shield blocks the target.
    #[serde(rename = "shield.block")]
    ShieldBlock,
    /// Shield rate-limits the target.
    #[serde(rename = "shield.rate_limit")]
    ShieldRateLimit,
    /// Shield lifts an earlier block or rate limit.
    #[serde(rename = "shield.unblock")]
    ShieldUnblock,
    /// A notification to receivers.
    #[serde(rename = "alert")]
    Alert,
    /// A new incident.
    #[serde(rename = "incident.create")]
    IncidentCreate,
    /// A comment on the entity's open incident.
    #[serde(rename = "incident.comment")]
    IncidentComment,
    /// The incident resolved.
    #[serde(rename = "incident.resolve")]
    IncidentResolve,
    /// A webhook call.
    #[serde(rename = "webhook")]
    Webhook,
    /// Shield's report on an action this delivery has not seen (planned before its outbox
    /// position, or by another instance).
    #[serde(rename = "shield.report")]
    ShieldReport,
}

impl ActionKind {
    /// The wire name, as serialized.
    pub fn as_str(self) -> &'static str {
        match self {
            ActionKind::ShieldBlock => "shield.block",
            ActionKind::ShieldRateLimit => "shield.rate_limit",
            ActionKind::ShieldUnblock => "shield.unblock",
            ActionKind::Alert => "alert",
            ActionKind::IncidentCreate => "incident.create",
            ActionKind::IncidentComment => "incident.comment",
            ActionKind::IncidentResolve => "incident.resolve",
            ActionKind::Webhook => "webhook",
            ActionKind::ShieldReport => "shield.report",
        }
    }
}

/// What the planner did with one configured action of an anomaly.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TakenStatus {
    /// Planned: its record is in the action's stream, to be delivered.
    Planned,
    /// The anomaly's condition was already acted on (the same block, the same alert group):
    /// nothing new is sent.
    Grouped,
    /// Held back by a silence or an inhibiting alert.
    Suppressed,
    /// Not applicable to this anomaly.
    Skipped,
}

impl TakenStatus {
    /// The wire name, as serialized.
    pub fn as_str(self) -> &'static str {
        match self {
            TakenStatus::Planned => "planned",
            TakenStatus::Grouped => "grouped",
            TakenStatus::Suppressed => "suppressed",
            TakenStatus::Skipped => "skipped",
        }
    }
}

/// One action the planner took for an anomaly.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ActionTaken {
    /// The action's id: the idempotency key its deliveries carry.
    pub action_id: String,
    /// What it is.
    pub action: ActionKind,
    /// What the planner did with it; what its delivery did is in the action statuses.
    pub status: TakenStatus,
    /// Why it was suppressed or skipped.
    #[serde(default)]
    pub reason: Option<String>,
}

/// What differs between detectors' anomalies; [`Anomaly::build`] fills in the rest the same
/// way for every detector kind (id, times, status, empty action lists).
#[derive(Clone, Debug)]
pub struct AnomalyDraft<'a> {
    /// Hashed into the id: what makes this detection unique (detector, entity, window or
    /// event), so a replay re-emits the same id.
    pub id_parts: &'a [&'a [u8]],
    /// Configured detector id.
    pub detector_id: &'a str,
    /// Detector kind.
    pub detector_type: DetectorType,
    /// Severity.
    pub severity: Severity,
    /// Confidence in 0..1.
    pub score: f64,
    /// One-line summary.
    pub title: String,
    /// Longer explanation with the figures.
    pub description: String,
    /// What it is about.
    pub entity: AffectedEntity,
    /// Baseline against observation.
    pub metrics: AnomalyMetrics,
    /// Event time of the detection, ms.
    pub at_ms: u64,
    /// The window behind it, ms: `[start, end)`.
    pub window_ms: (u64, u64),
    /// A few event ids behind it.
    pub sample_events: Vec<String>,
}

impl Anomaly {
    /// A made-up statistical anomaly, for tests and benchmarks: `detector` on application
    /// `app`, detected at `at_ms` over the minute before, observed 5.0 against a baseline of
    /// 1.0. `id_parts` make its id.
    ///
    /// ```
    /// use sentinel_dataflows::model::{Anomaly, Severity};
    /// let a = Anomaly::sample(&[b"7"], "cost-spike", Severity::Critical, 0.9, "chat", 1_700_000_000_000);
    /// assert_eq!(a.affected_entity.id, "chat");
    /// assert_eq!(a.context.window_start, "2023-11-14T22:12:20.000Z");
    /// ```
    pub fn sample(
        id_parts: &[&[u8]],
        detector: &str,
        severity: Severity,
        score: f64,
        app: &str,
        at_ms: u64,
    ) -> Anomaly {
        Anomaly::build(AnomalyDraft {
            id_parts,
            detector_id: detector,
            detector_type: DetectorType::Statistical,
            severity,
            score,
            title: format!("{detector} on {app}"),
            description: String::new(),
            entity: AffectedEntity {
                entity_type: "application".into(),
                id: app.into(),
                name: app.into(),
            },
            metrics: AnomalyMetrics {
                baseline_value: 1.0,
                observed_value: 5.0,
                deviation: 4.0,
                threshold: 3.0,
            },
            at_ms,
            window_ms: (at_ms.saturating_sub(60_000), at_ms),
            sample_events: vec![],
        })
    }

    /// The one way every detector builds its anomaly record.
    ///
    /// ```
    /// use sentinel_dataflows::model::{AffectedEntity, Anomaly, AnomalyDraft, AnomalyMetrics, DetectorType, Severity};
    /// let entity = AffectedEntity { entity_type: "user".into(), id: "u1".into(), name: "u1".into() };
    /// let draft = |score| AnomalyDraft {
    ///     id_parts: &[b"agent-loop", b"u1", b"e9"], detector_id: "agent-loop",
    ///     detector_type: DetectorType::Behavioral, severity: Severity::Critical, score,
    ///     title: "agent loop".into(), description: "the same call 4 times".into(), entity: entity.clone(),
    ///     metrics: AnomalyMetrics { baseline_value: 0.0, observed_value: 4.0, deviation: 0.0, threshold: 4.0 },
    ///     at_ms: 1_700_000_000_000, window_ms: (1_700_000_000_000, 1_700_000_000_001), sample_events: vec!["e9".into()],
    /// };
    /// let (a, b) = (Anomaly::build(draft(0.8)), Anomaly::build(draft(0.9)));
    /// assert_eq!(a.id, b.id, "the id names the detection, not its score");
    /// assert_eq!(a.timestamp, "2023-11-14T22:13:20.000Z");
    /// assert_eq!(a.status, "active");
    /// ```
    pub fn build(draft: AnomalyDraft<'_>) -> Anomaly {
        Anomaly {
            id: stable_id(draft.id_parts),
            timestamp: format_rfc3339_ms(draft.at_ms),
            detector_id: draft.detector_id.to_owned(),
            detector_type: draft.detector_type,
            severity: draft.severity,
            score: draft.score,
            status: "active".into(),
            title: draft.title,
            description: draft.description,
            affected_entity: draft.entity,
            metrics: draft.metrics,
            context: AnomalyContext {
                window_start: format_rfc3339_ms(draft.window_ms.0),
                window_end: format_rfc3339_ms(draft.window_ms.1),
                sample_events: draft.sample_events,
            },
            actions_taken: Vec::new(),
            related_anomalies: Vec::new(),
            incident_id: None,
        }
    }
}
