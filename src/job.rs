//! Assembles the dataflow on every worker and runs it to completion.

use std::cell::RefCell;
use std::path::PathBuf;
use std::rc::Rc;
use std::sync::Arc;
use std::time::Instant;

use hdrhistogram::Histogram;
use sentinel_dataflows::act::ActConfig;
use sentinel_dataflows::detect::{
    AgentSwitches, BehaviorConfig, Decider, RestoredState, StateRecord, StatisticalConfig,
};
use sentinel_dataflows::guard::{PolicyBook, Screening};
use sentinel_dataflows::judge::JudgeService;
use sentinel_dataflows::model::Decision;
use sentinel_dataflows::operators::{
    as_itself, ingest, Act, AggregationPlan, Assess, DetectStatistical, DistinctCounts, GaugedSink, IngestConfig,
    JobStats, JsonSink, Judge, PreAggregate, RecordReader, RecordSink, SinkKey, StateCheckpoints, Tap, WindowMerge,
};
use sentinel_dataflows::synth::TraceConfig;
use sentinel_serve::feed::FeedStream;
use sentinel_serve::store::{KeptDecisions, OutcomeKind};
use timely::dataflow::operators::vec::{Filter, Map};
use timely::dataflow::operators::{Concat, Exchange, Probe};
use timely::dataflow::{ProbeHandle, Stream};

use crate::io::{Discard, FileSource, KafkaSource, OutputTarget, SyntheticSource};
use crate::kafka_input::KafkaInput;
use crate::streams::OutputStream;
use sentinel_connectors::kafka::KafkaOutput;

/// Where events come from.
#[derive(Clone, Debug)]
pub enum InputSpec {
    /// A JSONL trace file (plain or gzip), shared among workers.
    File(PathBuf),
    /// The built-in generator.
    Synthetic(TraceConfig),
    /// Kafka topics, partitions shared among all workers of all processes.
    Kafka(KafkaInput),
    /// The HTTP ingest listener (`run --listen`): where it listens, and one queue per worker
    /// of this process.
    Listen(
        std::net::SocketAddr,
        Vec<sentinel_connectors::http::ingest::IngestQueue>,
    ),
}

/// The guard stage: content guards (run in the source), behavioral detectors and decisions.
#[derive(Clone, Debug)]
pub struct GuardSpec {
    /// Compiled guards and policies, shared by the workers of this process.
    pub screening: Arc<Screening>,
    /// Policies, for tiers and allowed tools.
    pub policies: PolicyBook,
    /// Behavioral limits.
    pub behavior: BehaviorConfig,
    /// Write decisions.
    pub write_decisions: bool,
    /// The shadow-agent judges; `None` decides on the rules alone.
    pub judges: Option<JudgeSpec>,
}

/// The judge stage: who answers, how verdicts combine, how long a request may wait.
#[derive(Clone)]
pub struct JudgeSpec {
    /// The agents asked.
    pub agents: AgentSwitches,
    /// Live provider calls, or a journal replay.
    pub service: Arc<dyn JudgeService>,
    /// The live judges, for their figures (`None` when replaying).
    pub live: Option<Arc<sentinel_judges::LiveJudges>>,
    /// How verdicts combine with the rules.
    pub decider: Decider,
    /// The longest a request waits for its verdicts (`timeout_ms`).
    pub timeout: std::time::Duration,
}

impl std::fmt::Debug for JudgeSpec {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("JudgeSpec")
            .field("agents", &self.agents)
            .field("decider", &self.decider)
            .field("timeout", &self.timeout)
            .finish_non_exhaustive()
    }
}

/// Everything a worker needs to build its dataflow.
#[derive(Clone, Debug)]
pub struct JobSpec {
    /// Input.
    pub input: InputSpec,
    /// Output.
    pub output: OutputTarget,
    /// Source behaviour.
    pub ingest: IngestConfig,
    /// Windows to keep.
    pub plan: AggregationPlan,
    /// Statistical detectors.
    pub detectors: Vec<StatisticalConfig>,
    /// Write closed-window aggregates.
    pub write_aggregates: bool,
    /// Write dead letters.
    pub write_dead_letters: bool,
    /// Guards, behavior and decisions; `None` runs metrics only.
    pub guards: Option<GuardSpec>,
    /// Checkpointing of detector baselines (Kafka in and out); `None` keeps them in memory only.
    pub state: Option<StateSpec>,
    /// The actions stage; `None` writes anomalies as detected, with no actions.
    pub actions: Option<ActConfig>,
    /// Where the action streams go when the output is not Kafka: the delivery's outbox.
    pub outbox_dir: Option<PathBuf>,
    /// `run --serve`: the serving store's feed, which the sinks also write to.
    pub serve_feed: Option<ServeFeed>,
}

