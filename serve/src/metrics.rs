//! Metric time series for `POST /api/v1/metrics/query` and GraphQL's `metrics`: what the
//! store can answer, bucketed at a granularity.

use serde::Serialize;

use crate::store::{AggregateColumn, AggregateQuery, Store};
use sentinel_dataflows::time::{format_rfc3339_ms, parse_duration_ms};

/// Buckets one query may ask for at most.
pub const MAX_BUCKETS: u64 = 10_000;

/// A metric the store answers.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MetricName {
    /// Anomalies detected per bucket.
    AnomalyCount,
    /// Anomalies detected per minute, over each bucket.
    AnomalyRate,
    /// p99 of detection time to arrival in the store, ms, per bucket.
    DetectionLatencyP99,
    /// A figure of the closed-window aggregates, one series per entity.
    Aggregate(AggregateColumn),
}

impl MetricName {
    /// Every metric, as named in queries.
    pub const ALL: [MetricName; 13] = [
        MetricName::AnomalyCount,
        MetricName::AnomalyRate,
        MetricName::DetectionLatencyP99,
        MetricName::Aggregate(AggregateColumn::Cost),
        MetricName::Aggregate(AggregateColumn::Requests),
        MetricName::Aggregate(AggregateColumn::Errors),
        MetricName::Aggregate(AggregateColumn::ErrorRate),
        MetricName::Aggregate(AggregateColumn::Tokens),
        MetricName::Aggregate(AggregateColumn::PromptTokens),
        MetricName::Aggregate(AggregateColumn::CompletionTokens),
        MetricName::Aggregate(AggregateColumn::LatencyMean),
        MetricName::Aggregate(AggregateColumn::LatencyP95),
        MetricName::Aggregate(AggregateColumn::LatencyP99),
    ];

    /// The name in queries and answers.
    pub fn as_str(self) -> &'static str {
        match self {
            MetricName::AnomalyCount => "anomaly_count",
            MetricName::AnomalyRate => "anomaly_rate",
            MetricName::DetectionLatencyP99 => "detection_latency_p99",
            MetricName::Aggregate(c) => match c {
                AggregateColumn::Cost => "cost",
                AggregateColumn::Requests => "requests",
                AggregateColumn::Errors => "errors",
                AggregateColumn::ErrorRate => "error_rate",
                AggregateColumn::Tokens => "tokens",
                AggregateColumn::PromptTokens => "prompt_tokens",
                AggregateColumn::CompletionTokens => "completion_tokens",
                AggregateColumn::LatencyMean => "latency_mean_ms",
                AggregateColumn::LatencyP95 => "latency_p95_ms",
                AggregateColumn::LatencyP99 => "latency_p99_ms",
            },
        }
    }

    /// From its name (`detection_latency` is the seed dashboard's name for the p99).
    pub fn parse(name: &str) -> Option<MetricName> {
        match name {
            "detection_latency" => Some(MetricName::DetectionLatencyP99),
            _ => MetricName::ALL.into_iter().find(|m| m.as_str() == name),
        }
    }

    /// Its unit.
    pub fn unit(self) -> &'static str {
        match self {
            MetricName::AnomalyCount => "anomalies",
            MetricName::AnomalyRate => "anomalies/min",
            MetricName::DetectionLatencyP99 => "ms",
            MetricName::Aggregate(c) => match c {
                AggregateColumn::Cost => "usd",
                AggregateColumn::Requests | AggregateColumn::Errors => "calls",
                AggregateColumn::ErrorRate => "ratio",
                AggregateColumn::Tokens | AggregateColumn::PromptTokens | AggregateColumn::CompletionTokens => "tokens",
                AggregateColumn::LatencyMean | AggregateColumn::LatencyP95 | AggregateColumn::LatencyP99 => "ms",
            },
        }
    }
}

/// How values within a bucket combine. The anomaly metrics are exact per bucket, so each
/// aggregation gives the same value for them; it is echoed in the answer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Aggregation {
    /// Mean.
    Avg,
    /// Sum.
    Sum,
    /// Least.
    Min,
    /// Greatest.
    Max,
    /// How many.
    Count,
}

impl Aggregation {
    /// Every aggregation, as named in queries.
    pub const ALL: [Aggregation; 5] = [
        Aggregation::Avg,
        Aggregation::Sum,
        Aggregation::Min,
        Aggregation::Max,
        Aggregation::Count,
    ];

    /// Its name (`avg`).
    pub fn as_str(self) -> &'static str {
        match self {
            Aggregation::Avg => "avg",
            Aggregation::Sum => "sum",
            Aggregation::Min => "min",
            Aggregation::Max => "max",
            Aggregation::Count => "count",
        }
    }

    /// From its name, in any case.
    pub fn parse(name: &str) -> Option<Aggregation> {
        let lower = name.to_ascii_lowercase();
        Aggregation::ALL.into_iter().find(|a| a.as_str() == lower)
    }
}

