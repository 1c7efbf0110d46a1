//! Subscriptions: new anomalies and new closed-window figures as the store takes them.

use async_graphql::{Context, ErrorExtensions, SimpleObject, Subscription};
use futures_util::{Stream, StreamExt};

use super::types::{AnomalyFilterInput, AnomalyNode, DateTime, Dimension};
use super::{gql_error, Shared};
use crate::api::ApiError;
use crate::live::{Delivery, BEHIND};
use crate::metrics::MetricName;
use crate::store::{AggregateColumn, StoredAggregate};

/// One new value of a metric: one closed window of one entity.
#[derive(SimpleObject, Clone, Debug)]
pub struct MetricUpdate {
    /// The metric, as asked.
    pub name: String,
    /// The window's end.
    pub timestamp: DateTime,
    /// Its value over the window.
    pub value: f64,
    /// The entity: its kind (`application`, `model`, `tenant`) and id.
    pub dimensions: Vec<Dimension>,
    /// The window's width, in seconds.
    pub window_seconds: i64,
    /// The value's unit.
    pub unit: String,
}

/// The subscriptions.
pub struct SubscriptionRoot;

#[Subscription]
impl SubscriptionRoot {
    /// Each new anomaly matching `filter`, as soon as it is stored. A subscriber that falls
    /// more than ten thousand anomalies behind gets an error with `extensions.code = "behind"`
    /// and the backlog, then every anomaly it missed, oldest first: none is skipped.
    async fn anomaly_detected(
        &self,
        ctx: &Context<'_>,
        filter: Option<AnomalyFilterInput>,
    ) -> async_graphql::Result<impl Stream<Item = async_graphql::Result<AnomalyNode>>> {
        let shared = ctx.data::<Shared>()?;
        let filter = filter.unwrap_or_default().to_store(None);
        let deliveries = shared.api.live.anomalies(shared.api.store.clone(), filter);
        Ok(deliveries.filter_map(|d| async move {
            match d {
                Delivery::Record(value) => AnomalyNode::from_value(value).map(Ok),
                Delivery::Behind { backlog } => Some(Err(behind("anomalies", backlog))),
                Delivery::Failed(why) => Some(Err(failed(&why))),
            }
        }))
    }

    /// Each new value of the metrics `names` (the closed-window figures: `cost`, `requests`,
    /// `errors`, `error_rate`, `tokens`, `prompt_tokens`, `completion_tokens`,
    /// `latency_mean_ms`, `latency_p95_ms`, `latency_p99_ms`), one per window of each
    /// application, model and tenant, as soon as the store takes the window. Falling behind
    /// works as for `anomalyDetected`, counted in windows.
    async fn metrics_updated(
        &self,
        ctx: &Context<'_>,
        names: Vec<String>,
    ) -> async_graphql::Result<impl Stream<Item = async_graphql::Result<MetricUpdate>>> {
        let shared = ctx.data::<Shared>()?;
        let metrics = window_metrics(&names).map_err(gql_error)?;
        let deliveries = shared.api.live.aggregates(shared.api.store.clone());
        Ok(deliveries.flat_map(move |d| {
            let updates: Vec<async_graphql::Result<MetricUpdate>> = match d {
                Delivery::Record(window) => metrics
                    .iter()
                    .filter_map(|(name, column)| update(name, *column, &window).map(Ok))
                    .collect(),
                Delivery::Behind { backlog } => vec![Err(behind("windows", backlog))],
                Delivery::Failed(why) => vec![Err(failed(&why))],
            };
            futures_util::stream::iter(updates)
        }))
    }
}

/// The window figures among `names`; any other name is refused, naming it.
fn window_metrics(names: &[String]) -> Result<Vec<(MetricName, AggregateColumn)>, ApiError> {
    if names.is_empty() {
        return Err(ApiError::BadRequest("`names`: give at least one metric".into()));
    }
    names
        .iter()
        .map(|name| match MetricName::parse(name) {
            Some(m @ MetricName::Aggregate(column)) => Ok((m, column)),
            _ => {
                let known: Vec<&str> = MetricName::ALL
                    .iter()
                    .filter(|m| matches!(m, MetricName::Aggregate(_)))
                    .map(|m| m.as_str())
                    .collect();
                Err(ApiError::BadRequest(format!(
                    "`names`: `{name}` is not a per-window metric; known: {} \
                     (anomaly counts come with `anomalyDetected`)",
                    known.join(", ")
                )))
            }
        })
        .collect()
}

fn update(name: &MetricName, column: AggregateColumn, window: &StoredAggregate) -> Option<MetricUpdate> {
    Some(MetricUpdate {
        name: name.as_str().to_owned(),
        timestamp: DateTime(window.end_ms),
        value: window.value(column)?,
        dimensions: vec![Dimension {
            name: window.dimension.clone(),
            value: window.key.clone(),
        }],
        window_seconds: (window.width_ms / 1000) as i64,
        unit: name.unit().to_owned(),
    })
}

fn behind(what: &str, backlog: u64) -> async_graphql::Error {
    async_graphql::Error::new(format!(
        "this subscriber fell {backlog} {what} behind (more than {BEHIND}); every one it missed follows, oldest first"
    ))
    .extend_with(|_, ext| {
        ext.set("code", "behind");
        ext.set("backlog", backlog);
    })
}

fn failed(why: &str) -> async_graphql::Error {
    async_graphql::Error::new(format!(
        "the store could not be read ({why}); retrying at the next arrival"
    ))
    .extend_with(|_, ext| ext.set("code", "internal"))
}
