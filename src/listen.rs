//! `run --listen`: the HTTP ingest listener feeding the dataflow directly, with no broker.
//! Each worker reads a queue of its own. Records are routed to a worker by application, and
//! within a worker to one of a few lanes, each with its own event-time clock, by application
//! too, so that one application's clock neither holds back nor runs ahead of the others'.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use sentinel_connectors::http::ingest::{Admission, IngestLimits, IngestQueue, IngestServer, Refusal, Taken};
use sentinel_dataflows::hash::StableId;
use sentinel_dataflows::model::{decode_with, DecodeLimits};
use sentinel_dataflows::operators::{RawRecord, ReadStatus, RecordReader};
use sentinel_serve::auth::Keys;

use crate::config::ingest::IngestSection;

/// Event-time clocks (queue lanes) per worker.
const CLOCKS: usize = 8;

/// How long an idle reader waits before looking again, unless woken.
const IDLE: Duration = Duration::from_millis(100);

/// One worker's share of the listener's records.
pub struct ListenSource {
    name: String,
    queue: IngestQueue,
}

impl ListenSource {
    /// The reader of `queue`.
    pub fn new(addr: SocketAddr, queue: IngestQueue) -> ListenSource {
        ListenSource {
            name: format!("http:{addr}"),
            queue,
        }
    }
}

impl RecordReader for ListenSource {
    fn name(&self) -> &str {
        &self.name
    }

    fn read(&mut self, budget: usize, each: &mut dyn FnMut(RawRecord<'_>) -> bool) -> ReadStatus {
        let taken = self.queue.take(budget, &mut |lane, bytes| {
            each(RawRecord {
                bytes,
                original_len: bytes.len(),
                line: None,
                slot: lane,
                topic: None,
                partition: None,
                offset: None,
            })
        });
        match taken {
            Taken::More => ReadStatus::More,
            Taken::Empty => ReadStatus::Idle(IDLE),
            Taken::Closed => ReadStatus::Done,
        }
    }

    fn slots(&self) -> usize {
        self.queue.lanes()
    }

    fn slot_at_end(&self, slot: usize) -> bool {
        self.queue.lane_is_empty(slot)
    }

    fn live(&self) -> bool {
        true
    }

    fn set_waker(&mut self, wake: Arc<dyn Fn() + Send + Sync>) {
        self.queue.set_waker(wake);
    }
}

/// Who may post, and which records are events: decoded with the job's own decoder, so a
/// record refused here is one the job would dead-letter for the same reason.
struct EventAdmission {
    keys: Keys,
    limits: DecodeLimits,
}

impl Admission for EventAdmission {
    fn authenticate(&self, authorization: Option<&str>) -> Option<usize> {
        if self.keys.is_open() {
            return Some(0);
        }
        self.keys.presented(authorization).ok()
    }

    fn check(&self, _caller: usize, record: &[u8]) -> Result<u64, Refusal> {
        decode_with(record, &self.limits, |event, _| {
            let application = event.application_id.as_deref().unwrap_or_default();
            StableId::of(&[application.as_bytes()]).0 as u64
        })
        .map_err(|rejection| Refusal {
            reason: rejection.reason.as_str().to_owned(),
            message: rejection.detail.clone(),
        })
    }
}

/// One queue per local worker, each holding at most `ingest.queue_events` records.
pub fn queues(section: &IngestSection, workers: usize) -> Vec<IngestQueue> {
    (0..workers.max(1))
        .map(|_| IngestQueue::new(section.queue_events, CLOCKS))
        .collect()
}

/// Starts the listener on `listen`, handing records to `queues`. Without keys it accepts only
/// a loopback address.
pub fn start(
    listen: SocketAddr,
    section: &IngestSection,
    limits: DecodeLimits,
    queues: Vec<IngestQueue>,
) -> Result<IngestServer, String> {
    let keys = section.keys().map_err(|(key, why)| format!("key `{key}`: {why}"))?;
    if keys.is_open() && !listen.ip().is_loopback() {
        return Err(format!(
            "--listen: {listen} is not a loopback address and no ingest key is configured \
             (ingest.api_keys): listen on 127.0.0.1, or configure keys"
        ));
    }
    if keys.is_open() {
        tracing::warn!(%listen, "ingest: no keys configured, listening on loopback only");
    }
    IngestServer::start(
        listen,
        Arc::new(EventAdmission { keys, limits }),
        queues,
        IngestLimits {
            max_body_bytes: section.max_body_bytes,
            max_batch_records: section.max_batch_events,
            ..IngestLimits::default()
        },
    )
}
