//! The actions stage: what follows a detection. Plain structs, with no timely types, that
//! the actions operator drives in event time.

mod grouping;
mod planner;
mod records;
mod stage;
mod suppress;

pub use grouping::{GroupNotification, GroupTiming, Grouper, NotifyReason};
pub use planner::{
    action_id, plan, ActionSpec, Plan, PlannedAction, PlannedKind, Priority, ShieldActionType, SkippedAction,
    TargetKind,
};
pub use records::{
    ActionStatus, AlertRecord, AlertStatus, CallbackStatus, DeliveryState, IncidentBody, IncidentMetadata, IncidentOp,
    IncidentRecord, ShieldCallback, ShieldRecord, WebhookEvent, WebhookRecord, WebhookSubject,
};
pub use stage::{labels_of, ActConfig, Acted, ActionSnapshot, ActionStage, LABELS};
pub use suppress::{InhibitRule, Labels, Matcher, Silence, Suppression, Suppressor};
