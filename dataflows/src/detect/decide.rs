//! Decide: the Decision record of one request, from the rules alone or with the judges'
//! analyses combined in.
//!
//! How verdicts combine with the rules (analyses that fell back are not verdicts):
//! - the strongest verdict's risk at or above the block threshold (0.95 balanced) blocks;
//! - at or above the escalate threshold (0.8) the request is escalate: flagged, not blocked;
//! - below it, the request is allowed with a warning (tier warn);
//! - a verdict may lower the rules' tier only when every verdict has at least
//!   `lower_confidence`, and never when the rules found a hard hit: a credential, a canary
//!   leak or a checksum-validated card number;
//! - with no verdict at all, `fallback_to_rules` keeps the rules' tier; without it the request
//!   is blocked (fail closed).

use crate::detect::behavior::BehaviorSignal;
use crate::detect::escalation::Escalated;
use crate::hash::StableId;
use crate::model::{
    AggregatedRisk, Decision, DecisionFindings, Finding, KeyField, PiiKind, RiskScores, RiskThresholds, ScreenedEvent,
    ShadowAgentAnalysis, Tier,
};

/// How judges' verdicts change a decision.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Decider {
    /// With no verdict, keep the rules' tier (true) or block (false).
    pub fallback_to_rules: bool,
    /// The confidence every verdict needs to lower the rules' tier.
    pub lower_confidence: f32,
}

impl Default for Decider {
    fn default() -> Self {
        Decider {
            fallback_to_rules: true,
            lower_confidence: 0.8,
        }
    }
}

impl Decider {
    /// The rules' decision on one screened event (no judge settings are involved).
    pub fn rules(
        ev: &ScreenedEvent,
        thresholds: &RiskThresholds,
        scores: RiskScores,
        escalated: Escalated,
        signals: &[BehaviorSignal],
    ) -> Decision {
        let event_id = ev.keys.get(KeyField::EventId);
        let overall = scores.overall();
        Decision {
            id: StableId::of(&[b"decision", event_id.as_bytes()]),
            keys: ev.keys.clone(),
            timestamp_ms: ev.timestamp_ms,
            event_type: ev.event_type,
            blocked: escalated.tier == Tier::Block,
            tier: escalated.tier,
            risk_scores: scores,
            aggregated_risk: AggregatedRisk {
                overall_risk_score: overall,
                overall_risk_level: thresholds.level(overall),
            },
            shadow_agent_escalated: false,
            escalation_reason: escalated.reason,
            shadow_agent_analyses: Vec::new(),
            findings: DecisionFindings {
                input: ev.input.as_ref().map_or_else(Vec::new, |v| v.findings.clone()),
                output: ev.output.as_ref().map_or_else(Vec::new, |v| v.findings.clone()),
            },
            behaviors: signals.iter().map(|s| s.kind.id().to_owned()).collect(),
        }
    }

    /// Combines the judges' analyses into the rules' decision (see the module docs). The risk
    /// scores stay the rules'; the analyses carry the judges'.
    pub fn with_judges(
        &self,
        decision: &mut Decision,
        analyses: Vec<ShadowAgentAnalysis>,
        thresholds: &RiskThresholds,
    ) {
        decision.shadow_agent_escalated = true;
        let rules_tier = decision.tier;
        let verdicts: Vec<&ShadowAgentAnalysis> = analyses.iter().filter(|a| !a.fallback_used).collect();
        let (tier, why) = if verdicts.is_empty() {
            let reasons: Vec<&str> = analyses
                .iter()
                .filter_map(|a| a.fallback_reason.map(|r| r.as_str()))
                .collect();
            let reasons = if reasons.is_empty() {
                "none asked".to_owned()
            } else {
                reasons.join(", ")
            };
            if self.fallback_to_rules {
                (rules_tier, format!("judges fell back ({reasons}): rules stand"))
            } else {
                (Tier::Block, format!("judges fell back ({reasons}): fail closed"))
            }
        } else {
            let shadow = verdicts.iter().map(|a| a.risk_score).fold(0.0, f32::max);
            let confidence = verdicts.iter().map(|a| a.confidence).fold(1.0, f32::min);
            let target = if shadow >= thresholds.high {
                Tier::Block
            } else if shadow >= thresholds.medium {
                Tier::Escalate
            } else {
                Tier::Warn
            };
            if target >= rules_tier {
                (target, format!("judges: shadow risk {shadow:.2}"))
            } else if hard_hit(&decision.findings) {
                (
                    rules_tier,
                    format!("judges: shadow risk {shadow:.2}, not lowered over a hard hit"),
                )
            } else if confidence < self.lower_confidence {
                (
                    rules_tier,
                    format!("judges: shadow risk {shadow:.2}, not lowered at confidence {confidence:.2}"),
                )
            } else {
                (
                    target,
                    format!("judges: shadow risk {shadow:.2} at confidence {confidence:.2} lowered it"),
                )
            }
        };
        decision.tier = tier;
        decision.blocked = tier == Tier::Block;
        decision.escalation_reason = Some(match decision.escalation_reason.take() {
            Some(rules) => format!("{rules}; {why}"),
            None => why,
        });
        decision.shadow_agent_analyses = analyses;
    }
}

