//! What keeps a notification from going out: silences, which a person sets for a while on
//! alerts matching some labels, and inhibition, where a firing critical alert on an entity
//! holds back that entity's lesser alerts (Alertmanager's `inhibit_rules`).
//!
//! Both work in event time, so a replay suppresses the same notifications.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// An alert's labels: `detector_id`, `severity`, `application`, `entity_type`, `entity_id`...
pub type Labels = BTreeMap<String, String>;

/// One condition on a label.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Matcher {
    /// Label name.
    pub label: String,
    /// The value to compare with.
    pub value: String,
    /// Matches when the label differs (or is missing) instead.
    #[serde(default)]
    pub negate: bool,
}

impl Matcher {
    /// `label` equal to `value`.
    pub fn eq(label: &str, value: &str) -> Self {
        Matcher {
            label: label.to_owned(),
            value: value.to_owned(),
            negate: false,
        }
    }

    /// Whether `labels` satisfy it. A missing label is the empty string, as in Alertmanager.
    pub fn matches(&self, labels: &Labels) -> bool {
        let value = labels.get(&self.label).map_or("", String::as_str);
        (value == self.value) != self.negate
    }
}

/// Whether every matcher holds.
fn all_match(matchers: &[Matcher], labels: &Labels) -> bool {
    matchers.iter().all(|m| m.matches(labels))
}

/// A silence: alerts matching all its matchers are not notified from `starts_ms` until
/// `ends_ms` (event time), and then are again.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Silence {
    /// Deterministic id, for the audit trail.
    pub id: String,
    /// What it silences.
    pub matchers: Vec<Matcher>,
    /// From (ms).
    pub starts_ms: u64,
    /// Until (ms, exclusive).
    pub ends_ms: u64,
    /// Who set it and why.
    pub comment: String,
}

impl Silence {
    /// Whether it silences `labels` at `at_ms`.
    pub fn silences(&self, labels: &Labels, at_ms: u64) -> bool {
        (self.starts_ms..self.ends_ms).contains(&at_ms) && all_match(&self.matchers, labels)
    }
}

/// `source` alerts hold back `target` alerts that share the `equal` labels' values.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct InhibitRule {
    /// What inhibits, e.g. `severity = critical`.
    pub source: Vec<Matcher>,
    /// What is inhibited, e.g. `severity = warning`.
    pub target: Vec<Matcher>,
    /// Labels both must share, e.g. `entity_type` and `entity_id`.
    pub equal: Vec<String>,
}

impl InhibitRule {
    /// The seed's behaviour: a critical alert on an entity holds back its warnings and infos.
    pub fn critical_over_lesser() -> Self {
        InhibitRule {
            source: vec![Matcher::eq("severity", "critical")],
            target: vec![Matcher {
                label: "severity".into(),
                value: "critical".into(),
                negate: true,
            }],
            equal: vec!["entity_type".into(), "entity_id".into()],
        }
    }

    /// The `equal` labels' values, as one string (a JSON array, so no two differ only in
    /// where a separator falls, and the state checkpoints as a JSON map).
    fn key(&self, labels: &Labels) -> String {
        let values: Vec<&str> = self
            .equal
            .iter()
            .map(|l| labels.get(l).map_or("", String::as_str))
            .collect();
        serde_json::to_string(&values).unwrap_or_default()
    }
}

/// The silences and inhibition rules of a route, and the source alerts firing now.
///
/// ```
/// use sentinel_dataflows::act::{InhibitRule, Labels, Suppressor};
/// let labels = |sev: &str| -> Labels {
///     [("severity", sev), ("entity_type", "user"), ("entity_id", "u-1")]
///         .into_iter()
///         .map(|(k, v)| (k.to_owned(), v.to_owned()))
///         .collect()
/// };
/// let mut s = Suppressor::new(vec![InhibitRule::critical_over_lesser()], 600_000);
/// s.observe("a-1", &labels("critical"), 1_000);
/// assert!(s.suppressed(&labels("warning"), 2_000).is_some());
/// assert!(s.suppressed(&labels("critical"), 2_000).is_none());
/// ```
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Suppressor {
    rules: Vec<InhibitRule>,
    silences: Vec<Silence>,
    /// How long a source alert inhibits after it was last seen firing, unless resolved first.
    hold_ms: u64,
    /// Per rule: the `equal` values of firing sources, and per source alert its last sighting.
    sources: Vec<BTreeMap<String, BTreeMap<String, u64>>>,
}

/// Why an alert is not notified.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "by", content = "id")]
pub enum Suppression {
    /// A silence, by id.
    Silenced(String),
    /// An inhibiting source alert, by id.
    Inhibited(String),
}

impl Suppressor {
    /// These rules, no silences; a source inhibits for `hold_ms` after it was last seen.
    pub fn new(rules: Vec<InhibitRule>, hold_ms: u64) -> Self {
        let sources = vec![BTreeMap::new(); rules.len()];
        Suppressor {
            rules,
            silences: Vec::new(),
            hold_ms,
            sources,
        }
    }

    /// Takes the firing sources of `checkpoint` if its rules are these (the config may have
    /// changed across the restart); silences stay as configured.
    pub fn restore_sources(&mut self, checkpoint: Suppressor) {
        if checkpoint.rules == self.rules {
            self.sources = checkpoint.sources;
        }
    }

