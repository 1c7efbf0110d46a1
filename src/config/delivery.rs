//! Where actions are delivered: the top-level `receivers:`, `integrations.shield`,
//! `integrations.incident_manager`, the webhooks, and `delivery:` (how hard to try), resolved
//! into the delivery's config. Templates are compiled and tried on a sample of every event
//! they will render at load, so a typo fails the start, not a delivery.

use std::collections::BTreeMap;
use std::time::Duration;

use sentinel_connectors::http::retry::{Growth, RetryPolicy};
use sentinel_connectors::http::signing::WebhookSecret;
use sentinel_dataflows::act::{AlertRecord, AlertStatus, NotifyReason, WebhookEvent};
use sentinel_dataflows::hash::StableId;
use sentinel_dataflows::model::{AffectedEntity, Anomaly, AnomalyDraft, AnomalyMetrics, DetectorType, Severity};
use sentinel_deliver::{
    template_context, DeliveryConfig, HttpTarget, IncidentManager, Receiver, ShieldTarget, Subject, Template,
};
use serde::Deserialize;

use super::actions::{Backoff, RetryConfig, WebhookAction};
use super::values::DurationValue;

/// One entry of the top-level `receivers:` list; `type` says what it is.
#[derive(Clone, Debug, PartialEq, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ReceiverConfig {
    /// A generic webhook: the alert as JSON, or the template's rendering.
    Webhook(HttpEndpoint),
    /// A Slack incoming webhook.
    Slack(HttpEndpoint),
    /// PagerDuty Events API v2.
    Pagerduty(PagerDutyConfig),
}

impl ReceiverConfig {
    /// The name alerts use in `receivers: [...]`.
    pub fn name(&self) -> &str {
        match self {
            ReceiverConfig::Webhook(e) | ReceiverConfig::Slack(e) => &e.name,
            ReceiverConfig::Pagerduty(p) => &p.name,
        }
    }
}

/// An HTTP endpoint's settings.
#[derive(Clone, Debug, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HttpEndpoint {
    /// Its name (a receiver's, as alerts name it).
    #[serde(default)]
    pub name: String,
    /// Where to POST.
    pub url: String,
    /// Extra headers (`${ENV}` is expanded at load).
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
    /// Signs bodies (Standard Webhooks: `whsec_...` or raw).
    #[serde(default)]
    pub secret: Option<String>,
    /// Body template (webhook receivers).
    #[serde(default)]
    pub template: Option<String>,
    /// Retries.
    #[serde(default)]
    pub retry: Option<RetryConfig>,
    /// Per-attempt timeout.
    #[serde(default)]
    pub timeout: Option<DurationValue>,
}

/// `type: pagerduty`.
#[derive(Clone, Debug, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PagerDutyConfig {
    /// The name alerts use.
    pub name: String,
    /// The service's integration key.
    pub routing_key: String,
    /// The Events API endpoint.
    #[serde(default = "pagerduty_url")]
    pub url: String,
    /// Retries.
    #[serde(default)]
    pub retry: Option<RetryConfig>,
    /// Per-attempt timeout.
    #[serde(default)]
    pub timeout: Option<DurationValue>,
}

fn pagerduty_url() -> String {
    "https://events.pagerduty.com/v2/enqueue".into()
}

/// `integrations.shield`.
#[derive(Clone, Debug, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ShieldIntegration {
    /// Shield's gRPC endpoint, `host:port`, for actions that name none.
    pub endpoint: String,
    /// Per-attempt timeout.
    #[serde(default)]
    pub timeout: Option<DurationValue>,
    /// Retries.
    #[serde(default)]
    pub retry: Option<RetryConfig>,
}

/// `integrations.incident_manager`.
#[derive(Clone, Debug, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IncidentManagerIntegration {
    /// Base URL; the seed's `/api/v1/incidents` is appended.
    pub url: String,
    /// Sent as `Authorization: Bearer <api_key>`.
    #[serde(default)]
    pub api_key: Option<String>,
    /// Per-attempt timeout.
    #[serde(default)]
    pub timeout: Option<DurationValue>,
    /// Retries.
    #[serde(default)]
    pub retry: Option<RetryConfig>,
}

