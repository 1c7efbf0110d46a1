//! Behavioral detectors over one actor's recent events: agent loops, tool misuse, model
//! switching, request floods and cost runaway. Plain state machines, fed in event order per
//! actor (user, else session); the operator keeps one [`ActorState`] per actor.

use std::collections::VecDeque;

use serde::{Deserialize, Serialize};

use crate::model::{noisy_or, EventType, KeyField, ScreenedEvent, SessionStep};

/// Thresholds of the behavioral detectors. Field names are the config keys.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct BehaviorConfig {
    /// The same tool with the same arguments this many times in a row is a loop.
    pub loop_repeats: usize,
    /// A cycle of two or three calls (A-B-A-B...) repeated this many times is a loop.
    pub cycle_repeats: usize,
    /// More tool calls than this per session within `burst_window_ms` is a burst.
    pub tool_burst: usize,
    /// Window of the tool-burst and flood counts.
    pub burst_window_ms: u64,
    /// More requests than this per user within `burst_window_ms` is a flood.
    pub flood_requests: usize,
    /// Model switching: the last `switch_window` calls of a user...
    pub switch_window: usize,
    /// ...using more distinct models than this fraction of them.
    pub switch_ratio: f64,
    /// A session costing more than this (in the events' currency) is running away.
    pub session_cost_limit: f64,
    /// Actors idle this long (event time) are forgotten.
    pub idle_ttl_ms: u64,
    /// Recent steps kept per actor for the state judge; 0 (judges off) keeps none. Set by the
    /// judges' configuration, not a key of its own.
    #[serde(skip)]
    pub session_steps: usize,
}

impl Default for BehaviorConfig {
    fn default() -> Self {
        BehaviorConfig {
            loop_repeats: 4,
            cycle_repeats: 3,
            tool_burst: 60,
            burst_window_ms: 60_000,
            flood_requests: 600,
            switch_window: 20,
            switch_ratio: 0.25,
            session_cost_limit: 10.0,
            idle_ttl_ms: 3_600_000,
            session_steps: 0,
        }
    }
}

/// The behavioral detectors; serialized as their detector ids.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum BehaviorKind {
    /// The same call, or a short cycle of calls, repeated.
    AgentLoop,
    /// A tool outside the application's allowed set.
    ToolMisuse,
    /// Too many tool calls in a session within the burst window.
    ToolBurst,
    /// Too many distinct models among a user's recent calls.
    ModelSwitching,
    /// Too many requests from a user within the burst window.
    RequestFlood,
    /// A session's cost over its limit.
    CostRunaway,
}

impl BehaviorKind {
    /// Every kind.
    pub const ALL: [BehaviorKind; 6] = [
        BehaviorKind::AgentLoop,
        BehaviorKind::ToolMisuse,
        BehaviorKind::ToolBurst,
        BehaviorKind::ModelSwitching,
        BehaviorKind::RequestFlood,
        BehaviorKind::CostRunaway,
    ];

    /// The detector id, as anomalies and decisions name it.
    pub fn id(self) -> &'static str {
        match self {
            BehaviorKind::AgentLoop => "agent-loop",
            BehaviorKind::ToolMisuse => "tool-misuse",
            BehaviorKind::ToolBurst => "tool-burst",
            BehaviorKind::ModelSwitching => "model-switching",
            BehaviorKind::RequestFlood => "request-flood",
            BehaviorKind::CostRunaway => "cost-runaway",
        }
    }
}

/// One behavioral detection.
#[derive(Clone, Debug, PartialEq)]
pub struct BehaviorSignal {
    /// Which detector fired.
    pub kind: BehaviorKind,
    /// Risk in 0..1.
    pub score: f32,
    /// `user` or `session`.
    pub entity_type: &'static str,
    /// The user or session id.
    pub entity_id: String,
    /// One-line summary.
    pub title: String,
    /// What was observed against what limit.
    pub observed: f64,
    /// The configured limit.
    pub threshold: f64,
}

