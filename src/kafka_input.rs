//! Plans a Kafka input on the main thread before the workers start: which partitions exist,
//! where each one resumes, and where each one ended at start (for `--exit-when-caught-up`).
//! These lookups block on the network, so they never run on a worker.

use std::collections::BTreeMap;
use std::time::Duration;

use sentinel_connectors::kafka::{
    committed_offsets, end_offsets, ensure_topics, fetch_start, partitions_of, read_topic, topic_exists, Assignment,
    KafkaSettings, TopicSpec,
};

use crate::config::KafkaConfig;
use sentinel_dataflows::detect::{RestoredState, StateRecord};
use sentinel_dataflows::model::JudgementRecord;

/// Partitions of an output topic the job creates when there is no Kafka input to copy.
const DEFAULT_OUTPUT_PARTITIONS: i32 = 4;

/// Makes sure the topics the job writes exist before it starts, as Kafka Streams and Flink do
/// for their internal topics: with `internal`, the checkpoint topic (one compacted partition:
/// the newest resume point per key is what counts) and the state topic (compacted, 4
/// partitions); and the output `topics` (as many partitions as the input's first topic, else 4). With `kafka.create_topics` off, a
/// missing one fails the start instead, naming it and how to create it.
pub fn ensure_job_topics(
    settings: &KafkaSettings,
    kafka: &KafkaConfig,
    outputs: &[String],
    internal: bool,
    input_partitions: Option<i32>,
) -> Result<(), String> {
    let partitions = input_partitions.unwrap_or(DEFAULT_OUTPUT_PARTITIONS).max(1);
    let mut wanted: Vec<TopicSpec> = outputs
        .iter()
        .map(|name| TopicSpec {
            name: name.clone(),
            partitions,
            compact: false,
            replication: kafka.replication_factor,
        })
        .collect();
    if internal {
        wanted.push(TopicSpec {
            name: kafka.checkpoint_topic.clone(),
            partitions: 1,
            compact: true,
            replication: kafka.replication_factor,
        });
        wanted.push(TopicSpec {
            name: kafka.state_topic.clone(),
            partitions: DEFAULT_OUTPUT_PARTITIONS,
            compact: true,
            replication: kafka.replication_factor,
        });
    }
    if !kafka.create_topics {
        for t in &wanted {
            partitions_of(settings, std::slice::from_ref(&t.name)).map_err(|e| {
                format!(
                    "{e}; kafka.create_topics is off, so create it with `kafka-topics.sh --create --topic {} \
                     --partitions {}{}`",
                    t.name,
                    t.partitions,
                    if t.compact {
                        " --config cleanup.policy=compact"
                    } else {
                        ""
                    }
                )
            })?;
        }
        return Ok(());
    }
    for name in ensure_topics(settings, &wanted)? {
        tracing::info!(topic = %name, "created a missing topic");
    }
    Ok(())
}

/// Reading `topic`/`partition` from `start` (from the earliest retained record when `None`),
/// with its end offset at start `end`.
pub fn assignment(
    settings: &KafkaSettings,
    topic: &str,
    partition: i32,
    start: Option<i64>,
    end: i64,
) -> Result<Assignment, String> {
    let fetch_from = match start {
        Some(offset) => Some(fetch_start(settings, topic, partition, offset)?),
        None => None,
    };
    Ok(Assignment {
        topic: topic.to_owned(),
        partition,
        start,
        fetch_from,
        end_at_start: end,
    })
}

/// Everything the workers need to read Kafka.
#[derive(Clone, Debug)]
pub struct KafkaInput {
    /// Connection.
    pub settings: KafkaSettings,
    /// Consumer group (for committed offsets).
    pub group_id: String,
    /// Every partition of every input topic, in a fixed order.
    pub partitions: Vec<Assignment>,
    /// Per partition, the newest event time before its resume offset (0 when none was committed).
    pub restored_max_ts: Vec<u64>,
    /// Outputs at times before this were acknowledged before the restart; windows ending
    /// earlier are not emitted again (their records are only partly re-read).
    pub resume_after: u64,
    /// Where each worker writes its resume points (offset, newest event time, acknowledged
    /// frontier) as it commits.
    pub checkpoint_topic: String,
    /// Stop once every partition reaches its end offset at start.
    pub exit_when_caught_up: bool,
}

