//! An anomaly's lifecycle: ACTIVE → ACKNOWLEDGED → RESOLVED, and SUPPRESSED by a silence.
//! Every change is one [`LifecycleEvent`] on the `sentinel.anomaly-events` topic: people's
//! through the API, the job's when a condition ends. Every serving replica applies the topic's
//! events in its order, so all of them reach the same state and the same audit trail.

use serde::{Deserialize, Serialize};

use crate::hash::stable_id;

/// Where an anomaly is in its lifecycle.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    /// Detected, nobody has looked at it.
    Active,
    /// A person has seen it.
    Acknowledged,
    /// Over: the job saw the condition end, or a person closed it.
    Resolved,
    /// Held back by a silence or an inhibiting alert: no one was notified.
    Suppressed,
}

impl Status {
    /// Every status, in lifecycle order.
    pub const ALL: [Status; 4] = [
        Status::Active,
        Status::Acknowledged,
        Status::Resolved,
        Status::Suppressed,
    ];

    /// The name in records and REST (`active`).
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Active => "active",
            Status::Acknowledged => "acknowledged",
            Status::Resolved => "resolved",
            Status::Suppressed => "suppressed",
        }
    }

    /// Parses a REST or record name, in any case (`ACTIVE` as GraphQL writes it).
    pub fn parse(text: &str) -> Option<Status> {
        Status::ALL.into_iter().find(|s| s.as_str().eq_ignore_ascii_case(text))
    }
}

/// Who changed the status.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ChangeSource {
    /// The job (a detection, or `anomaly.resolved` when its condition ended).
    Job,
    /// A person, through the API.
    Person,
}

/// What a change asks for.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "action")]
pub enum Change {
    /// A person has seen it.
    Acknowledge,
    /// It is over.
    Resolve,
}

impl Change {
    /// The status the change leads to.
    pub fn target(&self) -> Status {
        match self {
            Change::Acknowledge => Status::Acknowledged,
            Change::Resolve => Status::Resolved,
        }
    }
}

/// The anomalies a job resolution covers: every one its detector raised on its entity while
/// the condition lasted, not only the first.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConditionScope {
    /// The detector.
    pub detector_id: String,
    /// The entity, `type:id`.
    pub entity: String,
    /// The condition's first anomaly, ms.
    pub from_ms: u64,
    /// Its last anomaly, ms.
    pub through_ms: u64,
}

/// One lifecycle change, as published and audited.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct LifecycleEvent {
    /// Deterministic: a hash of the anomaly, the change, who and when, so a replica (or a
    /// restarted job) that writes or reads it twice applies it once.
    pub id: String,
    /// The anomaly.
    pub anomaly_id: String,
    /// What was asked.
    #[serde(flatten)]
    pub change: Change,
    /// The status before, as the writer saw it; the audit keeps the status it had where
    /// the event was applied.
    pub from: Status,
    /// The status after.
    pub to: Status,
    /// Who: the user name given, or `sentinel` for the job.
    pub by: String,
    /// Where it came from.
    pub source: ChangeSource,
    /// The person's note.
    pub note: Option<String>,
    /// When (wall clock for people, event time for the job), ms since the epoch.
    pub at_ms: u64,
    /// For a job resolution: the condition's other anomalies, resolved with it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub condition: Option<ConditionScope>,
}

impl LifecycleEvent {
    /// A person's change to an anomaly seen at `from`.
    ///
    /// ```
    /// use sentinel_dataflows::model::lifecycle::{Change, LifecycleEvent, Status};
    /// let a = LifecycleEvent::by_person("an-1", Change::Acknowledge, Status::Active, "ana", None, 7);
    /// let b = LifecycleEvent::by_person("an-1", Change::Acknowledge, Status::Active, "ana", None, 7);
    /// assert_eq!(a.id, b.id);
    /// assert_eq!(a.to, Status::Acknowledged);
    /// ```
    pub fn by_person(
        anomaly_id: &str,
        change: Change,
        from: Status,
        by: &str,
        note: Option<String>,
        at_ms: u64,
    ) -> LifecycleEvent {
        LifecycleEvent {
            id: event_id(anomaly_id, &change, by, at_ms),
            anomaly_id: anomaly_id.to_owned(),
            to: change.target(),
            change,
            from,
            by: by.to_owned(),
            source: ChangeSource::Person,
            note,
            at_ms,
            condition: None,
        }
    }

