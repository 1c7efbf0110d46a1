//! Ground truth for generated traces, written beside the trace.

use serde::{Deserialize, Serialize};

/// Which layer of Sentinel is expected to find an injected case.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LabelCategory {
    /// A windowed metric deviation (cost, tokens, latency, errors, request rate).
    Statistical,
    /// A per-user or per-session pattern (model switching, tool loops).
    Behavioral,
    /// Dangerous content in a prompt or response.
    Content,
}

/// One injected anomaly.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Label {
    /// Stable id within the trace.
    pub id: String,
    /// `cost_spike`, `token_rate_spike`, `latency_regression`, `error_burst`, `request_flood`,
    /// `model_switching`, `prompt_injection`, `pii_prompt`, `pii_response`, `tool_loop`.
    pub kind: String,
    /// Detection layer.
    pub category: LabelCategory,
    /// Start of the injected behaviour, epoch ms.
    pub start_ms: u64,
    /// End (exclusive), epoch ms.
    pub end_ms: u64,
    /// `application`, `model`, `user`, `session` or `event`.
    pub entity_type: String,
    /// The affected entity.
    pub entity_id: String,
    /// Metrics expected to flag it (statistical labels).
    #[serde(default)]
    pub metrics: Vec<String>,
    /// Events that carry the case (content and behavioral labels).
    #[serde(default)]
    pub event_ids: Vec<String>,
}