/// The top-level `delivery:` section.
#[derive(Clone, Debug, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DeliverySettings {
    /// Deliveries in flight at once.
    pub concurrency: usize,
    /// Deliveries queued per lane before the outbox reader waits.
    pub queue: usize,
    /// Timeout of a call without its own.
    pub timeout: DurationValue,
    /// The first wait before a retry.
    pub retry_base: DurationValue,
    /// The longest wait between retries.
    pub retry_max: DurationValue,
    /// Attempts of a call without its own `retry`.
    pub max_attempts: u32,
    /// When the input ends, how long to wait for deliveries still out.
    pub drain_timeout: DurationValue,
    /// Where the action streams are kept for delivery when the output is stdout or none.
    pub outbox_dir: String,
}

impl Default for DeliverySettings {
    fn default() -> Self {
        DeliverySettings {
            concurrency: 32,
            queue: 64,
            timeout: DurationValue(10_000),
            retry_base: DurationValue(500),
            retry_max: DurationValue(30_000),
            max_attempts: 5,
            drain_timeout: DurationValue(60_000),
            outbox_dir: "sentinel-outbox".into(),
        }
    }
}

impl DeliverySettings {
    fn policy(&self, retry: Option<&RetryConfig>) -> RetryPolicy {
        let base = RetryPolicy {
            max_attempts: self.max_attempts.max(1),
            growth: Growth::Exponential,
            base: Duration::from_millis(self.retry_base.0),
            max: Duration::from_millis(self.retry_max.0),
            ..RetryPolicy::default()
        };
        match retry {
            None => base,
            Some(r) if !r.enabled => RetryPolicy {
                max_attempts: 1,
                ..base
            },
            Some(r) => RetryPolicy {
                max_attempts: r.max_attempts.max(1),
                growth: match r.backoff {
                    Backoff::Exponential => Growth::Exponential,
                    Backoff::Linear => Growth::Linear,
                    Backoff::Fixed => Growth::Fixed,
                },
                ..base
            },
        }
    }

    fn timeout(&self, t: Option<DurationValue>) -> Duration {
        Duration::from_millis(t.unwrap_or(self.timeout).0.max(1))
    }
}

/// Resolves where deliveries go. `Err((key, why))` names the config key.
pub fn resolve(
    receivers: &[ReceiverConfig],
    webhooks: &[(String, WebhookAction)],
    shield: Option<&ShieldIntegration>,
    incidents: Option<&IncidentManagerIntegration>,
    settings: &DeliverySettings,
) -> Result<DeliveryConfig, (String, String)> {
    let mut out = DeliveryConfig {
        concurrency: settings.concurrency.max(1),
        queue: settings.queue.max(1),
        retry: settings.policy(None),
        timeout: settings.timeout(None),
        ..DeliveryConfig::default()
    };
    for (i, r) in receivers.iter().enumerate() {
        let key = format!("receivers[{i}]");
        let name = r.name();
        if name.trim().is_empty() {
            return Err((format!("{key}.name"), "a receiver needs a name".into()));
        }
        if out.receivers.contains_key(name) {
            return Err((format!("{key}.name"), format!("duplicate receiver `{name}`")));
        }
        let receiver = match r {
            ReceiverConfig::Webhook(e) => {
                Receiver::Webhook(http_target(name, e, settings, &key, &[WebhookEvent::AlertTriggered])?)
            }
            ReceiverConfig::Slack(e) => {
                if e.template.is_some() {
                    return Err((
                        format!("{key}.template"),
                        "Slack receivers send their own message; use a `webhook` receiver for a template".into(),
                    ));
                }
                Receiver::Slack(http_target(name, e, settings, &key, &[])?)
            }
            ReceiverConfig::Pagerduty(p) => {
                if p.routing_key.trim().is_empty() {
                    return Err((format!("{key}.routing_key"), "must not be empty".into()));
                }
                let endpoint = HttpEndpoint {
                    name: p.name.clone(),
                    url: p.url.clone(),
                    headers: BTreeMap::new(),
                    secret: None,
                    template: None,
                    retry: p.retry.clone(),
                    timeout: p.timeout,
                };
                Receiver::PagerDuty {
                    target: http_target(name, &endpoint, settings, &key, &[])?,
                    routing_key: p.routing_key.clone(),
                }
            }
        };
        out.receivers.insert(name.to_owned(), receiver);
    }
    for (i, (key, w)) in webhooks.iter().enumerate() {
        let endpoint = HttpEndpoint {
            name: String::new(),
            url: w.url.clone(),
            headers: w.headers.clone(),
            secret: w.secret.clone(),
            template: w.template.clone(),
            retry: w.retry.clone(),
            timeout: w.timeout,
        };
        let name = w.name.clone().unwrap_or_else(|| format!("webhook-{i}"));
        let events = if w.events.is_empty() {
            vec![
                WebhookEvent::AnomalyDetected,
                WebhookEvent::AnomalyResolved,
                WebhookEvent::AlertTriggered,
            ]
        } else {
            w.events.clone()
        };
        out.webhooks
            .push(http_target(&name, &endpoint, settings, key, &events)?);
    }
    out.shield = shield.map(|s| ShieldTarget {
        endpoint: s.endpoint.clone(),
        timeout: settings.timeout(s.timeout),
        retry: settings.policy(s.retry.as_ref()),
    });
    if let Some(m) = incidents {
        let mut headers = BTreeMap::new();
        if let Some(k) = &m.api_key {
            headers.insert("Authorization".to_owned(), format!("Bearer {k}"));
        }
        let endpoint = HttpEndpoint {
            name: String::new(),
            url: m.url.clone(),
            headers,
            secret: None,
            template: None,
            retry: m.retry.clone(),
            timeout: m.timeout,
        };
        out.incident_manager = Some(IncidentManager {
            target: http_target(
                "incident-manager",
                &endpoint,
                settings,
                "integrations.incident_manager",
                &[],
            )?,
        });
    }
    Ok(out)
}