    /// The job's resolution of a condition whose first anomaly is `anomaly_id`, at event
    /// time `at_ms`.
    pub fn resolved_by_job(anomaly_id: &str, condition: ConditionScope, at_ms: u64) -> LifecycleEvent {
        LifecycleEvent {
            id: event_id(anomaly_id, &Change::Resolve, JOB, at_ms),
            anomaly_id: anomaly_id.to_owned(),
            change: Change::Resolve,
            from: Status::Active,
            to: Status::Resolved,
            by: JOB.to_owned(),
            source: ChangeSource::Job,
            note: None,
            at_ms,
            condition: Some(condition),
        }
    }

    /// The same change as applied to an anomaly that was at `from` (the audit's copy).
    pub fn applied_from(&self, from: Status) -> LifecycleEvent {
        LifecycleEvent { from, ..self.clone() }
    }
}

/// Who the job's own changes are by.
pub const JOB: &str = "sentinel";

fn event_id(anomaly_id: &str, change: &Change, by: &str, at_ms: u64) -> String {
    let action = match change {
        Change::Acknowledge => "acknowledge",
        Change::Resolve => "resolve",
    };
    stable_id(&[
        b"lifecycle",
        anomaly_id.as_bytes(),
        action.as_bytes(),
        by.as_bytes(),
        &at_ms.to_le_bytes(),
    ])
}

/// Why a change is refused.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Refused {
    /// The transition is not allowed from where the anomaly is.
    Transition {
        /// Where it is.
        from: Status,
        /// Where it was asked to go.
        to: Status,
    },
}

impl std::fmt::Display for Refused {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Refused::Transition { from, to } => {
                write!(f, "an anomaly that is {} cannot become {}", from.as_str(), to.as_str())
            }
        }
    }
}

/// Whether `change` may apply to an anomaly at `from`. Acknowledging twice, or resolving what is
/// resolved, is refused (the caller sees the current state); a suppressed anomaly may be
/// acknowledged or resolved by a person who looks at it anyway.
///
/// ```
/// use sentinel_dataflows::model::lifecycle::{check, Change, Status};
/// assert_eq!(check(Status::Active, &Change::Acknowledge), Ok(Status::Acknowledged));
/// assert!(check(Status::Resolved, &Change::Acknowledge).is_err());
/// ```
pub fn check(from: Status, change: &Change) -> Result<Status, Refused> {
    let to = change.target();
    let allowed = match change {
        Change::Acknowledge => matches!(from, Status::Active | Status::Suppressed),
        Change::Resolve => from != Status::Resolved,
    };
    if allowed {
        Ok(to)
    } else {
        Err(Refused::Transition { from, to })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_lifecycle_moves_forward_only() {
        use Status::*;
        let ack = Change::Acknowledge;
        let resolve = Change::Resolve;
        assert_eq!(check(Active, &ack), Ok(Acknowledged));
        assert_eq!(check(Suppressed, &ack), Ok(Acknowledged));
        assert_eq!(check(Acknowledged, &resolve), Ok(Resolved));
        assert_eq!(check(Active, &resolve), Ok(Resolved));
        assert_eq!(
            check(Acknowledged, &ack),
            Err(Refused::Transition {
                from: Acknowledged,
                to: Acknowledged
            })
        );
        assert!(check(Resolved, &resolve).is_err());
        assert!(check(Resolved, &ack).is_err());
    }

    #[test]
    fn statuses_parse_in_any_case() {
        assert_eq!(Status::parse("ACKNOWLEDGED"), Some(Status::Acknowledged));
        assert_eq!(Status::parse("active"), Some(Status::Active));
        assert_eq!(Status::parse("open"), None);
    }
}
