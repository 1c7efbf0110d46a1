//! The serving store: what the APIs ask, behind a small trait so that another database can
//! stand in for SQLite when one node is not enough.

mod facets;
mod outcomes;
mod sqlite;

pub use outcomes::{KeptDecisions, OutcomeFilter, OutcomeKind, OutcomePage};
pub use sqlite::{SqliteStore, StoreOptions};

use serde::Serialize;
use serde_json::Value;

use crate::lifecycle::{LifecycleEvent, Refused, Status};

/// Filters of an anomaly query. Empty lists match everything.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct AnomalyFilter {
    /// Detection time from (inclusive), ms.
    pub start_ms: u64,
    /// Detection time to (exclusive), ms.
    pub end_ms: u64,
    /// Severities (`info`, `warning`, `critical`).
    pub severities: Vec<String>,
    /// Lifecycle statuses.
    pub statuses: Vec<Status>,
    /// Applications: anomalies on the application itself.
    pub applications: Vec<String>,
    /// Detector ids.
    pub detectors: Vec<String>,
    /// Least score.
    pub score_min: Option<f64>,
    /// Greatest score.
    pub score_max: Option<f64>,
}

/// Which page of the matching anomalies, newest first.
#[derive(Clone, Debug, PartialEq)]
pub enum PageAt {
    /// Skip this many.
    Offset(u64),
    /// After this cursor (from [`AnomalyPage::next_cursor`]): stable while anomalies arrive.
    After(Cursor),
}

/// A position in the newest-first order: an anomaly's time and id.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Cursor {
    /// Detection time, ms.
    pub ts_ms: u64,
    /// Anomaly id.
    pub id: String,
}

impl Cursor {
    /// The opaque text form clients pass back.
    pub fn encode(&self) -> String {
        format!("{}.{}", self.ts_ms, self.id)
    }

    /// Reads [`Cursor::encode`]'s form.
    pub fn decode(text: &str) -> Option<Cursor> {
        let (ts, id) = text.split_once('.')?;
        Some(Cursor {
            ts_ms: ts.parse().ok()?,
            id: id.to_owned(),
        })
    }
}

/// One page of anomalies.
#[derive(Clone, Debug, PartialEq)]
pub struct AnomalyPage {
    /// The anomalies, newest first, each as the job wrote it with its lifecycle fields.
    pub anomalies: Vec<Value>,
    /// How many match in all.
    pub total: u64,
    /// Where the next page starts, if there is one.
    pub next_cursor: Option<Cursor>,
}

/// How statistics are broken down.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum GroupBy {
    /// By detector id.
    Detector,
    /// By severity.
    Severity,
    /// By application.
    Application,
    /// By detector kind.
    DetectorType,
}

impl GroupBy {
    /// Parses a `group_by` name (`detector_id`, `severity`, `application_id`, `detector_type`).
    pub fn parse(name: &str) -> Option<GroupBy> {
        match name {
            "detector_id" | "detector" => Some(GroupBy::Detector),
            "severity" => Some(GroupBy::Severity),
            "application_id" | "application" => Some(GroupBy::Application),
            "detector_type" => Some(GroupBy::DetectorType),
            _ => None,
        }
    }

    /// The name it is reported under.
    pub fn as_str(self) -> &'static str {
        match self {
            GroupBy::Detector => "detector_id",
            GroupBy::Severity => "severity",
            GroupBy::Application => "application_id",
            GroupBy::DetectorType => "detector_type",
        }
    }
}

/// One group's figures.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct GroupStats {
    /// The group's values, one per `group_by` name, in order.
    pub key: Vec<String>,
    /// Anomalies in it.
    pub count: u64,
    /// Their mean score.
    pub average_score: f64,
}

/// A statistics summary over a time range.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Statistics {
    /// Anomalies detected in the range.
    pub total_anomalies: u64,
    /// Their mean score (0 with none).
    pub average_score: f64,
    /// Broken down as asked.
    pub groups: Vec<GroupStats>,
    /// Mean time from detection to resolution of those resolved, in seconds.
    pub mttr_seconds: Option<f64>,
    /// Entities with the most anomalies: `type:id` and count.
    pub top_entities: Vec<(String, u64)>,
}

/// What became of one lifecycle event.
#[derive(Clone, Debug, PartialEq)]
pub enum Applied {
    /// Applied: the anomaly moved (the audit's copy, with the status it moved from).
    Changed(LifecycleEvent),
    /// Applied before: nothing to do.
    Duplicate,
    /// Not allowed from where the anomaly was: nothing changed.
    Refused(Refused),
    /// The anomaly is not stored yet: the event is kept and applied when it arrives.
    Waiting,
}

/// What one [`Store::add_anomalies`] or [`Store::add_aggregates`] did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Added {
    /// Records that were new (anomalies) or kept (aggregates).
    pub new: u64,
    /// The newest record's arrival number after the batch.
    pub last_seq: u64,
}

