//! A closed window's totals for one entity, and its printable form.

use serde::{Deserialize, Serialize};

use super::accumulator::WindowAccumulator;
use super::dimension::Dimension;
use crate::time::format_rfc3339_ms;

/// The final totals of one key in one closed window.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct WindowAggregate {
    /// Entity kind.
    pub dimension: Dimension,
    /// Entity id.
    pub key: String,
    /// Window width, ms.
    pub width_ms: u64,
    /// Window end (exclusive), epoch ms.
    pub window_end: u64,
    /// Totals.
    pub acc: WindowAccumulator,
    /// Distinct users in the window (applications only).
    pub distinct_users: Option<u64>,
    /// Distinct models in the window (applications only).
    pub distinct_models: Option<u64>,
}

/// The printable summary of a [`WindowAggregate`], as written to the aggregates output.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct AggregateRecord {
    /// Deterministic: a hash of dimension, key, width and window end, so a window emitted
    /// again after a restart carries the same id.
    pub id: String,
    /// Entity kind.
    pub dimension: Dimension,
    /// Entity id.
    pub key: String,
    /// RFC 3339.
    pub window_start: String,
    /// RFC 3339, exclusive.
    pub window_end: String,
    /// Window width, ms.
    pub width_ms: u64,
    /// Completed calls.
    pub requests: u32,
    /// Failed calls.
    pub errors: u32,
    /// `llm.request` events (prompts sent).
    pub request_events: u32,
    /// `agent.tool_call` events.
    pub tool_calls: u32,
    /// errors / requests.
    pub error_rate: f64,
    /// Input tokens.
    pub prompt_tokens: u64,
    /// Output tokens.
    pub completion_tokens: u64,
    /// All tokens.
    pub total_tokens: u64,
    /// Cost.
    pub cost: f64,
    /// Mean latency, ms.
    pub latency_mean_ms: Option<f64>,
    /// p95 latency, ms.
    pub latency_p95_ms: Option<f64>,
    /// p99 latency, ms.
    pub latency_p99_ms: Option<f64>,
    /// Distinct users (applications only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub distinct_users: Option<u64>,
    /// Distinct models (applications only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub distinct_models: Option<u64>,
}

impl WindowAggregate {
    /// Window start, epoch ms.
    pub fn window_start(&self) -> u64 {
        self.window_end - self.width_ms
    }

    /// Failed calls over calls; 0 when there were no calls.
    pub fn error_rate(&self) -> f64 {
        if self.acc.calls == 0 {
            0.0
        } else {
            f64::from(self.acc.errors) / f64::from(self.acc.calls)
        }
    }

    /// Mean latency, if any call reported one.
    pub fn latency_mean(&self) -> Option<f64> {
        let n = self.acc.latency_count;
        (n > 0).then(|| self.acc.latency_sum / f64::from(n))
    }

    /// The printable summary.
    pub fn record(&self) -> AggregateRecord {
        AggregateRecord {
            id: crate::hash::stable_id(&[
                b"aggregate",
                &[self.dimension as u8],
                self.key.as_bytes(),
                &self.width_ms.to_le_bytes(),
                &self.window_end.to_le_bytes(),
            ]),
            dimension: self.dimension,
            key: self.key.clone(),
            width_ms: self.width_ms,
            window_start: format_rfc3339_ms(self.window_start()),
            window_end: format_rfc3339_ms(self.window_end),
            requests: self.acc.calls,
            errors: self.acc.errors,
            request_events: self.acc.request_events,
            tool_calls: self.acc.tool_calls,
            error_rate: self.error_rate(),
            prompt_tokens: self.acc.prompt_tokens,
            completion_tokens: self.acc.completion_tokens,
            total_tokens: self.acc.total_tokens,
            cost: self.acc.cost,
            latency_mean_ms: self.latency_mean(),
            latency_p95_ms: self.acc.latency.quantile(0.95),
            latency_p99_ms: self.acc.latency.quantile(0.99),
            distinct_users: self.distinct_users,
            distinct_models: self.distinct_models,
        }
    }
}
