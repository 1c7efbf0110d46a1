//! The verdict a judge must return: its JSON schema (sent where the provider has a structured
//! output mode), and a parser that extracts it leniently from text and validates it. A reply
//! that is not a valid verdict is an error, never a guess.

use serde::Deserialize;
use serde_json::{json, Value};

/// The verdict fields a judge returns (the rest of ShadowAgentResponse is ours to fill).
#[derive(Clone, Debug, PartialEq)]
pub struct Verdict {
    /// 0..1.
    pub risk_score: f32,
    /// 0..1.
    pub confidence: f32,
    /// Threat descriptions.
    pub threats_detected: Vec<String>,
    /// Explanation.
    pub reasoning: String,
    /// Suggested actions.
    pub recommendations: Vec<String>,
}

/// Why a reply is not a verdict.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VerdictError(pub String);

/// The JSON schema of a verdict.
pub fn schema() -> Value {
    json!({
        "type": "object",
        "additionalProperties": false,
        "required": ["risk_score", "risk_level", "confidence", "threats_detected", "reasoning", "recommendations"],
        "properties": {
            "risk_score": {"type": "number", "minimum": 0, "maximum": 1},
            "risk_level": {"type": "string", "enum": ["none", "low", "medium", "high", "critical"]},
            "confidence": {"type": "number", "minimum": 0, "maximum": 1},
            "threats_detected": {"type": "array", "items": {"type": "string"}},
            "reasoning": {"type": "string"},
            "recommendations": {"type": "array", "items": {"type": "string"}}
        }
    })
}

#[derive(Deserialize)]
struct Wire {
    risk_score: f64,
    #[serde(default)]
    risk_level: Option<String>,
    confidence: f64,
    #[serde(default)]
    threats_detected: Vec<String>,
    #[serde(default)]
    reasoning: String,
    #[serde(default)]
    recommendations: Vec<String>,
}

const MAX_ITEMS: usize = 16;
const MAX_ITEM_CHARS: usize = 300;
const MAX_REASONING_CHARS: usize = 2000;

fn clip(s: &str, max_chars: usize) -> String {
    s.chars().take(max_chars).collect()
}

/// Validates a verdict object.
pub fn from_value(value: Value) -> Result<Verdict, VerdictError> {
    let wire: Wire = serde_json::from_value(value).map_err(|e| VerdictError(format!("not a verdict: {e}")))?;
    let unit = |name: &str, v: f64| {
        if (0.0..=1.0).contains(&v) {
            Ok(v as f32)
        } else {
            Err(VerdictError(format!("{name} {v} is outside 0..1")))
        }
    };
    if let Some(level) = &wire.risk_level {
        if !["none", "low", "medium", "high", "critical"].contains(&level.as_str()) {
            return Err(VerdictError(format!("risk_level `{level}` is not a level")));
        }
    }
    let items = |v: Vec<String>| -> Vec<String> { v.iter().take(MAX_ITEMS).map(|s| clip(s, MAX_ITEM_CHARS)).collect() };
    Ok(Verdict {
        risk_score: unit("risk_score", wire.risk_score)?,
        confidence: unit("confidence", wire.confidence)?,
        threats_detected: items(wire.threats_detected),
        reasoning: clip(&wire.reasoning, MAX_REASONING_CHARS),
        recommendations: items(wire.recommendations),
    })
}

/// Extracts a verdict from reply text: the whole text, else inside a code fence, else the
/// first balanced `{...}` that parses.
///
/// ```
/// use sentinel_judges::verdict::from_text;
/// let v = from_text("Sure! ```json\n{\"risk_score\": 0.9, \"risk_level\": \"high\", \"confidence\": 0.8,
///   \"threats_detected\": [\"override\"], \"reasoning\": \"r\", \"recommendations\": []}\n```").unwrap();
/// assert_eq!(v.risk_score, 0.9);
/// assert!(from_text("I cannot help with that.").is_err());
/// assert!(from_text("{\"risk_score\": 3, \"confidence\": 0.5}").is_err());
/// ```
pub fn from_text(text: &str) -> Result<Verdict, VerdictError> {
    let trimmed = text.trim();
    if let Ok(v) = serde_json::from_str::<Value>(trimmed) {
        return from_value(v);
    }
    let mut last_error = VerdictError("no JSON object in the reply".into());
    for (start, _) in trimmed.match_indices('{') {
        if let Some(end) = balanced_end(&trimmed[start..]) {
            match serde_json::from_str::<Value>(&trimmed[start..start + end]) {
                Ok(v) => match from_value(v) {
                    Ok(verdict) => return Ok(verdict),
                    Err(e) => last_error = e,
                },
                Err(e) => last_error = VerdictError(format!("malformed JSON: {e}")),
            }
        }
    }
    Err(last_error)
}

/// The length of the balanced object starting at `text[0] == '{'`, strings respected.
fn balanced_end(text: &str) -> Option<usize> {
    let (mut depth, mut in_string, mut escaped) = (0usize, false, false);
    for (i, c) in text.char_indices() {
        if in_string {
            match c {
                _ if escaped => escaped = false,
                '\\' => escaped = true,
                '"' => in_string = false,
                _ => {}
            }
            continue;
        }
        match c {
            '"' => in_string = true,
            '{' => depth += 1,
            '}' => {
                depth -= 1;
                if depth == 0 {
                    return Some(i + 1);
                }
            }
            _ => {}
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn malformed_and_out_of_range_replies_are_errors() {
        assert!(from_text("{\"risk_score\": 0.5, \"confidence\": ").is_err());
        assert!(from_text("{\"risk_score\": \"high\", \"confidence\": 0.5}").is_err());
        assert!(from_text("{\"risk_score\": 0.5, \"confidence\": 1.5}").is_err());
        assert!(from_text("{\"risk_score\": 0.5, \"confidence\": 0.5, \"risk_level\": \"severe\"}").is_err());
        let ok = from_text("{\"a\": {\"b\": \"}\"}} then {\"risk_score\": 0.25, \"confidence\": 0.5}").unwrap();
        assert_eq!(ok.risk_score, 0.25);
        let long = format!(
            "{{\"risk_score\": 0.1, \"confidence\": 0.9, \"reasoning\": \"{}\"}}",
            "x".repeat(5000)
        );
        assert_eq!(from_text(&long).unwrap().reasoning.len(), MAX_REASONING_CHARS);
    }
}
