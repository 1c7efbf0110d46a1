//! An anomaly's lifecycle: ACTIVE → ACKNOWLEDGED → RESOLVED, and SUPPRESSED by a silence.
//! Every change is one [`LifecycleEvent`]: it goes to the audit table and to the
//! `sentinel.anomaly-events` topic, and replicas apply the same events to converge.

use serde::{Deserialize, Serialize};

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

/// One lifecycle change, as published and audited.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct LifecycleEvent {
    /// Deterministic: a hash of the anomaly, the change and its time, so a replica that
    /// reads it back applies it once.
    pub id: String,
    /// The anomaly.
    pub anomaly_id: String,
    /// What was asked.
    #[serde(flatten)]
    pub change: Change,
    /// The status before.
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
}

/// Why a change is refused.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Refused {
    /// No anomaly with that id.
    Unknown,
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
            Refused::Unknown => f.write_str("no anomaly with this id"),
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
/// use sentinel_serve::lifecycle::{check, Change, Status};
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
