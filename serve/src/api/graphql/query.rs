//! Queries: anomalies, one anomaly, statistics, metrics, detectors, alerts.

use async_graphql::{Context, Object, ID};

use super::alerts::{AlertConnection, AlertEdge, AlertFilterInput, AlertNode};
use super::types::{
    AggregationInput, AnomalyConnection, AnomalyEdge, AnomalyFilterInput, AnomalyNode, ApplicationStats, Datapoint,
    DateTime, Detector, DetectorFilter, DetectorStats, Dimension, DimensionInput, EntityStats, Granularity,
    MetricSeries, PageInfo, Pagination, Severity, SeverityStats, Statistics, TimeRange,
};
use super::{gql_error, Shared};
use crate::api::rest::blocking;
use crate::api::ApiError;
use crate::metrics::{self, BadQuery, DimensionFilter, MetricsQuery};
use crate::store::{Cursor, GroupBy, PageAt};

/// Rows a page holds at most.
const MAX_LIMIT: i32 = 1_000;

/// The queries.
pub struct QueryRoot;

/// The page asked for (100 rows from the start unless given): a limit within 1..=[`MAX_LIMIT`],
/// and `after` or `offset`, not both.
fn checked(pagination: Option<Pagination>) -> async_graphql::Result<Pagination> {
    let pagination = pagination.unwrap_or(Pagination {
        limit: 100,
        offset: 0,
        after: None,
    });
    if !(1..=MAX_LIMIT).contains(&pagination.limit) {
        return Err(gql_error(ApiError::BadRequest(format!(
            "`pagination.limit`: {} is not within 1..={MAX_LIMIT}",
            pagination.limit
        ))));
    }
    if pagination.after.is_some() && pagination.offset != 0 {
        return Err(gql_error(ApiError::BadRequest(
            "`pagination.after` and `pagination.offset` are exclusive: give one".into(),
        )));
    }
    Ok(pagination)
}

#[Object]
impl QueryRoot {
    /// Anomalies in a time range, newest first, filtered and paged.
    async fn anomalies(
        &self,
        ctx: &Context<'_>,
        filter: Option<AnomalyFilterInput>,
        time_range: TimeRange,
        pagination: Option<Pagination>,
    ) -> async_graphql::Result<AnomalyConnection> {
        let shared = ctx.data::<Shared>()?;
        let filter = filter.unwrap_or_default().to_store(Some(time_range));
        let pagination = checked(pagination)?;
        let at = match (&pagination.after, pagination.offset) {
            (Some(text), _) => PageAt::After(Cursor::decode(text).ok_or_else(|| {
                gql_error(ApiError::BadRequest(format!(
                    "`pagination.after`: `{text}` is not a cursor this API gave"
                )))
            })?),
            (None, o) if o < 0 => {
                return Err(gql_error(ApiError::BadRequest(format!(
                    "`pagination.offset`: {o} is negative"
                ))))
            }
            (None, o) => PageAt::Offset(o as u64),
        };
        let limit = pagination.limit as u32;
        let page = blocking(&shared.api.store, move |s| s.anomalies(&filter, &at, limit))
            .await
            .map_err(gql_error)?;
        let edges: Vec<AnomalyEdge> = page
            .anomalies
            .into_iter()
            .filter_map(AnomalyNode::from_value)
            .map(|node| AnomalyEdge {
                cursor: Cursor {
                    ts_ms: node.timestamp.0,
                    id: node.id.to_string(),
                }
                .encode(),
                node,
            })
            .collect();
        Ok(AnomalyConnection {
            page_info: PageInfo {
                has_next_page: page.next_cursor.is_some(),
                end_cursor: page.next_cursor.map(|c| c.encode()),
            },
            edges,
            total_count: page.total as i64,
        })
    }

    /// The alert notifications sent in a time range, newest first, filtered and paged by
    /// offset (`Pagination.after` takes an edge's cursor).
    async fn alerts(
        &self,
        ctx: &Context<'_>,
        filter: Option<AlertFilterInput>,
        time_range: TimeRange,
        pagination: Option<Pagination>,
    ) -> async_graphql::Result<AlertConnection> {
        let shared = ctx.data::<Shared>()?;
        let filter = filter.unwrap_or_default().to_store(time_range);
        let pagination = checked(pagination)?;
        let offset: u64 = match (&pagination.after, pagination.offset) {
            (Some(text), _) => text.parse().map_err(|_| {
                gql_error(ApiError::BadRequest(format!(
                    "`pagination.after`: `{text}` is not a cursor this API gave"
                )))
            })?,
            (None, o) => u64::try_from(o)
                .map_err(|_| gql_error(ApiError::BadRequest(format!("`pagination.offset`: {o} is negative"))))?,
        };
        let limit = pagination.limit as u32;
        let page = blocking(&shared.api.store, move |s| s.alerts(&filter, offset, limit))
            .await
            .map_err(gql_error)?;
        let edges: Vec<AlertEdge> = page
            .alerts
            .into_iter()
            .filter_map(AlertNode::from_value)
            .enumerate()
            .map(|(i, node)| AlertEdge {
                node,
                cursor: (offset + i as u64 + 1).to_string(),
            })
            .collect();
        let end = offset + edges.len() as u64;
        Ok(AlertConnection {
            page_info: PageInfo {
                has_next_page: end < page.total,
                end_cursor: edges.last().map(|e| e.cursor.clone()),
            },
            edges,
            total_count: page.total as i64,
        })
    }

