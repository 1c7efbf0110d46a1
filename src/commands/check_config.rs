//! `sentinel check-config FILE`: validates a configuration and reports every error with key and line.

use std::path::Path;

use sentinel_dataflows::act::ActionSpec;

use crate::config::actions::WebhookAction;
use crate::config::SentinelConfig;

/// Entry point.
pub fn main(args: Vec<String>) -> Result<(), String> {
    let [path] = args.as_slice() else {
        return Err("usage: sentinel check-config FILE".into());
    };
    let cfg = SentinelConfig::load(Path::new(path)).map_err(|e| e.to_string())?;
    let enabled = cfg.detectors.iter().filter(|d| d.enabled).count();
    println!("{path}: ok ({} detectors, {enabled} enabled)", cfg.detectors.len());
    // What each detector will do, as the planner sees it: integrations' webhooks included.
    let resolved = cfg.actions();
    for d in &cfg.detectors {
        let actions: Vec<String> = match resolved.by_detector.get(d.anomaly_detector_id()) {
            Some(specs) => specs.iter().map(|s| describe(s, &resolved.webhooks)).collect(),
            None => d.actions.iter().map(|a| a.kind().to_owned()).collect(),
        };
        println!(
            "  {:<24} {:?} enabled={} actions=[{}]",
            d.id,
            d.detector_type,
            d.enabled,
            actions.join("; ")
        );
    }
    Ok(())
}

/// One resolved action in a few words.
fn describe(spec: &ActionSpec, webhooks: &[(String, WebhookAction)]) -> String {
    match spec {
        ActionSpec::Shield {
            action,
            target,
            duration_ms,
            ..
        } => {
            let target = target.map_or("the anomaly's entity", |t| t.as_str());
            format!(
                "shield {} {target} for {}s",
                action.as_str(),
                duration_ms.div_ceil(1000)
            )
        }
        ActionSpec::Alert { receivers, .. } => format!("alert {}", receivers.join(", ")),
        ActionSpec::Incident {
            min_severity,
            min_score,
            ..
        } => format!("incident when {} and score >= {min_score}", min_severity.as_str()),
        ActionSpec::Webhook { hook, .. } => {
            let w = &webhooks[*hook].1;
            format!("webhook {}", w.name.as_deref().unwrap_or(&w.url))
        }
    }
}
