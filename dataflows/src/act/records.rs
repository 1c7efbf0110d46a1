//! The records the actions stage writes, one kind per output stream. Each carries a
//! deterministic id that its delivery sends as the idempotency key, so a record delivered
//! again after a restart is seen once in effect.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::grouping::NotifyReason;
use super::planner::{Priority, ShieldActionType};
use crate::hash::StableId;
use crate::model::{ActionKind, AffectedEntity, Anomaly, Severity};

/// `sentinel.actions`: one Shield `ActionRequest`, with where it came from.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ShieldRecord {
    /// The action's id. An unblock carries the id of the block it lifts.
    pub action_id: StableId,
    /// This request's idempotency key: the action id and the type, so a block and its
    /// unblock are two requests.
    pub delivery_id: StableId,
    /// Block, rate limit or unblock.
    #[serde(rename = "type")]
    pub action: ShieldActionType,
    /// `type:id`, e.g. `user:u-42`.
    pub target_entity: String,
    /// Why.
    pub reason: String,
    /// How long it lasts, s; Shield lifts it itself after this, should the unblock be lost.
    pub duration_seconds: u64,
    /// Kind-specific parameters (`limit`, `window`, `source`, `severity`...).
    pub parameters: BTreeMap<String, String>,
    /// The anomaly behind it.
    pub anomaly_id: String,
    /// Its detector.
    pub detector_id: String,
    /// Shield's gRPC endpoint from the action's config; the delivery's default when absent.
    #[serde(default)]
    pub endpoint: Option<String>,
    /// Event time of the decision, RFC 3339.
    pub timestamp: String,
}

impl ShieldRecord {
    /// The request's idempotency key for `action_id` and `action`.
    pub fn delivery_id_of(action_id: StableId, action: ShieldActionType) -> StableId {
        StableId::of(&[b"shield", &action_id.0.to_le_bytes(), action.as_str().as_bytes()])
    }
}

/// Whether an alert group still fires.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AlertStatus {
    /// At least one of its alerts fires.
    Firing,
    /// Every alert resolved: the group's last notification.
    Resolved,
}

/// `sentinel.alerts`: one notification of an alert group to its receivers.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct AlertRecord {
    /// The notification's id: the idempotency key (and PagerDuty's event, not its dedup key).
    pub id: StableId,
    /// The group, so a receiver threads notifications (PagerDuty's `dedup_key`).
    pub group_key: String,
    /// The notification's number in its group, from 0.
    pub sequence: u32,
    /// New, changed or repeated.
    pub reason: NotifyReason,
    /// Firing or resolved.
    pub status: AlertStatus,
    /// The most severe of its alerts.
    pub severity: Severity,
    /// The newest alert's title.
    pub title: String,
    /// Receiver names, from the top-level `receivers:`.
    pub receivers: Vec<String>,
    /// The detector.
    pub detector_id: String,
    /// The entities it is about.
    pub entities: Vec<AffectedEntity>,
    /// Ids of the anomalies firing (each the first of its condition).
    pub firing: Vec<String>,
    /// Ids of those resolved since the last notification.
    pub resolved: Vec<String>,
    /// Event time of the notification (a tick of the group's schedule), RFC 3339.
    pub timestamp: String,
}

/// The events a webhook can receive.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub enum WebhookEvent {
    /// A new anomaly condition.
    #[serde(rename = "anomaly.detected")]
    AnomalyDetected,
    /// A condition ended.
    #[serde(rename = "anomaly.resolved")]
    AnomalyResolved,
    /// An alert notification went out.
    #[serde(rename = "alert.triggered")]
    AlertTriggered,
}

impl WebhookEvent {
    /// The wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            WebhookEvent::AnomalyDetected => "anomaly.detected",
            WebhookEvent::AnomalyResolved => "anomaly.resolved",
            WebhookEvent::AlertTriggered => "alert.triggered",
        }
    }
}

/// What a webhook event is about: the template sees it as `anomaly` or `alert`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum WebhookSubject {
    /// `anomaly.detected` and `anomaly.resolved`.
    Anomaly(Box<Anomaly>),
    /// `alert.triggered`.
    Alert(Box<AlertRecord>),
}

/// `sentinel.webhooks`: one event for one configured webhook.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct WebhookRecord {
    /// The idempotency key (`webhook-id`, `Idempotency-Key`): the event, its subject and the hook.
    pub id: StableId,
    /// Which event.
    pub event: WebhookEvent,
    /// The webhook's index in the job's list.
    pub hook: usize,
    /// The anomaly behind it.
    pub anomaly_id: String,
    /// What it is about: `{"anomaly": {...}}` or `{"alert": {...}}`.
    pub subject: WebhookSubject,
    /// Event time, RFC 3339.
    pub timestamp: String,
}

impl WebhookRecord {
    /// The id of `event` about `subject_id` for webhook `hook`.
    pub fn id_of(event: WebhookEvent, subject_id: &str, hook: usize) -> StableId {
        StableId::of(&[
            b"webhook",
            event.as_str().as_bytes(),
            subject_id.as_bytes(),
            &(hook as u64).to_le_bytes(),
        ])
    }

    /// `event` about `anomaly` for webhook `hook`, at `timestamp`.
    pub fn about(event: WebhookEvent, anomaly: Anomaly, hook: usize, timestamp: String) -> WebhookRecord {
        WebhookRecord {
            id: WebhookRecord::id_of(event, &anomaly.id, hook),
            event,
            hook,
            anomaly_id: anomaly.id.clone(),
            subject: WebhookSubject::Anomaly(Box::new(anomaly)),
            timestamp,
        }
    }
}

