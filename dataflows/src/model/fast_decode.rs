//! A fast path for the common event: clean JSON (no escapes, no duplicate fields, the expected
//! types) parsed straight into [`TelemetryEvent`] by one pass over the bytes.
//!
//! It is conservative by construction: on anything it does not fully understand it returns
//! `None`, and the caller parses with serde_json, which then decides, with its own error
//! messages. So it may decline valid input, but must never accept input serde_json rejects, nor
//! read a different value. A property test holds it to that against serde_json.

use std::borrow::Cow;

use serde_json::value::RawValue;

use super::event::{EventData, EventMetadata, EventSource, TelemetryEvent, ToolCall, WireTimestamp};

const MAX_DEPTH: usize = 64;

struct Cursor<'a> {
    text: &'a str,
    bytes: &'a [u8],
    at: usize,
}

type Fast<T> = Option<T>;

impl<'a> Cursor<'a> {
    #[inline]
    fn ws(&mut self) {
        while let Some(b' ' | b'\t' | b'\n' | b'\r') = self.bytes.get(self.at) {
            self.at += 1;
        }
    }

    #[inline]
    fn peek(&mut self) -> Fast<u8> {
        self.ws();
        self.bytes.get(self.at).copied()
    }

    #[inline]
    fn eat(&mut self, b: u8) -> Fast<()> {
        (self.peek()? == b).then(|| self.at += 1)
    }

    /// A string without escapes or control characters, borrowed.
    #[inline]
    fn string(&mut self) -> Fast<&'a str> {
        self.eat(b'"')?;
        let start = self.at;
        let end = start + special_byte(&self.bytes[start..])?;
        if self.bytes[end] != b'"' {
            return None; // an escape or a control character: serde_json's business
        }
        self.at = end + 1;
        self.text.get(start..end)
    }

    /// The slice of one JSON number, validated against the grammar.
    fn number(&mut self) -> Fast<&'a str> {
        self.ws();
        let b = self.bytes;
        let start = self.at;
        let mut i = start;
        if b.get(i) == Some(&b'-') {
            i += 1;
        }
        match b.get(i)? {
            b'0' => i += 1,
            b'1'..=b'9' => {
                while b.get(i).is_some_and(u8::is_ascii_digit) {
                    i += 1;
                }
            }
            _ => return None,
        }
        if b.get(i) == Some(&b'.') {
            i += 1;
            let digits = i;
            while b.get(i).is_some_and(u8::is_ascii_digit) {
                i += 1;
            }
            if i == digits {
                return None;
            }
        }
        if let Some(b'e' | b'E') = b.get(i) {
            i += 1;
            if let Some(b'+' | b'-') = b.get(i) {
                i += 1;
            }
            let digits = i;
            while b.get(i).is_some_and(u8::is_ascii_digit) {
                i += 1;
            }
            if i == digits {
                return None;
            }
        }
        self.at = i;
        self.text.get(start..i)
    }

    fn literal(&mut self, word: &str) -> Fast<()> {
        self.ws();
        self.bytes[self.at..]
            .starts_with(word.as_bytes())
            .then(|| self.at += word.len())
    }

    /// `null` (returns true) or not (returns false, consuming nothing).
    fn null(&mut self) -> bool {
        self.ws();
        if self.bytes[self.at..].starts_with(b"null") {
            self.at += 4;
            true
        } else {
            false
        }
    }

    /// Validates and skips any value.
    fn skip(&mut self, depth: usize) -> Fast<()> {
        if depth > MAX_DEPTH {
            return None;
        }
        match self.peek()? {
            b'"' => self.string().map(drop),
            b'{' => {
                self.at += 1;
                if self.peek()? == b'}' {
                    self.at += 1;
                    return Some(());
                }
                loop {
                    self.string()?;
                    self.eat(b':')?;
                    self.skip(depth + 1)?;
                    match self.peek()? {
                        b',' => self.at += 1,
                        b'}' => {
                            self.at += 1;
                            return Some(());
                        }
                        _ => return None,
                    }
                }
            }
            b'[' => {
                self.at += 1;
                if self.peek()? == b']' {
                    self.at += 1;
                    return Some(());
                }
                loop {
                    self.skip(depth + 1)?;
                    match self.peek()? {
                        b',' => self.at += 1,
                        b']' => {
                            self.at += 1;
                            return Some(());
                        }
                        _ => return None,
                    }
                }
            }
            b't' => self.literal("true"),
            b'f' => self.literal("false"),
            b'n' => self.literal("null"),
            _ => self.number().map(drop),
        }
    }

    /// Calls `field(key, cursor)` for each member of an object; `field` must consume the value.
    fn object(&mut self, mut field: impl FnMut(&'a str, &mut Self) -> Fast<()>) -> Fast<()> {
        self.eat(b'{')?;
        if self.peek()? == b'}' {
            self.at += 1;
            return Some(());
        }
        loop {
            let key = self.string()?;
            self.eat(b':')?;
            field(key, self)?;
            match self.peek()? {
                b',' => self.at += 1,
                b'}' => {
                    self.at += 1;
                    return Some(());
                }
                _ => return None,
            }
        }
    }

    /// Reads an optional member once: `null` is `None`; a repeated member declines (serde_json
    /// reports duplicates), as does a value `read` does not accept.
    fn member<T>(
        &mut self,
        slot: &mut Option<T>,
        seen: &mut bool,
        read: impl FnOnce(&mut Self) -> Fast<T>,
    ) -> Fast<()> {
        if std::mem::replace(seen, true) {
            return None;
        }
        *slot = if self.null() { None } else { Some(read(self)?) };
        Some(())
    }

    fn text(&mut self) -> Fast<Cow<'a, str>> {
        self.string().map(Cow::Borrowed)
    }

    /// A plain non-negative integer; serde_json decides everything else (and rejects it for counts).
    fn plain_u64(&mut self) -> Fast<u64> {
        let n = self.number()?;
        if !n.bytes().all(|c| c.is_ascii_digit()) {
            return None;
        }
        n.parse().ok()
    }

    /// Any finite number; serde_json reports "number out of range" for the rest.
    fn finite_f64(&mut self) -> Fast<f64> {
        let v: f64 = self.number()?.parse().ok()?;
        v.is_finite().then_some(v)
    }
}

