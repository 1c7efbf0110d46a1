//! A deterministic generator of realistic multi-tenant LLM traffic with labeled, injected anomalies.

mod catalog;
mod generator;
mod labels;
mod prompts;
mod rng;

pub use generator::{ArrivalSample, TraceConfig, TraceGenerator};
pub use labels::{Label, LabelCategory};
pub use prompts::{generate_prompts, GeneratedPrompt};
pub use rng::Rng;
