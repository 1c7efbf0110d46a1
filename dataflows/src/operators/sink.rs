//! The terminal operator that serializes records to JSON and hands the bytes to a transport.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use serde::Serialize;
use timely::container::CapacityContainerBuilder;
use timely::dataflow::channels::pact::Pipeline;
use timely::dataflow::operators::{Capability, Operator};
use timely::dataflow::Stream;

use crate::act::{AlertRecord, IncidentRecord, ShieldRecord, WebhookRecord};
use crate::detect::StateRecord;
use crate::model::{Anomaly, DeadLetter, Decision, JudgementRecord};
use crate::window::WindowAggregate;

/// A byte transport for one output stream (a file, stdout, a Kafka topic). Must not block.
pub trait RecordSink {
    /// Queues one record; `key` orders records per entity downstream, and `time` is the
    /// dataflow time it was produced at (what [`RecordSink::least_in_flight`] reports).
    fn write(&mut self, key: &str, payload: &[u8], time: u64);
    /// Pushes queued records on; called after each batch and once at the end.
    fn flush(&mut self);
    /// For transports that acknowledge asynchronously: the least time with a record not yet
    /// acknowledged. Synchronous transports have none.
    fn least_in_flight(&self) -> Option<u64> {
        None
    }
    /// Retries what could not be queued yet; `true` while something still waits locally.
    fn pump(&mut self) -> bool {
        false
    }
    /// Receives a callback, callable from any thread, that schedules the sink operator again:
    /// asynchronous transports call it when a delivery completes.
    fn set_waker(&mut self, _wake: Arc<dyn Fn() + Send + Sync>) {}
    /// Records this sink holds that its transport has not taken yet (a full producer queue,
    /// a full store feed): the sink's queue depth.
    fn waiting(&self) -> usize {
        0
    }
}

/// A sink that publishes its queue depth to a gauge after each write and pump, for `/metrics`.
pub struct GaugedSink {
    inner: Box<dyn RecordSink>,
    gauge: Arc<std::sync::atomic::AtomicU64>,
}

impl GaugedSink {
    /// `inner`, its depth kept in `gauge` (from [`crate::operators::JobStats::sink_gauge`]).
    pub fn new(inner: Box<dyn RecordSink>, gauge: Arc<std::sync::atomic::AtomicU64>) -> GaugedSink {
        GaugedSink { inner, gauge }
    }

    fn publish(&self) {
        self.gauge
            .store(self.inner.waiting() as u64, std::sync::atomic::Ordering::Relaxed);
    }
}

impl RecordSink for GaugedSink {
    fn write(&mut self, key: &str, payload: &[u8], time: u64) {
        self.inner.write(key, payload, time);
        self.publish();
    }
    fn flush(&mut self) {
        self.inner.flush();
        self.publish();
    }
    fn least_in_flight(&self) -> Option<u64> {
        self.inner.least_in_flight()
    }
    fn pump(&mut self) -> bool {
        let waits = self.inner.pump();
        self.publish();
        waits
    }
    fn set_waker(&mut self, wake: Arc<dyn Fn() + Send + Sync>) {
        self.inner.set_waker(wake);
    }
    fn waiting(&self) -> usize {
        self.inner.waiting()
    }
}

/// The key a record is written under, so order holds per entity.
pub trait SinkKey {
    /// The entity key.
    fn sink_key(&self) -> &str;
}

impl SinkKey for Anomaly {
    fn sink_key(&self) -> &str {
        &self.affected_entity.id
    }
}

impl SinkKey for Decision {
    fn sink_key(&self) -> &str {
        match self.user_id() {
            "" => self.application_id(),
            user => user,
        }
    }
}

impl SinkKey for JudgementRecord {
    fn sink_key(&self) -> &str {
        &self.event_id
    }
}

impl SinkKey for DeadLetter {
    fn sink_key(&self) -> &str {
        &self.position.source
    }
}

impl SinkKey for StateRecord {
    fn sink_key(&self) -> &str {
        self.state_key()
    }
}

impl SinkKey for WindowAggregate {
    fn sink_key(&self) -> &str {
        &self.key
    }
}

