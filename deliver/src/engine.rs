//! The delivery: its own thread and tokio runtime, never a timely worker's. A pump thread
//! reads the outbox, turns each record into jobs, and hands each job to a lane (a task taking
//! one job at a time, so one key's deliveries keep their order); lanes are bounded queues,
//! so a slow receiver slows the pump, never the dataflow. Completed jobs are logged, and the
//! outbox is committed up to the first record still in flight.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};
use std::sync::{mpsc, Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use hdrhistogram::Histogram;
use sentinel_connectors::grpc::shield::{enforce, Enforced};
use sentinel_connectors::http::client::{HttpClient, HttpRequest, Method};
use sentinel_connectors::http::retry::{Attempt, Next, Retries};
use sentinel_dataflows::act::{
    ActionStatus, AlertRecord, AlertStatus, CallbackStatus, DeliveryState, IncidentOp, IncidentRecord, NotifyReason,
    ShieldCallback,
};
use sentinel_dataflows::hash::{hash64, StableId};
use sentinel_dataflows::model::lifecycle::{Change, ChangeSource, LifecycleEvent};
use sentinel_dataflows::model::{ActionKind, DeadLetter, Position, Reason, Severity};
use sentinel_dataflows::operators::{Reading, ReadingKind};
use sentinel_dataflows::time::format_rfc3339_ms;
use serde_json::json;

use crate::config::DeliveryConfig;
use crate::outbox::{Outbox, OutboxRecord, StatusLog};
use crate::render::{alert_jobs, incident_job, jobs_of, Call, IncidentCall, Job, OutboxStream};

/// Records read from the outbox per poll.
const POLL_BATCH: usize = 256;
/// How long the pump waits for a completion when the outbox has nothing new.
const IDLE_WAIT: Duration = Duration::from_millis(20);
/// How often the log is flushed and the outbox committed.
const COMMIT_EVERY: Duration = Duration::from_millis(200);
/// How long a failed callback waits for its anomaly's alert before it escalates to no one.
const CALLBACK_WAIT: Duration = Duration::from_secs(60);
/// Bytes of a record kept in its dead letter.
const DEAD_LETTER_KEEP: usize = 64 * 1024;

/// Counters of a delivery run.
#[derive(Debug, Default)]
pub struct DeliveryStats {
    /// Acknowledged by their receivers.
    pub delivered: AtomicU64,
    /// Given up on (refused, or out of attempts): in the dead letters.
    pub dead_lettered: AtomicU64,
    /// Nowhere to deliver to.
    pub skipped: AtomicU64,
    /// Found done in the status log (delivered by an earlier run).
    pub already_done: AtomicU64,
    /// Attempts after the first.
    pub retries: AtomicU64,
    /// Outbox records that did not parse.
    pub malformed: AtomicU64,
    /// Deliveries read from the outbox and not finished yet: the delivery queue's depth.
    pub in_flight: AtomicU64,
    latency_us: Mutex<Option<Histogram<u64>>>,
}

impl DeliveryStats {
    fn record_latency(&self, waited: Duration) {
        let mut h = self.latency_us.lock().unwrap_or_else(|e| e.into_inner());
        let h = h.get_or_insert_with(|| Histogram::new_with_bounds(1, 3_600_000_000, 3).expect("valid bounds"));
        let _ = h.record(waited.as_micros().clamp(1, 3_600_000_000) as u64);
    }

    /// The figures `/metrics` shows: deliveries by outcome, retries, malformed outbox
    /// records, and the deliveries in flight.
    pub fn readings(&self) -> Vec<Reading> {
        let mut out: Vec<Reading> = [
            ("delivered", &self.delivered),
            ("dead_lettered", &self.dead_lettered),
            ("skipped", &self.skipped),
            ("already_done", &self.already_done),
        ]
        .iter()
        .map(|(outcome, n)| Reading {
            name: "sentinel_action_deliveries",
            help: "Action deliveries (Shield, alerts, incidents, webhooks) finished, by outcome.",
            kind: ReadingKind::Counter,
            labels: vec![("outcome", (*outcome).to_owned())],
            value: n.load(Relaxed) as f64,
        })
        .collect();
        for (name, help, kind, n) in [
            (
                "sentinel_action_delivery_retries",
                "Delivery attempts after the first.",
                ReadingKind::Counter,
                &self.retries,
            ),
            (
                "sentinel_action_outbox_malformed",
                "Outbox records that did not parse (dead-lettered).",
                ReadingKind::Counter,
                &self.malformed,
            ),
            (
                "sentinel_action_deliveries_in_flight",
                "Deliveries read from the outbox and not finished yet.",
                ReadingKind::Gauge,
                &self.in_flight,
            ),
        ] {
            out.push(Reading {
                name,
                help,
                kind,
                labels: Vec::new(),
                value: n.load(Relaxed) as f64,
            });
        }
        out
    }

    /// Latency from the outbox read to the final answer, µs, at quantile `q`.
    pub fn latency_us(&self, q: f64) -> f64 {
        let h = self.latency_us.lock().unwrap_or_else(|e| e.into_inner());
        h.as_ref().map_or(0.0, |h| h.value_at_quantile(q) as f64)
    }
}

/// A job in a lane, and where its completion goes.
struct Task {
    job: Job,
    ticket: Ticket,
    read_at: Instant,
    record: Arc<OutboxRecord>,
}

/// Which outbox record a job belongs to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Ticket {
    source: usize,
    position: u64,
}

