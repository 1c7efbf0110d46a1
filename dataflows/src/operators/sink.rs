//! The terminal operator that serializes records to JSON and hands the bytes to a transport.

use serde::Serialize;
use timely::dataflow::channels::pact::Pipeline;
use timely::dataflow::operators::Operator;
use timely::dataflow::Stream;

use crate::model::{Anomaly, DeadLetter};
use crate::window::WindowAggregate;

/// A byte transport for one output stream (a file, stdout, a Kafka topic). Must not block.
pub trait RecordSink {
    /// Queues one record; `key` orders records per entity downstream.
    fn write(&mut self, key: &str, payload: &[u8]);
    /// Pushes queued records on; called after each batch and once at the end.
    fn flush(&mut self);
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

impl SinkKey for DeadLetter {
    fn sink_key(&self) -> &str {
        &self.position.source
    }
}

impl SinkKey for WindowAggregate {
    fn sink_key(&self) -> &str {
        &self.key
    }
}

/// Extension trait for [`JsonSink::sink_json`].
pub trait JsonSink<T> {
    /// Writes every record as one JSON document to `sink`, calling `observe` on each first
    /// (for counters). `to_json` picks the serialized form.
    fn sink_json<S, F, O>(self, name: &str, sink: Box<dyn RecordSink>, to_json: F, observe: O)
    where
        S: Serialize,
        F: Fn(&T) -> S + 'static,
        O: FnMut(&T) + 'static;
}

impl<'scope, T: SinkKey + Clone + 'static> JsonSink<T> for Stream<'scope, u64, Vec<T>> {
    fn sink_json<S, F, O>(self, name: &str, mut sink: Box<dyn RecordSink>, to_json: F, mut observe: O)
    where
        S: Serialize,
        F: Fn(&T) -> S + 'static,
        O: FnMut(&T) + 'static,
    {
        let mut buffer = Vec::with_capacity(4096);
        let mut finished = false;
        self.sink(Pipeline, name, move |(input, frontier)| {
            let mut wrote = false;
            input.for_each_stamp(|_cap, data| {
                for batch in data {
                    for record in batch.drain(..) {
                        observe(&record);
                        buffer.clear();
                        match serde_json::to_writer(&mut buffer, &to_json(&record)) {
                            Ok(()) => sink.write(record.sink_key(), &buffer),
                            Err(e) => {
                                tracing::error!(error = %e, "could not serialize an output record")
                            }
                        }
                        wrote = true;
                    }
                }
            });
            if wrote || (frontier.is_empty() && !finished) {
                finished = frontier.is_empty();
                sink.flush();
            }
        });
    }
}