/// A finding no judge may talk down: a credential, a canary leak or a validated card number.
fn hard_hit(findings: &DecisionFindings) -> bool {
    findings.input.iter().chain(&findings.output).any(|f| match f {
        Finding::CanaryLeak { .. } => true,
        Finding::Pii { kind, .. } => kind.is_secret() || *kind == PiiKind::CreditCard,
        Finding::PromptInjection { .. } => false,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{AgentType, FallbackReason};

    fn decision(tier: Tier, findings: Vec<Finding>) -> Decision {
        Decision {
            id: crate::hash::StableId::of(&["e".as_bytes()]),
            keys: crate::model::EntityKeys::new(["e", "a", "", "", "", ""]).unwrap(),
            timestamp_ms: 0,
            event_type: crate::model::EventType::Request,
            blocked: tier == Tier::Block,
            tier,
            risk_scores: RiskScores::default(),
            aggregated_risk: AggregatedRisk {
                overall_risk_score: 0.9,
                overall_risk_level: crate::model::RiskLevel::High,
            },
            shadow_agent_escalated: false,
            escalation_reason: Some("input: rule".into()),
            shadow_agent_analyses: Vec::new(),
            findings: DecisionFindings {
                input: findings,
                output: vec![],
            },
            behaviors: vec![],
        }
    }

    fn analysis(risk: f32, confidence: f32, fallback: Option<FallbackReason>) -> ShadowAgentAnalysis {
        ShadowAgentAnalysis {
            agent_type: AgentType::ShadowInput,
            risk_score: risk,
            risk_level: "high".into(),
            confidence,
            threats_detected: vec![],
            reasoning: String::new(),
            recommendations: vec![],
            llm_provider: "local".into(),
            llm_model: "m".into(),
            tokens_used: 0,
            latency_ms: 0.0,
            fallback_used: fallback.is_some(),
            fallback_reason: fallback,
            cache_hit: false,
            prompt_version: "shadow_input/v1".into(),
        }
    }

    fn tier_after(d: &Decider, rules: Tier, findings: Vec<Finding>, analyses: Vec<ShadowAgentAnalysis>) -> Tier {
        let mut dec = decision(rules, findings);
        d.with_judges(&mut dec, analyses, &RiskThresholds::default());
        assert!(dec.shadow_agent_escalated);
        assert_eq!(dec.blocked, dec.tier == Tier::Block);
        dec.tier
    }

    #[test]
    fn verdicts_raise_freely_and_lower_only_when_confident_and_soft() {
        let d = Decider::default();
        assert_eq!(
            tier_after(&d, Tier::Escalate, vec![], vec![analysis(0.97, 0.5, None)]),
            Tier::Block
        );
        assert_eq!(
            tier_after(&d, Tier::Escalate, vec![], vec![analysis(0.85, 0.5, None)]),
            Tier::Escalate
        );
        assert_eq!(
            tier_after(&d, Tier::Escalate, vec![], vec![analysis(0.2, 0.9, None)]),
            Tier::Warn
        );
        assert_eq!(
            tier_after(&d, Tier::Escalate, vec![], vec![analysis(0.2, 0.6, None)]),
            Tier::Escalate
        );
        let card = Finding::Pii {
            kind: PiiKind::CreditCard,
            start: 0,
            end: 1,
            confidence: 1.0,
            redacted: "x".into(),
            in_prompt: false,
        };
        assert_eq!(
            tier_after(&d, Tier::Block, vec![card], vec![analysis(0.1, 0.99, None)]),
            Tier::Block
        );
        assert_eq!(
            tier_after(&d, Tier::Block, vec![], vec![analysis(0.1, 0.99, None)]),
            Tier::Warn
        );
        // A fallback is not a verdict: the strongest real one counts.
        let mixed = vec![
            analysis(0.1, 0.99, None),
            analysis(0.99, 0.0, Some(FallbackReason::Timeout)),
        ];
        assert_eq!(tier_after(&d, Tier::Escalate, vec![], mixed), Tier::Warn);
    }

    #[test]
    fn no_verdict_keeps_the_rules_or_fails_closed() {
        let timeout = || vec![analysis(0.9, 0.0, Some(FallbackReason::Timeout))];
        let open = Decider::default();
        let closed = Decider {
            fallback_to_rules: false,
            ..Decider::default()
        };
        assert_eq!(tier_after(&open, Tier::Escalate, vec![], timeout()), Tier::Escalate);
        assert_eq!(tier_after(&closed, Tier::Escalate, vec![], timeout()), Tier::Block);
        let mut dec = decision(Tier::Escalate, vec![]);
        closed.with_judges(&mut dec, timeout(), &RiskThresholds::default());
        assert_eq!(
            dec.escalation_reason.as_deref(),
            Some("input: rule; judges fell back (timeout): fail closed")
        );
    }
}
