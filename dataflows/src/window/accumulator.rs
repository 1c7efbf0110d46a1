//! The running totals of one key in one window.

use serde::{Deserialize, Serialize};
use smallvec::SmallVec;

use super::sketch::LatencySketch;
use crate::model::{EventType, KeyField, MetricEvent};

/// Totals of one entity in one window. Mergeable, so workers pre-aggregate locally and
/// exchange one partial per key and window instead of every event.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct WindowAccumulator {
    /// Completed model calls (`llm.response` + `llm.error`).
    pub calls: u32,
    /// Failed calls.
    pub errors: u32,
    /// `llm.request` events (prompts seen).
    pub request_events: u32,
    /// `agent.tool_call` events.
    pub tool_calls: u32,
    /// Input tokens over calls.
    pub prompt_tokens: u64,
    /// Output tokens over calls.
    pub completion_tokens: u64,
    /// Total tokens over calls.
    pub total_tokens: u64,
    /// Cost over calls.
    pub cost: f64,
    /// Sum of reported latencies.
    pub latency_sum: f64,
    /// Calls that reported a latency.
    pub latency_count: u32,
    /// Latency distribution (kept only where quantiles are needed).
    pub latency: LatencySketch,
    /// Up to N `(timestamp, event_id)` pairs, the earliest by time then id, so the choice does not
    /// depend on which worker saw which event.
    pub samples: SmallVec<[(u64, Box<str>); 1]>,
}

impl WindowAccumulator {
    /// Folds one event in, keeping at most `max_samples` sample ids, and latency quantiles only
    /// when `quantiles` is set (the sketch is the costliest part of an update).
    #[inline]
    pub fn add(&mut self, ev: &MetricEvent, max_samples: usize, quantiles: bool) {
        match ev.event_type {
            EventType::Request => self.request_events += 1,
            EventType::ToolCall => self.tool_calls += 1,
            EventType::Response | EventType::Error => {
                self.calls += 1;
                self.errors += u32::from(ev.is_error);
                self.prompt_tokens += u64::from(ev.prompt_tokens);
                self.completion_tokens += u64::from(ev.completion_tokens);
                self.total_tokens += u64::from(ev.total_tokens);
                self.cost += ev.cost;
                if !ev.latency_ms.is_nan() {
                    self.latency_sum += f64::from(ev.latency_ms);
                    self.latency_count += 1;
                    if quantiles {
                        self.latency.insert(f64::from(ev.latency_ms));
                    }
                }
            }
        }
        self.offer_sample(ev.timestamp_ms, ev.keys.get(KeyField::EventId), max_samples, Box::from);
    }

    /// Keeps `(ts, id)` if it is among the earliest `max_samples`; `own` makes the stored id,
    /// called only when the sample is kept.
    fn offer_sample<I: AsRef<str>>(&mut self, ts: u64, id: I, max_samples: usize, own: impl FnOnce(I) -> Box<str>) {
        if max_samples == 0 {
            return;
        }
        let key = (ts, id.as_ref());
        if self.samples.len() == max_samples {
            let last = &self.samples[max_samples - 1];
            if key >= (last.0, &*last.1) {
                return;
            }
            self.samples.pop();
        }
        let at = self.samples.partition_point(|s| (s.0, &*s.1) < key);
        self.samples.insert(at, (ts, own(id)));
    }

    /// Adds another partial of the same key and window.
    pub fn merge(&mut self, other: WindowAccumulator, max_samples: usize) {
        self.calls += other.calls;
        self.errors += other.errors;
        self.request_events += other.request_events;
        self.tool_calls += other.tool_calls;
        self.prompt_tokens += other.prompt_tokens;
        self.completion_tokens += other.completion_tokens;
        self.total_tokens += other.total_tokens;
        self.cost += other.cost;
        self.latency_sum += other.latency_sum;
        self.latency_count += other.latency_count;
        self.latency.merge(&other.latency);
        for (ts, id) in other.samples {
            self.offer_sample(ts, id, max_samples, |id| id);
        }
    }

    /// Approximate heap bytes held, for the memory report.
    pub fn heap_bytes(&self) -> usize {
        self.latency.heap_bytes()
            + if self.samples.spilled() {
                self.samples.capacity() * std::mem::size_of::<(u64, Box<str>)>()
            } else {
                0
            }
            + self.samples.iter().map(|s| s.1.len()).sum::<usize>()
    }
}
