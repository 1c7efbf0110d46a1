//! The HTTP server: routes, shared state, and a runtime of its own.

mod dashboard;
mod error;
pub mod graphql;
mod outcomes;
pub mod rest;

pub use error::ApiError;

use std::net::SocketAddr;
use std::sync::Arc;

use axum::routing::{get, post};
use axum::Router;
use sentinel_connectors::http::server::HttpServer;
use serde_json::Value;

use crate::auth::Keys;
use crate::lifecycle::LifecycleEvent;
use crate::live::Live;
use crate::store::Store;

/// Publishes a lifecycle change made through the API to the anomaly-events stream, which the
/// feed reads back and applies. It may block (a broker's acknowledgement): it runs off the
/// server's threads.
pub type Publish = Arc<dyn Fn(&LifecycleEvent) -> Result<(), String> + Send + Sync>;

/// What a detector raised on test data.
#[derive(Clone, Debug, Default)]
pub struct DetectorTest {
    /// Events in the test data.
    pub events: u64,
    /// The anomalies of that detector, as the job writes them.
    pub anomalies: Vec<Value>,
}

/// Runs one detector of the job over test events (GraphQL's `testDetector`): the detector id
/// and the test data as given. It runs off the server's threads, and may take a while.
pub type TestDetector = Arc<dyn Fn(&str, Value) -> Result<DetectorTest, ApiError> + Send + Sync>;

/// What every handler shares.
#[derive(Clone)]
pub struct ApiState {
    /// The store.
    pub store: Arc<dyn Store>,
    /// Accepted API keys.
    pub keys: Keys,
    /// The detectors as configured, for `/api/v1/detectors`.
    pub detectors: Arc<Vec<Value>>,
    /// Publishes lifecycle changes.
    pub publish: Publish,
    /// Wall clock, ms since the epoch (a parameter, so tests can fix it).
    pub clock: fn() -> u64,
    /// Where the store has got, for subscriptions.
    pub live: Live,
    /// Runs a detector on test data; `None` where the job's detectors are not at hand.
    pub test_detector: Option<TestDetector>,
    /// What `/metrics` exports.
    pub metrics: Arc<prometheus_client::registry::Registry>,
}

/// The request's `Authorization` header, if it is text.
pub(crate) fn authorization(headers: &axum::http::HeaderMap) -> Option<&str> {
    headers
        .get(axum::http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
}

/// Milliseconds since the epoch, now.
pub fn wall_clock_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

/// The routes.
pub fn router(state: ApiState) -> Router {
    let schema = graphql::schema(state.clone());
    let graphql = Router::new()
        .route("/graphql", get(graphql::websocket).post(graphql::http))
        .with_state((state.clone(), schema));
    Router::new()
        .route("/api/v1/anomalies", get(rest::list_anomalies))
        .route("/api/v1/anomalies/{id}", get(rest::get_anomaly))
        .route("/api/v1/anomalies/{id}/acknowledge", post(rest::acknowledge))
        .route("/api/v1/anomalies/{id}/resolve", post(rest::resolve))
        .route("/api/v1/alerts", get(rest::list_alerts))
        .route("/api/v1/statistics", get(rest::statistics))
        .route("/api/v1/metrics/query", post(rest::metrics_query))
        .route("/api/v1/detectors", get(rest::detectors))
        .route("/metrics", get(rest::prometheus))
        .merge(outcomes::routes())
        .with_state(state)
        .merge(graphql)
        .merge(dashboard::routes())
        .fallback(|| async { ApiError::NotFound("no such endpoint".into()) })
}

/// A running server.
pub struct Server {
    /// Where it listens (the port resolved when 0 was asked).
    pub addr: SocketAddr,
    server: HttpServer,
}

impl Server {
    /// Binds `listen` and serves on a runtime of its own. Without API keys only a loopback
    /// address is accepted: an open API is never exposed by accident.
    pub fn start(listen: SocketAddr, state: ApiState) -> Result<Server, String> {
        let open = state.keys.is_open();
        Server::serve(listen, router(state), open)
    }

    /// Serves `/metrics` alone (`run --metrics`), with `keys` as the API does.
    pub fn metrics_only(
        listen: SocketAddr,
        registry: Arc<prometheus_client::registry::Registry>,
        keys: Keys,
    ) -> Result<Server, String> {
        let open = keys.is_open();
        let app = Router::new()
            .route("/metrics", get(rest::prometheus_only))
            .with_state((registry, keys));
        Server::serve(listen, app, open)
    }

    fn serve(listen: SocketAddr, app: Router, open: bool) -> Result<Server, String> {
        if open && !listen.ip().is_loopback() {
            return Err(format!(
                "serve: {listen} is not a loopback address and no API key is configured (serve.api_keys): \
                 listen on 127.0.0.1, or configure keys"
            ));
        }
        let server = HttpServer::start(listen, app, "serve")?;
        if open {
            tracing::warn!(addr = %server.addr, "serve: no API keys configured, listening on loopback only");
        }
        Ok(Server {
            addr: server.addr,
            server,
        })
    }

    /// Stops accepting, lets requests in flight finish, and waits.
    pub fn stop(self) {
        self.server.stop();
    }
}
