//! Metric time series for `POST /api/v1/metrics/query` and GraphQL's `metrics`: what the
//! store can answer, bucketed at a granularity.

use serde::Serialize;

use crate::store::Store;
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
}

impl MetricName {
    /// Every metric, as named in queries.
    pub const ALL: [MetricName; 3] = [
        MetricName::AnomalyCount,
        MetricName::AnomalyRate,
        MetricName::DetectionLatencyP99,
    ];

    /// The name in queries and answers.
    pub fn as_str(self) -> &'static str {
        match self {
            MetricName::AnomalyCount => "anomaly_count",
            MetricName::AnomalyRate => "anomaly_rate",
            MetricName::DetectionLatencyP99 => "detection_latency_p99",
        }
    }

    /// From its name (`detection_latency` is the seed dashboard's name for the p99).
    pub fn parse(name: &str) -> Option<MetricName> {
        match name {
            "detection_latency" => Some(MetricName::DetectionLatencyP99),
            _ => MetricName::ALL.into_iter().find(|m| m.as_str() == name),
        }
    }

    fn unit(self) -> &'static str {
        match self {
            MetricName::AnomalyCount => "anomalies",
            MetricName::AnomalyRate => "anomalies/min",
            MetricName::DetectionLatencyP99 => "ms",
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
}

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
        })
    }
}

/// One point.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Datapoint {
    /// The bucket's start, RFC 3339.
    pub timestamp: String,
    /// Its value.
    pub value: f64,
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

/// Answers `query` from `store`.
pub fn query(store: &dyn Store, q: &MetricsQuery) -> Result<Vec<Series>, String> {
    let buckets = store.anomaly_buckets(q.start_ms, q.end_ms, q.granularity_ms)?;
    let minutes = q.granularity_ms as f64 / 60_000.0;
    Ok(q.metrics
        .iter()
        .map(|m| {
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
                };
                if let Some(value) = value {
                    datapoints.push(Datapoint {
                        timestamp: format_rfc3339_ms(at),
                        value,
                    });
                }
                at += q.granularity_ms;
            }
            Series {
                name: m.as_str().to_owned(),
                dimensions: serde_json::Map::new(),
                datapoints,
                unit: m.unit().to_owned(),
                aggregation: q.aggregation.as_str().to_owned(),
            }
        })
        .collect())
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
