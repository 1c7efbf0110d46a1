//! Writes records to topics from a worker thread without blocking it. librdkafka's own thread
//! delivers them; a ledger counts what is still in flight per tag (the caller's dataflow time),
//! so the caller knows when everything up to a time is acknowledged. A full local queue and
//! failed deliveries are retried, never dropped.

use std::collections::{BTreeMap, VecDeque};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::{DeliveryResult, Message};
use rdkafka::producer::{BaseProducer, BaseRecord, ProducerContext};
use rdkafka::ClientContext;

use super::{err, KafkaSettings};

/// A record waiting to be (re)sent.
struct Pending {
    topic: Arc<str>,
    key: Vec<u8>,
    payload: Vec<u8>,
    tag: u64,
}

#[derive(Default)]
struct LedgerState {
    /// Records handed to librdkafka and not yet acknowledged, per tag.
    in_flight: BTreeMap<u64, u64>,
    /// Deliveries that failed after librdkafka's own retries; sent again by the writer.
    failed: Vec<Pending>,
    delivered: u64,
    errors: u64,
}

/// What is in flight for one producer, shared with its delivery callback.
#[derive(Default)]
pub struct DeliveryLedger {
    state: Mutex<LedgerState>,
    wakers: Mutex<Vec<Arc<dyn Fn() + Send + Sync>>>,
}

impl DeliveryLedger {
    fn lock(&self) -> MutexGuard<'_, LedgerState> {
        // A panic while holding the lock cannot leave the counters half-updated in a way that
        // matters more than stopping the job would, so a poisoned lock is used as is.
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn wake_all(&self) {
        for wake in self.wakers.lock().unwrap_or_else(|p| p.into_inner()).iter() {
            wake();
        }
    }

    /// The least tag with a record not yet acknowledged.
    pub fn least_in_flight(&self) -> Option<u64> {
        let state = self.lock();
        let failed = state.failed.iter().map(|p| p.tag).min();
        match (state.in_flight.keys().next().copied(), failed) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    /// `(delivered, delivery errors)` so far.
    pub fn counts(&self) -> (u64, u64) {
        let state = self.lock();
        (state.delivered, state.errors)
    }

    fn add(&self, tag: u64) {
        *self.lock().in_flight.entry(tag).or_insert(0) += 1;
    }

    fn settle(state: &mut LedgerState, tag: u64) {
        if let Some(n) = state.in_flight.get_mut(&tag) {
            *n -= 1;
            if *n == 0 {
                state.in_flight.remove(&tag);
            }
        }
    }
}

struct WriterContext {
    ledger: Arc<DeliveryLedger>,
}

impl ClientContext for WriterContext {
    fn error(&self, error: KafkaError, reason: &str) {
        tracing::warn!(%error, reason, "kafka producer error");
    }
}

impl ProducerContext for WriterContext {
    type DeliveryOpaque = Box<(Arc<str>, u64)>;

    fn delivery(&self, result: &DeliveryResult<'_>, opaque: Self::DeliveryOpaque) {
        let (topic, tag) = *opaque;
        {
            let mut state = self.ledger.lock();
            match result {
                Ok(_) => state.delivered += 1,
                Err((e, msg)) => {
                    state.errors += 1;
                    tracing::error!(%topic, error = %e, "delivery failed; sending again");
                    state.failed.push(Pending {
                        topic,
                        key: msg.key().unwrap_or_default().to_vec(),
                        payload: msg.payload().unwrap_or_default().to_vec(),
                        tag,
                    });
                    // Still owed: the retry keeps the tag in flight.
                    return drop(state);
                }
            }
            DeliveryLedger::settle(&mut state, tag);
        }
        self.ledger.wake_all();
    }
}

/// How long one call of the delivery thread's poll lasts. rdkafka's `poll` spins for the last
/// millisecond before its deadline (the remaining time rounds down to a zero timeout), so a long
/// period keeps that cost negligible; deliveries are served as they arrive either way.
const DELIVERY_POLL: Duration = Duration::from_secs(1);

/// One worker's producer, shared by its output streams. A thread of its own serves delivery
/// reports (rdkafka's `ThreadedProducer` polls every 100 ms, which costs ~1% of a core idle).
pub struct KafkaOutput {
    producer: Arc<BaseProducer<WriterContext>>,
    ledger: Arc<DeliveryLedger>,
    stop: Arc<AtomicBool>,
}

impl KafkaOutput {
    /// Connects a producer and starts its delivery thread.
    pub fn create(settings: &KafkaSettings) -> Result<Arc<Self>, String> {
        let ledger = Arc::new(DeliveryLedger::default());
        let producer: Arc<BaseProducer<WriterContext>> = Arc::new(
            settings
                .producer()
                .create_with_context(WriterContext {
                    ledger: Arc::clone(&ledger),
                })
                .map_err(|e| err("creating a Kafka producer", e))?,
        );
        let stop = Arc::new(AtomicBool::new(false));
        let (polled, stopped) = (Arc::clone(&producer), Arc::clone(&stop));
        std::thread::Builder::new()
            .name("sentinel-deliveries".into())
            .spawn(move || {
                while !stopped.load(Ordering::Relaxed) {
                    polled.poll(DELIVERY_POLL);
                }
            })
            .map_err(|e| err("starting the delivery thread", e))?;
        Ok(Arc::new(KafkaOutput { producer, ledger, stop }))
    }

