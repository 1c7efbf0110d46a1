//! The actions stage: anomalies in, action records out, in event time.
//!
//! An anomaly belongs to a *condition*: its detector on its entity, from the first anomaly
//! until the detector has been quiet for `resolve_after_windows` of its windows. A condition
//! is acted on once, when it starts (Shield, incident, `anomaly.detected` webhooks); its later
//! anomalies join it (`grouped`), except that a request-level block applies to each request.
//! Alerts go through the [`Grouper`], so a persisting condition is notified once and then once
//! per repeat interval. When the condition resolves, its blocks and rate limits are lifted
//! under their own ids, its alerts resolve, `anomaly.resolved` webhooks go out, and one
//! lifecycle event resolves the condition's anomalies in the serving store.
//!
//! Anomalies on one entity within `correlate_within_ms` of each other are related: each lists
//! the others in `related_anomalies`, and they share the entity's one open incident, which
//! resolves with the entity's last condition.

use std::collections::{BTreeMap, VecDeque};

use serde::{Deserialize, Serialize};

use super::grouping::{GroupTiming, Grouper};
use super::planner::{plan, ActionSpec, PlannedKind, ShieldActionType};
use super::records::{
    AlertRecord, AlertStatus, IncidentBody, IncidentMetadata, IncidentOp, IncidentRecord, ShieldRecord, WebhookEvent,
    WebhookRecord, WebhookSubject,
};
use super::suppress::{InhibitRule, Labels, Silence, Suppressor};
use crate::hash::StableId;
use crate::model::lifecycle::{ConditionScope, LifecycleEvent};
use crate::model::{ActionKind, ActionTaken, AffectedEntity, Anomaly, DetectorType, Severity, TakenStatus};
use crate::time::{format_rfc3339_ms, parse_rfc3339_ms};

/// Related anomalies an anomaly lists at most.
const MAX_RELATED: usize = 16;

/// How the stage acts, resolved from the config.
#[derive(Clone, Debug, PartialEq)]
pub struct ActConfig {
    /// Each detector's actions.
    pub by_detector: BTreeMap<String, Vec<ActionSpec>>,
    /// Alert grouping intervals.
    pub timing: GroupTiming,
    /// Labels whose values make an alert group's key (`detector_id`, `severity`,
    /// `entity_type`, `entity_id`, `detector_type`), besides the receivers.
    pub group_by: Vec<String>,
    /// Anomalies on one entity this close in time are related.
    pub correlate_within_ms: u64,
    /// A condition resolves after this many of its windows without an anomaly...
    pub resolve_after_windows: u32,
    /// ...each counted as at least this long (rule and behavioral anomalies have no window).
    pub min_window_ms: u64,
    /// A critical alert on an entity holds back its lesser alerts.
    pub inhibit: bool,
    /// Configured silences.
    pub silences: Vec<Silence>,
}

impl Default for ActConfig {
    fn default() -> Self {
        ActConfig {
            by_detector: BTreeMap::new(),
            timing: GroupTiming::default(),
            group_by: vec!["detector_id".into(), "entity_type".into(), "entity_id".into()],
            correlate_within_ms: 600_000,
            resolve_after_windows: 3,
            min_window_ms: 60_000,
            inhibit: true,
            silences: Vec::new(),
        }
    }
}

/// The labels the stage gives an anomaly, for grouping, silences and inhibition.
pub const LABELS: [&str; 5] = ["detector_id", "detector_type", "severity", "entity_type", "entity_id"];

/// What one call of the stage produced, per output stream.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Acted {
    /// The anomalies, with `actions_taken`, `related_anomalies` and `incident_id` filled in.
    pub anomalies: Vec<Anomaly>,
    /// Shield requests.
    pub shield: Vec<ShieldRecord>,
    /// Alert notifications.
    pub alerts: Vec<AlertRecord>,
    /// Incident requests.
    pub incidents: Vec<IncidentRecord>,
    /// Webhook events.
    pub webhooks: Vec<WebhookRecord>,
    /// Lifecycle changes: one resolution per condition that ended.
    pub lifecycle: Vec<LifecycleEvent>,
}

impl Acted {
    /// Whether nothing was produced.
    pub fn is_empty(&self) -> bool {
        self.anomalies.is_empty()
            && self.shield.is_empty()
            && self.alerts.is_empty()
            && self.incidents.is_empty()
            && self.webhooks.is_empty()
            && self.lifecycle.is_empty()
    }
}

/// One detector on one entity, from its first anomaly until it has been quiet long enough.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
struct Condition {
    /// The first anomaly: the actions' ids derive from it, and the resolve webhooks show it.
    first: Box<Anomaly>,
    /// `type:id` of the entity.
    entity: String,
    last_seen_ms: u64,
    quiet_ms: u64,
    /// Blocks and rate limits to lift when it resolves.
    lifts: Vec<ShieldRecord>,
    /// Alert groups it fires in.
    groups: Vec<String>,
    /// Webhooks told it started that want to hear it ended.
    resolve_hooks: Vec<usize>,
}

impl Condition {
    fn resolves_at(&self) -> u64 {
        self.last_seen_ms.saturating_add(self.quiet_ms)
    }
}

/// One entity's recent anomalies and its open incident.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
struct Cluster {
    /// `(time, id)` of its anomalies within the correlation window, oldest first.
    recent: VecDeque<(u64, String)>,
    /// The open incident's key.
    incident: Option<StableId>,
    /// Conditions on the entity not yet resolved.
    active: u32,
}

/// What the alert group says about itself, from its alerts.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
struct GroupInfo {
    receivers: Vec<String>,
    detector_id: String,
    severity: Severity,
    title: String,
    entities: Vec<AffectedEntity>,
    /// Webhooks that want `alert.triggered` of this group.
    hooks: Vec<usize>,
}

