//! Bulk publishing from the main thread (tools, tests, benchmarks): blocks until every record
//! is acknowledged. Never used on a dataflow worker.

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::time::Duration;

use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::DeliveryResult;
use rdkafka::producer::{BaseProducer, BaseRecord, Producer, ProducerContext, ThreadedProducer};
use rdkafka::ClientContext;

use super::admin::KeyValue;
use super::{err, KafkaSettings};

/// Publishes each of `records` to `topic`, record `i` to partition `i % partitions` (so a
/// publish is reproducible), and waits until all are acknowledged. Returns the count.
pub fn publish_all<'a>(
    settings: &KafkaSettings,
    topic: &str,
    partitions: i32,
    records: impl IntoIterator<Item = &'a [u8]>,
) -> Result<u64, String> {
    let n = partitions.max(1) as u64;
    publish(
        settings,
        topic,
        records
            .into_iter()
            .enumerate()
            .map(|(i, payload)| (Some((i as u64 % n) as i32), None, payload)),
    )
}

/// Publishes `(key, value)` records to `topic`, partitioned by key, and waits until all are
/// acknowledged.
pub fn publish_keyed(settings: &KafkaSettings, topic: &str, records: &[KeyValue]) -> Result<u64, String> {
    publish(
        settings,
        topic,
        records.iter().map(|(k, v)| (None, Some(k.as_slice()), v.as_slice())),
    )
}

fn publish<'a>(
    settings: &KafkaSettings,
    topic: &str,
    records: impl Iterator<Item = (Option<i32>, Option<&'a [u8]>, &'a [u8])>,
) -> Result<u64, String> {
    let producer: BaseProducer<CountFailures> = settings
        .producer()
        .create_with_context(CountFailures::default())
        .map_err(|e| err("creating a Kafka producer", e))?;
    let mut sent = 0u64;
    for (partition, key, payload) in records {
        let mut record = BaseRecord::<[u8], [u8]>::to(topic).payload(payload);
        if let Some(p) = partition {
            record = record.partition(p);
        }
        if let Some(k) = key {
            record = record.key(k);
        }
        loop {
            match producer.send(record) {
                Ok(()) => break,
                Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), back)) => {
                    record = back;
                    producer.poll(Duration::from_millis(10));
                }
                Err((e, _)) => return Err(err(&format!("publishing to {topic}"), e)),
            }
        }
        sent += 1;
        if sent.is_multiple_of(1024) {
            producer.poll(Duration::ZERO);
        }
    }
    producer
        .flush(Duration::from_secs(60))
        .map_err(|e| err(&format!("flushing {topic}"), e))?;
    match producer.context().failed.load(Relaxed) {
        0 => Ok(sent),
        n => Err(format!("{n} of {sent} records to {topic} were not delivered")),
    }
}

#[derive(Default)]
struct CountFailures {
    failed: AtomicU64,
}

impl ClientContext for CountFailures {}

impl ProducerContext for CountFailures {
    type DeliveryOpaque = ();

    fn delivery(&self, result: &DeliveryResult<'_>, _: ()) {
        if let Err((e, _)) = result {
            tracing::error!(error = %e, "delivery failed");
            self.failed.fetch_add(1, Relaxed);
        }
    }
}

/// A long-lived producer whose every send waits for the broker's acknowledgement: for a
/// service publishing one record at a time on a request's behalf (off any worker thread).
pub struct AckedPublisher {
    producer: ThreadedProducer<AckEach>,
    timeout: Duration,
}

impl AckedPublisher {
    /// Connects lazily; each publish waits at most `timeout` for its acknowledgement.
    pub fn create(settings: &KafkaSettings, timeout: Duration) -> Result<AckedPublisher, String> {
        let mut config = settings.producer();
        config.set("message.timeout.ms", timeout.as_millis().max(1).to_string());
        let producer = config
            .create_with_context(AckEach)
            .map_err(|e| err("creating a Kafka producer", e))?;
        Ok(AckedPublisher { producer, timeout })
    }

    /// Publishes one keyed record and waits until the broker has it.
    pub fn publish(&self, topic: &str, key: &[u8], payload: &[u8]) -> Result<(), String> {
        let (tell, told) = std::sync::mpsc::sync_channel(1);
        let record = BaseRecord::with_opaque_to(topic, Box::new(tell))
            .key(key)
            .payload(payload);
        self.producer
            .send(record)
            .map_err(|(e, _)| err(&format!("publishing to {topic}"), e))?;
        // librdkafka answers within message.timeout.ms; the margin covers its poll interval.
        match told.recv_timeout(self.timeout + Duration::from_secs(1)) {
            Ok(result) => result.map_err(|e| format!("publishing to {topic}: {e}")),
            Err(_) => Err(format!(
                "publishing to {topic}: no acknowledgement within {} s",
                self.timeout.as_secs()
            )),
        }
    }
}

/// Hands each delivery result to the sender waiting for it.
struct AckEach;

impl ClientContext for AckEach {}

impl ProducerContext for AckEach {
    type DeliveryOpaque = Box<std::sync::mpsc::SyncSender<Result<(), String>>>;

    fn delivery(&self, result: &DeliveryResult<'_>, tell: Self::DeliveryOpaque) {
        let _ = tell.send(result.as_ref().map(|_| ()).map_err(|(e, _)| e.to_string()));
    }
}