/// Index of the first `"`, `\\` or control character (< 0x20): sixteen bytes at a time with
/// SSE2 (part of every x86-64 CPU), then eight at a time.
#[inline]
fn special_byte(bytes: &[u8]) -> Option<usize> {
    #[cfg(target_arch = "x86_64")]
    {
        let mut i = 0;
        while i + 16 <= bytes.len() {
            let mask = sse2_specials(&bytes[i..i + 16]);
            if mask != 0 {
                return Some(i + mask.trailing_zeros() as usize);
            }
            i += 16;
        }
        special_byte_swar(&bytes[i..]).map(|p| i + p)
    }
    #[cfg(not(target_arch = "x86_64"))]
    special_byte_swar(bytes)
}

/// Bit `k` set when byte `k` of the 16 is `"`, `\\` or below 0x20.
#[cfg(target_arch = "x86_64")]
#[inline]
fn sse2_specials(chunk: &[u8]) -> u32 {
    use std::arch::x86_64::*;
    assert!(chunk.len() >= 16);
    // SAFETY: SSE2 is baseline on x86-64; the load is unaligned and reads 16 bytes in bounds.
    unsafe {
        let x = _mm_loadu_si128(chunk.as_ptr().cast());
        let below_space = _mm_cmpeq_epi8(_mm_max_epu8(x, _mm_set1_epi8(0x1F)), _mm_set1_epi8(0x1F));
        let quote = _mm_cmpeq_epi8(x, _mm_set1_epi8(b'"' as i8));
        let backslash = _mm_cmpeq_epi8(x, _mm_set1_epi8(b'\\' as i8));
        _mm_movemask_epi8(_mm_or_si128(_mm_or_si128(quote, backslash), below_space)) as u32
    }
}

/// [`special_byte`], eight bytes at a time in a `u64`.
#[inline]
fn special_byte_swar(bytes: &[u8]) -> Option<usize> {
    const ONES: u64 = 0x0101_0101_0101_0101;
    const HIGH: u64 = 0x8080_8080_8080_8080;
    let mut i = 0;
    while i + 8 <= bytes.len() {
        let mut chunk = [0u8; 8];
        chunk.copy_from_slice(&bytes[i..i + 8]);
        let x = u64::from_le_bytes(chunk);
        let zero_byte = |v: u64| v.wrapping_sub(ONES) & !v & HIGH;
        // Bytes below 0x20, equal to '"', or equal to '\\'. The lowest flag is always exact.
        let flags =
            (x.wrapping_sub(ONES * 0x20) & !x & HIGH) | zero_byte(x ^ (ONES * 0x22)) | zero_byte(x ^ (ONES * 0x5C));
        if flags != 0 {
            return Some(i + (flags.trailing_zeros() / 8) as usize);
        }
        i += 8;
    }
    bytes[i..]
        .iter()
        .position(|&b| b == b'"' || b == b'\\' || b < 0x20)
        .map(|p| i + p)
}