/// What `run --serve` feeds the serving store.
#[derive(Clone, Debug)]
pub struct ServeFeed {
    /// The store's feed.
    pub sender: sentinel_serve::feed::FeedSender,
    /// Which decisions the store keeps: only those are copied to it.
    pub decisions: KeptDecisions,
}

/// The acknowledgement probes every user-facing output is behind.
#[derive(Clone)]
struct Acknowledged {
    /// Every output, the checkpoints included: offsets are committed behind it.
    all: ProbeHandle<u64>,
    /// Every output but the checkpoints: the actions stage's checkpoints wait for it.
    outputs: ProbeHandle<u64>,
    /// Every output and the actions stage's checkpoints: the detectors' checkpoints wait for
    /// it, so a restart never skips an event whose anomaly the restored actions state lacks.
    for_detector_state: ProbeHandle<u64>,
}

/// Counts each record written to `stream`.
fn counting<T>(stats: &Arc<JobStats>, stream: OutputStream) -> impl FnMut(&T) + 'static {
    let stats = Arc::clone(stats);
    move |_| stats.add_written(stream.name())
}

/// Writes `records` to `sink` from the writer worker, behind every probe.
fn write_out<'s, T, F, O>(
    records: Stream<'s, u64, Vec<T>>,
    name: &str,
    sink: Box<dyn RecordSink>,
    writer: u64,
    to_json: F,
    observe: O,
    acknowledged: &Acknowledged,
) where
    T: timely::ExchangeData + SinkKey + Clone,
    F: Fn(&T, &mut Vec<u8>) -> serde_json::Result<()> + 'static,
    O: FnMut(&T) + 'static,
{
    records
        .exchange(move |_| writer)
        .sink_json(name, sink, to_json, observe)
        .probe_with(&acknowledged.all)
        .probe_with(&acknowledged.outputs)
        .probe_with(&acknowledged.for_detector_state);
}

/// Detector state checkpointed to Kafka, consistent with the committed offsets.
#[derive(Clone, Debug)]
pub struct StateSpec {
    /// Record-key prefix: the consumer group.
    pub namespace: String,
    /// State read back at start.
    pub restored: Arc<RestoredState>,
    /// Event time between checkpoints of the behavioral state.
    pub actor_interval_ms: u64,
}

impl StateSpec {
    /// Checkpointing for a run: on when Kafka is both input and output and the output names a
    /// state topic. Baselines are restored only with the resume points they are consistent
    /// with, so a group starting over (no checkpoint) learns from scratch.
    pub fn plan(input: &InputSpec, output: &OutputTarget, actor_interval_ms: u64) -> Result<Option<StateSpec>, String> {
        let (InputSpec::Kafka(k), OutputTarget::Kafka { settings, topics }) = (input, output) else {
            return Ok(None);
        };
        let Some((_, topic)) = topics.iter().find(|(s, _)| *s == OutputStream::State) else {
            return Ok(None);
        };
        let restored = if k.resume_after > 0 {
            crate::kafka_input::restore_state(settings, topic, &k.group_id)?
        } else {
            RestoredState::default()
        };
        tracing::info!(
            baselines = restored.baselines.len(),
            actors = restored.actors.len(),
            "restored detector state"
        );
        Ok(Some(StateSpec {
            namespace: k.group_id.clone(),
            restored: Arc::new(restored),
            actor_interval_ms,
        }))
    }
}

/// What a run did.
#[derive(Debug)]
pub struct RunOutcome {
    /// Counters.
    pub stats: Arc<JobStats>,
    /// Read→folded latency of every event, ns, merged over this process's workers.
    pub latency_ns: Histogram<u64>,
    /// Wall time.
    pub elapsed: std::time::Duration,
}

fn new_histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, 3_600_000_000_000, 3).expect("valid histogram bounds")
}

