//! Notification grouping, with Alertmanager's semantics: alerts that share a group key are
//! notified together. A new group waits `group_wait` so that alerts arriving together go out in
//! one notification; later changes (a new alert, a resolution) go out at the next
//! `group_interval` tick; an unchanged group that still fires is notified again only after
//! `repeat_interval`. So a condition that persists window after window is quiet, and a change
//! is loud once.
//!
//! Time is event time, so a replay of the same trace sends the same notifications.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::hash::StableId;

/// Grouping intervals, in ms of event time. The defaults are Alertmanager's.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct GroupTiming {
    /// How long a new group waits before its first notification.
    pub group_wait_ms: u64,
    /// How long after a notification the group's changes are sent.
    pub group_interval_ms: u64,
    /// How long an unchanged, still firing group waits before it is notified again.
    pub repeat_interval_ms: u64,
}

impl Default for GroupTiming {
    fn default() -> Self {
        GroupTiming {
            group_wait_ms: 30_000,
            group_interval_ms: 300_000,
            repeat_interval_ms: 4 * 3_600_000,
        }
    }
}

/// Why a notification goes out.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum NotifyReason {
    /// The group's first notification.
    New,
    /// An alert joined or resolved.
    Changed,
    /// Nothing changed, and the group still fires after `repeat_interval`.
    Repeat,
}

/// One notification of a group.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct GroupNotification {
    /// Deterministic id: the group key and the notification's sequence number in the group.
    pub id: StableId,
    /// The group.
    pub group_key: String,
    /// Its sequence number, from 0.
    pub sequence: u32,
    /// Why it goes out.
    pub reason: NotifyReason,
    /// When (event time, ms): a tick of the group's schedule.
    pub at_ms: u64,
    /// Alerts firing, in key order.
    pub firing: Vec<String>,
    /// Alerts resolved since the last notification, in key order.
    pub resolved: Vec<String>,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
struct Group {
    /// Alert key, and whether it resolved since the last notification.
    alerts: BTreeMap<String, bool>,
    /// Something changed since the last notification.
    changed: bool,
    /// The next tick of the schedule.
    next_tick_ms: u64,
    /// When the last notification went out.
    last_sent_ms: Option<u64>,
    /// Notifications sent so far.
    sent: u32,
    /// When the group opened: with the sequence, its notifications' ids, so a group that
    /// closes and opens again does not reuse them.
    opened_ms: u64,
}

/// The groups of one receiver route, and when each is due.
///
/// ```
/// use sentinel_dataflows::act::{GroupTiming, Grouper};
/// let mut g = Grouper::new(GroupTiming::default());
/// g.fire("prompt-injection|chat", "a-1", 0);
/// g.fire("prompt-injection|chat", "a-2", 10_000);
/// assert!(g.due(29_999).is_empty());
/// let sent = g.due(30_000);
/// assert_eq!(sent[0].firing, ["a-1", "a-2"]);
/// ```
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Grouper {
    timing: GroupTiming,
    groups: BTreeMap<String, Group>,
}

impl Grouper {
    /// No groups yet.
    pub fn new(timing: GroupTiming) -> Self {
        Grouper {
            timing,
            groups: BTreeMap::new(),
        }
    }

    /// Alert `key` fires in `group` at `at_ms`. Firing again while it fires changes nothing.
    pub fn fire(&mut self, group: &str, key: &str, at_ms: u64) {
        let wait = self.timing.group_wait_ms;
        let g = self.groups.entry(group.to_owned()).or_insert_with(|| Group {
            next_tick_ms: at_ms.saturating_add(wait),
            opened_ms: at_ms,
            ..Group::default()
        });
        match g.alerts.get_mut(key) {
            Some(resolved) if !*resolved => {}
            Some(resolved) => {
                *resolved = false;
                g.changed = true;
            }
            None => {
                g.alerts.insert(key.to_owned(), false);
                g.changed = true;
            }
        }
    }

    /// Alert `key` of `group` is resolved; notified with the group's next change.
    pub fn resolve(&mut self, group: &str, key: &str) {
        let Some(g) = self.groups.get_mut(group) else {
            return;
        };
        if let Some(resolved) = g.alerts.get_mut(key).filter(|r| !**r) {
            *resolved = true;
            g.changed = true;
        }
    }

    /// Takes the groups of `checkpoint`, keeping this grouper's timing (the config may have
    /// changed across the restart).
    pub fn restore_groups(&mut self, checkpoint: Grouper) {
        self.groups = checkpoint.groups;
    }

    /// Groups with state.
    pub fn len(&self) -> usize {
        self.groups.len()
    }

    /// Whether no group has state.
    pub fn is_empty(&self) -> bool {
        self.groups.is_empty()
    }

    /// The earliest tick still to come, to schedule the next [`Grouper::due`] call.
    pub fn next_tick(&self) -> Option<u64> {
        self.groups.values().map(|g| g.next_tick_ms).min()
    }

    /// The input ended: every group with something unsent notifies it now, at its next tick.
    pub fn flush(&mut self) -> Vec<GroupNotification> {
        let ticks: Vec<u64> = self
            .groups
            .values()
            .filter(|g| g.changed)
            .map(|g| g.next_tick_ms)
            .collect();
        let mut out = Vec::new();
        if let Some(last) = ticks.into_iter().max() {
            // Only changed groups are due by then; an unchanged one is not repeated early.
            let timing = self.timing;
            self.timing.repeat_interval_ms = u64::MAX;
            out = self.due(last);
            self.timing = timing;
        }
        out
    }

