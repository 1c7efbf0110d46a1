//! Merges the partials of each key from every worker and closes windows on the watermark.

use std::collections::BTreeMap;

use timely::dataflow::channels::pact::Exchange;
use timely::dataflow::operators::{Capability, InputCapability, Operator};
use timely::dataflow::Stream;

use super::distinct::{DistinctCount, DistinctKind};
use super::pre_aggregate::PartialAggregate;
use super::route::entity_route;
use crate::state::KeyedSlab;
use crate::window::{Dimension, WindowAccumulator, WindowAggregate};

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

#[derive(Default)]
struct Merged {
    acc: WindowAccumulator,
    distinct_users: Option<u64>,
    distinct_models: Option<u64>,
}

/// One window width's open window: its capability and one slab per dimension.
struct Slot {
    cap: Capability<u64>,
    width_ms: u64,
    per_dimension: [KeyedSlab<Merged>; 4],
}

impl<'scope> WindowMerge<'scope> for Stream<'scope, u64, Vec<PartialAggregate>> {
    fn merge_windows(
        self,
        distinct: Stream<'scope, u64, Vec<DistinctCount>>,
        max_samples: usize,
    ) -> Stream<'scope, u64, Vec<WindowAggregate>> {
        let by_entity = Exchange::new(|p: &PartialAggregate| entity_route(p.dimension, &p.key));
        let by_app = Exchange::new(|c: &DistinctCount| entity_route(Dimension::Application, &c.app));
        self.binary_frontier(distinct, by_entity, by_app, "WindowMerge", move |_cap, _info| {
            // Keyed by (window end, width).
            let mut open: BTreeMap<(u64, u64), Slot> = BTreeMap::new();
            move |(partials, partials_frontier), (counts, counts_frontier), output| {
                partials.for_each_stamp(|cap, data| {
                    for batch in data {
                        for p in batch.drain(..) {
                            let slot = slot_for(&mut open, &cap, p.window_end, p.width_ms);
                            // The first partial of a key moves in whole; later ones are added.
                            let first = Merged {
                                acc: p.acc,
                                ..Merged::default()
                            };
                            slot.per_dimension[p.dimension as usize]
                                .upsert(p.key, first, |m, p| m.acc.merge(p.acc, max_samples));
                        }
                    }
                });
                counts.for_each_stamp(|cap, data| {
                    for batch in data {
                        for c in batch.drain(..) {
                            let slot = slot_for(&mut open, &cap, c.window_end, c.width_ms);
                            let merged = slot.per_dimension[Dimension::Application as usize]
                                .get_or_insert_with(&c.app, Merged::default);
                            match c.kind {
                                DistinctKind::User => merged.distinct_users = Some(c.count),
                                DistinctKind::Model => merged.distinct_models = Some(c.count),
                            }
                        }
                    }
                });
                while let Some((&(end, _), _)) = open.first_key_value() {
                    if partials_frontier.less_equal(&end) || counts_frontier.less_equal(&end) {
                        break;
                    }
                    let Some((_, slot)) = open.pop_first() else { break };
                    let mut session = output.session(&slot.cap);
                    // A fixed order (dimension, then key) makes every downstream state deterministic.
                    for (dimension, slab) in Dimension::ALL.into_iter().zip(slot.per_dimension) {
                        let mut entries: Vec<(Box<str>, Merged)> = slab.into_iter().collect();
                        entries.sort_unstable_by(|a, b| a.0.cmp(&b.0));
                        session.give_iterator(entries.into_iter().map(|(key, m)| WindowAggregate {
                            dimension,
                            key: key.into(),
                            width_ms: slot.width_ms,
                            window_end: end,
                            acc: m.acc,
                            distinct_users: m.distinct_users,
                            distinct_models: m.distinct_models,
                        }));
                    }
                }
            }
        })
    }
}

fn slot_for<'a>(
    open: &'a mut BTreeMap<(u64, u64), Slot>,
    cap: &InputCapability<u64>,
    end: u64,
    width_ms: u64,
) -> &'a mut Slot {
    open.entry((end, width_ms)).or_insert_with(|| Slot {
        cap: cap.delayed(&end, 0),
        width_ms,
        per_dimension: Default::default(),
    })
}