    /// The ledger of this producer's deliveries.
    pub fn ledger(&self) -> &Arc<DeliveryLedger> {
        &self.ledger
    }
}

impl Drop for KafkaOutput {
    fn drop(&mut self) {
        // The thread ends within one poll period; it holds its own handle to the producer.
        self.stop.store(true, Ordering::Relaxed);
    }
}

/// Writes one output stream to one topic.
pub struct TopicWriter {
    output: Arc<KafkaOutput>,
    topic: Arc<str>,
    /// Records the local queue had no room for, in order.
    backlog: VecDeque<Pending>,
    /// Records librdkafka refused outright (e.g. larger than `message.max.bytes`).
    rejected: u64,
}

impl TopicWriter {
    /// A writer to `topic` through `output`; `wake` is called (from librdkafka's thread) when a
    /// delivery completes, so the caller can release what it was holding.
    pub fn new(output: Arc<KafkaOutput>, topic: &str, wake: Arc<dyn Fn() + Send + Sync>) -> Self {
        output
            .ledger
            .wakers
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(wake);
        TopicWriter {
            output,
            topic: topic.into(),
            backlog: VecDeque::new(),
            rejected: 0,
        }
    }

    /// The topic.
    pub fn topic(&self) -> &str {
        &self.topic
    }

    /// Queues one record under `tag`. Never blocks: when librdkafka's queue is full the record
    /// waits in a backlog that [`TopicWriter::pump`] retries.
    pub fn send(&mut self, key: &[u8], payload: &[u8], tag: u64) {
        self.output.ledger.add(tag);
        if !self.backlog.is_empty() {
            self.backlog.push_back(Pending {
                topic: Arc::clone(&self.topic),
                key: key.to_vec(),
                payload: payload.to_vec(),
                tag,
            });
            return;
        }
        if let Some(full) = self.try_send(&self.topic.clone(), key, payload, tag) {
            self.backlog.push_back(full);
        }
    }

    /// Sends one record; returns it when the queue is full.
    fn try_send(&mut self, topic: &Arc<str>, key: &[u8], payload: &[u8], tag: u64) -> Option<Pending> {
        let record = BaseRecord::with_opaque_to(topic, Box::new((Arc::clone(topic), tag)))
            .key(key)
            .payload(payload);
        match self.output.producer.send(record) {
            Ok(()) => None,
            Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), _)) => Some(Pending {
                topic: Arc::clone(topic),
                key: key.to_vec(),
                payload: payload.to_vec(),
                tag,
            }),
            Err((e, _)) => {
                self.rejected += 1;
                tracing::error!(topic = %topic, error = %e, bytes = payload.len(), "kafka refused a record");
                let mut state = self.output.ledger.lock();
                state.errors += 1;
                DeliveryLedger::settle(&mut state, tag);
                None
            }
        }
    }

    /// Retries the backlog and any failed deliveries. Returns `true` while records still wait
    /// here (the caller should call again shortly).
    pub fn pump(&mut self) -> bool {
        let failed = std::mem::take(&mut self.output.ledger.lock().failed);
        for p in failed {
            // Failed records were counted in flight when first sent; re-sending keeps that count.
            if let Some(full) = self.try_send(&p.topic, &p.key, &p.payload, p.tag) {
                self.backlog.push_back(full);
            }
        }
        while let Some(p) = self.backlog.pop_front() {
            if let Some(full) = self.try_send(&p.topic, &p.key, &p.payload, p.tag) {
                self.backlog.push_front(full);
                return true;
            }
        }
        false
    }

    /// The least tag with a record not yet acknowledged, across this producer's topics.
    pub fn least_in_flight(&self) -> Option<u64> {
        let backlog = self.backlog.iter().map(|p| p.tag).min();
        match (self.output.ledger.least_in_flight(), backlog) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    /// Records waiting here because librdkafka's queue was full.
    pub fn waiting(&self) -> usize {
        self.backlog.len()
    }

    /// Records refused outright (counted as errors, logged, not retried).
    pub fn rejected(&self) -> u64 {
        self.rejected
    }
}