    /// The notifications due at or before `now_ms`, in group order. A group whose alerts have
    /// all resolved is notified once more and then forgotten.
    pub fn due(&mut self, now_ms: u64) -> Vec<GroupNotification> {
        let timing = self.timing;
        let mut out = Vec::new();
        self.groups.retain(|key, g| {
            while g.next_tick_ms <= now_ms {
                let tick = g.next_tick_ms;
                g.next_tick_ms = tick.saturating_add(timing.group_interval_ms.max(1));
                let repeat_due = g
                    .last_sent_ms
                    .is_some_and(|last| tick >= last.saturating_add(timing.repeat_interval_ms));
                let reason = match (g.changed, g.last_sent_ms) {
                    (true, None) => NotifyReason::New,
                    (true, Some(_)) => NotifyReason::Changed,
                    (false, _) if repeat_due && g.alerts.values().any(|resolved| !resolved) => NotifyReason::Repeat,
                    (false, _) => continue,
                };
                let (resolved, firing): (Vec<_>, Vec<_>) = g.alerts.iter().partition(|(_, resolved)| **resolved);
                let sequence = g.sent;
                out.push(GroupNotification {
                    id: notification_id(key, g.opened_ms, sequence),
                    group_key: key.clone(),
                    sequence,
                    reason,
                    at_ms: tick,
                    firing: firing.into_iter().map(|(k, _)| k.clone()).collect(),
                    resolved: resolved.into_iter().map(|(k, _)| k.clone()).collect(),
                });
                g.sent += 1;
                g.last_sent_ms = Some(tick);
                g.changed = false;
                g.alerts.retain(|_, resolved| !*resolved);
            }
            // A group with nothing firing and nothing left to say is done.
            !g.alerts.is_empty() || g.changed
        });
        out
    }
}

fn notification_id(group: &str, opened_ms: u64, sequence: u32) -> StableId {
    StableId::of(&[
        b"group",
        group.as_bytes(),
        &opened_ms.to_le_bytes(),
        &sequence.to_le_bytes(),
    ])
}

#[cfg(test)]
mod tests {
    use super::*;

    const MIN: u64 = 60_000;

    fn timing() -> GroupTiming {
        GroupTiming {
            group_wait_ms: 30_000,
            group_interval_ms: 5 * MIN,
            repeat_interval_ms: 60 * MIN,
        }
    }

    #[test]
    fn a_persisting_alert_is_notified_once_then_only_on_repeat() {
        let mut g = Grouper::new(timing());
        let mut sent = Vec::new();
        // The same anomaly fires every minute for three hours.
        for minute in 0..180 {
            g.fire("cost|chat", "cost-spike", minute * MIN);
            sent.extend(g.due(minute * MIN + 59_999));
        }
        let reasons: Vec<_> = sent.iter().map(|n| (n.reason, n.at_ms / MIN)).collect();
        assert_eq!(
            reasons,
            [
                (NotifyReason::New, 0),
                (NotifyReason::Repeat, 60),
                (NotifyReason::Repeat, 120)
            ],
            "30 s wait, then one repeat an hour"
        );
        let ids: Vec<u32> = sent.iter().map(|n| n.sequence).collect();
        assert_eq!(ids, [0, 1, 2]);
    }

    #[test]
    fn alerts_arriving_together_share_a_notification_and_changes_wait_for_the_interval() {
        let mut g = Grouper::new(timing());
        g.fire("inj|chat", "a", 0);
        g.fire("inj|chat", "b", 20_000);
        let first = g.due(30_000);
        assert_eq!(first.len(), 1);
        assert_eq!(first[0].firing, ["a", "b"]);
        // A third alert a minute later waits for the next tick, 5 min after the first.
        g.fire("inj|chat", "c", 90_000);
        assert!(g.due(5 * MIN + 29_999).is_empty());
        let second = g.due(5 * MIN + 30_000);
        assert_eq!(second[0].reason, NotifyReason::Changed);
        assert_eq!(second[0].firing, ["a", "b", "c"]);
        // Other groups have their own schedule.
        g.fire("inj|billing", "z", 6 * MIN);
        let other = g.due(6 * MIN + 30_000);
        assert_eq!(other[0].group_key, "inj|billing");
        assert_ne!(other[0].id, first[0].id);
    }

    #[test]
    fn resolution_is_notified_once_and_the_group_is_then_forgotten() {
        let mut g = Grouper::new(timing());
        g.fire("k", "a", 0);
        g.fire("k", "b", 0);
        assert_eq!(g.due(30_000).len(), 1);
        g.resolve("k", "a");
        let n = g.due(5 * MIN + 30_000);
        assert_eq!(
            (n[0].firing.clone(), n[0].resolved.clone()),
            (vec!["b".to_owned()], vec!["a".to_owned()])
        );
        g.resolve("k", "b");
        let last = g.due(10 * MIN + 30_000);
        assert_eq!(last[0].resolved, ["b"]);
        assert!(last[0].firing.is_empty());
        assert!(g.is_empty(), "nothing left to say");
        // Resolving what is gone changes nothing.
        g.resolve("k", "b");
        assert!(g.due(u64::MAX / 2).is_empty());
    }

    #[test]
    fn the_same_events_give_the_same_notifications() {
        let run = || {
            let mut g = Grouper::new(GroupTiming::default());
            let mut out = Vec::new();
            for i in 0..500u64 {
                g.fire(&format!("g{}", i % 7), &format!("a{}", i % 11), i * 7_000);
                if i % 13 == 0 {
                    g.resolve(&format!("g{}", i % 7), &format!("a{}", i % 5));
                }
                out.extend(g.due(i * 7_000));
            }
            out
        };
        assert_eq!(run(), run());
    }
}
