//! The anomaly record written to `sentinel.anomalies`. Field names follow the integration seed.

use serde::{Deserialize, Serialize};

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
    /// Actions the planner took (filled by later stages).
    pub actions_taken: Vec<String>,
    /// Ids of related anomalies (filled by later stages).
    pub related_anomalies: Vec<String>,
}
