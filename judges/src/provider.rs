//! The providers' wire formats: the request each API takes, and what its reply means.
//!
//! - Anthropic Messages: `POST {base}/messages` with `x-api-key` and `anthropic-version`; the
//!   verdict is forced through a tool whose input schema is the verdict's (`tool_choice`);
//!   usage is `input_tokens` / `output_tokens`.
//! - OpenAI Chat Completions and OpenAI-compatible servers: `POST {base}/chat/completions`
//!   with a bearer key; `response_format` is a strict JSON schema; usage is `prompt_tokens` /
//!   `completion_tokens`.

use std::time::Duration;

use serde_json::{json, Value};

use crate::config::{JudgeConfig, ProviderKind};
use crate::prompts::Prompt;
use crate::verdict;

/// The Messages API version sent.
pub const ANTHROPIC_VERSION: &str = "2023-06-01";
/// The tool an Anthropic judge must call with its verdict.
pub const VERDICT_TOOL: &str = "record_verdict";

/// What a successful call returned.
#[derive(Clone, Debug, PartialEq)]
pub struct Reply {
    /// What the model said.
    pub content: ReplyContent,
    /// Tokens sent.
    pub input_tokens: u32,
    /// Tokens received.
    pub output_tokens: u32,
    /// The reply body, for the journal.
    pub raw: String,
}

/// The substance of a reply.
#[derive(Clone, Debug, PartialEq)]
pub enum ReplyContent {
    /// A structured verdict object (tool input, or a JSON-schema reply).
    Structured(Value),
    /// Free text, to extract a verdict from.
    Text(String),
    /// The model declined.
    Refusal,
    /// Cut at `max_tokens`.
    Truncated,
}

/// Why a call failed.
#[derive(Clone, Debug, PartialEq)]
pub enum CallError {
    /// No answer in time.
    Timeout,
    /// No connection, or it broke.
    Connection(String),
    /// An HTTP error status.
    Status {
        /// The status code.
        code: u16,
        /// The provider's `retry-after`, when given.
        retry_after: Option<Duration>,
        /// The start of the body.
        body: String,
    },
    /// A 2xx body that is not the provider's reply shape.
    Malformed(String),
}

impl CallError {
    /// Whether the failure counts against the breaker and may be retried: timeouts,
    /// connection errors, 5xx, 429 and 529. A 400, 401 or 403 is a configuration error.
    pub fn is_transient(&self) -> bool {
        match self {
            CallError::Timeout | CallError::Connection(_) => true,
            CallError::Status { code, .. } => *code >= 500 || *code == 429,
            CallError::Malformed(_) => false,
        }
    }

    /// The wait the provider asked for.
    pub fn retry_after(&self) -> Option<Duration> {
        match self {
            CallError::Status { retry_after, .. } => *retry_after,
            _ => None,
        }
    }
}

/// The endpoint of `cfg`'s provider.
pub fn endpoint(cfg: &JudgeConfig) -> String {
    let base = cfg.base_url.trim_end_matches('/');
    match cfg.provider {
        ProviderKind::Anthropic => format!("{base}/messages"),
        ProviderKind::OpenAi | ProviderKind::Local => format!("{base}/chat/completions"),
    }
}

/// The request body for `prompt`.
pub fn request_body(cfg: &JudgeConfig, prompt: &Prompt) -> Value {
    match cfg.provider {
        ProviderKind::Anthropic => json!({
            "model": cfg.model,
            "max_tokens": cfg.max_tokens,
            "temperature": cfg.temperature,
            "system": prompt.system,
            "messages": [{"role": "user", "content": prompt.user}],
            "tools": [{
                "name": VERDICT_TOOL,
                "description": "Record the security verdict on the data under review.",
                "input_schema": verdict::schema(),
            }],
            "tool_choice": {"type": "tool", "name": VERDICT_TOOL},
        }),
        ProviderKind::OpenAi | ProviderKind::Local => {
            let limit = if cfg.provider == ProviderKind::OpenAi {
                "max_completion_tokens"
            } else {
                "max_tokens"
            };
            json!({
                "model": cfg.model,
                "temperature": cfg.temperature,
                limit: cfg.max_tokens,
                "messages": [
                    {"role": "system", "content": prompt.system},
                    {"role": "user", "content": prompt.user},
                ],
                "response_format": {
                    "type": "json_schema",
                    "json_schema": {"name": "shadow_agent_verdict", "strict": true, "schema": verdict::schema()},
                },
            })
        }
    }
}

fn tokens(v: &Value, key: &str) -> u32 {
    v.get(key)
        .and_then(Value::as_u64)
        .map_or(0, |n| n.min(u64::from(u32::MAX)) as u32)
}

