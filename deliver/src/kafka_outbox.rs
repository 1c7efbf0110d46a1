//! The outbox and status log of a Kafka run: the action topics, read by the delivery's own
//! consumer group with offsets committed behind the deliveries, and the statuses topic.

use std::sync::Arc;
use std::time::{Duration, Instant};

use sentinel_connectors::kafka::{
    committed_offsets, end_offsets, fetch_start, partitions_of, read_topic, Assignment, KafkaOutput, KafkaSettings,
    PartitionReader, TopicWriter,
};
use sentinel_dataflows::act::ActionStatus;
use sentinel_dataflows::model::DeadLetter;

use crate::outbox::{Outbox, OutboxRecord, StatusLog};
use crate::render::OutboxStream;

/// How long loading the status log may take.
const LOAD_TIMEOUT: Duration = Duration::from_secs(60);
/// How long a flush waits for the broker.
const FLUSH_TIMEOUT: Duration = Duration::from_secs(30);

/// The action topics, from the delivery group's committed offsets.
pub struct KafkaOutbox {
    reader: PartitionReader,
    /// Per slot, its stream.
    streams: Vec<OutboxStream>,
    settings: KafkaSettings,
    /// The partitions' ends once the writer is done.
    ends: Option<Vec<i64>>,
}

impl KafkaOutbox {
    /// Reads `topics` (`(stream, topic)`) as consumer group `group`.
    pub fn open(settings: &KafkaSettings, group: &str, topics: &[(OutboxStream, String)]) -> Result<Self, String> {
        let names: Vec<String> = topics.iter().map(|(_, t)| t.clone()).collect();
        let partitions = partitions_of(settings, &names)?;
        let committed = committed_offsets(settings, group, &partitions)?;
        let ends = end_offsets(settings, &partitions)?;
        let mut assignments = Vec::with_capacity(partitions.len());
        let mut streams = Vec::with_capacity(partitions.len());
        for (((topic, partition), c), end) in partitions.iter().zip(&committed).zip(ends) {
            let fetch_from = match c.offset {
                Some(o) if o > 0 => Some(fetch_start(settings, topic, *partition, o)?),
                _ => None,
            };
            assignments.push(Assignment {
                topic: topic.clone(),
                partition: *partition,
                start: c.offset,
                fetch_from,
                end_at_start: end,
            });
            let stream = topics
                .iter()
                .find(|(_, t)| t == topic)
                .map(|(s, _)| *s)
                .ok_or_else(|| format!("no stream for topic {topic}"))?;
            streams.push(stream);
        }
        let reader = PartitionReader::open(settings, group, &assignments, Arc::new(|| {}))?;
        Ok(KafkaOutbox {
            reader,
            streams,
            settings: settings.clone(),
            ends: None,
        })
    }
}

impl Outbox for KafkaOutbox {
    fn poll(&mut self, max: usize) -> Result<Vec<OutboxRecord>, String> {
        let mut out = Vec::new();
        let streams = &self.streams;
        self.reader.read(max, &mut |rec| {
            out.push(OutboxRecord {
                stream: streams[rec.slot],
                source: rec.slot,
                position: rec.offset.max(0) as u64,
                bytes: rec.payload.to_vec(),
            });
            true
        });
        Ok(out)
    }

    fn commit(&mut self, source: usize, next: u64) {
        let (topic, partition) = self.reader.partition(source);
        let position = (topic.to_owned(), partition, next as i64, String::new());
        if let Err(e) = self.reader.commit(&[position]) {
            tracing::warn!(error = %e, "delivery offset commit not queued; the next one retries");
        }
    }

    fn source_name(&self, source: usize) -> String {
        let (topic, partition) = self.reader.partition(source);
        format!("kafka:{topic}/{partition}")
    }

    fn caught_up(&mut self) -> bool {
        if self.ends.is_none() {
            let partitions: Vec<(String, i32)> = (0..self.reader.partitions())
                .map(|slot| {
                    let (t, p) = self.reader.partition(slot);
                    (t.to_owned(), p)
                })
                .collect();
            match end_offsets(&self.settings, &partitions) {
                Ok(ends) => self.ends = Some(ends),
                Err(e) => {
                    tracing::warn!(error = %e, "cannot read the outbox's end offsets; trying again");
                    return false;
                }
            }
        }
        let ends = self.ends.as_ref().expect("set above");
        // Some brokers under-report the end: the partition's end-of-partition event counts too.
        self.reader
            .positions()
            .zip(ends)
            .enumerate()
            .all(|(slot, ((_, _, next), end))| next >= *end && self.reader.at_end(slot))
    }
}

/// Statuses and dead letters as topic records.
pub struct KafkaStatusLog {
    settings: KafkaSettings,
    statuses: TopicWriter,
    dead_letters: TopicWriter,
}

impl KafkaStatusLog {
    /// Writes to `statuses_topic` and `dead_letter_topic`.
    pub fn open(settings: &KafkaSettings, statuses_topic: &str, dead_letter_topic: &str) -> Result<Self, String> {
        let output = KafkaOutput::create(settings)?;
        Ok(KafkaStatusLog {
            settings: settings.clone(),
            statuses: TopicWriter::new(Arc::clone(&output), statuses_topic, Arc::new(|| {})),
            dead_letters: TopicWriter::new(output, dead_letter_topic, Arc::new(|| {})),
        })
    }
}

impl StatusLog for KafkaStatusLog {
    fn load(&mut self) -> Result<Vec<ActionStatus>, String> {
        let records = read_topic(&self.settings, self.statuses.topic(), LOAD_TIMEOUT)?;
        Ok(records
            .iter()
            .filter_map(|(_, value)| serde_json::from_slice(value).ok())
            .collect())
    }

    fn append(&mut self, status: &ActionStatus) {
        match serde_json::to_vec(status) {
            Ok(value) => self.statuses.send(status.delivery_id.as_bytes(), &value, 0),
            Err(e) => tracing::error!(error = %e, "cannot encode a status"),
        }
    }

    fn dead_letter(&mut self, letter: &DeadLetter) {
        match serde_json::to_vec(letter) {
            Ok(value) => self.dead_letters.send(letter.position.source.as_bytes(), &value, 0),
            Err(e) => tracing::error!(error = %e, "cannot encode a dead letter"),
        }
    }

    fn flush(&mut self) {
        // On the delivery's own thread: waiting here holds back only the outbox commit.
        let deadline = Instant::now() + FLUSH_TIMEOUT;
        while (self.statuses.pump() | self.dead_letters.pump() || self.statuses.least_in_flight().is_some())
            && Instant::now() < deadline
        {
            std::thread::sleep(Duration::from_millis(5));
        }
    }
}
