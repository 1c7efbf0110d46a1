//! The judge stage: escalated requests wait here for the shadow agents' analyses, at most
//! until their deadline, then are decided. Plain structs; the LLM calls themselves live behind
//! [`JudgeService`], implemented outside the dataflow (it knows no HTTP).

use std::collections::HashMap;
use std::sync::mpsc::Sender;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::detect::Decider;
use crate::model::{AgentType, Decision, FallbackReason, JudgeRequest, JudgementRecord, Ruling, ShadowAgentAnalysis};

/// The judges' queue is full: the request falls back at once.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Overloaded;

/// Who answers for an agent: named in every analysis, fallbacks included.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AgentIdentity {
    /// anthropic, openai or local.
    pub provider: String,
    /// Model name.
    pub model: String,
    /// Prompt template version.
    pub prompt_version: String,
}

/// Asks the shadow agents. Implementations run their calls off the worker threads.
pub trait JudgeService: Send + Sync {
    /// Queues `request`; each agent's journal record comes back through `reply`, one send per
    /// agent, in any order. Never blocks: a full queue is `Err(Overloaded)` at once.
    fn submit(&self, request: JudgeRequest, reply: JudgeReply) -> Result<(), Overloaded>;

    /// Who answers for `agent`.
    fn identity(&self, agent: AgentType) -> AgentIdentity;
}

/// Where an agent's answer goes: the waiting operator's channel, and a wake-up for it.
#[derive(Clone)]
pub struct JudgeReply {
    ticket: u64,
    tx: Sender<(u64, JudgementRecord)>,
    wake: Arc<dyn Fn() + Send + Sync>,
}

impl JudgeReply {
    /// A reply for `ticket` into `tx`, calling `wake` after each send.
    pub fn new(ticket: u64, tx: Sender<(u64, JudgementRecord)>, wake: Arc<dyn Fn() + Send + Sync>) -> Self {
        JudgeReply { ticket, tx, wake }
    }

    /// Sends one agent's record. An answer after the deadline is dropped by the receiver.
    pub fn send(&self, record: JudgementRecord) {
        if self.tx.send((self.ticket, record)).is_ok() {
            (self.wake)();
        }
    }
}

impl std::fmt::Debug for JudgeReply {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "JudgeReply({})", self.ticket)
    }
}

/// The fallback analysis of `agent` on `request`: the rules' score for its layer.
pub fn fallback_analysis(
    agent: AgentType,
    request: &JudgeRequest,
    reason: FallbackReason,
    who: &AgentIdentity,
) -> ShadowAgentAnalysis {
    let score = agent.rule_score(&request.rule_scores);
    ShadowAgentAnalysis {
        agent_type: agent,
        risk_score: score,
        risk_level: request.thresholds.level(score).as_str().to_owned(),
        confidence: 0.0,
        threats_detected: request.rule_findings.clone(),
        reasoning: format!("no verdict ({}): the rules' score stands in", reason.as_str()),
        recommendations: Vec::new(),
        llm_provider: who.provider.clone(),
        llm_model: who.model.clone(),
        tokens_used: 0,
        latency_ms: 0.0,
        fallback_used: true,
        fallback_reason: Some(reason),
        cache_hit: false,
        prompt_version: who.prompt_version.clone(),
    }
}

/// The journal record of a fallback made without a call.
pub fn fallback_record(
    agent: AgentType,
    request: &JudgeRequest,
    reason: FallbackReason,
    who: &AgentIdentity,
) -> JudgementRecord {
    JudgementRecord {
        key: JudgementRecord::key_of(&request.event_id, agent),
        event_id: request.event_id.clone(),
        request_hash: String::new(),
        provider: who.provider.clone(),
        model: who.model.clone(),
        prompt_version: who.prompt_version.clone(),
        raw_reply: String::new(),
        input_tokens: 0,
        output_tokens: 0,
        analysis: fallback_analysis(agent, request, reason, who),
    }
}

/// A decided request: its decision, the journal records it used, and what the caller held
/// for it (a capability, in the operator).
#[derive(Debug)]
pub struct Judged<H> {
    /// The decision, judges combined in.
    pub decision: Decision,
    /// One record per agent asked, in agent order.
    pub records: Vec<JudgementRecord>,
    /// What was held while waiting.
    pub held: H,
    /// How long the request waited for its agents.
    pub waited: Duration,
}

