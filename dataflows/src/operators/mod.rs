//! Timely and differential operators, one per file. Each is a thin adapter around plain logic.

pub mod act;
pub mod assess;
pub mod checkpoints;
pub mod distinct;
pub mod ingest;
pub mod judge;
pub mod pre_aggregate;
pub mod route;
pub mod sink;
pub mod statistical;
pub mod stats;
pub mod tap;
pub mod window_merge;

pub use act::{Act, ActedStreams};
pub use assess::{Assess, Assessed};
pub use checkpoints::{AckGate, StateCheckpoints};
pub use distinct::{DistinctCount, DistinctCounts, DistinctKind, DistinctPair};
pub use ingest::{ingest, IngestConfig, RawRecord, ReadStatus, RecordReader};
pub use judge::{Judge, JudgedStreams};
pub use pre_aggregate::{AggregationPlan, PartialAggregate, PreAggregate};
pub use sink::{as_itself, GaugedSink, JsonSink, RecordSink, SinkKey};
pub use statistical::DetectStatistical;
pub use stats::{JobStats, JudgeTotals, Reading, ReadingKind, ReadingSource};
pub use tap::Tap;
pub use window_merge::WindowMerge;
