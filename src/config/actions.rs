//! A detector's `actions:`, typed at load time in the integration seed's shapes, so an unknown
//! type or key fails at start with its key and line. The actions stage carries them out.

use std::collections::BTreeMap;

use serde::Deserialize;

use sentinel_dataflows::act::{
    ActConfig, ActionSpec, GroupTiming, Matcher, Priority, ShieldActionType, Silence, TargetKind, WebhookEvent, LABELS,
};
use sentinel_dataflows::model::Severity;

use super::values::DurationValue;

/// One entry of a detector's `actions:` list: `type` names the kind, `config` its settings.
#[derive(Clone, Debug, PartialEq, Deserialize)]
#[serde(tag = "type", content = "config", rename_all = "snake_case", deny_unknown_fields)]
pub enum ActionConfig {
    /// Ask Shield to block or rate-limit.
    Shield(ShieldAction),
    /// Notify named receivers.
    Alert(AlertAction),
    /// Open an incident in the incident manager.
    Incident(IncidentAction),
    /// Call a URL.
    Webhook(WebhookAction),
}

impl ActionConfig {
    /// The kind, as written in `type`.
    pub fn kind(&self) -> &'static str {
        match self {
            ActionConfig::Shield(_) => "shield",
            ActionConfig::Alert(_) => "alert",
            ActionConfig::Incident(_) => "incident",
            ActionConfig::Webhook(_) => "webhook",
        }
    }
}

/// `type: shield`.
#[derive(Clone, Debug, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ShieldAction {
    /// Shield's gRPC endpoint, `host:port`; the `integrations` default when absent.
    #[serde(default)]
    pub endpoint: Option<String>,
    /// What Shield does.
    pub action: ShieldKind,
    /// What it applies to.
    #[serde(default)]
    pub target: Option<TargetKind>,
    /// How long it lasts.
    #[serde(default)]
    pub duration: Option<DurationValue>,
    /// Reason shown to Shield's operators.
    #[serde(default)]
    pub reason: Option<String>,
    /// Kind-specific parameters.
    #[serde(default)]
    pub parameters: ShieldParameters,
}

/// Shield's action kinds a detector may ask for (Sentinel itself sends `unblock`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ShieldKind {
    /// Refuse the request or entity.
    Block,
    /// Limit the entity's request rate.
    RateLimit,
}

impl From<ShieldKind> for ShieldActionType {
    fn from(k: ShieldKind) -> Self {
        match k {
            ShieldKind::Block => ShieldActionType::Block,
            ShieldKind::RateLimit => ShieldActionType::RateLimit,
        }
    }
}

/// `parameters:` of a Shield action.
#[derive(Clone, Debug, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ShieldParameters {
    /// Requests allowed per `window` (rate_limit).
    #[serde(default)]
    pub limit: Option<u64>,
    /// The rate limit's window.
    #[serde(default)]
    pub window: Option<DurationValue>,
    /// How a block takes effect, e.g. `immediate`.
    #[serde(default)]
    pub block_type: Option<String>,
    /// Tell the user they were blocked.
    #[serde(default)]
    pub notify_user: Option<bool>,
}

/// `type: alert`.
#[derive(Clone, Debug, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AlertAction {
    /// The alert's severity; the anomaly's when absent.
    #[serde(default)]
    pub severity: Option<Severity>,
    /// Receiver names, from the top-level `receivers:`.
    pub receivers: Vec<String>,
}

/// `type: incident`.
#[derive(Clone, Debug, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IncidentAction {
    /// Open the incident without a person confirming it.
    #[serde(default = "yes")]
    pub auto_create: bool,
    /// `P1`..`P3`, or `critical`/`warning`/`info` (mapped to P1/P2/P3); from the anomaly's
    /// severity when absent.
    #[serde(default)]
    pub severity: Option<Priority>,
    /// Only anomalies at least this severe (default critical)...
    #[serde(default)]
    pub min_severity: Option<Severity>,
    /// ...scoring at least this (default 0.9).
    #[serde(default)]
    pub min_score: Option<f64>,
}

