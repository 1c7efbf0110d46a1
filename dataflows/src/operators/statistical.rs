//! Runs the statistical detectors on closed windows, and checkpoints their baselines.

use std::collections::{BTreeMap, BTreeSet};

use timely::container::CapacityContainerBuilder;
use timely::dataflow::channels::pact::Pipeline;
use timely::dataflow::operators::generic::builder_rc::OperatorBuilder;
use timely::dataflow::operators::generic::OutputBuilder;
use timely::dataflow::operators::Capability;
use timely::dataflow::Stream;

use super::checkpoints::{AckGate, StateCheckpoints, ACK_POLL};
use super::route::entity_route;
use crate::detect::{BaselineSnapshot, StatisticalConfig, StatisticalDetector};
use crate::model::Anomaly;
use crate::window::WindowAggregate;

/// Windows waiting for the frontier to pass their time, with capabilities for both outputs.
type PendingWindows = BTreeMap<u64, (Capability<u64>, Capability<u64>, Vec<WindowAggregate>)>;

/// Extension trait for [`DetectStatistical::detect_statistical`].
pub trait DetectStatistical<'scope> {
    /// Feeds each closed window to every detector that watches its width and entity kind, in
    /// window order, and emits anomalies at the window end. Expects windows already routed by
    /// entity (as [`super::WindowMerge`] leaves them), so each key's baseline lives on one worker.
    ///
    /// With `checkpoints`, baselines start from the restored snapshots, and every baseline a
    /// window changed is emitted as a [`BaselineSnapshot`] at that window's end, once the other
    /// outputs up to it are acknowledged. Without, the second stream stays empty.
    #[allow(clippy::type_complexity)]
    fn detect_statistical(
        self,
        detectors: Vec<StatisticalConfig>,
        checkpoints: Option<StateCheckpoints>,
    ) -> (
        Stream<'scope, u64, Vec<Anomaly>>,
        Stream<'scope, u64, Vec<BaselineSnapshot>>,
    );
}

impl<'scope> DetectStatistical<'scope> for Stream<'scope, u64, Vec<WindowAggregate>> {
    fn detect_statistical(
        self,
        detectors: Vec<StatisticalConfig>,
        checkpoints: Option<StateCheckpoints>,
    ) -> (
        Stream<'scope, u64, Vec<Anomaly>>,
        Stream<'scope, u64, Vec<BaselineSnapshot>>,
    ) {
        let scope = self.scope();
        let (index, peers) = (scope.worker().index(), scope.worker().peers() as u64);
        let mut builder = OperatorBuilder::new("DetectStatistical".to_owned(), scope);
        let info = builder.operator_info();
        let activator = scope.activator_for(info.address.clone());
        let mut input = builder.new_input(self, Pipeline);
        let (anomalies_out, anomalies) = builder.new_output::<Vec<Anomaly>>();
        let (snapshots_out, snapshots) = builder.new_output::<Vec<BaselineSnapshot>>();
        let mut anomalies_out = OutputBuilder::<_, CapacityContainerBuilder<Vec<Anomaly>>>::from(anomalies_out);
        let mut snapshots_out =
            OutputBuilder::<_, CapacityContainerBuilder<Vec<BaselineSnapshot>>>::from(snapshots_out);
        builder.build(move |mut caps| {
            // The operator's own capabilities are not needed: outputs go at their window's time.
            caps.clear();
            let mut detectors: Vec<StatisticalDetector> = detectors.into_iter().map(StatisticalDetector::new).collect();
            if let Some(c) = &checkpoints {
                for snapshot in &c.restored.baselines {
                    if entity_route(snapshot.dimension, &snapshot.key) % peers != index as u64 {
                        continue;
                    }
                    if let Some(d) = detectors.iter_mut().find(|d| d.config().id == snapshot.detector_id) {
                        d.restore(snapshot);
                    }
                }
            }
            let mut pending = PendingWindows::new();
            // Snapshots waiting for the outputs before them to be acknowledged.
            let mut gate: AckGate<BaselineSnapshot> = AckGate::default();
            move |frontiers| {
                input.for_each(|cap, data| {
                    let time = *cap.least().expect("a totally ordered time");
                    let slot = pending
                        .entry(time)
                        .or_insert_with(|| (cap.delayed(&time, 0), cap.delayed(&time, 1), Vec::new()));
                    slot.2.append(data);
                });
                let frontier = &frontiers[0];
                while let Some((&time, _)) = pending.first_key_value() {
                    if frontier.less_equal(&time) {
                        break;
                    }
                    let Some((_, (cap, snapshot_cap, mut windows))) = pending.pop_first() else {
                        break;
                    };
                    windows.sort_by(|a, b| (a.width_ms, a.dimension, &a.key).cmp(&(b.width_ms, b.dimension, &b.key)));
                    let mut changed: BTreeSet<(usize, &str)> = BTreeSet::new();
                    {
                        let mut out = anomalies_out.activate();
                        let mut session = out.session(&cap);
                        for agg in &windows {
                            for (i, det) in detectors.iter_mut().enumerate().filter(|(_, d)| d.wants(agg)) {
                                if let Some(anomaly) = det.observe(agg) {
                                    session.give(anomaly);
                                }
                                changed.insert((i, agg.key.as_str()));
                            }
                        }
                    }
                    if let Some(c) = &checkpoints {
                        let snaps: Vec<BaselineSnapshot> = changed
                            .into_iter()
                            .filter_map(|(i, key)| detectors[i].snapshot(&c.namespace, key))
                            .collect();
                        // Covers every output at or before `time` (the window end).
                        gate.hold(time, snapshot_cap, snaps);
                    }
                }
                if let Some(c) = &checkpoints {
                    if gate.release(&c.outputs_acknowledged, &mut snapshots_out.activate()) {
                        activator.activate_after(ACK_POLL);
                    }
                }
            }
        });
        (anomalies, snapshots)
    }
}
