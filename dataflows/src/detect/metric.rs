//! The windowed metrics a statistical detector can watch.

use crate::window::WindowAggregate;

/// A value computed from one closed window of one entity.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Metric {
    /// Cost per minute of window.
    CostPerMinute,
    /// Cost per hour of window.
    CostPerHour,
    /// Total tokens per minute.
    TokensPerMinute,
    /// Input tokens per minute.
    PromptTokensPerMinute,
    /// Output tokens per minute.
    CompletionTokensPerMinute,
    /// Completed calls per minute.
    RequestsPerMinute,
    /// Tool calls per minute.
    ToolCallsPerMinute,
    /// Failed calls over calls.
    ErrorRate,
    /// Mean call latency.
    LatencyMean,
    /// 95th percentile latency.
    LatencyP95,
    /// 99th percentile latency.
    LatencyP99,
    /// Distinct users of an application.
    DistinctUsers,
    /// Distinct models used by an application.
    DistinctModels,
}

impl Metric {
    /// Every metric with its config name.
    pub const NAMES: [(&'static str, Metric); 13] = [
        ("cost_per_minute", Metric::CostPerMinute),
        ("cost_per_hour", Metric::CostPerHour),
        ("tokens_per_minute", Metric::TokensPerMinute),
        ("prompt_tokens_per_minute", Metric::PromptTokensPerMinute),
        ("completion_tokens_per_minute", Metric::CompletionTokensPerMinute),
        ("requests_per_minute", Metric::RequestsPerMinute),
        ("tool_calls_per_minute", Metric::ToolCallsPerMinute),
        ("error_rate", Metric::ErrorRate),
        ("latency_mean", Metric::LatencyMean),
        ("latency_p95", Metric::LatencyP95),
        ("latency_p99", Metric::LatencyP99),
        ("distinct_users", Metric::DistinctUsers),
        ("distinct_models", Metric::DistinctModels),
    ];

    /// Parses a config name such as `cost_per_minute`.
    pub fn parse(name: &str) -> Option<Metric> {
        Self::NAMES.iter().find(|(n, _)| *n == name).map(|(_, m)| *m)
    }

    /// Config name.
    pub fn as_str(self) -> &'static str {
        Self::NAMES.iter().find(|(_, m)| *m == self).map_or("?", |(n, _)| n)
    }

    /// True for per-time rates of countable things: a window with no events means 0, and the
    /// counting noise (Poisson) sets a floor under the baseline's spread.
    pub fn is_rate(self) -> bool {
        matches!(
            self,
            Metric::CostPerMinute
                | Metric::CostPerHour
                | Metric::TokensPerMinute
                | Metric::PromptTokensPerMinute
                | Metric::CompletionTokensPerMinute
                | Metric::RequestsPerMinute
                | Metric::ToolCallsPerMinute
        )
    }

    /// True when the value counts whole events, so Poisson noise applies to it.
    pub fn counts_events(self) -> bool {
        matches!(self, Metric::RequestsPerMinute | Metric::ToolCallsPerMinute)
    }

    /// The value for one window, or `None` when the window has too few calls to say.
    pub fn value(self, agg: &WindowAggregate, min_calls: u32) -> Option<f64> {
        let minutes = agg.width_ms as f64 / 60_000.0;
        let acc = &agg.acc;
        let enough = acc.calls >= min_calls.max(1);
        match self {
            Metric::CostPerMinute => Some(acc.cost / minutes),
            Metric::CostPerHour => Some(acc.cost / (minutes / 60.0)),
            Metric::TokensPerMinute => Some(acc.total_tokens as f64 / minutes),
            Metric::PromptTokensPerMinute => Some(acc.prompt_tokens as f64 / minutes),
            Metric::CompletionTokensPerMinute => Some(acc.completion_tokens as f64 / minutes),
            Metric::RequestsPerMinute => Some(f64::from(acc.calls) / minutes),
            Metric::ToolCallsPerMinute => Some(f64::from(acc.tool_calls) / minutes),
            Metric::ErrorRate => enough.then(|| agg.error_rate()),
            Metric::LatencyMean => agg.latency_mean().filter(|_| enough),
            Metric::LatencyP95 => acc.latency.quantile(0.95).filter(|_| enough),
            Metric::LatencyP99 => acc.latency.quantile(0.99).filter(|_| enough),
            Metric::DistinctUsers => agg.distinct_users.map(|v| v as f64),
            Metric::DistinctModels => agg.distinct_models.map(|v| v as f64),
        }
    }

    /// Default minimum number of calls in a window before a ratio or latency metric is judged.
    pub fn default_min_calls(self) -> u32 {
        match self {
            Metric::ErrorRate => 20,
            Metric::LatencyMean | Metric::LatencyP95 | Metric::LatencyP99 => 10,
            _ => 1,
        }
    }
}
