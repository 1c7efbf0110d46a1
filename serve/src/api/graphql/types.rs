//! The GraphQL schema's types, as the seed's schema.graphql names them.

use async_graphql::{
    ComplexObject, Context, Enum, InputObject, InputValueError, InputValueResult, Scalar, ScalarType, SimpleObject, ID,
};
use serde::Deserialize;
use serde_json::Value;

use super::Shared;
use crate::api::rest::blocking;
use crate::lifecycle::Status;
use crate::store::AnomalyFilter;
use sentinel_dataflows::model::Anomaly as AnomalyRecord;
use sentinel_dataflows::time::{format_rfc3339_ms, parse_rfc3339_ms};

/// An instant, written and read as RFC 3339 (`2024-06-01T12:00:00.000Z`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DateTime(pub u64);

#[Scalar]
impl ScalarType for DateTime {
    fn parse(value: async_graphql::Value) -> InputValueResult<Self> {
        match &value {
            async_graphql::Value::String(text) => parse_rfc3339_ms(text)
                .map(DateTime)
                .ok_or_else(|| InputValueError::custom(format!("`{text}` is not an RFC 3339 time"))),
            _ => Err(InputValueError::expected_type(value)),
        }
    }

    fn to_value(&self) -> async_graphql::Value {
        async_graphql::Value::String(format_rfc3339_ms(self.0))
    }
}

impl DateTime {
    /// From an RFC 3339 time.
    pub fn of(text: &str) -> Option<DateTime> {
        parse_rfc3339_ms(text).map(DateTime)
    }
}

/// How urgent an anomaly is.
#[derive(Enum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum Severity {
    /// Worth recording.
    Info,
    /// Worth a look.
    Warning,
    /// Act now.
    Critical,
}

impl Severity {
    /// The record's severity.
    pub fn of(s: sentinel_dataflows::model::Severity) -> Severity {
        use sentinel_dataflows::model::Severity as S;
        match s {
            S::Info => Severity::Info,
            S::Warning => Severity::Warning,
            S::Critical => Severity::Critical,
        }
    }

    /// From the store's name.
    pub fn parse(s: &str) -> Option<Severity> {
        match s {
            "info" => Some(Severity::Info),
            "warning" => Some(Severity::Warning),
            "critical" => Some(Severity::Critical),
            _ => None,
        }
    }

    /// The store's name.
    pub fn as_str(self) -> &'static str {
        match self {
            Severity::Info => "info",
            Severity::Warning => "warning",
            Severity::Critical => "critical",
        }
    }
}

/// Where an anomaly is in its lifecycle.
#[derive(Enum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum AnomalyStatus {
    /// Detected, nobody on it yet.
    Active,
    /// Somebody is on it.
    Acknowledged,
    /// Over.
    Resolved,
    /// Silenced.
    Suppressed,
}

impl From<Status> for AnomalyStatus {
    fn from(s: Status) -> Self {
        match s {
            Status::Active => AnomalyStatus::Active,
            Status::Acknowledged => AnomalyStatus::Acknowledged,
            Status::Resolved => AnomalyStatus::Resolved,
            Status::Suppressed => AnomalyStatus::Suppressed,
        }
    }
}

impl From<AnomalyStatus> for Status {
    fn from(s: AnomalyStatus) -> Self {
        match s {
            AnomalyStatus::Active => Status::Active,
            AnomalyStatus::Acknowledged => Status::Acknowledged,
            AnomalyStatus::Resolved => Status::Resolved,
            AnomalyStatus::Suppressed => Status::Suppressed,
        }
    }
}

/// Which kind of detector raised an anomaly.
#[derive(Enum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum DetectorType {
    /// Baseline deviation.
    Statistical,
    /// A pattern or threshold rule.
    Rule,
    /// A learned model.
    Ml,
    /// Per-session or per-user behaviour.
    Behavioral,
}

impl DetectorType {
    /// From the job's kind.
    pub fn of(t: sentinel_dataflows::model::DetectorType) -> DetectorType {
        use sentinel_dataflows::model::DetectorType as T;
        match t {
            T::Statistical => DetectorType::Statistical,
            T::Rule => DetectorType::Rule,
            T::Ml => DetectorType::Ml,
            T::Behavioral => DetectorType::Behavioral,
        }
    }

    /// From the name in records and in `/api/v1/detectors`.
    pub fn parse(s: &str) -> Option<DetectorType> {
        serde_json::from_value(Value::String(s.to_owned()))
            .ok()
            .map(DetectorType::of)
    }
}

