//! Hand-written JSON for the record written once per event (the decision), where serde_json's
//! escaping of every key and its many small writes cost more than the rest of the decision
//! path (see BENCHMARKS.md). Constant text goes out in one copy; a string is escaped only when
//! it holds a byte that needs it, and then by serde_json itself, so the output is byte for
//! byte what serde_json writes (the decision tests compare the two).

use serde::Serialize;

/// Appends constant JSON text (keys and punctuation).
#[inline]
pub(crate) fn raw(out: &mut Vec<u8>, text: &str) {
    out.extend_from_slice(text.as_bytes());
}

/// Appends a JSON string.
#[inline]
pub(crate) fn string(out: &mut Vec<u8>, s: &str) {
    if s.bytes().all(|b| b >= 0x20 && b != b'"' && b != b'\\') {
        out.reserve(s.len() + 2);
        out.push(b'"');
        out.extend_from_slice(s.as_bytes());
        out.push(b'"');
    } else {
        // Writing into a Vec cannot fail.
        let _ = serde_json::to_writer(&mut *out, s);
    }
}

/// Appends an `f32` as serde_json writes it (`null` when not finite).
#[inline]
pub(crate) fn float(out: &mut Vec<u8>, x: f32) {
    if x == 0.0 && x.is_sign_positive() {
        raw(out, "0.0");
    } else {
        let _ = serde_json::to_writer(&mut *out, &x);
    }
}

/// Appends `true` or `false`.
#[inline]
pub(crate) fn boolean(out: &mut Vec<u8>, b: bool) {
    raw(out, if b { "true" } else { "false" });
}

/// Appends a list: `[]` without a call into serde when it is empty, as it nearly always is.
#[inline]
pub(crate) fn list<T: Serialize>(out: &mut Vec<u8>, items: &[T]) -> serde_json::Result<()> {
    if items.is_empty() {
        raw(out, "[]");
        Ok(())
    } else {
        serde_json::to_writer(&mut *out, items)
    }
}
