//! `sentinel check-config FILE`: validates a configuration and reports every error with key and line.

use std::path::Path;

use crate::config::SentinelConfig;

/// Entry point.
pub fn main(args: Vec<String>) -> Result<(), String> {
    let [path] = args.as_slice() else {
        return Err("usage: sentinel check-config FILE".into());
    };
    let cfg = SentinelConfig::load(Path::new(path)).map_err(|e| e.to_string())?;
    let enabled = cfg.detectors.iter().filter(|d| d.enabled).count();
    println!("{path}: ok ({} detectors, {enabled} enabled)", cfg.detectors.len());
    for d in &cfg.detectors {
        let actions: Vec<String> = d.actions.iter().map(|a| a.kind().to_owned()).collect();
        println!(
            "  {:<24} {:?} enabled={} actions=[{}]",
            d.id,
            d.detector_type,
            d.enabled,
            actions.join(", ")
        );
    }
    let webhooks = &cfg.integrations.webhooks;
    if !webhooks.is_empty() {
        let names: Vec<&str> = webhooks.iter().map(|w| w.name.as_deref().unwrap_or(&w.url)).collect();
        println!("  integrations.webhooks    {}", names.join(", "));
    }
    Ok(())
}
