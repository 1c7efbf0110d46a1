//! The wire shape of a telemetry event, decoded in place from the input buffer.
//!
//! Strings borrow from the input (`Cow::Borrowed`) unless they contain JSON escapes, so decoding
//! an event costs no allocation per field. Field names follow the integration seed; the
//! OpenTelemetry GenAI attribute names are accepted as aliases.

use std::borrow::Cow;
use std::fmt;

use serde::de::{self, Deserializer, Visitor};
use serde::Deserialize;
use serde_json::value::RawValue;

/// What an event reports.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize)]
pub enum EventType {
    /// A prompt sent to a model (`llm.request`).
    #[serde(rename = "llm.request")]
    Request,
    /// A completed model call (`llm.response`).
    #[serde(rename = "llm.response")]
    Response,
    /// A failed model call (`llm.error`).
    #[serde(rename = "llm.error")]
    Error,
    /// An agent invoking a tool (`agent.tool_call`).
    #[serde(rename = "agent.tool_call")]
    ToolCall,
}

impl EventType {
    /// The wire name, e.g. `llm.response`.
    pub fn as_str(self) -> &'static str {
        match self {
            EventType::Request => "llm.request",
            EventType::Response => "llm.response",
            EventType::Error => "llm.error",
            EventType::ToolCall => "agent.tool_call",
        }
    }
}

/// A timestamp as sent: an RFC 3339 string, or an integer of epoch milliseconds.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum WireTimestamp<'a> {
    /// `"2024-05-01T12:00:00.000Z"`.
    Text(&'a str),
    /// Epoch milliseconds.
    Millis(u64),
    /// A number that is not a non-negative integer (negative, fractional, NaN...).
    Invalid(f64),
    /// A string with escapes, which no valid timestamp needs.
    Escaped,
}

impl<'de: 'a, 'a> Deserialize<'de> for WireTimestamp<'a> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = WireTimestamp<'de>;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("an RFC 3339 string or epoch milliseconds")
            }
            fn visit_borrowed_str<E: de::Error>(self, v: &'de str) -> Result<Self::Value, E> {
                Ok(WireTimestamp::Text(v))
            }
            fn visit_str<E: de::Error>(self, _v: &str) -> Result<Self::Value, E> {
                Ok(WireTimestamp::Escaped)
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<Self::Value, E> {
                Ok(WireTimestamp::Millis(v))
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<Self::Value, E> {
                Ok(WireTimestamp::Invalid(v as f64))
            }
            fn visit_f64<E: de::Error>(self, v: f64) -> Result<Self::Value, E> {
                Ok(WireTimestamp::Invalid(v))
            }
        }
        d.deserialize_any(V)
    }
}

/// Where an event came from.
#[derive(Debug, Default, Deserialize)]
pub struct EventSource<'a> {
    /// Emitting service.
    #[serde(borrow, default, deserialize_with = "borrowed_str")]
    pub service: Option<Cow<'a, str>>,
    /// Emitting host.
    #[serde(borrow, default, deserialize_with = "borrowed_str")]
    pub host: Option<Cow<'a, str>>,
}

/// An agent tool invocation.
#[derive(Debug, Default, Deserialize)]
pub struct ToolCall<'a> {
    /// Tool name.
    #[serde(borrow, default, deserialize_with = "borrowed_str")]
    pub name: Option<Cow<'a, str>>,
    /// Arguments, kept as raw JSON.
    #[serde(borrow, default)]
    pub args: Option<&'a RawValue>,
}

