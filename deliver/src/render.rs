//! What each outbox record asks for: the deliveries it makes, each with its idempotency key,
//! the order key that keeps one subject's deliveries in order, and the request to send.

use std::time::Duration;

use sentinel_connectors::grpc::shield::{ActionType, Enforcement};
use sentinel_connectors::http::client::{HttpRequest, Method};
use sentinel_connectors::http::retry::RetryPolicy;
use sentinel_connectors::http::signing::WebhookSecret;
use sentinel_dataflows::act::{
    AlertRecord, AlertStatus, IncidentOp, IncidentRecord, ShieldActionType, ShieldRecord, WebhookEvent, WebhookRecord,
    WebhookSubject,
};
use sentinel_dataflows::hash::StableId;
use sentinel_dataflows::model::{ActionKind, Anomaly, Severity};
use serde_json::json;

use crate::config::{DeliveryConfig, HttpTarget, Receiver};

/// The outbox streams the delivery reads.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum OutboxStream {
    /// `sentinel.actions`: Shield requests.
    Actions,
    /// `sentinel.alerts`: notifications to receivers.
    Alerts,
    /// `sentinel.incidents`: incident-manager requests.
    Incidents,
    /// `sentinel.webhooks`: webhook events.
    Webhooks,
    /// `sentinel.callbacks`: Shield's reports on actions (read, not written, by the job).
    Callbacks,
    /// `sentinel.anomaly-events`: lifecycle changes; a person resolving an anomaly resolves
    /// its incident.
    AnomalyEvents,
}

/// An HTTP call, signed at each attempt when a secret is set.
#[derive(Clone, Debug)]
pub struct HttpCall {
    /// The request (headers without the signature).
    pub request: HttpRequest,
    /// Standard Webhooks signing.
    pub secret: Option<WebhookSecret>,
}

/// What an incident request does, once the incident's id is known.
#[derive(Clone, Debug)]
pub enum IncidentCall {
    /// `POST /api/v1/incidents`.
    Create(serde_json::Value),
    /// `POST /api/v1/incidents/{id}/comments`.
    Comment(String),
    /// `PATCH /api/v1/incidents/{id}`.
    Resolve(String),
}

/// How one delivery is made.
#[derive(Clone, Debug)]
pub enum Call {
    /// An HTTP request.
    Http(HttpCall),
    /// Shield's `EnforceAction`.
    Shield {
        /// `host:port`.
        endpoint: String,
        /// The request.
        enforcement: Enforcement,
        /// Per-attempt timeout.
        timeout: Duration,
    },
    /// An incident-manager request for `incident_key`.
    Incident {
        /// The incident.
        incident_key: StableId,
        /// What to do.
        call: IncidentCall,
        /// Where (base URL, auth headers, timeout).
        target: HttpTarget,
        /// The request's idempotency key.
        idempotency_key: String,
    },
    /// Nowhere to deliver to: the reason goes into the status.
    Skip(String),
}

/// One delivery of one outbox record.
#[derive(Clone, Debug)]
pub struct Job {
    /// Deliveries with the same key go out in order.
    pub order_key: String,
    /// The idempotency key the receiver sees; also what the status log marks done.
    pub delivery_id: String,
    /// The action, notification or event id.
    pub action_id: String,
    /// The anomaly behind it.
    pub anomaly_id: String,
    /// What it is.
    pub kind: ActionKind,
    /// Receiver, webhook or endpoint name.
    pub receiver: String,
    /// How.
    pub call: Call,
    /// Retries.
    pub retry: RetryPolicy,
}

/// The deliveries of one record. A record that does not parse is `Err` (dead-lettered).
pub fn jobs_of(stream: OutboxStream, bytes: &[u8], config: &DeliveryConfig) -> Result<Vec<Job>, String> {
    let parse_error = |e: serde_json::Error| format!("not a {stream:?} record: {e}");
    Ok(match stream {
        OutboxStream::Actions => vec![shield_job(&serde_json::from_slice(bytes).map_err(parse_error)?, config)],
        OutboxStream::Alerts => alert_jobs(&serde_json::from_slice(bytes).map_err(parse_error)?, config),
        OutboxStream::Incidents => vec![incident_job(
            &serde_json::from_slice(bytes).map_err(parse_error)?,
            config,
        )],
        OutboxStream::Webhooks => vec![webhook_job(
            &serde_json::from_slice(bytes).map_err(parse_error)?,
            config,
        )],
        // Neither is delivered as it is: the pump logs a callback and escalates a failure,
        // and turns a person's resolution into its incident's.
        OutboxStream::Callbacks | OutboxStream::AnomalyEvents => Vec::new(),
    })
}

