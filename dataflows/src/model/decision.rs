//! What the guards concluded about one event, before and after the behavioral layer.

use serde::{Deserialize, Serialize};

use super::event::EventType;
use super::finding::{Finding, LayerVerdict};
use super::judgement::{Excerpt, JudgeRequest, ShadowAgentAnalysis};
use super::metric_event::{EntityKeys, KeyField};
use super::risk::{RiskScores, Tier};

/// An event after the content guards: its compact facts and the input and output verdicts.
/// The prompt and response text stay behind where the event was read; only an event the
/// judges will see carries a bounded, redacted [`Excerpt`].
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ScreenedEvent {
    /// Event time, epoch ms.
    pub timestamp_ms: u64,
    /// Event type.
    pub event_type: EventType,
    /// The call failed.
    pub is_error: bool,
    /// Call cost.
    pub cost: f64,
    /// Total tokens.
    pub total_tokens: u32,
    /// Event id and entity names.
    pub keys: EntityKeys,
    /// Tool name of an `agent.tool_call`.
    pub tool: Option<Box<str>>,
    /// Hash of the tool call's arguments (raw JSON), to spot repeated calls without keeping them.
    pub tool_args_hash: u64,
    /// The input guard's verdict on the prompt, if there was one.
    pub input: Option<LayerVerdict>,
    /// The output guard's verdict on the response, if there was one.
    pub output: Option<LayerVerdict>,
    /// Redacted text for the judges, kept only when the rule risk reached the escalate
    /// threshold and judges are on.
    pub excerpt: Option<Box<Excerpt>>,
}

impl ScreenedEvent {
    /// The key behavioral state lives under: the user, else the session, else the application.
    pub fn actor(&self) -> (&'static str, &str) {
        let user = self.keys.get(KeyField::User);
        let session = self.keys.get(KeyField::Session);
        if !user.is_empty() {
            ("user", user)
        } else if !session.is_empty() {
            ("session", session)
        } else {
            ("application", self.keys.get(KeyField::Application))
        }
    }
}

/// The seed's aggregated risk.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct AggregatedRisk {
    /// Noisy-OR of the layer scores.
    pub overall_risk_score: f32,
    /// none, low, medium, high or critical.
    pub overall_risk_level: String,
}

/// One decision per request, written to `sentinel.decisions`: the audit log.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Decision {
    /// Deterministic id (hash of the event id).
    pub id: String,
    /// The event decided on.
    pub event_id: String,
    /// Event time, RFC 3339.
    pub timestamp: String,
    /// Event type.
    pub event_type: EventType,
    /// Application.
    pub application_id: String,
    /// User, when known.
    pub user_id: String,
    /// Session, when known.
    pub session_id: String,
    /// Tier is block.
    pub blocked: bool,
    /// allow, warn, escalate or block.
    pub tier: Tier,
    /// Per-layer scores.
    pub risk_scores: RiskScores,
    /// Overall score and level.
    pub aggregated_risk: AggregatedRisk,
    /// Whether the judges were asked.
    pub shadow_agent_escalated: bool,
    /// Why the tier is escalate or block: the strongest finding, and what the judges changed.
    pub escalation_reason: Option<String>,
    /// One analysis per agent asked (ShadowAgentResponse), verdicts and fallbacks alike.
    pub shadow_agent_analyses: Vec<ShadowAgentAnalysis>,
    /// Content findings, by layer.
    pub findings: DecisionFindings,
    /// Behavioral detectors that fired on this event.
    pub behaviors: Vec<String>,
}

/// Findings of the input and output guards.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct DecisionFindings {
    /// On the prompt.
    pub input: Vec<Finding>,
    /// On the response.
    pub output: Vec<Finding>,
}

/// A decision as the rules made it, and what to ask the judges about it, if anything: what
/// flows from the assess stage to the judge stage.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Ruling {
    /// The rules' decision.
    pub decision: Decision,
    /// Set when the request escalated and judges are on.
    pub judge: Option<Box<JudgeRequest>>,
}