struct Completion {
    ticket: Ticket,
    status: ActionStatus,
    record: Arc<OutboxRecord>,
    /// The receiver's answer, when it was given up on.
    dead: Option<String>,
}

/// Per outbox source, the records with jobs still out: position → jobs left.
#[derive(Default)]
struct InFlight {
    open: BTreeMap<usize, BTreeMap<u64, usize>>,
    /// Per source, the position just past the newest record read.
    read_to: BTreeMap<usize, u64>,
}

impl InFlight {
    fn open(&mut self, ticket: Ticket, jobs: usize, next: u64) {
        if jobs > 0 {
            *self
                .open
                .entry(ticket.source)
                .or_default()
                .entry(ticket.position)
                .or_default() += jobs;
        }
        let read = self.read_to.entry(ticket.source).or_default();
        *read = (*read).max(next);
    }

    fn close(&mut self, ticket: Ticket) {
        if let Some(positions) = self.open.get_mut(&ticket.source) {
            if let Some(left) = positions.get_mut(&ticket.position) {
                *left -= 1;
                if *left == 0 {
                    positions.remove(&ticket.position);
                }
            }
        }
    }

    /// Per source, the position before which every record is done.
    fn committable(&self) -> Vec<(usize, u64)> {
        self.read_to
            .iter()
            .map(|(source, read)| {
                let first_open = self.open.get(source).and_then(|p| p.keys().next().copied());
                (*source, first_open.unwrap_or(*read))
            })
            .collect()
    }

    fn jobs(&self) -> usize {
        self.open.values().flat_map(|p| p.values()).sum()
    }
}

/// Incident-manager ids by Sentinel's incident key, from the status log and new creates.
type IncidentIds = Arc<Mutex<HashMap<String, String>>>;

struct Control {
    /// The outbox's writer is done: stop once it is read and delivered.
    finishing: AtomicBool,
    /// Stop by then even with deliveries left (they are sent again after a restart).
    deadline: Mutex<Option<Instant>>,
}

/// A running delivery.
pub struct Delivery {
    control: Arc<Control>,
    stats: Arc<DeliveryStats>,
    thread: std::thread::JoinHandle<()>,
}

impl Delivery {
    /// Starts delivering from `outbox`, logging to `log`.
    pub fn start(config: DeliveryConfig, outbox: Box<dyn Outbox>, mut log: Box<dyn StatusLog>) -> Result<Self, String> {
        let earlier = log.load()?;
        let mut done = HashSet::new();
        let mut incident_ids = HashMap::new();
        let mut incident_of = HashMap::new();
        for s in earlier {
            if let (ActionKind::IncidentCreate | ActionKind::IncidentComment, Some(key)) = (s.action, &s.incident_key) {
                if let Ok(key) = key.parse::<StableId>() {
                    // Delivered already: nothing of it waits, so any order key will do.
                    incident_of.insert(s.anomaly_id.clone(), (key, key.to_string()));
                }
            }
            if matches!(s.status, DeliveryState::Delivered | DeliveryState::DeadLettered) {
                done.insert(s.delivery_id.clone());
            }
            if let (Some(key), Some(id)) = (s.incident_key, s.incident_id) {
                incident_ids.insert(key, id);
            }
        }
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(config.threads.max(1))
            .thread_name("sentinel-deliver")
            .enable_all()
            .build()
            .map_err(|e| format!("cannot start the delivery runtime: {e}"))?;
        let client = HttpClient::new(concat!("sentinel/", env!("CARGO_PKG_VERSION")))?;
        let control = Arc::new(Control {
            finishing: AtomicBool::new(false),
            deadline: Mutex::new(None),
        });
        let stats = Arc::new(DeliveryStats::default());
        let pump = Pump {
            config,
            outbox,
            log,
            done,
            incident_ids: Arc::new(Mutex::new(incident_ids)),
            stats: Arc::clone(&stats),
            control: Arc::clone(&control),
            shield_kinds: HashMap::new(),
            receivers_of: HashMap::new(),
            incident_of,
            deferred: Vec::new(),
        };
        let thread = std::thread::Builder::new()
            .name("sentinel-deliver-pump".into())
            .spawn(move || pump.run(runtime, client))
            .map_err(|e| format!("cannot start the delivery thread: {e}"))?;
        Ok(Delivery { control, stats, thread })
    }