/// `type: webhook` (and each `integrations.webhooks` entry).
#[derive(Clone, Debug, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WebhookAction {
    /// Name, for logs and deliveries.
    #[serde(default)]
    pub name: Option<String>,
    /// Off switch.
    #[serde(default = "yes")]
    pub enabled: bool,
    /// Where to POST.
    pub url: String,
    /// Extra headers (`${ENV}` is expanded at load).
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
    /// Signs each body, Standard Webhooks style (`webhook-id`, `webhook-timestamp`,
    /// `webhook-signature`): `whsec_<base64>` or raw text.
    #[serde(default)]
    pub secret: Option<String>,
    /// Which events it receives; all when empty.
    #[serde(default)]
    pub events: Vec<WebhookEvent>,
    /// Only anomalies matching this.
    #[serde(default)]
    pub filter: Option<WebhookFilter>,
    /// Body template; the record as JSON when absent.
    #[serde(default)]
    pub template: Option<String>,
    /// Retries on failure.
    #[serde(default)]
    pub retry: Option<RetryConfig>,
    /// Per-attempt timeout.
    #[serde(default)]
    pub timeout: Option<DurationValue>,
}

/// `filter:` of a webhook.
#[derive(Clone, Debug, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WebhookFilter {
    /// Severities that pass.
    #[serde(default)]
    pub severity: Vec<Severity>,
}

/// `retry:` of a webhook.
#[derive(Clone, Debug, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RetryConfig {
    /// Off switch.
    #[serde(default = "yes")]
    pub enabled: bool,
    /// Attempts in all, the first included.
    #[serde(default = "three")]
    pub max_attempts: u32,
    /// How the wait between attempts grows.
    #[serde(default)]
    pub backoff: Backoff,
}

/// How the wait between retries grows.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Backoff {
    /// Doubling.
    #[default]
    Exponential,
    /// Growing by the same step.
    Linear,
    /// Always the same.
    Fixed,
}

/// The seed's top-level `integrations:` section.
#[derive(Clone, Debug, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IntegrationsConfig {
    /// Custom webhooks that receive every matching event.
    #[serde(default)]
    pub webhooks: Vec<WebhookAction>,
    /// Shield's default gRPC endpoint.
    #[serde(default)]
    pub shield: Option<super::delivery::ShieldIntegration>,
    /// The incident manager.
    #[serde(default)]
    pub incident_manager: Option<super::delivery::IncidentManagerIntegration>,
}

/// How long a Shield action lasts when its config gives no `duration`.
pub const DEFAULT_SHIELD_DURATION_MS: u64 = 3_600_000;

/// The job's actions, resolved for the planner: each detector's list, with the
/// `integrations.webhooks` appended to every one, and the webhooks the `hook` indices name.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct ResolvedActions {
    /// Per detector id.
    pub by_detector: BTreeMap<String, Vec<ActionSpec>>,
    /// Every enabled webhook with its config key: the integrations' first, then the
    /// detectors', in order.
    pub webhooks: Vec<(String, WebhookAction)>,
}

