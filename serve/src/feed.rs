//! The store's feed: records from the job's output streams, handed over through a bounded
//! queue and written by one thread in batches, so a slow disk slows the sink that feeds it and
//! never a worker.

use std::sync::mpsc::{sync_channel, Receiver, SyncSender, TrySendError};
use std::sync::Arc;
use std::thread::JoinHandle;

use crate::live::Live;
use crate::store::Store;

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
}

/// Hands records to the feed thread. Cheap to clone; the thread ends when every sender is
/// dropped and the queue is drained.
#[derive(Clone, Debug)]
pub struct FeedSender {
    queue: SyncSender<(FeedStream, Vec<u8>)>,
}

impl FeedSender {
    /// Queues one record, or gives it back when the queue is full (the caller keeps it and
    /// tries again later, without blocking).
    pub fn try_send(&self, stream: FeedStream, record: Vec<u8>) -> Result<(), Unsent> {
        match self.queue.try_send((stream, record)) {
            Ok(()) => Ok(()),
            Err(TrySendError::Full((_, r))) => Err(Unsent::Full(r)),
            Err(TrySendError::Disconnected(_)) => Err(Unsent::Closed),
        }
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

fn write_all(store: &dyn Store, live: &Live, received: Receiver<(FeedStream, Vec<u8>)>) -> u64 {
    let mut added = 0u64;
    while let Ok(first) = received.recv() {
        let mut anomalies = Vec::with_capacity(BATCH);
        let mut aggregates = Vec::new();
        let mut next = Some(first);
        while let Some((stream, record)) = next.take() {
            match stream {
                FeedStream::Anomalies => anomalies.push(record),
                FeedStream::Aggregates => aggregates.push(record),
            }
            if anomalies.len() + aggregates.len() < BATCH {
                next = received.try_recv().ok();
            }
        }
        if !aggregates.is_empty() {
            if let Err(e) = store.add_aggregates(aggregates) {
                tracing::error!(error = %e, "the store could not take a batch of aggregates");
            }
        }
        if anomalies.is_empty() {
            continue;
        }
        match store.add_anomalies(anomalies) {
            Ok(batch) => {
                added += batch.new;
                live.stored(batch.last_seq);
            }
            Err(e) => tracing::error!(error = %e, "the store could not take a batch of anomalies"),
        }
    }
    added
}
