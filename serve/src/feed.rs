//! The store's feed: records from the job's output streams, handed over through a bounded
//! queue and written by one thread in batches, so a slow disk slows the sink that feeds it and
//! never a worker. Fed from Kafka, it also records how far each partition was read, once what
//! was read is stored, so a restarted replica resumes there.

use std::collections::BTreeMap;
use std::sync::mpsc::{sync_channel, Receiver, SyncSender, TrySendError};
use std::sync::Arc;
use std::thread::JoinHandle;

use crate::lifecycle::LifecycleEvent;
use crate::live::Live;
use crate::store::{OutcomeKind, Store};

/// Records the feed queues at most before the sender is told to wait.
pub const QUEUE: usize = 8_192;

/// Records written per transaction at most.
const BATCH: usize = 2_048;

/// The stream a fed record comes from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FeedStream {
    /// `sentinel.anomalies`.
    Anomalies,
    /// `sentinel.aggregates`.
    Aggregates,
    /// `sentinel.anomaly-events`: lifecycle changes, applied in the order they come.
    AnomalyEvents,
    /// `sentinel.alerts`: the alert history.
    Alerts,
    /// `sentinel.actions`, `.incidents`, `.decisions` or `.judgements`.
    Outcomes(OutcomeKind),
}

/// What the queue carries.
#[derive(Debug)]
enum Fed {
    Record(FeedStream, Vec<u8>),
    /// Everything of this partition before this offset has been queued.
    Position(String, i32, i64),
    /// Answer with the anomalies added so far, once everything queued before is stored.
    Barrier(SyncSender<u64>),
}

/// Hands records to the feed thread. Cheap to clone; the thread ends when every sender is
/// dropped and the queue is drained.
#[derive(Clone, Debug)]
pub struct FeedSender {
    queue: SyncSender<Fed>,
}

impl FeedSender {
    /// Queues one record, or gives it back when the queue is full (the caller keeps it and
    /// tries again later, without blocking).
    pub fn try_send(&self, stream: FeedStream, record: Vec<u8>) -> Result<(), Unsent> {
        match self.queue.try_send(Fed::Record(stream, record)) {
            Ok(()) => Ok(()),
            Err(TrySendError::Full(Fed::Record(_, r))) => Err(Unsent::Full(r)),
            Err(TrySendError::Full(_)) => unreachable!("a record was sent"),
            Err(TrySendError::Disconnected(_)) => Err(Unsent::Closed),
        }
    }

    /// Queues one record, waiting while the queue is full: for a thread of its own (a topic
    /// reader), never a worker. `false` when the feed is gone.
    pub fn send(&self, stream: FeedStream, record: Vec<u8>) -> bool {
        self.queue.send(Fed::Record(stream, record)).is_ok()
    }

    /// Everything read from `topic`/`partition` before `next_offset` has been sent: the feed
    /// records the position once it is stored. Waits while the queue is full.
    pub fn send_position(&self, topic: &str, partition: i32, next_offset: i64) -> bool {
        self.queue
            .send(Fed::Position(topic.to_owned(), partition, next_offset))
            .is_ok()
    }

    /// Publishes lifecycle changes into this feed: the anomaly-events stream of a server fed
    /// in-process, with no topic between.
    pub fn publisher(&self) -> crate::api::Publish {
        let events = self.clone();
        std::sync::Arc::new(move |event| {
            let record = serde_json::to_vec(event).map_err(|e| e.to_string())?;
            events
                .try_send(FeedStream::AnomalyEvents, record)
                .map_err(|unsent| match unsent {
                    Unsent::Full(_) => "the store's feed is full; try again".to_owned(),
                    Unsent::Closed => "the store's feed has stopped".to_owned(),
                })
        })
    }

    /// Waits until everything queued so far is stored; returns how many anomalies were new
    /// since the feed started (0 when it is gone).
    pub fn flush(&self) -> u64 {
        let (tell, told) = sync_channel(1);
        if self.queue.send(Fed::Barrier(tell)).is_err() {
            return 0;
        }
        told.recv().unwrap_or(0)
    }
}

/// Why a record was not queued.
#[derive(Debug, PartialEq, Eq)]
pub enum Unsent {
    /// The queue is full: here it is back, to try again later.
    Full(Vec<u8>),
    /// The feed thread is gone: nothing will take it.
    Closed,
}