/// Runs the job under `config` (threads, processes) until every source is exhausted.
pub fn run(config: timely::Config, stats: Arc<JobStats>, spec: JobSpec) -> Result<RunOutcome, String> {
    let started = Instant::now();
    let worker_stats = Arc::clone(&stats);
    let spec = Arc::new(spec);
    let guards = timely::execute(config, move |worker| {
        let (index, peers) = (worker.index(), worker.peers());
        let mut final_commit = None;
        let reader: Box<dyn RecordReader> = match &spec.input {
            InputSpec::File(path) => match FileSource::open(path, index, peers, spec.ingest.limits.max_event_bytes) {
                Ok(r) => Box::new(r),
                Err(e) => return Err(format!("cannot read {}: {e}", path.display())),
            },
            InputSpec::Synthetic(cfg) => Box::new(SyntheticSource::new(cfg.clone(), index, peers)),
            InputSpec::Kafka(input) => {
                let (source, commit) =
                    KafkaSource::open(input, &input.share(index, peers), spec.ingest.limits.max_event_bytes)?;
                final_commit = Some(commit);
                Box::new(source)
            }
            InputSpec::Listen(addr, queues) => Box::new(crate::listen::ListenSource::new(
                *addr,
                queues[index % queues.len()].clone(),
            )),
        };
        // Kafka: every worker writes its own records through its own producer, keyed by
        // entity. Files and stdout: outputs are routed to worker 0, which alone holds real
        // sinks, so each stream lands in one ordered file.
        let every_worker = spec.output.written_by_every_worker();
        let producer = match &spec.output {
            OutputTarget::Kafka { settings, .. } => Some(KafkaOutput::create(settings)?),
            _ => None,
        };
        // `run --serve`: the writers also feed the serving store.
        let served = spec.serve_feed.as_ref().filter(|_| index == 0 || every_worker);
        // Each sink of `stream`, fed to the store as `fed` when serving, its queue depth gauged.
        let open_fed = |stream: OutputStream, fed: Option<FeedStream>| -> Result<Box<dyn RecordSink>, String> {
            if index > 0 && !every_worker {
                return Ok(Box::new(Discard));
            }
            let mut sink = match &spec.outbox_dir {
                Some(dir) if crate::delivery::is_outbox(stream) => OutputTarget::Dir(dir.clone()).open(stream, None)?,
                _ => spec.output.open(stream, producer.as_ref())?,
            };
            if let (Some(feed), Some(fed)) = (served, fed) {
                sink = Box::new(crate::io::ServedSink::new(sink, feed.sender.clone(), fed));
            }
            Ok(Box::new(GaugedSink::new(sink, worker_stats.sink_gauge(stream.name()))))
        };
        let open = |stream: OutputStream| open_fed(stream, None);
        // A sink that only feeds the store, for records the job does not write out; every
        // worker has one, so that every worker builds the same dataflow, and the writers' feed.
        let served_only = |stream: OutputStream, fed: FeedStream| -> Option<Box<dyn RecordSink>> {
            spec.serve_feed.as_ref()?;
            Some(match served {
                Some(feed) => Box::new(GaugedSink::new(
                    Box::new(crate::io::ServedSink::new(Box::new(Discard), feed.sender.clone(), fed)),
                    worker_stats.sink_gauge(stream.name()),
                )),
                None => Box::new(Discard),
            })
        };
        let writer = if every_worker { index as u64 } else { 0 };
        let anomaly_sink = open_fed(OutputStream::Anomalies, Some(FeedStream::Anomalies))?;
        let dead_sink = if spec.write_dead_letters {
            Some(open(OutputStream::DeadLetters)?)
        } else {
            None
        };
        let decision_sink = match &spec.guards {
            Some(g) if g.write_decisions => Some(open(OutputStream::Decisions)?),
            _ => None,
        };
        // The decisions the store keeps are copied to a sink of their own: it keeps few of them.
        let served_decision_sink = match (&spec.guards, &spec.serve_feed) {
            (Some(_), Some(feed)) if feed.decisions != KeptDecisions::None => {
                served_only(OutputStream::Decisions, FeedStream::Outcomes(OutcomeKind::Decision))
            }
            _ => None,
        };
        let judgement_sink = match &spec.guards {
            Some(g) if g.judges.is_some() => Some(open_fed(
                OutputStream::Judgements,
                Some(FeedStream::Outcomes(OutcomeKind::Judgement)),
            )?),
            _ => None,
        };
        let state_sink = match &spec.state {
            Some(_) => Some(open(OutputStream::State)?),
            None => None,
        };
        // The actions stage's checkpoints have a sink of their own: the detectors' checkpoints
        // wait for it.
        let action_state_sink = match (&spec.state, &spec.actions) {
            (Some(_), Some(_)) => Some(open(OutputStream::State)?),
            _ => None,
        };
        let aggregate_sink = if spec.write_aggregates {
            Some(open_fed(OutputStream::Aggregates, Some(FeedStream::Aggregates))?)
        } else {
            // The store charts the aggregates, whether or not they are written out too.
            served_only(OutputStream::Aggregates, FeedStream::Aggregates)
        };
        let action_sinks = match &spec.actions {
            Some(_) => Some([
                open_fed(OutputStream::Actions, Some(FeedStream::Outcomes(OutcomeKind::Action)))?,
                open_fed(OutputStream::Alerts, Some(FeedStream::Alerts))?,
                open_fed(
                    OutputStream::Incidents,
                    Some(FeedStream::Outcomes(OutcomeKind::Incident)),
                )?,
                open(OutputStream::Webhooks)?,
                open_fed(OutputStream::AnomalyEvents, Some(FeedStream::AnomalyEvents))?,
            ]),
            None => None,
        };
        let latency = Rc::new(RefCell::new(new_histogram()));
        let stats = Arc::clone(&worker_stats);
        let spec = Arc::clone(&spec);
        let resume_after = match &spec.input {
            InputSpec::Kafka(input) => input.resume_after,
            _ => 0,
        };
        // Passes a time once every output before it is acknowledged by its transport; offsets
        // are committed behind it.
        let acknowledged = ProbeHandle::new();
        let probes = Acknowledged {
            all: acknowledged.clone(),
            outputs: ProbeHandle::new(),
            for_detector_state: ProbeHandle::new(),
        };
        worker.dataflow::<u64, _, _>(|scope| {
            let mut ingest_config = spec.ingest.clone();
            if matches!(spec.input, InputSpec::File(_)) {
                // The shards of one file: keep them within one allowed lateness of each other.
                ingest_config.max_skew_ms = Some(ingest_config.lateness_ms.max(1_000));
            }
            let (events, dead, screened) =
                ingest(scope, reader, ingest_config, Arc::clone(&stats), acknowledged.clone());
            let (partials, pairs) = events.pre_aggregate(spec.plan.clone(), Rc::clone(&latency));
            let windows = partials.merge_windows(pairs.distinct_counts(), spec.plan.max_samples);
            // After a restart, windows ending before the acknowledged point were emitted in full
            // already, and are re-read only in part: drop them before they reach detectors.
            let windows = windows.filter(move |w| w.window_end >= resume_after);
            // The aggregates the sink takes: all of them when written out; when only the store
            // wants them, each dimension's narrowest windows, users' left out (what it charts).
            // Tapped, so the detectors' stream is not copied for the sink.
            let (windows, written_windows) = if aggregate_sink.is_some() {
                let all = spec.write_aggregates;
                let charted = spec.plan.charted();
                let (windows, kept) = windows.tap("AggregatesTap", move |w| {
                    all || charted.contains(&(w.dimension, w.width_ms))
                });
                (windows, Some(kept))
            } else {
                (windows, None)
            };
            let checkpoints = spec.state.as_ref().map(|s| StateCheckpoints {
                namespace: s.namespace.clone(),
                restored: Arc::clone(&s.restored),
                outputs_acknowledged: probes.for_detector_state.clone(),
                actor_interval_ms: s.actor_interval_ms,
                stats: Arc::clone(&stats),
            });
            let (mut anomalies, baselines) = windows
                .clone()
                .detect_statistical(spec.detectors.clone(), checkpoints.clone());
            let mut state = baselines.map(StateRecord::Baseline);
            if let Some(g) = &spec.guards {
                // After a restart, events before the acknowledged point had their decisions
                // delivered already (a decision goes out no later than its event's time).
                let screened = screened.filter(move |e| e.timestamp_ms >= resume_after);
                let agents = g.judges.as_ref().map_or_else(AgentSwitches::default, |j| j.agents);
                let assessed = screened.assess(g.policies.clone(), g.behavior.clone(), agents, checkpoints.clone());
                anomalies = anomalies.concat(assessed.anomalies);
                state = state.concat(assessed.snapshots.map(StateRecord::Actor));
                // Only escalated requests pass the judge stage; every other decision is final.
                let decisions = match &g.judges {
                    Some(j) => {
                        let judged =
                            assessed
                                .escalated
                                .judge(Arc::clone(&j.service), j.decider, j.timeout, Arc::clone(&stats));
                        if let Some(sink) = judgement_sink {
                            let counter = Arc::clone(&stats);
                            write_out(
                                judged.judgements,
                                "JudgementSink",
                                sink,
                                writer,
                                as_itself,
                                move |r| counter.add_judgement(&r.analysis),
                                &probes,
                            );
                        }
                        assessed.decisions.concat(judged.decisions)
                    }
                    None => assessed.decisions,
                };
                let decisions = match (served_decision_sink, &spec.serve_feed) {
                    (Some(sink), Some(feed)) => {
                        let kept = feed.decisions;
                        let (decisions, copies) = decisions.tap("ServedDecisionsTap", move |d| kept.keeps(d.tier));
                        write_out(
                            copies,
                            "ServedDecisionSink",
                            sink,
                            writer,
                            Decision::write_json,
                            |_| {},
                            &probes,
                        );
                        decisions
                    }
                    _ => decisions,
                };
                if let Some(sink) = decision_sink {
                    let counter = Arc::clone(&stats);
                    write_out(
                        decisions,
                        "DecisionSink",
                        sink,
                        writer,
                        Decision::write_json,
                        move |d| counter.add_decision(d),
                        &probes,
                    );
                }
            }
            if let Some(sink) = state_sink {
                // Kafka only: every worker writes its own checkpoints.
                state
                    .sink_json("StateSink", sink, as_itself, |_| {})
                    .probe_with(&acknowledged);
            }
            if let (Some(config), Some([shield, alerts, incidents, webhooks, lifecycle])) =
                (&spec.actions, action_sinks)
            {
                // The stage's checkpoints wait for the outputs only; the detectors' wait for them.
                let action_checkpoints = checkpoints.clone().map(|c| StateCheckpoints {
                    outputs_acknowledged: probes.outputs.clone(),
                    ..c
                });
                let acted = anomalies.act(config.clone(), action_checkpoints);
                if let Some(sink) = action_state_sink {
                    acted
                        .snapshots
                        .map(StateRecord::Actions)
                        .sink_json("ActionStateSink", sink, as_itself, |_| {})
                        .probe_with(&acknowledged)
                        .probe_with(&probes.for_detector_state);
                }
                anomalies = acted.anomalies;
                let c = counting(&stats, OutputStream::Actions);
                write_out(acted.shield, "ActionSink", shield, writer, as_itself, c, &probes);
                let c = counting(&stats, OutputStream::Alerts);
                write_out(acted.alerts, "AlertSink", alerts, writer, as_itself, c, &probes);
                let c = counting(&stats, OutputStream::Incidents);
                write_out(
                    acted.incidents,
                    "IncidentSink",
                    incidents,
                    writer,
                    as_itself,
                    c,
                    &probes,
                );
                let c = counting(&stats, OutputStream::Webhooks);
                write_out(acted.webhooks, "WebhookSink", webhooks, writer, as_itself, c, &probes);
                let c = counting(&stats, OutputStream::AnomalyEvents);
                write_out(
                    acted.lifecycle,
                    "AnomalyEventSink",
                    lifecycle,
                    writer,
                    as_itself,
                    c,
                    &probes,
                );
            }
            let counter = Arc::clone(&stats);
            write_out(
                anomalies,
                "AnomalySink",
                anomaly_sink,
                writer,
                as_itself,
                move |a| counter.add_anomalies(&a.detector_id, a.severity, 1),
                &probes,
            );
            if let Some(sink) = dead_sink {
                write_out(dead, "DeadLetterSink", sink, writer, as_itself, |_| {}, &probes);
            }
            if let (Some(sink), Some(windows)) = (aggregate_sink, written_windows) {
                let to_json = |w: &_, out: &mut Vec<u8>| {
                    serde_json::to_writer(out, &sentinel_dataflows::window::WindowAggregate::record(w))
                };
                write_out(windows, "AggregateSink", sink, writer, to_json, |_| {}, &probes);
            }
        });
        // Parks at most a while, so a graceful stop is seen even with nothing to do.
        while worker.step_or_park(Some(std::time::Duration::from_millis(100))) {
            if stats.stopped() {
                // Every local source has handed over its resume points; what remains open is
                // read again after a restart, so the dataflow is dropped unfinished.
                for dataflow in worker.installed_dataflows() {
                    worker.drop_dataflow(dataflow);
                }
                break;
            }
        }
        // The dataflow is done, so every output is acknowledged: commit the final positions.
        if let Some(commit) = final_commit {
            commit.commit()?;
        }
        if let Some(producer) = &producer {
            let (delivered, errors) = producer.ledger().counts();
            stats
                .delivered
                .fetch_add(delivered, std::sync::atomic::Ordering::Relaxed);
            stats
                .delivery_errors
                .fetch_add(errors, std::sync::atomic::Ordering::Relaxed);
        }
        let histogram = latency.borrow().clone();
        Ok(histogram)
    })?;
    let mut latency_ns = new_histogram();
    for result in guards.join() {
        let histogram = result.map_err(|e| format!("worker failed: {e}"))??;
        latency_ns
            .add(&histogram)
            .map_err(|e| format!("merging latency histograms: {e}"))?;
    }
    Ok(RunOutcome {
        stats,
        latency_ns,
        elapsed: started.elapsed(),
    })
}