    /// The delivery's counters.
    pub fn stats(&self) -> &Arc<DeliveryStats> {
        &self.stats
    }

    /// The outbox's writer is done: delivers what is left, waiting at most `drain`, then
    /// stops. Deliveries still out then are sent again by the next run.
    pub fn finish(self, drain: Duration) -> Arc<DeliveryStats> {
        *self.control.deadline.lock().unwrap_or_else(|e| e.into_inner()) = Some(Instant::now() + drain);
        self.control.finishing.store(true, Relaxed);
        if self.thread.join().is_err() {
            tracing::error!("the delivery thread panicked");
        }
        self.stats
    }
}

struct Pump {
    config: DeliveryConfig,
    outbox: Box<dyn Outbox>,
    log: Box<dyn StatusLog>,
    done: HashSet<String>,
    incident_ids: IncidentIds,
    stats: Arc<DeliveryStats>,
    control: Arc<Control>,
    /// Each Shield action's kind, by action id.
    shield_kinds: HashMap<String, ActionKind>,
    /// Each anomaly's alert receivers, for escalations.
    receivers_of: HashMap<String, Vec<String>>,
    /// The incident each anomaly opened or joined, so a person's resolution resolves it.
    /// With the order key its requests go out under.
    incident_of: HashMap<String, (StableId, String)>,
    /// Failed callbacks waiting for their anomaly's receivers: since when, and which anomaly.
    deferred: Vec<(Instant, String, OutboxRecord)>,
}

impl Pump {
    fn run(mut self, runtime: tokio::runtime::Runtime, client: HttpClient) {
        let (completed_tx, completed) = mpsc::channel::<Completion>();
        let lanes: Vec<tokio::sync::mpsc::Sender<Task>> = (0..self.config.concurrency.max(1))
            .map(|_| {
                let (tx, mut rx) = tokio::sync::mpsc::channel::<Task>(self.config.queue.max(1));
                let completed = completed_tx.clone();
                let client = client.clone();
                let incident_ids = Arc::clone(&self.incident_ids);
                let stats = Arc::clone(&self.stats);
                runtime.spawn(async move {
                    while let Some(task) = rx.recv().await {
                        let (status, dead) = attempt_all(&client, &task.job, &incident_ids, &stats).await;
                        stats.record_latency(task.read_at.elapsed());
                        let _ = completed.send(Completion {
                            ticket: task.ticket,
                            status,
                            record: task.record,
                            dead,
                        });
                    }
                });
                tx
            })
            .collect();
        drop(completed_tx);
        let mut in_flight = InFlight::default();
        let mut last_commit = Instant::now();
        let mut outbox_idle = false;
        loop {
            while let Ok(c) = completed.try_recv() {
                self.complete(c, &mut in_flight);
            }
            self.stats.in_flight.store(in_flight.jobs() as u64, Relaxed);
            if last_commit.elapsed() >= COMMIT_EVERY {
                self.commit(&in_flight);
                last_commit = Instant::now();
            }
            let deadline = *self.control.deadline.lock().unwrap_or_else(|e| e.into_inner());
            if deadline.is_some_and(|d| Instant::now() >= d) {
                if in_flight.jobs() > 0 {
                    tracing::warn!(
                        left = in_flight.jobs(),
                        "delivery drain timed out; the rest go out after a restart"
                    );
                }
                break;
            }
            let finishing = self.control.finishing.load(Relaxed);
            let drained = finishing && outbox_idle && self.outbox.caught_up();
            self.release_callbacks(drained, &lanes, &mut in_flight);
            if drained && in_flight.jobs() == 0 {
                break;
            }
            let records = match self.outbox.poll(POLL_BATCH) {
                Ok(r) => r,
                Err(e) => {
                    tracing::error!(error = %e, "outbox read failed; retrying");
                    Vec::new()
                }
            };
            outbox_idle = records.is_empty();
            if outbox_idle {
                match completed.recv_timeout(IDLE_WAIT) {
                    Ok(c) => self.complete(c, &mut in_flight),
                    Err(mpsc::RecvTimeoutError::Timeout) => {}
                    Err(mpsc::RecvTimeoutError::Disconnected) => break,
                }
                continue;
            }
            for record in records {
                self.dispatch(record, &lanes, &mut in_flight);
            }
        }
        while let Ok(c) = completed.try_recv() {
            self.complete(c, &mut in_flight);
        }
        self.commit(&in_flight);
        drop(lanes);
        runtime.shutdown_timeout(Duration::from_millis(100));
    }

