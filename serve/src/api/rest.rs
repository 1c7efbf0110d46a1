//! The REST API, in the shapes of the seed's Python client.

use std::sync::Arc;

use axum::extract::{Path, Query, State};
use axum::http::HeaderMap;
use axum::Json;
use serde::Deserialize;
use serde_json::{json, Value};

use super::error::ApiError;
use super::ApiState;
use crate::auth::Scope;
use crate::lifecycle::{check, Change, LifecycleEvent, Status};
use crate::metrics::{self, BadQuery, DimensionFilter, MetricsQuery};
use crate::store::{AlertFilter, AnomalyFilter, Applied, Cursor, GroupBy, OutcomeFilter, OutcomeKind, PageAt, Store};
use sentinel_dataflows::time::{format_rfc3339_ms, parse_rfc3339_ms};

/// Rows a page holds at most.
const MAX_LIMIT: u32 = 1_000;

pub(super) fn authorize(state: &ApiState, headers: &HeaderMap, needed: Scope) -> Result<(), ApiError> {
    authorize_with(&state.keys, headers, needed)
}

fn authorize_with(keys: &crate::auth::Keys, headers: &HeaderMap, needed: Scope) -> Result<(), ApiError> {
    Ok(keys.check(super::authorization(headers), needed)?)
}

/// Runs a store call off the runtime's threads.
pub(crate) async fn blocking<T: Send + 'static>(
    store: &Arc<dyn Store>,
    f: impl FnOnce(&dyn Store) -> Result<T, String> + Send + 'static,
) -> Result<T, ApiError> {
    let store = Arc::clone(store);
    tokio::task::spawn_blocking(move || f(&*store))
        .await
        .map_err(|e| ApiError::Internal(e.to_string()))?
        .map_err(ApiError::Internal)
}

/// Query parameters, each known by name; an unknown one is an error that names it.
pub(super) struct Params {
    pairs: Vec<(String, String)>,
}

impl Params {
    pub(super) fn new(pairs: Vec<(String, String)>, known: &[&str]) -> Result<Params, ApiError> {
        if let Some((name, _)) = pairs.iter().find(|(n, _)| !known.contains(&n.as_str())) {
            return Err(ApiError::BadRequest(format!(
                "unknown parameter `{name}`; known: {}",
                known.join(", ")
            )));
        }
        Ok(Params { pairs })
    }

    pub(super) fn get(&self, name: &str) -> Option<&str> {
        self.pairs
            .iter()
            .rev()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }

    /// Comma-separated values of every occurrence of `name`.
    pub(super) fn list(&self, name: &str) -> Vec<String> {
        self.pairs
            .iter()
            .filter(|(n, _)| n == name)
            .flat_map(|(_, v)| v.split(','))
            .map(str::trim)
            .filter(|v| !v.is_empty())
            .map(str::to_owned)
            .collect()
    }

    pub(super) fn time(&self, name: &str, default: u64) -> Result<u64, ApiError> {
        match self.get(name) {
            None | Some("") => Ok(default),
            Some(text) => parse_rfc3339_ms(text).ok_or_else(|| {
                ApiError::BadRequest(format!(
                    "`{name}`: `{text}` is not an RFC 3339 time (e.g. 2024-06-01T00:00:00Z)"
                ))
            }),
        }
    }

    pub(super) fn number<T: std::str::FromStr>(&self, name: &str) -> Result<Option<T>, ApiError> {
        self.get(name)
            .map(|text| {
                text.parse()
                    .map_err(|_| ApiError::BadRequest(format!("`{name}`: `{text}` is not a number")))
            })
            .transpose()
    }
}

const SEVERITIES: [&str; 3] = ["info", "warning", "critical"];

