//! Adapters between the byte transports in `sentinel-connectors` and the dataflow's reader and
//! sink traits. This is the only place the two crates meet.

use std::collections::VecDeque;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use sentinel_connectors::file::{FileShardReader, FileWriter, ShardStatus};
use sentinel_connectors::kafka::{
    publish_keyed, Assignment, KafkaOutput, KafkaSettings, OffsetCommitter, PartitionReader, ReaderStatus, TopicWriter,
};
use sentinel_connectors::stdio::StdoutLines;
use sentinel_connectors::wake::WakeSlot;
use sentinel_dataflows::operators::{RawRecord, ReadStatus, RecordReader, RecordSink};
use sentinel_dataflows::state::CommitPoint;

use crate::kafka_input::{Checkpoint, KafkaInput};
use crate::streams::OutputStream;
use sentinel_dataflows::synth::{TraceConfig, TraceGenerator};
use sentinel_serve::feed::{FeedSender, FeedStream, Unsent};

/// One worker's share of a trace file.
pub struct FileSource {
    name: String,
    reader: FileShardReader,
}

impl FileSource {
    /// Opens worker `index` of `peers`'s share of `path`.
    pub fn open(path: &Path, index: usize, peers: usize, max_record: usize) -> std::io::Result<Self> {
        Ok(FileSource {
            name: format!("file:{}", path.display()),
            reader: FileShardReader::open(path, index, peers, max_record)?,
        })
    }
}

impl RecordReader for FileSource {
    fn name(&self) -> &str {
        &self.name
    }

    fn read(&mut self, budget: usize, each: &mut dyn FnMut(RawRecord<'_>) -> bool) -> ReadStatus {
        let result = self.reader.read(budget, &mut |bytes, original_len, line, offset| {
            each(RawRecord {
                bytes,
                original_len,
                line,
                slot: 0,
                topic: None,
                partition: None,
                offset: offset.map(|o| o as i64),
            })
        });
        match result {
            Ok(ShardStatus::More) => ReadStatus::More,
            Ok(ShardStatus::Done) => ReadStatus::Done,
            Err(e) => {
                // A read error ends this shard; the summary shows how far it got.
                tracing::error!(source = %self.name, error = %e, "read failed; stopping this source");
                ReadStatus::Done
            }
        }
    }
}

/// One worker's share of the built-in synthetic trace (every `peers`-th event).
pub struct SyntheticSource {
    generator: TraceGenerator,
    index: u64,
    peers: u64,
    position: u64,
}

impl SyntheticSource {
    /// Worker `index` of `peers`.
    pub fn new(cfg: TraceConfig, index: usize, peers: usize) -> Self {
        SyntheticSource {
            generator: TraceGenerator::new(cfg),
            index: index as u64,
            peers: peers.max(1) as u64,
            position: 0,
        }
    }
}

impl RecordReader for SyntheticSource {
    fn name(&self) -> &str {
        "synthetic"
    }