struct Waiting<H> {
    decision: Decision,
    request: Box<JudgeRequest>,
    answers: Vec<JudgementRecord>,
    admitted: Instant,
    deadline: Instant,
    held: H,
}

/// Requests waiting for their agents, by ticket, with their deadlines.
pub struct JudgeLedger<H> {
    decider: Decider,
    timeout: Duration,
    next_ticket: u64,
    waiting: HashMap<u64, Waiting<H>>,
}

impl<H> JudgeLedger<H> {
    /// A ledger deciding with `decider`, waiting at most `timeout` per request.
    pub fn new(decider: Decider, timeout: Duration) -> Self {
        JudgeLedger {
            decider,
            timeout,
            next_ticket: 0,
            waiting: HashMap::new(),
        }
    }

    /// Requests still waiting.
    pub fn len(&self) -> usize {
        self.waiting.len()
    }

    /// Whether none waits.
    pub fn is_empty(&self) -> bool {
        self.waiting.is_empty()
    }

    /// Starts waiting for the agents of `ruling`; returns its ticket and the request to submit.
    pub fn admit(&mut self, ruling: Ruling, held: H, now: Instant) -> (u64, JudgeRequest) {
        let Ruling {
            decision,
            judge: request,
        } = ruling;
        let ticket = self.next_ticket;
        self.next_ticket += 1;
        let copy = (*request).clone();
        self.waiting.insert(
            ticket,
            Waiting {
                decision,
                request,
                answers: Vec::new(),
                admitted: now,
                deadline: now + self.timeout,
                held,
            },
        );
        (ticket, copy)
    }

    /// Records one agent's answer; returns the request once every agent has answered.
    /// Answers for an unknown ticket (decided already) or a repeated agent are dropped.
    pub fn answer(&mut self, ticket: u64, record: JudgementRecord) -> Option<Judged<H>> {
        let w = self.waiting.get_mut(&ticket)?;
        let agent = record.analysis.agent_type;
        if !w.request.agents.contains(&agent) || w.answers.iter().any(|a| a.analysis.agent_type == agent) {
            return None;
        }
        w.answers.push(record);
        if w.answers.len() < w.request.agents.len() {
            return None;
        }
        let w = self.waiting.remove(&ticket)?;
        Some(self.decide(w, |_| unreachable!("every agent answered")))
    }

    /// Decides every request past its deadline, its missing agents falling back with
    /// `timeout`.
    pub fn expire(&mut self, now: Instant, who: &dyn Fn(AgentType) -> AgentIdentity) -> Vec<Judged<H>> {
        let due: Vec<u64> = self
            .waiting
            .iter()
            .filter(|(_, w)| w.deadline <= now)
            .map(|(t, _)| *t)
            .collect();
        let expired: Vec<Waiting<H>> = due.into_iter().filter_map(|t| self.waiting.remove(&t)).collect();
        let mut out: Vec<Judged<H>> = expired
            .into_iter()
            .map(|w| {
                self.decide(w, |(agent, request)| {
                    fallback_record(agent, request, FallbackReason::Timeout, &who(agent))
                })
            })
            .collect();
        out.sort_by(|a, b| a.decision.event_id().cmp(b.decision.event_id()));
        out
    }

    /// Decides `ticket` at once, every agent falling back with `reason` (a full queue).
    pub fn fall_back(
        &mut self,
        ticket: u64,
        reason: FallbackReason,
        who: &dyn Fn(AgentType) -> AgentIdentity,
    ) -> Option<Judged<H>> {
        let w = self.waiting.remove(&ticket)?;
        Some(self.decide(w, |(agent, request)| {
            fallback_record(agent, request, reason, &who(agent))
        }))
    }

    /// How long until the next deadline (zero if one has passed).
    pub fn next_deadline(&self, now: Instant) -> Option<Duration> {
        self.waiting
            .values()
            .map(|w| w.deadline.saturating_duration_since(now))
            .min()
    }

