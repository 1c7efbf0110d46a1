//! Routes screened events by actor and runs the [`Assessor`] on them: decisions, anomalies and
//! checkpoints of the behavioral state.

use std::collections::BTreeSet;

use timely::container::CapacityContainerBuilder;
use timely::dataflow::channels::pact::Exchange;
use timely::dataflow::operators::generic::builder_rc::OperatorBuilder;
use timely::dataflow::operators::generic::OutputBuilder;
use timely::dataflow::operators::Capability;
use timely::dataflow::Stream;

use super::checkpoints::{AckGate, StateCheckpoints, ACK_POLL, STOP_POLL};
use crate::detect::{ActorSnapshot, AgentSwitches, Assessor, BehaviorConfig, Ruled};
use crate::guard::PolicyBook;
use crate::hash::hash64;
use crate::model::{Anomaly, Decision, KeyField, Ruling, ScreenedEvent};
use crate::state::TimeBuffer;

/// Recent steps per actor the state judge sees.
const SESSION_STEPS: usize = 8;

/// Output ports, in the order they are created.
const DECISIONS: usize = 0;
const ESCALATED: usize = 1;
const ANOMALIES: usize = 2;
const SNAPSHOTS: usize = 3;
const OUTPUTS: usize = 4;

/// How often (event time) idle actors are swept out.
const EVICT_EVERY_MS: u64 = 60_000;

/// The worker an actor's events go to, among `peers`.
fn actor_route(actor: &str) -> u64 {
    hash64(actor.as_bytes())
}

/// The outputs of [`Assess::assess`]. Every request, response and tool call has either a
/// decision or an escalated ruling.
pub struct Assessed<'scope> {
    /// The rules' decisions that need no judge: final as they are.
    pub decisions: Stream<'scope, u64, Vec<Decision>>,
    /// Escalated requests with judges on: the rules' decision and what to ask the judges.
    pub escalated: Stream<'scope, u64, Vec<Ruling>>,
    /// Rule and behavioral anomalies.
    pub anomalies: Stream<'scope, u64, Vec<Anomaly>>,
    /// Actor states changed since the last checkpoint (empty without checkpoints).
    pub snapshots: Stream<'scope, u64, Vec<ActorSnapshot>>,
}

/// Extension trait for [`Assess::assess`].
pub trait Assess<'scope> {
    /// Exchanges events by actor (user, else session, else application), keeps each actor's
    /// behavioral state on one worker, and assesses the events in (time, id) order. Escalated
    /// requests carry a request for the `judges` switched on.
    ///
    /// With `checkpoints`, actor states start from the restored snapshots, and every
    /// `actor_interval_ms` of event time the actors changed since the last checkpoint are
    /// emitted, once the decisions and anomalies they cover are acknowledged.
    fn assess(
        self,
        policies: PolicyBook,
        behavior: BehaviorConfig,
        judges: AgentSwitches,
        checkpoints: Option<StateCheckpoints>,
    ) -> Assessed<'scope>;
}

