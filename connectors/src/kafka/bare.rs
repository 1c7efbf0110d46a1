//! A bare consumer: the reference a benchmark compares the job against. It reads every
//! partition of a topic with one librdkafka consumer and does nothing with the records.

use std::collections::HashSet;
use std::time::{Duration, Instant};

use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::KafkaError;
use rdkafka::message::Message;
use rdkafka::{Offset, TopicPartitionList};

use super::consumer::QuietContext;
use super::{err, partitions_of, KafkaSettings};

/// What a bare read of a topic took.
#[derive(Clone, Copy, Debug)]
pub struct BareRead {
    /// Records read.
    pub records: u64,
    /// Value bytes read.
    pub bytes: u64,
    /// From assignment to the end of the last partition.
    pub elapsed: Duration,
}

/// Reads `topic` from the start to the end of every partition.
pub fn bare_read(settings: &KafkaSettings, topic: &str, group_id: &str) -> Result<BareRead, String> {
    let partitions = partitions_of(settings, &[topic.to_owned()])?;
    let consumer: BaseConsumer<QuietContext> = settings
        .consumer(group_id)
        .create_with_context(QuietContext)
        .map_err(|e| err("creating a Kafka consumer", e))?;
    let mut tpl = TopicPartitionList::new();
    for (t, p) in &partitions {
        tpl.add_partition_offset(t, *p, Offset::Beginning)
            .map_err(|e| err("assigning", e))?;
    }
    let start = Instant::now();
    consumer.assign(&tpl).map_err(|e| err("assigning", e))?;
    let (mut records, mut bytes) = (0u64, 0u64);
    let mut ended: HashSet<i32> = HashSet::new();
    let deadline = start + Duration::from_secs(600);
    while ended.len() < partitions.len() {
        match consumer.poll(Duration::from_millis(100)) {
            Some(Ok(m)) => {
                records += 1;
                bytes += m.payload().map_or(0, <[u8]>::len) as u64;
            }
            Some(Err(KafkaError::PartitionEOF(p))) => {
                ended.insert(p);
            }
            Some(Err(e)) => return Err(err("bare read", e)),
            None if Instant::now() > deadline => return Err("bare read: no end within 600 s".into()),
            None => {}
        }
    }
    Ok(BareRead {
        records,
        bytes,
        elapsed: start.elapsed(),
    })
}