impl ResolvedActions {
    /// Resolves `detectors` (config key, the detector id its anomalies carry, and actions)
    /// and the custom webhooks of `integrations`. Entries naming the same detector id add up.
    pub fn resolve<'a>(
        detectors: impl Iterator<Item = (String, &'a str, &'a [ActionConfig])>,
        integrations: &IntegrationsConfig,
    ) -> Self {
        let mut out = ResolvedActions::default();
        let mut shared = Vec::new();
        for (i, hook) in integrations.webhooks.iter().enumerate().filter(|(_, w)| w.enabled) {
            shared.push(out.webhook_spec(format!("integrations.webhooks[{i}]"), hook));
        }
        for (key, id, actions) in detectors {
            let specs: Vec<ActionSpec> = actions
                .iter()
                .enumerate()
                .filter_map(|(j, a)| out.spec(format!("{key}.actions[{j}].config"), a))
                .collect();
            out.by_detector.entry(id.to_owned()).or_default().extend(specs);
        }
        for specs in out.by_detector.values_mut() {
            specs.extend(shared.iter().cloned());
        }
        out
    }

    fn webhook_spec(&mut self, key: String, hook: &WebhookAction) -> ActionSpec {
        self.webhooks.push((key, hook.clone()));
        ActionSpec::Webhook {
            hook: self.webhooks.len() - 1,
            severities: hook.filter.as_ref().map(|f| f.severity.clone()).unwrap_or_default(),
            events: hook.events.clone(),
        }
    }

    fn spec(&mut self, key: String, action: &ActionConfig) -> Option<ActionSpec> {
        Some(match action {
            ActionConfig::Shield(s) => {
                let p = &s.parameters;
                let mut parameters = BTreeMap::new();
                if let Some(limit) = p.limit {
                    parameters.insert("limit".to_owned(), limit.to_string());
                }
                if let Some(window) = p.window {
                    parameters.insert("window".to_owned(), format!("{}s", window.0.div_ceil(1000)));
                }
                if let Some(kind) = &p.block_type {
                    parameters.insert("block_type".to_owned(), kind.clone());
                }
                if let Some(notify) = p.notify_user {
                    parameters.insert("notify_user".to_owned(), notify.to_string());
                }
                ActionSpec::Shield {
                    action: s.action.into(),
                    target: s.target,
                    duration_ms: s.duration.map_or(DEFAULT_SHIELD_DURATION_MS, |d| d.0),
                    reason: s.reason.clone(),
                    parameters,
                    endpoint: s.endpoint.clone(),
                }
            }
            ActionConfig::Alert(a) => ActionSpec::Alert {
                severity: a.severity,
                receivers: a.receivers.clone(),
            },
            ActionConfig::Incident(i) => ActionSpec::Incident {
                auto_create: i.auto_create,
                priority: i.severity,
                min_severity: i.min_severity.unwrap_or(Severity::Critical),
                min_score: i.min_score.unwrap_or(0.9),
            },
            ActionConfig::Webhook(w) if w.enabled => self.webhook_spec(key, w),
            ActionConfig::Webhook(_) => return None,
        })
    }
}

fn yes() -> bool {
    true
}

fn three() -> u32 {
    3
}

/// The top-level `alerting:` section: how alerts are grouped, correlated, resolved and held back.
/// The defaults are Alertmanager's.
#[derive(Clone, Debug, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AlertingConfig {
    /// Labels that make an alert group (`detector_id`, `detector_type`, `severity`,
    /// `entity_type`, `entity_id`); the receivers always do.
    pub group_by: Vec<String>,
    /// How long a new group waits for more alerts before its first notification.
    pub group_wait: DurationValue,
    /// How long after a notification the group's changes go out.
    pub group_interval: DurationValue,
    /// How long an unchanged, firing group waits before it is notified again.
    pub repeat_interval: DurationValue,
    /// Anomalies on one entity this close in time are related and share an incident.
    pub correlate_within: DurationValue,
    /// A condition resolves after this many of its detector's windows without an anomaly.
    pub resolve_after_windows: u32,
    /// A critical alert on an entity holds back that entity's warnings and infos.
    pub inhibit_lesser: bool,
    /// Silences: alerts matching every matcher are not notified between `starts_at` and `ends_at`.
    pub silences: Vec<SilenceConfig>,
}

impl Default for AlertingConfig {
    fn default() -> Self {
        let d = ActConfig::default();
        AlertingConfig {
            group_by: d.group_by,
            group_wait: DurationValue(d.timing.group_wait_ms),
            group_interval: DurationValue(d.timing.group_interval_ms),
            repeat_interval: DurationValue(d.timing.repeat_interval_ms),
            correlate_within: DurationValue(d.correlate_within_ms),
            resolve_after_windows: d.resolve_after_windows,
            inhibit_lesser: d.inhibit,
            silences: Vec::new(),
        }
    }
}