/// The seed's incident-manager `POST /api/v1/incidents` body.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct IncidentBody {
    /// Always `llm-sentinel`.
    pub source: String,
    /// Always `anomaly_detected`.
    pub incident_type: String,
    /// P1 to P3.
    pub severity: Priority,
    /// The anomaly's title.
    pub title: String,
    /// Markdown: detector, entity, score, time, figures, window, samples, actions taken.
    pub description: String,
    /// Where it came from.
    pub metadata: IncidentMetadata,
    /// What it is about.
    pub affected_entities: Vec<AffectedEntity>,
    /// What an operator should look at, by detector kind.
    pub remediation_actions: Vec<String>,
}

/// `metadata` of an incident.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct IncidentMetadata {
    /// The anomaly that opened it.
    pub anomaly_id: String,
    /// Its detector.
    pub detector_id: String,
    /// Its score.
    pub score: f64,
    /// Its time, RFC 3339.
    pub timestamp: String,
    /// Sentinel's key for the incident: the manager's id is mapped to it.
    pub incident_key: String,
}

/// What an incident record asks of the incident manager. Externally tagged
/// (`{"create": {...}}`), as every record here is plain serde, so that it also crosses
/// processes in bincode.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum IncidentOp {
    /// `POST /api/v1/incidents`.
    Create {
        /// The body.
        incident: Box<IncidentBody>,
    },
    /// `POST /api/v1/incidents/{id}/comments`: a related anomaly joined it.
    Comment {
        /// Markdown.
        text: String,
    },
    /// `PATCH /api/v1/incidents/{id}` with `status: resolved`.
    Resolve {
        /// Why.
        resolution: String,
    },
}

/// `sentinel.incidents`: one request to the incident manager.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct IncidentRecord {
    /// This request's idempotency key.
    pub id: StableId,
    /// The incident: the same for its create, comments and resolve.
    pub incident_key: StableId,
    /// `type:id` of its entity: the record key, so an incident's requests stay in order.
    pub entity: String,
    /// The anomaly behind this request.
    pub anomaly_id: String,
    /// Its detector.
    pub detector_id: String,
    /// What to do.
    pub op: IncidentOp,
    /// Event time, RFC 3339.
    pub timestamp: String,
}

/// What became of one delivery, or what Shield reported about an action.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DeliveryState {
    /// The receiver acknowledged it.
    Delivered,
    /// Given up on (refused, or out of attempts); the record is in the dead letters.
    DeadLettered,
    /// Nowhere to deliver to (no endpoint or receiver configured).
    Skipped,
    /// Shield reported on the action (its status is in `message`).
    Reported,
    /// Shield reported the action failed: the anomaly's receivers are alerted.
    Failed,
}

/// `sentinel.action-statuses`: one delivery's outcome, or one Shield callback. The delivery's
/// ledger: a delivery whose final status is logged is not sent again after a restart.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ActionStatus {
    /// The idempotency key the receiver saw.
    pub delivery_id: String,
    /// The action, notification or event.
    pub action_id: String,
    /// The anomaly behind it.
    pub anomaly_id: String,
    /// What it was.
    pub action: ActionKind,
    /// Receiver, webhook or endpoint.
    pub receiver: String,
    /// What became of it.
    pub status: DeliveryState,
    /// Attempts made.
    pub attempts: u32,
    /// The last HTTP status, for HTTP deliveries.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub http_status: Option<u16>,
    /// The receiver's answer, or why it was skipped or given up on.
    pub message: String,
    /// Sentinel's incident key, for incident requests.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub incident_key: Option<String>,
    /// The incident manager's id for it, once created.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub incident_id: Option<String>,
    /// From reading the outbox record to the final answer, ms.
    pub latency_ms: u64,
    /// Wall-clock time of the outcome, RFC 3339.
    pub timestamp: String,
}

/// What Shield says became of an action.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CallbackStatus {
    /// Carried out.
    #[serde(alias = "success", alias = "succeeded", alias = "applied", alias = "enforced")]
    Applied,
    /// Ended (lifted, or expired by its duration).
    #[serde(alias = "expired", alias = "lifted", alias = "removed")]
    Ended,
    /// Shield could not carry it out: the anomaly's receivers are alerted.
    #[serde(alias = "error", alias = "rejected")]
    Failed,
    /// Any other report (the text is in the message).
    #[serde(other)]
    Other,
}

impl CallbackStatus {
    /// The name, as serialized.
    pub fn as_str(self) -> &'static str {
        match self {
            CallbackStatus::Applied => "applied",
            CallbackStatus::Ended => "ended",
            CallbackStatus::Failed => "failed",
            CallbackStatus::Other => "other",
        }
    }
}

/// `sentinel.callbacks`: Shield's report on an action, in the seed's shape.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ShieldCallback {
    /// The anomaly behind the action.
    pub anomaly_id: String,
    /// The action's id, as Sentinel sent it.
    pub action_id: String,
    /// What became of it.
    pub status: CallbackStatus,
    /// Shield's words.
    #[serde(default)]
    pub message: String,
    /// When, as Shield says.
    #[serde(default)]
    pub timestamp: String,
}
