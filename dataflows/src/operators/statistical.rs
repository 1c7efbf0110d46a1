//! Runs the statistical detectors on closed windows.

use std::collections::BTreeMap;

use timely::dataflow::channels::pact::Pipeline;
use timely::dataflow::operators::{Capability, Operator};
use timely::dataflow::Stream;

use crate::detect::{StatisticalConfig, StatisticalDetector};
use crate::model::Anomaly;
use crate::window::WindowAggregate;

/// Extension trait for [`DetectStatistical::detect_statistical`].
pub trait DetectStatistical<'scope> {
    /// Feeds each closed window to every detector that watches its width and entity kind, in
    /// window order, and emits anomalies at the window end. Expects windows already routed by
    /// entity (as [`super::WindowMerge`] leaves them), so each key's baseline lives on one worker.
    fn detect_statistical(self, detectors: Vec<StatisticalConfig>) -> Stream<'scope, u64, Vec<Anomaly>>;
}

impl<'scope> DetectStatistical<'scope> for Stream<'scope, u64, Vec<WindowAggregate>> {
    fn detect_statistical(self, detectors: Vec<StatisticalConfig>) -> Stream<'scope, u64, Vec<Anomaly>> {
        self.unary_frontier(Pipeline, "DetectStatistical", move |_cap, _info| {
            let mut detectors: Vec<StatisticalDetector> = detectors.into_iter().map(StatisticalDetector::new).collect();
            let mut pending: BTreeMap<u64, (Capability<u64>, Vec<WindowAggregate>)> = BTreeMap::new();
            move |(input, frontier), output| {
                input.for_each_stamp(|cap, data| {
                    let Some(cap) = cap.retain_least(0) else {
                        return;
                    };
                    let slot = pending.entry(*cap.time()).or_insert_with(|| (cap, Vec::new()));
                    for batch in data {
                        slot.1.append(batch);
                    }
                });
                while let Some((&time, _)) = pending.first_key_value() {
                    if frontier.less_equal(&time) {
                        break;
                    }
                    let Some((_, (cap, mut windows))) = pending.pop_first() else {
                        break;
                    };
                    windows.sort_by(|a, b| (a.width_ms, a.dimension, &a.key).cmp(&(b.width_ms, b.dimension, &b.key)));
                    let mut session = output.session(&cap);
                    for agg in &windows {
                        for det in detectors.iter_mut().filter(|d| d.wants(agg)) {
                            if let Some(anomaly) = det.observe(agg) {
                                session.give(anomaly);
                            }
                        }
                    }
                }
            }
        })
    }
}