/// Parses `text` if it is a clean event; `None` means "ask serde_json".
pub(crate) fn parse(text: &str) -> Option<TelemetryEvent<'_>> {
    let mut c = Cursor {
        text,
        bytes: text.as_bytes(),
        at: 0,
    };
    let mut ev = TelemetryEvent {
        event_id: None,
        timestamp: None,
        event_type: None,
        application_id: None,
        tenant_id: None,
        source: None,
        data: None,
        metadata: None,
    };
    let mut seen = [false; 8];
    c.object(|key, c| match key {
        "event_id" => c.member(&mut ev.event_id, &mut seen[0], Cursor::text),
        "timestamp" => c.member(&mut ev.timestamp, &mut seen[1], |c| match c.peek()? {
            b'"' => c.string().map(WireTimestamp::Text),
            _ => c.plain_u64().map(WireTimestamp::Millis),
        }),
        "event_type" => c.member(&mut ev.event_type, &mut seen[2], Cursor::text),
        "application_id" => c.member(&mut ev.application_id, &mut seen[3], Cursor::text),
        "tenant_id" => c.member(&mut ev.tenant_id, &mut seen[4], Cursor::text),
        "source" => c.member(&mut ev.source, &mut seen[5], source),
        "data" | "attributes" => c.member(&mut ev.data, &mut seen[6], data),
        "metadata" => c.member(&mut ev.metadata, &mut seen[7], metadata),
        _ => c.skip(1),
    })?;
    c.ws();
    (c.at == c.bytes.len()).then_some(ev)
}

fn source<'a>(c: &mut Cursor<'a>) -> Fast<EventSource<'a>> {
    let mut s = EventSource::default();
    let mut seen = [false; 2];
    c.object(|key, c| match key {
        "service" => c.member(&mut s.service, &mut seen[0], Cursor::text),
        "host" => c.member(&mut s.host, &mut seen[1], Cursor::text),
        _ => c.skip(2),
    })?;
    Some(s)
}

fn metadata<'a>(c: &mut Cursor<'a>) -> Fast<EventMetadata<'a>> {
    let mut m = EventMetadata::default();
    let mut seen = [false; 2];
    c.object(|key, c| match key {
        "user_id" | "enduser.id" => c.member(&mut m.user_id, &mut seen[0], Cursor::text),
        "session_id" | "session.id" | "gen_ai.conversation.id" => {
            c.member(&mut m.session_id, &mut seen[1], Cursor::text)
        }
        _ => c.skip(2),
    })?;
    Some(m)
}

fn data<'a>(c: &mut Cursor<'a>) -> Fast<EventData<'a>> {
    let mut d = EventData::default();
    let mut seen = [false; 14];
    c.object(|key, c| match key {
        "model" | "gen_ai.request.model" => c.member(&mut d.model, &mut seen[0], Cursor::text),
        "gen_ai.response.model" => c.member(&mut d.response_model, &mut seen[1], Cursor::text),
        "prompt" | "gen_ai.prompt" => c.member(&mut d.prompt, &mut seen[2], Cursor::text),
        "response" | "gen_ai.completion" => c.member(&mut d.response, &mut seen[3], Cursor::text),
        "prompt_tokens" | "gen_ai.usage.input_tokens" | "gen_ai.usage.prompt_tokens" => {
            c.member(&mut d.prompt_tokens, &mut seen[4], Cursor::plain_u64)
        }
        "completion_tokens" | "gen_ai.usage.output_tokens" | "gen_ai.usage.completion_tokens" => {
            c.member(&mut d.completion_tokens, &mut seen[5], Cursor::plain_u64)
        }
        "total_tokens" | "gen_ai.usage.total_tokens" => c.member(&mut d.total_tokens, &mut seen[6], Cursor::plain_u64),
        "latency_ms" => c.member(&mut d.latency_ms, &mut seen[7], Cursor::finite_f64),
        "cost" | "gen_ai.usage.cost" => c.member(&mut d.cost, &mut seen[8], Cursor::finite_f64),
        "status" => c.member(&mut d.status, &mut seen[9], Cursor::text),
        "finish_reason" => c.member(&mut d.finish_reason, &mut seen[10], Cursor::text),
        "tool" => c.member(&mut d.tool, &mut seen[11], tool),
        "gen_ai.tool.name" => c.member(&mut d.tool_name, &mut seen[12], Cursor::text),
        _ => c.skip(2),
    })?;
    Some(d)
}

