//! Detector logic as plain structs: no timely types, unit-tested on their own.

pub mod assembly;
pub mod assess;
pub mod baseline;
pub mod behavior;
pub mod checkpoint;
pub mod decide;
pub mod escalation;
pub mod metric;
pub mod seasonal;
pub mod statistical;

pub use assembly::CONTENT_DETECTORS;
pub use assess::{Assessment, Assessor, Ruled};
pub use baseline::{Baseline, BaselineConfig, Deviation, Direction, Strategy};
pub use behavior::{ActorSnapshot, ActorState, BehaviorConfig, BehaviorKind, BehaviorSignal};
pub use checkpoint::{RestoredState, StateRecord};
pub use decide::Decider;
pub use escalation::{AgentSwitches, Escalated, Escalation};
pub use metric::Metric;
pub use seasonal::{SeasonPeriod, SeasonalConfig, SeasonalState};
pub use statistical::{BaselineSnapshot, Judgement, SeverityBands, StatisticalConfig, StatisticalDetector};
