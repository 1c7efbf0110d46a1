//! The telemetry data model: what applications send, what Sentinel emits, and what it rejects.

pub mod anomaly;
pub mod dead_letter;
pub mod decision;
pub mod decode;
pub mod event;
mod fast_decode;
pub mod finding;
mod json;
pub mod judgement;
pub mod lifecycle;
pub mod metric_event;
pub mod risk;

pub use anomaly::{
    ActionKind, ActionTaken, AffectedEntity, Anomaly, AnomalyContext, AnomalyDraft, AnomalyMetrics, DetectorType,
    Severity, TakenStatus,
};
pub use dead_letter::{DeadLetter, Position, Reason};
pub use decision::{AggregatedRisk, Decision, DecisionFindings, Ruling, ScreenedEvent};
pub use decode::{decode_event, decode_with, parse_event, DecodeLimits, DecodedEvent, Rejection};
pub use event::{EventData, EventType, TelemetryEvent};
pub use finding::{AttackFamily, Encoding, Finding, LayerVerdict, PiiKind};
pub use judgement::{
    AgentType, Excerpt, FallbackReason, JudgeRequest, JudgementRecord, SessionStep, ShadowAgentAnalysis,
};
pub use metric_event::{EntityKeys, KeyField, MetricEvent};
pub use risk::{noisy_or, Profile, RiskLevel, RiskScores, RiskThresholds, Tier};
