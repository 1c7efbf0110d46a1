//! Starts the action delivery beside the job: picks its outbox (the action topics, or the
//! run's files) and its status log, the only place the delivery crate meets the job's outputs.

use std::path::{Path, PathBuf};

use sentinel_deliver::{
    Delivery, DeliveryConfig, FileOutbox, FileStatusLog, KafkaOutbox, KafkaStatusLog, Outbox, OutboxStream, StatusLog,
};

use sentinel_connectors::kafka::{create_topic, topic_exists};

use crate::io::OutputTarget;
use crate::streams::OutputStream;

/// The outbox streams and the output stream each is.
const OUTBOX: [(OutboxStream, OutputStream); 4] = [
    (OutboxStream::Actions, OutputStream::Actions),
    (OutboxStream::Alerts, OutputStream::Alerts),
    (OutboxStream::Incidents, OutputStream::Incidents),
    (OutboxStream::Webhooks, OutputStream::Webhooks),
];

/// In the outbox directory, the people's lifecycle changes an embedded `run --serve` takes:
/// what the anomaly-events topic carries in a Kafka run.
pub const PERSON_CHANGES: &str = "person_changes";

/// Whether `stream` is one the delivery reads.
pub fn is_outbox(stream: OutputStream) -> bool {
    OUTBOX.iter().any(|(_, s)| *s == stream)
}

/// Where the job writes the outbox when its output is neither files nor Kafka (stdout,
/// none): a directory of its own, so deliveries still follow from durable records.
pub fn outbox_dir(output: &OutputTarget, configured: &Path) -> Option<PathBuf> {
    match output {
        OutputTarget::Kafka { .. } => None,
        OutputTarget::Dir(dir) => Some(dir.clone()),
        OutputTarget::Stdout | OutputTarget::Discard => Some(configured.to_owned()),
    }
}

/// Empties the action files in `dir` before a run: the job appends to them (so that a
/// delivery following them never sees a file truncated under it), and each run's files hold
/// that run's records.
pub fn empty_outbox(dir: &Path) -> Result<(), String> {
    std::fs::create_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    for name in OUTBOX.iter().map(|(_, s)| s.name()).chain([PERSON_CHANGES]) {
        let path = dir.join(format!("{name}.jsonl"));
        std::fs::File::create(&path).map_err(|e| format!("{}: {e}", path.display()))?;
    }
    Ok(())
}

/// Appends a person's lifecycle change to the outbox in `dir`, durably, for the delivery to
/// resolve its incident (the embedded run's anomaly-events stream).
pub fn append_person_change(dir: &Path, event: &sentinel_serve::lifecycle::LifecycleEvent) -> Result<(), String> {
    use std::io::Write;
    let path = dir.join(format!("{PERSON_CHANGES}.jsonl"));
    let mut line = serde_json::to_vec(event).map_err(|e| e.to_string())?;
    line.push(b'\n');
    let mut file = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&path)
        .map_err(|e| format!("{}: {e}", path.display()))?;
    file.write_all(&line)
        .and_then(|()| file.sync_data())
        .map_err(|e| format!("{}: {e}", path.display()))
}

/// Starts delivering this run's outbox, emptied by [`empty_outbox`]. Files: the delivery reads
/// them from the start; what an earlier run
/// delivered is in `action_statuses.jsonl` and is not sent again; Shield's callbacks are read
/// from `callbacks.jsonl` there. Kafka: the delivery reads the action topics and
/// `callbacks_topic` as consumer group `<group>-delivery`.
pub fn start(
    config: DeliveryConfig,
    output: &OutputTarget,
    outbox_dir: Option<&Path>,
    group: &str,
    callbacks_topic: &str,
) -> Result<Delivery, String> {
    let (outbox, log): (Box<dyn Outbox>, Box<dyn StatusLog>) = match (output, outbox_dir) {
        (OutputTarget::Kafka { settings, topics }, _) => {
            let topic = |s: OutputStream| {
                topics
                    .iter()
                    .find(|(t, _)| *t == s)
                    .map(|(_, name)| name.clone())
                    .ok_or_else(|| format!("no topic for the {} stream", s.name()))
            };
            let mut outbox_topics = OUTBOX
                .iter()
                .map(|(o, s)| topic(*s).map(|t| (*o, t)))
                .collect::<Result<Vec<_>, String>>()?;
            if !topic_exists(settings, callbacks_topic)? {
                create_topic(settings, callbacks_topic, 1)?;
            }
            outbox_topics.push((OutboxStream::Callbacks, callbacks_topic.to_owned()));
            outbox_topics.push((OutboxStream::AnomalyEvents, topic(OutputStream::AnomalyEvents)?));
            let outbox = KafkaOutbox::open(settings, &format!("{group}-delivery"), &outbox_topics)?;
            let log = KafkaStatusLog::open(
                settings,
                &topic(OutputStream::ActionStatuses)?,
                &topic(OutputStream::DeadLetters)?,
            )?;
            (Box::new(outbox), Box::new(log))
        }
        (_, Some(dir)) => {
            let mut names: Vec<(OutboxStream, &str)> = OUTBOX.iter().map(|(o, s)| (*o, s.name())).collect();
            // Written by Shield (or whatever relays its callbacks), never emptied here.
            names.push((OutboxStream::Callbacks, "callbacks"));
            names.push((OutboxStream::AnomalyEvents, PERSON_CHANGES));
            (
                Box::new(FileOutbox::new(dir, &names)),
                Box::new(FileStatusLog::new(dir)),
            )
        }
        (_, None) => return Err("no outbox: the output is neither files nor Kafka".into()),
    };
    Delivery::start(config, outbox, log)
}
