//! Reads a fixed set of partitions without ever blocking: manual assignment (no group
//! rebalancing under static workers), one queue per partition, and a wake-up callback that fires
//! when a queue turns non-empty, so an idle reader costs no CPU.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rdkafka::consumer::base_consumer::PartitionQueue;
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer, ConsumerContext};
use rdkafka::error::{KafkaError, KafkaResult, RDKafkaErrorCode};
use rdkafka::message::Message;
use rdkafka::{ClientContext, Offset, Statistics, TopicPartitionList};

use super::{err, KafkaSettings};

/// One partition to read.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Assignment {
    /// Topic.
    pub topic: String,
    /// Partition.
    pub partition: i32,
    /// First offset to read; `None` reads from the earliest retained record.
    pub start: Option<i64>,
    /// Where to fetch from, when that must be earlier than `start` (see
    /// [`fetch_start`](super::fetch_start)); records before `start` are skipped.
    pub fetch_from: Option<i64>,
    /// The partition's end offset when the job started: "caught up" means reaching it.
    pub end_at_start: i64,
}

/// One record, borrowed from librdkafka's buffer.
#[derive(Clone, Copy, Debug)]
pub struct KafkaRecord<'a> {
    /// Index of the partition in the reader's assignment.
    pub slot: usize,
    /// Topic.
    pub topic: &'a str,
    /// Partition.
    pub partition: i32,
    /// Offset.
    pub offset: i64,
    /// Key bytes (empty when the record has none).
    pub key: &'a [u8],
    /// Value bytes (empty for a tombstone).
    pub payload: &'a [u8],
}

/// What a read found.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ReaderStatus {
    /// The budget ran out with records left: read again soon.
    More,
    /// Nothing more ready; the wake-up callback fires when records arrive.
    Idle,
}

/// Partitions' end offsets, `(topic, partition) -> high watermark`, from the client's statistics.
type Ends = Arc<Mutex<BTreeMap<(String, i32), i64>>>;

/// How often librdkafka reports its statistics (the partitions' ends), unless configured.
const STATISTICS_INTERVAL_MS: &str = "1000";

/// Serves the consumer's own events: commit results and client errors are logged and counted,
/// and the statistics give each partition's end.
struct ReaderContext {
    wake: Arc<dyn Fn() + Send + Sync>,
    ends: Ends,
}

impl ClientContext for ReaderContext {
    fn error(&self, error: KafkaError, reason: &str) {
        log_client_error(error, reason);
    }

    fn stats(&self, statistics: Statistics) {
        let mut ends = self.ends.lock().unwrap_or_else(|e| e.into_inner());
        for (name, topic) in statistics.topics {
            for (partition, p) in topic.partitions {
                // -1 is librdkafka's unassigned placeholder.
                if partition >= 0 && p.hi_offset >= 0 {
                    ends.insert((name.clone(), partition), p.hi_offset);
                }
            }
        }
    }
}

/// Logs a client error, except the end-of-partition events librdkafka also reports as errors:
/// they are progress, not faults.
pub(super) fn log_client_error(error: KafkaError, reason: &str) {
    if matches!(error, KafkaError::Global(RDKafkaErrorCode::PartitionEOF)) {
        tracing::trace!(reason, "end of partition");
    } else {
        tracing::warn!(%error, reason, "kafka client error");
    }
}

/// A consumer context that only filters the log (for tools and probes).
#[derive(Default)]
pub(super) struct QuietContext;

impl ClientContext for QuietContext {
    fn error(&self, error: KafkaError, reason: &str) {
        log_client_error(error, reason);
    }
}

impl ConsumerContext for QuietContext {}

impl ConsumerContext for ReaderContext {
    fn commit_callback(&self, result: KafkaResult<()>, offsets: &TopicPartitionList) {
        match result {
            Ok(()) => tracing::debug!(partitions = offsets.count(), "offsets committed"),
            Err(e) => tracing::error!(error = %e, "offset commit failed; the next commit retries"),
        }
        (self.wake)();
    }
}

struct Slot {
    topic: String,
    partition: i32,
    queue: PartitionQueue<ReaderContext>,
    /// Next offset expected; records below it are redeliveries and are skipped.
    next: i64,
    end_at_start: i64,
    /// At the end of the partition now (until a record arrives).
    at_end: bool,
    /// Has reached `end_at_start` at least once.
    reached_start_end: bool,
}

/// The record of `msg` from `topic`/`partition` (reader slot `slot`), unless it is a
/// redelivery below `next`, the next offset expected, which it then advances.
fn accept<'a, M: Message>(
    next: &mut i64,
    topic: &'a str,
    partition: i32,
    slot: usize,
    msg: &'a M,
) -> Option<KafkaRecord<'a>> {
    let offset = msg.offset();
    if offset < *next {
        return None;
    }
    *next = offset + 1;
    Some(KafkaRecord {
        slot,
        topic,
        partition,
        offset,
        key: msg.key().unwrap_or_default(),
        payload: msg.payload().unwrap_or_default(),
    })
}

