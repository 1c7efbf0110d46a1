//! A detector's `actions:`, typed at load time in the integration seed's shapes, so an unknown
//! type or key fails at start with its key and line. The actions stage carries them out.

use std::collections::BTreeMap;

use serde::Deserialize;

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
    pub target: Option<ShieldTarget>,
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

/// Shield's action kinds.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ShieldKind {
    /// Refuse the request or entity.
    Block,
    /// Limit the entity's request rate.
    RateLimit,
}

/// What a Shield action applies to.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ShieldTarget {
    /// The one request.
    Request,
    /// The user.
    User,
    /// The session.
    Session,
    /// The application.
    Application,
    /// The tenant.
    Tenant,
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

/// Alert and anomaly severities.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SeverityName {
    /// Informational.
    Info,
    /// Needs attention.
    Warning,
    /// Needs action now.
    Critical,
}

/// `type: alert`.
#[derive(Clone, Debug, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AlertAction {
    /// The alert's severity; the anomaly's when absent.
    #[serde(default)]
    pub severity: Option<SeverityName>,
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
    pub severity: Option<IncidentSeverity>,
}

/// Incident priority.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
pub enum IncidentSeverity {
    /// Highest.
    #[serde(alias = "critical")]
    P1,
    /// Middle.
    #[serde(alias = "warning")]
    P2,
    /// Lowest.
    #[serde(alias = "info")]
    P3,
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

/// Events a webhook can receive.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
pub enum WebhookEvent {
    /// A new anomaly.
    #[serde(rename = "anomaly.detected")]
    AnomalyDetected,
    /// An anomaly ended.
    #[serde(rename = "anomaly.resolved")]
    AnomalyResolved,
    /// An alert fired.
    #[serde(rename = "alert.triggered")]
    AlertTriggered,
}

/// `filter:` of a webhook.
#[derive(Clone, Debug, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WebhookFilter {
    /// Severities that pass.
    #[serde(default)]
    pub severity: Vec<SeverityName>,
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
}

fn yes() -> bool {
    true
}

fn three() -> u32 {
    3
}