/// Records in arrival order, from [`Store::since`] and [`Store::aggregates_since`].
#[derive(Clone, Debug, PartialEq)]
pub struct Since<T> {
    /// Each with its arrival number, oldest first.
    pub records: Vec<(u64, T)>,
    /// Every record up to this arrival number was read: the next call starts after it.
    pub read_to: u64,
}

/// One stored closed-window aggregate, as `metricsUpdated` pushes it.
#[derive(Clone, Debug, PartialEq)]
pub struct StoredAggregate {
    /// Entity kind: `application`, `model` or `tenant`.
    pub dimension: String,
    /// The entity.
    pub key: String,
    /// Window width, ms.
    pub width_ms: u64,
    /// Window end, ms.
    pub end_ms: u64,
    /// Completed calls.
    pub requests: u64,
    /// Failed calls.
    pub errors: u64,
    /// Input tokens.
    pub prompt_tokens: u64,
    /// Output tokens.
    pub completion_tokens: u64,
    /// All tokens.
    pub total_tokens: u64,
    /// Cost.
    pub cost: f64,
    /// Mean latency, ms.
    pub latency_mean_ms: Option<f64>,
    /// p95 latency, ms.
    pub latency_p95_ms: Option<f64>,
    /// p99 latency, ms.
    pub latency_p99_ms: Option<f64>,
}

impl StoredAggregate {
    /// The window's figure for `column` (`None` for a latency with no completed call, or an
    /// error rate with no call).
    pub fn value(&self, column: AggregateColumn) -> Option<f64> {
        match column {
            AggregateColumn::Cost => Some(self.cost),
            AggregateColumn::Requests => Some(self.requests as f64),
            AggregateColumn::Errors => Some(self.errors as f64),
            AggregateColumn::ErrorRate => (self.requests > 0).then(|| self.errors as f64 / self.requests as f64),
            AggregateColumn::Tokens => Some(self.total_tokens as f64),
            AggregateColumn::PromptTokens => Some(self.prompt_tokens as f64),
            AggregateColumn::CompletionTokens => Some(self.completion_tokens as f64),
            AggregateColumn::LatencyMean => self.latency_mean_ms,
            AggregateColumn::LatencyP95 => self.latency_p95_ms,
            AggregateColumn::LatencyP99 => self.latency_p99_ms,
        }
    }
}

/// Anomalies detected in one time bucket.
#[derive(Clone, Debug, PartialEq)]
pub struct AnomalyBucket {
    /// The bucket's start, ms.
    pub start_ms: u64,
    /// Anomalies detected in it.
    pub count: u64,
    /// p99 of the time from an anomaly's detection time (event time) to its arrival in the
    /// store (wall time), ms: the detection delay when event time follows the wall clock.
    pub detection_latency_p99_ms: Option<f64>,
}

/// A series of closed-window aggregates: one value of `column` per key and bucket.
#[derive(Clone, Debug, PartialEq)]
pub struct AggregateQuery {
    /// Entity kind: `application`, `model` or `tenant`.
    pub dimension: String,
    /// Only these keys (all when empty).
    pub keys: Vec<String>,
    /// Windows ending after this, ms.
    pub start_ms: u64,
    /// Windows ending at or before this, ms.
    pub end_ms: u64,
    /// Bucket width, ms, buckets aligned on `start_ms`.
    pub bucket_ms: u64,
    /// What is summed, averaged...
    pub column: AggregateColumn,
    /// How the windows of a bucket combine (ignored by `ErrorRate`, which is errors over requests).
    pub aggregation: crate::metrics::Aggregation,
}

/// An aggregate's figure.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AggregateColumn {
    /// Cost.
    Cost,
    /// Completed calls.
    Requests,
    /// Failed calls.
    Errors,
    /// Errors over requests in the bucket.
    ErrorRate,
    /// All tokens.
    Tokens,
    /// Input tokens.
    PromptTokens,
    /// Output tokens.
    CompletionTokens,
    /// Mean latency, ms.
    LatencyMean,
    /// p95 latency, ms.
    LatencyP95,
    /// p99 latency, ms.
    LatencyP99,
}

/// One key's series.
#[derive(Clone, Debug, PartialEq)]
pub struct KeySeries {
    /// The entity.
    pub key: String,
    /// Bucket start (ms) and value, oldest first; buckets without windows are left out.
    pub points: Vec<(u64, f64)>,
}

/// Filters of an alert-history query. Empty lists match everything.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct AlertFilter {
    /// Notification time from (inclusive), ms.
    pub start_ms: u64,
    /// Notification time to (exclusive), ms.
    pub end_ms: u64,
    /// `firing` or `resolved`.
    pub statuses: Vec<String>,
    /// Severities (`info`, `warning`, `critical`).
    pub severities: Vec<String>,
    /// Detector ids.
    pub detectors: Vec<String>,
    /// Alerts sent to any of these receivers.
    pub receivers: Vec<String>,
}

