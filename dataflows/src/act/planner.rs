//! The action planner: turns one anomaly and its detector's configured actions into action
//! records, each with a deterministic id (a hash of the anomaly id and the action's index), so
//! a replay plans the same actions under the same ids and receivers can dedupe on them.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::records::WebhookEvent;
use crate::hash::StableId;
use crate::model::{Anomaly, Severity};

/// Shield's action types.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ShieldActionType {
    /// Refuse the request or entity.
    Block,
    /// Limit the entity's request rate.
    RateLimit,
    /// Lift an earlier block or rate limit (same `action_id`).
    Unblock,
}

impl ShieldActionType {
    /// The wire name, as serialized.
    pub fn as_str(self) -> &'static str {
        match self {
            ShieldActionType::Block => "block",
            ShieldActionType::RateLimit => "rate_limit",
            ShieldActionType::Unblock => "unblock",
        }
    }
}

/// What a Shield action applies to.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TargetKind {
    /// The one request behind the anomaly.
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

impl TargetKind {
    /// Wire name, as an anomaly's entity type is written.
    pub fn as_str(self) -> &'static str {
        match self {
            TargetKind::Request => "request",
            TargetKind::User => "user",
            TargetKind::Session => "session",
            TargetKind::Application => "application",
            TargetKind::Tenant => "tenant",
        }
    }
}

/// Incident priority; in config, `critical`, `warning` and `info` name P1 to P3.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub enum Priority {
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

impl From<Severity> for Priority {
    fn from(s: Severity) -> Self {
        match s {
            Severity::Critical => Priority::P1,
            Severity::Warning => Priority::P2,
            Severity::Info => Priority::P3,
        }
    }
}

/// One configured action, resolved from the config (durations in ms).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "type")]
pub enum ActionSpec {
    /// Ask Shield to block or rate-limit.
    Shield {
        /// Block or rate limit.
        action: ShieldActionType,
        /// What it applies to; the anomaly's own entity when absent.
        target: Option<TargetKind>,
        /// How long it lasts.
        duration_ms: u64,
        /// Shown to Shield's operators; the anomaly's title when absent.
        reason: Option<String>,
        /// Kind-specific parameters (`limit`, `window`, ...), as strings, as Shield takes them.
        parameters: BTreeMap<String, String>,
        /// Shield's gRPC endpoint; the delivery's default when absent.
        endpoint: Option<String>,
    },
    /// Notify receivers.
    Alert {
        /// The alert's severity; the anomaly's when absent.
        severity: Option<Severity>,
        /// Receiver names.
        receivers: Vec<String>,
    },
    /// Open an incident.
    Incident {
        /// Without a person confirming it.
        auto_create: bool,
        /// The anomaly's severity, mapped, when absent.
        priority: Option<Priority>,
        /// Only anomalies at least this severe...
        min_severity: Severity,
        /// ...and scoring at least this.
        min_score: f64,
    },
    /// Call a configured webhook, by its index in the job's webhook list.
    Webhook {
        /// The webhook.
        hook: usize,
        /// Severities that pass; all when empty.
        severities: Vec<Severity>,
        /// Events it receives; all when empty.
        events: Vec<WebhookEvent>,
    },
}

/// What one planned action does.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "kind")]
pub enum PlannedKind {
    /// Shield's `ActionRequest`.
    Shield {
        /// Block, rate limit or unblock.
        action: ShieldActionType,
        /// `type:id` of the entity, e.g. `user:u-42`.
        target_entity: String,
        /// Why.
        reason: String,
        /// How long, seconds.
        duration_seconds: u64,
        /// Parameters, with `source` and `severity` added.
        parameters: BTreeMap<String, String>,
    },
    /// An alert to named receivers.
    Alert {
        /// Its severity.
        severity: Severity,
        /// Receiver names.
        receivers: Vec<String>,
        /// The anomaly's title.
        title: String,
    },
    /// An incident to open.
    Incident {
        /// P1 to P3.
        priority: Priority,
        /// Opened without a person confirming it.
        auto_create: bool,
        /// The anomaly's title.
        title: String,
    },
    /// A webhook call.
    Webhook {
        /// The webhook's index in the job's list.
        hook: usize,
    },
}