/// The values of parameter `name`, each one of `known` (in any case): an unknown one is an
/// error that names it.
pub(super) fn one_of(name: &str, values: Vec<String>, known: &[&str]) -> Result<Vec<String>, ApiError> {
    values
        .into_iter()
        .map(|v| {
            let lower = v.to_ascii_lowercase();
            if known.contains(&lower.as_str()) {
                Ok(lower)
            } else {
                Err(ApiError::BadRequest(format!(
                    "`{name}`: unknown value `{v}`; known: {}",
                    known.join(", ")
                )))
            }
        })
        .collect()
}

fn severities(values: Vec<String>) -> Result<Vec<String>, ApiError> {
    one_of("severity", values, &SEVERITIES)
}

fn statuses(values: Vec<String>) -> Result<Vec<Status>, ApiError> {
    values
        .into_iter()
        .map(|v| {
            Status::parse(&v).ok_or_else(|| {
                let known: Vec<&str> = Status::ALL.iter().map(|s| s.as_str()).collect();
                ApiError::BadRequest(format!("`status`: unknown value `{v}`; known: {}", known.join(", ")))
            })
        })
        .collect()
}

const LIST_PARAMS: [&str; 13] = [
    "start",
    "end",
    "severity",
    "status",
    "application_id",
    "application",
    "detector_id",
    "detector",
    "score_min",
    "score_max",
    "limit",
    "offset",
    "cursor",
];

/// `GET /api/v1/anomalies`: newest first, filtered, paged by offset or cursor.
pub async fn list_anomalies(
    State(state): State<ApiState>,
    headers: HeaderMap,
    Query(pairs): Query<Vec<(String, String)>>,
) -> Result<Json<Value>, ApiError> {
    authorize(&state, &headers, Scope::Read)?;
    let p = Params::new(pairs, &LIST_PARAMS)?;
    let mut applications = p.list("application_id");
    applications.extend(p.list("application"));
    let mut detectors = p.list("detector_id");
    detectors.extend(p.list("detector"));
    let filter = AnomalyFilter {
        start_ms: p.time("start", 0)?,
        end_ms: p.time("end", u64::MAX >> 1)?,
        severities: severities(p.list("severity"))?,
        statuses: statuses(p.list("status"))?,
        applications,
        detectors,
        score_min: p.number("score_min")?,
        score_max: p.number("score_max")?,
    };
    let limit = page_limit(&p)?;
    let offset: u64 = p.number("offset")?.unwrap_or(0);
    let at = match p.get("cursor") {
        Some(text) if offset > 0 => {
            return Err(ApiError::BadRequest(format!(
                "`cursor` ({text}) and `offset` are exclusive: give one"
            )))
        }
        Some(text) => PageAt::After(
            Cursor::decode(text)
                .ok_or_else(|| ApiError::BadRequest(format!("`cursor`: `{text}` is not a cursor this API gave")))?,
        ),
        None => PageAt::Offset(offset),
    };
    let page = blocking(&state.store, move |s| s.anomalies(&filter, &at, limit)).await?;
    Ok(Json(json!({
        "anomalies": page.anomalies,
        "total": page.total,
        "limit": limit,
        "next_cursor": page.next_cursor.map(|c| c.encode()),
    })))
}

const ALERT_PARAMS: [&str; 8] = [
    "start",
    "end",
    "status",
    "severity",
    "detector_id",
    "receiver",
    "limit",
    "offset",
];

const ALERT_STATUSES: [&str; 2] = ["firing", "resolved"];

/// `GET /api/v1/alerts`: the alert notifications sent, newest first, filtered, paged by offset.
pub async fn list_alerts(
    State(state): State<ApiState>,
    headers: HeaderMap,
    Query(pairs): Query<Vec<(String, String)>>,
) -> Result<Json<Value>, ApiError> {
    authorize(&state, &headers, Scope::Read)?;
    let p = Params::new(pairs, &ALERT_PARAMS)?;
    let statuses = one_of("status", p.list("status"), &ALERT_STATUSES)?;
    let filter = AlertFilter {
        start_ms: p.time("start", 0)?,
        end_ms: p.time("end", u64::MAX >> 1)?,
        statuses,
        severities: severities(p.list("severity"))?,
        detectors: p.list("detector_id"),
        receivers: p.list("receiver"),
    };
    let limit = page_limit(&p)?;
    let offset: u64 = p.number("offset")?.unwrap_or(0);
    let page = blocking(&state.store, move |s| s.alerts(&filter, offset, limit)).await?;
    Ok(Json(json!({
        "alerts": page.alerts,
        "total": page.total,
        "limit": limit,
        "offset": offset,
    })))
}

