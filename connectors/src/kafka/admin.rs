//! Blocking metadata and offset lookups, made once on the main thread before the workers start
//! (never on a worker: they wait on the network).

use std::time::Duration;

use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::{Offset, TopicPartitionList};

use super::{err, KafkaSettings};

/// How long a startup lookup may take before the job gives up with an error.
const LOOKUP_TIMEOUT: Duration = Duration::from_secs(15);

/// The partitions of each topic, as `(topic, partition)` sorted by topic then partition.
pub fn partitions_of(settings: &KafkaSettings, topics: &[String]) -> Result<Vec<(String, i32)>, String> {
    let consumer: BaseConsumer = settings
        .consumer("sentinel-metadata")
        .create()
        .map_err(|e| err("creating a Kafka client", e))?;
    let mut out = Vec::new();
    for topic in topics {
        let metadata = consumer.fetch_metadata(Some(topic), LOOKUP_TIMEOUT).map_err(|e| {
            err(
                &format!("reading metadata of topic {topic} from {}", settings.brokers),
                e,
            )
        })?;
        let Some(t) = metadata.topics().iter().find(|t| t.name() == topic) else {
            return Err(format!("topic {topic} is not on {}", settings.brokers));
        };
        if let Some(e) = t.error() {
            return Err(format!("topic {topic}: {e:?}"));
        }
        if t.partitions().is_empty() {
            return Err(format!("topic {topic} has no partitions"));
        }
        let mut ids: Vec<i32> = t.partitions().iter().map(|p| p.id()).collect();
        ids.sort_unstable();
        out.extend(ids.into_iter().map(|p| (topic.clone(), p)));
    }
    Ok(out)
}

/// A committed position and the metadata stored with it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Committed {
    /// Topic.
    pub topic: String,
    /// Partition.
    pub partition: i32,
    /// The next offset to read, if the group committed one.
    pub offset: Option<i64>,
    /// The metadata string committed with it.
    pub metadata: String,
}

/// The group's committed offsets for `partitions`.
pub fn committed_offsets(
    settings: &KafkaSettings,
    group_id: &str,
    partitions: &[(String, i32)],
) -> Result<Vec<Committed>, String> {
    let consumer: BaseConsumer = settings
        .consumer(group_id)
        .create()
        .map_err(|e| err("creating a Kafka client", e))?;
    let mut tpl = TopicPartitionList::new();
    for (topic, partition) in partitions {
        tpl.add_partition(topic, *partition);
    }
    let committed = consumer
        .committed_offsets(tpl, LOOKUP_TIMEOUT)
        .map_err(|e| err(&format!("reading committed offsets of group {group_id}"), e))?;
    Ok(committed
        .elements()
        .iter()
        .map(|e| Committed {
            topic: e.topic().to_owned(),
            partition: e.partition(),
            offset: match e.offset() {
                Offset::Offset(o) if o >= 0 => Some(o),
                _ => None,
            },
            metadata: e.metadata().to_owned(),
        })
        .collect())
}

/// The high watermark of each partition now. (Some brokers under-report it; callers treat it as
/// a lower bound and also wait for end-of-partition events.)
pub fn end_offsets(settings: &KafkaSettings, partitions: &[(String, i32)]) -> Result<Vec<i64>, String> {
    let consumer: BaseConsumer = settings
        .consumer("sentinel-metadata")
        .create()
        .map_err(|e| err("creating a Kafka client", e))?;
    partitions
        .iter()
        .map(|(topic, partition)| {
            consumer
                .fetch_watermarks(topic, *partition, LOOKUP_TIMEOUT)
                .map(|(_, high)| high)
                .map_err(|e| err(&format!("reading the end offset of {topic}/{partition}"), e))
        })
        .collect()
}