/// The actions stage's state: conditions, correlation clusters, alert groups, suppression.
///
/// ```
/// use sentinel_dataflows::act::{ActConfig, ActionStage, ActionSpec};
/// use sentinel_dataflows::model::{AffectedEntity, Anomaly, AnomalyDraft, AnomalyMetrics, DetectorType, Severity};
/// let mut config = ActConfig::default();
/// config.by_detector.insert(
///     "cost-spike".into(),
///     vec![ActionSpec::Alert { severity: None, receivers: vec!["ops".into()] }],
/// );
/// let mut stage = ActionStage::new(config);
/// let anomaly = |window_end: u64| Anomaly::build(AnomalyDraft {
///     id_parts: &[b"cost-spike", &window_end.to_le_bytes()], detector_id: "cost-spike",
///     detector_type: DetectorType::Statistical, severity: Severity::Warning, score: 0.7,
///     title: "cost spike".into(), description: String::new(),
///     entity: AffectedEntity { entity_type: "application".into(), id: "chat".into(), name: "chat".into() },
///     metrics: AnomalyMetrics { baseline_value: 1.0, observed_value: 9.0, deviation: 8.0, threshold: 4.0 },
///     at_ms: window_end, window_ms: (window_end - 60_000, window_end), sample_events: vec![],
/// });
/// // Three windows in a row: one condition, one alert group.
/// let mut acted = Default::default();
/// for minute in 1..=3 {
///     stage.anomaly(anomaly(minute * 60_000), &mut acted);
/// }
/// stage.advance(10 * 60_000, &mut acted);
/// assert_eq!(acted.alerts.len(), 2, "one firing notification, then one resolved");
/// assert_eq!(acted.anomalies[2].related_anomalies.len(), 2);
/// ```
#[derive(Clone, Debug, PartialEq)]
pub struct ActionStage {
    config: ActConfig,
    conditions: BTreeMap<String, Condition>,
    clusters: BTreeMap<String, Cluster>,
    grouper: Grouper,
    groups: BTreeMap<String, GroupInfo>,
    suppressor: Suppressor,
    /// Anomalies before this time were acted on before a restart (see [`ActionStage::restore`]).
    acted_before_ms: u64,
}

/// The actions stage's state as checkpointed: the conditions, incidents and alert groups open
/// at `through_ms`, so a restarted job carries them on under the same ids instead of acting
/// on them again.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ActionSnapshot {
    /// The record key under which the newest snapshot is kept: namespace (the consumer group).
    pub state_key: String,
    /// Every anomaly before this time (event time) is in the state, and everything due before
    /// it is done.
    pub through_ms: u64,
    conditions: BTreeMap<String, Condition>,
    clusters: BTreeMap<String, Cluster>,
    grouper: Grouper,
    groups: BTreeMap<String, GroupInfo>,
    suppressor: Suppressor,
}

impl ActionSnapshot {
    /// The record key of the stage's state in `namespace`.
    pub fn state_key(namespace: &str) -> String {
        format!("{namespace}|actions")
    }

    /// Conditions open in it.
    pub fn open_conditions(&self) -> usize {
        self.conditions.len()
    }
}

impl ActionStage {
    /// A stage with no state.
    pub fn new(config: ActConfig) -> Self {
        let rules = if config.inhibit {
            vec![InhibitRule::critical_over_lesser()]
        } else {
            Vec::new()
        };
        let mut suppressor = Suppressor::new(rules, config.correlate_within_ms);
        for s in &config.silences {
            suppressor.silence(s.clone());
        }
        ActionStage {
            grouper: Grouper::new(config.timing),
            config,
            conditions: BTreeMap::new(),
            clusters: BTreeMap::new(),
            groups: BTreeMap::new(),
            suppressor,
            acted_before_ms: 0,
        }
    }

    /// The state as of `through_ms`: call once every anomaly before it is taken and
    /// [`ActionStage::advance`] has run to just before it.
    pub fn snapshot(&self, namespace: &str, through_ms: u64) -> ActionSnapshot {
        ActionSnapshot {
            state_key: ActionSnapshot::state_key(namespace),
            through_ms,
            conditions: self.conditions.clone(),
            clusters: self.clusters.clone(),
            grouper: self.grouper.clone(),
            groups: self.groups.clone(),
            suppressor: self.suppressor.clone(),
        }
    }

    /// Carries on from a checkpoint. The timing, rules and silences stay as configured now;
    /// anomalies before the checkpoint's time, read again, are then [`already acted
    /// on`](ActionStage::already_acted).
    pub fn restore(&mut self, snapshot: ActionSnapshot) {
        self.conditions = snapshot.conditions;
        self.clusters = snapshot.clusters;
        self.groups = snapshot.groups;
        self.grouper.restore_groups(snapshot.grouper);
        self.suppressor.restore_sources(snapshot.suppressor);
        self.acted_before_ms = snapshot.through_ms;
    }

    /// Whether an anomaly due at `at_ms` was acted on before the restart the state comes from:
    /// it is in the state, and its records went out then.
    pub fn already_acted(&self, at_ms: u64) -> bool {
        at_ms < self.acted_before_ms
    }

    /// Conditions not yet resolved.
    pub fn active_conditions(&self) -> usize {
        self.conditions.len()
    }

