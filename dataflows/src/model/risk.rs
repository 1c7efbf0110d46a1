//! Risk scores and the decision tiers they map to.
//!
//! Every layer (input, state, output) yields a score in 0..1. Layers are independent evidence,
//! so the overall score combines them by noisy-OR. The tier thresholds come from a profile:
//! the shadow-agent seed's high-security, balanced and performance settings.

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

/// The seed's risk level names, lowest first.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RiskLevel {
    /// Well below the warn threshold.
    None,
    /// Below the warn threshold.
    Low,
    /// The warn tier.
    Medium,
    /// The escalate tier.
    High,
    /// The block tier.
    Critical,
}

impl RiskLevel {
    /// Wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            RiskLevel::None => "none",
            RiskLevel::Low => "low",
            RiskLevel::Medium => "medium",
            RiskLevel::High => "high",
            RiskLevel::Critical => "critical",
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

/// The score boundaries between tiers.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct RiskThresholds {
    /// At or above: warn (`low_risk_threshold`).
    pub low: f32,
    /// At or above: escalate (`medium_risk_threshold`).
    pub medium: f32,
    /// At or above: block (`high_risk_threshold`).
    pub high: f32,
}

impl Default for RiskThresholds {
    fn default() -> Self {
        Profile::Balanced.thresholds()
    }
}

impl RiskThresholds {
    /// The tier of a score.
    ///
    /// ```
    /// use sentinel_dataflows::guard::{Profile, Tier};
    /// let t = Profile::Balanced.thresholds();
    /// assert_eq!(t.tier(0.3), Tier::Allow);
    /// assert_eq!(t.tier(0.5), Tier::Warn);
    /// assert_eq!(t.tier(0.9), Tier::Escalate);
    /// assert_eq!(t.tier(0.95), Tier::Block);
    /// assert_eq!(Profile::HighSecurity.thresholds().tier(0.85), Tier::Block);
    /// ```
    pub fn tier(&self, score: f32) -> Tier {
        if score >= self.high {
            Tier::Block
        } else if score >= self.medium {
            Tier::Escalate
        } else if score >= self.low {
            Tier::Warn
        } else {
            Tier::Allow
        }
    }

    /// The seed's risk level of a score.
    pub fn level(&self, score: f32) -> RiskLevel {
        match self.tier(score) {
            Tier::Allow if score < self.low / 2.0 => RiskLevel::None,
            Tier::Allow => RiskLevel::Low,
            Tier::Warn => RiskLevel::Medium,
            Tier::Escalate => RiskLevel::High,
            Tier::Block => RiskLevel::Critical,
        }
    }

    /// Checks the order `0 < low <= medium <= high <= 1`.
    pub fn validate(&self) -> Result<(), String> {
        if 0.0 < self.low && self.low <= self.medium && self.medium <= self.high && self.high <= 1.0 {
            Ok(())
        } else {
            Err(format!(
                "thresholds must satisfy 0 < low <= medium <= high <= 1, got {} / {} / {}",
                self.low, self.medium, self.high
            ))
        }
    }
}

/// The seed's three configuration profiles.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Profile {
    /// Escalate early, block at 0.8.
    HighSecurity,
    /// 0.5 warn, 0.8 escalate, 0.95 block.
    #[default]
    Balanced,
    /// Escalate at 0.9, block at 0.98: fewer judge calls.
    Performance,
}

impl Profile {
    /// Parses `high_security`, `balanced` or `performance` (dashes accepted).
    pub fn parse(name: &str) -> Option<Profile> {
        match name.replace('-', "_").as_str() {
            "high_security" => Some(Profile::HighSecurity),
            "balanced" => Some(Profile::Balanced),
            "performance" => Some(Profile::Performance),
            _ => None,
        }
    }

    /// The profile's thresholds.
    pub fn thresholds(self) -> RiskThresholds {
        let (medium, high) = match self {
            Profile::HighSecurity => (0.5, 0.8),
            Profile::Balanced => (0.8, 0.95),
            Profile::Performance => (0.9, 0.98),
        };
        RiskThresholds { low: 0.5, medium, high }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn profiles_order_their_thresholds() {
        for p in [Profile::HighSecurity, Profile::Balanced, Profile::Performance] {
            p.thresholds().validate().unwrap();
        }
        assert!(RiskThresholds {
            low: 0.9,
            medium: 0.5,
            high: 0.95
        }
        .validate()
        .is_err());
        assert_eq!(Profile::parse("high-security"), Some(Profile::HighSecurity));
        assert_eq!(Profile::parse("fast"), None);
    }

    #[test]
    fn levels_follow_tiers() {
        let t = Profile::Balanced.thresholds();
        assert_eq!(t.level(0.1), RiskLevel::None);
        assert_eq!(t.level(0.3), RiskLevel::Low);
        assert_eq!(t.level(0.6), RiskLevel::Medium);
        assert_eq!(t.level(0.85), RiskLevel::High);
        assert_eq!(t.level(0.99), RiskLevel::Critical);
        assert_eq!(Profile::Performance.thresholds().tier(0.95), Tier::Escalate);
    }
}