/// One action the planner decided on, keyed by its deterministic id.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct PlannedAction {
    /// Hash of the anomaly id and the action's index: the idempotency key of every delivery.
    pub action_id: StableId,
    /// The anomaly it follows.
    pub anomaly_id: String,
    /// Its detector.
    pub detector_id: String,
    /// The action's index in the detector's list.
    pub index: usize,
    /// What to do.
    #[serde(flatten)]
    pub action: PlannedKind,
}

/// An action that was configured and not planned, and why: recorded, not silently dropped.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SkippedAction {
    /// The action's index in the detector's list.
    pub index: usize,
    /// Why.
    pub reason: String,
}

/// The actions of one anomaly.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Plan {
    /// To carry out.
    pub actions: Vec<PlannedAction>,
    /// Configured but not applicable to this anomaly.
    pub skipped: Vec<SkippedAction>,
}

/// The deterministic id of the `index`th action of `anomaly_id`.
///
/// ```
/// use sentinel_dataflows::act::action_id;
/// assert_eq!(action_id("a-1", 0), action_id("a-1", 0));
/// assert_ne!(action_id("a-1", 0), action_id("a-1", 1));
/// ```
pub fn action_id(anomaly_id: &str, index: usize) -> StableId {
    StableId::of(&[b"action", anomaly_id.as_bytes(), &(index as u64).to_le_bytes()])
}

/// Plans `specs` for `anomaly`.
pub fn plan(anomaly: &Anomaly, specs: &[ActionSpec]) -> Plan {
    let mut out = Plan::default();
    for (index, spec) in specs.iter().enumerate() {
        match planned_kind(anomaly, spec) {
            Ok(Some(action)) => out.actions.push(PlannedAction {
                action_id: action_id(&anomaly.id, index),
                anomaly_id: anomaly.id.clone(),
                detector_id: anomaly.detector_id.clone(),
                index,
                action,
            }),
            Ok(None) => {}
            Err(reason) => out.skipped.push(SkippedAction { index, reason }),
        }
    }
    out
}

