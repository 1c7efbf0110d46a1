//! A real HTTP server on loopback that speaks the providers' wire formats (OpenAI Chat
//! Completions and the Anthropic Messages API), answering from a script or a responder, and
//! recording every request it saw: the judge the tests and `sentinel bench judges` talk to.

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use serde_json::{json, Value};

/// One scripted answer.
#[derive(Clone, Debug)]
pub struct Answer {
    /// HTTP status.
    pub status: u16,
    /// Extra headers.
    pub headers: Vec<(String, String)>,
    /// Body (JSON).
    pub body: String,
    /// Wait before answering.
    pub delay: Duration,
}

impl Answer {
    /// 200 with `body`.
    pub fn ok(body: String) -> Self {
        Answer {
            status: 200,
            headers: vec![],
            body,
            delay: Duration::ZERO,
        }
    }

    /// `status` with `body`.
    pub fn status(status: u16, body: &str) -> Self {
        Answer {
            status,
            headers: vec![],
            body: body.to_owned(),
            delay: Duration::ZERO,
        }
    }

    /// Adds a response header.
    pub fn with_header(mut self, name: &str, value: &str) -> Self {
        self.headers.push((name.to_owned(), value.to_owned()));
        self
    }

    /// Answers after `delay`.
    pub fn after(mut self, delay: Duration) -> Self {
        self.delay = delay;
        self
    }
}

/// What the server saw.
#[derive(Clone, Debug)]
pub struct Seen {
    /// Request path.
    pub path: String,
    /// Request headers, names lowercase.
    pub headers: Vec<(String, String)>,
    /// The JSON body.
    pub body: Value,
}

impl Seen {
    /// A header's value.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(n, _)| n == name).map(|(_, v)| v.as_str())
    }

    /// Every message text of the request (system and user), joined.
    pub fn text(&self) -> String {
        let mut out = String::new();
        if let Some(s) = self.body.get("system").and_then(Value::as_str) {
            out.push_str(s);
        }
        for m in self.body["messages"].as_array().into_iter().flatten() {
            out.push_str(m["content"].as_str().unwrap_or(""));
            out.push('\n');
        }
        out
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

type Responder = dyn Fn(&str, &Value) -> Answer + Send + Sync;

struct Shared {
    script: Mutex<VecDeque<Answer>>,
    responder: Box<Responder>,
    seen: Mutex<Vec<Seen>>,
}

/// The server; it stops when dropped.
pub struct ProviderServer {
    /// Where it listens.
    pub addr: SocketAddr,
    shared: Arc<Shared>,
    _runtime: tokio::runtime::Runtime,
}

impl ProviderServer {
    /// A server answering from its script (see [`ProviderServer::script`]) first, then from
    /// `responder` (given the path and the JSON body).
    pub fn start(responder: impl Fn(&str, &Value) -> Answer + Send + Sync + 'static) -> Self {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .expect("a runtime for the loopback server");
        let shared = Arc::new(Shared {
            script: Mutex::new(VecDeque::new()),
            responder: Box::new(responder),
            seen: Mutex::new(Vec::new()),
        });
        let listener = runtime
            .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
            .expect("a loopback port");
        let addr = listener.local_addr().expect("a bound address");
        let app = axum::Router::new()
            .fallback(axum::routing::post(handle))
            .with_state(Arc::clone(&shared));
        runtime.spawn(async move {
            if let Err(e) = axum::serve(listener, app).await {
                tracing::warn!(error = %e, "loopback provider server stopped");
            }
        });
        ProviderServer {
            addr,
            shared,
            _runtime: runtime,
        }
    }

    /// The API base to give as `llm_base_url`.
    pub fn base_url(&self) -> String {
        format!("http://{}/v1", self.addr)
    }

    /// Queues answers given before the responder's.
    pub fn script(&self, answers: impl IntoIterator<Item = Answer>) {
        lock(&self.shared.script).extend(answers);
    }

    /// Requests seen so far.
    pub fn seen(&self) -> Vec<Seen> {
        lock(&self.shared.seen).clone()
    }
}

async fn handle(State(shared): State<Arc<Shared>>, uri: Uri, headers: HeaderMap, body: Bytes) -> Response {
    let body: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    let path = uri.path().to_owned();
    let answer = {
        let scripted = lock(&shared.script).pop_front();
        scripted.unwrap_or_else(|| (shared.responder)(&path, &body))
    };
    lock(&shared.seen).push(Seen {
        path,
        headers: headers
            .iter()
            .map(|(n, v)| (n.as_str().to_owned(), v.to_str().unwrap_or("").to_owned()))
            .collect(),
        body,
    });
    if !answer.delay.is_zero() {
        tokio::time::sleep(answer.delay).await;
    }
    let status = StatusCode::from_u16(answer.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let mut resp = (status, answer.body).into_response();
    let headers = resp.headers_mut();
    headers.insert("content-type", axum::http::HeaderValue::from_static("application/json"));
    for (n, v) in answer.headers {
        if let (Ok(n), Ok(v)) = (axum::http::HeaderName::from_bytes(n.as_bytes()), v.parse()) {
            headers.insert(n, v);
        }
    }
    resp
}

/// A verdict object.
pub fn verdict(risk: f64, confidence: f64) -> Value {
    json!({
        "risk_score": risk,
        "risk_level": if risk >= 0.8 { "high" } else { "low" },
        "confidence": confidence,
        "threats_detected": if risk >= 0.8 { vec!["instruction override"] } else { vec![] },
        "reasoning": "scripted",
        "recommendations": [],
    })
}

/// A Chat Completions reply whose message content is `content`.
pub fn openai_reply(content: &str, finish_reason: &str) -> String {
    json!({
        "id": "chatcmpl-1",
        "object": "chat.completion",
        "created": 1_700_000_000,
        "model": "judge-model",
        "choices": [{
            "index": 0,
            "message": {"role": "assistant", "content": content, "refusal": null},
            "logprobs": null,
            "finish_reason": finish_reason,
        }],
        "usage": {"prompt_tokens": 300, "completion_tokens": 40, "total_tokens": 340},
    })
    .to_string()
}

/// A Chat Completions refusal.
pub fn openai_refusal() -> String {
    json!({
        "id": "chatcmpl-2",
        "object": "chat.completion",
        "choices": [{
            "index": 0,
            "message": {"role": "assistant", "content": null, "refusal": "I can't help with that."},
            "finish_reason": "stop",
        }],
        "usage": {"prompt_tokens": 300, "completion_tokens": 8, "total_tokens": 308},
    })
    .to_string()
}

/// A Messages reply calling the verdict tool with `input`.
pub fn anthropic_tool_reply(input: Value) -> String {
    json!({
        "id": "msg_01",
        "type": "message",
        "role": "assistant",
        "model": "judge-model",
        "content": [{"type": "tool_use", "id": "toolu_01", "name": "record_verdict", "input": input}],
        "stop_reason": "tool_use",
        "stop_sequence": null,
        "usage": {"input_tokens": 410, "output_tokens": 60},
    })
    .to_string()
}

/// The Messages API's overloaded error (status 529).
pub fn anthropic_overloaded() -> Answer {
    Answer::status(
        529,
        r#"{"type":"error","error":{"type":"overloaded_error","message":"Overloaded"}}"#,
    )
}
