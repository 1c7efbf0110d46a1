//! Local pre-aggregation: each worker folds its own events into per-key window totals and, when
//! the watermark passes a window, ships one partial per key instead of every event.

use std::cell::RefCell;
use std::rc::Rc;

use hashbrown::HashSet;
use hdrhistogram::Histogram;
use serde::{Deserialize, Serialize};
use timely::container::CapacityContainerBuilder;
use timely::dataflow::channels::pact::Pipeline;
use timely::dataflow::operators::generic::builder_rc::OperatorBuilder;
use timely::dataflow::operators::generic::OutputBuilder;
use timely::dataflow::operators::Capability;
use timely::dataflow::Stream;

use super::distinct::{DistinctKind, DistinctPair};
use super::stats::monotonic_ns;
use crate::hash::hash64;
use crate::model::{KeyField, MetricEvent};
use crate::state::KeyedSlab;
use crate::window::{window_end, Dimension, WindowAccumulator};

/// Which windows to keep, per width, and for which entity kinds.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct AggregationPlan {
    /// `(width_ms, dimensions)` pairs; widths are distinct.
    pub groups: Vec<(u64, Vec<Dimension>)>,
    /// Widths at which distinct users and models per application are counted (each also needs
    /// the application dimension in `groups`). Empty unless a detector or the aggregates output asks.
    pub distinct_widths: Vec<u64>,
    /// Sample event ids kept per key and window.
    pub max_samples: usize,
    /// `(width_ms, dimension)` pairs that need latency quantiles (a sketch per key).
    pub quantiles: Vec<(u64, Dimension)>,
}

impl AggregationPlan {
    /// Adds `dimension` at `width_ms`, once.
    pub fn require(&mut self, width_ms: u64, dimension: Dimension) {
        self.add(width_ms, dimension);
        self.groups.sort_by_key(|g| g.0);
    }

    /// Keeps latency quantiles for `dimension` at `width_ms` (and keeps those windows).
    pub fn require_quantiles(&mut self, width_ms: u64, dimension: Dimension) {
        self.require(width_ms, dimension);
        if !self.quantiles.contains(&(width_ms, dimension)) {
            self.quantiles.push((width_ms, dimension));
        }
    }

    /// Counts distinct users and models per application at `width_ms` (and keeps the application windows).
    pub fn require_distinct(&mut self, width_ms: u64) {
        self.require(width_ms, Dimension::Application);
        if !self.distinct_widths.contains(&width_ms) {
            self.distinct_widths.push(width_ms);
        }
    }

    /// Each dimension's narrowest window width, users' left out: what a chart of the
    /// aggregates needs, and all the serving store keeps.
    ///
    /// ```
    /// use sentinel_dataflows::operators::AggregationPlan;
    /// use sentinel_dataflows::window::Dimension;
    /// let mut plan = AggregationPlan::default();
    /// plan.require(300_000, Dimension::Application);
    /// plan.require(60_000, Dimension::Application);
    /// plan.require(60_000, Dimension::User);
    /// assert_eq!(plan.charted(), vec![(Dimension::Application, 60_000)]);
    /// ```
    pub fn charted(&self) -> Vec<(Dimension, u64)> {
        Dimension::ALL
            .into_iter()
            .filter(|d| *d != Dimension::User)
            .filter_map(|d| self.groups.iter().find(|(_, ds)| ds.contains(&d)).map(|(w, _)| (d, *w)))
            .collect()
    }

    fn add(&mut self, width_ms: u64, dimension: Dimension) {
        match self.groups.iter_mut().find(|g| g.0 == width_ms) {
            Some(g) if !g.1.contains(&dimension) => g.1.push(dimension),
            Some(_) => {}
            None => self.groups.push((width_ms, vec![dimension])),
        }
    }
}

/// One worker's totals for one key in one window.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct PartialAggregate {
    /// Entity kind.
    pub dimension: Dimension,
    /// Entity id.
    pub key: Box<str>,
    /// Window width, ms.
    pub width_ms: u64,
    /// Window end, epoch ms.
    pub window_end: u64,
    /// Totals from this worker.
    pub acc: WindowAccumulator,
}

struct Slot {
    partial_cap: Capability<u64>,
    pair_cap: Capability<u64>,
    per_dimension: Vec<(Dimension, bool, KeyedSlab<WindowAccumulator>)>,
    count_distinct: bool,
    pairs: HashSet<(Box<str>, DistinctKind, u64)>,
}

/// Extension trait for [`PreAggregate::pre_aggregate`].
pub trait PreAggregate<'scope> {
    /// Folds events into window partials (and distinct application pairs), emitted at each
    /// window's end once the input frontier passes it. Records read→folded latency in `latency_ns`.
    fn pre_aggregate(self, plan: AggregationPlan, latency_ns: Rc<RefCell<Histogram<u64>>>) -> PreAggregated<'scope>;
}

/// The partials and the distinct-count pairs of [`PreAggregate::pre_aggregate`].
pub type PreAggregated<'scope> = (
    Stream<'scope, u64, Vec<PartialAggregate>>,
    Stream<'scope, u64, Vec<DistinctPair>>,
);