/// `Ok(None)`: filtered out by design (a webhook's severities, an incident's bar).
fn planned_kind(anomaly: &Anomaly, spec: &ActionSpec) -> Result<Option<PlannedKind>, String> {
    Ok(Some(match spec {
        ActionSpec::Shield {
            action,
            target,
            duration_ms,
            reason,
            parameters,
            ..
        } => {
            let entity = &anomaly.affected_entity;
            let target_entity = match target {
                None => format!("{}:{}", entity.entity_type, entity.id),
                Some(TargetKind::Request) => match anomaly.context.sample_events.first() {
                    Some(event) => format!("request:{event}"),
                    None => return Err("no request behind the anomaly to target".into()),
                },
                Some(kind) if kind.as_str() == entity.entity_type => format!("{}:{}", kind.as_str(), entity.id),
                Some(kind) => {
                    return Err(format!(
                        "the anomaly is about a {}, not a {}",
                        entity.entity_type,
                        kind.as_str()
                    ))
                }
            };
            let mut parameters = parameters.clone();
            parameters.insert("source".into(), "sentinel".into());
            parameters.insert("severity".into(), anomaly.severity.as_str().into());
            PlannedKind::Shield {
                action: *action,
                target_entity,
                reason: reason.clone().unwrap_or_else(|| anomaly.title.clone()),
                duration_seconds: duration_ms.div_ceil(1000),
                parameters,
            }
        }
        ActionSpec::Alert { severity, receivers } => PlannedKind::Alert {
            severity: severity.unwrap_or(anomaly.severity),
            receivers: receivers.clone(),
            title: anomaly.title.clone(),
        },
        ActionSpec::Incident {
            auto_create,
            priority,
            min_severity,
            min_score,
        } => {
            if anomaly.severity < *min_severity || anomaly.score < *min_score {
                return Ok(None);
            }
            PlannedKind::Incident {
                priority: priority.unwrap_or_else(|| anomaly.severity.into()),
                auto_create: *auto_create,
                title: anomaly.title.clone(),
            }
        }
        ActionSpec::Webhook { hook, severities, .. } => {
            if !severities.is_empty() && !severities.contains(&anomaly.severity) {
                return Ok(None);
            }
            PlannedKind::Webhook { hook: *hook }
        }
    }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{AffectedEntity, AnomalyDraft, AnomalyMetrics, DetectorType};

    fn anomaly(severity: Severity, score: f64, entity_type: &str) -> Anomaly {
        Anomaly::build(AnomalyDraft {
            id_parts: &[b"prompt-injection", b"u-42", b"e-7"],
            detector_id: "prompt-injection",
            detector_type: DetectorType::Rule,
            severity,
            score,
            title: "Prompt injection".into(),
            description: String::new(),
            entity: AffectedEntity {
                entity_type: entity_type.into(),
                id: "u-42".into(),
                name: "u-42".into(),
            },
            metrics: AnomalyMetrics {
                baseline_value: 0.0,
                observed_value: 1.0,
                deviation: 0.0,
                threshold: 0.8,
            },
            at_ms: 1_717_200_000_000,
            window_ms: (1_717_200_000_000, 1_717_200_000_000),
            sample_events: vec!["e-7".into()],
        })
    }

    fn specs() -> Vec<ActionSpec> {
        vec![
            ActionSpec::Shield {
                action: ShieldActionType::Block,
                target: Some(TargetKind::User),
                duration_ms: 3_600_000,
                reason: None,
                parameters: BTreeMap::new(),
                endpoint: None,
            },
            ActionSpec::Alert {
                severity: None,
                receivers: vec!["security-team".into()],
            },
            ActionSpec::Incident {
                auto_create: true,
                priority: None,
                min_severity: Severity::Critical,
                min_score: 0.9,
            },
            ActionSpec::Webhook {
                hook: 0,
                severities: vec![Severity::Critical],
                events: Vec::new(),
            },
        ]
    }

    #[test]
    fn a_critical_injection_plans_every_action_under_stable_ids() {
        let a = anomaly(Severity::Critical, 0.95, "user");
        let plan = plan(&a, &specs());
        assert!(plan.skipped.is_empty(), "{:?}", plan.skipped);
        assert_eq!(plan.actions.len(), 4);
        let PlannedKind::Shield {
            target_entity,
            duration_seconds,
            parameters,
            reason,
            ..
        } = &plan.actions[0].action
        else {
            panic!("{:?}", plan.actions[0]);
        };
        assert_eq!((target_entity.as_str(), *duration_seconds), ("user:u-42", 3600));
        assert_eq!(reason, "Prompt injection");
        assert_eq!(parameters["severity"], "critical");
        assert!(matches!(
            plan.actions[2].action,
            PlannedKind::Incident {
                priority: Priority::P1,
                ..
            }
        ));
        // The same anomaly again: the same ids, one per index.
        let again = super::plan(&a, &specs());
        assert_eq!(plan.actions, again.actions);
        let ids: std::collections::BTreeSet<_> = plan.actions.iter().map(|p| p.action_id).collect();
        assert_eq!(ids.len(), 4);
        assert_eq!(plan.actions[1].action_id, action_id(&a.id, 1));
    }

    #[test]
    fn bars_filter_and_a_mismatched_target_is_skipped_with_its_reason() {
        // A warning: no incident, no critical-only webhook.
        let warn = plan(&anomaly(Severity::Warning, 0.95, "user"), &specs());
        let kinds: Vec<usize> = warn.actions.iter().map(|p| p.index).collect();
        assert_eq!(kinds, [0, 1]);
        // Critical but below the score bar: no incident.
        let low = plan(&anomaly(Severity::Critical, 0.85, "user"), &specs());
        assert!(!low
            .actions
            .iter()
            .any(|p| matches!(p.action, PlannedKind::Incident { .. })));
        // About an application: a user block does not apply, and says so.
        let app = plan(&anomaly(Severity::Critical, 0.95, "application"), &specs());
        assert_eq!(app.skipped.len(), 1);
        assert_eq!(app.skipped[0].index, 0);
        assert!(app.skipped[0].reason.contains("application, not a user"));
    }

    #[test]
    fn a_request_target_is_the_event_behind_the_anomaly() {
        let spec = [ActionSpec::Shield {
            action: ShieldActionType::Block,
            target: Some(TargetKind::Request),
            duration_ms: 1,
            reason: Some("injection".into()),
            parameters: BTreeMap::new(),
            endpoint: None,
        }];
        let p = plan(&anomaly(Severity::Critical, 1.0, "user"), &spec);
        let PlannedKind::Shield {
            target_entity,
            duration_seconds,
            ..
        } = &p.actions[0].action
        else {
            panic!()
        };
        assert_eq!((target_entity.as_str(), *duration_seconds), ("request:e-7", 1));
    }
}
