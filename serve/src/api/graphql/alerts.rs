//! The alert history: every notification the job sent to its receivers, from `sentinel.alerts`.

use async_graphql::{Enum, InputObject, SimpleObject, ID};
use serde_json::Value;

use super::types::{DateTime, Entity, PageInfo, Severity, TimeRange};
use crate::store::AlertFilter;
use sentinel_dataflows::act::{AlertRecord, AlertStatus as RecordStatus, NotifyReason};

/// Whether an alert group still fires.
#[derive(Enum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum AlertStatus {
    /// At least one of its anomalies' conditions goes on.
    Firing,
    /// Every one ended: the group's last notification.
    Resolved,
}

impl AlertStatus {
    fn of(s: RecordStatus) -> AlertStatus {
        match s {
            RecordStatus::Firing => AlertStatus::Firing,
            RecordStatus::Resolved => AlertStatus::Resolved,
        }
    }

    /// The name the store filters on.
    pub fn as_str(self) -> &'static str {
        match self {
            AlertStatus::Firing => "firing",
            AlertStatus::Resolved => "resolved",
        }
    }
}

/// Why a notification went out.
#[derive(Enum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum AlertReason {
    /// The group's first.
    New,
    /// An alert joined or resolved.
    Changed,
    /// Nothing changed, and the group still fires after its repeat interval.
    Repeat,
}

/// Which notifications: every list empty or absent matches all.
#[derive(InputObject, Clone, Debug, Default)]
#[graphql(name = "AlertFilter")]
pub struct AlertFilterInput {
    /// Firing or resolved.
    pub statuses: Option<Vec<AlertStatus>>,
    /// Severities.
    pub severities: Option<Vec<Severity>>,
    /// Detector ids.
    pub detector_ids: Option<Vec<String>>,
    /// Sent to any of these receivers.
    pub receivers: Option<Vec<String>>,
}

impl AlertFilterInput {
    /// The store's filter over `range`.
    pub fn to_store(&self, range: TimeRange) -> AlertFilter {
        AlertFilter {
            start_ms: range.start.0,
            end_ms: range.end.0,
            statuses: self.statuses.iter().flatten().map(|s| s.as_str().to_owned()).collect(),
            severities: self
                .severities
                .iter()
                .flatten()
                .map(|s| s.as_str().to_owned())
                .collect(),
            detectors: self.detector_ids.clone().unwrap_or_default(),
            receivers: self.receivers.clone().unwrap_or_default(),
        }
    }
}

/// One notification of an alert group.
#[derive(SimpleObject, Clone, Debug)]
#[graphql(name = "Alert")]
pub struct AlertNode {
    /// Deterministic id: the receivers' idempotency key.
    pub id: ID,
    /// Event time of the notification.
    pub timestamp: DateTime,
    /// The group it threads into.
    pub group_key: String,
    /// Its number in the group, from 0.
    pub sequence: i32,
    /// Why it went out.
    pub reason: AlertReason,
    /// Firing or resolved.
    pub status: AlertStatus,
    /// The most severe of its alerts.
    pub severity: Severity,
    /// The newest alert's title.
    pub title: String,
    /// Who it went to.
    pub receivers: Vec<String>,
    /// The detector.
    pub detector_id: String,
    /// What it is about.
    pub entities: Vec<Entity>,
    /// Ids of the anomalies firing.
    pub firing_anomaly_ids: Vec<String>,
    /// Ids of those resolved since the group's last notification.
    pub resolved_anomaly_ids: Vec<String>,
}

impl AlertNode {
    /// From the store's JSON; `None` if it is not an alert.
    pub fn from_value(value: Value) -> Option<AlertNode> {
        let a: AlertRecord = serde_json::from_value(value).ok()?;
        Some(AlertNode {
            id: ID(a.id.to_string()),
            timestamp: DateTime::of(&a.timestamp)?,
            group_key: a.group_key,
            sequence: i32::try_from(a.sequence).unwrap_or(i32::MAX),
            reason: match a.reason {
                NotifyReason::New => AlertReason::New,
                NotifyReason::Changed => AlertReason::Changed,
                NotifyReason::Repeat => AlertReason::Repeat,
            },
            status: AlertStatus::of(a.status),
            severity: Severity::of(a.severity),
            title: a.title,
            receivers: a.receivers,
            detector_id: a.detector_id,
            entities: a.entities.into_iter().map(Entity::of).collect(),
            firing_anomaly_ids: a.firing,
            resolved_anomaly_ids: a.resolved,
        })
    }
}

/// One edge of the alert connection.
#[derive(SimpleObject, Clone, Debug)]
pub struct AlertEdge {
    /// The notification.
    pub node: AlertNode,
    /// Its position: pass as `Pagination.after` for the rows after it.
    pub cursor: String,
}

/// A page of notifications, newest first.
#[derive(SimpleObject, Clone, Debug)]
pub struct AlertConnection {
    /// The notifications.
    pub edges: Vec<AlertEdge>,
    /// Where the page ends.
    pub page_info: PageInfo,
    /// How many match in all.
    pub total_count: i64,
}