/// A query.
#[derive(Clone, Debug, PartialEq)]
pub struct MetricsQuery {
    /// The metrics wanted.
    pub metrics: Vec<MetricName>,
    /// From (inclusive), ms.
    pub start_ms: u64,
    /// To (exclusive), ms.
    pub end_ms: u64,
    /// How values combine.
    pub aggregation: Aggregation,
    /// Bucket width, ms.
    pub granularity_ms: u64,
    /// The aggregates' dimension, as answers name it: `application_id`, `model` or `tenant_id`.
    pub dimension: &'static str,
    /// Only these entities of it (all when empty).
    pub keys: Vec<String>,
}

/// The dimensions aggregate metrics break down by: the name in queries and answers, and the
/// store's.
pub const DIMENSIONS: [(&str, &str); 3] = [
    ("application_id", "application"),
    ("model", "model"),
    ("tenant_id", "tenant"),
];

/// Why a query was refused: the message names the field and value.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BadQuery(pub String);

impl MetricsQuery {
    /// Checks the parts of a query as given by name.
    pub fn parse(
        metrics: &[String],
        start_ms: u64,
        end_ms: u64,
        aggregation: &str,
        granularity: &str,
    ) -> Result<MetricsQuery, BadQuery> {
        let known = || MetricName::ALL.map(|m| m.as_str()).join(", ");
        if metrics.is_empty() {
            return Err(BadQuery(format!("`metrics`: name at least one of {}", known())));
        }
        let metrics = metrics
            .iter()
            .map(|m| {
                MetricName::parse(m)
                    .ok_or_else(|| BadQuery(format!("`metrics`: unknown metric `{m}`; known: {}", known())))
            })
            .collect::<Result<Vec<_>, _>>()?;
        let aggregation = Aggregation::parse(aggregation).ok_or_else(|| {
            BadQuery(format!(
                "`aggregation`: unknown value `{aggregation}`; known: {}",
                Aggregation::ALL.map(|a| a.as_str()).join(", ")
            ))
        })?;
        let granularity_ms = parse_duration_ms(granularity).filter(|g| *g > 0).ok_or_else(|| {
            BadQuery(format!(
                "`granularity`: `{granularity}` is not a duration such as 1m, 5m or 1h"
            ))
        })?;
        if end_ms <= start_ms {
            return Err(BadQuery("`end` must be after `start`".into()));
        }
        let buckets = (end_ms - start_ms).div_ceil(granularity_ms);
        if buckets > MAX_BUCKETS {
            return Err(BadQuery(format!(
                "`granularity`: {granularity} makes {buckets} buckets over the range; at most {MAX_BUCKETS}"
            )));
        }
        Ok(MetricsQuery {
            metrics,
            start_ms,
            end_ms,
            aggregation,
            granularity_ms,
            dimension: DIMENSIONS[0].0,
            keys: Vec::new(),
        })
    }

    /// Breaks the aggregate metrics down by `name` (`application_id`, `model`, `tenant_id`),
    /// keeping the entities in `values` (all when empty).
    pub fn by(mut self, name: &str, values: Vec<String>) -> Result<MetricsQuery, BadQuery> {
        let (dimension, _) = DIMENSIONS.iter().find(|(n, _)| *n == name).ok_or_else(|| {
            BadQuery(format!(
                "`dimensions`: unknown dimension `{name}`; known: {}",
                DIMENSIONS.map(|d| d.0).join(", ")
            ))
        })?;
        self.dimension = dimension;
        self.keys = values;
        Ok(self)
    }
}

/// One point.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Datapoint {
    /// The bucket's start, ms (written as RFC 3339 `timestamp`).
    #[serde(rename = "timestamp", serialize_with = "as_rfc3339")]
    pub at_ms: u64,
    /// Its value.
    pub value: f64,
}

fn as_rfc3339<S: serde::Serializer>(ms: &u64, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&format_rfc3339_ms(*ms))
}

/// One metric's series.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Series {
    /// The metric.
    pub name: String,
    /// What it is broken down by (none for the anomaly metrics).
    pub dimensions: serde_json::Map<String, serde_json::Value>,
    /// Oldest first; a bucket with no value is left out.
    pub datapoints: Vec<Datapoint>,
    /// Its unit.
    pub unit: String,
    /// As asked.
    pub aggregation: String,
}

/// One `dimensions` entry of a query: a dimension, and optionally one of its entities.
#[derive(Clone, Debug, PartialEq, Eq, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DimensionFilter {
    /// `application_id`, `model` or `tenant_id`.
    pub name: String,
    /// One entity; without, every entity of the dimension.
    #[serde(default)]
    pub value: Option<String>,
}

