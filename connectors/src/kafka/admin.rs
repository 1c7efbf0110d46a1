//! Blocking metadata and offset lookups, made once on the main thread before the workers start
//! (never on a worker: they wait on the network).

use std::sync::Arc;
use std::time::{Duration, Instant};

use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::{Offset, TopicPartitionList};

use super::consumer::{Assignment, PartitionReader, QuietContext, ReaderStatus};
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

/// The topics the cluster has (with partitions). Lists every topic rather than asking for
/// some, so a broker that creates topics on request does not create them.
fn existing_topics(settings: &KafkaSettings) -> Result<std::collections::HashSet<String>, String> {
    let consumer: BaseConsumer = settings
        .consumer("sentinel-metadata")
        .create()
        .map_err(|e| err("creating a Kafka client", e))?;
    let metadata = consumer
        .fetch_metadata(None, LOOKUP_TIMEOUT)
        .map_err(|e| err(&format!("listing the topics of {}", settings.brokers), e))?;
    Ok(metadata
        .topics()
        .iter()
        .filter(|t| t.error().is_none() && !t.partitions().is_empty())
        .map(|t| t.name().to_owned())
        .collect())
}

/// Whether the cluster has `topic` (with partitions).
pub fn topic_exists(settings: &KafkaSettings, topic: &str) -> Result<bool, String> {
    Ok(existing_topics(settings)?.contains(topic))
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

/// A record's `(key, value)`.
pub type KeyValue = (Vec<u8>, Vec<u8>);

/// Every record of `topic` from the start to its end now, in partition then offset order.
/// Blocks (polling) until done or `timeout` passes.
pub fn read_topic(settings: &KafkaSettings, topic: &str, timeout: Duration) -> Result<Vec<KeyValue>, String> {
    let ids = partitions_of(settings, &[topic.to_owned()])?;
    let ends = end_offsets(settings, &ids)?;
    let assignments: Vec<Assignment> = ids
        .into_iter()
        .zip(ends)
        .map(|((topic, partition), end)| Assignment {
            topic,
            partition,
            start: None,
            fetch_from: None,
            end_at_start: end,
        })
        .collect();
    let group = format!("sentinel-read-{}", std::process::id());
    let mut reader = PartitionReader::open(settings, &group, &assignments, Arc::new(|| {}))?;
    let deadline = Instant::now() + timeout;
    let mut out = Vec::new();
    while !reader.caught_up() {
        let status = reader.read(4096, &mut |rec| {
            out.push((rec.key.to_vec(), rec.payload.to_vec()));
            true
        });
        if Instant::now() > deadline {
            return Err(format!("{topic}: the end was not reached within {timeout:?}"));
        }
        if status == ReaderStatus::Idle {
            std::thread::sleep(Duration::from_millis(10));
        }
    }
    Ok(out)
}

/// Where to fetch from so that reading starts at or before `offset`.
///
/// Kafka returns a whole record batch when a fetch begins inside it, and the reader skips the
/// records before `offset`. Some brokers (tansu 0.6) instead start at the *next* batch, which
/// would silently skip the rest of the batch holding `offset`. This probes what a fetch at
/// `offset` returns and, while that starts later, steps back (doubling the step) until it
/// starts at or before `offset`, or reaches the partition's start.
pub fn fetch_start(settings: &KafkaSettings, topic: &str, partition: i32, offset: i64) -> Result<i64, String> {
    let consumer: BaseConsumer<QuietContext> = settings
        .consumer("sentinel-probe")
        .create_with_context(QuietContext)
        .map_err(|e| err("creating a Kafka client", e))?;
    let (low, _) = consumer
        .fetch_watermarks(topic, partition, LOOKUP_TIMEOUT)
        .map_err(|e| err(&format!("reading the start offset of {topic}/{partition}"), e))?;
    let mut candidate = offset;
    let mut step = 2048;
    loop {
        let mut tpl = TopicPartitionList::new();
        tpl.add_partition_offset(topic, partition, Offset::Offset(candidate))
            .map_err(|e| err("probe assignment", e))?;
        consumer.assign(&tpl).map_err(|e| err("probe assignment", e))?;
        let first = first_offset(&consumer)?;
        match first {
            Some(first) if first > offset && candidate > low => {
                candidate = (candidate - step).max(low);
                step *= 2;
            }
            _ => return Ok(candidate),
        }
    }
}

/// The offset of the first record a fresh assignment delivers (`None` at the end).
fn first_offset(consumer: &BaseConsumer<QuietContext>) -> Result<Option<i64>, String> {
    use rdkafka::error::KafkaError;
    use rdkafka::message::Message;
    let deadline = Instant::now() + LOOKUP_TIMEOUT;
    while Instant::now() < deadline {
        match consumer.poll(Duration::from_millis(100)) {
            Some(Ok(m)) => return Ok(Some(m.offset())),
            Some(Err(KafkaError::PartitionEOF(_))) => return Ok(None),
            Some(Err(e)) => return Err(err("probing a fetch position", e)),
            None => {}
        }
    }
    Err("probing a fetch position: no answer from the broker".into())
}

/// Creates `topic` with `partitions` partitions (replication 1), waiting for the broker.
/// An existing topic is an error.
/// A topic the job needs, and how to create it when it is missing.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TopicSpec {
    /// Name.
    pub name: String,
    /// Partitions to create it with.
    pub partitions: i32,
    /// `cleanup.policy=compact`: only the newest record per key matters.
    pub compact: bool,
    /// Replication factor; `-1` for the broker's default.
    pub replication: i32,
}