    fn read(&mut self, budget: usize, each: &mut dyn FnMut(RawRecord<'_>) -> bool) -> ReadStatus {
        let mut taken = 0;
        while taken < budget {
            let Some((_, json)) = self.generator.next() else {
                return ReadStatus::Done;
            };
            self.position += 1;
            if (self.position - 1) % self.peers != self.index {
                continue;
            }
            taken += 1;
            let rec = RawRecord {
                bytes: json.as_bytes(),
                original_len: json.len(),
                line: Some(self.position),
                slot: 0,
                topic: None,
                partition: None,
                offset: None,
            };
            if !each(rec) {
                break;
            }
        }
        ReadStatus::More
    }
}

/// How often an idle Kafka source looks again without being woken, so that idle partitions
/// are noticed and the watermark moves on.
const KAFKA_IDLE_TICK: Duration = Duration::from_millis(100);

/// One worker's partitions of the input topics.
pub struct KafkaSource {
    name: String,
    reader: PartitionReader,
    wake: Arc<WakeSlot>,
    max_record: usize,
    exit_when_caught_up: bool,
    resume: Vec<(Option<i64>, u64)>,
    group_id: String,
    checkpoints: TopicWriter,
    final_points: Arc<Mutex<Option<Vec<CommitPoint>>>>,
}

/// `(topic, partition, next offset, metadata)`, as committed.
type Position = (String, i32, i64, String);

/// The commit made when a run ends, after its dataflow has finished (so every output is
/// acknowledged): the source hands over its last resume points, and the worker commits them.
pub struct FinalCommit {
    committer: OffsetCommitter,
    settings: KafkaSettings,
    checkpoint_topic: String,
    group_id: String,
    partitions: Vec<(String, i32)>,
    points: Arc<Mutex<Option<Vec<CommitPoint>>>>,
}

impl FinalCommit {
    /// Writes the handed-over resume points to the checkpoint topic and commits the offsets,
    /// waiting for the broker. Call only once the dataflow is done.
    pub fn commit(self) -> Result<(), String> {
        let points = self.points.lock().unwrap_or_else(|p| p.into_inner()).take();
        let Some(points) = points else { return Ok(()) };
        let checkpoints = checkpoints_of(&self.group_id, &self.partitions, &points);
        let records: Vec<(Vec<u8>, Vec<u8>)> = checkpoints
            .iter()
            .map(|c| (c.key().into_bytes(), serde_json::to_vec(c).unwrap_or_default()))
            .collect();
        publish_keyed(&self.settings, &self.checkpoint_topic, &records)?;
        self.committer.commit_and_wait(&positions_of(&checkpoints))
    }
}

/// The checkpoint records of `points`; `partitions[slot]` names each slot's partition.
fn checkpoints_of(group: &str, partitions: &[(String, i32)], points: &[CommitPoint]) -> Vec<Checkpoint> {
    points
        .iter()
        .map(|p| Checkpoint {
            group: group.to_owned(),
            topic: partitions[p.slot].0.clone(),
            partition: partitions[p.slot].1,
            offset: p.offset,
            max_ts: p.max_ts,
            durable: p.durable,
        })
        .collect()
}

/// Offsets to commit, with the resume state as commit metadata (for brokers that keep it).
fn positions_of(checkpoints: &[Checkpoint]) -> Vec<Position> {
    checkpoints
        .iter()
        .map(|c| (c.topic.clone(), c.partition, c.offset, c.meta().render()))
        .collect()
}

impl KafkaSource {
    /// Connects and assigns `share` (this worker's partitions, each with its restored newest
    /// event time).
    pub fn open(
        input: &KafkaInput,
        share: &[(Assignment, u64)],
        max_record: usize,
    ) -> Result<(Self, FinalCommit), String> {
        let wake = WakeSlot::new();
        let assignments: Vec<Assignment> = share.iter().map(|(a, _)| a.clone()).collect();
        let reader = PartitionReader::open(&input.settings, &input.group_id, &assignments, wake.callback())?;
        let mut topics: Vec<&str> = assignments.iter().map(|a| a.topic.as_str()).collect();
        topics.dedup();
        let final_points = Arc::new(Mutex::new(None));
        let handle = FinalCommit {
            committer: reader.committer(),
            settings: input.settings.clone(),
            checkpoint_topic: input.checkpoint_topic.clone(),
            group_id: input.group_id.clone(),
            partitions: assignments.iter().map(|a| (a.topic.clone(), a.partition)).collect(),
            points: Arc::clone(&final_points),
        };
        // Checkpoints need no wake-up: nothing waits on their delivery, and a lost one only
        // means a restart resumes from an earlier one.
        let producer = KafkaOutput::create(&input.settings)?;
        let checkpoints = TopicWriter::new(producer, &input.checkpoint_topic, Arc::new(|| {}));
        let source = KafkaSource {
            name: format!("kafka:{}", topics.join(",")),
            reader,
            wake,
            max_record,
            exit_when_caught_up: input.exit_when_caught_up,
            resume: share.iter().map(|(a, max_ts)| (a.start, *max_ts)).collect(),
            group_id: input.group_id.clone(),
            checkpoints,
            final_points,
        };
        Ok((source, handle))
    }

    fn partitions(&self) -> Vec<(String, i32)> {
        (0..self.reader.partitions())
            .map(|slot| {
                let (topic, partition) = self.reader.partition(slot);
                (topic.to_owned(), partition)
            })
            .collect()
    }
}

impl RecordReader for KafkaSource {
    fn name(&self) -> &str {
        &self.name
    }