/// What one actor did recently. Serializable: it is checkpointed to the state topic, since
/// the offsets a restart resumes from do not rebuild it.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct ActorState {
    /// Last event time seen, for eviction.
    pub last_seen_ms: u64,
    /// Recent tool calls: (session, tool name hash, arguments hash), newest last.
    tools: VecDeque<(u64, u64, u64)>,
    /// Times of recent tool calls and their sessions, per burst window.
    tool_times: VecDeque<(u64, u64)>,
    /// Times of recent requests.
    request_times: VecDeque<u64>,
    /// Recent models (hashes), newest last.
    models: VecDeque<u64>,
    /// How many of `models` each model is: its length is the number of distinct models.
    /// Kept as models come and go (rebuilt on restore), since it is asked on every call.
    #[serde(skip)]
    model_counts: Vec<(u64, u32)>,
    /// Cost per session: (session hash, total, already reported).
    session_costs: Vec<(u64, f64, bool)>,
    /// Detectors currently firing and their scores, so an ongoing condition is reported once,
    /// and still weighs on every event while it lasts.
    firing: Vec<(BehaviorKind, f32)>,
    /// The last `session_steps` steps, summarised, for the state judge.
    #[serde(default, skip_serializing_if = "VecDeque::is_empty")]
    steps: VecDeque<SessionStep>,
    /// Restored from a checkpoint: events up to `last_seen_ms` are in it already, and are
    /// skipped when read again.
    #[serde(skip)]
    restored: bool,
}

/// One actor's state as checkpointed to the state topic.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ActorSnapshot {
    /// The record key under which the newest snapshot is kept: namespace (the consumer
    /// group) and actor.
    pub state_key: String,
    /// The actor (user, else session, else application), as events are routed by it.
    pub actor: String,
    /// Its state: every one of its events at or before `state.last_seen_ms` is in it.
    pub state: ActorState,
}

impl ActorSnapshot {
    /// The record key of `actor`'s state in `namespace`.
    pub fn state_key(namespace: &str, actor: &str) -> String {
        format!("{namespace}|behavior|{actor}")
    }
}

impl ActorState {
    /// Marks a state read back from a checkpoint (see [`ActorState::already_seen`]).
    pub fn into_restored(mut self) -> Self {
        self.restored = true;
        self.model_counts.clear();
        for model in std::mem::take(&mut self.models) {
            self.count_model(model, true);
            self.models.push_back(model);
        }
        self
    }

    fn count_model(&mut self, model: u64, added: bool) {
        match self.model_counts.iter().position(|(m, _)| *m == model) {
            Some(i) if added => self.model_counts[i].1 += 1,
            Some(i) => {
                self.model_counts[i].1 -= 1;
                if self.model_counts[i].1 == 0 {
                    self.model_counts.swap_remove(i);
                }
            }
            None if added => self.model_counts.push((model, 1)),
            None => {}
        }
    }

    /// Whether an event at `timestamp_ms` is already in a restored state. Events reach an
    /// actor in time order, one frontier at a time, so a checkpoint as of `last_seen_ms`
    /// holds every event of the actor up to then; the first later event ends the replay.
    pub fn already_seen(&mut self, timestamp_ms: u64) -> bool {
        if self.restored && timestamp_ms <= self.last_seen_ms {
            return true;
        }
        self.restored = false;
        false
    }

    /// Feeds one event; returns what fired. `allowed_tools` empty allows any tool.
    pub fn observe(
        &mut self,
        cfg: &BehaviorConfig,
        ev: &ScreenedEvent,
        allowed_tools: &[String],
    ) -> Vec<BehaviorSignal> {
        let mut out = Vec::new();
        let now = ev.timestamp_ms;
        self.last_seen_ms = self.last_seen_ms.max(now);
        if cfg.session_steps > 0 {
            self.record_step(cfg.session_steps, ev);
        }
        let session = ev.keys.get(KeyField::Session);
        let user = ev.keys.get(KeyField::User);
        let session_key = crate::hash::hash64(session.as_bytes());
        let entity = |kind: &'static str| -> (&'static str, String) {
            match kind {
                "session" if !session.is_empty() => ("session", session.to_owned()),
                _ if !user.is_empty() => ("user", user.to_owned()),
                _ => ("session", session.to_owned()),
            }
        };

