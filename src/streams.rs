//! The job's streams, in and out: one typed list each, so adding a stream is one entry. The
//! config's topic names, the sinks, the summary and the serving layer all read these lists.

use serde::Deserialize;

/// One output stream of the job.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OutputStream {
    /// Anomaly records.
    Anomalies,
    /// Records that could not be processed.
    #[serde(rename = "deadletter")]
    DeadLetters,
    /// Closed-window aggregates.
    Aggregates,
    /// One decision per request (the audit log).
    Decisions,
    /// Every judge analysis a decision used: the journal `--judge-replay` reads.
    Judgements,
    /// Shield enforcement requests (block, rate limit, unblock).
    Actions,
    /// Grouped notifications to receivers, and webhook events.
    Alerts,
    /// Incident create, comment and resolve requests.
    Incidents,
    /// Events for the configured webhooks.
    Webhooks,
    /// What became of each delivery, and Shield's callbacks.
    ActionStatuses,
    /// Anomaly lifecycle changes: the job's resolutions, and people's through `serve`.
    AnomalyEvents,
    /// Detector baselines, checkpointed to the compacted state topic (Kafka runs only).
    #[serde(skip)]
    State,
}

/// What the records of a stream are.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RecordKind {
    /// `model::Anomaly`.
    Anomaly,
    /// `model::DeadLetter`.
    DeadLetter,
    /// `window::AggregateRecord`.
    Aggregate,
    /// `model::Decision`.
    Decision,
    /// `model::JudgementRecord`.
    Judgement,
    /// `act::ShieldRecord`.
    ShieldAction,
    /// `act::AlertRecord`.
    Alert,
    /// `act::IncidentRecord`.
    Incident,
    /// `act::WebhookRecord`.
    Webhook,
    /// `act::ActionStatus`.
    ActionStatus,
    /// `model::lifecycle::LifecycleEvent`.
    LifecycleEvent,
    /// `detect::StateRecord`.
    State,
}

/// How an output stream is named, keyed and typed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct StreamSpec {
    /// The stream.
    pub stream: OutputStream,
    /// Its file is `<name>.jsonl`, and its key in `kafka.output_topics`.
    pub name: &'static str,
    /// Its topic unless `kafka.output_topics` says otherwise (empty: set elsewhere).
    pub default_topic: &'static str,
    /// What the Kafka record key is, so a compacting or partitioning reader knows.
    pub key: &'static str,
    /// What each record is.
    pub record: RecordKind,
}

/// Every output stream.
pub const OUTPUTS: [StreamSpec; 12] = [
    StreamSpec {
        stream: OutputStream::Anomalies,
        name: "anomalies",
        default_topic: "sentinel.anomalies",
        key: "affected entity",
        record: RecordKind::Anomaly,
    },
    StreamSpec {
        stream: OutputStream::DeadLetters,
        name: "deadletter",
        default_topic: "sentinel.deadletter",
        key: "source position",
        record: RecordKind::DeadLetter,
    },
    StreamSpec {
        stream: OutputStream::Aggregates,
        name: "aggregates",
        default_topic: "sentinel.aggregates",
        key: "dimension and window",
        record: RecordKind::Aggregate,
    },
    StreamSpec {
        stream: OutputStream::Decisions,
        name: "decisions",
        default_topic: "sentinel.decisions",
        key: "event id",
        record: RecordKind::Decision,
    },
    StreamSpec {
        stream: OutputStream::Judgements,
        name: "judgements",
        default_topic: "sentinel.judgements",
        key: "cache key",
        record: RecordKind::Judgement,
    },
    StreamSpec {
        stream: OutputStream::Actions,
        name: "actions",
        default_topic: "sentinel.actions",
        key: "target entity",
        record: RecordKind::ShieldAction,
    },
    StreamSpec {
        stream: OutputStream::Alerts,
        name: "alerts",
        default_topic: "sentinel.alerts",
        key: "group key",
        record: RecordKind::Alert,
    },
    StreamSpec {
        stream: OutputStream::Incidents,
        name: "incidents",
        default_topic: "sentinel.incidents",
        key: "entity (type:id)",
        record: RecordKind::Incident,
    },
    StreamSpec {
        stream: OutputStream::Webhooks,
        name: "webhooks",
        default_topic: "sentinel.webhooks",
        key: "anomaly id",
        record: RecordKind::Webhook,
    },
    StreamSpec {
        stream: OutputStream::ActionStatuses,
        name: "action_statuses",
        default_topic: "sentinel.action-statuses",
        key: "action id",
        record: RecordKind::ActionStatus,
    },
    StreamSpec {
        stream: OutputStream::AnomalyEvents,
        name: "anomaly_events",
        default_topic: "sentinel.anomaly-events",
        key: "anomaly id",
        record: RecordKind::LifecycleEvent,
    },
    StreamSpec {
        stream: OutputStream::State,
        name: "state",
        default_topic: "",
        key: "namespace and entity",
        record: RecordKind::State,
    },
];

impl OutputStream {
    /// Every stream a user reads (`State` is the job's own).
    pub fn user_facing() -> impl Iterator<Item = OutputStream> {
        OUTPUTS.iter().map(|s| s.stream).filter(|s| *s != OutputStream::State)
    }

    /// The stream's entry in [`OUTPUTS`].
    pub fn spec(self) -> &'static StreamSpec {
        OUTPUTS
            .iter()
            .find(|s| s.stream == self)
            .expect("every output stream is listed")
    }

    /// The stream's name: its file is `<name>.jsonl` and its key in `kafka.output_topics`.
    pub fn name(self) -> &'static str {
        self.spec().name
    }
}

/// One input stream of the job.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum InputStream {
    /// Telemetry events (`kafka.topics`).
    Telemetry,
    /// Shield's status callbacks: `{anomaly_id, action_id, status, message, timestamp}`.
    Callbacks,
}

/// How an input stream is named.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct InputSpec {
    /// The stream.
    pub stream: InputStream,
    /// Its key in the config.
    pub name: &'static str,
    /// Its topic unless the config says otherwise.
    pub default_topic: &'static str,
}

/// Every input stream.
pub const INPUTS: [InputSpec; 2] = [
    InputSpec {
        stream: InputStream::Telemetry,
        name: "topics",
        default_topic: "llm-telemetry",
    },
    InputSpec {
        stream: InputStream::Callbacks,
        name: "callbacks_topic",
        default_topic: "sentinel.callbacks",
    },
];

impl InputStream {
    /// The stream's entry in [`INPUTS`].
    pub fn spec(self) -> &'static InputSpec {
        INPUTS
            .iter()
            .find(|s| s.stream == self)
            .expect("every input stream is listed")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_stream_is_listed_once_with_a_distinct_name_and_topic() {
        let mut names: Vec<_> = OUTPUTS.iter().map(|s| s.name).collect();
        names.sort();
        names.dedup();
        assert_eq!(names.len(), OUTPUTS.len());
        let mut topics: Vec<_> = OUTPUTS
            .iter()
            .map(|s| s.default_topic)
            .filter(|t| !t.is_empty())
            .collect();
        topics.sort();
        topics.dedup();
        assert_eq!(topics.len(), OUTPUTS.len() - 1);
        for s in OUTPUTS {
            assert_eq!(s.stream.spec().name, s.name);
        }
        for s in OutputStream::user_facing() {
            let parsed: OutputStream = serde_yaml_ng::from_str(s.name()).expect("a stream's name parses");
            assert_eq!(parsed, s);
        }
        assert_eq!(InputStream::Callbacks.spec().default_topic, "sentinel.callbacks");
    }
}
