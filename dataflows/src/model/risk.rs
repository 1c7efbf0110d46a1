//! Risk scores and the decision tiers they map to.
//!
//! Every layer (input, state, output) yields a score in 0..1. Layers are independent evidence,
//! so the overall score combines them by noisy-OR.

use serde::{Deserialize, Serialize};

/// What happens to a request.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Tier {
    /// Below the warn threshold.
    Allow,
    /// Flag it and let it through.
    Warn,
    /// Ask the LLM judges (shadow agents).
    Escalate,
    /// Stop it.
    Block,
}

impl Tier {
    /// Every tier, lowest first.
    pub const ALL: [Tier; 4] = [Tier::Allow, Tier::Warn, Tier::Escalate, Tier::Block];

    /// Wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            Tier::Allow => "allow",
            Tier::Warn => "warn",
            Tier::Escalate => "escalate",
            Tier::Block => "block",
        }
    }
}

/// Per-layer scores of one request.
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct RiskScores {
    /// Prompt guards.
    pub input: f32,
    /// Session and behaviour.
    pub state: f32,
    /// Response guards.
    pub output: f32,
}

impl RiskScores {
    /// The overall score: noisy-OR of the layers.
    ///
    /// ```
    /// use sentinel_dataflows::model::RiskScores;
    /// let r = RiskScores { input: 0.5, state: 0.0, output: 0.5 };
    /// assert!((r.overall() - 0.75).abs() < 1e-6);
    /// ```
    pub fn overall(&self) -> f32 {
        noisy_or([self.input, self.state, self.output])
    }
}

/// `1 - Π(1 - p)`: the chance at least one independent signal is right.
pub fn noisy_or(scores: impl IntoIterator<Item = f32>) -> f32 {
    let miss: f32 = scores.into_iter().map(|p| 1.0 - p.clamp(0.0, 1.0)).product();
    (1.0 - miss).clamp(0.0, 1.0)
}
