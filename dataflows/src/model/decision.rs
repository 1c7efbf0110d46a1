//! What the guards concluded about one event, before and after the behavioral layer.

use std::borrow::Cow;

use serde::{Deserialize, Serialize};

use super::event::EventType;
use super::finding::{Finding, LayerVerdict};
use super::json;
use super::judgement::{Excerpt, JudgeRequest, ShadowAgentAnalysis};
use super::metric_event::{EntityKeys, KeyField};
use super::risk::{RiskLevel, RiskScores, Tier};
use crate::hash::StableId;
use crate::time::{format_rfc3339_ms, parse_rfc3339_ms, rfc3339_ms_ascii};

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
    pub overall_risk_level: RiskLevel,
}

/// One decision per request, written to `sentinel.decisions`: the audit log.
///
/// Built once per request, response and tool call, so it is compact: the id and time stay
/// numbers and the entity names stay in the event's one [`EntityKeys`] allocation until the
/// record is written. A human-readable format (JSON) gets the seed's shape, with `id`,
/// `event_id`, `timestamp`, `application_id`, `user_id` and `session_id` as strings, and
/// [`Decision::write_json`] writes the same bytes faster. A binary one (timely's exchange
/// between processes) gets the fields as they are, which loses nothing.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(remote = "Self")]
pub struct Decision {
    /// Deterministic id (hash of the event id).
    pub id: StableId,
    /// The event's id and entity names, as the event carried them (one allocation). Tenant
    /// and model ride along for the judges and routing, and are not part of the JSON record.
    pub keys: EntityKeys,
    /// Event time, epoch ms (written as RFC 3339).
    pub timestamp_ms: u64,
    /// Event type.
    pub event_type: EventType,
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

impl Decision {
    /// A decision on request `event_id` of application `app` at `tier`, by user `u-1` in
    /// session `s-1`, with no findings: for tests, examples and benchmarks.
    ///
    /// ```
    /// use sentinel_dataflows::model::{Decision, Tier};
    /// let d = Decision::sample("e-1", "chat", Tier::Warn, 1_700_000_000_000);
    /// assert_eq!((d.event_id(), d.application_id(), d.blocked), ("e-1", "chat", false));
    /// ```
    pub fn sample(event_id: &str, app: &str, tier: Tier, timestamp_ms: u64) -> Decision {
        Decision {
            id: StableId::of(&[b"decision", event_id.as_bytes()]),
            keys: EntityKeys::new([event_id, app, "", "", "u-1", "s-1"]).expect("short names"),
            timestamp_ms,
            event_type: EventType::Request,
            blocked: tier == Tier::Block,
            tier,
            risk_scores: RiskScores::default(),
            aggregated_risk: AggregatedRisk {
                overall_risk_score: 0.0,
                overall_risk_level: RiskLevel::None,
            },
            shadow_agent_escalated: false,
            escalation_reason: None,
            shadow_agent_analyses: Vec::new(),
            findings: DecisionFindings::default(),
            behaviors: Vec::new(),
        }
    }

    /// The event decided on.
    pub fn event_id(&self) -> &str {
        self.keys.get(KeyField::EventId)
    }

    /// Application.
    pub fn application_id(&self) -> &str {
        self.keys.get(KeyField::Application)
    }

    /// User, when known.
    pub fn user_id(&self) -> &str {
        self.keys.get(KeyField::User)
    }

    /// Session, when known.
    pub fn session_id(&self) -> &str {
        self.keys.get(KeyField::Session)
    }

    /// Event time, RFC 3339.
    pub fn timestamp(&self) -> String {
        format_rfc3339_ms(self.timestamp_ms)
    }

    /// Appends the record as JSON: the same bytes as `serde_json::to_writer`, without serde's
    /// per-key escaping (this runs once per event).
    pub fn write_json(&self, out: &mut Vec<u8>) -> serde_json::Result<()> {
        out.reserve(512);
        json::raw(out, "{\"id\":\"");
        out.extend_from_slice(&self.id.hex());
        json::raw(out, "\",\"event_id\":");
        json::string(out, self.event_id());
        json::raw(out, ",\"timestamp\":");
        match rfc3339_ms_ascii(self.timestamp_ms) {
            Some(ts) => {
                out.push(b'"');
                out.extend_from_slice(&ts);
                out.push(b'"');
            }
            None => json::string(out, &self.timestamp()),
        }
        json::raw(out, ",\"event_type\":\"");
        json::raw(out, self.event_type.as_str());
        json::raw(out, "\",\"application_id\":");
        json::string(out, self.application_id());
        json::raw(out, ",\"user_id\":");
        json::string(out, self.user_id());
        json::raw(out, ",\"session_id\":");
        json::string(out, self.session_id());
        json::raw(out, ",\"blocked\":");
        json::boolean(out, self.blocked);
        json::raw(out, ",\"tier\":\"");
        json::raw(out, self.tier.as_str());
        json::raw(out, "\",\"risk_scores\":{\"input\":");
        json::float(out, self.risk_scores.input);
        json::raw(out, ",\"state\":");
        json::float(out, self.risk_scores.state);
        json::raw(out, ",\"output\":");
        json::float(out, self.risk_scores.output);
        json::raw(out, "},\"aggregated_risk\":{\"overall_risk_score\":");
        json::float(out, self.aggregated_risk.overall_risk_score);
        json::raw(out, ",\"overall_risk_level\":\"");
        json::raw(out, self.aggregated_risk.overall_risk_level.as_str());
        json::raw(out, "\"},\"shadow_agent_escalated\":");
        json::boolean(out, self.shadow_agent_escalated);
        json::raw(out, ",\"escalation_reason\":");
        match &self.escalation_reason {
            Some(reason) => json::string(out, reason),
            None => json::raw(out, "null"),
        }
        json::raw(out, ",\"shadow_agent_analyses\":");
        json::list(out, &self.shadow_agent_analyses)?;
        json::raw(out, ",\"findings\":{\"input\":");
        json::list(out, &self.findings.input)?;
        json::raw(out, ",\"output\":");
        json::list(out, &self.findings.output)?;
        json::raw(out, "},\"behaviors\":");
        json::list(out, &self.behaviors)?;
        json::raw(out, "}");
        Ok(())
    }