/// Which anomalies: every list empty or absent matches all.
#[derive(InputObject, Clone, Debug, Default)]
#[graphql(name = "AnomalyFilter")]
pub struct AnomalyFilterInput {
    /// Detector ids.
    pub detector_ids: Option<Vec<String>>,
    /// Severities.
    pub severities: Option<Vec<Severity>>,
    /// Lifecycle statuses.
    pub statuses: Option<Vec<AnomalyStatus>>,
    /// Applications (anomalies on the application itself).
    pub application_ids: Option<Vec<String>>,
    /// Least score.
    pub score_min: Option<f64>,
    /// Greatest score.
    pub score_max: Option<f64>,
}

#[derive(InputObject, Clone, Copy, Debug)]
/// `[start, end)`.
pub struct TimeRange {
    /// From (inclusive).
    pub start: DateTime,
    /// To (exclusive).
    pub end: DateTime,
}

/// Which page.
#[derive(InputObject, Clone, Debug)]
pub struct Pagination {
    /// Rows at most (1 to 1,000).
    #[graphql(default = 100)]
    pub limit: i32,
    /// Rows skipped.
    #[graphql(default = 0)]
    pub offset: i32,
    /// After this cursor (a page's `endCursor`), instead of an offset: stable while anomalies arrive.
    pub after: Option<String>,
}

impl AnomalyFilterInput {
    /// The store's filter over `range` (all time without one).
    pub fn to_store(&self, range: Option<TimeRange>) -> AnomalyFilter {
        AnomalyFilter {
            start_ms: range.map_or(0, |r| r.start.0),
            end_ms: range.map_or(u64::MAX >> 1, |r| r.end.0),
            severities: self
                .severities
                .iter()
                .flatten()
                .map(|s| s.as_str().to_owned())
                .collect(),
            statuses: self.statuses.iter().flatten().map(|s| Status::from(*s)).collect(),
            applications: self.application_ids.clone().unwrap_or_default(),
            detectors: self.detector_ids.clone().unwrap_or_default(),
            score_min: self.score_min,
            score_max: self.score_max,
        }
    }
}

/// An anomaly as stored: the job's record and its lifecycle fields.
#[derive(Clone, Debug, Deserialize)]
pub struct StoredAnomaly {
    #[serde(flatten)]
    record: AnomalyRecord,
    #[serde(default)]
    acknowledged_by: Option<String>,
    #[serde(default)]
    acknowledged_at: Option<String>,
    #[serde(default)]
    note: Option<String>,
    #[serde(default)]
    resolved_at: Option<String>,
}

/// What an anomaly is about.
#[derive(SimpleObject, Clone, Debug)]
pub struct Entity {
    /// `application`, `model`, `tenant` or `user`.
    #[graphql(name = "type")]
    pub entity_type: String,
    /// Its id.
    pub id: String,
    /// Its display name.
    pub name: String,
}

impl Entity {
    /// The record's entity.
    pub fn of(e: sentinel_dataflows::model::AffectedEntity) -> Entity {
        Entity {
            entity_type: e.entity_type,
            id: e.id,
            name: e.name,
        }
    }
}

/// Baseline against observation.
#[derive(SimpleObject, Clone, Debug)]
pub struct AnomalyMetrics {
    /// Baseline centre.
    pub baseline_value: f64,
    /// Value observed.
    pub observed_value: f64,
    /// Deviation in baseline units.
    pub deviation: f64,
    /// The configured threshold.
    pub threshold: f64,
}

/// The window and events behind an anomaly.
#[derive(SimpleObject, Clone, Debug)]
pub struct AnomalyContext {
    /// Window start.
    pub window_start: Option<DateTime>,
    /// Window end (exclusive).
    pub window_end: Option<DateTime>,
    /// A few event ids from the window.
    pub sample_events: Vec<String>,
}

/// An action the job planned for an anomaly.
#[derive(SimpleObject, Clone, Debug)]
pub struct ActionTaken {
    /// The action's id (its deliveries' idempotency key).
    pub action_id: String,
    /// `shield.block`, `alert.notify`, ...
    pub action: String,
    /// What the planner did with it.
    pub status: String,
    /// Why it was suppressed or skipped.
    pub reason: Option<String>,
}

/// One anomaly.
#[derive(SimpleObject, Clone, Debug)]
#[graphql(complex, name = "Anomaly")]
pub struct AnomalyNode {
    /// Deterministic id.
    pub id: ID,
    /// Detection time (the window's end, in event time).
    pub timestamp: DateTime,
    /// Configured detector id.
    pub detector_id: String,
    /// Detector kind.
    pub detector_type: DetectorType,
    /// Severity.
    pub severity: Severity,
    /// Confidence in 0..1.
    pub score: f64,
    /// Lifecycle status.
    pub status: AnomalyStatus,
    /// One line.
    pub title: String,
    /// With the figures.
    pub description: String,
    /// What it is about.
    pub affected_entity: Entity,
    /// Baseline against observation.
    pub metrics: AnomalyMetrics,
    /// Window and samples.
    pub context: AnomalyContext,
    /// Actions planned.
    pub actions_taken: Vec<ActionTaken>,
    /// The incident it belongs to.
    pub incident_id: Option<String>,
    /// Who acknowledged it.
    pub acknowledged_by: Option<String>,
    /// When.
    pub acknowledged_at: Option<DateTime>,
    /// The last note given with a change.
    pub note: Option<String>,
    /// When it was resolved.
    pub resolved_at: Option<DateTime>,
    #[graphql(skip)]
    related: Vec<String>,
}