    /// A failed callback waits for its anomaly's alert to be read (Shield may answer before the
    /// alert's group wait is over): it is held, and holds the outbox commit, until the alert is
    /// seen, [`CALLBACK_WAIT`] passes, or the outbox is drained.
    fn release_callbacks(
        &mut self,
        drained: bool,
        lanes: &[tokio::sync::mpsc::Sender<Task>],
        in_flight: &mut InFlight,
    ) {
        if self.deferred.is_empty() {
            return;
        }
        let (ready, waiting): (Vec<_>, Vec<_>) =
            std::mem::take(&mut self.deferred)
                .into_iter()
                .partition(|(since, anomaly, _)| {
                    drained || since.elapsed() >= CALLBACK_WAIT || self.receivers_of.contains_key(anomaly)
                });
        self.deferred = waiting;
        for (_, _, record) in ready {
            in_flight.close(Ticket {
                source: record.source,
                position: record.position,
            });
            self.dispatch_now(record, lanes, in_flight);
        }
    }

    /// The anomaly a failed callback in `record` waits for, when its receivers are not known yet.
    fn awaited_anomaly(&self, record: &OutboxRecord) -> Option<String> {
        serde_json::from_slice::<ShieldCallback>(&record.bytes)
            .ok()
            .filter(|cb| cb.status == CallbackStatus::Failed && !self.receivers_of.contains_key(&cb.anomaly_id))
            .map(|cb| cb.anomaly_id)
    }

    fn dispatch(&mut self, record: OutboxRecord, lanes: &[tokio::sync::mpsc::Sender<Task>], in_flight: &mut InFlight) {
        let awaited = match record.stream {
            OutboxStream::Callbacks => self.awaited_anomaly(&record),
            _ => None,
        };
        if let Some(anomaly) = awaited {
            in_flight.open(
                Ticket {
                    source: record.source,
                    position: record.position,
                },
                1,
                record.position + 1,
            );
            self.deferred.push((Instant::now(), anomaly, record));
            return;
        }
        self.dispatch_now(record, lanes, in_flight);
    }

    fn dispatch_now(
        &mut self,
        record: OutboxRecord,
        lanes: &[tokio::sync::mpsc::Sender<Task>],
        in_flight: &mut InFlight,
    ) {
        let ticket = Ticket {
            source: record.source,
            position: record.position,
        };
        let next = record.position + 1;
        let parsed = match record.stream {
            OutboxStream::Callbacks => self.callback(&record),
            OutboxStream::AnomalyEvents => self.person_change(&record),
            stream => jobs_of(stream, &record.bytes, &self.config),
        };
        let jobs = match parsed {
            Ok(jobs) => jobs,
            Err(why) => {
                self.stats.malformed.fetch_add(1, Relaxed);
                let letter = self.dead_letter(&record, why);
                self.log.dead_letter(&letter);
                in_flight.open(ticket, 0, next);
                return;
            }
        };
        for job in &jobs {
            self.remember(job);
        }
        let record = Arc::new(record);
        let pending: Vec<Job> = jobs
            .into_iter()
            .filter(|j| {
                let done = self.done.contains(&j.delivery_id);
                if done {
                    self.stats.already_done.fetch_add(1, Relaxed);
                }
                !done
            })
            .collect();
        in_flight.open(ticket, pending.len(), next);
        for job in pending {
            if let Call::Skip(why) = &job.call {
                self.stats.skipped.fetch_add(1, Relaxed);
                let status = status_of(&job, DeliveryState::Skipped, 0, None, why.clone(), Duration::ZERO);
                self.log.append(&status);
                in_flight.close(ticket);
                continue;
            }
            let lane = &lanes[(hash64(job.order_key.as_bytes()) % lanes.len() as u64) as usize];
            let task = Task {
                job,
                ticket,
                read_at: Instant::now(),
                record: Arc::clone(&record),
            };
            if lane.blocking_send(task).is_err() {
                tracing::error!("a delivery lane stopped; the record is delivered after a restart");
            }
        }
    }

    /// Notes what later callbacks need: each Shield action's kind, each anomaly's receivers.
    fn remember(&mut self, job: &Job) {
        match job.kind {
            ActionKind::ShieldBlock | ActionKind::ShieldRateLimit | ActionKind::ShieldUnblock => {
                self.shield_kinds.insert(job.action_id.clone(), job.kind);
            }
            ActionKind::IncidentCreate | ActionKind::IncidentComment => {
                if let Call::Incident { incident_key, .. } = &job.call {
                    self.incident_of
                        .insert(job.anomaly_id.clone(), (*incident_key, job.order_key.clone()));
                }
            }
            ActionKind::Alert if !job.anomaly_id.is_empty() => {
                let receivers = self.receivers_of.entry(job.anomaly_id.clone()).or_default();
                if !receivers.contains(&job.receiver) {
                    receivers.push(job.receiver.clone());
                }
            }
            _ => {}
        }
    }