    fn read(&mut self, budget: usize, each: &mut dyn FnMut(RawRecord<'_>) -> bool) -> ReadStatus {
        let max = self.max_record;
        let status = self.reader.read(budget, &mut |rec| {
            each(RawRecord {
                bytes: &rec.payload[..rec.payload.len().min(max)],
                original_len: rec.payload.len(),
                line: None,
                slot: rec.slot,
                topic: Some(rec.topic),
                partition: Some(rec.partition),
                offset: Some(rec.offset),
            })
        });
        match status {
            ReaderStatus::More => ReadStatus::More,
            ReaderStatus::Idle if self.exit_when_caught_up && self.reader.caught_up() => ReadStatus::Done,
            ReaderStatus::Idle => ReadStatus::Idle(KAFKA_IDLE_TICK),
        }
    }

    fn slots(&self) -> usize {
        self.reader.partitions()
    }

    fn slot_at_end(&self, slot: usize) -> bool {
        self.reader.at_end(slot)
    }

    fn live(&self) -> bool {
        true
    }

    fn set_waker(&mut self, wake: Arc<dyn Fn() + Send + Sync>) {
        self.wake.install(wake);
    }

    fn lags(&self) -> Vec<(String, i32, i64)> {
        self.reader.lags()
    }

    fn resume_state(&self) -> Option<Vec<(Option<i64>, u64)>> {
        Some(self.resume.clone())
    }

    fn commit(&mut self, points: &[CommitPoint]) {
        tracing::debug!(source = %self.name, ?points, "committing offsets");
        let checkpoints = checkpoints_of(&self.group_id, &self.partitions(), points);
        for c in &checkpoints {
            match serde_json::to_vec(c) {
                Ok(value) => self.checkpoints.send(c.key().as_bytes(), &value, 0),
                Err(e) => tracing::error!(error = %e, "cannot encode a checkpoint"),
            }
        }
        self.checkpoints.pump();
        if let Err(e) = self.reader.commit(&positions_of(&checkpoints)) {
            tracing::error!(source = %self.name, error = %e, "offset commit not queued; the next one retries");
        }
    }

    fn finish(&mut self, points: &[CommitPoint]) {
        *self.final_points.lock().unwrap_or_else(|p| p.into_inner()) = Some(points.to_vec());
    }
}

/// An output stream written to a Kafka topic, keyed by entity.
struct KafkaSink {
    writer: TopicWriter,
    wake: Arc<WakeSlot>,
}

impl RecordSink for KafkaSink {
    fn write(&mut self, key: &str, payload: &[u8], time: u64) {
        self.writer.send(key.as_bytes(), payload, time);
    }
    fn flush(&mut self) {}
    fn least_in_flight(&self) -> Option<u64> {
        self.writer.least_in_flight()
    }
    fn pump(&mut self) -> bool {
        self.writer.pump()
    }
    fn set_waker(&mut self, wake: Arc<dyn Fn() + Send + Sync>) {
        self.wake.install(wake);
    }
    fn waiting(&self) -> usize {
        self.writer.waiting()
    }
}

/// Where an output stream goes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum OutputTarget {
    /// Standard output (dead letters go to stderr, so stdout stays parseable).
    Stdout,
    /// One `<stream>.jsonl` per stream in this directory.
    Dir(PathBuf),
    /// Nowhere (benchmarks): records are still built and serialized, then dropped.
    Discard,
    /// Kafka topics, one per stream.
    Kafka {
        /// Connection.
        settings: KafkaSettings,
        /// `(stream, topic)` pairs.
        topics: Vec<(OutputStream, String)>,
    },
}

impl OutputTarget {
    /// Parses `stdout`, `file:DIR` or `none` (`kafka` needs its settings: see the caller).
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "stdout" => Some(OutputTarget::Stdout),
            "none" => Some(OutputTarget::Discard),
            _ => s
                .strip_prefix("file:")
                .filter(|d| !d.is_empty())
                .map(|d| OutputTarget::Dir(PathBuf::from(d))),
        }
    }

    /// A sink for stream `name` (e.g. `anomalies`); Kafka sinks write through `kafka`, the
    /// worker's producer.
    pub fn open(&self, stream: OutputStream, kafka: Option<&Arc<KafkaOutput>>) -> Result<Box<dyn RecordSink>, String> {
        let name = stream.name();
        let io = |e: std::io::Error| format!("cannot open output {name}: {e}");
        Ok(match self {
            OutputTarget::Stdout if stream == OutputStream::DeadLetters => Box::new(StderrSink),
            // Stdout carries the anomalies alone, so it stays one record kind to parse: the
            // other streams need a file or Kafka.
            OutputTarget::Stdout if stream != OutputStream::Anomalies => Box::new(Discard),
            OutputTarget::Stdout => Box::new(StdoutSink(StdoutLines::default())),
            // The delivery reads the action streams as the job appends to them; the run
            // empties them before it starts.
            OutputTarget::Dir(dir) if crate::delivery::is_outbox(stream) => Box::new(FileSink(
                FileWriter::append(&dir.join(format!("{name}.jsonl"))).map_err(io)?,
            )),
            OutputTarget::Dir(dir) => Box::new(FileSink(
                FileWriter::create(&dir.join(format!("{name}.jsonl"))).map_err(io)?,
            )),
            OutputTarget::Discard => Box::new(Discard),
            OutputTarget::Kafka { topics, .. } => {
                let topic = topics
                    .iter()
                    .find(|(s, _)| *s == stream)
                    .map(|(_, t)| t.as_str())
                    .ok_or_else(|| format!("no output topic for stream {name}"))?;
                let output = kafka.ok_or_else(|| format!("no Kafka producer for stream {name}"))?;
                let wake = WakeSlot::new();
                Box::new(KafkaSink {
                    writer: TopicWriter::new(Arc::clone(output), topic, wake.callback()),
                    wake,
                })
            }
        })
    }