fn shield_job(r: &ShieldRecord, config: &DeliveryConfig) -> Job {
    let endpoint = r
        .endpoint
        .clone()
        .or_else(|| config.shield.as_ref().map(|s| s.endpoint.clone()));
    let (timeout, retry) = config
        .shield
        .as_ref()
        .map_or((config.timeout, config.retry), |s| (s.timeout, s.retry));
    let kind = match r.action {
        ShieldActionType::Block => ActionKind::ShieldBlock,
        ShieldActionType::RateLimit => ActionKind::ShieldRateLimit,
        ShieldActionType::Unblock => ActionKind::ShieldUnblock,
    };
    let call = match &endpoint {
        None => Call::Skip("no Shield endpoint: set the action's `endpoint` or `integrations.shield.endpoint`".into()),
        Some(endpoint) => Call::Shield {
            endpoint: endpoint.clone(),
            enforcement: Enforcement {
                action_id: r.action_id.to_string(),
                action_type: match r.action {
                    ShieldActionType::Block => ActionType::Block,
                    ShieldActionType::RateLimit => ActionType::RateLimit,
                    ShieldActionType::Unblock => ActionType::Unblock,
                },
                target_entity: r.target_entity.clone(),
                reason: r.reason.clone(),
                duration: Duration::from_secs(r.duration_seconds),
                parameters: r.parameters.clone(),
            },
            timeout,
        },
    };
    Job {
        order_key: r.target_entity.clone(),
        delivery_id: r.delivery_id.to_string(),
        action_id: r.action_id.to_string(),
        anomaly_id: r.anomaly_id.clone(),
        kind,
        receiver: endpoint.unwrap_or_else(|| "shield".into()),
        call,
        retry,
    }
}

/// One job per receiver of the notification; its idempotency key is the notification and the
/// receiver, so a receiver named twice in a config still sees each notification once.
pub fn alert_jobs(r: &AlertRecord, config: &DeliveryConfig) -> Vec<Job> {
    r.receivers
        .iter()
        .map(|name| {
            let delivery_id = StableId::of(&[b"alert", &r.id.0.to_le_bytes(), name.as_bytes()]).to_string();
            let (call, retry) = match config.receivers.get(name) {
                None => (
                    Call::Skip(format!("receiver `{name}` is not defined in `receivers:`")),
                    config.retry,
                ),
                Some(Receiver::Webhook(t)) => {
                    let body = Body::Event {
                        event: WebhookEvent::AlertTriggered.as_str(),
                        timestamp: &r.timestamp,
                        subject: Subject::Alert(r),
                    };
                    (http_call(t, &delivery_id, body), t.retry)
                }
                Some(Receiver::Slack(t)) => (http_call(t, &delivery_id, Body::Fixed(slack_body(r))), t.retry),
                Some(Receiver::PagerDuty { target, routing_key }) => {
                    let body = Body::Fixed(pagerduty_body(r, routing_key));
                    (http_call(target, &delivery_id, body), target.retry)
                }
            };
            Job {
                order_key: r.group_key.clone(),
                delivery_id,
                action_id: r.id.to_string(),
                anomaly_id: r.firing.first().or(r.resolved.first()).cloned().unwrap_or_default(),
                kind: ActionKind::Alert,
                receiver: name.clone(),
                call,
                retry,
            }
        })
        .collect()
}

fn webhook_job(r: &WebhookRecord, config: &DeliveryConfig) -> Job {
    let delivery_id = r.id.to_string();
    let (receiver, call, retry) = match config.webhooks.get(r.hook) {
        None => (
            format!("webhook {}", r.hook),
            Call::Skip(format!("no webhook {} in this config", r.hook)),
            config.retry,
        ),
        Some(t) => {
            let body = Body::Event {
                event: r.event.as_str(),
                timestamp: &r.timestamp,
                subject: match &r.subject {
                    WebhookSubject::Anomaly(a) => Subject::Anomaly(a),
                    WebhookSubject::Alert(a) => Subject::Alert(a),
                },
            };
            (t.name.clone(), http_call(t, &delivery_id, body), t.retry)
        }
    };
    Job {
        order_key: r.anomaly_id.clone(),
        delivery_id,
        action_id: r.id.to_string(),
        anomaly_id: r.anomaly_id.clone(),
        kind: ActionKind::Webhook,
        receiver,
        call,
        retry,
    }
}

/// The incident-manager request of `r`.
pub fn incident_job(r: &IncidentRecord, config: &DeliveryConfig) -> Job {
    let (kind, call) = match &r.op {
        IncidentOp::Create { incident } => (
            ActionKind::IncidentCreate,
            IncidentCall::Create(serde_json::to_value(incident).unwrap_or_default()),
        ),
        IncidentOp::Comment { text } => (ActionKind::IncidentComment, IncidentCall::Comment(text.clone())),
        IncidentOp::Resolve { resolution } => (ActionKind::IncidentResolve, IncidentCall::Resolve(resolution.clone())),
    };
    let delivery_id = r.id.to_string();
    let (receiver, call, retry) = match &config.incident_manager {
        None => (
            "incident-manager".to_owned(),
            Call::Skip("no incident manager: set `integrations.incident_manager.url`".into()),
            config.retry,
        ),
        Some(m) => (
            m.target.name.clone(),
            Call::Incident {
                incident_key: r.incident_key,
                call,
                target: m.target.clone(),
                idempotency_key: delivery_id.clone(),
            },
            m.target.retry,
        ),
    };
    Job {
        order_key: r.entity.clone(),
        delivery_id,
        action_id: r.incident_key.to_string(),
        anomaly_id: r.anomaly_id.clone(),
        kind,
        receiver,
        call,
        retry,
    }
}

