//! The source operator: reads raw records, decodes and validates them, assigns event time, and
//! splits off dead letters. Its capability is the source's watermark.

use std::rc::Rc;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;
use std::time::{Duration, Instant};

use timely::dataflow::operators::generic::builder_rc::OperatorBuilder;
use timely::dataflow::operators::generic::OutputBuilder;
use timely::dataflow::{ProbeHandle, Scope, Stream};

use super::stats::{monotonic_ns, JobStats};
use crate::guard::Screening;
use crate::model::{decode_with, DeadLetter, DecodeLimits, MetricEvent, Position, Reason, ScreenedEvent};
use crate::state::{CommitPoint, OffsetLedger};
use crate::time::{Admission, ClockPolicy, EventClock};

/// One raw record from a source, borrowed from the reader's buffer.
#[derive(Clone, Copy, Debug)]
pub struct RawRecord<'a> {
    /// The record's bytes, possibly cut short by the reader (see `original_len`).
    pub bytes: &'a [u8],
    /// Length before any cut; larger than `bytes.len()` for oversized records.
    pub original_len: usize,
    /// 1-based line number, for files.
    pub line: Option<u64>,
    /// Which of the reader's partitions it came from (0 for unpartitioned sources); each one
    /// keeps its own event-time watermark.
    pub slot: usize,
    /// Topic, for Kafka.
    pub topic: Option<&'a str>,
    /// Partition, for partitioned sources.
    pub partition: Option<i32>,
    /// Offset within the partition.
    pub offset: Option<i64>,
}

/// What a reader has left after a read.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ReadStatus {
    /// More records are ready; call again soon.
    More,
    /// Nothing ready now; call again after about this long (or when woken).
    Idle(Duration),
    /// The source is finished.
    Done,
}