impl KafkaInput {
    /// Looks up partitions, resume points and end offsets. A partition resumes from its last
    /// checkpoint in `checkpoint_topic`, else from the group's committed offset (with the
    /// metadata committed with it, where the broker keeps it), else from the start.
    pub fn plan(
        settings: KafkaSettings,
        group_id: String,
        topics: &[String],
        checkpoint_topic: String,
        exit_when_caught_up: bool,
    ) -> Result<Self, String> {
        let ids = partitions_of(&settings, topics)?;
        let mut committed = committed_offsets(&settings, &group_id, &ids)?;
        let checkpoints = Checkpoint::latest(&settings, &checkpoint_topic, &group_id)?;
        for c in &mut committed {
            if let Some(cp) = checkpoints
                .iter()
                .find(|cp| cp.topic == c.topic && cp.partition == c.partition)
            {
                c.offset = Some(cp.offset);
                c.metadata = cp.meta().render();
            }
        }
        let ends = end_offsets(&settings, &ids)?;
        let mut partitions = Vec::with_capacity(ids.len());
        let mut restored_max_ts = Vec::with_capacity(ids.len());
        let mut resume_after = 0;
        for ((topic, partition), end) in ids.iter().zip(ends) {
            let found = committed
                .iter()
                .find(|c| &c.topic == topic && c.partition == *partition);
            let start = found.and_then(|c| c.offset);
            tracing::debug!(%topic, partition, ?start, metadata = found.map(|c| c.metadata.as_str()), "resume point");
            let meta = match (start, found) {
                (Some(_), Some(c)) => ResumeMeta::parse(&c.metadata).map_err(|e| {
                    format!(
                        "group {group_id}, {topic}/{partition}: unreadable commit metadata `{}`: {e}",
                        c.metadata
                    )
                })?,
                _ => ResumeMeta::default(),
            };
            resume_after = resume_after.max(meta.durable);
            restored_max_ts.push(meta.max_ts);
            partitions.push(assignment(&settings, topic, *partition, start, end)?);
        }
        Ok(KafkaInput {
            settings,
            group_id,
            partitions,
            restored_max_ts,
            resume_after,
            checkpoint_topic,
            exit_when_caught_up,
        })
    }

    /// The partitions worker `index` of `peers` reads (every `peers`-th, starting at `index`),
    /// each with its restored newest event time.
    pub fn share(&self, index: usize, peers: usize) -> Vec<(Assignment, u64)> {
        self.partitions
            .iter()
            .zip(&self.restored_max_ts)
            .enumerate()
            .filter(|(i, _)| i % peers.max(1) == index)
            .map(|(_, (a, t))| (a.clone(), *t))
            .collect()
    }
}

/// The newest checkpointed state of every key of `namespace` (the consumer group) in the
/// state topic: baselines and actor states.
pub fn restore_state(settings: &KafkaSettings, topic: &str, namespace: &str) -> Result<RestoredState, String> {
    let prefix = format!("{namespace}|");
    let records = read_json_records::<StateRecord>(settings, topic, "detector state", |key| {
        key.starts_with(prefix.as_bytes())
    })?;
    // The newest record per key, as compaction would keep it.
    let latest: BTreeMap<Vec<u8>, StateRecord> = records.into_iter().collect();
    Ok(RestoredState::from_records(latest.into_values()))
}

/// The judges' verdict journal in `topic`, for `--judge-replay kafka`.
pub fn read_journal(settings: &KafkaSettings, topic: &str) -> Result<Vec<JudgementRecord>, String> {
    let records = read_json_records(settings, topic, "the judges' journal", |_| true)?;
    Ok(records.into_iter().map(|(_, r)| r).collect())
}

