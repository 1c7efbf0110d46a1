//! Decoding and validating one telemetry record.

use serde_json::error::Category;

use super::dead_letter::Reason;
use super::event::{EventType, TelemetryEvent, WireTimestamp};
use super::metric_event::{EntityKeys, MetricEvent};
use crate::time::{parse_rfc3339_ms, MAX_EVENT_MS, MIN_EVENT_MS};

/// Bounds on what a record may contain.
#[derive(Clone, Debug, PartialEq)]
pub struct DecodeLimits {
    /// Largest accepted record, in bytes.
    pub max_event_bytes: usize,
    /// Longest accepted id or entity name (event id, application, tenant, model, user, session).
    pub max_id_bytes: usize,
    /// Largest accepted token count in one field.
    pub max_tokens: u64,
}

impl Default for DecodeLimits {
    fn default() -> Self {
        DecodeLimits {
            max_event_bytes: 1 << 20,
            max_id_bytes: 256,
            max_tokens: 100_000_000,
        }
    }
}

/// Why a record was rejected.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Rejection {
    /// Reason category.
    pub reason: Reason,
    /// Human-readable detail.
    pub detail: String,
}

impl Rejection {
    fn new(reason: Reason, detail: impl Into<String>) -> Self {
        Rejection {
            reason,
            detail: detail.into(),
        }
    }
}

/// A decoded, valid event: the borrowed wire form (for the content guards) and its compact metrics.
#[derive(Debug)]
pub struct DecodedEvent<'a> {
    /// The event as sent, borrowing from the input.
    pub wire: TelemetryEvent<'a>,
    /// Its compact numeric form.
    pub metric: MetricEvent,
}

/// Decodes and validates one record.
///
/// ```
/// use sentinel_dataflows::model::{decode_event, DecodeLimits, Reason};
/// let ok = br#"{"event_id":"e1","timestamp":"2024-05-01T12:00:00Z","event_type":"llm.response",
///              "application_id":"chat","data":{"model":"m","completion_tokens":5,"cost":0.01}}"#;
/// let ev = decode_event(ok, &DecodeLimits::default()).unwrap();
/// assert_eq!(ev.metric.completion_tokens, 5);
/// let bad = br#"{"event_id":"e1","timestamp":"2024-05-01T12:00:00Z","event_type":"llm.response",
///               "application_id":"chat","data":{"completion_tokens":-5}}"#;
/// assert_eq!(decode_event(bad, &DecodeLimits::default()).unwrap_err().reason, Reason::InvalidField);
/// ```
pub fn decode_event<'a>(bytes: &'a [u8], limits: &DecodeLimits) -> Result<DecodedEvent<'a>, Rejection> {
    let wire = parse_event(checked_text(bytes, limits)?)?;
    let metric = validate(&wire, limits)?;
    Ok(DecodedEvent { wire, metric })
}

/// Decodes and validates one record, handing the borrowed event and its metrics to `use_event`
/// in place. The wire form is large (it has a slot for every field), so the hot path borrows it
/// here instead of moving it out.
pub fn decode_with<'a, R>(
    bytes: &'a [u8],
    limits: &DecodeLimits,
    use_event: impl FnOnce(&TelemetryEvent<'a>, MetricEvent) -> R,
) -> Result<R, Rejection> {
    let wire = parse_event(checked_text(bytes, limits)?)?;
    let metric = validate(&wire, limits)?;
    Ok(use_event(&wire, metric))
}

/// Parses one event's JSON: a one-pass fast path for clean events, serde_json for the rest
/// (which also supplies the error messages).
pub fn parse_event(text: &str) -> Result<TelemetryEvent<'_>, Rejection> {
    match super::fast_decode::parse(text) {
        Some(event) => Ok(event),
        None => serde_json::from_str(text).map_err(classify),
    }
}