    /// The earliest event time at which [`ActionStage::advance`] has something to do.
    pub fn next_due(&self) -> Option<u64> {
        let resolve = self.conditions.values().map(Condition::resolves_at).min();
        match (resolve, self.grouper.next_tick()) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    /// Takes one anomaly, after everything due before its time. Call in event-time order.
    pub fn anomaly(&mut self, mut anomaly: Anomaly, out: &mut Acted) {
        let at = parse_rfc3339_ms(&anomaly.timestamp).unwrap_or(0);
        self.advance(at.saturating_sub(1), out);
        let labels = labels_of(&anomaly);
        let entity = format!("{}:{}", anomaly.affected_entity.entity_type, anomaly.affected_entity.id);
        let condition_key = format!("{}|{entity}", anomaly.detector_id);

        // Correlation: the entity's recent anomalies.
        let within = self.config.correlate_within_ms;
        let cluster = self.clusters.entry(entity.clone()).or_default();
        while cluster
            .recent
            .front()
            .is_some_and(|(t, _)| t.saturating_add(within) < at)
        {
            cluster.recent.pop_front();
        }
        anomaly.related_anomalies = cluster
            .recent
            .iter()
            .rev()
            .filter(|(_, id)| *id != anomaly.id)
            .take(MAX_RELATED)
            .map(|(_, id)| id.clone())
            .collect();
        cluster.recent.push_back((at, anomaly.id.clone()));
        if cluster.recent.len() > MAX_RELATED + 1 {
            cluster.recent.pop_front();
        }

        self.suppressor.observe(&condition_key, &labels, at);
        let suppression = self.suppressor.suppressed(&labels, at);
        if suppression.is_some() {
            anomaly.status = "suppressed".into();
        }

        let quiet_ms = quiet_ms(&anomaly, &self.config);
        let starts = !self.conditions.contains_key(&condition_key);
        if starts {
            cluster.active += 1;
            self.conditions.insert(
                condition_key.clone(),
                Condition {
                    first: Box::new(anomaly.clone()),
                    entity: entity.clone(),
                    last_seen_ms: at,
                    quiet_ms,
                    lifts: Vec::new(),
                    groups: Vec::new(),
                    resolve_hooks: Vec::new(),
                },
            );
        }
        let condition = self.conditions.get_mut(&condition_key).expect("inserted above");
        condition.last_seen_ms = condition.last_seen_ms.max(at);
        condition.quiet_ms = condition.quiet_ms.max(quiet_ms);

        let specs = self
            .config
            .by_detector
            .get(&anomaly.detector_id)
            .map_or(&[][..], Vec::as_slice);
        let planned = plan(&anomaly, specs);
        let mut taken = Vec::with_capacity(specs.len());
        for skipped in planned.skipped {
            taken.push(ActionTaken {
                action_id: super::planner::action_id(&anomaly.id, skipped.index).to_string(),
                action: kind_of(&specs[skipped.index]),
                status: TakenStatus::Skipped,
                reason: Some(skipped.reason),
            });
        }
        let timestamp = anomaly.timestamp.clone();
        for action in planned.actions {
            let (kind, status) = match action.action {
                PlannedKind::Shield {
                    action: shield_type,
                    target_entity,
                    reason,
                    duration_seconds,
                    parameters,
                } => {
                    let per_request = target_entity.starts_with("request:");
                    let kind = shield_kind(shield_type);
                    if !(starts || per_request) {
                        (kind, TakenStatus::Grouped)
                    } else {
                        let endpoint = match &specs[action.index] {
                            ActionSpec::Shield { endpoint, .. } => endpoint.clone(),
                            _ => None,
                        };
                        let record = ShieldRecord {
                            action_id: action.action_id,
                            delivery_id: ShieldRecord::delivery_id_of(action.action_id, shield_type),
                            action: shield_type,
                            target_entity,
                            reason,
                            duration_seconds,
                            parameters,
                            anomaly_id: anomaly.id.clone(),
                            detector_id: anomaly.detector_id.clone(),
                            endpoint,
                            timestamp: timestamp.clone(),
                        };
                        if !per_request {
                            condition.lifts.push(record.clone());
                        }
                        out.shield.push(record);
                        (kind, TakenStatus::Planned)
                    }
                }
                PlannedKind::Alert {
                    severity,
                    receivers,
                    title,
                } => {
                    if let Some(s) = &suppression {
                        taken.push(suppressed(action.action_id, ActionKind::Alert, s));
                        continue;
                    }
                    let group = group_key(&self.config.group_by, &labels, &receivers);
                    let info = self.groups.entry(group.clone()).or_insert_with(|| GroupInfo {
                        receivers: receivers.clone(),
                        detector_id: anomaly.detector_id.clone(),
                        severity,
                        title: title.clone(),
                        entities: Vec::new(),
                        hooks: Vec::new(),
                    });
                    info.severity = info.severity.max(severity);
                    info.title = title;
                    if !info.entities.contains(&anomaly.affected_entity) {
                        info.entities.push(anomaly.affected_entity.clone());
                    }
                    for (hook, events) in webhooks_of(specs) {
                        if wants(events, WebhookEvent::AlertTriggered) && !info.hooks.contains(&hook) {
                            info.hooks.push(hook);
                        }
                    }
                    self.grouper.fire(&group, &condition.first.id, at);
                    if !condition.groups.contains(&group) {
                        condition.groups.push(group);
                    }
                    (
                        ActionKind::Alert,
                        if starts {
                            TakenStatus::Planned
                        } else {
                            TakenStatus::Grouped
                        },
                    )
                }
                PlannedKind::Incident { priority, title, .. } => {
                    let cluster = self.clusters.get_mut(&entity).expect("made above");
                    match cluster.incident {
                        None => {
                            let key = action.action_id;
                            cluster.incident = Some(key);
                            anomaly.incident_id = Some(key.to_string());
                            out.incidents.push(IncidentRecord {
                                id: StableId::of(&[b"incident-create", &key.0.to_le_bytes()]),
                                incident_key: key,
                                entity: entity.clone(),
                                anomaly_id: anomaly.id.clone(),
                                detector_id: anomaly.detector_id.clone(),
                                op: IncidentOp::Create {
                                    incident: Box::new(incident_body(&anomaly, priority, title, key, &taken)),
                                },
                                timestamp: timestamp.clone(),
                            });
                            (ActionKind::IncidentCreate, TakenStatus::Planned)
                        }
                        Some(key) if starts => {
                            anomaly.incident_id = Some(key.to_string());
                            out.incidents.push(IncidentRecord {
                                id: StableId::of(&[b"incident-comment", &key.0.to_le_bytes(), anomaly.id.as_bytes()]),
                                incident_key: key,
                                entity: entity.clone(),
                                anomaly_id: anomaly.id.clone(),
                                detector_id: anomaly.detector_id.clone(),
                                op: IncidentOp::Comment {
                                    text: related_comment(&anomaly),
                                },
                                timestamp: timestamp.clone(),
                            });
                            (ActionKind::IncidentComment, TakenStatus::Planned)
                        }
                        Some(key) => {
                            anomaly.incident_id = Some(key.to_string());
                            (ActionKind::IncidentComment, TakenStatus::Grouped)
                        }
                    }
                }
                PlannedKind::Webhook { hook } => {
                    let events = match &specs[action.index] {
                        ActionSpec::Webhook { events, .. } => events.as_slice(),
                        _ => &[],
                    };
                    if let Some(s) = &suppression {
                        taken.push(suppressed(action.action_id, ActionKind::Webhook, s));
                        continue;
                    }
                    if !wants(events, WebhookEvent::AnomalyDetected) && !wants(events, WebhookEvent::AnomalyResolved) {
                        // Only alert notifications: carried by the alert groups.
                        continue;
                    }
                    if !starts {
                        (ActionKind::Webhook, TakenStatus::Grouped)
                    } else {
                        if wants(events, WebhookEvent::AnomalyResolved) {
                            condition.resolve_hooks.push(hook);
                        }
                        if !wants(events, WebhookEvent::AnomalyDetected) {
                            continue;
                        }
                        out.webhooks.push(WebhookRecord::about(
                            WebhookEvent::AnomalyDetected,
                            anomaly.clone(),
                            hook,
                            timestamp.clone(),
                        ));
                        (ActionKind::Webhook, TakenStatus::Planned)
                    }
                }
            };
            taken.push(ActionTaken {
                action_id: action.action_id.to_string(),
                action: kind,
                status,
                reason: None,
            });
        }
        if anomaly.incident_id.is_none() {
            anomaly.incident_id = self
                .clusters
                .get(&entity)
                .and_then(|c| c.incident)
                .map(|k| k.to_string());
        }
        anomaly.actions_taken = taken;
        out.anomalies.push(anomaly);
    }

    /// Everything due at or before `now_ms` (event time): resolutions, then alert
    /// notifications, in time order.
    pub fn advance(&mut self, now_ms: u64, out: &mut Acted) {
        while let Some(at) = self.next_due().filter(|t| *t <= now_ms) {
            self.resolve_due(at, out);
            let notifications = self.grouper.due(at);
            self.notify(notifications, out);
        }
        self.suppressor.expire(now_ms);
        let within = self.config.correlate_within_ms;
        self.clusters
            .retain(|_, c| c.active > 0 || c.recent.back().is_some_and(|(t, _)| t.saturating_add(within) >= now_ms));
    }

    /// The input ended: alert groups still waiting send what they have. Conditions stay
    /// open, since the trace ending is not the detector going quiet.
    pub fn finish(&mut self, out: &mut Acted) {
        let pending = self.grouper.flush();
        self.notify(pending, out);
    }

    fn resolve_due(&mut self, at: u64, out: &mut Acted) {
        let due: Vec<String> = self
            .conditions
            .iter()
            .filter(|(_, c)| c.resolves_at() <= at)
            .map(|(k, _)| k.clone())
            .collect();
        for key in due {
            let condition = self.conditions.remove(&key).expect("listed above");
            let when = condition.resolves_at();
            let timestamp = format_rfc3339_ms(when);
            for group in &condition.groups {
                self.grouper.resolve(group, &condition.first.id);
            }
            self.suppressor.resolve(&key);
            for lift in condition.lifts {
                out.shield.push(ShieldRecord {
                    delivery_id: ShieldRecord::delivery_id_of(lift.action_id, ShieldActionType::Unblock),
                    action: ShieldActionType::Unblock,
                    reason: format!("resolved: {}", lift.reason),
                    duration_seconds: 0,
                    timestamp: timestamp.clone(),
                    ..lift
                });
            }
            let mut resolved = *condition.first;
            resolved.status = "resolved".into();
            out.lifecycle.push(LifecycleEvent::resolved_by_job(
                &resolved.id,
                ConditionScope {
                    detector_id: resolved.detector_id.clone(),
                    entity: condition.entity.clone(),
                    from_ms: parse_rfc3339_ms(&resolved.timestamp).unwrap_or(0),
                    through_ms: condition.last_seen_ms,
                },
                when,
            ));
            for hook in condition.resolve_hooks {
                out.webhooks.push(WebhookRecord::about(
                    WebhookEvent::AnomalyResolved,
                    resolved.clone(),
                    hook,
                    timestamp.clone(),
                ));
            }
            if let Some(cluster) = self.clusters.get_mut(&condition.entity) {
                cluster.active = cluster.active.saturating_sub(1);
                if cluster.active == 0 {
                    if let Some(incident_key) = cluster.incident.take() {
                        out.incidents.push(IncidentRecord {
                            id: StableId::of(&[b"incident-resolve", &incident_key.0.to_le_bytes()]),
                            incident_key,
                            entity: condition.entity.clone(),
                            anomaly_id: resolved.id.clone(),
                            detector_id: resolved.detector_id.clone(),
                            op: IncidentOp::Resolve {
                                resolution: format!(
                                    "Sentinel saw no anomaly on {} for {} after {}.",
                                    condition.entity,
                                    crate::time::format_duration_ms(condition.quiet_ms),
                                    format_rfc3339_ms(condition.last_seen_ms),
                                ),
                            },
                            timestamp: timestamp.clone(),
                        });
                    }
                }
            }
        }
    }

    fn notify(&mut self, notifications: Vec<super::grouping::GroupNotification>, out: &mut Acted) {
        for n in notifications {
            let Some(info) = self.groups.get(&n.group_key).cloned() else {
                continue;
            };
            let status = if n.firing.is_empty() {
                self.groups.remove(&n.group_key);
                AlertStatus::Resolved
            } else {
                AlertStatus::Firing
            };
            let record = AlertRecord {
                id: n.id,
                group_key: n.group_key,
                sequence: n.sequence,
                reason: n.reason,
                status,
                severity: info.severity,
                title: info.title,
                receivers: info.receivers,
                detector_id: info.detector_id,
                entities: info.entities,
                firing: n.firing,
                resolved: n.resolved,
                timestamp: format_rfc3339_ms(n.at_ms),
            };
            for hook in info.hooks {
                out.webhooks.push(WebhookRecord {
                    id: WebhookRecord::id_of(WebhookEvent::AlertTriggered, &record.id.to_string(), hook),
                    event: WebhookEvent::AlertTriggered,
                    hook,
                    anomaly_id: record
                        .firing
                        .first()
                        .or(record.resolved.first())
                        .cloned()
                        .unwrap_or_default(),
                    subject: WebhookSubject::Alert(Box::new(record.clone())),
                    timestamp: record.timestamp.clone(),
                });
            }
            out.alerts.push(record);
        }
    }
}

/// An anomaly's labels.
pub fn labels_of(a: &Anomaly) -> Labels {
    [
        ("detector_id", a.detector_id.as_str()),
        ("detector_type", a.detector_type.as_str()),
        ("severity", a.severity.as_str()),
        ("entity_type", a.affected_entity.entity_type.as_str()),
        ("entity_id", a.affected_entity.id.as_str()),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v.to_owned()))
    .collect()
}

