//! Runs the [`ActionStage`] on every anomaly, in event time, on one worker.

use timely::container::CapacityContainerBuilder;
use timely::dataflow::channels::pact::Exchange;
use timely::dataflow::operators::generic::builder_rc::OperatorBuilder;
use timely::dataflow::operators::generic::OutputBuilder;
use timely::dataflow::operators::Capability;
use timely::dataflow::Stream;

use super::checkpoints::{AckGate, StateCheckpoints, ACK_POLL, STOP_POLL};
use crate::act::{
    ActConfig, Acted, ActionSnapshot, ActionStage, AlertRecord, IncidentRecord, ShieldRecord, WebhookRecord,
};
use crate::model::lifecycle::LifecycleEvent;
use crate::model::Anomaly;
use crate::state::TimeBuffer;
use crate::time::parse_rfc3339_ms;

/// Output ports, in the order they are created.
const ANOMALIES: usize = 0;
const SHIELD: usize = 1;
const ALERTS: usize = 2;
const INCIDENTS: usize = 3;
const WEBHOOKS: usize = 4;
const LIFECYCLE: usize = 5;
const SNAPSHOTS: usize = 6;
const OUTPUTS: usize = 7;

/// The outputs of [`Act::act`].
pub struct ActedStreams<'scope> {
    /// Every anomaly, with its actions, related anomalies and incident.
    pub anomalies: Stream<'scope, u64, Vec<Anomaly>>,
    /// Shield requests (`sentinel.actions`).
    pub shield: Stream<'scope, u64, Vec<ShieldRecord>>,
    /// Alert notifications (`sentinel.alerts`).
    pub alerts: Stream<'scope, u64, Vec<AlertRecord>>,
    /// Incident requests (`sentinel.incidents`).
    pub incidents: Stream<'scope, u64, Vec<IncidentRecord>>,
    /// Webhook events (`sentinel.webhooks`).
    pub webhooks: Stream<'scope, u64, Vec<WebhookRecord>>,
    /// The job's lifecycle changes: condition resolutions (`sentinel.anomaly-events`).
    pub lifecycle: Stream<'scope, u64, Vec<LifecycleEvent>>,
    /// The stage's state, when it changed, once the records it covers are acknowledged
    /// (empty without checkpoints).
    pub snapshots: Stream<'scope, u64, Vec<ActionSnapshot>>,
}

/// Extension trait for [`Act::act`].
pub trait Act<'scope> {
    /// Sends every anomaly to worker 0 (anomalies are few, and one worker sees every entity's
    /// conditions and every alert group), and runs the actions stage on them in (time, id)
    /// order once the frontier passes their time. Resolutions and alert ticks happen as the
    /// frontier passes their due time; when the input ends, waiting alert groups notify.
    ///
    /// Records are emitted at the frontier (a capability is held only there), so the stage
    /// never holds back the output frontier, and offsets, by its group waits.
    ///
    /// With `checkpoints`, the stage starts from the restored state and skips the anomalies
    /// it covers; every `actor_interval_ms` of event time (and at a graceful stop) a changed
    /// state is emitted once the records before it are acknowledged. The checkpoint output
    /// stays behind every anomaly not yet taken, so detector checkpoints that wait for it
    /// never cover an anomaly the stage's state does not.
    fn act(self, config: ActConfig, checkpoints: Option<StateCheckpoints>) -> ActedStreams<'scope>;
}