/// Reads a 2xx reply body.
///
/// ```
/// use sentinel_judges::config::ProviderKind;
/// use sentinel_judges::provider::{parse_reply, ReplyContent};
/// let body = r#"{"choices":[{"message":{"role":"assistant","content":"{}","refusal":null},
///   "finish_reason":"length"}],"usage":{"prompt_tokens":10,"completion_tokens":5}}"#;
/// let r = parse_reply(ProviderKind::OpenAi, body).unwrap();
/// assert_eq!((r.content, r.input_tokens, r.output_tokens), (ReplyContent::Truncated, 10, 5));
/// ```
pub fn parse_reply(provider: ProviderKind, body: &str) -> Result<Reply, CallError> {
    let v: Value = serde_json::from_str(body).map_err(|e| CallError::Malformed(format!("reply is not JSON: {e}")))?;
    let (content, input_tokens, output_tokens) = match provider {
        ProviderKind::Anthropic => {
            let usage = v.get("usage").cloned().unwrap_or(Value::Null);
            let blocks = v
                .get("content")
                .and_then(Value::as_array)
                .ok_or_else(|| CallError::Malformed("no `content` in the Messages reply".into()))?;
            let tool = blocks.iter().find(|b| {
                b.get("type").and_then(Value::as_str) == Some("tool_use")
                    && b.get("name").and_then(Value::as_str) == Some(VERDICT_TOOL)
            });
            let text: String = blocks
                .iter()
                .filter(|b| b.get("type").and_then(Value::as_str) == Some("text"))
                .filter_map(|b| b.get("text").and_then(Value::as_str))
                .collect();
            let content = match (v.get("stop_reason").and_then(Value::as_str), tool) {
                (Some("refusal"), _) => ReplyContent::Refusal,
                (Some("max_tokens"), _) => ReplyContent::Truncated,
                (_, Some(tool)) => ReplyContent::Structured(tool.get("input").cloned().unwrap_or(Value::Null)),
                _ => ReplyContent::Text(text),
            };
            (content, tokens(&usage, "input_tokens"), tokens(&usage, "output_tokens"))
        }
        ProviderKind::OpenAi | ProviderKind::Local => {
            let usage = v.get("usage").cloned().unwrap_or(Value::Null);
            let choice = v
                .get("choices")
                .and_then(|c| c.get(0))
                .ok_or_else(|| CallError::Malformed("no `choices` in the Chat Completions reply".into()))?;
            let message = choice.get("message").cloned().unwrap_or(Value::Null);
            let refused = message
                .get("refusal")
                .and_then(Value::as_str)
                .is_some_and(|r| !r.is_empty());
            let content = match choice.get("finish_reason").and_then(Value::as_str) {
                _ if refused => ReplyContent::Refusal,
                Some("length") => ReplyContent::Truncated,
                Some("content_filter") => ReplyContent::Refusal,
                _ => ReplyContent::Text(message.get("content").and_then(Value::as_str).unwrap_or("").to_owned()),
            };
            (
                content,
                tokens(&usage, "prompt_tokens"),
                tokens(&usage, "completion_tokens"),
            )
        }
    };
    Ok(Reply {
        content,
        input_tokens,
        output_tokens,
        raw: body.to_owned(),
    })
}

/// Reads `retry-after`: seconds (an HTTP date is not worth the parse: treated as absent).
pub fn retry_after(headers: &reqwest::header::HeaderMap) -> Option<Duration> {
    let value = headers.get(reqwest::header::RETRY_AFTER)?.to_str().ok()?;
    value
        .trim()
        .parse::<f64>()
        .ok()
        .filter(|s| s.is_finite() && *s >= 0.0)
        .map(Duration::from_secs_f64)
}

/// One HTTP call, bounded by `timeout`.
pub async fn call(
    client: &reqwest::Client,
    cfg: &JudgeConfig,
    prompt: &Prompt,
    timeout: Duration,
) -> Result<Reply, CallError> {
    let mut req = client
        .post(endpoint(cfg))
        .timeout(timeout)
        .json(&request_body(cfg, prompt));
    req = match cfg.provider {
        ProviderKind::Anthropic => req
            .header("x-api-key", cfg.api_key.as_deref().unwrap_or(""))
            .header("anthropic-version", ANTHROPIC_VERSION),
        ProviderKind::OpenAi | ProviderKind::Local => match &cfg.api_key {
            Some(key) => req.bearer_auth(key),
            None => req,
        },
    };
    let classify = |e: reqwest::Error| {
        if e.is_timeout() {
            CallError::Timeout
        } else {
            CallError::Connection(e.to_string())
        }
    };
    let resp = req.send().await.map_err(classify)?;
    let status = resp.status();
    let after = retry_after(resp.headers());
    let body = resp.text().await.map_err(classify)?;
    if !status.is_success() {
        return Err(CallError::Status {
            code: status.as_u16(),
            retry_after: after,
            body: body.chars().take(300).collect(),
        });
    }
    parse_reply(cfg.provider, &body)
}