fn group_key(group_by: &[String], labels: &Labels, receivers: &[String]) -> String {
    let mut key: Vec<&str> = group_by
        .iter()
        .map(|l| labels.get(l).map_or("", String::as_str))
        .collect();
    let receivers = receivers.join(",");
    key.push(&receivers);
    key.join("|")
}

fn quiet_ms(a: &Anomaly, config: &ActConfig) -> u64 {
    let window = match (
        parse_rfc3339_ms(&a.context.window_start),
        parse_rfc3339_ms(&a.context.window_end),
    ) {
        (Some(s), Some(e)) => e.saturating_sub(s),
        _ => 0,
    };
    window
        .max(config.min_window_ms)
        .saturating_mul(u64::from(config.resolve_after_windows.max(1)))
}

fn wants(events: &[WebhookEvent], event: WebhookEvent) -> bool {
    events.is_empty() || events.contains(&event)
}

fn webhooks_of(specs: &[ActionSpec]) -> impl Iterator<Item = (usize, &[WebhookEvent])> {
    specs.iter().filter_map(|s| match s {
        ActionSpec::Webhook { hook, events, .. } => Some((*hook, events.as_slice())),
        _ => None,
    })
}

fn shield_kind(t: ShieldActionType) -> ActionKind {
    match t {
        ShieldActionType::Block => ActionKind::ShieldBlock,
        ShieldActionType::RateLimit => ActionKind::ShieldRateLimit,
        ShieldActionType::Unblock => ActionKind::ShieldUnblock,
    }
}

