//! What the stateful operators need to checkpoint their state consistently with the outputs,
//! and the gate that holds each checkpoint until those outputs are acknowledged.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use timely::container::CapacityContainerBuilder;
use timely::dataflow::operators::generic::OutputBuilderSession;
use timely::dataflow::operators::Capability;
use timely::dataflow::ProbeHandle;

use super::stats::JobStats;
use crate::detect::RestoredState;

/// How often an operator holding checkpoints looks again at the acknowledged frontier.
pub const ACK_POLL: Duration = Duration::from_millis(10);

/// How often an operator with state not yet checkpointed looks for a graceful stop.
pub const STOP_POLL: Duration = Duration::from_millis(100);

/// Where and how detector state is checkpointed.
#[derive(Clone)]
pub struct StateCheckpoints {
    /// Prefix of every record key (the consumer group), so jobs sharing a state topic keep
    /// apart.
    pub namespace: String,
    /// State read back from the state topic at start (every worker gets it all and keeps the
    /// keys routed to it).
    pub restored: Arc<RestoredState>,
    /// Passes a time once every output *other than the checkpoints* before it is acknowledged.
    /// A checkpoint covering time `t` is released only once it passes `t`: restored state
    /// never holds an event or window whose outputs might not have been delivered.
    pub outputs_acknowledged: ProbeHandle<u64>,
    /// Event time between two checkpoints of the behavioral state (every actor changed since
    /// the last one is written). Offsets are committed behind the checkpoints, so this is
    /// also how far back a restart may read again.
    pub actor_interval_ms: u64,
    /// The job's counters: a graceful stop (`stop`) checkpoints every changed actor at once,
    /// so the resume point catches up with the outputs and a restart re-emits nothing.
    pub stats: Arc<JobStats>,
}

/// Checkpoints waiting for the outputs they cover to be acknowledged, each with the
/// capability it will be sent at. Holding that capability holds the commit point behind it.
pub struct AckGate<T> {
    held: BTreeMap<u64, (Capability<u64>, Vec<T>)>,
}

impl<T> Default for AckGate<T> {
    fn default() -> Self {
        AckGate { held: BTreeMap::new() }
    }
}

impl<T: Clone + 'static> AckGate<T> {
    /// Holds `records`, which cover outputs up to and including time `covers`, to be sent at
    /// `cap` once those outputs are acknowledged.
    pub fn hold(&mut self, covers: u64, cap: Capability<u64>, mut records: Vec<T>) {
        if records.is_empty() {
            return;
        }
        match self.held.get_mut(&covers) {
            Some((held_cap, existing)) => {
                // Keep the earlier capability: the commit point must stay behind both.
                if cap.time() < held_cap.time() {
                    *held_cap = cap;
                }
                existing.append(&mut records);
            }
            None => {
                self.held.insert(covers, (cap, records));
            }
        }
    }

    /// Sends what `acknowledged` now covers; `true` while something is still held (the caller
    /// polls again after [`ACK_POLL`]).
    pub fn release(
        &mut self,
        acknowledged: &ProbeHandle<u64>,
        output: &mut OutputBuilderSession<'_, u64, CapacityContainerBuilder<Vec<T>>>,
    ) -> bool {
        let least = acknowledged.with_frontier(|f| f.iter().next().copied());
        while let Some((&covers, _)) = self.held.first_key_value() {
            if least.is_some_and(|a| a <= covers) {
                break;
            }
            let Some((_, (cap, mut records))) = self.held.pop_first() else {
                break;
            };
            output.session(&cap).give_container(&mut records);
        }
        !self.held.is_empty()
    }
}
