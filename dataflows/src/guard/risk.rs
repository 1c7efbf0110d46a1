//! Risk scores, tiers and profiles live in the data model ([`crate::model::risk`]); the guards
//! re-export them under their old paths.

pub use crate::model::{noisy_or, Profile, RiskScores, RiskThresholds, Tier};