    /// A lifecycle change: a person resolving an anomaly that opened or joined an incident
    /// resolves the incident, once (its delivery id derives from the change). The job's own
    /// resolutions, and acknowledgements, ask nothing: the job resolves its incidents itself.
    fn person_change(&mut self, record: &OutboxRecord) -> Result<Vec<Job>, String> {
        let event: LifecycleEvent =
            serde_json::from_slice(&record.bytes).map_err(|e| format!("not a lifecycle event: {e}"))?;
        if event.source != ChangeSource::Person || event.change != Change::Resolve {
            return Ok(Vec::new());
        }
        let Some((incident_key, order_key)) = self.incident_of.get(&event.anomaly_id).cloned() else {
            return Ok(Vec::new());
        };
        let note = event.note.as_deref().map(|n| format!(": {n}")).unwrap_or_default();
        let resolve = IncidentRecord {
            id: StableId::of(&[b"incident-resolve-by-person", event.id.as_bytes()]),
            incident_key,
            // After the incident's own requests, in their order.
            entity: order_key,
            anomaly_id: event.anomaly_id.clone(),
            detector_id: String::new(),
            op: IncidentOp::Resolve {
                resolution: format!("{} resolved anomaly {} in Sentinel{note}", event.by, event.anomaly_id),
            },
            timestamp: format_rfc3339_ms(event.at_ms),
        };
        Ok(vec![incident_job(&resolve, &self.config)])
    }

    /// Logs one Shield callback; a failure becomes an escalation alert to the anomaly's
    /// receivers, whose jobs are returned.
    fn callback(&mut self, record: &OutboxRecord) -> Result<Vec<Job>, String> {
        let cb: ShieldCallback =
            serde_json::from_slice(&record.bytes).map_err(|e| format!("not a Shield callback: {e}"))?;
        let state_name = cb.status.as_str();
        let delivery_id = StableId::of(&[
            b"callback",
            cb.action_id.as_bytes(),
            state_name.as_bytes(),
            cb.timestamp.as_bytes(),
        ])
        .to_string();
        if self.done.contains(&delivery_id) {
            self.stats.already_done.fetch_add(1, Relaxed);
            return Ok(Vec::new());
        }
        let receivers = self.receivers_of.get(&cb.anomaly_id).cloned().unwrap_or_default();
        let failed = cb.status == CallbackStatus::Failed;
        let report = Job {
            order_key: cb.action_id.clone(),
            delivery_id: delivery_id.clone(),
            action_id: cb.action_id.clone(),
            anomaly_id: cb.anomaly_id.clone(),
            kind: self
                .shield_kinds
                .get(&cb.action_id)
                .copied()
                .unwrap_or(ActionKind::ShieldReport),
            receiver: "shield".into(),
            call: Call::Skip(String::new()),
            retry: self.config.retry,
        };
        let message = match (failed, receivers.is_empty()) {
            (true, true) => format!("{} (no receivers known for the anomaly to escalate to)", cb.message),
            (true, false) => format!("{} (escalated to {})", cb.message, receivers.join(", ")),
            (false, _) => format!("{}: {}", state_name, cb.message),
        };
        let state = if failed {
            DeliveryState::Failed
        } else {
            DeliveryState::Reported
        };
        let status = status_of(&report, state, 0, None, message, Duration::ZERO);
        self.done.insert(delivery_id.clone());
        self.log.append(&status);
        if !failed || receivers.is_empty() {
            return Ok(Vec::new());
        }
        let escalation = AlertRecord {
            id: StableId::of(&[b"escalation", delivery_id.as_bytes()]),
            group_key: format!("escalation|{}", cb.anomaly_id),
            sequence: 0,
            reason: NotifyReason::New,
            status: AlertStatus::Firing,
            severity: Severity::Critical,
            title: format!("Shield could not carry out action {}: {}", cb.action_id, cb.message),
            receivers,
            detector_id: "shield".into(),
            entities: Vec::new(),
            firing: vec![cb.anomaly_id.clone()],
            resolved: Vec::new(),
            timestamp: cb.timestamp.clone(),
        };
        Ok(alert_jobs(&escalation, &self.config))
    }

    fn complete(&mut self, c: Completion, in_flight: &mut InFlight) {
        match c.status.status {
            DeliveryState::Delivered => self.stats.delivered.fetch_add(1, Relaxed),
            DeliveryState::DeadLettered => self.stats.dead_lettered.fetch_add(1, Relaxed),
            _ => self.stats.skipped.fetch_add(1, Relaxed),
        };
        if let Some(answer) = c.dead {
            let why = format!("{} `{}` gave up: {answer}", c.status.action.as_str(), c.status.receiver);
            let letter = self.dead_letter(&c.record, why);
            self.log.dead_letter(&letter);
        }
        self.done.insert(c.status.delivery_id.clone());
        self.log.append(&c.status);
        in_flight.close(c.ticket);
    }

    fn commit(&mut self, in_flight: &InFlight) {
        self.log.flush();
        for (source, next) in in_flight.committable() {
            self.outbox.commit(source, next);
        }
    }

