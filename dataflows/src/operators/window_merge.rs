//! Merges the partials of each key from every worker and closes windows on the watermark.

use std::collections::BTreeMap;

use hashbrown::HashMap;
use timely::dataflow::channels::pact::Exchange;
use timely::dataflow::operators::{Capability, Operator};
use timely::dataflow::Stream;

use super::distinct::{DistinctCount, DistinctKind};
use super::pre_aggregate::PartialAggregate;
use super::route::entity_route;
use crate::window::{Dimension, WindowAggregate};

/// Extension trait for [`WindowMerge::merge_windows`].
pub trait WindowMerge<'scope> {
    /// Routes partials by entity, adds them up, attaches distinct counts to application windows,
    /// and emits each [`WindowAggregate`] at its window end once both inputs have passed it.
    fn merge_windows(
        self,
        distinct: Stream<'scope, u64, Vec<DistinctCount>>,
        max_samples: usize,
    ) -> Stream<'scope, u64, Vec<WindowAggregate>>;
}

type SlotKey = (u64, u64); // (window_end, width_ms)
type Slot = (Capability<u64>, HashMap<(Dimension, String), WindowAggregate>);

impl<'scope> WindowMerge<'scope> for Stream<'scope, u64, Vec<PartialAggregate>> {
    fn merge_windows(
        self,
        distinct: Stream<'scope, u64, Vec<DistinctCount>>,
        max_samples: usize,
    ) -> Stream<'scope, u64, Vec<WindowAggregate>> {
        let by_entity = Exchange::new(|p: &PartialAggregate| entity_route(p.dimension, &p.key));
        let by_app = Exchange::new(|c: &DistinctCount| entity_route(Dimension::Application, &c.app));
        self.binary_frontier(distinct, by_entity, by_app, "WindowMerge", move |_cap, _info| {
            let mut open: BTreeMap<SlotKey, Slot> = BTreeMap::new();
            move |(partials, partials_frontier), (counts, counts_frontier), output| {
                partials.for_each_stamp(|cap, data| {
                    for batch in data {
                        for p in batch.drain(..) {
                            let slot = open
                                .entry((p.window_end, p.width_ms))
                                .or_insert_with(|| (cap.delayed(&p.window_end, 0), HashMap::new()));
                            match slot.1.get_mut(&(p.dimension, p.key.clone())) {
                                Some(agg) => agg.acc.merge(p.acc, max_samples),
                                None => {
                                    let key = (p.dimension, p.key.clone());
                                    slot.1.insert(
                                        key,
                                        WindowAggregate {
                                            dimension: p.dimension,
                                            key: p.key,
                                            width_ms: p.width_ms,
                                            window_end: p.window_end,
                                            acc: p.acc,
                                            distinct_users: None,
                                            distinct_models: None,
                                        },
                                    );
                                }
                            }
                        }
                    }
                });
                counts.for_each_stamp(|cap, data| {
                    for batch in data {
                        for c in batch.drain(..) {
                            let slot = open
                                .entry((c.window_end, c.width_ms))
                                .or_insert_with(|| (cap.delayed(&c.window_end, 0), HashMap::new()));
                            // Applications always have a partial when they have pairs; be safe anyway.
                            if let Some(agg) = slot.1.get_mut(&(Dimension::Application, c.app)) {
                                match c.kind {
                                    DistinctKind::User => agg.distinct_users = Some(c.count),
                                    DistinctKind::Model => agg.distinct_models = Some(c.count),
                                }
                            }
                        }
                    }
                });
                while let Some((&(end, _), _)) = open.first_key_value() {
                    if partials_frontier.less_equal(&end) || counts_frontier.less_equal(&end) {
                        break;
                    }
                    let Some((_, (cap, aggs))) = open.pop_first() else {
                        break;
                    };
                    let mut aggs: Vec<WindowAggregate> = aggs.into_values().collect();
                    // A fixed order makes the output, and so every downstream state, deterministic.
                    aggs.sort_by(|a, b| (a.dimension, &a.key).cmp(&(b.dimension, &b.key)));
                    output.session(&cap).give_iterator(aggs.into_iter());
                }
            }
        })
    }
}
