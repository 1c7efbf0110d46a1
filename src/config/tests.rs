use super::*;

#[test]
fn the_shipped_default_is_valid() {
    let cfg = SentinelConfig::parse(DEFAULT_CONFIG).unwrap();
    assert!(cfg.statistical_detectors().len() >= 6);
}

#[test]
fn accepts_the_seed_detector_shape() {
    let yaml = "detectors:\n  - id: abnormal-cost-spike\n    name: Abnormal Cost Spike Detector\n    type: statistical\n    enabled: true\n    config:\n      metric: cost_per_minute\n      strategy: zscore\n      threshold: 4.0\n      window: 5m\n    actions:\n      - type: alert\n        config:\n          severity: warning\n          receivers: [\"ops-team\"]\n";
    let cfg = SentinelConfig::parse(yaml).unwrap();
    let d = &cfg.statistical_detectors()[0];
    assert_eq!((d.window_ms, d.baseline.threshold), (300_000, 4.0));
}

fn error(yaml: &str) -> String {
    SentinelConfig::parse(yaml).unwrap_err().0
}

#[test]
fn errors_name_the_key_and_line() {
    let bad_metric = "detectors:\n  - id: a\n    type: statistical\n    config:\n      metric: cost_per_fortnight\n      threshold: 3\n      window: 1m\n";
    let e = error(bad_metric);
    assert!(e.contains("detectors[0].config.metric") && e.contains("line 5"), "{e}");
    let unknown = "job:\n  allowed_lateness: 5s\n  colour: blue\n";
    let e = error(unknown);
    assert!(e.contains("colour") && e.contains("line 3"), "{e}");
    let bad_type = "detectors:\n  - id: a\n    type: statistical\n    config:\n      metric: error_rate\n      threshold: lots\n      window: 1m\n";
    let e = error(bad_type);
    assert!(
        e.contains("detectors[0].config.threshold") && e.contains("line 6"),
        "{e}"
    );
    let dup = "detectors:\n  - id: a\n    type: statistical\n    config: {metric: error_rate, threshold: 3, window: 1m}\n  - id: a\n    type: statistical\n    config: {metric: error_rate, threshold: 3, window: 1m}\n";
    assert!(error(dup).contains("duplicate"));
}

#[test]
fn expands_environment_variables() {
    std::env::set_var("SENTINEL_TEST_TARGET", "file:/tmp/x");
    let cfg = SentinelConfig::parse("outputs:\n  target: ${SENTINEL_TEST_TARGET}\n").unwrap();
    assert_eq!(cfg.outputs.target, "file:/tmp/x");
    let e = error("outputs:\n  target: ${SENTINEL_SURELY_UNSET_VAR}\n");
    assert!(e.contains("line 2") && e.contains("SENTINEL_SURELY_UNSET_VAR"), "{e}");
}
