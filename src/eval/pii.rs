//! Scores the PII scanner against labeled spans (`{"text", "spans": [{"start", "end", "type"}],
//! "meta": {"entity_types_tested": [...]}}`, offsets in Unicode code points): exact-span
//! precision, recall and F1 per entity type.

use std::collections::{BTreeMap, BTreeSet};

use sentinel_dataflows::guard::{PiiKind, PiiScanner};
use serde::Deserialize;

#[derive(Deserialize)]
struct Row {
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

/// Scores every row of a JSONL file. A row counts for a type when its `entity_types_tested`
/// names it (or, without that field, when the type is among its spans); the type's predictions
/// and labels in that row are compared span by span.
pub fn evaluate(jsonl: &str, scanner: &PiiScanner) -> Result<BTreeMap<PiiKind, Counts>, String> {
    let mut counts: BTreeMap<PiiKind, Counts> = BTreeMap::new();
    for (line_no, line) in jsonl.lines().enumerate().filter(|(_, l)| !l.trim().is_empty()) {
        let row: Row = serde_json::from_str(line).map_err(|e| format!("line {}: {e}", line_no + 1))?;
        let tested: BTreeSet<&str> = if row.meta.entity_types_tested.is_empty() {
            row.spans.iter().map(|s| s.kind.as_str()).collect()
        } else {
            row.meta.entity_types_tested.iter().map(String::as_str).collect()
        };
        let findings = scanner.scan(&row.text);
        for kind in PiiKind::ALL {
            if !tested.contains(kind.as_str()) {
                continue;
            }
            let gold: BTreeSet<(usize, usize)> = row
                .spans
                .iter()
                .filter(|s| s.kind == kind.as_str())
                .map(|s| (s.start, s.end))
                .collect();
            let predicted: BTreeSet<(usize, usize)> = findings
                .iter()
                .filter(|f| f.kind == kind)
                .map(|f| (char_index(&row.text, f.start), char_index(&row.text, f.end)))
                .collect();
            let c = counts.entry(kind).or_default();
            c.gold += gold.len() as u64;
            c.predicted += predicted.len() as u64;
            c.true_positives += gold.intersection(&predicted).count() as u64;
        }
    }
    Ok(counts)
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
        let counts = evaluate(data, &PiiScanner::new()).unwrap();
        let email = counts[&PiiKind::EmailAddress];
        assert_eq!((email.true_positives, email.gold, email.predicted), (1, 1, 1));
        let card = counts[&PiiKind::CreditCard];
        assert_eq!((card.true_positives, card.gold, card.predicted), (1, 1, 1));
        assert_eq!(card.f1(), 1.0);
    }
}
