//! Routes screened events by actor and runs the [`Assessor`] on them: decisions and anomalies.

use serde::{Deserialize, Serialize};
use timely::dataflow::channels::pact::Exchange;
use timely::dataflow::operators::vec::{Map, Partition};
use timely::dataflow::operators::{Capability, Operator};
use timely::dataflow::Stream;

use crate::detect::{Assessor, BehaviorConfig};
use crate::guard::PolicyBook;
use crate::hash::hash64;
use crate::model::{Anomaly, Decision, KeyField, ScreenedEvent};
use crate::state::TimeBuffer;

/// How often (event time) idle actors are swept out.
const EVICT_EVERY_MS: u64 = 60_000;

/// What the assessor emits.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub enum Assessed {
    /// One per request, response or tool call.
    Decision(Box<Decision>),
    /// A rule or behavioral anomaly.
    Anomaly(Box<Anomaly>),
}

/// Extension trait for [`Assess::assess`].
pub trait Assess<'scope> {
    /// Exchanges events by actor (user, else session, else application), keeps each actor's
    /// behavioral state on one worker, and returns (decisions, anomalies).
    fn assess(
        self,
        policies: PolicyBook,
        behavior: BehaviorConfig,
    ) -> (Stream<'scope, u64, Vec<Decision>>, Stream<'scope, u64, Vec<Anomaly>>);
}

impl<'scope> Assess<'scope> for Stream<'scope, u64, Vec<ScreenedEvent>> {
    fn assess(
        self,
        policies: PolicyBook,
        behavior: BehaviorConfig,
    ) -> (Stream<'scope, u64, Vec<Decision>>, Stream<'scope, u64, Vec<Anomaly>>) {
        let route = Exchange::new(|ev: &ScreenedEvent| hash64(ev.actor().1.as_bytes()));
        let assessed = self.unary_frontier(route, "Assess", move |_cap, _info| {
            let mut assessor = Assessor::new(policies, behavior);
            let mut last_evict = 0u64;
            // Events wait until the frontier passes their own time, then go in (time, id) order,
            // so behavioral state sees the same sequence whatever the worker count.
            let mut pending: TimeBuffer<ScreenedEvent> = TimeBuffer::default();
            let mut ready: Vec<ScreenedEvent> = Vec::new();
            let mut held: Option<Capability<u64>> = None;
            move |(input, frontier), output| {
                input.for_each_stamp(|cap, data| {
                    if let Some(c) = cap.retain_least(0) {
                        if held.as_ref().is_none_or(|h| c.time() < h.time()) {
                            held = Some(c);
                        }
                    }
                    for batch in data {
                        for ev in batch.drain(..) {
                            pending.push(ev.timestamp_ms, ev);
                        }
                    }
                });
                let now = frontier.frontier().first().copied().unwrap_or(u64::MAX);
                let Some(cap) = held.as_mut() else {
                    return;
                };
                pending.take_before(now, &mut ready);
                if !ready.is_empty() {
                    ready.sort_by(|a, b| {
                        (a.timestamp_ms, a.keys.get(KeyField::EventId))
                            .cmp(&(b.timestamp_ms, b.keys.get(KeyField::EventId)))
                    });
                    let mut session = output.session(&*cap);
                    for ev in ready.drain(..) {
                        let out = assessor.assess(&ev);
                        if let Some(d) = out.decision {
                            session.give(Assessed::Decision(Box::new(d)));
                        }
                        for a in out.anomalies {
                            session.give(Assessed::Anomaly(Box::new(a)));
                        }
                    }
                }
                match pending.min_time() {
                    None => held = None,
                    Some(least) => {
                        let to = least.min(now);
                        if to > *cap.time() {
                            cap.downgrade(&to);
                        }
                    }
                }
                if now != u64::MAX && now >= last_evict + EVICT_EVERY_MS {
                    assessor.evict(now);
                    last_evict = now;
                }
            }
        });
        let mut parts = assessed.partition(2, |a| match a {
            Assessed::Decision(_) => (0, a),
            Assessed::Anomaly(_) => (1, a),
        });
        let anomalies = parts.pop().expect("two parts");
        let decisions = parts.pop().expect("two parts");
        (
            decisions.flat_map(|a| match a {
                Assessed::Decision(d) => Some(*d),
                Assessed::Anomaly(_) => None,
            }),
            anomalies.flat_map(|a| match a {
                Assessed::Anomaly(x) => Some(*x),
                Assessed::Decision(_) => None,
            }),
        )
    }
}
