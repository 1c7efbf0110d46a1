//! The judge stage as an operator: escalated rulings are submitted to the [`JudgeService`] and wait, holding their capability,
//! until every agent answered or the timeout passed. The decision goes out at the request's
//! own time, so the output depends on the input and on which answers beat the deadline, never
//! on how fast the judge was.

use std::sync::mpsc;
use std::sync::Arc;
use std::time::{Duration, Instant};

use timely::container::CapacityContainerBuilder;
use timely::dataflow::channels::pact::Pipeline;
use timely::dataflow::operators::generic::builder_rc::OperatorBuilder;
use timely::dataflow::operators::generic::OutputBuilder;
use timely::dataflow::operators::Capability;
use timely::dataflow::Stream;

use crate::detect::Decider;
use crate::judge::{JudgeLedger, JudgeReply, JudgeService, Judged};
use crate::model::{Decision, FallbackReason, JudgementRecord, Ruling};
use crate::operators::JobStats;

/// The outputs of [`Judge::judge`].
pub struct JudgedStreams<'scope> {
    /// One decision per ruling.
    pub decisions: Stream<'scope, u64, Vec<Decision>>,
    /// Every analysis a decision used, for the journal (`sentinel.judgements`).
    pub judgements: Stream<'scope, u64, Vec<JudgementRecord>>,
}

/// Extension trait for [`Judge::judge`].
pub trait Judge<'scope> {
    /// Decides every ruling, asking `service` about the escalated ones and waiting at most
    /// `timeout` (wall time) for each; combines verdicts by `decider`.
    /// `stats` counts how long each judged request waited.
    fn judge(
        self,
        service: Arc<dyn JudgeService>,
        decider: Decider,
        timeout: Duration,
        stats: Arc<JobStats>,
    ) -> JudgedStreams<'scope>;
}

impl<'scope> Judge<'scope> for Stream<'scope, u64, Vec<Ruling>> {
    fn judge(
        self,
        service: Arc<dyn JudgeService>,
        decider: Decider,
        timeout: Duration,
        stats: Arc<JobStats>,
    ) -> JudgedStreams<'scope> {
        let scope = self.scope();
        let mut builder = OperatorBuilder::new("Judge".to_owned(), scope);
        let address = builder.operator_info().address.clone();
        let activator = scope.activator_for(address.clone());
        let sync_activator = scope.worker().sync_activator_for(address.to_vec());
        let mut input = builder.new_input(self, Pipeline);
        let (decisions_out, decisions) = builder.new_output::<Vec<Decision>>();
        let (records_out, judgements) = builder.new_output::<Vec<JudgementRecord>>();
        let mut decisions_out = OutputBuilder::<_, CapacityContainerBuilder<Vec<Decision>>>::from(decisions_out);
        let mut records_out = OutputBuilder::<_, CapacityContainerBuilder<Vec<JudgementRecord>>>::from(records_out);
        builder.build(move |mut caps| {
            caps.clear();
            let (tx, rx) = mpsc::channel::<(u64, JudgementRecord)>();
            let wake: Arc<dyn Fn() + Send + Sync> = Arc::new(move || {
                let _ = sync_activator.activate();
            });
            let mut ledger: JudgeLedger<[Capability<u64>; 2]> = JudgeLedger::new(decider, timeout);
            let who = {
                let service = Arc::clone(&service);
                move |agent| service.identity(agent)
            };
            move |_frontiers| {
                let mut done: Vec<Judged<[Capability<u64>; 2]>> = Vec::new();
                input.for_each(|cap, data| {
                    let now = Instant::now();
                    for ruling in data.drain(..) {
                        let time = *cap.least().expect("a totally ordered time");
                        let held = [cap.delayed(&time, 0), cap.delayed(&time, 1)];
                        let (ticket, request) = ledger.admit(ruling, held, now);
                        let reply = JudgeReply::new(ticket, tx.clone(), Arc::clone(&wake));
                        if service.submit(request, reply).is_err() {
                            done.extend(ledger.fall_back(ticket, FallbackReason::Overload, &who));
                        }
                    }
                });
                while let Ok((ticket, record)) = rx.try_recv() {
                    done.extend(ledger.answer(ticket, record));
                }
                let now = Instant::now();
                done.extend(ledger.expire(now, &who));
                for judged in done {
                    stats.add_judge_wait(judged.waited);
                    let [decision_cap, record_cap] = &judged.held;
                    decisions_out.activate().session(decision_cap).give(judged.decision);
                    records_out
                        .activate()
                        .session(record_cap)
                        .give_iterator(judged.records.into_iter());
                }
                if let Some(wait) = ledger.next_deadline(now) {
                    activator.activate_after(wait.max(Duration::from_millis(1)));
                }
            }
        });
        JudgedStreams { decisions, judgements }
    }
}