    fn dead_letter(&self, record: &OutboxRecord, why: String) -> DeadLetter {
        let position = Position {
            source: self.outbox.source_name(record.source),
            line: None,
            partition: None,
            offset: i64::try_from(record.position).ok(),
        };
        DeadLetter::new(
            Reason::DeliveryFailed,
            why,
            position,
            &record.bytes,
            record.bytes.len(),
            DEAD_LETTER_KEEP,
        )
    }
}

fn status_of(
    job: &Job,
    state: DeliveryState,
    attempts: u32,
    http_status: Option<u16>,
    message: String,
    latency: Duration,
) -> ActionStatus {
    let now_ms = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64);
    ActionStatus {
        delivery_id: job.delivery_id.clone(),
        action_id: job.action_id.clone(),
        anomaly_id: job.anomaly_id.clone(),
        action: job.kind,
        receiver: job.receiver.clone(),
        status: state,
        attempts,
        http_status,
        message,
        incident_key: None,
        incident_id: None,
        latency_ms: latency.as_millis() as u64,
        timestamp: format_rfc3339_ms(now_ms),
    }
}

/// How one attempt went: the retry policy's view, the HTTP status, and what the receiver said.
struct Tried {
    attempt: Attempt,
    http_status: Option<u16>,
    answer: String,
    /// An incident the manager created.
    incident_id: Option<String>,
}

/// Tries `job` until it is delivered or given up on. The second value is the receiver's last
/// answer when it was given up on (for the dead letter).
async fn attempt_all(
    client: &HttpClient,
    job: &Job,
    incident_ids: &IncidentIds,
    stats: &DeliveryStats,
) -> (ActionStatus, Option<String>) {
    let started = Instant::now();
    let mut retries = Retries::new(job.retry);
    loop {
        let tried = attempt_once(client, job, incident_ids).await;
        match retries.after(&tried.attempt) {
            Next::Done => {
                let mut status = status_of(
                    job,
                    DeliveryState::Delivered,
                    retries.attempts(),
                    tried.http_status,
                    tried.answer,
                    started.elapsed(),
                );
                if let Call::Incident { incident_key, .. } = &job.call {
                    status.incident_key = Some(incident_key.to_string());
                    status.incident_id = tried.incident_id;
                }
                return (status, None);
            }
            Next::RetryAfter(wait) => {
                stats.retries.fetch_add(1, Relaxed);
                tokio::time::sleep(wait).await;
            }
            Next::GiveUp(reason) => {
                let answer = format!("{reason}; last answer: {}", tried.answer);
                let status = status_of(
                    job,
                    DeliveryState::DeadLettered,
                    retries.attempts(),
                    tried.http_status,
                    answer.clone(),
                    started.elapsed(),
                );
                return (status, Some(answer));
            }
        }
    }
}

async fn attempt_once(client: &HttpClient, job: &Job, incident_ids: &IncidentIds) -> Tried {
    match &job.call {
        Call::Http(call) => {
            let mut request = call.request.clone();
            if let Some(secret) = &call.secret {
                let now_s = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
                for (name, value) in secret.headers(&job.delivery_id, now_s, &request.body) {
                    request.headers.push((name.to_owned(), value));
                }
            }
            http_attempt(client, &request).await
        }
        Call::Shield {
            endpoint,
            enforcement,
            timeout,
        } => match enforce(endpoint, enforcement, *timeout).await {
            Enforced::Answered { success: true, message } => Tried {
                attempt: Attempt::Delivered,
                http_status: None,
                answer: message,
                incident_id: None,
            },
            // Shield answered and refused: trying again would get the same answer.
            Enforced::Answered {
                success: false,
                message,
            } => Tried {
                attempt: Attempt::Status {
                    code: 422,
                    retry_after: None,
                },
                http_status: None,
                answer: format!("Shield refused: {message}"),
                incident_id: None,
            },
            Enforced::Failed(attempt, text) => Tried {
                attempt,
                http_status: None,
                answer: text,
                incident_id: None,
            },
        },
        Call::Incident {
            incident_key,
            call,
            target,
            idempotency_key,
        } => {
            let base = format!("{}/api/v1/incidents", target.url.trim_end_matches('/'));
            let now = format_rfc3339_ms(
                SystemTime::now()
                    .duration_since(UNIX_EPOCH)
                    .map_or(0, |d| d.as_millis() as u64),
            );
            let known = incident_ids
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .get(&incident_key.to_string())
                .cloned();
            let (method, url, body) = match (call, known) {
                (IncidentCall::Create(body), _) => (Method::Post, base, body.clone()),
                (IncidentCall::Comment(text), Some(id)) => (
                    Method::Post,
                    format!("{base}/{id}/comments"),
                    json!({"author": "llm-sentinel", "text": text, "timestamp": now}),
                ),
                (IncidentCall::Resolve(resolution), Some(id)) => (
                    Method::Patch,
                    format!("{base}/{id}"),
                    json!({"status": "resolved", "resolution": resolution, "resolved_at": now}),
                ),
                (_, None) => {
                    return Tried {
                        attempt: Attempt::Status {
                            code: 409,
                            retry_after: None,
                        },
                        http_status: None,
                        answer: "the incident was never created (its create is in the dead letters)".into(),
                        incident_id: None,
                    }
                }
            };
            let mut headers = target.headers.clone();
            headers.push(("Idempotency-Key".into(), idempotency_key.clone()));
            let request = HttpRequest {
                method,
                url,
                headers,
                body: serde_json::to_vec(&body).unwrap_or_default(),
                timeout: target.timeout,
            };
            let mut tried = http_attempt(client, &request).await;
            if matches!(call, IncidentCall::Create(_)) && tried.attempt == Attempt::Delivered {
                let answer: serde_json::Value = serde_json::from_str(&tried.answer).unwrap_or_default();
                let id = answer
                    .get("incident_id")
                    .or_else(|| answer.get("id"))
                    .map(|v| v.as_str().map_or_else(|| v.to_string(), str::to_owned));
                match id {
                    Some(id) => {
                        incident_ids
                            .lock()
                            .unwrap_or_else(|e| e.into_inner())
                            .insert(incident_key.to_string(), id.clone());
                        tried.incident_id = Some(id);
                    }
                    None => {
                        tried.attempt = Attempt::Status {
                            code: 502,
                            retry_after: None,
                        };
                        tried.answer = format!("no incident_id in the answer: {}", tried.answer);
                    }
                }
            }
            tried
        }
        Call::Skip(why) => Tried {
            attempt: Attempt::Status {
                code: 400,
                retry_after: None,
            },
            http_status: None,
            answer: why.clone(),
            incident_id: None,
        },
    }
}

