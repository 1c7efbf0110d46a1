//! Anomaly assembly: the rule (content) and behavioral anomalies of one event, each built by
//! [`Anomaly::build`], the one builder every detector kind uses.

use crate::detect::behavior::BehaviorSignal;
use crate::guard::GuardPolicy;
use crate::model::{
    noisy_or, AffectedEntity, Anomaly, AnomalyDraft, AnomalyMetrics, DetectorType, Finding, KeyField, LayerVerdict,
    ScreenedEvent, Severity, Tier,
};

/// The anomalies of one event: one per behavioral signal, and one per content detector whose
/// findings reach the warn threshold, in each layer.
pub fn assemble(ev: &ScreenedEvent, signals: &[BehaviorSignal], policy: &GuardPolicy, out: &mut Vec<Anomaly>) {
    let has_findings = |v: &Option<LayerVerdict>| v.as_ref().is_some_and(|v| !v.findings.is_empty());
    if signals.is_empty() && !has_findings(&ev.input) && !has_findings(&ev.output) {
        return;
    }
    for s in signals {
        out.push(behavior_anomaly(s, ev));
    }
    let (actor_kind, actor) = ev.actor();
    let entity = AffectedEntity {
        entity_type: actor_kind.to_owned(),
        id: actor.to_owned(),
        name: actor.to_owned(),
    };
    for (layer, verdict) in [("input", &ev.input), ("output", &ev.output)] {
        if let Some(v) = verdict {
            content_anomalies(layer, v, policy, ev, &entity, out);
        }
    }
}

/// The content detectors' ids, as anomalies carry them; the first is the injection detector
/// the learned classifier also reports to.
pub const CONTENT_DETECTORS: &[&str] = &[
    "prompt-injection",
    "system-prompt-leak",
    "secret-exposure",
    "pii-leak",
    "pii-exposure",
];

/// The content detector a finding belongs to, as an anomaly's `detector_id`.
fn content_detector(layer: &str, f: &Finding) -> &'static str {
    match f {
        Finding::PromptInjection { .. } => "prompt-injection",
        Finding::CanaryLeak { .. } => "system-prompt-leak",
        Finding::Pii { kind, .. } if kind.is_secret() => "secret-exposure",
        Finding::Pii { in_prompt: false, .. } if layer == "output" => "pii-leak",
        Finding::Pii { .. } => "pii-exposure",
    }
}

fn content_anomalies(
    layer: &str,
    verdict: &LayerVerdict,
    policy: &GuardPolicy,
    ev: &ScreenedEvent,
    entity: &AffectedEntity,
    out: &mut Vec<Anomaly>,
) {
    let mut detectors: Vec<&'static str> = verdict.findings.iter().map(|f| content_detector(layer, f)).collect();
    detectors.sort_unstable();
    detectors.dedup();
    let event_id = ev.keys.get(KeyField::EventId);
    for detector in detectors {
        let mine: Vec<&Finding> = verdict
            .findings
            .iter()
            .filter(|f| content_detector(layer, f) == detector)
            .collect();
        let score = noisy_or(mine.iter().map(|f| f.weight()));
        if score < policy.thresholds.low {
            continue;
        }
        let tier = policy.thresholds.tier(score);
        let what: Vec<String> = mine.iter().map(|f| finding_label(f)).collect();
        out.push(Anomaly::build(AnomalyDraft {
            id_parts: &[detector.as_bytes(), layer.as_bytes(), event_id.as_bytes()],
            detector_id: detector,
            detector_type: DetectorType::Rule,
            severity: if tier >= Tier::Escalate {
                Severity::Critical
            } else {
                Severity::Warning
            },
            score: f64::from(score),
            title: format!(
                "{detector} in {} ({})",
                if layer == "input" { "prompt" } else { "response" },
                tier.as_str()
            ),
            description: format!(
                "{} on event {event_id} of application {}: {}",
                detector,
                ev.keys.get(KeyField::Application),
                what.join(", ")
            ),
            entity: entity.clone(),
            metrics: AnomalyMetrics {
                baseline_value: 0.0,
                observed_value: f64::from(score),
                deviation: f64::from(score),
                threshold: f64::from(policy.thresholds.low),
            },
            at_ms: ev.timestamp_ms,
            window_ms: one_event_window(ev),
            sample_events: vec![event_id.to_owned()],
        }));
    }
}

/// A finding in a few words (`US_SSN ***-**-1234`, a rule id, `canary #0`).
pub fn finding_label(f: &Finding) -> String {
    match f {
        Finding::PromptInjection { rule, .. } => rule.to_string(),
        Finding::Pii { kind, redacted, .. } => format!("{} {redacted}", kind.as_str()),
        Finding::CanaryLeak { canary, .. } => format!("canary #{canary}"),
    }
}

/// An event's own window: `[event time, event time + 1 ms)`.
fn one_event_window(ev: &ScreenedEvent) -> (u64, u64) {
    (ev.timestamp_ms, ev.timestamp_ms + 1)
}

fn behavior_anomaly(s: &BehaviorSignal, ev: &ScreenedEvent) -> Anomaly {
    let event_id = ev.keys.get(KeyField::EventId);
    Anomaly::build(AnomalyDraft {
        id_parts: &[s.kind.id().as_bytes(), s.entity_id.as_bytes(), event_id.as_bytes()],
        detector_id: s.kind.id(),
        detector_type: DetectorType::Behavioral,
        severity: if s.score >= 0.8 {
            Severity::Critical
        } else {
            Severity::Warning
        },
        score: f64::from(s.score),
        title: s.title.clone(),
        description: format!(
            "{} for {} {} of application {}: observed {:.3}, limit {:.3}",
            s.kind.id(),
            s.entity_type,
            s.entity_id,
            ev.keys.get(KeyField::Application),
            s.observed,
            s.threshold
        ),
        entity: AffectedEntity {
            entity_type: s.entity_type.to_owned(),
            id: s.entity_id.clone(),
            name: s.entity_id.clone(),
        },
        metrics: AnomalyMetrics {
            baseline_value: 0.0,
            observed_value: s.observed,
            deviation: s.observed - s.threshold,
            threshold: s.threshold,
        },
        at_ms: ev.timestamp_ms,
        window_ms: one_event_window(ev),
        sample_events: vec![event_id.to_owned()],
    })
}