    fn decide(&self, w: Waiting<H>, missing: impl Fn((AgentType, &JudgeRequest)) -> JudgementRecord) -> Judged<H> {
        let Waiting {
            mut decision,
            request,
            mut answers,
            held,
            admitted,
            ..
        } = w;
        for agent in &request.agents {
            if !answers.iter().any(|a| a.analysis.agent_type == *agent) {
                answers.push(missing((*agent, &request)));
            }
        }
        answers.sort_by_key(|a| a.analysis.agent_type);
        let analyses = answers.iter().map(|a| a.analysis.clone()).collect();
        self.decider.with_judges(&mut decision, analyses, &request.thresholds);
        Judged {
            decision,
            records: answers,
            held,
            waited: admitted.elapsed(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{AggregatedRisk, DecisionFindings, EventType, Excerpt, RiskScores, RiskThresholds, Tier};

    fn who(_: AgentType) -> AgentIdentity {
        AgentIdentity {
            provider: "local".into(),
            model: "m".into(),
            prompt_version: "v1".into(),
        }
    }

    fn ruling(id: &str) -> Ruling {
        let scores = RiskScores {
            input: 0.9,
            state: 0.0,
            output: 0.0,
        };
        Ruling {
            decision: Decision {
                id: crate::hash::StableId::of(&[id.as_bytes()]),
                keys: crate::model::EntityKeys::new([id, "a", "", "", "", ""]).unwrap(),
                timestamp_ms: 0,
                event_type: EventType::Request,
                blocked: false,
                tier: Tier::Escalate,
                risk_scores: scores,
                aggregated_risk: AggregatedRisk {
                    overall_risk_score: 0.9,
                    overall_risk_level: crate::model::RiskLevel::High,
                },
                shadow_agent_escalated: false,
                escalation_reason: Some("input: x".into()),
                shadow_agent_analyses: vec![],
                findings: DecisionFindings::default(),
                behaviors: vec![],
            },
            judge: Box::new(JudgeRequest {
                event_id: id.into(),
                tenant_id: "t".into(),
                application_id: "a".into(),
                rule_scores: scores,
                thresholds: RiskThresholds::default(),
                rule_findings: vec!["input: x".into()],
                agents: vec![AgentType::ShadowInput, AgentType::ShadowState],
                excerpt: Excerpt::default(),
                session: vec![],
            }),
        }
    }

    fn verdict(event: &str, agent: AgentType, risk: f32) -> JudgementRecord {
        let mut r = fallback_record(agent, &ruling(event).judge, FallbackReason::Timeout, &who(agent));
        r.analysis.fallback_used = false;
        r.analysis.fallback_reason = None;
        r.analysis.risk_score = risk;
        r.analysis.confidence = 0.95;
        r
    }

    #[test]
    fn a_request_is_decided_when_its_last_agent_answers_or_at_its_deadline() {
        let t0 = Instant::now();
        let mut ledger = JudgeLedger::new(Decider::default(), Duration::from_millis(100));
        let (a, _) = ledger.admit(ruling("a"), "cap-a", t0);
        let (b, req) = ledger.admit(ruling("b"), "cap-b", t0);
        assert_eq!(req.agents.len(), 2);
        assert!(ledger.answer(a, verdict("a", AgentType::ShadowState, 0.1)).is_none());
        // A repeated agent is dropped, not counted twice.
        assert!(ledger.answer(a, verdict("a", AgentType::ShadowState, 0.1)).is_none());
        let done = ledger.answer(a, verdict("a", AgentType::ShadowInput, 0.2)).unwrap();
        assert_eq!(done.held, "cap-a");
        assert_eq!(done.decision.tier, Tier::Warn, "confident low verdicts lower it");
        let agents: Vec<AgentType> = done
            .decision
            .shadow_agent_analyses
            .iter()
            .map(|x| x.agent_type)
            .collect();
        assert_eq!(agents, vec![AgentType::ShadowInput, AgentType::ShadowState]);

        assert!(ledger.answer(b, verdict("b", AgentType::ShadowInput, 0.99)).is_none());
        assert!(ledger.expire(t0 + Duration::from_millis(99), &who).is_empty());
        assert_eq!(
            ledger.next_deadline(t0 + Duration::from_millis(40)),
            Some(Duration::from_millis(60))
        );
        let late = ledger.expire(t0 + Duration::from_millis(100), &who);
        assert_eq!(late.len(), 1);
        let d = &late[0].decision;
        assert_eq!(d.tier, Tier::Block, "the one verdict that arrived counts");
        assert_eq!(
            d.shadow_agent_analyses[1].fallback_reason,
            Some(FallbackReason::Timeout)
        );
        assert!(ledger.is_empty());
        // Too late: dropped.
        assert!(ledger.answer(b, verdict("b", AgentType::ShadowState, 0.1)).is_none());
    }
}