#[ComplexObject]
impl AnomalyNode {
    /// Anomalies on the same entity close in time, as far as the store still holds them.
    async fn related_anomalies(&self, ctx: &Context<'_>) -> async_graphql::Result<Vec<AnomalyNode>> {
        let shared = ctx.data::<Shared>()?;
        let ids = self.related.clone();
        let found = blocking(&shared.api.store, move |s| {
            ids.iter().map(|id| s.anomaly(id)).collect::<Result<Vec<_>, _>>()
        })
        .await
        .map_err(super::gql_error)?;
        Ok(found
            .into_iter()
            .flatten()
            .filter_map(AnomalyNode::from_value)
            .collect())
    }
}

impl AnomalyNode {
    /// From the store's JSON; `None` if it is not an anomaly.
    pub fn from_value(value: Value) -> Option<AnomalyNode> {
        let stored: StoredAnomaly = serde_json::from_value(value).ok()?;
        let a = stored.record;
        let status = Status::parse(&a.status).unwrap_or(Status::Active);
        Some(AnomalyNode {
            id: ID(a.id),
            timestamp: DateTime::of(&a.timestamp).unwrap_or(DateTime(0)),
            detector_id: a.detector_id,
            detector_type: DetectorType::of(a.detector_type),
            severity: Severity::of(a.severity),
            score: a.score,
            status: status.into(),
            title: a.title,
            description: a.description,
            affected_entity: Entity::of(a.affected_entity),
            metrics: AnomalyMetrics {
                baseline_value: a.metrics.baseline_value,
                observed_value: a.metrics.observed_value,
                deviation: a.metrics.deviation,
                threshold: a.metrics.threshold,
            },
            context: AnomalyContext {
                window_start: DateTime::of(&a.context.window_start),
                window_end: DateTime::of(&a.context.window_end),
                sample_events: a.context.sample_events,
            },
            actions_taken: a
                .actions_taken
                .into_iter()
                .map(|t| ActionTaken {
                    action_id: t.action_id,
                    action: t.action.as_str().to_owned(),
                    status: t.status.as_str().to_owned(),
                    reason: t.reason,
                })
                .collect(),
            incident_id: a.incident_id,
            acknowledged_by: stored.acknowledged_by,
            acknowledged_at: stored.acknowledged_at.as_deref().and_then(DateTime::of),
            note: stored.note,
            resolved_at: stored.resolved_at.as_deref().and_then(DateTime::of),
            related: a.related_anomalies,
        })
    }
}

/// One edge of a connection.
#[derive(SimpleObject, Clone, Debug)]
pub struct AnomalyEdge {
    /// The anomaly.
    pub node: AnomalyNode,
    /// Its position, for `Pagination.after`.
    pub cursor: String,
}

/// Where a page ends.
#[derive(SimpleObject, Clone, Debug)]
pub struct PageInfo {
    /// Whether more match.
    pub has_next_page: bool,
    /// Pass as `Pagination.after` for the next page.
    pub end_cursor: Option<String>,
}

/// A page of anomalies, newest first.
#[derive(SimpleObject, Clone, Debug)]
pub struct AnomalyConnection {
    /// The anomalies.
    pub edges: Vec<AnomalyEdge>,
    /// Where the page ends.
    pub page_info: PageInfo,
    /// How many match in all.
    pub total_count: i64,
}

/// A detector's count.
#[derive(SimpleObject, Clone, Debug)]
pub struct DetectorStats {
    /// Detector id.
    pub detector_id: String,
    /// Anomalies.
    pub count: i64,
    /// Their mean score.
    pub average_score: f64,
}

/// A severity's count.
#[derive(SimpleObject, Clone, Debug)]
pub struct SeverityStats {
    /// Severity.
    pub severity: Severity,
    /// Anomalies.
    pub count: i64,
    /// Their mean score.
    pub average_score: f64,
}

/// An application's count.
#[derive(SimpleObject, Clone, Debug)]
pub struct ApplicationStats {
    /// Application id (empty: anomalies on users, tenants or models).
    pub application_id: String,
    /// Anomalies.
    pub count: i64,
    /// Their mean score.
    pub average_score: f64,
}

/// An entity's count.
#[derive(SimpleObject, Clone, Debug)]
pub struct EntityStats {
    /// `type:id`.
    pub entity: String,
    /// Anomalies.
    pub count: i64,
}

