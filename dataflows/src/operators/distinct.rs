//! Distinct users and models per application and window, as a differential computation.
//!
//! Each `(application, kind, value, window)` pair enters the collection at the window's end and is
//! retracted one window later, so the arrangements stay bounded while `distinct` and `count`
//! maintain the answer incrementally across workers.

use differential_dataflow::operators::{CountTotal, ThresholdTotal};
use differential_dataflow::AsCollection;
use serde::{Deserialize, Serialize};
use timely::dataflow::operators::vec::{Filter, Map};
use timely::dataflow::Stream;

/// What is being counted per application.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum DistinctKind {
    /// Distinct `metadata.user_id`.
    User,
    /// Distinct `data.model`.
    Model,
}

/// One worker's sighting of a user or model in an application's window.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct DistinctPair {
    /// Application id.
    pub app: String,
    /// User or model.
    pub kind: DistinctKind,
    /// Hash of the user or model id.
    pub value_hash: u64,
    /// Window width, ms.
    pub width_ms: u64,
    /// Window end, epoch ms.
    pub window_end: u64,
}

/// The number of distinct users or models of one application in one window.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct DistinctCount {
    /// Application id.
    pub app: String,
    /// User or model.
    pub kind: DistinctKind,
    /// Window width, ms.
    pub width_ms: u64,
    /// Window end, epoch ms.
    pub window_end: u64,
    /// Distinct values seen across all workers.
    pub count: u64,
}

/// Extension trait for [`DistinctCounts::distinct_counts`].
pub trait DistinctCounts<'scope> {
    /// Counts distinct values per `(app, kind, window)`, emitted at the window's end.
    fn distinct_counts(self) -> Stream<'scope, u64, Vec<DistinctCount>>;
}

impl<'scope> DistinctCounts<'scope> for Stream<'scope, u64, Vec<DistinctPair>> {
    fn distinct_counts(self) -> Stream<'scope, u64, Vec<DistinctCount>> {
        self.flat_map(|p: DistinctPair| {
            let (t, expiry) = (p.window_end, p.window_end + p.width_ms);
            let record = (p.app, p.kind, p.width_ms, p.window_end, p.value_hash);
            [(record.clone(), t, 1isize), (record, expiry, -1isize)]
        })
        .as_collection()
        .distinct_total()
        .map(|(app, kind, width_ms, window_end, _value)| (app, kind, width_ms, window_end))
        .count_total()
        .inner
        .filter(|(_, _time, diff)| *diff > 0)
        .map(
            |(((app, kind, width_ms, window_end), count), _time, _diff)| DistinctCount {
                app,
                kind,
                width_ms,
                window_end,
                count: count.max(0) as u64,
            },
        )
    }
}