        if ev.event_type == EventType::ToolCall {
            let tool = ev.tool.as_deref().unwrap_or("");
            if !allowed_tools.is_empty() && !allowed_tools.iter().any(|t| t == tool) {
                let (entity_type, entity_id) = entity("session");
                out.push(BehaviorSignal {
                    kind: BehaviorKind::ToolMisuse,
                    score: 0.85,
                    entity_type,
                    entity_id,
                    title: format!("tool `{tool}` is not allowed for this application"),
                    observed: 1.0,
                    threshold: 0.0,
                });
            }
            self.tools
                .push_back((session_key, crate::hash::hash64(tool.as_bytes()), ev.tool_args_hash));
            let keep = (cfg.loop_repeats.max(cfg.cycle_repeats * 3)).max(6);
            while self.tools.len() > keep {
                self.tools.pop_front();
            }
            let fired = self.loop_signal(cfg, session_key).map(|(what, n)| {
                let (entity_type, entity_id) = entity("session");
                BehaviorSignal {
                    kind: BehaviorKind::AgentLoop,
                    score: 0.8,
                    entity_type,
                    entity_id,
                    title: format!("agent loop: {what}"),
                    observed: n as f64,
                    threshold: cfg.loop_repeats as f64,
                }
            });
            self.edge(BehaviorKind::AgentLoop, fired, &mut out);

            self.tool_times.push_back((now, session_key));
            while self
                .tool_times
                .front()
                .is_some_and(|(t, _)| *t + cfg.burst_window_ms <= now)
            {
                self.tool_times.pop_front();
            }
            let n = self.tool_times.iter().filter(|(_, s)| *s == session_key).count();
            let fired = (n > cfg.tool_burst).then(|| {
                let (entity_type, entity_id) = entity("session");
                BehaviorSignal {
                    kind: BehaviorKind::ToolBurst,
                    score: 0.6,
                    entity_type,
                    entity_id,
                    title: format!("{n} tool calls within {} s", cfg.burst_window_ms / 1000),
                    observed: n as f64,
                    threshold: cfg.tool_burst as f64,
                }
            });
            self.edge(BehaviorKind::ToolBurst, fired, &mut out);
        }

        // Calls are counted once, on their response or error, as the metrics count them.
        if matches!(ev.event_type, EventType::Response | EventType::Error) {
            push_window(&mut self.request_times, now, cfg.burst_window_ms);
            let n = self.request_times.len();
            let fired = (n > cfg.flood_requests).then(|| {
                let (entity_type, entity_id) = entity("user");
                BehaviorSignal {
                    kind: BehaviorKind::RequestFlood,
                    score: 0.7,
                    entity_type,
                    entity_id,
                    title: format!("{n} requests within {} s", cfg.burst_window_ms / 1000),
                    observed: n as f64,
                    threshold: cfg.flood_requests as f64,
                }
            });
            self.edge(BehaviorKind::RequestFlood, fired, &mut out);

            let model = ev.keys.get(KeyField::Model);
            if !model.is_empty() && cfg.switch_window > 0 {
                let model = crate::hash::hash64(model.as_bytes());
                self.models.push_back(model);
                self.count_model(model, true);
                while self.models.len() > cfg.switch_window {
                    if let Some(old) = self.models.pop_front() {
                        self.count_model(old, false);
                    }
                }
                let distinct = self.model_counts.len();
                let fired = (self.models.len() == cfg.switch_window)
                    .then(|| distinct as f64 / self.models.len() as f64)
                    .filter(|ratio| *ratio > cfg.switch_ratio)
                    .map(|ratio| {
                        let (entity_type, entity_id) = entity("user");
                        BehaviorSignal {
                            kind: BehaviorKind::ModelSwitching,
                            score: 0.5,
                            entity_type,
                            entity_id,
                            title: format!("{distinct} distinct models in the last {} calls", cfg.switch_window),
                            observed: ratio,
                            threshold: cfg.switch_ratio,
                        }
                    });
                self.edge(BehaviorKind::ModelSwitching, fired, &mut out);
            }
        }

