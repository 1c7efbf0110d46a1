//! Detection-quality evaluation against labeled benchmarks.

pub mod nab;
pub mod pii;
pub mod prompts;
pub mod series;
