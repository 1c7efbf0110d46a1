//! The HTTP client deliveries use: one reqwest client (connection pool, TLS) on the delivery
//! runtime, and requests in plain types so callers need no reqwest.

use std::time::Duration;

use super::retry::{parse_retry_after, Attempt};

/// HTTP methods deliveries use.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Method {
    /// POST.
    Post,
    /// PATCH.
    Patch,
    /// PUT.
    Put,
}

/// One request.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HttpRequest {
    /// The method.
    pub method: Method,
    /// The URL.
    pub url: String,
    /// Headers, in order (`Content-Type` is set to JSON unless given).
    pub headers: Vec<(String, String)>,
    /// The body.
    pub body: Vec<u8>,
    /// This attempt's timeout, connection included.
    pub timeout: Duration,
}

/// What the receiver answered.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HttpAnswer {
    /// The status code.
    pub status: u16,
    /// `Retry-After`, when given.
    pub retry_after: Option<Duration>,
    /// The body, at most [`ANSWER_KEEP_BYTES`] of it (for statuses and dead letters).
    pub body: String,
}

impl HttpAnswer {
    /// The attempt, for the retry policy.
    pub fn attempt(&self) -> Attempt {
        Attempt::Status {
            code: self.status,
            retry_after: self.retry_after,
        }
    }
}

/// Bytes of an answer's body kept.
pub const ANSWER_KEEP_BYTES: usize = 2048;

/// A pooled client.
#[derive(Clone, Debug)]
pub struct HttpClient {
    client: reqwest::Client,
}

impl HttpClient {
    /// A client with `user_agent`.
    pub fn new(user_agent: &str) -> Result<Self, String> {
        let client = reqwest::Client::builder()
            .user_agent(user_agent)
            .pool_max_idle_per_host(32)
            .build()
            .map_err(|e| format!("cannot build the HTTP client: {e}"))?;
        Ok(HttpClient { client })
    }

    /// Sends one attempt. `Err` is an attempt that got no answer (timeout, no connection),
    /// with the error text.
    pub async fn send(&self, req: &HttpRequest) -> Result<HttpAnswer, (Attempt, String)> {
        let method = match req.method {
            Method::Post => reqwest::Method::POST,
            Method::Patch => reqwest::Method::PATCH,
            Method::Put => reqwest::Method::PUT,
        };
        let mut builder = self
            .client
            .request(method, &req.url)
            .timeout(req.timeout)
            .body(req.body.clone());
        if !req.headers.iter().any(|(k, _)| k.eq_ignore_ascii_case("content-type")) {
            builder = builder.header("content-type", "application/json");
        }
        for (k, v) in &req.headers {
            builder = builder.header(k.as_str(), v.as_str());
        }
        let response = builder.send().await.map_err(|e| {
            let attempt = if e.is_timeout() {
                Attempt::TimedOut
            } else {
                Attempt::Unreachable
            };
            (attempt, error_chain(&e))
        })?;
        let status = response.status().as_u16();
        let retry_after = response
            .headers()
            .get(reqwest::header::RETRY_AFTER)
            .and_then(|v| v.to_str().ok())
            .and_then(parse_retry_after);
        let body = match response.bytes().await {
            Ok(b) => String::from_utf8_lossy(&b[..b.len().min(ANSWER_KEEP_BYTES)]).into_owned(),
            Err(e) if e.is_timeout() => return Err((Attempt::TimedOut, error_chain(&e))),
            Err(e) => return Err((Attempt::Unreachable, error_chain(&e))),
        };
        Ok(HttpAnswer {
            status,
            retry_after,
            body,
        })
    }
}

/// The error and its causes, one line.
fn error_chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        text.push_str(": ");
        text.push_str(&s.to_string());
        source = s.source();
    }
    text
}