fn checked_text<'a>(bytes: &'a [u8], limits: &DecodeLimits) -> Result<&'a str, Rejection> {
    if bytes.len() > limits.max_event_bytes {
        return Err(Rejection::new(
            Reason::TooLarge,
            format!("record is {} bytes, limit is {}", bytes.len(), limits.max_event_bytes),
        ));
    }
    // One UTF-8 check over the whole record is cheaper than serde_json's check per string.
    std::str::from_utf8(bytes).map_err(|e| {
        Rejection::new(
            Reason::InvalidUtf8,
            format!("invalid UTF-8 at byte {}", e.valid_up_to()),
        )
    })
}

fn classify(e: serde_json::Error) -> Rejection {
    match e.classify() {
        Category::Data => Rejection::new(Reason::InvalidField, e.to_string()),
        // Grammatical JSON whose number does not fit an f64.
        Category::Syntax if e.to_string().starts_with("number out of range") => {
            Rejection::new(Reason::InvalidField, e.to_string())
        }
        _ => Rejection::new(Reason::MalformedJson, e.to_string()),
    }
}

fn required<'b>(
    value: &'b Option<std::borrow::Cow<'_, str>>,
    name: &str,
    limits: &DecodeLimits,
) -> Result<&'b str, Rejection> {
    match value.as_deref() {
        None => Err(Rejection::new(Reason::MissingField, format!("missing field `{name}`"))),
        Some("") => Err(Rejection::new(Reason::InvalidField, format!("field `{name}` is empty"))),
        Some(v) => bounded(v, name, limits),
    }
}

fn bounded<'b>(v: &'b str, name: &str, limits: &DecodeLimits) -> Result<&'b str, Rejection> {
    if v.len() > limits.max_id_bytes {
        Err(Rejection::new(
            Reason::InvalidField,
            format!("field `{name}` is {} bytes, limit is {}", v.len(), limits.max_id_bytes),
        ))
    } else {
        Ok(v)
    }
}

fn tokens(v: Option<u64>, name: &str, limits: &DecodeLimits) -> Result<u32, Rejection> {
    match v {
        None => Ok(0),
        Some(t) if t <= limits.max_tokens && t <= u32::MAX as u64 => Ok(t as u32),
        Some(t) => Err(Rejection::new(
            Reason::InvalidField,
            format!("`data.{name}` = {t} exceeds {}", limits.max_tokens),
        )),
    }
}

fn non_negative(v: Option<f64>, name: &str) -> Result<Option<f64>, Rejection> {
    match v {
        Some(x) if !x.is_finite() || x < 0.0 => Err(Rejection::new(
            Reason::InvalidField,
            format!("`data.{name}` = {x} is not a finite non-negative number"),
        )),
        other => Ok(other),
    }
}

fn timestamp_ms(ts: Option<WireTimestamp<'_>>) -> Result<u64, Rejection> {
    let ms = match ts {
        None => return Err(Rejection::new(Reason::MissingField, "missing field `timestamp`")),
        Some(WireTimestamp::Millis(ms)) => ms,
        Some(WireTimestamp::Text(s)) => parse_rfc3339_ms(s)
            .ok_or_else(|| Rejection::new(Reason::InvalidField, format!("`timestamp` {s:?} is not RFC 3339")))?,
        Some(WireTimestamp::Escaped) => {
            return Err(Rejection::new(Reason::InvalidField, "`timestamp` is not RFC 3339"))
        }
        Some(WireTimestamp::Invalid(x)) => {
            return Err(Rejection::new(
                Reason::InvalidField,
                format!("`timestamp` {x} is not a non-negative integer of epoch ms"),
            ))
        }
    };
    if !(MIN_EVENT_MS..MAX_EVENT_MS).contains(&ms) {
        return Err(Rejection::new(
            Reason::TimestampOutOfRange,
            format!("`timestamp` {ms} ms is outside 2000-01-01..2100-01-01"),
        ));
    }
    Ok(ms)
}

