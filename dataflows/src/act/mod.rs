//! The actions stage: what follows a detection. Plain structs, with no timely types, that
//! the actions operator drives in event time.

mod grouping;
mod suppress;

pub use grouping::{GroupNotification, GroupTiming, Grouper, NotifyReason};
pub use suppress::{InhibitRule, Labels, Matcher, Silence, Suppression, Suppressor};
