//! Content guards: detectors that read prompt and response text. Plain structs, no timely types.

mod pii;
pub mod validators;

pub use pii::{PiiFinding, PiiKind, PiiScanner};
