//! Real receivers on loopback, for the tests and `sentinel bench actions`: an HTTP server that
//! takes webhooks (generic, Slack, PagerDuty Events v2) and speaks the seed's incident-manager
//! API, and a Shield gRPC server. Each dedupes on the idempotency key the way a careful
//! receiver does, and records what it saw, so a test can count effects, not requests.

use std::collections::{BTreeMap, HashMap};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{patch, post};
use sentinel_connectors::grpc::shield::{ActionRequest, ActionResponse, ShieldAction, ShieldActionServer};
use sentinel_connectors::http::signing::WebhookSecret;
use serde_json::{json, Value};

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// One request a receiver answered.
#[derive(Clone, Debug, PartialEq)]
pub struct Received {
    /// The path, e.g. `/hooks/ops` or `/api/v1/incidents/INC-1/comments`.
    pub path: String,
    /// `Idempotency-Key`.
    pub key: String,
    /// The body.
    pub body: Value,
    /// The answer's status.
    pub status: u16,
    /// The Standard Webhooks signature checked out (`None`: unsigned or no secret known).
    pub signature_ok: Option<bool>,
    /// Its arrival, from the server's start.
    pub at: Duration,
}

/// How the HTTP receiver misbehaves.
#[derive(Clone, Debug, Default)]
pub struct Faults {
    /// Answer 503 to every `n`th webhook (1-based); 0 never.
    pub fail_every: u64,
    /// Wait this long before answering.
    pub delay: Duration,
    /// Paths that always get this status (e.g. `/hooks/broken` → 400).
    pub fixed: BTreeMap<String, u16>,
}

#[derive(Default)]
struct HttpShared {
    faults: Mutex<Faults>,
    secret: Option<WebhookSecret>,
    arrivals: AtomicU64,
    received: Mutex<Vec<Received>>,
    /// Incidents by Idempotency-Key of their create, and their state.
    incidents: Mutex<HashMap<String, String>>,
    states: Mutex<BTreeMap<String, String>>,
    started: Mutex<Option<std::time::Instant>>,
}

/// The HTTP receiver; it stops when dropped.
pub struct ReceiverServer {
    /// Where it listens.
    pub addr: SocketAddr,
    shared: Arc<HttpShared>,
    _runtime: tokio::runtime::Runtime,
}

impl ReceiverServer {
    /// Starts one; signatures are checked with `secret` when given.
    pub fn start(faults: Faults, secret: Option<WebhookSecret>) -> Self {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .expect("a runtime for the loopback receiver");
        let shared = Arc::new(HttpShared {
            faults: Mutex::new(faults),
            secret,
            started: Mutex::new(Some(std::time::Instant::now())),
            ..HttpShared::default()
        });
        let listener = runtime
            .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
            .expect("a loopback port");
        let addr = listener.local_addr().expect("a bound address");
        let app = axum::Router::new()
            .route("/api/v1/incidents", post(create_incident))
            .route("/api/v1/incidents/{id}", patch(update_incident))
            .route("/api/v1/incidents/{id}/comments", post(comment_incident))
            .fallback(post(webhook))
            .with_state(Arc::clone(&shared));
        runtime.spawn(async move {
            if let Err(e) = axum::serve(listener, app).await {
                tracing::warn!(error = %e, "loopback receiver stopped");
            }
        });
        ReceiverServer {
            addr,
            shared,
            _runtime: runtime,
        }
    }

    /// `http://addr`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Changes the faults from now on.
    pub fn set_faults(&self, faults: Faults) {
        *lock(&self.shared.faults) = faults;
    }

    /// Every request answered so far.
    pub fn received(&self) -> Vec<Received> {
        lock(&self.shared.received).clone()
    }

    /// Per path prefix, the distinct idempotency keys answered 2xx: the effects.
    pub fn effects(&self, prefix: &str) -> BTreeMap<String, usize> {
        let mut out = BTreeMap::new();
        for r in lock(&self.shared.received).iter() {
            if r.path.starts_with(prefix) && (200..300).contains(&r.status) {
                *out.entry(r.key.clone()).or_default() += 1;
            }
        }
        out
    }

    /// Each incident's state: `open` or `resolved`, by id.
    pub fn incidents(&self) -> BTreeMap<String, String> {
        lock(&self.shared.states).clone()
    }
}

fn elapsed(shared: &HttpShared) -> Duration {
    lock(&shared.started).map_or(Duration::ZERO, |s| s.elapsed())
}

fn header(headers: &HeaderMap, name: &str) -> String {
    headers
        .get(name)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned()
}

fn record(shared: &HttpShared, path: String, headers: &HeaderMap, body: &Bytes, status: u16) {
    let signature_ok = match (&shared.secret, headers.get("webhook-signature")) {
        (Some(secret), Some(sig)) => {
            let ts = header(headers, "webhook-timestamp").parse().unwrap_or(0);
            Some(secret.verify(
                &header(headers, "webhook-id"),
                ts,
                body,
                sig.to_str().unwrap_or_default(),
            ))
        }
        _ => None,
    };
    lock(&shared.received).push(Received {
        path,
        key: header(headers, "idempotency-key"),
        body: serde_json::from_slice(body).unwrap_or(Value::Null),
        status,
        signature_ok,
        at: elapsed(shared),
    });
}