/// A source of raw records, owned by one worker. Implemented outside this crate for files and Kafka.
pub trait RecordReader {
    /// Name for positions, e.g. `file:trace.jsonl`.
    fn name(&self) -> &str;
    /// Passes up to `budget` records to `each`, stopping early if it returns `false`
    /// (that record counts as consumed). Must not block.
    fn read(&mut self, budget: usize, each: &mut dyn FnMut(RawRecord<'_>) -> bool) -> ReadStatus;
    /// How many partitions (`RawRecord::slot` values) this reader has; 0 means it owns none and
    /// the source is finished at once.
    fn slots(&self) -> usize {
        1
    }
    /// Whether partition `slot` has nothing waiting right now. A partition that stays so for
    /// `IngestConfig::idle_timeout` stops holding the watermark back.
    fn slot_at_end(&self, _slot: usize) -> bool {
        false
    }
    /// Whether records arrive as they happen (Kafka, a listener), so that event time can be
    /// checked against the wall clock. Replays of recorded traces are not live.
    fn live(&self) -> bool {
        false
    }
    /// Receives a callback, callable from any thread, that schedules the source again: readers
    /// fed by another thread (Kafka) call it when records arrive.
    fn set_waker(&mut self, _wake: Arc<dyn Fn() + Send + Sync>) {}
    /// For sources with committable offsets: each slot's `(resume offset, restored newest event
    /// time)`. `None` (files, the generator) turns offset tracking off.
    fn resume_state(&self) -> Option<Vec<(Option<i64>, u64)>> {
        None
    }
    /// Commits resume points whose outputs are all acknowledged. Must not block.
    fn commit(&mut self, _points: &[CommitPoint]) {}
    /// `(topic, partition, records behind its end)` of each partition, as far as the reader
    /// knows without asking anyone (empty for files and the generator). Must not block.
    fn lags(&self) -> Vec<(String, i32, i64)> {
        Vec::new()
    }
    /// Hands over the resume points for the end of the run, to be committed once the dataflow
    /// has finished (every output then being acknowledged).
    fn finish(&mut self, _points: &[CommitPoint]) {}
}

/// During a graceful stop, how long the acknowledged frontier must stand still before the
/// source takes everything in flight as acknowledged.
const DRAIN_SETTLED: Duration = Duration::from_millis(500);

/// How long a source that ran ahead waits before looking again.
const ALIGNMENT_WAIT: Duration = Duration::from_millis(1);

/// How often a source reports how far behind its partitions' ends it is.
const LAG_INTERVAL: Duration = Duration::from_secs(1);

/// Source behaviour.
#[derive(Clone, Debug)]
pub struct IngestConfig {
    /// How far behind the newest event time the watermark trails.
    pub lateness_ms: u64,
    /// How far one record may move its partition's clock on its own (see
    /// [`crate::time::EventClock`]); `None` turns the check off.
    pub max_clock_step_ms: Option<u64>,
    /// Live sources: how far ahead of the wall clock a record may be stamped.
    pub max_future_ms: Option<u64>,
    /// Later records that confirm a jump of a partition's clock.
    pub clock_confirm_records: usize,
    /// Decoding bounds.
    pub limits: DecodeLimits,
    /// Bytes of the original record kept in a dead letter.
    pub dead_letter_keep: usize,
    /// Records per activation, so one source cannot starve the worker's other operators.
    pub batch_records: usize,
    /// Replay pacing: `Some(1.0)` replays at recorded speed, `Some(10.0)` ten times faster, `None` as fast as possible.
    pub speed: Option<f64>,
    /// How long a partition with nothing to read may hold the watermark back.
    pub idle_timeout: Duration,
    /// Widths of the windows every event feeds: the widest window's end is the last time an
    /// event's outputs can appear at, which decides when its offset may be committed.
    pub horizon_widths: Vec<u64>,
    /// Least time between offset commits.
    pub commit_interval: Duration,
    /// After a graceful stop, how long a source waits for its outputs to be acknowledged
    /// before it commits what is and finishes anyway.
    pub drain_timeout: Duration,
    /// Content guards to run on every event while its text is at hand; `None` skips them
    /// (and the screened-event output stays empty).
    pub screening: Option<Arc<Screening>>,
    /// Watermark alignment: a source whose watermark runs this far ahead of the slowest local
    /// source waits. Replays of one file want it: its shards are independent, one may outrun
    /// another, and everything it reads then waits downstream for the slow one (memory grows
    /// with the lead). `None` lets every source read freely.
    pub max_skew_ms: Option<u64>,
}

impl Default for IngestConfig {
    fn default() -> Self {
        IngestConfig {
            lateness_ms: 5_000,
            max_clock_step_ms: Some(5_000),
            max_future_ms: Some(60_000),
            clock_confirm_records: 8,
            limits: DecodeLimits::default(),
            dead_letter_keep: 4096,
            batch_records: 4096,
            speed: None,
            idle_timeout: Duration::from_secs(10),
            horizon_widths: Vec::new(),
            commit_interval: Duration::from_secs(1),
            drain_timeout: Duration::from_secs(30),
            screening: None,
            max_skew_ms: None,
        }
    }
}

struct Pacer {
    speed: f64,
    origin: Option<(u64, Instant)>,
}

impl Pacer {
    /// How long until an event at `ts` is due, or `None` when it is due now.
    fn wait(&mut self, ts: u64) -> Option<Duration> {
        let (t0, w0) = *self.origin.get_or_insert((ts, Instant::now()));
        let due = w0 + Duration::from_secs_f64(ts.saturating_sub(t0) as f64 / 1000.0 / self.speed);
        due.checked_duration_since(Instant::now()).filter(|d| !d.is_zero())
    }
}

/// A stream of batches of `D` at event-time watermarks.
pub type Batches<'scope, D> = Stream<'scope, u64, Vec<D>>;

/// Builds the source: valid events at their watermark, and dead letters. `acknowledged` is a
/// probe on the sinks' acknowledgement streams: offsets are committed only behind its frontier.
///
/// Events are sent at the source's watermark (max event time seen − lateness) and carry their own
/// event time, so a batch needs one capability, not one per event. An event older than the
/// watermark is late: it is dead-lettered with reason `late`, never dropped.
pub fn ingest<'scope>(
    scope: Scope<'scope, u64>,
    mut reader: Box<dyn RecordReader>,
    cfg: IngestConfig,
    stats: Arc<JobStats>,
    acknowledged: ProbeHandle<u64>,
) -> (
    Batches<'scope, MetricEvent>,
    Batches<'scope, DeadLetter>,
    Batches<'scope, ScreenedEvent>,
) {
    let mut builder = OperatorBuilder::new(format!("Ingest({})", reader.name()), scope);
    let info = builder.operator_info();
    let (events_out, events) = builder.new_output::<Vec<MetricEvent>>();
    let (dead_out, dead) = builder.new_output::<Vec<DeadLetter>>();
    let (screened_out, screened) = builder.new_output::<Vec<ScreenedEvent>>();
    let mut screened_out =
        OutputBuilder::<_, timely::container::CapacityContainerBuilder<Vec<ScreenedEvent>>>::from(screened_out);
    let mut events_out =
        OutputBuilder::<_, timely::container::CapacityContainerBuilder<Vec<MetricEvent>>>::from(events_out);
    let mut dead_out = OutputBuilder::<_, timely::container::CapacityContainerBuilder<Vec<DeadLetter>>>::from(dead_out);
    let activator = Rc::new(scope.activator_for(info.address.clone()));
    let sync = scope.worker().sync_activator_for(info.address.to_vec());
    reader.set_waker(Arc::new(move || {
        // Fails only once the dataflow is gone, when there is nothing left to wake.
        let _ = sync.activate();
    }));
    let source_name: Arc<str> = reader.name().into();
    let worker_index = scope.worker().index();

    builder.build(move |mut caps| {
        let mut screened_cap = caps.pop();
        let mut dead_cap = caps.pop();
        let mut event_cap = caps.pop();
        let slot_count = reader.slots();
        let resume = reader.resume_state();
        let policy = ClockPolicy {
            lateness_ms: cfg.lateness_ms,
            max_future_ms: cfg.max_future_ms.filter(|_| reader.live()),
            max_step_ms: cfg.max_clock_step_ms,
            confirm_records: cfg.clock_confirm_records,
        };
        let clocks = (0..slot_count)
            .map(|slot| {
                let restored = resume.as_ref().and_then(|r| r.get(slot)).map(|(_, max_ts)| *max_ts);
                PartitionClock {
                    clock: EventClock::new(policy, restored.filter(|t| *t > 0)),
                    last_record: None,
                }
            })
            .collect();
        let mut state = IngestState {
            ledger: resume.map(|r| OffsetLedger::new(&r)),
            last_commit: None,
            watermark_floor: 0,
            clocks,
            verdicts: Vec::new(),
            read_ns: 0,
            now: Instant::now(),
            wall_ms: 0,
            dead_time: 0,
            pacer: cfg
                .speed
                .filter(|s| *s > 0.0)
                .map(|speed| Pacer { speed, origin: None }),
            batch: Vec::with_capacity(cfg.batch_records),
            dead: Vec::new(),
            screened: Vec::new(),
            source_name,
            cfg,
            stats,
        };
        let mut held: Option<(Vec<u8>, RawRecord<'static>)> = None;
        state.stats.sources_running.fetch_add(1, Relaxed);
        // Counts this source out of `sources_running`, once.
        let mut running = true;
        // During a graceful stop: when it began, and the acknowledged frontier with when it last moved.
        let mut stopping_since: Option<Instant> = None;
        let mut last_durable: (u64, Instant) = (0, Instant::now());
        // How far the watermark moved at the last batch that moved it.
        let mut last_advance = 0u64;
        // When the partitions' lags were last handed to the stats.
        let mut lags_read: Option<Instant> = None;
        move |_frontiers| {
            if state.clocks.is_empty() {
                // Nothing to read here (more workers than partitions): release the capabilities
                // so the other workers' watermarks alone decide progress.
                event_cap = None;
                dead_cap = None;
                screened_cap = None;
                state.stats.set_watermark(worker_index, u64::MAX);
            }
            let (Some(ecap), Some(dcap), Some(scap)) = (event_cap.as_mut(), dead_cap.as_mut(), screened_cap.as_mut())
            else {
                if std::mem::take(&mut running) {
                    state.stats.sources_running.fetch_sub(1, Relaxed);
                }
                return;
            };
            if state.stats.stop.load(Relaxed) {
                // A graceful stop: read nothing more, and close nothing early (open windows
                // are read again after a restart, as the commits trail them). Wait until what
                // was emitted is acknowledged, then hand over the resume points and finish,
                // keeping the capabilities (dropping them would flush the open windows).
                let since = *stopping_since.get_or_insert_with(Instant::now);
                state.now = Instant::now();
                let durable = acknowledged.with_frontier(|f| f.iter().next().copied().unwrap_or(u64::MAX));
                let emitted_up_to = (*ecap.time()).min(state.stats.watermark());
                if durable != last_durable.0 {
                    last_durable = (durable, state.now);
                }
                // Operators further on hold times of their own (open windows, events waiting
                // for the watermark), so the frontier may stop short of the source's: once it
                // has not moved for a while, what was in flight is acknowledged.
                let settled = last_durable.1.elapsed() >= DRAIN_SETTLED;
                tracing::debug!(durable, emitted_up_to, settled, "draining for a graceful stop");
                if durable >= emitted_up_to || settled || since.elapsed() >= state.cfg.drain_timeout {
                    tracing::info!(source = %state.source_name, durable, "stopped reading; resume points handed over");
                    if let Some(ledger) = state.ledger.as_mut() {
                        reader.finish(&ledger.safe_points(durable));
                    }
                    let waiting: usize = state.clocks.iter().map(|c| c.clock.pending()).sum();
                    let waiting = waiting + usize::from(held.is_some());
                    state.stats.held_at_stop.fetch_add(waiting as u64, Relaxed);
                    if std::mem::take(&mut running) {
                        state.stats.sources_running.fetch_sub(1, Relaxed);
                    }
                } else {
                    state.commit_acknowledged(&mut *reader, &acknowledged);
                    if lags_read.is_none_or(|at| at.elapsed() >= LAG_INTERVAL) {
                        state.stats.set_lags(reader.lags());
                        lags_read = Some(Instant::now());
                    }
                    activator.activate_after(Duration::from_millis(10));
                }
                return;
            }
            let watermark = *ecap.time();
            if let Some(skew) = state.cfg.max_skew_ms {
                // A lead of two of its own batches is always allowed: when one batch spans more
                // event time than `skew`, waiting sooner would make the sources take turns.
                let allowance = skew.max(last_advance.saturating_mul(2));
                if held.is_none() && watermark > state.stats.watermark().saturating_add(allowance) {
                    // The slowest local source never waits, so some source always reads.
                    activator.activate_after(ALIGNMENT_WAIT);
                    return;
                }
            }
            state.read_ns = monotonic_ns();
            state.now = Instant::now();
            state.wall_ms = wall_clock_ms();
            state.watermark_floor = watermark;
            state.dead_time = *dcap.time();
            let mut records = 0u64;
            // A record that was not due at the last activation goes first.
            let mut status = ReadStatus::More;
            if let Some((bytes, meta)) = held.take() {
                if let Some(wait) = state.handle(RawRecord { bytes: &bytes, ..meta }) {
                    held = Some((bytes, meta));
                    status = ReadStatus::Idle(wait);
                }
            }
            if held.is_none() {
                let mut not_due = None;
                status = reader.read(state.cfg.batch_records, &mut |rec| {
                    records += 1;
                    not_due = state.handle(rec);
                    if not_due.is_some() {
                        held = Some((
                            rec.bytes.to_vec(),
                            RawRecord {
                                bytes: &[],
                                topic: None,
                                ..rec
                            },
                        ));
                    }
                    not_due.is_none()
                });
                if let Some(wait) = not_due {
                    status = ReadStatus::Idle(wait);
                }
            }
            state.settle(&*reader, matches!(status, ReadStatus::Done) && held.is_none());
            state.stats.records_in.fetch_add(records, Relaxed);
            state.stats.events_decoded.fetch_add(state.batch.len() as u64, Relaxed);
            if !state.batch.is_empty() {
                events_out.activate().session(&*ecap).give_container(&mut state.batch);
                state.batch.clear();
            }
            if !state.dead.is_empty() {
                dead_out.activate().session(&*dcap).give_container(&mut state.dead);
                state.dead.clear();
            }
            if !state.screened.is_empty() {
                screened_out
                    .activate()
                    .session(&*scap)
                    .give_container(&mut state.screened);
                state.screened.clear();
            }
            state.commit_acknowledged(&mut *reader, &acknowledged);
            match status {
                ReadStatus::Done if held.is_none() => {
                    // Windows still open are flushed as the capabilities go; a restart re-reads
                    // their records, so resume behind the watermark, not behind the flush.
                    let end = state.watermark(&*reader).unwrap_or(0).max(*ecap.time());
                    if let Some(ledger) = state.ledger.as_mut() {
                        reader.finish(&ledger.safe_points(end));
                    }
                    event_cap = None;
                    dead_cap = None;
                    screened_cap = None;
                    state.stats.set_watermark(worker_index, u64::MAX);
                    if std::mem::take(&mut running) {
                        state.stats.sources_running.fetch_sub(1, Relaxed);
                    }
                    return;
                }
                ReadStatus::More => activator.activate(),
                ReadStatus::Idle(after) => activator.activate_after(after),
                ReadStatus::Done => activator.activate(),
            }
            let Some(next) = state.watermark(&*reader) else {
                return;
            };
            if next > *ecap.time() {
                if watermark > 0 {
                    last_advance = next - watermark;
                }
                ecap.downgrade(&next);
                dcap.downgrade(&next);
                scap.downgrade(&next);
                state.stats.set_watermark(worker_index, next);
            }
        }
    });
    (events, dead, screened)
}

/// Event-time progress of one partition.
struct PartitionClock {
    /// Its event-time clock, holding records whose jump ahead is not yet confirmed.
    clock: EventClock<ClockEntry>,
    /// When the last record was accepted (`None` before the first).
    last_record: Option<Instant>,
}

/// A decoded record on its way through a partition's clock.
struct ClockEntry {
    event: MetricEvent,
    screened: Option<ScreenedEvent>,
    /// A copy of the raw record, for records the clock may hold past this activation; `None`
    /// for the record being read, whose bytes are still at hand.
    kept: Option<KeptRecord>,
}

/// What a dead letter needs of a record once its bytes are gone.
struct KeptRecord {
    bytes: Vec<u8>,
    original_len: usize,
    line: Option<u64>,
    topic: Option<String>,
    partition: Option<i32>,
    offset: Option<i64>,
}

impl KeptRecord {
    fn of(rec: &RawRecord<'_>, keep: usize) -> Self {
        KeptRecord {
            bytes: rec.bytes[..rec.bytes.len().min(keep)].to_vec(),
            original_len: rec.original_len,
            line: rec.line,
            topic: rec.topic.map(str::to_owned),
            partition: rec.partition,
            offset: rec.offset,
        }
    }

    fn raw(&self, slot: usize) -> RawRecord<'_> {
        RawRecord {
            bytes: &self.bytes,
            original_len: self.original_len,
            line: self.line,
            slot,
            topic: self.topic.as_deref(),
            partition: self.partition,
            offset: self.offset,
        }
    }
}

/// Wall-clock time in epoch milliseconds.
fn wall_clock_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

struct IngestState {
    /// Record horizons per partition, for sources with offsets.
    ledger: Option<OffsetLedger>,
    /// When offsets were last committed, and what.
    last_commit: Option<(Instant, Vec<CommitPoint>)>,
    clocks: Vec<PartitionClock>,
    /// Verdicts of the clock being offered a record (reused).
    verdicts: Vec<Admission<ClockEntry>>,
    /// The source's watermark at this activation: no record may be accepted behind it.
    watermark_floor: u64,
    /// Wall-clock time of this activation, epoch ms.
    wall_ms: u64,
    /// When this activation began reading; one clock read per batch, not per record.
    read_ns: u64,
    /// The same moment, as an `Instant`.
    now: Instant,
    /// The time dead letters of this activation are sent at (the capability's).
    dead_time: u64,
    pacer: Option<Pacer>,
    batch: Vec<MetricEvent>,
    screened: Vec<ScreenedEvent>,
    dead: Vec<DeadLetter>,
    source_name: Arc<str>,
    cfg: IngestConfig,
    stats: Arc<JobStats>,
}

impl IngestState {
    /// Commits the resume points behind the acknowledged frontier, at most once per interval
    /// and only when they moved.
    fn commit_acknowledged(&mut self, reader: &mut dyn RecordReader, acknowledged: &ProbeHandle<u64>) {
        let Some(ledger) = self.ledger.as_mut() else { return };
        if let Some((at, _)) = &self.last_commit {
            if at.elapsed() < self.cfg.commit_interval {
                return;
            }
        }
        let durable = acknowledged.with_frontier(|f| f.iter().next().copied().unwrap_or(u64::MAX));
        let points = ledger.safe_points(durable);
        let moved = self
            .last_commit
            .as_ref()
            .is_none_or(|(_, last)| last.iter().map(|p| p.offset).ne(points.iter().map(|p| p.offset)));
        if moved && !points.is_empty() {
            reader.commit(&points);
        }
        self.last_commit = Some((self.now, points));
    }