/// `limit`, 100 unless given, within 1..=[`MAX_LIMIT`].
pub(super) fn page_limit(p: &Params) -> Result<u32, ApiError> {
    let limit: u32 = p.number("limit")?.unwrap_or(100);
    if limit == 0 || limit > MAX_LIMIT {
        return Err(ApiError::BadRequest(format!(
            "`limit`: {limit} is not within 1..={MAX_LIMIT}"
        )));
    }
    Ok(limit)
}

/// Records of one kind behind one anomaly, at most.
const PER_ANOMALY: u32 = 100;

/// `GET /api/v1/anomalies/{id}`: one anomaly, with its audit trail, and the Shield actions and
/// incident requests it led to.
pub async fn get_anomaly(
    State(state): State<ApiState>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    authorize(&state, &headers, Scope::Read)?;
    let wanted = id.clone();
    let (anomaly, audit, actions, incidents) = blocking(&state.store, move |s| {
        let behind = OutcomeFilter {
            end_ms: u64::MAX >> 1,
            about: Some(wanted.clone()),
            ..OutcomeFilter::default()
        };
        Ok((
            s.anomaly(&wanted)?,
            s.audit(&wanted)?,
            s.outcomes(OutcomeKind::Action, &behind, 0, PER_ANOMALY)?,
            s.outcomes(OutcomeKind::Incident, &behind, 0, PER_ANOMALY)?,
        ))
    })
    .await?;
    let mut anomaly = anomaly.ok_or_else(|| ApiError::NotFound(format!("no anomaly with id `{id}`")))?;
    if let Value::Object(map) = &mut anomaly {
        map.insert("history".into(), serde_json::to_value(audit).unwrap_or_default());
        map.insert("shield_actions".into(), Value::Array(actions.records));
        map.insert("incident_requests".into(), Value::Array(incidents.records));
    }
    Ok(Json(anomaly))
}

/// The body of acknowledge and resolve.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ChangeBody {
    /// Who acknowledges.
    #[serde(default)]
    acknowledged_by: Option<String>,
    /// Who resolves.
    #[serde(default)]
    resolved_by: Option<String>,
    /// Why.
    #[serde(default)]
    note: Option<String>,
}

async fn apply(
    state: ApiState,
    headers: HeaderMap,
    id: String,
    change: Change,
    body: Result<Json<ChangeBody>, axum::extract::rejection::JsonRejection>,
) -> Result<Value, ApiError> {
    authorize(&state, &headers, Scope::Admin)?;
    let Json(body) = body.map_err(|e| ApiError::BadRequest(e.body_text()))?;
    let (field, by) = match change {
        Change::Acknowledge => ("acknowledged_by", body.acknowledged_by),
        Change::Resolve => ("resolved_by", body.resolved_by),
    };
    let by = by
        .filter(|b| !b.trim().is_empty())
        .ok_or_else(|| ApiError::BadRequest(format!("`{field}` is required")))?;
    change_anomaly(&state, id, change, by, body.note).await
}

/// How long a change may take to come back from the anomaly-events stream.
const APPLY_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);

