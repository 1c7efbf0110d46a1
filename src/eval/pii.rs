//! Scores the PII scanner against labeled spans (`{"text", "spans": [{"start", "end", "type"}],
//! "meta": {"entity_types_tested": [...]}}`, offsets in Unicode code points): exact-span
//! precision, recall and F1 per entity type.
//!
//! A type is evaluated when the file labels it (a gold span, or `entity_types_tested`) and the
//! scanner reports it. Every predicted span of an evaluated type counts, in every row: a phone
//! number reported as an IP address in a row that tests phone numbers is a false IP alarm.

use std::collections::{BTreeMap, BTreeSet};

use sentinel_dataflows::guard::{PiiKind, PiiScanner};
use serde::Deserialize;

#[derive(Deserialize)]
struct Row {
    #[serde(default)]
    id: Option<serde_json::Value>,
    text: String,
    #[serde(default)]
    spans: Vec<Span>,
    #[serde(default)]
    meta: Meta,
}

#[derive(Deserialize)]
struct Span {
    start: usize,
    end: usize,
    #[serde(rename = "type")]
    kind: String,
}

#[derive(Default, Deserialize)]
struct Meta {
    #[serde(default)]
    entity_types_tested: Vec<String>,
}

/// Counts for one entity type.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Counts {
    /// Exact span matches.
    pub true_positives: u64,
    /// Labeled spans.
    pub gold: u64,
    /// Predicted spans.
    pub predicted: u64,
}

impl Counts {
    /// tp / predicted (1 when nothing was predicted).
    pub fn precision(&self) -> f64 {
        if self.predicted == 0 {
            1.0
        } else {
            self.true_positives as f64 / self.predicted as f64
        }
    }

    /// tp / gold (1 when nothing was labeled).
    pub fn recall(&self) -> f64 {
        if self.gold == 0 {
            1.0
        } else {
            self.true_positives as f64 / self.gold as f64
        }
    }

    /// Harmonic mean of precision and recall.
    pub fn f1(&self) -> f64 {
        let (p, r) = (self.precision(), self.recall());
        if p + r == 0.0 {
            0.0
        } else {
            2.0 * p * r / (p + r)
        }
    }
}

/// One row's predicted spans, in code points, as `--pred-out` writes them for outside scorers.
#[derive(Debug, serde::Serialize)]
pub struct Prediction {
    /// The row's `id`, else its 1-based line number.
    pub id: serde_json::Value,
    /// The row's text.
    pub text: String,
    /// Every span the scanner reported.
    pub spans: Vec<PredictedSpan>,
}

/// A predicted span.
#[derive(Debug, serde::Serialize)]
pub struct PredictedSpan {
    /// First code point.
    pub start: usize,
    /// One past the last code point.
    pub end: usize,
    /// Entity type, Presidio's name.
    #[serde(rename = "type")]
    pub kind: &'static str,
    /// The scanner's confidence.
    pub score: f32,
}

/// Scores every row of a JSONL file (see the module docs); also returns each row's predictions.
pub fn evaluate(jsonl: &str, scanner: &PiiScanner) -> Result<(BTreeMap<PiiKind, Counts>, Vec<Prediction>), String> {
    let mut rows = Vec::new();
    let mut labeled: BTreeSet<String> = BTreeSet::new();
    for (line_no, line) in jsonl.lines().enumerate().filter(|(_, l)| !l.trim().is_empty()) {
        let row: Row = serde_json::from_str(line).map_err(|e| format!("line {}: {e}", line_no + 1))?;
        labeled.extend(row.spans.iter().map(|s| s.kind.clone()));
        labeled.extend(row.meta.entity_types_tested.iter().cloned());
        rows.push((line_no + 1, row));
    }
    let evaluated: Vec<PiiKind> = PiiKind::ALL
        .into_iter()
        .filter(|k| labeled.contains(k.as_str()))
        .collect();
    let mut counts: BTreeMap<PiiKind, Counts> = evaluated.iter().map(|k| (*k, Counts::default())).collect();
    let mut predictions = Vec::with_capacity(rows.len());
    for (line, row) in rows {
        let spans: Vec<PredictedSpan> = scanner
            .scan(&row.text)
            .iter()
            .map(|f| PredictedSpan {
                start: char_index(&row.text, f.start),
                end: char_index(&row.text, f.end),
                kind: f.kind.as_str(),
                score: f.confidence,
            })
            .collect();
        for kind in &evaluated {
            let gold: BTreeSet<(usize, usize)> = row
                .spans
                .iter()
                .filter(|s| s.kind == kind.as_str())
                .map(|s| (s.start, s.end))
                .collect();
            let predicted: BTreeSet<(usize, usize)> = spans
                .iter()
                .filter(|s| s.kind == kind.as_str())
                .map(|s| (s.start, s.end))
                .collect();
            let c = counts.entry(*kind).or_default();
            c.gold += gold.len() as u64;
            c.predicted += predicted.len() as u64;
            c.true_positives += gold.intersection(&predicted).count() as u64;
        }
        predictions.push(Prediction {
            id: row.id.unwrap_or_else(|| line.into()),
            text: row.text,
            spans,
        });
    }
    Ok((counts, predictions))
}

/// The code-point index of byte offset `byte` (labels count code points, as Python does).
fn char_index(text: &str, byte: usize) -> usize {
    text[..byte].chars().count()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_exact_spans_in_code_points_per_tested_type() {
        let data = concat!(
            r#"{"text": "é mail a@b.io", "spans": [{"start": 7, "end": 13, "type": "EMAIL_ADDRESS"}], "meta": {"entity_types_tested": ["EMAIL_ADDRESS"]}}"#,
            "\n",
            r#"{"text": "card 4111111111111112", "spans": [], "meta": {"entity_types_tested": ["CREDIT_CARD"]}}"#,
            "\n",
            r#"{"text": "card 4111111111111111", "spans": [{"start": 5, "end": 21, "type": "CREDIT_CARD"}], "meta": {"entity_types_tested": ["CREDIT_CARD"]}}"#,
            "\n",
            r#"{"text": "x@y.org", "spans": [], "meta": {"entity_types_tested": ["CREDIT_CARD"]}}"#,
        );
        let (counts, predictions) = evaluate(data, &PiiScanner::new()).unwrap();
        // The email in the last row counts although that row tests cards only.
        let email = counts[&PiiKind::EmailAddress];
        assert_eq!((email.true_positives, email.gold, email.predicted), (1, 1, 2));
        assert_eq!(predictions.len(), 4);
        assert_eq!((predictions[0].spans[0].start, predictions[0].spans[0].end), (7, 13));
        assert_eq!(predictions[3].id, 4);
        let card = counts[&PiiKind::CreditCard];
        assert_eq!((card.true_positives, card.gold, card.predicted), (1, 1, 1));
        assert_eq!(card.f1(), 1.0);
    }
}
