//! Content guards: detectors that read prompt and response text. Plain structs, no timely types.

mod classifier;
mod content;
mod encoded;
mod injection;
mod injection_rules;
mod normalize;
mod pii;
mod risk;
mod screen;
pub mod validators;

pub use classifier::{learned_weight, rule_buckets, training_vector, PromptClassifier, ML_RULE};
pub use content::{pii_weight, ContentGuard, Finding, GuardPolicy, LayerVerdict, PolicyBook};
pub use encoded::{decoded_payloads, DecodedPayload, Encoding};
pub use injection::{InjectionFinding, InjectionReport, InjectionScanner};
pub use injection_rules::{AttackFamily, InjectionRule, RULES as INJECTION_RULES};
pub use normalize::{join_spelled, normalize, rot13, Disguises, FLOOD_RUN, MIN_ENCODED_RUN};
pub use pii::{PiiFinding, PiiKind, PiiScanner};
pub use risk::{noisy_or, Profile, RiskScores, RiskThresholds, Tier};
pub use screen::Screening;