impl<'scope> Act<'scope> for Stream<'scope, u64, Vec<Anomaly>> {
    fn act(self, config: ActConfig, checkpoints: Option<StateCheckpoints>) -> ActedStreams<'scope> {
        let scope = self.scope();
        let acting_worker = scope.worker().index() == 0;
        let mut builder = OperatorBuilder::new("Act".to_owned(), scope);
        let activator = scope.activator_for(builder.operator_info().address.clone());
        let mut input = builder.new_input(self, Exchange::new(|_: &Anomaly| 0u64));
        let (anomalies_out, anomalies) = builder.new_output::<Vec<Anomaly>>();
        let (shield_out, shield) = builder.new_output::<Vec<ShieldRecord>>();
        let (alerts_out, alerts) = builder.new_output::<Vec<AlertRecord>>();
        let (incidents_out, incidents) = builder.new_output::<Vec<IncidentRecord>>();
        let (webhooks_out, webhooks) = builder.new_output::<Vec<WebhookRecord>>();
        let (lifecycle_out, lifecycle) = builder.new_output::<Vec<LifecycleEvent>>();
        let (snapshots_out, snapshots) = builder.new_output::<Vec<ActionSnapshot>>();
        let mut anomalies_out = OutputBuilder::<_, CapacityContainerBuilder<Vec<Anomaly>>>::from(anomalies_out);
        let mut shield_out = OutputBuilder::<_, CapacityContainerBuilder<Vec<ShieldRecord>>>::from(shield_out);
        let mut alerts_out = OutputBuilder::<_, CapacityContainerBuilder<Vec<AlertRecord>>>::from(alerts_out);
        let mut incidents_out = OutputBuilder::<_, CapacityContainerBuilder<Vec<IncidentRecord>>>::from(incidents_out);
        let mut webhooks_out = OutputBuilder::<_, CapacityContainerBuilder<Vec<WebhookRecord>>>::from(webhooks_out);
        let mut lifecycle_out = OutputBuilder::<_, CapacityContainerBuilder<Vec<LifecycleEvent>>>::from(lifecycle_out);
        let mut snapshots_out = OutputBuilder::<_, CapacityContainerBuilder<Vec<ActionSnapshot>>>::from(snapshots_out);
        builder.build(move |mut caps| {
            caps.clear();
            let mut stage = ActionStage::new(config);
            let restored = checkpoints.as_ref().and_then(|c| c.restored.actions.clone());
            if let Some(snapshot) = restored.filter(|_| acting_worker) {
                stage.restore(snapshot);
            }
            let mut pending: TimeBuffer<Anomaly> = TimeBuffer::default();
            let mut ready: Vec<Anomaly> = Vec::new();
            let mut held: Option<[Capability<u64>; OUTPUTS]> = None;
            let mut finished = false;
            // Checkpoints: whether the state changed since the last one, and a capability no
            // later than the first change it covers.
            let mut changed = false;
            // The latest time an anomaly was taken at: at the end of the input, what the last
            // checkpoint covers.
            let mut latest_taken = 0u64;
            let mut interval_cap: Option<Capability<u64>> = None;
            let mut next_checkpoint: Option<u64> = None;
            let mut gate: AckGate<ActionSnapshot> = AckGate::default();
            move |frontiers| {
                input.for_each(|cap, data| {
                    let time = *cap.least().expect("a totally ordered time");
                    for a in data.drain(..) {
                        let at = parse_rfc3339_ms(&a.timestamp).unwrap_or(time).max(time);
                        if stage.already_acted(at) {
                            continue;
                        }
                        if held.as_ref().is_none_or(|h| time < *h[0].time()) {
                            held = Some(std::array::from_fn(|port| cap.delayed(&time, port)));
                        }
                        latest_taken = latest_taken.max(at);
                        pending.push(at, a);
                    }
                });
                let frontier = frontiers[0].frontier().first().copied();
                let now = frontier.unwrap_or(u64::MAX);
                if let Some(caps) = held.as_mut() {
                    let mut acted = Acted::default();
                    pending.take_before(now, &mut ready);
                    ready.sort_by(|a, b| (&a.timestamp, &a.id).cmp(&(&b.timestamp, &b.id)));
                    for a in ready.drain(..) {
                        stage.anomaly(a, &mut acted);
                    }
                    match frontier {
                        Some(f) => stage.advance(f.saturating_sub(1), &mut acted),
                        None if !finished => {
                            stage.finish(&mut acted);
                            finished = true;
                        }
                        None => {}
                    }
                    if !acted.is_empty() {
                        if checkpoints.is_some() && interval_cap.is_none() {
                            interval_cap = Some(caps[SNAPSHOTS].clone());
                        }
                        changed = true;
                        anomalies_out
                            .activate()
                            .session(&caps[ANOMALIES])
                            .give_container(&mut acted.anomalies);
                        shield_out
                            .activate()
                            .session(&caps[SHIELD])
                            .give_container(&mut acted.shield);
                        alerts_out
                            .activate()
                            .session(&caps[ALERTS])
                            .give_container(&mut acted.alerts);
                        incidents_out
                            .activate()
                            .session(&caps[INCIDENTS])
                            .give_container(&mut acted.incidents);
                        webhooks_out
                            .activate()
                            .session(&caps[WEBHOOKS])
                            .give_container(&mut acted.webhooks);
                        lifecycle_out
                            .activate()
                            .session(&caps[LIFECYCLE])
                            .give_container(&mut acted.lifecycle);
                    }
                    match frontier {
                        None => held = None,
                        Some(f) if f > *caps[0].time() => {
                            for cap in caps.iter_mut() {
                                cap.downgrade(&f);
                            }
                        }
                        Some(_) => {}
                    }
                }
                if let Some(c) = &checkpoints {
                    let stopping = c.stats.stop.load(std::sync::atomic::Ordering::Relaxed);
                    let due = next_checkpoint.is_none_or(|at| now >= at) || stopping;
                    // At the end of the input everything is taken: the last checkpoint covers it
                    // all, and lets go of its capability.
                    let through = if now == u64::MAX { latest_taken + 1 } else { now };
                    if changed && (due || now == u64::MAX) && through > 0 {
                        if let Some(cap) = interval_cap.take() {
                            // Every anomaly before `through` is taken, and everything due before
                            // it done: the records it covers are at times before it.
                            gate.hold(through - 1, cap, vec![stage.snapshot(&c.namespace, through)]);
                        }
                        changed = false;
                        let interval = c.actor_interval_ms.max(1);
                        next_checkpoint = Some((now / interval + 1) * interval);
                    }
                    if gate.release(&c.outputs_acknowledged, &mut snapshots_out.activate()) {
                        activator.activate_after(ACK_POLL);
                    } else if changed {
                        activator.activate_after(STOP_POLL);
                    }
                }
            }
        });
        ActedStreams {
            anomalies,
            shield,
            alerts,
            incidents,
            webhooks,
            lifecycle,
            snapshots,
        }
    }
}