impl MetricsQuery {
    /// Applies a query's `dimensions`: all of one dimension, its values the entities kept.
    pub fn with_dimensions(self, dimensions: &[DimensionFilter]) -> Result<MetricsQuery, BadQuery> {
        let Some(first) = dimensions.first() else {
            return Ok(self);
        };
        if let Some(other) = dimensions.iter().find(|d| d.name != first.name) {
            return Err(BadQuery(format!(
                "`dimensions`: one dimension at a time (`{}` and `{}`)",
                first.name, other.name
            )));
        }
        let values = dimensions.iter().filter_map(|d| d.value.clone()).collect();
        self.by(&first.name, values)
    }
}

/// Answers `query` from `store`.
pub fn query(store: &dyn Store, q: &MetricsQuery) -> Result<Vec<Series>, String> {
    let needs_anomalies = q.metrics.iter().any(|m| !matches!(m, MetricName::Aggregate(_)));
    let buckets = if needs_anomalies {
        store.anomaly_buckets(q.start_ms, q.end_ms, q.granularity_ms)?
    } else {
        Vec::new()
    };
    let minutes = q.granularity_ms as f64 / 60_000.0;
    let series = |m: MetricName, dimensions, datapoints| Series {
        name: m.as_str().to_owned(),
        dimensions,
        datapoints,
        unit: m.unit().to_owned(),
        aggregation: q.aggregation.as_str().to_owned(),
    };
    let mut out = Vec::new();
    for &m in &q.metrics {
        let column = match m {
            MetricName::Aggregate(column) => column,
            _ => {
                out.push(series(
                    m,
                    serde_json::Map::new(),
                    anomaly_points(m, q, &buckets, minutes),
                ));
                continue;
            }
        };
        let store_dimension = DIMENSIONS
            .iter()
            .find(|(n, _)| *n == q.dimension)
            .map_or("application", |(_, d)| d);
        let keyed = store.aggregate_series(&AggregateQuery {
            dimension: store_dimension.to_owned(),
            keys: q.keys.clone(),
            start_ms: q.start_ms,
            end_ms: q.end_ms,
            bucket_ms: q.granularity_ms,
            column,
            aggregation: q.aggregation,
        })?;
        for k in keyed {
            let mut dimensions = serde_json::Map::new();
            dimensions.insert(q.dimension.to_owned(), serde_json::Value::String(k.key));
            let points = k
                .points
                .into_iter()
                .map(|(at, value)| Datapoint { at_ms: at, value })
                .collect();
            out.push(series(m, dimensions, points));
        }
    }
    Ok(out)
}

/// An anomaly metric's points: every bucket for the counts, those with anomalies for latency.
fn anomaly_points(
    m: MetricName,
    q: &MetricsQuery,
    buckets: &[crate::store::AnomalyBucket],
    minutes: f64,
) -> Vec<Datapoint> {
    let mut datapoints = Vec::new();
    let mut next = buckets.iter().peekable();
    let mut at = q.start_ms;
    while at < q.end_ms {
        let bucket = next.next_if(|b| b.start_ms == at);
        let count = bucket.map_or(0, |b| b.count) as f64;
        let value = match m {
            MetricName::AnomalyCount => Some(count),
            MetricName::AnomalyRate => Some(count / minutes),
            MetricName::DetectionLatencyP99 => bucket.and_then(|b| b.detection_latency_p99_ms),
            MetricName::Aggregate(_) => None,
        };
        if let Some(value) = value {
            datapoints.push(Datapoint { at_ms: at, value });
        }
        at += q.granularity_ms;
    }
    datapoints
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bad_queries_name_the_field_and_value() {
        let q = |m: &[&str], agg: &str, g: &str| {
            MetricsQuery::parse(
                &m.iter().map(|s| s.to_string()).collect::<Vec<_>>(),
                0,
                3_600_000,
                agg,
                g,
            )
        };
        assert!(q(&["anomaly_rate"], "avg", "5m").is_ok());
        assert_eq!(q(&["anomaly_rate"], "AVG", "5m").unwrap().granularity_ms, 300_000);
        assert!(q(&["cpu"], "avg", "5m").unwrap_err().0.contains("`cpu`"));
        assert!(q(&["anomaly_rate"], "median", "5m").unwrap_err().0.contains("`median`"));
        assert!(q(&["anomaly_rate"], "avg", "soon").unwrap_err().0.contains("`soon`"));
        assert!(q(&["anomaly_rate"], "avg", "1ms").unwrap_err().0.contains("buckets"));
        assert!(q(&[], "avg", "5m").is_err());
    }
}