/// A person's lifecycle change, as REST and GraphQL both make it: checked against the anomaly
/// as stored here, published, and applied when the feed reads it back, in the stream's order,
/// as every replica applies it. Returns the anomaly as it then is.
pub(crate) async fn change_anomaly(
    state: &ApiState,
    id: String,
    change: Change,
    by: String,
    note: Option<String>,
) -> Result<Value, ApiError> {
    let now = (state.clock)();
    let wanted = id.clone();
    let from = blocking(&state.store, move |s| s.status(&wanted))
        .await?
        .ok_or_else(|| ApiError::NotFound(format!("no anomaly with id `{id}`")))?;
    check(from, &change).map_err(|refused| ApiError::Conflict(format!("anomaly `{id}`: {refused}")))?;
    let event = LifecycleEvent::by_person(&id, change, from, &by, note, now);
    let outcome = state.live.expect(&event.id);
    let publish = Arc::clone(&state.publish);
    let published = event.clone();
    let sent = tokio::task::spawn_blocking(move || publish(&published))
        .await
        .map_err(|e| ApiError::Internal(e.to_string()))?;
    if let Err(e) = sent {
        state.live.forget(&event.id);
        return Err(ApiError::Unavailable(format!("the change could not be published: {e}")));
    }
    let applied = match tokio::time::timeout(APPLY_TIMEOUT, outcome).await {
        Ok(Ok(applied)) => applied,
        _ => {
            state.live.forget(&event.id);
            return Err(ApiError::Unavailable(format!(
                "the change was published but not applied here within {} s; it applies when the stream is read",
                APPLY_TIMEOUT.as_secs()
            )));
        }
    };
    match applied {
        Applied::Changed(_) | Applied::Duplicate => {
            let wanted = id.clone();
            Ok(blocking(&state.store, move |s| s.anomaly(&wanted))
                .await?
                .unwrap_or(Value::Null))
        }
        Applied::Refused(refused) => Err(ApiError::Conflict(format!("anomaly `{id}`: {refused}"))),
        Applied::Waiting => Err(ApiError::NotFound(format!("anomaly `{id}` is no longer stored"))),
    }
}

/// `POST /api/v1/anomalies/{id}/acknowledge {acknowledged_by, note}`.
pub async fn acknowledge(
    State(state): State<ApiState>,
    headers: HeaderMap,
    Path(id): Path<String>,
    body: Result<Json<ChangeBody>, axum::extract::rejection::JsonRejection>,
) -> Result<Json<Value>, ApiError> {
    apply(state, headers, id, Change::Acknowledge, body).await.map(Json)
}

/// `POST /api/v1/anomalies/{id}/resolve {resolved_by, note}`.
pub async fn resolve(
    State(state): State<ApiState>,
    headers: HeaderMap,
    Path(id): Path<String>,
    body: Result<Json<ChangeBody>, axum::extract::rejection::JsonRejection>,
) -> Result<Json<Value>, ApiError> {
    apply(state, headers, id, Change::Resolve, body).await.map(Json)
}

/// `GET /api/v1/statistics?start&end&group_by=detector_id,severity`.
pub async fn statistics(
    State(state): State<ApiState>,
    headers: HeaderMap,
    Query(pairs): Query<Vec<(String, String)>>,
) -> Result<Json<Value>, ApiError> {
    authorize(&state, &headers, Scope::Read)?;
    let p = Params::new(pairs, &["start", "end", "group_by"])?;
    let (start, end) = (p.time("start", 0)?, p.time("end", u64::MAX >> 1)?);
    let group_by = p
        .list("group_by")
        .iter()
        .map(|g| {
            GroupBy::parse(g).ok_or_else(|| {
                ApiError::BadRequest(format!(
                    "`group_by`: unknown value `{g}`; known: detector_id, severity, application_id, detector_type"
                ))
            })
        })
        .collect::<Result<Vec<_>, _>>()?;
    let names: Vec<&'static str> = group_by.iter().map(|g| g.as_str()).collect();
    let stats = blocking(&state.store, move |s| s.statistics(start, end, &group_by)).await?;
    let groups: Vec<Value> = stats
        .groups
        .iter()
        .map(|g| {
            let mut row = serde_json::Map::new();
            for (name, value) in names.iter().zip(&g.key) {
                row.insert((*name).to_owned(), Value::String(value.clone()));
            }
            row.insert("count".into(), json!(g.count));
            row.insert("average_score".into(), json!(g.average_score));
            Value::Object(row)
        })
        .collect();
    Ok(Json(json!({
        "start": format_rfc3339_ms(start),
        "end": format_rfc3339_ms(end.min(253_402_300_799_000)),
        "total_anomalies": stats.total_anomalies,
        "average_score": stats.average_score,
        "mttr_seconds": stats.mttr_seconds,
        "groups": groups,
        "top_affected_entities": stats
            .top_entities
            .iter()
            .map(|(entity, count)| json!({"entity": entity, "count": count}))
            .collect::<Vec<_>>(),
    })))
}