    fn fields<'a>(&'a self, id: &'a str, timestamp: Cow<'a, str>) -> DecisionFields<'a> {
        DecisionFields {
            id: Cow::Borrowed(id),
            event_id: Cow::Borrowed(self.event_id()),
            timestamp,
            event_type: self.event_type,
            application_id: Cow::Borrowed(self.application_id()),
            user_id: Cow::Borrowed(self.user_id()),
            session_id: Cow::Borrowed(self.session_id()),
            blocked: self.blocked,
            tier: self.tier,
            risk_scores: self.risk_scores,
            aggregated_risk: Cow::Borrowed(&self.aggregated_risk),
            shadow_agent_escalated: self.shadow_agent_escalated,
            escalation_reason: self.escalation_reason.as_deref().map(Cow::Borrowed),
            shadow_agent_analyses: Cow::Borrowed(&self.shadow_agent_analyses),
            findings: Cow::Borrowed(&self.findings),
            behaviors: Cow::Borrowed(&self.behaviors),
        }
    }
}

/// The seed's shape of a [`Decision`]: what it serializes as and is read back from.
#[derive(Serialize, Deserialize)]
struct DecisionFields<'a> {
    id: Cow<'a, str>,
    event_id: Cow<'a, str>,
    timestamp: Cow<'a, str>,
    event_type: EventType,
    application_id: Cow<'a, str>,
    user_id: Cow<'a, str>,
    session_id: Cow<'a, str>,
    blocked: bool,
    tier: Tier,
    risk_scores: RiskScores,
    aggregated_risk: Cow<'a, AggregatedRisk>,
    shadow_agent_escalated: bool,
    escalation_reason: Option<Cow<'a, str>>,
    shadow_agent_analyses: Cow<'a, [ShadowAgentAnalysis]>,
    findings: Cow<'a, DecisionFindings>,
    behaviors: Cow<'a, [String]>,
}

impl Serialize for Decision {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        if !s.is_human_readable() {
            return Decision::serialize(self, s);
        }
        let id = self.id.hex();
        let id = std::str::from_utf8(&id).map_err(serde::ser::Error::custom)?;
        let timestamp = rfc3339_ms_ascii(self.timestamp_ms);
        let timestamp = match &timestamp {
            Some(ts) => Cow::Borrowed(std::str::from_utf8(ts).map_err(serde::ser::Error::custom)?),
            None => Cow::Owned(self.timestamp()),
        };
        self.fields(id, timestamp).serialize(s)
    }
}

impl<'de> Deserialize<'de> for Decision {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        if d.is_human_readable() {
            DecisionFields::deserialize(d)?
                .try_into()
                .map_err(serde::de::Error::custom)
        } else {
            Decision::deserialize(d)
        }
    }
}

impl TryFrom<DecisionFields<'_>> for Decision {
    type Error = String;

    fn try_from(f: DecisionFields<'_>) -> Result<Self, String> {
        let id: StableId = f.id.parse()?;
        let timestamp_ms = parse_rfc3339_ms(&f.timestamp).ok_or_else(|| format!("bad timestamp `{}`", f.timestamp))?;
        let keys = EntityKeys::new([&f.event_id, &f.application_id, "", "", &f.user_id, &f.session_id])
            .ok_or("entity names over 64 KiB")?;
        Ok(Decision {
            id,
            keys,
            timestamp_ms,
            event_type: f.event_type,
            blocked: f.blocked,
            tier: f.tier,
            risk_scores: f.risk_scores,
            aggregated_risk: f.aggregated_risk.into_owned(),
            shadow_agent_escalated: f.shadow_agent_escalated,
            escalation_reason: f.escalation_reason.map(Cow::into_owned),
            shadow_agent_analyses: f.shadow_agent_analyses.into_owned(),
            findings: f.findings.into_owned(),
            behaviors: f.behaviors.into_owned(),
        })
    }
}

