//! Journal replay: answers every agent from the verdict journal of an earlier run, so a re-run
//! is deterministic, offline and free. A request the journal lacks falls back with
//! `not_in_journal`; nothing is ever called.

use std::collections::HashMap;

use sentinel_dataflows::judge::{fallback_record, AgentIdentity, JudgeReply, JudgeService, Overloaded};
use sentinel_dataflows::model::{AgentType, FallbackReason, JudgeRequest, JudgementRecord};

use crate::prompts;

/// Verdicts by journal key (`<event id>|<agent>`).
#[derive(Debug, Default)]
pub struct JournalReplay {
    records: HashMap<String, JudgementRecord>,
    provider: String,
    model: String,
}

impl JournalReplay {
    /// A replay of `records`; a key seen twice keeps its last record (as a compacted topic
    /// would).
    pub fn new(records: impl IntoIterator<Item = JudgementRecord>) -> Self {
        let mut replay = JournalReplay::default();
        for r in records {
            replay.provider.clone_from(&r.provider);
            replay.model.clone_from(&r.model);
            replay.records.insert(r.key.clone(), r);
        }
        replay
    }

    /// Parses a JSONL journal (`judgements.jsonl`), naming the first bad line.
    pub fn from_jsonl(text: &str) -> Result<Self, String> {
        let mut records = Vec::new();
        for (i, line) in text.lines().enumerate().filter(|(_, l)| !l.trim().is_empty()) {
            let r: JudgementRecord = serde_json::from_str(line).map_err(|e| format!("journal line {}: {e}", i + 1))?;
            records.push(r);
        }
        Ok(Self::new(records))
    }

    /// Verdicts held.
    pub fn len(&self) -> usize {
        self.records.len()
    }

    /// Whether the journal is empty.
    pub fn is_empty(&self) -> bool {
        self.records.is_empty()
    }
}

impl JudgeService for JournalReplay {
    fn submit(&self, request: JudgeRequest, reply: JudgeReply) -> Result<(), Overloaded> {
        for agent in &request.agents {
            let record = match self.records.get(&JudgementRecord::key_of(&request.event_id, *agent)) {
                Some(r) => r.clone(),
                None => fallback_record(*agent, &request, FallbackReason::NotInJournal, &self.identity(*agent)),
            };
            reply.send(record);
        }
        Ok(())
    }

    fn identity(&self, agent: AgentType) -> AgentIdentity {
        AgentIdentity {
            provider: self.provider.clone(),
            model: self.model.clone(),
            prompt_version: prompts::version(agent).to_owned(),
        }
    }
}
