//! REST over the job's other outcomes: the Shield actions, incident requests, decisions and
//! judge verdicts the store keeps, listed by kind, and one request's decision with its verdicts.

use axum::extract::{Path, Query, State};
use axum::http::HeaderMap;
use axum::routing::get;
use axum::{Json, Router};
use serde_json::{json, Map, Value};

use super::error::ApiError;
use super::rest::{authorize, blocking, one_of, page_limit, Params};
use super::ApiState;
use crate::auth::Scope;
use crate::store::{OutcomeFilter, OutcomeKind};

/// `GET /api/v1/{actions,incidents,decisions,judgements}`, and `GET /api/v1/decisions/{event_id}`.
pub fn routes() -> Router<ApiState> {
    let mut router = Router::new().route("/api/v1/decisions/{event_id}", get(decision));
    for kind in OutcomeKind::ALL {
        router = router.route(
            &format!("/api/v1/{}", kind.plural()),
            get(
                move |State(state): State<ApiState>, headers: HeaderMap, Query(pairs): Query<Vec<(String, String)>>| {
                    list(kind, state, headers, pairs)
                },
            ),
        );
    }
    router
}

/// One kind's records, newest first, filtered by time, what they are about, label and subject,
/// paged by offset.
async fn list(
    kind: OutcomeKind,
    state: ApiState,
    headers: HeaderMap,
    pairs: Vec<(String, String)>,
) -> Result<Json<Value>, ApiError> {
    authorize(&state, &headers, Scope::Read)?;
    let (label, labels) = kind.label();
    let mut known = vec!["start", "end", "limit", "offset", kind.about(), label];
    known.extend(kind.subject());
    let p = Params::new(pairs, &known)?;
    let filter = OutcomeFilter {
        start_ms: p.time("start", 0)?,
        end_ms: p.time("end", u64::MAX >> 1)?,
        about: p.get(kind.about()).map(str::to_owned),
        subjects: kind.subject().map(|s| p.list(s)).unwrap_or_default(),
        labels: one_of(label, p.list(label), labels)?,
    };
    let limit = page_limit(&p)?;
    let offset: u64 = p.number("offset")?.unwrap_or(0);
    let page = blocking(&state.store, move |s| s.outcomes(kind, &filter, offset, limit)).await?;
    let mut body = Map::new();
    body.insert(kind.plural().into(), Value::Array(page.records));
    body.insert("total".into(), json!(page.total));
    body.insert("limit".into(), json!(limit));
    body.insert("offset".into(), json!(offset));
    Ok(Json(Value::Object(body)))
}

/// Verdicts one event has at most: one per agent.
const AGENTS: u32 = 3;

/// `GET /api/v1/decisions/{event_id}`: the decision on one request and the judges' verdicts
/// it used, `{event_id, decision, judgements}`.
async fn decision(
    State(state): State<ApiState>,
    headers: HeaderMap,
    Path(event_id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    authorize(&state, &headers, Scope::Read)?;
    let about = OutcomeFilter {
        end_ms: u64::MAX >> 1,
        about: Some(event_id.clone()),
        ..OutcomeFilter::default()
    };
    let (decision, judgements) = blocking(&state.store, move |s| {
        Ok((
            s.outcomes(OutcomeKind::Decision, &about, 0, 1)?,
            s.outcomes(OutcomeKind::Judgement, &about, 0, AGENTS)?,
        ))
    })
    .await?;
    if decision.total == 0 && judgements.total == 0 {
        return Err(ApiError::NotFound(format!(
            "no decision stored for event `{event_id}` (the store keeps decisions at the warn tier and \
             above unless serve.decisions is `all`)"
        )));
    }
    Ok(Json(json!({
        "event_id": event_id,
        "decision": decision.records.into_iter().next(),
        "judgements": judgements.records,
    })))
}