/// One `alerting.silences` entry.
#[derive(Clone, Debug, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SilenceConfig {
    /// Names it in `actions_taken`.
    pub id: String,
    /// `label=value` or `label!=value`, as in Alertmanager.
    pub matchers: Vec<MatcherValue>,
    /// From (RFC 3339, event time).
    pub starts_at: TimestampValue,
    /// Until (exclusive).
    pub ends_at: TimestampValue,
    /// Who set it and why.
    #[serde(default)]
    pub comment: String,
}

/// A matcher written `label=value` or `label!=value`.
#[derive(Clone, Debug, PartialEq)]
pub struct MatcherValue(pub Matcher);

impl<'de> Deserialize<'de> for MatcherValue {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        let (label, value, negate) = match (text.split_once("!="), text.split_once('=')) {
            (Some((l, v)), _) => (l, v, true),
            (None, Some((l, v))) => (l, v, false),
            _ => {
                return Err(serde::de::Error::custom(format!(
                    "expected `label=value` or `label!=value`, got `{text}`"
                )))
            }
        };
        let label = label.trim();
        if !LABELS.contains(&label) {
            return Err(serde::de::Error::custom(format!(
                "unknown label `{label}`: expected one of {}",
                LABELS.join(", ")
            )));
        }
        Ok(MatcherValue(Matcher {
            label: label.to_owned(),
            value: value.trim().trim_matches('"').to_owned(),
            negate,
        }))
    }
}

/// An RFC 3339 time, in epoch ms.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TimestampValue(pub u64);

impl<'de> Deserialize<'de> for TimestampValue {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        sentinel_dataflows::time::parse_rfc3339_ms(&text)
            .map(TimestampValue)
            .ok_or_else(|| serde::de::Error::custom(format!("expected an RFC 3339 time, got `{text}`")))
    }
}

impl AlertingConfig {
    /// The stage's config with `actions`; an unknown `group_by` label is `Err((key, why))`.
    pub fn resolve(&self, actions: &ResolvedActions) -> Result<ActConfig, (String, String)> {
        if let Some((i, label)) = self
            .group_by
            .iter()
            .enumerate()
            .find(|(_, l)| !LABELS.contains(&l.as_str()))
        {
            return Err((
                format!("alerting.group_by[{i}]"),
                format!("unknown label `{label}`: expected one of {}", LABELS.join(", ")),
            ));
        }
        if let Some((i, _)) = self
            .silences
            .iter()
            .enumerate()
            .find(|(_, s)| s.ends_at.0 <= s.starts_at.0)
        {
            return Err((
                format!("alerting.silences[{i}].ends_at"),
                "must be after `starts_at`".into(),
            ));
        }
        if self.resolve_after_windows == 0 {
            return Err(("alerting.resolve_after_windows".into(), "must be at least 1".into()));
        }
        Ok(ActConfig {
            by_detector: actions.by_detector.clone(),
            timing: GroupTiming {
                group_wait_ms: self.group_wait.0,
                group_interval_ms: self.group_interval.0.max(1),
                repeat_interval_ms: self.repeat_interval.0,
            },
            group_by: self.group_by.clone(),
            correlate_within_ms: self.correlate_within.0,
            resolve_after_windows: self.resolve_after_windows,
            min_window_ms: ActConfig::default().min_window_ms,
            inhibit: self.inhibit_lesser,
            silences: self
                .silences
                .iter()
                .map(|s| Silence {
                    id: s.id.clone(),
                    matchers: s.matchers.iter().map(|m| m.0.clone()).collect(),
                    starts_ms: s.starts_at.0,
                    ends_ms: s.ends_at.0,
                    comment: s.comment.clone(),
                })
                .collect(),
        })
    }
}