/// Findings of the input and output guards.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct DecisionFindings {
    /// On the prompt.
    pub input: Vec<Finding>,
    /// On the response.
    pub output: Vec<Finding>,
}

/// An escalated request, judges on: the rules' decision and what to ask the judges about it.
/// What flows from the assess stage to the judge stage.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Ruling {
    /// The rules' decision.
    pub decision: Decision,
    /// What the judges are asked.
    pub judge: Box<JudgeRequest>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{AgentType, AttackFamily, FallbackReason, PiiKind};

    fn decision(event_id: &str, user: &str, timestamp_ms: u64) -> Decision {
        let mut d = Decision::sample(event_id, "chat", Tier::Allow, timestamp_ms);
        d.keys = EntityKeys::new([event_id, "chat", "", "", user, "s-1"]).unwrap();
        d
    }

    /// Every shape the hand-written writer has a branch for: empty and full lists, strings
    /// that need escaping, scores that are not finite, and a year past 9999.
    fn variety() -> Vec<Decision> {
        let mut full = decision("e-2", "u-\"quoted\"\n\u{1}é🙂\\", 1_700_000_000_123);
        full.event_type = EventType::ToolCall;
        full.blocked = true;
        full.tier = Tier::Block;
        full.risk_scores = RiskScores {
            input: 0.95,
            state: f32::NAN,
            output: -0.0,
        };
        full.aggregated_risk = AggregatedRisk {
            overall_risk_score: 1.0 / 3.0,
            overall_risk_level: RiskLevel::Critical,
        };
        full.shadow_agent_escalated = true;
        full.escalation_reason = Some("input: rule \"x\"\t; judges fell back".into());
        full.shadow_agent_analyses = vec![ShadowAgentAnalysis {
            agent_type: AgentType::ShadowInput,
            risk_score: 0.9,
            risk_level: "high".into(),
            confidence: 0.0,
            threats_detected: vec!["override".into()],
            reasoning: String::new(),
            recommendations: vec![],
            llm_provider: "local".into(),
            llm_model: "m".into(),
            tokens_used: 12,
            latency_ms: 3.5,
            fallback_used: true,
            fallback_reason: Some(FallbackReason::Timeout),
            cache_hit: false,
            prompt_version: "shadow_input/v1".into(),
        }];
        full.findings.input = vec![Finding::PromptInjection {
            rule: "override".into(),
            family: AttackFamily::InstructionOverride,
            weight: 0.9,
            encoding: None,
        }];
        full.findings.output = vec![Finding::Pii {
            kind: PiiKind::EmailAddress,
            start: 1,
            end: 9,
            confidence: 0.9,
            redacted: "a***@x.io".into(),
            in_prompt: false,
        }];
        full.behaviors = vec!["agent-loop".into()];
        vec![
            decision("e-1", "u-1", 1_717_200_000_052),
            decision("", "", 0),
            full,
            decision("e-3", "u-3", 400_000_000_000_000),
        ]
    }

    #[test]
    fn the_hand_written_json_is_byte_for_byte_serde_json() {
        for d in variety() {
            let mut fast = Vec::new();
            d.write_json(&mut fast).unwrap();
            let serde = serde_json::to_vec(&d).unwrap();
            assert_eq!(String::from_utf8_lossy(&fast), String::from_utf8_lossy(&serde));
        }
    }

    #[test]
    fn the_record_has_the_seed_fields_and_reads_back() {
        let d = decision("e-1", "u-1", 1_717_200_000_052);
        let v = serde_json::to_value(&d).unwrap();
        assert_eq!(v["id"], d.id.to_string());
        assert_eq!(v["event_id"], "e-1");
        assert_eq!(v["timestamp"], "2024-06-01T00:00:00.052Z");
        assert_eq!(v["application_id"], "chat");
        assert_eq!(v["user_id"], "u-1");
        assert_eq!(v["session_id"], "s-1");
        assert_eq!(v["aggregated_risk"]["overall_risk_level"], "none");
        // JSON reads back what it can represent: RFC 3339 years up to 9999, finite scores.
        let readable = |d: &Decision| d.risk_scores.state.is_finite() && d.timestamp_ms < 253_402_300_800_000;
        for d in variety().into_iter().filter(readable) {
            let back: Decision = serde_json::from_slice(&serde_json::to_vec(&d).unwrap()).unwrap();
            assert_eq!(back, d);
        }
    }

    #[test]
    fn a_decision_crosses_processes_intact() {
        // Timely exchanges records between processes with bincode 1: every field comes back,
        // tenant and model included, whatever the time.
        let mut d = variety().remove(2);
        d.keys = EntityKeys::new(["e", "chat", "acme", "gpt", "u", "s"]).unwrap();
        d.timestamp_ms = u64::MAX;
        let back: Decision = bincode::deserialize(&bincode::serialize(&d).unwrap()).unwrap();
        assert_eq!(format!("{back:?}"), format!("{d:?}"), "NaN aside, equal");
    }
}