    /// Whether every worker writes its own records (Kafka), rather than one worker writing
    /// each stream to one ordered file.
    pub fn written_by_every_worker(&self) -> bool {
        matches!(self, OutputTarget::Kafka { .. })
    }
}

/// Writes to a sink and feeds the serving store too. The feed's queue is bounded: what it
/// cannot take yet waits here and counts as in flight, so the frontier waits for the store
/// instead of a worker blocking on it.
pub struct ServedSink {
    inner: Box<dyn RecordSink>,
    feed: FeedSender,
    stream: FeedStream,
    waiting: VecDeque<(u64, Vec<u8>)>,
}

impl ServedSink {
    /// `inner`, with every record also fed to the store as `stream`.
    pub fn new(inner: Box<dyn RecordSink>, feed: FeedSender, stream: FeedStream) -> ServedSink {
        ServedSink {
            inner,
            feed,
            stream,
            waiting: VecDeque::new(),
        }
    }

    /// Feeds what waits, in order, until the queue is full again.
    fn feed_waiting(&mut self) {
        while let Some((time, record)) = self.waiting.pop_front() {
            match self.feed.try_send(self.stream, record) {
                Ok(()) => {}
                Err(Unsent::Full(record)) => {
                    self.waiting.push_front((time, record));
                    break;
                }
                Err(Unsent::Closed) => {
                    tracing::error!("the serving store's feed stopped: records are no longer served");
                    self.waiting.clear();
                }
            }
        }
    }
}

impl RecordSink for ServedSink {
    fn write(&mut self, key: &str, payload: &[u8], time: u64) {
        self.inner.write(key, payload, time);
        self.waiting.push_back((time, payload.to_vec()));
        self.feed_waiting();
    }
    fn flush(&mut self) {
        self.inner.flush();
        self.feed_waiting();
    }
    fn least_in_flight(&self) -> Option<u64> {
        let waiting = self.waiting.iter().map(|(t, _)| *t).min();
        match (self.inner.least_in_flight(), waiting) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }
    fn pump(&mut self) -> bool {
        let inner_waits = self.inner.pump();
        self.feed_waiting();
        inner_waits || !self.waiting.is_empty()
    }
    fn set_waker(&mut self, wake: Arc<dyn Fn() + Send + Sync>) {
        self.inner.set_waker(wake);
    }
    fn waiting(&self) -> usize {
        self.inner.waiting() + self.waiting.len()
    }
}

/// A sink that keeps nothing.
pub struct Discard;

impl RecordSink for Discard {
    fn write(&mut self, _key: &str, _payload: &[u8], _time: u64) {}
    fn flush(&mut self) {}
}

struct StdoutSink(StdoutLines);

impl RecordSink for StdoutSink {
    fn write(&mut self, _key: &str, payload: &[u8], _time: u64) {
        self.0.write_line(payload);
    }
    fn flush(&mut self) {
        if let Err(e) = self.0.flush() {
            tracing::error!(error = %e, "stdout write failed");
        }
    }
}

struct StderrSink;

impl RecordSink for StderrSink {
    fn write(&mut self, _key: &str, payload: &[u8], _time: u64) {
        eprintln!("deadletter {}", String::from_utf8_lossy(payload));
    }
    fn flush(&mut self) {}
}

struct FileSink(FileWriter);

impl RecordSink for FileSink {
    fn write(&mut self, _key: &str, payload: &[u8], _time: u64) {
        if let Err(e) = self.0.write_line(payload) {
            tracing::error!(error = %e, "output file write failed");
        }
    }
    fn flush(&mut self) {
        if let Err(e) = self.0.flush() {
            tracing::error!(error = %e, "output file flush failed");
        }
    }
}