    /// One anomaly by id.
    async fn anomaly(&self, ctx: &Context<'_>, id: ID) -> async_graphql::Result<Option<AnomalyNode>> {
        let shared = ctx.data::<Shared>()?;
        let found = blocking(&shared.api.store, move |s| s.anomaly(&id))
            .await
            .map_err(gql_error)?;
        Ok(found.and_then(AnomalyNode::from_value))
    }

    /// Figures over a time range: by detector, severity and application, top entities, rate,
    /// mean score and MTTR. `groupBy` is accepted for the seed's clients; every breakdown is
    /// always filled.
    async fn statistics(
        &self,
        ctx: &Context<'_>,
        time_range: TimeRange,
        #[graphql(name = "groupBy")] _group_by: Option<Vec<String>>,
    ) -> async_graphql::Result<Statistics> {
        let shared = ctx.data::<Shared>()?;
        let (start, end) = (time_range.start.0, time_range.end.0);
        let (by_detector, by_severity, by_application) = blocking(&shared.api.store, move |s| {
            Ok((
                s.statistics(start, end, &[GroupBy::Detector])?,
                s.statistics(start, end, &[GroupBy::Severity])?,
                s.statistics(start, end, &[GroupBy::Application])?,
            ))
        })
        .await
        .map_err(gql_error)?;
        let hours = (end.saturating_sub(start) as f64 / 3_600_000.0).max(f64::MIN_POSITIVE);
        Ok(Statistics {
            total_anomalies: by_detector.total_anomalies as i64,
            anomalies_by_detector: by_detector
                .groups
                .iter()
                .map(|g| DetectorStats {
                    detector_id: g.key[0].clone(),
                    count: g.count as i64,
                    average_score: g.average_score,
                })
                .collect(),
            anomalies_by_severity: by_severity
                .groups
                .iter()
                .filter_map(|g| {
                    Some(SeverityStats {
                        severity: Severity::parse(&g.key[0])?,
                        count: g.count as i64,
                        average_score: g.average_score,
                    })
                })
                .collect(),
            anomalies_by_application: by_application
                .groups
                .iter()
                .map(|g| ApplicationStats {
                    application_id: g.key[0].clone(),
                    count: g.count as i64,
                    average_score: g.average_score,
                })
                .collect(),
            top_affected_entities: by_detector
                .top_entities
                .iter()
                .map(|(entity, count)| EntityStats {
                    entity: entity.clone(),
                    count: *count as i64,
                })
                .collect(),
            detection_rate: by_detector.total_anomalies as f64 / hours,
            average_score: by_detector.average_score,
            mttr: by_detector.mttr_seconds,
        })
    }

    /// Metric time series at a granularity: the anomaly metrics, and the aggregates' figures
    /// (cost, requests, tokens, latency...) one series per application, model or tenant.
    async fn metrics(
        &self,
        ctx: &Context<'_>,
        names: Vec<String>,
        dimensions: Option<Vec<DimensionInput>>,
        time_range: TimeRange,
        aggregation: AggregationInput,
        granularity: Granularity,
    ) -> async_graphql::Result<Vec<MetricSeries>> {
        let shared = ctx.data::<Shared>()?;
        let dimensions: Vec<DimensionFilter> = dimensions
            .unwrap_or_default()
            .into_iter()
            .map(|d| DimensionFilter {
                name: d.name,
                value: Some(d.value),
            })
            .collect();
        let query = MetricsQuery::parse(
            &names,
            time_range.start.0,
            time_range.end.0,
            aggregation.as_str(),
            &granularity.0,
        )
        .and_then(|q| q.with_dimensions(&dimensions))
        .map_err(|BadQuery(m)| gql_error(ApiError::BadRequest(m)))?;
        let series = blocking(&shared.api.store, move |s| metrics::query(s, &query))
            .await
            .map_err(gql_error)?;
        Ok(series
            .into_iter()
            .map(|s| MetricSeries {
                name: s.name,
                dimensions: s
                    .dimensions
                    .into_iter()
                    .map(|(name, value)| Dimension {
                        name,
                        value: value.as_str().unwrap_or_default().to_owned(),
                    })
                    .collect(),
                datapoints: s
                    .datapoints
                    .into_iter()
                    .map(|p| Datapoint {
                        timestamp: DateTime(p.at_ms),
                        value: p.value,
                    })
                    .collect(),
                unit: Some(s.unit),
                aggregation,
            })
            .collect())
    }

    /// The job's detectors as configured.
    async fn detectors(
        &self,
        ctx: &Context<'_>,
        filter: Option<DetectorFilter>,
    ) -> async_graphql::Result<Vec<Detector>> {
        let shared = ctx.data::<Shared>()?;
        let filter = filter.unwrap_or_default();
        Ok(shared
            .api
            .detectors
            .iter()
            .map(Detector::from_value)
            .filter(|d| filter.ids.as_ref().is_none_or(|ids| ids.contains(&d.id)))
            .filter(|d| {
                filter
                    .types
                    .as_ref()
                    .is_none_or(|types| d.detector_type.is_some_and(|t| types.contains(&t)))
            })
            .filter(|d| filter.enabled.is_none_or(|e| e == d.enabled))
            .collect())
    }
}
