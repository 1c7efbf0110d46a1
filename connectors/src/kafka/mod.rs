//! Kafka transport: a partition reader that never blocks its caller, a producer that tracks
//! every delivery, and the blocking admin calls a job makes once, before its workers start.

mod admin;
mod bare;
mod consumer;
mod producer;
mod publish;

pub use admin::{
    committed_offsets, create_topic, end_offsets, ensure_topics, fetch_start, partitions_of, read_topic, topic_exists,
    Committed, KeyValue, TopicSpec,
};
pub use bare::{bare_read, BareRead};
pub use consumer::{Assignment, KafkaRecord, OffsetCommitter, PartitionReader, ReaderStatus};
pub use producer::{DeliveryLedger, KafkaOutput, TopicWriter};
pub use publish::{publish_all, publish_keyed, AckedPublisher};

use rdkafka::ClientConfig;

/// Connection settings shared by consumers and producers.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct KafkaSettings {
    /// `host:port[,host:port]`.
    pub brokers: String,
    /// librdkafka properties for both clients (`security.protocol`, `sasl.*`, `ssl.*`, ...).
    pub properties: Vec<(String, String)>,
    /// librdkafka properties for the consumer only.
    pub consumer_properties: Vec<(String, String)>,
    /// librdkafka properties for the producer only.
    pub producer_properties: Vec<(String, String)>,
}

impl KafkaSettings {
    fn base(&self, specific: &[(String, String)]) -> ClientConfig {
        let mut config = ClientConfig::new();
        config.set("bootstrap.servers", &self.brokers);
        for (k, v) in self.properties.iter().chain(specific) {
            config.set(k, v);
        }
        config
    }

    /// Consumer config: manual assignment, no auto commit, offsets from the start when none are
    /// committed. User properties come after the defaults, so they win.
    fn consumer(&self, group_id: &str) -> ClientConfig {
        let mut config = ClientConfig::new();
        config
            .set("bootstrap.servers", &self.brokers)
            .set("group.id", group_id)
            .set("enable.auto.commit", "false")
            .set("enable.auto.offset.store", "false")
            .set("auto.offset.reset", "earliest")
            .set("enable.partition.eof", "true")
            // How long the broker may hold a fetch that found nothing new. Kafka answers as
            // soon as data arrives; tansu always waits this long, so it bounds the latency of
            // each hop. Raise it (consumer_properties) to save idle round trips on Kafka.
            .set("fetch.wait.max.ms", "5")
            // Keep fetching ahead while the job works through what it has: with librdkafka's
            // default (100,000) the job reached 0.51x a bare consumer, with this 0.66x.
            .set("queued.min.messages", "1000000")
            .set("socket.nagle.disable", "true");
        for (k, v) in self.properties.iter().chain(&self.consumer_properties) {
            config.set(k, v);
        }
        config
    }

    /// Producer config: batches with a short linger and a deep local queue; user properties win.
    fn producer(&self) -> ClientConfig {
        let mut config = ClientConfig::new();
        config
            .set("bootstrap.servers", &self.brokers)
            .set("linger.ms", "2")
            .set("socket.nagle.disable", "true")
            .set("queue.buffering.max.messages", "1000000");
        let user = self.base(&self.producer_properties);
        for (k, v) in user.config_map() {
            config.set(k, v);
        }
        config
    }
}

/// Errors as text, naming what was being done.
fn err(context: &str, e: impl std::fmt::Display) -> String {
    format!("{context}: {e}")
}