/// One page of alert notifications, newest first.
#[derive(Clone, Debug, PartialEq)]
pub struct AlertPage {
    /// The notifications as the job wrote them.
    pub alerts: Vec<Value>,
    /// How many match in all.
    pub total: u64,
}

/// What the store is asked to do from outside the stream.
pub trait Store: Send + Sync {
    /// Records anomalies as the job wrote them (JSON). A copy of one already stored updates
    /// its record and keeps its lifecycle. Each new anomaly gets the next arrival number.
    fn add_anomalies(&self, records: Vec<Vec<u8>>) -> Result<Added, String>;

    /// The newest anomaly's arrival number (0 when empty).
    fn last_seq(&self) -> u64;

    /// At most `limit` anomalies matching `filter` (its time range included) that arrived after
    /// `after_seq` and up to `upto_seq`, oldest first: what a subscriber has not seen yet.
    fn since(&self, after_seq: u64, upto_seq: u64, filter: &AnomalyFilter, limit: u32) -> Result<Since<Value>, String>;

    /// One anomaly, with its lifecycle fields.
    fn anomaly(&self, id: &str) -> Result<Option<Value>, String>;

    /// A page of anomalies matching `filter`, newest first.
    fn anomalies(&self, filter: &AnomalyFilter, at: &PageAt, limit: u32) -> Result<AnomalyPage, String>;

    /// Anomalies per `bucket_ms` over `[start_ms, end_ms)`, buckets aligned on `start_ms`;
    /// empty buckets are left out.
    fn anomaly_buckets(&self, start_ms: u64, end_ms: u64, bucket_ms: u64) -> Result<Vec<AnomalyBucket>, String>;

    /// Records closed-window aggregates as the job wrote them (JSON). Users' are not kept:
    /// there are too many to chart. A copy of one stored replaces it, with a new arrival number.
    fn add_aggregates(&self, records: Vec<Vec<u8>>) -> Result<Added, String>;

    /// The newest aggregate's arrival number (0 when empty).
    fn last_aggregate_seq(&self) -> u64;

    /// At most `limit` aggregates that arrived after `after_seq` and up to `upto_seq`, oldest
    /// first: what a `metricsUpdated` subscriber has not seen yet.
    fn aggregates_since(&self, after_seq: u64, upto_seq: u64, limit: u32) -> Result<Since<StoredAggregate>, String>;

    /// Series of the narrowest windows stored for `q.dimension`.
    fn aggregate_series(&self, q: &AggregateQuery) -> Result<Vec<KeySeries>, String>;

    /// Figures over `[start_ms, end_ms)`, broken down by `group_by`.
    fn statistics(&self, start_ms: u64, end_ms: u64, group_by: &[GroupBy]) -> Result<Statistics, String>;

    /// Records alert notifications as the job wrote them (JSON). A copy of one stored
    /// replaces it. Returns how many were kept.
    fn add_alerts(&self, records: Vec<Vec<u8>>) -> Result<u64, String>;

    /// A page of the alert notifications matching `filter`, newest first, skipping `offset`.
    fn alerts(&self, filter: &AlertFilter, offset: u64, limit: u32) -> Result<AlertPage, String>;

    /// Records Shield actions, incident requests, decisions or judgements as the job wrote them
    /// (JSON). A copy of one stored replaces it; decisions are kept as the store's options say.
    /// Returns how many were kept.
    fn add_outcomes(&self, kind: OutcomeKind, records: Vec<Vec<u8>>) -> Result<u64, String>;

    /// A page of `kind`'s records matching `filter`, newest first, skipping `offset`.
    fn outcomes(
        &self,
        kind: OutcomeKind,
        filter: &OutcomeFilter,
        offset: u64,
        limit: u32,
    ) -> Result<OutcomePage, String>;

    /// An anomaly's lifecycle status, if it is stored.
    fn status(&self, anomaly_id: &str) -> Result<Option<Status>, String>;

    /// Applies lifecycle events in the order given (the anomaly-events topic's), each checked
    /// against the status it finds and audited once: an event seen before is a no-op, and one
    /// for an anomaly not stored yet waits until the anomaly arrives.
    fn apply(&self, events: &[LifecycleEvent]) -> Result<Vec<Applied>, String>;

    /// Where each consumed partition was read up to: `(topic, partition, next offset)`.
    fn positions(&self) -> Result<Vec<(String, i32, i64)>, String>;

    /// Records how far partitions were read, after what was read from them is stored.
    fn save_positions(&self, positions: &[(String, i32, i64)]) -> Result<(), String>;

    /// The audit trail of one anomaly, oldest first.
    fn audit(&self, anomaly_id: &str) -> Result<Vec<LifecycleEvent>, String>;
}