    /// Adds a silence (a later one with the same id replaces it).
    pub fn silence(&mut self, silence: Silence) {
        self.silences.retain(|s| s.id != silence.id);
        self.silences.push(silence);
    }

    /// Alert `id` with `labels` fires at `at_ms`: if it is a source of a rule, it inhibits.
    pub fn observe(&mut self, id: &str, labels: &Labels, at_ms: u64) {
        for (rule, sources) in self.rules.iter().zip(self.sources.iter_mut()) {
            if all_match(&rule.source, labels) {
                let seen = sources.entry(rule.key(labels)).or_default();
                let last = seen.entry(id.to_owned()).or_insert(at_ms);
                *last = (*last).max(at_ms);
            }
        }
    }

    /// Alert `id` resolved: it inhibits no more.
    pub fn resolve(&mut self, id: &str) {
        for sources in &mut self.sources {
            sources.retain(|_, seen| {
                seen.remove(id);
                !seen.is_empty()
            });
        }
    }

    /// Forgets sources and silences that ended before `now_ms`.
    pub fn expire(&mut self, now_ms: u64) {
        let hold = self.hold_ms;
        for sources in &mut self.sources {
            sources.retain(|_, seen| {
                seen.retain(|_, last| last.saturating_add(hold) > now_ms);
                !seen.is_empty()
            });
        }
        self.silences.retain(|s| s.ends_ms > now_ms);
    }

    /// Why an alert with `labels` at `at_ms` is not notified, if it is not. An alert never
    /// inhibits itself: it matches a rule's target only if it also differs from its source.
    pub fn suppressed(&self, labels: &Labels, at_ms: u64) -> Option<Suppression> {
        if let Some(s) = self.silences.iter().find(|s| s.silences(labels, at_ms)) {
            return Some(Suppression::Silenced(s.id.clone()));
        }
        let hold = self.hold_ms;
        self.rules.iter().zip(&self.sources).find_map(|(rule, sources)| {
            if !all_match(&rule.target, labels) || all_match(&rule.source, labels) {
                return None;
            }
            let seen = sources.get(&rule.key(labels))?;
            seen.iter()
                .find(|(_, last)| **last <= at_ms && last.saturating_add(hold) > at_ms)
                .map(|(id, _)| Suppression::Inhibited(id.clone()))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn labels(pairs: &[(&str, &str)]) -> Labels {
        pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
    }

    fn on(entity: &str, severity: &str, detector: &str) -> Labels {
        labels(&[
            ("severity", severity),
            ("entity_type", "user"),
            ("entity_id", entity),
            ("detector_id", detector),
        ])
    }

    #[test]
    fn a_critical_alert_holds_back_the_same_entitys_warnings_only_while_it_lasts() {
        let mut s = Suppressor::new(vec![InhibitRule::critical_over_lesser()], 60_000);
        s.observe("crit-1", &on("u-1", "critical", "prompt-injection"), 1_000);
        assert_eq!(
            s.suppressed(&on("u-1", "warning", "request-flood"), 5_000),
            Some(Suppression::Inhibited("crit-1".into()))
        );
        // Another entity, or the critical alert itself, is not held back.
        assert_eq!(s.suppressed(&on("u-2", "warning", "request-flood"), 5_000), None);
        assert_eq!(s.suppressed(&on("u-1", "critical", "cost-runaway"), 5_000), None);
        // Not before the source fired, and not past its hold.
        assert_eq!(s.suppressed(&on("u-1", "warning", "request-flood"), 500), None);
        assert_eq!(s.suppressed(&on("u-1", "warning", "request-flood"), 61_000), None);
        // Seen again, it holds again; resolved, it stops at once.
        s.observe("crit-1", &on("u-1", "critical", "prompt-injection"), 70_000);
        assert!(s.suppressed(&on("u-1", "warning", "x"), 80_000).is_some());
        s.resolve("crit-1");
        assert_eq!(s.suppressed(&on("u-1", "warning", "x"), 80_000), None);
    }

    #[test]
    fn a_silence_matches_its_labels_for_its_time_and_then_expires() {
        let mut s = Suppressor::new(Vec::new(), 0);
        s.silence(Silence {
            id: "s-1".into(),
            matchers: vec![
                Matcher::eq("detector_id", "request-flood"),
                Matcher {
                    label: "entity_id".into(),
                    value: "u-9".into(),
                    negate: true,
                },
            ],
            starts_ms: 1_000,
            ends_ms: 10_000,
            comment: "load test, ops".into(),
        });
        let flood = on("u-1", "warning", "request-flood");
        assert_eq!(s.suppressed(&flood, 5_000), Some(Suppression::Silenced("s-1".into())));
        assert_eq!(s.suppressed(&on("u-9", "warning", "request-flood"), 5_000), None);
        assert_eq!(s.suppressed(&on("u-1", "warning", "cost-runaway"), 5_000), None);
        assert_eq!(s.suppressed(&flood, 999), None);
        assert_eq!(s.suppressed(&flood, 10_000), None);
        s.expire(10_000);
        assert!(s.silences.is_empty());
    }

    #[test]
    fn expired_sources_are_forgotten() {
        let mut s = Suppressor::new(vec![InhibitRule::critical_over_lesser()], 1_000);
        s.observe("c", &on("u-1", "critical", "d"), 0);
        s.expire(999);
        assert!(s.suppressed(&on("u-1", "warning", "d"), 999).is_some());
        s.expire(1_000);
        assert!(s.sources[0].is_empty());
    }
}