/// A non-blocking reader of assigned partitions.
pub struct PartitionReader {
    consumer: Arc<BaseConsumer<ReaderContext>>,
    slots: Vec<Slot>,
    cursor: usize,
    ends: Ends,
}

impl PartitionReader {
    /// Connects and assigns. `wake` is called from librdkafka's threads whenever a queue turns
    /// non-empty; it must only schedule a read (e.g. a timely `SyncActivator`).
    pub fn open(
        settings: &KafkaSettings,
        group_id: &str,
        assignments: &[Assignment],
        wake: Arc<dyn Fn() + Send + Sync>,
    ) -> Result<Self, String> {
        let ends = Ends::default();
        let context = ReaderContext {
            wake: Arc::clone(&wake),
            ends: Arc::clone(&ends),
        };
        let mut config = settings.consumer(group_id);
        if config.get("statistics.interval.ms").is_none() {
            config.set("statistics.interval.ms", STATISTICS_INTERVAL_MS);
        }
        let mut consumer: BaseConsumer<ReaderContext> = config
            .create_with_context(context)
            .map_err(|e| err("creating a Kafka consumer", e))?;
        let main_wake = Arc::clone(&wake);
        consumer.set_nonempty_callback(move || main_wake());
        let consumer = Arc::new(consumer);
        let mut tpl = TopicPartitionList::new();
        for a in assignments {
            let offset = a.fetch_from.or(a.start).map_or(Offset::Beginning, Offset::Offset);
            tpl.add_partition_offset(&a.topic, a.partition, offset)
                .map_err(|e| err(&format!("assigning {}/{}", a.topic, a.partition), e))?;
        }
        consumer.assign(&tpl).map_err(|e| err("assigning partitions", e))?;
        let mut slots = Vec::with_capacity(assignments.len());
        for a in assignments {
            let mut queue = consumer
                .split_partition_queue(&a.topic, a.partition)
                .ok_or_else(|| format!("cannot open a queue for {}/{}", a.topic, a.partition))?;
            let wake = Arc::clone(&wake);
            queue.set_nonempty_callback(move || wake());
            slots.push(Slot {
                topic: a.topic.clone(),
                partition: a.partition,
                queue,
                next: a.start.unwrap_or(0),
                end_at_start: a.end_at_start,
                at_end: false,
                reached_start_end: false,
            });
        }
        Ok(PartitionReader {
            consumer,
            slots,
            cursor: 0,
            ends,
        })
    }

    /// Number of assigned partitions.
    pub fn partitions(&self) -> usize {
        self.slots.len()
    }

    /// `(topic, partition)` of slot `slot`.
    pub fn partition(&self, slot: usize) -> (&str, i32) {
        (&self.slots[slot].topic, self.slots[slot].partition)
    }

    /// Whether slot `slot` has no records waiting right now (its last poll ended at the end).
    pub fn at_end(&self, slot: usize) -> bool {
        self.slots[slot].at_end
    }

    /// Whether every partition has reached the end offset it had when the job started.
    /// Decided from end-of-partition events, which fire at the true end even on brokers whose
    /// reported end offsets lag.
    pub fn caught_up(&self) -> bool {
        self.slots.iter().all(|s| s.reached_start_end)
    }

    /// `(topic, partition, records behind its end)` of each slot, from the ends in the
    /// client's last statistics: no network call. A slot at its end is 0; one whose end is not
    /// known yet is left out. (Brokers that report ends short, as tansu does for batches, make
    /// the figure low, never high.)
    pub fn lags(&self) -> Vec<(String, i32, i64)> {
        let ends = self.ends.lock().unwrap_or_else(|e| e.into_inner());
        self.slots
            .iter()
            .filter_map(|s| {
                let lag = if s.at_end {
                    0
                } else {
                    let high = *ends.get(&(s.topic.clone(), s.partition))?;
                    (high - s.next).max(0)
                };
                Some((s.topic.clone(), s.partition, lag))
            })
            .collect()
    }

    /// The next offset of each slot.
    pub fn positions(&self) -> impl Iterator<Item = (&str, i32, i64)> {
        self.slots.iter().map(|s| (s.topic.as_str(), s.partition, s.next))
    }

