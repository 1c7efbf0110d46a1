//! What the shadow agents (LLM judges) are asked and what they answer, in the seed's
//! ShadowAgentResponse shape, plus the journal record that makes a re-run deterministic.

use serde::{Deserialize, Serialize};

use super::event::EventType;
use super::risk::{RiskScores, RiskThresholds};

/// The three shadow agents.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AgentType {
    /// Intent, social engineering, multi-turn attacks in the prompt.
    ShadowInput,
    /// Goal drift and tool misuse over the session.
    ShadowState,
    /// Semantic and inference leaks in the response; whether an injection worked.
    ShadowOutput,
}

impl AgentType {
    /// Every agent, in the order their analyses are listed.
    pub const ALL: [AgentType; 3] = [AgentType::ShadowInput, AgentType::ShadowState, AgentType::ShadowOutput];

    /// Wire name (`shadow_input`, ...).
    pub fn as_str(self) -> &'static str {
        match self {
            AgentType::ShadowInput => "shadow_input",
            AgentType::ShadowState => "shadow_state",
            AgentType::ShadowOutput => "shadow_output",
        }
    }

    /// The rules' score for the layer this agent judges: what a fallback reports.
    pub fn rule_score(self, scores: &RiskScores) -> f32 {
        match self {
            AgentType::ShadowInput => scores.input,
            AgentType::ShadowState => scores.state,
            AgentType::ShadowOutput => scores.output,
        }
    }
}

/// Why an analysis is the rules' fallback rather than a judge's verdict.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FallbackReason {
    /// No verdict before `timeout_ms`.
    Timeout,
    /// The judge queue was full.
    Overload,
    /// The provider's circuit breaker is open.
    CircuitOpen,
    /// Connection error, 5xx, 429 or 529 (after the one retry).
    ProviderError,
    /// 400, 401 or 403: the request or the key is wrong; does not trip the breaker.
    ConfigError,
    /// The reply was not a verdict of the schema.
    ParseError,
    /// The model declined to judge.
    Refusal,
    /// The reply stopped at `max_tokens` before its verdict was complete.
    Truncated,
    /// The tenant's daily token budget is spent.
    Budget,
    /// Replaying a journal that has no verdict for this request.
    NotInJournal,
}

impl FallbackReason {
    /// Every reason, for counters.
    pub const ALL: [FallbackReason; 10] = [
        FallbackReason::Timeout,
        FallbackReason::Overload,
        FallbackReason::CircuitOpen,
        FallbackReason::ProviderError,
        FallbackReason::ConfigError,
        FallbackReason::ParseError,
        FallbackReason::Refusal,
        FallbackReason::Truncated,
        FallbackReason::Budget,
        FallbackReason::NotInJournal,
    ];

    /// Wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            FallbackReason::Timeout => "timeout",
            FallbackReason::Overload => "overload",
            FallbackReason::CircuitOpen => "circuit_open",
            FallbackReason::ProviderError => "provider_error",
            FallbackReason::ConfigError => "config_error",
            FallbackReason::ParseError => "parse_error",
            FallbackReason::Refusal => "refusal",
            FallbackReason::Truncated => "truncated",
            FallbackReason::Budget => "budget",
            FallbackReason::NotInJournal => "not_in_journal",
        }
    }
}

/// One agent's analysis: the seed's ShadowAgentResponse, plus why it fell back, whether it came
/// from the cache, and the prompt version that produced it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ShadowAgentAnalysis {
    /// Which agent.
    pub agent_type: AgentType,
    /// 0..1.
    pub risk_score: f32,
    /// none, low, medium, high or critical.
    pub risk_level: String,
    /// 0..1; a fallback has 0.
    pub confidence: f32,
    /// Threat descriptions.
    pub threats_detected: Vec<String>,
    /// The judge's explanation.
    pub reasoning: String,
    /// Suggested actions.
    pub recommendations: Vec<String>,
    /// anthropic, openai or local.
    pub llm_provider: String,
    /// Model name.
    pub llm_model: String,
    /// Input plus output tokens of the call (the original call's, on a cache hit).
    pub tokens_used: u32,
    /// Wall time of the call, ms.
    pub latency_ms: f64,
    /// The rules' score stands in for a verdict.
    pub fallback_used: bool,
    /// Why, when `fallback_used`.
    pub fallback_reason: Option<FallbackReason>,
    /// Answered from the verdict cache.
    pub cache_hit: bool,
    /// The prompt template's version (`shadow_input/v1`).
    pub prompt_version: String,
}

/// A bounded, redacted piece of an escalated event's text, for the judges only. Its `Debug`
/// prints lengths, so the text cannot reach a log by accident; no output record carries it.
#[derive(Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Excerpt {
    /// The prompt, PII and secrets replaced by `<TYPE>` placeholders.
    pub prompt: Option<String>,
    /// The response, likewise.
    pub response: Option<String>,
}

impl std::fmt::Debug for Excerpt {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let len = |t: &Option<String>| t.as_ref().map_or(0, String::len);
        write!(
            f,
            "Excerpt {{ prompt: {} B, response: {} B }}",
            len(&self.prompt),
            len(&self.response)
        )
    }
}

/// One recent step of a session, as the state agent sees it: never raw text.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SessionStep {
    /// Event time, epoch ms.
    pub at_ms: u64,
    /// `llm.request`, `agent.tool_call`, ...
    pub kind: EventType,
    /// Model, or tool name for a tool call.
    pub name: String,
    /// The step's rule risk.
    pub risk: f32,
}

/// What the judges are asked about one escalated request.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct JudgeRequest {
    /// The event's id (the journal's key, with the agent).
    pub event_id: String,
    /// The tenant, for its token budget.
    pub tenant_id: String,
    /// The application.
    pub application_id: String,
    /// The rules' per-layer scores: what a fallback reports.
    pub rule_scores: RiskScores,
    /// The application's tier thresholds, for risk levels and the verdict's effect.
    pub thresholds: RiskThresholds,
    /// The rules' findings, as labels (`input: ignore-previous`).
    pub rule_findings: Vec<String>,
    /// The agents asked.
    pub agents: Vec<AgentType>,
    /// Redacted text.
    pub excerpt: Excerpt,
    /// The session's recent steps, oldest first (state agent).
    pub session: Vec<SessionStep>,
}

/// One journal line (`sentinel.judgements`): every analysis a decision used, with what it
/// cost, so `--judge-replay` answers the same without calling anyone.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct JudgementRecord {
    /// `<event id>|<agent>`: what a replay looks up.
    pub key: String,
    /// The event judged.
    pub event_id: String,
    /// Hash of the agent, prompt version, model and normalised content (the cache key).
    pub request_hash: String,
    /// Provider.
    pub provider: String,
    /// Model.
    pub model: String,
    /// Prompt version.
    pub prompt_version: String,
    /// The provider's reply text, at most 2 KB; empty for a fallback without a call.
    pub raw_reply: String,
    /// Tokens sent.
    pub input_tokens: u32,
    /// Tokens received.
    pub output_tokens: u32,
    /// The analysis the decision used.
    pub analysis: ShadowAgentAnalysis,
}

impl JudgementRecord {
    /// The journal key of an event's agent.
    pub fn key_of(event_id: &str, agent: AgentType) -> String {
        format!("{event_id}|{}", agent.as_str())
    }
}