/// What an event is about, for its body and its template.
#[derive(Clone, Copy, Debug)]
pub enum Subject<'a> {
    /// `anomaly.detected`, `anomaly.resolved`: the template sees `anomaly`.
    Anomaly(&'a Anomaly),
    /// `alert.triggered`: the template sees `alert`.
    Alert(&'a AlertRecord),
}

/// A body to send.
enum Body<'a> {
    /// An event: the webhook's template, or `{type, timestamp, data}` (Standard Webhooks'
    /// payload shape).
    Event {
        /// `anomaly.detected`...
        event: &'a str,
        /// Its time.
        timestamp: &'a str,
        /// What it is about.
        subject: Subject<'a>,
    },
    /// A receiver's own format.
    Fixed(Vec<u8>),
}

/// A template's context: `{event, timestamp, anomaly | alert}`.
pub fn template_context(event: &str, timestamp: &str, subject: Subject<'_>) -> serde_json::Value {
    match subject {
        Subject::Anomaly(a) => json!({"event": event, "timestamp": timestamp, "anomaly": a}),
        Subject::Alert(a) => json!({"event": event, "timestamp": timestamp, "alert": a}),
    }
}

fn http_call(t: &HttpTarget, delivery_id: &str, body: Body<'_>) -> Call {
    let body = match body {
        Body::Fixed(bytes) => bytes,
        Body::Event {
            event,
            timestamp,
            subject,
        } => match &t.template {
            Some(template) => match template.render(&template_context(event, timestamp, subject)) {
                Ok(rendered) => rendered.into_bytes(),
                Err(e) => return Call::Skip(format!("template: {e}")),
            },
            None => {
                let data = match subject {
                    Subject::Anomaly(a) => serde_json::to_value(a),
                    Subject::Alert(a) => serde_json::to_value(a),
                };
                match data
                    .and_then(|data| serde_json::to_vec(&json!({"type": event, "timestamp": timestamp, "data": data})))
                {
                    Ok(bytes) => bytes,
                    Err(e) => return Call::Skip(format!("cannot encode the record: {e}")),
                }
            }
        },
    };
    let mut headers = t.headers.clone();
    headers.push(("Idempotency-Key".into(), delivery_id.to_owned()));
    Call::Http(HttpCall {
        request: HttpRequest {
            method: Method::Post,
            url: t.url.clone(),
            headers,
            body,
            timeout: t.timeout,
        },
        secret: t.secret.clone(),
    })
}

fn slack_body(r: &AlertRecord) -> Vec<u8> {
    let state = match r.status {
        AlertStatus::Firing => "FIRING",
        AlertStatus::Resolved => "RESOLVED",
    };
    let entities: Vec<String> = r
        .entities
        .iter()
        .map(|e| format!("{} `{}`", e.entity_type, e.id))
        .collect();
    let text = format!("[{state}] {} ({})", r.title, r.severity.as_str());
    let detail = format!(
        "*Detector:* {}\n*Entities:* {}\n*Firing:* {}  *Resolved:* {}\n*At:* {}",
        r.detector_id,
        entities.join(", "),
        r.firing.len(),
        r.resolved.len(),
        r.timestamp
    );
    serde_json::to_vec(&json!({
        "text": text,
        "blocks": [
            {"type": "header", "text": {"type": "plain_text", "text": clip(&text, 150)}},
            {"type": "section", "text": {"type": "mrkdwn", "text": detail}},
        ]
    }))
    .unwrap_or_default()
}

/// PagerDuty Events v2: the group is the alert (`dedup_key`), so repeats and the resolve
/// thread onto one PagerDuty incident.
fn pagerduty_body(r: &AlertRecord, routing_key: &str) -> Vec<u8> {
    let dedup_key = format!("sentinel-{}", StableId::of(&[r.group_key.as_bytes()]));
    let (action, severity) = match r.status {
        AlertStatus::Firing => ("trigger", r.severity),
        AlertStatus::Resolved => ("resolve", r.severity),
    };
    let severity = match severity {
        Severity::Critical => "critical",
        Severity::Warning => "warning",
        Severity::Info => "info",
    };
    serde_json::to_vec(&json!({
        "routing_key": routing_key,
        "event_action": action,
        "dedup_key": dedup_key,
        "payload": {
            "summary": clip(&r.title, 1024),
            "source": "llm-sentinel",
            "severity": severity,
            "timestamp": r.timestamp,
            "component": r.detector_id,
            "group": r.entities.first().map(|e| format!("{}:{}", e.entity_type, e.id)).unwrap_or_default(),
            "custom_details": {"firing": r.firing, "resolved": r.resolved, "notification": r.id.to_string()},
        }
    }))
    .unwrap_or_default()
}

fn clip(s: &str, max: usize) -> String {
    s.chars().take(max).collect()
}