async fn http_attempt(client: &HttpClient, request: &HttpRequest) -> Tried {
    match client.send(request).await {
        Ok(answer) => Tried {
            attempt: if (200..300).contains(&answer.status) {
                Attempt::Delivered
            } else {
                answer.attempt()
            },
            http_status: Some(answer.status),
            answer: answer.body,
            incident_id: None,
        },
        Err((attempt, text)) => Tried {
            attempt,
            http_status: None,
            answer: text,
            incident_id: None,
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::HttpTarget;
    use crate::loopback::{Faults, ReceiverServer};
    use crate::outbox::{FileOutbox, FileStatusLog};
    use sentinel_connectors::http::retry::RetryPolicy;
    use sentinel_dataflows::act::{WebhookEvent, WebhookRecord};
    use sentinel_dataflows::model::{AffectedEntity, Anomaly, AnomalyDraft, AnomalyMetrics, DetectorType};

    fn record(i: u64) -> WebhookRecord {
        let a = Anomaly::build(AnomalyDraft {
            id_parts: &[b"t", &i.to_le_bytes()],
            detector_id: "prompt-injection",
            detector_type: DetectorType::Rule,
            severity: Severity::Critical,
            score: 0.9,
            title: "t".into(),
            description: String::new(),
            entity: AffectedEntity {
                entity_type: "user".into(),
                id: "u".into(),
                name: "u".into(),
            },
            metrics: AnomalyMetrics {
                baseline_value: 0.0,
                observed_value: 1.0,
                deviation: 0.0,
                threshold: 0.5,
            },
            at_ms: 1_717_200_000_000,
            window_ms: (1_717_200_000_000, 1_717_200_000_000),
            sample_events: Vec::new(),
        });
        let timestamp = a.timestamp.clone();
        WebhookRecord::about(WebhookEvent::AnomalyDetected, a, 0, timestamp)
    }

    #[test]
    fn an_attempt_past_its_timeout_is_retried_and_then_dead_lettered_with_the_reason() {
        let dir = tempfile::tempdir().unwrap();
        let lines: Vec<String> = (0..3).map(|i| serde_json::to_string(&record(i)).unwrap()).collect();
        std::fs::write(dir.path().join("webhooks.jsonl"), lines.join("\n") + "\n").unwrap();
        // The receiver answers after 400 ms; each attempt may take 100 ms.
        let server = ReceiverServer::start(
            Faults {
                delay: Duration::from_millis(400),
                ..Faults::default()
            },
            None,
        );
        let config = DeliveryConfig {
            webhooks: vec![HttpTarget {
                name: "slow".into(),
                url: format!("{}/hooks/slow", server.url()),
                headers: Vec::new(),
                secret: None,
                template: None,
                timeout: Duration::from_millis(100),
                retry: RetryPolicy {
                    max_attempts: 2,
                    base: Duration::from_millis(10),
                    ..RetryPolicy::default()
                },
            }],
            ..DeliveryConfig::default()
        };
        let outbox = FileOutbox::new(dir.path(), &[(OutboxStream::Webhooks, "webhooks")]);
        let delivery = Delivery::start(config, Box::new(outbox), Box::new(FileStatusLog::new(dir.path()))).unwrap();
        let stats = delivery.finish(Duration::from_secs(30));
        assert_eq!(stats.dead_lettered.load(Relaxed), 3);
        assert_eq!(stats.retries.load(Relaxed), 3, "one retry each, then given up");
        let letters = std::fs::read_to_string(dir.path().join("delivery_deadletter.jsonl")).unwrap();
        let letters: Vec<serde_json::Value> = letters.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
        assert_eq!(letters.len(), 3);
        assert!(letters
            .iter()
            .all(|l| l["reason"] == "delivery_failed" && l["detail"].as_str().unwrap().contains("slow")));
        let statuses = std::fs::read_to_string(dir.path().join("action_statuses.jsonl")).unwrap();
        assert!(statuses
            .lines()
            .all(|l| l.contains("\"dead_lettered\"") && l.contains("\"attempts\":2")));
    }

    #[test]
    fn a_persons_resolution_resolves_the_incident_its_anomaly_opened_and_nothing_else() {
        use crate::config::IncidentManager;
        use sentinel_dataflows::act::{IncidentBody, IncidentMetadata, Priority};
        use sentinel_dataflows::model::lifecycle::{ConditionScope, Status};
        let dir = tempfile::tempdir().unwrap();
        let key = StableId::of(&[b"incident", b"user:u"]);
        let create = IncidentRecord {
            id: StableId::of(&[b"create"]),
            incident_key: key,
            entity: "user:u".into(),
            anomaly_id: "an-1".into(),
            detector_id: "prompt-injection".into(),
            op: IncidentOp::Create {
                incident: Box::new(IncidentBody {
                    source: "llm-sentinel".into(),
                    incident_type: "anomaly_detected".into(),
                    severity: Priority::P1,
                    title: "injection".into(),
                    description: String::new(),
                    metadata: IncidentMetadata {
                        anomaly_id: "an-1".into(),
                        detector_id: "prompt-injection".into(),
                        score: 0.9,
                        timestamp: "2024-06-01T00:00:00.000Z".into(),
                        incident_key: key.to_string(),
                    },
                    affected_entities: Vec::new(),
                    remediation_actions: Vec::new(),
                }),
            },
            timestamp: "2024-06-01T00:00:00.000Z".into(),
        };
        std::fs::write(
            dir.path().join("incidents.jsonl"),
            serde_json::to_string(&create).unwrap() + "\n",
        )
        .unwrap();
        let scope = ConditionScope {
            detector_id: "prompt-injection".into(),
            entity: "user:u".into(),
            from_ms: 0,
            through_ms: 1,
        };
        let changes = [
            LifecycleEvent::by_person("an-1", Change::Acknowledge, Status::Active, "ana", None, 10),
            LifecycleEvent::by_person("an-9", Change::Resolve, Status::Active, "ana", None, 11),
            LifecycleEvent::resolved_by_job("an-1", scope, 12),
            LifecycleEvent::by_person(
                "an-1",
                Change::Resolve,
                Status::Acknowledged,
                "ana",
                Some("benign".into()),
                13,
            ),
        ];
        let lines: Vec<String> = changes.iter().map(|c| serde_json::to_string(c).unwrap()).collect();
        std::fs::write(dir.path().join("person_changes.jsonl"), lines.join("\n") + "\n").unwrap();
        let server = ReceiverServer::start(Faults::default(), None);
        let config = DeliveryConfig {
            incident_manager: Some(IncidentManager {
                target: HttpTarget {
                    name: "incidents".into(),
                    url: server.url(),
                    headers: Vec::new(),
                    secret: None,
                    template: None,
                    timeout: Duration::from_secs(5),
                    retry: RetryPolicy::default(),
                },
            }),
            ..DeliveryConfig::default()
        };
        let streams = [
            (OutboxStream::Incidents, "incidents"),
            (OutboxStream::AnomalyEvents, "person_changes"),
        ];
        let outbox = FileOutbox::new(dir.path(), &streams);
        let delivery = Delivery::start(config, Box::new(outbox), Box::new(FileStatusLog::new(dir.path()))).unwrap();
        let stats = delivery.finish(Duration::from_secs(30));
        assert_eq!(stats.delivered.load(Relaxed), 2, "the create, then one resolve");
        let states: Vec<String> = server.incidents().into_values().collect();
        assert_eq!(states, ["resolved"]);
        let resolve = server
            .received()
            .into_iter()
            .find(|r| r.body["status"] == "resolved")
            .expect("a resolve request");
        let text = resolve.body.to_string();
        assert!(
            text.contains("ana resolved anomaly an-1") && text.contains("benign"),
            "{text}"
        );
    }
}