    /// The last time an event at `ts` can affect an output: the end of its widest window.
    fn horizon(&self, ts: u64) -> u64 {
        self.cfg
            .horizon_widths
            .iter()
            .map(|w| crate::window::window_end(ts, *w))
            .max()
            .unwrap_or(ts)
    }

    /// The source's watermark: the least over active partitions of (newest event time −
    /// lateness). A partition with nothing to read stops counting once it has been quiet for
    /// the idle timeout (at once if it never had a record). `None` while a partition that may
    /// still deliver has not been heard from, or when every partition is idle and nothing was
    /// ever read.
    fn watermark(&self, reader: &dyn RecordReader) -> Option<u64> {
        let mut active: Option<u64> = None;
        let mut newest: Option<u64> = None;
        for (slot, clock) in self.clocks.iter().enumerate() {
            let at_end = reader.slot_at_end(slot);
            let Some(last) = clock.last_record else {
                if at_end {
                    continue;
                }
                return None;
            };
            let mark = clock.clock.watermark().unwrap_or(0);
            newest = Some(newest.map_or(mark, |n| n.max(mark)));
            if !(at_end && last.elapsed() >= self.cfg.idle_timeout) {
                active = Some(active.map_or(mark, |a| a.min(mark)));
            }
        }
        active.or(newest)
    }