impl<'scope> Assess<'scope> for Stream<'scope, u64, Vec<ScreenedEvent>> {
    fn assess(
        self,
        policies: PolicyBook,
        behavior: BehaviorConfig,
        judges: AgentSwitches,
        checkpoints: Option<StateCheckpoints>,
    ) -> Assessed<'scope> {
        let scope = self.scope();
        let (index, peers) = (scope.worker().index() as u64, scope.worker().peers() as u64);
        let mut builder = OperatorBuilder::new("Assess".to_owned(), scope);
        let activator = scope.activator_for(builder.operator_info().address.clone());
        let route = Exchange::new(|ev: &ScreenedEvent| actor_route(ev.actor().1));
        let mut input = builder.new_input(self, route);
        let (decisions_out, decisions) = builder.new_output::<Vec<Decision>>();
        let (escalated_out, escalated) = builder.new_output::<Vec<Ruling>>();
        let (anomalies_out, anomalies) = builder.new_output::<Vec<Anomaly>>();
        let (snapshots_out, snapshots) = builder.new_output::<Vec<ActorSnapshot>>();
        let mut decisions_out = OutputBuilder::<_, CapacityContainerBuilder<Vec<Decision>>>::from(decisions_out);
        let mut escalated_out = OutputBuilder::<_, CapacityContainerBuilder<Vec<Ruling>>>::from(escalated_out);
        let mut anomalies_out = OutputBuilder::<_, CapacityContainerBuilder<Vec<Anomaly>>>::from(anomalies_out);
        let mut snapshots_out = OutputBuilder::<_, CapacityContainerBuilder<Vec<ActorSnapshot>>>::from(snapshots_out);
        builder.build(move |mut caps| {
            caps.clear();
            let mut assessor = Assessor::new(policies, behavior).with_judges(judges, SESSION_STEPS);
            if let Some(c) = &checkpoints {
                for snapshot in &c.restored.actors {
                    if actor_route(&snapshot.actor) % peers == index {
                        assessor.restore(snapshot);
                    }
                }
            }
            let mut last_evict = 0u64;
            // Events wait until the frontier passes their own time, then go in (time, id) order,
            // so behavioral state sees the same sequence whatever the worker count.
            let mut pending: TimeBuffer<ScreenedEvent> = TimeBuffer::default();
            let mut ready: Vec<ScreenedEvent> = Vec::new();
            // One capability per output, at the least time still pending.
            let mut held: Option<[Capability<u64>; OUTPUTS]> = None;
            // Checkpoints: actors changed since the last one, a capability no later than the
            // first event they cover, and the newest event time they cover.
            let mut dirty: BTreeSet<String> = BTreeSet::new();
            let mut interval_cap: Option<Capability<u64>> = None;
            let mut processed_through = 0u64;
            let mut next_checkpoint: Option<u64> = None;
            let mut gate: AckGate<ActorSnapshot> = AckGate::default();
            move |frontiers| {
                input.for_each(|cap, data| {
                    let time = *cap.least().expect("a totally ordered time");
                    if held.as_ref().is_none_or(|h| time < *h[0].time()) {
                        held = Some(std::array::from_fn(|port| cap.delayed(&time, port)));
                    }
                    for ev in data.drain(..) {
                        pending.push(ev.timestamp_ms, ev);
                    }
                });
                let now = frontiers[0].frontier().first().copied().unwrap_or(u64::MAX);
                if let Some(caps) = held.as_mut() {
                    pending.take_before(now, &mut ready);
                    if !ready.is_empty() {
                        ready.sort_by(|a, b| {
                            (a.timestamp_ms, a.keys.get(KeyField::EventId))
                                .cmp(&(b.timestamp_ms, b.keys.get(KeyField::EventId)))
                        });
                        if checkpoints.is_some() && interval_cap.is_none() {
                            interval_cap = Some(caps[SNAPSHOTS].clone());
                        }
                        let mut decisions = decisions_out.activate();
                        let mut decisions = decisions.session(&caps[DECISIONS]);
                        let mut escalated = escalated_out.activate();
                        let mut escalated = escalated.session(&caps[ESCALATED]);
                        let mut anomalies = anomalies_out.activate();
                        let mut anomalies = anomalies.session(&caps[ANOMALIES]);
                        for ev in ready.drain(..) {
                            let out = assessor.assess(&ev);
                            match out.ruled {
                                Some(Ruled::Final(decision)) => decisions.give(decision),
                                Some(Ruled::Escalated(ruling)) => escalated.give(ruling),
                                None => {}
                            }
                            anomalies.give_iterator(out.anomalies.into_iter());
                            processed_through = processed_through.max(ev.timestamp_ms);
                            if checkpoints.is_some() {
                                dirty.insert(ev.actor().1.to_owned());
                            }
                        }
                    }
                    match pending.min_time() {
                        None => held = None,
                        Some(least) => {
                            let to = least.min(now);
                            if to > *caps[0].time() {
                                for cap in caps.iter_mut() {
                                    cap.downgrade(&to);
                                }
                            }
                        }
                    }
                }
                if let Some(c) = &checkpoints {
                    let stopping = c.stats.stop.load(std::sync::atomic::Ordering::Relaxed);
                    let due = next_checkpoint.is_none_or(|at| now >= at) || now == u64::MAX || stopping;
                    if due && !dirty.is_empty() {
                        if let Some(cap) = interval_cap.take() {
                            let snaps: Vec<ActorSnapshot> = std::mem::take(&mut dirty)
                                .iter()
                                .filter_map(|actor| assessor.snapshot(&c.namespace, actor))
                                .collect();
                            // Covers every decision and anomaly of the events taken so far.
                            gate.hold(processed_through, cap, snaps);
                        }
                        let interval = c.actor_interval_ms.max(1);
                        next_checkpoint = Some((processed_through / interval + 1) * interval);
                    }
                    if gate.release(&c.outputs_acknowledged, &mut snapshots_out.activate()) {
                        activator.activate_after(ACK_POLL);
                    } else if !dirty.is_empty() {
                        activator.activate_after(STOP_POLL);
                    }
                }
                if now != u64::MAX && now >= last_evict + EVICT_EVERY_MS {
                    assessor.evict(now);
                    last_evict = now;
                }
            }
        });
        Assessed {
            decisions,
            escalated,
            anomalies,
            snapshots,
        }
    }
}