impl SinkKey for ShieldRecord {
    fn sink_key(&self) -> &str {
        &self.target_entity
    }
}

impl SinkKey for AlertRecord {
    fn sink_key(&self) -> &str {
        &self.group_key
    }
}

impl SinkKey for IncidentRecord {
    fn sink_key(&self) -> &str {
        &self.entity
    }
}

impl SinkKey for crate::model::lifecycle::LifecycleEvent {
    fn sink_key(&self) -> &str {
        &self.anomaly_id
    }
}

impl SinkKey for WebhookRecord {
    fn sink_key(&self) -> &str {
        &self.anomaly_id
    }
}

/// Extension trait for [`JsonSink::sink_json`].
pub trait JsonSink<'scope, T> {
    /// Writes every record as one JSON document to `sink`, calling `observe` on each first
    /// (for counters). `to_json` writes the serialized form ([`as_itself`] for the record as it
    /// is, with no copy). The returned stream carries no
    /// data: its frontier passes a time once every record at that time is acknowledged by the
    /// transport, which is what offset commits wait for.
    fn sink_json<F, O>(
        self,
        name: &str,
        sink: Box<dyn RecordSink>,
        to_json: F,
        observe: O,
    ) -> Stream<'scope, u64, Vec<()>>
    where
        F: Fn(&T, &mut Vec<u8>) -> serde_json::Result<()> + 'static,
        O: FnMut(&T) + 'static;
}

/// Serializes a record as it is: the usual `to_json` of [`JsonSink::sink_json`].
pub fn as_itself<T: Serialize>(record: &T, out: &mut Vec<u8>) -> serde_json::Result<()> {
    serde_json::to_writer(out, record)
}

/// Retry interval while records wait in a sink's local backlog (the transport's queue was full).
const BACKLOG_RETRY: Duration = Duration::from_millis(2);

impl<'scope, T: SinkKey + Clone + 'static> JsonSink<'scope, T> for Stream<'scope, u64, Vec<T>> {
    fn sink_json<F, O>(
        self,
        name: &str,
        mut sink: Box<dyn RecordSink>,
        to_json: F,
        mut observe: O,
    ) -> Stream<'scope, u64, Vec<()>>
    where
        F: Fn(&T, &mut Vec<u8>) -> serde_json::Result<()> + 'static,
        O: FnMut(&T) + 'static,
    {
        let scope = self.scope();
        self.unary_frontier::<CapacityContainerBuilder<Vec<()>>, _, _, _>(Pipeline, name, move |_cap, info| {
            let activator = scope.activator_for(info.address.clone());
            let sync = scope.worker().sync_activator_for(info.address.to_vec());
            sink.set_waker(Arc::new(move || {
                // Fails only once the dataflow is gone, when there is nothing left to wake.
                let _ = sync.activate();
            }));
            let mut buffer = Vec::with_capacity(4096);
            let mut finished = false;
            // Times with records written and not yet known to be acknowledged.
            let mut held: BTreeMap<u64, Capability<u64>> = BTreeMap::new();
            move |(input, frontier), _output| {
                let mut wrote = false;
                input.for_each_stamp(|cap, data| {
                    let time = cap.least().copied().unwrap_or_default();
                    for batch in data {
                        for record in batch.drain(..) {
                            observe(&record);
                            buffer.clear();
                            match to_json(&record, &mut buffer) {
                                Ok(()) => sink.write(record.sink_key(), &buffer, time),
                                Err(e) => {
                                    tracing::error!(error = %e, "could not serialize an output record")
                                }
                            }
                            wrote = true;
                        }
                    }
                    if let (false, Some(c)) = (held.contains_key(&time), cap.retain_least(0)) {
                        held.insert(time, c);
                    }
                });
                if wrote || (frontier.is_empty() && !finished) {
                    finished = frontier.is_empty();
                    sink.flush();
                }
                let waiting = sink.pump();
                let least = sink.least_in_flight();
                held.retain(|t, _| least.is_some_and(|l| *t >= l));
                if waiting {
                    activator.activate_after(BACKLOG_RETRY);
                }
            }
        })
    }
}