fn tool<'a>(c: &mut Cursor<'a>) -> Fast<ToolCall<'a>> {
    let mut t = ToolCall::default();
    let mut seen = [false; 2];
    c.object(|key, c| match key {
        "name" => c.member(&mut t.name, &mut seen[0], Cursor::text),
        "args" => c.member(&mut t.args, &mut seen[1], |c| {
            c.ws();
            let start = c.at;
            c.skip(3)?;
            let raw: &'a str = c.text.get(start..c.at)?;
            // The same borrowed raw value serde_json would produce, without copying.
            serde_json::from_str::<&'a RawValue>(raw).ok()
        }),
        _ => c.skip(3),
    })?;
    Some(t)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::synth::{Rng, TraceConfig, TraceGenerator};

    /// The fast path may decline, but whenever it accepts, serde_json must accept too and read
    /// exactly the same event.
    fn agrees(text: &str) -> bool {
        match parse(text) {
            None => false,
            Some(fast) => {
                let slow: TelemetryEvent<'_> = serde_json::from_str(text)
                    .unwrap_or_else(|e| panic!("fast path accepted what serde rejects ({e}): {text}"));
                assert_eq!(format!("{fast:?}"), format!("{slow:?}"), "different reading of {text}");
                true
            }
        }
    }

    const NOISE: &[&str] = &[
        "\"", "\\", ",", "{", "}", "[", "]", ":", " ", "x", "1", "-", ".", "e", "E", "0", "null", "\u{1}", "\"a\":1,",
        "é", "\\u0041",
    ];

    fn mutate(rng: &mut Rng, line: &str) -> String {
        let mut s = line.to_owned();
        for _ in 0..1 + rng.below(2) {
            let mut at = rng.below(s.len() as u64 + 1) as usize;
            while !s.is_char_boundary(at) {
                at -= 1;
            }
            match rng.below(4) {
                0 => {
                    let mut end = (at + 1 + rng.below(4) as usize).min(s.len());
                    while !s.is_char_boundary(end) {
                        end += 1;
                    }
                    s.replace_range(at..end, "");
                }
                1 => s.insert_str(at, NOISE[rng.below(NOISE.len() as u64) as usize]),
                2 => s.truncate(at),
                _ => {
                    // Duplicate a member: copy a `"key":value,` chunk right after itself.
                    if let Some(k) = s[at..].find(",\"") {
                        let start = at + k + 1;
                        if let Some(len) = s[start..].find(",\"") {
                            let chunk = s[start..start + len + 1].to_owned();
                            s.insert_str(start, &chunk);
                        }
                    }
                }
            }
        }
        s
    }

    #[test]
    fn accepts_clean_generated_events_exactly_as_serde_reads_them() {
        let cfg = TraceConfig {
            events: 20_000,
            prompt_bytes: 64,
            ..TraceConfig::default()
        };
        let accepted = TraceGenerator::new(cfg).filter(|(_, line)| agrees(line)).count();
        assert_eq!(accepted, 20_000, "clean events take the fast path");
    }

    #[test]
    fn never_accepts_what_serde_rejects_under_random_mutation() {
        let mut rng = Rng::new(9);
        let lines: Vec<String> = TraceGenerator::new(TraceConfig {
            events: 3_000,
            prompt_bytes: 32,
            ..TraceConfig::default()
        })
        .map(|(_, l)| l)
        .collect();
        let mut fast = 0;
        for round in 0..60_000 {
            let line = &lines[round % lines.len()];
            fast += usize::from(agrees(&mutate(&mut rng, line)));
        }
        assert!(
            fast > 1_000,
            "some mutants (e.g. added unknown members) still take the fast path: {fast}"
        );
    }

    #[test]
    fn finds_the_first_special_byte_at_every_offset() {
        for len in 0..40 {
            for at in 0..len {
                for special in [b'"', b'\\', 0x00, 0x1f] {
                    let mut bytes = vec![b'a'; len];
                    bytes[at] = special;
                    if at + 1 < len {
                        bytes[at + 1] = b'"';
                    }
                    assert_eq!(special_byte(&bytes), Some(at), "len {len} at {at} byte {special}");
                    assert_eq!(
                        special_byte_swar(&bytes),
                        Some(at),
                        "swar: len {len} at {at} byte {special}"
                    );
                }
            }
            for scan in [special_byte, special_byte_swar] {
                assert_eq!(scan(&vec![b' '; len]), None);
                assert_eq!(scan("é€\u{7f}\u{20}".repeat(len).as_bytes()), None);
            }
        }
    }

    #[test]
    fn declines_what_it_does_not_handle() {
        for text in [
            r#"{"event_id":"a\"b"}"#,
            r#"{"event_id":"a","event_id":"b"}"#,
            r#"{"data":{"prompt_tokens":1.0}}"#,
            r#"{"data":{"cost":1e999}}"#,
            r#"{"timestamp":-1}"#,
            r#"{"event_id":"a"} x"#,
            r#"{"data":{},"attributes":{}}"#,
        ] {
            assert!(parse(text).is_none(), "{text}");
        }
        assert!(agrees(
            r#" { "unknown" : [1, {"a": [true, false, null]}, -0.5e-3], "data": {"tool": {"name": "t", "args": {"q": [1,2]}}} } "#
        ));
    }
}