    /// Decodes one record into the event or dead-letter batch. Returns how long to wait when
    /// pacing says the record is not yet due (the caller keeps it).
    fn handle(&mut self, rec: RawRecord<'_>) -> Option<Duration> {
        if rec.original_len > rec.bytes.len() {
            let detail = format!(
                "record is {} bytes, limit is {}",
                rec.original_len, self.cfg.limits.max_event_bytes
            );
            self.reject(&rec, Reason::TooLarge, detail);
            self.track(&rec, self.dead_time, None);
            return None;
        }
        let screening = self.cfg.screening.clone();
        let decoded = decode_with(rec.bytes, &self.cfg.limits, |wire, metric| {
            let screened = screening.as_ref().map(|s| s.screen(wire, &metric));
            (metric, screened)
        });
        match decoded {
            Ok((event, screened)) => {
                if let Some(wait) = self.pacer.as_mut().and_then(|p| p.wait(event.timestamp_ms)) {
                    return Some(wait);
                }
                let ts = event.timestamp_ms;
                let clock = &mut self.clocks[rec.slot].clock;
                let kept = if clock.admits_directly(ts, self.wall_ms) {
                    None
                } else {
                    if let (Some(ledger), Some(offset)) = (self.ledger.as_mut(), rec.offset) {
                        ledger.hold(rec.slot, offset);
                    }
                    Some(KeptRecord::of(&rec, self.cfg.dead_letter_keep))
                };
                let entry = ClockEntry { event, screened, kept };
                let mut verdicts = std::mem::take(&mut self.verdicts);
                clock.offer(ts, self.wall_ms, self.watermark_floor, entry, &mut |a| verdicts.push(a));
                for verdict in verdicts.drain(..) {
                    self.apply(verdict, &rec);
                }
                self.verdicts = verdicts;
            }
            Err(rejection) => {
                self.reject(&rec, rejection.reason, rejection.detail);
                self.track(&rec, self.dead_time, None);
            }
        }
        None
    }

