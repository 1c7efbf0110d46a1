//! Records that could not be processed, with the reason and the original bytes.

use serde::{Deserialize, Serialize};

/// Why a record was dead-lettered.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Reason {
    /// Not valid JSON, or truncated.
    MalformedJson,
    /// Not valid UTF-8.
    InvalidUtf8,
    /// A required field is absent.
    MissingField,
    /// A field has the wrong type or an impossible value (negative, NaN, unknown event type...).
    InvalidField,
    /// Larger than the configured record limit.
    TooLarge,
    /// Timestamp outside the accepted range.
    TimestampOutOfRange,
    /// Arrived after the watermark had passed its event time.
    Late,
    /// Stamped further ahead of the wall clock than `job.max_future` (live sources).
    TimestampInFuture,
    /// So far ahead of its partition's clock that, had it been believed, it would have made
    /// the records around it late; the records after it did not follow it.
    TimestampJump,
    /// An action delivery given up on: the receiver refused it, or every attempt failed.
    DeliveryFailed,
}

impl Reason {
    /// All reasons, for summaries.
    pub const ALL: [Reason; 10] = [
        Reason::MalformedJson,
        Reason::InvalidUtf8,
        Reason::MissingField,
        Reason::InvalidField,
        Reason::TooLarge,
        Reason::TimestampOutOfRange,
        Reason::Late,
        Reason::TimestampInFuture,
        Reason::TimestampJump,
        Reason::DeliveryFailed,
    ];

    /// Snake-case name, as serialized.
    pub fn as_str(self) -> &'static str {
        match self {
            Reason::MalformedJson => "malformed_json",
            Reason::InvalidUtf8 => "invalid_utf8",
            Reason::MissingField => "missing_field",
            Reason::InvalidField => "invalid_field",
            Reason::TooLarge => "too_large",
            Reason::TimestampOutOfRange => "timestamp_out_of_range",
            Reason::Late => "late",
            Reason::TimestampInFuture => "timestamp_in_future",
            Reason::TimestampJump => "timestamp_jump",
            Reason::DeliveryFailed => "delivery_failed",
        }
    }
}

/// Where a record was read: a file line, or a topic partition offset. (Fields absent for
/// a source are `null`, not omitted: records cross processes in bincode, which has no
/// notion of a missing field.)
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Position {
    /// Source name, e.g. `file:trace.jsonl` or `kafka:llm-telemetry`.
    pub source: String,
    /// 1-based line number in a file.
    #[serde(default)]
    pub line: Option<u64>,
    /// Kafka partition.
    #[serde(default)]
    pub partition: Option<i32>,
    /// Kafka offset.
    #[serde(default)]
    pub offset: Option<i64>,
}

/// A rejected record. Nothing is dropped silently: every rejection becomes one of these.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct DeadLetter {
    /// Deterministic id: hash of position and reason.
    pub id: String,
    /// Machine-readable reason.
    pub reason: Reason,
    /// Human-readable detail, e.g. the parser's message.
    pub detail: String,
    /// Where the record was read.
    pub position: Position,
    /// Size of the original record in bytes.
    pub original_len: usize,
    /// The original record, truncated, when it is valid UTF-8.
    #[serde(default)]
    pub original: Option<String>,
    /// The original record, truncated and base64-encoded, when it is not valid UTF-8.
    #[serde(default)]
    pub original_base64: Option<String>,
}

impl DeadLetter {
    /// Builds a dead letter, keeping at most `keep` bytes of `bytes` (`original_len` may be larger
    /// when the reader already truncated an oversized record).
    pub fn new(
        reason: Reason,
        detail: String,
        position: Position,
        bytes: &[u8],
        original_len: usize,
        keep: usize,
    ) -> Self {
        let cut = &bytes[..bytes.len().min(keep)];
        let (original, original_base64) = match std::str::from_utf8(cut) {
            Ok(s) => (Some(s.to_owned()), None),
            // A cut in the middle of a multi-byte character is still text.
            Err(e) if e.error_len().is_none() => (
                Some(String::from_utf8_lossy(&cut[..e.valid_up_to()]).into_owned()),
                None,
            ),
            Err(_) => (None, Some(base64(cut))),
        };
        let id = crate::hash::stable_id(&[
            position.source.as_bytes(),
            &position.line.unwrap_or(0).to_le_bytes(),
            &position.partition.unwrap_or(-1).to_le_bytes(),
            &position.offset.unwrap_or(-1).to_le_bytes(),
            reason.as_str().as_bytes(),
        ]);
        DeadLetter {
            id,
            reason,
            detail,
            position,
            original_len,
            original,
            original_base64,
        }
    }
}

fn base64(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for chunk in bytes.chunks(3) {
        let b = [chunk[0], *chunk.get(1).unwrap_or(&0), *chunk.get(2).unwrap_or(&0)];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(ALPHABET[((n >> (18 - 6 * i)) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64_matches_rfc4648_vectors() {
        for (i, o) in [
            ("", ""),
            ("f", "Zg=="),
            ("fo", "Zm8="),
            ("foo", "Zm9v"),
            ("foobar", "Zm9vYmFy"),
        ] {
            assert_eq!(base64(i.as_bytes()), o);
        }
    }

    #[test]
    fn keeps_text_readable_and_binary_encoded() {
        let p = Position::default();
        let d = DeadLetter::new(Reason::MalformedJson, String::new(), p.clone(), b"{\"a\":", 5, 3);
        assert_eq!(d.original.as_deref(), Some("{\"a"));
        let d = DeadLetter::new(Reason::InvalidUtf8, String::new(), p, &[0xff, 0xfe, b'a'], 3, 100);
        assert_eq!(d.original_base64.as_deref(), Some("//5h"));
    }
}