fn http_target(
    name: &str,
    e: &HttpEndpoint,
    settings: &DeliverySettings,
    key: &str,
    events: &[WebhookEvent],
) -> Result<HttpTarget, (String, String)> {
    if !(e.url.starts_with("http://") || e.url.starts_with("https://")) {
        return Err((
            format!("{key}.url"),
            format!("expected an http:// or https:// URL, got `{}`", e.url),
        ));
    }
    let secret = match &e.secret {
        None => None,
        Some(s) => Some(WebhookSecret::parse(s).map_err(|why| (format!("{key}.secret"), why))?),
    };
    let template = match &e.template {
        None => None,
        Some(text) => {
            let t = Template::compile(text).map_err(|why| (format!("{key}.template"), why))?;
            check_template(&t, events).map_err(|why| (format!("{key}.template"), why))?;
            Some(t)
        }
    };
    Ok(HttpTarget {
        name: name.to_owned(),
        url: e.url.clone(),
        headers: e.headers.iter().map(|(k, v)| (k.clone(), v.clone())).collect(),
        secret,
        template,
        timeout: settings.timeout(e.timeout),
        retry: settings.policy(e.retry.as_ref()),
    })
}

/// Renders the template on a sample of each event it will see.
fn check_template(t: &Template, events: &[WebhookEvent]) -> Result<(), String> {
    let anomaly = sample_anomaly();
    let alert = sample_alert(&anomaly);
    for event in events {
        let subject = match event {
            WebhookEvent::AnomalyDetected | WebhookEvent::AnomalyResolved => Subject::Anomaly(&anomaly),
            WebhookEvent::AlertTriggered => Subject::Alert(&alert),
        };
        t.check(&template_context(event.as_str(), &anomaly.timestamp, subject))
            .map_err(|e| format!("{e} (rendering a sample `{}` event)", event.as_str()))?;
    }
    Ok(())
}

fn sample_anomaly() -> Anomaly {
    let mut a = Anomaly::build(AnomalyDraft {
        id_parts: &[b"sample"],
        detector_id: "prompt-injection",
        detector_type: DetectorType::Rule,
        severity: Severity::Critical,
        score: 0.97,
        title: "Prompt injection".into(),
        description: "A sample anomaly to check templates.".into(),
        entity: AffectedEntity {
            entity_type: "user".into(),
            id: "u-1".into(),
            name: "u-1".into(),
        },
        metrics: AnomalyMetrics {
            baseline_value: 0.0,
            observed_value: 1.0,
            deviation: 0.0,
            threshold: 0.8,
        },
        at_ms: 1_717_200_000_000,
        window_ms: (1_717_200_000_000, 1_717_200_000_000),
        sample_events: vec!["evt-1".into()],
    });
    a.incident_id = Some("0".repeat(32));
    a
}

fn sample_alert(a: &Anomaly) -> AlertRecord {
    AlertRecord {
        id: StableId::of(&[b"sample"]),
        group_key: "prompt-injection|user|u-1|security-team".into(),
        sequence: 0,
        reason: NotifyReason::New,
        status: AlertStatus::Firing,
        severity: a.severity,
        title: a.title.clone(),
        receivers: vec!["security-team".into()],
        detector_id: a.detector_id.clone(),
        entities: vec![a.affected_entity.clone()],
        firing: vec![a.id.clone()],
        resolved: Vec::new(),
        timestamp: a.timestamp.clone(),
    }
}