async fn webhook(
    State(shared): State<Arc<HttpShared>>,
    uri: axum::http::Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let faults = lock(&shared.faults).clone();
    if !faults.delay.is_zero() {
        tokio::time::sleep(faults.delay).await;
    }
    let path = uri.path().to_owned();
    let n = shared.arrivals.fetch_add(1, Relaxed) + 1;
    let status = match faults.fixed.get(&path) {
        Some(s) => *s,
        None if faults.fail_every > 0 && n.is_multiple_of(faults.fail_every) => 503,
        None => 200,
    };
    record(&shared, path.clone(), &headers, &body, status);
    let answer = if path.ends_with("/v2/enqueue") && status < 300 {
        (
            StatusCode::ACCEPTED,
            json!({"status": "success", "message": "Event processed"}).to_string(),
        )
    } else {
        (
            StatusCode::from_u16(status).unwrap_or(StatusCode::OK),
            json!({"status": status}).to_string(),
        )
    };
    answer.into_response()
}

async fn create_incident(State(shared): State<Arc<HttpShared>>, headers: HeaderMap, body: Bytes) -> Response {
    let key = header(&headers, "idempotency-key");
    let id = {
        let mut incidents = lock(&shared.incidents);
        let next = incidents.len() + 1;
        incidents.entry(key).or_insert_with(|| format!("INC-{next}")).clone()
    };
    lock(&shared.states).entry(id.clone()).or_insert_with(|| "open".into());
    record(&shared, "/api/v1/incidents".into(), &headers, &body, 201);
    (StatusCode::CREATED, json!({"incident_id": id}).to_string()).into_response()
}

async fn update_incident(
    State(shared): State<Arc<HttpShared>>,
    Path(id): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let known = lock(&shared.states).contains_key(&id);
    let status = if known { 200 } else { 404 };
    if known {
        let value: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
        if let Some(s) = value["status"].as_str() {
            lock(&shared.states).insert(id.clone(), s.to_owned());
        }
    }
    record(&shared, format!("/api/v1/incidents/{id}"), &headers, &body, status);
    (StatusCode::from_u16(status).unwrap_or(StatusCode::OK), "{}").into_response()
}

async fn comment_incident(
    State(shared): State<Arc<HttpShared>>,
    Path(id): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let status = if lock(&shared.states).contains_key(&id) {
        201
    } else {
        404
    };
    record(
        &shared,
        format!("/api/v1/incidents/{id}/comments"),
        &headers,
        &body,
        status,
    );
    (StatusCode::from_u16(status).unwrap_or(StatusCode::OK), "{}").into_response()
}

/// One enforcement Shield received.
#[derive(Clone, Debug, PartialEq)]
pub struct Enforced {
    /// The request.
    pub request: ActionRequest,
    /// It repeated an `(action_id, type)` already carried out: no second effect.
    pub duplicate: bool,
}

#[derive(Default)]
struct ShieldShared {
    seen: Mutex<Vec<Enforced>>,
    fail_every: u64,
    calls: AtomicU64,
}

struct ShieldService(Arc<ShieldShared>);

#[tonic::async_trait]
impl ShieldAction for ShieldService {
    async fn enforce_action(
        &self,
        request: tonic::Request<ActionRequest>,
    ) -> Result<tonic::Response<ActionResponse>, tonic::Status> {
        let n = self.0.calls.fetch_add(1, Relaxed) + 1;
        if self.0.fail_every > 0 && n.is_multiple_of(self.0.fail_every) {
            return Err(tonic::Status::unavailable("shield is busy"));
        }
        let request = request.into_inner();
        let mut seen = lock(&self.0.seen);
        let duplicate = seen
            .iter()
            .any(|e| e.request.action_id == request.action_id && e.request.r#type == request.r#type);
        seen.push(Enforced { request, duplicate });
        Ok(tonic::Response::new(ActionResponse {
            success: true,
            message: if duplicate { "already applied" } else { "applied" }.into(),
        }))
    }
}

/// A Shield gRPC server; it stops when dropped.
pub struct ShieldServer {
    /// Where it listens.
    pub addr: SocketAddr,
    shared: Arc<ShieldShared>,
    _runtime: tokio::runtime::Runtime,
}

impl ShieldServer {
    /// Starts one that answers `UNAVAILABLE` to every `fail_every`th call (0: never).
    pub fn start(fail_every: u64) -> Self {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .expect("a runtime for the loopback Shield");
        let shared = Arc::new(ShieldShared {
            fail_every,
            ..ShieldShared::default()
        });
        let listener = runtime
            .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
            .expect("a loopback port");
        let addr = listener.local_addr().expect("a bound address");
        let service = ShieldActionServer::new(ShieldService(Arc::clone(&shared)));
        runtime.spawn(async move {
            let incoming = tokio_stream::wrappers::TcpListenerStream::new(listener);
            if let Err(e) = tonic::transport::Server::builder()
                .add_service(service)
                .serve_with_incoming(incoming)
                .await
            {
                tracing::warn!(error = %e, "loopback Shield stopped");
            }
        });
        ShieldServer {
            addr,
            shared,
            _runtime: runtime,
        }
    }

    /// Every call carried out or repeated.
    pub fn seen(&self) -> Vec<Enforced> {
        lock(&self.shared.seen).clone()
    }
}