fn kind_of(spec: &ActionSpec) -> ActionKind {
    match spec {
        ActionSpec::Shield { action, .. } => shield_kind(*action),
        ActionSpec::Alert { .. } => ActionKind::Alert,
        ActionSpec::Incident { .. } => ActionKind::IncidentCreate,
        ActionSpec::Webhook { .. } => ActionKind::Webhook,
    }
}

/// An action held back by `s`, as `actions_taken` lists it.
fn suppressed(action_id: StableId, action: ActionKind, s: &super::suppress::Suppression) -> ActionTaken {
    let reason = match s {
        super::suppress::Suppression::Silenced(id) => format!("silenced by {id}"),
        super::suppress::Suppression::Inhibited(id) => format!("inhibited by {id}"),
    };
    ActionTaken {
        action_id: action_id.to_string(),
        action,
        status: TakenStatus::Suppressed,
        reason: Some(reason),
    }
}

fn related_comment(a: &Anomaly) -> String {
    format!(
        "Related anomaly **{}** ({}, {}, score {:.2}) at {}: {}",
        a.detector_id,
        a.id,
        a.severity.as_str(),
        a.score,
        a.timestamp,
        a.title
    )
}

fn incident_body(
    a: &Anomaly,
    priority: super::planner::Priority,
    title: String,
    key: StableId,
    taken: &[ActionTaken],
) -> IncidentBody {
    let m = &a.metrics;
    let e = &a.affected_entity;
    let mut description = format!(
        "## Anomaly\n\n- **Detector:** {} ({:?})\n- **Entity:** {} `{}`\n- **Score:** {:.1}%\n- **Detected at:** {}\n\n{}\n\n\
         ## Figures\n\n- **Baseline:** {}\n- **Observed:** {}\n- **Deviation:** {:.2}σ\n- **Threshold:** {}\n\n\
         ## Context\n\n- **Window:** {} to {}\n- **Sample events:** {}\n\n## Actions taken\n\n",
        a.detector_id,
        a.detector_type,
        e.entity_type,
        e.id,
        a.score * 100.0,
        a.timestamp,
        a.description,
        m.baseline_value,
        m.observed_value,
        m.deviation,
        m.threshold,
        a.context.window_start,
        a.context.window_end,
        if a.context.sample_events.is_empty() {
            "none".to_owned()
        } else {
            a.context.sample_events.join(", ")
        },
    );
    if taken.is_empty() {
        description.push_str("- none before this incident\n");
    }
    for t in taken {
        description.push_str(&format!("- {}: {}\n", t.action.as_str(), t.status.as_str()));
    }
    IncidentBody {
        source: "llm-sentinel".into(),
        incident_type: "anomaly_detected".into(),
        severity: priority,
        title,
        description,
        metadata: IncidentMetadata {
            anomaly_id: a.id.clone(),
            detector_id: a.detector_id.clone(),
            score: a.score,
            timestamp: a.timestamp.clone(),
            incident_key: key.to_string(),
        },
        affected_entities: vec![e.clone()],
        remediation_actions: remediation(a),
    }
}