    /// Passes up to `budget` records to `each`, sharing the budget over the partitions in turn;
    /// stops early when `each` returns `false`. Never blocks.
    pub fn read(&mut self, budget: usize, each: &mut dyn FnMut(KafkaRecord<'_>) -> bool) -> ReaderStatus {
        let mut taken = self.serve_main_queue(each);
        if self.slots.is_empty() {
            return ReaderStatus::Idle;
        }
        let share = (budget / self.slots.len()).max(64);
        let mut exhausted = 0;
        let n = self.slots.len();
        for step in 0..n {
            let slot_index = (self.cursor + step) % n;
            let slot = &mut self.slots[slot_index];
            let mut here = 0;
            let mut drained = false;
            while here < share && taken < budget {
                match slot.queue.poll(Duration::ZERO) {
                    Some(Ok(msg)) => {
                        slot.at_end = false;
                        let Some(rec) = accept(&mut slot.next, &slot.topic, slot.partition, slot_index, &msg) else {
                            continue;
                        };
                        here += 1;
                        taken += 1;
                        if !each(rec) {
                            // The next read starts with the next partition, so a caller that
                            // stops early (pacing) still hears from every partition.
                            self.cursor = (slot_index + 1) % n;
                            return ReaderStatus::More;
                        }
                    }
                    Some(Err(KafkaError::PartitionEOF(_))) => {
                        slot.at_end = true;
                        if slot.next >= slot.end_at_start {
                            slot.reached_start_end = true;
                        }
                        drained = true;
                        break;
                    }
                    Some(Err(e)) => {
                        tracing::warn!(topic = %slot.topic, partition = slot.partition, error = %e, "kafka fetch error");
                        drained = true;
                        break;
                    }
                    None => {
                        drained = true;
                        break;
                    }
                }
            }
            if drained {
                exhausted += 1;
            }
        }
        self.cursor = (self.cursor + 1) % n;
        if exhausted == n {
            ReaderStatus::Idle
        } else {
            ReaderStatus::More
        }
    }

    /// Commits `(topic, partition, next_offset, metadata)` without waiting: librdkafka sends
    /// it from its own thread and reports the result to the commit callback (logged).
    pub fn commit(&self, positions: &[(String, i32, i64, String)]) -> Result<(), String> {
        if positions.is_empty() {
            return Ok(());
        }
        let tpl = commit_list(positions)?;
        self.consumer
            .commit(&tpl, CommitMode::Async)
            .map_err(|e| err("queueing an offset commit", e))
    }

    /// A handle that commits and waits for the broker, usable after the reader is gone.
    pub fn committer(&self) -> OffsetCommitter {
        OffsetCommitter {
            consumer: Arc::clone(&self.consumer),
        }
    }

    /// Serves the main queue: errors, commit results, and any record that reached it before its
    /// partition queue was split off (assignment and splitting race in librdkafka). Returns the
    /// records it passed on.
    fn serve_main_queue(&mut self, each: &mut dyn FnMut(KafkaRecord<'_>) -> bool) -> usize {
        let mut passed = 0;
        for _ in 0..64 {
            match self.consumer.poll(Duration::ZERO) {
                None => break,
                Some(Ok(msg)) => {
                    let found = self
                        .slots
                        .iter()
                        .position(|s| s.partition == msg.partition() && s.topic == msg.topic());
                    let Some(slot_index) = found else {
                        tracing::warn!(
                            topic = msg.topic(),
                            partition = msg.partition(),
                            "record from an unassigned partition"
                        );
                        continue;
                    };
                    let slot = &mut self.slots[slot_index];
                    let Some(rec) = accept(&mut slot.next, &slot.topic, slot.partition, slot_index, &msg) else {
                        continue;
                    };
                    passed += 1;
                    if !each(rec) {
                        break;
                    }
                }
                Some(Err(KafkaError::PartitionEOF(_))) => {}
                Some(Err(e)) => tracing::warn!(error = %e, "kafka consumer event"),
            }
        }
        passed
    }
}

/// Commits synchronously, for the end of a run once the dataflow has finished.
pub struct OffsetCommitter {
    consumer: Arc<BaseConsumer<ReaderContext>>,
}

impl OffsetCommitter {
    /// Commits `(topic, partition, next_offset, metadata)` and waits for the broker's answer.
    /// Blocks: never call it from a running dataflow.
    pub fn commit_and_wait(&self, positions: &[(String, i32, i64, String)]) -> Result<(), String> {
        if positions.is_empty() {
            return Ok(());
        }
        let tpl = commit_list(positions)?;
        self.consumer
            .commit(&tpl, CommitMode::Sync)
            .map_err(|e| err("committing offsets", e))
    }
}

fn commit_list(positions: &[(String, i32, i64, String)]) -> Result<TopicPartitionList, String> {
    let mut tpl = TopicPartitionList::new();
    for (topic, partition, offset, metadata) in positions {
        let mut elem = tpl.add_partition(topic, *partition);
        elem.set_offset(Offset::Offset(*offset))
            .map_err(|e| err(&format!("commit offset for {topic}/{partition}"), e))?;
        elem.set_metadata(metadata.as_str());
    }
    Ok(tpl)
}