        if ev.cost > 0.0 && !session.is_empty() {
            let slot = match self.session_costs.iter().position(|(s, _, _)| *s == session_key) {
                Some(i) => i,
                None => {
                    if self.session_costs.len() >= 16 {
                        self.session_costs.remove(0);
                    }
                    self.session_costs.push((session_key, 0.0, false));
                    self.session_costs.len() - 1
                }
            };
            let (_, total, reported) = &mut self.session_costs[slot];
            *total += ev.cost;
            if *total > cfg.session_cost_limit && !*reported {
                *reported = true;
                out.push(BehaviorSignal {
                    kind: BehaviorKind::CostRunaway,
                    score: 0.75,
                    entity_type: "session",
                    entity_id: session.to_owned(),
                    title: format!("session cost {:.2} exceeds {:.2}", total, cfg.session_cost_limit),
                    observed: *total,
                    threshold: cfg.session_cost_limit,
                });
            }
        }
        out
    }

    /// The actor's recent steps, oldest first (empty unless `session_steps` is set).
    pub fn recent_steps(&self) -> Vec<SessionStep> {
        self.steps.iter().cloned().collect()
    }

    fn record_step(&mut self, keep: usize, ev: &ScreenedEvent) {
        let name = match &ev.tool {
            Some(tool) => tool.to_string(),
            None => ev.keys.get(KeyField::Model).to_owned(),
        };
        let risk = noisy_or([&ev.input, &ev.output].map(|v| v.as_ref().map_or(0.0, |v| v.score)));
        self.steps.push_back(SessionStep {
            at_ms: ev.timestamp_ms,
            kind: ev.event_type,
            name,
            risk,
        });
        while self.steps.len() > keep {
            self.steps.pop_front();
        }
    }

    /// The strongest condition still going on (a loop not yet broken, a flood not yet over).
    pub fn ongoing_risk(&self) -> f32 {
        self.firing.iter().map(|(_, s)| *s).fold(0.0, f32::max)
    }

    /// Reports a condition when it starts, and re-arms once it has cleared.
    fn edge(&mut self, id: BehaviorKind, fired: Option<BehaviorSignal>, out: &mut Vec<BehaviorSignal>) {
        let was = self.firing.iter().any(|(f, _)| *f == id);
        match fired {
            Some(signal) if !was => {
                self.firing.push((id, signal.score));
                out.push(signal);
            }
            Some(_) => {}
            None if was => self.firing.retain(|(f, _)| *f != id),
            None => {}
        }
    }

    /// Same call repeated, or a short cycle repeated, at the end of this session's calls.
    fn loop_signal(&self, cfg: &BehaviorConfig, session: u64) -> Option<(String, usize)> {
        let calls: Vec<(u64, u64)> = self
            .tools
            .iter()
            .filter(|(s, _, _)| *s == session)
            .map(|(_, t, a)| (*t, *a))
            .collect();
        let last = *calls.last()?;
        let repeats = calls.iter().rev().take_while(|c| **c == last).count();
        if cfg.loop_repeats > 1 && repeats >= cfg.loop_repeats {
            return Some((format!("the same call {repeats} times in a row"), repeats));
        }
        for period in [2usize, 3] {
            let need = period * cfg.cycle_repeats;
            if cfg.cycle_repeats < 2 || calls.len() < need {
                continue;
            }
            let tail = &calls[calls.len() - need..];
            let distinct_in_cycle = distinct_pairs(&tail[..period]);
            if distinct_in_cycle == period && tail.iter().enumerate().all(|(i, c)| *c == tail[i % period]) {
                return Some((
                    format!("a cycle of {period} calls repeated {} times", cfg.cycle_repeats),
                    cfg.cycle_repeats,
                ));
            }
        }
        None
    }
}

fn push_window(times: &mut VecDeque<u64>, now: u64, width: u64) {
    times.push_back(now);
    while times.front().is_some_and(|t| *t + width <= now) {
        times.pop_front();
    }
}

