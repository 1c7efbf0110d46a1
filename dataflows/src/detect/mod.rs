//! Detector logic as plain structs: no timely types, unit-tested on their own.

pub mod baseline;
pub mod metric;
pub mod statistical;

pub use baseline::{Baseline, BaselineConfig, Deviation, Direction, Strategy};
pub use metric::Metric;
pub use statistical::{SeverityBands, StatisticalConfig, StatisticalDetector};