fn event_type(v: Option<&str>) -> Result<EventType, Rejection> {
    match v {
        None => Err(Rejection::new(Reason::MissingField, "missing field `event_type`")),
        Some("llm.request") => Ok(EventType::Request),
        Some("llm.response") => Ok(EventType::Response),
        Some("llm.error") => Ok(EventType::Error),
        Some("agent.tool_call") => Ok(EventType::ToolCall),
        Some(other) => Err(Rejection::new(
            Reason::InvalidField,
            format!("`event_type` {other:?} is not one of llm.request, llm.response, llm.error, agent.tool_call"),
        )),
    }
}

fn is_error_status(status: &str) -> bool {
    ["error", "failed", "failure", "timeout"]
        .iter()
        .any(|s| status.eq_ignore_ascii_case(s))
}

fn validate(ev: &TelemetryEvent<'_>, limits: &DecodeLimits) -> Result<MetricEvent, Rejection> {
    let event_id = required(&ev.event_id, "event_id", limits)?;
    let timestamp_ms = timestamp_ms(ev.timestamp)?;
    let event_type = event_type(ev.event_type.as_deref())?;
    let application = required(&ev.application_id, "application_id", limits)?;
    let tenant = bounded(ev.tenant_id.as_deref().unwrap_or(""), "tenant_id", limits)?;
    let (user, session) = match &ev.metadata {
        Some(m) => (
            bounded(m.user_id.as_deref().unwrap_or(""), "metadata.user_id", limits)?,
            bounded(m.session_id.as_deref().unwrap_or(""), "metadata.session_id", limits)?,
        ),
        None => ("", ""),
    };
    let empty = Default::default();
    let data = ev.data.as_ref().unwrap_or(&empty);
    let model = data.model.as_deref().or(data.response_model.as_deref()).unwrap_or("");
    let model = bounded(model, "data.model", limits)?;
    let prompt_tokens = tokens(data.prompt_tokens, "prompt_tokens", limits)?;
    let completion_tokens = tokens(data.completion_tokens, "completion_tokens", limits)?;
    let total_tokens = match data.total_tokens {
        None => prompt_tokens.saturating_add(completion_tokens),
        some => tokens(some, "total_tokens", limits)?,
    };
    let latency_ms = non_negative(data.latency_ms, "latency_ms")?;
    let cost = non_negative(data.cost, "cost")?.unwrap_or(0.0);
    if event_type == EventType::ToolCall {
        let has_name = data
            .tool
            .as_ref()
            .and_then(|t| t.name.as_deref())
            .or(data.tool_name.as_deref())
            .is_some_and(|n| !n.is_empty());
        if !has_name {
            return Err(Rejection::new(
                Reason::MissingField,
                "missing field `data.tool.name` on agent.tool_call",
            ));
        }
    }
    let is_error = event_type == EventType::Error || data.status.as_deref().is_some_and(is_error_status);
    let keys = EntityKeys::new([event_id, application, tenant, model, user, session])
        .ok_or_else(|| Rejection::new(Reason::InvalidField, "entity names too long"))?;
    Ok(MetricEvent {
        timestamp_ms,
        event_type,
        is_error,
        prompt_tokens,
        completion_tokens,
        total_tokens,
        latency_ms: latency_ms.map_or(f32::NAN, |l| l as f32),
        cost,
        keys,
        read_ns: 0,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::KeyField;

    fn limits() -> DecodeLimits {
        DecodeLimits::default()
    }

    fn reason(bytes: &[u8]) -> Reason {
        decode_event(bytes, &limits()).unwrap_err().reason
    }

    const GOOD: &str = r#"{"event_id":"e1","timestamp":"2024-05-01T12:00:00Z","event_type":"llm.response","application_id":"chat","tenant_id":"acme","data":{"model":"gpt-4o","prompt_tokens":10,"completion_tokens":5,"latency_ms":120.5,"cost":0.002,"status":"success"},"metadata":{"user_id":"u1","session_id":"s1"}}"#;

    #[test]
    fn decodes_a_seed_shaped_event_without_copying_strings() {
        let ev = decode_event(GOOD.as_bytes(), &limits()).unwrap();
        assert!(matches!(
            ev.wire.application_id,
            Some(std::borrow::Cow::Borrowed("chat"))
        ));
        let m = ev.metric;
        assert_eq!(m.total_tokens, 15);
        assert_eq!(m.keys.get(KeyField::User), "u1");
        assert_eq!(m.keys.get(KeyField::Model), "gpt-4o");
        assert!(!m.is_error && m.is_call());
    }

    #[test]
    fn accepts_opentelemetry_genai_aliases() {
        let otel = r#"{"event_id":"e2","timestamp":1714564800000,"event_type":"llm.response","application_id":"chat","attributes":{"gen_ai.request.model":"claude","gen_ai.usage.input_tokens":7,"gen_ai.usage.output_tokens":3},"metadata":{"enduser.id":"u9","gen_ai.conversation.id":"c1"}}"#;
        let m = decode_event(otel.as_bytes(), &limits()).unwrap().metric;
        assert_eq!((m.prompt_tokens, m.completion_tokens, m.total_tokens), (7, 3, 10));
        assert_eq!(m.keys.get(KeyField::Model), "claude");
        assert_eq!(m.keys.get(KeyField::Session), "c1");
    }

    #[test]
    fn rejects_each_kind_of_bad_input_with_its_reason() {
        assert_eq!(reason(&GOOD.as_bytes()[..40]), Reason::MalformedJson);
        assert_eq!(
            reason(
                GOOD.replace("\"prompt_tokens\":10", "\"prompt_tokens\":\"10\"")
                    .as_bytes()
            ),
            Reason::InvalidField
        );
        assert_eq!(reason(GOOD.replace("120.5", "NaN").as_bytes()), Reason::MalformedJson);
        assert_eq!(reason(GOOD.replace("120.5", "1e999").as_bytes()), Reason::InvalidField);
        assert_eq!(
            reason(
                GOOD.replace("\"completion_tokens\":5", "\"completion_tokens\":-5")
                    .as_bytes()
            ),
            Reason::InvalidField
        );
        assert_eq!(reason(GOOD.replace("0.002", "-0.5").as_bytes()), Reason::InvalidField);
        assert_eq!(
            reason(GOOD.replace("\"timestamp\":\"2024-05-01T12:00:00Z\",", "").as_bytes()),
            Reason::MissingField
        );
        assert_eq!(
            reason(GOOD.replace("2024-05-01T12:00:00Z", "1999-05-01T12:00:00Z").as_bytes()),
            Reason::TimestampOutOfRange
        );
        assert_eq!(
            reason(GOOD.replace("2024-05-01T12:00:00Z", "tuesday").as_bytes()),
            Reason::InvalidField
        );
        assert_eq!(
            reason(GOOD.replace("llm.response", "llm.unknown").as_bytes()),
            Reason::InvalidField
        );
        assert_eq!(
            reason(GOOD.replace("\"application_id\":\"chat\",", "").as_bytes()),
            Reason::MissingField
        );
        let mut utf8 = GOOD.as_bytes().to_vec();
        let at = GOOD.find("chat").unwrap();
        utf8[at] = 0xff;
        assert_eq!(reason(&utf8), Reason::InvalidUtf8);
        let huge = format!("{{\"pad\":\"{}\"}}", "x".repeat(2 << 20));
        assert_eq!(reason(huge.as_bytes()), Reason::TooLarge);
        assert_eq!(reason(b"[1,2,3]"), Reason::InvalidField);
    }

    #[test]
    fn tool_calls_need_a_tool_name() {
        let t = GOOD.replace("llm.response", "agent.tool_call");
        assert_eq!(reason(t.as_bytes()), Reason::MissingField);
        let t = t.replace(
            "\"status\":\"success\"",
            "\"tool\":{\"name\":\"search\",\"args\":{\"q\":1}}",
        );
        assert!(decode_event(t.as_bytes(), &limits()).is_ok());
    }
}