    /// Decides the records partitions hold: all of them at the end of the input, and on live
    /// sources those of partitions with nothing more to read now.
    fn settle(&mut self, reader: &dyn RecordReader, at_end: bool) {
        let mut verdicts = std::mem::take(&mut self.verdicts);
        for slot in 0..self.clocks.len() {
            let clock = &mut self.clocks[slot].clock;
            if clock.pending() == 0 {
                continue;
            }
            if at_end {
                clock.settle(0, self.watermark_floor, &mut |a| verdicts.push(a));
            } else if reader.live() && reader.slot_at_end(slot) {
                clock.settle(self.wall_ms, self.watermark_floor, &mut |a| verdicts.push(a));
            }
            // Every record that waited carries its own copy of the raw record.
            let placeholder = RawRecord {
                bytes: &[],
                original_len: 0,
                line: None,
                slot,
                topic: None,
                partition: None,
                offset: None,
            };
            for verdict in verdicts.drain(..) {
                self.apply(verdict, &placeholder);
            }
        }
        self.verdicts = verdicts;
    }

    /// Acts on the clock's verdict: the event goes on, or the record becomes a dead letter.
    /// `current` is the record being read, for verdicts on it (those carry no copy).
    fn apply(&mut self, verdict: Admission<ClockEntry>, current: &RawRecord<'_>) {
        let (entry, reason, detail) = match verdict {
            Admission::Accepted { item, timestamp_ms } => {
                let rec = item.kept.as_ref().map_or(*current, |k| k.raw(current.slot));
                let horizon = self.horizon(timestamp_ms);
                self.track(&rec, horizon, Some(timestamp_ms));
                self.clocks[current.slot].last_record = Some(self.now);
                let mut event = item.event;
                event.read_ns = self.read_ns;
                self.batch.push(event);
                self.screened.extend(item.screened);
                return;
            }
            Admission::Late {
                item,
                timestamp_ms,
                watermark_ms,
            } => (
                item,
                Reason::Late,
                format!("event time {timestamp_ms} ms is behind the watermark {watermark_ms} ms"),
            ),
            Admission::InFuture {
                item,
                timestamp_ms,
                wall_ms,
            } => (
                item,
                Reason::TimestampInFuture,
                format!(
                    "event time {timestamp_ms} ms is {} ms ahead of the wall clock (limit {} ms)",
                    timestamp_ms.saturating_sub(wall_ms),
                    self.cfg.max_future_ms.unwrap_or(0)
                ),
            ),
            Admission::Jump {
                item,
                timestamp_ms,
                clock_ms,
            } => (
                item,
                Reason::TimestampJump,
                match clock_ms {
                    Some(clock) => format!(
                        "event time {timestamp_ms} ms is {} ms ahead of its partition's clock {clock} ms, and the \
                         records after it did not follow",
                        timestamp_ms.saturating_sub(clock)
                    ),
                    None => {
                        format!("event time {timestamp_ms} ms is far from the records read with it on its partition")
                    }
                },
            ),
        };
        let rec = entry.kept.as_ref().map_or(*current, |k| k.raw(current.slot));
        self.reject(&rec, reason, detail);
        self.track(&rec, self.dead_time, None);
    }

    /// Notes a record's horizon in the offset ledger.
    fn track(&mut self, rec: &RawRecord<'_>, horizon: u64, event_ts: Option<u64>) {
        if let (Some(ledger), Some(offset)) = (self.ledger.as_mut(), rec.offset) {
            ledger.record(rec.slot, offset, horizon, event_ts);
        }
    }

    fn reject(&mut self, rec: &RawRecord<'_>, reason: Reason, detail: String) {
        self.stats.dead_letter(reason);
        let position = Position {
            source: rec.topic.map_or_else(|| self.source_name.to_string(), str::to_owned),
            line: rec.line,
            partition: rec.partition,
            offset: rec.offset,
        };
        self.dead.push(DeadLetter::new(
            reason,
            detail,
            position,
            rec.bytes,
            rec.original_len,
            self.cfg.dead_letter_keep,
        ));
    }
}