fn distinct_pairs(items: &[(u64, u64)]) -> usize {
    let mut v = items.to_vec();
    v.sort_unstable();
    v.dedup();
    v.len()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::EntityKeys;

    fn event(ts: u64, kind: EventType, session: &str, model: &str, tool: Option<&str>, args: u64) -> ScreenedEvent {
        ScreenedEvent {
            timestamp_ms: ts,
            event_type: kind,
            is_error: false,
            cost: 0.0,
            total_tokens: 0,
            keys: EntityKeys::new([&format!("e{ts}"), "app", "t", model, "u1", session]).unwrap(),
            tool: tool.map(Into::into),
            tool_args_hash: args,
            input: None,
            output: None,
            excerpt: None,
        }
    }

    fn ids(signals: &[BehaviorSignal]) -> Vec<&'static str> {
        signals.iter().map(|s| s.kind.id()).collect()
    }

    #[test]
    fn the_same_call_repeated_is_a_loop_reported_once() {
        let cfg = BehaviorConfig::default();
        let mut st = ActorState::default();
        let mut fired = Vec::new();
        for i in 0..8 {
            fired.extend(st.observe(&cfg, &event(i, EventType::ToolCall, "s", "m", Some("search"), 7), &[]));
        }
        assert_eq!(ids(&fired), vec!["agent-loop"]);
        assert_eq!(fired[0].entity_type, "session");
        // Different arguments: progress, no loop.
        let mut st = ActorState::default();
        let fired: Vec<_> = (0..8)
            .flat_map(|i| st.observe(&cfg, &event(i, EventType::ToolCall, "s", "m", Some("search"), i), &[]))
            .collect();
        assert!(fired.is_empty(), "{fired:?}");
    }

    #[test]
    fn an_a_b_cycle_is_a_loop() {
        let cfg = BehaviorConfig::default();
        let mut st = ActorState::default();
        let mut fired = Vec::new();
        for i in 0..6 {
            let (tool, args) = if i % 2 == 0 { ("read", 1) } else { ("write", 2) };
            fired.extend(st.observe(&cfg, &event(i, EventType::ToolCall, "s", "m", Some(tool), args), &[]));
        }
        assert_eq!(ids(&fired), vec!["agent-loop"]);
        assert!(fired[0].title.contains("cycle of 2"), "{}", fired[0].title);
    }

    #[test]
    fn tools_outside_the_allowed_set_and_bursts_are_misuse() {
        let cfg = BehaviorConfig {
            tool_burst: 5,
            ..BehaviorConfig::default()
        };
        let allowed = vec!["search".to_owned()];
        let mut st = ActorState::default();
        let fired = st.observe(
            &cfg,
            &event(0, EventType::ToolCall, "s", "m", Some("shell"), 1),
            &allowed,
        );
        assert_eq!(ids(&fired), vec!["tool-misuse"]);
        let mut st = ActorState::default();
        let fired: Vec<_> = (0..7)
            .flat_map(|i| {
                st.observe(
                    &cfg,
                    &event(i * 100, EventType::ToolCall, "s", "m", Some("search"), i),
                    &allowed,
                )
            })
            .collect();
        assert_eq!(ids(&fired), vec!["tool-burst"]);
    }

    #[test]
    fn switching_models_and_floods_are_found_per_user() {
        let cfg = BehaviorConfig {
            switch_window: 10,
            flood_requests: 15,
            ..BehaviorConfig::default()
        };
        let mut st = ActorState::default();
        let steady: Vec<_> = (0..10)
            .flat_map(|i| st.observe(&cfg, &event(i * 10_000, EventType::Response, "s", "m1", None, 0), &[]))
            .collect();
        assert!(steady.is_empty());
        let mut st = ActorState::default();
        let models = ["a", "b", "c", "d", "e", "f", "g", "h", "i", "j"];
        let switching: Vec<_> = (0..20)
            .flat_map(|i| {
                st.observe(
                    &cfg,
                    &event(i * 10_000, EventType::Response, "s", models[i as usize % 10], None, 0),
                    &[],
                )
            })
            .collect();
        assert_eq!(ids(&switching), vec!["model-switching"]);
        let mut st = ActorState::default();
        let flood: Vec<_> = (0..40)
            .flat_map(|i| st.observe(&cfg, &event(i * 100, EventType::Response, "s", "m1", None, 0), &[]))
            .collect();
        assert_eq!(ids(&flood), vec!["request-flood"]);
        assert_eq!(flood[0].entity_type, "user");
    }

    #[test]
    fn model_switching_ends_when_old_models_leave_the_window_even_after_a_restore() {
        let cfg = BehaviorConfig {
            switch_window: 4,
            switch_ratio: 0.5,
            ..BehaviorConfig::default()
        };
        let call = |i: u64, model: &str| event(i * 10_000, EventType::Response, "s", model, None, 0);
        let mut st = ActorState::default();
        for (i, m) in ["a", "b", "c"].into_iter().enumerate() {
            assert!(st.observe(&cfg, &call(i as u64, m), &[]).is_empty());
        }
        // Four calls, three models: 0.75 > 0.5.
        let fired = st.observe(&cfg, &call(3, "a"), &[]);
        assert_eq!(fired[0].title, "3 distinct models in the last 4 calls");
        // Through a checkpoint: the counts are rebuilt from the window.
        let json = serde_json::to_string(&st).unwrap();
        let mut restored = serde_json::from_str::<ActorState>(&json).unwrap().into_restored();
        assert_eq!(restored.model_counts.len(), 3);
        for st in [&mut st, &mut restored] {
            // "a" four times pushes "b" and "c" out: one model left.
            for i in 4..7 {
                st.observe(&cfg, &call(i, "a"), &[]);
            }
            assert_eq!(st.model_counts, vec![(crate::hash::hash64(b"a"), 4)]);
            assert!(!st.firing.iter().any(|(k, _)| *k == BehaviorKind::ModelSwitching));
        }
    }

    #[test]
    fn session_cost_over_the_limit_is_reported_once() {
        let cfg = BehaviorConfig {
            session_cost_limit: 1.0,
            ..BehaviorConfig::default()
        };
        let mut st = ActorState::default();
        let mut fired = Vec::new();
        for i in 0..10 {
            let mut ev = event(i, EventType::Response, "s9", "m", None, 0);
            ev.cost = 0.3;
            fired.extend(st.observe(&cfg, &ev, &[]));
        }
        assert_eq!(ids(&fired), vec!["cost-runaway"]);
        assert_eq!(fired[0].entity_id, "s9");
        assert!(fired[0].observed > 1.0);
    }
}