/// What an operator should look at, by what kind of detector fired.
fn remediation(a: &Anomaly) -> Vec<String> {
    let mut steps = vec![
        format!("Open anomaly {} in Sentinel and read its sample events.", a.id),
        "Check the related anomalies on the same entity for a common cause.".to_owned(),
    ];
    let specific: &[&str] = match a.detector_type {
        DetectorType::Rule | DetectorType::Ml => &[
            "Review the blocked requests for false positives before lifting the block.",
            "Look for the same technique from other users of the application.",
            "Tune the detector's threshold or rules if the block was wrong.",
        ],
        DetectorType::Statistical => &[
            "Compare the spike with known traffic changes (a release, a campaign, a batch job).",
            "Review the entity's rate limits and budget.",
            "Look for a runaway client or automated abuse behind the traffic.",
        ],
        DetectorType::Behavioral => &[
            "Replay the session's tool calls to see where the agent went wrong.",
            "Check the agent's tool permissions and loop limits.",
        ],
    };
    steps.extend(specific.iter().map(|s| (*s).to_owned()));
    steps
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::act::{Matcher, Priority, TargetKind};
    use crate::model::{AnomalyDraft, AnomalyMetrics};

    const MIN: u64 = 60_000;
    const T0: u64 = 1_717_200_000_000;

    fn anomaly(detector: &str, kind: DetectorType, severity: Severity, entity: (&str, &str), at: u64) -> Anomaly {
        let window = if kind == DetectorType::Statistical { MIN } else { 0 };
        Anomaly::build(AnomalyDraft {
            id_parts: &[detector.as_bytes(), entity.1.as_bytes(), &at.to_le_bytes()],
            detector_id: detector,
            detector_type: kind,
            severity,
            score: 0.95,
            title: format!("{detector} on {}", entity.1),
            description: "figures".into(),
            entity: AffectedEntity {
                entity_type: entity.0.into(),
                id: entity.1.into(),
                name: entity.1.into(),
            },
            metrics: AnomalyMetrics {
                baseline_value: 1.0,
                observed_value: 9.0,
                deviation: 8.0,
                threshold: 4.0,
            },
            at_ms: at,
            window_ms: (at - window, at),
            sample_events: vec![format!("e-{at}")],
        })
    }

    /// A cost spike on application `chat` in each of the first `minutes` minutes.
    fn cost_spike_minutes(minutes: u64) -> impl Iterator<Item = Anomaly> {
        (1..=minutes).map(|m| {
            anomaly(
                "cost-spike",
                DetectorType::Statistical,
                Severity::Warning,
                ("application", "chat"),
                T0 + m * MIN,
            )
        })
    }

    fn injection_actions() -> Vec<ActionSpec> {
        vec![
            ActionSpec::Shield {
                action: ShieldActionType::Block,
                target: Some(TargetKind::User),
                duration_ms: 3_600_000,
                reason: Some("Prompt injection attack detected".into()),
                parameters: BTreeMap::new(),
                endpoint: Some("127.0.0.1:9090".into()),
            },
            ActionSpec::Alert {
                severity: Some(Severity::Critical),
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
                severities: Vec::new(),
                events: Vec::new(),
            },
        ]
    }

    fn cost_actions() -> Vec<ActionSpec> {
        vec![
            ActionSpec::Shield {
                action: ShieldActionType::RateLimit,
                target: Some(TargetKind::Application),
                duration_ms: 600_000,
                reason: None,
                parameters: [("limit".to_owned(), "100".to_owned())].into(),
                endpoint: None,
            },
            ActionSpec::Alert {
                severity: Some(Severity::Warning),
                receivers: vec!["ops-team".into()],
            },
            ActionSpec::Webhook {
                hook: 1,
                severities: Vec::new(),
                events: vec![WebhookEvent::AnomalyDetected, WebhookEvent::AnomalyResolved],
            },
        ]
    }

    fn stage() -> ActionStage {
        let mut config = ActConfig::default();
        config
            .by_detector
            .insert("prompt-injection".into(), injection_actions());
        config.by_detector.insert("cost-spike".into(), cost_actions());
        let mut flood = cost_actions();
        flood.push(injection_actions().swap_remove(2));
        config.by_detector.insert("request-flood".into(), flood);
        ActionStage::new(config)
    }

    /// Feeds `anomalies` in order, advancing to each one's time first, then to `end`.
    fn run(stage: &mut ActionStage, anomalies: Vec<Anomaly>, end: u64) -> Acted {
        let mut out = Acted::default();
        for a in anomalies {
            stage.anomaly(a, &mut out);
        }
        stage.advance(end, &mut out);
        out
    }

    #[test]
    fn a_spike_persisting_ten_windows_notifies_once_and_resolves_once() {
        let mut s = stage();
        let spikes = cost_spike_minutes(10).collect();
        let out = run(&mut s, spikes, T0 + 60 * MIN);
        // One rate limit, lifted once under the same action id, after 3 quiet windows.
        assert_eq!(out.shield.len(), 2, "{:#?}", out.shield);
        assert_eq!(out.shield[0].action, ShieldActionType::RateLimit);
        assert_eq!(out.shield[0].target_entity, "application:chat");
        assert_eq!(out.shield[1].action, ShieldActionType::Unblock);
        assert_eq!(out.shield[1].action_id, out.shield[0].action_id);
        assert_ne!(out.shield[1].delivery_id, out.shield[0].delivery_id);
        assert_eq!(out.shield[1].timestamp, format_rfc3339_ms(T0 + 13 * MIN));
        // One alert notification firing, one resolved.
        let statuses: Vec<_> = out.alerts.iter().map(|a| (a.status, a.reason)).collect();
        assert_eq!(
            statuses,
            [
                (AlertStatus::Firing, super::super::NotifyReason::New),
                (AlertStatus::Resolved, super::super::NotifyReason::Changed)
            ]
        );
        assert_eq!(out.alerts[0].receivers, ["ops-team"]);
        assert_eq!(out.alerts[0].firing, [out.anomalies[0].id.clone()]);
        // One detected webhook, one resolved, about the condition's first anomaly.
        let hooks: Vec<_> = out.webhooks.iter().map(|w| (w.event, w.anomaly_id.clone())).collect();
        let first = out.anomalies[0].id.clone();
        assert_eq!(
            hooks,
            [
                (WebhookEvent::AnomalyDetected, first.clone()),
                (WebhookEvent::AnomalyResolved, first.clone())
            ]
        );
        // One lifecycle event resolves the condition: every anomaly of its ten minutes.
        assert_eq!(out.lifecycle.len(), 1, "{:#?}", out.lifecycle);
        let resolution = &out.lifecycle[0];
        assert_eq!(resolution.anomaly_id, first);
        assert_eq!(resolution.at_ms, T0 + 13 * MIN);
        let scope = resolution.condition.as_ref().expect("a job resolution has a scope");
        assert_eq!(scope.entity, "application:chat");
        assert_eq!(scope.detector_id, out.anomalies[0].detector_id);
        let times: Vec<u64> = out
            .anomalies
            .iter()
            .map(|a| parse_rfc3339_ms(&a.timestamp).unwrap())
            .collect();
        assert_eq!((scope.from_ms, scope.through_ms), (times[0], *times.last().unwrap()));
        // The first anomaly planned everything; the others joined it.
        assert!(out.anomalies[0]
            .actions_taken
            .iter()
            .all(|t| t.status == TakenStatus::Planned));
        assert!(out.anomalies[5]
            .actions_taken
            .iter()
            .all(|t| t.status == TakenStatus::Grouped));
        assert_eq!(out.anomalies[5].related_anomalies.len(), 5);
        assert_eq!(s.active_conditions(), 0);
    }

    #[test]
    fn anomalies_on_one_user_share_one_incident_that_resolves_with_the_last() {
        let mut s = stage();
        let user = ("user", "u-42");
        let out = run(
            &mut s,
            vec![
                anomaly("prompt-injection", DetectorType::Rule, Severity::Critical, user, T0),
                anomaly(
                    "prompt-injection",
                    DetectorType::Rule,
                    Severity::Critical,
                    user,
                    T0 + 10_000,
                ),
                anomaly(
                    "request-flood",
                    DetectorType::Behavioral,
                    Severity::Critical,
                    user,
                    T0 + 20_000,
                ),
            ],
            T0 + 60 * MIN,
        );
        let ops: Vec<_> = out
            .incidents
            .iter()
            .map(|i| match &i.op {
                IncidentOp::Create { incident } => {
                    assert_eq!(incident.severity, Priority::P1);
                    assert!(incident.description.contains("prompt-injection"));
                    assert!(!incident.remediation_actions.is_empty());
                    "create"
                }
                IncidentOp::Comment { .. } => "comment",
                IncidentOp::Resolve { .. } => "resolve",
            })
            .collect();
        assert_eq!(ops, ["create", "comment", "resolve"]);
        let key = out.incidents[0].incident_key;
        assert!(out.incidents.iter().all(|i| i.incident_key == key));
        assert!(out
            .anomalies
            .iter()
            .all(|a| a.incident_id.as_deref() == Some(key.to_string().as_str())));
        // Linked both ways in time order: the third lists the first two.
        assert_eq!(
            out.anomalies[2].related_anomalies,
            [out.anomalies[1].id.clone(), out.anomalies[0].id.clone()]
        );
        // One user block for the injection condition; the flood rate-limits... nothing, since
        // its application target does not fit a user anomaly: skipped with its reason.
        let blocks: Vec<_> = out.shield.iter().map(|r| r.action).collect();
        assert_eq!(blocks, [ShieldActionType::Block, ShieldActionType::Unblock]);
        assert_eq!(out.shield[0].endpoint.as_deref(), Some("127.0.0.1:9090"));
        let skipped = &out.anomalies[2].actions_taken[0];
        assert_eq!(skipped.status, TakenStatus::Skipped);
        assert!(skipped.reason.as_deref().unwrap().contains("not a application"));
        // The incident resolves only after the last condition on the user does.
        let resolve = out.incidents.last().unwrap();
        let flood_quiet = T0 + 20_000 + 3 * MIN;
        assert_eq!(resolve.timestamp, format_rfc3339_ms(flood_quiet));
    }

    #[test]
    fn a_critical_alert_inhibits_the_entitys_warnings_and_a_silence_suppresses() {
        let mut config = ActConfig::default();
        config
            .by_detector
            .insert("prompt-injection".into(), injection_actions());
        config.by_detector.insert("cost-spike".into(), cost_actions());
        config.silences.push(Silence {
            id: "maintenance".into(),
            matchers: vec![Matcher::eq("entity_id", "batch")],
            starts_ms: T0,
            ends_ms: T0 + 30 * MIN,
            comment: "load test".into(),
        });
        let mut s = ActionStage::new(config);
        let out = run(
            &mut s,
            vec![
                anomaly(
                    "prompt-injection",
                    DetectorType::Rule,
                    Severity::Critical,
                    ("user", "u-1"),
                    T0,
                ),
                anomaly(
                    "cost-spike",
                    DetectorType::Statistical,
                    Severity::Warning,
                    ("user", "u-1"),
                    T0 + MIN,
                ),
                anomaly(
                    "cost-spike",
                    DetectorType::Statistical,
                    Severity::Warning,
                    ("application", "batch"),
                    T0 + MIN,
                ),
            ],
            T0 + 60 * MIN,
        );
        let inhibited = &out.anomalies[1];
        assert_eq!(inhibited.status, "suppressed");
        let alert = inhibited
            .actions_taken
            .iter()
            .find(|t| t.action == ActionKind::Alert)
            .unwrap();
        assert_eq!(alert.status, TakenStatus::Suppressed);
        assert!(alert
            .reason
            .as_deref()
            .unwrap()
            .starts_with("inhibited by prompt-injection|user:u-1"));
        let silenced = out.anomalies[2]
            .actions_taken
            .iter()
            .find(|t| t.action == ActionKind::Alert)
            .unwrap();
        assert_eq!(silenced.reason.as_deref(), Some("silenced by maintenance"));
        // Only the injection's group notified: firing, then resolved.
        assert!(out.alerts.iter().all(|a| a.receivers == ["security-team"]));
        assert_eq!(out.alerts.len(), 2);
        // Shield still acts on suppressed anomalies: suppression is about notifications.
        assert!(out.shield.iter().any(|r| r.target_entity == "application:batch"));
    }

    #[test]
    fn the_same_anomalies_give_the_same_records() {
        let trace = || {
            (0..30)
                .map(|i| {
                    let user = ["u-1", "u-2", "u-3"][i % 3];
                    anomaly(
                        "prompt-injection",
                        DetectorType::Rule,
                        Severity::Critical,
                        ("user", user),
                        T0 + i as u64 * 45_000,
                    )
                })
                .collect::<Vec<_>>()
        };
        let (a, b) = (
            run(&mut stage(), trace(), T0 + 120 * MIN),
            run(&mut stage(), trace(), T0 + 120 * MIN),
        );
        assert_eq!(a, b);
        // Three users: three blocks, three incidents, each lifted and resolved once.
        assert_eq!(a.shield.len(), 6);
        assert_eq!(a.incidents.len(), 6);
        let ids: std::collections::BTreeSet<_> = a.alerts.iter().map(|r| r.id).collect();
        assert_eq!(ids.len(), a.alerts.len(), "notification ids are unique");
    }

    #[test]
    fn a_stage_restored_mid_condition_carries_on_as_if_never_stopped() {
        // A user blocked, then flooding; an application's cost spike over ten windows.
        let mut trace: Vec<Anomaly> = (0..12)
            .map(|i| {
                let kind = if i % 2 == 0 {
                    "prompt-injection"
                } else {
                    "request-flood"
                };
                let severity = if i % 2 == 0 {
                    Severity::Critical
                } else {
                    Severity::Warning
                };
                anomaly(kind, DetectorType::Rule, severity, ("user", "u-7"), T0 + i * 50_000)
            })
            .chain(cost_spike_minutes(10))
            .collect();
        trace.sort_by_key(|a| parse_rfc3339_ms(&a.timestamp));
        let end = T0 + 60 * MIN;
        let whole = run(&mut stage(), trace.clone(), end);

        // Stopped after five minutes, mid-condition for all three: checkpointed as JSON, the
        // way the state topic holds it, and restored into a new stage.
        let cut = T0 + 5 * MIN;
        let (before, after): (Vec<_>, Vec<_>) = trace
            .into_iter()
            .partition(|a| parse_rfc3339_ms(&a.timestamp).unwrap() < cut);
        let mut first = stage();
        let mut out = run(&mut first, before, cut - 1);
        let snapshot = first.snapshot("group-1", cut);
        assert_eq!(snapshot.open_conditions(), 3);
        let json = serde_json::to_string(&crate::detect::StateRecord::Actions(snapshot.clone())).unwrap();
        let crate::detect::StateRecord::Actions(read) = serde_json::from_str(&json).unwrap() else {
            panic!("not an actions record: {json}");
        };
        assert_eq!(read, snapshot);
        let mut second = stage();
        second.restore(read);
        assert!(second.already_acted(cut - 1) && !second.already_acted(cut));
        let rest = run(&mut second, after, end);
        out.anomalies.extend(rest.anomalies);
        out.webhooks.extend(rest.webhooks);
        out.shield.extend(rest.shield);
        out.alerts.extend(rest.alerts);
        out.incidents.extend(rest.incidents);
        out.lifecycle.extend(rest.lifecycle);
        assert_eq!(whole.lifecycle.len(), 3, "each condition resolves once");
        assert_eq!(out, whole, "the same records, none twice, as one uninterrupted stage");
        // No second block or incident for the conditions open across the restart.
        assert_eq!(
            whole
                .incidents
                .iter()
                .filter(|i| matches!(i.op, IncidentOp::Create { .. }))
                .count(),
            1
        );
    }

    #[test]
    fn a_group_waiting_at_the_end_of_the_input_still_notifies() {
        let mut s = stage();
        let mut out = Acted::default();
        s.anomaly(
            anomaly(
                "prompt-injection",
                DetectorType::Rule,
                Severity::Critical,
                ("user", "u-1"),
                T0,
            ),
            &mut out,
        );
        assert!(out.alerts.is_empty());
        s.finish(&mut out);
        assert_eq!(out.alerts.len(), 1);
        assert_eq!(out.alerts[0].timestamp, format_rfc3339_ms(T0 + 30_000));
        assert_eq!(s.active_conditions(), 1, "the condition stays open");
    }

    /// Records cross processes in bincode (timely's exchange), which cannot skip fields or
    /// read internally tagged enums: every record kind must come back equal.
    #[test]
    fn every_record_survives_the_binary_exchange() {
        fn roundtrip<T: Serialize + for<'de> Deserialize<'de> + PartialEq + std::fmt::Debug>(items: &[T]) {
            assert!(!items.is_empty());
            for item in items {
                let bytes = bincode::serialize(item).unwrap();
                assert_eq!(&bincode::deserialize::<T>(&bytes).unwrap(), item);
            }
        }
        let mut s = stage();
        let user = ("user", "u-42");
        let out = run(
            &mut s,
            vec![
                anomaly("prompt-injection", DetectorType::Rule, Severity::Critical, user, T0),
                anomaly(
                    "request-flood",
                    DetectorType::Behavioral,
                    Severity::Critical,
                    user,
                    T0 + 20_000,
                ),
                anomaly(
                    "cost-spike",
                    DetectorType::Statistical,
                    Severity::Warning,
                    ("application", "chat"),
                    T0 + MIN,
                ),
            ],
            T0 + 60 * MIN,
        );
        roundtrip(&out.anomalies);
        // The names written by hand are the serialized ones.
        for t in out.anomalies.iter().flat_map(|a| &a.actions_taken) {
            assert_eq!(serde_json::to_value(t.action).unwrap(), t.action.as_str());
            assert_eq!(serde_json::to_value(t.status).unwrap(), t.status.as_str());
        }
        for r in &out.shield {
            assert_eq!(serde_json::to_value(r.action).unwrap(), r.action.as_str());
        }
        roundtrip(&out.shield);
        roundtrip(&out.alerts);
        roundtrip(&out.incidents);
        roundtrip(&out.webhooks);
        let letter = crate::model::DeadLetter::new(
            crate::model::Reason::DeliveryFailed,
            "gave up".into(),
            crate::model::Position {
                source: "outbox:alerts.jsonl".into(),
                line: None,
                partition: None,
                offset: Some(7),
            },
            b"{}",
            2,
            64,
        );
        roundtrip(&[letter]);
    }
}
