//! The `kafka:` section: brokers, topics, consumer group and librdkafka properties.

use std::collections::BTreeMap;

use serde::Deserialize;

use super::DurationValue;
use crate::streams::OutputStream;

/// Kafka connection and topics. Used when `source.type` is `kafka` or `outputs.target` is
/// `kafka` (or `--brokers` is given).
#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct KafkaConfig {
    /// Bootstrap brokers: a list, or one comma-separated string.
    #[serde(default = "defaults::brokers")]
    pub brokers: Brokers,
    /// Consumer group whose committed offsets the job resumes from.
    #[serde(default = "defaults::group", alias = "consumerGroup")]
    pub group_id: String,
    /// Input topics.
    #[serde(default = "defaults::input_topics")]
    pub topics: Vec<String>,
    /// Output topic per stream.
    #[serde(default)]
    pub output_topics: OutputTopics,
    /// Shield's status callbacks, read when actions are configured.
    #[serde(default = "defaults::callbacks_topic")]
    pub callbacks_topic: String,
    /// Where resume points (offset, event-time state) are written as offsets are committed.
    #[serde(default = "defaults::checkpoint_topic")]
    pub checkpoint_topic: String,
    /// Where detector baselines are checkpointed (compacted, keyed by group, detector and
    /// entity), consistent with the resume points.
    #[serde(default = "defaults::state_topic")]
    pub state_topic: String,
    /// Event time between checkpoints of the behavioral (per-user and per-session) state.
    /// Offsets are committed behind them, so a restart reads at most about this much again.
    #[serde(default = "defaults::state_interval")]
    pub state_interval: DurationValue,
    /// Least time between offset commits.
    #[serde(default = "defaults::commit_interval")]
    pub commit_interval: DurationValue,
    /// Create missing output and internal topics at start (else a missing one fails the start,
    /// naming it and how to create it).
    #[serde(default = "defaults::yes")]
    pub create_topics: bool,
    /// Replication factor of topics the job creates; `-1` takes the broker's
    /// `default.replication.factor`.
    #[serde(default = "defaults::replication_factor")]
    pub replication_factor: i32,
    /// librdkafka properties for consumer and producer alike (`security.protocol`, `sasl.*`,
    /// `ssl.*`, `compression.type`, ...).
    #[serde(default)]
    pub properties: BTreeMap<String, PropertyValue>,
    /// librdkafka properties for the consumer only.
    #[serde(default)]
    pub consumer_properties: BTreeMap<String, PropertyValue>,
    /// librdkafka properties for the producer only.
    #[serde(default)]
    pub producer_properties: BTreeMap<String, PropertyValue>,
}

impl Default for KafkaConfig {
    fn default() -> Self {
        KafkaConfig {
            brokers: defaults::brokers(),
            group_id: defaults::group(),
            topics: defaults::input_topics(),
            output_topics: OutputTopics::default(),
            callbacks_topic: defaults::callbacks_topic(),
            commit_interval: defaults::commit_interval(),
            state_interval: defaults::state_interval(),
            checkpoint_topic: defaults::checkpoint_topic(),
            state_topic: defaults::state_topic(),
            create_topics: true,
            replication_factor: defaults::replication_factor(),
            properties: BTreeMap::new(),
            consumer_properties: BTreeMap::new(),
            producer_properties: BTreeMap::new(),
        }
    }
}

/// `[a:9092, b:9092]` or `"a:9092,b:9092"`.
#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(untagged)]
pub enum Brokers {
    /// One comma-separated string.
    One(String),
    /// A list.
    Many(Vec<String>),
}

impl Brokers {
    /// The `bootstrap.servers` string.
    pub fn joined(&self) -> String {
        match self {
            Brokers::One(s) => s.clone(),
            Brokers::Many(v) => v.join(","),
        }
    }
}

/// A librdkafka property value: YAML scalars of any type, passed on as text.
#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(untagged)]
pub enum PropertyValue {
    /// Text.
    Text(String),
    /// A number.
    Number(serde_yaml_ng::Number),
    /// A flag.
    Flag(bool),
}

impl std::fmt::Display for PropertyValue {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            PropertyValue::Text(s) => f.write_str(s),
            PropertyValue::Number(n) => write!(f, "{n}"),
            PropertyValue::Flag(b) => write!(f, "{b}"),
        }
    }
}

/// Output topic names: `kafka.output_topics`, a map from a stream's name to its topic. A stream
/// not named keeps its default topic; an unknown name fails at load.
#[derive(Clone, Debug, Default, Deserialize, PartialEq, Eq)]
#[serde(transparent)]
pub struct OutputTopics(BTreeMap<OutputStream, String>);

impl OutputTopics {
    /// The topic of output stream `stream`.
    pub fn of(&self, stream: OutputStream) -> &str {
        self.0.get(&stream).map_or(stream.spec().default_topic, String::as_str)
    }

    /// Every user-facing stream with its topic.
    pub fn all(&self) -> Vec<(OutputStream, String)> {
        OutputStream::user_facing()
            .map(|s| (s, self.of(s).to_owned()))
            .collect()
    }
}

mod defaults {
    use super::DurationValue;
    use crate::streams::InputStream;
    pub fn commit_interval() -> DurationValue {
        DurationValue(1_000)
    }
    pub fn state_interval() -> DurationValue {
        DurationValue(10_000)
    }
    pub fn yes() -> bool {
        true
    }
    pub fn replication_factor() -> i32 {
        -1
    }
    pub fn state_topic() -> String {
        "sentinel.state".into()
    }
    pub fn checkpoint_topic() -> String {
        "sentinel.checkpoints".into()
    }
    pub fn brokers() -> super::Brokers {
        super::Brokers::One("127.0.0.1:9092".into())
    }
    pub fn group() -> String {
        "sentinel".into()
    }
    pub fn input_topics() -> Vec<String> {
        vec![InputStream::Telemetry.spec().default_topic.into()]
    }
    pub fn callbacks_topic() -> String {
        InputStream::Callbacks.spec().default_topic.into()
    }
}
