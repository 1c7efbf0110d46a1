//! The compact, owned form of an event that flows between operators once the raw text is gone.

use serde::{Deserialize, Serialize};

use super::event::EventType;

/// The entity names an event carries, packed into one allocation.
///
/// ```
/// use sentinel_dataflows::model::{EntityKeys, KeyField};
/// let keys = EntityKeys::new(["e-1", "chat", "acme", "gpt-4o", "u-7", "s-1"]).unwrap();
/// assert_eq!(keys.get(KeyField::Application), "chat");
/// assert_eq!(keys.get(KeyField::Session), "s-1");
/// ```
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct EntityKeys {
    text: Box<str>,
    ends: [u16; KeyField::COUNT],
}

/// Which entity name to read from [`EntityKeys`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[repr(usize)]
pub enum KeyField {
    /// The producer's event id.
    EventId = 0,
    /// `application_id`.
    Application = 1,
    /// `tenant_id`.
    Tenant = 2,
    /// `data.model`.
    Model = 3,
    /// `metadata.user_id`.
    User = 4,
    /// `metadata.session_id`.
    Session = 5,
}

impl KeyField {
    /// Number of fields.
    pub const COUNT: usize = 6;
}

impl EntityKeys {
    /// Packs the six names, in [`KeyField`] order. Fails if they exceed 64 KiB together.
    pub fn new(parts: [&str; KeyField::COUNT]) -> Option<Self> {
        let total: usize = parts.iter().map(|p| p.len()).sum();
        if total > u16::MAX as usize {
            return None;
        }
        let mut text = String::with_capacity(total);
        let mut ends = [0u16; KeyField::COUNT];
        for (i, p) in parts.iter().enumerate() {
            text.push_str(p);
            ends[i] = text.len() as u16;
        }
        Some(EntityKeys {
            text: text.into_boxed_str(),
            ends,
        })
    }

    /// One entity name; empty when the event did not carry it.
    #[inline]
    pub fn get(&self, field: KeyField) -> &str {
        let i = field as usize;
        let start = if i == 0 { 0 } else { self.ends[i - 1] as usize };
        &self.text[start..self.ends[i] as usize]
    }
}

/// The numeric facts of one event plus its entity names: what windows and detectors need.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct MetricEvent {
    /// Event time, epoch ms.
    pub timestamp_ms: u64,
    /// Event type.
    pub event_type: EventType,
    /// The call failed (`llm.error`, or a response whose status is not a success).
    pub is_error: bool,
    /// Input tokens.
    pub prompt_tokens: u32,
    /// Output tokens.
    pub completion_tokens: u32,
    /// Total tokens.
    pub total_tokens: u32,
    /// Call latency in ms; NaN when not reported.
    pub latency_ms: f32,
    /// Call cost.
    pub cost: f64,
    /// Entity names.
    pub keys: EntityKeys,
    /// When the source read the record ([`crate::operators::stats::monotonic_ns`]); for latency figures.
    pub read_ns: u64,
}

impl MetricEvent {
    /// Whether the event ends a model call, and so counts as one request in the metrics.
    /// `llm.request` events carry the prompt but are not counted, so a call is counted once.
    #[inline]
    pub fn is_call(&self) -> bool {
        matches!(self.event_type, EventType::Response | EventType::Error)
    }
}