/// The thread writing fed records to the store.
pub struct Feed {
    thread: JoinHandle<u64>,
}

impl Feed {
    /// Starts the feed thread writing to `store`, telling `live` after each batch.
    pub fn start(store: Arc<dyn Store>, live: Live) -> (Feed, FeedSender) {
        let (queue, received) = sync_channel(QUEUE);
        let thread = std::thread::Builder::new()
            .name("serve-feed".into())
            .spawn(move || write_all(&*store, &live, received))
            .expect("spawning the feed thread");
        (Feed { thread }, FeedSender { queue })
    }

    /// Waits until every sender is gone and every record is written; returns how many
    /// anomalies were new.
    pub fn finish(self) -> u64 {
        self.thread.join().unwrap_or(0)
    }
}

fn write_all(store: &dyn Store, live: &Live, received: Receiver<Fed>) -> u64 {
    let mut added = 0u64;
    // Once a batch fails, no later position is saved: a restart reads the failed batch again.
    let mut failed = false;
    while let Ok(first) = received.recv() {
        let mut anomalies = Vec::with_capacity(BATCH);
        let mut aggregates = Vec::new();
        let mut alerts = Vec::new();
        let mut outcomes: BTreeMap<OutcomeKind, Vec<Vec<u8>>> = BTreeMap::new();
        let mut events = Vec::new();
        let mut positions: BTreeMap<(String, i32), i64> = BTreeMap::new();
        let mut barriers = Vec::new();
        let mut taken = 0;
        let mut next = Some(first);
        while let Some(fed) = next.take() {
            match fed {
                Fed::Record(FeedStream::Anomalies, record) => anomalies.push(record),
                Fed::Record(FeedStream::Aggregates, record) => aggregates.push(record),
                Fed::Record(FeedStream::Alerts, record) => alerts.push(record),
                Fed::Record(FeedStream::Outcomes(kind), record) => outcomes.entry(kind).or_default().push(record),
                Fed::Record(FeedStream::AnomalyEvents, record) => {
                    match serde_json::from_slice::<LifecycleEvent>(&record) {
                        Ok(event) => events.push(event),
                        Err(e) => tracing::warn!(error = %e, "feed: skipping a record that is not a lifecycle event"),
                    }
                }
                Fed::Position(topic, partition, offset) => {
                    let at = positions.entry((topic, partition)).or_insert(offset);
                    *at = (*at).max(offset);
                }
                Fed::Barrier(tell) => barriers.push(tell),
            }
            taken += 1;
            if taken < BATCH && barriers.is_empty() {
                next = received.try_recv().ok();
            }
        }
        if !aggregates.is_empty() {
            match store.add_aggregates(aggregates) {
                Ok(batch) => live.aggregates_stored(batch.last_seq),
                Err(e) => {
                    failed = true;
                    tracing::error!(error = %e, "the store could not take a batch of aggregates");
                }
            }
        }
        if !alerts.is_empty() {
            if let Err(e) = store.add_alerts(alerts) {
                failed = true;
                tracing::error!(error = %e, "the store could not take a batch of alerts");
            }
        }
        for (kind, records) in outcomes {
            if let Err(e) = store.add_outcomes(kind, records) {
                failed = true;
                tracing::error!(error = %e, kind = kind.as_str(), "the store could not take a batch of records");
            }
        }
        if !anomalies.is_empty() {
            match store.add_anomalies(anomalies) {
                Ok(batch) => {
                    added += batch.new;
                    live.stored(batch.last_seq);
                }
                Err(e) => {
                    failed = true;
                    tracing::error!(error = %e, "the store could not take a batch of anomalies");
                }
            }
        }
        if !events.is_empty() {
            match store.apply(&events) {
                Ok(outcomes) => {
                    for (event, outcome) in events.iter().zip(&outcomes) {
                        live.applied(&event.id, outcome);
                    }
                }
                Err(e) => {
                    failed = true;
                    tracing::error!(error = %e, "the store could not apply a batch of lifecycle events");
                }
            }
        }
        if !failed && !positions.is_empty() {
            let positions: Vec<_> = positions.into_iter().map(|((t, p), o)| (t, p, o)).collect();
            if let Err(e) = store.save_positions(&positions) {
                tracing::error!(error = %e, "the store could not record its read positions");
            }
        }
        for tell in barriers {
            let _ = tell.send(added);
        }
    }
    added
}