/// Figures over a time range.
#[derive(SimpleObject, Clone, Debug)]
pub struct Statistics {
    /// Anomalies in the range.
    pub total_anomalies: i64,
    /// By detector, most first.
    pub anomalies_by_detector: Vec<DetectorStats>,
    /// By severity, most first.
    pub anomalies_by_severity: Vec<SeverityStats>,
    /// By application, most first.
    pub anomalies_by_application: Vec<ApplicationStats>,
    /// The ten entities with the most.
    pub top_affected_entities: Vec<EntityStats>,
    /// Anomalies per hour over the range.
    pub detection_rate: f64,
    /// Mean score.
    pub average_score: f64,
    /// Mean time from detection to resolution, in seconds, of those resolved.
    pub mttr: Option<f64>,
}

/// A configured detector.
#[derive(SimpleObject, Clone, Debug)]
pub struct Detector {
    /// Its id.
    pub id: String,
    /// Its name.
    pub name: String,
    /// Its kind.
    #[graphql(name = "type")]
    pub detector_type: Option<DetectorType>,
    /// Whether it runs.
    pub enabled: bool,
    /// Actions configured on it.
    pub actions: i64,
}

impl Detector {
    /// From an entry of `/api/v1/detectors`.
    pub fn from_value(v: &Value) -> Detector {
        let text = |k: &str| v[k].as_str().unwrap_or_default().to_owned();
        Detector {
            id: text("id"),
            name: text("name"),
            detector_type: v["type"].as_str().and_then(DetectorType::parse),
            enabled: v["enabled"].as_bool().unwrap_or(true),
            actions: v["actions"].as_i64().unwrap_or(0),
        }
    }
}

/// Which detectors.
#[derive(InputObject, Clone, Debug, Default)]
pub struct DetectorFilter {
    /// These ids.
    pub ids: Option<Vec<String>>,
    /// These kinds.
    pub types: Option<Vec<DetectorType>>,
    /// Enabled or not.
    pub enabled: Option<bool>,
}

/// What `testDetector` found.
#[derive(SimpleObject, Clone, Debug)]
pub struct DetectorTestResult {
    /// The detector tested.
    pub detector_id: String,
    /// Events in the test data.
    pub events_tested: i64,
    /// The anomalies it raised, as the job would.
    pub anomalies: Vec<AnomalyNode>,
    /// Whether it raised any.
    pub detected: bool,
    /// How long the test run took, ms.
    pub duration_ms: f64,
}

/// How values within a bucket combine.
#[derive(Enum, Clone, Copy, Debug, PartialEq, Eq)]
#[graphql(name = "Aggregation")]
pub enum AggregationInput {
    /// Mean.
    Avg,
    /// Sum.
    Sum,
    /// Least.
    Min,
    /// Greatest.
    Max,
    /// How many.
    Count,
}

impl AggregationInput {
    /// The query model's name.
    pub fn as_str(self) -> &'static str {
        match self {
            AggregationInput::Avg => "avg",
            AggregationInput::Sum => "sum",
            AggregationInput::Min => "min",
            AggregationInput::Max => "max",
            AggregationInput::Count => "count",
        }
    }
}

/// A bucket width written as a duration: `1m`, `5m`, `1h`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Granularity(pub String);

#[Scalar]
impl ScalarType for Granularity {
    fn parse(value: async_graphql::Value) -> InputValueResult<Self> {
        match &value {
            async_graphql::Value::String(text) => Ok(Granularity(text.clone())),
            _ => Err(InputValueError::expected_type(value)),
        }
    }

    fn to_value(&self) -> async_graphql::Value {
        async_graphql::Value::String(self.0.clone())
    }
}

/// What a series is broken down by.
#[derive(InputObject, Clone, Debug)]
pub struct DimensionInput {
    /// The dimension (`application_id`).
    pub name: String,
    /// Its value.
    pub value: String,
}

/// A series' dimension.
#[derive(SimpleObject, Clone, Debug)]
pub struct Dimension {
    /// The dimension.
    pub name: String,
    /// Its value.
    pub value: String,
}

/// One point of a series.
#[derive(SimpleObject, Clone, Debug)]
pub struct Datapoint {
    /// The bucket's start.
    pub timestamp: DateTime,
    /// Its value.
    pub value: f64,
}

/// One metric over time.
#[derive(SimpleObject, Clone, Debug)]
pub struct MetricSeries {
    /// The metric.
    pub name: String,
    /// What it is broken down by.
    pub dimensions: Vec<Dimension>,
    /// Oldest first.
    pub datapoints: Vec<Datapoint>,
    /// Its unit.
    pub unit: Option<String>,
    /// As asked.
    pub aggregation: AggregationInput,
}
