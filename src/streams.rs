//! The job's output streams: one list, so adding a stream is one entry.

/// One output stream of the job.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum OutputStream {
    /// Anomaly records.
    Anomalies,
    /// Records that could not be processed.
    DeadLetters,
    /// Closed-window aggregates.
    Aggregates,
    /// One decision per request (the audit log).
    Decisions,
    /// Every judge analysis a decision used: the journal `--judge-replay` reads.
    Judgements,
    /// Detector baselines, checkpointed to the compacted state topic (Kafka runs only).
    State,
}

impl OutputStream {
    /// Every stream a user reads (`State` is the job's own).
    pub const ALL: [OutputStream; 5] = [
        OutputStream::Anomalies,
        OutputStream::DeadLetters,
        OutputStream::Aggregates,
        OutputStream::Decisions,
        OutputStream::Judgements,
    ];

    /// The stream's name: its file is `<name>.jsonl` and its key in `kafka.output_topics`.
    pub fn name(self) -> &'static str {
        match self {
            OutputStream::Anomalies => "anomalies",
            OutputStream::DeadLetters => "deadletter",
            OutputStream::Aggregates => "aggregates",
            OutputStream::Decisions => "decisions",
            OutputStream::Judgements => "judgements",
            OutputStream::State => "state",
        }
    }
}
