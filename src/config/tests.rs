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

/// A small model file in a fresh temporary directory.
fn model_file(name: &str) -> std::path::PathBuf {
    use sentinel_dataflows::ml::{FeatureSpec, LinearModel, ModelFile};
    let dir = std::env::temp_dir().join(format!("sentinel-config-{}-{name}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let spec = FeatureSpec {
        buckets_log2: 10,
        ..FeatureSpec::default()
    };
    let path = dir.join("model.bin");
    ModelFile {
        model: LinearModel {
            spec,
            weights: vec![0.0; spec.buckets()],
            bias: 0.0,
        },
        threshold: 0.9,
        description: String::new(),
    }
    .save(&path)
    .unwrap();
    path
}

#[test]
fn accepts_both_seed_shapes_of_the_ml_detector() {
    let model = model_file("shapes");
    let nested = format!(
        "detectors:\n  - id: prompt-injection-ml\n    type: ml\n    config:\n      model: {}\n      threshold: 0.85\n      features: [\"prompt_text\", \"response_text\"]\n",
        model.display()
    );
    let cfg = SentinelConfig::parse(&nested).unwrap();
    let ml = cfg.detectors[0].ml().unwrap();
    assert_eq!((ml.threshold, ml.features.len()), (Some(0.85), 2));
    let beside = format!(
        "detectors:\n  - id: prompt-injection-ml\n    type: ml\n    model: {}\n    threshold: 0.85\n",
        model.display()
    );
    let cfg = SentinelConfig::parse(&beside).unwrap();
    let ml = cfg.detectors[0].ml().unwrap();
    assert_eq!(
        (ml.threshold, ml.features.clone()),
        (Some(0.85), vec!["prompt_text".to_owned()])
    );
    assert!(cfg.statistical_detectors().is_empty());
}

#[test]
fn a_missing_or_corrupt_model_or_an_unknown_feature_fails_at_load() {
    let e = error("detectors:\n  - id: m\n    type: ml\n    config:\n      model: /nonexistent/sentinel/model.bin\n");
    assert!(
        e.contains("detectors[0].config.model")
            && e.contains("line 5")
            && e.contains("/nonexistent/sentinel/model.bin"),
        "{e}"
    );
    let model = model_file("corrupt");
    let mut bytes = std::fs::read(&model).unwrap();
    bytes[60] ^= 0xff;
    std::fs::write(&model, bytes).unwrap();
    let e = error(&format!(
        "detectors:\n  - id: m\n    type: ml\n    config:\n      model: {}\n",
        model.display()
    ));
    assert!(e.contains("checksum") && e.contains("line 5"), "{e}");
    let good = model_file("features");
    let e = error(&format!(
        "detectors:\n  - id: m\n    type: ml\n    config:\n      model: {}\n      features: [embedding]\n",
        good.display()
    ));
    assert!(
        e.contains("detectors[0].config.features") && e.contains("embedding"),
        "{e}"
    );
    let e = error("detectors:\n  - id: m\n    type: ml\n    config:\n      threshold: 0.5\n");
    assert!(e.contains("model"), "{e}");
}

#[test]
fn actions_are_typed_in_the_seed_shapes() {
    use actions::ShieldKind;
    use sentinel_dataflows::act::WebhookEvent;
    use sentinel_dataflows::act::{Priority, TargetKind};
    let yaml = r#"
detectors:
  - id: prompt-injection-rules
    type: statistical
    config: {metric: error_rate, threshold: 3, window: 1m}
    actions:
      - type: shield
        config:
          endpoint: shield.example.com:9090
          action: block
          target: request
          duration: 1h
          reason: "Prompt injection attack detected"
          parameters: {block_type: immediate, notify_user: true}
      - type: alert
        config: {severity: critical, receivers: [security-team, pagerduty-security]}
      - type: incident
        config: {auto_create: true, severity: P1}
      - type: webhook
        config:
          url: https://dashboard.example.com/api/events
          events: [anomaly.detected, alert.triggered]
          filter: {severity: [critical]}
          retry: {enabled: true, max_attempts: 3, backoff: exponential}
          timeout: 10s
integrations:
  webhooks:
    - name: custom-analytics
      url: https://analytics.example.com/api/sentinel-events
      events: [anomaly.detected, anomaly.resolved]
      headers: {X-Source: sentinel}
"#;
    let cfg = SentinelConfig::parse(yaml).unwrap();
    let actions = &cfg.detectors[0].actions;
    let kinds: Vec<&str> = actions.iter().map(ActionConfig::kind).collect();
    assert_eq!(kinds, ["shield", "alert", "incident", "webhook"]);
    let ActionConfig::Shield(shield) = &actions[0] else {
        panic!()
    };
    assert_eq!(
        (shield.action, shield.target, shield.duration),
        (
            ShieldKind::Block,
            Some(TargetKind::Request),
            Some(DurationValue(3_600_000))
        )
    );
    let ActionConfig::Incident(incident) = &actions[2] else {
        panic!()
    };
    assert_eq!(incident.severity, Some(Priority::P1));
    assert_eq!(
        cfg.integrations.webhooks[0].events,
        [WebhookEvent::AnomalyDetected, WebhookEvent::AnomalyResolved]
    );
    // critical/warning/info map to P1..P3.
    let mapped = yaml.replace("severity: P1", "severity: warning");
    let cfg = SentinelConfig::parse(&mapped).unwrap();
    let ActionConfig::Incident(incident) = &cfg.detectors[0].actions[2] else {
        panic!()
    };
    assert_eq!(incident.severity, Some(Priority::P2));
}

#[test]
fn an_unknown_action_type_or_key_fails_with_key_and_line() {
    let base = "detectors:\n  - id: a\n    type: statistical\n    config: {metric: error_rate, threshold: 3, window: 1m}\n    actions:\n";
    let e = error(&format!(
        "{base}      - type: nonsense_action\n        config: {{severity: warning}}\n"
    ));
    assert!(
        e.contains("detectors[0].actions[0].type") && e.contains("line 6") && e.contains("nonsense_action"),
        "{e}"
    );
    let e = error(&format!(
        "{base}      - type: alert\n        config:\n          receivers: [ops]\n          colour: red\n"
    ));
    assert!(
        e.contains("detectors[0].actions[0].config.colour") && e.contains("line 9"),
        "{e}"
    );
    let e = error(&format!(
        "{base}      - type: shield\n        config: {{action: obliterate}}\n"
    ));
    assert!(
        e.contains("detectors[0].actions[0].config.action") && e.contains("obliterate"),
        "{e}"
    );
    let e = error(&format!(
        "{base}      - type: webhook\n        config: {{url: x, events: [anomaly.exploded]}}\n"
    ));
    assert!(e.contains("anomaly.exploded"), "{e}");
}

#[test]
fn the_nab_config_runs_a_seasonal_detector_with_a_cooldown() {
    let cfg = SentinelConfig::parse(include_str!("../../examples/nab.yaml")).unwrap();
    let d = &cfg.statistical_detectors()[0];
    assert_eq!(d.cooldown_ms, 100 * d.window_ms);
    assert_eq!(
        d.seasonal.map(|s| s.period),
        Some(SeasonPeriod::Auto {
            learn_windows: 600,
            min_correlation: 0.6
        })
    );
    let daily = "detectors:\n  - id: a\n    type: statistical\n    config:\n      metric: error_rate\n      threshold: 3\n      window: 1h\n      seasonality:\n        period: 1d\n";
    let d = &SentinelConfig::parse(daily).unwrap().statistical_detectors()[0];
    assert_eq!(d.seasonal.map(|s| s.period), Some(SeasonPeriod::Windows(24)));
    let ragged = daily.replace("period: 1d", "period: 90m");
    let e = error(&ragged);
    assert!(
        e.contains("detectors[0].config.seasonality.period") && e.contains("line 9") && e.contains("whole number"),
        "{e}"
    );
    let e = error(&daily.replace("period: 1d", "period: weekly"));
    assert!(e.contains("seasonality.period") && e.contains("auto"), "{e}");
}

#[test]
fn shadow_agents_follow_the_seed_keys_and_profiles() {
    let none = |_: &str| None;
    let key = |_: &str| Some("sk-test".to_owned());
    // Off by default: no judges, no key needed.
    assert!(SentinelConfig::parse("detectors: []\n")
        .unwrap()
        .shadow_agents
        .resolve(&none)
        .unwrap()
        .is_none());
    let high =
        SentinelConfig::parse("shadow_agents:\n  enabled: true\n  profile: high_security\n  api_key: sk-inline\n")
            .unwrap();
    assert_eq!(
        high.judges().unwrap().unwrap().judge.api_key.as_deref(),
        Some("sk-inline")
    );
    let mut from_env = high.shadow_agents.clone();
    from_env.api_key = None;
    let j = from_env.resolve(&key).unwrap().unwrap();
    assert_eq!(j.judge.provider, sentinel_judges::ProviderKind::Anthropic);
    assert_eq!(j.judge.api_key.as_deref(), Some("sk-test"));
    assert_eq!((j.judge.temperature, j.decider.fallback_to_rules), (0.0, false));
    let t = high.policies().unwrap().default.thresholds;
    assert_eq!((t.medium, t.high), (0.5, 0.8));
    let perf = SentinelConfig::parse(
        "shadow_agents:\n  enabled: true\n  profile: performance\n  timeout_ms: 1500\n  api_key: k\n",
    )
    .unwrap()
    .shadow_agents
    .resolve(&key)
    .unwrap()
    .unwrap();
    assert_eq!(
        perf.judge.timeout,
        std::time::Duration::from_millis(1500),
        "explicit keys win"
    );
    assert!(perf.decider.fallback_to_rules);
    // A missing key is named at start, with where it should come from.
    let cfg = SentinelConfig::parse("shadow_agents:\n  enabled: false\n  llm_provider: openai\n").unwrap();
    let mut sa = cfg.shadow_agents.clone();
    sa.enabled = true;
    let (k, why) = sa.resolve(&none).unwrap_err();
    assert!(
        k == "shadow_agents.api_key" && why.contains("OPENAI_API_KEY"),
        "{k}: {why}"
    );
}

#[test]
fn bad_shadow_agent_keys_name_the_key_and_line() {
    let e = error("detectors: []\nshadow_agents:\n  enabled: true\n  llm_provider: bard\n");
    assert!(e.contains("shadow_agents.llm_provider") && e.contains("line 4"), "{e}");
    let e = error(
        "shadow_agents:\n  enabled: true\n  llm_provider: local\n  llm_model: m\n  llm_base_url: localhost:11434\n",
    );
    assert!(e.contains("shadow_agents.llm_base_url") && e.contains("line 5"), "{e}");
    let e = error("shadow_agents:\n  medium_risk_threshold: 0.99\n  high_risk_threshold: 0.9\n");
    assert!(
        e.contains("shadow_agents.medium_risk_threshold") && e.contains("line 2"),
        "{e}"
    );
    let e = error("guards:\n  profile: balanced\nshadow_agents:\n  profile: performance\n");
    assert!(e.contains("shadow_agents.profile") && e.contains("one place"), "{e}");
    let e = error("shadow_agents:\n  enabled: true\n  llm_provider: local\n  llm_model: m\n  timeout_ms: 0\n");
    assert!(e.contains("shadow_agents.timeout_ms") && e.contains("line 5"), "{e}");
    let e = error("shadow_agents:\n  enable_judges: true\n");
    assert!(e.contains("enable_judges") && e.contains("line 2"), "{e}");
}

#[test]
fn actions_resolve_for_the_planner_with_the_integrations_webhooks_on_every_detector() {
    use sentinel_dataflows::act::{ActionSpec, Priority, ShieldActionType, TargetKind};
    use sentinel_dataflows::model::Severity;
    let yaml = r#"
detectors:
  - id: cost-spike
    type: statistical
    config: {metric: cost_per_minute, threshold: 3, window: 1m}
    actions:
      - type: shield
        config: {action: rate_limit, target: user, parameters: {limit: 10, window: 1m}}
      - type: incident
        config: {severity: warning, min_score: 0.5}
      - type: webhook
        config: {url: "http://127.0.0.1:1/off", enabled: false}
      - type: webhook
        config: {url: "http://127.0.0.1:1/slack", filter: {severity: [critical]}}
  - id: off
    type: statistical
    enabled: false
    config: {metric: error_rate, threshold: 3, window: 1m}
integrations:
  webhooks:
    - name: analytics
      url: http://127.0.0.1:1/analytics
"#;
    let cfg = SentinelConfig::parse(yaml).unwrap();
    let resolved = cfg.actions();
    assert_eq!(resolved.by_detector.keys().collect::<Vec<_>>(), ["cost-spike"]);
    let specs = &resolved.by_detector["cost-spike"];
    let ActionSpec::Shield {
        action,
        target,
        duration_ms,
        parameters,
        ..
    } = &specs[0]
    else {
        panic!("{specs:?}")
    };
    assert_eq!(
        (*action, *target, *duration_ms),
        (ShieldActionType::RateLimit, Some(TargetKind::User), 3_600_000)
    );
    assert_eq!(
        (parameters["limit"].as_str(), parameters["window"].as_str()),
        ("10", "60s")
    );
    assert_eq!(
        specs[1],
        ActionSpec::Incident {
            auto_create: true,
            priority: Some(Priority::P2),
            min_severity: Severity::Critical,
            min_score: 0.5
        }
    );
    // The disabled webhook is gone; the detector's own comes first, then the shared one.
    let hooks: Vec<&str> = specs[2..]
        .iter()
        .map(|s| match s {
            ActionSpec::Webhook { hook, .. } => resolved.webhooks[*hook].1.url.as_str(),
            other => panic!("{other:?}"),
        })
        .collect();
    assert_eq!(hooks, ["http://127.0.0.1:1/slack", "http://127.0.0.1:1/analytics"]);
    assert_eq!(
        specs[2],
        ActionSpec::Webhook {
            hook: 1,
            severities: vec![Severity::Critical],
            events: Vec::new(),
        }
    );
}

#[test]
fn the_actions_example_resolves_receivers_endpoints_and_templates() {
    let text = include_str!("../../examples/actions.yaml");
    let cfg = SentinelConfig::parse(text).unwrap();
    let act = cfg.act_config().unwrap().expect("the example has actions");
    assert_eq!(
        act.by_detector["prompt-injection"].len(),
        5,
        "3 of its own and the 2 integrations webhooks"
    );
    let delivery = cfg.delivery().unwrap();
    assert_eq!(delivery.receivers.len(), 3);
    assert_eq!(delivery.webhooks.len(), 2);
    assert!(delivery.webhooks[1].template.is_some());
    assert_eq!(delivery.shield.as_ref().unwrap().endpoint, "127.0.0.1:9090");
    assert!(delivery.delivers());
    // A receiver type, a template field or a silence label that does not exist is a load error
    // naming its key and line.
    for (bad, key) in [
        ("type: slack", "receivers[1]"),
        ("{{ .anomaly.score }}", "integrations.webhooks[1].template"),
    ] {
        let broken = text.replacen(
            bad,
            if bad.starts_with("type") {
                "type: teams"
            } else {
                "{{ .anomaly.scor }}"
            },
            1,
        );
        let err = SentinelConfig::parse(&broken).unwrap_err().0;
        assert!(err.contains(key) && err.contains("(line"), "{err}");
    }
    let silenced = text.replacen(
        "  resolve_after_windows: 3\n",
        "  resolve_after_windows: 3\n  silences:\n    - {id: s, matchers: [\"tenant=acme\"], starts_at: \"2024-06-01T00:00:00Z\", ends_at: \"2024-06-02T00:00:00Z\"}\n",
        1,
    );
    let err = SentinelConfig::parse(&silenced).unwrap_err().0;
    assert!(
        err.contains("alerting.silences[0].matchers[0]") && err.contains("unknown label `tenant`"),
        "{err}"
    );
}

#[test]
fn serve_keys_come_from_the_environment_and_weak_ones_fail_with_key_and_line() {
    std::env::set_var("SENTINEL_TEST_SERVE_ADMIN_KEY", "adm-5f0c2a9e41d87b36");
    let text = "serve:\n  api_keys:\n    - key: ${SENTINEL_TEST_SERVE_ADMIN_KEY}\n      scope: admin\n    - key: short\n  max_anomalies: 1000\n";
    let e = SentinelConfig::parse(text).unwrap_err().0;
    assert!(e.contains("serve.api_keys[1].key") && e.contains("line 5"), "{e}");
    let cfg = SentinelConfig::parse(&text.replace("short", "read-77c1b0d94e2a5f13")).unwrap();
    let keys = cfg.serve.keys().unwrap();
    use sentinel_serve::auth::Scope;
    assert_eq!(keys.check(Some("Bearer adm-5f0c2a9e41d87b36"), Scope::Admin), Ok(()));
    assert!(keys.check(Some("Bearer read-77c1b0d94e2a5f13"), Scope::Admin).is_err());
    let e = SentinelConfig::parse("serve:\n  api_keys:\n    - key: abcdefghijklmnopq\n      scope: owner\n")
        .unwrap_err()
        .0;
    assert!(e.contains("serve.api_keys[0].scope") && e.contains("line 4"), "{e}");
}
