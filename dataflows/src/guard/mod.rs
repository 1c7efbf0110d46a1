//! Content guards: detectors that read prompt and response text. Plain structs, no timely types.

mod encoded;
mod injection;
mod injection_rules;
mod normalize;
mod pii;
mod risk;
pub mod validators;

pub use encoded::{decoded_payloads, DecodedPayload, Encoding};
pub use injection::{InjectionFinding, InjectionReport, InjectionScanner};
pub use injection_rules::{AttackFamily, InjectionRule, RULES as INJECTION_RULES};
pub use normalize::{join_spelled, looks_rot13, normalize, rot13, Disguises};
pub use pii::{PiiFinding, PiiKind, PiiScanner};
pub use risk::{noisy_or, Profile, RiskScores, RiskThresholds, Tier};