/// Every record of `topic` whose key passes `wanted`, parsed as JSON, in topic order; records
/// that do not parse are logged and skipped.
fn read_json_records<T: serde::de::DeserializeOwned>(
    settings: &KafkaSettings,
    topic: &str,
    what: &str,
    wanted: impl Fn(&[u8]) -> bool,
) -> Result<Vec<(Vec<u8>, T)>, String> {
    let records = read_topic(settings, topic, Duration::from_secs(120))
        .map_err(|e| format!("reading {what} from {topic}: {e}"))?;
    let mut out = Vec::with_capacity(records.len());
    for (key, value) in records {
        if !wanted(&key) {
            continue;
        }
        match serde_json::from_slice::<T>(&value) {
            Ok(record) => out.push((key, record)),
            Err(e) => tracing::warn!(topic, error = %e, "skipping an unreadable record of {what}"),
        }
    }
    Ok(out)
}

/// One resume point, as written to the checkpoint topic (keyed by group, topic and partition).
/// Some brokers (tansu) drop offset-commit metadata, so the event-time state a restart needs
/// travels in a topic of its own.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Checkpoint {
    /// Consumer group.
    pub group: String,
    /// Topic.
    pub topic: String,
    /// Partition.
    pub partition: i32,
    /// Next offset to read.
    pub offset: i64,
    /// Newest event time before `offset`.
    pub max_ts: u64,
    /// Every output before this time was acknowledged.
    pub durable: u64,
}

impl Checkpoint {
    /// The record key: per-key order in the topic makes the last record per key the latest.
    pub fn key(&self) -> String {
        format!("{}|{}|{}", self.group, self.topic, self.partition)
    }

    /// Its resume state.
    pub fn meta(&self) -> ResumeMeta {
        ResumeMeta {
            max_ts: self.max_ts,
            durable: self.durable,
        }
    }

    /// The last checkpoint of each partition of `group` in `topic`. A missing topic means none.
    pub fn latest(settings: &KafkaSettings, topic: &str, group: &str) -> Result<Vec<Checkpoint>, String> {
        if !topic_exists(settings, topic).map_err(|e| format!("reading checkpoints: {e}"))? {
            return Ok(Vec::new());
        }
        let records =
            read_topic(settings, topic, Duration::from_secs(60)).map_err(|e| format!("reading checkpoints: {e}"))?;
        let mut latest: BTreeMap<(String, i32), Checkpoint> = BTreeMap::new();
        for (_, value) in records {
            let Ok(cp) = serde_json::from_slice::<Checkpoint>(&value) else {
                tracing::warn!(topic, "skipping an unreadable checkpoint record");
                continue;
            };
            if cp.group == group {
                latest.insert((cp.topic.clone(), cp.partition), cp);
            }
        }
        Ok(latest.into_values().collect())
    }
}

/// What the job stores with each committed offset (the commit's metadata string, as JSON).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct ResumeMeta {
    /// Newest event time among the partition's records before the offset.
    pub max_ts: u64,
    /// Every output before this time was acknowledged when the commit was made.
    pub durable: u64,
}

impl ResumeMeta {
    /// Parses commit metadata; an empty string (a commit made by another tool) restores nothing.
    pub fn parse(text: &str) -> Result<Self, String> {
        if text.trim().is_empty() {
            return Ok(ResumeMeta::default());
        }
        serde_json::from_str(text).map_err(|e| e.to_string())
    }

    /// The metadata string.
    pub fn render(&self) -> String {
        serde_json::to_string(self).unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resume_metadata_round_trips_and_tolerates_foreign_commits() {
        let m = ResumeMeta {
            max_ts: 17,
            durable: 60_000,
        };
        assert_eq!(ResumeMeta::parse(&m.render()), Ok(m));
        assert_eq!(ResumeMeta::parse(""), Ok(ResumeMeta::default()));
        assert!(ResumeMeta::parse("not json").is_err());
    }
}