/// Creates the topics of `wanted` that the cluster does not have, and returns their names. A
/// topic another process created meanwhile counts as there. When one cannot be created (no
/// permission, say), the error names it and says how to create it by hand.
pub fn ensure_topics(settings: &KafkaSettings, wanted: &[TopicSpec]) -> Result<Vec<String>, String> {
    use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
    use rdkafka::client::DefaultClientContext;
    use rdkafka::types::RDKafkaErrorCode;
    let existing = existing_topics(settings)?;
    let missing: Vec<&TopicSpec> = wanted.iter().filter(|t| !existing.contains(&t.name)).collect();
    if missing.is_empty() {
        return Ok(Vec::new());
    }
    let admin: AdminClient<DefaultClientContext> = settings
        .base(&[])
        .create()
        .map_err(|e| err("creating a Kafka admin client", e))?;
    let new: Vec<NewTopic<'_>> = missing
        .iter()
        .map(|t| {
            let topic = NewTopic::new(&t.name, t.partitions, TopicReplication::Fixed(t.replication));
            if t.compact {
                topic.set("cleanup.policy", "compact")
            } else {
                topic
            }
        })
        .collect();
    let options = AdminOptions::new().operation_timeout(Some(LOOKUP_TIMEOUT));
    let how = |t: &TopicSpec| {
        format!(
            "create it with `kafka-topics.sh --bootstrap-server {} --create --topic {} --partitions {}{}`",
            settings.brokers,
            t.name,
            t.partitions,
            if t.compact {
                " --config cleanup.policy=compact"
            } else {
                ""
            }
        )
    };
    let results = futures_executor::block_on(admin.create_topics(new.iter(), &options)).map_err(|e| {
        format!(
            "topic {} is missing and could not be created ({e}); {}",
            missing[0].name,
            how(missing[0])
        )
    })?;
    let mut created = Vec::new();
    for (r, spec) in results.into_iter().zip(&missing) {
        match r {
            Ok(name) => created.push(name),
            Err((_, RDKafkaErrorCode::TopicAlreadyExists)) => {}
            Err((name, code)) => {
                return Err(format!(
                    "topic {name} is missing and could not be created ({code}); {}",
                    how(spec)
                ))
            }
        }
    }
    Ok(created)
}

/// Creates `topic` with `partitions` partitions (replication 1).
pub fn create_topic(settings: &KafkaSettings, topic: &str, partitions: i32) -> Result<(), String> {
    use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
    use rdkafka::client::DefaultClientContext;
    let admin: AdminClient<DefaultClientContext> = settings
        .base(&[])
        .create()
        .map_err(|e| err("creating a Kafka admin client", e))?;
    let new = NewTopic::new(topic, partitions, TopicReplication::Fixed(1));
    let options = AdminOptions::new().operation_timeout(Some(LOOKUP_TIMEOUT));
    let results = futures_executor::block_on(admin.create_topics([&new], &options))
        .map_err(|e| err(&format!("creating topic {topic}"), e))?;
    for r in results {
        r.map_err(|(t, code)| format!("creating topic {t}: {code}"))?;
    }
    Ok(())
}
