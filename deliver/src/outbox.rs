//! Where the delivery reads records and writes what became of them.
//!
//! The outbox is the job's own output: the actions, alerts, incidents and webhooks streams,
//! durable before anything is sent. The status log is the delivery's ledger: a delivery
//! whose final status is in it is done, so after a restart it is not sent again; one sent
//! but not logged is sent again under the same idempotency key.

use std::io::Write as _;
use std::path::{Path, PathBuf};

use sentinel_connectors::file::FileTail;
use sentinel_dataflows::act::ActionStatus;
use sentinel_dataflows::model::DeadLetter;

use crate::render::OutboxStream;

/// One record read from the outbox.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OutboxRecord {
    /// Which stream.
    pub stream: OutboxStream,
    /// Which of the outbox's sources (a file, a partition).
    pub source: usize,
    /// Its position in the source (byte offset, Kafka offset).
    pub position: u64,
    /// The serialized record.
    pub bytes: Vec<u8>,
}

/// Records to deliver, in order per source.
pub trait Outbox: Send {
    /// Up to `max` records not yet returned; none when there are none now.
    fn poll(&mut self, max: usize) -> Result<Vec<OutboxRecord>, String>;
    /// Every record of `source` before `next` is delivered or dead-lettered.
    fn commit(&mut self, source: usize, next: u64);
    /// The source's name, for dead letters (`outbox:alerts.jsonl`, `kafka:sentinel.alerts/0`).
    fn source_name(&self, source: usize) -> String;
    /// Once the writer is done: whether everything it wrote has been returned. A file is read
    /// to its end by a poll that returns nothing; a topic, when every partition reached the
    /// end it has now.
    fn caught_up(&mut self) -> bool {
        true
    }
}

/// The delivery's ledger and its dead letters.
pub trait StatusLog: Send {
    /// Every status logged before (by earlier runs).
    fn load(&mut self) -> Result<Vec<ActionStatus>, String>;
    /// Logs one status.
    fn append(&mut self, status: &ActionStatus);
    /// Writes a dead letter.
    fn dead_letter(&mut self, letter: &DeadLetter);
    /// Makes what was logged durable: called before the outbox is committed past it.
    fn flush(&mut self);
}

/// The outbox of a file run: the job's `<stream>.jsonl` files in one directory, followed as
/// the job writes them.
pub struct FileOutbox {
    tails: Vec<(OutboxStream, String, FileTail)>,
}

impl FileOutbox {
    /// Follows `dir/<name>.jsonl` for each `(stream, name)`.
    pub fn new(dir: &Path, streams: &[(OutboxStream, &str)]) -> Self {
        FileOutbox {
            tails: streams
                .iter()
                .map(|(s, name)| {
                    let file = format!("{name}.jsonl");
                    let tail = FileTail::new(&dir.join(&file), 0);
                    (*s, file, tail)
                })
                .collect(),
        }
    }
}

impl Outbox for FileOutbox {
    fn poll(&mut self, max: usize) -> Result<Vec<OutboxRecord>, String> {
        let mut out = Vec::new();
        for (source, (stream, file, tail)) in self.tails.iter_mut().enumerate() {
            let room = max.saturating_sub(out.len());
            if room == 0 {
                break;
            }
            let lines = tail.poll(room).map_err(|e| format!("reading the outbox {file}: {e}"))?;
            out.extend(lines.into_iter().map(|l| OutboxRecord {
                stream: *stream,
                source,
                position: l.offset,
                bytes: l.bytes,
            }));
        }
        Ok(out)
    }

    fn commit(&mut self, _source: usize, _next: u64) {
        // The files are read from the start each run; the status log says what is done.
    }

    fn source_name(&self, source: usize) -> String {
        self.tails
            .get(source)
            .map_or_else(|| "outbox".to_owned(), |(_, file, _)| format!("outbox:{file}"))
    }
}

/// The status log of a file run: `action_statuses.jsonl`, appended to across runs, and
/// `delivery_deadletter.jsonl` (the job's own dead-letter file has another writer).
pub struct FileStatusLog {
    statuses: PathBuf,
    dead_letters: PathBuf,
    statuses_out: Option<std::io::BufWriter<std::fs::File>>,
    dead_out: Option<std::io::BufWriter<std::fs::File>>,
}

impl FileStatusLog {
    /// In `dir`.
    pub fn new(dir: &Path) -> Self {
        FileStatusLog {
            statuses: dir.join("action_statuses.jsonl"),
            dead_letters: dir.join("delivery_deadletter.jsonl"),
            statuses_out: None,
            dead_out: None,
        }
    }

    fn open(path: &Path) -> Option<std::io::BufWriter<std::fs::File>> {
        match std::fs::OpenOptions::new().create(true).append(true).open(path) {
            Ok(f) => Some(std::io::BufWriter::new(f)),
            Err(e) => {
                tracing::error!(path = %path.display(), error = %e, "cannot open the delivery log");
                None
            }
        }
    }
}

fn write_line<T: serde::Serialize>(out: &mut Option<std::io::BufWriter<std::fs::File>>, path: &Path, record: &T) {
    if out.is_none() {
        *out = FileStatusLog::open(path);
    }
    if let Some(w) = out.as_mut() {
        let written = serde_json::to_writer(&mut *w, record)
            .map_err(std::io::Error::other)
            .and_then(|()| w.write_all(b"\n"));
        if let Err(e) = written {
            tracing::error!(path = %path.display(), error = %e, "cannot write the delivery log");
        }
    }
}

impl StatusLog for FileStatusLog {
    fn load(&mut self) -> Result<Vec<ActionStatus>, String> {
        let text = match std::fs::read_to_string(&self.statuses) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(format!("{}: {e}", self.statuses.display())),
        };
        // A line cut by a crash mid-write is skipped: that delivery is simply sent again.
        Ok(text.lines().filter_map(|l| serde_json::from_str(l).ok()).collect())
    }

    fn append(&mut self, status: &ActionStatus) {
        write_line(&mut self.statuses_out, &self.statuses, status);
    }

    fn dead_letter(&mut self, letter: &DeadLetter) {
        write_line(&mut self.dead_out, &self.dead_letters, letter);
    }

    fn flush(&mut self) {
        for w in [&mut self.statuses_out, &mut self.dead_out].into_iter().flatten() {
            if let Err(e) = w.flush().and_then(|()| w.get_ref().sync_data()) {
                tracing::error!(error = %e, "cannot flush the delivery log");
            }
        }
    }
}