impl<'scope> PreAggregate<'scope> for Stream<'scope, u64, Vec<MetricEvent>> {
    fn pre_aggregate(self, plan: AggregationPlan, latency_ns: Rc<RefCell<Histogram<u64>>>) -> PreAggregated<'scope> {
        let mut builder = OperatorBuilder::new("PreAggregate".to_owned(), self.scope());
        let mut input = builder.new_input(self, Pipeline);
        let (partials_out, partials) = builder.new_output::<Vec<PartialAggregate>>();
        let (pairs_out, pairs) = builder.new_output::<Vec<DistinctPair>>();
        let mut partials_out = OutputBuilder::<_, CapacityContainerBuilder<Vec<PartialAggregate>>>::from(partials_out);
        let mut pairs_out = OutputBuilder::<_, CapacityContainerBuilder<Vec<DistinctPair>>>::from(pairs_out);

        builder.build(move |_caps| {
            // Per width group, its open windows as (window end, slot). Usually one or two, the
            // newest last, so a short scan from the back beats a map lookup on every event.
            let mut open: Vec<Vec<(u64, Slot)>> = plan.groups.iter().map(|_| Vec::new()).collect();
            move |frontiers| {
                let mut hist = latency_ns.borrow_mut();
                input.for_each_stamp(|cap, data| {
                    let now = monotonic_ns();
                    for batch in data {
                        for ev in batch.drain(..) {
                            let _ = hist.record(now.saturating_sub(ev.read_ns).max(1));
                            for ((width, dims), windows) in plan.groups.iter().zip(open.iter_mut()) {
                                let end = window_end(ev.timestamp_ms, *width);
                                let at = match windows.iter().rposition(|(e, _)| *e == end) {
                                    Some(at) => at,
                                    None => {
                                        windows.push((
                                            end,
                                            new_slot(&plan, cap.delayed(&end, 0), cap.delayed(&end, 1), *width, dims),
                                        ));
                                        windows.len() - 1
                                    }
                                };
                                fold(&mut windows[at].1, &ev, &plan);
                            }
                        }
                    }
                });
                let frontier = &frontiers[0];
                for ((width, _), windows) in plan.groups.iter().zip(open.iter_mut()) {
                    let mut i = 0;
                    while i < windows.len() {
                        if frontier.less_than(&windows[i].0) {
                            i += 1;
                            continue;
                        }
                        let (end, slot) = windows.swap_remove(i);
                        emit(&mut partials_out, &mut pairs_out, slot, *width, end);
                    }
                }
            }
        });
        (partials, pairs)
    }
}

fn new_slot(
    plan: &AggregationPlan,
    partial_cap: Capability<u64>,
    pair_cap: Capability<u64>,
    width: u64,
    dims: &[Dimension],
) -> Slot {
    Slot {
        partial_cap,
        pair_cap,
        per_dimension: dims
            .iter()
            .map(|d| (*d, plan.quantiles.contains(&(width, *d)), KeyedSlab::default()))
            .collect(),
        count_distinct: plan.distinct_widths.contains(&width),
        pairs: HashSet::new(),
    }
}

type PartialsOut = OutputBuilder<u64, CapacityContainerBuilder<Vec<PartialAggregate>>>;
type PairsOut = OutputBuilder<u64, CapacityContainerBuilder<Vec<DistinctPair>>>;

/// Ships a closed window's partials and distinct pairs.
fn emit(partials_out: &mut PartialsOut, pairs_out: &mut PairsOut, slot: Slot, width_ms: u64, window_end: u64) {
    let mut partials = partials_out.activate();
    let mut session = partials.session(&slot.partial_cap);
    for (dimension, _, keys) in slot.per_dimension {
        session.give_iterator(keys.into_iter().map(|(key, acc)| PartialAggregate {
            dimension,
            key,
            width_ms,
            window_end,
            acc,
        }));
    }
    drop(session);
    if !slot.pairs.is_empty() {
        let mut pairs = pairs_out.activate();
        let mut session = pairs.session(&slot.pair_cap);
        session.give_iterator(slot.pairs.into_iter().map(|(app, kind, value_hash)| DistinctPair {
            app: app.into(),
            kind,
            value_hash,
            width_ms,
            window_end,
        }));
    }
}

#[inline]
fn fold(slot: &mut Slot, ev: &MetricEvent, plan: &AggregationPlan) {
    let count_distinct = slot.count_distinct;
    for (dimension, quantiles, keys) in slot.per_dimension.iter_mut() {
        let Some(key) = dimension.key_of(ev) else {
            continue;
        };
        keys.get_or_insert_with(key, WindowAccumulator::default)
            .add(ev, plan.max_samples, *quantiles);
        if *dimension == Dimension::Application && count_distinct {
            for (kind, field) in [
                (DistinctKind::User, KeyField::User),
                (DistinctKind::Model, KeyField::Model),
            ] {
                let value = ev.keys.get(field);
                if value.is_empty() {
                    continue;
                }
                // Values travel as 64-bit hashes: cheap to sort in the differential arrangement,
                // and a collision among one window's users is vanishingly unlikely.
                let value_hash = hash64(value.as_bytes());
                if !slot.pairs.contains(&PairRef(key, kind, value_hash)) {
                    slot.pairs.insert((key.into(), kind, value_hash));
                }
            }
        }
    }
}

/// Borrowed lookup into the pair set, so a pair already seen costs no allocation.
struct PairRef<'a>(&'a str, DistinctKind, u64);

impl std::hash::Hash for PairRef<'_> {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        // Must match the derived hash of `(Box<str>, DistinctKind, u64)`.
        (self.0, self.1, self.2).hash(state)
    }
}

impl hashbrown::Equivalent<(Box<str>, DistinctKind, u64)> for PairRef<'_> {
    fn equivalent(&self, key: &(Box<str>, DistinctKind, u64)) -> bool {
        *key.0 == *self.0 && key.1 == self.1 && key.2 == self.2
    }
}