/// The payload of an event. OpenTelemetry GenAI attribute names are accepted as aliases.
#[derive(Debug, Default, Deserialize)]
pub struct EventData<'a> {
    /// Requested model.
    #[serde(borrow, default, deserialize_with = "borrowed_str", alias = "gen_ai.request.model")]
    pub model: Option<Cow<'a, str>>,
    /// Model that answered, if reported separately.
    #[serde(borrow, default, deserialize_with = "borrowed_str", rename = "gen_ai.response.model")]
    pub response_model: Option<Cow<'a, str>>,
    /// Prompt text.
    #[serde(borrow, default, deserialize_with = "borrowed_str", alias = "gen_ai.prompt")]
    pub prompt: Option<Cow<'a, str>>,
    /// Response text.
    #[serde(borrow, default, deserialize_with = "borrowed_str", alias = "gen_ai.completion")]
    pub response: Option<Cow<'a, str>>,
    /// Input tokens.
    #[serde(default, alias = "gen_ai.usage.input_tokens", alias = "gen_ai.usage.prompt_tokens")]
    pub prompt_tokens: Option<u64>,
    /// Output tokens.
    #[serde(
        default,
        alias = "gen_ai.usage.output_tokens",
        alias = "gen_ai.usage.completion_tokens"
    )]
    pub completion_tokens: Option<u64>,
    /// Total tokens; defaults to prompt + completion.
    #[serde(default, alias = "gen_ai.usage.total_tokens")]
    pub total_tokens: Option<u64>,
    /// Wall time of the call.
    #[serde(default)]
    pub latency_ms: Option<f64>,
    /// Cost in the account's currency.
    #[serde(default, alias = "gen_ai.usage.cost")]
    pub cost: Option<f64>,
    /// `success`, `error`, ...
    #[serde(borrow, default, deserialize_with = "borrowed_str")]
    pub status: Option<Cow<'a, str>>,
    /// `stop`, `length`, `tool_calls`, ...
    #[serde(borrow, default, deserialize_with = "borrowed_str")]
    pub finish_reason: Option<Cow<'a, str>>,
    /// Tool call details for `agent.tool_call`.
    #[serde(borrow, default)]
    pub tool: Option<ToolCall<'a>>,
    /// Flat OpenTelemetry spelling of the tool name.
    #[serde(borrow, default, deserialize_with = "borrowed_str", rename = "gen_ai.tool.name")]
    pub tool_name: Option<Cow<'a, str>>,
}

/// Who the event is about.
#[derive(Debug, Default, Deserialize)]
pub struct EventMetadata<'a> {
    /// End user.
    #[serde(borrow, default, deserialize_with = "borrowed_str", alias = "enduser.id")]
    pub user_id: Option<Cow<'a, str>>,
    /// Conversation or agent session.
    #[serde(
        borrow,
        default,
        deserialize_with = "borrowed_str",
        alias = "session.id",
        alias = "gen_ai.conversation.id"
    )]
    pub session_id: Option<Cow<'a, str>>,
}

/// One telemetry event as sent by an application, borrowing from the input buffer.
#[derive(Debug, Deserialize)]
pub struct TelemetryEvent<'a> {
    /// Unique id, chosen by the producer.
    #[serde(borrow, default, deserialize_with = "borrowed_str")]
    pub event_id: Option<Cow<'a, str>>,
    /// Event time.
    #[serde(borrow, default)]
    pub timestamp: Option<WireTimestamp<'a>>,
    /// Event type, checked during validation.
    #[serde(borrow, default, deserialize_with = "borrowed_str")]
    pub event_type: Option<Cow<'a, str>>,
    /// Application that made the call.
    #[serde(borrow, default, deserialize_with = "borrowed_str")]
    pub application_id: Option<Cow<'a, str>>,
    /// Tenant (customer) of the application.
    #[serde(borrow, default, deserialize_with = "borrowed_str")]
    pub tenant_id: Option<Cow<'a, str>>,
    /// Emitting service and host.
    #[serde(borrow, default)]
    pub source: Option<EventSource<'a>>,
    /// Payload. `attributes` is accepted for OpenTelemetry-shaped events.
    #[serde(borrow, default, alias = "attributes")]
    pub data: Option<EventData<'a>>,
    /// User and session.
    #[serde(borrow, default)]
    pub metadata: Option<EventMetadata<'a>>,
}

/// Deserializes an optional string, borrowing it from the input when it has no escapes.
/// (serde's derive only borrows a bare `Cow<str>`, not one inside an `Option`.)
fn borrowed_str<'de: 'a, 'a, D: Deserializer<'de>>(d: D) -> Result<Option<Cow<'a, str>>, D::Error> {
    struct V;
    impl<'de> Visitor<'de> for V {
        type Value = Option<Cow<'de, str>>;
        fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
            f.write_str("a string")
        }
        fn visit_borrowed_str<E: de::Error>(self, v: &'de str) -> Result<Self::Value, E> {
            Ok(Some(Cow::Borrowed(v)))
        }
        fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
            Ok(Some(Cow::Owned(v.to_owned())))
        }
        fn visit_string<E: de::Error>(self, v: String) -> Result<Self::Value, E> {
            Ok(Some(Cow::Owned(v)))
        }
        fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
            Ok(None)
        }
        fn visit_none<E: de::Error>(self) -> Result<Self::Value, E> {
            Ok(None)
        }
        fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
            d.deserialize_str(V)
        }
    }
    d.deserialize_option(V)
}