/// `GET /api/v1/detectors`: the job's detectors as configured.
pub async fn detectors(State(state): State<ApiState>, headers: HeaderMap) -> Result<Json<Value>, ApiError> {
    authorize(&state, &headers, Scope::Read)?;
    Ok(Json(json!({ "detectors": *state.detectors })))
}

/// The body of `POST /api/v1/metrics/query`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MetricsBody {
    metrics: Vec<String>,
    start: String,
    end: String,
    #[serde(default = "default_aggregation")]
    aggregation: String,
    #[serde(default = "default_granularity")]
    granularity: String,
    #[serde(default)]
    dimensions: Vec<DimensionFilter>,
}

fn default_aggregation() -> String {
    "avg".into()
}

fn default_granularity() -> String {
    "5m".into()
}

/// Parses an RFC 3339 body field.
fn body_time(name: &str, text: &str) -> Result<u64, ApiError> {
    parse_rfc3339_ms(text).ok_or_else(|| {
        ApiError::BadRequest(format!(
            "`{name}`: `{text}` is not an RFC 3339 time (e.g. 2024-06-01T00:00:00Z)"
        ))
    })
}

/// `POST /api/v1/metrics/query {metrics, start, end, aggregation, granularity}`.
pub async fn metrics_query(
    State(state): State<ApiState>,
    headers: HeaderMap,
    body: Result<Json<MetricsBody>, axum::extract::rejection::JsonRejection>,
) -> Result<Json<Value>, ApiError> {
    authorize(&state, &headers, Scope::Read)?;
    let Json(body) = body.map_err(|e| ApiError::BadRequest(e.body_text()))?;
    let query = MetricsQuery::parse(
        &body.metrics,
        body_time("start", &body.start)?,
        body_time("end", &body.end)?,
        &body.aggregation,
        &body.granularity,
    )
    .and_then(|q| q.with_dimensions(&body.dimensions))
    .map_err(|BadQuery(m)| ApiError::BadRequest(m))?;
    let series = blocking(&state.store, move |s| metrics::query(s, &query)).await?;
    Ok(Json(json!({ "series": series })))
}

fn openmetrics(registry: &prometheus_client::registry::Registry) -> axum::response::Response {
    use axum::response::IntoResponse;
    (
        [(axum::http::header::CONTENT_TYPE, crate::exporter::CONTENT_TYPE)],
        crate::exporter::render(registry),
    )
        .into_response()
}

/// `GET /metrics`: Prometheus, in OpenMetrics text (a read key when keys are configured).
pub async fn prometheus(
    State(state): State<ApiState>,
    headers: HeaderMap,
) -> Result<axum::response::Response, ApiError> {
    authorize(&state, &headers, Scope::Read)?;
    Ok(openmetrics(&state.metrics))
}

/// `GET /metrics` of `run --metrics`, which serves nothing else.
pub async fn prometheus_only(
    State((registry, keys)): State<(Arc<prometheus_client::registry::Registry>, crate::auth::Keys)>,
    headers: HeaderMap,
) -> Result<axum::response::Response, ApiError> {
    authorize_with(&keys, &headers, Scope::Read)?;
    Ok(openmetrics(&registry))
}
