//! Mutations: the lifecycle, and detector tests.

use async_graphql::{Context, ErrorExtensions, Json, Object, ID};
use serde_json::Value;

use super::types::{AnomalyNode, Detector, DetectorTestResult};
use super::{gql_error, require, Shared};
use crate::api::rest::change_anomaly;
use crate::api::ApiError;
use crate::auth::Scope;
use crate::lifecycle::Change;

/// The mutations.
pub struct MutationRoot;

async fn change(
    ctx: &Context<'_>,
    id: ID,
    change: Change,
    by: String,
    note: Option<String>,
) -> async_graphql::Result<AnomalyNode> {
    require(ctx, Scope::Admin)?;
    let shared = ctx.data::<Shared>()?;
    if by.trim().is_empty() {
        return Err(gql_error(ApiError::BadRequest(
            "who makes the change is required".into(),
        )));
    }
    let anomaly = change_anomaly(&shared.api, id.to_string(), change, by, note)
        .await
        .map_err(gql_error)?;
    AnomalyNode::from_value(anomaly)
        .ok_or_else(|| gql_error(ApiError::Internal("the stored anomaly is unreadable".into())))
}

#[Object]
impl MutationRoot {
    /// Acknowledges an anomaly (admin key).
    async fn acknowledge_anomaly(
        &self,
        ctx: &Context<'_>,
        id: ID,
        acknowledged_by: String,
        note: Option<String>,
    ) -> async_graphql::Result<AnomalyNode> {
        change(ctx, id, Change::Acknowledge, acknowledged_by, note).await
    }

    /// Resolves an anomaly (admin key).
    async fn resolve_anomaly(
        &self,
        ctx: &Context<'_>,
        id: ID,
        resolved_by: String,
        note: Option<String>,
    ) -> async_graphql::Result<AnomalyNode> {
        change(ctx, id, Change::Resolve, resolved_by, note).await
    }

    /// Not available yet: detectors are configured at start and need a restart to change.
    async fn update_detector(
        &self,
        ctx: &Context<'_>,
        id: ID,
        #[graphql(name = "config")] _config: Json<Value>,
    ) -> async_graphql::Result<Detector> {
        require(ctx, Scope::Admin)?;
        Err(async_graphql::Error::new(format!(
            "updateDetector `{}`: detector configuration cannot change while the job runs yet; \
             edit the config file and restart the job",
            id.as_str()
        ))
        .extend_with(|_, ext| ext.set("code", "not_supported")))
    }

    /// Runs a detector, with the job's own detector code, over `testData`: a list of
    /// telemetry events (or `{"events": [...]}`). Nothing is stored or acted on.
    async fn test_detector(
        &self,
        ctx: &Context<'_>,
        id: ID,
        test_data: Json<Value>,
    ) -> async_graphql::Result<DetectorTestResult> {
        require(ctx, Scope::Read)?;
        let shared = ctx.data::<Shared>()?;
        let tester = shared.api.test_detector.clone().ok_or_else(|| {
            gql_error(ApiError::BadRequest(
                "testDetector needs the job's detectors: ask the job's own server (run --serve)".into(),
            ))
        })?;
        let detector = id.to_string();
        let started = std::time::Instant::now();
        let wanted = detector.clone();
        let test = tokio::task::spawn_blocking(move || tester(&wanted, test_data.0))
            .await
            .map_err(|e| gql_error(ApiError::Internal(e.to_string())))?
            .map_err(gql_error)?;
        let anomalies: Vec<AnomalyNode> = test.anomalies.into_iter().filter_map(AnomalyNode::from_value).collect();
        Ok(DetectorTestResult {
            detector_id: detector,
            events_tested: test.events as i64,
            detected: !anomalies.is_empty(),
            anomalies,
            duration_ms: started.elapsed().as_secs_f64() * 1e3,
        })
    }
}
