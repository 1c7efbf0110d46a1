//! The records of the state topic: detector state that committed offsets do not rebuild.

use serde::{Deserialize, Serialize};

use super::behavior::ActorSnapshot;
use super::statistical::BaselineSnapshot;
use crate::act::ActionSnapshot;

/// One record of the state topic, tagged by `kind` so every state a restart needs shares one
/// compacted topic.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum StateRecord {
    /// A statistical detector's baseline of one entity.
    Baseline(BaselineSnapshot),
    /// The behavioral state of one actor.
    Actor(ActorSnapshot),
    /// The actions stage's open conditions, incidents and alert groups.
    Actions(ActionSnapshot),
}

impl StateRecord {
    /// The record key: the newest record per key is the state.
    pub fn state_key(&self) -> &str {
        match self {
            StateRecord::Baseline(b) => &b.state_key,
            StateRecord::Actor(a) => &a.state_key,
            StateRecord::Actions(a) => &a.state_key,
        }
    }
}

/// Detector state read back at start.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct RestoredState {
    /// Statistical baselines.
    pub baselines: Vec<BaselineSnapshot>,
    /// Behavioral actor states.
    pub actors: Vec<ActorSnapshot>,
    /// The actions stage's state.
    pub actions: Option<ActionSnapshot>,
}

impl RestoredState {
    /// Sorts the newest record of each key by kind.
    pub fn from_records(records: impl IntoIterator<Item = StateRecord>) -> Self {
        let mut restored = RestoredState::default();
        for record in records {
            match record {
                StateRecord::Baseline(b) => restored.baselines.push(b),
                StateRecord::Actor(a) => restored.actors.push(a),
                StateRecord::Actions(a) => restored.actions = Some(a),
            }
        }
        restored
    }

    /// Records restored.
    pub fn len(&self) -> usize {
        self.baselines.len() + self.actors.len() + usize::from(self.actions.is_some())
    }

    /// Nothing restored.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}
