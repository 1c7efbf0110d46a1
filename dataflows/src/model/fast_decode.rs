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

    fn opt_str(&mut self, slot: &mut Option<Cow<'a, str>>, seen: &mut bool) -> Fast<()> {
        if std::mem::replace(seen, true) {
            return None; // duplicate field: serde_json reports it
        }
        *slot = if self.null() {
            None
        } else {
            Some(Cow::Borrowed(self.string()?))
        };
        Some(())
    }

    fn opt_u64(&mut self, slot: &mut Option<u64>, seen: &mut bool) -> Fast<()> {
        if std::mem::replace(seen, true) {
            return None;
        }
        if self.null() {
            *slot = None;
            return Some(());
        }
        let n = self.number()?;
        // Only plain non-negative integers; serde decides everything else (and rejects it).
        if !n.bytes().all(|c| c.is_ascii_digit()) {
            return None;
        }
        *slot = Some(n.parse().ok()?);
        Some(())
    }

    fn opt_f64(&mut self, slot: &mut Option<f64>, seen: &mut bool) -> Fast<()> {
        if std::mem::replace(seen, true) {
            return None;
        }
        if self.null() {
            *slot = None;
            return Some(());
        }
        let n = self.number()?;
        let v: f64 = n.parse().ok()?;
        if !v.is_finite() {
            return None; // serde_json: "number out of range"
        }
        *slot = Some(v);
        Some(())
    }
}

/// Index of the first `"`, `\\` or control character (< 0x20), eight bytes at a time.
#[inline]
fn special_byte(bytes: &[u8]) -> Option<usize> {
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
        "event_id" => c.opt_str(&mut ev.event_id, &mut seen[0]),
        "timestamp" => {
            if std::mem::replace(&mut seen[1], true) {
                return None;
            }
            ev.timestamp = match c.peek()? {
                b'"' => Some(WireTimestamp::Text(c.string()?)),
                b'n' => {
                    c.literal("null")?;
                    None
                }
                _ => {
                    let n = c.number()?;
                    if !n.bytes().all(|b| b.is_ascii_digit()) {
                        return None;
                    }
                    Some(WireTimestamp::Millis(n.parse().ok()?))
                }
            };
            Some(())
        }
        "event_type" => c.opt_str(&mut ev.event_type, &mut seen[2]),
        "application_id" => c.opt_str(&mut ev.application_id, &mut seen[3]),
        "tenant_id" => c.opt_str(&mut ev.tenant_id, &mut seen[4]),
        "source" => {
            if std::mem::replace(&mut seen[5], true) {
                return None;
            }
            ev.source = if c.null() { None } else { Some(source(c)?) };
            Some(())
        }
        "data" | "attributes" => {
            if std::mem::replace(&mut seen[6], true) {
                return None;
            }
            ev.data = if c.null() { None } else { Some(data(c)?) };
            Some(())
        }
        "metadata" => {
            if std::mem::replace(&mut seen[7], true) {
                return None;
            }
            ev.metadata = if c.null() { None } else { Some(metadata(c)?) };
            Some(())
        }
        _ => c.skip(1),
    })?;
    c.ws();
    (c.at == c.bytes.len()).then_some(ev)
}

fn source<'a>(c: &mut Cursor<'a>) -> Fast<EventSource<'a>> {
    let mut s = EventSource::default();
    let mut seen = [false; 2];
    c.object(|key, c| match key {
        "service" => c.opt_str(&mut s.service, &mut seen[0]),
        "host" => c.opt_str(&mut s.host, &mut seen[1]),
        _ => c.skip(2),
    })?;
    Some(s)
}

fn metadata<'a>(c: &mut Cursor<'a>) -> Fast<EventMetadata<'a>> {
    let mut m = EventMetadata::default();
    let mut seen = [false; 2];
    c.object(|key, c| match key {
        "user_id" | "enduser.id" => c.opt_str(&mut m.user_id, &mut seen[0]),
        "session_id" | "session.id" | "gen_ai.conversation.id" => c.opt_str(&mut m.session_id, &mut seen[1]),
        _ => c.skip(2),
    })?;
    Some(m)
}

fn data<'a>(c: &mut Cursor<'a>) -> Fast<EventData<'a>> {
    let mut d = EventData::default();
    let mut seen = [false; 14];
    c.object(|key, c| match key {
        "model" | "gen_ai.request.model" => c.opt_str(&mut d.model, &mut seen[0]),
        "gen_ai.response.model" => c.opt_str(&mut d.response_model, &mut seen[1]),
        "prompt" | "gen_ai.prompt" => c.opt_str(&mut d.prompt, &mut seen[2]),
        "response" | "gen_ai.completion" => c.opt_str(&mut d.response, &mut seen[3]),
        "prompt_tokens" | "gen_ai.usage.input_tokens" | "gen_ai.usage.prompt_tokens" => {
            c.opt_u64(&mut d.prompt_tokens, &mut seen[4])
        }
        "completion_tokens" | "gen_ai.usage.output_tokens" | "gen_ai.usage.completion_tokens" => {
            c.opt_u64(&mut d.completion_tokens, &mut seen[5])
        }
        "total_tokens" | "gen_ai.usage.total_tokens" => c.opt_u64(&mut d.total_tokens, &mut seen[6]),
        "latency_ms" => c.opt_f64(&mut d.latency_ms, &mut seen[7]),
        "cost" | "gen_ai.usage.cost" => c.opt_f64(&mut d.cost, &mut seen[8]),
        "status" => c.opt_str(&mut d.status, &mut seen[9]),
        "finish_reason" => c.opt_str(&mut d.finish_reason, &mut seen[10]),
        "tool" => {
            if std::mem::replace(&mut seen[11], true) {
                return None;
            }
            d.tool = if c.null() { None } else { Some(tool(c)?) };
            Some(())
        }
        "gen_ai.tool.name" => c.opt_str(&mut d.tool_name, &mut seen[12]),
        _ => c.skip(2),
    })?;
    Some(d)
}

fn tool<'a>(c: &mut Cursor<'a>) -> Fast<ToolCall<'a>> {
    let mut t = ToolCall::default();
    let mut seen = [false; 2];
    c.object(|key, c| match key {
        "name" => c.opt_str(&mut t.name, &mut seen[0]),
        "args" => {
            if std::mem::replace(&mut seen[1], true) {
                return None;
            }
            if c.null() {
                t.args = None;
                return Some(());
            }
            c.ws();
            let start = c.at;
            c.skip(3)?;
            let raw: &'a str = c.text.get(start..c.at)?;
            // The same borrowed raw value serde_json would produce, without copying.
            t.args = Some(serde_json::from_str::<&'a RawValue>(raw).ok()?);
            Some(())
        }
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
                }
            }
            assert_eq!(special_byte(&vec![b' '; len]), None);
            assert_eq!(special_byte("é€\u{7f}\u{20}".repeat(len).as_bytes()), None);
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
